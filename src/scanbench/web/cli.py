"""``scanbench serve`` and ``scanbench user|site|audit``: the web application, and
the first admin and the audit log from the command line (issue 12). Every change is
written to the audit log as done by ``cli:<login>`` (the operating-system account that
ran it). Exit status: 0 done, 1 the audit chain is broken, 2 bad usage or input."""

from __future__ import annotations

import datetime as dt
import getpass
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from scanbench.console import console, safe, text
from scanbench.errors import ScanbenchError
from scanbench.service.cli import HomeOpt, UrlOpt
from scanbench.service.cli import open_database as _db
from scanbench.service.cli import usage_error as _fail

err = console(stderr=True)
out = console()

user_app = typer.Typer(help="Web application users, their site grants and API tokens.",
                       no_args_is_help=True)
token_app = typer.Typer(help="API tokens for programs (Authorization: Bearer).",
                        no_args_is_help=True)
user_app.add_typer(token_app, name="token")
site_app = typer.Typer(help="Sites, and which site each device belongs to.",
                       no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)

PasswordStdin = Annotated[bool, typer.Option(
    "--password-stdin", help="Read the password from the first line of standard input "
    "(default: ask for it, without echo).")]


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(user_app, name="user")
    app.add_typer(site_app, name="site")
    app.add_typer(audit_app, name="audit")


def _actor() -> Any:
    from scanbench.web.audit import Actor

    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = "unknown"
    return Actor(None, f"cli:{login}", "command line")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise ScanbenchError("the two passwords differ")
    return first


def _change(home: Path | None, database_url: str | None, work: Any) -> Any:
    """Run ``work(session)`` and commit it with its audit entries, retrying when another
    writer extended the audit chain first."""
    from scanbench.web.audit import commit_with_retry

    db = _db(home, database_url)
    try:
        with db.sessions() as s:
            return commit_with_retry(s, work)
    except ScanbenchError as exc:
        raise _fail(exc) from None
    finally:
        db.close()


@user_app.command("add")
def user_add(username: str, password_stdin: PasswordStdin = False,
             display_name: Annotated[str, typer.Option(help="Full name shown on pages.")] = "",
             email: Annotated[str | None, typer.Option()] = None,
             home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """Add a user (Argon2id password hash; the password is never echoed)."""
    from scanbench.web import auth

    try:
        password = _password(password_stdin)
    except ScanbenchError as exc:
        raise _fail(exc) from None
    _change(home, database_url, lambda s: auth.add_user(
        s, _actor(), username, password, display_name=display_name, email=email).id)
    out.print(f"user {safe(username)} added")


@user_app.command("grant")
def user_grant(username: str, site: Annotated[str, typer.Argument(help="Site name.")],
               role: Annotated[str, typer.Argument(
                   help="admin, physicist, technologist or viewer; or reviewer (reads, and "
                   "decides expert reviews: outside that ladder).")],
               home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """Give a user a role on a site (replacing the role they had there)."""
    from scanbench.web import auth

    _change(home, database_url, lambda s: auth.grant(
        s, _actor(), auth.get_user(s, username), auth.get_site(s, site), role).id)
    out.print(f"{safe(username)} is {safe(role)} on {safe(site)}")


@user_app.command("revoke")
def user_revoke(username: str, site: str, home: HomeOpt = None,
                database_url: UrlOpt = None) -> None:
    """Take a user's role on a site away (their tokens lose the site too)."""
    from scanbench.web import auth

    _change(home, database_url, lambda s: auth.revoke(
        s, _actor(), auth.get_user(s, username), auth.get_site(s, site)))
    out.print(f"{safe(username)} no longer has a role on {safe(site)}")


@user_app.command("list")
def user_list(home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """Users, their grants and their tokens (prefixes only)."""
    from sqlalchemy import select

    from scanbench.store import models as m

    db = _db(home, database_url)
    try:
        with db.sessions() as s:
            sites = {x.id: x.name for x in s.scalars(select(m.Site))}
            table = Table("user", "active", "grants", "tokens")
            for user in s.scalars(select(m.User).order_by(m.User.username)):
                grants = ", ".join(f"{sites.get(g.site_id, g.site_id)}: {g.role}"
                                   for g in user.grants)
                tokens = ", ".join(
                    f"{t.id} {t.prefix}… {t.role}"
                    + (" revoked" if t.revoked_at else "")
                    for t in s.scalars(select(m.ApiToken).where(m.ApiToken.user_id == user.id)))
                table.add_row(text(user.username), "yes" if user.active else "no",
                              text(grants), text(tokens))
            out.print(table)
    finally:
        db.close()


@token_app.command("create")
def token_create(username: str,
                 role: Annotated[str, typer.Option(help="The token's role.")] = "viewer",
                 site: Annotated[list[str] | None, typer.Option(
                     "--site", help="Site name (repeatable); default: every site where "
                     "the user holds the role.")] = None,
                 name: Annotated[str, typer.Option(help="What the token is for.")] = "",
                 days: Annotated[int | None, typer.Option(
                     help="Expires after this many days (default: never).")] = None,
                 home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """Create an API token; it is printed once and stored only as its SHA-256."""
    from scanbench.web import auth

    def work(s: Any) -> str:
        user = auth.get_user(s, username)
        if site:
            ids = [auth.get_site(s, x).id for x in site]
        else:
            ids = [sid for sid, r in auth.grants_of(s, user.id).items()
                   if role in auth.RANK and auth.satisfies(r, role)]
        expires = (None if days is None
                   else dt.datetime.now(dt.UTC) + dt.timedelta(days=days))
        raw, _row = auth.create_token(s, _actor(), user, role=role, site_ids=ids, name=name,
                                      expires_at=expires)
        return raw

    raw = _change(home, database_url, work)
    err.print("the token (shown once; keep it secret):")
    print(raw)  # plain stdout, so scripts can capture it


@token_app.command("revoke")
def token_revoke(token_id: int, home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """Revoke an API token at once."""
    from scanbench.web import auth

    _change(home, database_url, lambda s: auth.revoke_token(s, _actor(), token_id).id)
    out.print(f"token {token_id} revoked")


@site_app.command("add")
def site_add(name: str, institution: Annotated[str | None, typer.Option()] = None,
             timezone: Annotated[str | None, typer.Option(
                 help="IANA time zone, e.g. Europe/Paris.")] = None,
             home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """Add a site."""
    from scanbench.web import sites

    sid = _change(home, database_url, lambda s: sites.add_site(
        s, _actor(), name, institution=institution, timezone=timezone).id)
    out.print(f"site {safe(name)} added (id {sid})")


@site_app.command("assign")
def site_assign(device_id: int, site: str, home: HomeOpt = None,
                database_url: UrlOpt = None) -> None:
    """Put a device (by id, see ``scanbench jobs``/the API) on a site."""
    from scanbench.web import auth, sites

    _change(home, database_url, lambda s: sites.assign_device(
        s, _actor(), device_id, auth.get_site(s, site)).id)
    out.print(f"device {device_id} is on site {safe(site)}")


@audit_app.command("verify")
def audit_verify(home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """Recompute the audit log's hash chain; name the first entry that does not match.
    Prints the newest hash: keep it elsewhere to detect removal of the newest entries."""
    from scanbench.web.audit import verify

    db = _db(home, database_url)
    try:
        with db.sessions() as s:
            verdict = verify(s)
    finally:
        db.close()
    if not verdict.ok:
        err.print(f"[red]audit log tampered:[/] entry {verdict.bad_id}: {safe(verdict.reason)}"
                  f" ({verdict.entries - 1} entries before it are intact)")
        raise typer.Exit(1)
    out.print(f"audit log intact: {verdict.entries} entries; newest hash {verdict.head}")


def serve(
    host: Annotated[str, typer.Option(help="Address of the web application.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port of the web application (0: any free "
                                            "port, printed at start).")] = 8000,
    dicom_port: Annotated[int | None, typer.Option(
        help="Also run the node (C-STORE, jobs) in this process on this port, with the "
        "node's defaults (scanbench node --help).")] = None,
    ae_title: Annotated[str, typer.Option(help="The node's AE title.")] = "SCANBENCH",
    secure_cookies: Annotated[bool, typer.Option(
        help="Mark the session cookie Secure even on plain HTTP (TLS ends in a proxy in "
        "front of scanbench).")] = False,
    workers: Annotated[int, typer.Option(
        min=1, help="Web application processes sharing the port (one process uses one "
        "core: Python's GIL). More than 1 only for the web application alone, not with "
        "--dicom-port (the node's receiver and job loop stay one process).")] = 1,
    home: HomeOpt = None, database_url: UrlOpt = None,
) -> None:
    """Run the web application (JSON API under /api/v1, its description at /api/docs),
    and with --dicom-port the node beside it. Stops on SIGTERM or Ctrl-C."""
    import logging
    import threading

    import uvicorn

    from scanbench.web.api import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    if workers > 1 and dicom_port is not None:
        raise _fail(ScanbenchError(
            "--workers above 1 serves the web application alone: run the node "
            "(--dicom-port, or scanbench node) as its own single process"))
    try:
        db = _db(home, database_url)
    except ScanbenchError as exc:
        raise _fail(exc) from None
    if workers > 1:
        try:
            _serve_workers(db, host, port, workers, secure_cookies, home)
        finally:
            db.close()
        return
    app = create_app(db, secure_cookies=secure_cookies)
    from scanbench.store.db import home_dir

    app.state.home = home_dir(home)  # the result page's figures (service/figures.py)
    freeze_startup_objects()
    config = uvicorn.Config(app, host=host, port=port, log_level="info", access_log=False,
                            proxy_headers=False)
    server = uvicorn.Server(config)
    log = logging.getLogger("scanbench.web")

    def announce() -> None:
        while not server.started and not server.should_exit:
            threading.Event().wait(0.05)
        for srv in server.servers:
            for sock in srv.sockets:
                addr = sock.getsockname()
                log.info("web application ready on http://%s:%d/api/docs", addr[0], addr[1])

    threading.Thread(target=announce, name="announce", daemon=True).start()
    try:
        if dicom_port is None:
            server.run()
            return
        # The node keeps the main thread (it handles SIGTERM and Ctrl-C); the web
        # application runs beside it and stops when the node has stopped.
        from scanbench.net.cli import node

        web = threading.Thread(target=server.run, name="web", daemon=True)
        web.start()
        try:
            node(ae_title=ae_title, port=dicom_port, host=host, allow=None, allow_host=None,
                 home=home, database_url=database_url)
        finally:
            server.should_exit = True
            web.join(timeout=30)
    finally:
        db.close()


_SECURE_ENV = "SCANBENCH_SERVE_SECURE_COOKIES"  # serve's option, handed to its workers


def worker_app() -> Any:
    """The application of one ``serve --workers`` process (uvicorn's factory, called in
    each spawned worker): the database and home named by ``SCANBENCH_DATABASE_URL`` and
    ``SCANBENCH_HOME``, which :func:`_serve_workers` set before spawning."""
    import logging

    from scanbench.store.db import home_dir
    from scanbench.web.api import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    import os

    app = create_app(_db(None, None), secure_cookies=os.environ.get(_SECURE_ENV) == "1")
    app.state.home = home_dir(None)
    freeze_startup_objects()
    return app


def freeze_startup_objects() -> None:
    """Take the objects made while starting the server (modules, routes, templates,
    SQLAlchemy metadata: ~230,000 of them) out of the garbage collector's view
    (``gc.freeze``, Python documentation, "gc — Garbage Collector interface"): a full
    collection otherwise walks them all, 150-250 ms during which every request waits on
    the GIL. In-process on bench/web.py's national-scale data, mean CPU per request
    (36 requests): fleet page 28-31 -> 17-18 ms, control chart 45-47 -> 37 ms, history
    API 26-30 -> 22 ms. They live as long as the process; the startup's garbage is
    collected first, so none of it is kept."""
    import gc

    gc.collect()
    gc.freeze()


def _serve_workers(db: Any, host: str, port: int, workers: int, secure_cookies: bool,
                   home: Path | None) -> None:
    """The web application in ``workers`` processes on one listening socket (uvicorn's
    ``Multiprocess`` supervisor: bound once here, accepted by every worker, a dead worker
    replaced). Nothing of the web application is kept per process that must be shared:
    sessions, CSRF tokens, sign-in throttling, the audit chain and the stored fleet state
    and statistics live in the database (a process's in-memory copy of a stored answer
    is keyed by the database's fact version, so it is never stale)."""
    import logging
    import os

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from scanbench.store.db import home_dir

    # The workers are spawned (fresh interpreters), so they learn the database from the
    # environment variables that Database already reads.
    os.environ["SCANBENCH_HOME"] = str(home_dir(home))
    os.environ["SCANBENCH_DATABASE_URL"] = db.url
    os.environ[_SECURE_ENV] = "1" if secure_cookies else "0"
    config = uvicorn.Config("scanbench.web.cli:worker_app", factory=True, host=host,
                            port=port, workers=workers, log_level="info", access_log=False,
                            proxy_headers=False)
    sock = config.bind_socket()
    addr = sock.getsockname()
    log = logging.getLogger("scanbench.web")

    class Supervisor(Multiprocess):
        def init_processes(self) -> None:
            super().init_processes()
            # Announced once every worker has started its server (uvicorn's health check
            # over each worker's pipe), so the first requests are not all one worker's.
            ready = sum(p.wait_until_ready(config.timeout_worker_healthcheck + 120,
                                           self.should_exit) for p in self.processes)
            log.info("web application ready on http://%s:%d/api/docs (%d of %d worker "
                     "processes started)", addr[0], addr[1], ready, workers)

    try:
        Supervisor(config, sockets=[sock]).run()
    finally:
        sock.close()

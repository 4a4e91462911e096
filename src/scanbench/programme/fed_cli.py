"""``scanbench federation``: site credentials on the central node (``credential add``,
``revoke``, ``list``) and what each site sent (``sites``); one send pass from a site
node (``send``) and where sending stands (``status``). Exit status: 0 done, 1 the pass
ended with an error (a refused batch or an unreachable centre: the reason is printed and
kept), 2 bad usage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from scanbench.console import console, safe
from scanbench.errors import InputError, ScanbenchError
from scanbench.service.cli import HomeOpt, UrlOpt
from scanbench.service.cli import open_database as _db
from scanbench.service.cli import usage_error as _fail

out = console()
err = console(stderr=True)

fed_app = typer.Typer(help="Federation: site nodes send de-identified records to a "
                      "central node (issue 14).", no_args_is_help=True)
cred_app = typer.Typer(help="Central node: the credentials site nodes send with.",
                       no_args_is_help=True)
fed_app.add_typer(cred_app, name="credential")

CentralOpt = Annotated[str, typer.Option("--central", help="Base URL of the central node, "
                                         "e.g. https://central.example.org")]
TokenFileOpt = Annotated[Path, typer.Option(
    "--token-file", help="File holding this site's credential (first line).")]


def register(app: typer.Typer) -> None:
    app.add_typer(fed_app, name="federation")


def read_token(path: Path) -> str:
    """The credential in the first line of ``path`` (a clear error if unreadable)."""
    try:
        token = path.read_text(encoding="utf-8").splitlines()[0].strip()
    except (OSError, UnicodeDecodeError, IndexError) as exc:
        raise InputError(f"cannot read a credential from the first line: {exc}", path) \
            from None
    if not token:
        raise InputError("the credential file's first line is empty", path)
    return token


def _actor() -> Any:
    from scanbench.web.cli import _actor as actor

    return actor()


@cred_app.command("add")
def credential_add(
    site: Annotated[str, typer.Argument(help="The site's name at the centre (made if new).")],
    name: Annotated[str, typer.Option(help="A note: which node holds it.")] = "",
    home: HomeOpt = None, database_url: UrlOpt = None,
) -> None:
    """Make a credential for a site and print it ONCE (only its SHA-256 is kept)."""
    from scanbench.programme.federation import add_credential
    from scanbench.web.audit import commit_with_retry

    try:
        db = _db(home, database_url)
        with db.sessions() as s:
            token = commit_with_retry(s, lambda s: add_credential(s, _actor(), site, name))
    except ScanbenchError as exc:
        raise _fail(exc) from None
    print(token)
    err.print(f"credential for site {safe(site)}: give it to that site's node "
              "(--central-token-file); it is not shown again")


@cred_app.command("revoke")
def credential_revoke(
    ref: Annotated[str, typer.Argument(help="The credential's id or prefix.")],
    home: HomeOpt = None, database_url: UrlOpt = None,
) -> None:
    """Revoke a credential: batches it signs are refused from now on."""
    from scanbench.programme.federation import revoke_credential
    from scanbench.web.audit import commit_with_retry

    try:
        db = _db(home, database_url)
        with db.sessions() as s:
            cred = commit_with_retry(s, lambda s: revoke_credential(s, _actor(), ref))
    except ScanbenchError as exc:
        raise _fail(exc) from None
    out.print(f"revoked credential {cred.id} ({safe(cred.prefix)}...)")


@cred_app.command("list")
def credential_list(home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """The credentials, their site, when last used and whether revoked."""
    from sqlalchemy import select

    from scanbench.store import models as m

    try:
        db = _db(home, database_url)
    except ScanbenchError as exc:
        raise _fail(exc) from None
    table = Table("id", "site", "prefix", "name", "last used (UTC)", "revoked (UTC)")
    with db.sessions() as s:
        for cred, site in s.execute(select(m.FedCredential, m.Site)
                                    .join(m.Site, m.Site.id == m.FedCredential.site_id)
                                    .order_by(m.FedCredential.id)):
            table.add_row(str(cred.id), safe(site.name), safe(cred.prefix), safe(cred.name),
                          f"{cred.last_used_at:%Y-%m-%d %H:%M}" if cred.last_used_at else "",
                          f"{cred.revoked_at:%Y-%m-%d %H:%M}" if cred.revoked_at else "")
    out.print(table)


@fed_app.command("send")
def send(central: CentralOpt, token_file: TokenFileOpt,
         images: Annotated[bool, typer.Option(
             "--images/--no-images", help="Also upload each sent result's images, "
             "de-identified (DICOM PS3.15 Basic Profile), for expert review — only when "
             "the programme enables it.")] = False,
         home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """One pass: queue what is new, fetch review decisions, send every pending batch."""
    from scanbench.programme.outbox import Sender
    from scanbench.store.db import home_dir

    try:
        db = _db(home, database_url)
        sender = Sender(db, home_dir(home), central, read_token(token_file),
                        images=images)
    except ScanbenchError as exc:
        raise _fail(exc) from None
    try:
        rep = sender.send_pass()
    finally:
        sender.close()
    out.print(f"queued {rep.queued}, sent {rep.sent_batches} batches, confirmed up to seq "
              f"{rep.acked_seq}, {rep.pending} pending, {rep.decisions} review decisions "
              f"received" + (f", {rep.images} de-identified images uploaded" if images else ""))
    for note in rep.notes:
        out.print(safe(note))
    if rep.error:
        err.print(f"[red]error:[/] {safe(rep.error)}")
        raise typer.Exit(1)


@fed_app.command("status")
def status(home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """Where sending stands: confirmed seq, pending records, the last refusal's reason."""
    from scanbench.programme.outbox import status as fed_status

    try:
        db = _db(home, database_url)
    except ScanbenchError as exc:
        raise _fail(exc) from None
    with db.sessions() as s:
        rows = fed_status(s)
    if not rows:
        out.print("this node has not sent to a central node yet")
        return
    table = Table("central node", "as site", "confirmed seq", "pending", "last attempt (UTC)",
                  "last error")
    for r in rows:
        table.add_row(safe(r["url"]), safe(r["site"]), str(r["acked_seq"]), str(r["pending"]),
                      f"{r['last_attempt_at']:%Y-%m-%d %H:%M:%S}" if r["last_attempt_at"]
                      else "", safe(r["last_error"] or ""))
    out.print(table)


@fed_app.command("sites")
def sites(home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """Central node: what each site sent (last seq, records, batches, newest refusal)."""
    from scanbench.programme.federation import site_overview

    try:
        db = _db(home, database_url)
    except ScanbenchError as exc:
        raise _fail(exc) from None
    with db.sessions() as s:
        rows = site_overview(s)
    if not rows:
        out.print("no site credentials yet: scanbench federation credential add SITE")
        return
    table = Table("site", "last seq", "records", "batches accepted", "refused",
                  "last batch (UTC)", "newest refusal")
    for r in rows:
        table.add_row(safe(r["site"]), str(r["last_seq"]), str(r["records"]),
                      str(r["accepted"]), str(r["refused"]),
                      f"{r['last_received_at']:%Y-%m-%d %H:%M:%S}" if r["last_received_at"]
                      else "", safe(r["last_refusal"] or ""))
    out.print(table)

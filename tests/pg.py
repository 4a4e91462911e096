"""A throw-away PostgreSQL server for tests (node storage runs on SQLite and PostgreSQL).

Starts a real cluster from the Debian ``postgresql`` package: ``initdb`` and
``pg_ctl`` from ``/usr/lib/postgresql/*/bin`` (or ``SCANBENCH_PG_BIN``), run as the
``postgres`` user when the tests run as root (PostgreSQL refuses to run as root),
in a temporary folder, listening only on 127.0.0.1 on a free port, with
``fsync=off`` (a test database need not survive a power cut). Each test gets its
own database. ``SCANBENCH_TEST_PG_URL`` (a ``postgresql+psycopg://`` URL of a
server where the user may create databases) uses an existing server instead.

Fixtures (import them into a conftest or test module):
``pg_server`` (session) → :class:`PgServer` or a skip naming why not;
``database_url`` parametrised over ``sqlite`` and ``postgresql`` → a fresh empty
database URL per test.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def _bin_dir() -> Path | None:
    env = os.environ.get("SCANBENCH_PG_BIN")
    if env:
        return Path(env)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """A running PostgreSQL cluster; ``url(dbname)`` for SQLAlchemy, ``create()`` a new
    empty database and its URL."""

    def __init__(self, admin_url: str, stop: list[str] | None = None, folder: Path | None = None,
                 as_user: str | None = None) -> None:
        self.admin_url = admin_url
        self._stop, self._folder, self._as_user = stop, folder, as_user

    def url(self, dbname: str) -> str:
        base, _, _ = self.admin_url.rpartition("/")
        return f"{base}/{dbname}"

    def create(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        plain = self.admin_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        if self._stop:
            subprocess.run(self._stop, capture_output=True, timeout=60, check=False)
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)


def _demote(user: str) -> tuple[int, int]:
    pw = pwd.getpwnam(user)
    return pw.pw_uid, pw.pw_gid


def start_server() -> PgServer:
    """Start a cluster (module docstring); pytest.skip with the reason if impossible."""
    env_url = os.environ.get("SCANBENCH_TEST_PG_URL")
    if env_url:
        return PgServer(env_url)
    bindir = _bin_dir()
    if bindir is None or not (bindir / "initdb").exists():
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql, or set "
                    "SCANBENCH_PG_BIN / SCANBENCH_TEST_PG_URL)")
    as_user = None
    user, group = None, None
    if os.geteuid() == 0:
        try:
            user, group = _demote("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
        as_user = "postgres"
    folder = Path(tempfile.mkdtemp(prefix="scanbench-pg-"))
    data, sock = folder / "data", folder / "sock"
    sock.mkdir()
    if user is not None:
        os.chown(folder, user, group or -1)
        os.chown(sock, user, group or -1)
    port = _free_port()

    def run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                              user=user, group=group, cwd=folder, check=False)

    r = run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--no-sync"], 120)
    if r.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"initdb failed: {r.stderr.strip()[-800:]}")
    opts = (f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60")
    r = run([str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l",
             str(folder / "log"), "-w", "-t", "60", "start"], 90)
    if r.returncode != 0:
        logfile = folder / "log"
        log = logfile.read_text(errors="replace")[-800:] if logfile.exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"pg_ctl start failed: {r.stderr.strip()[-400:]} {log}")
    stop = [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
    if as_user:
        stop = ["runuser", "-u", as_user, "--", *stop]
    server = PgServer(f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", stop, folder,
                      as_user)
    deadline = time.monotonic() + 30
    while True:  # pg_ctl -w waited for the socket; make sure TCP answers too
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            break
        if time.monotonic() > deadline:
            server.close()
            pytest.fail("PostgreSQL started but does not answer on 127.0.0.1")
        time.sleep(0.2)
    return server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = start_server()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file, or a new database on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'scanbench-test.db'}"
    server: PgServer = request.getfixturevalue("pg_server")
    return server.create()

"""``scanbench serve --workers 2`` for real: two uvicorn worker processes on one port
(SQLite home, ``--port 0``). A session opened through one connection is honoured on
fresh connections (whichever worker accepts them) and its sign-out refuses the cookie at
once on every later connection (sessions live in the database, not in a worker);
SIGTERM stops both workers; ``--workers`` with ``--dicom-port`` is refused (the node
stays one process)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session

from scanbench.store.db import Database
from scanbench.web import auth, sites
from scanbench.web.audit import Actor, commit_with_retry

PW = "correct horse battery"


def _children(pid: int) -> list[str]:
    """Command lines of ``pid``'s child processes (Linux /proc)."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(OSError):  # ended meanwhile
                out.append(Path(f"/proc/{child}/cmdline").read_bytes().decode()
                           .replace("\0", " "))
    return out


def test_two_worker_processes_share_sessions_and_stop(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    db = Database(home, None)
    actor = Actor(None, "test")

    def setup(s: Session) -> None:
        site = sites.add_site(s, actor, "Site A")
        user = auth.add_user(s, actor, "root", PW)
        auth.grant(s, actor, user, site, "admin")

    with db.sessions() as s:
        commit_with_retry(s, setup)
    db.close()

    proc = subprocess.Popen([sys.executable, "-m", "scanbench", "serve", "--port", "0",
                             "--workers", "2", "--home", str(home)],
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: list[str] = []
    ready = threading.Event()
    port: list[int] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            found = re.search(r"ready on http://127\.0\.0\.1:(\d+)/api/docs "
                              r"\((\d) of 2 worker", line)
            if found:
                port.append(int(found.group(1)))
                assert found.group(2) == "2", line
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(240), "".join(lines)
        workers = [c for c in _children(proc.pid) if "spawn_main" in c]
        assert len(workers) == 2, workers
        base = f"http://127.0.0.1:{port[0]}"
        with httpx.Client(base_url=base, timeout=60) as client:
            login = client.post("/api/v1/auth/login", json={"username": "root",
                                                            "password": PW})
            assert login.status_code == 200, login.text
            cookies, csrf = dict(client.cookies), login.json()["csrf_token"]
        # A fresh connection each time: the kernel hands it to either worker.
        for _ in range(6):
            with httpx.Client(base_url=base, timeout=60, cookies=cookies) as c:
                got = c.get("/api/v1/sites")
                assert got.status_code == 200, got.text
                assert [x["name"] for x in got.json()["items"]] == ["Site A"]
        with httpx.Client(base_url=base, timeout=60, cookies=cookies) as c:
            assert c.post("/api/v1/auth/logout",
                          headers={"X-CSRF-Token": csrf}).status_code == 204
        for _ in range(6):
            with httpx.Client(base_url=base, timeout=60, cookies=cookies) as c:
                assert c.get("/api/v1/sites").status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0, "".join(lines)
    text = "".join(lines)
    assert "Traceback" not in text
    assert len(re.findall(r"Finished server process", text)) == 2, text


def test_workers_refused_beside_the_node(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "scanbench", "serve", "--workers", "2",
                        "--dicom-port", "0", "--home", str(tmp_path / "home")],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 2
    assert "--workers above 1 serves the web application alone" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_worker_freezes_its_startup_objects(tmp_path: Path, monkeypatch: Any) -> None:
    """A worker's application (as ``serve`` builds its own) leaves the objects made at
    start-up out of the garbage collector's full collections (``gc.freeze``)."""
    import gc

    from scanbench.web.cli import worker_app

    monkeypatch.setenv("SCANBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SCANBENCH_DATABASE_URL", raising=False)
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    app = worker_app()
    try:
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
        app.state.db.close()

"""``scanbench serve`` for real: the first admin made with ``scanbench site add`` and
``scanbench user add|grant`` (password on standard input), then uvicorn on a free port
(``--port 0``, the bound port read from the start line), signed in over HTTP with
httpx; ``scanbench audit verify`` on the result, then on a tampered copy."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import httpx

PW = "correct horse battery"


def run(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scanbench", *map(str, args)],
                          capture_output=True, text=True, input=stdin, timeout=120,
                          check=False)


def test_first_admin_serve_sign_in_and_audit_verify(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run("site", "add", "Site A", "--home", home).returncode == 0
    r = run("user", "add", "root", "--password-stdin", "--home", home, stdin=PW + "\n")
    assert r.returncode == 0, r.stderr
    assert PW not in r.stdout + r.stderr  # never echoed
    assert run("user", "grant", "root", "Site A", "admin", "--home", home).returncode == 0
    bad = run("user", "grant", "root", "Nowhere", "admin", "--home", home)
    assert bad.returncode == 2 and "no site 'Nowhere'" in bad.stderr
    assert "Traceback" not in bad.stderr

    proc = subprocess.Popen([sys.executable, "-m", "scanbench", "serve", "--port", "0",
                             "--home", str(home)], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: list[str] = []
    ready = threading.Event()
    port: list[int] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            found = re.search(r"ready on http://127\.0\.0\.1:(\d+)/", line)
            if found:
                port.append(int(found.group(1)))
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(60), "".join(lines)
        base = f"http://127.0.0.1:{port[0]}"
        with httpx.Client(base_url=base, timeout=30) as client:
            assert client.get("/api/v1/sites").status_code == 401
            login = client.post("/api/v1/auth/login", json={"username": "root",
                                                            "password": PW})
            assert login.status_code == 200, login.text
            csrf = login.json()["csrf_token"]
            sites = client.get("/api/v1/sites").json()
            assert [s["name"] for s in sites["items"]] == ["Site A"]
            made = client.post("/api/v1/users", json={
                "username": "phys", "password": PW, "site_id": sites["items"][0]["id"],
                "role": "physicist"}, headers={"X-CSRF-Token": csrf})
            assert made.status_code == 201, made.text
            entries = client.get("/api/v1/audit?sort=id").json()["items"]
            assert [e["action"] for e in entries][-2:] == ["user.add", "grant.set"]
            assert entries[-1]["actor"] == "root"
            assert client.get("/api/docs").status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert "Traceback" not in "".join(lines)

    ok = run("audit", "verify", "--home", home)
    assert ok.returncode == 0 and "intact: 5 entries" in ok.stdout, ok.stdout + ok.stderr
    with sqlite3.connect(home / "scanbench.db") as conn:
        conn.execute("UPDATE audit_entry SET after = '{\"role\": \"viewer\"}' WHERE id = 4")
    broken = run("audit", "verify", "--home", home)
    assert broken.returncode == 1 and "entry 4" in broken.stderr, broken.stderr

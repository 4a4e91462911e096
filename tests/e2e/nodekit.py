"""Helpers for the node's end-to-end tests: a `scanbench node` subprocess on 127.0.0.1,
dcmtk senders, a real Orthanc, database counts. Every wait has a timeout and every
server started here is stopped (killed if it does not stop) by its fixture."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ORTHANC_DICOMWEB = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def need(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (Debian: dcmtk, orthanc)")


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0,
             every: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def storescu(port: int, files: list[Path] | list[str], *, aet: str = "MODALITY1",
             aec: str = "SCANBENCH", extra: tuple[str, ...] = (), timeout: float = 180.0
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["storescu", "-R", "-nh", "-v", *extra, "-aet", aet, "-aec", aec,
                           "127.0.0.1", str(port), *map(str, files)],
                          capture_output=True, text=True, errors="replace", timeout=timeout,
                          check=False)


def echo(port: int, aec: str = "SCANBENCH") -> bool:
    r = subprocess.run(["echoscu", "-to", "2", "-aec", aec, "127.0.0.1", str(port)],
                       capture_output=True, text=True, timeout=20, check=False)
    return r.returncode == 0


class Node:
    """``scanbench node`` as a subprocess (python -m scanbench), logs to a file."""

    def __init__(self, home: Path, database_url: str | None = None, *, port: int | None = None,
                 args: tuple[str, ...] = (), quiet_seconds: float = 1.0) -> None:
        """``quiet_seconds`` large: no series completes, so no analysis competes with
        receiving (tests that are about storing only)."""
        self.home, self.database_url = home, database_url
        self.quiet_seconds = quiet_seconds
        self.port = port or free_port()
        self.args = args
        self.log = home.parent / f"node-{home.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> Node:
        env = dict(os.environ, SCANBENCH_HOME=str(self.home))
        if self.database_url:
            env["SCANBENCH_DATABASE_URL"] = self.database_url
        env.pop("SCANBENCH_DASK_SCHEDULER", None)
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "scanbench", "node", "--port", str(self.port),
                 "--quiet-seconds", str(self.quiet_seconds), "--workers", "0", *self.args],
                stdout=fh, stderr=subprocess.STDOUT, env=env)

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"node exited with {self.proc.returncode}:\n{self.text()}")
            return echo(self.port)

        wait_for("the node to answer C-ECHO", ready, timeout)
        return self

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait; the exit status (killed after ``timeout``: -9)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        code = self.proc.returncode
        self.proc = None
        return code

    def kill9(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None


@contextlib.contextmanager
def running(node: Node) -> Iterator[Node]:
    node.start()
    try:
        yield node
    finally:
        node.stop()


def db_url_of(home: Path, database_url: str | None) -> str:
    return database_url or f"sqlite:///{home / 'scanbench.db'}"


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def count(url: str, table: str, where: str = "") -> int:
    return int(query(url, f"select count(*) from {table} {where}")[0][0])


class Orthanc:
    """A real Orthanc (Debian package) with its DICOMweb plugin, on 127.0.0.1 only,
    storage and index in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.http_port, self.dicom_port = free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = folder / "orthanc.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def start(self, *, dicom: bool = False, fsync: bool = True) -> Orthanc:
        """Orthanc 1.10 has no bind-address option: HTTP answers only 127.0.0.1
        (RemoteAccessAllowed false); the DICOM port (only with ``dicom``, for the
        benchmark) is used on 127.0.0.1 only."""
        need("Orthanc")
        if not ORTHANC_DICOMWEB.exists():
            pytest.skip("orthanc-dicomweb plugin not installed")
        self.folder.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "scanbench-test", "StorageDirectory": str(self.folder / "storage"),
            "IndexDirectory": str(self.folder / "index"), "HttpPort": self.http_port,
            "DicomPort": self.dicom_port, "DicomAet": "ORTHANC", "DicomServerEnabled": dicom,
            "DicomCheckCalledAet": False, "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False, "Plugins": [str(ORTHANC_DICOMWEB)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "SyncStorageArea": fsync, "StorageCompression": False,
            "LogExportedResources": False, "SaveJobs": False,
        }
        cfg = self.folder / "orthanc.json"
        cfg.write_text(json.dumps(config, indent=1))
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(["Orthanc", str(cfg)], stdout=fh,
                                         stderr=subprocess.STDOUT)

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"Orthanc exited: {self.log.read_text(errors='replace')}")
            try:
                import requests

                return requests.get(f"{self.url}/system", timeout=2).ok
            except Exception:
                return False

        wait_for("Orthanc to answer HTTP", up, 60)
        return self

    def upload(self, files: list[Path]) -> None:
        import requests

        for f in files:
            r = requests.post(f"{self.url}/instances", data=f.read_bytes(), timeout=30)
            assert r.ok, r.text

    def instances(self) -> int:
        import requests

        return len(requests.get(f"{self.url}/instances", timeout=30).json())

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None

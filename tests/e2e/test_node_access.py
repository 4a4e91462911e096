"""`scanbench node` access options end to end: the node as a subprocess with DICOM TLS,
an address allow-list and an AE allow-list; dcmtk's storescu over TLS with a client
certificate stores, a plain storescu is refused; bad option values are refused with the
option named, never started as "anyone may send"."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from nodekit import free_port, need, query, wait_for
from typer.testing import CliRunner

from dicom_tls import make_pki
from scanbench import cli


@pytest.mark.parametrize("args,message", [
    (["--allow", ""], "empty entry"),
    (["--allow", "CT1,"], "empty entry"),
    (["--allow", "CT\\1"], "is not an AE title"),
    (["--allow-host", "scanner.example"], "not an IP address"),
    (["--tls-cert", "node.pem"], "both a certificate and its private key"),
    (["--max-per-peer", "0"], "--max-per-peer"),
    (["--artim-timeout", "0"], "--artim-timeout"),
])
def test_bad_access_options_are_refused(tmp_path: Path, args: list[str],
                                        message: str) -> None:
    cli._mount_subapps()
    r = CliRunner().invoke(cli.app, ["node", "--port", "0", "--home", str(tmp_path), *args])
    assert r.exit_code == 2, r.output
    assert message in " ".join(r.output.split())
    assert "Traceback" not in r.output


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_node_over_dicom_tls_with_allow_lists(tmp_path: Path, shared_data: Path) -> None:
    need("storescu")
    make_pki(tmp_path)
    home, port = tmp_path / "home", free_port()
    log = tmp_path / "node.log"
    env = dict(os.environ, SCANBENCH_HOME=str(home))
    env.pop("SCANBENCH_DATABASE_URL", None)
    env.pop("SCANBENCH_DASK_SCHEDULER", None)
    tls = ("+tls", str(tmp_path / "client.key"), str(tmp_path / "client.pem"),
           "+cf", str(tmp_path / "ca.pem"))
    files = [shared_data / "dose/rdsr" / n for n in ("NM-RRDSR-Siemens.dcm",
                                                     "CT-RDSR-Siemens-Multi-2.dcm")]

    def send(*extra: str, aet: str = "CT1", f: Path = files[0]) -> int:
        return subprocess.run(["storescu", "-R", *extra, "-aet", aet, "-aec", "SCANBENCH",
                               "127.0.0.1", str(port), str(f)], capture_output=True,
                              timeout=60, check=False).returncode

    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "scanbench", "node", "--port", str(port), "--workers", "0",
             "--quiet-seconds", "3600", "--allow", "CT1", "--allow-host", "127.0.0.0/8",
             "--tls-cert", str(tmp_path / "server.pem"), "--tls-key",
             str(tmp_path / "server.key"), "--tls-ca", str(tmp_path / "ca.pem")],
            stdout=fh, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for("node ready", lambda: "node ready" in log.read_text(errors="replace")
                 or proc.poll() is not None, timeout=90)
        assert proc.poll() is None, log.read_text(errors="replace")
        # the ready line says what guards the port
        assert "(allowed: CT1; hosts: 127.0.0.0/8; TLS with client certificates)" in \
            log.read_text(errors="replace")
        plain = send(f=files[1])
        wrong_ae = send(*tls, aet="MR1", f=files[1])
        ok = send(*tls)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    text = log.read_text(errors="replace")
    assert ok == 0, text
    assert plain != 0 and wrong_ae != 0
    assert "TLS handshake failed" in text
    assert "any sender" not in text  # both allow-lists given: no open-access warning
    rows = query(f"sqlite:///{home / 'scanbench.db'}", "select calling_ae from instance")
    assert rows == [("CT1",)]

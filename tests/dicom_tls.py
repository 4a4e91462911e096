"""A throw-away PKI for the DICOM TLS tests: a self-signed CA and a server and a client
certificate signed by it, made with the openssl command line (Debian: openssl)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 0, r.stderr


def make_pki(d: Path) -> None:
    """ca.pem; server.pem/server.key (localhost, 127.0.0.1); client.pem/client.key (CN CT1).
    RSA 2048, valid two days."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.pem", "-days", "2", "-subj", "/CN=scanbench test CA", cwd=d)
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                 f"{name}.csr", "-subj", f"/CN={'localhost' if name == 'server' else 'CT1'}",
                 cwd=d)
        (d / f"{name}.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile",
                 f"{name}.ext", cwd=d)

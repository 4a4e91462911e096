"""Instances per second received and indexed over C-STORE on loopback: `scanbench node`
against a real Orthanc, both fed the same files by dcmtk's storescu in the same run.

    .venv/bin/python bench/ingest.py [--series 3] [--repeat 2]

The files are PET slices of the virtual scanner's uniform cylinder (47 kB each,
``--series`` copies of the 74-slice series with new UIDs). Each receiver starts with an
empty store; the clock runs from storescu's start to its exit (one association, every
instance acknowledged), then the receiver's own index is checked to hold every instance.
Both receivers make each instance durable before acknowledging it (scanbench: fsync of
file and folder, SQLite WAL commit; Orthanc: SyncStorageArea true, its default, SQLite
index). The node's analysis waits for a long quiet time so that only receiving and
indexing are timed. Orthanc 1.10 cannot bind to one address; it is only sent to on
127.0.0.1. Run on a quiet machine: both are sensitive to other load.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

ORTHANC_DICOMWEB = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def dcmtk(program: str) -> str:
    """dcmtk's ``program`` on PATH, passing over pynetdicom's Python scripts of the same
    name (in the virtual environment's bin folder, first on PATH when it is activated),
    which take other options and would time pynetdicom instead of dcmtk."""
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        path = Path(folder) / program
        if path.is_file() and os.access(path, os.X_OK):
            with path.open("rb") as f:
                if b"python" not in f.readline():
                    return str(path)
    raise SystemExit(f"dcmtk's {program} not found on PATH (Debian: apt-get install dcmtk)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(what: str, check, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def echo(port: int, aec: str) -> bool:
    return subprocess.run([dcmtk("echoscu"), "-to", "2", "-aec", aec, "127.0.0.1", str(port)],
                          capture_output=True, timeout=20, check=False).returncode == 0


def make_files(folder: Path, n_series: int) -> list[Path]:
    from scanbench.simulate.pet import simulate_uniform

    base = folder / "base"
    simulate_uniform(base, seed=1)
    originals = [pydicom.dcmread(p) for p in sorted(base.glob("*.dcm"))]
    out = []
    for k in range(n_series):
        series = generate_uid()
        for i, ds in enumerate(originals):
            c = copy.deepcopy(ds)
            c.SeriesInstanceUID = series
            c.SOPInstanceUID = c.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            p = folder / "send" / f"{k}_{i:03d}.dcm"
            p.parent.mkdir(parents=True, exist_ok=True)
            c.save_as(p, enforce_file_format=True)
            out.append(p)
    return out


def send(port: int, aec: str, files: list[Path], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([dcmtk("storescu"), "-aec", aec, "127.0.0.1", str(port), *map(str, files)],
                       capture_output=True, text=True, timeout=1800, env=env, check=False)
    elapsed = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"storescu failed: {r.stderr[-500:]}")
    return elapsed


def run_node(folder: Path, files: list[Path], env: dict[str, str]) -> float:
    home = folder / "node"
    port = free_port()
    penv = dict(os.environ, SCANBENCH_HOME=str(home))
    penv.pop("SCANBENCH_DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "scanbench", "node", "--port", str(port),
                             "--quiet-seconds", "3600", "--workers", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=penv)
    try:
        wait("scanbench node", lambda: echo(port, "SCANBENCH"))
        elapsed = send(port, "SCANBENCH", files, env)
        from sqlalchemy import create_engine, text

        engine = create_engine(f"sqlite:///{home / 'scanbench.db'}")
        with engine.connect() as conn:
            n = conn.execute(text("select count(*) from instance")).scalar_one()
        engine.dispose()
        if n != len(files):
            raise SystemExit(f"scanbench indexed {n} of {len(files)} instances")
        return elapsed
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(home, ignore_errors=True)


def run_orthanc(folder: Path, files: list[Path], env: dict[str, str]) -> float:
    store = folder / "orthanc"
    http, dicom = free_port(), free_port()
    config = {"Name": "bench", "StorageDirectory": str(store / "storage"),
              "IndexDirectory": str(store / "index"), "HttpPort": http, "DicomPort": dicom,
              "DicomAet": "ORTHANC", "DicomCheckCalledAet": False, "RemoteAccessAllowed": False,
              "AuthenticationEnabled": False, "SyncStorageArea": True,
              "StorageCompression": False, "SaveJobs": False, "Plugins": []}
    store.mkdir(parents=True, exist_ok=True)
    (store / "orthanc.json").write_text(json.dumps(config))
    proc = subprocess.Popen(["Orthanc", str(store / "orthanc.json")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait("Orthanc", lambda: echo(dicom, "ORTHANC"))
        elapsed = send(dicom, "ORTHANC", files, env)
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/statistics", timeout=30) as r:
            n = json.load(r)["CountInstances"]
        if n != len(files):
            raise SystemExit(f"Orthanc indexed {n} of {len(files)} instances")
        return elapsed
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(store, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--series", type=int, default=3, help="74-slice series to send")
    ap.add_argument("--repeat", type=int, default=2, help="runs per receiver (best kept)")
    args = ap.parse_args()
    for prog in ("storescu", "echoscu", "Orthanc"):
        if shutil.which(prog) is None:
            raise SystemExit(f"{prog} not found: apt-get install dcmtk orthanc")
    with tempfile.TemporaryDirectory(prefix="scanbench-bench-ingest-") as tmp:
        folder = Path(tmp)
        files = make_files(folder, args.series)
        size = sum(p.stat().st_size for p in files) / len(files) / 1024
        print(f"{len(files)} instances of {size:.0f} kB, storescu on 127.0.0.1, "
              f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
        for label, tcp_nodelay in (("storescu as shipped (Nagle on)", None),
                                   ("storescu TCP_NODELAY=1", "1")):
            env = dict(os.environ)
            env.pop("TCP_NODELAY", None)
            if tcp_nodelay:
                env["TCP_NODELAY"] = tcp_nodelay
            best: dict[str, float] = {}
            for _ in range(args.repeat):  # interleaved, so drifting load hits both alike
                for name, run in (("scanbench node", run_node), ("Orthanc", run_orthanc)):
                    rate = len(files) / run(folder, files, env)
                    best[name] = max(best.get(name, 0.0), rate)
            ratio = best["scanbench node"] / best["Orthanc"]
            print(f"{label}: scanbench node {best['scanbench node']:.1f} instances/s, "
                  f"Orthanc {best['Orthanc']:.1f} instances/s, ratio {ratio:.2f}")


if __name__ == "__main__":
    main()

"""Benchmark: analyse one real NEMA IQ volume end to end (read + analyse, no figures).

scanbench against pynemaiqpet (PyPI, the peer named in the issue) on the same
files in the same run. pynemaiqpet pins pydicom < 3, so it runs in its own
virtual environment (``bench/.peers/pynemaiqpet``, created on first use) and
times itself in a subprocess; imports are excluded from both timings, and each
tool is run once untimed first so that file caches are equally warm.

    python bench/pet.py [--repeats 5] [--data ../shared/data/pet/nema-iq-test-recon]

Prints a table of median times and the ratio. Never run as a timed test.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEER_VENV = REPO / "bench" / ".peers" / "pynemaiqpet"

# pynemaiqpet's own end-to-end path (its `pynemaiqpet_wb` command without plots):
# load the DICOM volume with pymirc, fit the six sphere profiles.
PEER_SCRIPT = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import pymirc.fileio as pmf
from pynemaiqpet.nema_wb import fit_WB_NEMA_sphere_profiles
import os
folder, repeats = sys.argv[1], int(sys.argv[2])
times = []
for i in range(repeats + 1):
    t0 = time.perf_counter()
    dcm = pmf.DicomVolume(os.path.join(folder, "*"))
    vol = dcm.get_data()
    fitres, res = fit_WB_NEMA_sphere_profiles(vol, dcm.voxsize, sameSignal=True,
        Rfix=[18.5, 14.0, 11.0, 8.5, 6.5, 5.0], dfix=1.5, showBGROI=False)
    dt = time.perf_counter() - t0
    if i:
        times.append(dt)
print(json.dumps({"times": times, "rc_max": [float(x) for x in res["RCmax"].values]
                  if "RCmax" in res else None}))
"""


def ensure_peer() -> Path:
    py = PEER_VENV / "bin" / "python"
    if not py.exists():
        print(f"creating {PEER_VENV} with pynemaiqpet (first run only) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "pynemaiqpet"], check=True)
    return py


def time_scanbench(folder: Path, repeats: int) -> list[float]:
    from scanbench.api import analyze_series
    from scanbench.dicom import read_one

    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        series = read_one(folder)
        analyze_series(series, "pet.nema_nu2_2018.image_quality", {"activity_ratio": 4.0})
        dt = time.perf_counter() - t0
        if i:
            times.append(dt)
    return times


def time_peer(py: Path, folder: Path, repeats: int) -> list[float]:
    proc = subprocess.run([str(py), "-c", PEER_SCRIPT, str(folder), str(repeats)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])["times"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--data", type=Path,
                    default=REPO.parent / "shared" / "data" / "pet" / "nema-iq-test-recon")
    args = ap.parse_args()
    py = ensure_peer()
    folders = sorted(p for p in args.data.iterdir() if p.is_dir())
    print(f"machine: {platform.processor() or platform.machine()}, {platform.system()}, "
          f"python {platform.python_version()}; repeats {args.repeats} (median)")
    print(f"{'series':<14}{'scanbench s':>13}{'pynemaiqpet s':>15}{'ratio':>9}")
    ratios = []
    for folder in folders:
        ours = statistics.median(time_scanbench(folder, args.repeats))
        peer = statistics.median(time_peer(py, folder, args.repeats))
        ratios.append(peer / ours)
        print(f"{folder.name:<14}{ours:>13.3f}{peer:>15.3f}{peer / ours:>8.1f}x")
    print(f"scanbench is {statistics.median(ratios):.1f}x faster (median over {len(ratios)} "
          "series; target: at least 10x)")


if __name__ == "__main__":
    main()

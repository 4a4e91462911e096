"""Benchmark: dose reports parsed per second, against the floor of reading the same files
with ``pydicom.dcmread`` alone.

Two corpora, timed separately: every real dose SR in ``../shared/data/dose/rdsr`` (CT
RDSRs of five vendors, an RRDSR, the enhanced SRs) copied ``--copies`` times, and CT dose
reports written by the virtual clinical scanner (``scanbench simulate ct-exam
--no-images``). Files are read from the page cache (one untimed warm-up pass).

pydicom leaves a sequence's bytes unparsed until it is accessed, so the floor does not
parse the content tree at all; scanbench must (with its own byte-level walker,
:mod:`scanbench.clinical.sr`), and then classify, convert and merge.

* **floor** — ``pydicom.dcmread(path)`` of every file, nothing else.
* **scanbench** — ``doses_from_paths(files)``: read, classify, walk the TID 10011 / 10021
  trees by code, convert units, merge per study, effective dose.

The two are timed INTERLEAVED, round by round, so a change in machine load affects both.

    python bench/dose.py [--rounds 5] [--copies 20] [--simulated 300]

Prints the machine, date, versions, reports per second, and the ratio scanbench / floor
(target: within 2×). Never run as a timed test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import pydicom

import scanbench
from scanbench.clinical.dose import doses_from_paths
from scanbench.simulate.clinical import simulate_ct_exams

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "dose" / "rdsr"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def floor(files: list[Path]) -> float:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in files:
            pydicom.dcmread(f)
    return time.perf_counter() - t0


def ours(files: list[Path]) -> float:
    t0 = time.perf_counter()
    report = doses_from_paths(files)
    elapsed = time.perf_counter() - t0
    if not report.studies:
        raise SystemExit("scanbench found no dose report: the benchmark is broken")
    return elapsed


def _rounds(files: list[Path], rounds: int) -> tuple[float, float]:
    floor(files)
    ours(files)  # warm the page cache and lazy imports
    t_floor, t_ours = [], []
    for _ in range(rounds):
        t_floor.append(floor(files))
        t_ours.append(ours(files))
    return statistics.median(t_floor), statistics.median(t_ours)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--copies", type=int, default=20,
                    help="copies of each real dose report in the real corpus")
    ap.add_argument("--simulated", type=int, default=300,
                    help="number of simulated CT dose reports in the simulated corpus")
    args = ap.parse_args()
    print(f"date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"machine: {cpu_model()}, {os.cpu_count()} logical cores, {platform.system()} "
          f"{platform.release()}, load {os.getloadavg()[0]:.1f}")
    print(f"scanbench {scanbench.__version__}, pydicom {pydicom.__version__}; median of "
          f"{args.rounds} interleaved rounds")
    with tempfile.TemporaryDirectory() as tmp:
        # Real: the dose SRs only (the PET images and the secondary capture carry pixel
        # data, which the floor would read and scanbench does not).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reports = [p for p in sorted(DATA.glob("*.dcm"))
                       if pydicom.dcmread(p, stop_before_pixels=True).get("Modality") == "SR"]
        real = []
        for i in range(args.copies):
            folder = Path(tmp) / "real" / f"copy{i:03d}"
            folder.mkdir(parents=True)
            for p in reports:
                dest = folder / p.name
                dest.write_bytes(p.read_bytes())
                real.append(dest)
        sim = Path(tmp) / "sim"
        simulate_ct_exams(sim, n=args.simulated, images=False, seed=1,
                          protocols=("chest", "abdomen_pelvis", "head", "chest_abdomen_pelvis"))
        simulated = sorted(sim.rglob("*.dcm"))
        for label, files in ((f"real ({len(reports)} vendor reports x {args.copies})", real),
                             ("simulated (TID 10011, 2 events each)", simulated)):
            size = sum(f.stat().st_size for f in files) / 2**20
            f_med, o_med = _rounds(files, args.rounds)
            print(f"\ncorpus {label}: {len(files)} files, {size:.1f} MiB")
            print(f"  pydicom.dcmread alone (floor): {f_med:.3f} s = "
                  f"{len(files) / f_med:7.0f} files/s")
            print(f"  scanbench doses_from_paths:    {o_med:.3f} s = "
                  f"{len(files) / o_med:7.0f} reports/s")
            print(f"  ratio scanbench / floor: {o_med / f_med:.2f}x  (target <= 2x)")


if __name__ == "__main__":
    main()

"""Benchmark and cross-check: NEMA MS 1 two-acquisition SNR against hazen (issue 7, part A).

On the three MagNET SNR pairs in ``../shared/data/mr/magnet/snr`` (Siemens, GE, Philips;
hazen's own test images), end to end from the files (reading included in both tools):

- scanbench: ``api.analyze(folder, analysis="mr.nema_ms1.snr")`` (pairs found
  automatically; difference method, plus the single-image method where valid), and the
  same without naming the analysis (every registered analysis asked first);
- hazen (PyPI ``hazen``, its own virtual environment ``bench/.peers/hazen``, created on
  first use, run as a worker process so that imports are excluded from the timings):
  ``hazenlib.tasks.snr.SNR(input_data=files).run()`` (subtraction and smoothing methods).

Prints both tools' raw two-image SNR (they differ by ROI: hazen's five small ROIs near the
centre, NEMA's large central 75 % ROI; and for Philips by hazen reading raw stored values
without the Rescale Intercept), the median time of ``--rounds`` interleaved rounds per
tool and the ratio hazen / scanbench.

    python bench/mr_nema.py [--rounds 5] [--data ../shared/data]

Never run as a timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEER_VENV = REPO / "bench" / ".peers" / "hazen"
VENDORS = ("Siemens", "GE", "Philips")

PEER_SCRIPT = r"""
import json, sys, time, warnings, logging
warnings.filterwarnings("ignore")
logging.disable(logging.CRITICAL)
import importlib.metadata as md
from hazenlib.tasks.snr import SNR
from hazenlib.utils import get_dicom_files
out, sys.stdout = sys.stdout, sys.stderr
print(json.dumps({"versions": {"hazen": md.version("hazen")}}), file=out, flush=True)
for line in sys.stdin:
    req = json.loads(line)
    t0 = time.perf_counter()
    files = get_dicom_files(req["folder"], sort=True)
    result = SNR(input_data=files, report=False).run()
    dt = time.perf_counter() - t0
    snr = [m for m in result.measurements if getattr(m, "type", None) == "measured"
           and getattr(m, "subtype", None) == "subtraction"]
    print(json.dumps({"seconds": dt, "snr": float(snr[0].value) if snr else None}),
          file=out, flush=True)
"""


def _peer() -> subprocess.Popen[str] | None:
    py = PEER_VENV / "bin" / "python"
    if not py.exists():
        print(f"creating {PEER_VENV} (pip install hazen) ...", file=sys.stderr)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
            subprocess.run([str(py), "-m", "pip", "install", "-q", "hazen"], check=True)
        except (subprocess.CalledProcessError, OSError) as exc:
            print(f"hazen unavailable ({exc}); scanbench times only", file=sys.stderr)
            return None
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.Popen([str(py), "-c", PEER_SCRIPT], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    print("peer:", json.loads(proc.stdout.readline())["versions"])
    return proc


def _ask(proc: subprocess.Popen[str], folder: Path) -> dict[str, float | None]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps({"folder": str(folder)}) + "\n")
    proc.stdin.flush()
    return dict(json.loads(proc.stdout.readline()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = ap.parse_args()
    from scanbench import __version__, api

    print(f"scanbench {__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    peer = _peer()
    rows = []
    for vendor in VENDORS:
        folder = args.data / "mr" / "magnet" / "snr" / vendor
        ours, auto, theirs = [], [], []
        snr_ours = snr_theirs = None
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            (r,) = api.analyze(folder, analysis="mr.nema_ms1.snr")
            ours.append(time.perf_counter() - t0)
            snr_ours = r.get("snr", method="difference").value
            t0 = time.perf_counter()
            api.analyze(folder)  # every analysis asked whether the series are its own
            auto.append(time.perf_counter() - t0)
            if peer is not None:
                answer = _ask(peer, folder)
                theirs.append(float(answer["seconds"] or 0.0))
                snr_theirs = answer["snr"]
        t_ours = statistics.median(ours)
        t_theirs = statistics.median(theirs) if theirs else None
        rows.append((vendor, snr_ours, snr_theirs, t_ours, statistics.median(auto), t_theirs))
    print(f"\n{'pair':9} {'SNR scanbench':>14} {'SNR hazen':>10} {'scanbench s':>12} "
          f"{'(auto s)':>9} {'hazen s':>8} {'hazen/scanbench':>16}")
    for vendor, so, st, to, ta, tt in rows:
        ratio = f"{tt / to:.2f}x" if tt else "-"
        print(f"{vendor:9} {so:14.1f} {st if st is not None else float('nan'):10.1f} "
              f"{to:12.3f} {ta:9.3f} {tt if tt is not None else float('nan'):8.3f} {ratio:>16}")
    print("scanbench s: --analysis mr.nema_ms1.snr named; (auto s): every registered "
          "analysis asked to recognise the series first, as `scanbench analyze DIR` does")
    if peer is not None and peer.stdin is not None:
        peer.stdin.close()
        peer.wait(timeout=30)


if __name__ == "__main__":
    main()

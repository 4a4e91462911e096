"""Benchmark: analyse one real NEMA IQ volume end to end (read + analyse, no figures).

scanbench against pynemaiqpet (PyPI, the peer named in the issue) on the same
files in the same run. pynemaiqpet pins pydicom < 3, so it runs in its own
virtual environment (``bench/.peers/pynemaiqpet``, created on first use) as a
long-lived worker process that times one analysis per request; imports are
excluded from every timing.

The tools are run INTERLEAVED: each round times scanbench's named-analysis
path, scanbench's automatic path and pynemaiqpet once each, one after the
other, so that a change in machine load during the run affects all three
alike. One untimed round first warms file caches and lazy imports.

* **scanbench named** — ``read_one(folder)`` + ``analyze_series(series,
  "pet.nema_nu2_2018.image_quality", {"activity_ratio": 4.0})``.
* **scanbench auto** — ``analyze_paths([folder])``: what ``scanbench analyze
  FOLDER`` does without ``--report``: read every file, ask every analysis's
  ``detect``, run the most confident one.
* **pynemaiqpet** — its ``pynemaiqpet_wb`` path without plots: load the
  volume with pymirc, fit the six sphere profiles.

    python bench/pet.py [--rounds 7] [--data ../shared/data/pet/nema-iq-test-recon]

``--whole-process`` times what a user waits for instead (issue 15): each tool as a new
process, imports included — ``scanbench analyze FOLDER --json`` against a process that
imports pynemaiqpet, loads the volume and fits the spheres as above — interleaved,
median (``bench/wholeproc.py``); ``--before DIR`` adds scanbench run from an earlier
source tree (``git archive <commit> src | tar -x -C DIR``, then ``--before DIR/src``)
to the same rounds, for a before/after figure on the same machine and load:

    python bench/pet.py --whole-process [--rounds 7] [--before /tmp/before/src] [--peer-cli]
        [--no-bytecode]

scanbench's bytecode is cached for these runs (``wholeproc.with_bytecode``: as for an
installed package; the peer's is), unless ``--no-bytecode``.

``--peer-cli`` adds, to the same rounds, the two runs that make figures: pynemaiqpet's
own command as a user runs it (``pynemaiqpet_wb_nema_iq FOLDER --output_dir D``, which
fits the spheres and writes two PDFs and a PNG into ``D``, a temporary folder) and
``scanbench analyze FOLDER --report D/report.html`` (the analysis and an HTML report with
its figures). The fair pairs: ``scanbench analyze --json`` against the fit-only peer
process (neither makes a figure), ``scanbench --report`` against the peer's command (both
write their figures).

Prints the machine, the date, the versions, median seconds per series and
the ratios. Never run as a timed test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata as md
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEER_VENV = REPO / "bench" / ".peers" / "pynemaiqpet"
ANALYSIS = "pet.nema_nu2_2018.image_quality"

# pynemaiqpet's own end-to-end path (its `pynemaiqpet_wb` command without plots),
# served one request (a folder) per line on stdin, one JSON answer per line on stdout.
PEER_SCRIPT = r"""
import json, os, sys, time, warnings
warnings.filterwarnings("ignore")
import importlib.metadata as md
import pymirc.fileio as pmf
from pynemaiqpet.nema_wb import fit_WB_NEMA_sphere_profiles
out, sys.stdout = sys.stdout, sys.stderr  # the library prints progress; answers go to `out`
names = ("pynemaiqpet", "pymirc", "pydicom", "numpy", "scipy")
print(json.dumps({"versions": {p: md.version(p) for p in names}}), file=out, flush=True)
for line in sys.stdin:
    folder = line.strip()
    t0 = time.perf_counter()
    dcm = pmf.DicomVolume(os.path.join(folder, "*"))
    vol = dcm.get_data()
    fitres, res = fit_WB_NEMA_sphere_profiles(vol, dcm.voxsize, sameSignal=True,
        Rfix=[18.5, 14.0, 11.0, 8.5, 6.5, 5.0], dfix=1.5, showBGROI=False)
    print(json.dumps({"seconds": time.perf_counter() - t0}), file=out, flush=True)
"""


# The same analysis as one whole process: imports, volume, fit.
PEER_ONESHOT = r"""
import os, sys, warnings
warnings.filterwarnings("ignore")
import pymirc.fileio as pmf
from pynemaiqpet.nema_wb import fit_WB_NEMA_sphere_profiles
sys.stdout = sys.stderr
dcm = pmf.DicomVolume(os.path.join(sys.argv[1], "*"))
vol = dcm.get_data()
fit_WB_NEMA_sphere_profiles(vol, dcm.voxsize, sameSignal=True,
    Rfix=[18.5, 14.0, 11.0, 8.5, 6.5, 5.0], dfix=1.5, showBGROI=False)
"""
# The installed console script's entry (scanbench.entry since issue 15's fast path; a
# source tree from before it has scanbench.cli only).
SCANBENCH_CLI = ("import sys\ntry:\n    from scanbench.entry import main\n"
                 "except ImportError:\n    from scanbench.cli import main\n"
                 "sys.argv[0] = 'scanbench'\nmain()\n")


def whole_process(folders: list[Path], rounds: int, before: Path | None,
                  peer_cli: bool = False, bytecode: bool = True) -> None:
    """Whole-process medians: scanbench analyze (now, and from ``before``) vs pynemaiqpet;
    with ``peer_cli`` also the peer's own command and ``scanbench analyze --report``."""
    import shutil
    import tempfile

    from wholeproc import bytecode_note, interleaved, machine, with_bytecode
    from wholeproc import scanbench_env as plain_env

    cache = Path(tempfile.mkdtemp(prefix="scanbench-bench-pyc-"))

    def scanbench_env(src: Path | None) -> dict[str, str]:
        return with_bytecode(plain_env(src), cache) if bytecode else plain_env(src)

    peer = ensure_peer()
    print(machine())
    print(f"{rounds} interleaved rounds, whole process, median seconds; "
          f"{bytecode_note(bytecode)}")
    cols = ["scanbench"] + (["before"] if before else []) + ["peer"]
    if peer_cli:
        cols += ["report", "peer CLI"]
    print(f"{'series':<14}" + "".join(f"{c:>10}" for c in cols)
          + f"{'peer/scanbench':>16}" + (f"{'before/now':>12}" if before else "")
          + (f"{'CLI/report':>12}" if peer_cli else ""))
    env_mpl = dict(os.environ, MPLBACKEND="Agg")  # no display: matplotlib writes files
    with tempfile.TemporaryDirectory(prefix="petbench-") as tmp:
        for folder in folders:
            out_peer = Path(tmp) / f"peer-{folder.name}"
            out_ours = Path(tmp) / f"ours-{folder.name}"
            out_peer.mkdir()
            out_ours.mkdir()
            cmds: dict[str, tuple[list[str], dict[str, str] | None]] = {
                "scanbench": ([sys.executable, "-c", SCANBENCH_CLI, "analyze", str(folder),
                               "--json"], scanbench_env(None))}
            if before:
                cmds["before"] = (cmds["scanbench"][0], scanbench_env(before))
            cmds["peer"] = ([str(peer), "-c", PEER_ONESHOT, str(folder)], None)
            if peer_cli:
                cmds["report"] = ([sys.executable, "-c", SCANBENCH_CLI, "analyze", str(folder),
                                   "--report", str(out_ours / "report.html")],
                                  scanbench_env(None))
                cmds["peer CLI"] = ([str(peer.parent / "pynemaiqpet_wb_nema_iq"), str(folder),
                                     "--output_dir", str(out_peer)], env_mpl)
            med = interleaved(cmds, rounds)
            if peer_cli:  # each did write its figures
                made = sorted(p.suffix for p in out_peer.rglob("*") if p.is_file())
                if ".pdf" not in made or not (out_ours / "report.html").is_file():
                    raise RuntimeError(f"{folder}: figures not written (peer: {made})")
            print(f"{folder.name:<14}" + "".join(f"{med[c]:>10.2f}" for c in cols)
                  + f"{med['peer'] / med['scanbench']:>15.1f}x"
                  + (f"{med['before'] / med['scanbench']:>11.1f}x" if before else "")
                  + (f"{med['peer CLI'] / med['report']:>11.1f}x" if peer_cli else ""))
    shutil.rmtree(cache, ignore_errors=True)


def ensure_peer() -> Path:
    py = PEER_VENV / "bin" / "python"
    if not py.exists():
        print(f"creating {PEER_VENV} with pynemaiqpet (first run only) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "pynemaiqpet"], check=True)
    return py


class Peer:
    """pynemaiqpet in its own interpreter, timing one analysis per request."""

    def __init__(self, py: Path) -> None:
        self.proc = subprocess.Popen([str(py), "-c", PEER_SCRIPT], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        self.versions: dict[str, str] = self._answer()["versions"]

    def _answer(self) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"pynemaiqpet worker stopped (exit {self.proc.wait()})")
        return json.loads(line)

    def time(self, folder: Path) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{folder}\n")
        self.proc.stdin.flush()
        return float(self._answer()["seconds"])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def time_named(folder: Path) -> float:
    from scanbench.api import analyze_series
    from scanbench.dicom import read_one

    t0 = time.perf_counter()
    series = read_one(folder)
    analyze_series(series, ANALYSIS, {"activity_ratio": 4.0})
    return time.perf_counter() - t0


def time_auto(folder: Path) -> float:
    from scanbench.api import analyze_paths

    t0 = time.perf_counter()
    report = analyze_paths([folder])
    dt_ = time.perf_counter() - t0
    if len(report.results) != 1 or report.results[0].analysis != ANALYSIS:
        raise RuntimeError(f"{folder}: automatic path chose "
                           f"{[r.analysis for r in report.results]}, failures {report.failures}")
    return dt_


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    from wholeproc import add_bytecode_option

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7, help="timed rounds (median reported)")
    ap.add_argument("--repeats", type=int, dest="rounds", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path,
                    default=REPO.parent / "shared" / "data" / "pet" / "nema-iq-test-recon")
    ap.add_argument("--whole-process", action="store_true",
                    help="time whole processes, imports included (issue 15)")
    ap.add_argument("--before", type=Path,
                    help="with --whole-process: also time scanbench from this source folder")
    ap.add_argument("--peer-cli", action="store_true",
                    help="with --whole-process: also time pynemaiqpet's own command "
                         "(figures written) and scanbench analyze --report")
    add_bytecode_option(ap, "with --whole-process: ")
    args = ap.parse_args()
    if args.whole_process:
        whole_process(sorted(p for p in args.data.iterdir() if p.is_dir()), args.rounds,
                      args.before, args.peer_cli, bytecode=not args.no_bytecode)
        return
    import scanbench
    from scanbench.analysis import registry

    registry.all_analyses()  # import every analysis before timing
    folders = sorted(p for p in args.data.iterdir() if p.is_dir())
    peer = Peer(ensure_peer())
    ours = {f"{v} {p}": md.version(p) for p, v in (("numpy", ""), ("scipy", ""),
                                                  ("pydicom", ""))}
    print(f"date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"machine: {cpu_model()}, {os.cpu_count()} logical cores, {platform.system()} "
          f"{platform.release()}, python {platform.python_version()}")
    print(f"scanbench {scanbench.__version__} ("
          + ", ".join(f"{k.strip()} {v}" for k, v in ours.items()) + "); "
          + ", ".join(f"{k} {v}" for k, v in peer.versions.items()) + " (peer venv)")
    print(f"rounds: {args.rounds} interleaved (scanbench named, scanbench auto, pynemaiqpet), "
          "1 untimed warm-up round; median seconds")
    print(f"{'series':<14}{'named s':>9}{'auto s':>9}{'peer s':>9}"
          f"{'peer/named':>12}{'peer/auto':>11}")
    named_r, auto_r = [], []
    try:
        for folder in folders:
            times: dict[str, list[float]] = {"named": [], "auto": [], "peer": []}
            for rnd in range(args.rounds + 1):
                got = {"named": time_named(folder), "auto": time_auto(folder),
                       "peer": peer.time(folder)}
                if rnd:
                    for k, v in got.items():
                        times[k].append(v)
            med = {k: statistics.median(v) for k, v in times.items()}
            named_r.append(med["peer"] / med["named"])
            auto_r.append(med["peer"] / med["auto"])
            print(f"{folder.name:<14}{med['named']:>9.3f}{med['auto']:>9.3f}{med['peer']:>9.3f}"
                  f"{named_r[-1]:>11.1f}x{auto_r[-1]:>10.1f}x")
    finally:
        peer.close()
    print(f"scanbench is {statistics.median(named_r):.1f}x (named analysis) and "
          f"{statistics.median(auto_r):.1f}x (automatic choice) faster than pynemaiqpet "
          f"(median over {len(folders)} series; target: at least 10x)")


if __name__ == "__main__":
    main()

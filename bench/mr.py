"""Benchmark: the whole ACR MRI suite on one real series, scanbench against hazen and pylinac.

The same files (``mr/acr/PhilipsAchieva``, an 11-slice axial T1, Philips Achieva
3 T, from the shared real data) go, end to end from the DICOM files to the
results, through

* **scanbench**: ``scanbench.api.analyze_paths([folder])``: reading, the suite's
  grouping and all seven tests (geometric accuracy, resolution, slice
  thickness, slice position, uniformity, ghosting, low contrast);
* **hazen** (PyPI, its own virtual environment ``bench/.peers/hazen``): its seven
  ACR tasks (geometric accuracy, spatial resolution, slice thickness, slice
  position, uniformity, ghosting, low-contrast object detectability), each given
  the 11 file paths, as ``hazen acr_all`` would run them;
* **pylinac** (PyPI, ``bench/.peers/pylinac``): ``ACRMRILarge(folder).analyze()``.

Each tool runs in a worker process of its own environment that imports
everything first (imports excluded from the times) and then analyses the
series ``--rounds`` times; the medians are printed with their ratio to
scanbench, and a few values from each tool side by side as a sanity check that
all three analysed the same phantom. The peers' environments are created on
first use (``python3 -m venv``; ``pip install hazen`` / ``pylinac``).

    python bench/mr.py [--rounds 3] [--data ../shared/data]

``--whole-process`` times what a user waits for instead (issue 15): each tool as a new
process, imports included — ``scanbench analyze FOLDER --json`` (the console script's
entry, ``scanbench.entry``), and each peer's
worker above run for one analysis — interleaved, median (``bench/wholeproc.py``);
``--before DIR`` adds scanbench from an earlier source tree to the same rounds:

    python bench/mr.py --whole-process [--rounds 5] [--before /tmp/before/src] [--no-bytecode]

scanbench's bytecode is cached there (as for an installed package; the peers' is), unless
``--no-bytecode``: see ``wholeproc.with_bytecode``.

Never run as a timed test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEERS = REPO / "bench" / ".peers"

SCANBENCH = r"""
import json, sys, time, warnings, importlib.metadata as md
warnings.filterwarnings("ignore")
from scanbench.api import analyze_paths
from scanbench.analysis import registry
registry.all_analyses()
folder, rounds = sys.argv[1], int(sys.argv[2])
times = []
for _ in range(rounds):
    t0 = time.perf_counter()
    rep = analyze_paths([folder])
    times.append(time.perf_counter() - t0)
assert not rep.failures, rep.failures
r = {x.analysis: x for x in rep.results}
values = {
    "tests": len(rep.results),
    "piu_percent": r["mr.acr.uniformity"].get("percent_integral_uniformity").value,
    "psg_percent": r["mr.acr.ghosting"].get("percent_signal_ghosting").value,
    "slice_thickness_mm": r["mr.acr.slice_thickness"].get("slice_thickness_mm").value,
    "lcd_total": r["mr.acr.low_contrast"].get("spokes_detected_total").value,
}
print(json.dumps({"version": md.version("scanbench"), "times": times, "values": values}))
"""

HAZEN = r"""
import glob, io, json, logging, sys, time, warnings, importlib.metadata as md, contextlib
warnings.filterwarnings("ignore")
logging.disable(logging.CRITICAL)
from hazenlib.tasks.acr_geometric_accuracy import ACRGeometricAccuracy
from hazenlib.tasks.acr_spatial_resolution import ACRSpatialResolution
from hazenlib.tasks.acr_slice_thickness import ACRSliceThickness
from hazenlib.tasks.acr_slice_position import ACRSlicePosition
from hazenlib.tasks.acr_uniformity import ACRUniformity
from hazenlib.tasks.acr_ghosting import ACRGhosting
from hazenlib.tasks.acr_low_contrast_object_detectability import ACRLowContrastObjectDetectability
TASKS = (ACRGeometricAccuracy, ACRSpatialResolution, ACRSliceThickness, ACRSlicePosition,
         ACRUniformity, ACRGhosting, ACRLowContrastObjectDetectability)
folder, rounds = sys.argv[1], int(sys.argv[2])
files = sorted(glob.glob(folder + "/*"))
times, out = [], {}
for _ in range(rounds):
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        for task in TASKS:
            try:
                out[task.__name__] = task(input_data=files, report=False).run()
            except Exception as exc:  # a peer's failure is reported, not fatal
                out[task.__name__] = exc
    times.append(time.perf_counter() - t0)

def value(name, key):
    res = out.get(name)
    for m in getattr(res, "measurements", []) or []:
        m = m if isinstance(m, dict) else {k: getattr(m, k, "") for k in ("name", "subtype",
                                                                          "value")}
        if key.lower() in (str(m.get("name", "")) + " " + str(m.get("subtype", ""))).lower():
            v = m["value"]
            return float(v[0] if isinstance(v, (tuple, list)) else v)
    return None

values = {"piu_percent": value("ACRUniformity", "uniformity"),
          "psg_percent": value("ACRGhosting", "ghost"),
          "slice_thickness_mm": value("ACRSliceThickness", "slice width"),
          "failed_tasks": [k for k, v in out.items() if isinstance(v, Exception)]}
print(json.dumps({"version": md.version("hazen"), "times": times, "values": values},
                 default=str))
"""

PYLINAC = r"""
import json, sys, time, warnings, importlib.metadata as md
warnings.filterwarnings("ignore")
from pylinac import ACRMRILarge
folder, rounds = sys.argv[1], int(sys.argv[2])
times = []
for _ in range(rounds):
    t0 = time.perf_counter()
    a = ACRMRILarge(folder)
    a.analyze()
    d = a.results_data(as_dict=True)
    times.append(time.perf_counter() - t0)
u = d["uniformity_module"]
values = {"piu_percent": u.get("piu"), "psg_percent": u.get("psg"),
          "slice_thickness_mm": d["slice1"].get("measured_slice_thickness_mm"),
          "lcd_total": d["low_contrast_multi_slice_module"].get("score")}
print(json.dumps({"version": md.version("pylinac"), "times": times, "values": values},
                 default=str))
"""


def peer_python(name: str, package: str) -> Path:
    """The peer's interpreter, its environment created on first use."""
    venv = PEERS / name
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", package], check=True)
    return py


def run_worker(python: Path | str, code: str, folder: Path, rounds: int) -> dict[str, object]:
    proc = subprocess.run([str(python), "-c", code, str(folder), str(rounds)],
                          capture_output=True, text=True, timeout=3600, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"{python}: {proc.stderr[-2000:]}")
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def whole_process(folder: Path, rounds: int, before: Path | None, bytecode: bool = True) -> None:
    """Whole-process medians: scanbench analyze (now, and from ``before``), hazen, pylinac."""
    import tempfile

    from wholeproc import bytecode_note, interleaved, machine, scanbench_env, with_bytecode

    cache = Path(tempfile.mkdtemp(prefix="scanbench-bench-pyc-"))

    def env(src: Path | None) -> dict[str, str]:
        e = scanbench_env(src)
        return with_bytecode(e, cache) if bytecode else e

    # the installed console script's entry (scanbench.entry since issue 15's fast path; a
    # source tree from before it has scanbench.cli only)
    cli = [sys.executable, "-c", "import sys\ntry:\n    from scanbench.entry import main\n"
           "except ImportError:\n    from scanbench.cli import main\n"
           "sys.argv[0] = 'scanbench'\nmain()", "analyze", str(folder), "--json"]
    cmds: dict[str, tuple[list[str], dict[str, str] | None]] = {
        "scanbench": (cli, env(None))}
    if before:
        cmds["before"] = (cli, env(before))
    cmds["pylinac"] = ([str(peer_python("pylinac", "pylinac")), "-c", PYLINAC, str(folder), "1"],
                       None)
    cmds["hazen"] = ([str(peer_python("hazen", "hazen")), "-c", HAZEN, str(folder), "1"], None)
    print(machine())
    print(f"ACR MRI suite on {folder.name}: {rounds} interleaved rounds, whole process, "
          f"median seconds; {bytecode_note(bytecode)}")
    try:
        med = interleaved(cmds, rounds)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    for name, m in med.items():
        print(f"{name:10s} {m:7.2f} s   {m / med['scanbench']:6.2f}x scanbench's time")


def main() -> None:
    from wholeproc import add_bytecode_option

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--whole-process", action="store_true",
                    help="time whole processes, imports included (issue 15)")
    ap.add_argument("--before", type=Path,
                    help="with --whole-process: also time scanbench from this source folder")
    add_bytecode_option(ap, "with --whole-process: ")
    args = ap.parse_args()
    folder = args.data / "mr" / "acr" / "PhilipsAchieva"
    if args.whole_process:
        whole_process(folder, args.rounds, args.before, bytecode=not args.no_bytecode)
        return
    print(f"ACR MRI suite, end to end on {folder} (11 axial slices, 256², Philips 3 T)")
    print(f"{dt.date.today()}  {platform.platform()}  {os.cpu_count()} cores  "
          f"load {os.getloadavg()[0]:.1f}  rounds {args.rounds}\n")
    runs = {
        "scanbench": run_worker(sys.executable, SCANBENCH, folder, args.rounds),
        "hazen": run_worker(peer_python("hazen", "hazen"), HAZEN, folder, args.rounds),
        "pylinac": run_worker(peer_python("pylinac", "pylinac"), PYLINAC, folder, args.rounds),
    }
    base = statistics.median(runs["scanbench"]["times"])  # type: ignore[arg-type]
    print(f"{'tool':10s} {'version':9s} {'median s':>9s} {'÷ scanbench':>12s}   PIU %   PSG %"
          "   slice mm  other")
    for name, r in runs.items():
        med = statistics.median(r["times"])  # type: ignore[arg-type]
        v: dict[str, object] = r["values"]  # type: ignore[assignment]

        def f(key: str, v: dict[str, object] = v) -> str:
            x = v.get(key)
            return f"{x:7.2f}" if isinstance(x, int | float) else f"{'—':>7s}"

        other = {k: x for k, x in v.items()
                 if k not in ("piu_percent", "psg_percent", "slice_thickness_mm")}
        print(f"{name:10s} {r['version']!s:9s} {med:9.2f} {med / base:12.2f}  {f('piu_percent')}"
              f" {f('psg_percent')}  {f('slice_thickness_mm')}   {other}")


if __name__ == "__main__":
    main()

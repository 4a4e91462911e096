"""Benchmark: how long ``scanbench demo --no-serve`` takes to prepare the fleet, by phase,
with the CPU time it used and what it made (issue 12 §5: "data preparation finishes in
a few minutes on a 2-core machine").

Runs :func:`scanbench.demo.prepare` (what the command runs, without the progress bar) in
a new temporary home and prints:

- wall time of each phase (``timings_s`` of ``<home>/demo-fleet.json``: simulate,
  ingest = storing and analysing, records, alerts, figures, scorecards, programme
  report) and in all;
- CPU seconds of this process and of its children (the simulation pool, the node's
  fork server and every job process it forked: the fork server is stopped and waited
  for at the end, so its children's CPU is counted); on a machine shared with other
  work the CPU figures are what the demo costs, the wall figures what it waited;
- the counts (QC series, clinical exams, DICOM files, jobs) and the CPU per series;
- the load average before and after (``os.getloadavg``).

    python bench/demo.py                              # the default: 365 days, periodic
    python bench/demo.py --days 70 --no-periodic --exams 10    # what the tests run
    python bench/demo.py --src /tmp/before/src        # another source tree (PYTHONPATH)

Never run as a timed test. Figures: bench/README.md, "The demo fleet".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import datetime as dt, json, multiprocessing.forkserver as fs, os, resource, sys, time
from pathlib import Path
from scanbench.demo import prepare
args = json.loads(sys.argv[1])
load0 = os.getloadavg()
t0 = time.monotonic()
s = prepare(Path(args["home"]), days=args["days"], end=dt.date.fromisoformat(args["end"]),
            workers=args["workers"], exams=args["exams"], periodic=args["periodic"])
wall = time.monotonic() - t0
fs._forkserver._stop()  # waited for: its job processes' CPU joins RUSAGE_CHILDREN
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall_s": wall, "timings_s": s.timings, "load_before": load0,
                  "load_after": os.getloadavg(),
                  "cpu_self_s": me.ru_utime + me.ru_stime,
                  "cpu_children_s": kids.ru_utime + kids.ru_stime,
                  "qc_series": s.qc_series, "clinical_exams": s.clinical_exams,
                  "files": s.files, "jobs_done": s.jobs_done, "jobs_failed": s.jobs_failed}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--end", default="2026-09-30", help="last simulated day (fixed, so that "
                    "runs simulate the same values)")
    ap.add_argument("--exams", type=int, default=300)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--no-periodic", dest="periodic", action="store_false")
    ap.add_argument("--home", type=Path, default=None, help="a new folder (default: temporary)")
    ap.add_argument("--src", type=Path, default=None,
                    help="run scanbench from this source tree (PYTHONPATH)")
    a = ap.parse_args()
    home = a.home or Path(tempfile.mkdtemp(prefix="bench-demo-")) / "home"
    env = dict(os.environ)
    if a.src is not None:
        env["PYTHONPATH"] = str(a.src.resolve())
    spec = {"home": str(home), "days": a.days, "end": a.end, "workers": a.workers,
            "exams": a.exams, "periodic": a.periodic}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"the demo failed:\n{proc.stderr[-4000:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    total_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    print(f"scanbench demo --no-serve --days {a.days} --end {a.end} --exams {a.exams}"
          f"{'' if a.periodic else ' --no-periodic'} --workers {a.workers}"
          f"{' (' + str(a.src) + ')' if a.src else ''}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical "
          f"cores, Python {platform.python_version()}; {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} "
          f"UTC; load average before {r['load_before'][0]:.1f}, after "
          f"{r['load_after'][0]:.1f} (1 min)")
    print(f"made: {r['qc_series']} QC series, {r['clinical_exams']} clinical exams, "
          f"{r['files']} DICOM files, {r['jobs_done']} jobs done, {r['jobs_failed']} failed")
    print("wall time by phase (s): " + ", ".join(f"{k} {v:.1f}"
                                                 for k, v in r["timings_s"].items()))
    print(f"wall time in all: {r['wall_s']:.1f} s ({r['wall_s'] / 60:.1f} min)")
    series = r["qc_series"] + r["clinical_exams"]
    print(f"CPU: {total_cpu:.1f} s in all (demo process {r['cpu_self_s']:.1f} s, its "
          f"children {r['cpu_children_s']:.1f} s); {1000 * total_cpu / max(1, series):.0f} ms "
          f"per QC series or exam; {total_cpu / max(1, r['wall_s']):.2f} cores busy on average")
    print(f"home: {home}")


if __name__ == "__main__":
    main()

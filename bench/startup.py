"""Benchmark: start-up, whole process — `scanbench --help`, `import scanbench` and the floor.

Each command below is run as a whole new process (wall time from ``fork`` to exit,
``time.perf_counter`` around ``subprocess.run``), INTERLEAVED: each round runs every
command once, one after the other, so that a change in machine load weighs on all
alike. One untimed round first warms the file cache. Medians (and minima) of
``--rounds`` rounds are printed, in seconds.

* ``interpreter`` — ``python -c pass``;
* ``floor: numpy + pydicom`` — ``python -c "import numpy, pydicom"``: what any
  Python DICOM analysis pays before it reads a file;
* ``floor: read PET IQ`` — the interpreter, numpy and pydicom reading every file of
  one NEMA IQ series (``dcmread`` + ``pixel_array``): the least a whole-process
  ``scanbench analyze`` of that series can take in Python;
* ``import scanbench`` — ``python -c "import scanbench"`` (target < 0.2 s);
* ``scanbench --help`` — the installed console script (target < 0.3 s);
* ``scanbench analyze PET IQ`` — ``scanbench analyze <pet_recon_2> --json`` (read,
  recognise, analyse, print the JSON).

``--src DIR`` runs scanbench from another source tree (``PYTHONPATH=DIR``, e.g. an
earlier commit unpacked with ``git archive <commit> src | tar -x -C /tmp/before``, then
``--src /tmp/before/src``), for figures before and after a change on the same machine.
``--before DIR`` instead adds the three scanbench commands run from DIR to the same
rounds (marked ``[before]``), so before and after are measured side by side.

    python bench/startup.py [--rounds 11] [--src DIR | --before DIR] [--no-bytecode]

scanbench's bytecode is cached for these runs (``wholeproc.with_bytecode``: as for an
installed package; numpy's and pydicom's are, from pip), unless ``--no-bytecode``.

Never run as a timed test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PET = REPO.parent / "shared" / "data" / "pet" / "nema-iq-test-recon" / "pet_recon_2"

READ_FLOOR = r"""
import sys, pathlib
import numpy, pydicom
for f in sorted(pathlib.Path(sys.argv[1]).iterdir()):
    pydicom.dcmread(f).pixel_array
"""


def commands(py: str, pet: Path) -> dict[str, list[str]]:
    # the installed console script's entry (scanbench.entry since the `analyze --json`
    # fast path; a source tree from before it has scanbench.cli only)
    cli = [py, "-c", "import sys\ntry:\n    from scanbench.entry import main\n"
                     "except ImportError:\n    from scanbench.cli import main\n"
                     "sys.argv[0] = 'scanbench'\nmain()\n"]
    return {
        "interpreter": [py, "-c", "pass"],
        "floor: numpy + pydicom": [py, "-c", "import numpy, pydicom"],
        "floor: read PET IQ": [py, "-c", READ_FLOOR, str(pet)],
        "import scanbench": [py, "-c", "import scanbench"],
        "scanbench --help": [*cli, "--help"],
        "scanbench analyze PET IQ": [*cli, "analyze", str(pet), "--json"],
    }


def run(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    took = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[:3]}: exit {done.returncode}: {done.stderr[-500:]!r}")
    return took


def main() -> None:
    from wholeproc import add_bytecode_option

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=11, help="timed rounds (median reported)")
    ap.add_argument("--src", type=Path, help="run scanbench from this source folder")
    ap.add_argument("--pet", type=Path, default=PET, help="the PET IQ series folder")
    ap.add_argument("--before", type=Path,
                    help="also run the scanbench commands from this source folder")
    add_bytecode_option(ap)
    args = ap.parse_args()
    import tempfile

    from wholeproc import bytecode_note, with_bytecode

    cache = Path(tempfile.mkdtemp(prefix="scanbench-bench-pyc-"))
    base = dict(os.environ) if args.no_bytecode else with_bytecode(os.environ, cache)
    env = dict(base)
    if args.src:
        env["PYTHONPATH"] = str(args.src.resolve())
    cmds = {name: (cmd, env) for name, cmd in commands(sys.executable, args.pet).items()}
    if args.before:
        old_env = dict(base, PYTHONPATH=str(args.before.resolve()))
        for name, (cmd, _) in list(cmds.items()):
            if "scanbench" in name:
                cmds[f"{name} [before]"] = (cmd, old_env)
    for cmd, cmd_env in cmds.values():  # untimed: file cache, .pyc files
        run(cmd, cmd_env)
    times: dict[str, list[float]] = {name: [] for name in cmds}
    for _ in range(args.rounds):
        for name, (cmd, cmd_env) in cmds.items():
            times[name].append(run(cmd, cmd_env))
    print(f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
          f"{os.cpu_count()} logical cores, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, Python {platform.python_version()}"
          f"{f', scanbench from {args.src}' if args.src else ''}; "
          f"{args.rounds} interleaved rounds; {bytecode_note(not args.no_bytecode)}")
    print(f"{'command':37s} {'median s':>9s} {'min s':>7s}")
    for name, ts in times.items():
        print(f"{name:37s} {statistics.median(ts):9.3f} {min(ts):7.3f}")
    import shutil

    shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()

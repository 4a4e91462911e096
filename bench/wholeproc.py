"""Whole-process timing shared by the benchmarks (issue 15): each tool is a new process.

What a user waits for: from starting the interpreter to its exit, imports included
(``time.perf_counter`` around ``subprocess.run``). The commands are run INTERLEAVED:
each round runs every command once, one after the other, so that a change in machine
load weighs on all alike; one untimed round first warms the file cache (and writes
``.pyc`` files). Each figure is the median of the timed rounds.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def run_once(cmd: Sequence[str], env: Mapping[str, str] | None = None) -> float:
    """Seconds one command takes as a whole process; RuntimeError when it fails."""
    t0 = time.perf_counter()
    done = subprocess.run(list(cmd), env=dict(env) if env is not None else None,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - t0
    if done.returncode not in (0,):
        raise RuntimeError(f"{' '.join(cmd)[:200]}: exit {done.returncode}: "
                           f"{done.stderr[-800:]}")
    return took


def interleaved(commands: Mapping[str, tuple[Sequence[str], Mapping[str, str] | None]],
                rounds: int) -> dict[str, float]:
    """Median seconds of each command over ``rounds`` interleaved rounds (after one
    untimed round)."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for rnd in range(rounds + 1):
        for name, (cmd, env) in commands.items():
            took = run_once(cmd, env)
            if rnd:
                times[name].append(took)
    return {name: statistics.median(ts) for name, ts in times.items()}


def scanbench_env(src: Path | None) -> dict[str, str]:
    """The environment that runs scanbench from ``src`` (an earlier source tree, for a
    before/after figure) instead of the installed one."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src.resolve())
    return env


def with_bytecode(env: Mapping[str, str], cache: Path) -> dict[str, str]:
    """``env`` with Python's bytecode cache on, kept in ``cache``.

    Why: the peers run from their environments' compiled ``.pyc`` files (pip writes them
    at install), as an installed scanbench would; a source tree run with
    ``PYTHONDONTWRITEBYTECODE=1`` (set on the benchmark machine) compiles every scanbench
    module in every process instead (about 0.08 s of an ACR MRI run, 0.07 s of a PET
    folder). With the cache on, the untimed first round writes the ``.pyc`` files and the
    timed rounds read them, as :func:`interleaved` intends. ``cache``
    (``PYTHONPYCACHEPREFIX``) keeps them out of the source trees; it mirrors absolute
    paths, so two trees never share one."""
    out = dict(env)
    out.pop("PYTHONDONTWRITEBYTECODE", None)
    out["PYTHONPYCACHEPREFIX"] = str(cache)
    return out


def add_bytecode_option(ap: argparse.ArgumentParser, when: str = "") -> None:
    """The benchmarks' ``--no-bytecode`` option (``when``: e.g. "with --whole-process: ")."""
    ap.add_argument("--no-bytecode", action="store_true",
                    help=f"{when}run scanbench with the environment's bytecode setting "
                    "(PYTHONDONTWRITEBYTECODE=1 compiles every module in every run) instead "
                    "of cached .pyc files as an installed package has")


def bytecode_note(cached: bool) -> str:
    """How scanbench's bytecode was treated, for the printed figures."""
    if cached:
        return "scanbench bytecode cached (as installed)"
    return ("scanbench bytecode as the environment says (PYTHONDONTWRITEBYTECODE="
            f"{os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r})")


def machine() -> str:
    """Date, machine, cores and load, for the printed figures."""
    import datetime as dt

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {cpu}, "
            f"{os.cpu_count()} logical cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, load average {load}")

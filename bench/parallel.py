"""Automatic analysis of a folder of N PET IQ series: 1 worker against 2 (issue 15).

Simulates 8 NEMA NU 2-2018 image-quality series (``scanbench simulate pet-iq``, seeds
1-8, each its own study) into a temporary folder, then times ``scanbench analyze
FOLDER --json --workers W`` as a whole process (``time.perf_counter`` around
``subprocess.run``) for W = 1 and 2, interleaved rounds after one untimed round,
median. Peak memory: the sum over the process tree of each process's own VmHWM
(``/proc/PID/status``, sampled every 10 ms; a forked worker counts the pages it
shares with the parent again, so the sum is an upper bound) for N = 1, 4 and 8 series.
Checks that both runs print the same JSON. Never a timed test: figures only.

    python bench/parallel.py [--rounds 7] [--series 8] [--before DIR/src] [--no-bytecode]

scanbench's bytecode is cached for these runs (``wholeproc.with_bytecode``: as for an
installed package), unless ``--no-bytecode``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCANBENCH = [sys.executable, "-m", "scanbench"]


def _simulate(root: Path, n: int) -> list[Path]:
    folders = []
    for seed in range(1, n + 1):
        out = root / f"pet_iq_{seed}"
        subprocess.run([*SCANBENCH, "simulate", "pet-iq", "-o", str(out), "--seed", str(seed)],
                       check=True, capture_output=True)
        folders.append(out)
    return folders


def _hwm_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kib(pid: int) -> int:
    """Proportional set size: pages shared after fork counted once over the tree."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def run(folder: Path, workers: int, track_memory: bool = False,
        env: dict[str, str] | None = None) -> tuple[float, str, float, float, float]:
    """(seconds, JSON printed, peak MiB of the tree as the sum of per-process VmHWM, the
    largest sampled sum of the tree's Pss in MiB, CPU seconds of the tree: user + system
    of the process and the workers it waited for)."""
    cmd = [*SCANBENCH, "analyze", str(folder), "--json", "--workers", str(workers)]
    peaks: dict[int, int] = {}
    pss = 0
    with tempfile.TemporaryFile(mode="w+") as out_file:  # a pipe would fill while we sample
        cpu0 = _children_cpu()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out_file, stderr=subprocess.DEVNULL, text=True,
                                env=env)
        while track_memory and proc.poll() is None:
            todo, total = [proc.pid], 0
            while todo:
                pid = todo.pop()
                peaks[pid] = max(peaks.get(pid, 0), _hwm_kib(pid))
                total += _pss_kib(pid)
                todo.extend(_children(pid))
            pss = max(pss, total)
            time.sleep(0.01)
        proc.wait()
        seconds = time.perf_counter() - t0
        cpu = _children_cpu() - cpu0
        out_file.seek(0)
        out = out_file.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}")
    return seconds, out, sum(peaks.values()) / 1024, pss / 1024, cpu


def _children_cpu() -> float:
    """User + system seconds of this process's waited-for children and their own."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> None:
    from wholeproc import add_bytecode_option, bytecode_note, scanbench_env, with_bytecode

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--series", type=int, default=8)
    ap.add_argument("--before", type=Path,
                    help="also time scanbench from this source folder (git archive <commit> "
                    "src | tar -x -C DIR, then --before DIR/src) in the same rounds")
    add_bytecode_option(ap)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="scanbench-parallel-") as tmp:
        root = Path(tmp)
        folders = _simulate(root / "all", args.series)

        def env(src: Path | None) -> dict[str, str]:
            e = scanbench_env(src)
            return e if args.no_bytecode else with_bytecode(e, root / "pyc")

        trees = {"now": env(None)} | ({"before": env(args.before)} if args.before else {})
        for tree_env in trees.values():
            for w in (1, 2):  # untimed round (page cache, bytecode)
                run(root / "all", w, env=tree_env)
        times: dict[tuple[str, int], list[float]] = {(t, w): [] for t in trees for w in (1, 2)}
        cpus: dict[tuple[str, int], list[float]] = {(t, w): [] for t in trees for w in (1, 2)}
        outputs: dict[tuple[str, int], str] = {}
        for _ in range(args.rounds):
            for tree, tree_env in trees.items():
                for w in (1, 2):
                    t, out, _, _, cpu = run(root / "all", w, env=tree_env)
                    times[tree, w].append(t)
                    cpus[tree, w].append(cpu)
                    outputs[tree, w] = out
        print(f"{args.series} PET IQ series, whole process, median of {args.rounds} "
              f"interleaved rounds; {bytecode_note(not args.no_bytecode)}")
        for tree in trees:
            same = outputs[tree, 1] == outputs[tree, 2]
            t1, t2 = statistics.median(times[tree, 1]), statistics.median(times[tree, 2])
            print(f"  {tree:6s} --workers 1: {t1:.2f} s   --workers 2: {t2:.2f} s   ratio "
                  f"{t2 / t1:.3f} (target <= 0.60); same JSON: {same}")
            # CPU seconds do not depend on how much of the cores other processes take: more
            # with two workers is work the split adds (each worker's first-use imports).
            print(f"         CPU seconds of the process tree (median): --workers 1: "
                  f"{statistics.median(cpus[tree, 1]):.2f}   --workers 2: "
                  f"{statistics.median(cpus[tree, 2]):.2f}")
        if args.before:
            print(f"  same JSON now and before: {outputs['now', 1] == outputs['before', 1]}")
        print("peak memory of the process tree: sum of per-process VmHWM (forked pages counted "
              "in each process), and the largest sampled sum of Pss:")
        for n in sorted({1, 4, args.series}):
            sub = root / f"n{n}"
            sub.mkdir()
            for f in folders[:n]:  # hard links: the same files, no copy (os.walk skips symlinks)
                (sub / f.name).mkdir()
                for file in f.iterdir():
                    os.link(file, sub / f.name / file.name)
            runs = {w: [run(sub, w, track_memory=True, env=trees["now"]) for _ in range(3)]
                    for w in (1, 2)}
            hwm = {w: statistics.median(r[2] for r in runs[w]) for w in runs}
            pss = {w: statistics.median(r[3] for r in runs[w]) for w in runs}
            print(f"  N = {n}: --workers 1 {hwm[1]:.0f} MiB (Pss {pss[1]:.0f}), "
                  f"--workers 2 {hwm[2]:.0f} MiB (Pss {pss[2]:.0f})")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical "
          f"cores, Python {platform.python_version()}; load average "
          + " ".join(f"{x:.2f}" for x in os.getloadavg())
          + time.strftime("; %Y-%m-%d %H:%M UTC", time.gmtime()))


if __name__ == "__main__":
    main()

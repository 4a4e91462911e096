"""Clinical image quality per exam vs the time to receive the exam (issue 16, speed).

    .venv/bin/python bench/clinical_iq.py [--ct-slices 500] [--repeat 2] [--no-receive]

Two exams of virtual patients, written as DICOM files:

- a 500-slice 512² axial CT series (``scanbench simulate ct-patient``, 2.5 mm slices,
  256 MB): ``ct.clinical_global_noise``;
- a whole-body FDG PET/CT (``scanbench simulate pet-patient`` defaults: PET 4 mm voxels,
  680 mm, 170 slices of 106²; CT 512², 3 mm, 227 slices): ``pet.clinical_liver_noise``.

Analysis time: ``scanbench.api.analyze_paths`` on the exam's folder with the analysis
named, i.e. reading the files and measuring (best of ``--repeat``). The CT series is
measured in one process (the path before) and in two
(:func:`scanbench.quality.ct_noise.measure_slices`, ``SCANBENCH_CT_NOISE_PROCESSES``),
alternating run by run; the node's default is this process and one per idle core
(:func:`scanbench.quality.ct_noise.idle_share`). The CT's last row
is the node's whole series job (:func:`scanbench.service.jobs.run_job`, in this
process): read, the phantom analyses' detectors deciding it is a patient's series, then
the CT global noise. CPU time counts the helper processes too. Receive
time: the same files sent by dcmtk's ``storescu`` over one association on loopback to
``scanbench node`` (each instance fsync'd and indexed before the reply, as in
``bench/ingest.py``, whose receiver is reused), from storescu's start to its exit. The
assumption: loopback is the fastest a node receives; a real network is slower, so the
ratio analysis / receive measured here is the worst case.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.dcm"))


def _cpu() -> float:
    """CPU seconds of this process and of its ended children (the CT noise helpers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@contextlib.contextmanager
def _processes(n: int | None) -> Iterator[None]:
    """``SCANBENCH_CT_NOISE_PROCESSES`` set to ``n`` (None: the default) for a block."""
    from scanbench.quality.ct_noise import ENV_PROCESSES

    before = os.environ.pop(ENV_PROCESSES, None)
    if n is not None:
        os.environ[ENV_PROCESSES] = str(n)
    try:
        yield
    finally:
        os.environ.pop(ENV_PROCESSES, None)
        if before is not None:
            os.environ[ENV_PROCESSES] = before


def _job(folder: Path, repeat: int) -> tuple[float, float, float]:
    """(wall s, CPU s, of which phantom classification s) of the node's series job on
    the folder's one series, best of ``repeat``; the classification timed apart as the
    job does it (``analyze_series_list`` without an analysis, on the read series)."""
    import pydicom

    from scanbench import dicom
    from scanbench.api import analyze_series_list
    from scanbench.service.jobs import JobSpec, run_job

    files = tuple(str(f) for f in _files(folder))
    uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
    spec = JobSpec(job_id=1, kind="series", target_uid=uid, files=files)
    best = (float("inf"), 0.0)
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), _cpu()
        out = run_job(spec)
        best = min(best, (time.perf_counter() - t0, _cpu() - c0))
        if not any(r.analysis == "ct.clinical_global_noise" for r in out.results):
            raise SystemExit(f"the node's job did not measure the CT: {out.notes}")
    series = dicom.read(list(files)).series
    t0 = time.perf_counter()
    analyze_series_list(series, only={uid})
    return best[0], best[1], time.perf_counter() - t0


def _analyse(folder: Path, analysis: str, repeat: int) -> tuple[float, object]:
    from scanbench.api import analyze_paths

    best, rep = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        rep = analyze_paths([folder], analysis=analysis, workers=1)
        best = min(best, time.perf_counter() - t0)
        if rep.failures:
            raise SystemExit(f"{analysis}: {rep.failures}")
    return best, rep


def _split(folder: Path, analysis: str) -> tuple[float, float, float]:
    """(read s, measure s, measure CPU s): the files read into series, then the analysis
    on them (CPU time: what the measurement costs on an unloaded core)."""
    from scanbench.analysis import registry
    from scanbench.dicom.read import read

    t0 = time.perf_counter()
    series = read(folder).series
    t_read = time.perf_counter() - t0
    a = registry.get(analysis)
    t0, c0 = time.perf_counter(), _cpu()
    if hasattr(a, "group"):
        for g in a.group(series):
            a.run_group(g)  # type: ignore[attr-defined]
    else:
        for s in series:
            a.run(s)
    return t_read, time.perf_counter() - t0, _cpu() - c0


def _receive(folder: Path, files: list[Path], repeat: int) -> float:
    from ingest import run_node  # bench/ingest.py

    env = dict(os.environ)
    return min(run_node(folder, files, env) for _ in range(repeat))


def _values(rep: object) -> list[tuple[str, str, str]]:
    return [(m.name, str(m.labels), repr(m.value)) for r in rep.results  # type: ignore[attr-defined]
            for m in r.measurements]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ct-slices", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--no-receive", action="store_true", help="skip the C-STORE timing")
    args = ap.parse_args()
    from scanbench.simulate.ct_patient import VirtualPatient, write_ct_patient
    from scanbench.simulate.pet_patient import PetPatient, write_pet_patient

    with tempfile.TemporaryDirectory(prefix="sb-cliq-") as tmp:
        root = Path(tmp)
        write_ct_patient(root / "ct", VirtualPatient(slices=args.ct_slices, slice_mm=2.5), 1)
        truth = write_pet_patient(root / "petct", PetPatient(), 2)
        rows: list[tuple[Any, ...]] = []
        ct_name = f"CT {args.ct_slices} × 512²"
        from scanbench.quality.ct_noise import processes

        # the CT in one and in two processes, alternating run by run (the other sessions'
        # load moves from minute to minute); each variant's best run
        best: dict[int, tuple[Any, ...]] = {}
        for _ in range(args.repeat):
            for procs in (1, 2):
                with _processes(procs):
                    t_an, rep = _analyse(root / "ct", "ct.clinical_global_noise", 1)
                    split = _split(root / "ct", "ct.clinical_global_noise")
                if procs not in best or t_an < best[procs][0]:
                    best[procs] = (t_an, rep, *split)
        files = _files(root / "ct")
        mb = sum(f.stat().st_size for f in files) / 1e6
        t_rx = float("nan") if args.no_receive else _receive(root / "rx", files, args.repeat)
        for procs, label in ((1, "one process"), (2, "2 processes")):
            t_an, rep, t_read, t_measure, cpu = best[procs]
            rows.append((f"{ct_name}, {label}", len(files), mb, t_an, t_rx, t_read, t_measure,
                         cpu, rep))
        files = _files(root / "petct")
        mb = sum(f.stat().st_size for f in files) / 1e6
        t_an, rep = _analyse(root / "petct", "pet.clinical_liver_noise", args.repeat)
        t_read, t_measure, cpu = _split(root / "petct", "pet.clinical_liver_noise")
        t_rx_pet = float("nan") if args.no_receive else _receive(root / "rx", files,
                                                                   args.repeat)
        rows.append(("whole-body PET/CT", len(files), mb, t_an, t_rx_pet, t_read, t_measure,
                     cpu, rep))
        default_procs = processes()
        t_job, cpu_job, t_classify = _job(root / "ct", args.repeat)
        print(f"load: {os.getloadavg()}")
        print("| exam | files | MB | analysis (read + measure) s | of which read / measure s "
              "(measure CPU s) | receive (C-STORE, loopback) s | analysis / receive |")
        print("|---|---|---|---|---|---|---|")
        for name, n, mb, t_an, t_rx, t_read, t_measure, cpu, _rep in rows:
            print(f"| {name} | {n} | {mb:.0f} | {t_an:.1f} | {t_read:.1f} / {t_measure:.1f} "
                  f"({cpu:.1f}) | {t_rx:.1f} | {t_an / t_rx:.2f} |")
        t_rx = rows[0][4]
        print(f"| {ct_name}, the node's whole series job (read, phantom classification "
              f"{t_classify:.1f} s, measure in {default_procs} process(es), the default at "
              f"this load) | {rows[0][1]} | {rows[0][2]:.0f} | {t_job:.1f} "
              f"(CPU {cpu_job:.1f}) | | {t_rx:.1f} | {t_job / t_rx:.2f} |")
        print("CT values the same in one and in several processes:",
              _values(rows[0][8]) == _values(rows[1][8]))
        pet_rep = rows[2][8]
        r = pet_rep.results[0]
        print("liver:", {m.name: round(m.value, 3) for m in r.measurements},
              "truth SUV", truth["liver_suv_mean"], "COV 3 cm",
              round(truth["liver_cov_3cm_expected_percent"], 2))


if __name__ == "__main__":
    main()

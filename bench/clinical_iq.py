"""Clinical image quality per exam vs the time to receive the exam (issue 16, speed).

    .venv/bin/python bench/clinical_iq.py [--ct-slices 500] [--repeat 2] [--no-receive]

Two exams of virtual patients, written as DICOM files:

- a 500-slice 512² axial CT series (``scanbench simulate ct-patient``, 2.5 mm slices,
  256 MB): ``ct.clinical_global_noise``;
- a whole-body FDG PET/CT (``scanbench simulate pet-patient`` defaults: PET 4 mm voxels,
  680 mm, 170 slices of 106²; CT 512², 3 mm, 227 slices): ``pet.clinical_liver_noise``.

Analysis time: ``scanbench.api.analyze_paths`` on the exam's folder with the analysis
named, i.e. reading the files and measuring (one process, best of ``--repeat``). Receive
time: the same files sent by dcmtk's ``storescu`` over one association on loopback to
``scanbench node`` (each instance fsync'd and indexed before the reply, as in
``bench/ingest.py``, whose receiver is reused), from storescu's start to its exit. The
assumption: loopback is the fastest a node receives; a real network is slower, so the
ratio analysis / receive measured here is the worst case.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.dcm"))


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
    t0, c0 = time.perf_counter(), time.process_time()
    if hasattr(a, "group"):
        for g in a.group(series):
            a.run_group(g)  # type: ignore[attr-defined]
    else:
        for s in series:
            a.run(s)
    return t_read, time.perf_counter() - t0, time.process_time() - c0


def _receive(folder: Path, files: list[Path], repeat: int) -> float:
    from ingest import run_node  # bench/ingest.py

    env = dict(os.environ)
    return min(run_node(folder, files, env) for _ in range(repeat))


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
        rows = []
        for name, folder, analysis in (
                (f"CT {args.ct_slices} × 512²", root / "ct", "ct.clinical_global_noise"),
                ("whole-body PET/CT", root / "petct", "pet.clinical_liver_noise")):
            files = _files(folder)
            mb = sum(f.stat().st_size for f in files) / 1e6
            t_an, rep = _analyse(folder, analysis, args.repeat)
            t_read, t_measure, cpu = _split(folder, analysis)
            t_rx = float("nan") if args.no_receive else _receive(root / "rx", files,
                                                                   args.repeat)
            rows.append((name, len(files), mb, t_an, t_rx, t_read, t_measure, cpu, rep))
        print(f"load: {os.getloadavg()}")
        print("| exam | files | MB | analysis (read + measure) s | of which read / measure s "
              "(measure CPU s) | receive (C-STORE, loopback) s | analysis / receive |")
        print("|---|---|---|---|---|---|---|")
        for name, n, mb, t_an, t_rx, t_read, t_measure, cpu, _rep in rows:
            print(f"| {name} | {n} | {mb:.0f} | {t_an:.1f} | {t_read:.1f} / {t_measure:.1f} "
                  f"({cpu:.1f}) | {t_rx:.1f} | {t_an / t_rx:.2f} |")
        pet_rep = rows[1][8]
        r = pet_rep.results[0]  # type: ignore[attr-defined]
        print("liver:", {m.name: round(m.value, 3) for m in r.measurements},
              "truth SUV", truth["liver_suv_mean"], "COV 3 cm",
              round(truth["liver_cov_3cm_expected_percent"], 2))


if __name__ == "__main__":
    main()

"""Benchmark: NEMA NU 2-2018 count-rate analysis of a 30-frame, 2 m axial-FOV acquisition.

End to end: the raw-mode virtual scanner writes the 30 prompt + delayed sinogram
frames of the scatter phantom on a 2 m total-body geometry (``total-body-200``:
672 rings, full acceptance, SSRB planes compressed 5:1, 140 views x 240 bins),
then ``scanbench.analyze_paths`` reads the HDF5 file and runs
``pet.nema_nu2_2018.count_rate`` (central 65 cm, and every plane), frame by
frame. Prints wall time per phase, the analysis's peak of traced Python/numpy
memory (tracemalloc), the process's peak resident set, the file size, and the
analysis against the simulator's truth.

No open tool implements the NEMA count-rate sinogram method (STANDARDS.md A.3:
the public reference is a MATLAB script), so there is no peer to time
side by side; the figures stand alone.

    python bench/pet_raw.py [--frames 30] [--out /tmp/scanbench-bench-raw [--reuse]]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--scanner", default="total-body-200")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--reuse", action="store_true",
                    help="Analyse the file already in --out instead of simulating it again.")
    args = ap.parse_args()

    from scanbench import __version__
    from scanbench.api import analyze_paths
    from scanbench.simulate.pet_raw import RAW_SCANNER_MODELS, simulate_count_rate

    model = RAW_SCANNER_MODELS[args.scanner]
    out = args.out or Path(tempfile.mkdtemp(prefix="scanbench-bench-raw-"))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "count_rate_2m.h5"
    lay = model.layout()
    print(f"scanbench {__version__}; {platform.python_implementation()} "
          f"{platform.python_version()}; {os.cpu_count()} CPUs; {dt.date.today()}")
    print(f"scanner {args.scanner}: AFOV {model.axial_fov_mm:.0f} mm, MRD "
          f"{model.max_ring_difference}, sinogram {lay.n_planes} planes x {lay.n_views} views x "
          f"{lay.n_bins} bins; {args.frames} frames + background")

    truth_path = path.with_name(path.stem + "_truth.json")
    if args.reuse and path.is_file() and truth_path.is_file():
        truth = json.loads(truth_path.read_text())
        print(f"reusing {path} ({path.stat().st_size / 1e6:.0f} MB)")
    else:
        t = time.perf_counter()
        truth = simulate_count_rate(path, scanner=model, frames=args.frames, frame_s=120.0,
                                    gap_s=900.0, start_activity_mbq=2200.0)
        t_sim = time.perf_counter() - t
        size_mb = path.stat().st_size / 1e6
        print(f"simulate + write     {t_sim:8.1f} s   file {size_mb:.0f} MB")

    for label, params in (("central 65 cm", {}), ("all planes", {"central_axial_mm": 0})):
        tracemalloc.start()
        t = time.perf_counter()
        rep = analyze_paths([path], params=params)
        t_ana = time.perf_counter() - t
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        if rep.failures:
            sys.exit(f"analysis failed: {rep.failures}")
        r = rep.results[0]
        necr = r.get("peak_necr_kcps").value
        conc = r.get("activity_at_peak_necr_kbq_ml").value
        sf = r.get("scatter_fraction_percent", activity="peak_necr").value
        print(f"analyse ({label:13s}) {t_ana:6.1f} s   traced peak {peak / 1e6:7.0f} MB   "
              f"peak NECR {necr:8.1f} kcps at {conc:6.2f} kBq/mL, SF {sf:5.2f} %")
    print(f"truth (all planes)             peak NECR {truth['peak_necr_kcps']:8.1f} kcps at "
          f"{truth['activity_at_peak_necr_kbq_ml']:6.2f} kBq/mL, SF "
          f"{truth['frames'][truth['peak_necr_frame']]['scatter_fraction_percent']:5.2f} %")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak resident set {rss:.0f} MB (simulation included)")
    if args.out is None:
        for p in out.iterdir():
            p.unlink()
        out.rmdir()


if __name__ == "__main__":
    main()

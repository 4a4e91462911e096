"""The CT phantom detectors on a virtual patient's series: what the node's classification
costs before it calls a series a patient's (issue 16, speed).

    .venv/bin/python bench/ct_detect.py [--slices 500] [--repeat 3] [--before SRC] [--padded]

Writes the virtual patient of ``bench/clinical_iq.py`` (``scanbench simulate ct-patient``:
330 × 240 mm abdomen, 500 slices of 512², 2.5 mm) once, then times ``detect`` of every CT
analysis of the registry on it, in a fresh process per tree: the first call of a process
(imports, numba's kernels from its disk cache) apart, then the best of ``--repeat`` calls
with the series' memo cleared each time (wall and CPU seconds, per detector). With
``--before SRC`` (a ``src`` folder of another tree, e.g. ``git archive <commit> src | tar
-x -C /tmp/before``) the two trees are run alternately, ``--rounds`` times, and the
detectors' confidences compared. ``--padded``: the same series with −3024 HU outside
its reconstruction circle (in memory), as most scanners write a patient's series. Two
cores shared with other sessions: the load average is printed; compare the trees within
one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

_CHILD = r"""
import json, sys, time
from pathlib import Path
t0 = time.perf_counter(); c0 = time.process_time()
from scanbench import dicom
from scanbench.analysis import registry
series = dicom.read([Path(sys.argv[1])]).series[0]
if sys.argv[3] == "padded":  # -3024 HU outside the reconstruction circle, as scanners write
    import numpy as np
    v = np.array(series.voxels)
    n = v.shape[1]
    yy, xx = np.mgrid[:n, :n]
    v[:, np.hypot(yy - (n - 1) / 2, xx - (n - 1) / 2) > n / 2 - 1] = -3024.0
    series.voxels = v
analyses = sorted(registry.all_analyses("CT").items())
t_read = time.perf_counter() - t0
def once():
    series.derived.clear()
    out = {}
    w0, c0 = time.perf_counter(), time.process_time()
    for key, a in analyses:
        t = time.perf_counter()
        out[key] = (float(a.detect(series)), time.perf_counter() - t)
    return out, time.perf_counter() - w0, time.process_time() - c0
first = once()
best = min((once() for _ in range(int(sys.argv[2]))), key=lambda r: r[1])
print(json.dumps({"first": first[1:], "best": best[1:],
                  "per": {k: v[1] for k, v in best[0].items()},
                  "conf": {k: v[0] for k, v in best[0].items()}}))
"""


def _run(src: str, folder: Path, repeat: int, padded: bool) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=src)
    out = subprocess.run([sys.executable, "-c", _CHILD, str(folder), str(repeat),
                          "padded" if padded else "plain"], env=env,
                         capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slices", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--before", help="src folder of the tree to compare with")
    ap.add_argument("--padded", action="store_true",
                    help="-3024 HU outside the reconstruction circle (most scanners write "
                         "such padding; the virtual patient has none)")
    args = ap.parse_args()
    here = str(Path(__file__).resolve().parent.parent / "src")
    trees = [("now", here)] + ([("before", args.before)] if args.before else [])
    from scanbench.simulate.ct_patient import VirtualPatient, write_ct_patient

    with tempfile.TemporaryDirectory(prefix="sb-ctdet-") as tmp:
        folder = Path(tmp) / "ct"
        write_ct_patient(folder, VirtualPatient(slices=args.slices, slice_mm=2.5), 1)
        conf: dict[str, object] = {}
        for r in range(args.rounds):
            for name, src in (trees if r % 2 == 0 else trees[::-1]):
                res = _run(src, folder, args.repeat, args.padded)
                (fw, fc), (bw, bc) = res["first"], res["best"]
                per = " ".join(f"{k.removeprefix('ct.')} {v:.3f}"
                               for k, v in res["per"].items() if v >= 0.0005)
                print(f"round {r + 1} {name}: best {bw:.3f} s (CPU {bc:.3f} s), first call "
                      f"{fw:.3f} s (CPU {fc:.3f} s); per detector s: {per}; "
                      f"load {os.getloadavg()[0]:.2f}", flush=True)
                conf.setdefault(name, res["conf"])
        if len(conf) == 2:
            print("confidences the same in both trees:", conf["now"] == conf["before"],
                  conf["now"])
        else:
            print("confidences:", conf["now"])


if __name__ == "__main__":
    main()

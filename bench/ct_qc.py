"""Benchmark and cross-check: CT water QC, NPS and MTF (issue 3, part A).

1. **NPS against pylinac** (PyPI, ``pylinac.core.nps``; its own virtual
   environment ``bench/.peers/pylinac-nps``, created on first use, run as a
   worker process so that imports are excluded from the timings): the same
   ROIs (those ct.nps places in the real CatPhan CTP486 slices and in a
   simulated water phantom) go to scanbench's ``nps_2d(detrend="mean")`` and to
   pylinac's ``noise_power_spectrum_2d``. Both implement ICRU 87 eq. 11.1 with
   the ROI mean removed, so the 2-D spectra must agree to rounding; the script
   prints the largest relative difference. The 1-D summaries differ by
   definition: pylinac's ``average_power`` is a position on a 0..1 axis over
   its radial bins (integer-truncated radii out to the corner of the 2-D
   spectrum, beyond Nyquist); scanbench's mean frequency is in mm⁻¹ over rings
   centred on the frequency grid up to Nyquist. The script converts pylinac's
   value to mm⁻¹ (× (bins − 1) / (N·Δx)) and prints both.
2. **Times** (median of rounds, interleaved): scanbench ct.water, ct.nps and
   ct.mtf end to end on the real series (read excluded), and the 2-D NPS
   computation alone in both tools.

    python bench/ct_qc.py [--rounds 5] [--data ../shared/data]

Never run as a timed test.
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
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PEER_VENV = REPO / "bench" / ".peers" / "pylinac-nps"

PEER_SCRIPT = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import importlib.metadata as md
import numpy as np
from pylinac.core.nps import noise_power_spectrum_2d, noise_power_spectrum_1d, average_power
out, sys.stdout = sys.stdout, sys.stderr
print(json.dumps({"versions": {p: md.version(p) for p in ("pylinac", "numpy")}}), file=out,
      flush=True)
for line in sys.stdin:
    req = json.loads(line)
    rois = np.load(req["rois"])
    t0 = time.perf_counter()
    nps2d = noise_power_spectrum_2d(req["pixel_mm"], list(rois))
    n1 = noise_power_spectrum_1d(nps2d)
    avg = float(average_power(n1))
    seconds = time.perf_counter() - t0
    np.save(req["out"], nps2d)
    print(json.dumps({"seconds": seconds, "average_power": avg, "bins": len(n1)}), file=out,
          flush=True)
"""


def ensure_peer() -> Path:
    py = PEER_VENV / "bin" / "python"
    if not py.exists():
        print(f"creating {PEER_VENV} with pylinac (first run only) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "pylinac"], check=True)
    return py


class Peer:
    def __init__(self, py: Path) -> None:
        self.proc = subprocess.Popen([str(py), "-c", PEER_SCRIPT], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.versions = json.loads(self.proc.stdout.readline())["versions"]

    def nps(self, rois_path: Path, pixel_mm: float, out: Path) -> dict[str, float]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"rois": str(rois_path), "pixel_mm": pixel_mm,
                                          "out": str(out)}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def nps_rois(series: object) -> tuple[np.ndarray, float]:
    """The ROIs ct.nps places (same placement code), as an array."""
    from scanbench.analysis.ct.common import find_section, uniform_radius
    from scanbench.analysis.ct.nps import roi_corners

    s = series  # a scanbench Series
    _dz, dy, dx = s.spacing  # type: ignore[attr-defined]
    n = int(np.clip(2 * round(32.0 / dx / 2), 16, 256))
    rois = []
    for img in np.asarray(s.voxels, dtype=np.float64):  # type: ignore[attr-defined]
        sec = find_section(img, (dy, dx))
        r_u, _ = uniform_radius(img, sec, (dy, dx))
        for y0, x0 in roi_corners(sec.centre_yx, r_u - 10.0, dx, n):
            rois.append(img[y0:y0 + n, x0:x0 + n])
    return np.asarray(rois), dx


def timed(fn: object, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = ap.parse_args()

    from scanbench.analysis.ct.nps import nps_2d
    from scanbench.analysis.registry import get
    from scanbench.dicom.read import read
    from scanbench.simulate.ct import CtScannerModel, render_water

    ctp486 = read([args.data / "ct/catphan/CTP486"]).series[0]
    wire = read([args.data / "ct/catphan/Wire_FOV50"]).series[0]
    model = CtScannerModel(noise_hu=8.0)
    vol, _ = render_water(model, pixel_mm=0.49, n_slices=10, seed=1, supersample=1)
    water = vol.to_series(model)

    print(f"machine  {platform.machine()} {os.cpu_count()} cores, {platform.python_version()}, "
          f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
    print(f"scanbench {md.version('scanbench')}, numpy {np.__version__}")
    peer = Peer(ensure_peer())
    print(f"peer     pylinac {peer.versions['pylinac']} (numpy {peer.versions['numpy']})")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, series in (("CTP486 (real, 3 slices)", ctp486),
                                 ("water (simulated, 10 slices)", water)):
                rois, px = nps_rois(series)
                rp, op = Path(tmp) / "rois.npy", Path(tmp) / "nps.npy"
                np.save(rp, rois)
                ours = nps_2d(rois, px, detrend="mean")
                theirs_info = peer.nps(rp, px, op)
                theirs = np.load(op)
                rel = float(np.max(np.abs(ours.nps_2d - theirs)) / np.max(theirs))
                n = rois.shape[1]
                avg_mm = theirs_info["average_power"] * (theirs_info["bins"] - 1) / (n * px)
                t_ours = timed(lambda r=rois, p=px: nps_2d(r, p, detrend="mean"), args.rounds)
                t_theirs = statistics.median(peer.nps(rp, px, op)["seconds"]
                                             for _ in range(args.rounds))
                print(f"\n{name}: {rois.shape[0]} ROIs of {n}² pixels ({n * px:.1f} mm)")
                print(f"  2-D NPS, max |scanbench − pylinac| / max   {rel:.2e}")
                print(f"  noise from the NPS integral                {ours.noise_hu:.3f} HU")
                avg = theirs_info["average_power"]
                print(f"  mean frequency: scanbench {ours.mean_frequency_per_mm:.4f} /mm "
                      f"(rings to Nyquist); pylinac average_power {avg:.4f} of its axis = "
                      f"{avg_mm:.4f} /mm (bins to the corner)")
                print(f"  2-D NPS time: scanbench {1e3 * t_ours:.2f} ms, pylinac "
                      f"{1e3 * t_theirs:.2f} ms, ratio pylinac/scanbench "
                      f"{t_theirs / t_ours:.2f}")
    finally:
        peer.close()

    print("\nscanbench analyses end to end (read excluded), median of "
          f"{args.rounds} rounds:")
    for aid, series, params in (("ct.water", ctp486, {}), ("ct.nps", ctp486, {}),
                                ("ct.water", water, {}), ("ct.nps", water, {}),
                                ("ct.mtf", wire, {})):
        analysis = get(aid)

        def run(a: object = analysis, s: object = series, p: dict[str, object] = params) -> None:
            fresh = type(s)(voxels=s.voxels, spacing=s.spacing,  # type: ignore[attr-defined]
                            affine=s.affine, facts=s.facts, files=s.files)  # type: ignore
            a.run(fresh, **p)  # type: ignore[attr-defined]

        t = timed(run, args.rounds)
        nz = series.shape[0]
        print(f"  {aid:10s} {nz:3d} slices of {series.shape[1]}²   {t:6.2f} s "
              f"({t / nz:.2f} s/slice)")


if __name__ == "__main__":
    main()

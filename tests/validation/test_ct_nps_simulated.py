"""ct.nps against the virtual CT scanner's analytic noise power spectrum.

The scanner's noise has the 2-D NPS σ²·Δx²·S(f)/mean(S) with S(f) = |f|·MTF(f)²
(scanbench.simulate.ct). The truth for the analysis' summary numbers is that
spectrum sampled on the analysis' own ROI frequency grid and radially averaged
the same way (the ring average is the definition of the 1-D curve, not an
estimate), so what is tested is the estimation of the spectrum from noisy ROIs:
noise within 5 %, mean frequency within 5 %, peak frequency within 10 % (the
peak of a ring-averaged curve on a 1/(N·Δx) grid, refined by a parabola).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scanbench.analysis.ct.nps import CtNps, radial_average, summary_frequencies
from scanbench.simulate.ct import CtScannerModel, render_water


@pytest.mark.parametrize("pixel,mtf50,seed", [(0.3, 6.0, 1), (0.49, 4.5, 2), (0.7, 3.5, 3)])
def test_nps_summary_against_truth(pixel, mtf50, seed):
    model = CtScannerModel(mtf50_lp_per_cm=mtf50, noise_hu=9.0, cupping_hu=5.0)
    vol, _ = render_water(model, pixel_mm=pixel, diameter_mm=200.0, n_slices=6,
                          seed=seed, supersample=1, fov_mm=min(260.0, 1024 * pixel))
    r = CtNps().run(vol.to_series(model))
    n = r.parameters["roi_pixels"]
    f = np.fft.fftshift(np.fft.fftfreq(n, d=pixel))
    fr = np.hypot(*np.meshgrid(f, f))
    full = np.fft.fftfreq(vol.shape[2], d=pixel)
    norm = model.nps_shape(np.hypot(*np.meshgrid(full, full))).mean()
    truth_2d = model.nps_shape(fr) / norm * pixel**2 * vol.noise_sd_hu**2
    ft, t1 = radial_average(truth_2d, pixel)
    peak, mean = summary_frequencies(ft, t1)
    assert r.get("noise_hu").value == pytest.approx(vol.noise_sd_hu, rel=0.05)
    assert r.get("nps_mean_frequency_per_mm").value == pytest.approx(mean, rel=0.05)
    assert r.get("nps_peak_frequency_per_mm").value == pytest.approx(peak, rel=0.10)
    # and the analytic peak of the continuous spectrum, within a frequency step
    assert abs(r.get("nps_peak_frequency_per_mm").value
               - model.nps_peak_frequency_per_mm) < 1.0 / (n * pixel)


def _pylinac_python() -> Path | None:
    """A peer venv with pylinac (bench/.peers), created if missing; None if impossible."""
    peers = Path(__file__).resolve().parents[2] / "bench" / ".peers"
    for name in ("pylinac", "pylinac-nps"):
        py = peers / name / "bin" / "python"
        if py.exists() and subprocess.run([str(py), "-c", "import pylinac.core.nps"],
                                          capture_output=True).returncode == 0:
            return py
    py = peers / "pylinac-nps" / "bin" / "python"
    try:
        subprocess.run([sys.executable, "-m", "venv", str(py.parents[1])], check=True,
                       capture_output=True, timeout=300)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "pylinac"], check=True,
                       capture_output=True, timeout=900)
    except (subprocess.SubprocessError, OSError):
        return None
    return py


def test_2d_nps_equals_pylinacs_on_the_same_rois(tmp_path):
    """pylinac (PyPI) implements the same ICRU 87 eq. 11.1 with the ROI mean removed:
    on the ROIs ct.nps uses, the two 2-D spectra must agree to rounding."""
    from scanbench.analysis.ct.nps import nps_2d

    py = _pylinac_python()
    if py is None:
        pytest.skip("pylinac could not be installed in bench/.peers (no network?)")
    model = CtScannerModel(noise_hu=9.0)
    vol, _ = render_water(model, pixel_mm=0.7, n_slices=2, seed=5, supersample=1)
    c = vol.shape[1] // 2
    rois = np.stack([vol.voxels[k, c - 24 + dy:c + 24 + dy, c - 24:c + 24]
                     for k in range(2) for dy in (-50, 0, 50)]).astype(np.float64)
    np.save(tmp_path / "rois.npy", rois)
    script = ("import sys, numpy as np\n"
              "from pylinac.core.nps import noise_power_spectrum_2d\n"
              "r = np.load(sys.argv[1])\n"
              "np.save(sys.argv[2], noise_power_spectrum_2d(0.7, list(r)))\n")
    subprocess.run([str(py), "-c", script, str(tmp_path / "rois.npy"),
                    str(tmp_path / "out.npy")], check=True, timeout=300)
    theirs = np.load(tmp_path / "out.npy")
    ours = nps_2d(rois, 0.7, detrend="mean").nps_2d
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12 * theirs.max())

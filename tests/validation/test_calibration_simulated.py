"""Calibration QC and uniformity against the virtual scanner's ground truth.

``scanbench.simulate.pet.render_uniform`` images a uniform cylinder of known
activity (header RadionuclideTotalDose at RadiopharmaceuticalStartDateTime), with
a scanner calibration bias, the chosen decay correction (START, ADMIN, NONE: the
stored values refer to the series start, the injection, or are frame averages),
PSF blur and correlated Poisson-like noise. The measured bias must equal the
scanner's ``calibration_bias_percent`` within 0.5 percentage points; the noise
of the 75 % × 75 % VOI mean is far below that (about 0.05 % here), so the margin
covers the VOI edge and partial-volume effects too.
"""

from __future__ import annotations

import pytest

from scanbench.analysis.pet.calibration_uniformity import CalibrationUniformity
from scanbench.simulate.pet import ScannerModel, render_uniform

CASES = [
    # decay correction, noise, bias %, voxel mm, diameter mm, length mm, centre mm
    ("START", False, 0.0, 4.0, 200.0, 200.0, (0.0, 0.0, 0.0)),
    ("START", True, 6.0, 4.0, 200.0, 200.0, (0.0, 0.0, 0.0)),
    ("ADMIN", False, -4.0, 3.0, 216.0, 180.0, (12.0, -8.0, 5.0)),
    ("ADMIN", True, 2.5, 4.0, 200.0, 200.0, (0.0, 0.0, 0.0)),
    ("NONE", False, 9.0, 4.0, 200.0, 200.0, (0.0, 0.0, 0.0)),
    ("NONE", True, -11.0, 2.0, 180.0, 150.0, (-15.0, 10.0, -20.0)),
]


@pytest.mark.parametrize(("decay", "noise", "bias", "voxel", "diameter", "length", "centre"),
                         CASES)
def test_bias_matches_the_scanner_calibration(decay: str, noise: bool, bias: float,
                                              voxel: float, diameter: float, length: float,
                                              centre: tuple[float, float, float]) -> None:
    series, truth = render_uniform(
        scanner=ScannerModel(calibration_bias_percent=bias), decay_correction=decay,
        noise=noise, voxel_mm=voxel, diameter_mm=diameter, length_mm=length, centre_mm=centre,
        seed=11)
    result = CalibrationUniformity().run(series, volume_ml=truth["volume_ml"])
    measured = result.get("activity_concentration_bias_percent").value
    assert measured == pytest.approx(bias, abs=0.5)
    assert result.get("expected_activity_concentration_bq_ml").value == pytest.approx(
        truth["concentration_bq_ml"], rel=1e-6)
    assert result.get("activity_concentration_bq_ml").value == pytest.approx(
        truth["expected_image_bq_ml"], rel=0.005)
    assert result.parameters["cylinder_radius_mm"] == pytest.approx(diameter / 2, abs=1.0)
    assert result.parameters["cylinder_length_mm"] == pytest.approx(length, abs=1.5)
    # SUVbw (QIBA App. G; for NONE with the dose averaged over the frame like the
    # uncorrected values) of a fill whose weight is its water mass: 1 + bias.
    assert result.get("suv_mean").value == pytest.approx(truth["expected_image_suv"],
                                                         abs=0.005)
    if not noise:
        assert result.get("axial_nonuniformity_percent").value < 0.1
        assert result.get("transverse_cv_percent").value < 0.1
    assert not result.warnings


def test_noise_shows_in_the_uniformity_figures() -> None:
    quiet, _ = render_uniform(noise=False)
    noisy, _ = render_uniform(noise=True, duration_s=60.0, seed=5)
    a = CalibrationUniformity()
    q = a.run(quiet)
    n = a.run(noisy)
    assert n.get("transverse_cv_percent").value > 10 * max(q.get("transverse_cv_percent").value,
                                                           0.01)
    assert n.get("voxel_cv_percent").value > n.get("transverse_cv_percent").value

"""Lung residual and contrast with a scatter-correction residual in the image.

Real scatter-corrected PET images keep a slowly varying residual that NEMA NU
2-2018 7.4 measures as the lung residual (activity seen in the cold lung
insert relative to the 37 mm background mean). The virtual scanner adds that
residual on request (``scatter_residual_percent``), and its ground truth then
takes C_B from the noiseless image's NEMA background zone instead of the fill.

Tolerances: the truth's lung residual is the 30 mm ROI on the sphere-plane
slice of the noiseless image; scanbench averages the ROI over the five NU 2
background slices (±10, ±20 mm), over which the 80 mm-wide residual changes by
about 2 % of itself, so within 0.15 points (noiseless) and, with the default
noise, 0.15 points plus three times the reported uncertainty. Percent contrast
keeps the issue's 2 / 4 points against the noiseless value with exact ROIs.
"""

from __future__ import annotations

import pytest

from scanbench.analysis.pet.image_quality import ImageQuality
from scanbench.simulate.pet import render_iq


@pytest.mark.parametrize(("residual", "noise", "voxel", "rotation"), [
    pytest.param(3.0, False, 2.0, 0.0, id="3pct-noiseless-2mm"),
    pytest.param(6.0, False, 3.0, 15.0, id="6pct-noiseless-3mm-rot15"),
    pytest.param(4.0, True, 2.0, -10.0, id="4pct-noise-2mm-rot-10"),
])
def test_lung_residual_and_contrast_follow_the_truth(residual: float, noise: bool, voxel: float,
                                                     rotation: float) -> None:
    series, truth = render_iq(scatter_residual_percent=residual, noise=noise, voxel_mm=voxel,
                              rotation_deg=rotation, shift_mm=(10.0, -15.0, 4.0), seed=21)
    assert truth["lung_residual_percent_noiseless"] > 0.6 * residual  # the residual is seen
    result = ImageQuality().run(series, activity_ratio=truth["activity_ratio"])
    lung = result.get("lung_residual")
    tol = 0.15 + (3 * (lung.uncertainty or 0.0) if noise else 0.0)
    assert lung.value == pytest.approx(truth["lung_residual_percent_noiseless"], abs=tol)
    c_b = result.get("background_mean_bq_ml")
    assert c_b.value == pytest.approx(truth["background_reference_bq_ml"],
                                      rel=0.003 if not noise else 0.02)
    for d, true_pc in truth["percent_contrast_noiseless"].items():
        m = result.get("percent_contrast", sphere_mm=int(float(d)))
        limit = 4.0 if float(d) <= 13 else 2.0
        if noise:
            limit += 3 * (m.uncertainty or 0.0)
        assert m.value == pytest.approx(true_pc, abs=limit), d


def test_without_residual_the_truth_background_is_the_fill() -> None:
    _, truth = render_iq(noise=False)
    assert truth["background_reference_bq_ml"] == pytest.approx(truth["background_bq_ml"],
                                                                rel=1e-5)
    assert truth["lung_residual_percent_noiseless"] == pytest.approx(0.0, abs=0.01)


def test_residual_raises_the_background_the_nema_rois_see() -> None:
    _, t0 = render_iq(noise=False)
    _, t5 = render_iq(noise=False, scatter_residual_percent=5.0)
    gain = t5["background_reference_bq_ml"] / t0["background_reference_bq_ml"] - 1.0
    assert 0.02 < gain < 0.05  # under 5 %: the 80 mm blur spreads some of it outside

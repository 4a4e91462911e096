"""ct.catphan under cone-beam conditions on quick local renders: isolated module slices,
shading (cupping) and a gauge only partly in a thin slice, noisy 0.5 mm pixels.
(The real Elekta XVI and Canon slices are in tests/validation/test_ct_catphan_real.py.)"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from tests.unit.analysis.ct.ctphantom_render import render

from scanbench.analysis.ct.catphan import Catphan
from scanbench.analysis.registry import choose
from scanbench.phantoms import catphan as cp
from scanbench.types import Series

SIGMA_MM = 0.6  # Gaussian PSF of the render: MTF(f) = exp(−2π²σ²f²)
W_RES = cp.MODELS["504"].module("resolution").w_mm  # type: ignore[union-attr]


def _truth(lp_per_cm: float) -> float:
    f = lp_per_cm / 10.0
    return math.exp(-2.0 * math.pi**2 * SIGMA_MM**2 * f * f)


def _cone_beam(bar_hu: float) -> Callable[..., np.ndarray]:
    """The 504's HU map as a thin cone-beam slice shows it: the bars at ``bar_hu`` over
    the module (a 1.5 mm slice holds part of the gauge), the module and housing 40 HU
    higher at the module's edge than at its centre (shading), air at −800 HU."""
    def hu(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        out = cp.hu_at(u, v, w, "504")
        out = np.where(out == cp.LINE_PAIR_BAR_HU, 100.0 + bar_hu, out)
        r2 = (u * u + v * v) / cp.MODULE_RADIUS_MM**2
        body = out > -900.0
        out = np.where(body, out + 40.0 * np.clip(r2, 0.0, 1.0), out)
        return np.where(out <= -900.0, -800.0, out)
    return hu


def test_bar_modulation_under_shading_and_partial_gauge() -> None:
    """Bars only 250 HU over the module (about what the real XVI slice shows), shading of
    40 HU from centre to edge, 12 HU noise on 0.5 mm pixels: every bar modulation agrees
    with the render's MTF within three of its standard errors + 0.03 (the old reading took
    its background 25–33 mm from the centre, 17 HU below the bars' surroundings)."""
    s = render(_cone_beam(250.0), [W_RES - 0.75, W_RES + 0.75], pixel_mm=0.5, fov_mm=220.0,
               sigma_mm=SIGMA_MM, noise_hu=12.0, seed=4, rotation_deg=-3.0,
               slice_thickness_mm=1.5)
    r = Catphan().run(s)
    assert r.parameters["modules_found"] == ["resolution"]
    for m in r.measurements:
        if m.name == "bar_modulation":
            want = _truth(m.labels["lp_per_cm"])
            assert abs(m.value - want) <= 3 * (m.uncertainty or 0) + 0.03, (m.labels, m.value,
                                                                            want)
    nyq_ok = [f for f in cp.LINE_PAIRS_PER_CM if _truth(f) >= 0.15]
    assert r.get("high_contrast_resolution_lp_per_cm").value >= max(nyq_ok) - 1


def test_isolated_module_slices_each_measured_as_their_module() -> None:
    """One slice per module, tens of mm apart (as cone-beam QA exports a CatPhan): read as
    isolated slices, each is measured as its module and the 504 is told from the
    spacing."""
    mdl = cp.MODELS["504"]
    ws = sorted(m.w_mm for m in mdl.modules)
    s = render(lambda u, v, w: cp.hu_at(u, v, w, "504"), ws, pixel_mm=0.8, fov_mm=220.0,
               sigma_mm=0.5, noise_hu=3.0, seed=1, slice_thickness_mm=2.0)
    s = dataclasses.replace(s, isolated_positions_mm=np.asarray(ws, float) + 250.0)
    assert isinstance(s, Series)
    assert choose(s)[0].id == "ct.catphan"
    r = Catphan().run(s)
    assert r.parameters["modules_found"] == ["low_contrast", "resolution", "sensitometry",
                                             "uniformity"]
    assert r.parameters["model"] == "CatPhan 504"
    assert abs(r.get("ct_number_hu", material="teflon").value - 1000.0) < 5.0
    assert r.get("low_contrast_cnr", diameter_mm=15.0, level="1%").value > 2.0


@pytest.mark.parametrize("offset_mm", [8.0, 70.0])
def test_isolated_slices_that_fit_no_model_are_still_measured(offset_mm: float) -> None:
    """Module slices whose spacing fits no model's offsets (a uniformity slice far into a
    long CTP486): each is still measured as the module it shows, the model is unknown."""
    w_unif = cp.MODELS["504"].module("uniformity").w_mm  # type: ignore[union-attr]
    ws = [w_unif, 0.0]
    s = render(lambda u, v, w: cp.hu_at(u, v, w, "504"), ws, pixel_mm=0.8, fov_mm=220.0,
               sigma_mm=0.5, noise_hu=3.0, seed=2, slice_thickness_mm=2.0)
    s = dataclasses.replace(s, isolated_positions_mm=np.array([w_unif - offset_mm, 0.0]))
    r = Catphan().run(s)
    assert r.parameters["modules_found"] == ["sensitometry", "uniformity"]
    if offset_mm > 30.0:  # 135 mm from the sensitometry slice: no CTP404 model fits
        assert r.parameters["model"] == "unknown"
        assert any("fits no CatPhan model" in w for w in r.warnings)
    assert abs(r.get("ct_number_centre_hu").value) < 2.0


def test_only_isolated_ct_slices_escape_the_missing_slice_check(tmp_path: Path) -> None:
    """A CT volume with a missing slice is still refused as missing slices; a CT series of
    isolated slices or groups (the steps between them ≥ 10 mm and ≥ 3 thicknesses) is
    read, and then only ct.catphan may take it: a water phantom scanned so is refused by
    ct.water, naming the gaps."""
    from scanbench.analysis.registry import get
    from scanbench.api import analyze_series
    from scanbench.dicom.read import read
    from scanbench.errors import AnalysisError
    from scanbench.simulate.ct import CtScannerModel, render_water
    from scanbench.simulate.ct_dicom import write_ct_series

    model = CtScannerModel(noise_hu=5.0)
    vol, _ = render_water(model, pixel_mm=1.0, n_slices=7, slice_thickness_mm=2.0,
                          slice_spacing_mm=2.0, seed=1)
    paths = write_ct_series(vol, tmp_path / "all", model=model)
    paths[3].unlink()  # one slice missing from a contiguous volume
    result = read([tmp_path / "all"])
    assert result.series == [] and "missing slice(s)" in result.errors[0][1]
    vol, _ = render_water(model, pixel_mm=1.0, n_slices=4, slice_thickness_mm=2.0,
                          slice_spacing_mm=15.0, seed=1)
    paths = write_ct_series(vol, tmp_path / "isolated", model=model)
    paths[1].unlink()  # isolated slices 30 and 15 mm apart
    (s,) = read([tmp_path / "isolated"]).series
    assert s.isolated_positions_mm is not None
    np.testing.assert_allclose(s.isolated_positions_mm - s.isolated_positions_mm[0],
                               [0.0, 30.0, 45.0])
    with pytest.raises(AnalysisError, match=r"missing slice.*ct\.water needs one"):
        analyze_series(s, "ct.water")
    # groups of contiguous slices far apart (a few slices per module) are isolated too
    vol, _ = render_water(model, pixel_mm=1.0, n_slices=10, slice_thickness_mm=2.0,
                          slice_spacing_mm=2.0, seed=1)
    paths = write_ct_series(vol, tmp_path / "groups", model=model)
    for path in paths[3:8]:
        path.unlink()
    (s,) = read([tmp_path / "groups"]).series
    assert s.isolated_positions_mm is not None
    np.testing.assert_allclose(s.isolated_positions_mm - s.isolated_positions_mm[0],
                               [0.0, 2.0, 4.0, 16.0, 18.0])
    assert get("ct.catphan").accepts_isolated_slices  # type: ignore[attr-defined]


def _add_bead(s: Series, k: int, integral_hu_mm2: float, sigma_mm: float) -> None:
    """A bead (its blurred point spread, a 2-D Gaussian of ``sigma_mm``) on slice ``k``,
    at its nominal place (the render is not rotated: phantom frame = image frame)."""
    n = s.voxels.shape[1]
    px = s.spacing[1]
    cy = cx = (n - 1) / 2
    yy, xx = np.mgrid[:n, :n]
    r2 = ((yy - cy - cp.BEAD_UV[1] / px) ** 2 + (xx - cx - cp.BEAD_UV[0] / px) ** 2) * px * px
    peak = integral_hu_mm2 / (2 * math.pi * sigma_mm**2)
    s.voxels[k] += (peak * np.exp(-r2 / (2 * sigma_mm**2))).astype(np.float32)


@pytest.mark.parametrize(("integral", "measured"), [(1200.0, True), (150.0, False)])
def test_bead_in_one_thin_slice(integral: float, measured: bool) -> None:
    """A real 0.28 mm bead shows in one thin slice of the module, not in every slice as a
    wire would. Its signal-to-noise is judged on the slices that hold it: judged on the
    mean of the five slices, 1200 HU·mm² over 10 HU noise would stand 7.6:1 and be
    refused, on its own slice it stands 17:1 and is measured; a bead whose integral is
    under 10 times its noise is refused, not read as ~0.9 lp/cm."""
    sigma = 0.6  # the bead's PSF: MTF50 = √(ln 2 / 2) / (π σ)
    s = render(lambda u, v, w: cp.hu_at(u, v, w, "504"),
               [W_RES - 3.0, W_RES - 1.5, W_RES, W_RES + 1.5, W_RES + 3.0], pixel_mm=0.5,
               fov_mm=220.0, sigma_mm=0.4, noise_hu=10.0, seed=5, slice_thickness_mm=1.5)
    _add_bead(s, 2, integral, sigma)
    r = Catphan().run(s)
    m50 = r.get("mtf50_lp_per_cm", method="bead")
    if measured:
        want = 10 * math.sqrt(math.log(2) / 2) / (math.pi * sigma)
        assert abs(m50.value / want - 1) < 0.1, (m50.value, want)
        assert r.parameters["bead_slices_used"] == 1
    else:
        assert m50.status == "refused" and "noise" in (m50.note or "")

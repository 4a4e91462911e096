"""ct.acr464 building blocks on quick local renders (the virtual scanner is in validation)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tests.unit.analysis.ct.ctphantom_render import render

from scanbench.analysis.ct import phantom_modules as pm
from scanbench.analysis.ct.acr464 import Acr464, _orientation, locate
from scanbench.errors import AnalysisError
from scanbench.phantoms import acr_ct as acr


@pytest.mark.parametrize(("rotation", "mirror"), [(0.0, False), (8.5, False), (-10.0, True)])
def test_module1_rotation_and_mirror_recovered(rotation: float, mirror: bool) -> None:
    s = render(acr.hu_at, [-5.0, 0.0, 5.0], rotation_deg=rotation, mirror=mirror,
               shift_mm=(12.0, -7.0))
    frame, _ = _orientation(s, locate(s))
    assert frame is not None
    # mirrored left-right, a feature at phantom angle a sits at 180° − (rotation + a):
    # the mirrored layout turned by 180° − rotation
    expected = 180.0 - rotation if mirror else rotation
    assert frame.mirror == (-1 if mirror else 1)
    assert abs((frame.angle_deg - expected + 180) % 360 - 180) < 0.3


def test_bar_modulation_equals_the_gaussian_mtf() -> None:
    sigma = 0.45
    s = render(acr.hu_at, [115.0, 120.0, 125.0], pixel_mm=0.5, sigma_mm=sigma,
               rotation_deg=4.0, fov_mm=230.0)
    r = Acr464().run(s)
    for f in acr.BAR_PATTERNS:
        truth = math.exp(-2 * math.pi**2 * sigma**2 * (f / 10) ** 2)
        got = r.get("bar_modulation", lp_per_cm=f).value
        assert abs(got - truth) < 0.02, (f, got, truth)
    # MTF(7 lp/cm) = 0.14, MTF(8 lp/cm) = 0.08: 7 lp/cm is the last pattern at or above 0.10
    assert r.get("high_contrast_resolution_lp_per_cm").value == 7.0


def test_layout_with_table_offset_and_missing_module() -> None:
    # modules 2-4 only (module 1 not scanned), phantom at table position 37 mm
    w = np.arange(25.0, 140.0, 10.0)
    s = render(acr.hu_at, list(w), table_mm=37.0, pixel_mm=1.0)
    lay = locate(s)
    assert sorted(lay.present) == [2, 3, 4]
    assert any("module 1" in m for m in lay.warnings)
    # module 1's centre relative to the first slice (w = 25 there)
    assert abs(lay.module1_z_mm - (0.0 - 25.0)) <= 5.0


def test_uniform_module_alone_is_claimed_only_with_its_bbs() -> None:
    s = render(acr.hu_at, [75.0, 80.0, 85.0], pixel_mm=0.8)
    assert Acr464().detect(s) >= 0.9
    r = Acr464().run(s)
    assert abs(r.get("bb_distance_mm").value - 100.0) < 0.3
    assert abs(r.get("ct_number_water_hu").value) < 0.5

    def water(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        return np.where(u * u + v * v <= 100.0**2, 0.0, -1000.0)

    assert Acr464().detect(render(water, [0.0, 5.0, 10.0])) < 0.5


def test_not_the_phantom_is_a_clear_error() -> None:
    def small(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        return np.where(u * u + v * v <= 60.0**2, 0.0, -1000.0)

    s = render(small, [0.0, 5.0])
    assert Acr464().detect(s) < 0.5
    with pytest.raises(AnalysisError, match="not the ACR phantom"):
        Acr464().run(s)


def test_phantom_cut_by_the_field_of_view_is_a_clear_error() -> None:
    s = render(acr.hu_at, [-5.0, 0.0, 5.0, 75.0, 80.0], fov_mm=170.0)
    with pytest.raises(AnalysisError, match="field of view"):
        Acr464().run(s)


def test_ramp_profile_fwhm_of_a_known_strip() -> None:
    img = np.zeros((200, 200), np.float32)
    img[99:102, 80:120] = 500.0  # 40 px = 20 mm long at 0.5 mm
    frame = pm.Frame((100.0, 100.0), (0.5, 0.5))
    rp = pm.ramp_profile(img, frame, (0.0, 0.25), (1.0, 0.0), 30.0, 1.0)
    assert rp is not None
    assert abs(rp.fwhm_mm - 20.0) < 0.3


def test_figures_for_the_report() -> None:
    w = [-5.0, 0.0, 5.0, 35.0, 40.0, 45.0, 75.0, 80.0, 85.0, 115.0, 120.0, 125.0]
    s = render(acr.hu_at, w, pixel_mm=1.0, noise_hu=3.0)
    r = Acr464().run(s)
    figs = Acr464().figures(r)
    titles = [f.layout.title.text for f in figs]
    assert any("Module 1" in t for t in titles) and any("Module 4" in t for t in titles)
    assert any("TTF" in t for t in titles)  # (the ramps are wires the local render lacks)

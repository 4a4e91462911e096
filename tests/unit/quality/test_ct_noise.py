"""CT global noise from clinical series (scanbench.quality.ct_noise) against virtual
patients of known noise (scanbench.simulate.ct_patient).

"Known noise" for every method here is the noise in uniform soft tissue: the expected
SD of the pixels of a uniform soft-tissue region, which is the σ the simulator gives the
noise (stationary FBP-textured noise, the same in the body and in the air around it).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from scanbench.analysis.registry import MIN_CONFIDENCE, get
from scanbench.dicom.read import read_one
from scanbench.quality.ct_noise import DUKE, WISCONSIN
from scanbench.simulate.ct_patient import (
    VirtualPatient,
    as_series,
    virtual_patient,
    write_ct_patient,
)
from scanbench.types import Result

ANALYSIS = "ct.clinical_global_noise"
# Methods whose value estimates the noise of uniform soft tissue; the Wisconsin tissue
# mean averages local SDs over organ and fat edges too and reads high by design.
MODES = (DUKE, WISCONSIN[1], WISCONSIN[3])


def _run(p: VirtualPatient, seed: int = 1) -> tuple[Result, dict]:
    vol, truth = virtual_patient(p, seed)
    return get(ANALYSIS).run(as_series(p, vol)), truth


# One factor at a time around the reference (330 × 240 mm abdomen, 12 mGy, STANDARD,
# 5 mm): patient size (D_w 215-373 mm), dose, kernel, slice thickness, chest with lungs.
CASES = [
    {}, {"lat_mm": 250.0, "ap_mm": 180.0}, {"lat_mm": 420.0, "ap_mm": 320.0},
    {"ctdivol_mgy": 3.0}, {"ctdivol_mgy": 30.0}, {"kernel": "SOFT"}, {"kernel": "SHARP"},
    {"slice_mm": 1.25}, {"slice_mm": 2.5, "kernel": "SHARP"}, {"region": "chest"},
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in
                                                            c.items()) or "reference")
def test_global_noise_within_5_percent_of_known_noise(case: dict) -> None:
    result, truth = _run(VirtualPatient(slices=3, **case))
    known = truth["noise_hu"]
    for method in MODES:
        m = result.get("global_noise_hu", method=method)
        assert m.status == "info", m.note
        assert abs(m.value / known - 1) < 0.05, (method, m.value, known)
    dw = result.get("water_equivalent_diameter_mm").value
    assert dw == pytest.approx(truth["water_equivalent_diameter_mm"], rel=0.01)
    assert result.get("ctdivol_mgy").value == truth["ctdivol_mgy"]
    assert result.get("slice_thickness_mm").value == truth["slice_thickness_mm"]


def test_noise_falls_as_one_over_root_dose_at_fixed_size() -> None:
    doses = [3.0, 6.0, 12.0, 24.0, 48.0]
    noise = [_run(VirtualPatient(slices=3, ctdivol_mgy=d), seed=i)[0]
             .get("global_noise_hu", method=DUKE).value for i, d in enumerate(doses)]
    slope = np.polyfit(np.log(doses), np.log(noise), 1)[0]
    assert slope == pytest.approx(-0.5, abs=0.03)


def test_noise_grows_exponentially_with_water_equivalent_diameter() -> None:
    sizes = [(240.0, 170.0), (330.0, 240.0), (430.0, 330.0)]
    dw, noise = [], []
    for i, (lat, ap) in enumerate(sizes):
        r, _ = _run(VirtualPatient(slices=3, lat_mm=lat, ap_mm=ap), seed=i)
        dw.append(r.get("water_equivalent_diameter_mm").value)
        noise.append(r.get("global_noise_hu", method=DUKE).value)
    # ln σ linear in D_w with slope μ_eff / 2 = 0.0095 /mm (the simulator's physics)
    slope = np.polyfit(dw, np.log(noise), 1)[0]
    assert slope == pytest.approx(0.019 / 2, rel=0.1)


def test_lung_kernel_is_refused_with_the_reason() -> None:
    result, _ = _run(VirtualPatient(slices=2, kernel="LUNG"))
    for method in (DUKE, *WISCONSIN):
        m = result.get("global_noise_hu", method=method)
        assert m.status == "refused" and math.isnan(m.value)
        assert "lung or bone kernel" in (m.note or "")


def test_too_few_soft_tissue_pixels_is_refused() -> None:
    # a 70 × 60 mm body under 20 mm of fat: 5 cm² of soft tissue per slice
    result, _ = _run(VirtualPatient(slices=2, lat_mm=70.0, ap_mm=60.0, fat_mm=20.0,
                                    matrix=256, fov_mm=300.0))
    m = result.get("global_noise_hu", method=DUKE)
    assert m.status == "refused"
    assert "too few soft-tissue pixels" in (m.note or "")


def test_contrast_series_from_dicom_is_refused(tmp_path: Path) -> None:
    p = VirtualPatient(slices=2, matrix=128, contrast="IOHEXOL")
    write_ct_patient(tmp_path / "ct", p, seed=3)
    series = read_one(tmp_path / "ct")
    m = get(ANALYSIS).run(series).get("global_noise_hu", method=DUKE)
    assert m.status == "refused" and "IOHEXOL" in (m.note or "")


def test_dicom_round_trip_reads_the_known_noise(tmp_path: Path) -> None:
    p = VirtualPatient(slices=3, matrix=512)
    truth = write_ct_patient(tmp_path / "ct", p, seed=4)
    result = get(ANALYSIS).run(read_one(tmp_path / "ct"))
    value = result.get("global_noise_hu", method=DUKE).value
    assert abs(value / truth["noise_hu"] - 1) < 0.05


def test_never_chosen_automatically() -> None:
    p = VirtualPatient(slices=1, matrix=128)
    vol, _ = virtual_patient(p)
    assert get(ANALYSIS).detect(as_series(p, vol)) < MIN_CONFIDENCE


def test_fast_masks_equal_scipy_morphology() -> None:
    """The hole filling, square erosion and diamond dilation used for speed give exactly
    scipy's binary_fill_holes / binary_erosion / binary_dilation(iterations) results."""
    from scipy import ndimage

    from scanbench.quality.ct_noise import dilate_diamond, erode_square, fill_holes

    rng = np.random.default_rng(3)
    for _ in range(10):
        m = ndimage.gaussian_filter(rng.standard_normal((90, 110)), 2.5) > 0.05
        assert np.array_equal(fill_holes(m), ndimage.binary_fill_holes(m))
        for size in (3, 8, 9):
            assert np.array_equal(erode_square(m, size),
                                  ndimage.binary_erosion(m, np.ones((size, size), bool)))
        for radius in (1, 6, 14):
            assert np.array_equal(dilate_diamond(m, radius),
                                  ndimage.binary_dilation(m, iterations=radius))
    empty = np.zeros((20, 20), bool)
    assert not dilate_diamond(empty, 3).any() and not fill_holes(empty).any()


def test_running_histogram_equals_the_whole_histogram() -> None:
    """Slice-by-slice accumulation gives the mode and the mean of all the values at once
    (ties broken the same way: the lowest bin)."""
    from scanbench.quality.ct_noise import SdHistogram, histogram_mode

    rng = np.random.default_rng(4)
    parts = [np.abs(rng.normal(10 + k, 2, size=500 + 300 * k)) for k in range(6)]
    parts.insert(2, np.empty(0))
    h = SdHistogram(0.1)
    for part in parts:
        h.add(part)
    every = np.concatenate(parts)
    assert h.mode() == histogram_mode(every, 0.1)
    assert h.mean() == pytest.approx(float(np.mean(every)), rel=1e-12)
    assert h.n == every.size
    assert math.isnan(SdHistogram(0.1).mode()) and math.isnan(SdHistogram(0.1).mean())

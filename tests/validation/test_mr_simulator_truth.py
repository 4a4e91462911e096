"""The virtual MRI scanner's ACR truth, checked against geometry and physics it does not
use to compute it: analytic B1 uniformity, bar lengths and phantom extents measured on
noise-free renderings, and the order of the low-contrast and resolution truths."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from scanbench.dicom.read import read
from scanbench.phantoms.acr_mri import ACR_LARGE
from scanbench.simulate.mr import (
    T1,
    Imperfections,
    MrScanner,
    acr_truth,
    lengths_truth,
    render_acr_series,
    render_localiser,
    simulate_acr,
)

RNG = np.random.default_rng(0)
P512 = dataclasses.replace(T1, matrix=512)


def _half_width(profile: np.ndarray, pixel_mm: float, level: float) -> float:
    above = np.flatnonzero(profile > level)
    i0, i1 = above[0], above[-1]

    def cross(a: int, b: int) -> float:
        return a + (level - profile[a]) / (profile[b] - profile[a]) * (b - a)

    return (cross(i1, i1 + 1) - cross(i0, i0 - 1)) * pixel_mm


def test_piu_truth_matches_the_analytic_b1_field() -> None:
    """B1 = 1 + a (1 − r²/100²) (no left-right term): the 1 cm² means peak at the centre,
    1 + a (1 − ρ²/2/100²), and are lowest on the circle d = R₂₀₀ − ρ, so
    PIU = 100 (1 − a d² / (2·10⁴ (1 + a) − a (d² + ρ²))) with ρ the 1 cm² radius."""
    scanner = MrScanner(field_strength_t=3.0, b1_left_right=0.0)
    imp = Imperfections(noise=False)
    (s7,), _ = render_acr_series(ACR_LARGE, T1, scanner, imp, RNG, slices=(7,))
    truth = acr_truth(ACR_LARGE, T1, imp, {7: s7})["percent_integral_uniformity"]
    a = 0.02 * 9.0
    rho = math.sqrt(100 / math.pi)
    d = math.sqrt(20000 / math.pi) - rho
    expected = 100 * (1 - a * d**2 / (2e4 * (1 + a) - a * (d**2 + rho**2)))
    assert truth == pytest.approx(expected, abs=0.3)


@pytest.mark.parametrize(("slice_number", "offset"), [(1, -2.5), (11, 1.5)])
def test_bar_lengths_in_the_image_differ_by_twice_the_slice_offset(slice_number: int,
                                                                   offset: float) -> None:
    imp = Imperfections(noise=False, slice_offset_mm=0.7, slice_offset_11_mm=offset,
                        b1_scale=0.0)
    if slice_number == 1:
        imp = dataclasses.replace(imp, slice_offset_mm=offset)
    assert imp.slice_offset(slice_number) == offset
    (s1,), _ = render_acr_series(ACR_LARGE, P512, MrScanner(), imp, RNG,
                                 slices=(slice_number,))
    img = s1.noiseless
    px = P512.pixel_mm
    pair = ACR_LARGE.wedges[0 if slice_number == 1 else 1]
    lengths = []
    for bar in (pair.left, pair.right):
        col = round((bar.x0 + bar.x1) / 2 / px + 255.5)
        prof = img[:, col]
        top = round(bar.y_start / px + 255.5) + 4  # inside the dark bar
        # walk down until the signal is back above half: the end of the bar
        seg = prof[top:top + round(40 / px)]
        back = int(np.flatnonzero(seg > P512.signal / 2)[0])
        f = (P512.signal / 2 - seg[back - 1]) / (seg[back] - seg[back - 1])
        lengths.append((back - 1 + f) * px)
    assert lengths[0] - lengths[1] == pytest.approx(2 * offset, abs=0.3)


def test_diameters_in_the_image_match_the_distortion_truth() -> None:
    imp = Imperfections(noise=False, b1_scale=0.0, gradient_scale=(1.015, 0.985, 1.0))
    (s5,), _ = render_acr_series(ACR_LARGE, P512, MrScanner(), imp, RNG, slices=(5,))
    img = s5.noiseless
    truth = lengths_truth(ACR_LARGE, imp)
    half = P512.signal / 2
    # rows/columns through the centre pass the grid's bars; 10 mm off the centre line they
    # still cross the outline within 0.3 mm of the diameter and miss the bars
    row = img[255 + 10].astype(float)
    col = img[:, 255 + 10].astype(float)
    chord = 2 * math.sqrt(95.0**2 - (10.5 * P512.pixel_mm / 0.985) ** 2) * 1.015
    assert _half_width(row, P512.pixel_mm, half) == pytest.approx(chord, abs=0.3)
    assert truth["horizontal"] == pytest.approx(190 * 1.015, abs=0.01)
    assert truth["vertical"] == pytest.approx(190 * 0.985, abs=0.01)
    chord_v = 2 * math.sqrt(95.0**2 - (10.5 * P512.pixel_mm / 1.015) ** 2) * 0.985
    assert _half_width(col, P512.pixel_mm, half) == pytest.approx(chord_v, abs=0.3)


def test_medium_phantom_renders_its_own_size() -> None:
    from scanbench.phantoms.acr_mri import ACR_MEDIUM

    imp = Imperfections(noise=False, b1_scale=0.0)
    (s7,), _ = render_acr_series(ACR_MEDIUM, P512, MrScanner(), imp, RNG, slices=(7,))
    row = s7.noiseless[255].astype(float)
    assert _half_width(row, P512.pixel_mm, P512.signal / 2) == pytest.approx(165.0, abs=0.3)
    assert ACR_MEDIUM.piu_roi_area_cm2 == 160.0


def test_localiser_shows_the_phantom_length() -> None:
    imp = Imperfections(noise=False, gradient_scale=(1.0, 1.0, 1.01))
    img, affine = render_localiser(ACR_LARGE, T1, MrScanner(), imp, RNG)
    col = round((75.0 - affine[1, 3]) / T1.pixel_mm)  # y = 75 mm: clear of the inserts
    prof = img.noiseless[:, col]
    assert _half_width(prof, T1.pixel_mm, T1.signal / 2) == pytest.approx(148 * 1.01, abs=0.5)


def test_resolution_truth_follows_the_pixel_size() -> None:
    imp = Imperfections(noise=False)
    (hi,), _ = render_acr_series(ACR_LARGE, P512, MrScanner(), imp, RNG, slices=(1,))
    (lo,), _ = render_acr_series(ACR_LARGE, T1, MrScanner(), imp, RNG, slices=(1,))
    t_hi = acr_truth(ACR_LARGE, P512, imp, {1: hi})["resolved_hole_mm"]
    t_lo = acr_truth(ACR_LARGE, T1, imp, {1: lo})["resolved_hole_mm"]
    assert t_hi == {"left_right": 0.9, "top_bottom": 0.9}  # 0.49 mm pixels
    # 0.98 mm pixels: 0.9 mm holes (1.8 mm pitch) are beyond the sampling limit
    assert set(t_lo.values()) <= {1.0, 1.1}


def test_low_contrast_truth_grows_with_snr() -> None:
    """The noise-free LCD slices do not depend on σ; the truth's z does (z ∝ 1/σ)."""
    imp = Imperfections(noise=False, b1_scale=0.0)
    sl, _ = render_acr_series(ACR_LARGE, T1, MrScanner(), imp, RNG, slices=(8, 11))
    rendered = dict(zip((8, 11), sl, strict=True))
    totals = []
    for snr in (30.0, 100.0, 400.0):
        sigma = T1.signal / snr
        for r in rendered.values():
            r.sigma = sigma
        t = acr_truth(ACR_LARGE, T1, dataclasses.replace(imp, noise=True), rendered)
        per = [t["spokes_detected"][str(s)] for s in (8, 11)]
        assert per == sorted(per)  # 5.1 % contrast shows at least as many as 1.4 %
        totals.append(t["spokes_detected_total"])
    assert totals == sorted(totals) and totals[0] < totals[-1] <= 40


@pytest.mark.slow
def test_full_acr_acquisition_is_written_and_read_back(tmp_path: Path) -> None:
    # matrix 128 on a 1 mm fine grid: the writer and reader are what is tested here
    truth = simulate_acr(tmp_path, imperfections=Imperfections(rotation_deg=3.0,
                                                               shift_mm=(4.0, -3.0, 2.0)),
                         seed=1, file_names="shuffled", matrix=128, fine_mm=1.0)
    assert truth["files"] == 23
    on_disk = json.loads((tmp_path / "ground_truth.json").read_text())
    assert set(on_disk["series"]) == {"T1", "T2", "LOCALISER"}
    series = read([tmp_path]).series
    assert sorted(s.shape[0] for s in series) == [1, 11, 11]
    for s in series:
        assert s.facts.mr is not None and s.facts.mr.field_strength_t == 1.5
        uid = s.uid
        label = next(k for k, v in on_disk_items(on_disk) if v == uid)
        if label == "LOCALISER":
            normal = np.cross(s.affine[:3, 2], s.affine[:3, 1])
            assert abs(normal[0]) == pytest.approx(s.spacing[1] * s.spacing[2], rel=1e-6)
        else:
            assert s.spacing[0] == pytest.approx(10.0)
            assert on_disk["series"][label]["length_mm"]["5"]["horizontal"] == \
                pytest.approx(190.0, abs=1e-6)


def on_disk_items(truth: dict) -> list[tuple[str, str]]:
    return [(k, v["series_instance_uid"]) for k, v in truth["series"].items()]

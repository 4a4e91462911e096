"""NEMA MS 1 SNR building blocks on synthetic images with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scanbench.analysis.mr import common
from scanbench.analysis.mr.snr import (
    RAYLEIGH_MEAN_OVER_SD,
    NemaSnr,
    normalisation,
    single_image_validity,
    structure_fraction,
)
from scanbench.errors import AnalysisError
from scanbench.types import MrFacts, Series, SeriesFacts


def _series(img: np.ndarray, uid: str = "1.2.3", **mr: object) -> Series:
    facts = SeriesFacts(modality="MR", series_instance_uid=uid, study_instance_uid="9",
                        mr=MrFacts(**{"field_strength_t": 1.5, "pixel_bandwidth_hz": 130.0,
                                      "averages": 1.0, "acquisition_matrix": (0, 128, 128, 0),
                                      "phase_encoding_direction": "ROW", **mr}))  # type: ignore[arg-type]
    affine = np.diag([5.0, 2.0, 2.0, 1.0])
    return Series(voxels=img[None].astype(np.float32), spacing=(5.0, 2.0, 2.0), affine=affine,
                  facts=facts)


def _disc(n: int = 128, r: float = 40.0, level: float = 1000.0) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    return np.where((yy - n / 2) ** 2 + (xx - n / 2) ** 2 < r**2, level, 0.0)


def test_central_roi_holds_the_requested_fraction_of_any_shape() -> None:
    disc = _disc() > 0
    square = np.zeros((128, 128), bool)
    square[20:100, 30:110] = True
    for mask in (disc, square):
        roi = common.central_roi(mask, 0.75)
        assert roi.sum() / mask.sum() == pytest.approx(0.75, abs=0.02)
        assert not (roi & ~mask).any()


def test_object_mask_keeps_the_largest_object_with_its_holes_filled() -> None:
    img = _disc()
    img[60:68, 60:68] = 0  # a hole inside
    img[2:6, 2:6] = 1000  # a small bright speck elsewhere
    mask = common.object_mask(img + np.random.default_rng(0).normal(0, 5, img.shape))
    assert mask[64, 64] and not mask[3, 3]


def test_rayleigh_background_is_accepted_and_chi_is_refused() -> None:
    rng = np.random.default_rng(1)
    sigma = 10.0
    obj = _disc()

    def magnitude(channels: int) -> np.ndarray:
        total = np.zeros(obj.shape)
        for _ in range(channels):
            total += np.abs(obj / math.sqrt(channels) + rng.normal(0, sigma, obj.shape)
                            + 1j * rng.normal(0, sigma, obj.shape)) ** 2
        return np.sqrt(total)

    one = _series(magnitude(1), receive_coil="HEAD")
    why, stats = single_image_validity(one, common.find_object(one))
    assert why is None and stats["air_mean_over_sd"] == pytest.approx(RAYLEIGH_MEAN_OVER_SD,
                                                                       rel=0.05)
    four = _series(magnitude(4), receive_coil="HEAD")
    why, _ = single_image_validity(four, common.find_object(four))
    assert why is not None and "not Rayleigh" in why


def test_real_valued_and_zeroed_backgrounds() -> None:
    rng = np.random.default_rng(2)
    real = _series(_disc() + rng.normal(0, 10, (128, 128)))
    why, stats = single_image_validity(real, common.find_object(real))
    assert why is None and stats["background"] == "gaussian"
    r = NemaSnr().run(real)
    assert r.get("snr", method="single_image").value == pytest.approx(100.0, rel=0.05)
    zeroed = _series(np.where(_disc() > 0, _disc() + rng.normal(0, 10, (128, 128)), 0.0))
    with pytest.raises(AnalysisError, match="zeroed or quantised"):
        NemaSnr().run(zeroed)


def test_normalisation_needs_every_factor() -> None:
    s = _series(_disc(), phase_encoding_steps=128)
    s.files = []  # no file: Slice Thickness cannot be read
    factor, missing, _ = normalisation(s)
    assert factor is None and missing == ["Slice Thickness (0018,0050)"]
    s.derived["mr.common.slice_thickness"] = (s.voxels, 5.0)
    factor, missing, params = normalisation(s)
    assert not missing
    assert factor == pytest.approx(math.sqrt(130.0) / (2.0 * 2.0 * 5.0 * math.sqrt(128)))
    assert params["voxel_volume_mm3"] == 20.0


def test_pairs_need_the_same_grid_place_and_sequence() -> None:
    img = _disc()
    a = _series(img, uid="1", repetition_time_ms=500.0)
    b = _series(img, uid="2", repetition_time_ms=500.0)
    c = _series(img, uid="3", repetition_time_ms=600.0)
    d = _series(img, uid="4", repetition_time_ms=500.0)
    d.affine = d.affine.copy()
    d.affine[0, 3] = 3.0  # 3 mm elsewhere
    assert common.same_acquisition(a, b)
    assert not common.same_acquisition(a, c)
    assert not common.same_acquisition(a, d)
    assert NemaSnr().group([a, c, b]) == [(a, b)]


def test_identical_copies_are_not_a_pair_to_measure() -> None:
    img = _disc() + np.random.default_rng(3).normal(0, 10, (128, 128))
    a, b = _series(img, uid="1"), _series(img, uid="2")
    with pytest.raises(AnalysisError, match="identical pixel for pixel"):
        NemaSnr().run_group((a, b))


def test_structure_separates_uniform_from_insert_slices() -> None:
    rng = np.random.default_rng(4)
    uniform = _series(_disc(level=1000.0) * (1 + 0.3 * np.linspace(-1, 1, 128))[None, :]
                      + rng.normal(0, 10, (128, 128)))  # strong shading is still uniform
    grid = _disc()
    grid[::8, :] = 0
    grid[:, ::8] = 0
    assert structure_fraction(common.find_object(uniform)) < 0.005
    assert NemaSnr().detect(uniform) == pytest.approx(0.6)
    gridded = _series(grid + rng.normal(0, 10, (128, 128)))
    assert NemaSnr().detect(gridded) < 0.5


def test_no_phantom_is_a_clear_error() -> None:
    empty = _series(np.random.default_rng(5).normal(0, 1, (128, 128)) ** 2)
    with pytest.raises(AnalysisError, match="no phantom found"):
        NemaSnr().run(empty)


def test_bad_parameters_are_named_and_figures_are_drawn() -> None:
    img = _disc() + np.random.default_rng(6).normal(0, 10, (128, 128)) + 20.0
    s = _series(np.abs(img), receive_coil="HEAD")
    with pytest.raises(AnalysisError, match="roi_fraction must be a number"):
        NemaSnr().run(s, roi_fraction="abc")
    with pytest.raises(AnalysisError, match="slice must be between"):
        NemaSnr().run(s, slice=4)
    a = _series(np.abs(img), uid="1")
    b = _series(np.abs(img + np.random.default_rng(7).normal(0, 10, (128, 128))), uid="2")
    (r,) = NemaSnr().run_group((a, b))
    figs = NemaSnr().figures(r)
    assert len(figs) == 2 and all(f.layout.title.text for f in figs)

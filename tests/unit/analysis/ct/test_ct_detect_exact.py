"""The CT phantom detectors' short cuts give exactly the old answers (issue 16, speed).

Every CT series the node receives goes through every CT phantom detector before it is
called a patient's, so those detectors skip work a patient's slices do not need; each
short cut is exact, and these tests fail if one were taken a pixel or a slice too soon:

- ``common.reconstruction_mask`` skips labelling a corner value with too few pixels to
  make the 2 % padding (against the old labelling of every corner value, kept here);
- ``phantom_modules.find_body``'s centre equals ``ndimage.center_of_mass`` to the bit;
- ``phantom_modules.find_bodies`` keeps a :class:`~pm.LargeBody` only for an object
  larger than any phantom the detectors take (radius > 112 mm by its largest region
  alone, holes not filled) and not cut; the detectors class it as they class its Body;
- the detectors' confidences on every real CT folder of the shared data and on virtual
  patients are the ones the code before these changes gave (recorded literals).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from scanbench import dicom
from scanbench.analysis import registry
from scanbench.analysis.ct import acr464, catphan, mtf
from scanbench.analysis.ct import phantom_modules as pm
from scanbench.analysis.ct.common import PADDING_BELOW_HU, reconstruction_mask
from scanbench.analysis.masks import largest_region_filled
from scanbench.simulate.ct_patient import VirtualPatient, as_series, virtual_patient
from scanbench.types import Series


def _reconstruction_mask_reference(img: np.ndarray) -> np.ndarray:
    """The labelling of every corner value below air, as before the short cut."""
    corner_values = {float(img[0, 0]), float(img[0, -1]), float(img[-1, 0]),
                     float(img[-1, -1])}
    out = np.ones(img.shape, dtype=bool)
    for v in corner_values:
        if v > PADDING_BELOW_HU:
            continue
        labels, n = ndimage.label(img == v)
        if n == 0:
            continue
        border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0],
                                           labels[:, -1]]))
        pad = np.isin(labels, border[border > 0])
        if pad.sum() > 0.02 * img.size:
            out &= ~pad
    return out


def test_reconstruction_mask_same_as_labelling_every_corner_value() -> None:
    rng = np.random.default_rng(3)
    air = np.round(rng.normal(-1000.0, 12.0, (100, 100))).astype(np.float32)
    yy, xx = np.mgrid[:100, :100]
    padded = air.copy()
    padded[np.hypot(yy - 49.5, xx - 49.5) > 48] = -2048.0  # a reconstruction circle
    images = [air, padded]
    # padding of exactly 2 % of the pixels (not padding) and one pixel more (padding):
    # the short cut must not skip the second
    for count in (200, 201):
        img = air.copy()
        img.flat[:count] = -3024.0  # the first rows, touching the border
        images.append(img)
    for img in images:
        assert np.array_equal(reconstruction_mask(img), _reconstruction_mask_reference(img))
    assert reconstruction_mask(images[2]).all()
    assert int((~reconstruction_mask(images[3])).sum()) == 201
    assert int((~reconstruction_mask(padded)).sum()) > 1000


def test_find_body_centre_is_center_of_mass_to_the_bit() -> None:
    rng = np.random.default_rng(5)
    for _ in range(20):
        img = np.full((120, 90), -1000.0)
        for _blob in range(3):
            cy, cx, r = rng.uniform(10, 80), rng.uniform(10, 80), rng.uniform(3, 40)
            yy, xx = np.mgrid[:120, :90]
            img[(yy - cy) ** 2 + ((xx - cx) * 1.3) ** 2 < r * r] = 40.0
        body = pm.find_body(img, (0.7, 0.9))
        assert body is not None
        expected = ndimage.center_of_mass(largest_region_filled(img > -400.0))
        assert body.centre_yx == (float(expected[0]), float(expected[1]))


def _object(pixels: int, hole: int = 0) -> np.ndarray:
    """A slice (1 mm pixels) holding one object of exactly ``pixels`` pixels, with a
    hole of ``hole`` pixels inside it."""
    img = np.full((260, 260), -1000.0, np.float32)
    rows, extra = divmod(pixels + hole, 200)
    img[30:30 + rows, 30:230] = 50.0
    img[30 + rows, 30:30 + extra] = 50.0
    if hole:
        hr, he = divmod(hole, 50)
        img[60:60 + hr, 60:110] = -1000.0
        img[60 + hr, 60:60 + he] = -1000.0
    return img


def _series(slices: list[np.ndarray]) -> Series:
    p = VirtualPatient(slices=len(slices), matrix=slices[0].shape[0],
                       fov_mm=float(slices[0].shape[0]))
    return as_series(p, np.stack(slices).astype(np.float32))


def test_large_body_only_when_larger_than_any_phantom_and_not_cut() -> None:
    limit = pm.LARGEST_PHANTOM_RADIUS_MM
    # the detectors' own size windows lie inside the limit (ACR 464: 100 ± 12 mm,
    # CatPhan housing: 100 ± 10 mm)
    assert limit >= 100.0 + 12.0
    at = math.floor(math.pi * limit**2)  # radius just at or below the limit: a Body
    assert math.sqrt(at / math.pi) <= limit < math.sqrt((at + 1) / math.pi)
    # padding outside a reconstruction circle two pixels from the object (column 30):
    # cut (the padding is dilated by two); three pixels from it: not cut
    cut, near = _object(at + 1), _object(at + 1)
    cut[:, :29] = -2048.0
    near[:, :28] = -2048.0
    slices = [_object(at), _object(at + 1), _object(at - 2000, hole=2500),
              _object(at + 4000), cut, near]
    series = _series(slices)
    bodies = pm.find_bodies(series, 1)
    full = [pm.find_body(img, (1.0, 1.0)) for img in slices]
    assert not isinstance(bodies[0], pm.LargeBody) and bodies[0] == full[0]
    assert isinstance(bodies[1], pm.LargeBody) and full[1] is not None
    assert bodies[1].radius_min_mm == full[1].radius_mm > limit
    # the largest region alone is under the limit, the filled object over it: a Body
    assert full[2] is not None and full[2].radius_mm > limit
    assert bodies[2] == full[2]
    assert isinstance(bodies[3], pm.LargeBody)
    # cut by the padding: the Body, which says so
    assert full[4] is not None and full[4].touches_edge and bodies[4] == full[4]
    assert full[5] is not None and not full[5].touches_edge
    assert isinstance(bodies[5], pm.LargeBody)
    # a LargeBody is classed as its Body would be, by both detectors
    for k in (1, 3):
        body = full[k]
        assert body is not None and not body.touches_edge
        assert acr464._classify(slices[k], (1.0, 1.0), bodies[k]) == \
            acr464._classify(slices[k], (1.0, 1.0), body)
        a, b = (catphan._classify(slices[k], (1.0, 1.0), bodies[k]),
                catphan._classify(slices[k], (1.0, 1.0), body))
        assert (a.kind, a.housing, b.kind, b.housing) == ("", False, "", False)
        assert np.isnan(a.centre_yx).all() and np.isnan(b.centre_yx).all()


def _confidences(series: Series) -> dict[str, float]:
    return {k: float(a.detect(series)) for k, a in
            sorted(registry.all_analyses("CT").items())}


def _expect(acr: float, cp: float, mtf: float = 0.0, nps: float = 0.0,
            water: float = 0.0) -> dict[str, float]:
    return {"ct.acr464": acr, "ct.catphan": cp, "ct.clinical_global_noise": 0.0,
            "ct.dose_verification": 0.0, "ct.mtf": mtf, "ct.nps": nps, "ct.water": water}


#: recorded with the code before the short cuts (2026-12-07), real CT of the shared data
REAL = {
    "catphan/CTP404_FOV150": _expect(0.05, 0.95),
    "catphan/CTP486": _expect(0.3, 0.92, nps=0.378, water=0.63),
    "catphan/Wire_FOV50": _expect(0.05, 0.05, mtf=0.9),
    "catphan-cbct-xvi": _expect(0.3, 0.95),
    "catphan-ctp515-canon": _expect(0.7, 0.95, nps=0.378, water=0.63),
}


@pytest.mark.parametrize("folder", list(REAL))
def test_real_ct_confidences_unchanged(shared_data: Path, folder: str) -> None:
    series = dicom.read([shared_data / "ct" / folder]).series
    assert len(series) == 1
    assert _confidences(series[0]) == REAL[folder]
    _same_bodies(series[0])


def _same_bodies(series: Series) -> None:
    """find_bodies against find_body on every slice (the slow path, as before)."""
    v = np.asarray(series.voxels)
    _, dy, dx = series.spacing
    for step in {max(1, int(1.2 / min(dy, dx))), max(1, int(1.0 / min(dy, dx)))}:
        for k, got in enumerate(pm.find_bodies(series, step)):
            body = pm.find_body(v[k, ::step, ::step], (dy * step, dx * step))
            if isinstance(got, pm.LargeBody):
                assert body is not None and not body.touches_edge
                assert body.radius_mm >= got.radius_min_mm > pm.LARGEST_PHANTOM_RADIUS_MM
            else:
                assert got == body


#: recorded with the code before the short cuts: (lateral × AP mm, region) -> ACR 464,
#: CatPhan; the round trunks near the phantom's size reach the insert tests (0.1)
PATIENTS = {((330.0, 240.0), "abdomen"): (0.05, 0.05), ((400.0, 300.0), "chest"): (0.05, 0.05),
            ((200.0, 198.0), "chest"): (0.1, 0.1), ((220.0, 215.0), "chest"): (0.1, 0.1),
            ((260.0, 175.0), "abdomen"): (0.05, 0.05)}


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize(("size", "region"), list(PATIENTS))
def test_patient_confidences_unchanged(size: tuple[float, float], region: str,
                                       padded: bool) -> None:
    """Also with −3024 HU padding outside a reconstruction circle (as most scanners write
    it): the same confidences (checked with the code before the short cuts too)."""
    p = VirtualPatient(lat_mm=size[0], ap_mm=size[1], region=region, slices=3, matrix=192)
    vol = virtual_patient(p, seed=1)[0]
    if padded:
        yy, xx = np.mgrid[:192, :192]
        vol = vol.copy()
        vol[:, np.hypot(yy - 95.5, xx - 95.5) > 95] = -3024.0
    series = as_series(p, vol)
    assert _confidences(series) == _expect(*PATIENTS[(size, region)])
    _same_bodies(series)


def _point_in_slice_reference(img: np.ndarray, dy: float, dx: float
                              ) -> tuple[int, tuple[float, float] | None, float] | None:
    """ct.mtf's per-slice point search as it was: the whole image smoothed."""
    inside = reconstruction_mask(img)
    med = float(np.median(img[inside]))
    sm = ndimage.gaussian_filter(img, 0.4 / dx)
    sm[~inside] = med
    peak_yx = np.unravel_index(int(np.argmax(sm)), sm.shape)
    height = float(sm[peak_yx]) - med
    if height < 300:
        return None
    labels, n = ndimage.label(sm > med + 0.5 * height)
    if n > 3:
        return None
    size = float(np.sum(labels == labels[peak_yx])) * dy * dx
    if size > 9.0:
        return n, None, height
    return n, (float(peak_yx[0]), float(peak_yx[1])), height


def test_median_is_numpys_float64_median() -> None:
    rng = np.random.default_rng(8)
    for n in (1, 2, 7, 10, 1001):
        for dtype in (np.float32, np.int16, np.float64):
            a = (rng.normal(0.0, 300.0, n)).astype(dtype)
            assert mtf._median(a) == float(np.median(a.astype(np.float64)))
    nan = np.array([1.0, np.nan, 3.0], np.float32)
    assert math.isnan(mtf._median(nan))
    # large enough for the bounded partition: air-dominated slices with ties, sorted
    # values (a strided sample sees them unevenly), padding the majority, a constant
    # slice, a NaN; even and odd counts
    air = np.round(rng.normal(-1000.0, 15.0, 512 * 512)).astype(np.float32)
    air[:60000] = rng.normal(40.0, 30.0, 60000).astype(np.float32)
    cases: list[np.ndarray] = [air, air[:-1], np.sort(air), np.sort(air)[::-1].copy(),
             np.where(np.arange(air.size) < 150000, -2048.0, air).astype(np.float32),
             np.full(20000, -1000.0, np.float32), air.astype(np.int16)]
    for case in cases:
        assert mtf._median(case) == float(np.median(case.astype(np.float64)))
    with_nan = air.copy()
    with_nan[5] = np.nan
    assert math.isnan(mtf._median(with_nan))
    # the bounded partition itself answered (not only the fallback)
    assert mtf._order_statistics(air, [air.size // 2 - 1, air.size // 2]) is not None


def test_point_search_smoothing_only_where_it_matters_gives_the_same_answer(
        shared_data: Path) -> None:
    """Patients (air-dominated, body-dominated, with padding outside a reconstruction
    circle), beads at every image edge and corner (the smoothing's border handling),
    a bead just 300 HU and just under, real wire and CatPhan slices: the same answer
    as smoothing the whole image, to the bit."""
    slices: list[tuple[np.ndarray, float]] = []
    p = VirtualPatient(slices=4, matrix=256)
    vol, _ = virtual_patient(p, seed=2)
    spacing = as_series(p, vol).spacing[2]
    for img in vol:
        slices.append((img, spacing))
        padded = img.copy()
        yy, xx = np.mgrid[:256, :256]
        padded[np.hypot(yy - 127.5, xx - 127.5) > 126] = -2048.0
        slices.append((padded, spacing))
    tight = VirtualPatient(slices=2, matrix=128, fov_mm=260.0, lat_mm=250.0, ap_mm=240.0)
    for img in virtual_patient(tight, seed=3)[0]:
        slices.append((img, 260.0 / 128))  # the body fills the field: median soft tissue
    rng = np.random.default_rng(4)
    for y, x in ((0, 0), (0, 40), (63, 63), (63, 0), (1, 62), (30, 31)):
        for bead in (2000.0, 305.0, 290.0):
            img = rng.normal(0.0, 5.0, (64, 64)).astype(np.float32)
            img[y, x] += bead
            slices.append((img, 0.5))
    slices.append((rng.normal(0.0, 5.0, (64, 64)).astype(np.int16), 0.5))
    # a bead of 3 × 3 pixels: a point whose region is a few mm² (under 9)
    img = rng.normal(0.0, 5.0, (64, 64)).astype(np.float32)
    img[20:23, 30:33] = 2000.0
    slices.append((img, 0.5))
    # the brightest pixel a lone spike (smoothed under 300 HU), a large bright square
    # elsewhere: the early test cannot decide, the full search finds a large region
    img = rng.normal(0.0, 5.0, (64, 64)).astype(np.float32)
    img[10, 10] = 1000.0
    img[40:48, 40:48] = 600.0
    slices.append((img, 0.5))
    # padding beside a bright block (the peak's box holds padding-valued pixels: the test
    # without the median must leave it to the full search), and a bright spot in padded air
    yy, xx = np.mgrid[:128, :128]
    for spot in ((60, 126, 8), (64, 64, 1)):
        img = rng.normal(-1000.0, 10.0, (128, 128)).astype(np.float32)
        img[np.hypot(yy - 63.5, xx - 63.5) < 40] = 40.0
        img[spot[0]:spot[0] + spot[2], spot[1] - spot[2]:spot[1]] = 1500.0
        img[np.hypot(yy - 63.5, xx - 63.5) > 62] = -3024.0
        slices.append((img, 0.8))
    for folder in ("catphan/Wire_FOV50", "catphan/CTP404_FOV150", "catphan/CTP486"):
        s = dicom.read([shared_data / "ct" / folder]).series[0]
        slices.extend((np.asarray(v), s.spacing[2]) for v in s.voxels)
    answers = set()
    for img, px in slices:
        got = mtf._point_in_slice(img, px, px)
        ref = _point_in_slice_reference(np.asarray(img, np.float64), px, px)
        if got is None and ref is not None and ref[1] is None:
            # the point's region shown too large without counting the regions: not a
            # point either way (the count is read only for slices holding a point)
            answers.add("large, shown early")
            continue
        assert got == ref
        answers.add("none" if got is None else "large" if got[1] is None else "point")
    # every outcome was compared, the early one on the patients' slices
    assert answers == {"none", "large", "point", "large, shown early"}


def test_water_detector_looks_into_the_interiors_only_with_a_round_section() -> None:
    """ct.water's score is 0.9 × the fraction of round sections × ...: with none round
    (a patient) it is 0 and the interiors are not measured; with one round section among
    twelve the whole measurement runs and the score is not 0."""
    from scanbench.analysis.ct import water

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:256, :256] - 127.5
    ellipse = np.where((xx / 110.0) ** 2 + (yy / 75.0) ** 2 < 1.0, 0.0, -1000.0)
    disk = np.where(np.hypot(xx, yy) < 90.0, 0.0, -1000.0)
    for round_slices, expect_zero in ((0, True), (1, False)):
        slices = [disk if k < round_slices else ellipse for k in range(12)]
        series = _series([s + rng.normal(0.0, 5.0, s.shape) for s in slices])
        score = water.uniform_score(series)
        secs = [sec for _k, sec in water.sampled_sections(series)]
        assert len(secs) == 12 and all(not isinstance(s, str) for s in secs)
        assert sum(s.roundness < water.ROUND for s in secs  # type: ignore[union-attr]
                   ) == round_slices
        assert ("ct.uniform_interior" in series.derived) is not expect_zero
        assert (score == 0.0) is expect_zero


# --------------------------------------------------------------- the numba slice kernels


def _label_reference(mask: np.ndarray) -> tuple[int, bool]:
    """ndimage.label + the first of equal largest labels: its size and border contact."""
    labels, n = ndimage.label(mask)
    if n == 0:
        return 0, False
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    region = labels == int(np.argmax(sizes))
    touches = bool(region[0].any() or region[-1].any() or region[:, 0].any()
                   or region[:, -1].any())
    return int(sizes.max()), touches


def test_largest_region_is_ndimage_labels_largest() -> None:
    """Sizes, ties (two equal regions: the first in raster order, one touching the
    border), odd widths (the 8-byte reads), strided views, an empty mask; and a wrong
    join (8-connectivity) would merge the diagonal pair."""
    from scanbench.analysis.ct.slice_kernels import largest_region

    rng = np.random.default_rng(11)
    images: list[np.ndarray] = []
    for shape in ((37, 61), (64, 64), (9, 130), (1, 17), (50, 1)):
        for density in (0.2, 0.45, 0.6, 0.9):
            images.append(np.where(rng.random(shape) < density, 100.0, -1000.0
                                   ).astype(np.float32))
    tie = np.full((20, 30), -1000.0, np.float32)
    tie[0:3, 2:5] = 50.0  # 9 pixels at the border, first in raster order
    tie[10:13, 10:13] = 50.0  # 9 pixels inside
    diagonal = np.full((10, 10), -1000.0, np.float32)
    diagonal[3:5, 3:5] = diagonal[5:7, 5:7] = 50.0  # corner contact only: two regions
    runs = np.full((8, 40), -1000.0, np.float32)
    runs[2, 3:37] = runs[3, 0:9] = runs[3, 16:24] = runs[4, 8:17] = 50.0
    images += [tie, diagonal, runs, np.full((16, 16), -1000.0, np.float32)]
    big = np.where(rng.random((200, 203)) < 0.58, 100.0, -1000.0).astype(np.float32)
    images += [big, big[::2, ::2], big[1::3, ::2], big.T]
    none = np.zeros(0)
    pad = np.array([-3024.0])
    for img in images:
        mask = img > -400.0
        assert largest_region(mask, img, none) == (*_label_reference(mask), False)
        # with padding-valued pixels scattered, in a block, or none: whether the largest
        # region comes within two pixels of one (binary_dilation(iterations=2) of them)
        labels, n = ndimage.label(mask)
        if not n:
            continue
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        region = labels == int(np.argmax(sizes))
        for where in (rng.random(img.shape) < 0.002, rng.random(img.shape) < 0.02,
                      np.zeros(img.shape, bool)):
            padded = np.where(where & ~mask, -3024.0, img).astype(np.float32)
            touches = _label_reference(mask)[1]
            near = ndimage.binary_dilation(padded == -3024.0, iterations=2)
            expected = (int(sizes.max()), touches, not touches and bool((region & near).any()))
            assert largest_region(mask, padded, pad) == expected
    assert largest_region(tie > -400.0, tie, none) == (9, True, False)
    assert largest_region(diagonal > -400.0, diagonal, none) == (4, False, False)
    assert largest_region(runs > -400.0, runs, none)[0] == 34 + 9 + 8 + 9
    # padding two pixels (city block) from the region (rows 8-11, columns 5-9): near;
    # three: not; below the middle of a run (seen from the row below, not a run's end)
    for (y, x), near_ in (((13, 7), True), ((14, 7), False), ((6, 7), True), ((5, 7), False),
                          ((10, 11), True), ((10, 12), False), ((12, 10), True),
                          ((13, 10), False), ((9, 3), True), ((7, 3), False)):
        img = np.full((20, 20), -1000.0, np.float32)
        img[8:12, 5:10] = 50.0
        img[y, x] = -3024.0
        assert largest_region(img > -400.0, img, pad) == (20, False, near_), (y, x)
        # a run below covering part of the bottom row: its uncovered part is boundary
        img[12, 8:10] = 50.0
        if (y, x) in ((13, 7), (14, 7)):
            img[y, x] = -1000.0
            img[13, 6] = -3024.0
            assert largest_region(img > -400.0, img, pad) == (22, False, True)
            img[13, 6], img[14, 6] = -1000.0, -3024.0
            assert largest_region(img > -400.0, img, pad) == (22, False, False)


def test_border_region_area_is_reconstruction_masks_padding() -> None:
    """The pixels of one value in regions meeting the border, counted by the flood up to
    the limit (noise: a few; a reconstruction circle's padding: over the limit)."""
    from scanbench.analysis.ct.slice_kernels import border_region_area

    rng = np.random.default_rng(12)
    img = np.round(rng.normal(-1000.0, 12.0, (90, 70))).astype(np.float32)
    yy, xx = np.mgrid[:90, :70]
    padded = img.copy()
    padded[np.hypot(yy - 44.5, xx - 34.5) > 33] = -2048.0
    for image in (img, padded):
        for v in {float(c) for c in image[[0, 0, -1, -1], [0, -1, 0, -1]]}:
            labels, _n = ndimage.label(image == v)
            border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0],
                                               labels[:, -1]]))
            expected = int(np.isin(labels, border[border > 0]).sum())
            assert border_region_area(image, v, image.size) == expected
            assert border_region_area(image, v, expected) == expected
            if expected:
                assert border_region_area(image, v, expected - 1) == expected
    assert border_region_area(padded, -2048.0, 126) > 126


@pytest.mark.parametrize("spacing", [(0.78125, 0.78125), (0.683594, 0.683594),
                                     (0.55, 0.72), (1.1, 1.1)])
def test_disc_morphology_is_the_thresholded_distance_transform(
        spacing: tuple[float, float]) -> None:
    """find_section's opening: the erosion and dilation by the disc equal scipy's
    distance_transform_edt thresholds, pixel for pixel (random masks, a disc touching the
    border, a mask with holes), at the radii the section uses."""
    from scanbench.analysis.masks import disc_dilate, disc_erode, disc_half_widths

    rng = np.random.default_rng(13)
    yy, xx = np.mgrid[:70, :90]
    disc = np.hypot(yy - 30.0, (xx - 20.0) * 1.2) < 28.0
    masks = [ndimage.binary_opening(rng.random((70, 90)) < p) for p in (0.5, 0.7, 0.85)]
    masks += [disc, disc & (rng.random(disc.shape) < 0.97)]
    for radius in (3.0, 3.0 + 0.5 * min(spacing)):
        half = disc_half_widths(radius, spacing)
        assert half is not None
        for m in masks:
            assert np.array_equal(disc_erode(m, half),
                                  ndimage.distance_transform_edt(m, sampling=spacing) > radius)
            assert np.array_equal(disc_dilate(m, half),
                                  ndimage.distance_transform_edt(~m, sampling=spacing) <= radius)
    # an offset exactly at the radius (3 × 1 mm): refused, the caller uses scipy
    assert disc_half_widths(3.0, (1.0, 1.0)) is None


def test_cross_morphology_is_scipys() -> None:
    from scanbench.analysis.masks import dilate_cross, erode_cross

    rng = np.random.default_rng(14)
    for shape in ((1, 1), (1, 9), (7, 1), (31, 40)):
        for p in (0.3, 0.8, 1.0):
            m = rng.random(shape) < p
            assert np.array_equal(dilate_cross(m), ndimage.binary_dilation(m))
            assert np.array_equal(erode_cross(m), ndimage.binary_erosion(m))
            assert np.array_equal(dilate_cross(dilate_cross(m)),
                                  ndimage.binary_dilation(m, iterations=2))


def _find_section_reference(img: np.ndarray, spacing: tuple[float, float]
                            ) -> tuple[tuple[float, float], float, float, bytes] | str:
    """find_section as written before the kernels: scipy's distance transforms, labels,
    binary_fill_holes, dilations and erosion, np.nonzero's means."""
    from scanbench.analysis.ct.common import MATERIAL_HU

    dy, dx = spacing
    inside = reconstruction_mask(img)
    material = (img > MATERIAL_HU) & inside
    if material.sum() * dy * dx < 100.0:
        return "none"
    f = max(1, int(1.0 / max(dy, dx)))
    ny, nx = material.shape
    coarse = material[: ny - ny % f, : nx - nx % f]
    if f > 1:
        coarse = coarse.reshape(ny // f, f, nx // f, f).any(axis=(1, 3))
    cdy, cdx = dy * f, dx * f
    core = ndimage.distance_transform_edt(coarse, sampling=(cdy, cdx)) > 3.0
    opened = coarse & (ndimage.distance_transform_edt(~core, sampling=(cdy, cdx))
                       <= 3.0 + 0.5 * min(cdy, cdx)) if core.any() else coarse
    labels, _n = ndimage.label(opened if opened.any() else coarse)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    keep = ndimage.binary_dilation(labels == int(np.argmax(sizes)))
    if f > 1:
        keep = np.repeat(np.repeat(keep, f, axis=0), f, axis=1)
        full = np.zeros_like(material)
        full[: keep.shape[0], : keep.shape[1]] = keep
        keep = full
    labels, _n = ndimage.label(material & keep)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    region = ndimage.binary_fill_holes(labels == int(np.argmax(sizes)))
    edge = ~inside
    edge[0] = edge[-1] = True
    edge[:, 0] = edge[:, -1] = True
    if (ndimage.binary_dilation(edge, iterations=2) & region).any():
        return "cut"
    yy, xx = np.nonzero(region)
    cy, cx = float(yy.mean()), float(xx.mean())
    radius = math.sqrt(region.sum() * dy * dx / math.pi)
    boundary = region & ~ndimage.binary_erosion(region)
    by, bx = np.nonzero(boundary)
    dist = np.hypot((by - cy) * dy, (bx - cx) * dx)
    return (cy, cx), radius, float(dist.std() / radius), region.tobytes()


def test_find_section_same_as_scipys_formulation(shared_data: Path) -> None:
    """Patients (body, table, lungs), a phantom cut by a reconstruction circle, real water,
    CatPhan and wire slices (0.49 mm pixels: the 1 mm coarse grid): the same section to
    the bit, or the same refusal."""
    from scanbench.analysis.ct.common import find_section
    from scanbench.errors import AnalysisError

    cases: list[tuple[np.ndarray, tuple[float, float]]] = []
    for size, region in (((330.0, 240.0), "abdomen"), ((200.0, 198.0), "chest")):
        p = VirtualPatient(lat_mm=size[0], ap_mm=size[1], region=region, slices=2,
                           matrix=256)
        s = as_series(p, virtual_patient(p, seed=4)[0])
        cases += [(np.asarray(v, np.float64), (s.spacing[1], s.spacing[2]))
                  for v in s.voxels]
    cut = cases[0][0].copy()
    yy, xx = np.mgrid[:256, :256]
    cut[np.hypot(yy - 127.5, xx - 127.5) > 100] = -3024.0
    cases.append((cut, cases[0][1]))
    for folder in ("catphan/CTP486", "catphan/Wire_FOV50", "catphan-ctp515-canon"):
        s = dicom.read([shared_data / "ct" / folder]).series[0]
        v = np.asarray(s.voxels)
        cases += [(np.asarray(v[k], np.float64), (s.spacing[1], s.spacing[2]))
                  for k in (0, v.shape[0] // 2)]
    outcomes = set()
    for img, spacing in cases:
        ref = _find_section_reference(img, spacing)
        try:
            sec = find_section(img, spacing)
            got: object = (sec.centre_yx, sec.radius_mm, sec.roundness, sec.mask.tobytes())
        except AnalysisError as exc:
            got = "cut" if "cut by" in exc.message else "none"
        assert got == ref
        outcomes.add(ref if isinstance(ref, str) else "section")
    assert outcomes == {"section", "cut"}


def test_median_upper_bound_exactly_when_more_than_half_are_at_most_it() -> None:
    """ct.mtf's point search bounds the median by a sampled candidate only when more than
    n // 2 data pixels are at most it: with exactly n // 2 the median lies above the
    candidate and the bound must not be given (a test that fails on ``>=``)."""
    n_side = 128
    img = np.full((n_side, n_side), 1000.0, np.float32)
    sample = img[::8, ::8]  # the candidate's sample: 256 pixels, values 0..255
    sample[...] = np.arange(sample.size, dtype=np.float32).reshape(sample.shape)
    candidate = 153.0  # its 60th percentile: index int(0.6 * 256)
    in_sample = np.zeros(img.shape, bool)
    in_sample[::8, ::8] = True
    free = np.flatnonzero(~in_sample.ravel())
    inside = np.ones(img.shape, bool)
    half = img.size // 2
    for extra in (0, 1):
        case = img.copy()
        case.flat[free[: half - 154 + extra]] = -1000.0  # 154 sample values are <= 153
        assert int(np.count_nonzero(case <= candidate)) == half + extra
        got = mtf._median_upper_bound(case, inside, True)
        median = float(np.median(case.astype(np.float64)))
        if extra == 0:
            assert got is None and median > candidate
        else:
            assert got == (candidate, int(np.argmax(case))) and median <= candidate


def test_large_body_fast_pass_decides_padding_exactly() -> None:
    """The one-pass LargeBody: a trunk in noisy air, inside a reconstruction circle's
    padding, and beside padding three pixels away (given); the padding two pixels away
    (cut, as the labelling's two-fold dilation says: not given), the body meeting the
    image edge, a body under the limit (not given)."""
    rng = np.random.default_rng(15)
    yy, xx = np.mgrid[:300, :300]
    air = np.round(rng.normal(-1000.0, 15.0, (300, 300))).astype(np.float32)
    trunk = np.where(((yy - 150) / 110.0) ** 2 + ((xx - 150) / 140.0) ** 2 < 1, 40.0, air)
    trunk = trunk.astype(np.float32)
    assert int(np.flatnonzero(trunk[150] > -400)[0]) == 11  # the body's leftmost column
    edge = trunk.copy()
    edge[150, :] = 40.0  # an arm of the body out to the image edge
    padded = trunk.copy()
    padded[np.hypot(yy - 149.5, xx - 149.5) > 149] = -3024.0
    beside, cut = trunk.copy(), trunk.copy()
    beside[:, :9] = -2048.0  # up to column 8: three pixels from column 11
    cut[:, :10] = -2048.0  # up to column 9: two pixels
    small = np.where(np.hypot(yy - 150, xx - 150) < 100, 40.0, air).astype(np.float32)
    spacing = (1.0, 1.0)
    for img in (trunk, padded, beside):
        assert isinstance(pm._large_body(img, img > -400.0, spacing, 112.0), pm.LargeBody)
    for img in (cut, edge, small):
        assert pm._large_body(img, img > -400.0, spacing, 112.0) is None
    for img in (trunk, padded, beside, cut, edge, small):
        got = pm.find_bodies(_series([img]), 1)[0]
        ref = pm.find_body(img, spacing)
        assert ref is not None
        if isinstance(got, pm.LargeBody):
            assert not ref.touches_edge and got.radius_min_mm == ref.radius_mm
        else:
            assert got == ref
    for img, is_cut in ((padded, False), (beside, False), (cut, True), (edge, True)):
        assert pm.find_body(img, spacing).touches_edge is is_cut  # type: ignore[union-attr]


def test_a_phantoms_analysis_imports_no_numba(shared_data: Path) -> None:
    """The numba kernels serve patient-sized slices only (every CT detector runs on a
    phantom's series too): analysing a real CatPhan and a water phantom (every detector,
    then the chosen analysis) in a fresh process leaves numba unimported, so a phantom's
    command line does not pay its import (about 0.4 s)."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from scanbench.api import analyze_paths\n"
            f"rep = analyze_paths([{str(shared_data / 'ct' / 'catphan' / 'CTP486')!r}], "
            "workers=1)\n"
            "print(sorted(r.analysis for r in rep.results), 'numba' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split("\n")[-2]
    assert out == "['ct.catphan'] False"


def test_median_upper_bound_over_pixels_of_other_values_needs_the_floor() -> None:
    """With padding, ct.mtf's bound counts the pixels of other values only; that bounds
    the median of all data pixels only when the candidate lies at or above the padding
    value (the left-out data pixels of that value are then at most it). A slice whose
    padding value (−1024) also fills a third of its data, the rest mostly below it: the
    candidate (−1100) lies below the true median (−1024) and must not be given."""
    rng = np.random.default_rng(16)
    yy, xx = np.mgrid[:256, :256]
    disc = np.hypot(yy - 127.5, xx - 127.5) < 120
    img = np.where(rng.random((256, 256)) < 0.35, -1024.0,
                   np.where(rng.random((256, 256)) < 0.72, -1100.0, 0.0)).astype(np.float32)
    img[~disc] = -1024.0
    assert mtf._padding_values(img) == (-1024.0,)
    median = float(np.median(img[reconstruction_mask(img)]))
    assert median == -1024.0
    others = img != -1024.0
    unfloored = mtf._median_upper_bound(img, others, False)
    assert unfloored is not None and unfloored[0] == -1100.0 < median  # what it would say
    assert mtf._median_upper_bound(img, others, False, -1024.0) is None
    # and _point_in_slice, which passes the floor, answers as the full search
    ref = _point_in_slice_reference(np.asarray(img, np.float64), 0.8, 0.8)
    assert mtf._point_in_slice(img, 0.8, 0.8) == ref

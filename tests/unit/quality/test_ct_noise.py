"""CT global noise from clinical series (scanbench.quality.ct_noise) against virtual
patients of known noise (scanbench.simulate.ct_patient).

"Known noise" for every method here is the noise in uniform soft tissue: the expected
SD of the pixels of a uniform soft-tissue region, which is the σ the simulator gives the
noise (stationary FBP-textured noise, the same in the body and in the air around it).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

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

    from ct_noise_reference import dilate_diamond, erode_square
    from scanbench.analysis.masks import fill_holes

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


def test_local_sd_equals_scipy_uniform_filter() -> None:
    """The separable local-SD map (a stack at once, running sum over rows) equals the
    per-slice ``scipy.ndimage.uniform_filter`` definition to rounding, on a virtual
    patient (the same 0.1 HU bin for every pixel) and on odd shapes and kernel sizes,
    including a kernel taller than the image."""
    from ct_noise_reference import local_sd, local_sd_reference

    p = VirtualPatient(slices=2, matrix=256)
    vol, _ = virtual_patient(p, seed=7)
    fast = local_sd(vol, 8)
    ref = np.stack([local_sd_reference(v, 8) for v in vol])
    assert fast.shape == ref.shape
    assert np.max(np.abs(fast - ref)) < 1e-9
    assert np.array_equal(np.floor(fast / 0.1), np.floor(ref / 0.1))
    rng = np.random.default_rng(8)
    for shape, size in (((3, 20, 17), 8), ((2, 16, 16), 21), ((1, 40, 33), 7), ((25, 30), 4)):
        a = rng.normal(-300.0, 400.0, shape).astype(np.float32)
        ref = (local_sd_reference(a, size) if a.ndim == 2
               else np.stack([local_sd_reference(v, size) for v in a]))
        assert np.max(np.abs(local_sd(a, size) - ref)) < 1e-9, (shape, size)


def test_body_mask_and_stacked_morphology_equal_scipy() -> None:
    """The body (largest region above -500 HU, holes filled; labelled within its bounding
    box, few regions and holes compared one by one) equals scipy's label + argmax +
    binary_fill_holes on images with few and with many regions and holes; the packed
    erosion and dilation of a stack equal scipy's slice by slice."""
    from scipy import ndimage

    from ct_noise_reference import _body_mask, dilate_diamond, erode_square

    rng = np.random.default_rng(9)
    few = many = 0
    for i in range(60):
        img = ndimage.gaussian_filter(rng.standard_normal((60, 70)), 1.5 + i % 3) * 3000.0
        img -= rng.uniform(0.0, 900.0)
        mask = img > -500.0
        labels, n = ndimage.label(mask)
        if n == 0:
            expected = mask
        else:
            sizes = np.bincount(labels.ravel())
            sizes[0] = 0
            expected = ndimage.binary_fill_holes(labels == np.argmax(sizes))
        assert np.array_equal(_body_mask(img), expected), i
        few, many = few + (0 < n <= 8), many + (n > 8)
    assert few and many  # both ways of counting the regions were exercised
    # a body with three holes (one holding an island), a smaller region beside it
    img = np.full((40, 60), -1000.0)
    img[5:35, 5:45] = 40.0
    img[10:15, 10:15] = img[20:30, 20:30] = img[10:14, 35:40] = -800.0
    img[24:26, 24:26] = 40.0
    img[5:20, 50:55] = 40.0
    body = np.zeros(img.shape, bool)
    body[5:35, 5:45] = True
    assert np.array_equal(_body_mask(img), body)
    stack = ndimage.gaussian_filter(rng.standard_normal((3, 50, 130)), (0, 2, 2)) > 0.05
    for size in (3, 8):
        assert np.array_equal(erode_square(stack, size), np.stack(
            [ndimage.binary_erosion(s, np.ones((size, size), bool)) for s in stack]))
    assert np.array_equal(dilate_diamond(stack, 5), np.stack(
        [ndimage.binary_dilation(s, iterations=5) for s in stack]))


def test_global_noise_equals_the_scipy_definition_slice_by_slice() -> None:
    """All five values and the soft-tissue area of the fast analysis (slabs of slices,
    local SD only where counted, one histogram pass for the three classes) equal a plain
    per-slice computation with scipy's filters and morphology: modes identical, means
    within 1e-9. Five slices: a slab and a remainder; a chest without fat, so lungs are
    holes and soft tissue meets the skin."""
    from scipy import ndimage

    from ct_noise_reference import local_sd_reference
    from scanbench.quality.ct_noise import histogram_mode

    p = VirtualPatient(slices=5, matrix=192, region="chest", fat_mm=0.0)
    vol, _ = virtual_patient(p, seed=11)
    result = get(ANALYSIS).run(as_series(p, vol))
    size = result.parameters["kernel_pixels"]
    px = p.field_of_view_mm / p.matrix
    margin = max(1, round(10.0 / px))
    yy, xx = np.mgrid[:p.matrix, :p.matrix]
    c = (p.matrix - 1) / 2
    recon = (yy - c) ** 2 + (xx - c) ** 2 <= (p.matrix / 2 - size) ** 2
    square = np.ones((size, size), bool)
    duke, wt, wa = [], [], []
    for img in vol.astype(np.float64):
        sd = local_sd_reference(img, size)
        soft = (img >= 0.0) & (img <= 100.0)
        labels, _n = ndimage.label(img > -500.0)
        body = ndimage.binary_fill_holes(labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1)
        inner = ndimage.binary_erosion(body, square)
        not_air = ndimage.binary_dilation(img > -900.0, iterations=margin)
        air = recon & ndimage.binary_erosion(~not_air, square)
        duke.append(sd[soft])
        wt.append(sd[soft & inner])
        wa.append(sd[air])
    d, t, a = (np.concatenate(v) for v in (duke, wt, wa))
    assert t.size < d.size and a.size > 0  # the three classes differ here
    expected = {DUKE: histogram_mode(d, 0.1), WISCONSIN[0]: float(np.mean(t)),
                WISCONSIN[1]: histogram_mode(t, 0.1), WISCONSIN[2]: float(np.mean(a)),
                WISCONSIN[3]: histogram_mode(a, 0.1)}
    for method, value in expected.items():
        got = result.get("global_noise_hu", method=method).value
        if "mode" in method:
            assert got == value, method
        else:
            assert got == pytest.approx(value, rel=1e-9), method
    area = d.size * px * px / 100.0 / p.slices
    assert result.get("soft_tissue_area_cm2").value == pytest.approx(area, rel=1e-12)


def _same_partial(a: object, b: object) -> bool:
    """Two SlicePartials equal to the bit: counts (trailing empty bins aside), values per
    class, each slab's sums (NaN equal to NaN) and soft-tissue pixels."""
    ca, cb = a.counts, b.counts  # type: ignore[attr-defined]
    width = max(ca.shape[1], cb.shape[1])
    ca = np.pad(ca, ((0, 0), (0, width - ca.shape[1])))
    cb = np.pad(cb, ((0, 0), (0, width - cb.shape[1])))
    sums_a = np.array(a.sums, dtype=np.float64)  # type: ignore[attr-defined]
    sums_b = np.array(b.sums, dtype=np.float64)  # type: ignore[attr-defined]
    return (np.array_equal(ca, cb) and np.array_equal(a.ns, b.ns)  # type: ignore[attr-defined]
            and sums_a.tobytes() == sums_b.tobytes()
            and a.tissue_px == b.tissue_px)  # type: ignore[attr-defined]


def test_kernel_equals_the_numpy_form_to_the_bit() -> None:
    """The numba kernel (``_measure_range``) gives the numpy form's histograms, counts,
    per-slab sums and soft-tissue pixels to the bit (the sums compared as bytes): on
    virtual patients (a chest without fat: lungs are holes, soft tissue meets the skin;
    an abdomen on 512², kernel 8 px, a power of two: the exact-reciprocal path; a
    256² chest, kernel 5 px: the division path; the chest with -3024 HU padding outside
    its reconstruction circle), an odd number of slices and of rows,
    float64 voxels, a NaN pixel (counted, never binned), a kernel wider and taller than
    the image (reflected more than once) and one of 3 pixels."""
    from scipy import ndimage

    from ct_noise_reference import measure_range
    from scanbench.quality.ct_noise import _measure_range, _SlabSettings

    cases = []
    for p, seed, size, margin in ((VirtualPatient(slices=5, matrix=192, region="chest",
                                                  fat_mm=0.0), 11, 5, 6),
                                  (VirtualPatient(slices=2, matrix=512), 1, 8, 13),
                                  (VirtualPatient(slices=3, matrix=256, region="chest"),
                                   3, 5, 7)):
        cases.append((virtual_patient(p, seed)[0], size, margin))
    # -3024 HU outside the reconstruction circle, as most scanners write a patient's series
    padded = cases[0][0].copy()
    yy, xx = np.mgrid[:192, :192]
    padded[:, (yy - 95.5) ** 2 + (xx - 95.5) ** 2 > 90.0 ** 2] = -3024.0
    cases.append((padded, 5, 6))
    rng = np.random.default_rng(5)
    for shape, size, margin in (((3, 21, 17), 8, 2), ((2, 16, 16), 21, 3),
                                ((1, 40, 33), 7, 1), ((6, 31, 70), 4, 5),
                                ((5, 64, 64), 3, 9)):
        a = ndimage.gaussian_filter(rng.standard_normal(shape), (0, 2, 2)) * 3000.0 - 600.0
        a = np.where(rng.random(shape) < 0.2, -1000.0, a) + rng.normal(0.0, 20.0, shape)
        cases.append((a.astype(np.float32), size, margin))
        cases.append((np.round(a), size, margin))  # float64
    cases[-3][0][1, 5, 5] = np.nan
    classes = np.zeros(3, dtype=np.int64)
    for vol, size, margin in cases:
        cfg = _SlabSettings(size=size, air_margin=margin, low=0.0, high=100.0, bin_hu=0.1)
        got = _measure_range(vol, 0, vol.shape[0], cfg)
        assert _same_partial(got, measure_range(vol, 0, vol.shape[0], cfg)), \
            (vol.shape, vol.dtype, size)
        classes += got.ns
    assert (classes > 0).all()  # soft tissue near the skin, inside the body, air


def test_kernel_bins_as_numpy_divides() -> None:
    """The kernel's bin by the reciprocal (``_bin``) is numpy's truncated quotient on
    values a few units in the last place either side of every bin edge up to 500 HU and
    on random ones, for bins of 0.1, 0.3 and 0.25 HU (an exact reciprocal)."""
    from scanbench.quality.ct_noise_kernel import _bin

    rng = np.random.default_rng(17)
    for bin_hu in (0.1, 0.3, 0.25):
        edges = np.arange(int(500 / bin_hu)) * bin_hu
        values = [np.abs(rng.normal(10.0, 30.0, 2000))]
        for steps in range(-4, 5):
            values.append(np.nextafter(edges, np.inf if steps > 0 else -np.inf)
                          if steps else edges)
            for _ in range(abs(steps) - 1):
                values[-1] = np.nextafter(values[-1], np.inf if steps > 0 else -np.inf)
        v = np.abs(np.concatenate(values))
        expected = (v / bin_hu).astype(np.int64)
        got = np.array([_bin(float(x), 1.0 / bin_hu, bin_hu) for x in v])
        assert np.array_equal(got, expected), bin_hu


def test_kernel_compiled_without_a_cache_when_numba_finds_no_writable_place(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """numba refuses ``cache=True`` (RuntimeError "no locator available") when neither
    NUMBA_CACHE_DIR, the package's ``__pycache__`` nor the user-wide cache directory is
    writable: the kernel is then compiled in the process, with a warning naming
    NUMBA_CACHE_DIR, instead of failing the import."""
    import numba

    from scanbench.quality import ct_noise_kernel

    real = numba.njit

    def njit(**options: Any) -> Any:
        if options.get("cache"):
            raise RuntimeError("cannot cache function 'f': no locator available for file")
        return real(**options)

    monkeypatch.setattr(numba, "njit", njit)

    def f(x: float) -> float:
        return x + 1.0

    with pytest.warns(RuntimeWarning, match="NUMBA_CACHE_DIR"):
        jitted = ct_noise_kernel._jit(f)
    assert jitted(1.5) == 2.5 and jitted.signatures


def test_kernel_masks_equal_scipy() -> None:
    """The kernel's masks against scipy directly: the square erosion
    (``binary_erosion``), the air (``binary_erosion(~binary_dilation(iterations=r))`` in
    a given circle) and the body (``label`` + the first largest + ``binary_fill_holes``)
    on random blobs with many regions and holes, odd shapes and even and odd kernels."""
    from scipy import ndimage

    from scanbench.quality.ct_noise_kernel import _air, _body, _erode

    rng = np.random.default_rng(13)
    for i in range(40):
        shape = (int(rng.integers(9, 70)), int(rng.integers(9, 90)))
        img = ndimage.gaussian_filter(rng.standard_normal(shape), 1.0 + i % 3) * 3000.0
        img -= rng.uniform(0.0, 900.0)
        rows, cols = shape
        for size in (2, 3, 8, 9):
            mask = img > 0.0
            out = mask.astype(np.uint8)
            _erode(out, size, out, np.empty(cols, np.int32))
            assert np.array_equal(out.view(bool),
                                  ndimage.binary_erosion(mask, np.ones((size, size))))
        air = np.empty(shape, np.uint8)
        recon = rng.random(shape) < 0.9
        for radius, size in ((1, 3), (4, 2), (4, 8), (13, 5)):
            _air(img, -300.0, radius, size, recon, air, np.empty(shape, np.int32),
                 np.empty(shape, np.int32), np.zeros(-(-cols // 8) * 8, np.uint8),
                 np.empty(cols, np.int32), np.empty(cols, np.int32))
            far = ~ndimage.binary_dilation(img > -300.0, iterations=radius)
            expected = recon & ndimage.binary_erosion(far, np.ones((size, size)))
            assert np.array_equal(air.view(bool), expected), (i, radius, size)
        n = rows * ((cols + 1) // 2) + 1
        body = np.empty(shape, np.uint8)
        _body(img, -500.0, body, np.empty(n, np.int32), np.empty(n, np.int32),
              np.empty(rows + 1, np.int64), np.empty(n, np.int64), np.empty(n, np.int64),
              np.zeros(-(-cols // 8) * 8, np.uint8))
        labels, count = ndimage.label(img > -500.0)
        expected = np.zeros(shape, bool)
        if count:
            sizes = np.bincount(labels.ravel())
            sizes[0] = 0
            expected = ndimage.binary_fill_holes(labels == np.argmax(sizes))
        assert np.array_equal(body.view(bool), expected), i
    # two equal largest regions: the first in raster order (as argmax of the label sizes)
    img = np.full((20, 30), -1000.0)
    img[12:16, 2:6] = img[3:7, 20:24] = 40.0
    n = 20 * 15 + 1
    _body(img, -500.0, body := np.empty(img.shape, np.uint8), np.empty(n, np.int32),
          np.empty(n, np.int32), np.empty(21, np.int64), np.empty(n, np.int64),
          np.empty(n, np.int64), np.zeros(32, np.uint8))
    assert body.sum() == 16 and body[3:7, 20:24].all()


def test_slice_runs_cover_the_series_in_whole_slabs() -> None:
    """The runs given to the processes cover every slice once, in order, each starting
    on a slab's first slice (so the slabs, and the order their sums are added in, are
    those of one process)."""
    from scanbench.quality.ct_noise import _SLAB, _slice_runs

    for n in range(1, 90):
        for procs in (1, 2, 3, 5):
            runs = _slice_runs(n, procs, min_per_process=1)
            assert runs[0][0] == 0 and runs[-1][1] == n, (n, procs)
            assert all(a[1] == b[0] for a, b in itertools.pairwise(runs))
            assert all(a % _SLAB == 0 and b > a for a, b in runs)
            assert len(runs) == min(procs, -(-n // _SLAB))
    assert len(_slice_runs(500, 2)) == 2 and len(_slice_runs(40, 2)) == 1


@pytest.fixture(scope="module")
def long_patient() -> tuple[VirtualPatient, np.ndarray]:
    # 38 slices: runs of 12/12/14 or 20/18 slices, a run ending inside no slab of 4;
    # a chest, so lungs are holes and the three classes differ
    p = VirtualPatient(slices=38, matrix=128, region="chest", fat_mm=5.0)
    vol, _ = virtual_patient(p, seed=12)
    return p, vol


def test_split_over_processes_equals_one_process(long_patient: tuple) -> None:
    """Measured in 2 and 3 processes (helpers forked, each its run of slabs), the
    histograms, counts, per-slab sums and soft-tissue pixels equal one process's to the
    bit, and the three modes and two means are the same numbers: a run left out, counted
    twice or merged out of order would change the counts or the sums."""
    import os

    from scanbench.quality.ct_noise import _SlabSettings, measure_slices

    _p, vol = long_patient
    cfg = _SlabSettings(size=5, air_margin=6, low=0.0, high=100.0, bin_hu=0.1)
    one = measure_slices(vol, cfg, 1)
    assert one.pids == {os.getpid()} and len(one.sums) == 10
    ref = one.histograms(0.1)
    for procs in (2, 3):
        split = measure_slices(vol, cfg, procs, min_per_process=1)
        assert len(split.pids) == procs  # the helpers measured, not this process
        assert np.array_equal(split.counts, one.counts)
        assert np.array_equal(split.ns, one.ns)
        assert split.sums == one.sums and split.tissue_px == one.tissue_px
        for a, b in zip(split.histograms(0.1), ref, strict=True):
            assert a.mode() == b.mode() and a.mean() == b.mean() and a.n == b.n


def test_analysis_in_two_processes_gives_the_same_values(long_patient: tuple,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """The analysis with SCANBENCH_CT_NOISE_PROCESSES=2 on a series long enough to be
    split (64 slices) reports exactly the values of one process; a bad setting is named."""
    from scanbench.errors import AnalysisError
    from scanbench.quality.ct_noise import ENV_PROCESSES

    _p, vol = long_patient
    long_p = VirtualPatient(slices=76, matrix=128, region="chest", fat_mm=5.0)
    series = as_series(long_p, np.concatenate([vol, vol[::-1]]))
    results = []
    for procs in ("1", "2"):
        monkeypatch.setenv(ENV_PROCESSES, procs)
        results.append({(m.name, m.labels.get("method")): m.value
                        for m in get(ANALYSIS).run(series).measurements})
    assert results[0] == results[1]
    monkeypatch.setenv(ENV_PROCESSES, "two")
    with pytest.raises(AnalysisError, match="SCANBENCH_CT_NOISE_PROCESSES='two'"):
        get(ANALYSIS).run(series)


def test_phantom_find_body_equals_the_scipy_definition() -> None:
    """The CT phantom detectors' ``find_body`` (shared fast masks, scanbench.analysis.masks)
    finds the same object as scipy's label + largest + binary_fill_holes: the same area,
    centre and axis ratio to the bit, on random blobs and on a virtual patient's slices."""
    from scipy import ndimage

    from scanbench.analysis.ct.phantom_modules import find_body

    rng = np.random.default_rng(21)
    images = [ndimage.gaussian_filter(rng.standard_normal((70, 80)), 1.5 + i % 3) * 3000.0
              - rng.uniform(0.0, 900.0) for i in range(30)]
    p = VirtualPatient(slices=2, matrix=128, region="chest", fat_mm=0.0)
    images += list(virtual_patient(p, seed=5)[0])
    for img in images:
        mask = img > -400.0
        body = find_body(img, (0.7, 0.8))
        if not mask.any():
            assert body is None
            continue
        labels, _n = ndimage.label(mask)
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        ref = ndimage.binary_fill_holes(labels == np.argmax(sizes))
        assert body is not None
        assert body.area_mm2 == float(ref.sum()) * 0.7 * 0.8
        assert body.centre_yx == tuple(float(c) for c in ndimage.center_of_mass(ref))


def test_phantom_detectors_share_the_bodies_of_a_series() -> None:
    """The CatPhan and ACR 464 detectors find each slice's body once between them (a
    patient's series is looked at by both): the memoised list is the per-slice
    ``find_body``, and the second detector reuses the first one's."""
    from scanbench.analysis.ct import phantom_modules as pm

    p = VirtualPatient(slices=3, matrix=256)
    vol, _ = virtual_patient(p, seed=6)
    series = as_series(p, vol)
    _, dy, dx = series.spacing
    step = max(1, int(1.0 / min(dy, dx)))
    assert step == max(1, int(1.2 / min(dy, dx)))  # both detectors sample alike here
    assert get("ct.catphan").detect(series) < MIN_CONFIDENCE
    bodies = series.derived[f"ct.find_body.{step}"][1]
    assert get("ct.acr464").detect(series) < MIN_CONFIDENCE
    assert series.derived[f"ct.find_body.{step}"][1] is bodies
    # each slice's find_body, or (an adult trunk, larger than any phantom the detectors
    # take and not cut) its LargeBody (tests/unit/analysis/ct/test_ct_detect_exact.py)
    for got, v in zip(bodies, vol, strict=True):
        body = pm.find_body(v[::step, ::step], (dy * step, dx * step))
        if isinstance(got, pm.LargeBody):
            assert body is not None and not body.touches_edge
            assert body.radius_mm >= got.radius_min_mm > pm.LARGEST_PHANTOM_RADIUS_MM
        else:
            assert got == body


def test_mtf_point_search_stops_only_when_half_the_slices_cannot_hold_a_point() -> None:
    """``ct.mtf``'s detector stops searching a series for a wire or bead once more than
    half its slices have none (its condition, a point in at least half, then fails), so a
    patient's 500 slices are not all searched; with exactly half holding one it searches
    on and finds what ``find_point`` finds."""
    from scanbench.analysis.ct import mtf

    p = VirtualPatient(slices=8, matrix=64, fov_mm=32.0)  # 0.5 mm pixels
    for first, fraction in ((4, 0.5), (5, 0.375)):
        vol = np.zeros((8, 64, 64), np.float32)
        vol[first:, 30, 34] = 3000.0  # a bead in the last slices only
        full = mtf.find_point(as_series(p, vol))
        assert full is not None and full["fraction_of_slices"] == fraction
        series = as_series(p, vol)
        quick = mtf._point_if_most_slices(series)
        if fraction == 0.5:
            assert quick == full and series.derived["ct.point_object"][1] == full
        else:
            assert quick is None and "ct.point_object" not in series.derived


def test_default_processes_are_this_one_and_one_per_idle_core() -> None:
    """Without SCANBENCH_CT_NOISE_PROCESSES the series is split over this process and the
    cores other processes leave idle: a helper on a busy core only takes turns."""
    from scanbench.quality.ct_noise import idle_share

    assert idle_share(2, 0.1) == 2  # a node just done receiving: both cores
    assert idle_share(2, 0.8) == 1 and idle_share(2, 2.4) == 1  # the other core is busy
    assert idle_share(8, 3.0) == 5 and idle_share(8, 0.0) == 8 and idle_share(1, 0.0) == 1
    assert idle_share(4, 20.0) == 1


def test_busy_cores_reads_the_kernels_counters_and_sees_a_busy_process(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The default counts the cores other processes keep busy now, from /proc/stat's
    ``cpu`` line (idle + iowait against the first eight fields), not the 1-minute load
    average, which still holds what this process did in the last minute."""
    import os
    import subprocess
    import sys

    from scanbench.quality.ct_noise import busy_cores, cpu_counters, processes

    text = "cpu  100 5 50 1000 20 1 2 3 7 0\ncpu0 50 2 25 500 10 0 1 1 0 0\nintr 1 2\n"
    assert cpu_counters(text) == (1020, 1181)  # guest (7) is already inside user
    assert cpu_counters("intr 1 2\n") is None
    quiet = busy_cores()
    assert quiet is not None and 0.0 <= quiet <= (os.cpu_count() or 1)
    spinner = subprocess.Popen([sys.executable, "-c",
                                "import sys\nprint('ready', flush=True)\nwhile True: pass"],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert spinner.stdout is not None and spinner.stdout.readline() == "ready\n"
        busy = busy_cores(0.3)
        assert busy is not None and busy >= 0.5  # the spinner holds about one core
    finally:
        spinner.kill()
        spinner.wait()
    monkeypatch.delenv("SCANBENCH_CT_NOISE_PROCESSES", raising=False)
    assert processes(40) == 1  # too short to share: no sampling at all

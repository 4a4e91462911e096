"""scanbench.analysis.ndi gives what the scipy.ndimage / scipy.special / scipy.fft /
scikit-image calls it replaces in the automatic PET analyses give (issue 15).

Bit for bit everywhere a later discrete decision reads the values (labels, argmax,
thresholds); the Euclidean distance transform to the bit except where two nearest zero
pixels at different offsets round differently (checked to one ulp). The ACR MRI ports
(map_coordinates with NaN outside, largest_component, ...) are checked in
tests/unit/analysis/mr/test_ndi.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import fft, ndimage, special
from skimage.filters import threshold_otsu

from scanbench.analysis import ndi


def test_label_numbers_components_as_scipy_does() -> None:
    rng = np.random.default_rng(21)
    shapes = [(50,), (30, 41), (7, 9, 11), (3, 4, 5, 6), (1, 12), (12, 1), (1, 1, 9)]
    for k in range(140):
        shape = shapes[k % len(shapes)]
        mask = rng.random(shape) > rng.uniform(0.2, 0.8)
        want, n_want = ndimage.label(mask)
        got, n_got = ndi.label(mask)
        assert n_got == n_want and got.dtype == want.dtype, k
        assert np.array_equal(got, want), k
    # a component reached only through a later line (a U and an S), and edges
    u = np.array([[1, 0, 1, 0, 1], [1, 0, 1, 0, 1], [1, 1, 1, 0, 1], [0, 0, 0, 1, 1]], bool)
    for m in (u, u[::-1], u.T, np.zeros((4, 5), bool), np.ones((4, 5), bool)):
        want, n_want = ndimage.label(m)
        got, n_got = ndi.label(m)
        assert n_got == n_want and np.array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gaussian_filter_equals_scipy_bit_for_bit(dtype: type) -> None:
    rng = np.random.default_rng(22)
    vol: np.ndarray = rng.normal(100.0, 20.0, (14, 23, 19)).astype(dtype)
    for sigma, truncate in (([0.6, 1.3, 2.2], 2.5), ([1.0, 0.0, 3.1], 4.0), (1.7, 4.0)):
        want = ndimage.gaussian_filter(vol, sigma, truncate=truncate)
        got = ndi.gaussian_filter(vol, sigma, truncate=truncate)
        assert got.dtype == want.dtype
        assert np.array_equal(got, want), (sigma, truncate)
    img: np.ndarray = rng.normal(size=(40, 3)).astype(dtype)  # kernel wider than an axis
    assert np.array_equal(ndi.gaussian_filter(img, (1.5, 2.0)),
                          ndimage.gaussian_filter(img, (1.5, 2.0)))


def test_erosion_maximum_and_uniform_filters_equal_scipy() -> None:
    rng = np.random.default_rng(23)
    for k in range(40):
        mask = rng.random((25, 31)) > rng.uniform(0.05, 0.5)
        it = k % 4 + 1
        assert np.array_equal(ndi.binary_erosion_cross(mask, it),
                              ndimage.binary_erosion(mask, iterations=it)), k
        edt = rng.random((25, 31)) * 9.0
        edt[rng.random(edt.shape) > 0.6] = 0.0
        assert np.array_equal(ndi.maximum_filter3(edt),
                              ndimage.maximum_filter(edt, size=3, mode="constant")), k
    assert not ndi.binary_erosion_cross(np.ones((5, 5), bool), 3).any()
    for dtype in (np.float32, np.float64):
        prof = rng.normal(size=37).astype(dtype)
        prof[:4] = 0
        want = ndimage.uniform_filter1d(prof, 3)
        got = ndi.uniform_filter1d(prof, 3)
        assert got.dtype == want.dtype and np.array_equal(got, want)


@pytest.mark.parametrize("mode", ["nearest", "constant"])
def test_map_coordinates_linear_modes_equal_scipy_bit_for_bit(mode: str) -> None:
    rng = np.random.default_rng(24)
    img = rng.normal(size=(40, 50))
    rows = np.concatenate([rng.uniform(-3.0, 43.0, 3000), np.arange(40.0), [39.0, 0.0, -0.5]])
    cols = np.concatenate([rng.uniform(-3.0, 53.0, 3000), np.full(40, 49.0), [0.0, 49.0, 2.0]])
    want = ndimage.map_coordinates(img, [rows, cols], order=1, mode=mode)
    got = ndi.map_coordinates_linear(img, [rows, cols], mode=mode, cval=0.0)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("sampling", [(2.0, 2.0), (2.734375, 2.734375), (4.07, 3.3)])
def test_distance_transform_edt_equals_scipy(sampling: tuple[float, float]) -> None:
    rng = np.random.default_rng(25)
    yy, xx = np.mgrid[:60, :70]
    worst = 0.0
    for _ in range(8):
        mask = ((yy - 30) ** 2 / rng.uniform(100, 700) + (xx - 35) ** 2 / rng.uniform(100, 900)
                < 1) | (rng.random(yy.shape) > 0.97)
        mask = np.pad(mask, 1)
        want = ndimage.distance_transform_edt(mask, sampling=sampling)
        got = ndi.distance_transform_edt(mask, sampling)
        np.testing.assert_array_max_ulp(got, want, maxulp=1)
        worst = max(worst, float(np.mean(got != want)))
    assert worst < 0.01  # ties of differently rounded offsets are rare
    with pytest.raises(ValueError, match="no zero pixel"):
        ndi.distance_transform_edt(np.ones((3, 3), bool), (1.0, 1.0))


def test_threshold_otsu_equals_scikit_image() -> None:
    rng = np.random.default_rng(26)
    for k in range(20):
        dtype = (np.float32, np.float64)[k % 2]
        values = np.concatenate([rng.gamma(2.0, 3.0, 4000), rng.normal(60.0, 5.0, 9000)])
        values = values.astype(dtype)
        assert ndi.threshold_otsu(values) == float(threshold_otsu(values)), k
    assert ndi.threshold_otsu(np.full(10, 3.5)) == 3.5
    two = np.array([0.0] * 10 + [1.0] * 5)
    assert ndi.threshold_otsu(two) == float(threshold_otsu(two))


def test_fft_helpers_equal_scipy_fft_bit_for_bit() -> None:
    rng = np.random.default_rng(27)
    for shape in ((50, 60), (81, 75)):
        stack = rng.normal(size=(3, *shape))
        size = (fft.next_fast_len(shape[0] + 20, real=True),
                fft.next_fast_len(shape[1] + 21, real=True))
        spec = fft.rfft2(stack, size)
        assert np.array_equal(np.fft.rfft2(stack, size), spec)
        prod = spec * spec[0]
        assert np.array_equal(ndi.irfft2(prod, size), fft.irfft2(prod, size))


def test_erf_equals_scipy_bit_for_bit() -> None:
    rng = np.random.default_rng(28)
    x = np.concatenate([np.linspace(-12.0, 12.0, 400001), rng.normal(0.0, 4.0, 50000),
                        np.nextafter(1.0, [0.0, 2.0]), np.nextafter(6.0, [0.0, 7.0]),
                        [0.0, -0.0, 1.0, -1.0, 6.0, 27.0, 5e-324, np.nan, np.inf, -np.inf]])
    assert np.array_equal(ndi.erf(x), special.erf(x), equal_nan=True)
    assert ndi.erf(np.zeros((2, 3))).shape == (2, 3)


def test_libm_exp_is_the_c_library_exp() -> None:
    """The erf port's exactness rests on numpy's scalar (C library) exp path; this fails if
    numpy ever vectorises a reversed array's exp."""
    x = -np.random.default_rng(29).uniform(0.0, 40.0, 20000) ** 2 / 40.0
    assert np.array_equal(ndi.libm_exp(x), np.array([math.exp(v) for v in x.tolist()]))

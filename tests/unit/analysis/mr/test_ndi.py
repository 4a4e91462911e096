"""scanbench.analysis.mr.ndi gives what the scipy.ndimage / scipy.special calls it replaces give."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage, special

from scanbench.analysis.mr import ndi


def _scipy_linear(image: np.ndarray, coords: list[np.ndarray]) -> np.ndarray:
    out: np.ndarray = ndimage.map_coordinates(image, coords, order=1, mode="constant",
                                              cval=np.nan)
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_map_coordinates_linear_2d_equals_scipy_bit_for_bit(dtype: type) -> None:
    rng = np.random.default_rng(5)
    img: np.ndarray = (rng.normal(100.0, 30.0, (64, 57))).astype(dtype)
    img[10, 12] = np.nan  # a NaN spreads to every point that reads it, even at zero weight
    img[62, 20] = np.nan  # read at zero weight from the last row (mirrored neighbour)
    rows = np.concatenate([rng.uniform(-2.0, 66.0, 4000), np.arange(64.0), [63.0, 0.0, -0.0],
                           [np.nan, 5.0, 10.0, 9.5, 63.0 + 1e-9, -1e-9, 63.0]])
    cols = np.concatenate([rng.uniform(-2.0, 59.0, 4000), np.full(64, 56.0), [56.0, 0.0, 3.0],
                           [5.0, np.inf, 11.0, 12.0, 3.0, 3.0, 20.0]])
    want = _scipy_linear(img, [rows, cols])
    got = ndi.map_coordinates_linear(img, [rows, cols])
    assert got.dtype == want.dtype
    assert np.array_equal(got, want, equal_nan=True)
    # the edges, exactly on the last row and column, are read (not NaN) as SciPy reads them
    assert np.isfinite(got[4000 + 63]) and np.isfinite(got[4064])
    assert np.isnan(got[-1])


def test_map_coordinates_linear_3d_and_one_pixel_axes_equal_scipy() -> None:
    rng = np.random.default_rng(6)
    stack = rng.normal(size=(3, 30, 40))
    stack[1, 5, 5] = np.nan
    coords = [rng.integers(0, 3, 3000).astype(float), rng.uniform(-1.0, 31.0, 3000),
              rng.uniform(-1.0, 41.0, 3000)]
    assert np.array_equal(ndi.map_coordinates_linear(stack, coords),
                          _scipy_linear(stack, coords), equal_nan=True)
    row = rng.normal(size=(1, 9))
    pts = [np.zeros(5), np.array([0.0, 1.5, 8.0, 8.5, -0.5])]
    assert np.array_equal(ndi.map_coordinates_linear(row, pts), _scipy_linear(row, pts),
                          equal_nan=True)


def test_largest_component_is_scipy_labels_largest() -> None:
    rng = np.random.default_rng(7)
    for k in range(60):
        mask = rng.random((37, 45)) > rng.uniform(0.3, 0.75)
        labels, n = ndimage.label(mask)
        sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
        assert np.array_equal(np.asarray(ndi.largest_component(mask)),
                              labels == int(np.argmax(sizes)) + 1), k
    # a U shape joined only through its bottom row, and a tie won by the first in raster order
    u = np.zeros((8, 9), dtype=bool)
    u[1:7, 1] = u[1:7, 4] = u[6, 1:5] = True
    tie = np.zeros((5, 9), dtype=bool)
    tie[3, 0:3] = tie[1, 5:8] = True
    tie2 = np.zeros((4, 9), dtype=bool)  # the first component's runs on two rows
    tie2[0:2, 0] = tie2[0, 5:7] = True
    for mask in (u, tie, tie2):
        labels, n = ndimage.label(mask)
        sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
        got = np.asarray(ndi.largest_component(mask))
        assert np.array_equal(got, labels == int(np.argmax(sizes)) + 1)
    assert ndi.largest_component(np.zeros((4, 4), dtype=bool)) is None


def test_binary_dilation_cross_equals_scipy() -> None:
    rng = np.random.default_rng(8)
    mask = rng.random((40, 33)) > 0.97
    mask[0, 5] = mask[39, 32] = True  # at the border
    for it in (1, 2, 5):
        assert np.array_equal(ndi.binary_dilation_cross(mask, it),
                              ndimage.binary_dilation(mask, iterations=it))


@pytest.mark.parametrize("size", [1, 2, 5, 20, 21])
def test_uniform_filter1d_equals_scipy_bit_for_bit(size: int) -> None:
    x = np.random.default_rng(size).normal(50.0, 100.0, 400)
    assert np.array_equal(ndi.uniform_filter1d(x, size), ndimage.uniform_filter1d(x, size))


@pytest.mark.parametrize("sigma", [0.4, 1.3, 4.2])
def test_gaussian_filter_equals_scipy(sigma: float) -> None:
    t = (np.random.default_rng(9).random((50, 61)) > 0.7).astype(float)
    want = ndimage.gaussian_filter(t, sigma)
    np.testing.assert_allclose(ndi.gaussian_filter(t, sigma), want, rtol=0, atol=1e-15)


def test_erf_equals_scipy() -> None:
    x = np.linspace(-6.0, 6.0, 2001).reshape(23, 87)
    np.testing.assert_allclose(ndi.erf(x), special.erf(x), rtol=1e-15, atol=1e-16)


def test_map_coordinates_linear_in_chunks_equals_scipy() -> None:
    """More points than one pass takes (``ndi.CHUNK``), in a 2-D coordinate array: the
    same values, in the same places, as SciPy's."""
    rng = np.random.default_rng(10)
    img = rng.normal(100.0, 30.0, (80, 90))
    n = 3 * ndi.CHUNK + 17
    rows = rng.uniform(-2.0, 82.0, n).reshape(-1, 1)
    cols = rng.uniform(-2.0, 92.0, n).reshape(-1, 1)
    got = ndi.map_coordinates_linear(img, [rows, cols])
    assert got.shape == rows.shape
    want = _scipy_linear(img, [rows.ravel(), cols.ravel()]).reshape(rows.shape)
    assert np.array_equal(got, want, equal_nan=True)

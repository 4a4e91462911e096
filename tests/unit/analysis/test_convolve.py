"""scanbench.analysis.convolve.fftconvolve_same equals scipy.signal.fftconvolve bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from scanbench.analysis.convolve import fftconvolve, fftconvolve_same


@pytest.mark.parametrize(("shape1", "shape2"), [
    ((256, 256), (31, 31)), ((255, 200), (30, 17)), ((97,), (12,)), ((40, 1), (5, 1)),
    ((7, 9), (11, 13)), ((64, 64, 5), (9, 9, 1)),
])
def test_equals_scipy_signal_bit_for_bit(shape1: tuple[int, ...],
                                          shape2: tuple[int, ...]) -> None:
    rng = np.random.default_rng(sum(shape1) + sum(shape2))
    a, b = rng.normal(100.0, 20.0, shape1), rng.random(shape2)
    want = signal.fftconvolve(a, b, mode="same")
    got = fftconvolve_same(a, b)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert np.array_equal(got, want)


def test_integer_and_float32_inputs_as_scipy() -> None:
    rng = np.random.default_rng(3)
    img = rng.integers(0, 4096, (128, 120)).astype(np.uint16)
    k = np.ones((9, 9), dtype=np.float32) / 81
    for a, b in ((img, k), (img.astype(np.float32), k), (img, img[:15, :15].astype(int))):
        assert np.array_equal(fftconvolve_same(a, b), signal.fftconvolve(a, b, mode="same"))


def test_refuses_mismatched_dimensions_and_complex_input() -> None:
    with pytest.raises(ValueError):
        fftconvolve_same(np.ones((4, 4)), np.ones(3))
    with pytest.raises(ValueError):
        fftconvolve_same(np.ones((4, 4)), np.ones((3, 3)) * 1j)


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize(("shape1", "shape2"), [((120, 97), (15, 16)), ((15, 16), (120, 97)),
                                                ((64,), (9,)), ((30, 1), (4, 1))])
def test_every_mode_equals_scipy_signal(mode: str, shape1: tuple[int, ...],
                                        shape2: tuple[int, ...]) -> None:
    rng = np.random.default_rng(len(mode) + sum(shape1))
    a, b = rng.normal(0.0, 5.0, shape1), rng.normal(1.0, 1.0, shape2)
    assert np.array_equal(fftconvolve(a, b, mode), signal.fftconvolve(a, b, mode=mode))


def test_next_fast_len_real_equals_scipy() -> None:
    from scipy import fft

    from scanbench.analysis.convolve import next_fast_len_real

    assert [next_fast_len_real(n) for n in range(1, 3000)] == [
        fft.next_fast_len(n, True) for n in range(1, 3000)]


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize(("shape1", "shape2"), [((120, 97), (15, 16)), ((97,), (12,)),
                                                ((64, 64, 5), (9, 9, 1))])
def test_numpy_backend_equals_scipy_signal_to_rounding(mode: str, shape1: tuple[int, ...],
                                                       shape2: tuple[int, ...]) -> None:
    """``backend="numpy"`` (no scipy.fft import, the ACR MRI analyses): the same result to
    rounding in the last bits."""
    rng = np.random.default_rng(len(mode) + sum(shape1))
    a, b = rng.normal(100.0, 20.0, shape1), rng.random(shape2)
    want = signal.fftconvolve(a, b, mode=mode)
    got = fftconvolve(a, b, mode, backend="numpy")
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())
    with pytest.raises(ValueError, match="backend"):
        fftconvolve(a, b, mode, backend="cupy")


@pytest.mark.parametrize(("image_shape", "template_shape", "dtype"), [
    ((128, 128), (21, 21), np.float64), ((101, 90), (12, 17), np.float64),
    ((64, 70), (9, 8), np.float32)])
def test_match_template_valid_equals_scikit_image_to_rounding(
        image_shape: tuple[int, int], template_shape: tuple[int, int], dtype: type) -> None:
    from skimage.feature import match_template as skimage_match_template

    from scanbench.analysis.convolve import match_template_valid

    rng = np.random.default_rng(sum(template_shape))
    image: np.ndarray = (rng.random(image_shape) * 1000).astype(dtype)
    template = image[3:3 + template_shape[0], 5:5 + template_shape[1]] + rng.normal(
        0.0, 50.0, template_shape).astype(dtype)
    want = skimage_match_template(image, template, pad_input=False)
    got = match_template_valid(image, template)
    assert got.shape == want.shape and got.dtype == want.dtype
    tol = 1e-9 if dtype is np.float64 else 2e-3
    np.testing.assert_allclose(got, want, rtol=0, atol=tol)
    assert np.unravel_index(np.argmax(got), got.shape) == (3, 5)

"""scanbench.analysis.convolve.fftconvolve_same equals scipy.signal.fftconvolve bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from scanbench.analysis.convolve import fftconvolve_same


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

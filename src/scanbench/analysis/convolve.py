"""FFT convolution on ``scipy.fft`` alone (no ``scipy.signal``).

``scipy.signal`` pulls in ``scipy.stats`` and most of SciPy when imported (about 1 s
on the 2-core benchmark machine, bench/README.md), for what the analyses need from
it: :func:`scipy.signal.fftconvolve` in ``mode="same"``. :func:`fftconvolve_same`
performs the same ``scipy.fft`` calls on the same padded shapes, in the same order,
so its result is identical, bit for bit, to SciPy's (checked by
tests/unit/analysis/test_convolve.py on real and integer inputs of odd and even sizes).
"""

from __future__ import annotations

import numpy as np


def fftconvolve_same(in1: np.ndarray, in2: np.ndarray) -> np.ndarray:
    """``scipy.signal.fftconvolve(in1, in2, mode="same")`` for real arrays.

    Method (SciPy 1.17's ``fftconvolve``): the full linear convolution over the axes
    where neither input has length 1, computed as ``irfftn(rfftn(in1) * rfftn(in2))``
    on each axis padded to ``scipy.fft.next_fast_len(s1 + s2 - 1, real=True)``, cut to
    ``s1 + s2 - 1``, then the central ``in1.shape`` part (``mode="same"``).
    """
    from scipy import fft

    a, b = np.asarray(in1), np.asarray(in2)
    if a.ndim != b.ndim:
        raise ValueError("in1 and in2 should have the same dimensionality")
    if np.iscomplexobj(a) or np.iscomplexobj(b):
        raise ValueError("fftconvolve_same takes real arrays only")
    if a.size == 0 or b.size == 0:
        return np.asarray([])
    s1, s2 = a.shape, b.shape
    axes = [i for i in range(a.ndim) if s1[i] != 1 and s2[i] != 1]
    for i in range(a.ndim):  # broadcasting axes must match, as SciPy requires
        if i not in axes and not (s1[i] == s2[i] or s1[i] == 1 or s2[i] == 1):
            raise ValueError(f"incompatible shapes for in1 and in2: {s1} and {s2}")
    shape = [max(s1[i], s2[i]) if i not in axes else s1[i] + s2[i] - 1 for i in range(a.ndim)]
    if not axes:
        ret = a * b
    else:
        if a.dtype.kind in "iu":
            a = a.astype(np.float64)
        if b.dtype.kind in "iu":
            b = b.astype(np.float64)
        fshape = [fft.next_fast_len(shape[i], True) for i in axes]
        ret = fft.irfftn(fft.rfftn(a, fshape, axes=axes) * fft.rfftn(b, fshape, axes=axes),
                         fshape, axes=axes)
        ret = ret[tuple(slice(n) for n in shape)]
    start = [(ret.shape[k] - s1[k]) // 2 for k in range(ret.ndim)]
    return ret[tuple(slice(start[k], start[k] + s1[k]) for k in range(ret.ndim))].copy()

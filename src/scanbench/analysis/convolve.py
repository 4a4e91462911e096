"""FFT convolution on ``scipy.fft`` alone (no ``scipy.signal``).

``scipy.signal`` pulls in ``scipy.stats`` and most of SciPy when imported (about 1 s
on the 2-core benchmark machine, bench/README.md), for what the analyses need from
it: :func:`scipy.signal.fftconvolve`, directly and through scikit-image's
``match_template``. :func:`fftconvolve` performs the same ``scipy.fft`` calls on the
same padded shapes, in the same order, so its result is identical, bit for bit, to
SciPy's; :func:`match_template_valid` gives scikit-image's ``match_template`` to
rounding (both checked by tests/unit/analysis/test_convolve.py on inputs of odd and even
sizes).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def fftconvolve_same(in1: np.ndarray, in2: np.ndarray, *, backend: str = "scipy") -> np.ndarray:
    """``scipy.signal.fftconvolve(in1, in2, mode="same")`` for real arrays (see
    :func:`fftconvolve`)."""
    return fftconvolve(in1, in2, "same", backend=backend)


def next_fast_len_real(n: int) -> int:
    """``scipy.fft.next_fast_len(n, real=True)``: the smallest 5-smooth number (only prime
    factors 2, 3 and 5, pocketfft's fast real lengths) at least ``n``."""
    if n <= 6:
        return max(n, 1)
    best = 2 * n  # a power of two at most 2n exists, so the answer is below this
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            # the smallest power of two times p35 reaching n
            q = p35
            while q < n:
                q *= 2
            best = min(best, q)
            p35 *= 3
        p5 *= 5
    return best


def fftconvolve(in1: np.ndarray, in2: np.ndarray, mode: str = "full", *,
                backend: str = "scipy") -> np.ndarray:
    """``scipy.signal.fftconvolve(in1, in2, mode)`` for real arrays, ``mode`` "full",
    "same" or "valid".

    Method (SciPy 1.17's ``fftconvolve``): the full linear convolution over the axes
    where neither input has length 1, computed as ``irfftn(rfftn(in1) * rfftn(in2))``
    on each axis padded to ``scipy.fft.next_fast_len(s1 + s2 - 1, real=True)``, cut to
    ``s1 + s2 - 1``, then its central ``in1.shape`` ("same") or ``s1 - s2 + 1``
    ("valid", the inputs swapped first when ``in1`` is the smaller) part.

    ``backend="numpy"`` performs the same transforms with ``numpy.fft`` (pocketfft too,
    numpy 2), for callers that avoid importing ``scipy.fft`` (about 0.13 s, its
    array-API layer; the ACR MRI analyses): the same padded lengths, and values equal to
    SciPy's to rounding in the last bits (multi-axis inverse transforms are summed in
    another order), not bit for bit.
    """
    fft: Any
    if backend == "numpy":
        fft = np.fft
        fast_len = next_fast_len_real
    elif backend == "scipy":
        import scipy.fft

        fft = scipy.fft

        def fast_len(n: int) -> int:
            return int(fft.next_fast_len(n, True))
    else:
        raise ValueError(f"unknown FFT backend {backend!r}: 'scipy' or 'numpy'")

    a, b = np.asarray(in1), np.asarray(in2)
    if mode not in ("full", "same", "valid"):
        raise ValueError("acceptable mode flags are 'valid', 'same', or 'full'")
    if a.ndim != b.ndim:
        raise ValueError("in1 and in2 should have the same dimensionality")
    if np.iscomplexobj(a) or np.iscomplexobj(b):
        raise ValueError("fftconvolve takes real arrays only")
    if a.size == 0 or b.size == 0:
        return np.asarray([])
    axes = [i for i in range(a.ndim) if a.shape[i] != 1 and b.shape[i] != 1]
    for i in range(a.ndim):  # broadcasting axes must match, as SciPy requires
        if i not in axes and not (a.shape[i] == b.shape[i] or 1 in (a.shape[i], b.shape[i])):
            raise ValueError(f"incompatible shapes for in1 and in2: {a.shape} and {b.shape}")
    if mode == "valid" and a.ndim:
        ok1 = all(a.shape[i] >= b.shape[i] for i in axes)
        ok2 = all(b.shape[i] >= a.shape[i] for i in axes)
        if not (ok1 or ok2):
            raise ValueError("For 'valid' mode, one must be at least as large as the other "
                             "in every dimension")
        if not ok1:
            a, b = b, a
    s1, s2 = a.shape, b.shape
    shape = [max(s1[i], s2[i]) if i not in axes else s1[i] + s2[i] - 1 for i in range(a.ndim)]
    if not axes:
        ret = a * b
    else:
        if a.dtype.kind in "iu":
            a = a.astype(np.float64)
        if b.dtype.kind in "iu":
            b = b.astype(np.float64)
        fshape = [fast_len(shape[i]) for i in axes]
        ret = fft.irfftn(fft.rfftn(a, fshape, axes=axes) * fft.rfftn(b, fshape, axes=axes),
                         fshape, axes=axes)
        ret = ret[tuple(slice(n) for n in shape)]
    if mode == "full":
        return ret.copy()
    keep = s1 if mode == "same" else [
        ret.shape[k] if k not in axes else s1[k] - s2[k] + 1 for k in range(ret.ndim)]
    start = [(ret.shape[k] - keep[k]) // 2 for k in range(ret.ndim)]
    return ret[tuple(slice(start[k], start[k] + keep[k]) for k in range(ret.ndim))].copy()


def match_template_valid(image: np.ndarray, template: np.ndarray) -> np.ndarray:
    """:func:`skimage.feature.match_template` (``pad_input=False``) computed on the image
    alone, with ``numpy.fft``: equal to it to rounding in the last bits, in about half
    the FFT work.

    Why: scikit-image zero-pads the image by the template's size on every side and
    correlates the padded image, then keeps only the positions where the template lies
    wholly inside the image; those correlations and window sums read no padding, so the
    "valid" correlation of the image itself (an FFT of ``image + template - 1`` instead of
    ``image + 3 template - 1`` per axis) and window sums by a summed-area table give
    them. Same formula (Lewis 1995): numerator ``Σ I T - Σ I · mean T``, denominator
    ``sqrt((Σ I² - (Σ I)² / n) · Σ (T - mean T)²)``, 0 where that is not above float eps.
    One difference: where the image is constant over a window scikit-image gives 0, and
    here the summed-area table's rounding can leave a small value instead (of order 1e-7
    for float64 images of values near 1000); the ACR resolution test reads only the
    score's maximum, which such windows never hold.
    """
    if image.ndim != 2 or template.ndim != 2:
        raise ValueError("match_template takes a 2-D image and a 2-D template")
    if np.any(np.less(image.shape, template.shape)):
        raise ValueError("Image must be larger than template.")
    float_dtype = np.float32 if image.dtype in (np.float16, np.float32) else np.float64
    img = image.astype(float_dtype, copy=False)
    h, w = template.shape
    window_sum = _valid_window_sums(img, h, w)
    window_sum2 = _valid_window_sums(img**2, h, w)
    template_mean = template.mean()
    template_ssd = np.sum((template - template_mean) ** 2)
    xcorr = fftconvolve(img, template[::-1, ::-1], mode="valid", backend="numpy")
    numerator = xcorr - window_sum * template_mean
    denominator = window_sum2 - window_sum * window_sum / (h * w)
    denominator *= template_ssd
    np.maximum(denominator, 0, out=denominator)  # rounding can make it slightly negative
    np.sqrt(denominator, out=denominator)
    response = np.zeros_like(xcorr, dtype=float_dtype)
    mask = denominator > np.finfo(float_dtype).eps  # a constant window: no correlation
    response[mask] = numerator[mask] / denominator[mask]
    return response


def _valid_window_sums(image: np.ndarray, h: int, w: int) -> np.ndarray:
    """Sums of ``image`` over every ``h`` x ``w`` window lying wholly inside it (a
    summed-area table)."""
    table = np.zeros((image.shape[0] + 1, image.shape[1] + 1), dtype=image.dtype)
    np.cumsum(np.cumsum(image, axis=0), axis=1, out=table[1:, 1:])
    return table[h:, w:] - table[:-h, w:] - table[h:, :-w] + table[:-h, :-w]

"""The CT global-noise measurement's numpy form (``scanbench.quality.ct_noise`` before its
per-slice passes were fused in the numba kernel, ``scanbench.quality.ct_noise_kernel``):
the reference the kernel is tested against to the bit (tests/unit/quality/test_ct_noise.py),
itself tested against scipy's filters and morphology there.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from scipy import ndimage

from scanbench.analysis.masks import largest_region_filled
from scanbench.quality.ct_noise import _SLAB, SlicePartial, _SlabSettings


def _box_rows(a: np.ndarray, size: int, out: np.ndarray | None = None) -> np.ndarray:
    """Sum over the window ``[i - size//2, i + size - 1 - size//2]`` along axis -2 with
    scipy's ``reflect`` border, as a running sum over the rows:
    each step one row added and one taken away for every slice and column at once, because
    ``uniform_filter1d`` along a non-contiguous axis copies every column out and back and
    cost about twice as much (measured on 512² slices)."""
    lo = size // 2
    rows = a.shape[-2]
    # source row of each row of the reflected extension (no padded copy of the image)
    src = np.arange(-lo, rows + size - 1 - lo)
    src = np.where(src < 0, -src - 1, np.where(src >= rows, 2 * rows - src - 1, src)).tolist()
    out = np.empty_like(a) if out is None else out
    acc = a[..., src[:size], :].sum(axis=-2)
    out[..., 0, :] = acc
    for i in range(1, rows):
        acc += a[..., src[i + size - 1], :]
        acc -= a[..., src[i - 1], :]
        out[..., i, :] = acc
    return out


def local_moments(vol: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Local mean and local mean of squares (float64) in the ``size × size`` in-plane window
    around each pixel of a slice ``(y, x)`` or a stack of slices ``(z, y, x)``, borders
    reflected: the two ``scipy.ndimage.uniform_filter`` maps of :func:`local_sd_reference`,
    computed separably on a whole stack at once (rows by ``uniform_filter1d``, columns by a
    running sum), equal to them to floating-point rounding."""
    x = np.empty((2, *vol.shape), dtype=np.float64)
    x[0] = vol
    m, d = _moments(x, size)
    return m[0] / d, m[1] / d


def _moments(x: np.ndarray, size: int,
             work: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, float]:
    """:func:`local_moments` of ``x[0]`` (float64), using ``x[1]`` as scratch: both maps in
    one array, so each filter pass handles the values and their squares together. Returned
    as ``(maps, d)``: the moments are ``maps / d``, left to the caller to divide where it
    needs them (the same numbers as dividing every pixel first). ``work``: two arrays of
    ``x``'s shape to write into, reused from slab to slab (a fresh 16 MB array is mapped
    and zeroed page by page each time)."""
    np.multiply(x[0], x[0], out=x[1])
    w1, w2 = work if work is not None else (None, None)
    m = ndimage.uniform_filter1d(x, size, axis=-1, mode="reflect", output=w1)
    if size <= x.shape[-2]:
        return _box_rows(m, size, out=w2), float(size)
    # a window taller than the image reflects more than once: scipy's own filter
    return ndimage.uniform_filter1d(m, size, axis=-2, mode="reflect", output=w2), 1.0


def _sd_of_sums(s1: np.ndarray, s2: np.ndarray, d: float, n: int) -> np.ndarray:
    """``sd_from_moments(s1 / d, s2 / d, n)`` computed in place in ``s1`` and ``s2`` (the
    same operations in the same order, so the same numbers, without temporaries)."""
    np.divide(s1, d, out=s1)
    np.divide(s2, d, out=s2)
    np.multiply(s1, s1, out=s1)
    np.subtract(s2, s1, out=s2)
    np.clip(s2, 0.0, None, out=s2)
    np.multiply(s2, n, out=s2)
    np.divide(s2, n - 1, out=s2)
    return np.sqrt(s2, out=s2)


def sd_from_moments(m: np.ndarray, m2: np.ndarray, n: int) -> np.ndarray:
    """SD (ddof 1) of ``n`` values from their mean ``m`` and mean of squares ``m2``."""
    return np.sqrt(np.clip(m2 - m * m, 0.0, None) * n / (n - 1))


def local_sd(img: np.ndarray, size: int) -> np.ndarray:
    """SD (ddof 1) of the pixel values in the ``size × size`` window around each pixel (of
    a slice, or in-plane for each slice of a stack), borders reflected."""
    return sd_from_moments(*local_moments(img, size), size * size)



def local_sd_reference(img: np.ndarray, size: int) -> np.ndarray:
    """:func:`local_sd` of one slice by ``scipy.ndimage.uniform_filter`` (the definition
    the fast computation is tested against)."""
    img = img.astype(np.float64)
    n = size * size
    m = ndimage.uniform_filter(img, size, mode="reflect")
    m2 = ndimage.uniform_filter(img * img, size, mode="reflect")
    var = np.clip(m2 - m * m, 0.0, None) * n / (n - 1)
    return np.sqrt(var)


def _class_histograms(sd: np.ndarray, cls: np.ndarray, bin_width: float
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Histograms (bins of ``bin_width`` from 0, as :meth:`SdHistogram.add`), sums and
    counts of the values ``sd`` of each class 0, 1, 2 in ``cls``, by one ``bincount`` of
    bin × 3 + class instead of one boolean selection and histogram per class."""
    sums = np.bincount(cls, weights=sd, minlength=3)
    if np.isfinite(sums).all():  # no NaN: every SD >= 0, so truncation is the floor
        idx = (sd / bin_width).astype(np.int64)
        idx *= 3
        idx += cls
        counts = np.bincount(idx, minlength=3)
        counts = np.pad(counts, (0, (-counts.size) % 3)).reshape(-1, 3).T
        return counts, sums, counts.sum(axis=1)
    idx = np.floor(sd / bin_width).astype(np.int64)
    code = idx * 3 + cls
    code = code[idx >= 0]  # NaN (from NaN pixels) counted in n and the sum, never binned
    counts = np.bincount(code, minlength=3)
    counts = np.pad(counts, (0, (-counts.size) % 3)).reshape(-1, 3).T
    return counts, sums, np.bincount(cls, minlength=3)



# Binary morphology on bit-packed rows: 64 pixels of a row per uint64 word (bit j of word w
# is column 64·w + j), so a shift along a row is two word shifts and an OR, and a shift
# across rows a slice. Erosions and dilations of a 512² mask then cost a few dozen
# operations on 4,096 words instead of scipy's filters over 262,144 bytes (measured about
# 5x faster than the separable minimum filter and the taxicab distance transform).
def _pack(mask: np.ndarray) -> np.ndarray:
    pad = (-mask.shape[-1]) % 64
    if pad:  # columns past the image are background, as scipy's border value
        mask = np.pad(mask, [(0, 0)] * (mask.ndim - 1) + [(0, pad)])
    return np.packbits(mask, axis=-1, bitorder="little").view("<u8")


def _unpack(words: np.ndarray, cols: int) -> np.ndarray:
    return np.unpackbits(words.view(np.uint8), axis=-1, count=cols,
                         bitorder="little").view(bool)


def _shift_cols(w: np.ndarray, k: int) -> np.ndarray:
    """Pixel ``i`` of each row takes pixel ``i + k`` (0 < |k| < 64; background past the
    ends)."""
    out = np.empty_like(w)
    if k > 0:
        np.right_shift(w, np.uint64(k), out=out)
        out[..., :-1] |= w[..., 1:] << np.uint64(64 - k)
    else:
        np.left_shift(w, np.uint64(-k), out=out)
        out[..., 1:] |= w[..., :-1] >> np.uint64(64 + k)
    return out


def _shift_rows(w: np.ndarray, k: int) -> np.ndarray:
    """Row ``y`` takes row ``y + k`` (background past the ends)."""
    out = np.zeros_like(w)
    if k > 0:
        out[..., :-k, :] = w[..., k:, :]
    elif k < 0:
        out[..., -k:, :] = w[..., :k, :]
    else:
        out[...] = w
    return out


def _erode_run(w: np.ndarray, size: int, shift: Any) -> np.ndarray:
    """AND over the window ``[i - size//2, i + size - 1 - size//2]`` along one axis, by
    doubling: after each step pixel ``i`` holds the AND of ``i .. i + length - 1``."""
    length = 1
    while length < size:
        step = min(length, size - length)
        w = w & shift(w, step)
        length += step
    return shift(w, -(size // 2)) if size // 2 else w


def erode_square(mask: np.ndarray, size: int) -> np.ndarray:
    """``ndimage.binary_erosion(mask, np.ones((size, size)))`` (outside the image counts as
    background) of a slice, or in-plane of each slice of a stack; on bit-packed rows."""
    rows, cols = mask.shape[-2:]
    if size >= 64 or size >= rows:  # beyond the packed shifts: scipy's separable filter
        out = ndimage.minimum_filter(mask.view(np.uint8), size=(1,) * (mask.ndim - 2)
                                     + (size, size), mode="constant", cval=0)
        return out.astype(bool)
    w = _erode_run(_pack(mask), size, _shift_cols)
    w = _erode_run(w, size, _shift_rows)
    return _unpack(w, cols)


def dilate_diamond(mask: np.ndarray, radius: int) -> np.ndarray:
    """``ndimage.binary_dilation(mask, iterations=radius)`` (the 4-connected cross applied
    ``radius`` times: a diamond, L1 distance ≤ radius) of a slice, or in-plane of each slice
    of a stack; on bit-packed rows. A path leaving the image is never shorter than one
    inside it, so the packed columns past the image do not change the result."""
    cols = mask.shape[-1]
    w = _pack(mask)
    for _ in range(radius):
        grown = w | _shift_cols(w, 1)
        grown |= _shift_cols(w, -1)
        grown[..., 1:, :] |= w[..., :-1, :]
        grown[..., :-1, :] |= w[..., 1:, :]
        w = grown
    return _unpack(w, cols)


def _body_mask(img: np.ndarray) -> np.ndarray:
    """The largest 4-connected region above −500 HU, holes filled (the first of equal
    largest ones in raster order)."""
    return largest_region_filled(img > -500.0)




def measure_range(vol: np.ndarray, k_begin: int, k_end: int,
                   cfg: _SlabSettings) -> SlicePartial:
    """The local-SD histograms of slices ``k_begin`` to ``k_end`` of ``vol`` (``k_begin`` a
    multiple of :data:`_SLAB`, so the slabs are the same whoever measures them). Every
    step is in-plane (the kernel, the body, the morphology: per slice), so a run of slices
    needs nothing from the slices beyond its ends."""
    rows, cols = vol.shape[1:]
    size = cfg.size
    yy, xx = np.mgrid[:rows, :cols]
    recon = (yy - (rows - 1) / 2) ** 2 + (xx - (cols - 1) / 2) ** 2 <= \
        ((min(rows, cols) / 2) - size) ** 2
    n_win = size * size
    part = SlicePartial(pids={os.getpid()})
    # a few slices at once: fewer, longer steps of the running sum and of the packed
    # morphology (a slab of 4 × 512² holds 2 × 16 MB of moments), the arrays reused
    slab = (2, min(_SLAB, k_end - k_begin), rows, cols)
    bufs = [np.empty(slab, dtype=np.float64) for _ in range(3)]
    for k0 in range(k_begin, k_end, _SLAB):
        nk = min(_SLAB, k_end - k0)
        x, w1, w2 = (b[:, :nk] for b in bufs)
        x[0] = vol[k0:k0 + nk]
        mom, d = _moments(x, size, (w1, w2))
        img = x[0]
        soft = (img >= cfg.low) & (img <= cfg.high)
        body = np.stack([_body_mask(img[j]) for j in range(img.shape[0])])
        inner_soft = soft & erode_square(body, size)
        not_air = dilate_diamond(img > -900.0, cfg.air_margin)
        air = recon & erode_square(~not_air, size)
        # the local SD only where a histogram counts it (about half a slice); class of
        # each such pixel: 0 soft tissue only (Duke), 1 also inside the body's kernel
        # margin (Duke and Wisconsin tissue), 2 air (never soft tissue)
        counted = soft | air
        sd = _sd_of_sums(mom[0][counted], mom[1][counted], d, n_win)
        cls = (inner_soft.view(np.uint8) + (air.view(np.uint8) << 1))[counted]
        per_cls, sums, ns = _class_histograms(sd, cls, cfg.bin_hu)
        part.add_slab(per_cls, ns, sums, int(np.count_nonzero(soft)))
    return part

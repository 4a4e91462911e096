"""Exact, fast binary-mask steps shared by the CT analyses: hole filling and the largest
region of a mask, holes filled.

Both give exactly scipy's results (``ndimage.binary_fill_holes``; ``ndimage.label`` +
the largest label + ``binary_fill_holes``), several times faster on 512² slices: scipy
fills holes by iterated dilation of the background from the border, which costs about
7 ms a slice, while labelling the background once and keeping the regions that touch
the border costs about 1 ms (tests: ``tests/unit/quality/test_ct_noise.py``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

# Up to this many labelled regions are handled by one comparison each: cheaper than a
# bincount or a lookup over all pixels of a 512² slice (which convert the labels first).
FEW = 8


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``ndimage.binary_fill_holes`` (4-connected background) by labelling: the background
    regions that do not touch the image border are holes. The same result, several times
    faster on 512² slices than the iterated dilation scipy uses."""
    labels, n = ndimage.label(~mask)
    if n == 0:
        return mask.copy()
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    holes = np.setdiff1d(np.arange(1, n + 1), border)
    if holes.size <= FEW:  # a few holes (a body's lungs, bowel gas): compared one by one
        out = mask.copy()
        for h in holes.tolist():
            out |= labels == h
        return out
    keep = np.zeros(n + 1, dtype=bool)
    keep[border] = True
    keep[0] = True  # label 0 is the mask itself
    return mask | ~keep[labels]


def largest_region_filled(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected region of a 2-D ``mask`` (the first of equal largest ones
    in raster order), holes filled: ``binary_fill_holes(labels == argmax(sizes))`` of
    ``ndimage.label(mask)``; ``mask`` itself when it is empty.

    Labelled and filled within the bounding box of ``mask`` only: the regions and their
    raster order are the same there, and a background pixel on the box's edge reaches the
    image's edge through the background outside the box, as it would from the image's
    edge, so the holes are the same."""
    found = largest_region_in_box(mask)
    if found is None:
        return mask
    box, region = found
    out = np.zeros_like(mask)
    out[box] = fill_holes(region)
    return out


def largest_region_in_box(mask: np.ndarray
                          ) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """(bounding box of ``mask``, the largest 4-connected region of ``mask`` within that
    box, holes not filled), or None when ``mask`` is empty: the first step of
    :func:`largest_region_filled`, for a caller that can decide from the region alone
    (its size is a lower bound of the filled region's)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    labels, n = ndimage.label(mask[box])
    if n <= FEW:  # the body and a few others (table, arms): counted one by one
        largest = 1 + int(np.argmax([np.count_nonzero(labels == i) for i in range(1, n + 1)]))
    else:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        largest = int(np.argmax(sizes))
    return box, labels == largest


def dilate_cross(mask: np.ndarray) -> np.ndarray:
    """``ndimage.binary_dilation(mask)`` (the 4-connected cross, outside the image unset):
    a pixel or one of its four neighbours set, by four shifted ORs instead of scipy's
    per-pixel structure walk (about a tenth of the time on a 512² slice)."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def erode_cross(mask: np.ndarray) -> np.ndarray:
    """``ndimage.binary_erosion(mask)`` (the 4-connected cross, outside the image unset): a
    pixel and its four neighbours set; the image's outer rows and columns never are."""
    out = mask.copy()
    out[1:] &= mask[:-1]
    out[:-1] &= mask[1:]
    out[:, 1:] &= mask[:, :-1]
    out[:, :-1] &= mask[:, 1:]
    out[0] = out[-1] = False
    out[:, 0] = out[:, -1] = False
    return out


def disc_half_widths(radius: float, sampling: tuple[float, float]) -> np.ndarray | None:
    """The disc of pixel offsets within ``radius``: per row offset ``a`` (index ``a + A``)
    the largest column offset ``w`` with ``distance(a, b) <= radius`` for all
    ``|b| <= w``, the distance computed as ``scipy.ndimage.distance_transform_edt``
    computes one (``sqrt((a·s0)² + (b·s1)²)`` in float64); −1 for a row the disc misses.
    None when some offset's distance lies within 1e-9 of ``radius``: there a rounding in
    the transform's choice between equally near pixels could decide a comparison, so the
    caller uses the transform itself."""
    s0, s1 = sampling
    reach_a = int(radius / s0) + 2
    reach_b = int(radius / s1) + 2
    half = np.full(2 * reach_a + 1, -1, np.int64)
    for a in range(-reach_a, reach_a + 1):
        within = []
        for b in range(0, reach_b + 1):
            d = math.sqrt((float(a) * s0) ** 2 + (float(b) * s1) ** 2)
            if abs(d - radius) <= 1e-9 * max(radius, 1.0):
                return None
            within.append(d <= radius)
        w = sum(within) - 1  # the disc's row is the run |b| <= w (distance grows with |b|)
        if any(within[w + 1:]) or not all(within[:w + 1]):
            return None
        half[a + reach_a] = w
    return half


def _disc_morphology(mask: np.ndarray, half: np.ndarray, erode: bool) -> np.ndarray:
    """AND (``erode``) or OR over the disc of ``mask`` shifted by its offsets: along the
    rows first (runs of widths 0..max w, by shifted ANDs/ORs), then those rows shifted by
    each row offset of the disc. Outside the image counts as set for the AND and unset for
    the OR (the distance transforms see no pixel there)."""
    m = np.asarray(mask, dtype=bool)
    runs = [m]
    for w in range(1, int(half.max()) + 1):
        h = runs[-1].copy()
        if erode:
            h[:, w:] &= m[:, :-w]
            h[:, :-w] &= m[:, w:]
        else:
            h[:, w:] |= m[:, :-w]
            h[:, :-w] |= m[:, w:]
        runs.append(h)
    out = np.full(m.shape, erode)
    ny = m.shape[0]
    ra = (half.size - 1) // 2
    for k, w in enumerate(half.tolist()):
        a = k - ra
        if w < 0 or abs(a) >= ny:
            continue
        h = runs[w]
        dst, src = (out[:ny - a], h[a:]) if a >= 0 else (out[-a:], h[:ny + a])
        if erode:
            dst &= src
        else:
            dst |= src
    return out


def disc_erode(mask: np.ndarray, half: np.ndarray) -> np.ndarray:
    """``distance_transform_edt(mask, sampling) > radius`` for ``half`` =
    :func:`disc_half_widths` ``(radius, sampling)`` (not None) and a ``mask`` with at
    least one unset pixel: the distance transform's value is the distance to a nearest
    unset pixel, so a pixel passes when it is set and no unset pixel lies within the disc
    (outside the image counts as neither, as in the distance transform). Boolean shifts,
    about a tenth of the transform's time on a 512² slice."""
    return np.asarray(mask, dtype=bool) & _disc_morphology(mask, half, erode=True)


def disc_dilate(mask: np.ndarray, half: np.ndarray) -> np.ndarray:
    """``distance_transform_edt(~mask, sampling) <= radius`` for ``half`` =
    :func:`disc_half_widths` ``(radius, sampling)`` (not None) and a ``mask`` with at
    least one set pixel: the pixels with a set pixel within the disc."""
    return _disc_morphology(mask, half, erode=False)

"""Exact, fast binary-mask steps shared by the CT analyses: hole filling and the largest
region of a mask, holes filled.

Both give exactly scipy's results (``ndimage.binary_fill_holes``; ``ndimage.label`` +
the largest label + ``binary_fill_holes``), several times faster on 512² slices: scipy
fills holes by iterated dilation of the background from the border, which costs about
7 ms a slice, while labelling the background once and keeping the regions that touch
the border costs about 1 ms (tests: ``tests/unit/quality/test_ct_noise.py``).
"""

from __future__ import annotations

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

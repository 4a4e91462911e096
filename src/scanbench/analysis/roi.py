"""Regions of interest on voxel grids, with partial-voxel weights.

A circular ROI's weight for a voxel is the fraction of the voxel's area inside
the circle, estimated by sub-sampling each voxel on an ``n × n`` grid. NEMA NU
2-2018 section 7.4 asks for ROIs "as close as possible" to the sphere's inner
diameter; fractional weights make the ROI area exact to within the sub-sampling,
which is what lets small-sphere contrast agree between voxel sizes.
"""

from __future__ import annotations

import numpy as np


def circle_weights(
    shape_yx: tuple[int, int],
    centre_yx: tuple[float, float],
    radius_mm: float,
    spacing_yx: tuple[float, float],
    *,
    subsample: int = 5,
) -> np.ndarray:
    """Fraction (0..1) of each pixel inside a circle, over the whole image.

    ``centre_yx`` is a fractional pixel index (row, column); ``spacing_yx`` in mm.
    The dense form of :func:`circle_patch`: only the circle's bounding box is
    sub-sampled, so the cost does not grow with the image size.
    """
    (rows, cols), frac = circle_patch(shape_yx, centre_yx, radius_mm, spacing_yx,
                                      subsample=subsample)
    out = np.zeros(shape_yx, dtype=np.float64)
    out[rows, cols] = frac
    return out


def weighted_mean(image: np.ndarray, weights: np.ndarray) -> float:
    """Weighted mean of ``image`` over ``weights`` (same shape); NaN if the weights are empty."""
    w = float(weights.sum())
    if w <= 0:
        return float("nan")
    return float((image * weights).sum() / w)


def circle_mean(
    image_yx: np.ndarray,
    centre_yx: tuple[float, float],
    radius_mm: float,
    spacing_yx: tuple[float, float],
) -> float:
    """Mean of a 2-D image inside a circle of ``radius_mm`` at a fractional pixel centre."""
    w = circle_weights(image_yx.shape, centre_yx, radius_mm, spacing_yx)
    return weighted_mean(image_yx, w)


def sphere_weights(
    shape_zyx: tuple[int, int, int],
    centre_zyx: tuple[float, float, float],
    radius_mm: float,
    spacing_zyx: tuple[float, float, float],
    *,
    subsample: int = 3,
) -> np.ndarray:
    """Fraction (0..1) of each voxel inside a sphere, dense over the whole volume shape.

    Used for 3-D VOIs such as the 1 mL peak sphere; only the bounding box is sampled.
    """
    nz, ny, nx = shape_zyx
    d = np.asarray(spacing_zyx, dtype=float)
    c = np.asarray(centre_zyx, dtype=float)
    r = radius_mm / d
    lo = np.maximum(np.floor(c - r).astype(int) - 1, 0)
    hi = np.minimum(np.ceil(c + r).astype(int) + 2, (nz, ny, nx))
    out = np.zeros(shape_zyx, dtype=np.float64)
    if np.any(lo >= hi):
        return out
    offs = (np.arange(subsample) + 0.5) / subsample - 0.5
    axes = [((np.arange(lo[a], hi[a])[:, None] + offs[None, :]).ravel() - c[a]) * d[a]
            for a in range(3)]
    inside = (axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2
              + axes[2][None, None, :] ** 2) <= radius_mm**2
    sz, sy, sx = (hi - lo)
    frac = inside.reshape(sz, subsample, sy, subsample, sx, subsample).mean(axis=(1, 3, 5))
    out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = frac
    return out


def circle_patch(
    shape_yx: tuple[int, int],
    centre_yx: tuple[float, float],
    radius_mm: float,
    spacing_yx: tuple[float, float],
    *,
    subsample: int = 5,
) -> tuple[tuple[slice, slice], np.ndarray]:
    """The same partial-pixel weights as :func:`circle_weights`, but only on the
    circle's bounding box: returns ``((row slice, column slice), weights)``.

    Use it when many ROIs are measured on many slices (NEMA NU 2-2018 section
    7.4: 12 background ROIs × 6 sizes × 5 slices): the weights are computed
    once per ROI and applied to each slice, at a cost set by the ROI's area,
    not the image's.
    """
    ny, nx = shape_yx
    dy, dx = spacing_yx
    cy, cx = centre_yx
    ry, rx = radius_mm / dy, radius_mm / dx
    y0, y1 = max(int(np.floor(cy - ry)) - 1, 0), min(int(np.ceil(cy + ry)) + 2, ny)
    x0, x1 = max(int(np.floor(cx - rx)) - 1, 0), min(int(np.ceil(cx + rx)) + 2, nx)
    if y0 >= y1 or x0 >= x1:
        return (slice(0, 0), slice(0, 0)), np.zeros((0, 0))
    offs = (np.arange(subsample) + 0.5) / subsample - 0.5
    yy = ((np.arange(y0, y1)[:, None] + offs[None, :]).ravel() - cy) * dy
    xx = ((np.arange(x0, x1)[:, None] + offs[None, :]).ravel() - cx) * dx
    inside = yy[:, None] ** 2 + xx[None, :] ** 2 <= radius_mm**2
    frac = inside.reshape(y1 - y0, subsample, x1 - x0, subsample).mean(axis=(1, 3))
    return (slice(y0, y1), slice(x0, x1)), frac


def patch_mean(image_yx: np.ndarray, patch: tuple[tuple[slice, slice], np.ndarray]) -> float:
    """Weighted mean of a 2-D image over a :func:`circle_patch`; NaN if it is empty."""
    (sy, sx), w = patch
    total = float(w.sum())
    if total <= 0:
        return float("nan")
    return float((image_yx[sy, sx] * w).sum() / total)


def sphere_kernel(
    radius_mm: float,
    spacing_zyx: tuple[float, float, float],
    *,
    subsample: int = 3,
) -> np.ndarray:
    """A normalised (sum 1) partial-voxel sphere on an odd-sized grid centred on a voxel.

    Correlating an image with it gives, at every voxel, the mean in a sphere
    of ``radius_mm`` centred there: the EARL 1 mL "peak" VOI (radius 6.2 mm)
    or a matched filter for a sphere of known size.
    """
    d = np.asarray(spacing_zyx, dtype=float)
    half = np.ceil(radius_mm / d).astype(int) + 1
    shape = tuple(int(2 * h + 1) for h in half)
    w = sphere_weights(shape, tuple(float(h) for h in half), radius_mm,  # type: ignore[arg-type]
                       tuple(float(s) for s in d), subsample=subsample)  # type: ignore[arg-type]
    return w / w.sum()


def circle_patch_means(
    images_yx: np.ndarray,
    centres_yx: np.ndarray,
    radius_mm: float,
    spacing_yx: tuple[float, float],
    *,
    subsample: int = 5,
) -> np.ndarray:
    """Weighted means ``(image, centre)`` of a stack of 2-D images over circles of one
    radius at many fractional pixel centres: :func:`patch_mean` of each image over
    each centre's :func:`circle_patch`, the same weights, in a few array operations.

    NU 2-2018 section 7.4 measures 12 background ROIs of each size on 5 slices;
    this is the batched form of that loop. A NaN marks a centre whose circle
    misses the image.
    """
    imgs = np.asarray(images_yx)
    centres = np.asarray(centres_yx, dtype=float).reshape(-1, 2)
    ny, nx = imgs.shape[1:]
    dy, dx = spacing_yx
    ry, rx = radius_mm / dy, radius_mm / dx
    y0 = np.floor(centres[:, 0] - ry).astype(int) - 1
    y1 = np.ceil(centres[:, 0] + ry).astype(int) + 2
    x0 = np.floor(centres[:, 1] - rx).astype(int) - 1
    x1 = np.ceil(centres[:, 1] + rx).astype(int) + 2
    out = np.full((imgs.shape[0], len(centres)), np.nan)
    clipped = (y0 < 0) | (x0 < 0) | (y1 > ny) | (x1 > nx)
    for i in np.flatnonzero(clipped):  # at the image's edge: one at a time
        patch = circle_patch((ny, nx), (float(centres[i, 0]), float(centres[i, 1])),
                             radius_mm, spacing_yx, subsample=subsample)
        out[:, i] = [patch_mean(img, patch) for img in imgs]
    inner = np.flatnonzero(~clipped)
    if inner.size == 0:
        return out
    # one box size for all: rows and columns past a centre's own box carry weight 0
    h = int((y1 - y0)[inner].max())
    w = int((x1 - x0)[inner].max())
    offs = (np.arange(subsample) + 0.5) / subsample - 0.5
    yy = (((y0[inner, None] + np.arange(h)[None, :])[:, :, None] + offs).reshape(inner.size, -1)
          - centres[inner, 0, None]) * dy
    xx = (((x0[inner, None] + np.arange(w)[None, :])[:, :, None] + offs).reshape(inner.size, -1)
          - centres[inner, 1, None]) * dx
    inside = (yy[:, :, None] ** 2 + xx[:, None, :] ** 2 <= radius_mm**2).view(np.uint8)
    # the count of sub-samples inside per pixel, over strided views (counts are
    # exact, so count / n² is the same float as the mean of the booleans)
    sub = inside.reshape(inner.size, h, subsample, w, subsample)
    count = np.zeros((inner.size, h, w), dtype=np.uint16)
    for a in range(subsample):
        for b in range(subsample):
            count += sub[:, :, a, :, b]
    frac = count / float(subsample * subsample)
    # images that can hold every box (pad past the far edge; those weights are 0)
    pad_y = max(0, int((y0[inner] + h).max()) - ny)
    pad_x = max(0, int((x0[inner] + w).max()) - nx)
    if pad_y or pad_x:
        imgs = np.pad(imgs, ((0, 0), (0, pad_y), (0, pad_x)))
    win = np.lib.stride_tricks.sliding_window_view(imgs, (h, w), axis=(1, 2))
    boxes = win[:, y0[inner], x0[inner]]  # (image, centre, h, w)
    total = frac.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.einsum("schw,chw->sc", boxes, frac) / total
    out[:, inner] = np.where(total > 0, means, np.nan)
    return out

"""Shared CT helpers: the reconstruction circle, the phantom's cross-section, ROI statistics.

- :func:`reconstruction_mask` — which pixels are image data. Outside the
  reconstruction circle scanners write a constant (Pixel Padding Value, or
  simply the lowest value, e.g. −3024 or −1024 HU after rescale): the constant
  region connected to the image border is padding when its value lies below air
  (under −1010 HU); a constant −1000 HU is noise-free air, not padding.
- :func:`find_section` — the phantom's cross-section in one slice: material
  above −500 HU (half-way between air and water), opened with a 3 mm disc (a
  couch or holder touching the phantom falls away), the largest connected
  region, holes filled; centre = its centroid, radius = area-equivalent
  radius.
  When it touches the reconstruction circle or the image border the phantom is
  cut and the section cannot be trusted: :class:`AnalysisError` says so.
- :func:`roi_stats` — mean, SD and the standard error of the mean of a
  circular ROI. CT noise is spatially correlated, so SD/√n understates the
  standard error; it is estimated instead as the spread of the means of
  equal ROIs tiled over the uniform interior after removing a second-order
  polynomial trend (cupping), divided by nothing further (it is the SD of one
  ROI mean).
- :func:`check_axial` — a localiser (scout) or a non-axial series is refused
  with a clear message.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from scanbench.analysis.convolve import fftconvolve_same
from scanbench.analysis.masks import (
    dilate_cross,
    disc_dilate,
    disc_erode,
    disc_half_widths,
    erode_cross,
    largest_region_filled,
    largest_region_in_box,
)
from scanbench.analysis.roi import circle_weights
from scanbench.errors import AnalysisError
from scanbench.types import Series

MATERIAL_HU = -500.0  # half-way between air (−1000) and water (0)
# Padding is written below the CT numbers of air (−1024, −2048, −3024 HU after rescale);
# a constant region at or above this is plain air, e.g. a noise-free simulation's −1000 HU.
PADDING_BELOW_HU = -1010.0


def series_where(series: Series) -> str | None:
    """How an error names a series: its folder and description, else its UID."""
    desc = series.facts.series_description
    if series.files:
        return f"{series.files[0].parent}: series '{desc}'" if desc else str(series.files[0])
    return f"series '{desc}' ({series.uid})" if desc else series.uid


def check_axial(series: Series) -> None:
    """Refuse localisers and non-axial series (analyses measure axial slices)."""
    where = series_where(series)
    if series.facts.modality != "CT":
        raise AnalysisError(f"not a CT series (modality {series.facts.modality})", where)
    if series.files:
        try:
            import pydicom

            ds = pydicom.dcmread(series.files[0], stop_before_pixels=True)
            image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
        except Exception:  # the reader already opened it; a failure here is not the point
            image_type = []
        if "LOCALIZER" in image_type:
            raise AnalysisError("this series is a localiser (scout, Image Type LOCALIZER), not "
                                "axial slices: export the axial reconstruction of the phantom",
                                where)
    normal = series.affine[:3, 0] / np.linalg.norm(series.affine[:3, 0])
    if abs(normal[2]) < 0.95:
        raise AnalysisError("the slices are not axial (their normal is not along the table "
                            "axis): a localiser or a reformat; export axial slices", where)


def reconstruction_mask(image_yx: np.ndarray) -> np.ndarray:
    """True where a pixel is image data, False on the padding outside the reconstruction circle."""
    img = np.asarray(image_yx)
    corner_values = {float(img[0, 0]), float(img[0, -1]), float(img[-1, 0]), float(img[-1, -1])}
    out = np.ones(img.shape, dtype=bool)
    for v in corner_values:
        if v > PADDING_BELOW_HU:
            continue  # air itself (a noise-free −1000 HU is air, not padding)
        same = img == v
        if np.count_nonzero(same) <= 0.02 * img.size:
            # the padding found below is part of ``same``: with so few pixels of this
            # value it cannot pass the 2 % test, so the (costly) labelling would change
            # nothing. Noisy air in a corner (the usual case of a patient's series, whose
            # every slice the phantom detectors check) ends here. (Numpy, not the border
            # flood of slice_kernels: every CT analysis calls this, and numba's import
            # would cost a phantom's command line more than the flood saves.)
            continue
        labels, n = ndimage.label(same)
        if n == 0:
            continue
        border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        border = border[border > 0]
        pad = np.isin(labels, border)
        if pad.sum() > 0.02 * img.size:  # a real padding region, not a few equal air pixels
            out &= ~pad
    return out


@dataclass(frozen=True)
class Section:
    """The phantom's cross-section in one slice (pixel indices, mm)."""

    centre_yx: tuple[float, float]
    radius_mm: float
    mask: np.ndarray  # filled section
    roundness: float  # SD of the boundary's distance from the centre / radius


def find_section(image_yx: np.ndarray, spacing_yx: tuple[float, float],
                 where: str | None = None, *, inside: np.ndarray | None = None) -> Section:
    """The phantom's cross-section (module docstring); AnalysisError if absent or cut."""
    img = np.asarray(image_yx, dtype=np.float64)
    dy, dx = spacing_yx
    inside = reconstruction_mask(img) if inside is None else inside
    material = (img > MATERIAL_HU) & inside
    if material.sum() * dy * dx < 100.0:
        raise AnalysisError("no phantom in the slice (nothing above −500 HU over 1 cm²)", where)
    region = _largest_opened(material, dy, dx)
    assert region is not None
    edge = ~inside | _border(img.shape)
    # binary_dilation(edge, iterations=2) by the cross twice (masks.dilate_cross)
    if (dilate_cross(dilate_cross(edge)) & region).any():
        diam = _circle_diameter_mm(inside, dy, dx)
        raise AnalysisError(
            "the phantom is cut by the reconstruction circle or the image edge "
            f"(reconstruction field about {diam:.0f} mm): reconstruct with a larger display "
            "field of view or centre the phantom", where)
    # the centroid (np.nonzero's indices' means) from the row and column counts: integer
    # sums, exact in float64 either way, and one correctly rounded division
    n = int(np.count_nonzero(region))
    rows, cols = np.count_nonzero(region, axis=1), np.count_nonzero(region, axis=0)
    cy = int(rows @ np.arange(rows.size)) / n
    cx = int(cols @ np.arange(cols.size)) / n
    radius = math.sqrt(region.sum() * dy * dx / math.pi)
    boundary = region & ~erode_cross(region)
    by, bx = np.nonzero(boundary)
    dist = np.hypot((by - cy) * dy, (bx - cx) * dx)
    roundness = float(dist.std() / radius) if dist.size else 1.0
    return Section((cy, cx), radius, region, roundness)


def _largest_opened(material: np.ndarray, dy: float, dx: float,
                    radius_mm: float = 3.0) -> np.ndarray:
    """The largest region of ``material`` after opening with a disc, holes filled.

    The opening (two distance transforms, or the same erosion and dilation by the disc
    of offsets within the radius) cuts off a thin couch or holder touching the phantom.
    It runs on a grid of about 1 mm (block maxima), and the region's full-resolution
    outline is then the material within one coarse pixel of the opened component, so
    the centroid and area keep full resolution.

    Why the disc gives the distance transforms' pixels: ``edt(m) > r`` says no unset
    pixel lies within r, ``edt(~core) <= r`` that a core pixel does; the transform's
    value is a distance to a nearest such pixel (computed in float64 from its offset),
    so only an offset whose computed distance lies within rounding of r could decide
    differently, and then (``_disc`` is None) scipy's transforms are used.
    """
    f = max(1, int(1.0 / max(dy, dx)))
    ny, nx = material.shape
    coarse: np.ndarray = material[: ny - ny % f, : nx - nx % f]
    if f > 1:
        coarse = np.asarray(coarse.reshape(ny // f, f, nx // f, f).any(axis=(1, 3)))
    cdy, cdx = dy * f, dx * f
    grow_mm = radius_mm + 0.5 * min(cdy, cdx)
    shrink = _disc(radius_mm, cdy, cdx)
    grow = _disc(grow_mm, cdy, cdx)
    if shrink is not None and grow is not None and not coarse.all():
        # the thresholded distance transforms as an erosion and a dilation by the disc of
        # offsets within the radius (masks.disc_erode / disc_dilate: the same pixels, a
        # tenth of the time; ct.water's detector runs this on a dozen slices of every CT
        # series)
        core = disc_erode(coarse, shrink)
        opened = coarse & disc_dilate(core, grow) if core.any() else coarse
    else:
        core = ndimage.distance_transform_edt(coarse, sampling=(cdy, cdx)) > radius_mm
        if core.any():
            opened = coarse & (ndimage.distance_transform_edt(~core, sampling=(cdy, cdx))
                               <= grow_mm)
        else:
            opened = coarse
    # label + the largest label (the first of equal largest) + binary_dilation, exactly:
    # labelled within the mask's box (masks.largest_region_in_box), dilated by shifts
    first = opened if opened.any() else coarse
    found = largest_region_in_box(first)
    assert found is not None
    largest = np.zeros_like(first)
    largest[found[0]] = found[1]
    keep = dilate_cross(largest)
    if f > 1:
        keep = np.repeat(np.repeat(keep, f, axis=0), f, axis=1)
        full = np.zeros_like(material)
        full[: keep.shape[0], : keep.shape[1]] = keep
        keep = full
    # label + the largest label + scipy's binary_fill_holes, exactly, within the mask's box
    # and by labelling the background (scanbench.analysis.masks): ct.water's detector runs
    # this on a dozen slices of every CT series the node receives
    return largest_region_filled(material & keep)


@functools.lru_cache(maxsize=32)
def _disc(radius_mm: float, dy: float, dx: float) -> np.ndarray | None:
    """:func:`~scanbench.analysis.masks.disc_half_widths`, once per radius and
    pixel size."""
    return disc_half_widths(radius_mm, (dy, dx))


def _border(shape: tuple[int, ...]) -> np.ndarray:
    b = np.zeros(shape, dtype=bool)
    b[0, :] = b[-1, :] = b[:, 0] = b[:, -1] = True
    return b


def _circle_diameter_mm(inside: np.ndarray, dy: float, dx: float) -> float:
    return 2.0 * math.sqrt(inside.sum() * dy * dx / math.pi)


def uniform_radius(image_yx: np.ndarray, section: Section, spacing_yx: tuple[float, float],
                   tolerance_hu: float = 30.0) -> tuple[float, float]:
    """(radius mm, host HU) of the uniform region around the section's centre.

    The host value is the median within 30 % of the radius; walking out in
    1 mm rings, the uniform region ends at the first ring whose mean differs
    from it by more than ``tolerance_hu`` (a water phantom's acrylic wall, the
    CatPhan module's edge inside its housing).
    """
    img = np.asarray(image_yx, dtype=np.float64)
    dy, dx = spacing_yx
    yy, xx = np.mgrid[:img.shape[0], :img.shape[1]]
    r = np.hypot((yy - section.centre_yx[0]) * dy, (xx - section.centre_yx[1]) * dx)
    host = float(np.median(img[r < 0.3 * section.radius_mm]))
    inside = r < section.radius_mm
    idx = r[inside].astype(int)
    sums = np.bincount(idx, weights=img[inside])
    counts = np.bincount(idx)
    means = sums / np.maximum(counts, 1)
    start = int(0.3 * section.radius_mm)
    for ring in range(start, len(means)):
        if counts[ring] and abs(means[ring] - host) > tolerance_hu:
            return float(ring), host
    return float(section.radius_mm), host


@dataclass(frozen=True)
class RoiStats:
    mean: float
    sd: float
    standard_error: float
    n_pixels: float


def roi_stats(image_yx: np.ndarray, centre_yx: tuple[float, float], radius_mm: float,
              spacing_yx: tuple[float, float], standard_error: float | None = None) -> RoiStats:
    """Area-weighted mean and SD of a circular ROI (partial pixels weighted)."""
    w = circle_weights(image_yx.shape, centre_yx, radius_mm, spacing_yx)
    tot = float(w.sum())
    if tot <= 0:
        raise AnalysisError("an ROI fell outside the image")
    mean = float((image_yx * w).sum() / tot)
    var = float((w * (image_yx - mean) ** 2).sum() / tot)
    n_eff = tot
    sd = math.sqrt(var * n_eff / max(n_eff - 1.0, 1.0))
    se = standard_error if standard_error is not None else sd / math.sqrt(max(n_eff, 1.0))
    return RoiStats(mean, sd, se, tot)


def roi_mean_standard_error(image_yx: np.ndarray, centre_yx: tuple[float, float],
                            region_radius_mm: float, roi_radius_mm: float,
                            spacing_yx: tuple[float, float]) -> float:
    """SD of the mean of one ROI of ``roi_radius_mm`` in correlated noise (module docstring).

    The disc of ``region_radius_mm`` around ``centre_yx`` must be uniform; its
    second-order trend is removed, the image is averaged over the ROI disc
    (FFT convolution) and sampled on a grid of non-overlapping ROI positions.
    """
    img = np.asarray(image_yx, dtype=np.float64)
    dy, dx = spacing_yx
    ny, nx = img.shape
    yy, xx = np.mgrid[:ny, :nx]
    region = np.hypot((yy - centre_yx[0]) * dy, (xx - centre_yx[1]) * dx) <= region_radius_mm
    u = (yy[region] - centre_yx[0]) * dy
    v = (xx[region] - centre_yx[1]) * dx
    a = np.column_stack([np.ones_like(u), u, v, u * u, u * v, v * v])
    coef, *_ = np.linalg.lstsq(a[::3], img[region][::3], rcond=None)
    resid = np.zeros_like(img)
    resid[region] = img[region] - a @ coef
    ry, rx = math.ceil(roi_radius_mm / dy), math.ceil(roi_radius_mm / dx)
    ky, kx = np.mgrid[-ry:ry + 1, -rx:rx + 1]
    kernel = (np.hypot(ky * dy, kx * dx) <= roi_radius_mm).astype(float)
    kernel /= kernel.sum()
    local = fftconvolve_same(resid, kernel)
    step_y, step_x = 2 * ry + 1, 2 * rx + 1
    means = []
    limit = region_radius_mm - roi_radius_mm
    for gy in np.arange(centre_yx[0] % step_y, ny, step_y):
        for gx in np.arange(centre_yx[1] % step_x, nx, step_x):
            if math.hypot((gy - centre_yx[0]) * dy, (gx - centre_yx[1]) * dx) <= limit:
                means.append(local[round(gy), round(gx)])
    if len(means) < 5:
        return float("nan")
    # The six trend coefficients were fitted to the same pixels: correct the dof.
    m = np.asarray(means)
    return float(np.sqrt((m**2).sum() / max(len(m) - 1, 1)))


__all__ = ["MATERIAL_HU", "RoiStats", "Section", "check_axial", "find_section",
           "reconstruction_mask", "roi_mean_standard_error", "roi_stats", "series_where",
           "uniform_radius"]

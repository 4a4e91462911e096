"""MTF of a CT image from a wire/bead (point spread) or a circular edge (task transfer function).

Functions only (arrays in, :class:`MtfCurve` out); the ``ct.mtf`` analysis in
:mod:`scanbench.analysis.ct.mtf` uses them, and so do the ACR 464 and CatPhan
analyses. Methods (STANDARDS.md B.2, IEC 61223-3-5 / AAPM TG-233):

- **Point (wire or bead) —** :func:`mtf_from_point`. The background (mean of
  an annulus around the ROI) is subtracted; the centre is refined to a
  fraction of a pixel by a least-squares 2-D Gaussian fit to the peak; the
  pixels' values are binned by their distance r from the centre into bins a
  fraction of a pixel wide (the *oversampled* radial PSF: a point at a general
  sub-pixel position is sampled at many distinct radii, and several slices
  with different sub-pixel centres add more). For a rotationally symmetric
  PSF the MTF is its Hankel transform, MTF(f) = 2π ∫ PSF(r) J0(2πfr) r dr,
  normalised to 1 at f = 0; this equals the Fourier transform of the line
  spread function along any direction (the wire's LSF is the Abel projection of
  the PSF), without the aliasing a pixel-pitch LSF has above Nyquist.
- **Circular edge —** :func:`mtf_from_circular_edge`. The TG-233 task transfer
  function: pixels within ``half_width_mm`` of the insert's edge give the edge
  spread function against their distance from the (refined) centre, binned at
  a tenth of a pixel; its derivative is the LSF, which is Hann-windowed and
  Fourier transformed; |F(f)| / |F(0)|. Works for inserts brighter or darker
  than their background.

``mtf50_lp_per_cm`` and ``mtf10_lp_per_cm`` are the first frequencies where the
curve falls to 0.5 and 0.1, interpolated linearly, in line pairs per cm
(10 × cycles/mm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from scipy import interpolate, ndimage, optimize, special

from scanbench.analysis.base import Parameter, result_for
from scanbench.analysis.ct.common import (
    PADDING_BELOW_HU,
    check_axial,
    find_section,
    reconstruction_mask,
    series_where,
)
from scanbench.analysis.memo import memo
from scanbench.analysis.registry import register
from scanbench.errors import AnalysisError
from scanbench.types import Result, Series


@dataclass
class MtfCurve:
    """An MTF curve and its summary frequencies, with the spread function it came from."""

    frequency_per_mm: np.ndarray
    mtf: np.ndarray
    mtf50_lp_per_cm: float
    mtf10_lp_per_cm: float
    method: str  # "point" or "circular_edge"
    spread_mm: np.ndarray = field(default_factory=lambda: np.zeros(0))  # r of the PSF / ESF
    spread: np.ndarray = field(default_factory=lambda: np.zeros(0))  # binned PSF or ESF
    centre_yx: tuple[float, float] = (float("nan"), float("nan"))
    radius_mm: float | None = None  # circular edge: the fitted radius
    contrast_hu: float | None = None  # edge: insert − background; point: peak above background

    def to_dict(self) -> dict[str, Any]:
        """The curve as plain lists (for ``Result.data``)."""
        return {"method": self.method,
                "frequency_per_mm": [round(float(f), 5) for f in self.frequency_per_mm],
                "mtf": [round(float(m), 5) for m in self.mtf],
                "mtf50_lp_per_cm": self.mtf50_lp_per_cm, "mtf10_lp_per_cm": self.mtf10_lp_per_cm}


def crossing(f: np.ndarray, mtf: np.ndarray, level: float) -> float:
    """First frequency where the curve falls below ``level`` (interpolated); NaN if never."""
    below = np.flatnonzero(mtf < level)
    if below.size == 0 or below[0] == 0:
        return float("nan")
    i = int(below[0])
    f0, f1, m0, m1 = f[i - 1], f[i], mtf[i - 1], mtf[i]
    return float(f0 + (m0 - level) / (m0 - m1) * (f1 - f0))


def _stack(images: np.ndarray, centres: Any) -> tuple[np.ndarray, np.ndarray]:
    imgs = np.asarray(images, dtype=np.float64)
    if imgs.ndim == 2:
        imgs = imgs[None]
    if imgs.ndim != 3:
        raise AnalysisError("the MTF needs a 2-D image or a stack of them")
    c = np.asarray(centres, dtype=float)
    if c.ndim == 1:
        c = np.tile(c, (imgs.shape[0], 1))
    if c.shape != (imgs.shape[0], 2):
        raise AnalysisError("give one (row, column) centre, or one per image")
    return imgs, c


def _bin(r: np.ndarray, v: np.ndarray, width: float, r_max: float
         ) -> tuple[np.ndarray, np.ndarray]:
    """v on a regular grid of ``width`` from 0 to r_max, from scattered (r, v) samples.

    Samples are averaged in bins, each bin's mean placed at its samples' mean r
    (not the bin centre, which would shift a steep profile), and a monotone
    cubic (PCHIP) through those points is read on the grid: a sharp PSF
    sampled by few pixels is bridged smoothly, without a spline's overshoot.
    """
    n = int(np.ceil(r_max / width))
    idx = np.clip((r / width).astype(int), 0, n - 1)
    keep = r < r_max
    sums = np.bincount(idx[keep], weights=v[keep], minlength=n)
    rsum = np.bincount(idx[keep], weights=r[keep], minlength=n)
    counts = np.bincount(idx[keep], minlength=n)
    centres = (np.arange(n) + 0.5) * width
    ok = counts > 0
    if ok.sum() < 4:
        raise AnalysisError("too few pixels around the object for a spread function")
    at = rsum[ok] / counts[ok]
    known = sums[ok] / counts[ok]
    means = interpolate.PchipInterpolator(at, known, extrapolate=True)(centres)
    return centres, means


def _gauss_centre(img: np.ndarray, guess: np.ndarray, pixel_mm: float, half: int
                  ) -> tuple[np.ndarray, float, float]:
    """Sub-pixel centre (row, col), peak height and σ (mm) of a 2-D Gaussian fit to a peak."""
    r0, c0 = round(guess[0]), round(guess[1])
    ys = slice(max(r0 - half, 0), r0 + half + 1)
    xs = slice(max(c0 - half, 0), c0 + half + 1)
    patch = img[ys, xs]
    yy, xx = np.mgrid[ys, xs]
    peak = float(patch.max())
    if not peak > 0:
        raise AnalysisError("no peak above the background at the point object")

    def resid(p: np.ndarray) -> np.ndarray:
        a, y0, x0, s, b = p
        return (a * np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * s * s)) + b - patch).ravel()

    p0 = np.array([peak, guess[0], guess[1], 1.0, 0.0])
    fit = optimize.least_squares(resid, p0, bounds=([0, ys.start - 1, xs.start - 1, 0.2, -np.inf],
                                                    [np.inf, ys.stop, xs.stop, half, np.inf]))
    a, y0, x0, s, _b = fit.x
    return np.array([y0, x0]), float(a), float(s * pixel_mm)


def mtf_from_point(image_yx: np.ndarray, pixel_mm: float, centre_yx: Any, *,
                   roi_radius_mm: float | None = None, bin_mm: float | None = None,
                   refine: bool = True, f_max_per_mm: float | None = None,
                   n_frequencies: int = 256, object_diameter_mm: float = 0.0,
                   object_shape: str = "bead") -> MtfCurve:
    """MTF from a wire or bead: oversampled radial PSF and its Hankel transform.

    ``object_diameter_mm`` > 0 divides the curve by the object's own transfer
    function — a bead (sphere): 3(sin x − x cos x)/x³, a wire (cylinder along
    z): 2·J1(x)/x, x = π f d — up to where that falls to 0.3 (beyond, the
    division would only amplify noise; the curve stops there).

    ``image_yx`` is one slice or a stack ``(n, ny, nx)`` (in HU) through the
    same wire; ``centre_yx`` an approximate (row, column), or one per slice.
    ``roi_radius_mm`` bounds the PSF (default max(4 mm, 12 pixels)); the
    background is the mean of the annulus from it to 1.5 times it.
    """
    imgs, centres = _stack(image_yx, centre_yx)
    px = float(pixel_mm)
    roi = float(roi_radius_mm) if roi_radius_mm else max(4.0, 12.0 * px)
    width = float(bin_mm) if bin_mm else px / 8.0
    all_r, all_v, peaks, fitted = [], [], [], []
    for img, c in zip(imgs, centres, strict=True):
        ny, nx = img.shape
        yy, xx = np.mgrid[:ny, :nx]
        r0 = np.hypot((yy - c[0]) * px, (xx - c[1]) * px)
        ring = (r0 >= roi) & (r0 < 1.5 * roi)
        if ring.sum() < 8:
            raise AnalysisError("the point object is too close to the image edge for its "
                                "background ring")
        bg = float(img[ring].mean())
        sub = img - bg
        cc = c
        if refine:
            half = max(2, int(np.ceil(1.5 / px)))
            cc, peak, _s = _gauss_centre(sub, c, px, half)
        else:
            peak = float(sub[round(c[0]), round(c[1])])
        r = np.hypot((yy - cc[0]) * px, (xx - cc[1]) * px)
        sel = r < roi
        all_r.append(r[sel])
        all_v.append(sub[sel])
        peaks.append(peak)
        fitted.append(cc)
    r = np.concatenate(all_r)
    v = np.concatenate(all_v)
    rc, psf = _bin(r, v, width, roi)
    # Taper the outer fifth to zero so background noise does not ring in the transform.
    taper = np.clip((roi - rc) / (0.2 * roi), 0.0, 1.0)
    psf = psf * (0.5 - 0.5 * np.cos(np.pi * taper))
    f_max = f_max_per_mm or max(2.0, 1.0 / px)
    f = np.linspace(0.0, f_max, n_frequencies)
    kernel = special.j0(2 * np.pi * f[:, None] * rc[None, :]) * (2 * np.pi * rc * width)[None, :]
    h = kernel @ psf
    if not h[0] > 0:
        raise AnalysisError("the point spread function has no positive integral: no wire or "
                            "bead at the given position")
    mtf = h / h[0]
    if object_diameter_mm > 0:
        if object_shape not in ("bead", "wire"):
            raise AnalysisError(f"object_shape must be bead or wire, got {object_shape!r}")
        x = np.pi * f * float(object_diameter_mm)
        xs = np.where(x == 0, 1.0, x)
        if object_shape == "bead":
            own = np.where(x == 0, 1.0, 3 * (np.sin(xs) - xs * np.cos(xs)) / xs**3)
        else:
            own = np.where(x == 0, 1.0, 2 * special.j1(xs) / xs)
        usable = np.cumprod(own > 0.3).astype(bool)
        f, mtf = f[usable], mtf[usable] / own[usable]
    centre = tuple(float(x) for x in np.mean(fitted, axis=0))
    return MtfCurve(frequency_per_mm=f, mtf=mtf, mtf50_lp_per_cm=10 * crossing(f, mtf, 0.5),
                    mtf10_lp_per_cm=10 * crossing(f, mtf, 0.1), method="point",
                    spread_mm=rc, spread=psf, centre_yx=(centre[0], centre[1]),
                    contrast_hu=float(np.mean(peaks)))


def refine_disc(image_yx: np.ndarray, pixel_mm: float, centre_yx: Any, radius_mm: float,
                half_width_mm: float) -> tuple[np.ndarray, float, float, float]:
    """Centre (row, col), radius (mm), insert and background HU of a uniform disc.

    Iterates: background = mean of the ring R + w/2 … R + w, insert = mean
    inside R − w/2; the contrast-weighted centroid and the area-equivalent
    radius of (v − bg) / (insert − bg) over the disc of radius R + w.
    """
    img = np.asarray(image_yx, dtype=np.float64)
    px = float(pixel_mm)
    ny, nx = img.shape
    yy, xx = np.mgrid[:ny, :nx]
    c = np.asarray(centre_yx, dtype=float)
    rad = float(radius_mm)
    w = float(half_width_mm)
    bg = ins = 0.0
    for _ in range(4):
        r = np.hypot((yy - c[0]) * px, (xx - c[1]) * px)
        ring = (r >= rad + w / 2) & (r < rad + w)
        core = r < max(rad - w / 2, 0.5 * rad)
        if ring.sum() < 8 or core.sum() < 4:
            raise AnalysisError("the insert is too small or too close to the edge of the image")
        bg, ins = float(img[ring].mean()), float(img[core].mean())
        if abs(ins - bg) < 1e-6:
            raise AnalysisError("the insert has no contrast against its background")
        disc = r < rad + w
        frac = (img[disc] - bg) / (ins - bg)
        total = float(frac.sum())
        if not total > 0:
            raise AnalysisError("no insert found at the given position")
        c = np.array([(yy[disc] * frac).sum(), (xx[disc] * frac).sum()]) / total
        rad = float(np.sqrt(total * px * px / np.pi))
    return c, rad, ins, bg


def mtf_from_circular_edge(image_yx: np.ndarray, pixel_mm: float, centre_yx: Any,
                           radius_mm: float, *, half_width_mm: float | None = None,
                           bin_mm: float | None = None, refine: bool = True,
                           f_max_per_mm: float | None = None,
                           n_frequencies: int = 256) -> MtfCurve:
    """Task transfer function from the circular edge of an insert (AAPM TG-233).

    ``image_yx`` one slice or a stack through the same insert; ``centre_yx``
    and ``radius_mm`` approximate. ``half_width_mm`` (default the smaller of
    0.8 R and max(4 mm, 8 pixels)) is how far either side of the edge the ESF
    reaches.
    """
    imgs, centres = _stack(image_yx, centre_yx)
    px = float(pixel_mm)
    w = float(half_width_mm) if half_width_mm else min(0.8 * radius_mm, max(4.0, 8.0 * px))
    width = float(bin_mm) if bin_mm else px / 10.0
    all_d, all_v, contrasts, fitted, radii = [], [], [], [], []
    for img, c in zip(imgs, centres, strict=True):
        if refine:
            cc, rad, ins, bg = refine_disc(img, px, c, radius_mm, w)
        else:
            cc, rad = np.asarray(c, dtype=float), float(radius_mm)
            _c, _r, ins, bg = refine_disc(img, px, c, radius_mm, w)
        ny, nx = img.shape
        yy, xx = np.mgrid[:ny, :nx]
        r = np.hypot((yy - cc[0]) * px, (xx - cc[1]) * px)
        sel = np.abs(r - rad) < w
        # Normalised ESF: 1 inside, 0 outside, whatever the sign of the contrast.
        all_d.append(r[sel] - rad + w)
        all_v.append((img[sel] - bg) / (ins - bg))
        contrasts.append(ins - bg)
        fitted.append(cc)
        radii.append(rad)
    d = np.concatenate(all_d)
    v = np.concatenate(all_v)
    dc, esf = _bin(d, v, width, 2 * w)
    dc = dc - w
    lsf = -np.gradient(esf, width)
    # Tukey window: flat over the inner half, a cosine taper over the outer half, so
    # noise far from the edge is suppressed without narrowing the LSF itself.
    a = np.clip((np.abs(dc) - 0.5 * w) / (0.5 * w), 0.0, 1.0)
    window = 0.5 + 0.5 * np.cos(np.pi * a)
    lsf = lsf * window
    f_max = f_max_per_mm or max(2.0, 1.0 / px)
    f = np.linspace(0.0, f_max, n_frequencies)
    spec = np.exp(-2j * np.pi * f[:, None] * dc[None, :]) @ lsf
    mag = np.abs(spec)
    if not mag[0] > 0:
        raise AnalysisError("the edge spread function has no step: no edge at the given radius")
    mtf = mag / mag[0]
    centre = np.mean(fitted, axis=0)
    return MtfCurve(frequency_per_mm=f, mtf=mtf, mtf50_lp_per_cm=10 * crossing(f, mtf, 0.5),
                    mtf10_lp_per_cm=10 * crossing(f, mtf, 0.1), method="circular_edge",
                    spread_mm=dc, spread=esf, centre_yx=(float(centre[0]), float(centre[1])),
                    radius_mm=float(np.mean(radii)), contrast_hu=float(np.mean(contrasts)))


# --------------------------------------------------------------------------- ct.mtf analysis


def find_point(series: Series) -> dict[str, Any] | None:
    """Slices holding a wire or bead: a small object hundreds of HU above its surroundings.

    Per slice, the image smoothed over ~1 mm; its maximum must stand ≥ 300 HU
    above the median of the reconstructed pixels and the region above half that
    height must be small (< 9 mm²), with at most three such regions. Returns
    the slices within half the highest peak and their peak positions, the
    fraction of all slices holding a point, and whether each kept slice holds
    exactly one; or None.
    """
    return memo(series, _POINT_KEY, lambda: _scan_points(series))


_POINT_KEY = "ct.point_object"
_GAVE_UP = object()


def _scan_points(series: Series, give_up: bool = False) -> Any:
    """:func:`find_point`'s search. ``give_up``: return :data:`_GAVE_UP` as soon as more
    than half the slices have been found without a point (the fraction of slices holding
    one can then no longer reach 0.5, whatever the other slices hold)."""
    v = series.voxels
    dy, dx = series.spacing[1], series.spacing[2]
    n_slices = v.shape[0]
    found = []
    n_blobs: dict[int, int] = {}
    for k in range(n_slices):
        point = _point_in_slice(np.asarray(v[k]), dy, dx)
        if point is not None:
            n_blobs[k] = point[0]
            if point[1] is not None:
                found.append((k, point[1], point[2]))
        # the fraction can be at most (slices searched with a point + slices left) / n
        if give_up and (len(found) + n_slices - 1 - k) / n_slices < 0.5:
            return _GAVE_UP
    if not found:
        return None
    top = max(h for _k, _c, h in found)
    keep = [(k, c, h) for k, c, h in found if h >= 0.5 * top]
    return {"slices": [k for k, _c, _h in keep], "centres": [c for _k, c, _h in keep],
            "fraction_of_slices": len(found) / n_slices,
            "single": all(n_blobs[k] == 1 for k, _c, _h in keep)}


#: Far above the rounding of a Gaussian-weighted mean of HU values (about 1e-11 HU: the
#: weights sum to 1 within a few ulp), far below any HU difference that matters.
_ROUNDING_HU = 1e-3
#: Source types whose values float64 holds exactly and in the same order.
_EXACT_IN_FLOAT64 = (np.float32, np.float64, np.int8, np.uint8, np.int16, np.uint16,
                     np.int32, np.uint32)


def _point_in_slice(raw: np.ndarray, dy: float, dx: float
                    ) -> tuple[int, tuple[float, float] | None, float] | None:
    """(number of bright regions, the point's (row, col) or None if its region is too
    large, height in HU) of one slice; None when no peak stands 300 HU out or more than
    three regions do, or when the peak's region is shown too large before the regions
    are counted (:func:`_region_too_large`; the count is read only for slices holding a
    point) (:func:`find_point`).

    The image smoothed over ~1 mm is computed only where it can matter, which gives the
    same answer as smoothing it all: a smoothed pixel is a weighted mean (weights ≥ 0,
    summing to 1) of the pixels within the kernel's reach, so where every one of them is
    at most the median + 150 HU, it is too (to :data:`_ROUNDING_HU`). A point needs a
    peak 300 HU above the median and its region lies above half the peak, i.e. above
    the median + 150 HU; so neither the peak nor any region can lie farther than the
    kernel's reach from the box of pixels above that level. Within that box grown by the
    reach the smoothing is computed on the box grown by twice the reach: the same
    arithmetic on the same pixels as on the whole image. On a patient's slice the box is
    the body (or the bones), not the whole field of view."""
    # the slice as stored when float64 holds its values exactly (float32 CT): compared
    # in float64 below (a float64 scalar), converted only where it is smoothed
    img = raw if raw.dtype.type in _EXACT_IN_FLOAT64 else np.asarray(raw, dtype=np.float64)
    # reconstruction_mask labels a corner value's pixels only when they are over 2 % of
    # the slice (padding): without such a value the mask is every pixel; with one, the
    # pixels of other values are a subset of it, enough for the test without the median
    padding = _padding_values(img)
    inside = np.ones(img.shape, dtype=bool)
    for v in padding:
        inside &= img != v
    sigma = 0.4 / dx
    reach = int(4.0 * float(sigma) + 0.5)  # scipy's Gaussian kernel radius (truncate 4)
    ny, nx = img.shape

    def grown(lo: int, hi: int, by: int, n: int) -> tuple[int, int]:
        return max(lo - by, 0), min(hi + 1 + by, n)

    def smoothed(ya: int, yb: int, xa: int, xb: int) -> np.ndarray:
        """The smoothed image on rows ya:yb, columns xa:xb, exactly (from the pixels
        within twice the reach)."""
        (ca, cb), (da, db) = grown(ya, yb - 1, reach, ny), grown(xa, xb - 1, reach, nx)
        part = np.asarray(img[ca:cb, da:db], dtype=np.float64)
        return ndimage.gaussian_filter(part, sigma)[ya - ca:yb - ca, xa - da:xb - da]

    # first without the median, from an upper bound of it (a patient's slice ends here)
    bound = _median_upper_bound(img, inside, not padding, max(padding, default=-math.inf))
    if bound is not None and _region_too_large(img, inside, bound[0], reach, (dy, dx),
                                               smoothed, brightest=bound[1],
                                               margin=_ROUNDING_HU, padding=padding):
        return None
    if padding:
        inside = reconstruction_mask(img)
    everywhere = bool(inside.all())
    med = _median(img if everywhere else img[inside])
    above = img > np.float64(med + 150.0 - _ROUNDING_HU)
    rows = np.flatnonzero(above.any(axis=1))
    if rows.size == 0:
        return None  # every smoothed pixel below the median + 150 HU: no 300 HU peak
    cols = np.flatnonzero(above.any(axis=0))
    if _region_too_large(img, inside, med, reach, (dy, dx), smoothed):
        return None

    (y0, y1), (x0, x1) = grown(rows[0], rows[-1], reach, ny), grown(cols[0], cols[-1], reach, nx)
    (cy0, cy1), (cx0, cx1) = (grown(y0, y1 - 1, reach, ny), grown(x0, x1 - 1, reach, nx))
    crop = np.asarray(img[cy0:cy1, cx0:cx1], dtype=np.float64)
    sm = ndimage.gaussian_filter(crop, sigma)[y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0]
    if not everywhere:
        sm[~inside[y0:y1, x0:x1]] = med
    j = int(np.argmax(sm))
    peak_yx = np.unravel_index(j, sm.shape)
    height = float(sm[peak_yx]) - med
    if height < 300:
        return None
    blob = sm > med + 0.5 * height
    # labelled within its own box (it holds the peak): the same regions
    by, bx = np.flatnonzero(blob.any(axis=1)), np.flatnonzero(blob.any(axis=0))
    labels, n = ndimage.label(blob[by[0]:by[-1] + 1, bx[0]:bx[-1] + 1])
    if n > 3:
        return None
    size = float(np.sum(labels == labels[peak_yx[0] - by[0], peak_yx[1] - bx[0]])) * dy * dx
    if size > 9.0:
        return n, None, height
    return n, (float(peak_yx[0] + y0), float(peak_yx[1] + x0)), height


def _region_too_large(img: np.ndarray, inside: np.ndarray, med: float, reach: int,
                      spacing_yx: tuple[float, float],
                      smoothed: Any, *, brightest: int | None = None,
                      margin: float = 0.0, padding: tuple[float, ...] = ()) -> bool:
    """True when the slice's smoothed peak is 300 HU above the median and its
    half-height region is shown to be larger than a point's 9 mm² without smoothing the
    body (a patient's slice: the peak is bone); False when this cannot be shown (the
    caller then searches as before).

    Exact: the smoothed value at the brightest pixel, ``level``, is at most the peak, and
    a pixel whose kernel reaches only pixels below ``level`` is smoothed below it, so the
    peak (the first of the largest in raster order, as ``argmax`` takes it) lies within
    the reach of the pixels at or above ``level``, where it is found exactly. A pixel
    whose kernel reaches only pixels above half the peak (their minimum) is smoothed
    above it, and so is a pixel of the exactly smoothed box above it; the region of such
    pixels joined to the peak lies inside the peak's half-height region: when it alone
    is over 9 mm² (the same float steps), so is that.

    ``med`` may also be an upper bound of the median, with ``margin`` =
    :data:`_ROUNDING_HU` (:func:`_median_upper_bound`; ``brightest``: ``argmax`` of the
    slice, known from the same pass): the peak is then found as with the median (the
    pixels outside the reconstruction, set to the bound, still lie below ``level``), and
    half of the peak above the bound, plus the margin, is at least half of it above the
    median; the pixels shown above that lie above the half-height level too.

    With ``padding`` (the values :func:`_padding_values` found), ``inside`` may be the
    pixels of other values, a subset of the data pixels: the median bound over them
    bounds the median over all (the others, padding-valued, lie below any candidate),
    the peak's box must then hold no padding-valued pixel (there the subset is the data
    itself, so the peak and its smoothed box are the same; else False), and the pixels
    shown above half of the peak are fewer, not more."""
    ny, nx = img.shape
    dy, dx = spacing_yx
    flat = int(np.argmax(img)) if brightest is None else brightest
    q = np.unravel_index(flat, img.shape)
    if not inside[q]:
        return False
    level = float(smoothed(int(q[0]), int(q[0]) + 1, int(q[1]), int(q[1]) + 1)[0, 0])
    if not level >= med + 300.0:
        return False  # not sure of a 300 HU peak (or a NaN): the full search says
    # the box of the pixels at or above level (it holds q): the rows whose largest value
    # (NaN ignored, as the comparison ignores it) reaches it, then the columns of that band
    at = np.float64(level - _ROUNDING_HU)
    rows = np.flatnonzero(np.fmax.reduce(img, axis=1) >= at)
    band = img[rows[0]:rows[-1] + 1]
    cols = np.flatnonzero(np.fmax.reduce(band, axis=0) >= at)
    y0, y1 = max(int(rows[0]) - reach, 0), min(int(rows[-1]) + 1 + reach, ny)
    x0, x1 = max(int(cols[0]) - reach, 0), min(int(cols[-1]) + 1 + reach, nx)
    if any(bool((img[y0:y1, x0:x1] == v).any()) for v in padding):
        return False
    sm = smoothed(y0, y1, x0, x1)
    if not inside[y0:y1, x0:x1].all():
        sm[~inside[y0:y1, x0:x1]] = med
    pk = np.unravel_index(int(np.argmax(sm)), sm.shape)
    height = float(sm[pk]) - med  # ≥ level − med ≥ 300
    py, px = int(pk[0]) + y0, int(pk[1]) + x0
    # the half-height level, as the search computes it (or at least it, from a bound)
    half = med + 0.5 * height + margin
    wy0, wy1 = max(py - 12, 0), min(py + 13, ny)
    wx0, wx1 = max(px - 12, 0), min(px + 13, nx)
    low = ndimage.minimum_filter(np.asarray(img[wy0:wy1, wx0:wx1], dtype=np.float64),
                                 size=2 * reach + 1, mode="nearest")
    # the minimum is the kernel's only at least the reach from a window edge inside the
    # image (at the image's edge "nearest" repeats a pixel the kernel reaches too)
    valid = np.zeros(low.shape, dtype=bool)
    valid[(reach if wy0 > 0 else 0):low.shape[0] - (reach if wy1 < ny else 0),
          (reach if wx0 > 0 else 0):low.shape[1] - (reach if wx1 < nx else 0)] = True
    sure = (low > half + _ROUNDING_HU) & valid & inside[wy0:wy1, wx0:wx1]
    # and where the smoothed image is known (round the peak, which is there): above half
    oy0, oy1, ox0, ox1 = max(wy0, y0), min(wy1, y1), max(wx0, x0), min(wx1, x1)
    sure[oy0 - wy0:oy1 - wy0, ox0 - wx0:ox1 - wx0] |= sm[oy0 - y0:oy1 - y0,
                                                         ox0 - x0:ox1 - x0] > half
    labels, _n = ndimage.label(sure)
    k = labels[py - wy0, px - wx0]
    return bool(k) and float(np.count_nonzero(labels == k)) * dy * dx > 9.0


def _padding_values(img: np.ndarray) -> tuple[float, ...]:
    """The corner values below air with over 2 % of the slice's pixels: those whose regions
    meeting the border :func:`~scanbench.analysis.ct.common.reconstruction_mask` labels
    (with none, its mask is every pixel)."""
    corners = {float(img[0, 0]), float(img[0, -1]), float(img[-1, 0]), float(img[-1, -1])}
    return tuple(v for v in sorted(corners) if v <= PADDING_BELOW_HU
                 and np.count_nonzero(img == v) > 0.02 * img.size)


def _median_upper_bound(img: np.ndarray, inside: np.ndarray, everywhere: bool,
                        floor: float = -math.inf) -> tuple[float, int] | None:
    """(a value at least the median of the slice's data pixels, the slice's ``argmax``),
    or None when the count below does not show it (or a NaN is there).

    The candidate is about the 60th percentile of every 64th data pixel; it bounds the
    median exactly when more than ``n // 2`` of the ``n`` data pixels are at most it:
    then the middle value (or both middle values, and their float mean) are at most it.
    A count and an ``argmax`` instead of the median's partition. ``inside`` may leave
    out data pixels of padding values (:func:`_point_in_slice`): a candidate at least
    ``floor`` (the largest of them) is above every left-out pixel, so adding them to the
    count and to ``n`` alike keeps the count over half; a lower candidate gives None."""
    n = img.size if everywhere else int(np.count_nonzero(inside))
    if n < 8192:
        return None
    sample = img[::8, ::8] if everywhere else img[::8, ::8][inside[::8, ::8]]
    sample = np.asarray(sample).ravel()
    if sample.size < 64:
        return None
    at = int(0.6 * sample.size)
    candidate = np.float64(np.partition(sample, at)[at])
    if candidate < floor:
        return None
    brightest = int(np.argmax(img))
    if math.isnan(float(img.flat[brightest])):
        return None  # np.argmax finds a NaN first: the full search handles it
    at_most = img <= candidate
    below = int(np.count_nonzero(at_most if everywhere else at_most & inside))
    if below <= n // 2:
        return None
    return float(candidate), brightest


def _median(raw: np.ndarray) -> float:
    """``np.median`` of ``raw`` as float64, from ``raw`` itself when its type holds the
    same values in the same order (half the bytes to partition for float32 CT): the
    middle value, or the mean of the two middle values computed in float64 as numpy's
    median does; NaN if there is a NaN."""
    if raw.dtype.type not in _EXACT_IN_FLOAT64 or raw.size == 0:
        return float(np.median(np.asarray(raw, dtype=np.float64)))
    flat = raw.ravel()
    n = flat.size
    half = n // 2
    kth = [half] if n % 2 else [half - 1, half]
    middle = _order_statistics(flat, kth)
    if middle is None:  # the whole array partitioned (and a NaN looked for at its end)
        part = np.partition(flat, [*kth, n - 1])
        if np.issubdtype(part.dtype, np.floating) and np.isnan(part[-1]):
            return math.nan
        middle = [part[k] for k in kth]
    if n % 2:
        return float(middle[0])
    return (float(middle[0]) + float(middle[1])) / 2.0


def _order_statistics(flat: np.ndarray, kth: list[int]) -> list[Any] | None:
    """The ``kth`` smallest values of ``flat`` from the values between two bounds only,
    or None when they do not lie between them (or a NaN is there): the bounds are about
    the 45th and 55th percentiles of every few-hundredth value; with ``below`` values
    under the lower bound, the k-th smallest of all is the (k − below)-th smallest of
    those between the bounds whenever below ≤ k < below + between: exact, and a tenth
    of the values to partition."""
    n = flat.size
    if n < 8192:
        return None
    sample = np.sort(flat[:: n // 4096])
    lo, hi = sample[int(0.45 * sample.size)], sample[int(0.55 * sample.size)]
    below = int(np.count_nonzero(flat < lo))
    above = int(np.count_nonzero(flat > hi))
    inner = (flat >= lo) & (flat <= hi)
    between = int(np.count_nonzero(inner))
    if below + between + above != n or not (below <= kth[0] and kth[-1] < below + between):
        return None  # a NaN compares false with both bounds; or the median is outside
    part = np.partition(flat[inner], [k - below for k in kth])
    return [part[k - below] for k in kth]


def _point_if_most_slices(series: Series) -> dict[str, Any] | None:
    """:func:`find_point`, or None as soon as more than half the slices have been found
    without a point: the detector's wire-or-bead condition (a point in at least half the
    slices) then fails whatever the rest hold, so a patient's series, which every CT
    series the node receives is checked for, is not searched to its end. A search that
    runs to the end is memoised as :func:`find_point`'s."""
    entry = series.derived.get(_POINT_KEY)
    if entry is not None and entry[0] is series.voxels:
        return entry[1]
    result = _scan_points(series, give_up=True)
    if result is _GAVE_UP:
        return None
    return memo(series, _POINT_KEY, lambda: result)


def find_edge_insert(series: Series) -> dict[str, Any] | None:
    """One circular insert (5–60 mm) of distinct HU inside a uniform phantom, or None.

    In the middle slice: the phantom section; inside 90 % of its radius, the
    pixels more than 80 HU from the section's median (smoothed over ~1 mm) form
    exactly one sizeable region, round, of 5–60 mm diameter.
    """
    def compute() -> dict[str, Any] | None:
        v = series.voxels
        dy, dx = series.spacing[1], series.spacing[2]
        k = v.shape[0] // 2
        img = np.asarray(v[k], dtype=np.float64)
        try:
            sec = find_section(img, (dy, dx))
        except AnalysisError:
            return None
        yy, xx = np.mgrid[:img.shape[0], :img.shape[1]]
        r = np.hypot((yy - sec.centre_yx[0]) * dy, (xx - sec.centre_yx[1]) * dx)
        interior = r < 0.9 * sec.radius_mm
        host = float(np.median(img[interior]))
        sm = ndimage.gaussian_filter(img, 0.5 / dx)
        odd = interior & (np.abs(sm - host) > 80.0)
        labels, n = ndimage.label(odd)
        if n == 0:
            return None
        sizes = np.bincount(labels.ravel())[1:] * dy * dx
        big = np.flatnonzero(sizes > 10.0)
        if len(big) != 1 or (np.sort(sizes)[-2:][0] > 10.0 and len(sizes) > 1 and (
                np.sort(sizes)[-2] > 10.0)):
            return None
        region = labels == int(big[0]) + 1
        area = float(region.sum()) * dy * dx
        radius = math.sqrt(area / math.pi)
        if not 2.5 <= radius <= 30.0:
            return None
        ry, rx = np.nonzero(region)
        c = (float(ry.mean()), float(rx.mean()))
        bd = region & ~ndimage.binary_erosion(region)
        by, bx = np.nonzero(bd)
        spread = float(np.hypot((by - c[0]) * dy, (bx - c[1]) * dx).std() / radius)
        if spread > 0.12:
            return None
        return {"centre_yx": c, "radius_mm": radius, "host_hu": host,
                "insert_hu": float(np.median(img[region]))}
    return memo(series, "ct.edge_insert", compute)


@register
class CtMtf:
    """MTF of a CT scanner from a wire/bead or a circular-edge insert (module docstring)."""

    id: ClassVar[str] = "ct.mtf"
    modality: ClassVar[str] = "CT"
    standard: ClassVar[str] = (
        "IEC 61223-3-5:2019 and AAPM Report 233 (2019): MTF from a wire or bead (point spread "
        "function) or from a circular insert's edge (task transfer function) (see "
        "docs/standards/iec-aapm-ct.md#mtf)")
    title: ClassVar[str] = "CT spatial resolution (MTF)"

    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("method", "point (wire or bead), edge (circular insert) or auto", "",
                  "auto"),
        Parameter("object_diameter_mm", "diameter of the wire or bead, whose own profile is "
                  "divided out (0: treated as a point)", "mm", 0.0),
        Parameter("object_shape", "bead or wire (which profile is divided out)", "", "bead"),
        Parameter("roi_radius_mm", "radius around the point that bounds the point spread "
                  "function", "mm", "the larger of 4 mm and 12 pixels"),
        Parameter("half_width_mm", "how far either side of the insert's edge the edge "
                  "spread function reaches", "mm", "the smaller of 0.8 × radius and the "
                  "larger of 4 mm and 8 pixels"),
    )

    def detect(self, series: Series) -> float:
        if series.facts.modality != "CT":
            return 0.0
        try:
            check_axial(series)
            point = _point_if_most_slices(series)
            # A wire or bead scan: one point in most slices and nothing else bright
            # (the BBs of an ACR module 1 appear in a few slices, several at once).
            if point is not None and point["single"] and point["fraction_of_slices"] >= 0.5:
                return 0.9
            if find_edge_insert(series) is not None:
                return 0.8
        except AnalysisError:
            return 0.0
        return 0.0

    def run(self, series: Series, **params: Any) -> Result:
        where = series_where(series)
        check_axial(series)
        _dz, dy, dx = series.spacing
        if abs(dy - dx) > 1e-3 * dx:
            raise AnalysisError(f"non-square pixels ({dy} × {dx} mm): the MTF needs square pixels",
                                where)
        method = str(params.get("method", "auto"))
        if method not in ("auto", "point", "edge"):
            raise AnalysisError(f"method must be point, edge or auto, got {method!r}", where)
        result = result_for(self, series)
        point = find_point(series) if method in ("auto", "point") else None
        v = series.voxels
        if point is not None:
            ks = point["slices"]
            diameter = float(params.get("object_diameter_mm", 0.0))
            curve = mtf_from_point(np.asarray(v[ks], dtype=np.float64), dx, point["centres"],
                                   roi_radius_mm=params.get("roi_radius_mm"),
                                   object_diameter_mm=diameter,
                                   object_shape=str(params.get("object_shape", "bead")))
            if diameter > 0:
                result.parameters["object_diameter_mm"] = diameter
            label = "point"
        else:
            edge = find_edge_insert(series) if method in ("auto", "edge") else None
            if edge is None:
                raise AnalysisError(
                    "no wire or bead (a small object ≥ 300 HU above its surroundings) and no "
                    "single circular insert found: not an MTF phantom scan", where)
            # The slices that show the insert (a rod shorter than the scan, end slices).
            ks = []
            for k in range(v.shape[0]):
                try:
                    _c, rad, ins, bg = refine_disc(np.asarray(v[k], dtype=np.float64), dx,
                                                   edge["centre_yx"], edge["radius_mm"],
                                                   min(0.8 * edge["radius_mm"], 4.0))
                except AnalysisError:
                    continue
                if abs(rad - edge["radius_mm"]) < 0.2 * edge["radius_mm"] and (
                        abs(ins - bg) > 0.5 * abs(edge["insert_hu"] - edge["host_hu"])):
                    ks.append(k)
            if not ks:
                raise AnalysisError("the insert found in the middle slice is not measurable "
                                    "in any slice", where)
            curve = mtf_from_circular_edge(np.asarray(v[ks], dtype=np.float64), dx,
                                           edge["centre_yx"], edge["radius_mm"],
                                           half_width_mm=params.get("half_width_mm"))
            label = "circular_edge"
            if abs(curve.contrast_hu or 0.0) < 100:
                result.warnings.append(
                    f"edge contrast {curve.contrast_hu:.0f} HU: below ~100 HU the TTF is noisy; "
                    "average more slices (TG-233)")
        if math.isnan(curve.mtf50_lp_per_cm):
            raise AnalysisError("the MTF never falls to 0.5 in the computed range", where)
        result.add("mtf50_lp_per_cm", curve.mtf50_lp_per_cm, "lp/cm", labels={"method": label})
        if math.isnan(curve.mtf10_lp_per_cm):
            result.warnings.append("the MTF does not fall to 0.1 below the highest frequency "
                                   "computed: no MTF10")
        else:
            result.add("mtf10_lp_per_cm", curve.mtf10_lp_per_cm, "lp/cm",
                       labels={"method": label})
        result.data["mtf"] = curve.to_dict()
        result.parameters.update({"method": label, "slices_used": len(ks),
                                  "pixel_mm": round(dx, 4)})
        kc = ks[len(ks) // 2]
        result.evidence = {"slice_image": np.asarray(v[kc], dtype=np.float32),
                           "spacing_yx": (dy, dx), "curve": curve}
        return result

    def figures(self, result: Result) -> list[Any]:
        """The MTF curve with MTF50/MTF10 marked, and the spread function it came from."""
        import plotly.graph_objects as go

        ev = result.evidence
        if not ev:
            return []
        c: MtfCurve = ev["curve"]
        fig = go.Figure()
        fig.add_trace(go.Scatter(x=10 * c.frequency_per_mm, y=c.mtf, mode="lines", name="MTF"))
        for level, f in ((0.5, c.mtf50_lp_per_cm), (0.1, c.mtf10_lp_per_cm)):
            if not math.isnan(f):
                fig.add_trace(go.Scatter(x=[f], y=[level], mode="markers+text",
                                         text=[f"{f:.2f} lp/cm"], textposition="top right",
                                         name=f"MTF{int(level * 100)}"))
        fig.update_layout(title_text=f"MTF ({c.method.replace('_', ' ')})",
                          xaxis_title="spatial frequency (lp/cm)", yaxis_title="MTF",
                          template="simple_white")
        fig2 = go.Figure()
        fig2.add_trace(go.Scatter(x=c.spread_mm, y=c.spread, mode="lines",
                                  name="PSF" if c.method == "point" else "ESF"))
        fig2.update_layout(title_text=("Radial point spread function" if c.method == "point"
                                       else "Edge spread function"),
                           xaxis_title="distance (mm)", yaxis_title="HU above background"
                           if c.method == "point" else "normalised", template="simple_white")
        return [fig, fig2]


__all__ = ["CtMtf", "MtfCurve", "crossing", "find_edge_insert", "find_point",
           "mtf_from_circular_edge", "mtf_from_point", "refine_disc"]

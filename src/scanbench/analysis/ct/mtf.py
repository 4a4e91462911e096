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

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import interpolate, optimize, special

from scanbench.errors import AnalysisError


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
    """Mean of v in bins of r of ``width`` from 0 to r_max; empty bins interpolated."""
    n = int(np.ceil(r_max / width))
    idx = np.clip((r / width).astype(int), 0, n - 1)
    keep = r < r_max
    sums = np.bincount(idx[keep], weights=v[keep], minlength=n)
    counts = np.bincount(idx[keep], minlength=n)
    centres = (np.arange(n) + 0.5) * width
    ok = counts > 0
    if ok.sum() < 4:
        raise AnalysisError("too few pixels around the object for a spread function")
    known = sums[ok] / np.maximum(counts[ok], 1)
    # Monotone cubic (PCHIP) through the filled bins: a sharp PSF sampled by few
    # pixels is bridged smoothly, without the overshoot of a spline.
    means = interpolate.PchipInterpolator(centres[ok], known, extrapolate=True)(centres)
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
                   n_frequencies: int = 256) -> MtfCurve:
    """MTF from a wire or bead: oversampled radial PSF and its Hankel transform.

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
    0.8 R and max(5 mm, 15 pixels)) is how far either side of the edge the ESF
    reaches.
    """
    imgs, centres = _stack(image_yx, centre_yx)
    px = float(pixel_mm)
    w = float(half_width_mm) if half_width_mm else min(0.8 * radius_mm, max(5.0, 15.0 * px))
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


__all__ = ["MtfCurve", "crossing", "mtf_from_circular_edge", "mtf_from_point", "refine_disc"]

"""PET image quality with the IEC/NEMA body phantom: NEMA NU 2-2018 section 7.4
and the EARL FDG-PET/CT recovery coefficients.

Procedure, in the order a physicist would do it by hand:

1. **Find the phantom** (:func:`locate_phantom`). A robust background level
   (Otsu threshold on a subsample, then the median above it) defines the body
   as the voxels above half that level. The phantom's axial extent is the
   longest run of slices whose body area is at least half the largest; its
   outline is the filled body mask of the image averaged over that run. The
   lung insert is the round cold region inside the outline (NU 2-2018 7.3:
   a low-density cylinder on the phantom axis with no activity).
2. **Find the sphere plane.** On a work grid (block means to about 4 mm, then
   a Gaussian of about 2 mm), the slice whose body holds the most signal above
   ``level + 4 SD`` is the sphere plane to within a slice or two (hot spheres
   at 4:1 or more stand out of the background there and nowhere else).
3. **Fit the ring** (:func:`fit_ring`): the six spheres lie on a circle of
   57.2 mm radius around the lung insert, in order of size, the 37 mm sphere
   next to the 28 and 10 mm ones (:mod:`scanbench.phantoms.nema_iq`). On the
   plane, each sphere's mean in a disc of its own diameter is computed at
   every pixel (a matched filter); the ring centre, rotation angle and
   handedness (mirror: which way the sizes increase around the ring, which
   flips with head- or feet-first placement) that maximise the summed
   contrast of the six discs (hot spheres up, cold spheres down) is the fit.
   Any rotation about the scanner axis and any shift in the field of view
   are allowed; the grid search starts at the lung insert.
4. **Refine each sphere in 3-D**: the mean in a sphere of the sphere's own
   radius is computed at every voxel within 6 mm of the ring position;
   its extremum, interpolated to a fraction of a voxel with a parabola on
   each axis, is the sphere centre. Real phantoms are never perfect, so the
   centres are measured rather than taken from the model; a centre that
   moves more than 6 mm from the fitted ring stays on the ring, with a
   warning. The sphere-centre plane is the volume-weighted mean z of the hot
   spheres, and the *sphere-plane slice* is the transverse slice whose centre
   is nearest to it.
5. **Measure** by NU 2-2018 section 7.4.1-7.4.3 (STANDARDS.md A.5):

   * hot contrast ``Q_H = 100 (C_H/C_B - 1) / (a_H/a_B - 1)``, cold contrast
     ``Q_C = 100 (1 - C_C/C_B)``, with ``C_H`` (``C_C``) the mean in a circle
     of the sphere's inner diameter centred on the sphere on the sphere-plane
     slice, ``C_B`` the mean of the 60 background ROIs of the same size;
   * background variability ``N = 100 SD / C_B`` with SD over the 60 ROI
     means, denominator ``K - 1`` (the sample SD; the standard's text is
     [U] on this point, STANDARDS.md A.5);
   * lung residual ``100 C_lung / C_B,37mm`` from a 30 mm ROI centred on the
     lung insert on each of the five background slices, averaged.
   * background ROIs (:func:`background_roi_centres`): 12 ROIs of 37 mm on
     the sphere-plane slice and on the slices nearest ±10 and ±20 mm from
     it; 10-28 mm ROIs concentric with them. They stay 15 mm inside the
     measured body outline; the margin from the spheres and the lung insert
     is 15 mm unless the phantom leaves no room for 12 ROIs, when it is
     lowered (and reported, with a warning). The outline is measured, never
     assumed: a real phantom's walls, and how much of the body the axial
     field of view holds, differ from the drawing in
     :mod:`scanbench.phantoms.nema_iq`.

6. **EARL recovery coefficients** (STANDARDS.md A.9): ``rc_max`` (maximum
   voxel), ``rc_mean`` (mean of the A50 VOI: the voxels at or above
   ``0.5 (max - background) + background`` connected (6-neighbour) to the
   maximum, in a box of half-width one sphere radius plus one voxel around
   the sphere centre, background = the 37 mm background-ROI mean) and
   ``rc_peak`` (the highest mean in a 1 mL sphere, radius 6.20 mm, centred on
   any voxel within one sphere radius of the sphere centre), each divided by
   the true sphere concentration: ``sphere_concentration_bq_ml`` when given,
   else the measured background times ``activity_ratio`` (a warning says so).
   Each carries a standard uncertainty from the image's own relative noise
   (background ROI means of the sphere's size for ``rc_mean``, of 13 mm for
   ``rc_peak``, one voxel for ``rc_max``).
7. **The fill ratio is never assumed** (:func:`estimate_activity_ratio`): the
   largest hot spheres' profiles are fitted for the ratio the image shows,
   reported as ``activity_ratio_estimated`` with its uncertainty. Without
   ``activity_ratio`` the hot contrasts (and RCs resting on it) use the estimate
   and are not judged; a given ratio that puts the largest hot sphere's contrast
   above 100 % by more than 3 uncertainties contradicts the image (partial volume
   only lowers contrast) and refuses them.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from scanbench.analysis import ndi
from scanbench.analysis.base import MEASURED, Parameter, result_for
from scanbench.analysis.convolve import next_fast_len_real
from scanbench.analysis.least_squares import least_squares
from scanbench.analysis.memo import memo
from scanbench.analysis.registry import register
from scanbench.analysis.roi import circle_patch, circle_patch_means, patch_mean, sphere_kernel
from scanbench.errors import AnalysisError
from scanbench.phantoms import nema_iq
from scanbench.types import Measurement, Result, Series

ANALYSIS_ID = "pet.nema_nu2_2018.image_quality"
STANDARD = (
    "NEMA NU 2-2018 section 7.4 (image quality); recovery coefficients as in the EARL FDG-PET/CT "
    "accreditation specifications (see docs/standards/nema-nu2-2018.md#image-quality and "
    "docs/standards/earl.md#earl1-recovery-coefficients)")

SPHERES_MM: tuple[int, ...] = tuple(int(d) for d in nema_iq.SPHERE_DIAMETERS_MM)
_SPHERE_R = np.array(nema_iq.SPHERE_DIAMETERS_MM) / 2.0
_SPHERE_PHI = np.deg2rad(np.array(nema_iq.SPHERE_ANGLES_DEG))
_RING_R = nema_iq.SPHERE_RING_RADIUS_MM
_BG_ROI_MM = 37.0
PEAK_VOLUME_ML = 1.0
PEAK_RADIUS_MM = float((3.0 * PEAK_VOLUME_ML * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0))

# IEC body interior (nema_iq): area of the D-shaped outline, and its aspect ratio.
_BODY_AREA_MM2 = float(np.pi * nema_iq.BODY_HALF_WIDTH_MM**2 / 2
                       + 2 * nema_iq.BODY_HALF_WIDTH_MM * nema_iq.BODY_CORNER_RADIUS_MM
                       - (4 - np.pi) * nema_iq.BODY_CORNER_RADIUS_MM**2 / 2)
_BODY_ASPECT = 2 * nema_iq.BODY_HALF_WIDTH_MM / (nema_iq.BODY_HALF_WIDTH_MM
                                                 + nema_iq.BODY_CORNER_RADIUS_MM)
_LUNG_AREA_MM2 = np.pi * (nema_iq.LUNG_INSERT_INNER_DIAMETER_MM / 2) ** 2
_WORK_MM = 4.0  # work-grid pixel for finding the phantom
_REFINE_MM = 3.0  # fine grids are block-reduced to about this for the 3-D sphere refinement
_MAX_SPHERE_SHIFT_MM = 6.0  # a refined centre further than this from the ring is not trusted


# ---------------------------------------------------------------------------- parameters


def parse_cold_spheres(value: Any) -> tuple[int, ...]:
    """Sphere diameters (mm) filled cold, from ``28,37``, ``"28,37"``, ``(28, 37)``, ``37``.

    NU 2-2018 fills all six spheres hot; older editions filled the 28 and
    37 mm spheres with water (STANDARDS.md A.0). ``None``, ``""`` and
    ``"none"`` mean all hot.
    """
    if value is None:
        return ()
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", "none", "()", "[]"):
            return ()
        items: list[Any] = [t for t in text.replace(";", ",").replace(" ", ",").split(",") if t]
    elif isinstance(value, int | float):
        items = [value]
    else:
        items = list(value)
    out = []
    for item in items:
        try:
            d = round(float(item))
        except (TypeError, ValueError) as exc:
            raise AnalysisError(f"cold_spheres: {item!r} is not a sphere diameter in mm") from exc
        if d not in SPHERES_MM:
            raise AnalysisError(f"cold_spheres: {d} mm is not one of the IEC spheres {SPHERES_MM}")
        out.append(d)
    return tuple(sorted(set(out)))


def _positive_float(params: dict[str, Any], key: str, default: float | None) -> float | None:
    raw = params.get(key, default)
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "none")):
        return None
    try:
        val = float(raw)
    except (TypeError, ValueError) as exc:
        raise AnalysisError(f"{key}: {raw!r} is not a number") from exc
    if not np.isfinite(val) or val <= 0:
        raise AnalysisError(f"{key}: must be a positive number, got {raw!r}")
    return val


# ---------------------------------------------------------------------------- locating


@dataclass
class PhantomLocation:
    """Where the phantom and its parts are, in voxel indices of the series.

    Centres are fractional ``(k, j, i)`` (slice, row, column) indices;
    ``ring_angle_deg`` and ``handedness`` place the model's sphere order
    (:data:`scanbench.phantoms.nema_iq.SPHERE_ANGLES_DEG`) on the image:
    sphere ``n`` is at angle ``ring_angle_deg + handedness * angle_n`` from
    the +column axis towards +row.
    """

    level: float  # robust background level, stored units
    z_range: tuple[int, int]  # first and last slice of the phantom body
    body_mask_yx: np.ndarray  # filled body outline (z-averaged image)
    lung_centre_yx: tuple[float, float] | None
    ring_centre_yx: tuple[float, float]
    ring_angle_deg: float
    handedness: int
    sphere_centres_zyx: np.ndarray  # (6, 3), smallest sphere first
    plane_z: float  # fractional slice index of the sphere-centre plane
    sphere_contrast_snr: np.ndarray  # per sphere, signed contrast / noise on the work grid
    shape_score: float
    notes: list[str] = field(default_factory=list)

    @property
    def plane_slice(self) -> int:
        return int(np.floor(self.plane_z + 0.5))


def robust_level(voxels: np.ndarray) -> float:
    """The background activity level of a body in a PET volume, in stored units.

    Otsu's threshold on a subsample (every 2nd voxel or sparser, about a
    quarter of a million voxels) separates air from body; the median
    of the voxels above it is the body level. The hot spheres (< 1% of the
    body) and edge-of-field noise do not move a median.
    """
    step = max(2, int(np.ceil((voxels.size / 2.5e5) ** (1.0 / 3.0))))
    sub = voxels[::step, ::step, ::step]
    sub = sub[np.isfinite(sub)]
    if sub.size == 0:
        raise AnalysisError("no IEC body phantom found: the image is empty")
    hi = float(np.percentile(sub, 99.9))
    clipped = np.clip(sub, 0.0, hi)
    if hi <= 0 or float(clipped.max()) <= float(clipped.min()):
        raise AnalysisError("no IEC body phantom found: the image has no activity")
    t = ndi.threshold_otsu(clipped)
    above = sub[sub > t]
    if above.size == 0:
        raise AnalysisError("no IEC body phantom found: no voxels above the air level")
    return _median(above)


def _median(values: np.ndarray) -> float:
    """``float(np.median(values))`` of a 1-D array, exactly, in a fraction of the time.

    The two middle order statistics are bracketed from a subsample, the values in
    the bracket are counted and only those are partitioned; when the bracket
    misses (or there are NaNs) numpy's median is taken on the whole array.
    """
    x = np.asarray(values).ravel()
    n = x.size
    if n < 4096:
        return float(np.median(x))
    sub = x[::32]
    m = sub.size
    i_lo, i_hi = max(0, m // 2 - m // 40), min(m - 1, m // 2 + m // 40)
    sub = np.partition(sub, (i_lo, i_hi))
    lo_v, hi_v = sub[i_lo], sub[i_hi]
    below = x < lo_v
    sel = x[~below & (x <= hi_v)]
    n_below = int(np.count_nonzero(below))
    k = [(n - 1) // 2 - n_below, n // 2 - n_below]  # the middle one or two, in sel
    nan_free = n_below + sel.size + int(np.count_nonzero(x > hi_v)) == n
    if not (nan_free and k[0] >= 0 and k[1] < sel.size):
        return float(np.median(x))
    part = np.partition(sel, k)
    return float(np.median(part[[k[0], k[1]]] if n % 2 == 0 else part[[k[0]]]))


def _longest_run(flags: np.ndarray) -> tuple[int, int]:
    best, start, run = (0, -1), None, 0
    for i, f in enumerate(np.append(flags, False)):
        if f and start is None:
            start = i
        elif not f and start is not None:
            if i - start > run:
                run, best = i - start, (start, i - 1)
            start = None
    return best


def _largest_component(mask: np.ndarray) -> np.ndarray:
    lab, n = ndi.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(lab.ravel())[1:]
    return lab == (int(np.argmax(sizes)) + 1)


def _block_mean(vol: np.ndarray, f: tuple[int, int, int]) -> np.ndarray:
    fz, fy, fx = f
    nz, ny, nx = (s // b * b for s, b in zip(vol.shape, f, strict=True))
    v = vol[:nz, :ny, :nx]
    if f == (1, 1, 1):
        return v.astype(np.float32, copy=False)
    if fz == 1 and v.dtype == np.float32:
        # The same sums in the same order as numpy's reduction below (columns of a
        # row first, then rows), from strided views: several times faster.
        acc = None
        for b in range(fy):
            row = v[:, b::fy, 0::fx] + v[:, b::fy, 1::fx] if fx > 1 else v[:, b::fy, :].copy()
            for c in range(2, fx):
                row += v[:, b::fy, c::fx]
            if acc is None:
                acc = row
            elif b == 1:
                acc = acc + row
            else:
                acc += row
        assert acc is not None
        return acc / np.float32(fy * fx)
    return v.reshape(nz // fz, fz, ny // fy, fy, nx // fx, fx).mean(axis=(1, 3, 5),
                                                                    dtype=np.float32)


def _median3x3(img: np.ndarray) -> np.ndarray:
    """``ndimage.median_filter(img, size=3)`` (mirror edges), as the middle of the nine
    shifted copies: the same values, without the generic rank filter's cost.

    The middle is taken with a 19-exchange median-of-9 network of element-wise
    minima and maxima (each output is one of the nine inputs, as in a sort).
    """
    if not np.all(np.isfinite(img)):
        # NaN breaks the network's order; SciPy's rank filter (a series with NaN voxels
        # only: the automatic path on a finite series imports no SciPy)
        from scipy import ndimage

        return ndimage.median_filter(img, size=3)
    ny, nx = img.shape
    pad = np.pad(img, 1, mode="symmetric")
    p = [pad[i:i + ny, j:j + nx] for i in range(3) for j in range(3)]
    for a, b in ((1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8),
                 (0, 3), (5, 8), (4, 7), (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4),
                 (4, 2)):
        p[a], p[b] = np.minimum(p[a], p[b]), np.maximum(p[a], p[b])
    return p[4]


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``ndimage.binary_fill_holes(mask)``: background not 4-connected to the image
    border is filled. Labelled in one pass instead of dilated until it stops changing."""
    lab, n = ndi.label(~mask)
    keep = np.zeros(n + 1, dtype=bool)
    keep[0] = True
    keep[lab[0]] = True
    keep[lab[-1]] = True
    keep[lab[:, 0]] = True
    keep[lab[:, -1]] = True
    return mask | ~keep[lab]


@functools.lru_cache(maxsize=64)
def _sphere_kernel(radius_mm: float, spacing: tuple[float, float, float],
                   subsample: int = 3) -> np.ndarray:
    k = sphere_kernel(radius_mm, spacing, subsample=subsample)
    k.setflags(write=False)
    return k


@functools.lru_cache(maxsize=64)
def _disc_kernel(radius_mm: float, spacing_yx: tuple[float, float]) -> np.ndarray:
    dy, dx = spacing_yx
    hy, hx = int(np.ceil(radius_mm / dy)) + 1, int(np.ceil(radius_mm / dx)) + 1
    (_, _), w = circle_patch((2 * hy + 1, 2 * hx + 1), (hy, hx), radius_mm, spacing_yx)
    w = w / w.sum()
    w.setflags(write=False)
    return w


@functools.lru_cache(maxsize=16)
def _ring_kernels(spacing_yx: tuple[float, float]) -> tuple[np.ndarray, ...]:
    """The six sphere discs, then the six annuli 2 mm outside them of equal area."""
    discs, rings = [], []
    for r in _SPHERE_R:
        discs.append(_disc_kernel(float(r), spacing_yx))
        r_in = r + 2.0
        r_out = float(np.hypot(r_in, r))
        k_out = _disc_kernel(float(r_out), spacing_yx)
        k_in = _disc_kernel(float(r_in), spacing_yx)
        py = (k_out.shape[0] - k_in.shape[0]) // 2
        px = (k_out.shape[1] - k_in.shape[1]) // 2
        ring = k_out * r_out**2
        ring[py:py + k_in.shape[0], px:px + k_in.shape[1]] -= k_in * r_in**2
        ring /= ring.sum()
        ring.setflags(write=False)
        rings.append(ring)
    return tuple(discs + rings)


def _ring_convolutions(img: np.ndarray, spacing_yx: tuple[float, float]) -> np.ndarray:
    """``fftconvolve(img, k, mode="same")`` for each of the twelve ring-fit kernels
    (:func:`_ring_kernels`), stacked, from one forward transform of ``img`` and the
    kernels' cached transforms (the same values to rounding). ``numpy.fft``'s pocketfft
    gives ``scipy.fft``'s values bit for bit (:func:`scanbench.analysis.ndi.irfft2` for the
    inverse's scaling)."""
    kernels = _ring_kernels(spacing_yx)
    ny, nx = img.shape
    ky = max(k.shape[0] for k in kernels)
    kx = max(k.shape[1] for k in kernels)
    shape = (next_fast_len_real(ny + ky - 1), next_fast_len_real(nx + kx - 1))
    spec = np.fft.rfft2(img, shape)
    kspec = _ring_spectra(spacing_yx, shape)
    full = ndi.irfft2(kspec * spec, shape)
    hy, hx = ky // 2, kx // 2
    return full[:, hy:hy + ny, hx:hx + nx]


@functools.lru_cache(maxsize=16)
def _ring_spectra(spacing_yx: tuple[float, float], shape: tuple[int, int]) -> np.ndarray:
    """The transforms of the ring-fit kernels, centred in a common odd box, at
    ``shape``: kept per pixel spacing and transform size."""
    kernels = _ring_kernels(spacing_yx)
    ky = max(k.shape[0] for k in kernels)
    kx = max(k.shape[1] for k in kernels)
    out = np.fft.rfft2(np.stack([_embed(k, (ky, kx)) for k in kernels]), shape)
    out.setflags(write=False)
    return out


def _embed(k: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An odd-sized kernel centred in a larger odd-sized zero array."""
    out = np.zeros(shape)
    oy, ox = (shape[0] - k.shape[0]) // 2, (shape[1] - k.shape[1]) // 2
    out[oy:oy + k.shape[0], ox:ox + k.shape[1]] = k
    return out


def _shape_score(body: np.ndarray, spacing_yx: tuple[float, float]) -> tuple[float, str]:
    """How much the body outline looks like the IEC body (area and aspect ratio)."""
    dy, dx = spacing_yx
    rows, cols = np.nonzero(body)
    area = rows.size * dy * dx
    if rows.size < 10:
        return 0.0, "no body outline"
    yx = np.stack([rows * dy, cols * dx], axis=1)
    cov = np.cov((yx - yx.mean(axis=0)).T)
    ev = np.sort(np.linalg.eigvalsh(cov))
    # Width over height along the principal axes; for the D shape the second
    # moments understate the aspect, so compare with the model's own moments.
    aspect = float(np.sqrt(ev[1] / max(ev[0], 1e-9)))
    s_area = np.exp(-(((area / _BODY_AREA_MM2) - 1) / 0.25) ** 2)
    s_aspect = np.exp(-(((aspect / _MODEL_MOMENT_ASPECT) - 1) / 0.15) ** 2)
    return float(s_area * s_aspect), (f"body outline {area / 100:.0f} cm² (IEC body "
                                      f"{_BODY_AREA_MM2 / 100:.0f} cm²), moment aspect "
                                      f"{aspect:.2f} (IEC body {_MODEL_MOMENT_ASPECT:.2f})")


def _model_moment_aspect() -> float:
    g = np.arange(-160.0, 160.0, 1.0)
    xx, yy = np.meshgrid(g, g)
    inside = nema_iq.inside_body_xy(xx, yy)
    pts = np.stack([yy[inside], xx[inside]], axis=1)
    ev = np.sort(np.linalg.eigvalsh(np.cov((pts - pts.mean(axis=0)).T)))
    return float(np.sqrt(ev[1] / ev[0]))


_MODEL_MOMENT_ASPECT = _model_moment_aspect()


def _find_lung(mean_img: np.ndarray, body: np.ndarray, level: float,
               spacing_yx: tuple[float, float]) -> tuple[float, float] | None:
    """Centroid (row, col) of the round cold region inside the body: the lung insert."""
    dy, dx = spacing_yx
    cold = body & (mean_img < 0.5 * level)
    lab, n = ndi.label(cold)
    if n == 0:
        return None
    # areas and centroids by counting (integer sums, so exactly ndimage's
    # sum_labels and center_of_mass of a unit image)
    rr, cc = np.nonzero(lab)
    which = lab[rr, cc]
    count = np.bincount(which, minlength=n + 1)[1:].astype(float)
    areas = count * dy * dx
    centres = np.stack([np.bincount(which, weights=rr.astype(float), minlength=n + 1)[1:] / count,
                        np.bincount(which, weights=cc.astype(float), minlength=n + 1)[1:] / count],
                       axis=1)
    best, best_err = None, np.inf
    for a, c in zip(areas, centres, strict=True):
        err = abs(np.log(a / _LUNG_AREA_MM2))
        if err < np.log(3.0) and err < best_err:
            best, best_err = (float(c[0]), float(c[1])), err
    return best


def fit_ring(plane_yx: np.ndarray, spacing_yx: tuple[float, float], level: float,
             noise: float, signs: np.ndarray, start_yx: tuple[float, float],
             search_mm: float) -> tuple[tuple[float, float], float, int, np.ndarray]:
    """Fit the six-sphere ring model to one transverse image.

    Returns the ring centre (fractional row, col), the angle (degrees), the
    handedness (+1 / -1) and each sphere's signed contrast-to-noise at its
    fitted position. ``signs`` is +1 for a hot sphere, -1 for a cold one.
    The image's disc means (one matched filter per sphere size) are sampled
    at the model positions for a grid of centres within ``search_mm`` of
    ``start_yx``, every 2 degrees and both handednesses; the best is polished
    on a finer grid.
    """
    dy, dx = spacing_yx
    # Size-selective matched filter: the mean in the sphere's disc minus the
    # mean in an equal-area annulus 2 mm outside it. A small disc on a large
    # sphere or a large disc on a small sphere responds weakly, so the fit
    # tells the sizes, and therefore the order around the ring, apart.
    # All twelve correlations share one transform of the plane.
    conv = _ring_convolutions(np.asarray(plane_yx, dtype=np.float64), spacing_yx)
    discs, annuli = conv[:6], conv[6:]
    contrast = (discs - annuli) * signs[:, None, None] / level

    def score(cy: np.ndarray, cx: np.ndarray, theta: np.ndarray, hand: np.ndarray,
              ) -> np.ndarray:
        # cy, cx in pixels; theta radians; broadcast together; sum over spheres
        tot = np.zeros(np.broadcast(cy, cx, theta, hand).shape)
        for n in range(6):
            a = theta + hand * _SPHERE_PHI[n]
            py = cy + _RING_R * np.sin(a) / dy
            px = cx + _RING_R * np.cos(a) / dx
            coords = np.stack([np.broadcast_to(py, tot.shape).ravel(),
                               np.broadcast_to(px, tot.shape).ravel()])
            val = ndi.map_coordinates_linear(contrast[n], [coords[0], coords[1]],
                                             mode="nearest")
            tot += val.reshape(tot.shape)
        return tot

    step = max(2.0, min(dy, dx))
    offs = np.arange(-search_mm, search_mm + 1e-6, step)
    cy = start_yx[0] + offs[:, None, None, None] / dy
    cx = start_yx[1] + offs[None, :, None, None] / dx
    theta = np.deg2rad(np.arange(0.0, 360.0, 2.0))[None, None, :, None]
    hand = np.array([1.0, -1.0])[None, None, None, :]
    s = score(cy, cx, theta, hand)
    iy, ix, it, ih = np.unravel_index(int(np.argmax(s)), s.shape)
    best = (float(cy[iy, 0, 0, 0]), float(cx[0, ix, 0, 0]), float(theta[0, 0, it, 0]),
            float(hand[0, 0, 0, ih]))
    # polish: finer grids around the best
    for span_mm, span_deg, n in ((step, 2.0, 9), (step / 4, 0.5, 9)):
        o = np.linspace(-span_mm, span_mm, n)
        oa = np.deg2rad(np.linspace(-span_deg, span_deg, n))
        cy2 = best[0] + o[:, None, None] / dy
        cx2 = best[1] + o[None, :, None] / dx
        th2 = best[2] + oa[None, None, :]
        s2 = score(cy2, cx2, th2, np.array(best[3]))
        iy, ix, it = np.unravel_index(int(np.argmax(s2)), s2.shape)
        best = (float(cy2[iy, 0, 0]), float(cx2[0, ix, 0]), float(th2[0, 0, it]), best[3])
    cyb, cxb, thb, hb = best
    snr = []
    for n in range(6):
        a = thb + hb * _SPHERE_PHI[n]
        c = [[cyb + _RING_R * np.sin(a) / dy], [cxb + _RING_R * np.cos(a) / dx]]
        val = float(ndi.map_coordinates_linear(discs[n], [np.asarray(c[0]), np.asarray(c[1])],
                                               cval=0.0)[0])
        snr.append((val - level) * signs[n] / max(noise, 1e-6 * level))
    return (cyb, cxb), float(np.rad2deg(thb) % 360.0), int(hb), np.array(snr)


def _parabolic_offset(fm: float, f0: float, fp: float) -> float:
    den = fm - 2.0 * f0 + fp
    if not np.isfinite(den) or den >= 0:
        return 0.0
    return float(np.clip(0.5 * (fm - fp) / den, -0.5, 0.5))


def _refine_sphere(vol: np.ndarray, spacing: tuple[float, float, float],
                   guess_zyx: np.ndarray, radius_mm: float, sign: float,
                   block: tuple[int, int, int] = (1, 1, 1)) -> np.ndarray | None:
    """Sphere centre (fractional k, j, i) as the extremum of the mean in a sphere
    of the sphere's radius, within ``_MAX_SPHERE_SHIFT_MM`` of ``guess_zyx``.

    Fine grids (voxels under 1.5 mm) are first reduced by ``block`` means
    around the sphere only; the parabolic interpolation recovers the fraction.
    """
    fb = np.array(block)
    if np.any(fb > 1):
        d_raw = np.asarray(spacing, dtype=float)
        reach = _MAX_SPHERE_SHIFT_MM + radius_mm + 4 * float(max(d_raw * fb))
        half = np.ceil(reach / d_raw / fb).astype(int) * fb
        g = np.round(guess_zyx).astype(int)
        lo = np.maximum(g - half, 0)
        hi = np.minimum(g + half, vol.shape)
        crop = _block_mean(vol[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], block)
        g_blk = (guess_zyx - lo - (fb - 1) / 2) / fb
        c = _refine_sphere(crop, tuple(d_raw * fb), g_blk, radius_mm, sign)
        return None if c is None else c * fb + (fb - 1) / 2 + lo
    d = np.asarray(spacing, dtype=float)
    kern = _sphere_kernel(float(radius_mm), tuple(float(v) for v in d), 2)
    half = (np.ceil((_MAX_SPHERE_SHIFT_MM + 2 * max(d)) / d).astype(int)
            + np.array(kern.shape) // 2 + 1)
    g = np.round(guess_zyx).astype(int)
    lo = np.maximum(g - half, 0)
    hi = np.minimum(g + half + 1, vol.shape)
    if np.any(hi - lo < np.array(kern.shape)):
        return None
    box = vol[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    # Only positions whose kernel lies inside the box and near the guess count.
    # The mean in the sphere is evaluated there directly (one dot product with
    # the kernel per position) rather than by correlating the whole box.
    edge = np.array(kern.shape) // 2
    axes = [np.arange(edge[a], box.shape[a] - edge[a]) for a in range(3)]
    dist2 = sum(((ax + lo[a] - guess_zyx[a]) * d[a])[
        tuple(slice(None) if b == a else None for b in range(3))] ** 2
        for a, ax in enumerate(axes))
    idx = np.nonzero(np.sqrt(dist2) <= _MAX_SPHERE_SHIFT_MM)
    if idx[0].size == 0:
        return None
    pos = np.stack([axes[a][idx[a]] for a in range(3)], axis=1)
    vals = _correlate_at(box, kern, pos) * sign
    best = int(np.argmax(vals))
    p = pos[best]
    out = p.astype(float)
    # parabola neighbours; the box is 0 outside itself (as in an FFT "same"
    # correlation), which a neighbour of an edge position sees
    axes_in = [a for a in range(3) if 0 < p[a] < box.shape[a] - 1]
    if axes_in:
        steps = np.eye(3, dtype=int)[axes_in]
        nb = _correlate_at(box, kern, np.concatenate([p - steps, p + steps])) * sign
        for i, a in enumerate(axes_in):
            out[a] += _parabolic_offset(float(nb[i]), float(vals[best]),
                                        float(nb[len(axes_in) + i]))
    return out + lo


def _correlate_at(box: np.ndarray, kern: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``fftconvolve(box, kern[::-1, ::-1, ::-1], mode="same")`` (a correlation with an
    odd-sized kernel, the box 0 outside itself) at the box indices ``pos`` (n, 3) only,
    to rounding: one gathered dot product per position over the kernel's non-zero
    weights."""
    pos = np.asarray(pos, dtype=np.intp).reshape(-1, 3)
    edge = np.array(kern.shape) // 2
    shape = np.array(box.shape)
    # zeros around the box only as far as the kernel reaches past it
    pad_lo = np.maximum(edge - pos.min(axis=0), 0) if len(pos) else np.zeros(3, int)
    pad_hi = np.maximum(pos.max(axis=0) + edge + 1 - shape, 0) if len(pos) else pad_lo
    if pad_lo.any() or pad_hi.any():
        src = np.zeros(tuple(shape + pad_lo + pad_hi))
        src[tuple(slice(int(pad_lo[a]), int(pad_lo[a] + shape[a])) for a in range(3))] = box
    else:
        src = np.ascontiguousarray(box, dtype=np.float64)
    strides = [st // src.itemsize for st in src.strides]
    nz = np.nonzero(kern)
    offsets = nz[0] * strides[0] + nz[1] * strides[1] + nz[2] * strides[2]
    corner = pos - edge + pad_lo
    starts = corner[:, 0] * strides[0] + corner[:, 1] * strides[1] + corner[:, 2] * strides[2]
    vals = src.ravel()[starts[:, None] + offsets[None, :]]
    # einsum, not a BLAS product: BLAS threads left spinning slow what follows
    return np.einsum("ij,j->i", vals, kern[nz])


def locate_phantom(voxels: np.ndarray, spacing: tuple[float, float, float],
                   cold: Sequence[int] = (), *, refine: bool = True,
                   ring: PhantomLocation | None = None) -> PhantomLocation:
    """Find the IEC body phantom, its sphere plane, the six spheres and the lung insert.

    See the module docstring (steps 1-4). Raises :class:`AnalysisError` when
    the image is not this phantom. ``refine=False`` stops after the ring fit
    (what :meth:`ImageQuality.detect` needs); ``ring`` is such an unrefined
    location of the same voxels, spacing and cold spheres, computed before
    (it is not changed), from which steps 1-3 are not repeated.
    """
    if ring is None:
        ring = _locate_ring(voxels, spacing, cold)
    if not refine:
        return ring
    return _refine_location(np.asarray(voxels), spacing, cold, ring)


def _locate_ring(voxels: np.ndarray, spacing: tuple[float, float, float],
                 cold: Sequence[int]) -> PhantomLocation:
    """Steps 1-3 of :func:`locate_phantom`: body, sphere plane and ring fit."""
    vol = np.asarray(voxels)
    if vol.ndim != 3 or min(vol.shape) < 3:
        raise AnalysisError(f"no IEC body phantom found: need a 3-D volume, got shape {vol.shape}")
    dz, dy, dx = (float(s) for s in spacing)
    notes: list[str] = []
    level = robust_level(vol)

    # 1. body: axial extent and outline
    body_vox = vol > 0.5 * level
    # per-slice counts (numpy's whole-array count_nonzero is several times faster
    # than a sum over axes; the same integers)
    area = np.array([np.count_nonzero(body_vox[k]) for k in range(vol.shape[0])],
                    dtype=np.int64) * dy * dx
    z0, z1 = _longest_run(area >= 0.5 * area.max())
    if z1 < z0 or (z1 - z0 + 1) * dz < 40.0:
        raise AnalysisError("no IEC body phantom found: no body at least 40 mm long "
                            f"(longest run of body slices: {(z1 - z0 + 1) * dz:.0f} mm)")
    mean_img = vol[z0:z1 + 1].mean(axis=0, dtype=np.float32)
    body = _largest_component(_fill_holes(_median3x3(mean_img) > 0.5 * level))
    shape_score, shape_note = _shape_score(body, (dy, dx))
    notes.append(shape_note)
    if shape_score < 0.02:
        raise AnalysisError(f"no IEC body phantom found: {shape_note}")
    lung = _find_lung(mean_img, body, level, (dy, dx))

    # 2. work grid (about 4 mm, lightly smoothed) over the body's box
    rows, cols = np.nonzero(body)
    marg_y, marg_x = int(np.ceil(10 / dy)), int(np.ceil(10 / dx))
    y0, y1 = max(rows.min() - marg_y, 0), min(rows.max() + marg_y + 1, vol.shape[1])
    x0, x1 = max(cols.min() - marg_x, 0), min(cols.max() + marg_x + 1, vol.shape[2])
    f = (max(1, round(_WORK_MM / dz)), max(1, round(_WORK_MM / dy)),
         max(1, round(_WORK_MM / dx)))
    work = _block_mean(vol[z0:z1 + 1, y0:y1, x0:x1], f)
    wsp = (dz * f[0], dy * f[1], dx * f[2])
    work = ndi.gaussian_filter(work, [max(0.6, 2.0 / s) for s in wsp], truncate=2.5)
    wbody = _block_mean(body[None, y0:y1, x0:x1].astype(np.float32),
                        (1, f[1], f[2]))[0] > 0.99
    wbody = ndi.binary_erosion_cross(wbody, iterations=max(1, round(6.0 / wsp[1])))
    inside = work[:, wbody]
    if inside.size == 0:
        raise AnalysisError("no IEC body phantom found: body outline too small")
    med = _median(inside[::max(1, inside.size // 200000)])
    noise = 1.4826 * _median(np.abs(inside[::max(1, inside.size // 200000)] - med))
    noise = max(noise, 1e-3 * level)
    hot_t = med + 4.0 * noise
    prof = np.clip(inside - hot_t, 0.0, None).sum(axis=1)
    # stay clear of the body's ends: the spheres hang 70 mm inside the lid
    edge = int(np.ceil(15.0 / wsp[0]))
    if prof.size > 2 * edge + 1:
        prof[:edge] = 0
        prof[-edge:] = 0
    if not np.any(prof > 0):
        raise AnalysisError("no IEC body phantom found: no hot spheres stand out of the "
                            f"background (level {level:.4g}, noise {noise:.3g})")
    prof = ndi.uniform_filter1d(prof, 3)
    wz = int(np.argmax(prof))

    # 3. ring fit on the plane of the work grid
    signs = np.array([-1.0 if d in cold else 1.0 for d in SPHERES_MM])
    plane = work[wz]
    wsp_yx = (wsp[1], wsp[2])
    if lung is not None:
        start = ((lung[0] - y0 - (f[1] - 1) / 2) / f[1], (lung[1] - x0 - (f[2] - 1) / 2) / f[2])
        search = 12.0
    else:
        notes.append("lung insert not found; ring searched over the whole body")
        r_, c_ = np.nonzero(wbody)
        start = (float(r_.mean()), float(c_.mean()))
        search = 60.0
    (ry, rx), ang, hand, snr = fit_ring(plane, wsp_yx, med, noise, signs, start, search)
    # back to the series' pixel indices
    ring_yx = (y0 + ry * f[1] + (f[1] - 1) / 2, x0 + rx * f[2] + (f[2] - 1) / 2)
    wz_full = z0 + wz * f[0] + (f[0] - 1) / 2
    t = np.deg2rad(ang) + hand * _SPHERE_PHI
    model = np.stack([np.full(6, wz_full), ring_yx[0] + _RING_R * np.sin(t) / dy,
                      ring_yx[1] + _RING_R * np.cos(t) / dx], axis=1)

    loc = PhantomLocation(level=level, z_range=(z0, z1), body_mask_yx=body,
                          lung_centre_yx=lung, ring_centre_yx=ring_yx, ring_angle_deg=ang,
                          handedness=hand, sphere_centres_zyx=model, plane_z=wz_full,
                          sphere_contrast_snr=snr, shape_score=shape_score, notes=notes)
    return loc


def _refine_location(vol: np.ndarray, spacing: tuple[float, float, float],
                     cold: Sequence[int], ring: PhantomLocation) -> PhantomLocation:
    """Step 4 of :func:`locate_phantom` on a copy of the ring location ``ring``."""
    dz, dy, dx = (float(s) for s in spacing)
    snr = ring.sphere_contrast_snr
    signs = np.array([-1.0 if d in cold else 1.0 for d in SPHERES_MM])
    model = ring.sphere_centres_zyx
    notes = list(ring.notes)
    loc = dataclasses.replace(ring, sphere_centres_zyx=model.copy(), notes=notes)
    seen = snr >= 3.0
    big_seen = int(np.sum(seen[3:]))
    # A sphere modelled hot that is clearly colder than the background (or cold that is
    # clearly hotter) means the fill was not what the parameters say: the ring found is
    # then the wrong one, and measuring it would give plausible-looking nonsense.
    contradicted = snr <= -3.0
    if big_seen < 2 or int(seen.sum()) < 3 or contradicted.any():
        raise AnalysisError(
            "no IEC body phantom found: the sphere ring does not fit the image "
            f"(contrast-to-noise per sphere {', '.join(f'{v:.1f}' for v in snr)}; "
            f"cold spheres {tuple(cold) or 'none'}; if spheres are filled with no activity, "
            "name them with cold_spheres=28,37)")

    # 4. refine each sphere in 3-D (hot first, they set the plane for cold ones)
    fr = (max(1, round(_REFINE_MM / dz)) if dz < 1.5 else 1,
          max(1, round(_REFINE_MM / dy)) if dy < 1.5 else 1,
          max(1, round(_REFINE_MM / dx)) if dx < 1.5 else 1)
    centres = model.copy()
    for n in range(6):
        c = _refine_sphere(vol, (dz, dy, dx), model[n], _SPHERE_R[n], signs[n], fr)
        if c is None or not np.all(np.isfinite(c)):
            notes.append(f"{SPHERES_MM[n]} mm sphere: centre not refined, ring position used")
            continue
        centres[n] = c
    hot = signs > 0
    w = (_SPHERE_R**3) * hot
    plane_z = float((centres[:, 0] * w).sum() / w.sum())
    # cold spheres and spheres not refined in z sit on the plane of the hot ones
    for n in range(6):
        moved = np.hypot((centres[n, 1] - model[n, 1]) * dy, (centres[n, 2] - model[n, 2]) * dx)
        if moved > _MAX_SPHERE_SHIFT_MM - 0.5:
            notes.append(f"{SPHERES_MM[n]} mm sphere: refined centre {moved:.1f} mm from the "
                         "ring model; ring position used")
            centres[n, 1:] = model[n, 1:]
            centres[n, 0] = plane_z
    loc.sphere_centres_zyx = centres
    loc.plane_z = plane_z
    return loc


# ---------------------------------------------------------------------------- background ROIs


def background_roi_centres(body_yx: np.ndarray, spacing_yx: tuple[float, float],
                           sphere_yx: np.ndarray, ring_centre_yx: tuple[float, float],
                           lung_yx: tuple[float, float], *,
                           count: int = nema_iq.BACKGROUND_ROI_COUNT,
                           margin_mm: float = nema_iq.BACKGROUND_EDGE_MARGIN_MM,
                           ) -> tuple[np.ndarray, float]:
    """Centres (fractional row, col) of the 12 background ROIs on the sphere plane,
    and the margin from the spheres that was kept (mm).

    NU 2-2018 section 7.4.1 asks for twelve 37 mm ROIs spread over the
    background, 15 mm from the phantom's edge and no closer than 15 mm to any
    sphere (STANDARDS.md A.5, [U] for the 15 mm). scanbench's rule, which
    follows the intent of the standard's figure (ROIs around the periphery,
    between the spheres and the wall):

    * a candidate centre (1 mm grid) is allowed where the whole 37 mm ROI
      stays ``margin_mm`` inside the measured body outline, and a margin
      ``m`` from the outer surface (inner radius + 1 mm glass wall) of every
      sphere and from the lung insert's outer wall (cold, like a sphere);
    * 12 are chosen by farthest-point sampling: first the candidate farthest
      from the ring centre, then repeatedly the candidate farthest from all
      chosen so far. This spreads the ROIs evenly over the allowed band,
      turns with the phantom and does not depend on which way it lies;
    * ``m`` starts at ``margin_mm``. On real IEC phantoms the spheres sit
      close to the wall, and 12 ROIs at 15 mm from both leave no room
      without the ROIs lying almost on top of each other; when the 12 chosen
      centres are closer than 3/4 of a diameter (27.75 mm) ``m`` is lowered
      in 2.5 mm steps (never below 5 mm; the edge margin is kept) and the
      caller says so. Spill-out of a hot sphere 5-15 mm beyond its wall is a
      few percent of its contrast at the ROI's rim only.
    """
    dy, dx = spacing_yx
    r_roi = _BG_ROI_MM / 2
    rows, cols = np.nonzero(body_yx)
    if rows.size == 0:
        raise AnalysisError("cannot place background ROIs: no body outline")
    # Distance to the outline, on the body's box and a ring of background around it:
    # the nearest background pixel of any pixel inside is in that ring or nearer.
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    edt: np.ndarray = np.zeros(body_yx.shape)  # numpy's stubs infer a 0-d shape here
    edt[r0:r1, c0:c1] = ndi.distance_transform_edt(np.pad(body_yx[r0:r1, c0:c1], 1),
                                                   (dy, dx))[1:-1, 1:-1]
    ys = np.arange(rows.min() * dy, (rows.max() + 1) * dy, 1.0)
    xs = np.arange(cols.min() * dx, (cols.max() + 1) * dx, 1.0)
    # A bilinear value is at most the largest of the pixels around it: candidates
    # whose 3 x 3 neighbourhood is nearer the edge than needed are dropped first
    # (the rest are taken in the grid's row-major order, as a meshgrid would give).
    need = r_roi + margin_mm
    near_max = ndi.maximum_filter3(edt)
    iy = np.clip(np.rint(ys / dy).astype(int), 0, edt.shape[0] - 1)
    ix = np.clip(np.rint(xs / dx).astype(int), 0, edt.shape[1] - 1)
    ky, kx = np.nonzero(near_max[iy][:, ix] >= need)
    gy, gx = ys[ky], xs[kx]
    e = ndi.map_coordinates_linear(edt, [gy / dy, gx / dx], cval=0.0)
    inside = e >= need
    gy, gx = gy[inside], gx[inside]
    # clearance from each object's outer surface, for every candidate; those nearer
    # than the smallest margin tried to any object (squared distances, with a
    # tolerance far above their rounding) can never be chosen and are dropped first
    objects: list[tuple[float, float, tuple[float, ...]]] = [
        (sy * dy, sx * dx, (r, nema_iq.SPHERE_WALL_MM, r_roi))
        for (sy, sx), r in zip(sphere_yx, _SPHERE_R, strict=True)]
    objects.append((lung_yx[0] * dy, lung_yx[1] * dx,
                    (nema_iq.LUNG_INSERT_OUTER_DIAMETER_MM / 2, r_roi)))
    margins = np.arange(margin_mm, 4.99, -2.5)
    floor_mm = float(margins.min()) - 1e-6 if margins.size else 0.0
    for oy, ox, parts in objects:
        reach = sum(parts) + floor_mm
        if reach > 0:
            keep = (gy - oy) ** 2 + (gx - ox) ** 2 >= reach**2 * (1 - 1e-9)
            gy, gx = gy[keep], gx[keep]

    def clear(oy: float, ox: float, parts: tuple[float, ...]) -> np.ndarray:
        c = np.hypot(gy - oy, gx - ox)
        for p in parts:
            c = c - p
        return c

    clear_each = [clear(*o) for o in objects]
    clearance = np.min(np.stack(clear_each), axis=0) if gy.size else np.zeros(0)
    best: tuple[np.ndarray, float] | None = None
    for m in margins:
        ok = clearance >= m
        cy, cx = gy[ok], gx[ok]
        if cy.size < count:
            continue
        first = int(np.argmax(np.hypot(cy - ring_centre_yx[0] * dy,
                                       cx - ring_centre_yx[1] * dx)))
        chosen = [first]
        dmin = np.hypot(cy - cy[first], cx - cx[first])
        for _ in range(count - 1):
            nxt = int(np.argmax(dmin))
            chosen.append(nxt)
            dmin = np.minimum(dmin, np.hypot(cy - cy[nxt], cx - cx[nxt]))
        pts = np.stack([cy[chosen] / dy, cx[chosen] / dx], axis=1)
        spacing_min = _min_pair_distance(cy[chosen], cx[chosen])
        best = (pts, float(m))
        if spacing_min >= 0.75 * _BG_ROI_MM:
            break
    if best is None:
        raise AnalysisError(
            f"cannot place {count} background ROIs of {_BG_ROI_MM:.0f} mm at least "
            f"{margin_mm:.0f} mm inside the phantom edge and 5 mm from the spheres "
            "and the lung insert: is the body outline complete?")
    pts, m = best
    # order them around the ring centre for readable figures
    ang = np.arctan2(pts[:, 0] - ring_centre_yx[0], pts[:, 1] - ring_centre_yx[1])
    return pts[np.argsort(ang)], m


def _min_pair_distance(y: np.ndarray, x: np.ndarray) -> float:
    d = np.hypot(y[:, None] - y[None, :], x[:, None] - x[None, :])
    d[np.diag_indices_from(d)] = np.inf
    return float(d.min())


# ---------------------------------------------------------------------------- measures


def percent_contrast_hot(c_sphere: float, c_background: float, activity_ratio: float) -> float:
    """NU 2-2018 7.4.1: Q_H = 100 (C_H / C_B - 1) / (a_H / a_B - 1), in %."""
    return 100.0 * (c_sphere / c_background - 1.0) / (activity_ratio - 1.0)


def percent_contrast_cold(c_sphere: float, c_background: float) -> float:
    """NU 2-2018 7.4.1: Q_C = 100 (1 - C_C / C_B), in %."""
    return 100.0 * (1.0 - c_sphere / c_background)


def background_variability(roi_means: np.ndarray) -> tuple[float, float, float]:
    """NU 2-2018 7.4.1: mean C_B, SD and N = 100 SD / C_B (%) of the K ROI means.

    SD uses the ``K - 1`` denominator (sample SD); STANDARDS.md A.5 marks the
    denominator [U].
    """
    m = np.asarray(roi_means, dtype=float)
    mean = float(m.mean())
    sd = float(m.std(ddof=1))
    return mean, sd, 100.0 * sd / mean


def a50_voi(box: np.ndarray, background: float) -> tuple[float, float, int]:
    """EARL A50 VOI in a search box: (max, mean, voxel count).

    Threshold ``0.5 (max - background) + background``; the VOI is the
    6-connected region at or above it that contains the maximum voxel
    (STANDARDS.md A.9, [C]: 50% background-corrected isocontour).
    """
    flat = int(np.argmax(box))
    vmax = float(box.flat[flat])
    thr = 0.5 * (vmax - background) + background
    lab, _ = ndi.label(box >= thr)
    voi = lab == lab.flat[flat]
    return vmax, float(box[voi].mean()), int(voi.sum())


def peak_mean(vol: np.ndarray, spacing: tuple[float, float, float], centre_zyx: np.ndarray,
              search_radius_mm: float, radius_mm: float = PEAK_RADIUS_MM) -> float:
    """The highest mean in a sphere of ``radius_mm`` (1 mL by default) centred on any
    voxel within ``search_radius_mm`` of ``centre_zyx`` (the EARL "peak")."""
    d = np.asarray(spacing, dtype=float)
    kern = _sphere_kernel(float(radius_mm), tuple(float(v) for v in d))
    half = np.ceil(search_radius_mm / d).astype(int) + np.array(kern.shape) // 2 + 1
    g = np.round(centre_zyx).astype(int)
    lo = np.maximum(g - half, 0)
    hi = np.minimum(g + half + 1, vol.shape)
    box = vol[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    grids = np.meshgrid(*[(np.arange(lo[a], hi[a]) - centre_zyx[a]) * d[a] for a in range(3)],
                        indexing="ij")
    near = np.sqrt(sum(gg**2 for gg in grids)) <= search_radius_mm
    edge = np.array(kern.shape) // 2
    full = np.zeros_like(near)
    full[tuple(slice(int(edge[a]) if lo[a] > 0 else 0,
                     box.shape[a] - (int(edge[a]) if hi[a] < vol.shape[a] else 0))
               for a in range(3))] = True
    near &= full
    if not near.any():
        return float("nan")
    # the convolution of the box (0 outside it) with the kernel, at those positions only
    return float(_correlate_at(box, kern[::-1, ::-1, ::-1], np.argwhere(near)).max())


# ---------------------------------------------------------------------------- fill ratio

# How many standard uncertainties a measured value may lie beyond a physical bound before
# the bound is taken as broken (about 1 in 740 one-sided for a Gaussian error).
CONTRADICTION_K = 3.0
# The spheres whose profiles the fill ratio is fitted on: the largest ones, where partial
# volume leaves a plateau and a small error in the assumed resolution barely moves the fit.
_RATIO_FIT_SPHERES = 3
_RATIO_FIT_REACH_MM = 15.0  # the profile is fitted out to the sphere radius plus this
# The least relative model error the ratio estimate carries, even when its spheres agree:
# on the virtual scanner a scatter-correction residual of 3 % (6 %) of the activity,
# spread over the phantom, lowers the estimate by 1.5 % (3 %), a bias the spheres share.
_RATIO_MODEL_FLOOR = 0.02
_SQRT2 = float(np.sqrt(2.0))
_FWHM_PER_SIGMA = float(2.0 * np.sqrt(2.0 * np.log(2.0)))


def blurred_ball(r_mm: np.ndarray, radius_mm: float, sigma_mm: float) -> np.ndarray:
    """A uniform ball of ``radius_mm`` (value 1) convolved with an isotropic 3-D Gaussian
    of ``sigma_mm``, at distance ``r_mm`` from its centre (closed form)::

        f(r) = 1/2 [erf((R - r)/(√2 σ)) + erf((R + r)/(√2 σ))]
               - σ / (r √(2π)) [exp(-(R - r)²/(2σ²)) - exp(-(R + r)²/(2σ²))]
    """
    r = np.maximum(np.asarray(r_mm, dtype=float), 1e-6 * sigma_mm)
    a = (radius_mm - r) / (_SQRT2 * sigma_mm)
    b = (radius_mm + r) / (_SQRT2 * sigma_mm)
    # scipy.special.erf's values bit for bit (Cephes), both terms in one call
    erf_ab = ndi.erf(np.concatenate((a.ravel(), b.ravel())))
    erf_a, erf_b = erf_ab[: a.size].reshape(a.shape), erf_ab[a.size:].reshape(b.shape)
    return 0.5 * (erf_a + erf_b) - sigma_mm / (r * np.sqrt(2.0 * np.pi)) * (
        np.exp(-a * a) - np.exp(-b * b))


@dataclass(frozen=True)
class RatioEstimate:
    """The sphere : background activity ratio the image shows (see
    :func:`estimate_activity_ratio`)."""

    ratio: float
    uncertainty: float  # standard uncertainty, same unit (1)
    fwhm_mm: float  # the fitted isotropic resolution
    per_sphere: dict[int, float]  # the ratio fitted on each sphere alone
    spheres_mm: tuple[int, ...]  # the spheres fitted together


def _sphere_profile(vol: np.ndarray, spacing: tuple[float, float, float],
                    centre_zyx: np.ndarray, radius_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) from ``centre_zyx`` and values of the voxels within the sphere
    radius plus the fit reach."""
    d = np.asarray(spacing, dtype=float)
    reach = radius_mm + _RATIO_FIT_REACH_MM
    g = np.round(centre_zyx).astype(int)
    half = np.ceil(reach / d).astype(int)
    lo, hi = np.maximum(g - half, 0), np.minimum(g + half + 1, vol.shape)
    axes = [(np.arange(lo[a], hi[a]) - centre_zyx[a]) * d[a] for a in range(3)]
    r = np.sqrt(axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2
                + axes[2][None, None, :] ** 2)
    box = vol[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    inside = (r <= reach) & np.isfinite(box)
    return r[inside], box[inside].astype(float)


def estimate_activity_ratio(vol: np.ndarray, spacing: tuple[float, float, float],
                            centres_zyx: np.ndarray, cold: Sequence[int], background: float,
                            relative_noise: float, n_background_rois: int) -> RatioEstimate:
    """Estimate the fill ratio (sphere : background activity concentration) from the image.

    Method. The measured sphere-to-background ratio of a hot sphere is a lower bound of
    the true ratio (partial volume only lowers it); the resolution that lowers it is
    measured from the same spheres. The voxels within the sphere radius plus 15 mm of
    the largest hot spheres (three of them, 37, 28 and 22 mm when all are hot) are
    fitted, by least squares, with the model of NEMA NU 2-2018 section 7.3's phantom:
    a sphere of concentration ``S`` inside its inner radius, a cold glass wall of
    :data:`scanbench.phantoms.nema_iq.SPHERE_WALL_MM`, the measured background
    ``background`` outside, the whole blurred by one isotropic Gaussian (closed form,
    :func:`blurred_ball`); ``S`` and the Gaussian width are free and shared by the
    spheres (as pynemaiqpet's fit with one signal for all spheres). The ratio is
    ``S / background``. The sphere centres are the measured ones.

    Uncertainty (standard, in quadrature): noise, as the relative spread of ROI means the
    size of the largest fitted sphere (``relative_noise``; the fitted signal rests on
    that sphere's interior, and the background mean on ``n_background_rois`` such ROIs);
    and model error (a reconstruction's point-spread function is not a Gaussian: edge
    overshoot of resolution modelling, non-uniform resolution), as half the range of the
    ratios fitted on each sphere alone, and never less than :data:`_RATIO_MODEL_FLOOR`
    of the ratio (a scatter-correction residual biases all spheres alike).
    """
    hot = [n for n, d in enumerate(SPHERES_MM) if d not in cold]
    if not hot:
        raise AnalysisError("no hot sphere: the activity ratio cannot be estimated")
    if not (np.isfinite(background) and background > 0):
        raise AnalysisError("the background concentration is not positive: the activity "
                            "ratio cannot be estimated")
    use = sorted(hot, key=lambda n: -SPHERES_MM[n])[:_RATIO_FIT_SPHERES]
    wall = float(nema_iq.SPHERE_WALL_MM)
    profiles = [(*_sphere_profile(vol, spacing, centres_zyx[n], float(_SPHERE_R[n])),
                 float(_SPHERE_R[n])) for n in use]

    def fit(parts: list[tuple[np.ndarray, np.ndarray, float]]) -> tuple[float, float]:
        # The model's two blurred balls depend on sigma only: the Jacobian's difference
        # in S reuses those of the point it starts from (the same values: a third fewer
        # evaluations of the closed form).
        balls: dict[float, list[tuple[np.ndarray, np.ndarray]]] = {}

        def residuals(p: np.ndarray) -> np.ndarray:
            s, sigma = float(p[0]), float(p[1])
            these = balls.get(sigma)
            if these is None:
                these = [(blurred_ball(r, rad, sigma), blurred_ball(r, rad + wall, sigma))
                         for r, _, rad in parts]
                if len(balls) >= 4:
                    del balls[next(iter(balls))]
                balls[sigma] = these
            return np.concatenate([
                s * inner + background * (1.0 - outer) - v
                for (inner, outer), (_, v, _) in zip(these, parts, strict=True)]) / background

        start = max(float(max(np.max(v) for _, v, _ in parts)), 1.5 * background)
        fitted = least_squares(residuals, [start, 3.0], bounds=([0.0, 0.3], [np.inf, 30.0]))
        return float(fitted.x[0]) / background, float(fitted.x[1])

    # One BLAS thread for the fits: their matrices are a few thousand residuals by two, and
    # OpenBLAS's second thread only waits for them; on a loaded machine it kept the four
    # fits at 0.2-0.9 s instead of 0.2-0.5 s (bench/README.md, PET whole process). The
    # arithmetic, and so every result, is the same (tests/unit/analysis/pet).
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        ratio, sigma = fit(profiles)
        per_sphere = {SPHERES_MM[n]: fit([p])[0] for n, p in zip(use, profiles, strict=True)}
    u_noise = ratio * relative_noise * np.sqrt(1.0 + 1.0 / max(n_background_rois, 1))
    u_model = max(0.5 * float(np.ptp(list(per_sphere.values()))), _RATIO_MODEL_FLOOR * ratio)
    return RatioEstimate(ratio=ratio, uncertainty=float(np.hypot(u_noise, u_model)),
                         fwhm_mm=float(_FWHM_PER_SIGMA * sigma), per_sphere=per_sphere,
                         spheres_mm=tuple(SPHERES_MM[n] for n in use))


def _voxel_relative_sd(img: np.ndarray, centres_yx: np.ndarray,
                       spacing_yx: tuple[float, float]) -> float:
    """One voxel's SD relative to the mean, over the voxels at least half inside the 37 mm
    background ROIs of one slice (0 for a noise-free image, NaN when there are none)."""
    values = []
    for c in centres_yx:
        (sy, sx), w = circle_patch(img.shape, (float(c[0]), float(c[1])), _BG_ROI_MM / 2,
                                   spacing_yx)
        values.append(img[sy, sx][w >= 0.5])
    v = np.concatenate(values) if values else np.zeros(0)
    if v.size < 2 or not float(v.mean()) > 0:
        return float("nan")
    return float(v.std(ddof=1) / v.mean())


def _hot_contrast(ch: float, cb: float, sd: float, n_rois: int, ratio: float,
                  u_ratio: float) -> tuple[float, float]:
    """NU 2-2018 7.4.1 hot contrast (%) and its standard uncertainty.

    OSEM noise grows with the local mean: the sphere ROI's noise is about ``rel * C_H``
    (``rel = sd / C_B``, the ROI-to-ROI relative noise for this ROI size) and C_B's own
    is ``rel * C_B / sqrt(K)``; an estimated ratio adds ``u_ratio / (ratio - 1)``
    relative uncertainty, because Q_H is inversely proportional to ``ratio - 1``.
    """
    q = percent_contrast_hot(ch, cb, ratio)
    rel = sd / cb
    uq = 100.0 * (ch / cb) * rel * np.sqrt(1.0 + 1.0 / n_rois) / (ratio - 1.0)
    return q, float(np.hypot(uq, abs(q) * u_ratio / (ratio - 1.0)))


@dataclass
class _FillRatio:
    """The ratio the hot-sphere measurements use and how each is to be marked."""

    ratio: float | None
    estimate: RatioEstimate | None
    source: str  # "given", "estimated", "contradicted" or "none"
    reason: str | None

    @property
    def ratio_uncertainty(self) -> float:
        if self.source == "estimated" and self.estimate is not None:
            return self.estimate.uncertainty
        return 0.0

    def mark(self, m: Measurement) -> None:
        """Refuse a measurement resting on a contradicted ratio; do not judge one that
        rests on an estimated or missing ratio."""
        if self.reason is None:
            return
        if self.source == "contradicted":
            m.refuse(self.reason)
        else:
            m.not_judged(self.reason)


# ---------------------------------------------------------------------------- the analysis


def ring_location(series: Series, cold: Sequence[int]) -> PhantomLocation:
    """The unrefined phantom location (steps 1-3) of a series, once per series and fill.

    Detection computes it; the run that follows reuses it (``Series.derived``).
    The returned object is shared: do not change it.
    """
    cold = tuple(sorted(cold))
    sz, sy, sx = series.spacing
    spacing = (float(sz), float(sy), float(sx))
    return memo(series, f"{ANALYSIS_ID}.ring{cold}",
                lambda: _locate_ring(np.asarray(series.voxels, dtype=np.float32),
                                     spacing, cold))


def _nearest_slice(z: float, n: int) -> int:
    return int(np.clip(np.floor(z + 0.5), 0, n - 1))


@register
class ImageQuality:
    """NEMA NU 2-2018 section 7.4 image quality and EARL recovery coefficients."""

    id: ClassVar[str] = ANALYSIS_ID
    modality: ClassVar[str] = "PT"
    standard: ClassVar[str] = STANDARD
    title: ClassVar[str] = "Image quality (IEC body phantom)"

    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("activity_ratio", "sphere-to-background activity concentration ratio of "
                  "the fill (NEMA NU 2-2018: 4; EARL: 10); if absent it is estimated from "
                  "the largest spheres and the values resting on it are not judged; a given "
                  "ratio the image contradicts refuses them", "", MEASURED),
        Parameter("sphere_concentration_bq_ml", "true activity concentration in the hot "
                  "spheres at the scan (decay-corrected like the image); recovery "
                  "coefficients are then taken against it", "Bq/mL", None),
        Parameter("cold_spheres", "diameters of the spheres filled with water only, "
                  "comma-separated (e.g. 28,37): cold contrast for those", "mm", None),
        Parameter("axial_positions_mm", "long axial field of view: patient z of each "
                  "phantom's sphere plane, comma-separated; each is analysed on its own",
                  "mm", None),
        Parameter("axial_window_mm", "with axial_positions_mm: slices within this distance "
                  "of each position are analysed", "mm", 150.0),
    )

    # ------------------------------------------------------------------ detect
    def detect(self, series: Series) -> float:
        """Confidence (0..1) that the series is the IEC body phantom with its spheres.

        The product of: how well the body outline matches the IEC body's area
        and aspect ratio; whether a round cold insert (the lung) is inside it;
        and how many of the six spheres the fitted ring sees at 3 SD or more
        (four or more count fully). A uniform cylinder fails the outline and
        the spheres; point sources fail the body.

        The lung insert is required (without it the score stays below the
        registry's 0.5): the IEC body phantom always holds it, a cylinder of
        about 50 mm diameter of low-density material along its axis, and its
        six spheres sit on a ring concentric with it (NEMA NU 2-2018 section
        7.4.1; IEC 61675-1). A patient's trunk has the IEC body's area and
        aspect and hot spots (liver, kidneys, spine, aorta, lesions) that a
        ring fitted anywhere in the body can take for four spheres, but no
        round cold region of the insert's size: without the insert the ring
        is not anchored and the hot spots prove nothing.
        """
        try:
            loc = ring_location(series, ())
        except AnalysisError:
            return 0.0
        except (ValueError, MemoryError):
            return 0.0
        seen = int(np.sum(loc.sphere_contrast_snr >= 3.0))
        s_ring = min(1.0, seen / 4.0)
        s_lung = 1.0 if loc.lung_centre_yx is not None else 0.2
        s_shape = min(1.0, loc.shape_score / 0.5)
        return float(np.clip(s_shape * s_lung * s_ring, 0.0, 1.0))

    # ------------------------------------------------------------------ run
    def run(self, series: Series, **params: Any) -> Result:
        """Measure NU 2-2018 7.4 image quality and EARL RCs on one PET series.

        Parameters: ``activity_ratio`` (sphere : background activity concentration
        of the fill), ``cold_spheres`` (diameters filled with no activity, e.g.
        ``"28,37"``), ``sphere_concentration_bq_ml`` (the true sphere concentration
        for the EARL RCs, decay-corrected to the image's reference time).

        No parameter that changes the numbers is defaulted. The fill ratio is always
        estimated from the image as well (:func:`estimate_activity_ratio`, reported as
        ``activity_ratio_estimated``). Without ``activity_ratio`` the hot-sphere
        contrasts (and the RCs, unless ``sphere_concentration_bq_ml`` is given) are
        computed with the estimate and marked not judged. A given ratio that the image
        contradicts (the largest hot sphere's percent contrast above 100 % by more than
        :data:`CONTRADICTION_K` uncertainties: partial volume only lowers contrast)
        refuses the measurements that rest on it, with a warning naming both ratios.
        ``result.parameters["activity_ratio_source"]`` says which ratio was used.
        """
        if "axial_positions_mm" in params:  # long AFOV: several phantoms along one scan
            return self._run_positions(series, **params)
        known = {"activity_ratio", "cold_spheres", "sphere_concentration_bq_ml"}
        unknown = sorted(set(params) - known)
        if unknown:
            raise AnalysisError(f"unknown parameter(s) {', '.join(unknown)}; "
                                f"this analysis takes {', '.join(sorted(known))}")
        ratio_given = _positive_float(params, "activity_ratio", None)
        if ratio_given is not None and ratio_given <= 1.0:
            raise AnalysisError(
                f"activity_ratio must be above 1 (sphere : background), got {ratio_given}")
        cold = parse_cold_spheres(params.get("cold_spheres"))
        c_true_param = _positive_float(params, "sphere_concentration_bq_ml", None)
        vol = np.asarray(series.voxels, dtype=np.float32)
        dz, dy, dx = (float(s) for s in series.spacing)

        result = result_for(self, series,
                            source=str(series.files[0].parent) if series.files else None)
        result.parameters = {
            "activity_ratio": ratio_given, "cold_spheres": list(cold),
            # a cold fill left unsaid shows: the hot-sphere ring fit fails and says so
            "cold_spheres_source": "given" if "cold_spheres" in params else
            "not given: all six spheres hot, as NEMA NU 2-2018 fills them"}
        warn = result.warnings.append

        units = series.facts.pet.units if series.facts.pet else None
        absolute = units in (None, "BQML")
        if units is None:
            warn("Units (0054,1001) absent: voxel values taken as Bq/mL as stored")
        elif not absolute:
            warn(f"Units (0054,1001) is {units!r}, not BQML: background_mean_bq_ml is not "
                 "reported; contrasts and variabilities are ratios and unaffected")

        loc = locate_phantom(vol, (dz, dy, dx), cold, ring=ring_location(series, cold))
        for note in loc.notes[1:]:
            warn(note)
        nz = vol.shape[0]
        k_plane = _nearest_slice(loc.plane_z, nz)
        off_mm = abs(k_plane - loc.plane_z) * dz
        if off_mm > 0.25 * _SPHERE_R[0]:
            warn(f"the sphere-plane slice is {off_mm:.1f} mm from the fitted sphere-centre "
                 f"plane (slice spacing {dz:.2f} mm): the smallest spheres' contrast is "
                 "lowered by partial volume")
        for d in SPHERES_MM:
            if d < 3 * max(dy, dx):
                warn(f"{d} mm sphere: fewer than 3 pixels across its diameter "
                     f"(pixel {max(dy, dx):.2f} mm); its contrast depends strongly on "
                     "sampling")
        zs = loc.sphere_centres_zyx[:, 0] * dz
        hot = np.array([d not in cold for d in SPHERES_MM])
        if np.ptp(zs[hot]) > max(4.0, dz):
            warn(f"hot sphere centres span {np.ptp(zs[hot]):.1f} mm along the axis: the "
                 "phantom may be tilted; one sphere plane is used as NU 2-2018 asks")

        # background ROIs on the sphere-plane slice and ±10, ±20 mm (NU 2-2018 7.4.1)
        sph_yx = loc.sphere_centres_zyx[:, 1:]
        lung_yx = loc.lung_centre_yx if loc.lung_centre_yx is not None else loc.ring_centre_yx
        bg_yx, bg_margin = background_roi_centres(loc.body_mask_yx, (dy, dx), sph_yx,
                                                  loc.ring_centre_yx, lung_yx)
        result.parameters["background_roi_sphere_margin_mm"] = bg_margin
        if bg_margin < nema_iq.BACKGROUND_EDGE_MARGIN_MM:
            warn(f"background ROIs are {nema_iq.BACKGROUND_EDGE_MARGIN_MM:.0f} mm inside the "
                 f"phantom edge but only {bg_margin:.1f} mm from the spheres and lung insert: "
                 "this phantom leaves no room for 12 separate 37 mm ROIs at 15 mm from both")
        slices = [_nearest_slice(loc.plane_z + o / dz, nz)
                  for o in nema_iq.BACKGROUND_SLICE_OFFSETS_MM]
        if len(set(slices)) < len(slices) or any(not (loc.z_range[0] <= k <= loc.z_range[1])
                                                 for k in slices):
            raise AnalysisError(
                "the background slices at ±10 and ±20 mm from the sphere plane are not all "
                f"inside the phantom (slices {slices}, body slices {loc.z_range})")
        sizes = list(SPHERES_MM)
        bg_slices = vol[slices]
        roi_means = np.stack([circle_patch_means(bg_slices, bg_yx, d / 2, (dy, dx))
                              for d in sizes])
        K = roi_means.shape[1] * roi_means.shape[2]

        plane_img = vol[k_plane]
        sphere_means = np.array([
            patch_mean(plane_img, circle_patch(plane_img.shape, (float(c[0]), float(c[1])),
                                               r, (dy, dx)))
            for c, r in zip(sph_yx, _SPHERE_R, strict=True)])

        # the fill ratio: given, estimated from the image, and whether the image allows it
        fill = self._fill_ratio(vol, (dz, dy, dx), loc.sphere_centres_zyx, cold, roi_means,
                                sphere_means, ratio_given, c_true_param is not None, result)
        ratio = fill.ratio
        cb37 = None
        for a, d in enumerate(sizes):
            cb, sd, nvar = background_variability(roi_means[a].ravel())
            if d == 37:
                cb37 = cb
            ch = float(sphere_means[a])
            if d in cold:
                q = percent_contrast_cold(ch, cb)
                # sphere ROI noise ~ SD (absolute, near-zero activity), C_B to SD/sqrt(K)
                uq = 100.0 * np.hypot(sd, ch * sd / np.sqrt(K) / cb) / cb
            elif ratio is None:
                q, uq = float("nan"), float("nan")
            else:
                q, uq = _hot_contrast(ch, cb, sd, K, ratio, fill.ratio_uncertainty)
            m = result.add("percent_contrast", q, "%", labels={"sphere_mm": d},
                           uncertainty=uq)
            if d not in cold:
                fill.mark(m)
            result.add("background_variability", nvar, "%", labels={"sphere_mm": d},
                       uncertainty=nvar / np.sqrt(2.0 * (K - 1)))
        assert cb37 is not None
        sd37 = float(roi_means[sizes.index(37)].std(ddof=1))
        if absolute:
            result.add("background_mean_bq_ml", cb37, "Bq/mL", uncertainty=sd37 / np.sqrt(K))

        # lung residual: 30 mm ROI on the lung insert on each background slice (NU 2-2018 7.4.1)
        if loc.lung_centre_yx is None:
            warn("lung insert not segmented: its ROI is centred on the fitted sphere ring")
        lung_means = circle_patch_means(bg_slices, np.array([lung_yx]),
                                        nema_iq.LUNG_ROI_DIAMETER_MM / 2, (dy, dx))[:, 0]
        cb37_slices = roi_means[sizes.index(37)].mean(axis=1)
        lung_each = 100.0 * lung_means / cb37
        result.add("lung_residual", float(lung_each.mean()), "%",
                   uncertainty=float(lung_each.std(ddof=1) / np.sqrt(lung_each.size)))

        # EARL recovery coefficients
        if c_true_param is not None:
            c_true = c_true_param
            result.parameters["sphere_concentration_bq_ml"] = c_true
            result.parameters["rc_reference"] = "sphere_concentration_bq_ml parameter"
        elif ratio is not None:
            c_true = cb37 * ratio
            result.parameters["rc_reference"] = "measured background x activity_ratio"
            if fill.source == "given":
                warn("true sphere concentration not given: EARL recovery coefficients use "
                     f"the measured background ({cb37:.4g}) x activity_ratio ({ratio:g}) = "
                     f"{c_true:.4g}; give sphere_concentration_bq_ml for accreditation")
        else:
            c_true = float("nan")
            result.parameters["rc_reference"] = None
        rc: dict[int, dict[str, float]] = {}
        d3 = np.array([dz, dy, dx])
        # Standard uncertainties of the RCs, from the image's own noise (OSEM noise grows
        # with the local mean, so relative noise measured in the background holds in a
        # sphere): rc_mean, the relative spread of background ROI means of the sphere's
        # size; rc_peak, that of the 13 mm ROIs (the 1 mL sphere is 12.4 mm across);
        # rc_max, one voxel's relative SD in the 37 mm background ROIs of the plane.
        rel_roi = {d: float(roi_means[a].std(ddof=1) / roi_means[a].mean())
                   for a, d in enumerate(sizes)}
        rel_voxel = _voxel_relative_sd(plane_img, bg_yx, (dy, dx))
        for n, d in enumerate(sizes):
            if d in cold:
                continue
            c = loc.sphere_centres_zyx[n]
            half = np.ceil((_SPHERE_R[n] + d3) / d3).astype(int) - 1
            half = np.maximum(half, 1)
            g = np.round(c).astype(int)
            lo, hi = np.maximum(g - half, 0), np.minimum(g + half + 1, vol.shape)
            box = vol[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
            vmax, vmean, nvox = a50_voi(box, cb37)
            vpeak = peak_mean(vol, (dz, dy, dx), c, float(_SPHERE_R[n]))
            rc[d] = {"max": vmax, "mean": vmean, "peak": vpeak, "voxels": nvox}
            rcs = (result.add("rc_max", vmax / c_true, "1", labels={"sphere_mm": d},
                              uncertainty=abs(vmax / c_true) * rel_voxel),
                   result.add("rc_mean", vmean / c_true, "1", labels={"sphere_mm": d},
                              uncertainty=abs(vmean / c_true) * rel_roi[d]),
                   result.add("rc_peak", vpeak / c_true, "1", labels={"sphere_mm": d},
                              uncertainty=abs(vpeak / c_true) * rel_roi[13]))
            for m in rcs if c_true_param is None else ():
                fill.mark(m)

        centres_lps = series.index_to_patient(loc.sphere_centres_zyx)
        result.evidence = {
            "plane_image": plane_img.copy(),
            "spacing_yx": (dy, dx),
            "plane_slice": k_plane,
            "plane_z_index": loc.plane_z,
            "background_slices": slices,
            "sphere_centres_zyx": loc.sphere_centres_zyx.copy(),
            "sphere_centres_lps": np.asarray(centres_lps),
            "sphere_diameters_mm": sizes,
            "background_centres_yx": bg_yx,
            "background_roi_means": roi_means,
            "lung_centre_yx": lung_yx,
            "lung_residual_per_slice": lung_each,
            "background_37_per_slice": cb37_slices,
            "ring_centre_yx": loc.ring_centre_yx,
            "ring_angle_deg": loc.ring_angle_deg,
            "handedness": loc.handedness,
            "sphere_means": sphere_means,
            "cold_spheres": cold,
            "rc_values": rc,
            "c_true": c_true,
            "ratio_estimate": fill.estimate,
        }
        return result

    @staticmethod
    def _fill_ratio(vol: np.ndarray, spacing: tuple[float, float, float],
                    centres_zyx: np.ndarray, cold: tuple[int, ...], roi_means: np.ndarray,
                    sphere_means: np.ndarray, given: float | None, rc_given: bool,
                    result: Result) -> _FillRatio:
        """Decide the fill ratio the hot-sphere measurements use (see :meth:`run`):
        report the image's estimate, record where the ratio came from, and warn when the
        ratio is estimated, missing or contradicted."""
        hot = [n for n, d in enumerate(SPHERES_MM) if d not in cold]
        if not hot:
            result.parameters["activity_ratio_source"] = "not needed: no hot sphere"
            return _FillRatio(given, None, "given" if given is not None else "none", None)
        big = max(hot, key=lambda n: SPHERES_MM[n])
        d_big = SPHERES_MM[big]
        n_rois = roi_means.shape[1] * roi_means.shape[2]
        cb, sd, _ = background_variability(roi_means[big].ravel())
        depends = "hot-sphere percent contrasts" + ("" if rc_given else
                                                     " and EARL recovery coefficients")
        how = ("give the phantom's fill with --param activity_ratio=R (sphere : background) "
               "or in the node protocol for this device")
        estimate: RatioEstimate | None = None
        try:
            estimate = estimate_activity_ratio(vol, spacing, centres_zyx, cold, cb, sd / cb,
                                               n_rois)
        except AnalysisError as exc:
            result.warnings.append(f"activity ratio not estimated from the image: {exc.message}")
        except (ValueError, np.linalg.LinAlgError) as exc:  # the fit found no solution
            result.warnings.append(f"activity ratio not estimated from the image: the fit of "
                                   f"the sphere profiles failed ({exc})")
        else:
            if not (np.isfinite(estimate.ratio) and estimate.ratio > 1.0
                    and np.isfinite(estimate.uncertainty)):
                result.warnings.append(
                    f"activity ratio not estimated from the image: the fit of the "
                    f"{', '.join(map(str, estimate.spheres_mm))} mm sphere profiles gave "
                    f"{estimate.ratio:.3g}, not a hot fill")
                estimate = None
        fitted = ("the fit of the " + ", ".join(map(str, estimate.spheres_mm))
                  + " mm sphere profiles") if estimate else ""
        if estimate is not None:
            result.add("activity_ratio_estimated", estimate.ratio, "1",
                       uncertainty=estimate.uncertainty)
            result.parameters["activity_ratio_fit_fwhm_mm"] = round(estimate.fwhm_mm, 3)
        if given is not None:
            result.parameters["activity_ratio_source"] = "given"
            ch = float(sphere_means[big])
            q, uq = _hot_contrast(ch, cb, sd, n_rois, given, 0.0)
            if q > 100.0 + CONTRADICTION_K * uq:
                est = (f"; {fitted} estimates {estimate.ratio:.2f} ± "
                       f"{estimate.uncertainty:.2f}" if estimate else "")
                reason = (f"activity_ratio={given:g} contradicts the image: with it the "
                          f"{d_big} mm sphere's percent contrast is {q:.0f} ± {uq:.0f} %, "
                          "above the 100 % that partial volume allows (NEMA NU 2-2018 "
                          f"section 7.4.1); the sphere reads {ch / cb:.2f} times the "
                          f"background, so the fill ratio is at least that{est}")
                result.parameters["activity_ratio_source"] = "given, contradicted by the image"
                result.warnings.append(f"{reason}. The {depends} are refused: check the fill "
                                       f"and {how}.")
                return _FillRatio(given, estimate, "contradicted", reason)
            if estimate is not None and abs(given - estimate.ratio) > \
                    CONTRADICTION_K * estimate.uncertainty:
                result.warnings.append(
                    f"activity_ratio={given:g} given, but {fitted} estimates "
                    f"{estimate.ratio:.2f} ± {estimate.uncertainty:.2f}: the given ratio is "
                    "used; check the fill")
            return _FillRatio(given, estimate, "given", None)
        if estimate is None:
            reason = (f"activity_ratio not given and not measurable from the image: the "
                      f"{depends} cannot be computed; {how}")
            result.parameters["activity_ratio_source"] = "none"
            result.warnings.append(reason)
            return _FillRatio(None, None, "none", reason)
        source = f"estimated from the {d_big} mm sphere"
        if len(estimate.spheres_mm) > 1:
            source = f"estimated from the {', '.join(map(str, estimate.spheres_mm))} mm spheres"
        result.parameters["activity_ratio"] = round(estimate.ratio, 4)
        result.parameters["activity_ratio_source"] = source
        reason = (f"activity_ratio not given: computed with the ratio {source}, "
                  f"{estimate.ratio:.2f} ± {estimate.uncertainty:.2f}, which is not the "
                  f"physicist's fill; {how}")
        result.warnings.append(f"{reason}. The {depends} are not judged.")
        return _FillRatio(estimate.ratio, estimate, "estimated", reason)

    def _run_positions(self, series: Series, **params: Any) -> Result:
        """Long-AFOV practice (STANDARDS.md A.8: uEXPLORER images the IQ phantom at 5
        axial positions): ``axial_positions_mm`` lists patient z (mm) of the phantoms'
        sphere planes, e.g. ``"-600,-300,0,300,600"``. Each is analysed on its own in the
        slices within ``axial_window_mm`` (default 150 mm, so that the whole IEC body
        phantom, about 220 mm long with its lid, is kept) of it, exactly as a short scan;
        the measurements carry the label ``axial_position_mm``, and the positions and the
        window are stored with the result."""
        rest = dict(params)
        raw = rest.pop("axial_positions_mm")
        window = _positive_float(rest, "axial_window_mm", 150.0)
        rest.pop("axial_window_mm", None)
        assert window is not None
        try:
            positions = [float(v) for v in str(raw).replace(";", ",").split(",") if v.strip()]
        except ValueError:
            raise AnalysisError(f"axial_positions_mm must be mm values separated by commas, "
                                f"got {raw!r}") from None
        if not positions:
            raise AnalysisError("axial_positions_mm is empty")
        nz = series.shape[0]
        z_mm = series.index_to_patient(np.c_[np.arange(nz), np.zeros(nz), np.zeros(nz)])[:, 2]
        parts: list[Result] = []
        for pos in positions:
            ks = np.flatnonzero(np.abs(z_mm - pos) <= window)
            if len(ks) < 10:
                raise AnalysisError(f"axial position {pos:g} mm: only {len(ks)} slices within "
                                    f"{window:g} mm (the scan covers {z_mm.min():.0f} to "
                                    f"{z_mm.max():.0f} mm)")
            k0, k1 = int(ks.min()), int(ks.max()) + 1
            affine = series.affine.copy()
            affine[:, 3] = series.affine @ np.array([k0, 0.0, 0.0, 1.0])
            sub = dataclasses.replace(
                series, voxels=series.voxels[k0:k1], affine=affine,
                sop_instance_uids=series.sop_instance_uids[k0:k1]
                if len(series.sop_instance_uids) == nz else [],
                warnings=list(series.warnings))
            try:
                part = self.run(sub, **rest)
            except AnalysisError as exc:
                raise AnalysisError(f"axial position {pos:g} mm: {exc.message}",
                                    exc.where) from None
            for m in part.measurements:
                m.labels["axial_position_mm"] = pos
            parts.append(part)
        result = parts[0]
        result.measurements = [m for part in parts for m in part.measurements]
        result.warnings = list(dict.fromkeys(
            f"axial position {pos:g} mm: {w}" for pos, part in zip(positions, parts, strict=True)
            for w in part.warnings))
        result.parameters = {**parts[0].parameters, "axial_positions_mm": positions,
                             "axial_window_mm": window}
        result.evidence = {"per_position": parts[1:], **parts[0].evidence}
        return result

    # ------------------------------------------------------------------ figures
    def figures(self, result: Result) -> list[Any]:
        """The sphere-plane slice with every ROI, and contrast / recovery against diameter."""
        import plotly.graph_objects as go

        from scanbench.report.figures import RoiShape, slice_with_rois

        ev = result.evidence
        if not ev:
            return []
        if ev.get("per_position"):  # long AFOV: the same figures for every position
            first = dataclasses.replace(result, evidence={k: v for k, v in ev.items()
                                                          if k != "per_position"})
            return self.figures(first) + [f for part in ev["per_position"]
                                          for f in self.figures(part)]
        rois = []
        for c, d in zip(ev["sphere_centres_zyx"], ev["sphere_diameters_mm"], strict=True):
            cold = d in ev["cold_spheres"]
            rois.append(RoiShape((float(c[1]), float(c[2])), d / 2, f"{d} mm",
                                 "#4363d8" if cold else "#e6194b"))
        for i, c in enumerate(ev["background_centres_yx"]):
            rois.append(RoiShape((float(c[0]), float(c[1])), _BG_ROI_MM / 2, f"B{i + 1}",
                                 "#3cb44b"))
        ly, lx = ev["lung_centre_yx"]
        rois.append(RoiShape((float(ly), float(lx)), nema_iq.LUNG_ROI_DIAMETER_MM / 2,
                             "lung", "#f58231"))
        fig1 = slice_with_rois(ev["plane_image"], ev["spacing_yx"], rois,
                               f"Sphere-plane slice {ev['plane_slice']}: spheres, 12 background "
                               "ROIs (37 mm shown), lung ROI", invert=True)

        fig2 = go.Figure()
        # The spec's acceptance band per sphere (EARL: RC max and RC mean bands), drawn
        # behind the measured curves, so a value outside its band shows at a glance.
        band_colours = {"rc_max": "rgba(230,25,75,0.15)", "rc_mean": "rgba(67,99,216,0.15)",
                        "rc_peak": "rgba(60,180,75,0.15)"}
        for name, label in (("rc_max", "RC max"), ("rc_mean", "RC mean (A50)"),
                            ("rc_peak", "RC peak (1 mL)")):
            banded = sorted(((m.labels["sphere_mm"], m.limits) for m in result.measurements
                             if m.name == name and m.limits is not None
                             and m.limits.low is not None and m.limits.high is not None),
                            key=lambda t: t[0])
            if not banded:
                continue
            xs = [float(d) for d, _ in banded]
            unconfirmed = any(not lim.verified for _, lim in banded)
            band_name = (f"{label} limits, {result.spec}"
                         + (" (unconfirmed)" if unconfirmed else ""))
            fig2.add_trace(go.Scatter(x=xs, y=[lim.low for _, lim in banded], mode="lines",
                                      line={"width": 0}, hoverinfo="skip", showlegend=False,
                                      legendgroup=band_name))
            fig2.add_trace(go.Scatter(x=xs, y=[lim.high for _, lim in banded], mode="lines",
                                      line={"width": 0}, fill="tonexty",
                                      fillcolor=band_colours[name], name=band_name,
                                      legendgroup=band_name, hoverinfo="skip"))
        pcs = [m for m in result.measurements if m.name == "percent_contrast"]
        fig2.add_trace(go.Scatter(
            x=[m.labels["sphere_mm"] for m in pcs], y=[m.value / 100 for m in pcs],
            error_y={"type": "data", "array": [(m.uncertainty or 0) / 100 for m in pcs]},
            mode="lines+markers", name="percent contrast / 100"))
        for name, label in (("rc_max", "RC max"), ("rc_mean", "RC mean (A50)"),
                            ("rc_peak", "RC peak (1 mL)")):
            ms = [m for m in result.measurements if m.name == name]
            if ms:
                fig2.add_trace(go.Scatter(x=[m.labels["sphere_mm"] for m in ms],
                                          y=[m.value for m in ms], mode="lines+markers",
                                          name=label))
        fig2.update_layout(title_text="Contrast and recovery against sphere diameter",
                           xaxis_title="sphere inner diameter (mm)",
                           yaxis_title="recovery (1)", template="simple_white")
        return [fig1, fig2]

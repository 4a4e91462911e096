"""Finding the ACR large MRI phantom in its images: outline, centre, rotation, slice order.

Shared by the ``mr.acr.*`` analyses. Everything is found from the images; the
header is used only for orientation and pixel size.

- **Outline** (:func:`outline`): rays from a first centre guess every degree;
  on each ray the phantom edge is where the profile, walked inward from
  outside, crosses half of the local signal plateau (the plateau is the median
  of the 3–12 mm just inside a first, global-threshold crossing; the background
  the median just outside). A half-height crossing is where a blurred step edge
  truly lies, independent of resolution and window. A circle is then fitted to
  the edge points (least squares, points more than 3 mm off rejected, twice),
  giving the centre. ``diameter_mm(angle)`` is the edge-to-edge length through
  the fitted centre in that direction, each radius the median over ±10° of
  rays (so a structure touching the wall, such as the slice-position wedges,
  does not shorten the length; for a round or gently elliptical outline the
  median over ±10° differs from the exact ray by < 0.1 mm).
- **Rotation** (:func:`axial_geometry`): the slice-thickness slab of slice 1 is
  a dark band across the whole phantom; the phantom's in-plane rotation is the
  angle (−20°…20°, 1° then 0.05° steps) at which the projection of the
  central 120 mm onto the band's normal has the sharpest edges. If the
  resolution insert (the large dark rectangle) lies above the band rather than
  below, the phantom is upside down and 180° is added.
- **Slice order**: the ACR slices are numbered 1 to 11 from the end that holds
  the slab; the series is read in patient order and reversed if the slab is in
  its last slice.

Phantom frame: ``(u, v)`` in mm from the phantom centre, ``u`` to the image
right and ``v`` down for an unrotated phantom in the ACR orientation (slab
across the centre, resolution insert below it, wedges at the top), rotated
with the phantom.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from scanbench.analysis.base import Analysis, result_for
from scanbench.analysis.memo import memo
from scanbench.analysis.mr import ndi
from scanbench.errors import AnalysisError
from scanbench.types import Result, Series

INSIDE_DIAMETER_MM = 190.0  # ACR large phantom, inside diameter [C] (STANDARDS.md C.1)
INSIDE_LENGTH_MM = 148.0  # inside length [C]
MEDIUM_INSIDE_DIAMETER_MM = 165.0  # ACR medium phantom, inside diameter [C] (STANDARDS.md C.1)
N_SLICES = 11  # ACR axial series [C]
SLICE_GAP_MM = 10.0  # 5 mm slices with 5 mm gaps: centres 10 mm apart [U] (ACR protocol)


def orientation(series: Series) -> str:
    """``axial``, ``sagittal`` or ``coronal`` from the slice normal (within 30°),
    else ``oblique``."""
    if series.shape[0] > 1:
        normal = series.affine[:3, 0]
    else:  # one slice: the normal is the cross product of row and column directions
        normal = np.cross(series.affine[:3, 2], series.affine[:3, 1])
    n = np.abs(normal) / (np.linalg.norm(normal) or 1.0)
    axis = int(np.argmax(n))
    if n[axis] < np.cos(np.radians(30.0)):
        return "oblique"
    return ("sagittal", "coronal", "axial")[axis]


def in_plane_axes(series: Series) -> tuple[np.ndarray, np.ndarray]:
    """Unit LPS directions of increasing column (x) and row (y) in the image."""
    col = series.affine[:3, 2] / np.linalg.norm(series.affine[:3, 2])
    row = series.affine[:3, 1] / np.linalg.norm(series.affine[:3, 1])
    return col, row


def sample(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` at fractional (row, col); NaN outside
    (``scipy.ndimage.map_coordinates(order=1, cval=nan)`` bit for bit, in numpy: see
    :mod:`scanbench.analysis.mr.ndi`)."""
    out = ndi.map_coordinates_linear(image, [np.ravel(rows), np.ravel(cols)])
    return out.reshape(np.shape(rows))


# ------------------------------------------------------------------------------- outline


@dataclass(frozen=True)
class Outline:
    """The phantom's outer edge in one image (see the module docstring)."""

    centre: tuple[float, float]  # (row, col), fractional pixels
    pixel_mm: tuple[float, float]  # (dy, dx)
    angles_deg: np.ndarray  # ray angles, 0 = image right, 90 = image down
    edge_mm: np.ndarray  # distance of the edge from ``centre`` per ray (NaN: no edge)
    level: float  # median signal inside the phantom
    background: float  # median signal outside
    radius_mm: float  # fitted circle

    conic: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)
    kept: np.ndarray | None = None  # rays consistent with the fitted ellipse

    def ellipse_radius(self, angle_deg: float) -> float:
        """Distance from ``centre`` to the fitted ellipse along ``angle_deg``."""
        a_, b_, c_, d_, e_ = self.conic
        c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
        qa = a_ * c * c + b_ * c * s + c_ * s * s
        qb = d_ * c + e_ * s
        disc = qb * qb + 4.0 * qa
        return float((-qb + np.sqrt(disc)) / (2.0 * qa)) if qa > 0 and disc >= 0 else float("nan")

    def radius_at(self, angle_deg: float, window_deg: float = 5.0) -> float:
        """Median edge radius of the rays within ±``window_deg`` that agree with the
        fitted ellipse; the ellipse itself where none does (an air bubble, a wedge)."""
        d = (self.angles_deg - angle_deg + 180.0) % 360.0 - 180.0
        sel = np.abs(d) <= window_deg
        if self.kept is not None:
            sel &= self.kept
        vals = self.edge_mm[sel]
        vals = vals[np.isfinite(vals)]
        return float(np.median(vals)) if vals.size else self.ellipse_radius(angle_deg)

    def diameter_mm(self, angle_deg: float) -> float:
        """Edge-to-edge length through the centre along ``angle_deg`` (image frame)."""
        return self.radius_at(angle_deg) + self.radius_at(angle_deg + 180.0)


def _fit_ellipse(angles_deg: np.ndarray, edge: np.ndarray,
                 ) -> tuple[tuple[float, float, float, float, float], np.ndarray]:
    """Conic ``A x² + B xy + C y² + D x + E y = 1`` through the edge points (mm about
    the centre); points lying more than 1.5 mm inside it (bubbles, wedges) or outside
    it are rejected, three times over. Returns the conic and the kept rays."""
    a = np.radians(angles_deg)
    x, y = edge * np.cos(a), edge * np.sin(a)
    keep = np.isfinite(edge)
    coef = np.zeros(5)
    for _ in range(4):
        m = np.column_stack([x * x, x * y, y * y, x, y])[keep]
        coef, *_ = np.linalg.lstsq(m, np.ones(int(keep.sum())), rcond=None)
        tmp = Outline((0.0, 0.0), (1.0, 1.0), angles_deg, edge, 0.0, 0.0, 0.0,
                      conic=tuple(float(v) for v in coef))  # type: ignore[arg-type]
        model = np.array([tmp.ellipse_radius(t) for t in angles_deg])
        resid = edge - model
        keep = np.isfinite(edge) & (np.abs(resid) < 1.5)
        if keep.sum() < 60:
            break
    return (float(coef[0]), float(coef[1]), float(coef[2]), float(coef[3]), float(coef[4])), keep


def _rays(image: np.ndarray, centre: tuple[float, float], pixel_mm: tuple[float, float],
          angles: np.ndarray, r_mm: np.ndarray) -> np.ndarray:
    a = np.radians(angles)[:, None]
    rows = centre[0] + r_mm[None, :] * np.sin(a) / pixel_mm[0]
    cols = centre[1] + r_mm[None, :] * np.cos(a) / pixel_mm[1]
    return sample(image, rows, cols)


def _crossing_inward(profile: np.ndarray, r: np.ndarray, level: float) -> float:
    """Largest radius at which ``profile`` (over increasing ``r``) rises through ``level``
    walking inward from the outside, interpolated linearly; NaN if none."""
    above = np.nan_to_num(profile, nan=-np.inf) >= level
    idx = np.flatnonzero(above)
    if idx.size == 0:
        return float("nan")
    i = int(idx[-1])
    if i + 1 >= r.size or not np.isfinite(profile[i + 1]):
        return float("nan")
    p0, p1 = profile[i], profile[i + 1]
    t = (p0 - level) / (p0 - p1) if p0 != p1 else 0.0
    return float(r[i] + t * (r[i + 1] - r[i]))


def _fit_circle(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    a = np.column_stack([x, y, np.ones_like(x)])
    b = x ** 2 + y ** 2
    c, *_ = np.linalg.lstsq(a, b, rcond=None)
    cx, cy = c[0] / 2, c[1] / 2
    return float(cx), float(cy), float(np.sqrt(c[2] + cx ** 2 + cy ** 2))


def _first_guess(image: np.ndarray) -> tuple[tuple[float, float], float, float]:
    """Centre (row, col) of the largest bright object's convex extent, its level and
    the background, from a threshold halfway between background and object."""
    finite = np.nan_to_num(image)
    hi = float(np.percentile(finite, 99.0))
    mask = finite > 0.25 * hi
    biggest = ndi.largest_component(mask)
    if biggest is None:
        raise AnalysisError("no phantom signal in the image")
    # the extent of the object with its holes filled is the object's own extent: holes lie
    # inside it
    rows, cols = np.nonzero(biggest)
    centre = ((rows.min() + rows.max()) / 2.0, (cols.min() + cols.max()) / 2.0)
    level = float(np.median(finite[biggest]))
    background = float(np.median(finite[~ndi.binary_dilation_cross(mask, iterations=5)]))
    return centre, level, background


def _last_rise(prof: np.ndarray, r: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Per row of ``prof`` (over increasing ``r``): the largest radius at which the
    profile rises through ``level`` walking inward from outside, interpolated
    linearly; NaN where there is none (vectorised :func:`_crossing_inward`)."""
    lev = np.broadcast_to(np.asarray(level, dtype=float).reshape(-1, 1), prof.shape)
    above = np.nan_to_num(prof, nan=-np.inf) >= lev
    n = r.size
    last = n - 1 - np.argmax(above[:, ::-1], axis=1)
    rows = np.arange(prof.shape[0])
    nxt = np.minimum(last + 1, n - 1)
    p0, p1 = prof[rows, last], prof[rows, nxt]
    ok = above.any(axis=1) & (last + 1 < n) & np.isfinite(p1)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(p0 != p1, (p0 - lev[:, 0]) / (p0 - p1), 0.0)
    out = r[last] + t * (r[nxt] - r[last])
    return np.where(ok, out, np.nan)


def _row_quantile(a: np.ndarray, q: float) -> np.ndarray:
    """The ``q`` quantile (nearest lower rank) of each row's finite values; NaN for a
    row without any (a fast ``nanpercentile`` for many short rows)."""
    srt = np.sort(a, axis=1)  # NaNs sort last
    n = np.isfinite(a).sum(axis=1)
    idx = np.clip(np.floor(q * (n - 1)).astype(int), 0, a.shape[1] - 1)
    out = srt[np.arange(a.shape[0]), idx]
    return np.where(n > 0, out, np.nan)


def _edges(image: np.ndarray, centre: tuple[float, float], pixel_mm: tuple[float, float],
           angles: np.ndarray, r: np.ndarray, level: float, background: float) -> np.ndarray:
    """Edge radius (mm from ``centre``) per ray: the inward half-plateau crossing."""
    prof = _rays(image, centre, pixel_mm, angles, r)
    rough = _last_rise(prof, r, np.full(angles.size, background + 0.2 * (level - background)))
    d = r[None, :] - rough[:, None]
    with np.errstate(invalid="ignore"):
        inside = np.where((d > -10.0) & (d < -2.0), prof, np.nan)
        outside = np.where((d > 4.0) & (d < 12.0), prof, np.nan)
    hi = _row_quantile(inside, 0.8)
    lo = _row_quantile(outside, 0.5)
    hi = np.where(np.isfinite(hi), hi, level)
    lo = np.where(np.isfinite(lo), lo, background)
    with np.errstate(invalid="ignore"):
        near = np.where(np.abs(d) < 6.0, prof, np.nan)
    edge = _last_rise(near, r, 0.5 * (hi + lo))
    return np.where(np.isfinite(rough), edge, np.nan)


def outline(image: np.ndarray, pixel_mm: tuple[float, float],
            expected_radius_mm: float = INSIDE_DIAMETER_MM / 2) -> Outline:
    """The phantom outline in one 2-D image (module docstring). Raises AnalysisError
    when no round object of about the expected size is found."""
    centre, level, background = _first_guess(image)
    angles = np.arange(0.0, 360.0, 1.0)
    r = np.arange(0.0, 1.35 * expected_radius_mm, 0.25 * min(pixel_mm))
    a = np.radians(angles)
    edge = _edges(image, centre, pixel_mm, angles, r, level, background)
    ok = np.isfinite(edge)
    if ok.sum() < 90:
        raise AnalysisError("the phantom edge was not found around the image "
                            f"({int(ok.sum())} of 360 directions)")
    x = centre[1] * pixel_mm[1] + edge * np.cos(a)
    y = centre[0] * pixel_mm[0] + edge * np.sin(a)
    keep = ok.copy()
    for _ in range(3):
        cx, cy, _rad = _fit_circle(x[keep], y[keep])
        resid = np.hypot(x - cx, y - cy) - _rad
        keep = ok & (np.abs(resid) < max(2.0, 3.0 * float(np.median(np.abs(resid[ok])))))
    centre = (cy / pixel_mm[0], cx / pixel_mm[1])
    # radii again about the fitted centre, so that diameters go through it
    edge = _edges(image, centre, pixel_mm, angles, r, level, background)
    if np.isfinite(edge).sum() < 90:
        raise AnalysisError("the phantom edge was not found around the image")
    conic, kept = _fit_ellipse(angles, edge)
    radius = float(np.nanmedian(edge[kept])) if kept.any() else float(np.nanmedian(edge))
    if not (0.7 * expected_radius_mm < radius < 1.3 * expected_radius_mm):
        raise AnalysisError(
            f"the object in the image is {2 * radius:.0f} mm across, not the "
            f"{2 * expected_radius_mm:.0f} mm of the ACR large phantom")
    return Outline(centre=centre, pixel_mm=pixel_mm, angles_deg=angles, edge_mm=edge,
                   level=level, background=background, radius_mm=radius, conic=conic,
                   kept=kept)


def is_medium_phantom(o: Outline) -> bool:
    """The outline is nearer the medium phantom's 165 mm than the large one's 190 mm."""
    return bool(2 * o.radius_mm < (INSIDE_DIAMETER_MM + MEDIUM_INSIDE_DIAMETER_MM) / 2)


def refuse_medium(o: Outline) -> None:
    """Raise a clear AnalysisError for the ACR medium phantom: every ACR test here places
    its ROIs, profiles and discs by the large phantom's geometry, so on the medium
    phantom they would measure the wrong places (and its lengths would read 25 mm
    short) rather than fail."""
    if is_medium_phantom(o):
        raise AnalysisError(
            f"the phantom is {2 * o.radius_mm:.0f} mm across: the ACR medium phantom "
            f"({MEDIUM_INSIDE_DIAMETER_MM:.0f} mm), or a large phantom imaged with a gross "
            f"(> 6 %) gradient-scale error; scanbench's ACR tests are implemented for the "
            f"large phantom ({INSIDE_DIAMETER_MM:.0f} mm) only, so none was run")


# ------------------------------------------------------------------------- axial series


def _to_pixel(centre: tuple[float, float], rotation_deg: float, pixel_mm: tuple[float, float],
              u_mm: np.ndarray | float, v_mm: np.ndarray | float,
              ) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of phantom-frame points ``(u, v)`` mm about ``centre`` (row, col) for a
    phantom rotated by ``rotation_deg`` (:meth:`AcrAxial.to_pixel`)."""
    cy, cx = centre
    t = np.radians(rotation_deg)
    u, v = np.asarray(u_mm, dtype=float), np.asarray(v_mm, dtype=float)
    x = u * np.cos(t) - v * np.sin(t)
    y = u * np.sin(t) + v * np.cos(t)
    return cy + y / pixel_mm[0], cx + x / pixel_mm[1]


@dataclass(frozen=True)
class LazyResample:
    """A slice resampled on a phantom-frame grid (rows v, cols u, ``±half_width_mm`` in
    ``step_mm`` steps), computed when read as an array (``np.asarray``): the same values as
    :meth:`AcrAxial.resample`. Kept as figure evidence, it costs nothing in a run that
    draws no figure (4 slices of 401² points: about 0.04 s of the low-contrast test) and
    holds the slice itself, smaller than the resampled grid."""

    image: np.ndarray = field(repr=False)
    centre: tuple[float, float]
    rotation_deg: float
    pixel_mm: tuple[float, float]
    half_width_mm: float
    step_mm: float

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        ax = np.arange(-self.half_width_mm, self.half_width_mm + self.step_mm / 2, self.step_mm)
        uu, vv = np.meshgrid(ax, ax)
        out = sample(self.image, *_to_pixel(self.centre, self.rotation_deg, self.pixel_mm,
                                             uu, vv))
        return out if dtype is None else out.astype(dtype)  # type: ignore[call-overload]


@dataclass
class AcrAxial:
    """An axial ACR series with its slices in ACR order and the phantom located."""

    series: Series
    order: tuple[int, ...]  # voxel slice index of ACR slice 1, 2, ...
    pixel_mm: tuple[float, float]
    rotation_deg: float  # phantom in-plane rotation, image frame (positive: clockwise on screen)
    outlines: dict[int, Outline] = field(default_factory=dict)
    images: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    warnings: list[str] = field(default_factory=list)

    def image(self, n: int) -> np.ndarray:
        """The 2-D image of ACR slice ``n`` (1-based)."""
        if not 1 <= n <= len(self.order):
            raise AnalysisError(f"ACR slice {n} is not in this {len(self.order)}-slice series")
        if n not in self.images:
            self.images[n] = np.asarray(self.series.voxels[self.order[n - 1]], dtype=np.float64)
        return self.images[n]

    def outline(self, n: int) -> Outline:
        if n not in self.outlines:
            self.outlines[n] = outline(self.image(n), self.pixel_mm)
        return self.outlines[n]

    def centre(self, n: int) -> tuple[float, float]:
        """The phantom centre (row, col) on slice ``n``: its own outline's centre where
        that outline is measured (slices 1, 5, 7, 11: geometry, uniformity and ghosting
        use them), else on the straight phantom axis through the centres of slices 1
        and 11 (the same answer whichever test asks first)."""
        if n in (1, 5, 7, len(self.order)):
            return self.outline(n).centre
        c1, c11 = self.outline(1).centre, self.outline(len(self.order)).centre
        f = (n - 1) / (len(self.order) - 1)
        return (c1[0] + f * (c11[0] - c1[0]), c1[1] + f * (c11[1] - c1[1]))

    def to_pixel(self, n: int, u_mm: np.ndarray | float, v_mm: np.ndarray | float,
                 ) -> tuple[np.ndarray, np.ndarray]:
        """(row, col) of phantom-frame points ``(u, v)`` mm on ACR slice ``n``."""
        return _to_pixel(self.centre(n), self.rotation_deg, self.pixel_mm, u_mm, v_mm)

    def sample(self, n: int, u_mm: np.ndarray, v_mm: np.ndarray,
               image: np.ndarray | None = None) -> np.ndarray:
        rows, cols = self.to_pixel(n, u_mm, v_mm)
        return sample(self.image(n) if image is None else image, rows, cols)

    def resample(self, n: int, half_width_mm: float, step_mm: float,
                 image: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Slice ``n`` resampled on a phantom-frame grid (rows v, cols u) and the axis."""
        ax = np.arange(-half_width_mm, half_width_mm + step_mm / 2, step_mm)
        uu, vv = np.meshgrid(ax, ax)
        return self.sample(n, uu, vv, image), ax

    def resample_later(self, n: int, half_width_mm: float, step_mm: float) -> LazyResample:
        """``resample(n, half_width_mm, step_mm)[0]`` made only when read as an array: for
        evidence that only a figure uses (``analyze --json`` draws none)."""
        return LazyResample(self.image(n), self.centre(n), self.rotation_deg, self.pixel_mm,
                            half_width_mm, step_mm)

    @property
    def field_strength_t(self) -> float | None:
        mr = self.series.facts.mr
        return mr.field_strength_t if mr else None


def _slab_score(image: np.ndarray, o: Outline, pixel_mm: tuple[float, float],
                angle: float) -> tuple[float, float]:
    """Edge sharpness of the central band projection at ``angle`` and the band's
    offset (mm, along the band normal)."""
    ax = np.arange(-60.0, 60.01, 2.0)
    vs = np.arange(-40.0, 40.01, 0.5)
    uu, vv = np.meshgrid(ax, vs)
    t = np.radians(angle)
    x = uu * np.cos(t) - vv * np.sin(t)
    y = uu * np.sin(t) + vv * np.cos(t)
    vals = sample(image, o.centre[0] + y / pixel_mm[0], o.centre[1] + x / pixel_mm[1])
    proj = np.nanmean(vals, axis=1)
    d = np.diff(proj)
    return float(np.nanmax(d) - np.nanmin(d)), float(vs[int(np.nanargmin(proj))])


def _has_slab(image: np.ndarray, o: Outline, pixel_mm: tuple[float, float]) -> float:
    """How much darker (fraction of the phantom level) a band of ±5 mm about the best
    central band is than the phantom: ~1 for slice 1 (the slab), ~0 for slice 11."""
    best = max(np.arange(-20.0, 20.01, 4.0), key=lambda a: _slab_score(image, o, pixel_mm, a)[0])
    _, off = _slab_score(image, o, pixel_mm, best)
    t = np.radians(best)
    u = np.arange(-60.0, 60.01, 1.0)
    v = np.full_like(u, off)
    x = u * np.cos(t) - v * np.sin(t)
    y = u * np.sin(t) + v * np.cos(t)
    band = np.nanmedian(sample(image, o.centre[0] + y / pixel_mm[0], o.centre[1] + x / pixel_mm[1]))
    return float((o.level - band) / (o.level - o.background + 1e-12))


def axial_geometry(series: Series) -> AcrAxial:
    """Locate the ACR phantom in an axial series: order, rotation, outlines. Memoised.

    Raises AnalysisError naming the problem when the series is not an axial ACR
    large-phantom series of 11 slices.
    """
    return memo(series, "acr_axial", lambda: _axial_geometry(series))


def _axial_geometry(series: Series) -> AcrAxial:
    if series.facts.modality != "MR":
        raise AnalysisError(f"an ACR MRI series must be MR, this one is {series.facts.modality}")
    orient = orientation(series)
    if orient != "axial":
        raise AnalysisError(f"the ACR tests need the axial series; this series is {orient} "
                            "(a localiser is measured only for its length)")
    nz = series.shape[0]
    pixel_mm = (float(series.spacing[1]), float(series.spacing[2]))
    vox = series.voxels
    first = np.asarray(vox[0], dtype=np.float64)
    last = np.asarray(vox[-1], dtype=np.float64)
    try:  # first: is this the ACR phantom at all (a 190 mm disc with the slice-1 slab)?
        o_first = outline(first, pixel_mm)
        o_last = outline(last, pixel_mm)
    except AnalysisError as exc:
        raise AnalysisError(f"not the ACR large phantom: {exc.message}") from exc
    s_first = _has_slab(first, o_first, pixel_mm)
    s_last = _has_slab(last, o_last, pixel_mm)
    if max(s_first, s_last) >= 0.5:
        refuse_medium(o_first)
    if max(s_first, s_last) < 0.5:
        raise AnalysisError("neither end slice shows the ACR slice-1 slab (the dark band with "
                            "the slice-thickness ramps): not an ACR large-phantom series, or "
                            "the slices do not start at ACR slice 1")
    if nz != N_SLICES:
        raise AnalysisError(
            f"the ACR axial series has {N_SLICES} slices 10 mm apart; this series has {nz}"
            + (" (missing slices: export the whole series)" if nz < N_SLICES else ""))
    dz = series.spacing[0]
    if abs(dz - SLICE_GAP_MM) > 1.0:
        raise AnalysisError(f"ACR axial slices are 10 mm apart; this series has {dz:.1f} mm")
    order = tuple(range(nz)) if s_first >= s_last else tuple(range(nz - 1, -1, -1))
    s1, o1 = (first, o_first) if s_first >= s_last else (last, o_last)
    o_end = o_last if s_first >= s_last else o_first  # ACR slice 11's, from the same pixels
    coarse = max(np.arange(-20.0, 20.01, 1.0),
                 key=lambda a: _slab_score(s1, o1, pixel_mm, a)[0])
    fine = max(np.arange(coarse - 1.0, coarse + 1.001, 0.05),
               key=lambda a: _slab_score(s1, o1, pixel_mm, a)[0])
    rotation = float(fine)
    acr = AcrAxial(series=series, order=order, pixel_mm=pixel_mm, rotation_deg=rotation)
    acr.outlines[1] = o1
    acr.outlines[nz] = o_end  # kept: every test asks for it, and it costs ~0.05 s to redo
    # upside down? the resolution insert (dark) must be below the slab (v > 0)
    vs = np.arange(10.0, 60.0, 1.0)
    us = np.arange(-50.0, 50.0, 1.0)
    uu, vv = np.meshgrid(us, vs)
    below = np.nanmean(acr.sample(1, uu, vv))
    above = np.nanmean(acr.sample(1, uu, -vv))
    if above < below:
        acr.rotation_deg = rotation + 180.0
    return acr


# ------------------------------------------------------------------ shared by the analyses


def field_strength(series: Series) -> float | None:
    mr = series.facts.mr
    return mr.field_strength_t if mr else None


def acr_axial_confidence(series: Series) -> float:
    """How sure (0..1) that ``series`` is an axial ACR large-phantom series; never raises."""
    if series.facts.modality != "MR" or orientation(series) != "axial":
        return 0.0
    if series.shape[0] != N_SLICES:
        return 0.1
    try:
        axial_geometry(series)
    except Exception:
        return 0.1
    return 0.9


def localiser_confidence(series: Series) -> float:
    """How sure (0..1) that ``series`` is a sagittal or coronal ACR localiser; never raises."""
    if series.facts.modality != "MR" or series.shape[0] > 3:
        return 0.0
    if orientation(series) not in ("sagittal", "coronal"):
        return 0.0
    try:
        localiser_length(series)
    except Exception:
        return 0.1
    return 0.85


def new_result(analysis: Analysis, series: Series) -> Result:
    """An empty Result for one ACR test on ``series``, with the parameters every
    ACR result records (the field strength is what the specs' limits depend on)."""
    mr = series.facts.mr
    params: dict[str, object] = {"field_strength_t": _rounded(mr.field_strength_t if mr else None)}
    if mr is not None:
        params.update({"repetition_time_ms": _rounded(mr.repetition_time_ms),
                       "echo_time_ms": _rounded(mr.echo_time_ms)})
        params["sequence"] = acr_sequence(series)
    return result_for(analysis, series, parameters=params)


class AcrAxialTest(ABC):
    """What the six tests measured on the axial series share: each applies to an axial
    ACR large-phantom series (:func:`acr_axial_confidence`) and fills a
    :func:`new_result` with its own module's ``measure(series, result)``, which the
    subclass names as :attr:`measure` (``measure = staticmethod(measure)``)."""

    modality: ClassVar[str] = "MR"
    id: ClassVar[str]
    standard: ClassVar[str]
    title: ClassVar[str]

    @staticmethod
    @abstractmethod
    def measure(series: Series, result: Result) -> None:
        """The test's measurement of ``series`` into ``result``."""

    @abstractmethod
    def figures(self, result: Result) -> list[Any]:
        """The test's report figures."""

    def detect(self, series: Series) -> float:
        return acr_axial_confidence(series)

    def run(self, series: Series, **params: Any) -> Result:
        result = new_result(self, series)
        self.measure(series, result)
        return result


def _rounded(v: float | None) -> float | None:
    """Header numbers as protocols state them: 499.999786 ms is 500 ms, 2.99997 T is 3 T.
    Rounded to 4 significant figures, then to a whole number when within 0.01 % of one."""
    if v is None:
        return None
    r = float(f"{v:.4g}")
    return float(round(r)) if abs(r - round(r)) <= 1e-4 * max(1.0, abs(r)) else r


def protocol_matches(value: float | None, nominal: float, rel_tol: float = 0.005) -> bool:
    """Rounding-tolerant protocol matching: a TR of 499.9995 ms is the ACR's 500 ms."""
    return value is not None and abs(value - nominal) <= rel_tol * abs(nominal)


def acr_sequence(series: Series) -> str:
    """``T1`` (SE TR 500 ms, TE 20 ms), ``T2`` (SE TR 2000 ms, TE 80 ms: the ACR
    protocol's dual echo), else ``site`` (a site's own protocol) [U: ACR protocol numbers]."""
    mr = series.facts.mr
    if mr is None:
        return "site"
    tr, te = mr.repetition_time_ms, mr.echo_time_ms
    if protocol_matches(tr, 500.0) and protocol_matches(te, 20.0):
        return "T1"
    if protocol_matches(tr, 2000.0) and protocol_matches(te, 80.0):
        return "T2"
    return "site"


# ------------------------------------------------------------------------------ localiser


@dataclass(frozen=True)
class LocaliserLength:
    """The phantom's length along the patient's head-foot axis in a localiser image."""

    length_mm: float
    image: np.ndarray
    pixel_mm: tuple[float, float]
    centre: tuple[float, float]  # (row, col)
    axis_angle_deg: float  # image direction of the head-foot axis (0 = right, 90 = down)
    lengths_mm: np.ndarray  # per offset across the phantom
    offsets_mm: np.ndarray


def localiser_length(series: Series) -> LocaliserLength:
    """Length of the phantom along the patient z axis in a sagittal or coronal localiser.

    The image direction closest to patient z is found from the header; profiles along
    it every 1 mm across the central ±80 mm of the phantom find both end caps by the
    same half-plateau edge as the axial outline; each end is the 90th percentile of
    its distances from the centre over these profiles (inserts touching an end cap
    only ever shorten a profile), and the length is their sum.
    """
    return memo(series, "acr_localiser", lambda: _localiser_length(series))


def _localiser_length(series: Series) -> LocaliserLength:
    image = np.asarray(series.voxels[series.shape[0] // 2], dtype=np.float64)
    pixel_mm = (float(series.spacing[1]), float(series.spacing[2]))
    col, row = in_plane_axes(series)
    z = np.array([0.0, 0.0, 1.0])
    angle = float(np.degrees(np.arctan2(row @ z, col @ z)))  # image angle of patient +z
    centre, level, background = _first_guess(image)
    r = np.arange(0.0, 0.75 * INSIDE_LENGTH_MM * 1.35, 0.25 * min(pixel_mm))
    a = np.radians(angle)
    across = np.array([-np.sin(a), np.cos(a)])  # (x, y) unit vector across the axis
    offsets = np.arange(-80.0, 80.01, 1.0)
    angles = np.array([angle, angle + 180.0])
    ends = np.full((offsets.size, 2), np.nan)
    for i, off in enumerate(offsets):
        c = (centre[0] + off * across[1] / pixel_mm[0], centre[1] + off * across[0] / pixel_mm[1])
        ends[i] = _edges(image, c, pixel_mm, angles, r, level, background)
    lengths = ends.sum(axis=1)
    ok = np.isfinite(ends).all(axis=1)
    if ok.sum() < 20:
        raise AnalysisError("the phantom's ends were not found in the localiser")
    # Inserts touching an end cap only ever shorten a profile: each end is the
    # 90th percentile of its edge distances over the profiles, the outermost robust one.
    length = float(np.percentile(ends[ok, 0], 90) + np.percentile(ends[ok, 1], 90))
    if not (0.7 * INSIDE_LENGTH_MM < length < 1.3 * INSIDE_LENGTH_MM):
        raise AnalysisError(f"the object in the localiser is {length:.0f} mm long, not the "
                            f"{INSIDE_LENGTH_MM:.0f} mm of the ACR large phantom")
    return LocaliserLength(length_mm=length, image=image, pixel_mm=pixel_mm, centre=centre,
                           axis_angle_deg=angle, lengths_mm=lengths, offsets_mm=offsets)

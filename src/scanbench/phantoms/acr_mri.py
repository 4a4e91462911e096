"""The ACR large MRI phantom (and the medium phantom as a variant) as geometry in mm.

Interface (for the analyses in ``scanbench.analysis.mr`` and the virtual scanner
``scanbench.simulate.mr``)
------------------------------------------------------------------------------------
Phantom frame, mm: origin on the phantom axis in the plane of slice 1 (the crossing
of the slice-position wedges). ``x`` runs across the axial image from image left to
image right (DICOM LPS +x when the phantom lies head-first supine), ``y`` from the
top of the axial image (where the slice-position bars are) to the bottom (LPS +y,
posterior), ``z`` along the phantom axis from slice 1 towards slice 11.

- ``ACR_LARGE`` / ``ACR_MEDIUM``: :class:`AcrPhantom` records. Their fields give the
  interior (``inner_diameter_mm``, ``inner_length_mm``, ``z_range_mm``), the slice
  centres of the 11-slice protocol (``slice_z_mm(n)``, n = 1..11), the ROI areas the
  guidance prescribes (``piu_roi_area_cm2``, ``ghost_roi_area_cm2``) and every insert:
  ``ramps`` (slice thickness, :class:`Ramp`), ``wedges`` (slice position,
  :class:`WedgePair`), ``hole_arrays`` (high-contrast resolution, :class:`HoleArray`),
  ``grid`` (slice 5, :class:`Grid`), ``lcd_discs`` (slices 8-11, :class:`LcdDisc`).
- ``phantom.signal_at(x, y, z)``: relative signal at points (1 = fill solution,
  0 = plastic or outside), arrays broadcast.
- ``phantom.slice_signal(x, y, z_centre, profile)``: the signal a slice centred at
  ``z_centre`` with slice profile ``profile`` (anything with ``cdf(dz)``, e.g.
  :class:`SliceProfile`) records at in-plane points: the through-plane integral is
  analytic, so 0.07 mm low-contrast sheets and the 10:1 ramps integrate exactly.
- ``lcd_spoke_diameters_mm``, ``LCD_CONTRASTS`` (slice → contrast),
  ``LCD_RING_RADII_MM``.

Every feature is described by an in-plane support and a z interval (that may depend
on x, y, as for the ramps and wedges) where the material differs from the fill; a
feature's ``delta`` is the signal change (plastic in solution −1, a solution-filled
hole in plastic +1). Features of one insert are nested (holes inside their plate), so
the sum of deltas is the signal.

Sources and confidence (STANDARDS.md C.1 and the ACR Large Phantom Test Guidance, as
quoted in hazen's task docstrings; pylinac docs/source/acr.rst):

- Inside diameter 190 mm, inside length 148 mm; medium 165 mm and 134 mm [C].
- 11 axial slices, 5 mm thick with 5 mm gaps (10 mm pitch), slice 1 centred on the
  wedge crossing, slice 11 centred on the second wedge crossing, 100 mm further [C]
  (pylinac's MR_SLICE11_MODULE_OFFSET_MM = 100; slice 7 uniformity at 60 mm [C]).
- Slice thickness: two crossed signal ramps, 1 mm wide slots cut in a plastic
  block, slope 10:1 to the plane of slice 1 (5.71°) [C] (ACR guidance via hazen).
- Slice position: a pair of crossed 45° wedges giving two vertical bars at the top
  of slices 1 and 11 whose length difference is twice the slice displacement [C].
- High-contrast resolution: pairs of 4 × 4 hole arrays of 1.1, 1.0 and 0.9 mm holes,
  upper-left array read along rows (right-left), lower-right along columns
  (anterior-posterior) [C] (pylinac acr.py). Centre-to-centre spacing twice the hole
  diameter [approx: as drawn in the guidance figure]; the arrays are modelled as
  square grids (the real upper-left array staggers its rows; this changes neither
  direction's profile).
- Low contrast: slices 8-11, contrasts 1.4, 2.5, 3.6, 5.1 %; 10 spokes of 3 discs at
  12.5, 25.0 and 38.0 mm from the centre; disc diameters falling linearly from 7.0 to
  1.5 mm [C] (STANDARDS.md C.1). The discs are holes in a thin plastic sheet; the
  sheet thickness is derived here as contrast × 5 mm so that a centred 5 mm slice
  shows the nominal contrast by partial volume [derived, not from a drawing].
- Positions and sizes of the insert blocks (the ramp block 120 × 14 mm, the bars'
  x and y extents, the resolution block, the slice-5 grid pitch and bar width, the
  start of the interior 24 mm before slice 1) are [approx: read off the guidance's
  figures]; analyses must find inserts from the image and use these numbers only as a
  model to search near, never as fixed pixel coordinates.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

FloatArray = np.ndarray

# --- numbers of the protocol and the tests (see module docstring for sources) ---
LARGE_INNER_DIAMETER_MM = 190.0
LARGE_INNER_LENGTH_MM = 148.0
MEDIUM_INNER_DIAMETER_MM = 165.0
MEDIUM_INNER_LENGTH_MM = 134.0

SLICE_COUNT = 11
SLICE_PITCH_MM = 10.0  # 5 mm slices, 5 mm gaps
NOMINAL_SLICE_THICKNESS_MM = 5.0
UNIFORM_SLICE = 7  # PIU, ghosting, SNR
GRID_SLICE = 5
LCD_SLICES = (8, 9, 10, 11)
LCD_CONTRASTS: dict[int, float] = {8: 0.014, 9: 0.025, 10: 0.036, 11: 0.051}
LCD_SPOKES = 10
LCD_RING_RADII_MM = (12.5, 25.0, 38.0)
LCD_LARGEST_DIAMETER_MM = 7.0
LCD_SMALLEST_DIAMETER_MM = 1.5
LCD_FIRST_SPOKE_ANGLE_DEG = -90.0  # spoke 1 at 12 o'clock [approx]
LCD_SPOKE_STEP_DEG = 36.0  # clockwise on screen (towards +x from -y)
LCD_SHEET_RADIUS_MM = 44.0  # [approx]

HOLE_SIZES_MM = (1.1, 1.0, 0.9)
RAMP_SLOPE = 0.1  # 10:1 [C]
RAMP_SLOT_WIDTH_MM = 1.0  # [C]
WEDGE_SLOPE = 1.0  # 45° [C]

PIU_ROI_AREA_CM2 = {"large": 200.0, "medium": 160.0}  # [C] STANDARDS.md C.1 #5
PIU_SMALL_ROI_AREA_CM2 = 1.0  # [C]
GHOST_ROI_AREA_CM2 = 10.0  # [C] elliptical, 4:1
GHOST_ROI_ASPECT = 4.0  # [C]


def lcd_spoke_diameters_mm() -> tuple[float, ...]:
    """Disc diameter of spokes 1..10: linear from 7.0 to 1.5 mm."""
    d = np.linspace(LCD_LARGEST_DIAMETER_MM, LCD_SMALLEST_DIAMETER_MM, LCD_SPOKES)
    return tuple(float(round(v, 3)) for v in d)


class Profile(Protocol):
    """A slice profile: ``cdf(dz)`` is the fraction of the slice's sensitivity lying
    below ``dz`` mm from the slice centre (0 → 1, non-decreasing); it is 0 below
    ``-half_extent`` and 1 above ``half_extent``."""

    @property
    def half_extent(self) -> float: ...

    def cdf(self, dz: FloatArray) -> FloatArray: ...


@dataclass(frozen=True)
class SliceProfile:
    """A rectangular slice of FWHM ``thickness_mm`` with Gaussian-blurred edges
    (``edge_sigma_mm``), normalised to unit area. Its FWHM equals ``thickness_mm``
    while the edge blur is small against the thickness (σ < T/4: error < 0.01 %)."""

    thickness_mm: float = NOMINAL_SLICE_THICKNESS_MM
    edge_sigma_mm: float = 0.0

    @property
    def half_extent(self) -> float:
        return self.thickness_mm / 2 + 8 * self.edge_sigma_mm

    def cdf(self, dz: FloatArray) -> FloatArray:
        t = self.thickness_mm
        u = np.asarray(dz, dtype=float)
        if self.edge_sigma_mm <= 0:
            return np.clip((u + t / 2) / t, 0.0, 1.0)
        return (
            _int_phi(u + t / 2, self.edge_sigma_mm) - _int_phi(u - t / 2, self.edge_sigma_mm)
        ) / t

    def density(self, dz: FloatArray) -> FloatArray:
        u = np.asarray(dz, dtype=float)
        t, s = self.thickness_mm, self.edge_sigma_mm
        if s <= 0:
            return ((u >= -t / 2) & (u < t / 2)).astype(float) / t
        return (_phi((u + t / 2) / s) - _phi((u - t / 2) / s)) / t


@dataclass(frozen=True)
class PointProfile:
    """The degenerate profile of a point evaluation (a step at 0)."""

    @property
    def half_extent(self) -> float:
        return 0.0

    def cdf(self, dz: FloatArray) -> FloatArray:
        return (np.asarray(dz, dtype=float) >= 0).astype(float)


def _phi(v: FloatArray) -> FloatArray:
    # imported here: the ACR MRI analyses import this module for its geometry, and
    # scipy.special would cost them about 0.1 s of start-up (issue 15)
    from scipy.special import erf

    return 0.5 * (1.0 + erf(np.asarray(v) / np.sqrt(2.0)))


def _int_phi(v: FloatArray, s: float) -> FloatArray:
    """∫_{-∞}^{v} Φ(t/s) dt = v Φ(v/s) + s φ(v/s)."""
    w = np.asarray(v, dtype=float) / s
    return v * _phi(w) + s * np.exp(-0.5 * w * w) / np.sqrt(2 * np.pi)


# --- features -------------------------------------------------------------------


@dataclass(frozen=True)
class Feature(ABC):
    """A region where the material differs from the fill; subclasses give the
    in-plane support and the z interval (which may depend on x, y)."""

    delta: float

    @abstractmethod
    def support(self, x: FloatArray, y: FloatArray) -> FloatArray:
        """Fraction (0–1) of the in-plane point inside the feature."""

    @abstractmethod
    def z_interval(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The feature's z extent ``(z0, z1)`` at each in-plane point."""

    def bbox(self) -> tuple[float, float, float, float]:
        """``(x0, x1, y0, y1)`` containing the in-plane support (to skip far points)."""
        x0, x1 = getattr(self, "x0", -np.inf), getattr(self, "x1", np.inf)
        y0, y1 = getattr(self, "y0", -np.inf), getattr(self, "y1", np.inf)
        return float(x0), float(x1), float(y0), float(y1)

    def z_bounds(self) -> tuple[float, float]:
        """A z range that contains the feature (used to skip far features)."""
        z0 = getattr(self, "z0", None)
        z1 = getattr(self, "z1", None)
        if z0 is not None and z1 is not None:
            return float(z0), float(z1)
        return -np.inf, np.inf

    def weight(
        self, x: FloatArray, y: FloatArray, z_centre: FloatArray | float, profile: Profile
    ) -> FloatArray:
        """Fraction of a slice centred at ``z_centre`` that lies inside the feature."""
        inside = self.support(x, y)
        z0, z1 = self.z_interval(x, y)
        w = profile.cdf(z1 - z_centre) - profile.cdf(z0 - z_centre)
        return np.where(inside & (z1 > z0), w, 0.0)


@dataclass(frozen=True)
class Box(Feature):
    x0: float = 0.0
    x1: float = 0.0
    y0: float = 0.0
    y1: float = 0.0
    z0: float = 0.0
    z1: float = 0.0

    def support(self, x: FloatArray, y: FloatArray) -> FloatArray:
        return (x >= self.x0) & (x < self.x1) & (y >= self.y0) & (y < self.y1)

    def z_interval(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        full = np.broadcast_to(np.float64(0), np.broadcast(x, y).shape)
        return full + self.z0, full + self.z1


@dataclass(frozen=True)
class Disc(Feature):
    cx: float = 0.0
    cy: float = 0.0
    radius: float = 0.0
    z0: float = 0.0
    z1: float = 0.0

    def bbox(self) -> tuple[float, float, float, float]:
        r = self.radius
        return self.cx - r, self.cx + r, self.cy - r, self.cy + r

    def support(self, x: FloatArray, y: FloatArray) -> FloatArray:
        return (x - self.cx) ** 2 + (y - self.cy) ** 2 < self.radius**2

    def z_interval(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        full = np.broadcast_to(np.float64(0), np.broadcast(x, y).shape)
        return full + self.z0, full + self.z1


@dataclass(frozen=True)
class Ramp(Feature):
    """A solution-filled slot on the plane ``z = z_centre + slope * x`` (1 mm wide,
    measured normal to that plane), ``y0..y1`` deep in the image: in a slice of
    thickness T it shows as a strip 10·T long (slope 1/10)."""

    x0: float = 0.0
    x1: float = 0.0
    y0: float = 0.0
    y1: float = 0.0
    z_centre: float = 0.0
    slope: float = RAMP_SLOPE
    width_mm: float = RAMP_SLOT_WIDTH_MM

    def z_bounds(self) -> tuple[float, float]:
        ext = abs(self.slope) * max(abs(self.x0), abs(self.x1)) + self.width_mm
        return self.z_centre - ext, self.z_centre + ext

    def support(self, x: FloatArray, y: FloatArray) -> FloatArray:
        return (x >= self.x0) & (x < self.x1) & (y >= self.y0) & (y < self.y1)

    def z_interval(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        zc = self.z_centre + self.slope * np.broadcast_to(x, np.broadcast(x, y).shape)
        half = 0.5 * self.width_mm * np.sqrt(1.0 + self.slope**2)  # vertical extent
        return zc - half, zc + half


@dataclass(frozen=True)
class Wedge(Feature):
    """One 45° plastic wedge making one bar: at height ``z`` the bar reaches from
    ``y_start`` down to ``y_ref + sign * (z - z_cross)``; the wedge block spans
    ``z_cross ± half_depth``."""

    x0: float = 0.0
    x1: float = 0.0
    y_start: float = 0.0
    y_ref: float = 0.0
    z_cross: float = 0.0
    sign: float = 1.0
    half_depth: float = 7.0

    def z_bounds(self) -> tuple[float, float]:
        return self.z_cross - self.half_depth, self.z_cross + self.half_depth

    def bbox(self) -> tuple[float, float, float, float]:
        return self.x0, self.x1, self.y_start, np.inf

    def support(self, x: FloatArray, y: FloatArray) -> FloatArray:
        return (x >= self.x0) & (x < self.x1) & (y >= self.y_start)

    def z_interval(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        yb = np.broadcast_to(y, np.broadcast(x, y).shape).astype(float)
        lo = np.full(yb.shape, self.z_cross - self.half_depth)
        hi = np.full(yb.shape, self.z_cross + self.half_depth)
        # plastic where y <= y_ref + sign (z - z_cross)  <=>  sign z >= sign z_cross + (y - y_ref)
        edge = self.z_cross + self.sign * (yb - self.y_ref)
        if self.sign > 0:
            lo = np.maximum(lo, edge)
        else:
            hi = np.minimum(hi, edge)
        return lo, hi


@dataclass(frozen=True)
class WedgePair:
    """The two bars at the top of slice 1 (or 11). The left bar (smaller x) grows
    and the right bar shrinks by d when the slice centre moves by +d along z, so
    ``left − right = 2 d`` and the slice position error is half the difference."""

    slice_number: int
    z_cross: float
    left: Wedge
    right: Wedge

    @property
    def bar_length_at_crossing_mm(self) -> float:
        return self.left.y_ref - self.left.y_start

    def features(self) -> tuple[Feature, ...]:
        return (self.left, self.right)


@dataclass(frozen=True)
class Grid(Feature):
    """Slice 5's plastic grid: bars ``bar_mm`` wide at ``pitch_mm`` inside a square."""

    half_width: float = 60.0
    pitch_mm: float = 15.0
    bar_mm: float = 2.0
    z0: float = 0.0
    z1: float = 0.0

    def bbox(self) -> tuple[float, float, float, float]:
        hw = self.half_width
        return -hw, hw, -hw, hw

    def support(self, x: FloatArray, y: FloatArray) -> FloatArray:
        hw = self.half_width
        inside = (np.abs(x) <= hw) & (np.abs(y) <= hw)
        on_x = (
            np.abs(((x + hw + self.bar_mm / 2) % self.pitch_mm) - self.bar_mm / 2) < self.bar_mm / 2
        )
        on_y = (
            np.abs(((y + hw + self.bar_mm / 2) % self.pitch_mm) - self.bar_mm / 2) < self.bar_mm / 2
        )
        return inside & (on_x | on_y)

    def z_interval(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        full = np.broadcast_to(np.float64(0), np.broadcast(x, y).shape)
        return full + self.z0, full + self.z1


@dataclass(frozen=True)
class HoleArray:
    """One 4 × 4 array of solution-filled holes in the resolution block.

    ``direction`` is "row" for the upper-left array (holes read along a row, i.e.
    right-left resolution) and "column" for the lower-right array."""

    hole_mm: float
    direction: str
    centres: tuple[tuple[float, float], ...]  # (x, y) of the 16 holes, row-major
    z0: float
    z1: float

    @property
    def rows(self) -> list[list[tuple[float, float]]]:
        """Hole centres grouped as they are read: 4 lines of 4 along ``direction``."""
        c = list(self.centres)
        lines = [c[4 * i : 4 * i + 4] for i in range(4)]  # rows (constant y)
        if self.direction == "row":
            return lines
        return [[lines[j][i] for j in range(4)] for i in range(4)]  # columns

    def features(self) -> tuple[Feature, ...]:
        return tuple(
            Disc(delta=1.0, cx=cx, cy=cy, radius=self.hole_mm / 2, z0=self.z0, z1=self.z1)
            for cx, cy in self.centres
        )


@dataclass(frozen=True)
class LcdDisc:
    slice_number: int
    spoke: int  # 1..10, 1 the largest
    ring: int  # 1..3, 1 the innermost
    centre: tuple[float, float]  # (x, y) mm, phantom frame
    diameter_mm: float
    contrast: float  # nominal, relative to the fill, for a centred 5 mm slice


@dataclass(frozen=True)
class AcrPhantom:
    """One ACR MRI phantom: interior cylinder plus its inserts (see module docstring)."""

    name: str
    inner_diameter_mm: float
    inner_length_mm: float
    z_start_mm: float  # interior start along z (slice 1 is at 0)
    inplane_scale: float  # insert positions relative to the large phantom
    features: tuple[Feature, ...] = field(default=(), repr=False)
    ramps: tuple[Ramp, Ramp] | None = field(default=None, repr=False)
    ramp_block: Box | None = field(default=None, repr=False)
    wedges: tuple[WedgePair, ...] = field(default=(), repr=False)
    hole_arrays: tuple[HoleArray, ...] = field(default=(), repr=False)
    grid: Grid | None = field(default=None, repr=False)
    lcd_discs: tuple[LcdDisc, ...] = field(default=(), repr=False)

    @property
    def radius_mm(self) -> float:
        return self.inner_diameter_mm / 2

    @property
    def z_range_mm(self) -> tuple[float, float]:
        return self.z_start_mm, self.z_start_mm + self.inner_length_mm

    @property
    def piu_roi_area_cm2(self) -> float:
        return PIU_ROI_AREA_CM2["medium" if self.name == "medium" else "large"]

    @property
    def ghost_roi_area_cm2(self) -> float:
        return GHOST_ROI_AREA_CM2

    @staticmethod
    def slice_z_mm(n: int) -> float:
        """Centre of slice ``n`` (1..11) of the ACR protocol along the phantom axis."""
        if not 1 <= n <= SLICE_COUNT:
            raise ValueError(f"ACR slice number {n} is outside 1..{SLICE_COUNT}")
        return (n - 1) * SLICE_PITCH_MM

    def lcd_slice_features(self) -> tuple[Feature, ...]:
        out: list[Feature] = []
        for s in LCD_SLICES:
            zc = self.slice_z_mm(s)
            t = LCD_CONTRASTS[s] * NOMINAL_SLICE_THICKNESS_MM
            out.append(
                Disc(
                    delta=-1.0,
                    cx=0.0,
                    cy=0.0,
                    radius=LCD_SHEET_RADIUS_MM * self.inplane_scale,
                    z0=zc - t / 2,
                    z1=zc + t / 2,
                )
            )
            out.extend(
                Disc(
                    delta=1.0,
                    cx=d.centre[0],
                    cy=d.centre[1],
                    radius=d.diameter_mm / 2,
                    z0=zc - t / 2,
                    z1=zc + t / 2,
                )
                for d in self.lcd_discs
                if d.slice_number == s
            )
        return tuple(out)

    def all_features(self) -> tuple[Feature, ...]:
        return self.features

    def slice_signal(
        self, x: FloatArray, y: FloatArray, z_centre: FloatArray | float, profile: Profile
    ) -> FloatArray:
        """Relative signal of a slice centred at ``z_centre`` with ``profile``."""
        x, y, zc = np.broadcast_arrays(
            np.asarray(x, dtype=float),
            np.asarray(y, dtype=float),
            np.asarray(z_centre, dtype=float),
        )
        shape = x.shape
        x, y, zc = x.ravel(), y.ravel(), zc.ravel()
        inside = x**2 + y**2 < self.radius_mm**2
        z0, z1 = self.z_range_mm
        sig = np.where(inside, profile.cdf(z1 - zc) - profile.cdf(z0 - zc), 0.0)
        zmin = float(zc.min(initial=0.0)) - profile.half_extent
        zmax = float(zc.max(initial=0.0)) + profile.half_extent
        # The points in x order, once: a feature's bounding box is then a slice of it
        # (two binary searches) instead of five comparisons over every point; the same
        # points, in the same (ascending) order, so the same sums.
        order = np.argsort(x, kind="stable")
        xs = x[order]
        for f in self.features:
            b0, b1 = f.z_bounds()
            if b1 < zmin or b0 > zmax:
                continue
            bx0, bx1, by0, by1 = f.bbox()
            cand = order[np.searchsorted(xs, bx0, "left"):np.searchsorted(xs, bx1, "right")]
            yc = y[cand]
            idx = np.sort(cand[(yc >= by0) & (yc <= by1) & inside[cand]])
            if idx.size:
                sig[idx] += f.delta * f.weight(x[idx], y[idx], zc[idx], profile)
        return np.clip(sig, 0.0, None).reshape(shape)

    def signal_at(self, x: FloatArray, y: FloatArray, z: FloatArray | float) -> FloatArray:
        """Relative signal at points (1 fill solution, 0 plastic or outside)."""
        return self.slice_signal(x, y, z, PointProfile())

    def scaled(self, **changes: object) -> AcrPhantom:
        return replace(self, **changes)  # type: ignore[arg-type]


def _build(name: str, diameter: float, length: float, z_start: float) -> AcrPhantom:
    s = diameter / LARGE_INNER_DIAMETER_MM  # insert positions scale with the bore
    feats: list[Feature] = []
    # Slice 1 (z = 0): ramp block in the middle, 1 mm slots crossing at x = 0, z = 0.
    block = Box(delta=-1.0, x0=-60 * s, x1=60 * s, y0=-7.0, y1=7.0, z0=-7.0, z1=7.0)
    upper = Ramp(
        delta=1.0, x0=-60 * s, x1=60 * s, y0=-5.0, y1=-2.0, z_centre=0.0, slope=+RAMP_SLOPE
    )
    lower = Ramp(delta=1.0, x0=-60 * s, x1=60 * s, y0=2.0, y1=5.0, z_centre=0.0, slope=-RAMP_SLOPE)
    feats += [block, upper, lower]
    # Slices 1 and 11: crossed 45° wedges hanging as two 5 mm bars (1 mm apart) at the top.
    wedges = []
    for n in (1, 11):
        zc = AcrPhantom.slice_z_mm(n)
        y_start, y_ref = -88.0 * s, -70.0 * s
        left = Wedge(
            delta=-1.0, x0=-5.5, x1=-0.5, y_start=y_start, y_ref=y_ref, z_cross=zc, sign=+1.0
        )
        right = Wedge(
            delta=-1.0, x0=0.5, x1=5.5, y_start=y_start, y_ref=y_ref, z_cross=zc, sign=-1.0
        )
        wedges.append(WedgePair(n, zc, left, right))
        feats += [left, right]
    # Slice 1: resolution block with three pairs of hole arrays (1.1, 1.0, 0.9 mm).
    feats.append(Box(delta=-1.0, x0=-45 * s, x1=45 * s, y0=15 * s, y1=45 * s, z0=-7.0, z1=7.0))
    arrays = []
    for d, xc in zip(HOLE_SIZES_MM, (-26.0 * s, 0.0, 24.0 * s), strict=True):
        yc = 30.0 * s
        p = 2 * d
        ul = tuple(
            (xc - 8 * d + d + p * i, yc - 8 * d + d + p * j) for j in range(4) for i in range(4)
        )
        lr = tuple((xc + d + p * i, yc + d + p * j) for j in range(4) for i in range(4))
        for direction, centres in (("row", ul), ("column", lr)):
            arr = HoleArray(d, direction, centres, -7.0, 7.0)
            arrays.append(arr)
            feats += list(arr.features())
    # Slice 5: grid plate.
    g = AcrPhantom.slice_z_mm(GRID_SLICE)
    grid = Grid(
        delta=-1.0, half_width=60.0 * s, pitch_mm=15.0 * s, bar_mm=2.0, z0=g - 4.0, z1=g + 4.0
    )
    feats.append(grid)
    # Slices 8-11: low-contrast discs.
    diam = lcd_spoke_diameters_mm()
    discs = []
    for sl in LCD_SLICES:
        for k in range(LCD_SPOKES):
            a = np.deg2rad(LCD_FIRST_SPOKE_ANGLE_DEG + LCD_SPOKE_STEP_DEG * k)
            for r_i, r in enumerate(LCD_RING_RADII_MM):
                discs.append(
                    LcdDisc(
                        sl,
                        k + 1,
                        r_i + 1,
                        (float(r * s * np.cos(a)), float(r * s * np.sin(a))),
                        diam[k],
                        LCD_CONTRASTS[sl],
                    )
                )
    ph = AcrPhantom(
        name,
        diameter,
        length,
        z_start,
        s,
        ramps=(upper, lower),
        ramp_block=block,
        wedges=tuple(wedges),
        hole_arrays=tuple(arrays),
        grid=grid,
        lcd_discs=tuple(discs),
    )
    return replace(ph, features=tuple(feats) + ph.lcd_slice_features())


# The interior starts 24 mm before slice 1, so the 11 slices (100 mm) sit in the
# middle of the 148 mm interior [approx]; the medium phantom likewise.
ACR_LARGE = _build("large", LARGE_INNER_DIAMETER_MM, LARGE_INNER_LENGTH_MM, -24.0)
ACR_MEDIUM = _build("medium", MEDIUM_INNER_DIAMETER_MM, MEDIUM_INNER_LENGTH_MM, -17.0)

PHANTOMS = {"large": ACR_LARGE, "medium": ACR_MEDIUM}


def phantom(name: str = "large") -> AcrPhantom:
    """``"large"`` or ``"medium"``."""
    if name not in PHANTOMS:
        raise ValueError(f"unknown ACR phantom {name!r}; known: large, medium")
    return PHANTOMS[name]

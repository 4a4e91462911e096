"""The ACR CT accreditation phantom (Gammex 464) as geometry in mm.

Phantom frame: ``u`` runs across the image to the right (the 3 o'clock side,
image columns), ``v`` down the image (6 o'clock, image rows), ``w`` along the
phantom axis from the centre of module 1 towards module 4. Angles are degrees
from ``+u`` towards ``+v`` — clockwise on screen, 0° at 3 o'clock and −90° at
12 o'clock (the convention pylinac uses, so its published angles read
directly).

Numbers and where they come from (STANDARDS.md B.1):

- four modules, each 40 mm deep and 200 mm in diameter [C] (ACR CT phantom
  testing instructions): module 1 CT number / slice width / alignment,
  module 2 low contrast, module 3 uniformity, noise and distance accuracy,
  module 4 high-contrast (spatial) resolution;
- module 1 inserts 25 mm across, read with 10 mm ROIs 63 mm from the centre,
  at the angles of pylinac's ``acr.py`` [C for the ROI placement in pylinac];
- module 3 uniformity ROIs of 11 mm radius, 66 mm from the centre, and the
  centre ROI [C in pylinac];
- module 2: the 25 mm rod read with a 6 mm ROI 60 mm from the centre at
  12 o'clock, background ROI at −115° [C in pylinac];
- module 4: bar patterns of 4, 5, 6, 7, 8, 9, 10, 12 lp/cm, 70 mm from the
  centre at pylinac's angles [C in pylinac].

What scanbench models without a primary source [U] (the analyses locate each
feature from the image and use these only as the places to look): the nominal
CT numbers of the virtual phantom's materials (the middle of the ACR ranges,
air −1000, water 0), the module 2 background (90 HU) and rod contrast
(+6 HU), the sizes and layout of the smaller module 2 rods, the slice-width
ramps (two thin ramps 45 mm above and below the centre rising 0.5 mm in z per
mm across — "each wire 0.5 mm"), the bar-pattern squares (15 mm, bars of
+1000 HU), and the module 3 distance-accuracy BBs (two 1 mm BBs 100 mm
apart on the horizontal axis).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NAME = "ACR CT 464"
RADIUS_MM = 100.0
MODULE_DEPTH_MM = 40.0
# centre of module k (1..4) on the w axis: module 1 at 0
MODULE_CENTRES_MM: dict[int, float] = {1: 0.0, 2: 40.0, 3: 80.0, 4: 120.0}
LENGTH_MM = 4 * MODULE_DEPTH_MM
W_RANGE_MM = (-MODULE_DEPTH_MM / 2, 3.5 * MODULE_DEPTH_MM)
MODULE_TITLES: dict[int, str] = {
    1: "module 1 (CT number, slice width)",
    2: "module 2 (low contrast)",
    3: "module 3 (uniformity, noise, distance)",
    4: "module 4 (high-contrast resolution)",
}
BACKGROUND_HU = 0.0


@dataclass(frozen=True)
class Insert:
    """A cylinder parallel to the axis through its whole module."""

    name: str
    angle_deg: float
    distance_mm: float
    diameter_mm: float
    hu: float

    @property
    def uv(self) -> tuple[float, float]:
        return polar(self.angle_deg, self.distance_mm)


def polar(angle_deg: float, distance_mm: float) -> tuple[float, float]:
    """Phantom-frame ``(u, v)`` of a point ``distance_mm`` from the axis at ``angle_deg``."""
    a = math.radians(angle_deg)
    return distance_mm * math.cos(a), distance_mm * math.sin(a)


# ---------------------------------------------------------------- module 1
INSERT_DISTANCE_MM = 63.0
INSERT_DIAMETER_MM = 25.0
HU_ROI_RADIUS_MM = 10.0
MATERIALS: tuple[Insert, ...] = (
    Insert("bone", -45.0, INSERT_DISTANCE_MM, INSERT_DIAMETER_MM, 910.0),
    Insert("air", 45.0, INSERT_DISTANCE_MM, INSERT_DIAMETER_MM, -1000.0),
    Insert("acrylic", 135.0, INSERT_DISTANCE_MM, INSERT_DIAMETER_MM, 122.0),
    Insert("water", 180.0, INSERT_DISTANCE_MM, INSERT_DIAMETER_MM, 0.0),
    Insert("polyethylene", -135.0, INSERT_DISTANCE_MM, INSERT_DIAMETER_MM, -95.0),
)
# slice-width ramps: thin strips at v = ±RAMP_V_MM, |u| <= RAMP_HALF_LENGTH_MM, whose
# w position rises RAMP_DZ_PER_MM mm per mm of u; the FWHM of the strip's profile along u
# times RAMP_DZ_PER_MM is the slice's FWHM along z.
RAMP_V_MM = (-45.0, 45.0)
RAMP_HALF_LENGTH_MM = 20.0
RAMP_DZ_PER_MM = 0.5
RAMP_WIDTH_MM = 1.0  # half-width (v) of the band the analysis averages across
# The ramps are thin wires, far narrower than a pixel: the virtual scanner draws them as
# analytic line sources (HU·mm² each), in segments RAMP_SEGMENT_MM long along w.
RAMP_STRENGTH_HU_MM2 = 10000.0
RAMP_SEGMENT_MM = 0.05

# ---------------------------------------------------------------- module 2
LOW_CONTRAST_BACKGROUND_HU = 90.0
LOW_CONTRAST_DELTA_HU = 6.0
LOW_CONTRAST_ROD = Insert("25 mm rod", -90.0, 60.0, 25.0,
                          LOW_CONTRAST_BACKGROUND_HU + LOW_CONTRAST_DELTA_HU)
LOW_CONTRAST_ROI_RADIUS_MM = 6.0
LOW_CONTRAST_BACKGROUND_ANGLE_DEG = -115.0
# groups of four rods (diameter mm, angle of the group centre)
LOW_CONTRAST_GROUPS: tuple[tuple[float, float], ...] = (
    (6.0, -30.0), (5.0, 30.0), (4.0, 90.0), (3.0, 150.0), (2.0, 210.0))


def low_contrast_rods() -> tuple[Insert, ...]:
    rods = [LOW_CONTRAST_ROD]
    for d, a in LOW_CONTRAST_GROUPS:
        step = math.degrees(2.0 * d / 60.0)
        for k in range(4):
            rods.append(Insert(f"{d:g} mm rod {k + 1}", a + (k - 1.5) * step, 60.0, d,
                               LOW_CONTRAST_BACKGROUND_HU + LOW_CONTRAST_DELTA_HU))
    return tuple(rods)


# ---------------------------------------------------------------- module 3
UNIFORMITY_ROI_DISTANCE_MM = 66.0
UNIFORMITY_ROI_RADIUS_MM = 11.0
UNIFORMITY_POSITIONS: dict[str, float] = {"12 o'clock": -90.0, "3 o'clock": 0.0,
                                          "6 o'clock": 90.0, "9 o'clock": 180.0}
DISTANCE_BBS_UV: tuple[tuple[float, float], ...] = ((-50.0, 0.0), (50.0, 0.0))
DISTANCE_NOMINAL_MM = 100.0
BB_DIAMETER_MM = 1.0
BB_HU = 2500.0

# ---------------------------------------------------------------- module 4
BAR_DISTANCE_MM = 70.0
BAR_SQUARE_MM = 15.0
BAR_HU = 1000.0
# lp/cm -> angle (pylinac acr.py)
BAR_PATTERNS: dict[float, float] = {4.0: -135.0, 5.0: 180.0, 6.0: 135.0, 7.0: 90.0,
                                    8.0: 45.0, 9.0: 0.0, 10.0: -45.0, 12.0: -90.0}


def line_sources() -> list[tuple[float, float, float, float, float]]:
    """The slice-width ramps as the virtual scanner's line sources (u, v, w_lo, w_hi,
    HU·mm²): short segments along the wire, each at the u where the ramp crosses its w."""
    out = []
    w_half = RAMP_HALF_LENGTH_MM * RAMP_DZ_PER_MM
    n = round(2 * w_half / RAMP_SEGMENT_MM)
    for v0 in RAMP_V_MM:
        for k in range(n):
            lo = -w_half + k * RAMP_SEGMENT_MM
            wc = lo + RAMP_SEGMENT_MM / 2
            out.append((wc / RAMP_DZ_PER_MM, v0, MODULE_CENTRES_MM[1] + lo,
                        MODULE_CENTRES_MM[1] + lo + RAMP_SEGMENT_MM * (1 - 1e-6),
                        RAMP_STRENGTH_HU_MM2))
    return out


# ---------------------------------------------------------------- the HU map
def hu_at(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Nominal CT number (HU) at phantom-frame points (mm); air (−1000) outside."""
    u, v, w = np.broadcast_arrays(np.asarray(u, float), np.asarray(v, float),
                                  np.asarray(w, float))
    out = np.full(u.shape, -1000.0)
    for w0 in np.unique(w):
        sel = w == w0
        if sel.all():
            return _plane(u, v, float(w0))
        out[sel] = _plane(u[sel], v[sel], float(w0))
    return out


def _plane(u: np.ndarray, v: np.ndarray, w: float) -> np.ndarray:
    """The HU map on one plane ``w`` (the virtual scanner renders plane by plane)."""
    out = np.full(u.shape, -1000.0)
    if not W_RANGE_MM[0] <= w <= W_RANGE_MM[1]:
        return out
    module = min(math.floor((w + MODULE_DEPTH_MM / 2) / MODULE_DEPTH_MM) + 1, 4)
    r2 = u * u + v * v
    inside = r2 <= RADIUS_MM**2
    out[inside] = LOW_CONTRAST_BACKGROUND_HU if module == 2 else BACKGROUND_HU
    if module == 1:
        for ins in MATERIALS:
            _disk(out, u, v, r2, ins.uv, ins.diameter_mm / 2, ins.hu)
    elif module == 2:
        for rod in low_contrast_rods():
            _disk(out, u, v, r2, rod.uv, rod.diameter_mm / 2, rod.hu)
    elif module == 3:
        for bu, bv in DISTANCE_BBS_UV:
            _disk(out, u, v, r2, (bu, bv), BB_DIAMETER_MM / 2, BB_HU)
    else:
        ring = np.flatnonzero((r2 >= (BAR_DISTANCE_MM - 11.0) ** 2)
                              & (r2 <= (BAR_DISTANCE_MM + 11.0) ** 2))
        uu, vv = u.ravel()[ring], v.ravel()[ring]
        flat = out.ravel()
        for lp_cm, angle in BAR_PATTERNS.items():
            cu, cv = polar(angle, BAR_DISTANCE_MM)
            a = math.radians(angle)
            # bars run tangentially, so the bar profile is along the radius through the
            # pattern centre
            rad = (uu - cu) * math.cos(a) + (vv - cv) * math.sin(a)
            tan = -(uu - cu) * math.sin(a) + (vv - cv) * math.cos(a)
            half = BAR_SQUARE_MM / 2
            period = 10.0 / lp_cm
            sel = ((np.abs(rad) <= half) & (np.abs(tan) <= half)
                   & (np.mod(rad + half, period) < period / 2))
            flat[ring[sel]] = BAR_HU
        out = flat.reshape(out.shape)
    return out


def _disk(out: np.ndarray, u: np.ndarray, v: np.ndarray, r2: np.ndarray,
          centre: tuple[float, float], radius: float, hu: float) -> None:
    r_c = math.hypot(*centre)
    band = (r2 >= max(r_c - radius, 0.0) ** 2) & (r2 <= (r_c + radius) ** 2)
    if not band.any():
        return
    idx = np.flatnonzero(band)
    uu, vv = u.ravel()[idx], v.ravel()[idx]
    hit = (uu - centre[0]) ** 2 + (vv - centre[1]) ** 2 <= radius**2
    flat = out.reshape(-1)
    flat[idx[hit]] = hu

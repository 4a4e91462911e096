"""The CatPhan family (The Phantom Laboratory: 500, 503, 504, 600, 604) as geometry in mm.

Phantom frame as in :mod:`scanbench.phantoms.acr_ct`: ``u`` to the right of
the image, ``v`` down, ``w`` along the axis from the centre of the
sensitometry module (CTP404 / CTP732 / CTP401); angles in degrees from ``+u``
towards ``+v`` (clockwise on screen, −90° at 12 o'clock, as in pylinac).

Sources, with confidence (STANDARDS.md tags):

- module offsets from the sensitometry module per model, the insert ring
  (58.7 mm, 5 mm ROIs), the insert angles of CTP404 and CTP732 (50 % and 20 %
  bone), the nominal CT numbers, the 23° wire ramps (FWHM × 0.42 = slice
  width), the 50 mm square of geometry holes, the CTP528 line-pair ring
  (47 mm) and the CTP515 supra-slice rods (15, 9, 8, 7, 6, 5 mm at 50 mm) —
  as published in pylinac's ``ct.py`` and ``phantoms/CP604.py``, which cite
  the CatPhan manuals [P];
- relative electron densities (PMP 0.853, LDPE 0.945, polystyrene 0.998,
  acrylic 1.147, Delrin 1.363, Teflon 1.868) as tabulated in the CatPhan
  manuals [P]; the bone inserts' densities [U];
- what the virtual phantom adds without a source [U]: module backgrounds
  (CTP404 100 HU, CTP486 0 HU, CTP528 100 HU, CTP515 40 HU), a 150 mm module
  inside a 200 mm housing of 100 HU, ramps modelled as 1 mm strips, the
  CTP528 bar patterns as aluminium bars (+1000 HU) at 1–10 lp/cm, the bead's
  0.28 mm,
  CTP515 contrasts 1.0 %, 0.5 %, 0.3 % (10, 5, 3 HU) in three groups, and the
  CatPhan 500's CTP401 (four inserts at 90°) with the CatPhan 600's offsets;
- measured on a real scan (the Elekta XVI CatPhan slices in shared data): the CTP528
  groups' angles round the ring and the bars' 4.5 mm radial extent, the bead 20 mm
  below the centre.

The analyses find the phantom, its rotation (any angle, mirrored or not) and
each module from the image; these numbers are where they look and what the
virtual scanner draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HOUSING_RADIUS_MM = 100.0
MODULE_RADIUS_MM = 75.0
HOUSING_HU = 100.0
MODULE_DEPTH_MM = 20.0

INSERT_RING_MM = 58.7
INSERT_DIAMETER_MM = 12.2
HU_ROI_RADIUS_MM = 5.0
RAMP_DISTANCE_MM = 38.0
RAMP_ANGLE_DEG = 23.0  # wire ramps: slice width = FWHM along the ramp × tan(23°) = × 0.42
RAMP_TAN = math.tan(math.radians(RAMP_ANGLE_DEG))
RAMP_HALF_LENGTH_MM = 20.0
RAMP_WIDTH_MM = 1.0  # half-width of the band the analysis averages across
# The ramps are wires: the virtual scanner draws them as analytic line sources in
# segments RAMP_SEGMENT_MM long along w.
RAMP_STRENGTH_HU_MM2 = 10000.0
RAMP_SEGMENT_MM = 0.05
GEOMETRY_HOLES_UV: tuple[tuple[float, float], ...] = (
    (-25.0, -25.0), (25.0, -25.0), (25.0, 25.0), (-25.0, 25.0))
GEOMETRY_HOLE_DIAMETER_MM = 3.0
GEOMETRY_NOMINAL_MM = 50.0

UNIFORMITY_ROI_DISTANCE_MM = 50.0  # 25 mm inside the 75 mm module edge
UNIFORMITY_ROI_RADIUS_MM = 10.0
UNIFORMITY_POSITIONS: dict[str, float] = {"12 o'clock": -90.0, "3 o'clock": 0.0,
                                          "6 o'clock": 90.0, "9 o'clock": 180.0}

LINE_PAIR_RING_MM = 47.0
# CTP528: the bars' radial extent, and the centre angle of each group (1–10 lp/cm) in the
# phantom frame, measured on the Elekta XVI CatPhan slice in shared data (linepairs.dcm:
# half-maximum extent 4.25–4.75 mm; group centres from the half-maximum edges of the ring
# profile, after the sensitometry slice's rotation of −0.77°); pylinac's CTP528 region
# boundaries put groups 2–8 within 1° of these.
LINE_PAIR_BAR_LENGTH_MM = 4.5
LINE_PAIR_BAR_HU = 1000.0
LINE_PAIRS_PER_CM: tuple[float, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
LINE_PAIR_ANGLES_DEG: tuple[float, ...] = (25.5, 50.0, 74.5, 93.5, 111.5, 130.5, 147.5, 164.5,
                                           179.5, 194.5)
BEAD_UV = (0.0, 20.0)
BEAD_DIAMETER_MM = 0.28
# The bead is far smaller than a pixel: the virtual scanner draws it as an analytic line
# source (strength = excess HU × cross-section, HU·mm²) through the resolution module
# rather than through the sampled HU map; 1850 HU·mm² is a 0.28 mm bead of ~30000 HU.
BEAD_STRENGTH_HU_MM2 = 1850.0

LOW_CONTRAST_DIAMETERS_MM: tuple[float, ...] = (15.0, 9.0, 8.0, 7.0, 6.0, 5.0)
LOW_CONTRAST_ANGLES_DEG: tuple[float, ...] = (-87.4, -69.1, -52.7, -38.5, -25.1, -12.9)
LOW_CONTRAST_RING_MM = 50.0
# contrast level (%) -> rotation of the group from the 1.0 % group. The 0.5 % group lies
# 237° on (its 15, 9, 8 and 6 mm rods measured at 150°, 172°, 187° and 214° on the real
# Canon CTP515 slice in shared data, the 1.0 % group's 15 mm rod at 273°); the 0.3 % group,
# not seen there, is taken to fill the remaining third of the ring.
LOW_CONTRAST_LEVELS: dict[float, float] = {1.0: 0.0, 0.3: 120.0, 0.5: 240.0}


def polar(angle_deg: float, distance_mm: float) -> tuple[float, float]:
    a = math.radians(angle_deg)
    return distance_mm * math.cos(a), distance_mm * math.sin(a)


@dataclass(frozen=True)
class Material:
    name: str
    hu: float  # nominal CT number
    electron_density: float | None  # relative to water


AIR = Material("air", -1000.0, 0.001)
PMP = Material("pmp", -196.0, 0.853)
LDPE = Material("ldpe", -104.0, 0.945)
POLYSTYRENE = Material("polystyrene", -47.0, 0.998)
ACRYLIC = Material("acrylic", 115.0, 1.147)
DELRIN = Material("delrin", 365.0, 1.363)
TEFLON = Material("teflon", 1000.0, 1.868)
BONE_20 = Material("bone_20", 237.0, None)
BONE_50 = Material("bone_50", 725.0, None)


@dataclass(frozen=True)
class Insert:
    material: Material
    angle_deg: float
    distance_mm: float = INSERT_RING_MM
    diameter_mm: float = INSERT_DIAMETER_MM

    @property
    def uv(self) -> tuple[float, float]:
        return polar(self.angle_deg, self.distance_mm)


CTP404_INSERTS: tuple[Insert, ...] = (
    Insert(AIR, -90.0), Insert(PMP, -120.0), Insert(LDPE, 180.0), Insert(POLYSTYRENE, 120.0),
    Insert(ACRYLIC, 60.0), Insert(DELRIN, 0.0), Insert(TEFLON, -60.0), Insert(AIR, 90.0))
CTP732_INSERTS: tuple[Insert, ...] = (
    Insert(AIR, -90.0), Insert(PMP, -120.0), Insert(BONE_50, -150.0), Insert(LDPE, 180.0),
    Insert(POLYSTYRENE, 120.0), Insert(ACRYLIC, 60.0), Insert(BONE_20, 30.0),
    Insert(DELRIN, 0.0), Insert(TEFLON, -60.0), Insert(AIR, 90.0))
CTP401_INSERTS: tuple[Insert, ...] = (
    Insert(AIR, -90.0), Insert(TEFLON, 0.0), Insert(LDPE, 90.0), Insert(ACRYLIC, 180.0))


@dataclass(frozen=True)
class Module:
    """One module of a CatPhan: its kind, product name and centre on the w axis."""

    name: str  # product name, e.g. "CTP404"
    kind: str  # "sensitometry", "uniformity", "resolution", "low_contrast"
    w_mm: float
    background_hu: float
    inserts: tuple[Insert, ...] = ()


@dataclass(frozen=True)
class Model:
    name: str  # "CatPhan 504"
    modules: tuple[Module, ...] = field(default_factory=tuple)

    def module(self, kind: str) -> Module | None:
        for m in self.modules:
            if m.kind == kind:
                return m
        return None


def _sens(name: str, inserts: tuple[Insert, ...]) -> Module:
    return Module(name, "sensitometry", 0.0, 100.0, inserts)


MODELS: dict[str, Model] = {
    "503": Model("CatPhan 503", (
        _sens("CTP404", CTP404_INSERTS),
        Module("CTP486", "uniformity", -110.0, 0.0),
        Module("CTP528", "resolution", -30.0, 100.0))),
    "504": Model("CatPhan 504", (
        _sens("CTP404", CTP404_INSERTS),
        Module("CTP486", "uniformity", -65.0, 0.0),
        Module("CTP528", "resolution", 30.0, 100.0),
        Module("CTP515", "low_contrast", -30.0, 40.0))),
    "600": Model("CatPhan 600", (
        _sens("CTP404", CTP404_INSERTS),
        Module("CTP486", "uniformity", -160.0, 0.0),
        Module("CTP528", "resolution", -70.0, 100.0),
        Module("CTP515", "low_contrast", -110.0, 40.0))),
    "604": Model("CatPhan 604", (
        _sens("CTP732", CTP732_INSERTS),
        Module("CTP712", "uniformity", -80.0, 0.0),
        Module("CTP714", "resolution", 40.0, 100.0),
        Module("CTP515", "low_contrast", -40.0, 40.0))),
    "500": Model("CatPhan 500", (
        _sens("CTP401", CTP401_INSERTS),
        Module("CTP486", "uniformity", -160.0, 0.0),
        Module("CTP528", "resolution", -70.0, 100.0),
        Module("CTP515", "low_contrast", -110.0, 40.0))),
}


@dataclass(frozen=True)
class BarPattern:
    lp_per_cm: float
    n_bars: int
    angle_deg: float  # of the pattern centre on the ring

    @property
    def period_mm(self) -> float:
        return 10.0 / self.lp_per_cm

    @property
    def length_mm(self) -> float:
        return (self.n_bars - 0.5) * self.period_mm


def line_pair_patterns() -> tuple[BarPattern, ...]:
    """The CTP528 bar groups 1–10 lp/cm round the 47 mm ring (2 bars at 1 lp/cm, 3 at 2,
    4 at 3–5, 5 at 6–10: as counted on the real scan)."""
    out = []
    for f, angle in zip(LINE_PAIRS_PER_CM, LINE_PAIR_ANGLES_DEG, strict=True):
        n = 2 if f == 1 else 3 if f == 2 else 4 if f <= 5 else 5
        out.append(BarPattern(f, n, angle))
    return tuple(out)


def hu_at(u: np.ndarray, v: np.ndarray, w: np.ndarray, model: str = "504") -> np.ndarray:
    """Nominal CT number (HU) of a CatPhan at phantom-frame points (mm).

    Each module is ``MODULE_DEPTH_MM`` deep around its ``w_mm``; between modules the
    module cylinder holds the uniformity material; the housing runs 20 mm past the
    outermost modules.
    """
    u, v, w = np.broadcast_arrays(np.asarray(u, float), np.asarray(v, float),
                                  np.asarray(w, float))
    out = np.full(u.shape, -1000.0)
    for w0 in np.unique(w):
        sel = w == w0
        if sel.all():
            return _plane(u, v, float(w0), MODELS[model])
        out[sel] = _plane(u[sel], v[sel], float(w0), MODELS[model])
    return out


def hu_map(model: str) -> Any:
    """``hu_at`` of one CatPhan model, as the virtual scanner wants it (x, y, z)."""
    if model not in MODELS:
        raise ValueError(f"unknown CatPhan model {model!r}; known: {', '.join(MODELS)}")
    return lambda u, v, w: hu_at(u, v, w, model)


def _plane(u: np.ndarray, v: np.ndarray, w: float, mdl: Model) -> np.ndarray:
    ws = [m.w_mm for m in mdl.modules]
    lo, hi = min(ws) - MODULE_DEPTH_MM / 2 - 20.0, max(ws) + MODULE_DEPTH_MM / 2 + 20.0
    out = np.full(u.shape, -1000.0)
    if not lo <= w <= hi:
        return out
    r2 = u * u + v * v
    out[r2 <= HOUSING_RADIUS_MM**2] = HOUSING_HU
    core = r2 <= MODULE_RADIUS_MM**2
    out[core] = 0.0
    for m in mdl.modules:
        if abs(w - m.w_mm) > MODULE_DEPTH_MM / 2:
            continue
        out[core] = m.background_hu
        if m.kind == "sensitometry":
            _sensitometry(out, u, v, r2, m)
        elif m.kind == "resolution":
            _resolution(out, u, v, r2)
        elif m.kind == "low_contrast":
            for d, level, cu, cv in low_contrast_rods():
                _disk(out, u, v, r2, (cu, cv), d / 2, m.background_hu + level * 10.0)
    return out


def _disk(out: np.ndarray, u: np.ndarray, v: np.ndarray, r2: np.ndarray,
          centre: tuple[float, float], radius: float, hu: float) -> None:
    r_c = math.hypot(*centre)
    idx = np.flatnonzero((r2 >= max(r_c - radius, 0.0) ** 2) & (r2 <= (r_c + radius) ** 2))
    if idx.size == 0:
        return
    uu, vv = u.ravel()[idx], v.ravel()[idx]
    hit = (uu - centre[0]) ** 2 + (vv - centre[1]) ** 2 <= radius**2
    out.reshape(-1)[idx[hit]] = hu


def _sensitometry(out: np.ndarray, u: np.ndarray, v: np.ndarray, r2: np.ndarray,
                  m: Module) -> None:
    for ins in m.inserts:
        _disk(out, u, v, r2, ins.uv, ins.diameter_mm / 2, ins.material.hu)
    for hole in GEOMETRY_HOLES_UV:
        _disk(out, u, v, r2, hole, GEOMETRY_HOLE_DIAMETER_MM / 2, AIR.hu)


def _resolution(out: np.ndarray, u: np.ndarray, v: np.ndarray, r2: np.ndarray) -> None:
    ring = np.flatnonzero((r2 >= (LINE_PAIR_RING_MM - 9.0) ** 2)
                          & (r2 <= (LINE_PAIR_RING_MM + 9.0) ** 2))
    uu, vv = u.ravel()[ring], v.ravel()[ring]
    flat = out.reshape(-1)
    for p in line_pair_patterns():
        cu, cv = polar(p.angle_deg, LINE_PAIR_RING_MM)
        a = math.radians(p.angle_deg)
        tan = -(uu - cu) * math.sin(a) + (vv - cv) * math.cos(a)
        rad = (uu - cu) * math.cos(a) + (vv - cv) * math.sin(a)
        x = tan + p.length_mm / 2
        bars = ((np.abs(rad) <= LINE_PAIR_BAR_LENGTH_MM / 2) & (x >= 0)
                & (x <= p.length_mm) & (np.mod(x, p.period_mm) < p.period_mm / 2))
        flat[ring[bars]] = LINE_PAIR_BAR_HU


def line_sources(model: str = "504") -> list[tuple[float, float, float, float, float]]:
    """The bead and the four 23° wire ramps as the virtual scanner's line sources:
    (u, v, w_lo, w_hi, HU·mm²); each ramp in short segments along w."""
    mdl = MODELS[model]
    out = []
    m = mdl.module("resolution")
    if m is not None:
        out.append((BEAD_UV[0], BEAD_UV[1], m.w_mm - MODULE_DEPTH_MM / 2,
                    m.w_mm + MODULE_DEPTH_MM / 2, BEAD_STRENGTH_HU_MM2))
    s = mdl.module("sensitometry")
    if s is not None and s.name != "CTP401":
        w_half = RAMP_HALF_LENGTH_MM * RAMP_TAN
        n = round(2 * w_half / RAMP_SEGMENT_MM)
        for angle in (-90.0, 0.0, 90.0, 180.0):
            cu, cv = polar(angle, RAMP_DISTANCE_MM)
            a = math.radians(angle)
            tu, tv = -math.sin(a), math.cos(a)  # along the ramp (tangential)
            for k in range(n):
                lo = -w_half + k * RAMP_SEGMENT_MM
                along = (lo + RAMP_SEGMENT_MM / 2) / RAMP_TAN
                out.append((cu + along * tu, cv + along * tv, s.w_mm + lo,
                            s.w_mm + lo + RAMP_SEGMENT_MM * (1 - 1e-6), RAMP_STRENGTH_HU_MM2))
    return out


def low_contrast_rods() -> list[tuple[float, float, float, float]]:
    """(diameter mm, level %, u, v) of every CTP515 supra-slice rod."""
    rods = []
    for level, rot in LOW_CONTRAST_LEVELS.items():
        for d, a in zip(LOW_CONTRAST_DIAMETERS_MM, LOW_CONTRAST_ANGLES_DEG, strict=True):
            cu, cv = polar(a + rot, LOW_CONTRAST_RING_MM)
            rods.append((d, level, cu, cv))
    return rods

"""The NEMA / IEC body phantom (NEMA NU 2-2018 section 7, IEC 61675-1) as geometry in mm.

Phantom frame: origin at the centre of the sphere ring (the axis of the lung
insert) in the plane of the sphere centres. ``x`` runs across the phantom,
``y`` from the curved (anterior) side towards the flat (posterior) side, ``z``
along the phantom axis away from the lid the spheres hang from. When the
phantom lies on the table in the usual way the frame's axes point like DICOM
LPS ``x`` and ``y``.

Numbers and their confidence (STANDARDS.md A.5): sphere inner diameters
[C]; ring diameter 114.4 mm [U]; lung insert about 50 mm OD [U]. The body
outline (294 × 224 mm interior, a 147 mm half-circle joined to a flat side
with 77 mm corner radii), the 180 mm interior length and the sphere plane
70 mm inside the lid are the commonly drawn IEC dimensions [U]; scanbench's
analyses find the phantom, the sphere plane and the spheres from the image
and use these numbers only as a model to fit, never as coordinates.

Checked on the real reconstructions in ``shared/data/pet/nema-iq-test-recon``
(2.08 mm pixels): the lung axis lies half-way between the curved and the flat
wall (about 110 mm from each), so the half-circle's centre is 35 mm on the
flat side of it; the ring's sphere centres measure 57.2 ± 1 mm from the lung
axis; and, going round the ring from the 10 mm sphere at about −60°, the
sizes grow towards decreasing angle (anticlockwise on screen).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPHERE_DIAMETERS_MM: tuple[float, ...] = (10.0, 13.0, 17.0, 22.0, 28.0, 37.0)
SPHERE_RING_DIAMETER_MM = 114.4
SPHERE_RING_RADIUS_MM = SPHERE_RING_DIAMETER_MM / 2
SPHERE_WALL_MM = 1.0  # glass wall, no activity [U]
# Angle of each sphere centre on the ring, degrees from +x towards +y (so, in an
# image shown anterior-up, clockwise from the 3 o'clock position). The order
# around the ring is by size; the starting angle is the commonly drawn one [U].
SPHERE_ANGLES_DEG: tuple[float, ...] = (-60.0, -120.0, 180.0, 120.0, 60.0, 0.0)

LUNG_INSERT_OUTER_DIAMETER_MM = 51.0
LUNG_INSERT_INNER_DIAMETER_MM = 45.0

BODY_HALF_WIDTH_MM = 147.0  # radius of the curved (anterior) half
BODY_CORNER_RADIUS_MM = 77.0  # the posterior half: flat side 77 mm beyond the arc centre
# The half-circle's centre lies this far from the lung axis towards the flat side,
# which puts the lung axis half-way between the walls (147 + 77 = 224 mm; 112 each).
BODY_ARC_CENTRE_Y_MM = 35.0
BODY_INNER_LENGTH_MM = 180.0
SPHERE_PLANE_FROM_LID_MM = 70.0
BODY_Z_RANGE_MM = (-SPHERE_PLANE_FROM_LID_MM, BODY_INNER_LENGTH_MM - SPHERE_PLANE_FROM_LID_MM)
BODY_WALL_MM = 3.0  # acrylic [U]

# NU 2-2018 section 7.4: background ROIs of 37 mm on the sphere plane and at ±10, ±20 mm.
BACKGROUND_ROI_COUNT = 12
BACKGROUND_SLICE_OFFSETS_MM: tuple[float, ...] = (-20.0, -10.0, 0.0, 10.0, 20.0)
BACKGROUND_EDGE_MARGIN_MM = 15.0  # from the phantom edge and from any sphere [U]
LUNG_ROI_DIAMETER_MM = 30.0


@dataclass(frozen=True)
class Sphere:
    diameter_mm: float
    centre_mm: tuple[float, float, float]  # phantom frame (x, y, z)

    @property
    def radius_mm(self) -> float:
        return self.diameter_mm / 2

    @property
    def volume_ml(self) -> float:
        return 4.0 / 3.0 * np.pi * self.radius_mm**3 / 1000.0


def spheres() -> list[Sphere]:
    """The six spheres, smallest first, with centres in the phantom frame."""
    out = []
    for d, a in zip(SPHERE_DIAMETERS_MM, SPHERE_ANGLES_DEG, strict=True):
        t = np.deg2rad(a)
        out.append(Sphere(d, (SPHERE_RING_RADIUS_MM * np.cos(t),
                              SPHERE_RING_RADIUS_MM * np.sin(t), 0.0)))
    return out


def inside_body_xy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """True where (x, y) in mm, phantom frame, is inside the body's interior outline."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float) - BODY_ARC_CENTRE_Y_MM
    r = BODY_CORNER_RADIUS_MM
    c = BODY_HALF_WIDTH_MM - r  # x of the corner-circle centres
    upper = (y <= 0) & (x * x + y * y <= BODY_HALF_WIDTH_MM**2)
    lower = (y > 0) & (y <= r) & ((np.abs(x) <= c) | ((np.abs(x) - c) ** 2 + y * y <= r * r))
    return upper | lower


def inside_body(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=float)
    return inside_body_xy(x, y) & (z >= BODY_Z_RANGE_MM[0]) & (z <= BODY_Z_RANGE_MM[1])


def distance_to_body_edge_xy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Distance in mm from (x, y) inside the outline to the nearest point of the outline."""
    x = np.abs(np.asarray(x, dtype=float))
    y = np.asarray(y, dtype=float) - BODY_ARC_CENTRE_Y_MM
    r = BODY_CORNER_RADIUS_MM
    c = BODY_HALF_WIDTH_MM - r
    d_upper = BODY_HALF_WIDTH_MM - np.hypot(x, np.minimum(y, 0.0))
    d_corner = np.where(x > c, r - np.hypot(x - c, np.maximum(y, 0.0)), r - np.maximum(y, 0.0))
    return np.where(y <= 0, np.minimum(d_upper, d_corner), d_corner)


def inside_lung(x: np.ndarray, y: np.ndarray, z: np.ndarray, *, outer: bool = False) -> np.ndarray:
    """True inside the lung insert's fill (or its outer wall with ``outer``) over the body."""
    d = LUNG_INSERT_OUTER_DIAMETER_MM if outer else LUNG_INSERT_INNER_DIAMETER_MM
    z = np.asarray(z, dtype=float)
    return ((np.asarray(x) ** 2 + np.asarray(y) ** 2 <= (d / 2) ** 2)
            & (z >= BODY_Z_RANGE_MM[0]) & (z <= BODY_Z_RANGE_MM[1]))

"""Point sources for NEMA NU 2-2018 section 3 (spatial resolution), as geometry in mm.

NU 2 places sources at 1, 10 and 20 cm from the scanner axis (vertically
displaced) at the axial centre and at 3/8 of the axial FOV from it
(STANDARDS.md A.1, [P]). A capillary source is less than 1 mm long [U].
"""

from __future__ import annotations

from dataclasses import dataclass

# Transverse radii of the NU 2 positions, mm.
NEMA_RADII_MM: tuple[float, ...] = (10.0, 100.0, 200.0)
NEMA_AXIAL_FRACTION_FROM_CENTRE = 3.0 / 8.0


@dataclass(frozen=True)
class PointSource:
    centre_mm: tuple[float, float, float]  # scanner frame, LPS mm, origin on the axis
    extent_mm: float = 1.0  # physical size: a cube of this side

    @property
    def radius_from_axis_mm(self) -> float:
        x, y, _ = self.centre_mm
        return float((x * x + y * y) ** 0.5)


def nema_positions(axial_fov_mm: float) -> list[PointSource]:
    """The six NU 2 positions: 1, 10, 20 cm above the axis at the axial centre and at
    3/8 of the axial FOV from it. In LPS, 'up' (anterior) is -y."""
    out = []
    for z in (0.0, NEMA_AXIAL_FRACTION_FROM_CENTRE * axial_fov_mm):
        for r in NEMA_RADII_MM:
            out.append(PointSource((0.0, -r, z)))
    return out

"""A water-filled cylinder for daily CT QC (any diameter), geometry in mm as an HU map.

The phantom frame has its origin on the cylinder axis, at the middle of its
length; x, y transverse, z along the axis (the scanner's z when the phantom lies
on the table as usual). A real QC water phantom is a thin acrylic (PMMA) shell
filled with water; the shell is part of the geometry so that the analyses find
the phantom's outer edge as they would on a real scan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AIR_HU = -1000.0
WATER_HU = 0.0
PMMA_HU = 120.0  # acrylic at about 120 kVp (ACR 464 acrylic range +110..+135 HU, STANDARDS B.1)


@dataclass(frozen=True)
class WaterCylinder:
    """Water cylinder with an acrylic wall; ``diameter_mm`` is the outer diameter."""

    diameter_mm: float = 200.0
    length_mm: float = 200.0
    wall_mm: float = 4.0
    water_hu: float = WATER_HU
    wall_hu: float = PMMA_HU
    background_hu: float = AIR_HU

    def __post_init__(self) -> None:
        if not self.diameter_mm > 2 * self.wall_mm >= 0:
            raise ValueError(f"diameter {self.diameter_mm} mm must exceed twice the wall "
                             f"({self.wall_mm} mm)")
        if not self.length_mm > 0:
            raise ValueError(f"length must be positive, got {self.length_mm} mm")

    @property
    def radius_mm(self) -> float:
        return self.diameter_mm / 2.0

    @property
    def inner_radius_mm(self) -> float:
        return self.diameter_mm / 2.0 - self.wall_mm

    def hu_at(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """HU at phantom-frame points (mm), vectorised and broadcasting."""
        r2 = np.asarray(x, dtype=float) ** 2 + np.asarray(y, dtype=float) ** 2
        inside_z = np.abs(np.asarray(z, dtype=float)) <= self.length_mm / 2.0
        out = np.where(inside_z & (r2 <= self.radius_mm**2), self.wall_hu, self.background_hu)
        return np.where(inside_z & (r2 <= self.inner_radius_mm**2), self.water_hu, out)

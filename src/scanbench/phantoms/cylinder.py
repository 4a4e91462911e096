"""A uniform cylinder (the daily / EARL calibration phantom), geometry in mm."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class UniformCylinder:
    """Interior of a fillable cylinder with its axis along the scanner's z axis."""

    diameter_mm: float = 200.0
    length_mm: float = 200.0
    centre_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def volume_ml(self) -> float:
        return np.pi * (self.diameter_mm / 2) ** 2 * self.length_mm / 1000.0

    def inside(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        cx, cy, cz = self.centre_mm
        r2 = (np.asarray(x) - cx) ** 2 + (np.asarray(y) - cy) ** 2
        dz = np.abs(np.asarray(z) - cz)
        return (r2 <= (self.diameter_mm / 2) ** 2) & (dz <= self.length_mm / 2)

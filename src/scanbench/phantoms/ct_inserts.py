"""Resolution inserts for CT: a thin wire (or bead) and a circular edge, as HU maps in mm.

Both sit in a uniform cylinder (the insert's host, like the CatPhan CTP528 bead
or the CTP404 inserts), phantom frame as in :mod:`scanbench.phantoms.ct_water`.

- :class:`WireInsert` — a thin high-density wire along z (tungsten, 0.1–0.2 mm)
  at ``position_mm`` in the host: the point-spread function in every slice. A
  bead is the same object limited along z (``length_mm``).
- :class:`EdgeInsert` — a rod of ``insert_diameter_mm`` and ``insert_hu`` (e.g.
  teflon about +950 HU, acrylic +120 HU) whose circular edge gives the edge
  spread function of the task transfer function (AAPM TG-233).

A wire is far thinner than any pixel, so no grid renders it without aliasing:
:meth:`WireInsert.line_sources` gives it to the virtual scanner as a line of
known strength (HU above the host × cross-section, HU·mm²), imaged as that
strength times the PSF; its own transfer function 2·J1(πfd)/(πfd)
(:meth:`WireInsert.transfer`, above 0.99 up to 1.5 mm⁻¹ for d = 0.1 mm) is
left out of the image, so the image's MTF is the scanner's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from scanbench.phantoms.ct_water import AIR_HU, PMMA_HU, WATER_HU


def _host(x: np.ndarray, y: np.ndarray, z: np.ndarray, diameter_mm: float, length_mm: float,
          host_hu: float, wall_mm: float, wall_hu: float, background_hu: float
          ) -> tuple[np.ndarray, np.ndarray]:
    r2 = x**2 + y**2
    inside_z = np.abs(z) <= length_mm / 2.0
    out = np.where(inside_z & (r2 <= (diameter_mm / 2) ** 2), wall_hu, background_hu)
    out = np.where(inside_z & (r2 <= (diameter_mm / 2 - wall_mm) ** 2), host_hu, out)
    return out, inside_z


@dataclass(frozen=True)
class WireInsert:
    """A thin wire (or a bead, when ``length_mm`` is short) in a uniform host cylinder."""

    wire_diameter_mm: float = 0.1
    # Tungsten: μ about 70 /cm at 70 keV against 0.19 /cm for water, some 3.7e5 HU; once
    # blurred, a 0.1 mm wire peaks at a few thousand HU, as real wire scans do.
    wire_hu: float = 3.7e5
    position_mm: tuple[float, float] = (0.0, 0.0)
    wire_length_mm: float = 1000.0
    host_diameter_mm: float = 160.0
    host_length_mm: float = 150.0
    host_hu: float = WATER_HU
    wall_mm: float = 4.0
    wall_hu: float = PMMA_HU
    background_hu: float = AIR_HU

    def hu_at(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """The host cylinder's HU map (the wire itself: :meth:`line_sources`)."""
        x, y, z = (np.asarray(a, dtype=float) for a in (x, y, z))
        out, _inside_z = _host(x, y, z, self.host_diameter_mm, self.host_length_mm,
                               self.host_hu, self.wall_mm, self.wall_hu, self.background_hu)
        return out

    def line_sources(self) -> list[tuple[float, float, float, float, float]]:
        """The wire as ``(x, y, z_lo, z_hi, strength HU·mm²)`` for ``acquire(line_sources=...)``."""
        half = min(self.wire_length_mm, self.host_length_mm) / 2.0
        area = np.pi * (self.wire_diameter_mm / 2.0) ** 2
        return [(self.position_mm[0], self.position_mm[1], -half, half,
                 float((self.wire_hu - self.host_hu) * area))]

    def transfer(self, f_per_mm: np.ndarray) -> np.ndarray:
        """The wire cross-section's own transfer function, 2·J1(πfd)/(πfd)."""
        u = np.pi * np.asarray(f_per_mm, dtype=float) * self.wire_diameter_mm
        safe = np.where(u == 0, 1.0, u)
        return np.where(u == 0, 1.0, 2.0 * special.j1(safe) / safe)


@dataclass(frozen=True)
class EdgeInsert:
    """A cylindrical rod of uniform HU in a uniform host: a circular edge for the TTF."""

    insert_diameter_mm: float = 25.0
    insert_hu: float = 950.0  # teflon-like
    position_mm: tuple[float, float] = (0.0, 0.0)
    host_diameter_mm: float = 160.0
    host_length_mm: float = 150.0
    host_hu: float = WATER_HU
    wall_mm: float = 4.0
    wall_hu: float = PMMA_HU
    background_hu: float = AIR_HU

    def hu_at(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        x, y, z = (np.asarray(a, dtype=float) for a in (x, y, z))
        out, inside_z = _host(x, y, z, self.host_diameter_mm, self.host_length_mm,
                              self.host_hu, self.wall_mm, self.wall_hu, self.background_hu)
        px, py = self.position_mm
        rod = ((x - px) ** 2 + (y - py) ** 2 <= (self.insert_diameter_mm / 2) ** 2) & inside_z
        return np.where(rod, self.insert_hu, out)

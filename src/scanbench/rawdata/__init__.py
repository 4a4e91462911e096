"""PET raw data (sinograms and list mode) in memory, and the readers that produce it.

The file formats are documented in ``docs/pet-raw-data.md``: an open HDF5
layout written and read by :mod:`scanbench.rawdata.hdf5`, and STIR Interfile
projection data (``.hs`` + ``.s``) read by :mod:`scanbench.rawdata.interfile`.

Coordinates (scanner frame, mm): ``z`` along the scanner axis with 0 at the
centre of the axial FOV, ``x``/``y`` transverse. A sinogram view ``v`` of
``n_views`` has angle ``phi = pi * v / n_views``; radial bin ``b`` has
coordinate ``s = (b - (n_bins - 1) / 2) * bin_size_mm``; the line of response
(LOR) of ``(phi, s)`` is every point with ``x cos(phi) + y sin(phi) = s``. So a
line source at ``(x0, y0)`` draws the sinusoid ``s = x0 cos(phi) + y0 sin(phi)``.
Crystal ``c`` of ``crystals_per_ring`` sits at angle ``2 pi (c + 0.5) / n`` on
the ring diameter; ring ``r`` at ``z = (r - (rings - 1) / 2) * ring_pitch_mm``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scanbench.errors import InputError
from scanbench.types import DeviceIdentity

SPEED_OF_LIGHT_MM_PER_PS = 0.299792458
RAW_SUFFIXES = (".h5", ".hdf5", ".hs")


@dataclass(frozen=True)
class ScannerGeometry:
    """A cylindrical PET scanner as the raw data need it."""

    rings: int
    crystals_per_ring: int
    ring_diameter_mm: float
    ring_pitch_mm: float  # axial crystal pitch (distance between ring centres)
    max_ring_difference: int  # MRD used in the acquisition / sinograms
    span: int = 1
    tof_bins: int = 0  # 0: no TOF information in the sinograms
    tof_bin_width_ps: float | None = None
    coincidence_window_ps: float | None = None
    energy_window_kev: tuple[float, float] | None = None

    @property
    def axial_fov_mm(self) -> float:
        return self.rings * self.ring_pitch_mm

    @property
    def acceptance_angle_deg(self) -> float:
        """Largest polar angle of an accepted LOR through the axis (from the MRD)."""
        return math.degrees(math.atan(self.max_ring_difference * self.ring_pitch_mm
                                      / self.ring_diameter_mm))

    def ring_z_mm(self, ring: np.ndarray | int) -> np.ndarray:
        return (np.asarray(ring, dtype=float) - (self.rings - 1) / 2.0) * self.ring_pitch_mm

    def crystal_xy_mm(self, crystal: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        ang = 2.0 * np.pi * (np.asarray(crystal, dtype=float) + 0.5) / self.crystals_per_ring
        r = self.ring_diameter_mm / 2.0
        return r * np.cos(ang), r * np.sin(ang)

    def to_dict(self) -> dict[str, Any]:
        return {"rings": self.rings, "crystals_per_ring": self.crystals_per_ring,
                "ring_diameter_mm": self.ring_diameter_mm, "ring_pitch_mm": self.ring_pitch_mm,
                "axial_fov_mm": round(self.axial_fov_mm, 3),
                "max_ring_difference": self.max_ring_difference, "span": self.span,
                "acceptance_angle_deg": round(self.acceptance_angle_deg, 3),
                "tof_bins": self.tof_bins, "tof_bin_width_ps": self.tof_bin_width_ps,
                "coincidence_window_ps": self.coincidence_window_ps,
                "energy_window_kev": list(self.energy_window_kev)
                if self.energy_window_kev else None}


@dataclass(frozen=True)
class SinogramLayout:
    """How the 2-D sinograms are sampled: SSRB planes, views, radial bins."""

    n_bins: int
    n_views: int
    bin_size_mm: float
    plane_z_mm: np.ndarray  # axial centre of each plane, mm

    @property
    def n_planes(self) -> int:
        return len(self.plane_z_mm)

    def bin_s_mm(self) -> np.ndarray:
        return (np.arange(self.n_bins) - (self.n_bins - 1) / 2.0) * self.bin_size_mm

    def view_phi(self) -> np.ndarray:
        return np.pi * np.arange(self.n_views) / self.n_views


@dataclass(frozen=True)
class Events:
    """List-mode coincidences of one frame: detector IDs, TOF difference, time tag.

    ``tof_ps`` is ``t_a - t_b``: positive when the photon reached detector a
    later, i.e. the annihilation was nearer detector b. ``delayed`` marks
    delayed-window (random) events when the file has them.
    """

    ring_a: np.ndarray
    crystal_a: np.ndarray
    ring_b: np.ndarray
    crystal_b: np.ndarray
    tof_ps: np.ndarray
    time_ms: np.ndarray
    delayed: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.tof_ps)


@dataclass
class Frame:
    """One time frame: when, how long, and what the scanner logged about it.

    ``attrs`` holds acquisition facts per frame (``sleeves``, ``source_x_mm``,
    ``source_y_mm``, ``role`` = ``source`` or ``background``...). Data are loaded
    on request through the dataset's loaders, so a 30-frame long-AFOV study never
    sits in memory at once.
    """

    index: int
    start_s: float  # from the acquisition start
    duration_s: float
    singles_cps: float | None = None
    dead_time_fraction: float | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    has_prompts: bool = False
    has_delayed: bool = False
    n_events: int = 0


@dataclass
class RawDataset:
    """One raw-data file: geometry, acquisition facts, frames and their data loaders."""

    path: Path
    kind: str  # "sinogram" or "listmode"
    geometry: ScannerGeometry
    frames: list[Frame]
    device: DeviceIdentity = field(default_factory=DeviceIdentity)
    acquired_at: dt.datetime | None = None
    radionuclide: str | None = None
    half_life_s: float | None = None
    purpose: str | None = None  # what the file says it is: sensitivity, count_rate, tof, ...
    phantom: dict[str, Any] = field(default_factory=dict)
    layout: SinogramLayout | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    _prompts: Callable[[int], np.ndarray] | None = field(default=None, repr=False)
    _delayed: Callable[[int], np.ndarray | None] | None = field(default=None, repr=False)
    _events: Callable[[int], Events] | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        return str(self.path)

    def prompts(self, i: int) -> np.ndarray:
        """Prompt sinogram of frame ``i``, ``(planes, views, bins)`` float32, TOF bins summed."""
        if self._prompts is None or not self.frames[i].has_prompts:
            raise InputError(f"frame {i} has no prompt sinogram", self.path)
        return self._prompts(i)

    def delayed(self, i: int) -> np.ndarray | None:
        """Delayed-window sinogram of frame ``i``, or None when the file has none."""
        if self._delayed is None or not self.frames[i].has_delayed:
            return None
        return self._delayed(i)

    def events(self, i: int) -> Events:
        if self._events is None or self.frames[i].n_events == 0:
            raise InputError(f"frame {i} holds no list-mode events", self.path)
        return self._events(i)

    def activity_bq_at(self, seconds_from_start: float) -> float | None:
        """Source activity at a time from the acquisition start (decay from the
        phantom's calibrated activity), or None when the file does not say."""
        a = self.phantom.get("activity_bq")
        t_ref = self.phantom.get("activity_time_s", 0.0)
        if a is None or not self.half_life_s:
            return None
        lam = math.log(2.0) / self.half_life_s
        return float(a) * math.exp(-lam * (seconds_from_start - float(t_ref)))

    def mean_activity_bq(self, frame: Frame) -> float | None:
        """Mean activity over a frame (the decay integral / duration)."""
        a0 = self.activity_bq_at(frame.start_s)
        if a0 is None or self.half_life_s is None:
            return None
        lam = math.log(2.0) / self.half_life_s
        x = lam * frame.duration_s
        return a0 * ((1.0 - math.exp(-x)) / x if x > 1e-12 else 1.0)

    def check_frames_in_order(self) -> None:
        """Frames must follow one another in time (NEMA decay correction needs it)."""
        starts = [f.start_s for f in self.frames]
        for a, b in zip(self.frames, self.frames[1:], strict=False):
            if b.start_s < a.start_s:
                raise InputError(
                    f"frames out of order: frame {b.index} starts at {b.start_s:g} s, before "
                    f"frame {a.index} at {a.start_s:g} s; frames must be in acquisition order",
                    self.path)
            if b.start_s < a.start_s + a.duration_s - 1e-6:
                raise InputError(
                    f"frames overlap: frame {b.index} starts at {b.start_s:g} s, before frame "
                    f"{a.index} ends at {a.start_s + a.duration_s:g} s", self.path)
        del starts


def is_raw_path(path: str | Path) -> bool:
    """Whether a file name says it is PET raw data scanbench reads (.h5, .hdf5, .hs)."""
    return Path(path).suffix.lower() in RAW_SUFFIXES


def read_raw(path: str | Path) -> RawDataset:
    """Read one raw-data file (HDF5 layout or STIR Interfile header), or InputError."""
    p = Path(path)
    if not p.is_file():
        raise InputError("no such file", p)
    suffix = p.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        from scanbench.rawdata.hdf5 import read_hdf5

        ds = read_hdf5(p)
    elif suffix == ".hs":
        from scanbench.rawdata.interfile import read_interfile

        ds = read_interfile(p)
    else:
        raise InputError(
            f"not a PET raw-data file scanbench reads (expected .h5/.hdf5 in the scanbench "
            f"layout or a STIR Interfile .hs header, got {suffix or 'no suffix'}); see "
            "docs/pet-raw-data.md for how to convert vendor exports", p)
    ds.check_frames_in_order()
    return ds


def find_raw_files(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """Split inputs into raw-data files (also found inside folders) and the rest."""
    raw: list[Path] = []
    rest: list[Path] = []
    for p in paths:
        if p.is_file():
            (raw if is_raw_path(p) else rest).append(p)
        elif p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and is_raw_path(q)
                           and not _is_delayed_sibling(q))
            raw.extend(found)
            others = [q for q in p.rglob("*") if q.is_file() and not is_raw_path(q)
                      and q.suffix.lower() not in (".s", ".json")]
            if others or not found:
                rest.append(p)
        else:
            rest.append(p)
    return raw, rest


def _is_delayed_sibling(path: Path) -> bool:
    """``x_delayed.hs`` beside ``x.hs`` is that frame's delayed sinogram, not a file of its own."""
    return path.name.lower().endswith("_delayed.hs") and \
        path.with_name(path.name[: -len("_delayed.hs")] + ".hs").is_file()


__all__ = ["SPEED_OF_LIGHT_MM_PER_PS", "Events", "Frame", "RawDataset", "ScannerGeometry",
           "SinogramLayout", "find_raw_files", "is_raw_path", "read_raw"]

"""Per-frame plane geometry and pixel value transformation, classic and enhanced.

A *frame* is one 2-D plane: a classic single-frame image (CT, MR, PET Image
IODs, PS3.3 A.3, A.4, A.21) or one frame of a multi-frame object. For the
enhanced IODs (Enhanced CT/MR/PET and Legacy Converted Enhanced, PS3.3 A.38,
A.36, A.56, A.70–A.72) the plane comes from the Per-Frame Functional Groups
Sequence (5200,9230) with the Shared Functional Groups Sequence (5200,9229) as
fallback (PS3.3 C.7.6.16): Plane Position (C.7.6.16.2.3), Plane Orientation
(C.7.6.16.2.4), Pixel Measures (C.7.6.16.2.1), Pixel Value Transformation
(C.7.6.16.2.9) and Frame Content (C.7.6.16.2.2).
"""

from __future__ import annotations

import datetime as dt
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from scanbench.dicom import headers as h
from scanbench.errors import InputError

#: Functional-group pointers that locate a frame *within* a stack; every other
#: dimension (stack, time, echo, b-value...) tells volumes apart (PS3.3 C.7.6.17).
_IN_STACK_POINTERS = {0x00209057, 0x00200032, 0x00209056, 0x00209128}


@dataclass
class Source:
    """One DICOM file (or zip member) and its decoded stored pixel values."""

    path: Path
    ds: Dataset
    pixels: np.ndarray  # (frames, rows, columns), stored values
    released: bool = False  # stored values freed once copied into a volume

    def release(self) -> None:
        """Free the stored values once every frame is in a volume (the reader's peak
        memory is then about one volume, not the volume and every file's pixels); the
        shape stays known, and reading values afterwards raises."""
        self.pixels = np.broadcast_to(np.zeros((), self.pixels.dtype), self.pixels.shape)
        self.released = True


@dataclass
class Frame:
    """One image plane, with what is needed to place it in a volume."""

    source: Source
    index: int  # frame number within the source, 0-based
    position: np.ndarray  # Image Position (Patient), LPS mm, (3,)
    row_cosines: np.ndarray  # direction of increasing column index i, (3,)
    col_cosines: np.ndarray  # direction of increasing row index j, (3,)
    pixel_spacing: tuple[float, float]  # (between rows = dy, between columns = dx), mm
    slope: float = 1.0
    intercept: float = 0.0
    thickness: float | None = None
    spacing_between: float | None = None
    split: tuple[tuple[str, str], ...] = ()  # what tells volumes apart, known up front
    alternates: dict[str, str] = field(default_factory=dict)  # candidates if positions repeat
    acquired: dt.datetime | None = None  # naive or own-offset; localised per series
    duration_s: float | None = None

    @property
    def rows(self) -> int:
        return int(self.source.pixels.shape[1])

    @property
    def columns(self) -> int:
        return int(self.source.pixels.shape[2])

    @property
    def normal(self) -> np.ndarray:
        """Slice normal: row cosines × column cosines (PS3.3 C.7.6.2.1.1)."""
        return np.cross(self.row_cosines, self.col_cosines)

    def values(self) -> np.ndarray:
        """The frame in physical units: stored value × slope + intercept (PS3.3 C.11.1.1.2)."""
        if self.source.released:
            raise RuntimeError(f"{self.source.path}: stored values already released")
        stored = self.source.pixels[self.index]
        if self.slope == 1.0 and self.intercept == 0.0:
            return stored
        return stored * self.slope + self.intercept


def plane_frames(source: Source) -> list[Frame]:
    """All frames of one image file with their geometry; InputError names what is missing."""
    ds, where = source.ds, source.path
    if h.has(ds, "PerFrameFunctionalGroupsSequence") or h.has(ds, "SharedFunctionalGroupsSequence"):
        return _enhanced_frames(source)
    n = source.pixels.shape[0]
    ipp, iop = h.numbers(ds, "ImagePositionPatient"), h.numbers(ds, "ImageOrientationPatient")
    detector = h.item(ds, "DetectorInformationSequence")  # NM tomography, PS3.3 C.8.4.11
    if (ipp is None or iop is None) and detector is not None:
        ipp = ipp or h.numbers(detector, "ImagePositionPatient")
        iop = iop or h.numbers(detector, "ImageOrientationPatient")
    position = _position(ipp, where)
    row, col = _orientation(iop, where)
    spacing = _pixel_spacing(h.numbers(ds, "PixelSpacing"), where)
    slope, intercept = _rescale(ds, where)
    thickness = _positive(h.number(ds, "SliceThickness"))
    spacing_between = _positive(h.number(ds, "SpacingBetweenSlices"))
    acquired, duration_s = _acquired(ds), _duration(ds)

    def frame(index: int, position: np.ndarray,
              alternates: dict[str, str] | None = None) -> Frame:
        """A frame of this file: only its index, position and alternates differ."""
        return Frame(source=source, index=index, position=position, row_cosines=row,
                     col_cosines=col, pixel_spacing=spacing, slope=slope, intercept=intercept,
                     thickness=thickness, spacing_between=spacing_between,
                     alternates={} if alternates is None else alternates,
                     acquired=acquired, duration_s=duration_s)

    if n == 1:
        return [frame(0, position, _alternates(ds))]
    # Classic multi-frame (e.g. NM reconstructed tomography): frames are equally spaced
    # planes along the normal, Spacing Between Slices apart (PS3.3 C.8.4.15).
    step = spacing_between
    if step is None:
        raise InputError(f"multi-frame image ({n} frames) without per-frame functional groups "
                         "or Spacing Between Slices (0018,0088): frame positions are unknown",
                         where)
    normal = np.cross(row, col)
    return [frame(k, position + k * step * normal) for k in range(n)]


def _enhanced_frames(source: Source) -> list[Frame]:
    ds, where = source.ds, source.path
    n = source.pixels.shape[0]
    shared = h.item(ds, "SharedFunctionalGroupsSequence") or Dataset()
    try:
        per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
        per_frame_items = list(per_frame)
    except Exception as exc:
        raise InputError(f"Per-Frame Functional Groups Sequence (5200,9230) is damaged: {exc}",
                         where) from exc
    if per_frame_items and len(per_frame_items) != n:
        raise InputError(f"Per-Frame Functional Groups Sequence (5200,9230) has "
                         f"{len(per_frame_items)} items for {n} frames", where)
    pointers = _dimension_pointers(ds)
    top_acquired = h.parse_datetime(h.text(ds, "AcquisitionDateTime"))
    frames: list[Frame] = []
    for k in range(n):
        pf = per_frame_items[k] if per_frame_items else Dataset()

        def group(keyword: str, pf: Dataset = pf) -> Dataset | None:
            return h.item(pf, keyword) or h.item(shared, keyword)

        plane = group("PlanePositionSequence")
        orient = group("PlaneOrientationSequence")
        measures = group("PixelMeasuresSequence")
        content = group("FrameContentSequence")
        transform = group("PixelValueTransformationSequence")
        where_k = f"{where} frame {k + 1}"
        if plane is None:
            raise InputError("no Plane Position Sequence (0020,9113) in the per-frame or "
                             "shared functional groups", where_k)
        position = _position(h.numbers(plane, "ImagePositionPatient"), where_k)
        row, col = _orientation(h.numbers(orient, "ImageOrientationPatient"), where_k)
        spacing = _pixel_spacing(h.numbers(measures, "PixelSpacing"), where_k)
        slope, intercept = _rescale(transform if transform is not None else ds, where_k)
        split: list[tuple[str, str]] = []
        stack = h.text(content, "StackID")
        if stack is not None:
            split.append(("stack", stack))
        temporal = h.integer(content, "TemporalPositionIndex")
        if temporal is not None:
            split.append(("temporal position", str(temporal)))
        index_values = h.numbers(content, "DimensionIndexValues") or ()
        for pointer, value in zip(pointers, index_values, strict=False):
            if pointer not in _IN_STACK_POINTERS:
                split.append((f"dimension ({pointer >> 16:04X},{pointer & 0xFFFF:04X})",
                              f"{value:g}"))
        acquired = h.parse_datetime(h.text(content, "FrameAcquisitionDateTime")) or top_acquired
        duration = h.number(content, "FrameAcquisitionDuration")
        frames.append(Frame(
            source=source, index=k, position=position, row_cosines=row, col_cosines=col,
            pixel_spacing=spacing, slope=slope, intercept=intercept,
            thickness=_positive(h.number(measures, "SliceThickness")),
            spacing_between=_positive(h.number(measures, "SpacingBetweenSlices")),
            split=tuple(split), acquired=acquired,
            duration_s=duration / 1000.0 if duration is not None and duration >= 0 else None))
    return frames


def _dimension_pointers(ds: Dataset) -> list[int]:
    """Dimension Index Pointer (0020,9165) of each dimension, in index order (C.7.6.17)."""
    out: list[int] = []
    try:
        for dim in ds.get("DimensionIndexSequence") or []:
            out.append(int(dim.get("DimensionIndexPointer", 0) or 0))
    except Exception:
        return []
    return out


def _position(ipp: tuple[float, ...] | None, where: Path | str) -> np.ndarray:
    if ipp is None or len(ipp) != 3:
        raise InputError("Image Position (Patient) (0020,0032) is missing or not three numbers",
                         where)
    pos = np.asarray(ipp, dtype=float)
    if np.abs(pos).max() > 1e6:
        raise InputError(f"Image Position (Patient) (0020,0032) {list(ipp)} is more than "
                         "a kilometre from the origin", where)
    return pos


def _orientation(iop: tuple[float, ...] | None,
                 where: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """Row and column direction cosines, checked to be orthonormal (PS3.3 C.7.6.2.1.1)."""
    if iop is None or len(iop) != 6:
        raise InputError("Image Orientation (Patient) (0020,0037) is missing or not six numbers",
                         where)
    # Keyed by the bytes: -0.0 == 0.0, but the sign of a zero reaches the affine.
    cosines = _cosines(struct.pack("<6d", *iop))
    if cosines is None:
        raise InputError(f"Image Orientation (Patient) (0020,0037) {list(iop)} is not two "
                         "orthogonal unit vectors", where)
    return cosines


@lru_cache(maxsize=256)
def _cosines(packed: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """Orthonormalised (row, column) cosines of six IOP numbers (packed as doubles), None
    if they are not two orthogonal unit vectors. Cached: the slices of a series share one
    orientation, so they share these (read-only) arrays, and volume splitting can compare
    them by identity."""
    iop = struct.unpack("<6d", packed)
    row, col = np.asarray(iop[:3], dtype=float), np.asarray(iop[3:], dtype=float)
    nr, nc = np.linalg.norm(row), np.linalg.norm(col)
    if abs(nr - 1) > 1e-2 or abs(nc - 1) > 1e-2 or abs(float(row @ col)) > 1e-2:
        return None
    row, col = row / nr, col / nc
    col = col - (row @ col) * row  # remove rounding skew so the affine stays orthogonal
    col = col / np.linalg.norm(col)
    row.flags.writeable = False
    col.flags.writeable = False
    return row, col


def _pixel_spacing(ps: tuple[float, ...] | None, where: Path | str) -> tuple[float, float]:
    if ps is None or len(ps) != 2:
        raise InputError("Pixel Spacing (0028,0030) is missing or not two numbers", where)
    dy, dx = ps
    if not (0 < dy < 1e4 and 0 < dx < 1e4):
        raise InputError(f"Pixel Spacing (0028,0030) {list(ps)} mm is not a positive size",
                         where)
    return float(dy), float(dx)


def _rescale(ds: Dataset, where: Path | str) -> tuple[float, float]:
    """Rescale Slope (0028,1053) and Intercept (0028,1052); identity when absent."""
    slope, intercept = h.number(ds, "RescaleSlope"), h.number(ds, "RescaleIntercept")
    if slope is None and h.has(ds, "RescaleSlope"):
        raise InputError(f"Rescale Slope (0028,1053) {h.text(ds, 'RescaleSlope')!r} "
                         "is not a number", where)
    if intercept is None and h.has(ds, "RescaleIntercept"):
        raise InputError(f"Rescale Intercept (0028,1052) {h.text(ds, 'RescaleIntercept')!r} "
                         "is not a number", where)
    return (1.0 if slope is None else slope), (0.0 if intercept is None else intercept)


def _positive(value: float | None) -> float | None:
    return value if value is not None and 0 < value < 1e4 else None


def _acquired(ds: Dataset) -> dt.datetime | None:
    """Acquisition DateTime (0008,002A), else Acquisition Date + Time (0008,0022/0032)."""
    stamp = h.parse_datetime(h.text(ds, "AcquisitionDateTime"))
    if stamp is not None:
        return stamp
    date = h.text(ds, "AcquisitionDate") or h.text(ds, "SeriesDate") or h.text(ds, "StudyDate")
    return h.combine(date, h.text(ds, "AcquisitionTime"))


def _duration(ds: Dataset) -> float | None:
    """Actual Frame Duration (0018,1242), ms → s."""
    ms = h.number(ds, "ActualFrameDuration")
    return ms / 1000.0 if ms is not None and ms >= 0 else None


def _alternates(ds: Dataset) -> dict[str, str]:
    """Header values that may tell apart classic slices sharing one position.

    Used only when positions repeat within a series: temporal position
    (0020,0100), echo (0018,0086), the PET/NM time slot from Image Index
    (0054,1330) and Number of Slices (0054,0081) (PS3.3 C.8.9.4.1.9),
    acquisition number, trigger time and acquisition time.
    """
    out: dict[str, str] = {}
    for label, kw in (("temporal position", "TemporalPositionIdentifier"),
                      ("echo", "EchoNumbers")):
        value = h.text(ds, kw)
        if value is not None:
            out[label] = value
    index, per_frame = h.integer(ds, "ImageIndex"), h.integer(ds, "NumberOfSlices")
    if index is not None and per_frame:
        out["PET/NM frame"] = str((index - 1) // per_frame + 1)
    for label, kw in (("acquisition number", "AcquisitionNumber"),
                      ("trigger time", "TriggerTime"), ("acquisition time", "AcquisitionTime"),
                      ("image type", "ImageType")):
        value = h.text(ds, kw)
        if value is not None:
            out[label] = value
    return out

"""Core types shared by every part of scanbench.

Conventions (DESIGN.md): arrays are ``(z, y, x)``; lengths in mm; patient
coordinates are DICOM LPS; every number that leaves a module carries its unit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

# pass / fail: judged against a confirmed limit. within_unconfirmed / outside_unconfirmed:
# compared with a limit the standards do not confirm, shown but never judged (never a
# fail). not_judged: a limit applies, but the value rests on a parameter that was neither
# given nor measurable (``note`` says which), so it is not judged. refused: the analysis
# produced a value outside what physics allows; it is withheld (``value`` is NaN, null in
# JSON) and ``note`` names the value and the range. info: no limit applies.
Status = Literal["pass", "fail", "info", "within_unconfirmed", "outside_unconfirmed",
                 "not_judged", "refused"]
STATUSES: tuple[Status, ...] = ("pass", "fail", "info", "within_unconfirmed",
                                "outside_unconfirmed", "not_judged", "refused")


@dataclass(frozen=True)
class DeviceIdentity:
    """Who made the images: the device is the subject of every scanbench result."""

    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    station: str | None = None
    software_versions: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {
            "manufacturer": self.manufacturer,
            "model": self.model,
            "serial": self.serial,
            "station": self.station,
            "software_versions": self.software_versions,
        }


@dataclass(frozen=True)
class PetFacts:
    """What a PET header says about units, decay correction and the tracer.

    Times are timezone-aware when the header gives a Timezone Offset From UTC
    (0008,0201), else naive (and ``SeriesFacts.naive_times`` is True).
    """

    units: str | None = None  # (0054,1001), e.g. "BQML"
    decay_correction: str | None = None  # (0054,1102): "START", "ADMIN", "NONE"
    corrected_image: tuple[str, ...] = ()  # (0028,0051), e.g. ("DECY", "ATTN", ...)
    series_datetime: dt.datetime | None = None  # (0008,0021)+(0008,0031): START reference
    acquisition_start: dt.datetime | None = None  # earliest Acquisition Date/Time
    frame_duration_s: float | None = None  # (0018,1242) / 1000
    radiopharmaceutical: str | None = None  # (0018,0031)
    radionuclide: str | None = None  # (0054,0300) code meaning, e.g. "^18^Fluorine"
    injected_activity_bq: float | None = None  # (0018,1074)
    injection_datetime: dt.datetime | None = None  # (0018,1078) or (0018,1072)
    half_life_s: float | None = None  # (0018,1075)
    patient_weight_kg: float | None = None  # (0010,1030)


@dataclass(frozen=True)
class CtFacts:
    """What a CT header says about the acquisition and reconstruction.

    Tags from the CT Image module (PS3.3 C.8.2.1) and, for enhanced CT, the CT
    functional groups (C.8.15.3); ``None`` when the header does not say.
    """

    kvp: float | None = None  # (0018,0060) kV
    tube_current_ma: float | None = None  # (0018,1151) / (0018,9330)
    exposure_time_s: float | None = None  # (0018,1150) ms or (0018,9328) ms, in s
    exposure_mas: float | None = None  # (0018,1152) / (0018,9332)
    rotation_time_s: float | None = None  # Revolution Time (0018,9305)
    pitch: float | None = None  # Spiral Pitch Factor (0018,9311)
    total_collimation_mm: float | None = None  # (0018,9307)
    single_collimation_mm: float | None = None  # (0018,9306)
    kernel: str | None = None  # Convolution Kernel (0018,1210)
    reconstruction_diameter_mm: float | None = None  # (0018,1100)
    slice_thickness_mm: float | None = None  # (0018,0050)
    ctdivol_mgy: float | None = None  # (0018,9345)
    ctdi_phantom_cm: int | None = None  # (0018,9346) code 113690 head → 16, 113691 body → 32
    exposure_modulation: str | None = None  # (0018,9323), e.g. "XYZ_EC", "NONE"
    pixel_padding_value: float | None = None  # (0028,0120) in stored units
    scan_options: str | None = None  # (0018,0022), e.g. "HELICAL"


@dataclass(frozen=True)
class MrFacts:
    """What an MR header says about the acquisition.

    Tags from the MR Image module (PS3.3 C.8.3.1) and, for enhanced MR, the MR
    functional groups (C.8.13); ``None`` when the header does not say.
    """

    field_strength_t: float | None = None  # (0018,0087)
    imaging_frequency_mhz: float | None = None  # (0018,0084)
    sequence_name: str | None = None  # (0018,0024) / Pulse Sequence Name (0018,9005)
    scanning_sequence: str | None = None  # (0018,0020), e.g. "SE"
    repetition_time_ms: float | None = None  # (0018,0080) / (0018,9073)... per frame
    echo_time_ms: float | None = None  # (0018,0081) / Effective Echo Time (0018,9082)
    inversion_time_ms: float | None = None  # (0018,0082)
    flip_angle_deg: float | None = None  # (0018,1314)
    pixel_bandwidth_hz: float | None = None  # (0018,0095), Hz per pixel
    averages: float | None = None  # Number of Averages (0018,0083)
    phase_encoding_steps: int | None = None  # (0018,0089)
    acquisition_matrix: tuple[int, int, int, int] | None = None  # (0018,1310)
    phase_encoding_direction: str | None = None  # In-plane (0018,1312): "ROW" / "COL"
    receive_coil: str | None = None  # (0018,1250)
    parallel_factor: float | None = None  # (0018,9069) × (0018,9155), 1.0 when none
    parallel_imaging: bool | None = None  # (0018,9077) "YES"/"NO" or vendor evidence


@dataclass(frozen=True)
class SeriesFacts:
    """A typed record of what the DICOM header says about one series."""

    modality: str
    device: DeviceIdentity = field(default_factory=DeviceIdentity)
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    frame_of_reference_uid: str | None = None
    series_description: str | None = None
    series_number: int | None = None
    acquired_at: dt.datetime | None = None
    naive_times: bool = True
    pet: PetFacts | None = None
    ct: CtFacts | None = None
    mr: MrFacts | None = None


@dataclass
class Series:
    """One image series in memory.

    ``voxels`` is float32 ``(z, y, x)`` in the modality's physical unit (PET:
    Bq/mL as stored after per-slice rescale). ``spacing`` is ``(dz, dy, dx)``
    in mm, where dz is the distance between slice centres along the slice
    normal. ``affine`` is a 4×4 matrix mapping a homogeneous voxel index
    ``(k, j, i, 1)`` — slice, row, column, the same order as ``voxels`` —
    to patient LPS coordinates ``(x, y, z, 1)`` in mm.

    ``derived`` is a memo of data derived from the voxels (summaries, phantom
    locations) shared by detection and analysis; it is never invalidated,
    because voxels are not mutated after reading (use
    :func:`scanbench.analysis.memo.memo`, which also checks that ``voxels`` is
    still the same array). It is not an ``__init__`` argument, so
    ``dataclasses.replace`` starts a fresh memo.
    """

    voxels: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray
    facts: SeriesFacts
    files: list[Path] = field(default_factory=list)
    sop_instance_uids: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Isolated slices (not a contiguous volume, e.g. one CatPhan slice per module): each
    # slice's position along the slice normal in mm; None for a regular volume, whose
    # positions the affine gives. Only analyses with ``accepts_isolated_slices`` take it.
    isolated_positions_mm: np.ndarray | None = None
    derived: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        z, y, x = self.voxels.shape
        return int(z), int(y), int(x)

    @property
    def uid(self) -> str | None:
        return self.facts.series_instance_uid

    def index_to_patient(self, index: np.ndarray | tuple[float, float, float]) -> np.ndarray:
        """Patient LPS mm of one or more ``(k, j, i)`` voxel indices (fractional allowed)."""
        idx = np.atleast_2d(np.asarray(index, dtype=float))
        hom = np.concatenate([idx, np.ones((idx.shape[0], 1))], axis=1)
        out = hom @ self.affine.T
        return out[:, :3] if np.ndim(index) > 1 else out[0, :3]

    def patient_to_index(self, xyz: np.ndarray | tuple[float, float, float]) -> np.ndarray:
        """Fractional ``(k, j, i)`` voxel index of one or more patient LPS points."""
        pts = np.atleast_2d(np.asarray(xyz, dtype=float))
        hom = np.concatenate([pts, np.ones((pts.shape[0], 1))], axis=1)
        out = hom @ np.linalg.inv(self.affine).T
        return out[:, :3] if np.ndim(xyz) > 1 else out[0, :3]


@dataclass(frozen=True)
class Limits:
    """Acceptance limits for one measurement, always with where they come from."""

    low: float | None = None
    high: float | None = None
    source: str = ""
    verified: bool = True

    def check(self, value: float) -> Status:
        """``pass``/``fail`` against a confirmed limit; against an unconfirmed one
        ``within_unconfirmed``/``outside_unconfirmed``, never ``fail``."""
        outside = (self.low is not None and value < self.low) or \
            (self.high is not None and value > self.high)
        if not self.verified:
            return "outside_unconfirmed" if outside else "within_unconfirmed"
        return "fail" if outside else "pass"

    def to_dict(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "source": self.source,
                "verified": self.verified}


@dataclass
class Measurement:
    """One measured quantity. ``name`` is a snake_case quantity; what tells
    repeated measurements apart (sphere, direction, position) goes in ``labels``."""

    name: str
    value: float
    unit: str
    labels: dict[str, Any] = field(default_factory=dict)
    uncertainty: float | None = None
    limits: Limits | None = None
    status: Status = "info"
    # Why the value is refused or not judged (see Status); None otherwise.
    note: str | None = None

    def refuse(self, reason: str) -> None:
        """Withhold a value that physics does not allow: status ``refused``, the value
        NaN (null in JSON), ``reason`` kept in ``note`` (it should name the value read
        and the range allowed)."""
        self.status = "refused"
        self.note = reason
        self.value = float("nan")
        self.uncertainty = None

    def not_judged(self, reason: str) -> None:
        """Report the value but never judge it against a limit: it rests on a parameter
        that was neither given nor measurable (``reason`` says which)."""
        self.status = "not_judged"
        self.note = reason

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "labels": dict(self.labels),
            "value": _finite_or_none(self.value),
            "unit": self.unit,
            "uncertainty": _finite_or_none(self.uncertainty),
            "limits": self.limits.to_dict() if self.limits else None,
            "status": self.status,
            **({"note": self.note} if self.note else {}),
        }


def _finite_or_none(v: float | None) -> float | None:
    if v is None:
        return None
    f = float(v)
    return f if np.isfinite(f) else None


@dataclass
class Result:
    """What one analysis found in one series.

    ``evidence`` holds what the figures need (slices, ROI positions, profiles);
    it never goes into JSON, and figures are drawn from it only on request.
    """

    analysis: str
    standard: str
    series_instance_uid: str | None
    device: DeviceIdentity
    acquired_at: dt.datetime | None
    measurements: list[Measurement] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    scanbench_version: str = ""
    spec: str | None = None
    source: str | None = None  # file or folder the series came from
    evidence: dict[str, Any] = field(default_factory=dict, repr=False)
    # Curves and tables a result carries as data (an MTF or NPS curve): plain JSON values,
    # serialised under "data" (unlike evidence, which is only for figures).
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.scanbench_version:
            from scanbench import __version__

            self.scanbench_version = __version__

    def add(self, name: str, value: float, unit: str, **kw: Any) -> Measurement:
        """Append a measurement; keyword ``labels``, ``uncertainty`` as in Measurement."""
        m = Measurement(name=name, value=float(value), unit=unit, **kw)
        self.measurements.append(m)
        return m

    def get(self, name: str, **labels: Any) -> Measurement:
        """The one measurement with this name whose labels include ``labels``."""
        found = [m for m in self.measurements if m.name == name
                 and all(m.labels.get(k) == v for k, v in labels.items())]
        if len(found) != 1:
            raise KeyError(f"{len(found)} measurements named {name!r} with labels {labels}")
        return found[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "analysis": self.analysis,
            "standard": self.standard,
            "series_instance_uid": self.series_instance_uid,
            "device": self.device.to_dict(),
            "acquired_at": self.acquired_at.isoformat() if self.acquired_at else None,
            "measurements": [m.to_dict() for m in self.measurements],
            "warnings": list(self.warnings),
            "parameters": _jsonable(self.parameters),
            "spec": self.spec,
            "source": self.source,
            "scanbench_version": self.scanbench_version,
            **({"data": _jsonable(self.data)} if self.data else {}),
        }


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj

"""Write a PET ``Series`` as classic PET Image Storage DICOM, one file per slice.

The files carry what a real PET/CT writes and what scanbench's analyses need
(DICOM PS3.3 A.21 PET Image IOD: Patient, General Study, Patient Study,
General Series, PET Series, PET Isotope, NM/PET Patient Orientation, Frame of
Reference, General Equipment, General Image, Image Plane, Image Pixel, PET
Image, SOP Common modules):

- Units BQML, Decay Correction with its reference (Series Date/Time is the
  START reference, the Radiopharmaceutical Start DateTime the ADMIN one),
  Decay Factor (C.8.9.4.1.x: the factor that scaled the frame-average counts to
  the reference: λT / (1 − e^(−λT)) for START, times e^(λΔt) for ADMIN, absent
  for NONE), Frame Reference Time (ms from the series time to the instant
  whose activity equals the frame average), Actual Frame Duration (ms),
  Corrected Image;
- Radiopharmaceutical Information Sequence: FDG (SCT 35321007), F-18 (SCT
  77004003), Radionuclide Total Dose (Bq), Radiopharmaceutical Start Time and
  DateTime, half-life, positron fraction;
- device identity, Patient Weight, Timezone Offset From UTC;
- 16-bit pixels with a per-slice Rescale Slope (intercept 0, as PET requires),
  so that stored × slope reproduces the Bq/mL voxels within half a quantum.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from pathlib import Path
from typing import Literal

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    PositronEmissionTomographyImageStorage,
    RLELossless,
)
from pydicom.valuerep import format_number_as_ds

from scanbench.types import Series

TRANSFER_SYNTAXES: dict[str, UID] = {
    "ExplicitVRLittleEndian": ExplicitVRLittleEndian,
    "ImplicitVRLittleEndian": ImplicitVRLittleEndian,
    "RLELossless": RLELossless,
    "JPEG2000Lossless": JPEG2000Lossless,
}
F18_POSITRON_FRACTION = 0.9673


def _ds(value: float) -> str:
    return format_number_as_ds(float(value))


def _da(t: dt.datetime) -> str:
    return t.strftime("%Y%m%d")


def _tm(t: dt.datetime) -> str:
    return t.strftime("%H%M%S.%f")


def _tz(t: dt.datetime) -> str | None:
    off = t.utcoffset()
    if off is None:
        return None
    minutes = int(off.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _resolve_syntax(transfer_syntax: str) -> UID:
    if transfer_syntax in TRANSFER_SYNTAXES:
        return TRANSFER_SYNTAXES[transfer_syntax]
    if transfer_syntax in TRANSFER_SYNTAXES.values():
        return UID(transfer_syntax)
    raise ValueError(f"transfer syntax {transfer_syntax!r} is not supported; use one of "
                     f"{', '.join(TRANSFER_SYNTAXES)}")


def quantise_slice(values: np.ndarray, signed: bool) -> tuple[np.ndarray, float, str]:
    """16-bit stored values, the rescale slope and its DS text for one slice.

    The slope is the largest magnitude over the 16-bit range (as PET scanners
    do); it is rounded to its DS text first, so the file's slope is exactly the
    one used to quantise.
    """
    top = 32767 if signed else 65535
    peak = float(np.max(np.abs(values))) if values.size else 0.0
    slope_text = _ds(peak / top) if peak > 0 else "1"
    slope = float(slope_text)
    while peak > 0 and round(peak / slope) > top:  # DS rounding went down
        slope_text = _ds(slope * (1 + 1e-9) + 1e-30)
        slope = float(slope_text)
    stored = np.rint(values / slope)
    stored = np.clip(stored, -32768 if signed else 0, top)
    return stored.astype(np.int16 if signed else np.uint16), slope, slope_text


def _decay_fields(series: Series) -> tuple[float | None, float]:
    """(Decay Factor or None, Frame Reference Time in ms) from the series' PET facts."""
    pet = series.facts.pet
    assert pet is not None
    half_life = pet.half_life_s or 6586.2
    lam = math.log(2.0) / half_life
    duration = pet.frame_duration_s or 0.0
    if duration > 0:
        frame_df = lam * duration / -math.expm1(-lam * duration)
        frame_ref_ms = math.log(frame_df) / lam * 1000.0
    else:
        frame_df, frame_ref_ms = 1.0, 0.0
    if pet.decay_correction == "START":
        return frame_df, frame_ref_ms
    if pet.decay_correction == "ADMIN":
        if pet.injection_datetime is None or pet.series_datetime is None:
            raise ValueError("ADMIN decay correction needs the injection and series date/time")
        delta_s = (pet.series_datetime - pet.injection_datetime).total_seconds()
        return frame_df * math.exp(lam * delta_s), frame_ref_ms
    return None, frame_ref_ms


def write_series(
    series: Series,
    out_dir: Path,
    *,
    file_names: Literal["uid", "shuffled"] = "uid",
    transfer_syntax: str = ExplicitVRLittleEndian,
    reconstruction_method: str = "OSEM",
    patient_name: str = "SCANBENCH^PHANTOM",
    patient_id: str = "SB-PHANTOM",
    study_description: str = "PET phantom (simulated)",
) -> list[Path]:
    """Write ``series`` (a PET Series, voxels in Bq/mL, axis-aligned) to ``out_dir``.

    One PET Image Storage file per slice; ``file_names`` "uid" names each file
    ``<SOPInstanceUID>.dcm``, "shuffled" gives meaningless names in an order
    unrelated to the slice order (IM000137 for slice 4, ...). Returns the paths
    in slice order.
    """
    pet = series.facts.pet
    if pet is None or series.facts.modality != "PT":
        raise ValueError("write_series writes PET series only (facts.modality 'PT', facts.pet)")
    if file_names not in ("uid", "shuffled"):
        raise ValueError(f"file_names must be 'uid' or 'shuffled', got {file_names!r}")
    syntax = _resolve_syntax(str(transfer_syntax))
    direction = series.affine[:3, :3]
    axis_aligned = (np.count_nonzero(np.abs(direction) > 1e-9) == 3
                    and direction[0, 2] > 0 and direction[1, 1] > 0 and direction[2, 0] != 0)
    if not axis_aligned:
        raise ValueError("write_series supports axial series aligned with the patient axes")
    nz, ny, nx = series.shape
    dz, dy, dx = series.spacing
    uids = list(series.sop_instance_uids)
    if len(uids) != nz:
        from pydicom.uid import generate_uid

        uids = [generate_uid() for _ in range(nz)]
        series.sop_instance_uids = uids
    start = pet.series_datetime or pet.acquisition_start or series.facts.acquired_at
    if start is None:
        raise ValueError("the series has no acquisition date/time")
    decay_factor, frame_ref_ms = _decay_fields(series)
    signed = bool(np.any(series.voxels < 0))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tz = _tz(start)
    study_dt = start - dt.timedelta(minutes=5)
    content_dt = start + dt.timedelta(seconds=(pet.frame_duration_s or 0.0) + 120.0)
    if file_names == "shuffled":
        numbers = random.Random(series.facts.series_instance_uid).sample(range(1, 10 * nz + 1), nz)
        names = [f"IM{n:06d}" for n in numbers]
    else:
        names = [f"{u}.dcm" for u in uids]

    # Instance 1 is the most superior slice (the head end), as many scanners number them.
    order = np.argsort(-(series.affine[2, 0] * np.arange(nz)), kind="stable")
    instance_of = {int(k): i + 1 for i, k in enumerate(order)}

    paths = []
    for k in range(nz):
        stored, _slope, slope_text = quantise_slice(series.voxels[k], signed)
        ds = Dataset()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = PositronEmissionTomographyImageStorage
        meta.MediaStorageSOPInstanceUID = UID(uids[k])  # pydicom stores a UID either way
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        meta.ImplementationVersionName = f"PYDICOM {pydicom.__version__}"[:16]
        ds.file_meta = meta

        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.InstanceCreationDate = _da(content_dt)
        ds.InstanceCreationTime = _tm(content_dt)
        ds.SOPClassUID = PositronEmissionTomographyImageStorage
        ds.SOPInstanceUID = uids[k]
        ds.StudyDate, ds.StudyTime = _da(study_dt), _tm(study_dt)
        ds.SeriesDate, ds.SeriesTime = _da(start), _tm(start)
        ds.AcquisitionDate, ds.AcquisitionTime = _da(start), _tm(start)
        ds.ContentDate, ds.ContentTime = _da(content_dt), _tm(content_dt)
        if tz is not None:
            ds.TimezoneOffsetFromUTC = tz
        ds.AccessionNumber = ""
        ds.Modality = "PT"
        dev = series.facts.device
        ds.Manufacturer = dev.manufacturer or ""
        ds.InstitutionName = "scanbench virtual site"
        ds.ReferringPhysicianName = ""
        if dev.station:
            ds.StationName = dev.station
        ds.StudyDescription = study_description
        ds.SeriesDescription = series.facts.series_description or "PET (simulated)"
        if dev.model:
            ds.ManufacturerModelName = dev.model
        ds.PatientName = patient_name
        ds.PatientID = patient_id
        ds.PatientBirthDate = ""
        ds.PatientSex = "O"
        if pet.patient_weight_kg is not None:
            ds.PatientWeight = _ds(pet.patient_weight_kg)
        ds.SliceThickness = _ds(dz)
        if dev.serial:
            ds.DeviceSerialNumber = dev.serial
        if dev.software_versions:
            ds.SoftwareVersions = dev.software_versions
        ds.CollimatorType = "NONE"
        ds.ActualFrameDuration = round((pet.frame_duration_s or 0.0) * 1000.0)
        # Not Patient Position (0018,5100): General Series has it only where the Patient
        # Orientation Code Sequence is absent (PS3.3 C.7.3.1), and the PET IOD sends that.
        ds.BodyPartExamined = "WHOLEBODY"  # unpaired: Laterality (2C) is then not required
        ds.StudyInstanceUID = series.facts.study_instance_uid
        ds.SeriesInstanceUID = series.facts.series_instance_uid
        ds.StudyID = "1"
        ds.SeriesNumber = series.facts.series_number or 1
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = instance_of[k]
        position = series.affine @ np.array([k, 0.0, 0.0, 1.0])
        ds.ImagePositionPatient = [_ds(v) for v in position[:3]]
        ds.ImageOrientationPatient = [_ds(v) for v in (
            *(series.affine[:3, 2] / dx), *(series.affine[:3, 1] / dy))]
        ds.FrameOfReferenceUID = series.facts.frame_of_reference_uid
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = _ds(position[2])
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = ny, nx
        ds.PixelSpacing = [_ds(dy), _ds(dx)]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1 if signed else 0
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = slope_text  # units are in Units (0054,1001); no Rescale Type in PET

        # PET Isotope module.
        rp = Dataset()
        rp.Radiopharmaceutical = pet.radiopharmaceutical or "Fluorodeoxyglucose"
        if pet.injection_datetime is not None:
            rp.RadiopharmaceuticalStartTime = _tm(pet.injection_datetime)
            rp.RadiopharmaceuticalStartDateTime = pet.injection_datetime.strftime(
                "%Y%m%d%H%M%S.%f")
        if pet.injected_activity_bq is not None:
            rp.RadionuclideTotalDose = _ds(pet.injected_activity_bq)
        rp.RadionuclideHalfLife = _ds(pet.half_life_s or 6586.2)
        rp.RadionuclidePositronFraction = _ds(F18_POSITRON_FRACTION)
        # SNOMED CT codes of CID 4020 / 4021 (the SRT ones are deprecated, PS3.16).
        rp.RadionuclideCodeSequence = Sequence([_code("77004003", "SCT", "^18^Fluorine")])
        rp.RadiopharmaceuticalCodeSequence = Sequence(
            [_code("35321007", "SCT", "Fluorodeoxyglucose F^18^")])
        ds.RadiopharmaceuticalInformationSequence = Sequence([rp])

        window = Dataset()
        window.EnergyWindowLowerLimit = "435"
        window.EnergyWindowUpperLimit = "650"
        ds.EnergyWindowRangeSequence = Sequence([window])
        ds.NumberOfSlices = nz
        # CID 19, 20, 21 (SNOMED CT).
        ds.PatientOrientationCodeSequence = Sequence([_code("102538003", "SCT", "recumbent")])
        ds.PatientOrientationCodeSequence[0].PatientOrientationModifierCodeSequence = Sequence(
            [_code("40199007", "SCT", "supine")])
        ds.PatientGantryRelationshipCodeSequence = Sequence(
            [_code("102540008", "SCT", "headfirst")])

        # PET Series module.
        ds.SeriesType = ["STATIC", "IMAGE"]
        ds.Units = "BQML"
        ds.CountsSource = "EMISSION"
        ds.RandomsCorrectionMethod = "DLYD"
        ds.AttenuationCorrectionMethod = "measured, CT-based"
        ds.DecayCorrection = pet.decay_correction or "NONE"
        ds.ReconstructionMethod = reconstruction_method
        ds.ScatterCorrectionMethod = "model-based"
        ds.CorrectedImage = list(pet.corrected_image)
        ds.ReconstructionDiameter = _ds(nx * dx)

        # PET Image module.
        ds.FrameReferenceTime = _ds(frame_ref_ms)
        if decay_factor is not None:
            ds.DecayFactor = _ds(decay_factor)
        ds.ImageIndex = instance_of[k]

        path = out_dir / names[k]
        save_pixels(ds, stored, syntax, path)
        paths.append(path)
    return paths


def save_pixels(ds: Dataset, stored: np.ndarray, syntax: UID, path: Path) -> None:
    """Set ``stored`` as the pixel data, encoded in ``syntax`` (explicit or implicit VR
    little endian, or a compressed syntax pydicom can encode), and write ``ds`` to ``path``
    as a DICOM Part 10 file."""
    ds.PixelData = stored.tobytes()
    if syntax != ExplicitVRLittleEndian:
        if syntax == ImplicitVRLittleEndian:
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        else:
            try:
                ds.compress(syntax, stored)
            except Exception as exc:  # encoder plugins are optional
                raise ValueError(f"cannot encode {syntax.name}: {exc}") from exc
    ds.save_as(path, enforce_file_format=True)

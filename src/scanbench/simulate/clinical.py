"""Synthetic clinical studies for tests and demos: CT exams and PET/CT exams with dose
reports, realistic headers and timings, and their truth written beside.

Each exam is one study of one device, written as DICOM:

- a CT Radiation Dose SR (X-Ray Radiation Dose SR Storage, PS3.3 A.35.8, TID
  10011 with TID 10012 / 10013, codes of STANDARDS.md D.1), validated with
  dicom3tools' ``dciodvfy`` in the tests;
- the CT image series (CT Image Storage): a localizer and one axial series per
  helical event, with Acquisition Date/Time, Performed Procedure Step
  start/end, CTDIvol (0018,9345) and its phantom (0018,9346), Irradiation Event
  UID (0008,3010), Revolution Time, pitch and collimation. The patient is an
  elliptical water body with two lungs (−800 HU) on a separate table, so its
  water-equivalent diameter is known in closed form (AAPM Report 220):
  D_w = 2·sqrt(Σ_regions (HU/1000 + 1)·area / π);
- for PET/CT, PET image slices (PET Image Storage) with the Radiopharmaceutical
  Information Sequence, one series per bed, and optionally a
  Radiopharmaceutical Radiation Dose SR (TID 10021 / 10022);
- optionally, in place of those images, virtual patients (``patient_slices`` of
  :func:`simulate_ct_exams`: :mod:`scanbench.simulate.ct_patient`; ``patient_grid`` of
  :func:`simulate_petct_exams`: :mod:`scanbench.simulate.pet_patient`, PET and its CT on
  one frame of reference), with the exam's headers, dose and times, for clinical image
  quality.

Values are drawn from configurable distributions (:class:`Protocol`,
:class:`PetProtocol`) with a seeded generator; ``truth.json`` holds what each
exam really was (events, totals, times, D_w, SSDE, activity, uptake).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    PositronEmissionTomographyImageStorage,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

from scanbench.clinical.ssde import ssde_mgy

XRAY_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"
RADIOPHARMACEUTICAL_SR = "1.2.840.10008.5.1.4.1.1.88.68"


# ----------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class DeviceSpec:
    manufacturer: str = "ScanBench"
    model: str = "Virtual CT 64"
    serial: str = "VCT-0001"
    station: str = "VCT01"
    software: str = "sim-1.0"
    institution: str = "Virtual Hospital"


@dataclass(frozen=True)
class Protocol:
    """One CT protocol and the spread of its values across patients.

    CTDIvol is drawn log-normal (median, geometric SD); scan length normal.
    """

    name: str
    region_code: str  # SCT, CID 4030
    region_meaning: str
    phantom_cm: int
    ctdivol_median_mgy: float
    ctdivol_gsd: float = 1.25
    length_mm: tuple[float, float] = (400.0, 40.0)
    kvp: float = 120.0
    pitch: float = 0.984
    rotation_s: float = 0.5
    single_collimation_mm: float = 0.625
    total_collimation_mm: float = 40.0
    tube_current_ma: float = 200.0


PROTOCOLS: dict[str, Protocol] = {
    "head": Protocol("Routine Head", "69536005", "Head", 16, 50.0, 1.15, (150.0, 15.0),
                     kvp=120, pitch=0.53, rotation_s=1.0, total_collimation_mm=20.0,
                     tube_current_ma=300),
    "chest": Protocol("Routine Chest", "43799004", "Chest", 32, 8.0, 1.3, (330.0, 35.0)),
    "abdomen_pelvis": Protocol("Abdomen Pelvis", "818982008", "Abdomen and Pelvis", 32, 12.0,
                               1.3, (450.0, 45.0)),
    "chest_abdomen_pelvis": Protocol("CAP", "416775004", "Chest, Abdomen and Pelvis", 32, 10.0,
                                     1.3, (650.0, 50.0)),
    "petct_low_dose": Protocol("PET/CT whole body low dose", "38266002", "Entire body", 32, 3.0,
                               1.3, (950.0, 80.0), kvp=120, pitch=1.375, rotation_s=0.5),
}


@dataclass(frozen=True)
class PetProtocol:
    """PET part of a PET/CT exam."""

    activity_mbq_per_kg: tuple[float, float] = (3.0, 0.3)  # mean, SD
    uptake_min: tuple[float, float] = (62.0, 7.0)  # mean, SD
    bed_duration_s: float = 120.0
    bed_overlap_mm: float = 80.0
    axial_fov_mm: float = 260.0
    weight_kg: tuple[float, float] = (75.0, 14.0)
    write_rrdsr: bool = True


@dataclass
class Schedule:
    """When exams happen: first start, gap between patients (exponential, mean)."""

    start: dt.datetime = dt.datetime(2026, 3, 2, 8, 0)
    mean_gap_min: float = 12.0
    setup_min: tuple[float, float] = (2.0, 4.0)  # uniform: patient on table to localizer
    cleardown_min: tuple[float, float] = (1.0, 3.0)  # uniform: last acquisition to step end


# ----------------------------------------------------------------------------- helpers

def _ds(v: float) -> str:
    return format_number_as_ds(float(v))


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _dt(t: dt.datetime) -> str:
    return t.strftime("%Y%m%d%H%M%S.%f")


def _da(t: dt.datetime) -> str:
    return t.strftime("%Y%m%d")


def _tm(t: dt.datetime) -> str:
    return t.strftime("%H%M%S.%f")


def _item(rel: str, vt: str, concept: tuple[str, str, str]) -> Dataset:
    item = Dataset()
    item.RelationshipType = rel
    item.ValueType = vt
    item.ConceptNameCodeSequence = Sequence([_code(*concept)])
    if vt == "CONTAINER":
        item.ContinuityOfContent = "SEPARATE"
    return item


def _num(rel: str, concept: tuple[str, str, str], value: float, unit: str,
         unit_meaning: str) -> Dataset:
    item = _item(rel, "NUM", concept)
    mv = Dataset()
    mv.NumericValue = _ds(value)
    mv.MeasurementUnitsCodeSequence = Sequence([_code(unit, "UCUM", unit_meaning)])
    item.MeasuredValueSequence = Sequence([mv])
    return item


def _codeitem(rel: str, concept: tuple[str, str, str], value: tuple[str, str, str]) -> Dataset:
    item = _item(rel, "CODE", concept)
    item.ConceptCodeSequence = Sequence([_code(*value)])
    return item


def _text(rel: str, concept: tuple[str, str, str], value: str) -> Dataset:
    item = _item(rel, "TEXT", concept)
    item.TextValue = value
    return item


def _uidref(rel: str, concept: tuple[str, str, str], value: str) -> Dataset:
    item = _item(rel, "UIDREF", concept)
    item.UID = value
    return item


def _datetime(rel: str, concept: tuple[str, str, str], value: dt.datetime) -> Dataset:
    item = _item(rel, "DATETIME", concept)
    item.DateTime = _dt(value)
    return item


def _container(rel: str, concept: tuple[str, str, str], children: list[Dataset]) -> Dataset:
    item = _item(rel, "CONTAINER", concept)
    item.ContentSequence = Sequence(children)
    return item


@dataclass
class _Patient:
    name: str
    pid: str
    birth: dt.date
    sex: str
    weight_kg: float
    height_m: float
    lat_mm: float
    ap_mm: float

    @property
    def age_years(self) -> int:
        return int((dt.date(2026, 1, 1) - self.birth).days // 365.25)


@dataclass
class _Study:
    uid: str
    patient: _Patient
    device: DeviceSpec
    accession: str
    description: str
    start: dt.datetime  # performed procedure step start
    end: dt.datetime | None = None
    frame_of_reference: str = field(default_factory=lambda: str(generate_uid()))


def _file(ds: Dataset, sop_class: str, path: Path) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def _common(ds: Dataset, st: _Study, modality: str, sop_class: str, series_uid: str,
            series_number: int, when: dt.datetime, description: str) -> None:
    p = st.patient
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.StudyDate, ds.StudyTime = _da(st.start), _tm(st.start)
    ds.SeriesDate, ds.SeriesTime = _da(when), _tm(when)
    ds.ContentDate, ds.ContentTime = _da(when), _tm(when)
    ds.AccessionNumber = st.accession
    ds.Modality = modality
    ds.Manufacturer = st.device.manufacturer
    ds.InstitutionName = st.device.institution
    ds.ReferringPhysicianName = ""
    ds.StationName = st.device.station
    ds.StudyDescription = st.description
    ds.SeriesDescription = description
    ds.ManufacturerModelName = st.device.model
    ds.PatientName = p.name
    ds.PatientID = p.pid
    ds.PatientBirthDate = p.birth.strftime("%Y%m%d")
    ds.PatientSex = p.sex
    ds.PatientAge = f"{p.age_years:03d}Y"
    ds.PatientSize = _ds(p.height_m)
    ds.PatientWeight = _ds(round(p.weight_kg, 1))
    ds.DeviceSerialNumber = st.device.serial
    ds.SoftwareVersions = st.device.software
    ds.StudyInstanceUID = st.uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = st.accession[-8:]
    ds.SeriesNumber = series_number
    ds.InstanceNumber = 1
    if modality == "SR":  # the SR IODs have no Performed Procedure Step module
        return
    ds.Laterality = ""  # Type 2C in General Series: the body part is not paired
    ds.PerformedProcedureStepStartDate = _da(st.start)
    ds.PerformedProcedureStepStartTime = _tm(st.start)
    if st.end is not None:
        ds.PerformedProcedureStepEndDate = _da(st.end)
        ds.PerformedProcedureStepEndTime = _tm(st.end)
    ds.PerformedProcedureStepID = st.accession[-8:]
    ds.PerformedProcedureStepDescription = st.description


# ----------------------------------------------------------------------------- CT events

@dataclass
class _Event:
    uid: str
    kind: str  # "constant_angle" | "spiral"
    protocol: Protocol
    start: dt.datetime
    ctdivol_mgy: float
    scan_length_mm: float
    exposure_time_s: float
    series_uid: str
    series_number: int
    z_start_mm: float = 0.0

    @property
    def dlp_mgycm(self) -> float:
        return round(self.ctdivol_mgy, 2) * self.scan_length_mm / 10

    @property
    def end(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=self.exposure_time_s)


def _ct_events(rng: np.random.Generator, protocol: Protocol, at: dt.datetime,
               patient_height_m: float) -> list[_Event]:
    """A localizer then one helical acquisition of the protocol, starting at ``at``."""
    length = float(max(60.0, rng.normal(*protocol.length_mm)))
    if protocol.name.startswith("PET/CT"):
        length = float(min(length, patient_height_m * 1000 * 0.6))
    loc_len = length + 100.0
    loc_time = loc_len / 100.0  # 100 mm/s table speed for the scout
    loc = _Event(str(generate_uid()), "constant_angle", protocol, at, 0.08 + 0.04 * rng.random(),
                 loc_len, round(loc_time, 2), str(generate_uid()), 1)
    ctdi = float(protocol.ctdivol_median_mgy * protocol.ctdivol_gsd ** rng.normal())
    feed = protocol.pitch * protocol.total_collimation_mm  # mm per rotation
    exposure = protocol.rotation_s * length / feed
    start = loc.end + dt.timedelta(seconds=float(rng.uniform(40, 90)))
    heli = _Event(str(generate_uid()), "spiral", protocol, start, ctdi, length,
                  round(exposure, 2), str(generate_uid()), 2)
    return [loc, heli]


def _round2(v: float) -> float:
    return float(f"{v:.2f}")


def _ct_rdsr(st: _Study, events: list[_Event], path: Path) -> dict[str, Any]:
    """Write the CT Radiation Dose SR of the study; returns its truth."""
    ds = Dataset()
    when = events[-1].end + dt.timedelta(seconds=30)
    _common(ds, st, "SR", XRAY_DOSE_SR, str(generate_uid()), 997, when, "Radiation Dose Report")
    ds.ReferencedPerformedProcedureStepSequence = Sequence()
    ds.PerformedProcedureCodeSequence = Sequence()
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = Sequence([_code("113701", "DCM", "X-Ray Radiation Dose Report")])
    ds.ContinuityOfContent = "SEPARATE"
    tmpl = Dataset()
    tmpl.MappingResource = "DCMR"
    tmpl.TemplateIdentifier = "10011"
    ds.ContentTemplateSequence = Sequence([tmpl])
    proc = _codeitem("HAS CONCEPT MOD", ("121058", "DCM", "Procedure reported"),
                     ("77477000", "SCT", "Computed Tomography X-Ray"))
    proc.ContentSequence = Sequence([_codeitem("HAS CONCEPT MOD", ("363675004", "SCT",
                                                                   "Has Intent"),
                                               ("261004008", "SCT", "Diagnostic Intent"))])
    total = sum(_round2(e.dlp_mgycm) for e in events)
    content = [
        proc,
        _codeitem("HAS OBS CONTEXT", ("121005", "DCM", "Observer Type"),
                  ("121007", "DCM", "Device")),
        _uidref("HAS OBS CONTEXT", ("121012", "DCM", "Device Observer UID"),
                "2.25." + str(abs(hash((st.device.serial, st.device.model))) % 10**30)),
        _text("HAS OBS CONTEXT", ("121013", "DCM", "Device Observer Name"), st.device.station),
        _text("HAS OBS CONTEXT", ("121014", "DCM", "Device Observer Manufacturer"),
              st.device.manufacturer),
        _text("HAS OBS CONTEXT", ("121015", "DCM", "Device Observer Model Name"),
              st.device.model),
        _text("HAS OBS CONTEXT", ("121016", "DCM", "Device Observer Serial Number"),
              st.device.serial),
        _datetime("HAS OBS CONTEXT", ("113809", "DCM", "Start of X-Ray Irradiation"),
                  events[0].start),
        _datetime("HAS OBS CONTEXT", ("113810", "DCM", "End of X-Ray Irradiation"),
                  events[-1].end),
    ]
    scope = _codeitem("HAS OBS CONTEXT", ("113705", "DCM", "Scope of Accumulation"),
                      ("113014", "DCM", "Study"))
    scope.ContentSequence = Sequence([_uidref("HAS PROPERTIES", ("110180", "DCM",
                                                                 "Study Instance UID"), st.uid)])
    content.append(scope)
    content.append(_container("CONTAINS", ("113811", "DCM", "CT Accumulated Dose Data"), [
        _num("CONTAINS", ("113812", "DCM", "Total Number of Irradiation Events"), len(events),
             "{events}", "events"),
        _num("CONTAINS", ("113813", "DCM", "CT Dose Length Product Total"), total, "mGy.cm",
             "mGy.cm"),
    ]))
    for e in events:
        p = e.protocol
        acq_type = (("113805", "DCM", "Constant Angle Acquisition") if e.kind == "constant_angle"
                    else ("116152004", "SCT", "Spiral Acquisition"))
        params = [
            _num("CONTAINS", ("113824", "DCM", "Exposure Time"), e.exposure_time_s, "s",
                 "seconds"),
            _num("CONTAINS", ("113825", "DCM", "Scanning Length"), e.scan_length_mm, "mm", "mm"),
            _num("CONTAINS", ("113826", "DCM", "Nominal Single Collimation Width"),
                 p.single_collimation_mm, "mm", "mm"),
            _num("CONTAINS", ("113827", "DCM", "Nominal Total Collimation Width"),
                 p.total_collimation_mm if e.kind == "spiral" else p.single_collimation_mm * 2,
                 "mm", "mm"),
        ]
        if e.kind == "spiral":
            params.append(_num("CONTAINS", ("113828", "DCM", "Pitch Factor"), p.pitch,
                               "{ratio}", "ratio"))
        params.append(_num("CONTAINS", ("113823", "DCM", "Number of X-Ray Sources"), 1,
                           "{X-Ray sources}", "X-Ray sources"))
        current = p.tube_current_ma if e.kind == "spiral" else 20.0
        params.append(_container("CONTAINS", ("113831", "DCM", "CT X-Ray Source Parameters"), [
            _text("CONTAINS", ("113832", "DCM", "Identification of the X-Ray Source"), "A"),
            _num("CONTAINS", ("113733", "DCM", "KVP"), p.kvp, "kV", "kV"),
            _num("CONTAINS", ("113833", "DCM", "Maximum X-Ray Tube Current"), current * 1.4,
                 "mA", "mA"),
            _num("CONTAINS", ("113734", "DCM", "X-Ray Tube Current"), current, "mA", "mA"),
            _num("CONTAINS", ("113834", "DCM", "Exposure Time per Rotation"), p.rotation_s, "s",
                 "s"),
        ]))
        phantom = (("113690", "DCM", "IEC Head Dosimetry Phantom") if p.phantom_cm == 16
                   else ("113691", "DCM", "IEC Body Dosimetry Phantom"))
        acq = _container("CONTAINS", ("113819", "DCM", "CT Acquisition"), [
            _text("CONTAINS", ("125203", "DCM", "Acquisition Protocol"), p.name),
            _codeitem("CONTAINS", ("123014", "DCM", "Target Region"),
                      (p.region_code, "SCT", p.region_meaning)),
            _codeitem("CONTAINS", ("113820", "DCM", "CT Acquisition Type"), acq_type),
            _uidref("CONTAINS", ("113769", "DCM", "Irradiation Event UID"), e.uid),
            _container("CONTAINS", ("113822", "DCM", "CT Acquisition Parameters"), params),
            _container("CONTAINS", ("113829", "DCM", "CT Dose"), [
                _num("CONTAINS", ("113830", "DCM", "Mean CTDIvol"), _round2(e.ctdivol_mgy),
                     "mGy", "mGy"),
                _codeitem("CONTAINS", ("113835", "DCM", "CTDIw Phantom Type"), phantom),
                _num("CONTAINS", ("113838", "DCM", "DLP"), _round2(e.dlp_mgycm), "mGy.cm",
                     "mGy.cm"),
            ]),
        ])
        content.append(acq)
    content.append(_codeitem("CONTAINS", ("113854", "DCM", "Source of Dose Information"),
                             ("113856", "DCM", "Automated Data Collection")))
    ds.ContentSequence = Sequence(content)
    _file(ds, XRAY_DOSE_SR, path)
    return {"total_dlp_mgycm": _round2(total),
            "events": [{"event_uid": e.uid, "acquisition_type": e.kind,
                        "ctdivol_mgy": _round2(e.ctdivol_mgy), "phantom_cm": e.protocol.phantom_cm,
                        "dlp_mgycm": _round2(e.dlp_mgycm), "scan_length_mm": e.scan_length_mm,
                        "exposure_time_s": e.exposure_time_s, "target_region":
                        e.protocol.region_meaning}
                       for e in events],
            "irradiation_start": events[0].start.isoformat(),
            "irradiation_end": events[-1].end.isoformat()}


# ----------------------------------------------------------------------------- CT images

def body_slice(patient: _Patient, matrix: int, fov_mm: float, supersample: int = 4
               ) -> np.ndarray:
    """One axial slice in HU: water ellipse (LAT × AP) with two −800 HU lungs, air
    around, and a table (−100 HU foam plate, 10 mm thick) 15 mm below the body."""
    n = matrix * supersample
    px = fov_mm / n
    c = (np.arange(n) + 0.5) * px - fov_mm / 2
    x, y = np.meshgrid(c, c)
    a, b = patient.lat_mm / 2, patient.ap_mm / 2
    body = (x / a) ** 2 + (y / b) ** 2 <= 1
    lung = (((x - 0.45 * a) / (0.25 * a)) ** 2 + (y / (0.5 * b)) ** 2 <= 1) | \
        (((x + 0.45 * a) / (0.25 * a)) ** 2 + (y / (0.5 * b)) ** 2 <= 1)
    table = (y >= b + 15) & (y <= b + 25) & (np.abs(x) <= 0.8 * fov_mm / 2)
    hu = np.full((n, n), -1000.0)
    hu[table] = -100.0
    hu[body] = 0.0
    hu[body & lung] = -800.0
    return hu.reshape(matrix, supersample, matrix, supersample).mean(axis=(1, 3))


def water_equivalent_diameter_truth(patient: _Patient) -> float:
    """Closed form D_w (mm) of :func:`body_slice`: body area minus 0.8 × lung area."""
    a, b = patient.lat_mm / 2, patient.ap_mm / 2
    area_body = math.pi * a * b
    area_lungs = 2 * math.pi * (0.25 * a) * (0.5 * b)
    water_area = area_body - 0.8 * area_lungs
    return 2 * math.sqrt(water_area / math.pi)


def _ct_series(st: _Study, e: _Event, out: Path, matrix: int, slice_mm: float,
               volume: np.ndarray | None = None, fov_mm: float = 500.0,
               z_mm: np.ndarray | None = None) -> list[Path]:
    """The event's CT images: the water body of :func:`body_slice` on every slice, or
    ``volume`` (slices, rows, columns in HU: a virtual patient's) over ``fov_mm`` at
    the slice positions ``z_mm`` (default: from the event's start down)."""
    p = e.protocol
    fov = fov_mm
    if volume is not None:
        n, matrix = volume.shape[0], volume.shape[1]
        vol_stored = np.clip(np.round(volume + 1024), 0, 4095).astype(np.uint16)
    else:
        hu = body_slice(st.patient, matrix, fov)
        stored = np.clip(np.round(hu + 1024), 0, 4095).astype(np.uint16)
        n = 1 if e.kind == "constant_angle" else max(
            1, int((e.scan_length_mm - p.total_collimation_mm) // slice_mm))
    paths = []
    for k in range(n):
        if volume is not None:
            stored = vol_stored[k]
        ds = Dataset()
        _common(ds, st, "CT", CTImageStorage, e.series_uid, e.series_number, e.start,
                "Topogram" if e.kind == "constant_angle" else f"{p.name} {slice_mm:g} mm")
        ds.ImageType = (["ORIGINAL", "PRIMARY", "LOCALIZER"] if e.kind == "constant_angle"
                        else ["ORIGINAL", "PRIMARY", "AXIAL"])
        ds.InstanceNumber = k + 1
        t = e.start + dt.timedelta(seconds=e.exposure_time_s * k / max(n, 1))
        ds.AcquisitionDate, ds.AcquisitionTime = _da(t), _tm(t)
        ds.AcquisitionDateTime = _dt(t)
        ds.ContentDate, ds.ContentTime = _da(t), _tm(t)
        ds.AcquisitionNumber = e.series_number
        ds.ScanOptions = "SURVIEW" if e.kind == "constant_angle" else "HELICAL_CT"
        ds.SliceThickness = _ds(slice_mm)
        ds.KVP = _ds(p.kvp)
        ds.DataCollectionDiameter = _ds(fov)
        ds.ReconstructionDiameter = _ds(fov)
        ds.GantryDetectorTilt = "0"
        ds.TableHeight = "150"
        ds.RotationDirection = "CW"
        ds.ExposureTime = str(round(p.rotation_s * 1000))
        ds.XRayTubeCurrent = str(int(p.tube_current_ma))
        ds.Exposure = str(int(p.tube_current_ma * p.rotation_s))
        ds.ConvolutionKernel = "STANDARD"
        ds.PatientPosition = "HFS"
        ds.RevolutionTime = p.rotation_s
        ds.SingleCollimationWidth = p.single_collimation_mm
        ds.TotalCollimationWidth = p.total_collimation_mm
        ds.SpiralPitchFactor = p.pitch
        ds.CTDIvol = _round2(e.ctdivol_mgy)
        ds.CTDIPhantomTypeCodeSequence = Sequence([
            _code("113690", "DCM", "IEC Head Dosimetry Phantom") if p.phantom_cm == 16 else
            _code("113691", "DCM", "IEC Body Dosimetry Phantom")])
        ds.IrradiationEventUID = e.uid
        ds.FrameOfReferenceUID = st.frame_of_reference
        ds.PositionReferenceIndicator = ""
        z = (float(z_mm[k]) if z_mm is not None else
             -(e.z_start_mm + slice_mm / 2 + k * slice_mm + p.total_collimation_mm / 2))
        ds.ImagePositionPatient = [_ds(-fov / 2 + fov / matrix / 2),
                                   _ds(-fov / 2 + fov / matrix / 2), _ds(z)]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.SliceLocation = _ds(z)
        ds.PixelSpacing = [_ds(fov / matrix), _ds(fov / matrix)]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ds.Columns = matrix
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.PixelRepresentation = 0
        ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
        if e.kind != "constant_angle":
            ds.RescaleType = "HU"
        ds.WindowCenter, ds.WindowWidth = "40", "400"
        ds.PixelData = stored.tobytes()
        path = out / f"CT{e.series_number:03d}_{k + 1:04d}.dcm"
        _file(ds, CTImageStorage, path)
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------- PET

def _pet_series(st: _Study, out: Path, beds: list[tuple[dt.datetime, float]],
                activity_mbq: float, injected: dt.datetime, bed_s: float, matrix: int = 32,
                volume: np.ndarray | None = None, xy_mm: np.ndarray | None = None,
                z_mm: np.ndarray | None = None) -> None:
    """The PET series: three uniform slices a bed (80 mm apart: the times are what
    matter), or ``volume`` (z ascending, rows, columns; Bq/mL at the scan start: a
    virtual patient's, on the pixel centres ``xy_mm`` and slice centres ``z_mm``). The
    virtual patient's field is a part of the whole-body scan: its slices, from the top
    down, take the beds' acquisition times in order, so that the exam's first and last
    PET acquisition stay those of all its beds."""
    series_uid = str(generate_uid())
    half_life = 6586.2
    # (bed, z mm, index into volume or None)
    planes: list[tuple[int, float, int | None]]
    if volume is None or xy_mm is None or z_mm is None:
        planes = [(b, -(z0 + k * 80.0), None) for b, (_, z0) in enumerate(beds)
                  for k in range(3)]
        pixel_mm, corner, thick = 600 / matrix, -300.0, 80.0
    else:
        down = [int(k) for k in np.argsort(-np.asarray(z_mm))]
        planes = [(r * len(beds) // len(down), float(z_mm[k]), k) for r, k in enumerate(down)]
        pixel_mm = float(xy_mm[1] - xy_mm[0])
        corner, thick, matrix = float(xy_mm[0]), float(abs(z_mm[1] - z_mm[0])), len(xy_mm)
    for i, (b, z, k) in enumerate(planes):
        start = beds[b][0]
        ds = Dataset()
        _common(ds, st, "PT", PositronEmissionTomographyImageStorage, series_uid, 4,
                beds[0][0], "PET WB AC")
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.InstanceNumber = i + 1
        ds.AcquisitionDate, ds.AcquisitionTime = _da(start), _tm(start)
        ds.AcquisitionDateTime = _dt(start)
        ds.ContentDate, ds.ContentTime = _da(start), _tm(start)
        ds.SeriesType = ["WHOLE BODY", "IMAGE"]
        ds.Units = "BQML"
        ds.CountsSource = "EMISSION"
        ds.DecayCorrection = "START"
        ds.CorrectedImage = ["DECY", "ATTN", "SCAT", "DTIM", "RAN", "NORM"]
        ds.RandomsCorrectionMethod = "DLYD"
        ds.AttenuationCorrectionMethod = "CT"
        ds.ReconstructionMethod = "OSEM"
        ds.CollimatorType = "NONE"
        ds.ImageIndex = i + 1
        ds.NumberOfSlices = len(planes)
        ds.ActualFrameDuration = int(bed_s * 1000)
        ds.FrameReferenceTime = 0
        ds.DecayFactor = "1"
        ds.SliceSensitivityFactor = "1"
        ds.PatientGantryRelationshipCodeSequence = Sequence([
            _code("102540008", "SCT", "headfirst")])
        ds.PatientOrientationCodeSequence = Sequence([
            _code("102538003", "SCT", "recumbent")])
        info = Dataset()
        info.Radiopharmaceutical = "Fluorodeoxyglucose"
        info.RadiopharmaceuticalStartTime = _tm(injected)
        info.RadiopharmaceuticalStartDateTime = _dt(injected)
        info.RadionuclideTotalDose = _ds(activity_mbq * 1e6)
        info.RadionuclideHalfLife = _ds(half_life)
        info.RadionuclidePositronFraction = "0.9673"
        info.RadiopharmaceuticalRoute = "Intravenous route"
        info.RadionuclideCodeSequence = Sequence([_code("77004003", "SCT",
                                                        "^18^Fluorine")])
        info.RadiopharmaceuticalCodeSequence = Sequence([
            _code("35321007", "SCT", "Fluorodeoxyglucose F^18^")])
        ds.RadiopharmaceuticalInformationSequence = Sequence([info])
        ds.FrameOfReferenceUID = st.frame_of_reference
        ds.PositionReferenceIndicator = ""
        ds.ImagePositionPatient = [_ds(corner), _ds(corner), _ds(z)]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.SliceThickness = _ds(thick)
        ds.PixelSpacing = [_ds(pixel_mm), _ds(pixel_mm)]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ds.Columns = matrix
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        if k is None or volume is None:
            ds.PixelRepresentation = 0
            ds.RescaleIntercept, ds.RescaleSlope = "0", "1"
            ds.PixelData = np.full((matrix, matrix), 100, np.uint16).tobytes()
        else:
            # signed, a slope per slice (as scanners store PET): the noise may dip
            # below zero where there is little activity
            plane = volume[k].astype(np.float64)
            top = float(np.max(np.abs(plane)))
            slope = top / 32000.0 if top > 0 else 1.0
            ds.PixelRepresentation = 1
            ds.RescaleIntercept, ds.RescaleSlope = "0", _ds(slope)
            ds.PixelData = np.round(plane / float(_ds(slope))).clip(
                -32768, 32767).astype("<i2").tobytes()
        _file(ds, PositronEmissionTomographyImageStorage, out / f"PT_{i + 1:04d}.dcm")


def _virtual_petct(st: _Study, e: _Event, folder: Path, beds: list[tuple[dt.datetime, float]],
                   activity_mbq: float, injected: dt.datetime, uptake_min: float,
                   bed_s: float, grid: dict[str, float], seed: int) -> dict[str, Any]:
    """The exam's PET and low-dose CT as a virtual FDG patient
    (:func:`simulate_petct_exams`, ``patient_grid``); returns its truth."""
    from scanbench.simulate.ct_patient import VirtualPatient, known_noise_hu
    from scanbench.simulate.pet_patient import PetPatient, pet_grid, render_ct, render_pet

    pt = st.patient
    ctdi = _round2(e.ctdivol_mgy)
    # CT noise of the low-dose CT: ct_patient's model at the event's CTDIvol, the body's
    # effective diameter sqrt(LAT × AP) standing for its water-equivalent diameter
    ct_sigma = known_noise_hu(VirtualPatient(lat_mm=pt.lat_mm, ap_mm=pt.ap_mm,
                                             ctdivol_mgy=ctdi,
                                             slice_mm=float(grid.get("ct_slice_mm", 3.0))),
                              math.sqrt(pt.lat_mm * pt.ap_mm))
    p = PetPatient(lat_mm=pt.lat_mm, ap_mm=pt.ap_mm, weight_kg=round(pt.weight_kg, 1),
                   injected_mbq=activity_mbq, uptake_min=uptake_min, bed_s=bed_s,
                   ct_noise_hu=ct_sigma, **grid)  # type: ignore[arg-type]
    p.check()
    x, _, z = pet_grid(p)
    _pet_series(st, folder / "pet", beds, activity_mbq, injected, bed_s,
                volume=render_pet(p, seed), xy_mm=x, z_mm=z)
    ct, cx, _, cz = render_ct(p, seed)
    _ct_series(st, e, folder / f"series_{e.series_number:03d}", ct.shape[1],
               p.ct_slice_mm, volume=ct, fov_mm=p.ct_pixel_mm * cx.size, z_mm=cz)
    return {"liver_cov_percent": 100.0 * p.liver_cov(), "liver_suv_mean": p.liver_suv,
            "ct_image_noise_hu": ct_sigma}


def _rrdsr(st: _Study, path: Path, activity_mbq: float, injected: dt.datetime) -> str:
    ds = Dataset()
    when = injected + dt.timedelta(minutes=1)
    _common(ds, st, "SR", RADIOPHARMACEUTICAL_SR, str(generate_uid()), 998, when,
            "Radiopharmaceutical Dose Report")
    ds.ReferencedPerformedProcedureStepSequence = Sequence()
    ds.PerformedProcedureCodeSequence = Sequence()
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = Sequence([_code("113500", "DCM",
                                                 "Radiopharmaceutical Radiation Dose Report")])
    ds.ContinuityOfContent = "SEPARATE"
    tmpl = Dataset()
    tmpl.MappingResource = "DCMR"
    tmpl.TemplateIdentifier = "10021"
    ds.ContentTemplateSequence = Sequence([tmpl])
    event_uid = str(generate_uid())
    agent = _codeitem("CONTAINS", ("349358000", "SCT", "Radiopharmaceutical agent"),
                      ("35321007", "SCT", "Fluorodeoxyglucose F^18^"))
    agent.ContentSequence = Sequence([
        _codeitem("HAS PROPERTIES", ("89457008", "SCT", "Radionuclide"),
                  ("77004003", "SCT", "^18^Fluorine")),
        _num("HAS PROPERTIES", ("304283002", "SCT", "Radionuclide half life"), 6586.2, "s",
             "s")])
    p = st.patient
    ds.ContentSequence = Sequence([
        _codeitem("HAS CONCEPT MOD", ("363589002", "SCT", "Associated Procedure"),
                  ("44139005", "SCT", "Positron emission tomography")),
        _container("CONTAINS", ("113502", "DCM", "Radiopharmaceutical Administration"), [
            agent,
            _uidref("CONTAINS", ("113503", "DCM", "Radiopharmaceutical Administration Event UID"),
                    event_uid),
            _datetime("CONTAINS", ("123003", "DCM", "Radiopharmaceutical Start DateTime"),
                      injected),
            _datetime("CONTAINS", ("123004", "DCM", "Radiopharmaceutical Stop DateTime"),
                      injected + dt.timedelta(seconds=20)),
            _num("CONTAINS", ("113507", "DCM", "Administered activity"), round(activity_mbq, 1),
                 "MBq", "MBq"),
            _codeitem("CONTAINS", ("410675002", "SCT", "Route of administration"),
                      ("47625008", "SCT", "Intravenous route")),
        ]),
        _container("CONTAINS", ("121118", "DCM", "Patient Characteristics"), [
            _num("CONTAINS", ("121033", "DCM", "Subject Age"), p.age_years, "a", "year"),
            _codeitem("CONTAINS", ("121032", "DCM", "Subject Sex"),
                      (p.sex, "DCM", {"M": "Male", "F": "Female"}[p.sex])),
            _num("CONTAINS", ("8302-2", "LN", "Patient Height"), p.height_m, "m", "m"),
            _num("CONTAINS", ("29463-7", "LN", "Patient Weight"), round(p.weight_kg, 1), "kg",
                 "kg"),
        ]),
    ])
    _file(ds, RADIOPHARMACEUTICAL_SR, path)
    return event_uid


# ----------------------------------------------------------------------------- exams

def _patient(rng: np.random.Generator, i: int, weight: tuple[float, float] = (75.0, 14.0)
             ) -> _Patient:
    sex = "M" if rng.random() < 0.5 else "F"
    height = float(np.clip(rng.normal(1.76 if sex == "M" else 1.63, 0.07), 1.45, 2.0))
    weight_kg = float(np.clip(rng.normal(*weight), 40, 160))
    # Body cross-section scales with the square root of BMI (stated model, not anatomy).
    scale = math.sqrt((weight_kg / height ** 2) / 25.0)
    lat = float(np.clip(rng.normal(330, 15) * scale, 220, 480))
    ap = float(np.clip(lat * rng.normal(0.7, 0.04), 150, 380))
    born = dt.date(1940, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365 * 60)))
    return _Patient(f"SIM^PATIENT{i:03d}", f"SIM{i:05d}", born, sex, weight_kg, height, lat, ap)


def simulate_ct_exams(out: Path, *, n: int = 5, protocols: tuple[str, ...] = (
        "chest", "abdomen_pelvis", "head"), schedule: Schedule | None = None,
        device: DeviceSpec = DeviceSpec(), seed: int = 0, images: bool = True,
        rdsr: bool = True, matrix: int = 64, slice_mm: float = 10.0,
        patient_slices: int = 0, patient_matrix: int = 256) -> list[dict[str, Any]]:
    """Write ``n`` CT exams under ``out`` (one folder each) and ``out/truth.json``.

    ``patient_slices`` > 0 (with ``images`` false): each body exam's helical series is
    instead a virtual patient of :mod:`scanbench.simulate.ct_patient` (that many 5 mm
    axial slices, ``patient_matrix`` pixels square): the exam patient's LAT × AP, the
    chest (with lungs) or the abdomen, noise from the exam's CTDIvol by that module's
    noise model; its known noise is in the exam's truth (``image_noise_hu``). A head
    exam has no images (the virtual patient is a trunk)."""
    for name in protocols:
        if name not in PROTOCOLS:
            raise ValueError(f"unknown protocol '{name}' (known: {', '.join(PROTOCOLS)})")
    if n < 1:
        raise ValueError("n must be at least 1")
    rng = np.random.default_rng(seed)
    sched = schedule or Schedule()
    t = sched.start
    truths = []
    for i in range(n):
        protocol = PROTOCOLS[protocols[i % len(protocols)]]
        patient = _patient(rng, i + 1)
        st = _Study(str(generate_uid()), patient, device, f"SIM{seed:03d}{i:05d}",
                    f"CT {protocol.name}", t)
        first = t + dt.timedelta(minutes=float(rng.uniform(*sched.setup_min)))
        events = _ct_events(rng, protocol, first, patient.height_m)
        st.end = events[-1].end + dt.timedelta(minutes=float(rng.uniform(*sched.cleardown_min)))
        folder = out / f"exam_{i + 1:03d}"
        truth = _exam_truth(st, events, folder)
        if rdsr:
            truth.update(_ct_rdsr(st, events, folder / "dose_report.dcm"))
        else:
            truth["total_dlp_mgycm"] = None
        if images:
            for e in events:
                _ct_series(st, e, folder / f"series_{e.series_number:03d}", matrix, slice_mm)
        elif patient_slices > 0 and protocol.phantom_cm == 32:
            truth.update(_virtual_ct(st, events[-1], folder / "series_002", patient_slices,
                                     patient_matrix, seed * 10007 + i))
        truths.append(truth)
        t = st.end + dt.timedelta(minutes=float(rng.exponential(sched.mean_gap_min)))
    _write_truth(out, "ct-exam", seed, truths)
    return truths


def _virtual_ct(st: _Study, e: _Event, out: Path, slices: int, matrix: int, seed: int
                ) -> dict[str, Any]:
    """The helical event ``e`` as a virtual CT patient's axial series (its own seeded
    generator: the exam's dose and times draw nothing more); returns its truth."""
    from scanbench.simulate.ct_patient import VirtualPatient, virtual_patient

    vp = VirtualPatient(lat_mm=st.patient.lat_mm, ap_mm=st.patient.ap_mm,
                        region="chest" if e.protocol.region_code == "43799004" else "abdomen",
                        ctdivol_mgy=_round2(e.ctdivol_mgy), kvp=e.protocol.kvp,
                        slice_mm=5.0, slices=slices, matrix=matrix)
    vol, t = virtual_patient(vp, seed)
    _ct_series(st, e, out, matrix, vp.slice_mm, volume=vol, fov_mm=vp.field_of_view_mm)
    return {"image_noise_hu": t["noise_hu"], "image_region": vp.region}


def _exam_truth(st: _Study, events: list[_Event], folder: Path) -> dict[str, Any]:
    helical = [e for e in events if e.kind == "spiral"]
    dw = water_equivalent_diameter_truth(st.patient)
    truth: dict[str, Any] = {
        "folder": folder.name, "study_instance_uid": st.uid,
        "device": {"manufacturer": st.device.manufacturer, "model": st.device.model,
                   "serial": st.device.serial},
        "patient": {"age_years": st.patient.age_years, "sex": st.patient.sex,
                    "weight_kg": st.patient.weight_kg, "height_m": st.patient.height_m,
                    "lat_mm": st.patient.lat_mm, "ap_mm": st.patient.ap_mm},
        "start": st.start.isoformat(), "end": st.end.isoformat() if st.end else None,
        "first_acquisition": events[0].start.isoformat(),
        "last_acquisition_start": events[-1].start.isoformat(),
        "water_equivalent_diameter_mm": dw,
        "number_of_series": len(events),
    }
    if helical:
        e = helical[0]
        try:
            truth["ssde_mgy"] = ssde_mgy(_round2(e.ctdivol_mgy), dw / 10, e.protocol.phantom_cm)
        except Exception:  # outside the fit range: no truth to give
            truth["ssde_mgy"] = None
    return truth


def _write_truth(out: Path, kind: str, seed: int, exams: list[dict[str, Any]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "truth.json").write_text(json.dumps(
        {"generator": f"scanbench simulate {kind}", "seed": seed, "exams": exams}, indent=1))


def simulate_petct_exams(out: Path, *, n: int = 3, pet: PetProtocol = PetProtocol(),
                         schedule: Schedule | None = None,
                         device: DeviceSpec = DeviceSpec(model="Virtual PET/CT",
                                                         serial="VPC-0001", station="VPC01"),
                         seed: int = 0, ct_images: bool = False,
                         patient_grid: dict[str, float] | None = None
                         ) -> list[dict[str, Any]]:
    """Write ``n`` FDG PET/CT exams under ``out`` and ``out/truth.json``: CT dose report
    (low-dose CT), PET image slices with header dose fields, optionally an RRDSR.

    ``patient_grid`` (keyword arguments of
    :class:`scanbench.simulate.pet_patient.PetPatient`: voxel sizes and the field,
    e.g. :data:`scanbench.simulate.pet_patient.SMALL_GRID`): the PET images and the
    low-dose CT (the helical event's series) are a virtual FDG patient of that module on
    one frame of reference — the exam patient's LAT × AP and weight, its administered
    activity, uptake time and time per bed, the CT's noise from the event's CTDIvol by
    :mod:`scanbench.simulate.ct_patient`'s noise model — instead of uniform PET slices;
    the liver's known COV is in the exam's truth (``liver_cov_percent``)."""
    if n < 1:
        raise ValueError("n must be at least 1")
    rng = np.random.default_rng(seed)
    sched = schedule or Schedule(mean_gap_min=8.0)
    t = sched.start
    truths = []
    protocol = PROTOCOLS["petct_low_dose"]
    for i in range(n):
        patient = _patient(rng, i + 1, pet.weight_kg)
        st = _Study(str(generate_uid()), patient, device, f"SIMPET{seed:03d}{i:04d}",
                    "PET/CT FDG whole body", t)
        uptake = float(max(20.0, rng.normal(*pet.uptake_min)))
        first_ct = t + dt.timedelta(minutes=float(rng.uniform(*sched.setup_min)))
        events = _ct_events(rng, protocol, first_ct, patient.height_m)
        pet_start = events[-1].end + dt.timedelta(seconds=float(rng.uniform(30, 90)))
        injected = pet_start - dt.timedelta(minutes=uptake)
        activity = float(max(50.0, rng.normal(*pet.activity_mbq_per_kg) * patient.weight_kg))
        n_beds = max(1, math.ceil((events[-1].scan_length_mm - pet.bed_overlap_mm)
                                  / (pet.axial_fov_mm - pet.bed_overlap_mm)))
        beds = [(pet_start + dt.timedelta(seconds=b * (pet.bed_duration_s + 5)),
                 b * (pet.axial_fov_mm - pet.bed_overlap_mm)) for b in range(n_beds)]
        pet_end = beds[-1][0] + dt.timedelta(seconds=pet.bed_duration_s)
        st.end = pet_end + dt.timedelta(minutes=float(rng.uniform(*sched.cleardown_min)))
        folder = out / f"exam_{i + 1:03d}"
        truth = _exam_truth(st, events, folder)
        truth.update(_ct_rdsr(st, events, folder / "ct_dose_report.dcm"))
        if ct_images:
            for e in events:
                _ct_series(st, e, folder / f"series_{e.series_number:03d}", 64, 10.0)
        if patient_grid is not None:
            truth.update(_virtual_petct(st, events[-1], folder, beds, activity, injected,
                                        uptake, pet.bed_duration_s, patient_grid,
                                        seed * 10007 + i))
        else:
            _pet_series(st, folder / "pet", beds, activity, injected, pet.bed_duration_s)
        truth.update({
            "administered_activity_mbq": round(activity, 1) if pet.write_rrdsr else activity,
            "injection": injected.isoformat(), "first_pet_acquisition": pet_start.isoformat(),
            "uptake_time_min": uptake, "pet_end": pet_end.isoformat(), "beds": n_beds,
            "number_of_series": (len(events) if ct_images else
                                 1 if patient_grid is not None else 0) + 1,
        })
        if pet.write_rrdsr:
            truth["radiopharmaceutical_event_uid"] = _rrdsr(st, folder / "rrdsr.dcm", activity,
                                                            injected)
        truths.append(truth)
        t = st.end + dt.timedelta(minutes=float(rng.exponential(sched.mean_gap_min)))
    _write_truth(out, "petct-exam", seed, truths)
    return truths

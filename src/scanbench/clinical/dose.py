"""Patient dose per study from clinical DICOM: CT dose reports, radiopharmaceutical
dose reports, and header fallbacks when no report exists.

CT Radiation Dose SR (PS3.16 TID 10011 → TID 10012 accumulated data, TID 10013
irradiation events; codes in STANDARDS.md D.1), read by (code value, coding
scheme) with :mod:`scanbench.clinical.sr`:

- root 113701 "X-Ray Radiation Dose Report" whose procedure reported (121058)
  is CT (SCT 77477000 / SRT P5-08000), or which holds CT Acquisition
  containers (113819);
- per CT Acquisition: protocol 125203, target region 123014, acquisition type
  113820 (CID 10013), Irradiation Event UID 113769, acquisition parameters
  113822 (exposure time 113824, scanning length 113825, collimation 113826 /
  113827, pitch 113828, sources 113823; per source 113831: kVp 113733, maximum
  and mean tube current 113833 / 113734, rotation time 113834), CT Dose 113829
  (mean CTDIvol 113830, CTDIw phantom type 113835 = 113690 head 16 cm /
  113691 body 32 cm, DLP 113838, SSDE 113930, water-equivalent diameter
  113980), dose-check details 113900 / 113908 (NEMA XR 25);
- accumulated: total events 113812 and CT Dose Length Product Total 113813;
  irradiation start and end 113809 / 113810.

Vendors differ. What scanbench does about each case is said in the study's
warnings: localizer events with no CT Dose container (their DLP counts as
zero), a missing phantom code (assumed from a coded head/body target region,
else left unknown), malformed numbers, non-UCUM units, a reported total that
disagrees with the sum of the events.

Several reports of one study (continued or repeated: a report after each
acquisition, or re-sent) are merged by Study Instance UID; events are keyed on
their Irradiation Event UID so none is counted twice. The study total is the
reported total (113813) of a report that covers every merged event, else the
sum of the unique events' DLP (with a warning).

Fallbacks when a study has no CT dose report: CTDIvol (0018,9345) per image
series from the image headers (one event per Irradiation Event UID (0008,3010)
where the images give it, else per series), with DLP estimated as CTDIvol ×
the reconstructed length; and a CT dose-information secondary capture that
carries the Exposure Dose Sequence (0040,030E) (Philips), read from that
sequence. A dose screen without it is listed as "not parsed" — scanbench does
no OCR of burned-in text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

from scanbench.clinical import effective_dose as ed
from scanbench.clinical import radiopharmaceutical as rp
from scanbench.clinical import sr
from scanbench.clinical.inputs import scan
from scanbench.clinical.sr import Code, dcm, sct
from scanbench.clinical.units import convert
from scanbench.dicom import headers as h
from scanbench.dicom.modality_facts import ct_facts
from scanbench.types import DeviceIdentity

Kind = Literal["ct_dose_sr", "radiopharmaceutical_sr", "other_sr", "dose_screen", "image",
               "other"]
Progress = Callable[[int, int], None]

# ----------------------------------------------------------------------------- codes
XRAY_DOSE_REPORT = dcm("113701")
PROCEDURE_REPORTED = dcm("121058")
CT_PROCEDURE = sct("77477000")
ACCUMULATED = dcm("113811")
TOTAL_EVENTS = dcm("113812")
TOTAL_DLP = dcm("113813")
START_IRRADIATION = dcm("113809")
END_IRRADIATION = dcm("113810")
SCOPE = dcm("113705")
STUDY_UID = dcm("110180")
CT_ACQUISITION = dcm("113819")
PROTOCOL = dcm("125203")
TARGET_REGION = dcm("123014")
ACQUISITION_TYPE = dcm("113820")
EVENT_UID = dcm("113769")
PARAMETERS = dcm("113822")
EXPOSURE_TIME = dcm("113824")
SCANNING_LENGTH = dcm("113825")
SINGLE_COLLIMATION = dcm("113826")
TOTAL_COLLIMATION = dcm("113827")
PITCH = dcm("113828")
N_SOURCES = dcm("113823")
SOURCE_PARAMETERS = dcm("113831")
KVP = dcm("113733")
MAX_TUBE_CURRENT = dcm("113833")
TUBE_CURRENT = dcm("113734")
ROTATION_TIME = dcm("113834")
CT_DOSE = dcm("113829")
CTDIVOL = dcm("113830")
PHANTOM = dcm("113835")
DLP = dcm("113838")
SSDE = dcm("113930")
WED = dcm("113980")
ALERT_DETAILS = dcm("113900")
NOTIFICATION_DETAILS = dcm("113908")
PHANTOM_CM = {"113690": 16, "113691": 32}
ACQUISITION_TYPES = {("113804", "DCM"): "sequenced", ("116152004", "SCT"): "spiral",
                     ("113805", "DCM"): "constant_angle", ("113806", "DCM"): "stationary",
                     ("113807", "DCM"): "free", ("702569007", "SCT"): "cone_beam"}
#: Image-header Acquisition Type (0018,9302) → the same names
HEADER_ACQUISITION_TYPES = {"SEQUENCED": "sequenced", "SPIRAL": "spiral",
                            "CONSTANT_ANGLE": "constant_angle", "STATIONARY": "stationary",
                            "FREE": "free", "CONE_BEAM": "cone_beam"}
_YES = sct("373066001")
#: Dose check items (NEMA XR 25, TID 10013 rows 113900 / 113908): code → (name, target unit)
_ALERT_ITEMS: dict[str, tuple[str, str | None]] = {
    "113901": ("dlp_alert_value_configured", None),
    "113902": ("ctdivol_alert_value_configured", None),
    "113903": ("dlp_alert_value_mgycm", "mGy.cm"),
    "113904": ("ctdivol_alert_value_mgy", "mGy"),
    "113905": ("accumulated_dlp_forward_estimate_mgycm", "mGy.cm"),
    "113906": ("accumulated_ctdivol_forward_estimate_mgy", "mGy"),
    "113907": ("reason_for_proceeding", None),
    "113870": ("person_name", None),
    "113909": ("dlp_notification_value_configured", None),
    "113910": ("ctdivol_notification_value_configured", None),
    "113911": ("dlp_notification_value_mgycm", "mGy.cm"),
    "113912": ("ctdivol_notification_value_mgy", "mGy"),
    "113913": ("dlp_forward_estimate_mgycm", "mGy.cm"),
    "113914": ("ctdivol_forward_estimate_mgy", "mGy"),
}

# SOP classes (PS3.4 B.5)
_SR_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.11", "1.2.840.10008.5.1.4.1.1.88.22",
    "1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.88.34",
    "1.2.840.10008.5.1.4.1.1.88.35", "1.2.840.10008.5.1.4.1.1.88.67",
    "1.2.840.10008.5.1.4.1.1.88.68", "1.2.840.10008.5.1.4.1.1.88.76",
}
_XRAY_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"
_RADIOPHARMACEUTICAL_SR = "1.2.840.10008.5.1.4.1.1.88.68"
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def _sop_class(ds: Dataset) -> str:
    uid = h.text(ds, "SOPClassUID")
    meta = getattr(ds, "file_meta", None)
    if uid is None and meta is not None:
        uid = h.text(meta, "MediaStorageSOPClassUID")
    return uid or ""


def classify_dataset(ds: Dataset) -> Kind:
    """What a DICOM object is, for dose and workflow routing.

    ``ct_dose_sr``: an SR whose root concept is 113701 and that reports CT
    (procedure reported 121058 = CT, or CT Acquisition containers 113819);
    ``radiopharmaceutical_sr``: root 113500; ``other_sr``: any other SR
    (including projection X-ray dose reports, TID 10001, not parsed here);
    ``dose_screen``: a CT secondary capture of the dose information (Image Type
    value DOSE_INFO, or an Exposure Dose Sequence (0040,030E)); ``image``: any
    other object with pixel data or image geometry; ``other``: the rest.
    """
    sop = _sop_class(ds)
    if sop in _SR_CLASSES or h.text(ds, "Modality") == "SR" or h.has(ds, "ContentSequence"):
        title = sr.root(ds).concept
        if title is not None and title.is_(*XRAY_DOSE_REPORT):
            top = sr.root(ds)
            proc = top.find(PROCEDURE_REPORTED)
            proc_code = proc.code() if proc else None
            if (proc_code is not None and proc_code.is_(*CT_PROCEDURE)) or \
                    top.find(CT_ACQUISITION) is not None:
                return "ct_dose_sr"
            return "other_sr"
        if title is not None and title.is_(*rp.RRDSR_ROOT):
            return "radiopharmaceutical_sr"
        return "other_sr"
    if sop.startswith(_SECONDARY_CAPTURE):
        if "DOSE_INFO" in h.texts(ds, "ImageType") or h.has(ds, "ExposureDoseSequence"):
            return "dose_screen"
        desc = (h.text(ds, "SeriesDescription") or "").lower()
        if "dose" in desc:  # GE "Dose Report", Siemens "Patient Protocol" pages say so here
            return "dose_screen"
    if h.has(ds, "PixelData") or h.has(ds, "FloatPixelData") or h.has(ds, "Rows") \
            or h.has(ds, "ImagePositionPatient"):
        return "image"
    return "other"


# ----------------------------------------------------------------------------- records

@dataclass
class CtEvent:
    """One CT irradiation event (TID 10013), or its header-derived equivalent."""

    event_uid: str | None
    acquisition_type: str | None = None
    protocol: str | None = None
    target_region: str | None = None
    target_region_code: Code | None = None
    ctdivol_mgy: float | None = None
    phantom_cm: int | None = None
    dlp_mgycm: float | None = None
    scan_length_mm: float | None = None
    kvp: float | None = None
    tube_current_ma: float | None = None
    max_tube_current_ma: float | None = None
    exposure_time_s: float | None = None
    rotation_time_s: float | None = None
    pitch: float | None = None
    single_collimation_mm: float | None = None
    total_collimation_mm: float | None = None
    x_ray_sources: int | None = None
    ssde_mgy: float | None = None
    water_equivalent_diameter_mm: float | None = None
    ssde_source: str | None = None  # "dose report" or how scanbench computed it
    dose_check_alerts: list[dict[str, Any]] = field(default_factory=list)
    source: str = "rdsr"  # "rdsr", "dose_screen_header", "image_header"

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_uid": self.event_uid,
            "acquisition_type": self.acquisition_type,
            "protocol": self.protocol,
            "target_region": self.target_region,
            "target_region_code": (self.target_region_code.to_dict()
                                   if self.target_region_code else None),
            "ctdivol_mgy": self.ctdivol_mgy,
            "phantom_cm": self.phantom_cm,
            "dlp_mgycm": self.dlp_mgycm,
            "scan_length_mm": self.scan_length_mm,
            "kvp": self.kvp,
            "tube_current_ma": self.tube_current_ma,
            "max_tube_current_ma": self.max_tube_current_ma,
            "exposure_time_s": self.exposure_time_s,
            "rotation_time_s": self.rotation_time_s,
            "pitch": self.pitch,
            "single_collimation_mm": self.single_collimation_mm,
            "total_collimation_mm": self.total_collimation_mm,
            "x_ray_sources": self.x_ray_sources,
            "ssde_mgy": self.ssde_mgy,
            "water_equivalent_diameter_mm": self.water_equivalent_diameter_mm,
            "ssde_source": self.ssde_source,
            "dose_check_alerts": [dict(a) for a in self.dose_check_alerts],
            "source": self.source,
        }


@dataclass
class Record:
    """What one DICOM object contributes to its study's dose."""

    where: str
    kind: Kind
    study_uid: str | None
    device: DeviceIdentity
    modality: str | None = None
    sop_instance_uid: str | None = None
    series_uid: str | None = None
    events: list[CtEvent] = field(default_factory=list)
    reported_total_dlp: float | None = None
    reported_events: int | None = None
    irradiation_start: dt.datetime | None = None
    irradiation_end: dt.datetime | None = None
    administrations: list[rp.Administration] = field(default_factory=list)
    patient: rp.PatientFacts = field(default_factory=rp.PatientFacts)
    study_datetime: dt.datetime | None = None
    accession: str | None = None
    description: str | None = None
    warnings: list[str] = field(default_factory=list)
    ds: Dataset | None = None  # images only: header for the CTDIvol fallback


@dataclass
class StudyDose:
    """The dose of one study (one exam), merged over every object of the study."""

    study_instance_uid: str
    device: DeviceIdentity
    modality: str
    events: list[CtEvent] = field(default_factory=list)
    total_dlp_mgycm: float | None = None
    radiopharmaceutical: rp.Administration | None = None
    patient: rp.PatientFacts = field(default_factory=rp.PatientFacts)
    effective_dose: ed.EffectiveDose = field(default_factory=ed.EffectiveDose)
    study_datetime: dt.datetime | None = None
    accession_number: str | None = None
    study_description: str | None = None
    irradiation_start: dt.datetime | None = None
    irradiation_end: dt.datetime | None = None
    dose_sources: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the ``scanbench dose --json`` output contract (issue 4)."""
        return {
            "study_instance_uid": self.study_instance_uid,
            "device": self.device.to_dict(),
            "modality": self.modality,
            "study_datetime": self.study_datetime.isoformat() if self.study_datetime else None,
            "accession_number": self.accession_number,
            "study_description": self.study_description,
            "total_dlp_mgycm": self.total_dlp_mgycm,
            "number_of_events": len(self.events) if self.events else None,
            "irradiation_start": (self.irradiation_start.isoformat()
                                  if self.irradiation_start else None),
            "irradiation_end": (self.irradiation_end.isoformat()
                                if self.irradiation_end else None),
            "events": [e.to_dict() for e in self.events],
            "radiopharmaceutical": (self.radiopharmaceutical.to_dict(self.patient.weight_kg)
                                    if self.radiopharmaceutical else None),
            "patient": self.patient.to_dict(),
            "effective_dose_msv": self.effective_dose.to_dict(),
            "dose_sources": list(self.dose_sources),
            "files": list(self.files),
            "warnings": list(self.warnings),
        }


@dataclass
class DoseReport:
    """Every study found, plus per-file notes (skipped objects) and failures."""

    studies: list[StudyDose] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


# ----------------------------------------------------------------------------- CT RDSR

def _num(item: sr.Item | None, target: str, what: str, notes: list[str]) -> float | None:
    if item is None:
        return None
    value = item.number()
    if value is None:
        raw = item.raw_number_text()
        notes.append(f"{what} ({item.path}): "
                     + (f"malformed value {raw!r} ignored" if raw else "no numeric value"))
        return None
    out, note = convert(value, item.unit(), target)
    if note:
        notes.append(f"{what}: {note}")
    return out


def _alerts(container: sr.Item, notes: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "alert" if container.is_(ALERT_DETAILS) else "notification"}
    for item in container.walk():
        if item.concept is None or item.concept.scheme != "DCM":
            continue
        spec = _ALERT_ITEMS.get(item.concept.value)
        if spec is None:
            continue
        name, unit = spec
        if unit is not None:
            out[name] = _num(item, unit, name, notes)
        elif item.value_type == "CODE":
            code = item.code()
            out[name] = code.is_(*_YES) if code else None
        else:
            out[name] = item.text()
    return out


def _event(node: sr.Item, index: int, notes: list[str]) -> CtEvent:
    uid_item = node.find(EVENT_UID)
    ev = CtEvent(event_uid=uid_item.text() if uid_item else None)
    label = f"event {index}"
    if ev.event_uid is None:
        notes.append(f"{label}: no Irradiation Event UID (113769); it cannot be matched "
                     "across repeated reports")
    protocol = node.find(PROTOCOL)
    ev.protocol = protocol.text() if protocol else None
    region = node.find(TARGET_REGION)
    code = region.code() if region else None
    ev.target_region_code = code
    ev.target_region = code.meaning if code else None
    atype = node.find(ACQUISITION_TYPE)
    acode = atype.code() if atype else None
    if acode is not None:
        ev.acquisition_type = ACQUISITION_TYPES.get(acode.key, acode.meaning or acode.value)
    params = node.find(PARAMETERS)
    if params is not None:
        ev.exposure_time_s = _num(params.find(EXPOSURE_TIME), "s", f"{label} exposure time",
                                  notes)
        ev.scan_length_mm = _num(params.find(SCANNING_LENGTH), "mm",
                                 f"{label} scanning length", notes)
        ev.single_collimation_mm = _num(params.find(SINGLE_COLLIMATION), "mm",
                                        f"{label} single collimation", notes)
        ev.total_collimation_mm = _num(params.find(TOTAL_COLLIMATION), "mm",
                                       f"{label} total collimation", notes)
        pitch = params.find(PITCH)
        ev.pitch = pitch.number() if pitch else None  # unit {ratio}
        n = params.find(N_SOURCES)
        n_value = n.number() if n else None
        ev.x_ray_sources = int(n_value) if n_value is not None else None
        sources = params.find_all(SOURCE_PARAMETERS)
        if sources:
            # Dual-source: kVp of the first source, tube current summed (TID 10013 per source).
            src = sources[0]
            ev.kvp = _num(src.find(KVP), "kV", f"{label} kVp", notes)
            currents = [_num(s.find(TUBE_CURRENT), "mA", f"{label} tube current", notes)
                        for s in sources]
            present = [c for c in currents if c is not None]
            ev.tube_current_ma = sum(present) if present else None
            maxima = [_num(s.find(MAX_TUBE_CURRENT), "mA", f"{label} max tube current", notes)
                      for s in sources]
            present = [c for c in maxima if c is not None]
            ev.max_tube_current_ma = sum(present) if present else None
            ev.rotation_time_s = _num(src.find(ROTATION_TIME), "s", f"{label} rotation time",
                                      notes)
            if len(sources) > 1:
                notes.append(f"{label}: {len(sources)} X-ray sources; kVp is the first "
                             "source's, tube current the sum")
    if ev.exposure_time_s is not None and ev.exposure_time_s > 600:
        notes.append(f"{label}: exposure time {ev.exposure_time_s:g} s is implausible (more "
                     "than 10 min; the producer may have written ms); kept as written")
    dose = node.find(CT_DOSE)
    if dose is None:
        if ev.acquisition_type in ("constant_angle", None):
            notes.append(f"{label} ({ev.acquisition_type or 'type not given'}): no CT Dose "
                         "container (113829), as vendors write localizers; CTDIvol and DLP "
                         "not reported, counted as 0 in the total")
        else:
            notes.append(f"{label} ({ev.acquisition_type}): no CT Dose container (113829); "
                         "CTDIvol and DLP not reported")
    else:
        ev.ctdivol_mgy = _num(dose.find(CTDIVOL), "mGy", f"{label} CTDIvol", notes)
        ev.dlp_mgycm = _num(dose.find(DLP), "mGy.cm", f"{label} DLP", notes)
        phantom = dose.find(PHANTOM)
        pcode = phantom.code() if phantom else None
        if pcode is not None and pcode.scheme == "DCM" and pcode.value in PHANTOM_CM:
            ev.phantom_cm = PHANTOM_CM[pcode.value]
        elif ev.ctdivol_mgy:
            k_region = ed.region_of(code)
            if k_region is not None:
                ev.phantom_cm = 16 if k_region == "head" else 32
                notes.append(f"{label}: CTDIw phantom type (113835) "
                             + ("not given" if pcode is None else f"'{pcode.value}' unknown")
                             + f"; {ev.phantom_cm} cm assumed from the target region "
                             f"'{ev.target_region}'")
            else:
                notes.append(f"{label}: CTDIw phantom type (113835) not given and no coded "
                             "target region: phantom unknown")
        if ev.ctdivol_mgy == 0 and ev.acquisition_type not in ("constant_angle", None):
            notes.append(f"{label} ({ev.acquisition_type}): CTDIvol is 0 mGy")
        # SSDE (113930), water-equivalent diameter (113980) and the dose-check containers
        # sit inside CT Dose (TID 10013): one pass over it.
        ssde_item = wed_item = None
        for item in dose.walk():
            if ssde_item is None and item.is_(SSDE):
                ssde_item = item
            elif wed_item is None and item.is_(WED):
                wed_item = item
            elif item.is_(ALERT_DETAILS) or item.is_(NOTIFICATION_DETAILS):
                ev.dose_check_alerts.append(_alerts(item, notes))
        ev.ssde_mgy = _num(ssde_item, "mGy", f"{label} SSDE", notes)
        ev.water_equivalent_diameter_mm = _num(wed_item, "mm", f"{label} water-equivalent "
                                               "diameter", notes)
        if ev.ssde_mgy is not None:
            ev.ssde_source = "dose report (113930)"
    return ev


def parse_ct_dose_sr(ds: Dataset, where: str) -> Record:
    """One CT dose report (TID 10011) as a :class:`Record`."""
    rec = _record(ds, where, "ct_dose_sr")
    top = sr.root(ds)
    notes = rec.warnings
    for item in top.children:
        if item.is_(START_IRRADIATION):
            rec.irradiation_start = item.datetime()
        elif item.is_(END_IRRADIATION):
            rec.irradiation_end = item.datetime()
        elif item.is_(SCOPE):
            uid = item.find(STUDY_UID)
            scoped = uid.text() if uid else None
            if scoped and rec.study_uid and scoped != rec.study_uid:
                notes.append(f"scope of accumulation names study {scoped}, the header "
                             f"{rec.study_uid}; the header's is used")
            rec.study_uid = rec.study_uid or scoped
    acc = top.find(ACCUMULATED)
    if acc is not None:
        rec.reported_total_dlp = _num(acc.find(TOTAL_DLP), "mGy.cm", "CT DLP total", notes)
        n = acc.find(TOTAL_EVENTS)
        n_value = n.number() if n else None
        rec.reported_events = int(n_value) if n_value is not None else None
    else:
        notes.append("no CT Accumulated Dose Data (113811): the study total is the sum of "
                     "the events' DLP")
    acquisitions = top.find_all(CT_ACQUISITION)
    if not acquisitions:
        notes.append("CT dose report without any CT Acquisition (113819)")
    rec.events = [_event(node, i, notes) for i, node in enumerate(acquisitions, start=1)]
    if rec.reported_events is not None and rec.reported_events != len(rec.events):
        notes.append(f"the report says {rec.reported_events} irradiation events (113812) but "
                     f"holds {len(rec.events)}")
    if rec.device.manufacturer is None:
        rec.device = _observer_device(top) or rec.device
    return rec


def _observer_device(top: sr.Item) -> DeviceIdentity | None:
    """Device Observer context (TID 1004): name 121013, manufacturer 121014, model 121015,
    serial 121016."""
    got: dict[str, str | None] = {}
    for code, name in (("121013", "station"), ("121014", "manufacturer"),
                       ("121015", "model"), ("121016", "serial")):
        item = top.find(dcm(code))
        got[name] = item.text() if item else None
    if not any(got.values()):
        return None
    return DeviceIdentity(manufacturer=got["manufacturer"], model=got["model"],
                          serial=got["serial"], station=got["station"])


def _record(ds: Dataset, where: str, kind: Kind) -> Record:
    tz = h.timezone(ds)
    text = _fast_text(ds)
    return Record(
        where=where, kind=kind, study_uid=h.text(ds, "StudyInstanceUID"),
        device=DeviceIdentity(manufacturer=text(0x00080070), model=text(0x00081090),
                              serial=text(0x00181000), station=text(0x00081010),
                              software_versions=text(0x00181020)),
        modality=h.text(ds, "Modality"),
        sop_instance_uid=h.text(ds, "SOPInstanceUID"),
        series_uid=h.text(ds, "SeriesInstanceUID"),
        patient=rp.patient_from_header(ds),
        study_datetime=h.localize(h.combine(h.text(ds, "StudyDate"), h.text(ds, "StudyTime")),
                                  tz),
        accession=text(0x00080050),
        description=text(0x00081030))


def _fast_text(ds: Dataset) -> Callable[[int], str | None]:
    """A getter of LO/SH/LT values in the data set's character set, straight from the
    raw bytes (the values device_identity reads, without pydicom's conversion);
    multi-valued elements keep their backslashes as device_identity does."""
    encoding = sr.charset_codec(ds)

    def text(tag: int) -> str | None:
        elem = ds._dict.get(BaseTag(tag))
        if elem is None:
            return None
        value = elem.value
        if isinstance(value, bytes):
            out = value.decode(encoding, "replace")
        elif isinstance(value, str):
            out = value
        elif value is None:
            return None
        else:
            out = "\\".join(str(v) for v in value) if isinstance(value, MultiValue) \
                else str(value)
        out = out.strip(" \x00").strip()
        return out or None
    return text


# ----------------------------------------------------------------------------- fallbacks

def parse_dose_screen(ds: Dataset, where: str) -> Record:
    """A CT dose-information secondary capture: events from its Exposure Dose Sequence
    (0040,030E) when present (Philips; DLP from the ELSCINT1 private (00E1,xx21)), else
    nothing, with a note that the burned-in page was not parsed."""
    rec = _record(ds, where, "dose_screen")
    items = h.raw(ds, "ExposureDoseSequence")
    if not items:
        rec.warnings.append("dose screen (secondary capture): its values are burned into the "
                            "pixels and were not parsed (scanbench does no OCR)")
        return rec
    series_uid = rec.series_uid or rec.sop_instance_uid or where
    private_dlp = 0
    for i, item in enumerate(items, start=1):
        ev = CtEvent(event_uid=f"{series_uid}#exposure{i}", source="dose_screen_header")
        atype = h.text(item, "AcquisitionType")
        ev.acquisition_type = HEADER_ACQUISITION_TYPES.get(atype or "", atype)
        ev.ctdivol_mgy = h.number(item, "CTDIvol")
        ev.kvp = h.number(item, "KVP")
        ua = h.number(item, "XRayTubeCurrentInuA")
        ev.tube_current_ma = ua / 1000 if ua is not None else h.number(item, "XRayTubeCurrent")
        ev.scan_length_mm = h.number(item, "ScanLength")
        ev.single_collimation_mm = h.number(item, "SingleCollimationWidth")
        ev.total_collimation_mm = h.number(item, "TotalCollimationWidth")
        ev.protocol = h.text(item, "SeriesDescription") or h.text(ds, "ProtocolName")
        dlp = _elscint_dlp(item)
        if dlp is not None:
            ev.dlp_mgycm = dlp
            private_dlp += 1
        rec.events.append(ev)
    rec.warnings.append(
        f"CT dose from the dose-information secondary capture's Exposure Dose Sequence "
        f"(0040,030E), {len(items)} exposures; no phantom type is given there"
        + (f"; DLP from the Philips private element (00E1,1021) of {private_dlp}"
           if private_dlp else "; no DLP"))
    return rec


def _elscint_dlp(item: Dataset) -> float | None:
    """DLP (mGy·cm) from the ELSCINT1 private block (Philips CT): (00E1,xx21)."""
    for block in range(0x10, 0x100):
        creator = item.get((0x00E1, block))
        if creator is None:
            continue
        if str(creator.value).strip() == "ELSCINT1":
            elem = item.get((0x00E1, (block << 8) | 0x21))
            if elem is None:
                return None
            value = elem.value
            if isinstance(value, bytes):
                value = value.decode("ascii", "replace")
            try:
                return float(str(value).strip().strip("\x00"))
            except ValueError:
                return None
    return None


def _events_from_images(records: list[Record]) -> tuple[list[CtEvent], list[str]]:
    """One event per Irradiation Event UID (0008,3010), else per series, from CT image
    headers: mean CTDIvol (0018,9345) over the images, DLP ≈ CTDIvol × reconstructed
    length (slice-position range + one slice thickness)."""
    groups: dict[str, list[Dataset]] = {}
    by_uid = True
    for rec in records:
        if rec.ds is None or rec.modality != "CT":
            continue
        uid = h.text(rec.ds, "IrradiationEventUID")
        if uid is None:
            by_uid = False
            uid = f"series:{rec.series_uid}"
        groups.setdefault(uid, []).append(rec.ds)
    events: list[CtEvent] = []
    notes: list[str] = []
    for key, dss in groups.items():
        first = dss[0]
        facts = ct_facts(first)
        values = [v for v in (h.number(d, "CTDIvol") for d in dss) if v is not None]
        if not values:
            continue
        ctdivol = sum(values) / len(values)
        zs = [p[2] for p in (h.numbers(d, "ImagePositionPatient") for d in dss)
              if p is not None and len(p) == 3]
        thickness = facts.slice_thickness_mm or 0.0
        length = (max(zs) - min(zs) + thickness) if zs else None
        image_type = h.texts(first, "ImageType")
        atype = "constant_angle" if "LOCALIZER" in image_type else (
            "spiral" if (facts.scan_options or "").upper().find("HELI") >= 0
            or facts.pitch else None)
        ev = CtEvent(
            event_uid=None if key.startswith("series:") else key,
            acquisition_type=atype, protocol=h.text(first, "ProtocolName")
            or h.text(first, "SeriesDescription"),
            ctdivol_mgy=ctdivol, phantom_cm=facts.ctdi_phantom_cm,
            dlp_mgycm=ctdivol * length / 10 if length else None,
            scan_length_mm=length, kvp=facts.kvp, tube_current_ma=facts.tube_current_ma,
            exposure_time_s=facts.exposure_time_s, rotation_time_s=facts.rotation_time_s,
            pitch=facts.pitch, single_collimation_mm=facts.single_collimation_mm,
            total_collimation_mm=facts.total_collimation_mm, source="image_header")
        events.append(ev)
    if events:
        notes.append("no CT dose report: CTDIvol (0018,9345) from the image headers; DLP "
                     "estimated as CTDIvol × reconstructed length, which leaves out "
                     "over-ranging (an underestimate)")
        if not by_uid:
            notes.append("images without Irradiation Event UID (0008,3010): one event per "
                         "series, so two reconstructions of one acquisition count twice")
    return events, notes


def add_ssde_from_images(study: StudyDose, images: list[Record], method: str = "central"
                         ) -> None:
    """SSDE (AAPM Reports 204 / 220) for the study's events that lack one, from the
    water-equivalent diameter measured on its CT image series.

    An event is matched to the axial series whose images carry its Irradiation Event
    UID (0008,3010); without that, every non-localizer event is matched to the study's
    largest axial series, with a warning. Localizers are not used for D_w.
    """
    from scanbench.clinical import ssde
    from scanbench.dicom.read import read
    from scanbench.errors import ScanbenchError

    series_files: dict[str, list[str]] = {}
    series_events: dict[str, set[str]] = {}
    for rec in images:
        if rec.modality != "CT" or rec.ds is None or rec.series_uid is None:
            continue
        if "LOCALIZER" in h.texts(rec.ds, "ImageType"):
            continue
        series_files.setdefault(rec.series_uid, []).append(rec.where)
        uid = h.text(rec.ds, "IrradiationEventUID")
        if uid:
            series_events.setdefault(rec.series_uid, set()).add(uid)
    if not series_files:
        return
    wanted = [e for e in study.events if e.ssde_mgy is None and e.ctdivol_mgy
              and e.acquisition_type != "constant_angle"]
    if not wanted:
        return
    largest = max(series_files, key=lambda k: len(series_files[k]))
    cache: dict[str, float | None] = {}

    def dw_of(series_uid: str) -> float | None:
        if series_uid not in cache:
            paths = [Path(p) for p in series_files[series_uid]]
            if not all(p.is_file() for p in paths):
                study.warnings.append(f"SSDE: series {series_uid} is inside an archive; "
                                      "extract it to measure D_w")
                cache[series_uid] = None
                return None
            try:
                res = read(paths)
                if len(res.series) != 1:
                    raise ScanbenchError(f"{len(res.series)} volumes", series_uid)
                cache[series_uid] = ssde.water_equivalent_diameter(
                    res.series[0], method=method).diameter_mm  # type: ignore[arg-type]
            except ScanbenchError as exc:
                study.warnings.append(f"SSDE: D_w not measured on series {series_uid}: "
                                      f"{exc.message}")
                cache[series_uid] = None
        return cache[series_uid]

    for ev in wanted:
        match = next((k for k, uids in series_events.items() if ev.event_uid in uids), None)
        if match is None:
            match = largest
            study.warnings.append(f"SSDE of event {ev.event_uid or '?'}: no image series "
                                  "carries its Irradiation Event UID; D_w from the largest "
                                  "axial series")
        dw = dw_of(match)
        if dw is None:
            continue
        if ev.phantom_cm is None:
            study.warnings.append(f"SSDE of event {ev.event_uid or '?'}: CTDIvol phantom "
                                  "unknown; not computed")
            continue
        try:
            ev.ssde_mgy = ssde.ssde_mgy(ev.ctdivol_mgy or 0.0, dw / 10, ev.phantom_cm)
        except ScanbenchError as exc:
            study.warnings.append(f"SSDE of event {ev.event_uid or '?'}: {exc.message}")
            continue
        ev.water_equivalent_diameter_mm = dw
        how = "central slice" if method == "central" else "mean over z"
        ev.ssde_source = f"scanbench: AAPM 220 D_w ({how}) and AAPM 204 f({ev.phantom_cm} cm)"


# ----------------------------------------------------------------------------- merging

def _merge_events(recs: list[Record], notes: list[str]) -> list[CtEvent]:
    merged: list[CtEvent] = []
    seen: dict[str, CtEvent] = {}
    for rec in recs:
        for ev in rec.events:
            if ev.event_uid is None:
                merged.append(ev)
                continue
            prior = seen.get(ev.event_uid)
            if prior is None:
                seen[ev.event_uid] = ev
                merged.append(ev)
            elif (prior.ctdivol_mgy, prior.dlp_mgycm) != (ev.ctdivol_mgy, ev.dlp_mgycm):
                notes.append(f"event {ev.event_uid} appears in two reports with different "
                             f"doses ({prior.ctdivol_mgy}/{prior.dlp_mgycm} vs "
                             f"{ev.ctdivol_mgy}/{ev.dlp_mgycm} mGy/mGy·cm); the first kept")
    return merged


def _total(recs: list[Record], events: list[CtEvent], notes: list[str]) -> float | None:
    uids = {e.event_uid for e in events if e.event_uid is not None}
    summed = sum(e.dlp_mgycm for e in events if e.dlp_mgycm is not None)
    have_dlp = any(e.dlp_mgycm is not None for e in events)
    covering = [r for r in recs if r.reported_total_dlp is not None
                and {e.event_uid for e in r.events} >= uids
                and len(r.events) == len(events)]
    if covering:
        total = covering[0].reported_total_dlp
        if have_dlp and total is not None and abs(total - summed) > max(0.011, 0.005 * total):
            notes.append(f"reported DLP total {total:g} mGy·cm differs from the sum of the "
                         f"events' DLP {summed:.2f} mGy·cm; the reported total is given")
        return total
    if len(recs) > 1 and any(r.reported_total_dlp is not None for r in recs):
        notes.append(f"no single report covers all {len(events)} events: the total is the "
                     "sum of the unique events' DLP")
    return summed if have_dlp else None


def _study(uid: str, recs: list[Record], k_age: float | None) -> StudyDose:
    notes: list[str] = []
    ct_reports = [r for r in recs if r.kind == "ct_dose_sr"]
    screens = [r for r in recs if r.kind == "dose_screen"]
    rrdsrs = [r for r in recs if r.kind == "radiopharmaceutical_sr"]
    images = [r for r in recs if r.kind == "image"]
    # Later reports first: a cumulative report's events and total supersede earlier ones.
    ct_reports.sort(key=lambda r: -len(r.events))
    for r in recs:
        notes.extend(f"{Path(r.where).name}: {w}" for w in r.warnings)
    sources: list[str] = []
    events: list[CtEvent] = []
    total: float | None = None
    if ct_reports:
        events = _merge_events(ct_reports, notes)
        total = _total(ct_reports, events, notes)
        sources.append("ct_dose_sr")
        if len(ct_reports) > 1:
            notes.append(f"{len(ct_reports)} CT dose reports of this study merged by "
                         f"Irradiation Event UID: {len(events)} unique events")
    elif any(s.events for s in screens):
        events = _merge_events(screens, notes)
        total = _total(screens, events, notes)
        sources.append("dose_screen_header")
    elif images:
        events, image_notes = _events_from_images(images)
        notes.extend(image_notes)
        if events:
            total = sum(e.dlp_mgycm for e in events if e.dlp_mgycm is not None)
            sources.append("image_header")
    if not events and screens:
        sources.append("dose_screen_not_parsed")
    patient = rp.PatientFacts()
    for r in rrdsrs + ct_reports + images + screens:
        patient.merge(r.patient)
    admin: rp.Administration | None = None
    if rrdsrs:
        admins = [a for r in rrdsrs for a in r.administrations]
        unique = {a.event_uid or str(i): a for i, a in enumerate(admins)}
        if len(unique) > 1:
            notes.append(f"{len(unique)} radiopharmaceutical administrations; the first is "
                         "reported")
        admin = next(iter(unique.values()), None)
        sources.append("radiopharmaceutical_sr")
    pet_images = [r for r in images if r.modality == "PT" and r.administrations]
    if pet_images:
        header_admin = pet_images[0].administrations[0]
        if admin is None:
            admin = header_admin
            sources.append("pet_image_header")
            notes.extend(f"PET header: {w}" for w in header_admin.warnings)
        elif (admin.administered_activity_mbq and header_admin.administered_activity_mbq
              and abs(admin.administered_activity_mbq - header_admin.administered_activity_mbq)
              > 0.01 * admin.administered_activity_mbq):
            notes.append(f"administered activity {admin.administered_activity_mbq:g} MBq in "
                         f"the dose report, {header_admin.administered_activity_mbq:g} MBq in "
                         "the PET image header; the dose report's is given")
    modalities = {r.modality for r in images if r.modality}
    has_ct = bool(events) or "CT" in modalities or bool(screens)
    has_pet = "PT" in modalities or (admin is not None and admin.is_pet)
    has_nm = "NM" in modalities or (admin is not None and not admin.is_pet)
    parts = [m for m, present in (("PT", has_pet), ("NM", has_nm), ("CT", has_ct)) if present]
    modality = "/".join(parts) or (recs[0].modality or "OT")
    effective = ed.EffectiveDose()
    if events:
        age = patient.age_years if k_age is None else k_age
        e_ct, ct_notes = ed.ct_effective_dose(
            [(e.dlp_mgycm, ed.region_of(e.target_region_code)) for e in events], age)
        effective.ct_msv = e_ct
        effective.ct_source = ed.K_SET_AAPM96 if e_ct is not None else None
        effective.notes.extend(ct_notes)
    if admin is not None and admin.administered_activity_mbq is not None:
        coeff, how = ed.tracer_coefficient(admin.agent_code, admin.agent)
        if coeff is None:
            effective.notes.append(f"no dose coefficient for agent '{admin.agent}': tracer "
                                   "effective dose not estimated")
        else:
            effective.radiopharmaceutical_msv = admin.administered_activity_mbq * coeff.msv_per_mbq
            effective.radiopharmaceutical_source = (
                f"{coeff.agent} {coeff.msv_per_mbq:g} mSv/MBq, {coeff.source}")
            if not coeff.confirmed:
                effective.notes.append(f"UNCONFIRMED coefficient for {coeff.agent}")
            if how:
                effective.notes.append(how)
            if patient.age_years is not None and patient.age_years < 18:
                effective.notes.append("adult coefficient applied to a patient under 18")
    device = next((r.device for r in ct_reports + screens + images + rrdsrs
                   if r.device.manufacturer or r.device.model), recs[0].device)
    first = next((r for r in recs if r.study_datetime), recs[0])
    starts = [r.irradiation_start for r in ct_reports if r.irradiation_start]
    ends = [r.irradiation_end for r in ct_reports if r.irradiation_end]
    return StudyDose(
        study_instance_uid=uid, device=device, modality=modality, events=events,
        total_dlp_mgycm=total if has_ct else None, radiopharmaceutical=admin, patient=patient,
        effective_dose=effective, study_datetime=first.study_datetime,
        accession_number=next((r.accession for r in recs if r.accession), None),
        study_description=next((r.description for r in recs if r.description), None),
        irradiation_start=_safe(min, starts), irradiation_end=_safe(max, ends),
        dose_sources=sources, files=sorted({r.where for r in recs if r.kind != "image"}),
        warnings=notes)


def _safe(fn: Callable[[list[dt.datetime]], dt.datetime],
          values: list[dt.datetime]) -> dt.datetime | None:
    try:
        return fn(values) if values else None
    except TypeError:  # aware and naive mixed
        return fn([v.replace(tzinfo=None) for v in values])


# ----------------------------------------------------------------------------- entry points

def record_of(ds: Dataset, where: str) -> Record | None:
    """What one object contributes to dose, or None (with no note) for objects that
    cannot; raises nothing for a malformed report (its problems become warnings)."""
    kind = classify_dataset(ds)
    if kind == "ct_dose_sr":
        return parse_ct_dose_sr(ds, where)
    if kind == "radiopharmaceutical_sr":
        rec = _record(ds, where, kind)
        admins, patient, notes = rp.from_rrdsr(ds)
        rec.administrations, rec.warnings = admins, notes
        patient.merge(rec.patient)
        rec.patient = patient
        return rec
    if kind == "dose_screen":
        return parse_dose_screen(ds, where)
    if kind == "image":
        rec = _record(ds, where, kind)
        if rec.modality == "CT":
            rec.ds = ds
        elif rec.modality in ("PT", "NM"):
            admin, notes = rp.from_pet_header(ds)
            if admin is not None:
                admin.warnings.extend(notes)
                rec.administrations = [admin]
        return rec
    return None


def doses_from_datasets(items: Iterable[Dataset | tuple[str, Dataset]], *,
                        age_years: float | None = None, ssde_method: str | None = None,
                        progress: Progress | None = None) -> DoseReport:
    """Dose per study from already-parsed data sets (``(where, ds)`` pairs or bare data
    sets, named by SOP Instance UID). ``age_years`` overrides the age for k-factors;
    ``ssde_method`` ("central" or "mean") measures SSDE on the CT images for events
    whose report gives none (the images must be files on disk)."""
    report = DoseReport()
    by_study: dict[str, list[Record]] = {}
    pairs = [(i if isinstance(i, tuple) else
              (h.text(i, "SOPInstanceUID") or "<data set>", i)) for i in items]
    for n, (where, ds) in enumerate(pairs, start=1):
        try:
            rec = record_of(ds, where)
        except Exception as exc:  # a report too damaged to walk: name it, go on
            report.failures.append((where, f"cannot read this dose object "
                                           f"({type(exc).__name__}: {exc})"))
            rec = None
        if progress is not None:
            progress(n, len(pairs))
        if rec is None:
            kind = classify_dataset_safe(ds)
            if kind == "other_sr":
                title = sr.root(ds).concept
                report.notes.append((where, "structured report of another kind "
                                     f"({title.meaning or title.value if title else 'no title'}"
                                     f", template {sr.template_id(ds) or 'not given'}): "
                                     "not a CT or radiopharmaceutical dose report, skipped"))
            else:
                report.notes.append((where, f"{kind}: no dose information, skipped"))
            continue
        if rec.study_uid is None:
            report.failures.append((where, "no Study Instance UID (0020,000D): cannot be "
                                           "assigned to a study"))
            continue
        by_study.setdefault(rec.study_uid, []).append(rec)
    for uid, recs in by_study.items():
        if all(r.kind == "image" and not r.administrations and r.modality != "CT"
               for r in recs):
            continue  # e.g. an MR study: no dose to report
        study = _study(uid, recs, age_years)
        if ssde_method is not None:
            add_ssde_from_images(study, [r for r in recs if r.kind == "image"], ssde_method)
        if not study.events and study.radiopharmaceutical is None and \
                "dose_screen_not_parsed" not in study.dose_sources:
            if any(r.kind in ("ct_dose_sr", "radiopharmaceutical_sr") for r in recs):
                report.failures.append((", ".join(study.files) or uid,
                                        "dose report with no usable dose: "
                                        + "; ".join(study.warnings[:3])))
            continue
        report.studies.append(study)
    report.studies.sort(key=lambda s: (s.study_datetime.replace(tzinfo=None).isoformat()
                                       if s.study_datetime else "", s.study_instance_uid))
    return report


def classify_dataset_safe(ds: Dataset) -> Kind:
    try:
        return classify_dataset(ds)
    except Exception:
        return "other"


def doses_from_paths(paths: Sequence[str | Path] | str | Path, *,
                     age_years: float | None = None, ssde_method: str | None = None,
                     progress: Progress | None = None) -> DoseReport:
    """Dose per study from files, folders and zips (see :func:`doses_from_datasets`)."""
    found = scan(paths, progress=progress)
    report = doses_from_datasets(found.datasets, age_years=age_years, ssde_method=ssde_method)
    report.notes[:0] = found.skipped
    report.failures[:0] = found.failures
    return report

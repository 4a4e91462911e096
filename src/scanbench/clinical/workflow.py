"""Exam timings and scanner utilisation from DICOM timestamps (STANDARDS.md F).

Per exam (one Study Instance UID on one device):

- **start and end**, from the first source that gives them, and which one
  was used: Performed Procedure Step Start/End Date and Time
  (0040,0244/0245 → 0040,0250/0251) [U tags per STANDARDS.md, standard in
  PS3.3 C.4.15]; else the first and last image acquisition (Acquisition
  DateTime (0008,002A), else Acquisition Date/Time (0008,0022/0032)) — the end
  being the last acquisition's start plus its duration where the header gives
  one (PET Actual Frame Duration (0018,1242)); else the CT dose report's
  Start/End of X-Ray Irradiation (113809 / 113810).
- **duration**, **number of image series**, **table time estimate**: first to
  last acquisition plus a configurable set-up and clear-down allowance
  (default 0 min: only what the data show).
- **PET uptake time** = first PET acquisition start − Radiopharmaceutical
  Start DateTime (RRDSR 123003, else (0018,1078)), flagged outside a
  configurable window, default 55–75 min (the EANM window as commonly cited;
  STANDARDS.md F marks it [U], so it is a setting, not a pass/fail limit).
- **CT rotation time** (113834 or Revolution Time (0018,9305)) and **CT scan
  time** (sum of the events' exposure times 113824, else irradiation end −
  start).

Per device and day: number of exams, Σ table time over the staffed hours
(configurable, default 08:00–17:00) as utilisation in %, and the gaps between
one exam's end and the next one's start.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from scanbench.clinical import radiopharmaceutical as rp
from scanbench.clinical.dose import CtEvent, Record, classify_dataset_safe, record_of
from scanbench.clinical.inputs import scan
from scanbench.dicom import headers as h
from scanbench.types import DeviceIdentity

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class WorkflowSettings:
    """What a department configures: uptake window, allowances, staffed hours."""

    uptake_window_min: tuple[float, float] = (55.0, 75.0)
    setup_allowance_min: float = 0.0
    cleardown_allowance_min: float = 0.0
    staffed_hours: tuple[dt.time, dt.time] = (dt.time(8, 0), dt.time(17, 0))

    @property
    def staffed_min(self) -> float:
        a, b = self.staffed_hours
        return (dt.datetime.combine(dt.date.min, b) - dt.datetime.combine(dt.date.min, a)
                ).total_seconds() / 60


def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat() if t else None


def _minutes(a: dt.datetime | None, b: dt.datetime | None) -> float | None:
    if a is None or b is None:
        return None
    try:
        return (b - a).total_seconds() / 60
    except TypeError:  # aware minus naive: compare as local clock times
        return (b.replace(tzinfo=None) - a.replace(tzinfo=None)).total_seconds() / 60


@dataclass
class ExamWorkflow:
    """The timings of one exam."""

    study_instance_uid: str
    device: DeviceIdentity
    modalities: list[str]
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    time_source: str | None = None  # performed_procedure_step | acquisition_times | ...
    number_of_series: int = 0
    first_acquisition: dt.datetime | None = None
    last_acquisition_end: dt.datetime | None = None
    table_time_min: float | None = None
    injection_at: dt.datetime | None = None
    first_pet_acquisition: dt.datetime | None = None
    uptake_time_min: float | None = None
    uptake_in_window: bool | None = None
    uptake_window_min: tuple[float, float] | None = None
    ct_rotation_time_s: float | None = None
    ct_scan_time_s: float | None = None
    study_description: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def duration_min(self) -> float | None:
        return _minutes(self.start, self.end)

    def to_dict(self) -> dict[str, Any]:
        """One JSON object per exam (``scanbench workflow --json``)."""
        return {
            "study_instance_uid": self.study_instance_uid,
            "device": self.device.to_dict(),
            "modality": "/".join(self.modalities),
            "study_description": self.study_description,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "time_source": self.time_source,
            "duration_min": self.duration_min,
            "number_of_series": self.number_of_series,
            "first_acquisition": _iso(self.first_acquisition),
            "last_acquisition_end": _iso(self.last_acquisition_end),
            "table_time_min": self.table_time_min,
            "injection_at": _iso(self.injection_at),
            "first_pet_acquisition": _iso(self.first_pet_acquisition),
            "uptake_time_min": self.uptake_time_min,
            "uptake_in_window": self.uptake_in_window,
            "uptake_window_min": list(self.uptake_window_min) if self.uptake_window_min else None,
            "ct_rotation_time_s": self.ct_rotation_time_s,
            "ct_scan_time_s": self.ct_scan_time_s,
            "warnings": list(self.warnings),
        }


@dataclass
class DeviceDay:
    """Throughput of one device on one day."""

    device: DeviceIdentity
    day: dt.date
    exams: int
    table_time_min: float
    staffed_min: float
    gaps_min: list[float]

    @property
    def utilisation_pct(self) -> float:
        return 100.0 * self.table_time_min / self.staffed_min if self.staffed_min else 0.0

    def to_dict(self) -> dict[str, Any]:
        gaps = self.gaps_min
        return {
            "device": self.device.to_dict(), "day": self.day.isoformat(), "exams": self.exams,
            "table_time_min": self.table_time_min, "staffed_min": self.staffed_min,
            "utilisation_pct": self.utilisation_pct,
            "exams_per_staffed_hour": self.exams / (self.staffed_min / 60)
            if self.staffed_min else None,
            "gaps_min": gaps,
            "median_gap_min": statistics.median(gaps) if gaps else None,
            "max_gap_min": max(gaps) if gaps else None,
        }


@dataclass
class WorkflowReport:
    exams: list[ExamWorkflow] = field(default_factory=list)
    days: list[DeviceDay] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


# ----------------------------------------------------------------------------- per object

@dataclass
class _Obj:
    where: str
    study: str
    modality: str
    series: str | None
    device: DeviceIdentity
    acquired: dt.datetime | None = None
    duration_s: float | None = None
    pps_start: dt.datetime | None = None
    pps_end: dt.datetime | None = None
    rotation_s: float | None = None
    localizer: bool = False
    record: Record | None = None
    description: str | None = None


def _acquired(ds: Dataset, tz: dt.tzinfo | None) -> dt.datetime | None:
    value = h.parse_datetime(h.text(ds, "AcquisitionDateTime"))
    if value is None:
        value = h.combine(h.text(ds, "AcquisitionDate") or h.text(ds, "SeriesDate")
                          or h.text(ds, "StudyDate"), h.text(ds, "AcquisitionTime"))
    return h.localize(value, tz)


def _obj(ds: Dataset, where: str) -> _Obj | None:
    study = h.text(ds, "StudyInstanceUID")
    if study is None:
        return None
    tz = h.timezone(ds)
    from scanbench.dicom.facts import device_identity

    o = _Obj(where=where, study=study, modality=h.text(ds, "Modality") or "OT",
             series=h.text(ds, "SeriesInstanceUID"), device=device_identity(ds),
             description=h.text(ds, "StudyDescription"))
    o.pps_start = h.localize(h.combine(h.text(ds, "PerformedProcedureStepStartDate"),
                                       h.text(ds, "PerformedProcedureStepStartTime")), tz)
    o.pps_end = h.localize(h.combine(h.text(ds, "PerformedProcedureStepEndDate"),
                                     h.text(ds, "PerformedProcedureStepEndTime")), tz)
    kind = classify_dataset_safe(ds)
    if kind == "image":
        o.acquired = _acquired(ds, tz)
        if o.modality in ("PT", "NM"):
            ms = h.number(ds, "ActualFrameDuration")
            o.duration_s = ms / 1000 if ms else None
        elif o.modality == "CT":
            o.rotation_s = h.number(ds, "RevolutionTime")
            o.localizer = "LOCALIZER" in h.texts(ds, "ImageType")
        if o.duration_s is None:  # Acquisition Duration (0018,9073), s (enhanced MR, CT)
            o.duration_s = h.number(ds, "AcquisitionDuration")
    if kind in ("ct_dose_sr", "radiopharmaceutical_sr") or (kind == "image"
                                                            and o.modality in ("PT", "NM")):
        o.record = record_of(ds, where)
    return o


# ----------------------------------------------------------------------------- per exam

def _exam(objs: list[_Obj], settings: WorkflowSettings) -> ExamWorkflow:
    images = [o for o in objs if o.acquired is not None]
    reports = [o.record for o in objs if o.record is not None]
    ct_reports = [r for r in reports if r.kind == "ct_dose_sr"]
    device = next((o.device for o in images if o.device.manufacturer or o.device.model),
                  objs[0].device)
    present = {o.modality for o in objs if o.modality not in ("SR", "OT", "PR", "KO", "REG")
               and (o.acquired is not None or o.record is not None)}
    if ct_reports:
        present.add("CT")
    for r in reports:
        if r.kind == "radiopharmaceutical_sr" and r.administrations:
            present.add("PT" if r.administrations[0].is_pet else "NM")
    modalities = sorted(present, key=lambda m: {"PT": 0, "NM": 1, "CT": 2}.get(m, 3))
    ex = ExamWorkflow(study_instance_uid=objs[0].study, device=device, modalities=modalities,
                      study_description=next((o.description for o in objs if o.description),
                                             None))
    ex.number_of_series = len({o.series for o in images if o.series})
    if images:
        ex.first_acquisition = _min([o.acquired for o in images])
        ends = [_plus(o.acquired, o.duration_s) for o in images]
        ex.last_acquisition_end = _max(ends)
    pps_s = _min([o.pps_start for o in objs])
    pps_e = _max([o.pps_end for o in objs])
    irr_s = _min([r.irradiation_start for r in ct_reports])
    irr_e = _max([r.irradiation_end for r in ct_reports])
    pps_ok = bool(pps_s and pps_e and (_minutes(pps_s, pps_e) or 0) > 0)
    if pps_ok and ex.first_acquisition and ex.last_acquisition_end:
        # A step that does not contain its own acquisitions (a minute's slack for clocks)
        # was not recorded as performed: the images' times are more trustworthy.
        early = _minutes(pps_s, ex.first_acquisition)
        late = _minutes(ex.last_acquisition_end, pps_e)
        if (early is not None and early < -1) or (late is not None and late < -1):
            ex.warnings.append("performed procedure step "
                               f"{pps_s:%H:%M:%S}–{pps_e:%H:%M:%S} does not contain the "
                               "acquisitions; acquisition times used")
            pps_ok = False
    if pps_ok and pps_s and pps_e:
        ex.start, ex.end, ex.time_source = pps_s, pps_e, "performed_procedure_step"
    elif ex.first_acquisition and ex.last_acquisition_end:
        # Images of one part (PET) may be here without those of the other (CT), whose
        # dose report still dates its irradiation: the exam spans both.
        ex.start = _min([ex.first_acquisition, irr_s])
        ex.end = _max([ex.last_acquisition_end, irr_e])
        ex.time_source = "acquisition_times" + (
            "+dose_report_irradiation" if (ex.start, ex.end) != (ex.first_acquisition,
                                                                  ex.last_acquisition_end)
            else "")
    elif irr_s and irr_e:
        ex.start, ex.end, ex.time_source = irr_s, irr_e, "dose_report_irradiation"
    else:
        ex.warnings.append("no procedure-step, acquisition or irradiation times: exam start "
                           "and end unknown")
    if images and not any(o.duration_s for o in images) and irr_e is None:
        ex.warnings.append("last acquisition's duration unknown: its start is taken as the "
                           "end of imaging")
    first = _min([ex.first_acquisition, irr_s])
    last = _max([ex.last_acquisition_end, irr_e])
    if first and last:
        table = _minutes(first, last)
        if table is not None:
            ex.table_time_min = (table + settings.setup_allowance_min
                                 + settings.cleardown_allowance_min)
    # PET uptake
    pet = [o for o in images if o.modality == "PT"]
    admins: list[rp.Administration] = [a for r in reports if r.kind == "radiopharmaceutical_sr"
                                       for a in r.administrations]
    admins += [a for r in reports if r.kind == "image" for a in r.administrations]
    injected = next((a.administered_at for a in admins if a.administered_at), None)
    if pet:
        ex.first_pet_acquisition = _min([o.acquired for o in pet])
        ex.injection_at = injected
        if injected is None:
            ex.warnings.append("PET without an injection time: uptake time unknown")
        else:
            ex.uptake_time_min = _minutes(injected, ex.first_pet_acquisition)
            lo, hi = settings.uptake_window_min
            ex.uptake_window_min = (lo, hi)
            if ex.uptake_time_min is not None:
                ex.uptake_in_window = lo <= ex.uptake_time_min <= hi
                if ex.uptake_time_min < 0:
                    ex.warnings.append("first PET acquisition before the injection time: "
                                       "check the clocks or the injection time entered")
    # CT timing
    events: list[CtEvent] = [e for r in ct_reports for e in r.events]
    rot = [e.rotation_time_s for e in events if e.rotation_time_s] or \
        [o.rotation_s for o in images if o.rotation_s]
    ex.ct_rotation_time_s = min(rot) if rot else None
    exposure = [e.exposure_time_s for e in {e.event_uid or id(e): e for e in events}.values()
                if e.exposure_time_s is not None]
    span_s = (_minutes(irr_s, irr_e) or 0.0) * 60 if irr_s and irr_e else None
    if exposure:
        ex.ct_scan_time_s = float(sum(exposure))
        if span_s is not None and ex.ct_scan_time_s > span_s + 1.0:
            ex.warnings.append(f"the events' exposure times add up to {ex.ct_scan_time_s:g} s, "
                               f"more than the {span_s:.0f} s from the start to the end of "
                               "irradiation; the irradiation span is given")
            ex.ct_scan_time_s = span_s
    elif span_s is not None:
        ex.ct_scan_time_s = span_s
    return ex


def _plus(t: dt.datetime | None, seconds: float | None) -> dt.datetime | None:
    if t is None:
        return None
    return t + dt.timedelta(seconds=seconds or 0.0)


def _naive(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=None)


def _min(values: Iterable[dt.datetime | None]) -> dt.datetime | None:
    present = [v for v in values if v is not None]
    return min(present, key=_naive) if present else None


def _max(values: Iterable[dt.datetime | None]) -> dt.datetime | None:
    present = [v for v in values if v is not None]
    return max(present, key=_naive) if present else None


def _device_key(d: DeviceIdentity) -> tuple[str | None, ...]:
    return (d.manufacturer, d.model, d.serial or d.station)


def device_days(exams: Sequence[ExamWorkflow],
                settings: WorkflowSettings = WorkflowSettings()) -> list[DeviceDay]:
    """Exams, utilisation of staffed hours and gaps between patients, per device and day."""
    groups: dict[tuple[Any, ...], list[ExamWorkflow]] = {}
    for ex in exams:
        if ex.start is None:
            continue
        groups.setdefault((_device_key(ex.device), ex.start.date()), []).append(ex)
    out: list[DeviceDay] = []
    for (_, day), group in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        group.sort(key=lambda e: _naive(e.start) if e.start else dt.datetime.min)
        table = sum(e.table_time_min or e.duration_min or 0.0 for e in group)
        gaps = []
        for a, b in pairwise(group):
            gap = _minutes(a.end, b.start)
            if gap is not None:
                gaps.append(max(gap, 0.0))
        out.append(DeviceDay(device=group[0].device, day=day, exams=len(group),
                             table_time_min=table, staffed_min=settings.staffed_min,
                             gaps_min=gaps))
    return out


def workflow_from_datasets(items: Iterable[Dataset | tuple[str, Dataset]], *,
                           settings: WorkflowSettings = WorkflowSettings(),
                           progress: Progress | None = None) -> WorkflowReport:
    """Exam timings from already-parsed data sets (``(where, ds)`` pairs or bare ones)."""
    report = WorkflowReport()
    by_exam: dict[tuple[str, tuple[str | None, ...]], list[_Obj]] = {}
    pairs = [(i if isinstance(i, tuple) else
              (h.text(i, "SOPInstanceUID") or "<data set>", i)) for i in items]
    study_objs: dict[str, list[_Obj]] = {}
    for n, (where, ds) in enumerate(pairs, start=1):
        try:
            o = _obj(ds, where)
        except Exception as exc:
            report.failures.append((where, f"cannot read its times ({type(exc).__name__}: "
                                           f"{exc})"))
            o = None
        if progress is not None:
            progress(n, len(pairs))
        if o is None:
            if not any(w == where for w, _ in report.failures):
                report.notes.append((where, "no Study Instance UID (0020,000D): not an exam"))
            continue
        study_objs.setdefault(o.study, []).append(o)
    for study, objs in study_objs.items():
        if not any(o.acquired is not None or o.record is not None for o in objs):
            for o in objs:
                report.notes.append((o.where, "no image acquisition or dose report in its "
                                              "study: no exam timing"))
            continue
        # One exam per study and imaging device; SRs made by another system join the
        # study's images.
        img_devices = {_device_key(o.device) for o in objs if o.acquired is not None}
        for o in objs:
            key = _device_key(o.device)
            if o.acquired is None and key not in img_devices and len(img_devices) == 1:
                key = next(iter(img_devices))
            by_exam.setdefault((study, key), []).append(o)
    for objs in by_exam.values():
        report.exams.append(_exam(objs, settings))
    report.exams.sort(key=lambda e: (_naive(e.start).isoformat() if e.start else "",
                                     e.study_instance_uid))
    report.days = device_days(report.exams, settings)
    return report


def workflow_from_paths(paths: Sequence[str | Path] | str | Path, *,
                        settings: WorkflowSettings = WorkflowSettings(),
                        progress: Progress | None = None) -> WorkflowReport:
    """Exam timings from files, folders and zips (see :func:`workflow_from_datasets`)."""
    found = scan(paths, progress=progress)
    report = workflow_from_datasets(found.datasets, settings=settings)
    report.notes[:0] = found.skipped
    report.failures[:0] = found.failures
    return report

"""Report sections for patient studies: dose per study and workflow timings per exam.

The same numbers as ``scanbench dose`` and ``scanbench workflow`` print, as tables for
the HTML/PDF report (the demo report shows its simulated clinical studies this way).
Study text from DICOM headers is untrusted; the template escapes every cell.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

from scanbench.clinical.dose import StudyDose
from scanbench.clinical.workflow import WorkflowReport
from scanbench.report.html import ExtraSection
from scanbench.report.numbers import format_number
from scanbench.report.tables import Cell, SummaryTable
from scanbench.types import DeviceIdentity


def _when(t: dt.datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M") if t else "—"


def _device(d: DeviceIdentity) -> str:
    return " ".join(p for p in (d.manufacturer, d.model, d.serial and f"({d.serial})") if p) \
        or "unknown device"


def _n(value: float | None, decimals: int = 1) -> str:
    return "—" if value is None else format_number(value, decimals=decimals)


def _num(text: str) -> Cell:
    """A number cell (right-aligned, never wrapped)."""
    return Cell(text, numeric=True)


def _head(*names: str) -> list[list[Cell]]:
    return [[Cell(n, header=True) for n in names]]


_SUPERSCRIPT = str.maketrans("0123456789+-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻")


def superscripts(meaning: str) -> str:
    """A code meaning as a reader writes it: DICOM marks superscripts with carets
    (PS3.16 code meanings such as "Fluorodeoxyglucose F^18^"), shown here as Unicode
    superscript digits ("Fluorodeoxyglucose F¹⁸"); other text is left as it is."""
    return re.sub(r"\^([0-9+-]{1,4})\^", lambda m: m.group(1).translate(_SUPERSCRIPT), meaning)


def dose_section(studies: Sequence[StudyDose]) -> ExtraSection:
    """One row per study: CT (CTDIvol, DLP), radiopharmaceutical (agent, activity) and
    the effective dose with the coefficients' sources in the notes."""
    body = []
    sources: dict[str, None] = {}
    for s in studies:
        a = s.radiopharmaceutical
        ctdi = [e.ctdivol_mgy for e in s.events if e.ctdivol_mgy is not None]
        e = s.effective_dose
        per_kg = (a.administered_activity_mbq / s.patient.weight_kg
                  if a and a.administered_activity_mbq and s.patient.weight_kg else None)
        for src in (e.ct_source, e.radiopharmaceutical_source):
            if src:
                sources[src] = None
        body.append([Cell(_when(s.study_datetime)), Cell(_device(s.device)), Cell(s.modality),
                     _num(str(len(s.events)) if s.events else "—"),
                     _num(_n(max(ctdi), 2) if ctdi else "—"), _num(_n(s.total_dlp_mgycm)),
                     Cell(superscripts(a.agent) if a and a.agent else "—"),
                     _num(_n(a.administered_activity_mbq) if a else "—"), _num(_n(per_kg, 2)),
                     _num(_n(e.ct_msv, 2)), _num(_n(e.radiopharmaceutical_msv, 2)),
                     _num(_n(e.total_msv, 2))])
    table = SummaryTable(
        title="Patient dose per study", clause="",
        head=_head("study", "device", "modality", "CT events", "CTDIvol max (mGy)",
                   "DLP total (mGy·cm)", "tracer", "activity (MBq)", "activity (MBq/kg)",
                   "E CT (mSv)", "E tracer (mSv)", "E total (mSv)"),
        body=body,
        notes=[f"Effective dose coefficients: {src}" for src in sources]
        + [f"study {s.study_instance_uid}: {w}" for s in studies for w in s.warnings])
    return ExtraSection(
        title="Patient dose",
        intro="Dose per study from the CT radiation dose structured reports and the "
              "radiopharmaceutical radiation dose reports (image headers where there is "
              "none); effective dose E from DLP and administered activity.",
        tables=[table])


def workflow_section(report: WorkflowReport) -> ExtraSection:
    """Exam timings (start, duration, table time, uptake time, CT scan time) and the
    per-device, per-day utilisation, as ``scanbench workflow`` prints them."""
    exams = SummaryTable(
        title="Exams", clause="",
        head=_head("start", "device", "modality", "series", "duration (min)", "table (min)",
                   "uptake (min)", "CT scan (s)", "times from"),
        body=[[Cell(_when(e.start)), Cell(_device(e.device)), Cell("/".join(e.modalities)),
               _num(str(e.number_of_series or "—")), _num(_n(e.duration_min)),
               _num(_n(e.table_time_min)),
               _num(_n(e.uptake_time_min) + (" (outside the window)"
                                             if e.uptake_in_window is False else "")),
               _num(_n(e.ct_scan_time_s)), Cell(e.time_source or "—")]
              for e in report.exams],
        notes=[f"study {e.study_instance_uid}: {w}" for e in report.exams for w in e.warnings])
    rows = []
    for d in report.days:
        dd = d.to_dict()
        rows.append([Cell(d.day.isoformat()), Cell(_device(d.device)), _num(str(d.exams)),
                     _num(_n(d.table_time_min)), _num(_n(d.utilisation_pct)),
                     _num(_n(dd["median_gap_min"])), _num(_n(dd["max_gap_min"]))])
    days = SummaryTable(
        title="Per device and day", clause="",
        head=_head("day", "device", "exams", "table time (min)", "utilisation (%)",
                   "median gap (min)", "max gap (min)"),
        body=rows, notes=[])
    return ExtraSection(
        title="Workflow",
        intro="Exam, table and uptake times from the DICOM timestamps of each study "
              "(performed procedure steps where present, else acquisition times).",
        tables=[exams, days])


__all__ = ["dose_section", "workflow_section"]

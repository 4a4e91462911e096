"""The dose and workflow sections of a report (the demo shows its simulated studies so):
the numbers the dose command computes, units in the headers, DICOM text escaped."""

from __future__ import annotations

import datetime as dt

from scanbench.clinical import effective_dose as ed
from scanbench.clinical import radiopharmaceutical as rp
from scanbench.clinical.dose import CtEvent, StudyDose
from scanbench.clinical.workflow import ExamWorkflow, WorkflowReport
from scanbench.report.clinical import dose_section, workflow_section
from scanbench.report.html import render_html
from scanbench.types import DeviceIdentity

DEVICE = DeviceIdentity("ACME", "CT <b>64</b>", "SN1")


def _study() -> StudyDose:
    return StudyDose(
        study_instance_uid="1.2.3", device=DEVICE, modality="PT/CT",
        events=[CtEvent(event_uid="1", ctdivol_mgy=2.5), CtEvent(event_uid="2", ctdivol_mgy=5.74)],
        total_dlp_mgycm=213.14,
        radiopharmaceutical=rp.Administration(agent="Fluorodeoxyglucose",
                                              administered_activity_mbq=246.4),
        patient=rp.PatientFacts(weight_kg=84.0),
        effective_dose=ed.EffectiveDose(ct_msv=2.98, ct_source="AAPM Report 96",
                                        radiopharmaceutical_msv=4.68,
                                        radiopharmaceutical_source="ICRP Publication 128"),
        study_datetime=dt.datetime(2026, 3, 2, 8, 0))


def test_dose_section_rows_and_sources() -> None:
    section = dose_section([_study()])
    table = section.tables[0]
    head = [c.text for c in table.head[0]]
    assert "CTDIvol max (mGy)" in head and "DLP total (mGy·cm)" in head
    row = [c.text for c in table.body[0]]
    assert row[:4] == ["2026-03-02 08:00", "ACME CT <b>64</b> (SN1)", "PT/CT", "2"]
    assert row[4:] == ["5.74", "213.1", "Fluorodeoxyglucose", "246.4", "2.93", "2.98", "4.68",
                       "7.66"]
    assert all(c.numeric for c in table.body[0][4:6])
    assert any("ICRP Publication 128" in n for n in table.notes)


def test_sections_in_the_html_escape_dicom_text() -> None:
    exam = ExamWorkflow(study_instance_uid="1.2.3", device=DEVICE, modalities=["CT"],
                        start=dt.datetime(2026, 3, 2, 8, 0), end=dt.datetime(2026, 3, 2, 8, 6),
                        number_of_series=2, table_time_min=1.5)
    html = render_html([], figures=None,
                       extra_sections=[dose_section([_study()]),
                                       workflow_section(WorkflowReport(exams=[exam]))])
    assert "<h2>Patient dose</h2>" in html and "<h2>Workflow</h2>" in html
    assert "CT &lt;b&gt;64&lt;/b&gt;" in html and "<b>64</b>" not in html
    assert '<td class="num">6.0</td>' in html  # the exam's 6 minutes


def test_code_meaning_superscripts_are_shown_as_superscripts() -> None:
    from scanbench.report.clinical import superscripts

    assert superscripts("Fluorodeoxyglucose F^18^") == "Fluorodeoxyglucose F¹⁸"
    assert superscripts("^18^Fluorine") == "¹⁸Fluorine"
    assert superscripts("Rubidium chloride Rb^82^") == "Rubidium chloride Rb⁸²"
    assert superscripts("T2 [^x^] <b>") == "T2 [^x^] <b>"  # only digits; the rest untouched

"""Golden-file tests: the real dose reports in ../shared/data/dose/rdsr against every value
their owners (OpenREM's import tests, PUBLISHED_VALUES_openrem.md) assert, to the last
digit given. OpenREM stores what the report says, so these check that scanbench reads each
vendor's report exactly: CTDIvol, DLP, phantom, study total, event counts per type.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from scanbench.clinical.dose import DoseReport, StudyDose, doses_from_paths


@pytest.fixture(scope="module")
def rdsr(shared_data: Path) -> Path:
    return shared_data / "dose" / "rdsr"


def _one(report: DoseReport) -> StudyDose:
    assert not report.failures, report.failures
    assert len(report.studies) == 1, [s.study_instance_uid for s in report.studies]
    return report.studies[0]


def _types(study: StudyDose) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in study.events:
        out[str(e.acquisition_type)] = out.get(str(e.acquisition_type), 0) + 1
    return out


def test_ge_optima_enhanced_sr(rdsr: Path) -> None:
    s = _one(doses_from_paths([rdsr / "CT-ESR-GE_Optima.dcm"]))
    assert s.device.manufacturer == "GE Medical Systems"
    assert s.device.model == "Optima CT660"
    assert s.device.station == "geoptima"
    assert s.study_datetime == dt.datetime(2006, 8, 23, 11, 40, 14)
    assert s.irradiation_start == dt.datetime(2006, 8, 23, 11, 40, 14)
    assert s.irradiation_end == dt.datetime(2006, 8, 23, 11, 48, 40)
    assert len(s.events) == 6
    assert s.total_dlp_mgycm == pytest.approx(415.82, abs=5e-3)
    e = s.events
    assert (e[2].ctdivol_mgy, e[2].dlp_mgycm) == (pytest.approx(3.23), pytest.approx(155.97))
    assert (e[5].ctdivol_mgy, e[5].dlp_mgycm) == (pytest.approx(5.3), pytest.approx(259.85))
    assert e[2].phantom_cm == 32 and e[5].phantom_cm == 32
    assert [x.target_region for x in e] == ["Abdomen"] * 6
    assert [x.acquisition_type for x in e] == ["constant_angle", "constant_angle", "spiral",
                                                "constant_angle", "constant_angle", "spiral"]
    assert [x.scan_length_mm for x in e] == pytest.approx([560, 560, 418.75, 560, 560, 443.75])
    assert [x.exposure_time_s for x in e] == pytest.approx([5.6, 5.6, 5.27, 5.6, 5.6, 7.47])
    assert [x.single_collimation_mm for x in e] == pytest.approx([1.25, 1.25, 0.62, 1.25,
                                                                  1.25, 0.62])
    assert [x.total_collimation_mm for x in e] == pytest.approx([560, 560, 5, 560, 560, 5])
    assert [x.x_ray_sources for x in e] == [1] * 6
    assert (e[2].pitch, e[5].pitch) == (pytest.approx(1.38), pytest.approx(0.98))
    assert [x.kvp for x in e] == pytest.approx([120] * 6)
    assert [x.max_tube_current_ma for x in e] == pytest.approx([10, 20, 85, 10, 20, 560])
    assert [x.tube_current_ma for x in e] == pytest.approx([10, 20, 85, 10, 20, 100])
    assert _types(s) == {"constant_angle": 4, "spiral": 2}
    # localizers without a CT Dose container: said, not silently zero
    assert sum("no CT Dose container" in w for w in s.warnings) == 4
    assert any("non-UCUM unit 'mGycm'" in w for w in s.warnings)


def test_non_dose_enhanced_sr_is_recognised_and_skipped(rdsr: Path) -> None:
    report = doses_from_paths([rdsr / "ESR_non-dose.dcm"])
    assert report.studies == [] and report.failures == []
    (where, why), = report.notes
    assert where.endswith("ESR_non-dose.dcm") and "not a CT or radiopharmaceutical" in why


def test_philips_big_bore(rdsr: Path) -> None:
    s = _one(doses_from_paths([rdsr / "CT-RDSR-Philips_BigBore4DCT.dcm"]))
    assert s.events[0].ctdivol_mgy == pytest.approx(23.7)
    assert s.events[0].phantom_cm == 32
    assert s.total_dlp_mgycm == pytest.approx(541.1)
    # Philips writes the 4D exposure time in a unit other than s: flagged, not hidden
    assert any("exposure time 11912 s is implausible" in w for w in s.warnings)


@pytest.mark.parametrize(("files", "events", "total", "types"), [
    (["CT-RDSR-Siemens-Multi-1.dcm"], 1, 7.46, {"constant_angle": 1}),
    (["CT-RDSR-Siemens-Multi-1.dcm", "CT-RDSR-Siemens-Multi-2.dcm"], 2, 77.27,
     {"constant_angle": 1, "spiral": 1}),
    (["CT-RDSR-Siemens-Multi-1.dcm", "CT-RDSR-Siemens-Multi-2.dcm",
      "CT-RDSR-Siemens-Multi-3.dcm"], 3, 236.09, {"constant_angle": 1, "spiral": 2}),
    # the same report sent twice changes nothing (OpenREM L132-149)
    (["CT-RDSR-Siemens-Multi-1.dcm", "CT-RDSR-Siemens-Multi-2.dcm",
      "CT-RDSR-Siemens-Multi-3.dcm", "CT-RDSR-Siemens-Multi-3.dcm"], 3, 236.09,
     {"constant_angle": 1, "spiral": 2}),
    # order of arrival does not matter
    (["CT-RDSR-Siemens-Multi-3.dcm", "CT-RDSR-Siemens-Multi-1.dcm"], 3, 236.09,
     {"constant_angle": 1, "spiral": 2}),
])
def test_siemens_continued_reports_merge(rdsr: Path, files: list[str], events: int,
                                         total: float, types: dict[str, int]) -> None:
    s = _one(doses_from_paths([rdsr / f for f in files]))
    assert len(s.events) == events
    assert s.total_dlp_mgycm == pytest.approx(total, abs=5e-3)
    assert _types(s) == types
    assert len({e.event_uid for e in s.events}) == events


def test_toshiba_dose_check_alerts(rdsr: Path) -> None:
    s = _one(doses_from_paths([rdsr / "CT-RDSR-Toshiba_DoseCheck.dcm"]))
    a1 = next(a for a in s.events[0].dose_check_alerts if a["kind"] == "alert")
    a2 = next(a for a in s.events[1].dose_check_alerts if a["kind"] == "alert")
    n1 = next(a for a in s.events[0].dose_check_alerts if a["kind"] == "notification")
    assert a1["dlp_alert_value_configured"] is True
    assert a1["ctdivol_alert_value_configured"] is True
    assert a1["dlp_alert_value_mgycm"] == pytest.approx(100.0)
    assert a1["ctdivol_alert_value_mgy"] == pytest.approx(10.0)
    assert a1["accumulated_dlp_forward_estimate_mgycm"] == pytest.approx(251.2)
    assert a1["person_name"] == "Luuk"
    assert n1["dlp_notification_value_configured"] is False
    assert n1["ctdivol_notification_value_configured"] is False
    assert a2["dlp_alert_value_mgycm"] == pytest.approx(100.0)
    assert a2["ctdivol_alert_value_mgy"] == pytest.approx(10.0)
    assert a2["accumulated_dlp_forward_estimate_mgycm"] == pytest.approx(502.4)
    assert a2["accumulated_ctdivol_forward_estimate_mgy"] == pytest.approx(10.6)
    assert s.total_dlp_mgycm == pytest.approx(502.4)


def test_toshiba_multivalued_sd(rdsr: Path) -> None:
    # OpenREM asserts only that it imports; the malformed private "10.50/ 15.00" value must
    # not stop the report being read.
    s = _one(doses_from_paths([rdsr / "CT-RDSR-Toshiba_MultiValSD.dcm"]))
    assert s.total_dlp_mgycm == pytest.approx(136.9)
    assert s.events[2].ctdivol_mgy == pytest.approx(3.2)


def test_ge_from_pixelmed(rdsr: Path) -> None:
    s = _one(doses_from_paths([rdsr / "CT-RDSR-GEPixelMed.dcm"]))
    assert s.device.manufacturer == "GE MEDICAL SYSTEMS"
    assert s.patient.age_years == pytest.approx(100.0)
    assert len(s.events) == 2
    assert s.total_dlp_mgycm == pytest.approx(586.34)
    assert s.events[0].ctdivol_mgy == pytest.approx(60.41)
    assert s.events[0].phantom_cm == 16


def test_philips_dose_info_secondary_capture(rdsr: Path) -> None:
    # Not a burned-in screen only: the SC carries the standard Exposure Dose Sequence
    # (CTDIvol per exposure) and Philips' private DLP, which OpenREM reads too.
    s = _one(doses_from_paths([rdsr / "CT-SC-Philips_Brilliance16P.dcm"]))
    assert len(s.events) == 4
    assert s.total_dlp_mgycm == pytest.approx(1102.44609, abs=5e-6)
    assert _types(s) == {"constant_angle": 1, "spiral": 3}
    assert s.dose_sources == ["dose_screen_header"]


def test_siemens_pet_ct_study_merges_rrdsr_ct_rdsr_and_pet_image(rdsr: Path) -> None:
    s = _one(doses_from_paths([rdsr / "NM-RRDSR-Siemens.dcm", rdsr / "NM-CT-RDSR-Siemens.dcm",
                               rdsr / "NM-PetIm-Siemens.dcm"]))
    assert s.modality == "PT/CT"
    a = s.radiopharmaceutical
    assert a is not None and a.source == "rrdsr"
    assert a.administered_activity_mbq == pytest.approx(394.0)
    assert a.reported_effective_dose_msv == pytest.approx(7.486)
    assert a.radionuclide == "^18^Fluorine" and a.half_life_s == pytest.approx(6586.2)
    assert a.agent == "Fluorodeoxyglucose F^18^"
    assert a.event_uid == "1.3.12.2.1107.5.1.4.11090.20220224104830.0"
    assert a.administered_at == dt.datetime(2022, 2, 24, 10, 40, 30)
    assert a.route == "Intravenous route"
    assert s.patient.weight_kg == pytest.approx(110) and s.patient.height_m == pytest.approx(1.78)
    assert s.patient.age_years == pytest.approx(63) and s.patient.sex == "M"
    # ICRP 128 FDG 0.019 mSv/MBq × 394 MBq = 7.486 mSv: the value Siemens wrote in the report
    assert s.effective_dose.radiopharmaceutical_msv == pytest.approx(7.486)
    assert s.total_dlp_mgycm == pytest.approx(667.72)
    d = s.to_dict()
    assert d["radiopharmaceutical"]["activity_per_kg_mbq_per_kg"] == pytest.approx(394 / 110)


def test_ge_pet_image_header_fallback(rdsr: Path) -> None:
    s = _one(doses_from_paths([rdsr / "NM-PetIm-GE.dcm"]))
    a = s.radiopharmaceutical
    assert a is not None and a.source == "image_header"
    assert a.administered_activity_mbq == pytest.approx(221.596288, abs=5e-7)
    assert a.radionuclide == "^18^Fluorine"
    assert a.half_life_s == pytest.approx(6586.2001953125)
    assert a.agent == "FDG -- fluorodeoxyglucose"
    assert a.administered_at == dt.datetime(2022, 3, 10, 12, 41, 0)
    assert s.total_dlp_mgycm is None and s.modality == "PT"


def test_whole_folder_in_one_batch(rdsr: Path) -> None:
    """Every file at once: the non-dose SR and the notes file are named, the rest read."""
    report = doses_from_paths([rdsr])
    assert report.failures == []
    skipped = {Path(w).name for w, _ in report.notes}
    assert skipped == {"ESR_non-dose.dcm", "PUBLISHED_VALUES_openrem.md"}
    assert len(report.studies) == 10


def test_workflow_times_from_real_files(rdsr: Path) -> None:
    """Uptake time = first PET acquisition − injection (STANDARDS.md F), with the times
    OpenREM publishes for these files: GE injection 12:41:00, series 13:31:55; Siemens
    injection 10:40:30 (RRDSR). CT irradiation span from the GE Optima report."""
    from scanbench.clinical.workflow import workflow_from_paths

    (ge,) = workflow_from_paths([rdsr / "NM-PetIm-GE.dcm"]).exams
    assert ge.injection_at == dt.datetime(2022, 3, 10, 12, 41, 0)
    assert ge.first_pet_acquisition == dt.datetime(2022, 3, 10, 13, 31, 55)
    assert ge.uptake_time_min == pytest.approx(50 + 55 / 60)
    assert ge.uptake_in_window is False  # below the default 55-75 min window
    (siemens,) = workflow_from_paths([rdsr / "NM-RRDSR-Siemens.dcm",
                                      rdsr / "NM-PetIm-Siemens.dcm",
                                      rdsr / "NM-CT-RDSR-Siemens.dcm"]).exams
    assert siemens.injection_at == dt.datetime(2022, 2, 24, 10, 40, 30)
    assert siemens.modalities == ["PT", "CT"]
    first = siemens.first_pet_acquisition
    assert first is not None and first.replace(microsecond=0) == dt.datetime(2022, 2, 24, 11,
                                                                             55, 59)
    assert siemens.uptake_time_min == pytest.approx((first - siemens.injection_at)
                                                    .total_seconds() / 60)
    (optima,) = workflow_from_paths([rdsr / "CT-ESR-GE_Optima.dcm"]).exams
    assert optima.time_source == "dose_report_irradiation"
    assert (optima.start, optima.end) == (dt.datetime(2006, 8, 23, 11, 40, 14),
                                          dt.datetime(2006, 8, 23, 11, 48, 40))
    assert optima.ct_scan_time_s == pytest.approx(5.6 * 4 + 5.27 + 7.47)

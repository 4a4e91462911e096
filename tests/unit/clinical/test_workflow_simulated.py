"""Workflow timings and dose fallbacks against the truth of the virtual clinical scanner."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from pathlib import Path

import pytest

from scanbench.clinical.dose import doses_from_paths
from scanbench.clinical.workflow import WorkflowSettings, device_days, workflow_from_paths
from scanbench.simulate.clinical import simulate_ct_exams, simulate_petct_exams


@pytest.fixture(scope="module")
def petct(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("petct")
    return out, simulate_petct_exams(out, n=4, seed=7)


@pytest.fixture(scope="module")
def ct(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("ct")
    return out, simulate_ct_exams(out, n=3, seed=5, slice_mm=20.0)


def _t(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s)


def test_petct_timings_match_truth(petct: tuple[Path, list[dict]]) -> None:
    out, truth = petct
    report = workflow_from_paths([out])
    assert not report.failures
    by_uid = {e.study_instance_uid: e for e in report.exams}
    assert set(by_uid) == {t["study_instance_uid"] for t in truth}
    for t in truth:
        e = by_uid[t["study_instance_uid"]]
        assert e.time_source == "performed_procedure_step"
        assert e.start == _t(t["start"]) and e.end == _t(t["end"])
        assert e.uptake_time_min == pytest.approx(t["uptake_time_min"], abs=1e-3)
        assert e.uptake_in_window is (55 <= t["uptake_time_min"] <= 75)
        assert e.first_pet_acquisition == _t(t["first_pet_acquisition"])
        assert e.modalities == ["PT", "CT"]
        assert e.ct_scan_time_s == pytest.approx(sum(ev["exposure_time_s"]
                                                     for ev in t["events"]))
        # table time: first acquisition to the end of the last PET bed
        assert e.table_time_min == pytest.approx(
            (_t(t["pet_end"]) - _t(t["first_acquisition"])).total_seconds() / 60, abs=1e-6)


def test_uptake_window_is_configurable(petct: tuple[Path, list[dict]]) -> None:
    out, _truth = petct
    report = workflow_from_paths([out], settings=WorkflowSettings(uptake_window_min=(0, 1)))
    assert all(e.uptake_in_window is False for e in report.exams)
    assert all(e.uptake_window_min == (0, 1) for e in report.exams)


def test_device_day_gaps_and_utilisation(petct: tuple[Path, list[dict]]) -> None:
    out, truth = petct
    report = workflow_from_paths([out])
    (day,) = report.days
    assert day.exams == 4
    expected_gaps = [(_t(b["start"]) - _t(a["end"])).total_seconds() / 60
                     for a, b in itertools.pairwise(truth)]
    assert day.gaps_min == pytest.approx(expected_gaps, abs=1e-6)
    table = sum(e.table_time_min or 0 for e in report.exams)
    assert day.utilisation_pct == pytest.approx(100 * table / 540)
    half = device_days(report.exams, WorkflowSettings(staffed_hours=(dt.time(8), dt.time(12,
                                                                                          30))))
    assert half[0].utilisation_pct == pytest.approx(2 * day.utilisation_pct)


def test_acquisition_times_when_no_procedure_step(ct: tuple[Path, list[dict]],
                                                  tmp_path: Path) -> None:
    import pydicom

    out, truth = ct
    t = truth[0]
    folder = tmp_path / "exam"
    folder.mkdir()
    for f in sorted((out / t["folder"]).rglob("*.dcm")):
        ds = pydicom.dcmread(f)
        for kw in ("PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime",
                   "PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime"):
            if kw in ds:
                delattr(ds, kw)
        ds.save_as(folder / f"{f.parent.name}_{f.name}", enforce_file_format=True)
    (e,) = workflow_from_paths([folder]).exams
    # images date the start; the dose report's end of irradiation the end
    assert e.time_source == "acquisition_times+dose_report_irradiation"
    assert e.start == _t(t["first_acquisition"])
    assert e.end == _t(t["irradiation_end"])
    assert e.number_of_series == 2
    (e,) = workflow_from_paths([p for p in folder.iterdir() if "dose" not in p.name]).exams
    assert e.time_source == "acquisition_times"
    assert e.start == _t(t["first_acquisition"])
    assert e.end is not None and e.end < _t(t["irradiation_end"])
    assert any("its start is taken as the end of imaging" in w for w in e.warnings)


def test_ct_dose_and_ssde_truth(ct: tuple[Path, list[dict]]) -> None:
    out, truth = ct
    report = doses_from_paths([out])
    by_uid = {s.study_instance_uid: s for s in report.studies}
    for t in truth:
        s = by_uid[t["study_instance_uid"]]
        assert s.dose_sources == ["ct_dose_sr"]
        assert s.total_dlp_mgycm == pytest.approx(t["total_dlp_mgycm"])
        assert [e.ctdivol_mgy for e in s.events] == [e["ctdivol_mgy"] for e in t["events"]]


def test_image_header_fallback_without_rdsr(tmp_path: Path) -> None:
    truth = simulate_ct_exams(tmp_path, n=1, seed=2, rdsr=False, slice_mm=20.0,
                              protocols=("chest",))
    (s,) = doses_from_paths([tmp_path]).studies
    assert s.dose_sources == ["image_header"]
    assert any("CTDIvol (0018,9345) from the image headers" in w for w in s.warnings)
    t = json.loads((tmp_path / "truth.json").read_text())["exams"][0]
    assert t == truth[0]
    heli = s.events[1]
    assert heli.event_uid is not None  # one event per Irradiation Event UID
    assert heli.phantom_cm == 32
    assert heli.ctdivol_mgy == pytest.approx(round(_helical_ctdi(tmp_path), 2))
    # DLP from the reconstructed length: less than the irradiated length's, as stated
    assert heli.dlp_mgycm is not None and heli.dlp_mgycm < heli.ctdivol_mgy * 100


def _helical_ctdi(folder: Path) -> float:
    import pydicom

    f = next(folder.rglob("CT002_0001.dcm"))
    return float(pydicom.dcmread(f).CTDIvol)


def test_pet_header_fallback_without_rrdsr(tmp_path: Path) -> None:
    from scanbench.simulate.clinical import PetProtocol

    truth = simulate_petct_exams(tmp_path, n=1, seed=4, pet=PetProtocol(write_rrdsr=False))
    (s,) = doses_from_paths([tmp_path]).studies
    assert s.radiopharmaceutical is not None
    assert s.radiopharmaceutical.source == "image_header"
    assert s.radiopharmaceutical.administered_activity_mbq == pytest.approx(
        truth[0]["administered_activity_mbq"], rel=1e-6)
    assert s.effective_dose.radiopharmaceutical_msv == pytest.approx(
        truth[0]["administered_activity_mbq"] * 0.019, rel=1e-6)


def test_procedure_step_missing_its_acquisitions_is_not_trusted(
        ct: tuple[Path, list[dict]], tmp_path: Path) -> None:
    import pydicom

    out, truth = ct
    t = truth[0]
    for f in sorted((out / t["folder"]).rglob("*.dcm")):
        ds = pydicom.dcmread(f)
        if "PerformedProcedureStepEndTime" in ds:  # a step "ended" 1 s after it started
            start = dt.datetime.strptime(ds.PerformedProcedureStepStartTime, "%H%M%S.%f")
            ds.PerformedProcedureStepEndTime = (start + dt.timedelta(seconds=1)
                                                ).strftime("%H%M%S.%f")
        ds.save_as(tmp_path / f"{f.parent.name}_{f.name}", enforce_file_format=True)
    (e,) = workflow_from_paths([tmp_path]).exams
    assert e.time_source == "acquisition_times+dose_report_irradiation"
    assert e.start == _t(t["first_acquisition"])
    assert any("does not contain the acquisitions" in w for w in e.warnings)

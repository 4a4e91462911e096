"""``scanbench dose`` and ``scanbench workflow`` as subprocesses: the JSON contract of
issue 4, CSV output, exit statuses, and bad input named on stderr."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONTRACT = {"study_instance_uid", "device", "modality", "total_dlp_mgycm", "events",
            "radiopharmaceutical", "effective_dose_msv", "warnings"}
EVENT = {"event_uid", "acquisition_type", "protocol", "target_region", "ctdivol_mgy",
         "phantom_cm", "dlp_mgycm", "scan_length_mm", "kvp", "ssde_mgy", "dose_check_alerts"}
RADIOPHARMACEUTICAL = {"agent", "radionuclide", "administered_activity_mbq", "administered_at",
                       "route"}


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scanbench", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def petct(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("petct")
    proc = run("simulate", "petct-exam", "--out", out, "-n", "2", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    return out


def test_dose_json_contract_on_real_reports(shared_data: Path) -> None:
    rdsr = shared_data / "dose" / "rdsr"
    proc = run("dose", rdsr, "--json")
    assert proc.returncode == 0, proc.stderr
    studies = json.loads(proc.stdout)
    assert len(studies) == 10
    for s in studies:
        assert set(s) >= CONTRACT
        for e in s["events"]:
            assert set(e) >= EVENT
            assert e["phantom_cm"] in (16, 32, None)
        if s["radiopharmaceutical"] is not None:
            assert set(s["radiopharmaceutical"]) >= RADIOPHARMACEUTICAL
        assert {"ct", "radiopharmaceutical", "total", "sources"} <= set(s["effective_dose_msv"])
    totals = sorted(s["total_dlp_mgycm"] for s in studies if s["total_dlp_mgycm"])
    assert 415.82 in totals and 236.09 in totals
    assert "ESR_non-dose.dcm" in proc.stderr  # the non-dose SR is named, not silently dropped


def test_petct_dose_and_workflow_json(petct: Path) -> None:
    truth = json.loads((petct / "truth.json").read_text())["exams"]
    proc = run("dose", petct, "--json")
    assert proc.returncode == 0, proc.stderr
    studies = {s["study_instance_uid"]: s for s in json.loads(proc.stdout)}
    for t in truth:
        s = studies[t["study_instance_uid"]]
        assert s["modality"] == "PT/CT"
        assert s["total_dlp_mgycm"] == pytest.approx(t["total_dlp_mgycm"])
        assert s["radiopharmaceutical"]["administered_activity_mbq"] == pytest.approx(
            t["administered_activity_mbq"])
        e = s["effective_dose_msv"]
        assert e["total"] == pytest.approx(e["ct"] + e["radiopharmaceutical"])
    proc = run("workflow", petct, "--json")
    assert proc.returncode == 0, proc.stderr
    exams = {e["study_instance_uid"]: e for e in json.loads(proc.stdout)}
    for t in truth:
        e = exams[t["study_instance_uid"]]
        assert e["uptake_time_min"] == pytest.approx(t["uptake_time_min"], abs=1e-3)
        assert e["start"] == t["start"] and e["end"] == t["end"]


def test_csv_and_tables(petct: Path, tmp_path: Path) -> None:
    proc = run("dose", petct, "--csv", tmp_path / "dose.csv", "--events-csv",
               tmp_path / "events.csv")
    assert proc.returncode == 0, proc.stderr
    assert "Patient dose per study" in proc.stdout
    rows = list(csv.DictReader((tmp_path / "dose.csv").open()))
    assert len(rows) == 2 and rows[0]["modality"] == "PT/CT"
    events = list(csv.DictReader((tmp_path / "events.csv").open()))
    assert len(events) == 4  # a localizer and a helical scan per exam
    assert {e["acquisition_type"] for e in events} == {"constant_angle", "spiral"}
    proc = run("workflow", petct, "--csv", tmp_path / "wf.csv", "--uptake-window", "0-1",
               "--days-csv", tmp_path / "days.csv", "--staffed-hours", "08:00-12:00")
    assert proc.returncode == 0, proc.stderr
    assert "(outside)" in proc.stdout and "Per device and day" in proc.stdout
    rows = list(csv.DictReader((tmp_path / "wf.csv").open()))
    assert len(rows) == 2 and rows[0]["uptake_in_window"] == "False"
    (day,) = list(csv.DictReader((tmp_path / "days.csv").open()))
    assert day["exams"] == "2" and float(day["staffed_min"]) == 240
    table = sum(float(r["table_time_min"]) for r in rows)
    assert float(day["utilisation_pct"]) == pytest.approx(100 * table / 240)


def test_bad_input_exit_codes(shared_data: Path, tmp_path: Path) -> None:
    proc = run("dose", tmp_path / "missing")
    assert proc.returncode == 2 and "no such file or folder" in proc.stderr
    (tmp_path / "x.txt").write_text("hello")
    proc = run("dose", tmp_path, "--json")
    assert proc.returncode == 2 and "no dose report" in proc.stderr
    assert json.loads(proc.stdout) == []
    # a damaged report beside a good one: 1, the good one reported, the bad one named
    rdsr = shared_data / "dose" / "rdsr"
    shutil.copy(rdsr / "CT-RDSR-Toshiba_DoseCheck.dcm", tmp_path / "good.dcm")
    (tmp_path / "bad.dcm").write_bytes((rdsr / "CT-RDSR-GEPixelMed.dcm").read_bytes()[:2500])
    proc = run("dose", tmp_path, "--json")
    assert proc.returncode == 1
    assert len(json.loads(proc.stdout)) == 1
    assert "bad.dcm" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("workflow", tmp_path, "--staffed-hours", "17:00-08:00")
    assert proc.returncode == 2 and "the end must be after the start" in proc.stderr

"""The real command line, run as a subprocess on DICOM written by the virtual scanner:
the JSON contract, the exit statuses and the messages for bad input (DESIGN.md)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scanbench.simulate.pet import simulate_iq, simulate_uniform


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scanbench", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("scans")
    simulate_iq(root / "iq", voxel_mm=3.0, seed=11)
    simulate_uniform(root / "uniform", seed=12)
    return {"iq": root / "iq", "uniform": root / "uniform", "root": root}


def test_json_is_one_array_on_stdout_and_follows_the_contract(scans: dict[str, Path]) -> None:
    proc = run("analyze", scans["iq"], "--json")
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)  # nothing but the array on stdout
    assert isinstance(results, list) and len(results) == 1
    r = results[0]
    truth = json.loads((scans["iq"] / "ground_truth.json").read_text())
    assert r["analysis"] == "pet.nema_nu2_2018.image_quality"
    assert r["standard"].startswith("NEMA NU 2-2018")
    assert set(r) >= {"series_instance_uid", "device", "acquired_at", "measurements",
                      "warnings", "parameters", "scanbench_version"}
    assert r["device"]["model"] == truth["scanner"]["model"]
    names = {m["name"] for m in r["measurements"]}
    assert {"percent_contrast", "background_variability", "lung_residual"} <= names
    for m in r["measurements"]:
        assert m["unit"], m  # every number carries its unit
        # "note" only where a value is refused or not judged (it says why)
        assert set(m) - {"note"} == {"name", "labels", "value", "unit", "uncertainty",
                                     "limits", "status"}
        assert ("note" in m) == (m["status"] in ("refused", "not_judged"))
    spheres = sorted(m["labels"]["sphere_mm"] for m in r["measurements"]
                     if m["name"] == "percent_contrast")
    assert spheres == [10, 13, 17, 22, 28, 37]


def test_folder_of_several_scans_analyses_each_with_its_own_analysis(
        scans: dict[str, Path]) -> None:
    proc = run("analyze", scans["root"], "--json")
    assert proc.returncode == 0, proc.stderr
    analyses = sorted(r["analysis"] for r in json.loads(proc.stdout))
    assert analyses == ["pet.calibration_uniformity", "pet.nema_nu2_2018.image_quality"]


def test_table_output_names_quantities_units_and_device(scans: dict[str, Path]) -> None:
    proc = run("analyze", scans["iq"])
    assert proc.returncode == 0, proc.stderr
    assert "percent_contrast" in proc.stdout and "37 mm sphere" in proc.stdout
    assert "Virtual PET" in proc.stdout


def test_missing_path_is_usage_error_2() -> None:
    proc = run("analyze", "/no/such/folder")
    assert proc.returncode == 2
    assert "/no/such/folder" in proc.stderr and "no such file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_folder_without_dicom_is_2_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    proc = run("analyze", tmp_path, "--json")
    assert proc.returncode == 2
    assert "notes.txt" in proc.stderr  # skipped with a note naming the file
    assert json.loads(proc.stdout) == []
    assert "Traceback" not in proc.stderr


def test_truncated_file_beside_a_good_series_is_1_naming_the_file(
        scans: dict[str, Path], tmp_path: Path) -> None:
    good = tmp_path / "good"
    shutil.copytree(scans["uniform"], good)
    bad = tmp_path / "bad.dcm"
    src = sorted(scans["iq"].glob("*.dcm"))[0]
    bad.write_bytes(src.read_bytes()[:3000])
    proc = run("analyze", good, bad, "--json")
    assert proc.returncode == 1
    assert "bad.dcm" in proc.stderr
    assert len(json.loads(proc.stdout)) == 1  # the good series is not lost
    assert "Traceback" not in proc.stderr


def test_named_analysis_on_the_wrong_phantom_is_1_and_says_so(scans: dict[str, Path]) -> None:
    proc = run("analyze", scans["uniform"], "--analysis", "pet.nema_nu2_2018.image_quality")
    assert proc.returncode == 1
    assert "IEC" in proc.stderr or "phantom" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args", [
    ("--analysis", "pet.no_such_test"),
    ("--param", "activity_ratio"),
    ("--spec", "no-such-spec"),
    ("--report", "out.txt"),
])
def test_bad_usage_is_2_with_a_message(scans: dict[str, Path], args: tuple[str, ...]) -> None:
    proc = run("analyze", scans["iq"], *args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip()
    assert "Traceback" not in proc.stderr


def test_spec_scores_measurements_with_their_source(scans: dict[str, Path]) -> None:
    truth = json.loads((scans["uniform"] / "ground_truth.json").read_text())
    proc = run("analyze", scans["uniform"], "--spec", "earl-calibration", "--json",
               "--param", f"volume_ml={truth['volume_ml']}")
    assert proc.returncode == 0, proc.stderr
    (r,) = json.loads(proc.stdout)
    bias = next(m for m in r["measurements"] if m["name"] == "activity_concentration_bias_percent")
    assert bias["limits"]["low"] == -10 and bias["limits"]["high"] == 10
    assert "EARL" in bias["limits"]["source"]
    assert bias["status"] == "pass"
    assert abs(bias["value"]) < 0.5  # the virtual scanner is calibrated exactly


def test_spec_without_its_measurement_warns(scans: dict[str, Path]) -> None:
    proc = run("analyze", scans["uniform"], "--spec", "earl-calibration", "--json")
    assert proc.returncode == 0, proc.stderr
    (r,) = json.loads(proc.stdout)
    assert any("volume_ml" in w for w in r["warnings"])
    assert any("activity_concentration_bias_percent" in w for w in r["warnings"])


def test_python_api_matches_the_command_line(scans: dict[str, Path]) -> None:
    import scanbench

    (res,) = scanbench.analyze(scans["iq"])
    proc = run("analyze", scans["iq"], "--json")
    (cli,) = json.loads(proc.stdout)
    api = res.to_dict()
    assert [m["value"] for m in api["measurements"]] == pytest.approx(
        [m["value"] for m in cli["measurements"]])


def test_lists_of_analyses_and_specs() -> None:
    proc = run("analyses")
    assert proc.returncode == 0
    for aid in ("pet.nema_nu2_2018.image_quality", "pet.nema_nu2_2018.spatial_resolution",
                "pet.calibration_uniformity"):
        assert aid in proc.stdout
    proc = run("specs")
    assert proc.returncode == 0
    assert "earl1" in proc.stdout and "earl2" in proc.stdout


def test_report_html_and_pdf_from_the_command_line(scans: dict[str, Path],
                                                    tmp_path: Path) -> None:
    html = tmp_path / "iq.html"
    proc = run("analyze", scans["iq"], "--spec", "earl2", "--report", html)
    assert proc.returncode == 0, proc.stderr
    text = html.read_text()
    assert "pet.nema_nu2_2018.image_quality" in text and "percent_contrast" in text
    assert "Plotly.newPlot" in text  # the figures are drawn, offline
    assert "UNVERIFIED SPEC: earl2" in text  # the banner every report using earl2 carries
    if shutil.which("chromium") is None:
        pytest.skip("chromium not installed: scripts/test.sh installs it as root")
    pdf = tmp_path / "iq.pdf"
    proc = run("analyze", scans["iq"], "--report", pdf)
    assert proc.returncode == 0, proc.stderr
    assert pdf.read_bytes().startswith(b"%PDF")
    assert pdf.stat().st_size > 20_000


def test_baseline_relative_spec_from_an_earlier_result(scans: dict[str, Path],
                                                       tmp_path: Path) -> None:
    """`--baseline` takes the device's accepted values from an earlier `--json` output; a
    spec rule with `baseline:` then judges the new scan around them."""
    first = run("analyze", scans["uniform"], "--json")
    assert first.returncode == 0, first.stderr
    base = tmp_path / "baseline.json"
    base.write_text(first.stdout)
    accepted = next(m["value"] for m in json.loads(first.stdout)[0]["measurements"]
                    if m["name"] == "activity_concentration_bq_ml")
    spec = tmp_path / "local.yaml"
    spec.write_text("""
name: local-constancy
title: local constancy against the acceptance baseline
version: "1"
description: test
verified: true
sources: [local]
rules:
  - analysis: pet.calibration_uniformity
    measurement: activity_concentration_bq_ml
    baseline: {low: -1.0, high: 1.0, mode: percent}
    source: local acceptance
    confidence: C
""")
    proc = run("analyze", scans["uniform"], "--spec", spec, "--baseline", base, "--json")
    assert proc.returncode == 0, proc.stderr
    (r,) = json.loads(proc.stdout)
    m = next(m for m in r["measurements"] if m["name"] == "activity_concentration_bq_ml")
    assert m["status"] == "pass"
    assert m["limits"]["low"] == pytest.approx(accepted * 0.99)
    assert "baseline" in m["limits"]["source"]
    no_spec = run("analyze", scans["uniform"], "--baseline", base)
    assert no_spec.returncode == 2 and "--baseline needs --spec" in no_spec.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("[]x")
    proc = run("analyze", scans["uniform"], "--spec", spec, "--baseline", bad)
    assert proc.returncode == 2 and str(bad) in proc.stderr

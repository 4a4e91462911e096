"""``scanbench specs [NAME]`` and ``scanbench analyses [ID]``, run as the real command line:
a spec's limits with unit, source and whether each is confirmed; each analysis's standard
and parameters (issue 11 §2: the README says both exist)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from scanbench.analysis.registry import all_analyses


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scanbench", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_specs_name_prints_each_limit_with_unit_source_and_confirmation() -> None:
    proc = run("specs", "acr-ct")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    for column in ("analysis", "measurement", "labels", "low", "high", "unit", "source",
                   "confirmed"):
        assert column in text
    assert "uniformity_max_deviation_hu" in text and "ACR CT Accreditation Program" in text
    assert "HU" in text and "mGy" in text
    assert "Not every limit is confirmed" in text  # the spec's reason, before the table
    assert "Traceback" not in proc.stderr


def test_specs_json_carries_the_confirmed_flag_per_limit() -> None:
    proc = run("specs", "acr-mri-2022", "--json")
    assert proc.returncode == 0, proc.stderr
    spec = json.loads(proc.stdout)
    assert spec["name"] == "acr-mri-2022" and spec["verified"] is False
    lcd = [r for r in spec["rules"] if r["measurement"] == "spokes_detected_total"]
    assert len(lcd) == 6 and not any(r["confirmed"] for r in lcd)
    assert all(r["unit"] == "spokes" for r in lcd)
    assert all("docs/standards/acr-mri.md#" in r["source"] for r in spec["rules"])
    earl1 = json.loads(run("specs", "earl1", "--json").stdout)
    assert len(earl1["rules"]) == 12 and all(r["confirmed"] for r in earl1["rules"])
    assert {r["unit"] for r in earl1["rules"]} == {"ratio"}


def test_specs_lists_every_shipped_spec_and_how_many_limits_are_confirmed() -> None:
    proc = run("specs")
    assert proc.returncode == 0, proc.stderr
    for name in ("acr-ct", "acr-mri-2022", "earl1", "earl2", "nema-nu2-2018"):
        assert name in proc.stdout
    assert "limits confirmed" in proc.stdout


def test_specs_of_a_bad_name_or_file_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    proc = run("specs", "no-such-spec")
    assert proc.returncode == 2 and "no-such-spec" in proc.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    proc = run("specs", bad)
    assert proc.returncode == 2 and "bad.yaml" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_spec_files_text_is_printed_as_written_never_as_markup(tmp_path: Path) -> None:
    spec = tmp_path / "site.yaml"
    spec.write_text("""
name: site
title: "site [bold]QC[/b]"
version: "1"
description: d
verified: true
sources: ["policy [/]"]
rules:
  - analysis: ct.water
    measurement: noise_hu
    high: 6.0
    source: "site QA [/b] policy"
    confidence: C
""")
    proc = run("specs", spec)
    assert proc.returncode == 0, proc.stderr
    assert "site QA [/b] policy" in proc.stdout and "site [bold]QC[/b]" in proc.stdout
    assert "policy [/]" in proc.stdout


def test_analyses_lists_each_analysis_with_its_standard_and_parameters() -> None:
    proc = run("analyses", "--json")
    assert proc.returncode == 0, proc.stderr
    listed = {a["id"]: a for a in json.loads(proc.stdout)}
    assert set(listed) == set(all_analyses())
    iq = {p["name"]: p for p in listed["pet.nema_nu2_2018.image_quality"]["parameters"]}
    assert "activity_ratio" in iq and iq["activity_ratio"]["description"]
    dose = {p["name"]: p for p in listed["ct.dose_verification"]["parameters"]}
    assert str(dose["centre_mgy"]["default"]).startswith("required")
    assert dose["centre_mgy"]["unit"] == "mGy"
    assert all("docs/standards/" in a["standard"] for a in listed.values())
    table = run("analyses", "ct.nps")
    assert table.returncode == 0, table.stderr
    assert "roi_size_mm [mm]" in table.stdout and "ICRU Report 87" in table.stdout
    assert run("analyses", "no.such.analysis").returncode == 2

"""``scanbench simulate ct-water | ct-wire | ct-edge`` and the daily water QC from the
command line: truth files, bad options (exit 2), specs, a site's baseline rule, dose params."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scanbench.cli import app
from scanbench.simulate.cli import simulate_app

runner = CliRunner()


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def scanbench(*args: str | Path) -> Run:
    """``scanbench analyze ...`` in-process (the subprocess form is tested in tests/e2e)."""
    res = runner.invoke(app, [str(a) for a in args])
    return Run(res.exit_code, res.stdout, res.stderr)


def test_ct_water_writes_series_and_truth(tmp_path):
    out = tmp_path / "water"
    res = runner.invoke(simulate_app, ["ct-water", "--out", str(out), "--pixel", "1.0",
                                       "--slices", "2", "--cupping", "5", "--hu-offset", "2",
                                       "--shift", "10", "-5", "--table", "100", "--unsigned"])
    assert res.exit_code == 0, res.output
    truth = json.loads((out / "ground_truth.json").read_text())
    assert truth["files"] == len(list(out.glob("*.dcm"))) == 2
    assert truth["z_mm"] == [100.0, 105.0]
    assert truth["expected"]["ct_number_water_hu"] == pytest.approx(2 - 5 * (1 - 9.6**2 / 2e4))
    assert "truth" in res.output


@pytest.mark.parametrize("args", [
    ["ct-water", "--scanner", "nope"], ["ct-wire", "--mode", "spiral"],
    ["ct-edge", "--pixel", "-1"], ["ct-water", "--noise-hu", "-3"],
    ["ct-water", "--device", "justone"],
])
def test_bad_options_exit_2_with_a_message(tmp_path, args):
    res = runner.invoke(simulate_app, [*args, "--out", str(tmp_path / "x")])
    assert res.exit_code == 2
    assert "error" in res.output.lower() or "invalid" in res.output.lower()


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    """Two days of water QC: the second with a +3 HU calibration drift."""
    root = tmp_path_factory.mktemp("waterqc")
    for name, offset in (("day1", "0"), ("day2", "3")):
        res = runner.invoke(simulate_app, ["ct-water", "--out", str(root / name), "--pixel",
                                           "0.8", "--slices", "3", "--hu-offset", offset,
                                           "--seed", "5"])
        assert res.exit_code == 0, res.output
    return root


def test_daily_water_qc_spec_and_a_site_baseline(days, tmp_path):
    first = scanbench("analyze", days / "day1", "--spec", "daily-water-qc", "--json")
    assert first.returncode == 0, first.stderr
    (r,) = json.loads(first.stdout)
    assert r["analysis"] == "ct.water"
    judged = [m for m in r["measurements"] if m["status"] != "info"]
    assert judged and all(m["labels"]["slice"] == "all" and m["status"] ==
                          ("pass" if m["limits"]["verified"] else "within_unconfirmed")
                          for m in judged)
    base = tmp_path / "accepted.json"
    base.write_text(first.stdout)
    spec = tmp_path / "site-water.yaml"  # a site's own constancy tolerance (its choice)
    spec.write_text("""
name: site-water
title: site water constancy
version: "1"
description: test
verified: true
sources: [site QA programme]
rules:
  - analysis: ct.water
    measurement: ct_number_water_hu
    labels: {slice: all}
    baseline: {low: -2.0, high: 2.0, mode: absolute}
    source: site QA programme
    confidence: C
""")
    second = scanbench("analyze", days / "day2", "--spec", spec, "--baseline", base, "--json")
    assert second.returncode == 0, second.stderr
    (r2,) = json.loads(second.stdout)
    m = next(m for m in r2["measurements"]
             if m["name"] == "ct_number_water_hu" and m["labels"]["slice"] == "all")
    assert m["status"] == "fail" and m["value"] == pytest.approx(3.0, abs=0.6)


def test_nps_curve_and_dose_params_on_the_command_line(days):
    nps = scanbench("analyze", days / "day1", "--analysis", "ct.nps", "--json")
    assert nps.returncode == 0, nps.stderr
    (r,) = json.loads(nps.stdout)
    assert len(r["data"]["nps"]["frequency_per_mm"]) == len(r["data"]["nps"]["nps_hu2_mm2"])
    dose = scanbench("analyze", days / "day1", "--analysis", "ct.dose_verification",
                     "--param", "centre_mgy=10", "--param", "periphery_mgy=20,19,21,20",
                     "--json")
    assert dose.returncode == 0, dose.stderr
    (d,) = json.loads(dose.stdout)
    by = {m["name"]: m["value"] for m in d["measurements"]}
    assert by["ctdivol_measured_mgy"] == pytest.approx(50 / 3)
    missing = scanbench("analyze", days / "day1", "--analysis", "ct.dose_verification")
    assert missing.returncode == 1 and "no chamber measurement" in missing.stderr

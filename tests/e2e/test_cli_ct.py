"""``scanbench simulate ct-acr464 | ct-catphan`` and ``scanbench analyze`` on what they wrote,
through the real command line: the phantom recognised without being named, the acr-ct spec
applied, JSON against ground_truth.json, and clear messages for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scanbench.simulate.ct import CtScannerModel
from scanbench.simulate.ct_dicom import write_ct_localizer


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scanbench", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def _within(m: dict) -> str:
    """The status of a value inside its limits: pass against a confirmed limit, else
    within_unconfirmed (an unconfirmed limit is compared with, never judged)."""
    return "pass" if m["limits"]["verified"] else "within_unconfirmed"


@pytest.fixture(scope="module")
def acr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("acr") / "acr"
    proc = run("simulate", "ct-acr464", "--out", out, "--pixel", "1.0", "--spacing", "10",
               "--rotation", "6", "--shift", "10", "-5", "--table", "40", "--seed", "2")
    assert proc.returncode == 0, proc.stderr
    return out


def test_acr464_recognised_scored_and_true(acr: Path) -> None:
    proc = run("analyze", acr, "--json", "--spec", "acr-ct", "--param",
               "protocol=adult_abdomen")
    assert proc.returncode == 0, proc.stderr
    (r,) = json.loads(proc.stdout)
    assert r["analysis"] == "ct.acr464"
    truth = json.loads((acr / "ground_truth.json").read_text())["expected"]
    got = {(m["name"], tuple(sorted(m["labels"].items()))): m for m in r["measurements"]}
    for material, value in truth["ct_number_hu"].items():
        m = got[("ct_number_hu", (("material", material),))]
        assert abs(m["value"] - value) <= 3 * m["uncertainty"] + 0.05
        assert m["status"] == _within(m) and m["limits"]["source"]
    assert abs(got[("slice_thickness_mm", ())]["value"] - truth["slice_thickness_mm"]) < 0.3
    assert got[("ctdivol_mgy", (("phantom_cm", 32),))]["status"] == _within(
        got[("ctdivol_mgy", (("phantom_cm", 32),))])
    assert got[("uniformity_max_deviation_hu", ())]["status"] == _within(
        got[("uniformity_max_deviation_hu", ())])


def test_catphan_module_alone(tmp_path: Path) -> None:
    out = tmp_path / "cp"
    proc = run("simulate", "ct-catphan", "--out", out, "--model", "604", "--modules",
               "sensitometry", "--pixel", "0.9", "--fov", "230", "--rotation", "90",
               "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    proc = run("analyze", out, "--json")
    assert proc.returncode == 0, proc.stderr
    (r,) = json.loads(proc.stdout)
    assert r["analysis"] == "ct.catphan"
    assert r["parameters"]["sensitometry_module"] == "CTP732"
    assert any("only the sensitometry module" in w for w in r["warnings"])


def test_localiser_only_is_named(tmp_path: Path) -> None:
    proj = np.zeros((256, 256))
    proj[60:200, 40:220] = 200.0
    write_ct_localizer(proj, 1.0, tmp_path / "scout", model=CtScannerModel())
    proc = run("analyze", tmp_path / "scout", "--analysis", "ct.acr464")
    assert proc.returncode == 1
    assert "localiser" in proc.stderr


def test_reconstruction_circle_cutting_the_phantom_is_named(tmp_path: Path) -> None:
    out = tmp_path / "cut"
    proc = run("simulate", "ct-acr464", "--out", out, "--pixel", "1.5", "--modules", "3",
               "--fov", "240", "--recon-diameter", "170")
    assert proc.returncode == 0, proc.stderr
    proc = run("analyze", out, "--analysis", "ct.acr464")
    assert proc.returncode == 1
    assert "reconstruction circle" in proc.stderr and "field of view" in proc.stderr


def test_bad_simulate_option_is_one_message(tmp_path: Path) -> None:
    proc = run("simulate", "ct-acr464", "--out", tmp_path / "x", "--modules", "1,five")
    assert proc.returncode == 2
    assert "--modules" in proc.stderr and "Traceback" not in proc.stderr

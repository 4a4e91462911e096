"""``scanbench analyze`` on real ACR MRI exports: the suite, its specs and its failure modes.

Data: ``mr/acr/PhilipsAchieva`` (11-slice axial T1, 3 T), ``PhilipsAchievaLocalizer``
(its sagittal localiser, same study) and ``mr/magnet/uniformity`` (a flood
phantom, not the ACR phantom), from the shared real data (MANIFEST.md).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scanbench import dicom

ACR_TESTS = {"mr.acr.geometric_accuracy", "mr.acr.high_contrast_resolution",
             "mr.acr.slice_thickness", "mr.acr.slice_position", "mr.acr.uniformity",
             "mr.acr.ghosting", "mr.acr.low_contrast"}


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "scanbench", *map(str, args)],
                          capture_output=True, text=True, timeout=600)
    proc.stderr = " ".join(proc.stderr.split())  # messages are wrapped to the terminal
    return proc


@pytest.fixture(scope="module")
def acr(shared_data: Path) -> Path:
    return shared_data / "mr" / "acr"


def test_axial_only_runs_every_test_and_reports_the_localiser_as_not_run(acr: Path) -> None:
    proc = run("analyze", acr / "PhilipsAchieva", "--json", "--spec", "acr-mri-2022")
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert {r["analysis"] for r in results} == ACR_TESTS
    geo = next(r for r in results if r["analysis"] == "mr.acr.geometric_accuracy")
    assert any("localiser length not measured" in w for w in geo["warnings"])
    assert "length_mm{slice: localiser}" in geo["parameters"]["not_run"]
    assert not any(m["labels"].get("slice") == "localiser" for m in geo["measurements"])
    for r in results:  # the field strength the specs' limits depend on, from the header
        assert r["parameters"]["field_strength_t"] == 3.0
        assert r["parameters"]["sequence"] == "T1"  # TR 499.9998 ms matched to 500
        assert r["spec"] == "acr-mri-2022"
    piu = next(m for r in results if r["analysis"] == "mr.acr.uniformity"
               for m in r["measurements"] if m["name"] == "percent_integral_uniformity")
    assert piu["limits"]["low"] == 80.0  # the 3 T limit
    # the acr-mri-2022 limits are the pylinac/hazen values, not confirmed in the ACR text:
    # compared with, never passed or failed
    assert not piu["limits"]["verified"]
    assert piu["status"] == ("within_unconfirmed" if piu["value"] >= 80.0
                             else "outside_unconfirmed")


def test_axial_with_localiser_measures_its_length(acr: Path) -> None:
    proc = run("analyze", acr / "PhilipsAchieva", acr / "PhilipsAchievaLocalizer", "--json")
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert len(results) == 7  # the localiser is part of the geometric-accuracy result
    geo = next(r for r in results if r["analysis"] == "mr.acr.geometric_accuracy")
    loc = [m for m in geo["measurements"] if m["labels"].get("slice") == "localiser"]
    assert loc and 144.0 < loc[0]["value"] < 152.0
    assert "not_run" not in geo["parameters"]


def test_missing_slices_are_named(acr: Path, tmp_path: Path) -> None:
    """Slices missing in the middle leave a gap the reader names; slices missing at the
    end (here ACR slices 10 and 11) leave a regular series the ACR suite names."""
    series = dicom.read([acr / "PhilipsAchieva"]).series[0]
    gap, end = tmp_path / "gap", tmp_path / "end"
    for folder, drop in ((gap, (4, 5, 6)), (end, (9, 10))):
        folder.mkdir()
        for i, f in enumerate(series.files):
            if i not in drop:
                shutil.copy(f, folder / f.name)
    proc = run("analyze", gap)
    assert proc.returncode == 2 and "slice(s) missing" in proc.stderr
    proc = run("analyze", end)
    assert proc.returncode == 1
    assert "has 9 slices" in proc.stderr and "missing slices" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_wrong_phantom_is_refused_with_a_reason(shared_data: Path) -> None:
    flood = shared_data / "mr" / "magnet" / "uniformity"
    proc = run("analyze", flood, "--analysis", "mr.acr.uniformity")
    assert proc.returncode == 1
    assert "ACR" in proc.stderr and "Traceback" not in proc.stderr


def test_a_localiser_is_not_an_axial_series(acr: Path) -> None:
    proc = run("analyze", acr / "PhilipsAchievaLocalizer", "--analysis", "mr.acr.slice_thickness")
    assert proc.returncode == 1
    assert "this series is sagittal" in proc.stderr

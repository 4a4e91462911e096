"""``scanbench simulate ...`` writes series and truth, and turns bad options into exit 2."""

from __future__ import annotations

import json

import pydicom
import pytest
from typer.testing import CliRunner

from scanbench.simulate.cli import simulate_app

runner = CliRunner()


def test_pet_uniform_writes_series_and_truth(tmp_path):
    out = tmp_path / "cyl"
    result = runner.invoke(simulate_app, ["pet-uniform", "--out", str(out), "--voxel", "4",
                                          "--calibration-bias", "5", "--no-noise"])
    assert result.exit_code == 0, result.output
    truth = json.loads((out / "ground_truth.json").read_text())
    files = sorted(out.glob("*.dcm"))
    assert len(files) == truth["files"] > 0
    assert truth["expected_image_suv"] == pytest.approx(1.05, rel=1e-3)
    assert "Uniform cylinder" in result.output


def test_pet_iq_options_reach_the_render(tmp_path):
    out = tmp_path / "iq"
    result = runner.invoke(simulate_app, [
        "pet-iq", "--out", str(out), "--voxel", "4", "--ratio", "8", "--cold", "37",
        "--shift", "5", "-3", "2", "--rotation", "10", "--seed", "2", "--duration", "300",
        "--decay-correction", "admin", "--scanner", "analog-pmt", "--file-names", "shuffled"])
    assert result.exit_code == 0, result.output
    truth = json.loads((out / "ground_truth.json").read_text())
    assert truth["activity_ratio"] == 8.0 and truth["cold_spheres_mm"] == [37.0]
    assert truth["phantom_centre_lps_mm"] == [5.0, -3.0, 2.0] and truth["rotation_deg"] == 10.0
    assert truth["decay_correction"] == "ADMIN" and truth["duration_s"] == 300.0
    assert truth["scanner"]["model"] == "Virtual PET PMT"
    names = [p.name for p in out.iterdir() if p.name != "ground_truth.json"]
    assert all(n.startswith("IM") and not n.endswith(".dcm") for n in names)
    ds = pydicom.dcmread(out / names[0])
    assert ds.ManufacturerModelName == "Virtual PET PMT" and ds.DecayCorrection == "ADMIN"


def test_pet_point_positions(tmp_path):
    out = tmp_path / "pt"
    result = runner.invoke(simulate_app, ["pet-point", "--out", str(out), "--voxel", "2",
                                          "--position", "0,-10,0", "--position", "0,-100,5",
                                          "--fwhm", "4", "4", "5"])
    assert result.exit_code == 0, result.output
    truth = json.loads((out / "ground_truth.json").read_text())
    assert [s["position_lps_mm"] for s in truth["sources"]] == [[0, -10, 0], [0, -100, 5]]
    assert truth["sources"][0]["psf_fwhm_mm"]["axial"] == pytest.approx(5.0)


@pytest.mark.parametrize("args, message", [
    (["pet-iq", "--voxel", "-2"], "voxel_mm"),
    (["pet-iq", "--cold", "12"], "cold sphere 12"),
    (["pet-iq", "--scanner", "nope"], "unknown scanner"),
    (["pet-iq", "--decay-correction", "later"], "decay_correction"),
    (["pet-iq", "--shift", "0", "0", "500"], "axial"),
    (["pet-point", "--position", "1,2"], "X,Y,Z"),
    (["pet-uniform", "--activity", "-5"], "activity_bq"),
    (["pet-uniform", "--file-names", "sorted", "--voxel", "8"], "file_names"),
    (["pet-iq", "--ratio", "abc"], "ratio"),
    (["pet-iq", "--device", "OnlyMaker"], "MANUFACTURER/MODEL"),
])
def test_bad_options_exit_2_with_a_message(tmp_path, args, message):
    result = runner.invoke(simulate_app, [*args, "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception,
                                                                     SystemExit)


def test_device_identity_reaches_the_headers(tmp_path):
    out = tmp_path / "pts"
    result = runner.invoke(simulate_app, ["pet-point", "--out", str(out), "--voxel", "2",
                                          "--position", "0,-10,0", "--no-noise",
                                          "--device", "UIH/uMI 550/U550-7"])
    assert result.exit_code == 0, result.output
    ds = pydicom.dcmread(sorted(out.glob("*.dcm"))[0], stop_before_pixels=True)
    assert (ds.Manufacturer, ds.ManufacturerModelName, ds.DeviceSerialNumber) == (
        "UIH", "uMI 550", "U550-7")

"""The virtual scanner writes valid PET DICOM that scanbench's reader reads back exactly."""

from __future__ import annotations

import json
import math

import numpy as np
import pydicom
import pytest
from pydicom import config
from pydicom.uid import UID, PositronEmissionTomographyImageStorage, RLELossless

from scanbench.dicom import read_one
from scanbench.simulate.pet import (
    ScannerModel,
    render_iq,
    render_point,
    simulate_iq,
    simulate_uniform,
    write_series,
)

SCANNER = ScannerModel(manufacturer="Acme", model="Virtual 9000", serial="SN-42",
                       station="PETCT7", software_versions="VX1.2")


@pytest.fixture(scope="module")
def iq_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("iq")
    truth = simulate_iq(out, scanner=SCANNER, voxel_mm=4.0, seed=5)
    return out, truth


def _read_strict(path):
    old = config.settings.reading_validation_mode
    config.settings.reading_validation_mode = config.RAISE
    try:
        return pydicom.dcmread(path)
    finally:
        config.settings.reading_validation_mode = old


def _assert_within_quantisation(read: np.ndarray, rendered: np.ndarray) -> None:
    """Each slice within half its 16-bit quantum (signed: peak / 32767), plus float32 rounding."""
    peak = np.abs(rendered).max(axis=(1, 2))
    err = np.abs(read.astype(np.float64) - rendered).max(axis=(1, 2))
    assert np.all(err <= 0.5 * peak / 32767 + 1e-6 * peak + 1e-9)
    assert np.all(err <= 0.5 * peak / 32767 * 1.02 + 1e-9)


def test_files_carry_the_pet_tags(iq_dir):
    out, truth = iq_dir
    files = sorted(out.glob("*.dcm"))
    assert len(files) == truth["files"] == truth["n_slices"]
    datasets = [_read_strict(f) for f in files]
    ds = datasets[0]
    assert ds.SOPClassUID == PositronEmissionTomographyImageStorage
    assert ds.file_meta.MediaStorageSOPClassUID == PositronEmissionTomographyImageStorage
    assert ds.Modality == "PT" and ds.Units == "BQML"
    assert ds.DecayCorrection == "START" and "DECY" in ds.CorrectedImage
    assert ds.SeriesDate == "20260304" and ds.SeriesTime.startswith("103000")
    assert ds.TimezoneOffsetFromUTC == "+0800"
    assert ds.ActualFrameDuration == 600000
    lam_t = math.log(2) / 6586.2 * 600
    assert float(ds.DecayFactor) == pytest.approx(lam_t / -math.expm1(-lam_t), rel=1e-9)
    assert float(ds.FrameReferenceTime) == pytest.approx(
        math.log(float(ds.DecayFactor)) / (math.log(2) / 6586.2) * 1000, rel=1e-6)
    assert 290_000 < float(ds.FrameReferenceTime) < 300_000  # just under half the frame
    rp = ds.RadiopharmaceuticalInformationSequence[0]
    assert rp.Radiopharmaceutical == "Fluorodeoxyglucose"
    assert float(rp.RadionuclideHalfLife) == 6586.2
    nuclide = rp.RadionuclideCodeSequence[0]  # CID 4020, SNOMED CT (SRT is deprecated)
    assert (nuclide.CodeValue, nuclide.CodingSchemeDesignator) == ("77004003", "SCT")
    tracer = rp.RadiopharmaceuticalCodeSequence[0]  # CID 4021
    assert (tracer.CodeValue, tracer.CodingSchemeDesignator) == ("35321007", "SCT")
    assert "PatientPosition" not in ds  # the PET IOD sends Patient Orientation codes instead
    assert rp.RadionuclideCodeSequence[0].CodeMeaning == "^18^Fluorine"
    assert rp.RadiopharmaceuticalStartDateTime.startswith("20260304100000")
    assert float(rp.RadionuclideTotalDose) == pytest.approx(truth["injected_activity_bq"],
                                                            rel=1e-9)
    assert float(ds.PatientWeight) == pytest.approx(truth["patient_weight_kg"])
    assert (ds.Manufacturer, ds.ManufacturerModelName, ds.DeviceSerialNumber, ds.StationName,
            ds.SoftwareVersions) == ("Acme", "Virtual 9000", "SN-42", "PETCT7", "VX1.2")
    assert ds.BitsAllocated == 16 and ds.RescaleIntercept == 0
    assert [float(v) for v in ds.PixelSpacing] == [4.0, 4.0]
    assert float(ds.SliceThickness) == 4.0
    assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    slopes = {float(d.RescaleSlope) for d in datasets}
    assert len(slopes) > 10  # a slope per slice, like real scanners
    uids = [d.SOPInstanceUID for d in datasets]
    assert len(set(uids)) == len(uids)
    for uid in (*uids, ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.FrameOfReferenceUID):
        assert UID(uid).is_valid
    assert len({d.SeriesInstanceUID for d in datasets}) == 1
    assert sorted(d.InstanceNumber for d in datasets) == list(range(1, len(datasets) + 1))
    z = sorted(float(d.ImagePositionPatient[2]) for d in datasets)
    assert np.allclose(np.diff(z), 4.0)


def test_ground_truth_json_is_written(iq_dir):
    out, truth = iq_dir
    on_disk = json.loads((out / "ground_truth.json").read_text())
    assert on_disk["percent_contrast_noiseless"] == truth["percent_contrast_noiseless"]
    assert on_disk["series_instance_uid"] == _read_strict(next(out.glob("*.dcm"))).SeriesInstanceUID
    assert on_disk["scanner"]["serial"] == "SN-42"


def test_round_trip_through_the_reader(iq_dir, tmp_path):
    series, _ = render_iq(scanner=SCANNER, voxel_mm=4.0, seed=1)
    write_series(series, tmp_path, file_names="shuffled")
    back = read_one(tmp_path)
    assert back.shape == series.shape
    np.testing.assert_allclose(back.affine, series.affine, atol=1e-6)
    np.testing.assert_allclose(back.spacing, series.spacing)
    _assert_within_quantisation(back.voxels, series.voxels)
    pet, pet_back = series.facts.pet, back.facts.pet
    assert pet_back.decay_correction == "START" and pet_back.units == "BQML"
    assert pet_back.injected_activity_bq == pytest.approx(pet.injected_activity_bq, rel=1e-9)
    assert pet_back.injection_datetime == pet.injection_datetime
    assert pet_back.series_datetime == pet.series_datetime
    assert pet_back.half_life_s == 6586.2
    assert pet_back.patient_weight_kg == pytest.approx(pet.patient_weight_kg)
    assert back.facts.device == series.facts.device
    assert back.uid == series.uid


@pytest.mark.parametrize("syntax", ["ImplicitVRLittleEndian", "RLELossless"])
def test_other_transfer_syntaxes_read_back(tmp_path, syntax):
    series, _ = render_point(positions_mm=[(0.0, -50.0, 0.0)], voxel_mm=2.0, axial_margin_mm=10)
    write_series(series, tmp_path, transfer_syntax=syntax)
    back = read_one(tmp_path)
    _assert_within_quantisation(back.voxels, series.voxels)


@pytest.mark.parametrize("reference", ["ADMIN", "NONE"])
def test_decay_reference_in_the_header(tmp_path, reference):
    truth = simulate_uniform(tmp_path, decay_correction=reference, noise=False, voxel_mm=4.0)
    ds = _read_strict(next(tmp_path.glob("*.dcm")))
    assert ds.DecayCorrection == reference
    if reference == "NONE":
        assert "DecayFactor" not in ds and "DECY" not in ds.CorrectedImage
    else:
        lam = math.log(2) / 6586.2
        frame = lam * 300 / -math.expm1(-lam * 300)
        assert float(ds.DecayFactor) == pytest.approx(frame * math.exp(lam * 3600), rel=1e-9)
    back = read_one(tmp_path)
    centre = tuple(back.patient_to_index((0, 0, 0)).round().astype(int))
    assert back.voxels[centre] == pytest.approx(truth["concentration_bq_ml"], rel=1e-3)


def test_write_rejects_bad_options(tmp_path):
    series, _ = render_point(positions_mm=[(0.0, -50.0, 0.0)], voxel_mm=2.0, noise=False,
                             axial_margin_mm=5)
    with pytest.raises(ValueError, match="file_names"):
        write_series(series, tmp_path, file_names="sorted")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="transfer syntax"):
        write_series(series, tmp_path, transfer_syntax="JPEGBaseline8Bit")


@pytest.mark.parametrize(("kind", "kwargs"), [
    ("iq", {"voxel_mm": 4.0, "noise": False}),
    ("point", {"voxel_mm": 2.0, "positions_mm": [(0.0, -10.0, 0.0)], "noise": False,
               "decay_correction": "ADMIN"}),
    ("uniform", {"voxel_mm": 8.0, "noise": False, "decay_correction": "NONE"}),
    ("uniform", {"voxel_mm": 8.0, "noise": False, "transfer_syntax": RLELossless}),
])
def test_dicom3tools_finds_no_iod_error(tmp_path, kind, kwargs):
    """dciodvfy (dicom3tools, Debian) checks every file against the PET Image IOD:
    no errors; warnings only for the private-free Standard Extended attributes."""
    import shutil
    import subprocess

    from scanbench.simulate.pet import simulate_iq, simulate_point, simulate_uniform

    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy not installed: scripts/test.sh installs dicom3tools as root")
    simulate = {"iq": simulate_iq, "point": simulate_point, "uniform": simulate_uniform}[kind]
    simulate(tmp_path / kind, **kwargs)
    files = sorted((tmp_path / kind).glob("*.dcm"))
    for f in (files[0], files[len(files) // 2], files[-1]):
        out = subprocess.run(["dciodvfy", str(f)], capture_output=True, text=True, timeout=60)
        report = out.stdout + out.stderr
        assert report.startswith("PETImage"), report[:200]
        errors = [line for line in report.splitlines() if line.startswith("Error")]
        assert not errors, f"{f.name}: {errors}"

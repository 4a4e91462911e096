"""Reading the real scanner data in ../shared/data (see its MANIFEST.md)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pydicom
import pytest

from scanbench.dicom import read, read_one
from scanbench.types import Series

from .helpers import physical


def _affine_position(series: Series, k: int, j: float = 0.0, i: float = 0.0) -> np.ndarray:
    return (series.affine @ np.array([k, j, i, 1.0]))[:3]


def test_pet_recon_reads_as_one_volume(pet_series: Series) -> None:
    s = pet_series
    assert s.shape == (89, 192, 192)
    assert s.voxels.dtype == np.float32
    assert s.spacing == pytest.approx((2.78, 2.0833332538605, 2.0833332538605), abs=1e-6)
    assert s.facts.modality == "PT"
    assert s.facts.device.manufacturer is None  # the file has no Manufacturer
    assert s.facts.pet is not None and s.facts.pet.units is None  # and no Units
    assert s.facts.pet.corrected_image[:2] == ("DECY", "ATTN")
    assert len(s.files) == 89 and len(set(s.sop_instance_uids)) == 89
    assert s.warnings == []


def test_pet_affine_maps_every_slice_to_its_image_position(pet_series: Series) -> None:
    """(k, j, i) → LPS: each file's ImagePositionPatient is voxel (k, 0, 0), and pixel
    (j, i) lies i·Δc along the row cosines and j·Δr along the column cosines."""
    s = pet_series
    for k, path in enumerate(s.files):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert ds.SOPInstanceUID == s.sop_instance_uids[k]
        ipp = np.array(ds.ImagePositionPatient, dtype=float)
        np.testing.assert_allclose(_affine_position(s, k), ipp, atol=1e-4)
        iop = np.array(ds.ImageOrientationPatient, dtype=float)
        dr, dc = (float(v) for v in ds.PixelSpacing)
        expected = ipp + 7 * dc * iop[:3] + 5 * dr * iop[3:]
        np.testing.assert_allclose(_affine_position(s, k, j=5, i=7), expected, atol=1e-4)
    # slices ascend along the normal (+z here), whatever the file names say
    z = [_affine_position(s, k)[2] for k in range(s.shape[0])]
    assert np.all(np.diff(z) > 0)
    np.testing.assert_allclose(s.index_to_patient((0, 0, 0)), s.affine[:3, 3])


def test_pet_voxels_are_stored_values_times_each_slices_slope(pet_series: Series) -> None:
    s = pet_series
    for k in (0, 44, 88):
        ds = pydicom.dcmread(s.files[k])
        np.testing.assert_allclose(s.voxels[k], physical(ds), rtol=1e-6)
    assert s.voxels.max() > 1000  # Bq/mL as stored, not raw counts


def test_reading_the_89_slice_pet_is_fast(pet_dir: Path) -> None:
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        result = read([pet_dir])
        best = min(best, time.perf_counter() - t0)
    assert result.series[0].shape[0] == 89
    assert best < 1.0, f"reading 89 PET slices took {best:.2f} s"


def test_progress_reports_every_file(pet_dir: Path) -> None:
    calls: list[tuple[int, int]] = []
    read([pet_dir], progress=lambda done, total: calls.append((done, total)))
    assert len(calls) == 89
    assert calls[0] == (1, 89) and calls[-1] == (89, 89)


def test_enhanced_mr_multiframe(shared_data: Path) -> None:
    path = shared_data / "mr/acr/Siemens_Sola_1.5T_T2/1.dcm"
    s = read_one(path.parent)
    ds = pydicom.dcmread(path)
    assert s.shape == (11, 256, 256)
    assert s.spacing == pytest.approx((10.0, 0.976562, 0.976562), abs=1e-4)
    assert s.facts.device.manufacturer == "Siemens Healthineers"
    assert s.facts.device.model == "MAGNETOM Sola"
    assert s.facts.series_number == 10
    frames = ds.PerFrameFunctionalGroupsSequence
    order = np.argsort([float(f.PlanePositionSequence[0].ImagePositionPatient[2]) for f in frames])
    pixels = ds.pixel_array
    for k, n in enumerate(order):
        ipp = np.array(frames[n].PlanePositionSequence[0].ImagePositionPatient, dtype=float)
        np.testing.assert_allclose(_affine_position(s, k), ipp, atol=1e-3)
        np.testing.assert_array_equal(s.voxels[k], pixels[n].astype(np.float32))


@pytest.mark.parametrize("folder", ["CTP404_FOV150", "CTP486", "Wire_FOV50"])
def test_catphan_ct_in_hounsfield_units(shared_data: Path, folder: str) -> None:
    s = read_one(shared_data / "ct/catphan" / folder)
    assert s.shape == (3, 512, 512) and s.facts.modality == "CT"
    for k, path in enumerate(s.files):
        ds = pydicom.dcmread(path)
        np.testing.assert_allclose(s.voxels[k], physical(ds), atol=1e-3)
        np.testing.assert_allclose(_affine_position(s, k), np.array(ds.ImagePositionPatient,
                                                                  dtype=float), atol=1e-4)
    # air outside the phantom is near −1000 HU (Wire_FOV50's 50 mm field has none)
    if folder != "Wire_FOV50":
        assert -1100 < float(np.percentile(s.voxels, 1)) < -900


def test_dose_folder_sorts_reports_from_images(shared_data: Path) -> None:
    """SR objects (RDSR, radiopharmaceutical RDSR, enhanced SR) and a secondary capture
    without pixel data are non-image objects; the two PET images are series."""
    folder = shared_data / "dose/rdsr"
    result = read([folder])
    non_image = {p.name: name for p, name in result.non_image}
    assert non_image["CT-RDSR-GEPixelMed.dcm"] == "X-Ray Radiation Dose SR Storage"
    assert non_image["NM-RRDSR-Siemens.dcm"] == "Radiopharmaceutical Radiation Dose SR Storage"
    assert non_image["ESR_non-dose.dcm"] == "Enhanced SR Storage"
    assert non_image["CT-SC-Philips_Brilliance16P.dcm"] == "Secondary Capture Image Storage"
    assert len(non_image) == 13
    assert sorted(p.name for s in result.series for p in s.files) == [
        "NM-PetIm-GE.dcm", "NM-PetIm-Siemens.dcm"]
    assert {p.name for p, _ in result.skipped} == {"PUBLISHED_VALUES_openrem.md"}
    assert result.errors == []


def test_incomplete_mct_series_reports_the_gap(shared_data: Path) -> None:
    """The mCT folder holds 5 slices of a 74-slice series (z = −120, −111, −39, −36, −33):
    a real missing-slice case."""
    folder = shared_data / "pet/uniform-cylinder-mct"
    result = read([folder])
    assert result.series == []
    (where, reason), = result.errors
    assert str(folder) in where and "PET WB" in where
    assert "missing slice(s)" in reason
    assert "-120.000" in reason and "-111.000" in reason and "-39.000" in reason


def test_same_series_exported_twice_reads_as_two_volumes(shared_data: Path) -> None:
    """mr/acr/Siemens and Siemens2 hold the same Series Instance UID with different
    instances at identical positions: split by folder, with a warning."""
    result = read([shared_data / "mr/acr/Siemens", shared_data / "mr/acr/Siemens2"])
    assert [s.shape for s in result.series] == [(11, 256, 256)] * 2
    assert result.series[0].uid == result.series[1].uid
    assert {s.files[0].parent.name for s in result.series} == {"Siemens", "Siemens2"}
    assert all("mixes 2 volumes" in s.warnings[0] for s in result.series)
    assert result.errors == []

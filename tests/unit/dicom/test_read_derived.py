"""Derived inputs built in tmp_path from real PET/CT files: ordering, mixing, zips,
and every failure mode the reader must name (file or series, and the problem)."""

from __future__ import annotations

import io
import random
import shutil
import zipfile

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset

from scanbench.dicom import pixels, read, read_one
from scanbench.errors import InputError, SeriesError
from scanbench.types import Series

from .helpers import copies, new_series, physical, write


def _same_volume(a: Series, b: Series) -> None:
    np.testing.assert_array_equal(a.voxels, b.voxels)
    np.testing.assert_allclose(a.affine, b.affine, atol=1e-9)
    assert a.spacing == pytest.approx(b.spacing)


@pytest.fixture(scope="module")
def subset_series(pet_subset: list[Dataset], tmp_path_factory: pytest.TempPathFactory) -> Series:
    folder = tmp_path_factory.mktemp("subset")
    write(pet_subset, folder)
    return read_one(folder)


def test_shuffled_renamed_files_give_the_same_volume(pet_subset, subset_series, tmp_path):
    order = list(range(len(pet_subset)))
    random.Random(3).shuffle(order)
    dss = copies([pet_subset[i] for i in order])
    for n, ds in enumerate(dss):
        ds.InstanceNumber = n + 1  # instance numbers now say nothing about position
    write(dss, tmp_path, names=[f"{random.Random(n).getrandbits(40):x}.img"
                                for n in range(len(dss))])
    _same_volume(read_one(tmp_path), subset_series)


def test_reverse_stored_slices_give_the_same_volume(pet_subset, subset_series, tmp_path):
    dss = copies(pet_subset[::-1])
    for n, ds in enumerate(dss):
        ds.InstanceNumber = n + 1
    write(dss, tmp_path)  # slice_000 is now the top slice
    s = read_one(tmp_path)
    _same_volume(s, subset_series)
    assert s.affine[2, 0] > 0  # k still runs along +normal


def test_whole_pet_series_shuffled(pet_datasets, pet_series, tmp_path):
    names = [f"x{n:03d}" for n in random.Random(1).sample(range(1000), len(pet_datasets))]
    write(pet_datasets, tmp_path, names=names)
    _same_volume(read_one(tmp_path), pet_series)


def test_each_slice_keeps_its_own_rescale_slope(pet_subset, tmp_path):
    """PET slices carry their own Rescale Slope: halve the stored values of every other
    slice and double its slope; the physical values must not change."""
    dss = copies(pet_subset)
    for n, ds in enumerate(dss):
        if n % 2:
            ds.PixelData = (ds.pixel_array // 2).astype("<u2").tobytes()
            ds.RescaleSlope = float(ds.RescaleSlope) * 2
    write(dss, tmp_path)
    s = read_one(tmp_path)
    for k, ds in enumerate(dss):
        np.testing.assert_allclose(s.voxels[k], physical(ds), rtol=1e-6)
    assert not np.array_equal(s.voxels[1], dss[1].pixel_array * float(dss[0].RescaleSlope))


def test_missing_middle_slice_names_the_gap(pet_subset, tmp_path):
    dss = copies(pet_subset)
    del dss[5]
    write(dss, tmp_path)
    result = read([tmp_path])
    assert result.series == []
    (where, reason), = result.errors
    assert str(tmp_path) in where and "test series" in where
    z4, z6 = (float(pet_subset[i].ImagePositionPatient[2]) for i in (4, 6))
    assert "missing slice(s)" in reason and "about 1 slice(s) missing" in reason
    assert f"between positions {z4:.3f} and {z6:.3f} mm" in reason
    with pytest.raises(SeriesError, match="missing slice"):
        read_one(tmp_path)


def test_perturbed_position_reports_uneven_spacing(pet_subset, tmp_path):
    dss = copies(pet_subset)
    x, y, z = (float(v) for v in dss[6].ImagePositionPatient)
    dss[6].ImagePositionPatient = [x, y, z + 0.5]
    write(dss, tmp_path)
    result = read([tmp_path])
    (where, reason), = result.errors
    assert str(tmp_path) in where
    assert "uneven slice spacing" in reason
    assert "2.780 mm (×9)" in reason and "3.280 mm (×1)" in reason and "2.280 mm (×1)" in reason


def test_float_jitter_in_positions_is_tolerated(pet_subset, subset_series, tmp_path):
    dss = copies(pet_subset)
    for n, ds in enumerate(dss):
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, z + (1e-4 if n % 2 else -1e-4)]
    write(dss, tmp_path)
    s = read_one(tmp_path)
    np.testing.assert_array_equal(s.voxels, subset_series.voxels)
    assert s.spacing[0] == pytest.approx(2.78, abs=1e-3)


def test_two_series_in_one_folder_are_read_separately(pet_subset, shared_data, tmp_path):
    write(pet_subset, tmp_path)
    for p in (shared_data / "ct/catphan/CTP486").iterdir():
        shutil.copy(p, tmp_path / f"ct_{p.name}")
    result = read([tmp_path])
    assert sorted(s.facts.modality for s in result.series) == ["CT", "PT"]
    assert sorted(s.shape for s in result.series) == [(3, 512, 512), (12, 192, 192)]
    with pytest.raises(InputError, match="expected one image series, found 2"):
        read_one(tmp_path)


def test_series_mixing_sizes_is_split_with_a_warning(pet_subset, shared_data, tmp_path):
    write(pet_subset, tmp_path)
    for n, p in enumerate(sorted((shared_data / "ct/catphan/CTP486").iterdir())):
        ds = pydicom.dcmread(p)
        ds.SeriesInstanceUID = pet_subset[0].SeriesInstanceUID  # one "series", two sizes
        ds.save_as(tmp_path / f"ct{n}.dcm")
    result = read([tmp_path])
    assert sorted(s.shape for s in result.series) == [(3, 512, 512), (12, 192, 192)]
    for s in result.series:
        assert "mixes 2 volumes" in s.warnings[0]
        assert any(w.startswith("this is volume") for w in s.warnings)


def test_series_mixing_orientations_is_split(pet_subset, tmp_path):
    dss = new_series(pet_subset[:6])
    write(dss[:3], tmp_path)
    for n, ds in enumerate(dss[3:]):  # the other three become coronal slices
        ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
        ds.ImagePositionPatient = [-100.0, -50.0 + 3 * n, 100.0]
    write(dss[3:], tmp_path / "cor")
    result = read([tmp_path])
    assert len(result.series) == 2
    assert {s.warnings[-1].split(":")[1].split(",")[0].strip() for s in result.series} == {
        "axial", "coronal"}


def test_dynamic_classic_pet_splits_by_time_frame(pet_subset, tmp_path):
    """Two time frames of the same slices (Image Index, PS3.3 C.8.9.4.1.9)."""
    first, second = new_series(pet_subset[:4]), copies(pet_subset[:4])
    for frame, dss in ((1, first), (2, second)):
        for n, ds in enumerate(dss):
            ds.SeriesInstanceUID = first[0].SeriesInstanceUID
            ds.SOPInstanceUID = pydicom.uid.generate_uid()
            ds.NumberOfSlices = 4
            ds.ImageIndex = (frame - 1) * 4 + n + 1
    write(first + second, tmp_path)
    result = read([tmp_path])
    assert [s.shape[0] for s in result.series] == [4, 4]
    assert "PET/NM frame" in result.series[1].warnings[-1]


def test_repeated_positions_without_a_distinguishing_field(pet_subset, tmp_path):
    dss = new_series(pet_subset[:3]) * 2
    dss = copies(dss)
    for ds in dss:
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
    write(dss, tmp_path)
    (where, reason), = read([tmp_path]).errors
    assert str(tmp_path) in where
    assert "6 slices but only 3 distinct positions" in reason


def test_duplicate_instances_are_read_once(pet_subset, subset_series, tmp_path):
    write(pet_subset, tmp_path / "a")
    write(pet_subset[:2], tmp_path / "b")  # the same SOP instances again
    s = read_one(tmp_path)
    np.testing.assert_array_equal(s.voxels, subset_series.voxels)
    assert "2 file(s) repeat an instance already read" in s.warnings[-1]


def test_gantry_tilt_affine_follows_positions(pet_subset, tmp_path):
    dss = copies(pet_subset[:5])
    for n, ds in enumerate(dss):
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y + 0.5 * n, z]  # sheared stack
    write(dss, tmp_path)
    s = read_one(tmp_path)
    for k, ds in enumerate(dss):
        np.testing.assert_allclose(s.index_to_patient((k, 0, 0)),
                                   np.array(ds.ImagePositionPatient, dtype=float), atol=1e-6)
    assert s.spacing[0] == pytest.approx(2.78, abs=1e-6)
    assert "sheared" in s.warnings[0]


def test_single_slice_series_uses_slice_thickness(pet_subset, tmp_path):
    write(pet_subset[:1], tmp_path)
    s = read_one(tmp_path)
    assert s.shape == (1, 192, 192)
    assert s.spacing[0] == pytest.approx(2.78, abs=1e-6)
    assert "single-slice series" in s.warnings[0] and "Slice Thickness" in s.warnings[0]
    np.testing.assert_allclose(s.affine[:3, 0], [0, 0, s.spacing[0]])


def test_zip_is_read_in_memory(pet_subset, subset_series, tmp_path):
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for n, ds in enumerate(pet_subset):
            buf = io.BytesIO()
            ds.save_as(buf, enforce_file_format=True)
            zf.writestr(f"study/pet/{n:03d}", buf.getvalue())
        zf.writestr("study/readme.txt", "not an image")
    before = set(tmp_path.rglob("*"))
    calls: list[tuple[int, int]] = []
    result = read([archive], progress=lambda d, t: calls.append((d, t)))
    assert set(tmp_path.rglob("*")) == before  # nothing extracted
    s, = result.series
    _same_volume(s, subset_series)
    assert s.files[0] == archive / "study/pet/000"
    assert result.skipped == [(archive / "study/readme.txt",
                               "not DICOM (no DICM prefix at byte 128)")]
    assert calls[-1] == (14, 14)


def test_damaged_zip_is_an_error(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 50)
    result = read([bad])
    (where, reason), = result.errors
    assert where == str(bad) and "damaged zip" in reason


def test_non_dicom_files_are_skipped_with_a_note(pet_subset, tmp_path):
    write(pet_subset[:3], tmp_path)
    (tmp_path / "notes.txt").write_text("phantom filled 10:03\n")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "screen.png")
    (tmp_path / "DICOMDIR").write_bytes(b"\x00" * 128 + b"DICM")
    (tmp_path / "preamble.dcm").write_bytes(b"\x00" * 128 + b"DICM")
    result = read([tmp_path])
    skipped = {p.name: why for p, why in result.skipped}
    assert skipped["notes.txt"] == "not DICOM (no DICM prefix at byte 128)"
    assert skipped["screen.png"] == "not DICOM (no DICM prefix at byte 128)"
    assert skipped["DICOMDIR"].startswith("DICOMDIR")
    # A file that ends at the DICM prefix is a truncated file (issue 11): an error
    # naming it, never a note (PS3.10 §7.1: meta information and a data set follow).
    assert len(result.series) == 1 and "preamble.dcm" not in skipped
    assert result.errors == [(str(tmp_path / "preamble.dcm"), "truncated: the file ends 0 "
                              "byte(s) after the DICM prefix, before its File Meta Information "
                              "and data set")]


def test_truncated_pixel_data_names_file_and_sizes(pet_subset, tmp_path):
    paths = write(pet_subset, tmp_path)
    data = paths[4].read_bytes()
    paths[4].write_bytes(data[:-1000])
    result = read([tmp_path])
    errors = dict(result.errors)
    assert "truncated" in errors[str(paths[4])]
    assert "needs 73728 bytes" in errors[str(paths[4])]
    # the series itself then misses that slice, and says so
    assert any("missing slice(s)" in why for where, why in result.errors
               if where != str(paths[4]))


def test_truncated_header_names_file(pet_subset, tmp_path):
    paths = write(pet_subset[:2], tmp_path)
    paths[0].write_bytes(paths[0].read_bytes()[:700])  # cut inside the header
    paths[1].write_bytes(paths[1].read_bytes()[:300])  # cut inside the file meta
    errors = dict(read([tmp_path]).errors)
    assert "truncated" in errors[str(paths[0])]
    assert "truncated" in errors[str(paths[1])]
    with pytest.raises(SeriesError, match="truncated"):
        read_one(tmp_path)


def test_garbage_after_dicm_prefix_is_an_error(tmp_path):
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"\x00" * 128 + b"DICM" + bytes(range(256)) * 4)
    (where, reason), = read([bad]).errors
    assert where == str(bad) and ("damaged" in reason or "truncated" in reason)


@pytest.mark.parametrize(("changes", "expected"), [
    ({"Rows": 65535, "Columns": 65535, "NumberOfFrames": 10000}, "refused before decoding"),
    ({"Rows": 4096}, "truncated: Pixel Data"),
    ({"Rows": 0}, "both positive"),
    ({"BitsAllocated": 12}, "Bits Allocated"),
    ({"SamplesPerPixel": 3}, "Samples per Pixel"),
    ({"NumberOfFrames": "7777"}, "Number of Frames"),
    ({"PixelSpacing": [0, 0]}, "Pixel Spacing"),
    ({"ImageOrientationPatient": [1, 0, 0, 1, 0, 0]}, "not two orthogonal unit vectors"),
    ({"ImagePositionPatient": [0, 0]}, "Image Position (Patient)"),
    ({"RescaleSlope": "7777"}, "Rescale Slope"),
])
def test_absurd_headers_are_refused_naming_file(pet_subset, tmp_path, changes, expected):
    ds = copies(pet_subset[:1])[0]
    for kw, value in changes.items():
        setattr(ds, kw, value)
    path, = write([ds], tmp_path)
    # values pydicom refuses to write are patched into the bytes afterwards
    path.write_bytes(path.read_bytes().replace(b"7777", b"abcd"))
    result = read([path])
    assert result.series == []
    (where, reason), = result.errors
    assert where == str(path)
    assert expected in reason
    with pytest.raises(InputError) as caught:
        read_one(path)
    assert expected in caught.value.message and caught.value.where == str(path)


def test_series_memory_cap_is_configurable(pet_subset, tmp_path, monkeypatch):
    write(pet_subset, tmp_path)
    monkeypatch.setattr(pixels, "MAX_SERIES_BYTES", 192 * 192 * 4 * 5)
    (where, reason), = read([tmp_path]).errors
    assert str(tmp_path) in where and "MAX_SERIES_BYTES" in reason


def test_missing_path_is_an_error(tmp_path):
    (where, reason), = read([tmp_path / "nowhere"]).errors
    assert where == str(tmp_path / "nowhere") and reason == "no such file or folder"
    with pytest.raises(InputError, match="no such file"):
        read_one(tmp_path / "nowhere")


def test_folder_without_images(shared_data, tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(InputError, match="no DICOM image series found"):
        read_one(tmp_path)
    with pytest.raises(InputError, match="no DICOM image series found"):
        read_one(shared_data / "dose/rdsr/NM-RRDSR-Siemens.dcm")


def test_signed_pixels_with_bits_stored_below_allocated(pet_subset, tmp_path):
    """Signed 12-bit values in 16-bit words with garbage above bit 11 (PS3.5 §8.1.1)."""
    ds = copies(pet_subset[:1])[0]
    values = (ds.pixel_array.astype(np.int32) % 4096) - 2048  # −2048..2047
    words = (values & 0x0FFF) | 0xA000  # high nibble is not part of the value
    ds.PixelData = words.astype("<u2").tobytes()
    ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 1, 12, 11
    ds.RescaleSlope, ds.RescaleIntercept = 1, -5
    path, = write([ds], tmp_path)
    s = read_one(path)
    np.testing.assert_array_equal(s.voxels[0], values - 5)


def test_unsigned_pixels_mask_unused_high_bits(pet_subset, tmp_path):
    ds = copies(pet_subset[:1])[0]
    values = ds.pixel_array.astype(np.int32) % 4096
    ds.PixelData = (values | 0xF000).astype("<u2").tobytes()
    ds.BitsStored, ds.HighBit, ds.RescaleSlope, ds.RescaleIntercept = 12, 11, 1, 0
    path, = write([ds], tmp_path)
    np.testing.assert_array_equal(read_one(path).voxels[0], values)


def test_big_endian_and_8_bit_pixels(pet_subset, tmp_path):
    ds = copies(pet_subset[:1])[0]
    values = (ds.pixel_array // 256).astype(np.uint8)
    ds.PixelData = values.tobytes()
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.RescaleSlope, ds.RescaleIntercept = 2, 1
    path, = write([ds], tmp_path / "u8")
    np.testing.assert_array_equal(read_one(path).voxels[0], values * 2.0 + 1)
    be = copies(pet_subset[:1])[0]
    be.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRBigEndian
    (tmp_path / "be").mkdir()
    path = tmp_path / "be/x.dcm"
    pydicom.dcmwrite(path, be, implicit_vr=False, little_endian=False, force_encoding=True)
    # write the pixel words big-endian ourselves, whatever pydicom did with them
    data = path.read_bytes()
    at = data.index(b"\x7f\xe0\x00\x10OW\x00\x00") + 12
    words = pet_subset[0].pixel_array.astype(">u2").tobytes()
    path.write_bytes(data[:at] + words + data[at + len(words):])
    np.testing.assert_allclose(read_one(path).voxels[0], physical(pet_subset[0]), rtol=1e-6)

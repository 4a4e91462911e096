"""Compressed transfer syntaxes and enhanced multi-frame objects.

Lossless recompressions (RLE Lossless with pydicom's own encoder, JPEG 2000
Lossless with pylibjpeg-openjpeg) must decode to exactly the uncompressed
volume; an Enhanced PET Image assembled from the classic slices must give
the same voxels and affine as the classic series.
"""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.pixels import get_encoder
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, RLELossless

from scanbench.dicom import read, read_one
from scanbench.dicom.pixels import codestream_dimensions
from scanbench.types import Series

from .helpers import copies, enhanced_pet, new_series, physical, write


@pytest.fixture(scope="module")
def subset_series(pet_subset, tmp_path_factory) -> Series:
    folder = tmp_path_factory.mktemp("subset")
    write(pet_subset[:6], folder)
    return read_one(folder)


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless])
def test_lossless_recompression_decodes_exactly(pet_subset, subset_series, tmp_path, syntax):
    if not get_encoder(syntax).is_available:
        pytest.fail(f"no {syntax.name} encoder installed")
    dss = copies(pet_subset[:6])
    for ds in dss:
        ds.compress(syntax)
    paths = write(dss, tmp_path)
    assert pydicom.dcmread(paths[0]).file_meta.TransferSyntaxUID == syntax
    s = read_one(tmp_path)
    np.testing.assert_array_equal(s.voxels, subset_series.voxels)
    np.testing.assert_array_equal(s.affine, subset_series.affine)


def test_lossless_signed_ct_recompression(shared_data, tmp_path):
    """Signed pixels through JPEG 2000: CT stored as signed 16-bit."""
    ds = pydicom.dcmread(shared_data / "ct/catphan/CTP486/CTP486_005.dcm")
    hu = physical(ds)
    ds.PixelData = hu.astype("<i2").tobytes()
    ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 1, 16, 15
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    ds.compress(JPEG2000Lossless)
    write([ds], tmp_path)
    s = read_one(tmp_path)
    assert s.voxels.min() < -900
    np.testing.assert_array_equal(s.voxels[0], hu)


def test_jpeg_baseline_decodes(pet_subset, tmp_path):
    """JPEG baseline (8-bit lossy): pydicom has no encoder, so Pillow encodes the frame;
    the decoded volume must match Pillow's own decode of that codestream within 1."""
    ds = copies(pet_subset[:1])[0]
    img = (ds.pixel_array.astype(float) / ds.pixel_array.max() * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=95)
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    assert codestream_dimensions(buf.getvalue()) == (192, 192)
    write([ds], tmp_path)
    s = read_one(tmp_path)
    expected = np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=float)
    assert np.abs(s.voxels[0] - expected).max() <= 1


def test_compressed_frame_with_wrong_rows_is_refused_before_decoding(pet_subset, tmp_path):
    ds = copies(pet_subset[:1])[0]
    ds.compress(JPEG2000Lossless)
    ds.Rows = 4000
    path, = write([ds], tmp_path)
    (where, reason), = read([path]).errors
    assert where == str(path)
    assert "compressed frame is 192 rows × 192 columns but the header says Rows 4000" in reason


def test_rle_that_cannot_expand_to_the_header_size_is_refused(pet_subset, tmp_path):
    ds = copies(pet_subset[:1])[0]
    ds.compress(RLELossless)
    ds.Rows, ds.Columns, ds.NumberOfFrames = 6000, 6000, 1
    path, = write([ds], tmp_path)
    (where, reason), = read([path]).errors
    assert where == str(path) and "RLE pixel data" in reason and "cannot expand" in reason


def test_more_frames_than_fragments_is_refused(pet_subset, tmp_path):
    ds = copies(pet_subset[:1])[0]
    ds.compress(RLELossless)
    ds.NumberOfFrames = 50
    path, = write([ds], tmp_path)
    (where, reason), = read([path]).errors
    assert where == str(path) and "holds only 1 fragment" in reason


def test_enhanced_pet_matches_the_classic_series(pet_subset, tmp_path):
    dss = copies(pet_subset[:6])
    for n, ds in enumerate(dss):  # give every frame its own slope, as PET does
        if n % 2:
            ds.PixelData = (ds.pixel_array // 2).astype("<u2").tobytes()
            ds.RescaleSlope = float(ds.RescaleSlope) * 2
    write(dss, tmp_path / "classic")
    subset_series = read_one(tmp_path / "classic")
    enhanced = enhanced_pet(dss, order=[3, 0, 5, 1, 4, 2])  # frames stored out of order
    write([enhanced], tmp_path)
    s = read_one(tmp_path / "slice_000.dcm")
    np.testing.assert_allclose(s.voxels, subset_series.voxels, rtol=1e-6)
    np.testing.assert_allclose(s.affine, subset_series.affine, atol=1e-9)
    assert s.spacing == pytest.approx(subset_series.spacing)
    assert s.facts.modality == "PT" and s.warnings == []
    assert s.files == [tmp_path / "slice_000.dcm"]
    slopes = {float(f.PixelValueTransformationSequence[0].RescaleSlope)
              for f in enhanced.PerFrameFunctionalGroupsSequence}
    assert len(slopes) == 2  # the per-frame slopes really differ


def test_enhanced_pet_frame_position_from_per_frame_group(pet_subset, tmp_path):
    enhanced = enhanced_pet(copies(pet_subset[:4]))
    write([enhanced], tmp_path)
    s = read_one(tmp_path)
    for k, ds in enumerate(pet_subset[:4]):
        np.testing.assert_allclose(s.index_to_patient((k, 0, 0)),
                                   np.array(ds.ImagePositionPatient, dtype=float), atol=1e-6)


def test_enhanced_temporal_positions_split_into_volumes(pet_subset, tmp_path):
    dss = copies(pet_subset[:3]) + copies(pet_subset[:3])
    enhanced = enhanced_pet(dss, temporal=[1, 1, 1, 2, 2, 2])
    write([enhanced], tmp_path)
    result = read([tmp_path])
    assert [s.shape for s in result.series] == [(3, 192, 192)] * 2
    assert "temporal position 1" in result.series[0].warnings[-1]
    assert "temporal position 2" in result.series[1].warnings[-1]


def test_enhanced_pet_with_compressed_frames(pet_subset, subset_series, tmp_path):
    enhanced = enhanced_pet(copies(pet_subset[:6]))
    enhanced.compress(RLELossless)
    write([enhanced], tmp_path)
    np.testing.assert_allclose(read_one(tmp_path).voxels, subset_series.voxels, rtol=1e-6)


def test_enhanced_frame_count_mismatch_names_file(pet_subset, tmp_path):
    enhanced = enhanced_pet(copies(pet_subset[:4]))
    del enhanced.PerFrameFunctionalGroupsSequence[3]
    enhanced.PixelData = enhanced.PixelData[: 3 * 192 * 192 * 2]
    enhanced.NumberOfFrames = 4
    path, = write([enhanced], tmp_path)
    (where, reason), = read([path]).errors
    assert where == str(path)
    assert "truncated" in reason or "3 items for 4 frames" in reason


def test_enhanced_frame_without_plane_position_names_frame(pet_subset, tmp_path):
    enhanced = enhanced_pet(new_series(pet_subset[:3]))
    del enhanced.PerFrameFunctionalGroupsSequence[1].PlanePositionSequence
    path, = write([enhanced], tmp_path)
    (where, reason), = read([path]).errors
    assert where == f"{path} frame 2" and "Plane Position Sequence" in reason


def test_damaged_rle_header_is_refused_before_decoding(pet_subset, tmp_path):
    ds = copies(pet_subset[:1])[0]
    ds.compress(RLELossless)
    path, = write([ds], tmp_path)
    data = bytearray(path.read_bytes())
    at = data.index(b"\xfe\xff\x00\xe0", data.index(b"\xfe\xff\x00\xe0") + 8) + 8
    data[at] = 7  # segment count: 7 instead of 2 for 16-bit pixels
    path.write_bytes(bytes(data))
    (where, reason), = read([path]).errors
    assert where == str(path)
    assert reason == "damaged RLE pixel data: frame 1 has 7 segments, the header needs 2"


def test_classic_multiframe_uses_spacing_between_slices(pet_subset, tmp_path):
    """A classic multi-frame image (NM reconstructed tomography style, PS3.3 C.8.4.15)
    without functional groups: frames are Spacing Between Slices apart along the normal."""
    ds = copies(pet_subset[:1])[0]
    ds.NumberOfFrames = 3
    ds.SpacingBetweenSlices = 4.0
    ds.PixelData = b"".join(p.PixelData for p in pet_subset[:3])
    path, = write([ds], tmp_path)
    s = read_one(path)
    assert s.shape == (3, 192, 192) and s.spacing[0] == pytest.approx(4.0)
    origin = np.array(ds.ImagePositionPatient, dtype=float)
    np.testing.assert_allclose(s.index_to_patient((2, 0, 0)), origin + np.array([0, 0, 8.0]))
    expected = pet_subset[2].pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(s.voxels[2], expected, rtol=1e-6)
    del ds.SpacingBetweenSlices
    path, = write([ds], tmp_path / "nospacing")
    (where, reason), = read([path]).errors
    assert where == str(path) and "frame positions are unknown" in reason

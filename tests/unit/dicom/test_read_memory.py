"""Peak memory of reading a large CT series (issue 15: "a large CT series (300 slices of
512²): peak memory under 2× the volume").

Measured in a child process that reads the series and reports its own peak resident set
(VmHWM of /proc/self/status, reset with /proc/self/clear_refs just before reading, so
that neither the imports nor the parent's memory count; ``getrusage`` is not used because
Linux carries ru_maxrss across fork/exec). The bound is relative to the volume's own size
in that process, so it is a statement about memory, never about time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from scanbench.dicom import read_one

pytestmark = pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(),
                                reason="needs Linux /proc/self/clear_refs to reset VmHWM")

_CHILD = """
import json, sys
def kib(key):
    with open('/proc/self/status') as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise RuntimeError(key)
from scanbench.dicom import read_one
with open('/proc/self/clear_refs', 'w') as fh:
    fh.write('5')  # resets VmHWM to the current resident set
base = kib('VmRSS')
series = read_one(sys.argv[1])
print(json.dumps({'extra': kib('VmHWM') - base, 'volume': series.voxels.nbytes}))
"""


def _write_ct(folder: Path, slices: int, size: int, seed: int = 0) -> None:
    """A plain 16-bit CT series (Explicit VR Little Endian, rescale intercept -1024),
    written in reverse order so that the reader must sort it."""
    folder.mkdir(parents=True, exist_ok=True)
    series, study, frame = generate_uid(), generate_uid(), generate_uid()
    rng = np.random.default_rng(seed)
    for k in reversed(range(slices)):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "CT"
        ds.SeriesInstanceUID, ds.StudyInstanceUID = series, study
        ds.FrameOfReferenceUID = frame
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-250.0, -250.0, 1.25 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.9765625, 0.9765625]
        ds.SliceThickness = 1.25
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = "1.5", "-1024"
        ds.PixelData = rng.integers(-1024, 3000, (size, size), dtype=np.int16).tobytes()
        ds.save_as(folder / f"{k:04d}.dcm", enforce_file_format=True)


def test_large_ct_series_peak_memory_under_twice_the_volume(tmp_path: Path) -> None:
    """120 slices of 512² (a 120 MiB float32 volume): the reader's peak extra resident
    memory stays under 1.25× the volume (the issue's target is 2×). Each file's stored
    values are freed as soon as they are in the volume, so the peak is the volume and a
    few files' bytes; before, pydicom's read buffer kept every file's bytes alive beside
    its stored values until the volume was assembled (about 2×), and without that buffer
    the stored values and the volume together still made 1.5×."""
    folder = tmp_path / "ct"
    _write_ct(folder, slices=120, size=512)
    out = subprocess.run([sys.executable, "-c", _CHILD, str(folder)], capture_output=True,
                         text=True, check=True)
    got = json.loads(out.stdout)
    assert got["volume"] == 120 * 512 * 512 * 4
    assert got["extra"] < 1.25 * got["volume"], got["extra"] / got["volume"]


def test_large_ct_series_voxels_equal_pydicom(tmp_path: Path) -> None:
    """The voxels are exactly pydicom's stored values × slope + intercept (PS3.3
    C.11.1.1.2, computed in float64, then stored as float32), in slice-position order."""
    folder = tmp_path / "ct"
    _write_ct(folder, slices=12, size=64, seed=3)
    series = read_one(folder)
    files = sorted(folder.iterdir(), key=lambda p: float(pydicom.dcmread(p)
                                                         .ImagePositionPatient[2]))
    expected = np.stack([
        (pydicom.dcmread(p).pixel_array * 1.5 - 1024.0).astype(np.float32) for p in files])
    assert series.voxels.dtype == np.float32
    assert np.array_equal(series.voxels, expected)


def test_released_source_refuses_to_give_values(tmp_path: Path) -> None:
    """Once the reader has released a file's stored values (they are in the volume), a
    frame of it raises instead of yielding stale values."""
    from scanbench.dicom.frames import Source, plane_frames

    folder = tmp_path / "ct"
    _write_ct(folder, slices=1, size=8)
    path = next(folder.iterdir())
    ds = pydicom.dcmread(path)
    source = Source(path=path, ds=ds, pixels=ds.pixel_array.reshape(1, 8, 8))
    frame = plane_frames(source)[0]
    assert frame.values().shape == (8, 8)
    source.release()
    assert (frame.rows, frame.columns) == (8, 8)
    with pytest.raises(RuntimeError, match="released"):
        frame.values()

"""Decompression bombs: compressed pixel data declaring huge frames is refused, with the
file named, before anything is decoded, by ``analyze``, by ``read`` and by the node's
``Pipeline.store_instance`` (issue 11 §3: six 8 MB RLE files declaring 16000 × 16000
frames were accepted and an analysis reached 3.5-8 GB)."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import RLELossless, generate_uid

from scanbench.dicom import pixels, read

# The peak resident memory of the child process itself: VmHWM of its own address space.
# getrusage's ru_maxrss is not used: Linux carries it across fork and exec, so a child of
# a large pytest process would report the parent's size.
HWM = ("def _hwm():\n"
       "    for line in open('/proc/self/status'):\n"
       "        if line.startswith('VmHWM:'):\n"
       "            return int(line.split()[1])\n"
       "    raise RuntimeError('no VmHWM in /proc/self/status')\n")

CT_BASE = "ct/catphan/CTP404_FOV150/CTP404_FOV150_001.dcm"


def _rle_zero_frame(rows: int, cols: int) -> bytes:
    """One 16-bit RLE frame of zeros (PS3.5 G.3, G.5): two segments (high and low
    bytes), each row encoded on its own as replicate runs of 128 bytes."""
    assert cols % 128 == 0
    row = b"\x81\x00" * (cols // 128)  # -127: repeat the next byte 128 times
    segment = row * rows
    header = struct.pack("<16I", 2, 64, 64 + len(segment), *([0] * 13))
    return header + segment + segment


def _rle_instance(base: pydicom.Dataset, rows: int, cols: int, series_uid: str,
                  z: float = 0.0) -> bytes:
    ds = pydicom.Dataset(base)
    ds.file_meta = pydicom.dataset.FileMetaDataset(base.file_meta)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesInstanceUID = series_uid
    ds.ImagePositionPatient = [-100.0, -100.0, z]
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.PixelData = encapsulate([_rle_zero_frame(rows, cols)])
    ds["PixelData"].VR = "OB"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.fixture(scope="module")
def base(shared_data: Path) -> pydicom.Dataset:
    return pydicom.dcmread(shared_data / CT_BASE)


@pytest.fixture(scope="module")
def bomb(base: pydicom.Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The campaign's file: 8 MB of valid RLE that decodes to a 16000 × 16000 frame."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.dcm"
    path.write_bytes(_rle_instance(base, 16000, 16000, generate_uid()))
    assert path.stat().st_size < 9 * 2**20
    return path


def test_the_crafted_rle_is_valid_and_decodes(base: pydicom.Dataset, tmp_path: Path) -> None:
    """The builder writes real RLE: a small frame decodes to zeros of the declared size."""
    ds = pydicom.dcmread(io.BytesIO(_rle_instance(base, 8, 256, generate_uid())))
    assert ds.pixel_array.shape == (8, 256) and not ds.pixel_array.any()


def test_analyze_refuses_the_bomb_before_decoding_with_little_memory(bomb: Path) -> None:
    """The real command line in a subprocess that reports its own peak resident memory."""
    code = (HWM + "import sys\n"
            "from scanbench.cli import main\n"
            "sys.argv = ['scanbench', 'analyze', sys.argv[1], '--json']\n"
            "try:\n    main()\n"
            "finally:\n"
            "    print('maxrss_kib', _hwm(), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(bomb)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"{bomb}: header declares frames of 16000 rows × 16000 columns" in proc.stderr
    assert "refused before decoding" in proc.stderr
    peak_mib = int(proc.stderr.split("maxrss_kib")[1].split()[0]) / 1024
    # Python, numpy, scipy and pydicom take ~150 MiB; decoding would take > 500 MiB
    # (the frame alone) and the analysis several GiB.
    assert peak_mib < 450, f"peak resident memory {peak_mib:.0f} MiB"


def test_node_rejects_the_bomb_at_ingest(bomb: Path, tmp_path: Path) -> None:
    from scanbench.service.jobs import InlineExecutor
    from scanbench.service.pipeline import Pipeline

    pipe = Pipeline(tmp_path, executor=InlineExecutor(), recover=False)
    try:
        out = pipe.store_path(bomb)
        assert out.rejected
        assert out.reason is not None and str(bomb) in out.reason
        assert "16000 rows × 16000 columns" in out.reason
        assert not list((tmp_path / "files").rglob("*.dcm"))  # nothing kept for a job
    finally:
        pipe.close()


def test_a_series_over_its_limit_is_refused_before_its_other_files_are_decoded(
        base: pydicom.Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each file is within the per-instance limit; together they are not. The error names
    the first file over the series limit; no volume is formed."""
    monkeypatch.setenv("SCANBENCH_MAX_SERIES_MIB", "64")
    uid = generate_uid()
    paths = []
    for k in range(6):  # 2048 × 2048 as float32: 16 MiB each
        paths.append(tmp_path / f"slice{k}.dcm")
        paths[-1].write_bytes(_rle_instance(base, 2048, 2048, uid, z=2.0 * k))
    decoded: list[Path] = []
    real_decode = pixels.decode

    def counting(ds: pydicom.Dataset, where: Path) -> np.ndarray:
        decoded.append(where)
        return real_decode(ds, where)

    monkeypatch.setattr(pixels, "decode", counting)
    result = read(tmp_path)
    assert result.series == []
    (where, reason), = result.errors
    assert where == str(paths[4])  # 5 × 16 MiB > 64 MiB
    assert "64 MiB limit per series" in reason and "1 more file(s)" in reason
    assert decoded == paths[:4]


def test_per_instance_and_rows_limits_are_configurable(
        base: pydicom.Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "one.dcm"
    path.write_bytes(_rle_instance(base, 1024, 1024, generate_uid()))
    assert len(read(path).series) == 1
    monkeypatch.setenv("SCANBENCH_MAX_ROWS_COLUMNS", "512")
    (where, reason), = read(path).errors
    assert where == str(path) and "more than the 512 allowed" in reason
    monkeypatch.delenv("SCANBENCH_MAX_ROWS_COLUMNS")
    monkeypatch.setenv("SCANBENCH_MAX_INSTANCE_MIB", "2")
    (where, reason), = read(path).errors
    assert where == str(path) and "2 MiB limit per instance" in reason
    monkeypatch.setenv("SCANBENCH_MAX_INSTANCE_MIB", "lots")
    (where, reason), = read(path).errors
    assert "SCANBENCH_MAX_INSTANCE_MIB='lots': expected a positive number" in reason


def test_node_rejects_damaged_rle_at_ingest(base: pydicom.Dataset, tmp_path: Path) -> None:
    """RLE whose segments cannot fill the declared frame is refused when received (the
    sender hears of it), not when the job decodes it."""
    from scanbench.service.jobs import InlineExecutor
    from scanbench.service.pipeline import Pipeline

    good = pydicom.dcmread(io.BytesIO(_rle_instance(base, 256, 256, generate_uid())))
    short = tmp_path / "short.dcm"
    good.Rows = good.Columns = 2048  # the same 256 × 256 frame's RLE, a header 64 × larger
    good.save_as(short)
    pipe = Pipeline(tmp_path / "home", executor=InlineExecutor(), recover=False)
    try:
        out = pipe.store_path(short)
        assert out.rejected and out.reason is not None
        assert "cannot expand" in out.reason and str(short) in out.reason
        ok = tmp_path / "ok.dcm"
        ok.write_bytes(_rle_instance(base, 256, 256, generate_uid()))
        assert pipe.store_path(ok).stored  # valid RLE is still stored
    finally:
        pipe.close()


def _zip_bomb(path: Path, dicom: Path, members: int = 5, mib: int = 200) -> None:
    """A small zip of a real DICOM file and ``members`` × ``mib`` MiB of deflated zeros."""
    import zipfile

    chunk = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(dicom, "scan/ct.dcm")
        for k in range(members):
            with zf.open(f"padding/zeros{k}.bin", "w", force_zip64=True) as fh:
                for _ in range(mib):
                    fh.write(chunk)


_PEAK = (HWM + "import sys\n"
         "from scanbench.cli import main\n"
         "sys.argv = ['scanbench', *sys.argv[1:]]\n"
         "try:\n    main()\n"
         "finally:\n"
         "    print('maxrss_kib', _hwm(), file=sys.stderr)\n")


def _peak_mib(proc: subprocess.CompletedProcess[str]) -> float:
    return int(proc.stderr.split("maxrss_kib")[1].split()[0]) / 1024


@pytest.mark.parametrize("command", ["analyze", "ingest"])
def test_zip_members_are_read_one_at_a_time(shared_data: Path, tmp_path: Path,
                                            command: str) -> None:
    """1000 MiB of zeros in a 1 MB zip: analyze and ingest never hold the members at once,
    and read a member that is not DICOM only to its first bytes."""
    bomb = tmp_path / "bomb.zip"
    _zip_bomb(bomb, shared_data / CT_BASE)
    assert bomb.stat().st_size < 4 * 2**20
    args = (["analyze", str(bomb), "--json"] if command == "analyze" else
            ["ingest", str(bomb), "--home", str(tmp_path / "home"), "--no-analyse"])
    proc = subprocess.run([sys.executable, "-c", _PEAK, *args], capture_output=True,
                          text=True, timeout=300)
    assert "Traceback" not in proc.stderr
    assert proc.returncode in (0, 1), proc.stderr
    assert f"{bomb}/padding/zeros4.bin" in proc.stderr  # noted as not DICOM
    assert _peak_mib(proc) < 450, f"peak resident memory {_peak_mib(proc):.0f} MiB"


def test_zip_member_over_the_limit_is_refused_unread(shared_data: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = tmp_path / "bomb.zip"
    _zip_bomb(bomb, shared_data / CT_BASE, members=1, mib=100)
    monkeypatch.setenv("SCANBENCH_MAX_SERIES_MIB", "64")
    result = read(bomb)
    assert len(result.series) == 1  # the CT file is read
    (where, reason), = result.errors
    assert where == str(bomb / "padding/zeros0.bin") and "64 MiB limit" in reason

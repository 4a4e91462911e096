"""Fuzzing ``read`` with mutated real DICOM files.

Mutations: truncation at any offset, bit flips (mostly in the header), wrong
VRs or lengths on the tags that drive geometry and pixel sizes, and absurd
Rows / Columns / Number of Frames / Bits Allocated values. For every example:
no exception escapes ``read`` (problems land in ``errors`` / ``skipped``), the
file is accounted for, nothing hangs (a 10 s alarm per example on top of
Hypothesis' deadline), and the traced peak memory stays below
64 MiB + 20 × the file size.
"""

from __future__ import annotations

import datetime as dt
import io
import signal
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.uid import RLELossless

from scanbench.dicom import read
from scanbench.dicom.read import damaged_prefix

from .helpers import copies, enhanced_pet

MIB = 1 << 20
#: Tags whose VR or length the fuzzer corrupts: (group, element).
KEY_TAGS = [(0x0028, 0x0010), (0x0028, 0x0011), (0x0028, 0x0008), (0x0028, 0x0100),
            (0x0028, 0x0103), (0x0020, 0x0032), (0x0020, 0x0037), (0x0028, 0x0030),
            (0x0028, 0x1053), (0x0020, 0x000E), (0x0054, 0x0016), (0x5200, 0x9230),
            (0x7FE0, 0x0010)]
WRONG_VRS = [b"OB", b"UN", b"SQ", b"US", b"FD", b"DS", b"AT", b"UT", b"OW", b"SS", b"\x00\x00"]


def _bytes(ds: pydicom.Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.fixture(scope="module")
def bases(shared_data: Path, pet_subset) -> list[bytes]:
    """Real files of every kind the reader meets, plus compressed and enhanced variants."""
    files = [shared_data / "dose/rdsr/NM-PetIm-GE.dcm",
             shared_data / "dose/rdsr/NM-RRDSR-Siemens.dcm",
             shared_data / "ct/catphan/CTP404_FOV150/CTP404_FOV150_001.dcm",
             shared_data / "mr/acr/Siemens_Sola_1.5T_T2/1.dcm"]
    out = [p.read_bytes() for p in files]
    out.append(_bytes(pet_subset[0]))  # implicit VR little endian
    rle = copies(pet_subset[:1])[0]
    rle.compress(RLELossless)
    out.append(_bytes(rle))
    out.append(_bytes(enhanced_pet(copies(pet_subset[:3]))))
    return out


def _pixel_offset(data: bytes) -> int:
    at = data.rfind(b"\xe0\x7f\x10\x00")
    return at if at > 132 else len(data)


def _retag(data: bytes, draw: st.DrawFn) -> bytes:
    """Corrupt the VR (explicit VR files) or the length (implicit) of one key tag."""
    present = [t for t in KEY_TAGS
               if data.find(t[0].to_bytes(2, "little") + t[1].to_bytes(2, "little"), 132) > 0]
    if not present:
        return data
    group, element = draw(st.sampled_from(present))
    at = data.find(group.to_bytes(2, "little") + element.to_bytes(2, "little"), 132)
    if data[at + 4:at + 6].isalpha():
        vr = draw(st.sampled_from(WRONG_VRS))
        return data[:at + 4] + vr + data[at + 6:]
    length = draw(st.integers(0, 2**32 - 1)).to_bytes(4, "little")
    return data[:at + 4] + length + data[at + 8:]


def _absurd(data: bytes, draw: st.DrawFn) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    if "PixelData" not in ds:
        return data
    ds.Rows = draw(st.sampled_from([0, 1, 3, 255, 4096, 65535]))
    ds.Columns = draw(st.sampled_from([0, 1, 7, 512, 65535]))
    ds.NumberOfFrames = draw(st.sampled_from([0, 1, 2, 10000, 2**31 - 1]))
    ds.BitsAllocated = draw(st.sampled_from([1, 8, 16, 32, 64, 12]))
    ds.SamplesPerPixel = draw(st.sampled_from([1, 1, 3]))
    return _bytes(ds)


@st.composite
def mutated(draw: st.DrawFn, bases: list[bytes]) -> bytes:
    data = draw(st.sampled_from(bases))
    kind = draw(st.sampled_from(["truncate", "flip", "retag", "absurd", "flip", "truncate"]))
    if kind == "truncate":
        return data[:draw(st.integers(0, len(data) - 1))]
    if kind == "retag":
        return _retag(data, draw)
    if kind == "absurd":
        return _absurd(data, draw)
    buf = bytearray(data)
    header_end = _pixel_offset(data)
    for _ in range(draw(st.integers(1, 24))):
        limit = header_end if draw(st.booleans()) or header_end == len(data) else len(data)
        pos = draw(st.integers(0, max(limit - 1, 0)))
        buf[pos] ^= 1 << draw(st.integers(0, 7))
    return bytes(buf)


class Hang(BaseException):
    """Raised by the alarm; a BaseException so that read's per-file handlers cannot
    swallow it as a damaged file."""


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    def hang(signum: int, frame: object) -> None:
        raise Hang(f"read() did not return within {seconds} s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _check_one(data: bytes, path: Path) -> None:
    path.write_bytes(data)
    tracemalloc.start()
    try:
        with _alarm(10):
            result = read([path])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * MIB + 20 * len(data), f"peak {peak / MIB:.0f} MiB for {len(data)} bytes"
    # A damaged DICOM file is a failure, never a note (issue 11), unless the damage took
    # away what says it is DICOM: no DICM prefix (one flipped bit in it is recognised
    # while a File Meta Information element follows). RDSR bases are non-image objects.
    unrecognisable = len(data) < 132 or (data[128:132] != b"DICM" and not damaged_prefix(data))
    accounted = ([p for s in result.series for p in s.files] + [p for p, _ in result.non_image]
                 + [p for p, _ in result.skipped if unrecognisable])
    # The damaged file itself is named, never only its folder (issue 11).
    assert path in accounted or any(w == str(path) or w.startswith((f"{path}:", f"{path} "))
                                    for w, _ in result.errors)
    for where, reason in result.errors:
        assert where and reason
    for s in result.series:
        assert s.voxels.dtype == np.float32 and s.voxels.ndim == 3
        assert np.isfinite(s.affine).all()


def test_fuzz_read_mutated_real_files(bases: list[bytes], tmp_path: Path) -> None:
    path = tmp_path / "mutant.dcm"

    @settings(max_examples=150, deadline=dt.timedelta(seconds=5), derandomize=True,
              database=None, suppress_health_check=[HealthCheck.too_slow,
                                                    HealthCheck.data_too_large])
    @given(data=mutated(bases))
    def run(data: bytes) -> None:
        _check_one(data, path)

    run()


def test_absurd_sizes_on_every_base_are_refused_cheaply(bases: list[bytes], tmp_path) -> None:
    """The issue's example, 65535 × 65535 × 10000, on each image base (native,
    RLE, enhanced): refused before any allocation, naming the file."""
    for n, data in enumerate(bases):
        ds = pydicom.dcmread(io.BytesIO(data))
        if "PixelData" not in ds:
            continue
        ds.Rows, ds.Columns, ds.NumberOfFrames = 65535, 65535, 10000
        path = tmp_path / f"absurd{n}.dcm"
        _check_one(_bytes(ds), path)
        (where, reason), = read([path]).errors
        assert where == str(path) and "refused before decoding" in reason

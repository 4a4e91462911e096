"""The direct element walk of scanbench.dicom.parse gives exactly what pydicom.dcmread gives."""

from __future__ import annotations

import io
import random
import warnings
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from scanbench.dicom.parse import _plain, parse


def _elements(ds: Dataset) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for tag, elem in ds._dict.items():
        if isinstance(elem, RawDataElement):
            out.append(("raw", int(tag), tuple(elem)))
        else:
            out.append(("converted", int(tag), elem.VR, repr(elem.value)))
    return out


def _snapshot(data: bytes, reader: Any) -> tuple[Any, ...]:
    """Everything the reader's data set holds, or the exception it raised."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = reader(data)
        except Exception as exc:
            return ("raised", type(exc).__name__, str(exc))
        return (type(ds).__name__, _elements(ds), ds.original_encoding, ds._character_set,
                getattr(ds, "preamble", None), _meta(getattr(ds, "file_meta", None)))


def _meta(meta: Dataset | None) -> Any:
    """File meta compared by value (pydicom converts two of its elements while reading)."""
    if meta is None:
        return None
    try:
        return [(int(e.tag), e.VR, repr(e.value)) for e in meta], meta.original_encoding
    except Exception as exc:
        return ("raised", type(exc).__name__, str(exc))


def _same_as_pydicom(data: bytes) -> None:
    assert _snapshot(data, lambda d: parse(d, force=False)) == _snapshot(
        data, lambda d: pydicom.dcmread(io.BytesIO(d)))


def test_real_files_take_the_direct_walk_and_match(shared_data: Path) -> None:
    folders = ["pet/nema-iq-test-recon/pet_recon_1", "ct/catphan/CTP486", "mr/acr/Siemens"]
    direct = 0
    for folder in folders:
        for path in sorted((shared_data / folder).rglob("*"))[:10]:
            if path.is_file():
                data = path.read_bytes()
                _same_as_pydicom(data)
                direct += _plain(data) is not None
    assert direct >= 10  # the PET files (implicit VR) and plain CT/MR ones (explicit VR)


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian])
def test_damaged_copies_match_pydicom(pet_dir: Path, syntax: str) -> None:
    """Truncations and flipped bytes (in the header and anywhere): the walk either gives
    pydicom's data set or leaves the file to pydicom."""
    ds = pydicom.dcmread(next(iter(sorted(pet_dir.glob("*.dcm")))))
    ds.file_meta.TransferSyntaxUID = syntax
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=syntax == ImplicitVRLittleEndian, little_endian=True)
    base = buffer.getvalue()
    assert _plain(base) is not None
    rng = random.Random(7)
    for k in range(150):
        data = bytearray(base)
        if k % 3 == 0:
            data = data[:rng.randrange(120, len(data))]
        else:
            limit = 1500 if k % 3 == 1 else len(data)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(128, min(limit, len(data)))] = rng.randrange(256)
        _same_as_pydicom(bytes(data))


def test_other_inputs_are_left_to_pydicom(pet_dir: Path) -> None:
    base = next(iter(sorted(pet_dir.glob("*.dcm")))).read_bytes()
    for data in (base[:132], base[:128] + b"XXXX" + base[132:], b"", base + b"\x00\x00"):
        assert _plain(data) is None
        _same_as_pydicom(data)

"""The direct header read of clinical inputs (:func:`scanbench.clinical.sr.read_header`)
returns what ``pydicom.dcmread(path, stop_before_pixels=True)`` returns, and leaves an SR's
content tree unparsed until the dose templates walk it (issue 15: dose parsing within 2×
of the bare ``dcmread`` floor)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from scanbench.clinical.inputs import scan
from scanbench.clinical.sr import read_header

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "dose" / "rdsr"
FILES = sorted(DATA.glob("*.dcm"))
pytestmark = pytest.mark.skipif(not FILES, reason="real dose reports not present")


def _flat(ds: Dataset) -> list[tuple[int, str, Any]]:
    """Every element as (tag, VR, value), sequences recursively; a value pydicom cannot
    convert is compared by its error."""
    out: list[tuple[int, str, Any]] = []
    for elem in ds:
        try:
            value: Any = ([_flat(item) for item in elem.value] if elem.VR == "SQ"
                          else repr(elem.value))
        except Exception as exc:
            value = f"error {exc!r}"
        out.append((int(elem.tag), str(elem.VR), value))
    return out


def _same(got: Dataset, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pydicom.dcmread(path, stop_before_pixels=True)
        assert _flat(got) == _flat(ref)
        assert _flat(got.file_meta) == _flat(ref.file_meta)
    assert (got.preamble, got.original_encoding, got.original_character_set,
            got.filename) == (ref.preamble, ref.original_encoding,
                              ref.original_character_set, ref.filename)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_direct_read_equals_pydicom(path: Path) -> None:
    got = read_header(path)
    assert got is not None  # every real report is plain Explicit/Implicit VR Little Endian
    _same(got, path)


def test_truncated_reports_are_left_to_pydicom_or_read_alike(tmp_path: Path) -> None:
    """A report cut anywhere is either handed to pydicom (None) or read exactly as pydicom
    reads it; the direct read never raises."""
    data = (DATA / "CT-RDSR-Siemens-Multi-1.dcm").read_bytes()
    for cut in range(140, len(data), 97):
        path = tmp_path / f"cut{cut}.dcm"
        path.write_bytes(data[:cut])
        got = read_header(path)
        if got is not None:
            _same(got, path)


def test_scan_leaves_the_content_tree_unparsed() -> None:
    """The Content Sequence (0040,A730) of every real SR stays raw bytes after a scan
    (pydicom would have built a data set for every content item)."""
    found = scan(DATA)
    trees = [ds._dict[BaseTag(0x0040A730)] for _, ds in found.datasets
             if BaseTag(0x0040A730) in ds._dict]
    assert len(trees) >= 10
    assert all(isinstance(elem, RawDataElement) for elem in trees)

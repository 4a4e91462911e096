"""Parse one DICOM file from memory: a direct walk for plain files, else pydicom.

Most image files are Part 10 files (PS3.10 §7.1) whose data set is encoded in
Implicit or Explicit VR Little Endian (PS3.5 §A.1, §A.2) with every element of
defined length. For those, :func:`parse` walks the elements itself and builds
the same :class:`~pydicom.dataset.FileDataset` that ``pydicom.dcmread`` would
— the same raw elements (tag, VR, length, value, offset, encoding flags), the
same file meta information, the same original encoding — in about half the
time. (pydicom converts the first file meta element and the Transfer Syntax UID
while it reads; here they stay raw until used, and convert to the same values.)
Anything else (no ``DICM`` prefix, another transfer syntax, command set
elements, an undefined length, an unknown VR, a value running past the end of
the data, a VR encoding that disagrees with the transfer syntax, trailing
bytes) is handed to ``pydicom.dcmread`` unchanged, so odd and damaged files
keep pydicom's own handling.
"""

from __future__ import annotations

import io
import struct
from collections.abc import MutableMapping
from typing import cast

import pydicom
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import (
    DataElement,
    RawDataElement,
    convert_raw_data_element,
    empty_value_for_VR,
)
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.tag import BaseTag
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

#: Explicit VRs read as pydicom reads them (its ENCODED_VR set, as bytes).
_VRS = frozenset({"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT",
                  "OB", "OD", "OF", "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST",
                  "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV"})
_VR_BYTES = {vr.encode("ascii"): vr for vr in _VRS}
_LONG_VRS = frozenset(vr for vr in _VRS if vr in EXPLICIT_VR_LENGTH_32)
_EXPLICIT = struct.Struct("<HH2sH").unpack_from
_IMPLICIT = struct.Struct("<HHL").unpack_from
_UL = struct.Struct("<L").unpack_from
_CHARSET = BaseTag(0x00080005)
_SYNTAX = BaseTag(0x00020010)
#: Transfer Syntax UID values walked directly (as written, with the trailing null that
#: pads a UI to even length, PS3.5 §9.1) → implicit VR?
_SYNTAXES = {f"{ImplicitVRLittleEndian}\0".encode("ascii"): True,
             f"{ExplicitVRLittleEndian}\0".encode("ascii"): False}


def parse(data: bytes, force: bool) -> Dataset:
    """The data set in ``data``, as ``pydicom.dcmread(io.BytesIO(data), force=force)``
    returns it (and raising what it raises)."""
    if not force:
        ds = _plain(data)
        if ds is not None:
            return ds
    return pydicom.dcmread(io.BytesIO(data), force=force)


def _elements(data: bytes, pos: int, implicit: bool,
              meta: bool) -> tuple[dict[BaseTag, RawDataElement] | None, int]:
    """Raw elements from ``pos`` on (only group 0002 if ``meta``), and where they end;
    None for anything the direct walk leaves to pydicom."""
    end = len(data)
    out: dict[BaseTag, RawDataElement] = {}
    while pos < end:
        if pos + 8 > end:
            return None, pos
        if meta and data[pos] | data[pos + 1] << 8 != 0x0002:
            return out, pos
        if implicit:
            group, elem, length = _IMPLICIT(data, pos)
            vr = None
            start = pos + 8
        else:
            group, elem, raw_vr, length = _EXPLICIT(data, pos)
            vr = _VR_BYTES.get(raw_vr)
            if vr is None:
                return None, pos
            start = pos + 8
            if vr in _LONG_VRS:
                if pos + 12 > end:
                    return None, pos
                length = _UL(data, pos + 8)[0]
                start = pos + 12
        if length == 0xFFFFFFFF or start + length > end or group in (0x0000, 0xFFFE):
            return None, pos
        tag = BaseTag(group << 16 | elem)
        # With raw=True pydicom returns only b"" or None; its annotation covers both modes.
        value = (data[start:start + length] if length
                 else cast("bytes | None", empty_value_for_VR(vr, raw=True)))
        out[tag] = RawDataElement(tag, vr, length, value, start, implicit, True)
        pos = start + length
    return out, pos


def _plain(data: bytes) -> FileDataset | None:
    """The directly walked data set of a plain Part 10 file, None to leave it to pydicom."""
    if len(data) < 140 or data[128:132] != b"DICM":
        return None
    meta_elements, pos = _elements(data, 132, implicit=False, meta=True)
    if not meta_elements:
        return None
    syntax = meta_elements.get(_SYNTAX)
    value = syntax.value if syntax is not None and syntax.VR == "UI" else None
    implicit = _SYNTAXES.get(value) if value is not None else None
    if implicit is None:
        return None
    # pydicom converts two of these elements while reading; left raw here, they convert
    # to the same values when first used.
    file_meta = FileMetaDataset(_handed_over(meta_elements))
    file_meta.set_original_encoding(False, True, default_encoding)
    if pos + 6 > len(data):
        return None
    vr0, vr1 = data[pos + 4], data[pos + 5]
    if (not (0x40 < vr0 < 0x5B and 0x40 < vr1 < 0x5B)) != implicit:
        return None  # the data disagree with the syntax: pydicom warns and switches
    elements, _ = _elements(data, pos, implicit=implicit, meta=False)
    if elements is None:
        return None
    dataset = Dataset(_handed_over(elements), parent_encoding=default_encoding)
    encoding: str | list[str] = default_encoding
    if _CHARSET in elements:
        try:
            encoding = convert_encodings(
                convert_raw_data_element(elements[_CHARSET]).value)
        except Exception:
            return None
    dataset.set_original_encoding(implicit, True, encoding)
    ds = FileDataset(io.BytesIO(data), dataset, data[:128], file_meta, implicit, True)
    ds.set_original_encoding(implicit, True, dataset._character_set)
    return ds


def _handed_over(
        elements: dict[BaseTag, RawDataElement],
) -> MutableMapping[BaseTag, DataElement | RawDataElement]:
    """``elements`` as the mapping a pydicom data set takes over (and fills with converted
    DataElements as they are read); the same dict object, only typed as pydicom expects."""
    return cast("MutableMapping[BaseTag, DataElement | RawDataElement]", elements)

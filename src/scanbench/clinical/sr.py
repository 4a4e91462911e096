"""Walk a DICOM Structured Report content tree by coded concept names.

An SR document (PS3.3 C.17.3, SR Document Content Module) is a tree of content
items; each has a Relationship Type (0040,A010), a Value Type (0040,A040), a
Concept Name Code Sequence (0040,A043) and a value whose element depends on
the value type (NUM: Measured Value Sequence (0040,A300); CODE: Concept Code
Sequence (0040,A168); TEXT (0040,A160); UIDREF (0040,A124); DATETIME
(0040,A120); PNAME (0040,A123)). Templates (PS3.16) identify items by the
pair (code value, coding scheme designator) — never by the code meaning,
which is free text that vendors spell differently ("X-ray" / "X-Ray").

SNOMED codes appear in two schemes: the legacy SNOMED-RT style ``SRT`` codes
(e.g. ``P5-08001``) that older reports write, and the ``SCT`` concept ids
that replaced them (PS3.16 §8, "SNOMED Mapping"). :data:`EQUIVALENT` maps
the legacy codes scanbench looks for to their SCT ids, so a template lookup
matches either form.
"""

from __future__ import annotations

import datetime as dt
import math
import struct
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from pydicom.charset import convert_encodings, default_encoding, python_encoding
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import (
    DataElement,
    RawDataElement,
    convert_raw_data_element,
    empty_value_for_VR,
)
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

from scanbench.dicom import headers as h

# Element tags, used as integer keys for speed (Dataset.get by keyword converts each call).
_CHARSET = BaseTag(0x00080005)
_CONTENT_SEQ = 0x0040A730
_CONCEPT_NAME = 0x0040A043
_CONCEPT_CODE = 0x0040A168
_VALUE_TYPE = 0x0040A040
_RELATIONSHIP = 0x0040A010
_MEASURED_VALUE = 0x0040A300
_NUMERIC_VALUE = 0x0040A30A
_UNITS = 0x004008EA
_TEXT_VALUE = 0x0040A160
_UID = 0x0040A124
_DATETIME = 0x0040A120
_DATE = 0x0040A121
_TIME = 0x0040A122
_PNAME = 0x0040A123
_CODE_VALUE = 0x00080100
_SCHEME = 0x00080102
_MEANING = 0x00080104
_LONG_CODE_VALUE = 0x00080119
_URN_CODE_VALUE = 0x00080120

#: Legacy SNOMED-RT (SRT / SNM3) codes → SNOMED CT concept ids, for the concepts the
#: dose templates use (PS3.16 Annex O "SNOMED mapping"; TID 10011-10013, 10021-10022,
#: CID 10013, CID 4030, CID 4020, CID 25, CID 11).
EQUIVALENT: dict[str, str] = {
    "P5-08000": "77477000",  # Computed Tomography X-Ray (procedure reported)
    "P5-08001": "116152004",  # Spiral Acquisition
    "G-C0E8": "363675004",  # Has Intent
    "R-408C3": "261004008",  # Diagnostic Intent
    "R-0038D": "373066001",  # Yes
    "R-00339": "373067005",  # No
    "F-61FDB": "349358000",  # Radiopharmaceutical agent
    "C-10072": "89457008",  # Radionuclide
    "R-42806": "304283002",  # Radionuclide half life
    "G-C340": "410675002",  # Route of administration
    "G-D101": "47625008",  # Intravenous route
    "G-D102": "78421000",  # Intramuscular route
    "G-C2D0": "363589002",  # Associated Procedure
    "C-111A1": "77004003",  # ^18^Fluorine
    "C-105A1": "40565003",  # ^11^Carbon
    "C-107A1": "21576001",  # ^13^Nitrogen
    "C-B1031": "35321007",  # Fluorodeoxyglucose F^18^
    # CT target regions (CID 4030)
    "T-D1100": "69536005",  # Head
    "T-D1000": "774007",  # Head and Neck
    "T-D1600": "45048000",  # Neck
    "T-D3000": "43799004",  # Chest
    "T-D4000": "818981001",  # Abdomen
    "T-D6000": "816092008",  # Pelvis
    "R-FAB57": "818982008",  # Abdomen and Pelvis
    "R-FAB56": "416775004",  # Chest, Abdomen and Pelvis
    "T-D0010": "38266002",  # Entire body
    "T-A0100": "12738006",  # Brain
    "T-11100": "89546000",  # Skull
}
_LEGACY_SCHEMES = frozenset({"SRT", "SNM3", "99SDM"})


@dataclass(frozen=True)
class Code:
    """A coded entry: (code value, coding scheme designator), with its meaning for display."""

    value: str
    scheme: str
    meaning: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """The identity used for matching: legacy SNOMED-RT codes become their SCT id."""
        if self.scheme in _LEGACY_SCHEMES and self.value in EQUIVALENT:
            return EQUIVALENT[self.value], "SCT"
        return self.value, self.scheme

    def is_(self, value: str, scheme: str = "DCM") -> bool:
        return self.key == Code(value, scheme).key

    def to_dict(self) -> dict[str, str]:
        return {"value": self.value, "scheme": self.scheme, "meaning": self.meaning}


def dcm(value: str) -> tuple[str, str]:
    """A DICOM (DCM scheme) code key."""
    return value, "DCM"


def sct(value: str) -> tuple[str, str]:
    """A SNOMED CT (SCT scheme) code key."""
    return value, "SCT"


# ----------------------------------------------------------------------------- raw tree
#
# pydicom keeps a sequence's bytes unparsed until it is accessed, and converting every
# nested element through pydicom costs ~100× reading the file. The content tree is
# therefore parsed here straight from the bytes of the Content Sequence (PS3.5 §7.5:
# items (FFFE,E000) of defined or undefined length, item and sequence delimiters
# (FFFE,E00D) / (FFFE,E0DD); explicit or implicit VR, PS3.5 §7.1) into plain
# dicts, tag → raw value bytes or list of items. Values are decoded only when read.
# Elements pydicom has already converted (a data set built in memory, or edited)
# are taken as they are.

Node = dict[int, Any]
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN",
                       b"UR", b"UT", b"UV"})
_UNDEFINED = 0xFFFFFFFF


@lru_cache(maxsize=1024)
def _is_sq(tag: int) -> bool:
    try:
        return bool(dictionary_VR(tag) == "SQ")
    except KeyError:
        return False


_LE_ITEM = struct.Struct("<HHL").unpack_from
_BE_ITEM = struct.Struct(">HHL").unpack_from
_LE_EXPLICIT = struct.Struct("<HH2sH").unpack_from
_BE_EXPLICIT = struct.Struct(">HH2sH").unpack_from
_LE_UL = struct.Struct("<L").unpack_from
_BE_UL = struct.Struct(">L").unpack_from


def _parse_items(data: bytes, pos: int, end: int, implicit: bool, little: bool,
                 defined: bool) -> tuple[list[Node], int]:
    """Items of one sequence value from ``pos``; returns them and where the value ends."""
    hdr = _LE_ITEM if little else _BE_ITEM
    items: list[Node] = []
    while pos + 8 <= end:
        group, elem, length = hdr(data, pos)
        tag = group << 16 | elem
        pos += 8
        if tag == _SEQ_END:
            return items, pos
        if tag != _ITEM:
            raise ValueError(f"expected an item tag at byte {pos - 8}, found {tag:08X}")
        if length == _UNDEFINED:
            node, pos = _parse_node(data, pos, end, implicit, little, True)
        else:
            stop = pos + length
            node, _ = _parse_node(data, pos, stop if stop < end else end, implicit, little,
                                  False)
            pos = stop
        items.append(node)
    if not defined:
        raise ValueError("sequence of undefined length without its delimiter")
    return items, pos


def _parse_node(data: bytes, pos: int, end: int, implicit: bool, little: bool,
                until_delimiter: bool) -> tuple[Node, int]:
    node: Node = {}
    item_hdr = _LE_ITEM if little else _BE_ITEM
    explicit_hdr = _LE_EXPLICIT if little else _BE_EXPLICIT
    ul = _LE_UL if little else _BE_UL
    long_vrs = _LONG_VRS
    while pos + 8 <= end:
        if implicit:
            group, elem, length = item_hdr(data, pos)
            vr = None
            pos += 8
        else:
            group, elem, vr, length = explicit_hdr(data, pos)
            if vr in long_vrs:
                (length,) = ul(data, pos + 8)
                pos += 12
            else:
                pos += 8
        tag = group << 16 | elem
        if tag == _ITEM_END:
            return node, pos  # delimiters are 8 bytes in either VR encoding
        if length == _UNDEFINED:  # SQ, or UN of undefined length (implicit VR inside)
            node[tag], pos = _parse_items(data, pos, end, implicit or vr == b"UN", little,
                                          False)
        elif vr == b"SQ" or (vr is None and _is_sq(tag)):
            stop = pos + length
            # A sequence of defined length is parsed only if it is read (_sequence):
            # most of a report's subtrees are never visited.
            node[tag] = _Lazy(data, pos, stop if stop < end else end, implicit, little)
            pos = stop
        else:
            node[tag] = data[pos:pos + length]
            pos += length
    if until_delimiter:
        raise ValueError("item of undefined length without its delimiter")
    return node, pos


class _Lazy:
    """The unparsed bytes of a sequence value of defined length."""

    __slots__ = ("data", "implicit", "little", "start", "stop")

    def __init__(self, data: bytes, start: int, stop: int, implicit: bool,
                 little: bool) -> None:
        self.data, self.start, self.stop = data, start, stop
        self.implicit, self.little = implicit, little

    def parse(self) -> list[Node]:
        items, _ = _parse_items(self.data, self.start, self.stop, self.implicit, self.little,
                                defined=True)
        return items


def _sequence(node: Node | None, tag: int) -> list[Node] | None:
    """The items of a sequence element of ``node`` (parsing it on first use), or None."""
    if node is None:
        return None
    seq = node.get(tag)
    if isinstance(seq, _Lazy):
        try:
            seq = node[tag] = seq.parse()
        except (ValueError, struct.error):
            node[tag] = None
            raise
    return seq if isinstance(seq, list) else None


def node_of(ds: Dataset) -> Node:
    """The tags of a pydicom data set as a node; sequences become lists of nodes."""
    node: Node = {}
    for tag, elem in ds._dict.items():
        node[int(tag)] = _value_of(int(tag), elem)
    return node


def _value_of(tag: int, elem: Any) -> Any:
    if isinstance(elem, RawDataElement):
        value = elem.value
        is_sq = elem.VR == "SQ" or (elem.VR is None and _is_sq(tag)) or (
            elem.VR == "UN" and elem.length == _UNDEFINED)
        if is_sq and isinstance(value, bytes | bytearray):
            implicit = elem.is_implicit_VR or elem.VR == "UN"
            return _Lazy(bytes(value), 0, len(value), implicit, elem.is_little_endian)
        return value
    if elem.VR == "SQ":
        return [node_of(item) for item in elem.value if isinstance(item, Dataset)]
    return elem.value


def _decode(value: Any, encoding: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode(encoding, "replace")
    else:
        try:
            text = str(value)
        except Exception:
            return None
    text = text.strip(" \x00").strip()
    return text or None


def _first_node(node: Node | None, tag: int) -> Node | None:
    seq = _sequence(node, tag)
    if seq and isinstance(seq[0], dict):
        return cast(Node, seq[0])
    return None


_CODES: dict[tuple[Any, Any, Any, Any, Any, str], Code | None] = {}


def _node_code(node: Node | None, encoding: str) -> Code | None:
    """The code of a code-sequence item; codes repeat through a report, so each distinct
    raw (value, scheme, meaning) is decoded once."""
    if node is None:
        return None
    key = (node.get(_CODE_VALUE), node.get(_SCHEME), node.get(_MEANING),
           node.get(_LONG_CODE_VALUE), node.get(_URN_CODE_VALUE), encoding)
    try:
        return _CODES[key]
    except KeyError:
        pass
    except TypeError:  # unhashable converted values: decode without the cache
        return _decode_code(node, encoding)
    if len(_CODES) > 4096:
        _CODES.clear()
    code = _CODES[key] = _decode_code(node, encoding)
    return code


_RAW_CODES: dict[tuple[bytes, bool, bool, str], Code | None] = {}


def _code_at(node: Node | None, tag: int, encoding: str) -> Code | None:
    """The code in the first item of the code sequence ``tag`` of ``node``. The same
    concept is encoded with the same bytes all through a report (and across reports),
    so a sequence still in bytes is looked up by them and parsed only once."""
    if node is None:
        return None
    seq = node.get(tag)
    if isinstance(seq, _Lazy):
        key = (seq.data[seq.start:seq.stop], seq.implicit, seq.little, encoding)
        try:
            return _RAW_CODES[key]
        except KeyError:
            if len(_RAW_CODES) > 8192:
                _RAW_CODES.clear()
            code = _RAW_CODES[key] = _node_code(_first_node(node, tag), encoding)
            return code
    return _node_code(_first_node(node, tag), encoding)


_RAW_MEASURED: dict[tuple[bytes, bool, bool, str], tuple[str | None, str | None]] = {}


def _measured(node: Node, encoding: str) -> tuple[str | None, str | None]:
    """(Numeric Value as written, UCUM unit code) of a NUM item's Measured Value Sequence;
    looked up by its bytes while still unparsed, as codes are."""
    seq = node.get(_MEASURED_VALUE)
    key = None
    if isinstance(seq, _Lazy):
        key = (seq.data[seq.start:seq.stop], seq.implicit, seq.little, encoding)
        hit = _RAW_MEASURED.get(key)
        if hit is not None:
            return hit
    mv = _first_node(node, _MEASURED_VALUE)
    if mv is None:
        out: tuple[str | None, str | None] = (None, None)
    else:
        value = mv.get(_NUMERIC_VALUE)
        if isinstance(value, list | tuple | MultiValue):
            value = "\\".join(str(v) for v in value)
        code = _code_at(mv, _UNITS, encoding)
        out = (_decode(value, "ascii"), code.value if code else None)
    if key is not None:
        if len(_RAW_MEASURED) > 8192:
            _RAW_MEASURED.clear()
        _RAW_MEASURED[key] = out
    return out


def _decode_code(node: Node, encoding: str) -> Code | None:
    value = (_decode(node.get(_CODE_VALUE), "ascii") or _decode(node.get(_LONG_CODE_VALUE),
                                                                 encoding)
             or _decode(node.get(_URN_CODE_VALUE), "ascii"))
    if value is None:
        return None
    return Code(value, _decode(node.get(_SCHEME), "ascii") or "",
                _decode(node.get(_MEANING), encoding) or "")


def code_of(item: Dataset | None) -> Code | None:
    """The code in one item of a code sequence of a pydicom data set."""
    if item is None:
        return None
    return _node_code(node_of(item), charset_codec(item))


def charset_codec(ds: Dataset) -> str:
    """Python codec of the Specific Character Set (0008,0005); ASCII-compatible default."""
    elem = ds._dict.get(_CHARSET)
    if elem is None:
        return "latin_1"
    value = elem.value
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str):
        names = [v.strip(" \x00") for v in value.split("\\")]
    else:
        names = [str(v) for v in (value or [])]
    for name in reversed(names):  # the last one names the extension repertoire in use
        codec = python_encoding.get(name) or python_encoding.get(name.replace("ISO 2022 ", ""))
        if codec:
            return codec
    return "latin_1"


@dataclass(slots=True)
class Item:
    """One content item: relationship, value type, concept name, and its children.

    ``node`` holds its raw elements; values are decoded on demand by the accessors
    below, which return ``None`` for a missing or malformed value.
    """

    node: Node
    concept: Code | None
    path: str  # where in the tree, for warnings: e.g. "113819[2]/113829/113830"
    encoding: str = "latin_1"
    _children: list[Item] | None = field(default=None, repr=False)

    @property
    def value_type(self) -> str:
        """Value Type (0040,A040): CONTAINER, NUM, CODE, TEXT, ..."""
        return _decode(self.node.get(_VALUE_TYPE), "ascii") or ""

    @property
    def relationship(self) -> str:
        """Relationship Type (0040,A010) with its parent: CONTAINS, HAS PROPERTIES, ..."""
        return _decode(self.node.get(_RELATIONSHIP), "ascii") or ""

    @property
    def children(self) -> list[Item]:
        if self._children is None:
            self._children = _items(self.node, self.path, self.encoding)
        return self._children

    def is_(self, key: tuple[str, str]) -> bool:
        return self.concept is not None and self.concept.key == _key(key)

    # ---------------------------------------------------------------- children by concept
    def find(self, key: tuple[str, str]) -> Item | None:
        """The first child whose concept name is ``key``."""
        wanted = _key(key)
        for child in self.children:
            if child.concept is not None and child.concept.key == wanted:
                return child
        return None

    def find_all(self, key: tuple[str, str]) -> list[Item]:
        wanted = _key(key)
        return [c for c in self.children if c.concept is not None and c.concept.key == wanted]

    def descend(self, *keys: tuple[str, str]) -> Item | None:
        """Follow a path of concept names, first match at each level."""
        node: Item | None = self
        for key in keys:
            if node is None:
                return None
            node = node.find(key)
        return node

    def walk(self) -> Iterator[Item]:
        """Every descendant, depth first."""
        for child in self.children:
            yield child
            yield from child.walk()

    # ---------------------------------------------------------------- values
    def number(self) -> float | None:
        """A NUM item's numeric value (finite), else None (also for a malformed value)."""
        text = self.raw_number_text()
        if text is None:
            return None
        try:
            value = float(text.split("\\")[0])
        except ValueError:
            return None
        return value if math.isfinite(value) else None

    def raw_number_text(self) -> str | None:
        """The stored Numeric Value as written (to describe a malformed one)."""
        return _measured(self.node, self.encoding)[0]

    def unit(self) -> str | None:
        """A NUM item's UCUM unit code (Measurement Units Code Sequence)."""
        return _measured(self.node, self.encoding)[1]

    def code(self) -> Code | None:
        """A CODE item's value."""
        return _code_at(self.node, _CONCEPT_CODE, self.encoding)

    def text(self) -> str | None:
        """A TEXT, UIDREF or PNAME item's value."""
        for tag in (_TEXT_VALUE, _UID, _PNAME):
            value = _decode(self.node.get(tag), self.encoding)
            if value is not None:
                return value
        return None

    def datetime(self) -> dt.datetime | None:
        """A DATETIME (or DATE + TIME) item's value (aware if it carries an offset)."""
        value = _decode(self.node.get(_DATETIME), "ascii")
        if value is not None:
            return h.parse_datetime(value)
        return h.combine(_decode(self.node.get(_DATE), "ascii"),
                         _decode(self.node.get(_TIME), "ascii"))


@lru_cache(maxsize=256)
def _key(key: tuple[str, str]) -> tuple[str, str]:
    return Code(*key).key


def _items(node: Node, parent: str, encoding: str) -> list[Item]:
    seq = _sequence(node, _CONTENT_SEQ)
    if seq is None:
        return []
    out: list[Item] = []
    counts: dict[str, int] = {}
    for child in seq:
        if not isinstance(child, dict):
            continue
        concept = _code_at(child, _CONCEPT_NAME, encoding)
        label = concept.value if concept else "?"
        counts[label] = counts.get(label, 0) + 1
        path = f"{parent}/{label}" if parent else label
        if counts[label] > 1:
            path += f"[{counts[label]}]"
        out.append(Item(node=child, concept=concept, path=path, encoding=encoding))
    return out


def root(ds: Dataset) -> Item:
    """The document root as an :class:`Item` (its concept name is the document title).

    The parsed tree is kept on the data set (``ds._scanbench_sr_root``) so that asking
    twice does not parse twice; a ValueError names a damaged sequence encoding.
    """
    cached = ds.__dict__.get("_scanbench_sr_root")
    if isinstance(cached, Item):
        return cached
    encoding = charset_codec(ds)
    node: Node = {}
    for tag in (_CONCEPT_NAME, _CONTENT_SEQ):
        elem = ds._dict.get(BaseTag(tag))
        if elem is not None:
            node[tag] = _value_of(tag, elem)
    item = Item(node=node, concept=_code_at(node, _CONCEPT_NAME, encoding), path="",
                encoding=encoding)
    object.__setattr__(ds, "_scanbench_sr_root", item)
    return item


def template_id(ds: Dataset) -> str | None:
    """Template Identifier (0040,DB00) of the root's Content Template Sequence, if given."""
    item = h.item(ds, "ContentTemplateSequence")
    return h.text(item, "TemplateIdentifier") if item is not None else None


# --------------------------------------------------------------------------- direct read

#: Transfer Syntax UID values read directly (as written, with the trailing null that pads
#: a UI to even length, PS3.5 §9.1) → implicit VR?
_DIRECT_SYNTAXES = {b"1.2.840.10008.1.2\0": True, b"1.2.840.10008.1.2.1\0": False}
#: Explicit VRs read as pydicom reads them (its ENCODED_VR set).
_DIRECT_VRS = {vr: vr.decode("ascii") for vr in (
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"OB",
    b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM",
    b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV")}
#: pydicom's ``stop_before_pixels`` stops at these (Pixel Data, Float and Double Float
#: Pixel Data).
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00009, 0x7FE00008})
#: Files larger than this are left to pydicom, which reads only up to the pixel data.
_DIRECT_MAX_BYTES = 16 * 2**20


class _NotDirect(Exception):
    """An encoding the direct read leaves to pydicom."""


def _skip_items(data: bytes, pos: int, end: int, implicit: bool) -> int:
    """Where a sequence value of undefined length that starts at ``pos`` ends (after its
    Sequence Delimitation Item, PS3.5 §7.5.2), without building anything."""
    while pos + 8 <= end:
        group, elem, length = _LE_ITEM(data, pos)
        tag = group << 16 | elem
        pos += 8
        if tag == _SEQ_END:
            return pos
        if tag != _ITEM:
            raise _NotDirect
        if length == _UNDEFINED:
            pos = _skip_elements(data, pos, end, implicit)
        else:
            pos += length
    raise _NotDirect


def _skip_elements(data: bytes, pos: int, end: int, implicit: bool) -> int:
    """Where an item of undefined length that starts at ``pos`` ends (after its Item
    Delimitation Item)."""
    while pos + 8 <= end:
        if implicit:
            group, elem, length = _LE_ITEM(data, pos)
            vr = None
            pos += 8
        else:
            group, elem, vr, length = _LE_EXPLICIT(data, pos)
            if vr in _LONG_VRS:
                (length,) = _LE_UL(data, pos + 8)
                pos += 12
            else:
                pos += 8
        if group << 16 | elem == _ITEM_END:
            return pos
        if length == _UNDEFINED:
            if not (vr == b"SQ" or (vr is None and _is_sq(group << 16 | elem))):
                raise _NotDirect  # UN of undefined length, encapsulated data: pydicom's
            pos = _skip_items(data, pos, end, implicit)
        else:
            pos += length
    raise _NotDirect


def _direct_elements(data: bytes, pos: int, implicit: bool, meta: bool,
                     ) -> tuple[dict[BaseTag, RawDataElement], int]:
    """Raw elements from ``pos`` on (only group 0002 if ``meta``), up to the pixel data,
    as pydicom's ``dcmread(..., stop_before_pixels=True)`` reads them; a sequence of
    undefined length is kept as its encoded bytes, up to and with its delimiter."""
    end = len(data)
    out: dict[BaseTag, RawDataElement] = {}
    while pos < end:
        if pos + 8 > end:
            raise _NotDirect
        if meta and data[pos] | data[pos + 1] << 8 != 0x0002:
            return out, pos
        if implicit:
            group, elem, length = _LE_ITEM(data, pos)
            vr = None
            start = pos + 8
        else:
            group, elem, raw_vr, length = _LE_EXPLICIT(data, pos)
            vr = _DIRECT_VRS.get(raw_vr)
            if vr is None:
                raise _NotDirect
            start = pos + 8
            if raw_vr in _LONG_VRS:
                if pos + 12 > end:
                    raise _NotDirect
                (length,) = _LE_UL(data, pos + 8)
                start = pos + 12
        tagint = group << 16 | elem
        if tagint in _PIXEL_TAGS and not meta:
            return out, pos
        if group in (0x0000, 0xFFFE):
            raise _NotDirect
        if length == _UNDEFINED:
            if not (vr == "SQ" or (vr is None and _is_sq(tagint))):
                raise _NotDirect
            stop = _skip_items(data, start, end, implicit)
            vr = "SQ"
            value: bytes | None = data[start:stop]
        else:
            stop = start + length
            if stop > end:
                raise _NotDirect
            value = (data[start:stop] if length
                     else cast("bytes | None", empty_value_for_VR(vr, raw=True)))
        tag = BaseTag(tagint)
        out[tag] = RawDataElement(tag, vr, length, value, start, implicit, True)
        pos = stop
    return out, pos


def read_header(path: Path) -> Dataset | None:
    """The data set of a plain Part 10 file up to its pixel data, as
    ``pydicom.dcmread(path, stop_before_pixels=True)`` returns it, or None to leave the
    file to pydicom.

    Why: an SR's content tree is nested sequences of undefined length, which pydicom
    parses into data sets while reading, every item of it, before anything is looked at;
    here each is skipped by its delimiters and kept as its bytes, and the walker of this
    module parses only the items a template asks for (PS3.5 §7.5: items and delimiters).
    Read directly: Implicit and Explicit VR Little Endian (PS3.5 §A.1, §A.2) with no
    command set, no unknown VR and no value past the end of the file; everything else
    (other syntaxes, an undefined-length element that is not a sequence, damage) goes to
    pydicom unchanged, so odd files keep pydicom's own handling.
    """
    try:
        if path.stat().st_size > _DIRECT_MAX_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if len(data) < 140 or data[128:132] != b"DICM":
        return None
    try:
        meta_elements, pos = _direct_elements(data, 132, implicit=False, meta=True)
        syntax = meta_elements.get(BaseTag(0x00020010))
        implicit = (_DIRECT_SYNTAXES.get(syntax.value) if syntax is not None
                    and syntax.VR == "UI" and isinstance(syntax.value, bytes) else None)
        if not meta_elements or implicit is None or pos + 6 > len(data):
            return None
        vr0, vr1 = data[pos + 4], data[pos + 5]
        if (not (0x40 < vr0 < 0x5B and 0x40 < vr1 < 0x5B)) != implicit:
            return None  # the data disagree with the syntax: pydicom warns and switches
        elements, _ = _direct_elements(data, pos, implicit=implicit, meta=False)
    except (_NotDirect, struct.error):
        return None
    try:  # whatever pydicom objects to here, pydicom's own read reports in its words
        file_meta = FileMetaDataset(_handed_over(meta_elements))
        file_meta.set_original_encoding(False, True, default_encoding)
        dataset = Dataset(_handed_over(elements), parent_encoding=default_encoding)
        encoding: str | list[str] = default_encoding
        if _CHARSET in elements:
            encoding = convert_encodings(convert_raw_data_element(elements[_CHARSET]).value)
        dataset.set_original_encoding(implicit, True, encoding)
        ds = FileDataset(str(path), dataset, data[:128], file_meta, implicit, True)
        ds.set_original_encoding(implicit, True, dataset._character_set)
    except Exception:
        return None
    return ds


def _handed_over(
        elements: dict[BaseTag, RawDataElement],
) -> MutableMapping[BaseTag, DataElement | RawDataElement]:
    """``elements`` as the mapping a pydicom data set takes over; the same dict object."""
    return cast("MutableMapping[BaseTag, DataElement | RawDataElement]", elements)

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
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from scanbench.dicom import headers as h

# Element tags, used as integer keys for speed (Dataset.get by keyword converts each call).
_CONTENT_SEQ = BaseTag(0x0040A730)
_CONCEPT_NAME = BaseTag(0x0040A043)
_CONCEPT_CODE = BaseTag(0x0040A168)
_VALUE_TYPE = BaseTag(0x0040A040)
_RELATIONSHIP = BaseTag(0x0040A010)
_MEASURED_VALUE = BaseTag(0x0040A300)
_NUMERIC_VALUE = BaseTag(0x0040A30A)
_UNITS = BaseTag(0x004008EA)
_TEXT_VALUE = BaseTag(0x0040A160)
_UID = BaseTag(0x0040A124)
_DATETIME = BaseTag(0x0040A120)
_DATE = BaseTag(0x0040A121)
_TIME = BaseTag(0x0040A122)
_PNAME = BaseTag(0x0040A123)
_CODE_VALUE = BaseTag(0x00080100)
_SCHEME = BaseTag(0x00080102)
_MEANING = BaseTag(0x00080104)
_LONG_CODE_VALUE = BaseTag(0x00080119)
_URN_CODE_VALUE = BaseTag(0x00080120)

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


def _elem(ds: Dataset, tag: BaseTag) -> Any:
    try:
        elem = ds.get(tag)
        return None if elem is None else elem.value
    except Exception:  # a damaged value raises when pydicom converts it
        return None


def _str(ds: Dataset, tag: BaseTag) -> str | None:
    value = _elem(ds, tag)
    if value is None:
        return None
    try:
        text = str(value).strip().strip("\x00").strip()
    except Exception:
        return None
    return text or None


def code_of(item: Dataset | None) -> Code | None:
    """The code in one item of a code sequence (short, long or URN code value)."""
    if item is None:
        return None
    value = _str(item, _CODE_VALUE) or _str(item, _LONG_CODE_VALUE) or _str(item, _URN_CODE_VALUE)
    if value is None:
        return None
    return Code(value, _str(item, _SCHEME) or "", _str(item, _MEANING) or "")


def _first(ds: Dataset, tag: BaseTag) -> Dataset | None:
    seq = _elem(ds, tag)
    try:
        if seq and isinstance(seq[0], Dataset):
            return seq[0]
    except Exception:
        return None
    return None


@dataclass
class Item:
    """One content item: relationship, value type, concept name, and its children.

    ``ds`` is the pydicom item it wraps; values are read on demand by the
    accessors below, which return ``None`` for a missing or malformed value.
    """

    ds: Dataset
    concept: Code | None
    value_type: str
    relationship: str
    path: str  # where in the tree, for warnings: e.g. "113819[2]/113829/113830"
    _children: list[Item] | None = field(default=None, repr=False)

    @property
    def children(self) -> list[Item]:
        if self._children is None:
            self._children = items_of(self.ds, self.path)
        return self._children

    def is_(self, key: tuple[str, str]) -> bool:
        return self.concept is not None and self.concept.key == Code(*key).key

    # ---------------------------------------------------------------- children by concept
    def find(self, key: tuple[str, str]) -> Item | None:
        """The first child whose concept name is ``key``."""
        for child in self.children:
            if child.is_(key):
                return child
        return None

    def find_all(self, key: tuple[str, str]) -> list[Item]:
        return [c for c in self.children if c.is_(key)]

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
        """A NUM item's numeric value (finite), else None."""
        mv = _first(self.ds, _MEASURED_VALUE)
        if mv is None:
            return None
        raw = _elem(mv, _NUMERIC_VALUE)
        if raw is None:
            return None
        try:
            if isinstance(raw, list | tuple) or type(raw).__name__ == "MultiValue":
                raw = raw[0]
            value = float(raw)
        except (TypeError, ValueError, IndexError):
            return None
        return value if math.isfinite(value) else None

    def raw_number_text(self) -> str | None:
        """The stored Numeric Value as written (to describe a malformed one)."""
        mv = _first(self.ds, _MEASURED_VALUE)
        if mv is None:
            return None
        elem = mv.get(_NUMERIC_VALUE)
        if elem is None:
            return None
        value = getattr(elem, "value", None)
        if isinstance(value, bytes):
            return value.decode("ascii", "replace").strip()
        return None if value is None else str(value)

    def unit(self) -> str | None:
        """A NUM item's UCUM unit code (Measurement Units Code Sequence)."""
        mv = _first(self.ds, _MEASURED_VALUE)
        code = code_of(_first(mv, _UNITS)) if mv is not None else None
        return code.value if code else None

    def code(self) -> Code | None:
        """A CODE item's value."""
        return code_of(_first(self.ds, _CONCEPT_CODE))

    def text(self) -> str | None:
        """A TEXT, UIDREF or PNAME item's value."""
        for tag in (_TEXT_VALUE, _UID, _PNAME):
            value = _str(self.ds, tag)
            if value is not None:
                return value
        return None

    def datetime(self) -> dt.datetime | None:
        """A DATETIME (or DATE + TIME) item's value (aware if it carries an offset)."""
        value = _str(self.ds, _DATETIME)
        if value is not None:
            return h.parse_datetime(value)
        return h.combine(_str(self.ds, _DATE), _str(self.ds, _TIME))


def items_of(ds: Dataset, parent: str = "") -> list[Item]:
    """The content items directly under ``ds`` (a document root or a content item)."""
    seq = _elem(ds, _CONTENT_SEQ)
    if not seq:
        return []
    out: list[Item] = []
    counts: dict[str, int] = {}
    for child in seq:
        if not isinstance(child, Dataset):
            continue
        concept = code_of(_first(child, _CONCEPT_NAME))
        label = concept.value if concept else "?"
        counts[label] = counts.get(label, 0) + 1
        path = f"{parent}/{label}" if parent else label
        if counts[label] > 1:
            path += f"[{counts[label]}]"
        out.append(Item(ds=child, concept=concept, value_type=_str(child, _VALUE_TYPE) or "",
                        relationship=_str(child, _RELATIONSHIP) or "", path=path))
    return out


def root(ds: Dataset) -> Item:
    """The document root as an :class:`Item` (its concept name is the document title)."""
    return Item(ds=ds, concept=code_of(_first(ds, _CONCEPT_NAME)),
                value_type=_str(ds, _VALUE_TYPE) or "CONTAINER", relationship="", path="")


def template_id(ds: Dataset) -> str | None:
    """Template Identifier (0040,DB00) of the root's Content Template Sequence, if given."""
    item = h.item(ds, "ContentTemplateSequence")
    return h.text(item, "TemplateIdentifier") if item is not None else None

"""De-identification for anything that leaves the site: DICOM PS3.15 Annex E.

The Basic Application Level Confidentiality Profile (PS3.15 E.2) applied from its own
attribute table (Table E.1-1, edition 2026d, kept as data in ``ps3_15_e1_1.tsv``) with
the options a scanner-evaluation programme needs:

- **Retain Device Identity Option** (E.3.8, always on here): the device is the subject,
  not the patient. Manufacturer, Manufacturer's Model Name and Software Versions are not
  in the table (kept by the profile); Device Serial Number, Station Name, Detector and
  Gantry IDs, calibration dates are kept by the option; AE titles (option action C) are
  replaced by a keyed pseudonym, the same for the same AE title at the same site.
- **Retain Longitudinal Temporal Information** (E.3.6), as configured: ``dates="shift"``
  (Modified Dates Option: every date moved by a whole number of days, the same for all of
  one patient's studies, times of day kept, so uptake and decay intervals are exact),
  ``"keep"`` (Full Dates Option) or ``"remove"`` (the Basic Profile's own actions).
- Optionally the **Retain Patient Characteristics Option** (E.3.7: sex, age, size, weight,
  which size-specific dose estimates need) and **Retain Institution Identity** (E.3.11).
- **Clean Structured Content Option** (E.3.4) for SR content (dose reports): content
  items are kept and the table is applied inside them; then TEXT items are replaced by a
  dummy unless their concept names the device (Retain Device Identity), a technical
  property of the acquisition or, with Retain Institution Identity, the institution (an
  allow-list, :data:`_KEPT_TEXT_CONCEPTS`); PNAME items get a dummy name; DATE, TIME and
  DATETIME items follow the date option; UIDREF items are remapped like every UID. NUM
  items (the dose values) are kept as they are. Code Meanings, free text wherever they
  appear, are replaced by the meaning the DICOM and SNOMED dictionaries give the code
  (PS3.16, via pydicom's concept dictionary), or kept only when the text is a meaning
  those dictionaries know, else replaced by the code value itself.

Beyond the table (which lists attributes by tag), rules by value representation apply
everywhere in the data set, nested sequences included: every UID (VR UI) is remapped
except the standard's own (registered under the DICOM root 1.2.840.10008: SOP classes,
transfer syntaxes, context groups, ...) and attributes that name a class, a transfer
syntax or a coding scheme rather than an instance (so the Radiopharmaceutical
Administration Event UID (0008,3012), not in the table, is remapped, and the Device UID
too, consistently, although Retain Device Identity would allow keeping it: the device
stays identified by manufacturer, model, serial number and station name); every person
name (VR PN) gets a dummy; every date (DA, DT) follows the date option. A date that
cannot be shifted (not a date, or moved before the year 1) gets the dummy date with a
warning, never an error.

An instance whose pixels carry burned-in annotation (Burned In Annotation (0028,0301)
YES) is refused: the Clean Pixel Data Option (E.3.1) is not offered, and the Basic
Profile alone does not clean pixels.

Patient ID becomes a consistent pseudonym per site: HMAC-SHA256 keyed with the site
secret (``<SCANBENCH_HOME>/secrets/deid.key``, made on first use, mode 0600), so the same
patient exported twice, in two batches, gets the same ID and date offset, and nobody
without the key can reverse it. UIDs are remapped the same way, under the 2.25 root
(PS3.5 B.2), so references between the exported instances stay intact.
Private attributes are removed (Retain Safe Private is not offered), as are curves,
overlays and the icon image.

Compound actions (X/Z, X/D, Z/D, X/Z/D) depend on whether the IOD makes the attribute
type 1, 2 or 3; without the IOD tables this module takes the least-removing choice for
values (D for anything with D, else Z), which satisfies every IOD and removes the
identifying value just as well, and removes sequences (X) whenever X is allowed, since
an emptied sequence is invalid where it is type 3. X/Z/U* sequences are kept with their
UIDs remapped.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal, cast

from pydicom import __version__ as pydicom_version
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

from scanbench.errors import InputError

EDITION = "2026d"
DateMode = Literal["shift", "keep", "remove"]

# CID 7050 "De-identification Method", coding scheme DCM (PS3.16).
_CODES = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "structured": ("113104", "Clean Structured Content Option"),
    "full_dates": ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    "modified_dates": ("113107",
                       "Retain Longitudinal Temporal Information Modified Dates Option"),
    "patient": ("113108", "Retain Patient Characteristics Option"),
    "device": ("113109", "Retain Device Identity Option"),
    "institution": ("113112", "Retain Institution Identity Option"),
}

_DUMMY_TEXT = "ANONYMIZED"
_DUMMY = {"PN": "ANONYMIZED", "DA": "19000101", "DT": "19000101000000", "TM": "000000",
          "AS": "000Y", "DS": "0", "IS": "0", "AE": "ANONYMIZED", "CS": "ANONYMIZED",
          "UR": "urn:anonymized"}
# Verifying Observer Sequence: its items hold Verifying Observer Name (D), Verifying
# Organization (D), Verification DateTime (D), Verifying Observer Identification Code
# Sequence (Z), all handled by the table.
_WALKABLE_SEQUENCES = {0x0040A073}
# Sequences the IOD makes type 2 for a modality (PS3.3 C.17.1 SR Document Series:
# Referenced Performed Procedure Step Sequence): emptied, not removed.
_TYPE2_SEQUENCES = {0x00081111: "SR"}
_BINARY_VRS = {"OB", "OW", "OD", "OF", "OL", "OV", "UN"}
_NUMBER_VRS = {"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "AT"}

_DICOM_ROOT = "1.2.840.10008."  # UIDs the standard itself registers (PS3.6 Annex A)
# UI attributes that name a kind of thing (a SOP class, a transfer syntax, a coding
# scheme, a mapping resource, a class of device), not an instance: never remapped.
_CLASS_UID_SUFFIXES = ("ClassUID", "ClassUIDInFile", "TransferSyntaxUID",
                       "TransferSyntaxUIDInFile")
_CLASS_UID_KEYWORDS = frozenset({"CodingSchemeUID", "ContextUID", "MappingResourceUID",
                                 "SOPClassesInStudy"})
_TEXT_VALUE = 0x0040A160
_CODE_MEANING = 0x00080104
_BURNED_IN = 0x00280301
# SR TEXT content items kept by Clean Structured Content (E.3.4), by concept name
# (PS3.16 codes, scheme DCM): what the item says is not about the patient.
_DEVICE_TEXT = frozenset({
    "121013", "121014", "121015", "121016",  # Device Observer Name/Manufacturer/Model/Serial
    "113878", "113879", "113880",  # Device Manufacturer, Model Name, Serial Number
    "113832",  # Identification of the X-Ray Source (the tube)
})
_TECHNICAL_TEXT = frozenset({"113842"})  # X-Ray Modulation Type
_INSTITUTION_TEXT = frozenset({"113873", "121017"})  # Organization Name; Device Observer
                                                     # Physical Location During Observation


@dataclass(frozen=True)
class Rule:
    """One row of Table E.1-1: the Basic Profile action and the option letters."""

    tag: int
    basic: str
    options: str


@cache
def profile_table() -> dict[int, Rule]:
    """PS3.15 Table E.1-1 as {tag: Rule} (repeating groups and private tags by rule)."""
    text = resources.files("scanbench.dicom").joinpath("ps3_15_e1_1.tsv").read_text("utf-8")
    table: dict[int, Rule] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        tag_text, basic, options = [*line.split("\t"), ""][:3]
        group, element = tag_text.split(",")
        tag = int(group, 16) << 16 | int(element, 16)
        table[tag] = Rule(tag, basic, options)
    return table


def _repeating_group_rule(tag: BaseTag) -> Rule | None:
    """Curve Data (50xx,xxxx) and Overlay Data/Comments (60xx,3000/4000): X. The whole
    overlay group goes, since an overlay without its data is not a valid overlay."""
    if 0x5000 <= tag.group <= 0x50FF and tag.group % 2 == 0:
        return Rule(int(tag), "X", "g")
    if 0x6000 <= tag.group <= 0x60FF and tag.group % 2 == 0:
        return Rule(int(tag), "X", "g")
    return None


def site_secret(home: Path) -> bytes:
    """The site's de-identification key, made on first use (32 random bytes, mode 0600).

    Keep it, and back it up with the database: with a new key the same patient gets a
    new pseudonym and a new date offset."""
    path = home / "secrets" / "deid.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise InputError(f"cannot read the de-identification key: {exc.strerror}", path) from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        key = secrets.token_bytes(32)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
            fh.flush()
            os.fsync(fh.fileno())
        try:  # another process may have made it meanwhile: theirs wins, never two keys
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot create the de-identification key: {exc.strerror}",
                         path) from None


@dataclass(frozen=True)
class DeidOptions:
    """Which PS3.15 options apply (device identity is always retained)."""

    dates: DateMode = "shift"
    retain_patient_characteristics: bool = False
    retain_institution_identity: bool = False
    max_shift_days: int = 3650


class Deidentifier:
    """Applies the profile to datasets, consistently for one site (one secret)."""

    def __init__(self, secret: bytes, options: DeidOptions | None = None) -> None:
        if len(secret) < 16:
            raise InputError("the de-identification key is shorter than 16 bytes")
        self._secret = secret
        self.options = options or DeidOptions()
        self._table = profile_table()
        self._warnings: list[str] = []

    # -- pseudonyms ---------------------------------------------------------------------
    def _mac(self, kind: str, value: str) -> bytes:
        return hmac.new(self._secret, f"{kind}\x00{value}".encode(), hashlib.sha256).digest()

    def patient_pseudonym(self, patient_id: str, issuer: str = "") -> str:
        """A stable pseudonymous Patient ID for this site (16 hex digits)."""
        return "SB" + self._mac("patient", f"{issuer}\x00{patient_id}").hex()[:16].upper()

    def uid(self, uid: str) -> str:
        """The replacement for ``uid``: 2.25.<128-bit integer>, the same every time."""
        return "2.25." + str(int.from_bytes(self._mac("uid", uid.strip())[:16], "big"))

    def date_offset_days(self, patient_key: str) -> int:
        """Whole days (negative, never zero) every date of this patient moves by."""
        n = int.from_bytes(self._mac("dates", patient_key)[:8], "big")
        return -(1 + n % self.options.max_shift_days)

    def _ae(self, value: str) -> str:
        return "AE" + self._mac("ae", value.strip()).hex()[:14].upper()

    # -- the profile --------------------------------------------------------------------
    def apply(self, ds: Dataset, warnings: list[str] | None = None) -> Dataset:
        """De-identify ``ds`` in place and return it (file meta updated to match).

        What could not be done as the option says (a date that cannot be shifted) is
        appended to ``warnings``; an instance that cannot be de-identified at all (burned-in
        annotation) raises :class:`InputError` and is left unchanged."""
        burned_in = ds.get(_BURNED_IN)
        if burned_in is not None and str(burned_in.value or "").strip().upper() == "YES":
            raise InputError("Burned In Annotation is YES: identifying text may be in the "
                             "pixels, and the Clean Pixel Data Option (DICOM PS3.15 E.3.1) "
                             "is not offered; not exported")
        self._warnings = warnings if warnings is not None else []
        patient_id = str(ds.get("PatientID", "") or "")
        issuer = str(ds.get("IssuerOfPatientID", "") or "")
        patient_key = f"{issuer}\x00{patient_id}"
        pseudonym = self.patient_pseudonym(patient_id, issuer)
        shift = self.date_offset_days(patient_key)
        ds.remove_private_tags()  # PS3.15 E.1-1 "Private Attributes": X (walks sequences)
        self._walk(ds, shift)  # Table E.1-1, by tag
        ds.walk(lambda item, elem: self._everywhere(item, elem, shift))  # by VR, everywhere
        ds.PatientID = pseudonym
        ds.PatientName = pseudonym
        self._mark(ds)
        meta = getattr(ds, "file_meta", None)
        if isinstance(meta, FileMetaDataset):
            if "SOPInstanceUID" in ds:
                meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            # PS3.10 7.1: the implementation that writes the file, that is this one
            meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
            meta.ImplementationVersionName = f"PYDICOM {pydicom_version}"[:16]
            for kw in ("SourceApplicationEntityTitle", "SendingApplicationEntityTitle",
                       "ReceivingApplicationEntityTitle", "PrivateInformationCreatorUID",
                       "PrivateInformation"):
                if kw in meta:
                    delattr(meta, kw)
        return ds

    def _walk(self, ds: Dataset, shift: int) -> None:
        for tag in list(ds.keys()):
            tag = Tag(tag)
            if tag.element == 0 or tag.group == 0x0002:  # group lengths; file meta separately
                continue
            rule = self._table.get(int(tag)) or _repeating_group_rule(tag)
            elem = ds[tag]
            if rule is None:
                if elem.VR == "SQ":
                    for item in elem.value:
                        self._walk(item, shift)
                continue
            action = self._action(rule)
            self._do(ds, elem, action, shift)

    def _action(self, rule: Rule) -> str:
        o = self.options
        opts = rule.options
        if "v" in opts:
            return "K"
        if "V" in opts:
            return "C-AE"
        if "l" in opts and o.dates == "keep":
            return "K"
        if "l" in opts and o.dates == "shift":
            return "C-DATE"
        if "p" in opts and o.retain_patient_characteristics:
            return "K"
        if "i" in opts and o.retain_institution_identity:
            return "K"
        if "t" in opts:
            return "C-CONTENT"
        basic = rule.basic
        if basic == "X/Z/U*":
            return "U*"
        if "D" in basic.split("/"):
            return "D"
        if "Z" in basic.split("/"):
            return "Z"
        return basic  # X, D, Z, U

    def _do(self, ds: Dataset, elem: DataElement, action: str, shift: int) -> None:
        vr = elem.VR
        if vr == "SQ" and action in ("Z", "D") and "X" in self._rule_basic(elem):
            # An emptied sequence is invalid where it is type 3 (most IODs): remove it,
            # except where an IOD we handle makes it type 2 (then empty it).
            type2 = _TYPE2_SEQUENCES.get(int(elem.tag))
            action = "Z" if type2 is not None and ds.get("Modality") == type2 else "X"
        if action == "K":
            if vr == "SQ":
                for item in elem.value:
                    self._walk(item, shift)
            return
        if action == "X":
            del ds[elem.tag]
            return
        if action in ("C-CONTENT", "U*"):
            if vr == "SQ":
                for item in elem.value:
                    self._walk(item, shift)
            else:
                del ds[elem.tag]
            return
        if action == "U":
            if vr == "UI":
                return  # remapped with every other UID by _everywhere (exactly once)
            if vr == "SQ":
                for item in elem.value:
                    self._walk(item, shift)
            else:
                del ds[elem.tag]
            return
        if action == "C-AE":
            if vr == "AE" and elem.value:
                names = [self._ae(str(v)) for v in _values(elem.value)]
                elem.value = names if len(names) > 1 else names[0]
            elif vr == "SQ":
                for item in elem.value:
                    self._walk(item, shift)
            else:
                del ds[elem.tag]
            return
        if action == "C-DATE":
            self._shift(ds, elem, shift)
            return
        if action == "Z":
            elem.value = Sequence([]) if vr == "SQ" else (b"" if vr in _BINARY_VRS else
                                                        None if vr in _NUMBER_VRS else "")
            return
        if action == "D":
            self._dummy(ds, elem, shift)
            return
        raise AssertionError(f"unknown action {action}")  # pragma: no cover

    def _rule_basic(self, elem: DataElement) -> list[str]:
        rule = self._table.get(int(elem.tag))
        return rule.basic.split("/") if rule else []

    def _dummy(self, ds: Dataset, elem: DataElement, shift: int) -> None:
        vr = elem.VR
        if vr == "SQ":
            if int(elem.tag) in _WALKABLE_SEQUENCES:  # every attribute of its items is in
                for item in elem.value:                # the table: clean them in place
                    self._walk(item, shift)
            else:  # items not covered by the table (codes naming a person, ...): emptied
                elem.value = Sequence([])
            return
        if vr == "UI":
            return  # remapped with every other UID by _everywhere (exactly once)
        if vr in _BINARY_VRS:
            elem.value = b"\x00\x00"
        elif vr in _NUMBER_VRS:
            elem.value = 0
        else:
            elem.value = _DUMMY.get(vr, _DUMMY_TEXT)

    def _remap_uids(self, value: object) -> object:
        out = []
        for v in _values(value):
            text = (v.decode("ascii", "replace") if isinstance(v, bytes) else str(v)).strip()
            out.append(text if not text or text.startswith(_DICOM_ROOT) else self.uid(text))
        return out if len(out) > 1 else out[0]

    def _everywhere(self, ds: Dataset, elem: DataElement, shift: int) -> None:
        """The rules by value representation, on every element at every depth (after the
        table): UIDs remapped, person names replaced, dates per the option, SR TEXT items
        and Code Meanings cleaned (Clean Structured Content, PS3.15 E.3.4)."""
        tag = int(elem.tag)
        vr = elem.VR
        if vr == "SQ" or elem.value in (None, "", b""):
            return
        if vr == "UI":
            if not _names_a_class(tag):
                elem.value = self._remap_uids(elem.value)
            return
        if tag == _TEXT_VALUE:
            if not self._text_kept(ds):
                elem.value = _DUMMY_TEXT
            return
        if tag == _CODE_MEANING:
            elem.value = clean_code_meaning(ds)
            return
        if tag in self._table:
            return  # done by the table
        if vr == "PN":
            elem.value = _DUMMY["PN"]
        elif vr in ("DA", "DT"):
            if self.options.dates == "shift":
                self._shift(ds, elem, shift)
            elif self.options.dates == "remove":
                elem.value = _DUMMY[vr]

    def _text_kept(self, item: Dataset) -> bool:
        """Whether an SR TEXT item's concept is on the allow-list (DCM codes only)."""
        names = item.get("ConceptNameCodeSequence")
        if not names or len(names) != 1:
            return False
        name = names[0]
        if str(name.get("CodingSchemeDesignator", "")) != "DCM":
            return False
        code = str(name.get("CodeValue", ""))
        return (code in _DEVICE_TEXT or code in _TECHNICAL_TEXT
                or (code in _INSTITUTION_TEXT and self.options.retain_institution_identity))

    def _shift(self, ds: Dataset, elem: DataElement, shift: int) -> None:
        """Modified Dates: DA and the date part of DT move by ``shift`` days; TM, time
        zones and non-date VRs (Timezone Offset From UTC, Frame Origin Timestamp) stay."""
        vr = elem.VR
        if vr == "SQ":
            for item in elem.value:
                self._walk(item, shift)
            return
        if vr not in ("DA", "DT") or elem.value in (None, ""):
            return
        out = []
        for v in _values(elem.value):
            text = str(v).strip()
            moved = _shift_date_text(text, shift)
            if moved is None:
                # not a date, or it would move before 0001-01-01: the dummy date, which
                # says nothing about the patient (PS3.15 E.1-1 action D), never a crash
                moved = _DUMMY[vr]
                self._warnings.append(
                    f"{_name(elem)}: a value cannot be shifted by {shift} days (not a "
                    f"date, or out of range); replaced by the dummy date {moved}")
            out.append(moved)
        elem.value = out if len(out) > 1 else out[0]

    def method_summary(self) -> str:
        """What is applied, in words: the profile and each option declared in the files."""
        return "DICOM PS3.15 " + ", ".join(_CODES[k][1] for k in self._method_keys())

    def _method_keys(self) -> list[str]:
        o = self.options
        keys = ["basic", "device", "structured"]
        if o.dates == "shift":
            keys.append("modified_dates")
        elif o.dates == "keep":
            keys.append("full_dates")
        if o.retain_patient_characteristics:
            keys.append("patient")
        if o.retain_institution_identity:
            keys.append("institution")
        return keys

    def _mark(self, ds: Dataset) -> None:
        """PS3.15 E.1.1: Patient Identity Removed, the method, its codes (CID 7050), and
        Longitudinal Temporal Information Modified (PS3.3 C.12.1)."""
        o = self.options
        keys = self._method_keys()
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = f"scanbench: DICOM PS3.15 {EDITION} Basic Profile"[:64]
        items = []
        for key in keys:
            code, meaning = _CODES[key]
            item = Dataset()
            item.CodeValue = code
            item.CodingSchemeDesignator = "DCM"
            item.CodeMeaning = meaning
            items.append(item)
        ds.DeidentificationMethodCodeSequence = Sequence(items)
        ds.LongitudinalTemporalInformationModified = {
            "shift": "MODIFIED", "keep": "UNMODIFIED", "remove": "REMOVED"}[o.dates]


def _values(value: object) -> Iterable[object]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def _shift_date_text(text: str, days: int) -> str | None:
    """Shift a DA (YYYYMMDD) or the date part of a DT; ``None`` if it is not a date or
    the shifted date is outside 0001-01-01 .. 9999-12-31."""
    if len(text) < 8 or not text[:8].isdigit():
        return None
    try:
        moved = date(int(text[:4]), int(text[4:6]), int(text[6:8])) + timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    return f"{moved.year:04d}{moved.month:02d}{moved.day:02d}" + text[8:]


def _name(elem: DataElement) -> str:
    return f"{elem.keyword or 'attribute'} {elem.tag}"


@cache
def _names_a_class(tag: int) -> bool:
    """A UI attribute whose value names a class, syntax or scheme, not an instance."""
    keyword = keyword_for_tag(tag)
    return keyword in _CLASS_UID_KEYWORDS or keyword.endswith(_CLASS_UID_SUFFIXES)


@cache
def _standard_meanings() -> tuple[dict[tuple[str, str], str], frozenset[str]]:
    """{(scheme, code): meaning} from pydicom's copy of the PS3.16 concept tables (DCM,
    SCT, LN, UCUM, ...), and a vocabulary: every word written in lower case somewhere in
    those meanings, and every word of the DICOM data dictionary's attribute names (PS3.6).
    Words only ever written capitalised (eponyms: "Miller", "Hodgkin") are left out, so
    that most surnames are not in it."""
    from pydicom.datadict import DicomDictionary
    from pydicom.sr._concepts_dict import concepts

    by_code: dict[tuple[str, str], str] = {}
    words: set[str] = set()
    table = cast(dict[str, dict[str, dict[str, tuple[str, list[int]]]]], concepts)
    for scheme, entries in table.items():
        for codes in entries.values():
            for code, (meaning, _cids) in codes.items():
                by_code[(scheme, code)] = meaning
                words.update(w for w in _WORD.findall(meaning) if w.islower())
    for entry in DicomDictionary.values():
        words.update(w.casefold() for w in _WORD.findall(entry[2]))
    return by_code, frozenset(words)


_WORD = re.compile(r"[^\W\d_]+")
_NUMBER = re.compile(r"\d+")


def _plain_words(text: str, vocabulary: frozenset[str]) -> bool:
    """Every word of ``text`` is in the vocabulary and no number has more than 3 digits
    (a record number or a date is longer)."""
    return bool(text) and all(w.casefold() in vocabulary for w in _WORD.findall(text)) and all(
        len(n) <= 3 for n in _NUMBER.findall(text))


def clean_code_meaning(item: Dataset) -> str:
    """The Code Meaning a de-identified code item gets (Clean Structured Content, PS3.15
    E.3.4): a meaning is free text and may name a person. For UCUM the unit symbol itself
    (the code value); the item's own meaning when each of its words is in the vocabulary of
    the standard (:func:`_standard_meanings`) and it holds no long number; else the
    standard's meaning of a known code (legacy SNOMED-RT codes by their SNOMED CT id); else
    the code value. Dictionary-based: a surname that is also a common word ("White") is not
    recognised as a name."""
    from scanbench.clinical.sr import EQUIVALENT

    by_code, vocabulary = _standard_meanings()
    scheme = str(item.get("CodingSchemeDesignator", "") or "").strip()
    code = str(item.get("CodeValue", "") or item.get("LongCodeValue", "")
               or item.get("URNCodeValue", "") or "").strip()
    if scheme == "UCUM" and code:
        return code[:64]
    own = str(item.get("CodeMeaning", "") or "").strip()
    if _plain_words(own, vocabulary):
        return own
    if scheme in ("SRT", "SNM3") and code in EQUIVALENT:
        scheme, code = "SCT", EQUIVALENT[code]
    known = by_code.get((scheme, code))
    if known:
        return known[:64]
    return code[:64] or _DUMMY_TEXT

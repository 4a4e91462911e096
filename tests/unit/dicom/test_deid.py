"""De-identification (PS3.15 Annex E Basic Profile, Retain Device Identity) on real files:
the dose reports and PET images in shared/data/dose/rdsr, with identifying values planted
in every attribute of Table E.1-1 that an image can carry, at the top level and in
sequences, so that "no tag of the Basic Profile survives" is tested on every row."""

from __future__ import annotations

import copy
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from scanbench.dicom.deid import (
    Deidentifier,
    DeidOptions,
    clean_code_meaning,
    profile_table,
    site_secret,
)
from scanbench.errors import InputError

SECRET = b"0123456789abcdef0123456789abcdef"
DEVICE_KEYWORDS = ("Manufacturer", "ManufacturerModelName", "DeviceSerialNumber",
                   "StationName", "SoftwareVersions")


def _dose_files(shared_data: Path) -> list[Path]:
    """The real files that can be de-identified (not the dose screen capture, whose pixels
    carry burned-in text: refused, see test_burned_in_annotation_is_refused)."""
    return [p for p in sorted((shared_data / "dose" / "rdsr").glob("*.dcm"))
            if pydicom.dcmread(p, stop_before_pixels=True).get("BurnedInAnnotation") != "YES"]


def _walk(ds: Dataset, path: str = "") -> Iterator[tuple[str, int, object, str]]:
    for elem in ds:
        yield path, int(elem.tag), elem.value, elem.VR
        if elem.VR == "SQ":
            for n, item in enumerate(elem.value):
                yield from _walk(item, f"{path}{elem.tag}[{n}]")


def _planted_value(vr: str, tag: int) -> object | None:
    """A distinctive identifying value for ``vr``, or None for VRs not worth planting."""
    text = f"ID{tag:08X}"
    return {"PN": f"Doe^{text}", "LO": f"Secret {text}", "SH": text[:16], "LT": f"note {text}",
            "ST": f"note {text}", "UT": f"note {text}", "CS": text[:16], "AE": text[:16],
            "DA": "20240229", "DT": "20240229101500", "TM": "101500", "UI": f"1.2.3.{tag}",
            "AS": "042Y", "DS": "73.5", "IS": "7", "UR": f"http://x/{text}",
            "UC": text}.get(vr)


def _plant(ds: Dataset) -> None:
    """Put a value in every Table E.1-1 attribute the dictionary knows with a simple VR,
    at the top level and inside a nested sequence item (Referenced Study Sequence)."""
    inner = Dataset()
    for tag in profile_table():
        if Tag(tag).group in (0x0000, 0x0002) or tag in (0xFFFAFFFA, 0xFFFCFFFC):
            continue
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            continue
        value = _planted_value(vr.split(" or ")[0], tag)
        if value is None:
            continue
        ds.add_new(tag, vr.split(" or ")[0], value)
        inner.add_new(tag, vr.split(" or ")[0], value)
    ds.add_new(0x00081110, "SQ", Sequence([inner]))  # X/Z: emptied, so also put it deep:
    ds.add_new(0x00081140, "SQ", Sequence([copy.deepcopy(inner)]))  # X/Z/U*: kept, cleaned
    ds.add_new(0x00091010, "LO", "private secret")  # private creator-less element
    ds.add_new(0x60003000, "OW", b"\x01\x02")  # overlay data


@pytest.fixture(scope="module")
def originals(shared_data: Path) -> list[Dataset]:
    out: list[Dataset] = []
    for p in _dose_files(shared_data):
        ds = pydicom.dcmread(p)
        ds.PatientID = ds.get("PatientID") or "PAT-42"
        _plant(ds)
        out.append(ds)
    return out


def _deid(ds: Dataset, options: DeidOptions | None = None, tmp: Path | None = None) -> Dataset:
    out = Deidentifier(SECRET, options).apply(copy.deepcopy(ds))
    if tmp is None:
        return out
    path = tmp / "out.dcm"
    out.save_as(path, enforce_file_format=True)  # what leaves the site is the file
    return pydicom.dcmread(path)


def _retained(tag: int, vr: str, options: DeidOptions) -> bool:
    rule = profile_table().get(tag)
    if rule is None:
        return True
    if "v" in rule.options:
        return True  # Retain Device Identity Option: K
    if "l" in rule.options and options.dates == "shift" and vr not in ("DA", "DT"):
        return True  # Modified Dates: dates move by whole days, times of day stay
    return ("l" in rule.options and options.dates == "keep") or (
        "p" in rule.options and options.retain_patient_characteristics)


@pytest.mark.parametrize("dates", ["shift", "keep", "remove"])
def test_no_basic_profile_value_survives(originals: list[Dataset], tmp_path: Path,
                                         dates: str) -> None:
    options = DeidOptions(dates=dates)  # type: ignore[arg-type]
    checked = 0
    # every real file with the default (shifted dates); three suffice for the other modes,
    # which change only the date rows
    for ds in originals if dates == "shift" else originals[:3]:
        before = {(p, t): v for p, t, v, _ in _walk(ds)}
        after = _deid(ds, options, tmp_path)
        for path, tag, value, vr in _walk(after):
            assert not Tag(tag).is_private, f"private {Tag(tag)} survived at {path}"
            assert not 0x6000 <= Tag(tag).group <= 0x60FF, "overlay survived"
            if tag not in profile_table() or _retained(tag, vr, options) or vr == "SQ":
                continue
            old = before.get((path, tag))
            if old in (None, "", b"") or value in (None, "", b""):
                continue
            if tag in (0x00100010, 0x00100020):
                continue  # Patient's Name / ID: replaced by the pseudonym, checked below
            checked += 1
            assert str(value) != str(old), f"{Tag(tag)} kept its value {old!r} at {path!r}"
        for kw in ("PatientID", "PatientName"):
            assert str(after.get(kw)) != str(ds.get(kw))
        assert after.PatientIdentityRemoved == "YES"
    assert checked > 500


def test_removed_attributes_are_gone(originals: list[Dataset], tmp_path: Path) -> None:
    """X in the Basic Profile (and no option keeping it): absent from the file."""
    after = _deid(originals[0], tmp=tmp_path)
    x_tags = [t for t, r in profile_table().items() if r.basic == "X" and not r.options
              and t in originals[0]]
    assert len(x_tags) > 100
    present = [str(Tag(t)) for t in x_tags if t in after]
    assert not present


def test_device_identity_survives(originals: list[Dataset], tmp_path: Path) -> None:
    kept = 0
    for ds in originals:
        after = _deid(ds, tmp=tmp_path)
        for kw in DEVICE_KEYWORDS:
            if kw in ds and ds[kw].value not in (None, ""):
                assert after[kw].value == ds[kw].value, kw
                kept += 1
        assert {i.CodeValue for i in after.DeidentificationMethodCodeSequence} >= {
            "113100", "113109"}
    assert kept >= 40  # five device attributes in most of the 15 real files


def test_pseudonyms_and_uids_are_consistent(originals: list[Dataset]) -> None:
    a, b = originals[0], originals[1]
    b = copy.deepcopy(b)
    b.PatientID = a.PatientID
    b.StudyInstanceUID = a.StudyInstanceUID
    da, db = _deid(a), _deid(b)
    assert da.PatientID == db.PatientID  # same patient, same site: same pseudonym
    assert da.StudyInstanceUID == db.StudyInstanceUID != a.StudyInstanceUID
    assert da.StudyInstanceUID.startswith("2.25.")
    assert da.SeriesInstanceUID != a.SeriesInstanceUID
    assert da.file_meta.MediaStorageSOPInstanceUID == da.SOPInstanceUID
    other_site = Deidentifier(b"another site's secret key 32 by").apply(copy.deepcopy(a))
    assert other_site.PatientID != da.PatientID
    assert other_site.StudyInstanceUID != da.StudyInstanceUID


def test_references_inside_sr_follow_the_remapped_uids(shared_data: Path) -> None:
    """An RDSR references its images; after de-identification every Referenced SOP
    Instance UID maps with the same function as the instances' own UIDs."""
    ds = pydicom.dcmread(shared_data / "dose/rdsr/CT-RDSR-Siemens-Multi-2.dcm")
    refs = [v for _, t, v, _ in _walk(ds) if t == 0x00081155]
    out = _deid(ds)
    refs_after = [v for _, t, v, _ in _walk(out) if t == 0x00081155]
    deid = Deidentifier(SECRET)
    assert refs_after == [deid.uid(str(r)) for r in refs]
    # the dose content itself (CTDIvol, DLP numbers) is untouched
    nums = [v for _, t, v, _ in _walk(ds) if t == 0x0040A30A]
    assert nums and nums == [v for _, t, v, _ in _walk(out) if t == 0x0040A30A]


def test_shifted_dates_keep_intervals(shared_data: Path) -> None:
    """Modified Dates: whole days, the same for one patient, so the uptake time (from
    injection to acquisition) that PET quantification needs is unchanged."""
    ds = pydicom.dcmread(shared_data / "dose/rdsr/NM-PetIm-Siemens.dcm")
    rp = ds.RadiopharmaceuticalInformationSequence[0]

    def uptake(d: Dataset) -> float:
        inj = d.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartTime
        acq = datetime.strptime(f"{d.SeriesDate}{d.SeriesTime[:6]}", "%Y%m%d%H%M%S")
        inj_t = datetime.strptime(f"{d.SeriesDate}{inj[:6]}", "%Y%m%d%H%M%S")
        return (acq - inj_t).total_seconds()

    out = _deid(ds)
    assert out.SeriesDate != ds.SeriesDate and out.StudyDate != ds.StudyDate
    shift = (datetime.strptime(out.StudyDate, "%Y%m%d")
             - datetime.strptime(ds.StudyDate, "%Y%m%d")).days
    assert shift < 0
    assert (datetime.strptime(out.SeriesDate, "%Y%m%d")
            - datetime.strptime(ds.SeriesDate, "%Y%m%d")).days == shift
    assert uptake(out) == uptake(ds)
    assert rp.RadiopharmaceuticalStartTime  # times of day are kept
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    kept = _deid(ds, DeidOptions(dates="keep"))
    assert kept.StudyDate == ds.StudyDate
    removed = _deid(ds, DeidOptions(dates="remove"))
    assert removed.get("StudyDate", "") in ("", None)


def test_site_secret_is_made_once_and_private(tmp_path: Path) -> None:
    key = site_secret(tmp_path)
    assert len(key) == 32 and site_secret(tmp_path) == key
    mode = stat.S_IMODE(os.stat(tmp_path / "secrets" / "deid.key").st_mode)
    assert mode == 0o600


def test_table_has_the_whole_profile() -> None:
    """Table E.1-1 of PS3.15 2026d lists 653 attributes besides the private and
    repeating-group rows; spot checks of actions straight from the standard."""
    table = profile_table()
    assert len(table) == 653
    assert table[0x00100010].basic == "Z"  # Patient's Name
    assert table[0x00100020].basic == "Z/D"  # Patient ID
    assert table[0x00181000].basic == "X/Z/D" and "v" in table[0x00181000].options
    assert table[0x00081010].basic == "X/Z/D" and "v" in table[0x00081010].options
    assert table[0x0020000D].basic == "U"
    assert 0x00080070 not in table and 0x00081090 not in table and 0x00181020 not in table


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools not installed")
def test_deidentified_files_are_as_valid_as_the_originals(shared_data: Path,
                                                          tmp_path: Path) -> None:
    """dicom3tools' dciodvfy finds no error in a de-identified file that it did not find in
    the original (dummies fit their VRs; type 2 sequences emptied, type 3 ones removed)."""

    def errors(path: Path) -> set[str]:
        r = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True,
                           timeout=60, check=False)
        return {line.split(" - ", 1)[-1].strip() for line in (r.stdout + r.stderr).splitlines()
                if line.startswith("Error")}

    for src in _dose_files(shared_data):
        out = tmp_path / src.name
        Deidentifier(SECRET).apply(pydicom.dcmread(src)).save_as(out, enforce_file_format=True)
        assert not errors(out) - errors(src), src.name


# -- issue 11: what survived the export, dates that cannot be shifted, burned-in text --------

# Planted where the Basic Profile's table does not reach: SR TEXT / PNAME / DATE / DATETIME /
# UIDREF content items (nested two levels deep), a Code Meaning, a private element inside a
# nested item, and the Radiopharmaceutical Administration Event UID (0008,3012).
PLANTED_TEXT = ("Plantedname", "MRN 99887766", "19510311", "St Planted Hospital",
                "Plantedcode", "Plantedperson", "Plantedprivate")
PLANTED_UIDS = ("1.2.826.0.1.3680043.2.1143.987654321", "1.2.826.0.1.3680043.2.1143.55555")


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, scheme, meaning
    return c


def _item(value_type: str, concept: tuple[str, str, str], **values: object) -> Dataset:
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = value_type
    item.ConceptNameCodeSequence = Sequence([_code(*concept)])
    for kw, v in values.items():
        setattr(item, kw, v)
    return item


def _plant_sr(ds: Dataset) -> None:
    comment = ("121106", "DCM", "Comment")
    inner = [
        _item("TEXT", comment, TextValue="Patient Plantedname, MRN 99887766, born 19510311"),
        _item("TEXT", ("113873", "DCM", "Organization Name"), TextValue="St Planted Hospital"),
        _item("PNAME", ("113870", "DCM", "Person Name"), PersonName="Plantedperson^Jane"),
        _item("DATE", comment, Date="19510311"),
        _item("DATETIME", comment, DateTime="19510311093000"),
        _item("UIDREF", ("121012", "DCM", "Device Observer UID"), UID=PLANTED_UIDS[0]),
        _item("CODE", comment, ConceptCodeSequence=Sequence([
            _code("113100", "DCM", "Dr Plantedcode")])),  # a name in a Code Meaning
    ]
    inner[0].add_new(0x00190010, "LO", "PLANTER")  # private creator, and its element
    inner[0].add_new(0x00191010, "LO", "Plantedprivate")
    container = _item("CONTAINER", ("121106", "DCM", "Plantedcode"),
                      ContinuityOfContent="SEPARATE", ContentSequence=Sequence(inner))
    if "ContentSequence" in ds:
        ds.ContentSequence[0].ContentSequence = Sequence(
            [*ds.ContentSequence[0].get("ContentSequence", []), container])
        ds.ContentSequence.append(_item("TEXT", comment, TextValue="St Planted Hospital"))
    else:
        ds.ContentSequence = Sequence([container])
    rp = Dataset()
    rp.RadiopharmaceuticalAdministrationEventUID = PLANTED_UIDS[1]
    ds.RadiopharmaceuticalInformationSequence = Sequence(
        [*ds.get("RadiopharmaceuticalInformationSequence", []), rp])


def _all_elements(ds: Dataset) -> list[tuple[Dataset, object]]:
    found: list[tuple[Dataset, object]] = []
    ds.walk(lambda item, elem: found.append((item, elem)))  # every element, every depth
    return found


def _uids(ds: Dataset) -> dict[str, int]:
    """Every instance UID value (not a class, syntax or scheme) → its tag."""
    from scanbench.dicom.deid import _names_a_class

    out: dict[str, int] = {}
    for _, elem in _all_elements(ds):
        e: Any = elem
        if e.VR == "UI" and e.value and not _names_a_class(int(e.tag)):
            for v in (e.value if isinstance(e.value, list | MultiValue) else [e.value]):
                if not str(v).startswith("1.2.840.10008."):
                    out[str(v)] = int(e.tag)
    return out


def test_nothing_identifying_survives_anywhere_in_the_exported_files(
        shared_data: Path, tmp_path: Path) -> None:
    """Issue 11 §3: after export, institution names in SR TEXT items, a name / record
    number / birth date in a TEXT item, a name in a Code Meaning and the Radiopharmaceutical
    Administration Event UID survived. Every element at every depth is walked (pydicom's
    Dataset.walk), and the written bytes are searched for every planted value, every value
    of a Basic Profile attribute that no declared option keeps, and every original UID."""
    deid = Deidentifier(SECRET)
    options = DeidOptions()
    originals: list[Dataset] = []
    outputs: list[Path] = []
    warnings: list[str] = []
    for src in _dose_files(shared_data):
        original: Dataset = pydicom.dcmread(src)
        original.PatientID = original.get("PatientID") or "PAT-42"
        _plant(original)
        _plant_sr(original)
        originals.append(original)
        out = tmp_path / src.name
        deid.apply(copy.deepcopy(original), warnings).save_as(out, enforce_file_format=True)
        outputs.append(out)
    assert not warnings
    original_uids: dict[str, int] = {}
    for ds in originals:
        original_uids |= _uids(ds) | _uids(Dataset(ds.file_meta))
    assert set(PLANTED_UIDS) <= original_uids.keys()
    remapped = {deid.uid(u) for u in original_uids}
    for ds, out in zip(originals, outputs, strict=True):
        # the values no declared option keeps: Basic Profile attributes, 6+ characters (so
        # that a short number cannot match by chance), not equal to any value that is kept
        kept = {str(e.value) for _, e in _all_elements(ds) if isinstance(e, DataElement)
                and (int(e.tag) not in profile_table()
                     or _retained(int(e.tag), e.VR, DeidOptions()))}
        secret = {str(e.value) for _, e in _all_elements(ds) if isinstance(e, DataElement)
                  and int(e.tag) in profile_table() and e.VR not in ("SQ", "UI")
                  and not _retained(int(e.tag), e.VR, options)
                  and int(e.tag) not in (0x00100010, 0x00100020)  # become the pseudonym
                  and len(str(e.value)) >= 6} - kept
        assert len(secret) > 100
        data = out.read_bytes()
        # (a UID is searched for as bytes unless it is short or equals a kept value: a
        # Siemens Device Observer UID is the device serial number, 11090, which is kept)
        uids = {u for u in original_uids if len(u) >= 6} - kept
        for value in [*PLANTED_TEXT, *PLANTED_UIDS, *secret, *uids]:
            assert value.encode() not in data, f"{value!r} survived in {out.name}"
        written = pydicom.dcmread(out)
        for _, elem in _all_elements(written):
            text = str(getattr(elem, "value", ""))
            assert not any(v in text for v in PLANTED_TEXT), (out.name, elem)
        # every instance UID is a remapped one: references between the files still resolve
        assert set(_uids(written)) | set(_uids(Dataset(written.file_meta))) <= remapped
        codes = {i.CodeValue for i in written.DeidentificationMethodCodeSequence}
        assert "113104" in codes  # Clean Structured Content: declared, and applied


def test_dose_values_are_kept_for_scanbench_dose(shared_data: Path, tmp_path: Path) -> None:
    """Clean Structured Content leaves the NUM items alone: `scanbench dose` reads the same
    CTDIvol and DLP from the de-identified dose reports as from the originals."""
    import json

    from typer.testing import CliRunner

    from scanbench import cli

    srcs = [p for p in _dose_files(shared_data) if "RDSR" in p.name or "ESR" in p.name]
    (tmp_path / "before").mkdir()
    (tmp_path / "after").mkdir()
    for src in srcs:
        shutil.copyfile(src, tmp_path / "before" / src.name)
        ds = Deidentifier(SECRET).apply(pydicom.dcmread(src))
        ds.save_as(tmp_path / "after" / src.name, enforce_file_format=True)

    def values(folder: Path) -> list[tuple[Any, ...]]:
        cli._mount_subapps()
        r = CliRunner().invoke(cli.app, ["dose", "--json", str(folder)])
        assert r.exit_code == 0, r.output
        return sorted((s["total_dlp_mgycm"] or 0.0, s["number_of_events"],
                       tuple(sorted((e["ctdivol_mgy"] or 0.0, e["dlp_mgycm"] or 0.0)
                                    for e in s["events"]))) for s in json.loads(r.stdout))

    before, after = values(tmp_path / "before"), values(tmp_path / "after")
    assert len(before) == 7 and sum(len(b[2]) for b in before) >= 15, before
    assert after == before


@pytest.mark.parametrize("value,vr", [("00010101", "DA"), ("00010102120000", "DT"),
                                      ("20240231", "DA"), ("garbage", "DA")])
def test_a_date_that_cannot_be_shifted_is_replaced_with_a_warning(
        shared_data: Path, value: str, vr: str) -> None:
    """Issue 11 §3: shifting 00010101 raised OverflowError and stopped the export."""
    ds = pydicom.dcmread(shared_data / "dose/rdsr/NM-PetIm-Siemens.dcm")
    kw = "StudyDate" if vr == "DA" else "AcquisitionDateTime"
    setattr(ds, kw, value)
    warnings: list[str] = []
    out = Deidentifier(SECRET).apply(ds, warnings)
    assert out[kw].value == ("19000101" if vr == "DA" else "19000101000000")
    assert len(warnings) == 1 and kw in warnings[0] and "cannot be shifted" in warnings[0]
    assert out.SeriesDate != "19000101"  # the other dates are shifted as usual


def test_burned_in_annotation_is_refused(shared_data: Path) -> None:
    """The Philips dose screen capture carries the study's identity in its pixels (Burned In
    Annotation YES); the Clean Pixel Data Option is not offered, so it is not exported."""
    ds = pydicom.dcmread(shared_data / "dose/rdsr/CT-SC-Philips_Brilliance16P.dcm")
    with pytest.raises(InputError, match="Burned In Annotation"):
        Deidentifier(SECRET).apply(ds)


def test_code_meanings_are_cleaned() -> None:
    """A meaning made of the standard's words is kept; a name, a long number or words the
    standard does not use are replaced by the standard's meaning or the code value."""
    assert clean_code_meaning(_code("113100", "DCM", "Dr Plantedcode")) == (
        "Basic Application Confidentiality Profile")
    assert clean_code_meaning(_code("T-D3000", "SRT", "Chest")) == "Chest"
    assert "Smith" not in clean_code_meaning(_code("T-D3000", "SRT", "Chest John Smith"))
    assert clean_code_meaning(_code("mGy.cm", "UCUM", "Smith")) == "mGy.cm"
    assert clean_code_meaning(_code("X1", "99LOCAL", "Total Number of Images")) == (
        "Total Number of Images")
    assert clean_code_meaning(_code("X1", "99LOCAL", "John Smith")) == "X1"
    assert clean_code_meaning(_code("X1", "99LOCAL", "Patient 99887766")) == "X1"
    assert clean_code_meaning(_code("X1", "99LOCAL", "St Mary's Hospital")) == "X1"

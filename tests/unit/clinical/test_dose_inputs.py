"""Dose parsing on malformed, partial and foreign input: each gives a clear warning or
error naming the file, and the rest of the batch is still processed."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from scanbench.clinical import sr
from scanbench.clinical.dose import classify_dataset, doses_from_datasets, doses_from_paths


@pytest.fixture(scope="module")
def rdsr(shared_data: Path) -> Path:
    return shared_data / "dose" / "rdsr"


def _load(path: Path) -> Dataset:
    return pydicom.dcmread(path)


def _find(ds: Dataset, value: str) -> list[Dataset]:
    out = []
    for item in ds.get("ContentSequence", []):
        cn = item.get("ConceptNameCodeSequence")
        if cn and cn[0].CodeValue == value:
            out.append(item)
        out.extend(_find(item, value))
    return out


@pytest.mark.parametrize(("name", "kind"), [
    ("CT-RDSR-Toshiba_DoseCheck.dcm", "ct_dose_sr"),
    ("CT-ESR-GE_Optima.dcm", "ct_dose_sr"),
    ("NM-RRDSR-Siemens.dcm", "radiopharmaceutical_sr"),
    ("ESR_non-dose.dcm", "other_sr"),
    ("CT-SC-Philips_Brilliance16P.dcm", "dose_screen"),
    ("NM-PetIm-GE.dcm", "image"),
])
def test_classify(rdsr: Path, name: str, kind: str) -> None:
    assert classify_dataset(_load(rdsr / name)) == kind


def test_legacy_and_sct_codes_are_the_same_concept() -> None:
    assert sr.Code("P5-08001", "SRT", "Spiral Acquisition").is_("116152004", "SCT")
    assert sr.Code("116152004", "SCT", "anything").is_("116152004", "SCT")
    assert not sr.Code("113805", "DCM", "Spiral Acquisition").is_("116152004", "SCT")


def test_meaning_text_is_never_used(rdsr: Path) -> None:
    """Rename every code meaning: the numbers read must not change."""
    ds = _load(rdsr / "CT-RDSR-Toshiba_DoseCheck.dcm")
    before = doses_from_datasets([("a", copy.deepcopy(ds))]).studies[0]

    def scramble(d: Dataset) -> None:
        for elem in d.iterall():
            if elem.keyword == "CodeMeaning":
                elem.value = "xyz"
    scramble(ds)
    after = doses_from_datasets([("a", ds)]).studies[0]
    assert [e.ctdivol_mgy for e in after.events] == [e.ctdivol_mgy for e in before.events]
    assert after.total_dlp_mgycm == before.total_dlp_mgycm
    assert [e.phantom_cm for e in after.events] == [32, 32]
    assert [e.acquisition_type for e in after.events] == ["spiral", "spiral"]


def test_malformed_number_and_missing_phantom_are_warned(rdsr: Path) -> None:
    ds = _load(rdsr / "CT-RDSR-Toshiba_DoseCheck.dcm")
    ctdi = _find(ds, "113830")[0]
    mv = ctdi.MeasuredValueSequence[0]
    tag = BaseTag(0x0040A30A)  # as a vendor wrote it, raw: pydicom would refuse to set it
    mv._dict[tag] = RawDataElement(tag, "DS", 8, b"5.3/6.1 ", 0, False, True)
    dose = _find(ds, "113829")[1]
    dose.ContentSequence = [i for i in dose.ContentSequence
                            if i.ConceptNameCodeSequence[0].CodeValue != "113835"]
    s = doses_from_datasets([("x.dcm", ds)]).studies[0]
    assert s.events[0].ctdivol_mgy is None
    assert any("event 1 CTDIvol" in w and "malformed value '5.3/6.1'" in w for w in s.warnings)
    # phantom assumed from the coded target region (abdomen → 32 cm), and said so
    assert s.events[1].phantom_cm == 32
    assert any("32 cm assumed from the target region" in w for w in s.warnings)


def test_report_without_content_is_a_named_failure_and_batch_goes_on(rdsr: Path,
                                                                    tmp_path: Path) -> None:
    ds = _load(rdsr / "CT-RDSR-Philips_BigBore4DCT.dcm")
    del ds.ContentSequence[1:]  # keep the procedure, drop everything else
    ds.ContentSequence.append(Dataset())  # and an empty item
    ds.StudyInstanceUID = "1.2.3.4"
    ds.save_as(tmp_path / "empty.dcm")
    (tmp_path / "truncated.dcm").write_bytes(
        (rdsr / "CT-RDSR-GEPixelMed.dcm").read_bytes()[:3000])
    (tmp_path / "notes.txt").write_text("not dicom")
    shutil.copy(rdsr / "CT-RDSR-Toshiba_DoseCheck.dcm", tmp_path / "good.dcm")
    shutil.copy(rdsr / "ESR_non-dose.dcm", tmp_path / "other.dcm")
    report = doses_from_paths([tmp_path])
    assert [s.total_dlp_mgycm for s in report.studies] == [pytest.approx(502.4)]
    failed = {Path(w).name: why for w, why in report.failures}
    assert set(failed) == {"empty.dcm", "truncated.dcm"}
    assert "no usable dose" in failed["empty.dcm"]
    noted = {Path(w).name: why for w, why in report.notes}
    assert "not DICOM" in noted["notes.txt"]
    assert "not a CT or radiopharmaceutical dose report" in noted["other.dcm"]


def test_dose_screen_without_structured_data_is_not_parsed(rdsr: Path) -> None:
    ds = _load(rdsr / "CT-SC-Philips_Brilliance16P.dcm")
    del ds.ExposureDoseSequence
    s = doses_from_datasets([("screen.dcm", ds)]).studies[0]
    assert s.events == [] and s.total_dlp_mgycm is None
    assert s.dose_sources == ["dose_screen_not_parsed"]
    assert any("burned into the pixels and were not parsed" in w for w in s.warnings)


def test_conflicting_repeat_of_an_event_is_counted_once_and_warned(rdsr: Path) -> None:
    a = _load(rdsr / "CT-RDSR-Siemens-Multi-2.dcm")
    b = _load(rdsr / "CT-RDSR-Siemens-Multi-3.dcm")
    _find(b, "113838")[1].MeasuredValueSequence[0].NumericValue = "70.00"
    s = doses_from_datasets([("a", a), ("b", b)]).studies[0]
    assert len(s.events) == 3
    assert any("appears in two reports with different doses" in w for w in s.warnings)


def test_bare_datasets_are_accepted(rdsr: Path) -> None:
    report = doses_from_datasets([_load(rdsr / "CT-RDSR-GEPixelMed.dcm")])
    assert report.studies[0].total_dlp_mgycm == pytest.approx(586.34)


@pytest.mark.parametrize("name", ["CT-RDSR-Toshiba_DoseCheck.dcm", "CT-ESR-GE_Optima.dcm",
                                  "CT-RDSR-GEPixelMed.dcm", "NM-RRDSR-Siemens.dcm"])
def test_implicit_vr_and_converted_sequences_read_the_same(rdsr: Path, tmp_path: Path,
                                                          name: str) -> None:
    """The byte-level walker (explicit VR, defined and undefined lengths), an implicit-VR
    re-encoding, and a tree pydicom has already converted all give the same report."""
    from pydicom.uid import ImplicitVRLittleEndian

    reference = doses_from_paths([rdsr / name]).studies[0].to_dict()
    ds = _load(rdsr / name)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.save_as(tmp_path / "implicit.dcm", enforce_file_format=True)
    implicit = doses_from_paths([tmp_path / "implicit.dcm"]).studies[0].to_dict()
    converted_ds = _load(rdsr / name)
    list(converted_ds.iterall())  # pydicom converts every element
    converted = doses_from_datasets([(str(rdsr / name), converted_ds)]).studies[0].to_dict()
    for other in (implicit, converted):
        for key in ("total_dlp_mgycm", "events", "radiopharmaceutical", "effective_dose_msv"):
            assert other[key] == reference[key], key


def test_zip_of_continued_reports(rdsr: Path, tmp_path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(tmp_path / "study.zip", "w") as zf:
        for i in (1, 2, 3):
            zf.write(rdsr / f"CT-RDSR-Siemens-Multi-{i}.dcm", f"dose/{i}.dcm")
        zf.writestr("readme.txt", "not dicom")
    report = doses_from_paths([tmp_path / "study.zip"])
    assert [s.total_dlp_mgycm for s in report.studies] == [pytest.approx(236.09)]
    assert [Path(w).name for w, _ in report.notes] == ["readme.txt"]

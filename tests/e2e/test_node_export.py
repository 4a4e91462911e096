"""`scanbench export`: a stored study copied out as received, or de-identified by the PS3.15
Basic Profile with Retain Device Identity (the profile itself is tested attribute by
attribute in tests/unit/dicom/test_deid.py; here: the command, on real stored files)."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from typer.testing import CliRunner

from scanbench import cli
from scanbench.dicom.deid import profile_table
from scanbench.service.pipeline import Pipeline

STUDY_FILES = ("NM-PetIm-Siemens.dcm", "NM-RRDSR-Siemens.dcm", "NM-CT-RDSR-Siemens.dcm")
DEVICE = ("Manufacturer", "ManufacturerModelName", "DeviceSerialNumber", "StationName",
          "SoftwareVersions")


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory, shared_data: Path
           ) -> tuple[Path, list[pydicom.Dataset]]:
    home = tmp_path_factory.mktemp("home")
    pipe = Pipeline(home, f"sqlite:///{home / 'scanbench.db'}", recover=False)
    originals: list[pydicom.Dataset] = []
    try:
        for n in STUDY_FILES:
            path = shared_data / "dose/rdsr" / n
            assert pipe.store_path(path).ok
            originals.append(pydicom.dcmread(path))
    finally:
        pipe.close()
    return home, originals


def _export(home: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    cli._mount_subapps()
    monkeypatch.setenv("SCANBENCH_HOME", str(home))
    monkeypatch.delenv("SCANBENCH_DATABASE_URL", raising=False)
    r = CliRunner().invoke(cli.app, ["export", *args])
    assert r.exit_code == 0, r.output
    return r.output


def _walk_tags(ds: pydicom.Dataset) -> set[int]:
    tags = set()
    for elem in ds:
        tags.add(int(elem.tag))
        if elem.VR == "SQ":
            for item in elem.value:
                tags |= _walk_tags(item)
    return tags


def test_export_as_received(stored: tuple[Path, list[pydicom.Dataset]], tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    home, originals = stored
    study = str(originals[0].StudyInstanceUID)
    out = _export(home, monkeypatch, study, "--out", str(tmp_path / "x"))
    written = sorted((tmp_path / "x").rglob("*.dcm"))
    same_study = [o for o in originals if str(o.StudyInstanceUID) == study]
    assert f"{len(same_study)} instance(s) written" in out
    assert {str(pydicom.dcmread(p).SOPInstanceUID) for p in written} == {
        str(o.SOPInstanceUID) for o in same_study}


def test_export_deidentified(stored: tuple[Path, list[pydicom.Dataset]], tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    home, originals = stored
    series = [str(o.SeriesInstanceUID) for o in originals]
    args = [a for s in series for a in ("--series", s)]
    _export(home, monkeypatch, *args, "--out", str(tmp_path / "a"), "--deidentified")
    _export(home, monkeypatch, *args, "--out", str(tmp_path / "b"), "--deidentified")
    a = {p.name: pydicom.dcmread(p) for p in (tmp_path / "a").rglob("*.dcm")}
    b = {p.name: pydicom.dcmread(p) for p in (tmp_path / "b").rglob("*.dcm")}
    assert len(a) == len(originals) and a.keys() == b.keys()  # UIDs remapped the same way
    by_class = {str(o.SOPClassUID): o for o in originals}
    # X in the Basic Profile, not kept by Retain Device Identity nor shifted by Modified Dates
    removed = {t for t, r in profile_table().items()
               if r.basic == "X" and "v" not in r.options and "l" not in r.options}
    for name, ds in a.items():
        original = by_class[str(ds.SOPClassUID)]
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.PatientID != original.PatientID and ds.PatientID == b[name].PatientID
        assert str(ds.PatientName) != str(original.PatientName)
        assert ds.StudyInstanceUID != original.StudyInstanceUID
        assert not any(pydicom.tag.Tag(t).is_private for t in _walk_tags(ds))
        assert not (_walk_tags(ds) & removed)
        assert ds.StudyDate != original.StudyDate  # Modified Dates: shifted
        for kw in DEVICE:  # Retain Device Identity
            if kw in original:
                assert ds[kw].value == original[kw].value, kw
    # one patient ID, one pseudonym (the RRDSR of this study carries 'REMOVED1', the images
    # 'REMOVED': two IDs, two pseudonyms)
    assert len({ds.PatientID for ds in a.values()}) == len({o.PatientID for o in originals})
    key = home / "secrets" / "deid.key"
    assert key.stat().st_mode & 0o077 == 0


def test_one_bad_file_never_stops_the_export(tmp_path: Path, shared_data: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 11 §3: a date that cannot be shifted (00010101) crashed the whole export with
    OverflowError. Now that date is replaced with a warning naming the file; a stored file
    damaged on disk and an instance with burned-in annotation are each named and skipped,
    and every other instance is written."""
    import io

    home = tmp_path / "home"
    pipe = Pipeline(home, f"sqlite:///{home / 'scanbench.db'}", recover=False)
    dose = shared_data / "dose/rdsr"
    series: list[str] = []
    try:
        odd = pydicom.dcmread(dose / "NM-PetIm-Siemens.dcm")
        odd.AcquisitionDate = "00010101"
        buf = io.BytesIO()
        odd.save_as(buf)
        assert pipe.store_instance(buf.getvalue(), source="test").ok
        for name in ("CT-SC-Philips_Brilliance16P.dcm", "NM-RRDSR-Siemens.dcm",
                     "CT-RDSR-Siemens-Multi-2.dcm", "NM-CT-RDSR-Siemens.dcm"):
            assert pipe.store_path(dose / name).ok
        damaged_uid = str(pydicom.dcmread(dose / "CT-RDSR-Siemens-Multi-2.dcm").SOPInstanceUID)
        damaged = home / "files" / pipe.files.relative(damaged_uid)
    finally:
        pipe.close()
    for name in ("NM-PetIm-Siemens.dcm", "CT-SC-Philips_Brilliance16P.dcm",
                 "NM-RRDSR-Siemens.dcm", "CT-RDSR-Siemens-Multi-2.dcm",
                 "NM-CT-RDSR-Siemens.dcm"):
        series += ["--series", str(pydicom.dcmread(dose / name).SeriesInstanceUID)]
    damaged.write_bytes(damaged.read_bytes()[:2000])  # cut inside the content tree
    cli._mount_subapps()
    monkeypatch.setenv("SCANBENCH_HOME", str(home))
    monkeypatch.delenv("SCANBENCH_DATABASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "400")
    r = CliRunner().invoke(cli.app, ["export", *series, "--out", str(tmp_path / "out"),
                                     "--deidentified"])
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output
    written = sorted((tmp_path / "out").rglob("*.dcm"))
    assert len(written) == 3  # PET image (date replaced), RRDSR, PET/CT RDSR
    assert not list((tmp_path / "out").rglob("*.tmp"))
    assert "3 instance(s) written" in r.output and "2 not exported" in r.output
    lines = r.output.splitlines()
    assert any(str(damaged) in line and "not exported" in line for line in lines)
    assert any("Burned In Annotation" in line and "not exported" in line for line in lines)
    assert any("warning:" in line and "AcquisitionDate" in line and "cannot be shifted" in line
               for line in lines)
    pet = [pydicom.dcmread(p) for p in written if pydicom.dcmread(p).Modality == "PT"]
    assert pet and pet[0].AcquisitionDate == "19000101"
    assert "Clean Structured Content" in r.output  # what is declared is said

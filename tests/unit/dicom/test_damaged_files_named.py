"""Every damaged file is a named failure (issue 11 §3: in a campaign, 316 of 3,200
damaged files got an error naming only the folder and series, and 195 vanished with no
error at all, e.g. a file truncated to 133 bytes).

A seeded, bounded loop damages one file of a real or simulated series (truncation, bit
flips, zeroed bytes, corrupted tags) and reads the folder: nothing escapes ``read``, and
the damaged file is either part of a series read or named (its path) in a failure; it is
never a mere note. Then the same damage through the Python API, the command line and
ingest.
"""

from __future__ import annotations

import io
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from scanbench.dicom import read
from scanbench.simulate.ct import CtScannerModel, render_water, write_ct_series

REAL = ["ct/catphan/CTP404_FOV150", "ct/catphan/CTP486", "mr/acr/GE_Artist_1.5T_T1"]
CASES = 90


@pytest.fixture(scope="module")
def folders(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    sim = tmp_path_factory.mktemp("sim") / "ct-water"
    model = CtScannerModel()
    volume, _ = render_water(model, n_slices=5, seed=4)
    write_ct_series(volume, sim, model=model, description="water")
    return [shared_data / r for r in REAL] + [sim]


def _retag(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    ds = pydicom.dcmread(io.BytesIO(data))
    keyword, value = rng.choice([
        ("ImagePositionPatient", [0.0, 0.0, 1e6]), ("ImagePositionPatient", [3.0, 1.0, -7.3]),
        ("ImageOrientationPatient", [0, 1, 0, 0, 0, 1]), ("Rows", 7), ("Columns", 9),
        ("PixelSpacing", [0, 0]), ("BitsAllocated", 12), ("SamplesPerPixel", 3),
        ("NumberOfFrames", 5), ("SOPClassUID", "1.2.840.10008.5.1.4.1&1.2"),
        ("SeriesInstanceUID", "1.2.3"), ("RescaleSlope", "x")])
    try:
        setattr(ds, keyword, value)
        buf = io.BytesIO()
        ds.save_as(buf)
    except Exception:  # pydicom refuses the value: damage the bytes instead
        return data[:len(data) // 2], "truncated to half"
    return buf.getvalue(), f"{keyword} = {value!r}"


def damage(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One damage, seeded: what the campaign did to a file."""
    kind = rng.choice(["truncate", "flip", "zero", "tag", "tag"])
    if kind == "truncate":
        cut = rng.choice([132, 133, 200, 1000, rng.randrange(133, len(data))])
        return data[:cut], f"truncated to {cut} bytes"
    if kind == "tag":
        return _retag(data, rng)
    buf = bytearray(data)
    end = min(len(buf), 4000)  # the header: pixel damage leaves a readable image
    if kind == "zero":
        at = rng.randrange(132, end - 16)
        buf[at:at + 16] = bytes(16)
        return bytes(buf), f"16 bytes zeroed at {at}"
    spots = [rng.randrange(132, end) for _ in range(rng.randint(1, 8))]
    for at in spots:
        buf[at] ^= 1 << rng.randrange(8)
    return bytes(buf), f"bits flipped at {spots}"


def test_every_damaged_file_is_read_or_named(folders: list[Path], tmp_path: Path) -> None:
    rng = random.Random(20261206)
    unnamed = []
    for n in range(CASES):
        src = rng.choice(folders)
        work = tmp_path / f"case{n}"
        shutil.copytree(src, work, ignore=shutil.ignore_patterns("*.json"))
        victim = rng.choice(sorted(p for p in work.iterdir() if p.is_file()))
        data, how = damage(victim.read_bytes(), rng)
        victim.write_bytes(data)
        result = read(work)  # never raises: a traceback here fails the test
        in_series = any(victim in s.files for s in result.series)
        named = [why for where, why in result.errors
                 if where == str(victim) or where.startswith(f"{victim}:")]
        noted = [why for p, why in result.skipped + result.non_image if p == victim]
        if not (in_series or named) or noted:
            unnamed.append((src.name, victim.name, how, noted, result.errors[:2]))
        for where, why in result.errors:
            assert where and why
        shutil.rmtree(work)
    assert not unnamed, "\n".join(map(str, unnamed))


@pytest.fixture
def cut_series(shared_data: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A real CT series with one file truncated to 133 bytes, one slice position
    corrupted in another copy: the campaign's two silent and unnamed cases."""
    work = tmp_path / "ct"
    shutil.copytree(shared_data / "ct/catphan/CTP404_FOV150", work)
    victim = sorted(work.iterdir())[1]
    victim.write_bytes(victim.read_bytes()[:133])
    return work, victim


def test_python_api_names_the_truncated_file(cut_series: tuple[Path, Path]) -> None:
    import scanbench
    from scanbench.api import analyze_paths
    from scanbench.errors import ScanbenchError

    _work, victim = cut_series
    report = analyze_paths([victim])
    assert [(f.where, f.reason) for f in report.failures] == [
        (str(victim), "truncated: the file ends 1 byte(s) after the DICM prefix, before its "
                      "File Meta Information and data set")]
    with pytest.raises(ScanbenchError) as caught:
        scanbench.analyze(victim)
    assert caught.value.where == str(victim)


def test_displaced_slice_is_named_and_the_rest_is_read(shared_data: Path,
                                                       tmp_path: Path) -> None:
    work = tmp_path / "mr"
    shutil.copytree(shared_data / "mr/acr/GE_Artist_1.5T_T1", work)
    victim = sorted(work.iterdir())[5]
    ds = pydicom.dcmread(victim)
    ds.ImagePositionPatient = [0.0, 0.0, 1e6]
    ds.save_as(victim)
    result = read(work)
    (where, why), = result.errors
    assert where == str(victim) and why.startswith("does not fit its series: missing slice")
    assert "a hole where this file belongs" in why
    # The last slice displaced: the other ten form the series, the file is the failure.
    work = tmp_path / "mr-end"
    shutil.copytree(shared_data / "mr/acr/GE_Artist_1.5T_T1", work)
    end = sorted(work.iterdir(), key=lambda p: float(
        pydicom.dcmread(p, stop_before_pixels=True).SliceLocation))[-1]
    ds = pydicom.dcmread(end)
    ds.ImagePositionPatient = [0.0, 0.0, 1e6]
    ds.save_as(end)
    result = read(work)
    (where, why), = result.errors
    assert where == str(end) and "the series is read without it" in why
    (series,) = result.series
    assert len(series.files) == 10 and end not in series.files
    assert any(str(end) in w for w in series.warnings)


def test_command_line_and_ingest_name_the_truncated_file(cut_series: tuple[Path, Path],
                                                         tmp_path: Path) -> None:
    work, victim = cut_series
    proc = subprocess.run([sys.executable, "-m", "scanbench", "analyze", work, "--json"],
                          capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 1
    assert f"error: {victim}: truncated" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "scanbench", "ingest", victim, "--home",
                           tmp_path / "home", "--workers", "0"],
                          capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 1
    assert f"rejected: {victim}:" in proc.stderr


def test_a_file_split_off_its_series_is_named_by_the_analysis_failure(
        shared_data: Path, tmp_path: Path) -> None:
    """Damaged Rows puts one file in a volume of its own; its failure names the file."""
    from scanbench.api import analyze_paths

    work = tmp_path / "mr"
    shutil.copytree(shared_data / "mr/acr/GE_Artist_1.5T_T1", work)
    victim = sorted(work.iterdir())[3]
    ds = pydicom.dcmread(victim)
    ds.Rows = 7
    ds.save_as(victim)
    report = analyze_paths([work], analysis="mr.acr.geometric_accuracy")
    assert any(f.where.startswith(f"{victim}:") for f in report.failures), report.failures


@pytest.mark.parametrize(("keyword", "value"), [
    ("SeriesInstanceUID", "1.2.3"), ("ImageOrientationPatient", [0, 1, 0, 0, 0, 1])])
def test_a_slice_moved_out_of_its_series_by_its_header_is_named(
        shared_data: Path, tmp_path: Path, keyword: str, value: object) -> None:
    """A damaged Series Instance UID or orientation moves a slice out of its series,
    which then misses a slice: the failure names the file whose slice fills the gap."""
    work = tmp_path / "mr"
    shutil.copytree(shared_data / "mr/acr/GE_Artist_1.5T_T1", work)
    victim = sorted(work.iterdir(), key=lambda p: float(
        pydicom.dcmread(p, stop_before_pixels=True).SliceLocation))[5]
    ds = pydicom.dcmread(victim)
    setattr(ds, keyword, value)
    ds.save_as(victim)
    (where, why), = read(work).errors
    assert where == str(victim) and "lies in the gap of" in why


def test_a_damaged_dicm_prefix_is_a_failure_not_a_note(shared_data: Path, tmp_path: Path) -> None:
    """One bit flipped in 'DICM' made a DICOM file "not DICOM", a note (found by the fuzz
    test once damaged files had to be failures)."""
    bad = tmp_path / "bad.dcm"
    data = bytearray((shared_data / "ct/catphan/CTP486/CTP486_005.dcm").read_bytes())
    data[128] ^= 1  # 'DICM' -> 'EICM'
    bad.write_bytes(bytes(data))
    (tmp_path / "notes.txt").write_text("x" * 300)
    result = read(tmp_path)
    (where, why), = result.errors
    assert where == str(bad) and "not the DICM prefix" in why
    assert [p.name for p, _ in result.skipped] == ["notes.txt"]
    proc = subprocess.run([sys.executable, "-m", "scanbench", "ingest", bad, "--home",
                           tmp_path / "home", "--workers", "0"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and f"rejected: {bad}: damaged" in proc.stderr

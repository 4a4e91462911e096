"""Headers of every DICOM object under some paths, for the clinical (dose, workflow) tools.

Clinical studies are read header-first: a dose report is all header, and the
workflow timings and image-header dose fallbacks need no pixels, so files are
read up to the Pixel Data element (PS3.10 Part 10 files; plain little-endian
files directly by :func:`scanbench.clinical.sr.read_header`, others by pydicom
with ``stop_before_pixels``; a folder is searched recursively, a zip is read
member by member in memory). Non-DICOM files are
listed as skipped with a note; unreadable DICOM files as failures naming the
file. Nothing here raises for one bad file.
"""

from __future__ import annotations

import io
import os
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from scanbench.clinical.sr import read_header

Progress = Callable[[int, int], None]


@dataclass
class Found:
    """What a scan found: (path, dataset) pairs, skipped files and failures."""

    datasets: list[tuple[str, Dataset]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


def _files(paths: Sequence[str | Path], found: Found) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            for base, dirs, names in os.walk(p):
                dirs.sort()
                out.extend(Path(base) / n for n in sorted(names))
        elif p.is_file():
            out.append(p)
        else:
            found.failures.append((str(p), "no such file or folder"))
    return out


def _looks_like_dicom(head: bytes) -> tuple[bool, bool]:
    """(DICOM?, Part 10?) from the first 132 bytes (PS3.10 §7.1, or a bare data set that
    opens with a group 0002/0008 element)."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True, True
    group = int.from_bytes(head[:2], "little") if len(head) >= 8 else -1
    return group in (0x0002, 0x0008), False


def _parse(source: bytes | Path, head: bytes, where: str, found: Found) -> Dataset | None:
    dicom, part10 = _looks_like_dicom(head)
    if not dicom:
        found.skipped.append((where, "not DICOM (no DICM prefix at byte 128)"))
        return None
    try:
        # A plain Part 10 file is read directly (the same data set, its SR content tree
        # left unparsed until walked: sr.read_header); anything else by pydicom.
        ds = read_header(source) if part10 and isinstance(source, Path) else None
        if ds is None:
            fp = io.BytesIO(source) if isinstance(source, bytes) else source
            ds = pydicom.dcmread(fp, force=not part10, stop_before_pixels=True)
    except Exception as exc:  # pydicom raises many types on damaged input
        found.failures.append((where, f"damaged DICOM, cannot be parsed "
                                      f"({type(exc).__name__}: {exc})"))
        return None
    if len(ds) == 0:
        found.failures.append((where, "DICOM file with an empty data set"))
        return None
    return ds


def _entries(paths: Sequence[str | Path], found: Found
             ) -> Iterator[tuple[str, bytes | Path, bytes]]:
    """(where, source, first 132 bytes): a file on disk is read by pydicom from its path,
    up to its pixel data only; zip members are read into memory."""
    for path in _files(paths, found):
        try:
            with open(path, "rb") as fh:
                head = fh.read(132)
        except OSError as exc:
            found.failures.append((str(path), f"cannot read the file: {exc.strerror}"))
            continue
        if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
            try:
                with zipfile.ZipFile(path) as zf:
                    for info in zf.infolist():
                        if not info.is_dir():
                            data = zf.read(info)
                            yield f"{path}/{info.filename}", data, data[:132]
            except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
                found.failures.append((str(path), f"damaged zip archive: {exc}"))
            continue
        yield str(path), path, head


def scan(paths: Sequence[str | Path] | str | Path, *, progress: Progress | None = None) -> Found:
    """Parse the header of every DICOM object under ``paths`` (pixel data not read)."""
    if isinstance(paths, str | Path):
        paths = [paths]
    found = Found()
    files = _files(paths, Found())  # count only, for the progress bar
    total = len(files)
    done = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about every odd value
        for where, source, head in _entries(paths, found):
            ds = _parse(source, head, where, found)
            if ds is not None:
                found.datasets.append((where, ds))
            done += 1
            if progress is not None:
                progress(min(done, total), max(total, done))
    return found

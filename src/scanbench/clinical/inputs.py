"""Headers of every DICOM object under some paths, for the clinical (dose, workflow) tools.

Clinical studies are read header-first: a dose report is all header, and the
workflow timings and image-header dose fallbacks need no pixels, so images are
read with ``stop_before_pixels`` (PS3.10 Part 10 files; a folder is searched
recursively, a zip is read member by member in memory). Non-DICOM files are
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


def _parse(data: bytes, where: str, found: Found) -> Dataset | None:
    part10 = len(data) >= 132 and data[128:132] == b"DICM"
    if not part10:
        group = int.from_bytes(data[:2], "little") if len(data) >= 8 else -1
        if group not in (0x0002, 0x0008):
            found.skipped.append((where, "not DICOM (no DICM prefix at byte 128)"))
            return None
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=not part10, stop_before_pixels=True)
    except Exception as exc:  # pydicom raises many types on damaged input
        found.failures.append((where, f"damaged DICOM, cannot be parsed "
                                      f"({type(exc).__name__}: {exc})"))
        return None
    if len(ds) == 0:
        found.failures.append((where, "DICOM file with an empty data set"))
        return None
    return ds


def _entries(paths: Sequence[str | Path], found: Found) -> Iterator[tuple[str, bytes]]:
    for path in _files(paths, found):
        try:
            data = path.read_bytes()
        except OSError as exc:
            found.failures.append((str(path), f"cannot read the file: {exc.strerror}"))
            continue
        if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
            try:
                with zipfile.ZipFile(io.BytesIO(data)) as zf:
                    for info in zf.infolist():
                        if not info.is_dir():
                            yield f"{path}/{info.filename}", zf.read(info)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
                found.failures.append((str(path), f"damaged zip archive: {exc}"))
            continue
        yield str(path), data


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
        for where, data in _entries(paths, found):
            ds = _parse(data, where, found)
            if ds is not None:
                found.datasets.append((where, ds))
            done += 1
            if progress is not None:
                progress(min(done, total), max(total, done))
    return found

"""Read DICOM files, folders and zips into image series.

Input handling follows DICOM PS3.10 (media storage file format): a file is
DICOM if it carries the ``DICM`` prefix after the 128-byte preamble (§7.1),
or — for files written without Part 10 meta information — if it opens with a
plausible group 0002/0008 data element. DICOMDIR files (Media Storage
Directory, §7.2 / PS3.3 F) and preamble-only files are not images and are
skipped with a note. Instances are grouped by Series Instance UID
(0020,000E); within a series, frames with different orientation, size,
stack or time form separate volumes (see :mod:`scanbench.dicom.geometry`).
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os
import re
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.uid import UID

from scanbench.dicom import geometry, pixels
from scanbench.dicom import headers as h
from scanbench.dicom.facts import series_facts
from scanbench.dicom.frames import Frame, Source, plane_frames
from scanbench.dicom.parse import parse
from scanbench.errors import InputError, ScanbenchError, SeriesError
from scanbench.types import Series

_DICOMDIR_UID = "1.2.840.10008.1.3.10"
#: UID syntax (PS3.5 §9.1), leniently: leading zeros in a component, seen in real files,
#: are let through.
_UID_SYNTAX = re.compile(r"[0-9]+(\.[0-9]+)*")
#: SOP classes that must carry plane geometry (cross-sectional images): without
#: it they are broken; other image objects without it (secondary captures,
#: projection images) are not volumes and are listed as non-image objects.
_CROSS_SECTIONAL = {
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image
    "1.2.840.10008.5.1.4.1.1.2.2",  # Legacy Converted Enhanced CT Image
    "1.2.840.10008.5.1.4.1.1.4",  # MR Image
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image
    "1.2.840.10008.5.1.4.1.1.4.4",  # Legacy Converted Enhanced MR Image
    "1.2.840.10008.5.1.4.1.1.128",  # Positron Emission Tomography Image
    "1.2.840.10008.5.1.4.1.1.130",  # Enhanced PET Image
    "1.2.840.10008.5.1.4.1.1.128.1",  # Legacy Converted Enhanced PET Image
}


@dataclass
class ReadResult:
    """What one :func:`read` found.

    ``series``: every image series that formed a valid volume.
    ``skipped``: non-DICOM files, (path, short reason) — a note, not an error.
    ``non_image``: DICOM objects that are not image volumes (SR, RDSR, presentation
    states, secondary captures without patient geometry): (path, SOP class name).
    ``errors``: (where, reason) for unreadable DICOM files and for series that
    cannot form a volume; ``where`` names the file, or the folder and series.
    """

    series: list[Series] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    non_image: list[tuple[Path, str]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)


def read(paths: Sequence[str | Path] | str | Path, *,
         progress: Callable[[int, int], None] | None = None) -> ReadResult:
    """Read every image series under ``paths`` (files, folders searched recursively, zips).

    Never raises for a bad file or series: problems are collected in
    ``errors`` (and non-DICOM files in ``skipped``). ``progress(done, total)``
    is called after each file is read.
    """
    result, _ = _read(paths, progress)
    return result


def read_one(path: str | Path) -> Series:
    """The one image series under ``path``.

    Raises InputError if ``path`` holds no image series or several, and the
    series' own InputError/SeriesError if the only candidate could not be read.
    """
    result, problems = _read([path], None)
    if len(result.series) == 1:
        series = result.series[0]
        series.warnings.extend(f"also under {path}: {where}: {why} (not part of this series)"
                               for where, why in result.errors)
        return series
    if len(result.series) > 1:
        names = ", ".join(f"'{s.facts.series_description or s.uid}' ({s.shape[0]} slices)"
                          for s in result.series)
        raise InputError(f"expected one image series, found {len(result.series)}: {names}",
                         path)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        listing = "; ".join(f"{p.where}: {p.message}" for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise SeriesError(f"no image series could be read: {listing}{more}", path)
    raise InputError(f"no DICOM image series found ({len(result.skipped)} non-DICOM file(s) "
                     f"skipped, {len(result.non_image)} non-image DICOM object(s))", path)


# --------------------------------------------------------------------------- discovery

@dataclass
class _Entry:
    """One file to read: a path on disk, or a zip member (path = zip / member name)."""

    path: Path
    data: bytes | None = None  # content (zip member, or a file read once); None: read from disk
    #: A zip member, read when its turn comes (never all members at once: a few MB of
    #: zip can hold GBs of deflated zeros).
    member: tuple[zipfile.ZipFile, zipfile.ZipInfo] | None = None
    problem: str | None = None  # why it could not be opened, when it could not


def _discover(paths: Sequence[str | Path] | str | Path,
              result: ReadResult, problems: list[ScanbenchError]) -> list[_Entry]:
    if isinstance(paths, str | Path):
        paths = [paths]
    entries: list[_Entry] = []
    for p in map(Path, paths):
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs.sort()
                entries.extend(_Entry(Path(root) / name) for name in sorted(files))
        elif p.is_file():
            entries.append(_Entry(p))
        else:
            _fail(result, problems, InputError("no such file or folder", p))
    return entries


def _zip_members(path: Path, result: ReadResult,
                 problems: list[ScanbenchError]) -> Iterator[_Entry]:
    """Members of a zip, each read in memory when its turn comes (never extracted to
    disk); a member larger than the series limit is refused unread."""
    try:
        zf = zipfile.ZipFile(path)
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        _fail(result, problems, InputError(f"damaged zip archive: {exc}", path))
        return
    limit = pixels.max_series_bytes()
    for info in infos:
        if info.is_dir():
            continue
        where = path / info.filename
        if info.file_size > limit:
            _fail(result, problems, InputError(
                f"zip member of {info.file_size / 2**20:.0f} MiB exceeds the "
                f"{limit / 2**20:.0f} MiB limit (scanbench.dicom.pixels.MAX_SERIES_BYTES, "
                "SCANBENCH_MAX_SERIES_MIB); not unpacked", where))
            continue
        yield _Entry(where, member=(zf, info))


# --------------------------------------------------------------------------- reading

@dataclass
class _State:
    """Frames gathered so far, by series key, and SOP instances already seen."""

    by_series: dict[str, list[Frame]] = field(default_factory=dict)
    seen: dict[str, Path] = field(default_factory=dict)
    duplicates: dict[str, list[str]] = field(default_factory=dict)
    #: Declared float32 bytes of each series so far (pixels.check_declared_size).
    series_bytes: dict[str, int] = field(default_factory=dict)
    #: Series over pixels.max_series_bytes(): their files from the first over the limit
    #: on, none of them decoded (and their frames already decoded dropped).
    over: dict[str, list[Path]] = field(default_factory=dict)


def _read(paths: Sequence[str | Path] | str | Path,
          progress: Callable[[int, int], None] | None) -> tuple[ReadResult, list[ScanbenchError]]:
    result = ReadResult()
    problems: list[ScanbenchError] = []
    entries = _discover(paths, result, problems)
    total = len(entries)
    state = _State()
    done = 0
    with warnings.catch_warnings():
        # pydicom warns about every odd value; the facts we need are checked here.
        warnings.simplefilter("ignore")
        queue = list(entries)
        archives: list[zipfile.ZipFile] = []
        while queue:
            entry = queue.pop(0)
            head = _head(entry)
            if (head is not None and head[:4] in (b"PK\x03\x04", b"PK\x05\x06")
                    and entry.member is not None):
                result.skipped.append((entry.path, "a zip inside a zip, not unpacked"))
            elif head is not None and head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
                members = list(_zip_members(entry.path, result, problems))
                archives.extend(m.member[0] for m in members[:1] if m.member is not None)
                total += len(members)
                queue[:0] = members
            else:
                _read_entry(entry, head, result, problems, state)
                entry.data = None  # parsed: the file's bytes need not be held any longer
            done += 1
            if progress is not None:
                progress(done, total)
        for archive in archives:
            archive.close()
        # One-file series: a file whose Series Instance UID was damaged lands in one.
        strays = [frames for frames in state.by_series.values()
                  if len({f.source.path for f in frames}) == 1]
        for key, frames in state.by_series.items():
            _assemble(key, frames, result, problems, state.duplicates.get(key, []), strays)
        for key, files in state.over.items():
            _fail(result, problems, _over_limit(state.series_bytes[key], files))
    return result, problems


def _over_limit(size: int, files: list[Path]) -> InputError:
    limit = pixels.max_series_bytes()
    more = f" and {len(files) - 1} more file(s) of the series" if len(files) > 1 else ""
    return InputError(
        f"its series needs at least {size / 2**20:.0f} MiB as float32, more than the "
        f"{limit / 2**20:.0f} MiB limit per series (scanbench.dicom.pixels.MAX_SERIES_BYTES, "
        f"SCANBENCH_MAX_SERIES_MIB); the series is refused, this file{more} before decoding",
        files[0])


def _fail(result: ReadResult, problems: list[ScanbenchError], exc: ScanbenchError) -> None:
    result.errors.append((exc.where or "", exc.message))
    problems.append(exc)


def _head(entry: _Entry) -> bytes | None:
    """The first 140 bytes (preamble, prefix and the first element's tag and VR). A file
    that looks like DICOM is read whole while it is open (into ``entry.data``), so that
    it is opened once."""
    if entry.data is not None:
        return entry.data[:_HEAD]
    if entry.member is not None:
        zf, info = entry.member
        try:
            with zf.open(info) as fh:
                head = fh.read(_HEAD)
                if (len(head) >= 132 and head[128:132] == b"DICM") or _looks_like_raw_dataset(
                        head):
                    entry.data = head + fh.read()
                return head
        except Exception as exc:  # zlib, CRC, unsupported compression, damaged archive
            entry.problem = f"cannot read the zip member ({type(exc).__name__}: {exc})"
            return None
    try:
        with open(entry.path, "rb") as fh:
            head = fh.read(_HEAD)
            if (len(head) >= 132 and head[128:132] == b"DICM") or _looks_like_raw_dataset(head):
                with contextlib.suppress(OSError):  # else _parse reads again, reports it
                    entry.data = head + fh.read()
            return head
    except OSError:
        return None


#: Bytes read to recognise a file: preamble, prefix, and a first element's tag and VR.
_HEAD = 140


def damaged_prefix(head: bytes) -> bool:
    """True if the 4 bytes at 128 are not ``DICM`` but a File Meta Information element
    (group 0002, PS3.10 §7.1) follows at 132: a Part 10 file whose prefix was damaged,
    not a file of another kind."""
    return (len(head) >= 140 and head[128:132] != b"DICM" and head[132:134] == b"\x02\x00"
            and head[135] == 0)  # an element of group 0002 below 0x0100, little endian


def _looks_like_raw_dataset(head: bytes) -> bool:
    """A data set without Part 10 preamble: it opens with a group 0002 or 0008 element."""
    if len(head) < 8:
        return False
    group = int.from_bytes(head[:2], "little")
    element = int.from_bytes(head[2:4], "little")
    return group in (0x0002, 0x0008) and element < 0x0100


def _read_entry(entry: _Entry, head: bytes | None, result: ReadResult,
                problems: list[ScanbenchError], state: _State) -> None:
    path = entry.path
    if head is None:
        _fail(result, problems, InputError(entry.problem or "cannot open the file", path))
        return
    if path.name.upper() == "DICOMDIR":
        result.skipped.append((path, "DICOMDIR (media directory), not an image"))
        return
    part10 = len(head) >= 132 and head[128:132] == b"DICM"
    if not part10 and damaged_prefix(head):
        _fail(result, problems, InputError(
            f"damaged: bytes 128-131 read {bytes(head[128:132])!r}, not the DICM prefix, "
            "but File Meta Information follows", path))
        return
    if not part10 and not _looks_like_raw_dataset(head):
        result.skipped.append((path, "not DICOM (no DICM prefix at byte 128)"))
        return
    try:
        ds = _parse(entry, force=not part10)
    except ScanbenchError as exc:
        _fail(result, problems, exc)
        return
    except Exception as exc:  # pydicom raises many types on damaged input
        _fail(result, problems, InputError(
            f"damaged DICOM, cannot be parsed ({type(exc).__name__}: {exc})", path))
        return
    try:
        _classify(entry, ds, part10, result, problems, state)
    except ScanbenchError as exc:
        _fail(result, problems, exc)
    except Exception as exc:
        _fail(result, problems, InputError(
            f"damaged DICOM header ({type(exc).__name__}: {exc})", path))


def _parse(entry: _Entry, force: bool) -> Dataset:
    """Parse from memory: a damaged length field then yields a short value, whereas
    reading it from a file object would first allocate the length the header claims."""
    data = entry.data if entry.data is not None else entry.path.read_bytes()
    ds = parse(data, force=force)
    # pydicom's FileDataset keeps the BytesIO it was read from (``buffer``), and with it
    # every byte of the file, Pixel Data included, for as long as the data set lives:
    # half a volume more for a 16-bit series. Every value has been read from memory
    # already (no deferred reads), so the buffer is not needed.
    if isinstance(getattr(ds, "buffer", None), io.BytesIO):
        ds.buffer = None
    return ds


def _sop_class(ds: Dataset) -> str:
    uid = h.text(ds, "SOPClassUID")
    if uid is None and hasattr(ds, "file_meta"):
        uid = h.text(ds.file_meta, "MediaStorageSOPClassUID")
    return uid or ""


def _sop_name(uid: str) -> str:
    if not uid:
        return "unknown SOP class (no SOP Class UID)"
    name = UID(uid).name
    return name if name != uid else f"unknown SOP class {uid}"


def _truncation(ds: Dataset) -> str | None:
    """Describe the last element if the file ended inside its value (pydicom keeps short
    values silently), else None."""
    try:
        tags = list(ds._dict)
    except Exception:
        return None
    if not tags:
        return None
    last = ds._dict[max(tags, key=int)]  # int(): BaseTag's own comparisons are slow
    if (isinstance(last, RawDataElement) and last.length != 0xFFFFFFFF
            and last.value is not None and len(last.value) < last.length):
        return (f"truncated: element {last.tag} needs {last.length} bytes but the file "
                f"ends after {len(last.value)}")
    return None


def _classify(entry: _Entry, ds: Dataset, part10: bool, result: ReadResult,
              problems: list[ScanbenchError], state: _State) -> None:
    by_series, seen, duplicates = state.by_series, state.seen, state.duplicates
    path = entry.path
    meta = getattr(ds, "file_meta", None)
    if len(ds) == 0:
        # A damaged file, never a note: a file cut anywhere after the DICM prefix must not
        # vanish from the results without a word (PS3.10 §7.1: File Meta Information and a
        # data set follow the prefix).
        if part10 and meta is not None and len(meta) > 0:
            raise InputError("truncated: the file ends after its meta information; no data set",
                             path)
        size = len(entry.data) if entry.data is not None else path.stat().st_size
        if part10:
            raise InputError(f"truncated: the file ends {size - 132} byte(s) after the DICM "
                             "prefix, before its File Meta Information and data set", path)
        raise InputError(f"damaged: the file opens like a DICOM data set but its {size} bytes "
                         "hold no complete data element", path)
    sop = _sop_class(ds)
    if sop and (len(sop) > 64 or not _UID_SYNTAX.fullmatch(sop)):
        # A damaged SOP Class UID would otherwise file an image as an unknown non-image
        # object, a note instead of a failure (PS3.5 §9.1: digits and dots, 64 at most).
        raise InputError(f"damaged header: SOP Class UID (0008,0016) {sop!r} is not a UID",
                         path)
    if sop == _DICOMDIR_UID or h.has(ds, "DirectoryRecordSequence"):
        result.skipped.append((path, "DICOMDIR (media directory), not an image"))
        return
    truncated = _truncation(ds)
    if truncated:
        raise InputError(truncated, path)
    if not pixels.has_pixels(ds):
        if sop in _CROSS_SECTIONAL:
            raise InputError(f"{_sop_name(sop)} without Pixel Data (7FE0,0010): the file is "
                             "truncated or damaged", path)
        result.non_image.append((path, _sop_name(sop)))
        return
    has_geometry = any(h.has(ds, kw) for kw in (
        "ImagePositionPatient", "PerFrameFunctionalGroupsSequence",
        "SharedFunctionalGroupsSequence", "DetectorInformationSequence"))
    if not has_geometry and sop not in _CROSS_SECTIONAL:
        result.non_image.append((path, _sop_name(sop)))
        return
    uid = h.text(ds, "SeriesInstanceUID")
    key = uid or f"<no Series Instance UID> {path.parent}"
    instance = h.text(ds, "SOPInstanceUID")
    if instance is not None and instance in seen:
        duplicates.setdefault(key, []).append(f"{path} repeats {seen[instance]}")
        return
    # Memory guard, before decoding (pixels module docstring): the instance's declared
    # size, then the series' running total; a series over its limit is refused whole.
    size = pixels.check_declared_size(ds, path)
    state.series_bytes[key] = state.series_bytes.get(key, 0) + size
    if key in state.over or state.series_bytes[key] > pixels.max_series_bytes():
        state.over.setdefault(key, []).append(path)
        by_series.pop(key, None)  # frees the frames of this series decoded so far
        return
    source = Source(path=path, ds=ds, pixels=_own_pages(pixels.decode(ds, path)))
    frames = plane_frames(source)
    for f in frames:
        f.alternates["folder"] = str(path.parent)
    if instance is not None:
        seen[instance] = path
    by_series.setdefault(key, []).extend(frames)
    # Pixel bytes are decoded (or viewed) once; drop the element so memory is held once.
    if source.pixels.base is None or not isinstance(source.pixels.base, bytes | memoryview):
        for kw in pixels.PIXEL_KEYWORDS:
            if kw in ds:
                del ds[kw]


#: Stored values of at least this many bytes get memory of their own (_own_pages).
_OWN_PAGES_BYTES = 256 * 1024


def _own_pages(stored: np.ndarray) -> np.ndarray:
    """``stored`` copied into an anonymous memory map of its own, for large images.

    Why: the stored values of a file otherwise live in the Pixel Data bytes (or a
    decoder's array) on the allocator's heap, among the freed buffers of the files read
    before; freeing them after assembly leaves the pages resident. A map of its own is
    returned to the system the moment its source is released (``Source.release``), so
    that assembling a volume slice by slice does not hold the volume and every file's
    pixels at once. The values, their type and byte order are unchanged.
    """
    if stored.nbytes < _OWN_PAGES_BYTES:
        return stored
    try:
        pages = mmap.mmap(-1, stored.nbytes)
    except OSError:  # out of address space or map count: keep the values where they are
        return stored
    own = np.frombuffer(pages, dtype=stored.dtype)
    own = own.reshape(stored.shape)
    own[...] = stored
    return own


# --------------------------------------------------------------------------- assembly

def _where(frames: Sequence[Frame], key: str) -> str:
    """How an error names a series: its folder (the file itself when the series is one
    file) and its description."""
    ds = frames[0].source.ds
    desc = h.text(ds, "SeriesDescription") or h.text(ds, "SeriesInstanceUID") or key
    files = {str(f.source.path) for f in frames}
    if len(files) == 1:
        return f"{files.pop()}: series '{desc}'"
    parents = sorted({str(f.source.path.parent) for f in frames})
    folder = parents[0] if len(parents) == 1 else os.path.commonpath(parents)
    return f"{folder}: series '{desc}'"


def _assemble(key: str, frames: list[Frame], result: ReadResult,
              problems: list[ScanbenchError], duplicates: list[str],
              strays: Sequence[list[Frame]] = ()) -> None:
    where = _where(frames, key)
    try:
        volumes, split_warnings = geometry.split_volumes(frames, where)
    except ScanbenchError as exc:
        _fail(result, problems, exc)
        return
    # A file whose orientation or size was damaged becomes a volume of its own.
    strays = [*strays, *(part for _label, part in volumes
                         if len({f.source.path for f in part}) == 1)]
    for number, (label, part) in enumerate(volumes, start=1):
        part_where = where if len(volumes) == 1 else f"{where} volume {number} ({label})"
        notes = list(split_warnings)
        if len(volumes) > 1:
            notes.append(f"this is volume {number}: {label}")
        if duplicates:
            notes.append(f"{len(duplicates)} file(s) repeat an instance already read (same SOP "
                         f"Instance UID) and were ignored, e.g. {duplicates[0]}")
        try:
            result.series.append(_build(part, part_where, notes, key))
        except SeriesError as exc:
            _blame_one_file(exc, part, part_where, notes, key, result, problems, strays)
        except ScanbenchError as exc:
            _fail(result, problems, exc)


#: Series up to this many files are searched for the one file that breaks them.
_BLAME_MAX_FILES = 1000


def _blame_one_file(exc: SeriesError, frames: list[Frame], where: str, notes: list[str],
                    key: str, result: ReadResult, problems: list[ScanbenchError],
                    strays: Sequence[list[Frame]] = ()) -> None:
    """A series that cannot form a volume because of one damaged file (a slice position
    or orientation corrupted) is reported as that file's failure, not only the series'.

    Each file is left out in turn. If one file's absence leaves a valid volume whose
    slice spacing is under half of what any other absence leaves (with three files,
    leaving out a good one leaves a "volume" of the good and the displaced slice), and
    that file is not an even number of spacings away (slices missing beside it, not a
    damaged position), it is the failure and the others form the series, with a warning.
    If exactly one file's absence leaves a regular stack with one hole (where it
    belongs), the series fails and the failure names that file. If the series itself
    is a regular stack with one hole and a one-file series or volume of ``strays`` (its
    Series Instance UID, orientation or size damaged) lies in the hole, the failure
    names that file. Otherwise the series' own error stands.
    """
    paths = list(dict.fromkeys(f.source.path for f in frames))
    hole = _hole_at(frames)
    if hole is not None:
        at, spacing = hole
        normal = frames[0].normal
        fillers = {stray[0].source.path for stray in strays
                   if len(stray) == 1 and stray[0].source.path not in paths
                   and abs(float(stray[0].position @ normal) - at) <= 0.1 * spacing}
        if len(fillers) == 1:
            _fail(result, problems, SeriesError(
                f"its slice lies in the gap of {where} ({exc.message}) but its header puts "
                "it in a series or volume of its own: a damaged Series Instance UID, "
                "orientation or size?", fillers.pop()))
            return
    if not 3 <= len(paths) <= _BLAME_MAX_FILES:
        _fail(result, problems, exc)
        return
    isolated_ok = h.text(frames[0].source.ds, "Modality") == "CT"
    fits: list[tuple[float, Path, list[Frame]]] = []
    holes: list[Path] = []
    for path in paths:
        rest = [f for f in frames if f.source.path != path]
        try:
            st = geometry.stack(rest, where, isolated_ok=isolated_ok)
        except ScanbenchError:
            if _one_hole(rest):
                holes.append(path)
            continue
        except Exception:
            continue
        if st.isolated_positions_mm is None:
            fits.append((abs(float(st.spacing[0])), path, rest))
    fits.sort(key=lambda fit: fit[0])
    if fits and (len(fits) == 1 or 2 * fits[0][0] < fits[1][0]):
        spacing, path, rest = fits[0]
        if not _whole_spacings_away(path, frames, rest, spacing):
            _fail(result, problems, SeriesError(
                f"does not fit its series ({exc.message}); the series is read without it",
                path))
            try:
                result.series.append(_build(rest, where, [*notes, (
                    f"{path} left out: the series forms a volume only without it "
                    f"({exc.message})")], key))
            except ScanbenchError as again:
                _fail(result, problems, again)
            return
    if not fits and len(holes) == 1:
        _fail(result, problems, SeriesError(
            f"does not fit its series: {exc.message}; the other files form a regular stack "
            "with a hole where this file belongs", holes[0]))
        return
    _fail(result, problems, exc)


def _whole_spacings_away(path: Path, frames: list[Frame], rest: list[Frame],
                         spacing: float) -> bool:
    """True if the file's slices lie a few (at most 4) whole spacings from the rest: then
    slices are missing beside it, and its position may well be right. (Farther away, a
    whole number of spacings is a coincidence more likely than a run of lost slices.)"""
    normal = rest[0].normal
    own = [float(f.position @ normal) for f in frames if f.source.path == path]
    others = np.array([float(f.position @ normal) for f in rest])
    if spacing <= 0 or not own:
        return False
    for d in own:
        ratio = float(np.min(np.abs(others - d))) / spacing
        if ratio > 4.5 or abs(ratio - round(ratio)) > 0.05:
            return False
    return True


def _hole_at(frames: list[Frame]) -> tuple[float, float] | None:
    """(position of the one missing slice along the normal, spacing) when the frames are
    a regular stack but for one missing slice; None otherwise."""
    if not _one_hole(frames):
        return None
    normal = frames[0].normal
    d = np.sort(np.array([float(f.position @ normal) for f in frames]))
    steps = np.diff(d)
    k = int(np.argmax(steps))
    spacing = float(np.median(steps))
    return float(d[k] + spacing), spacing


def _one_hole(frames: list[Frame]) -> bool:
    """True if the frames' positions along the slice normal are evenly spaced but for one
    step of twice the spacing (one slice missing), within geometry's tolerances."""
    normal = frames[0].normal
    d = np.sort(np.array([float(f.position @ normal) for f in frames]))
    steps = np.diff(d)
    if steps.size < 2:
        return False
    median = float(np.median(steps))
    tol = max(geometry.SPACING_RTOL * median, geometry.SPACING_ATOL_MM)
    if median <= 0:
        return False
    regular = np.abs(steps - median) <= tol
    double = np.abs(steps - 2 * median) <= 2 * tol
    return bool(np.all(regular | double) and np.count_nonzero(double) == 1)


def _build(frames: list[Frame], where: str, split_warnings: list[str], key: str) -> Series:
    # CT only (issue 11): a CatPhan exported as one slice per module is a legitimate series
    # of isolated slices; geometry.stack still refuses gaps in every other series, and the
    # analysis registry refuses isolated slices for every analysis but ct.catphan.
    isolated_ok = h.text(frames[0].source.ds, "Modality") == "CT"
    st = geometry.stack(frames, where, isolated_ok=isolated_ok)
    n, rows, cols = len(st.frames), st.frames[0].rows, st.frames[0].columns
    need = n * rows * cols * 4
    if need > pixels.max_series_bytes():
        raise InputError(f"the series needs {need / 2**20:.0f} MiB as float32, more than the "
                         f"{pixels.max_series_bytes() / 2**20:.0f} MiB limit "
                         "(scanbench.dicom.pixels.MAX_SERIES_BYTES)", where)
    facts = series_facts(st.frames)  # before the stored values are released
    # Each file's stored values are freed once all its frames are in the volume (never
    # used again: every frame belongs to one volume, built once), so the peak is about
    # the volume itself; np.empty's pages become resident only as slices are written.
    left: dict[int, int] = {}
    for f in st.frames:
        left[id(f.source)] = left.get(id(f.source), 0) + 1
    whole = {id(f.source) for f in st.frames if left[id(f.source)] == f.source.pixels.shape[0]}
    voxels = np.empty((n, rows, cols), dtype=np.float32)
    for k, f in enumerate(st.frames):
        voxels[k] = f.values()
        left[id(f.source)] -= 1
        if left[id(f.source)] == 0 and id(f.source) in whole:
            f.source.release()
    warnings_ = list(split_warnings) + st.warnings
    if key.startswith("<no Series Instance UID>"):
        warnings_.append("no Series Instance UID (0020,000E): files of this folder were "
                         "grouped together")
    files: list[Path] = []
    uids: list[str] = []
    for f in st.frames:
        if not files or files[-1] != f.source.path:
            files.append(f.source.path)
            uids.append(h.text(f.source.ds, "SOPInstanceUID") or "")
    return Series(voxels=voxels, spacing=st.spacing, affine=st.affine,
                  facts=facts, files=files, sop_instance_uids=uids,
                  warnings=warnings_, isolated_positions_mm=st.isolated_positions_mm)

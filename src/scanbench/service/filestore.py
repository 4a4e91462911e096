"""The file store: every received DICOM instance kept once, keyed by SOP Instance UID.

Each instance is written atomically: to a temporary file in the destination
folder, flushed and fsync'd, then linked to its final name (``os.link`` fails
if the name exists, so of two writers of one instance exactly one creates it
and the file is never replaced or seen half-written), then the folder is
fsync'd so the name itself survives a crash. A stale temporary file (a
process killed mid-write) is never mistaken for an instance: temporary names
start with ``.tmp-`` and :meth:`FileStore.clean` removes them at start-up.

Layout: ``<root>/<aa>/<SOP Instance UID>.dcm`` with ``aa`` the first two hex
digits of the UID's SHA-1: 256 folders, so that after the first few hundred
instances no write has to create (and fsync) a folder, and a folder holds
about 4000 files per million instances (ext4 and XFS index large folders).

Durability costs two flushes per new instance: ``fdatasync`` of the file (its
data and size) and ``fsync`` of its folder (its name).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

from scanbench.errors import InputError

#: A UID as PS3.5 §9.1 allows it (digits and dots, at most 64 characters).
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_TMP = ".tmp-"


def valid_uid(uid: str) -> bool:
    return len(uid) <= 64 and bool(_UID.match(uid))


class FileStore:
    """DICOM files under ``root``, one per SOP Instance UID."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync

    def relative(self, sop_uid: str) -> str:
        """The file's path relative to the root (``aa/UID.dcm``)."""
        if not valid_uid(sop_uid):
            raise InputError(f"SOP Instance UID {sop_uid!r} is not a valid UID", "file store")
        digest = hashlib.sha1(sop_uid.encode("ascii")).hexdigest()
        return f"{digest[:2]}/{sop_uid}.dcm"

    def path(self, sop_uid: str) -> Path:
        return self.root / self.relative(sop_uid)

    def write(self, sop_uid: str, data: bytes) -> tuple[Path, bool]:
        """Write ``data`` as the instance ``sop_uid``; (path, True) if this call created the
        file, (path, False) if it was already there (its content is kept). Durable on
        return."""
        final = self.path(sop_uid)
        if final.exists():
            return final, False
        folder = final.parent
        new_folder = not folder.is_dir()
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{_TMP}{uuid.uuid4().hex}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if self.fsync:
                os.fdatasync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, final)
            created = True
        except FileExistsError:
            created = False  # another writer won the race; its file is complete
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if created and self.fsync:
            _fsync_dir(folder)
            if new_folder:  # the new folder's name must survive too
                _fsync_dir(self.root)
        return final, created

    def clean(self) -> int:
        """Remove temporary files left by a process killed mid-write; how many."""
        removed = 0
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                if name.startswith(_TMP):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(folder, name))
                        removed += 1
        return removed

    def uids(self) -> Iterator[tuple[str, Path]]:
        """(SOP Instance UID, path) of every stored instance, from the names alone."""
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                if name.endswith(".dcm") and not name.startswith(_TMP):
                    yield name[:-4], Path(folder) / name


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems do not fsync folders; the file itself is durable
    finally:
        os.close(fd)

"""The file store: atomic, idempotent writes keyed by SOP Instance UID."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from scanbench.errors import InputError
from scanbench.service.filestore import FileStore


def test_one_file_per_uid_even_with_racing_writers(tmp_path: Path) -> None:
    fs = FileStore(tmp_path)
    barrier = threading.Barrier(8)
    created: list[bool] = []

    def write(k: int) -> None:
        barrier.wait()
        created.append(fs.write("1.2.840.99.1", f"copy {k}".encode() * 1000)[1])

    threads = [threading.Thread(target=write, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert created.count(True) == 1
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files == [fs.path("1.2.840.99.1")]
    body = files[0].read_bytes()
    assert body in {f"copy {k}".encode() * 1000 for k in range(8)}  # one whole copy


def test_clean_removes_partial_writes_only(tmp_path: Path) -> None:
    fs = FileStore(tmp_path)
    fs.write("1.2.3", b"DICM")
    partial = fs.path("1.2.3").parent / ".tmp-0123"
    partial.write_bytes(b"half")
    assert [uid for uid, _ in fs.uids()] == ["1.2.3"]
    assert fs.clean() == 1 and not partial.exists() and fs.path("1.2.3").exists()


@pytest.mark.parametrize("uid", ["../../etc/passwd", "1.2.x", "", "1." + "2" * 70])
def test_a_uid_is_never_a_path(tmp_path: Path, uid: str) -> None:
    with pytest.raises(InputError, match="not a valid UID"):
        FileStore(tmp_path).write(uid, b"x")

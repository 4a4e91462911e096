"""``POST /api/v1/uploads``: a zip of DICOM through the node's ingest path (stored once,
its series analysed by a job, its new device given to the uploader's site), and every
kind of bad archive refused with a JSON error that names the problem: not a zip, a zip
of garbage, zip-slip names, a decompression bomb, too many members, over the size
limit, the wrong content type; roles and other sites as everywhere."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from api_world import World, populate, tiny_dicom_zip
from node_dicom import uniform_phantom
from scanbench.store import Database
from scanbench.store import models as m
from scanbench.web import audit, auth
from scanbench.web.api import create_app, upload_routes
from scanbench.web.api.app import CSRF_HEADER

ZIP = {"content-type": "application/zip"}


@pytest.fixture(scope="module", autouse=True)
def cheap_argon2() -> Iterator[None]:
    """Argon2id at its lowest cost here (its parameters are test_web_audit_auth.py's)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024,
                                                   parallelism=1))
        yield


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("upload-home")
    db = Database(url=f"sqlite:///{home / 'scanbench.db'}")
    try:
        app = create_app(db)
        app.state.home = home  # as `scanbench serve` sets it
        yield World(db, app, populate(db))
    finally:
        db.close()


@pytest.fixture(scope="module")
def phantom_zip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A simulated PET uniform-cylinder series, a text file and a folder, zipped."""
    folder = tmp_path_factory.mktemp("phantom")
    uniform_phantom(folder)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("study/", "")
        for f in sorted(folder.glob("*.dcm")):
            zf.write(f, f"study/{f.name}")
        zf.writestr("study/README.txt", "sent from the scanner console")
    return out.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def _post(world: World, user: str, body: bytes, site: str = "site_a",
          headers: dict[str, str] | None = None) -> Any:
    client, csrf = world.client(user)
    return client.post(f"/api/v1/uploads?site_id={world.ids[site]}", content=body,
                       headers={**ZIP, CSRF_HEADER: csrf, **(headers or {})})


def _error(r: Any, status: int, *words: str) -> None:
    assert r.status_code == status, (r.status_code, r.text[:400])
    assert r.headers["content-type"].startswith("application/json")
    message = r.json()["error"]
    assert "Traceback" not in r.text
    for w in words:
        assert w in message, (w, message)


def test_a_zip_of_dicom_is_stored_analysed_and_its_device_given_to_the_site(
        world: World, phantom_zip: bytes) -> None:
    r = _post(world, "te_a", phantom_zip)
    assert r.status_code == 201, r.text[:500]
    out = r.json()
    n_files = len(zipfile.ZipFile(io.BytesIO(phantom_zip)).namelist()) - 2
    assert out["stored"] == n_files and out["duplicates"] == 0 and not out["rejected"]
    assert out["skipped"] == [{"entry": "study/README.txt", "reason": "not DICOM"}]
    assert len(out["series"]) == 1
    (job,) = out["jobs"]
    assert job["state"] == "done", job["error"]
    assert job["series"] == out["series"] and job["result_ids"]
    client, _ = world.client("vi_a")
    result = client.get(f"/api/v1/results/{job['result_ids'][0]}")
    assert result.status_code == 200, result.text  # site A sees it: the device is A's
    with world.db.sessions() as s:
        series = s.scalars(select(m.Series).where(
            m.Series.series_uid == out["series"][0])).one()
        device = s.get_one(m.Device, series.device_id)
        assert device.site_id == world.ids["site_a"]
        assert s.scalar(select(func.count()).select_from(m.Instance)) == n_files
        assert s.scalars(select(m.AuditEntry.action).where(
            m.AuditEntry.action == "upload")).all() == ["upload"]
        assert audit.verify(s).ok
    # The same zip again: every instance recognised, nothing stored twice.
    again = _post(world, "te_a", phantom_zip)
    assert again.status_code == 201, again.text[:300]
    assert again.json()["stored"] == 0 and again.json()["duplicates"] == n_files
    with world.db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(m.Instance)) == n_files


def test_not_a_zip_and_a_zip_of_garbage_are_clear_json_errors(world: World) -> None:
    _error(_post(world, "te_a", b"this is no zip at all"), 400, "not a readable zip")
    _error(_post(world, "te_a", b""), 400, "not a readable zip")
    garbage = _zip({"a.dcm": bytes(range(256)) * 4, "b.bin": b"\x00" * 10,
                    "notes.txt": b"hello"})
    _error(_post(world, "te_a", garbage), 400, "no DICOM", "a.dcm: not DICOM")
    # Bytes that claim DICOM (the DICM prefix) but are truncated: rejected with a reason.
    fake = _zip({"x.dcm": b"\x00" * 128 + b"DICM" + b"\x02\x00\x00\x00garbage"})
    _error(_post(world, "te_a", fake), 400, "no DICOM", "x.dcm")


@pytest.mark.parametrize("name, why", [
    ("../../etc/cron.d/evil", "'..' part"), ("/etc/passwd", "absolute path"),
    ("C:/Windows/evil.dcm", "absolute path"), ("a\\..\\evil.dcm", "backslash")])
def test_zip_slip_names_refuse_the_whole_upload(world: World, name: str, why: str) -> None:
    with world.db.sessions() as s:
        before = s.scalar(select(func.count()).select_from(m.Instance))
    r = _post(world, "te_a", _zip({"fine.txt": b"x", name: b"x"}))
    _error(r, 400, why, "refused")
    with world.db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(m.Instance)) == before


def test_a_decompression_bomb_is_refused_before_it_is_unpacked(world: World) -> None:
    bomb = _zip({"zeros.dcm": b"\x00" * (8 << 20)})  # 8 MiB of zeros: ~8 KiB packed
    assert len(bomb) < 100_000
    _error(_post(world, "te_a", bomb), 413, "decompression bomb", "zeros.dcm")


def test_size_and_member_limits(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upload_routes, "MAX_ENTRIES", 3)
    _error(_post(world, "te_a", _zip({f"{i}.txt": b"x" for i in range(4)})), 413,
           "4 members", "at most 3")
    monkeypatch.setenv("SCANBENCH_MAX_UPLOAD_MIB", "0.01")  # 10 KiB
    _error(_post(world, "te_a", b"\x00" * 20_000), 413, "SCANBENCH_MAX_UPLOAD_MIB")


def test_content_type_roles_and_other_sites(world: World) -> None:
    body = _zip({"a.txt": b"x"})
    _error(_post(world, "te_a", body, headers={"content-type": "application/json"}), 400,
           "Content-Type: application/zip")
    _error(_post(world, "vi_a", body), 403, "technologist")
    _error(_post(world, "te_a", body, site="site_b"), 404, "no site")
    client, csrf = world.client("te_a")
    _error(client.post("/api/v1/uploads", content=body,
                       headers={**ZIP, CSRF_HEADER: csrf}), 422, "site_id")


def test_upload_on_postgresql_stores_once(pg_server: Any,
                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    """The ingest path's inserts (ON CONFLICT DO NOTHING on each UID) on PostgreSQL."""
    db = Database(url=pg_server.create())
    try:
        app = create_app(db)
        app.state.home = tmp_path_factory.mktemp("upload-pg")
        w = World(db, app, populate(db))
        body = tiny_dicom_zip()
        r = _post(w, "te_a", body)
        assert r.status_code == 201, r.text[:300]
        assert (r.json()["stored"], r.json()["duplicates"]) == (1, 0)
        assert r.json()["skipped"] == [{"entry": "notes.txt", "reason": "not DICOM"}]
        again = _post(w, "te_a", body)
        assert (again.json()["stored"], again.json()["duplicates"]) == (0, 1)
        with db.sessions() as s:
            assert s.scalar(select(func.count()).select_from(m.Instance)) == 1
    finally:
        db.close()

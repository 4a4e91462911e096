"""The evaluation endpoints of /api/v1 through FastAPI's test client on a real SQLite
database: another site's device, scorecard and due list are 404; recomputing needs a
physicist and adds nothing for unchanged inputs; assignments need the admin of every
site they touch (a fleet-wide one: every site) and are audited; stored specs, one
version and the diff."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from scanbench.evaluation import assign as A
from scanbench.store import Database, devices, repo
from scanbench.store import models as m
from scanbench.types import DeviceIdentity, Result
from scanbench.web import audit, auth, sites
from scanbench.web.api import create_app
from scanbench.web.api.app import CSRF_HEADER

CLI = audit.Actor(None, "cli:test")
PW = "correct horse battery"
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
USERS = {"vi_a": ("A", "viewer"), "ph_a": ("A", "physicist"),
         "ad_a": ("A", "admin"), "vi_b": ("B", "viewer"), "ad_ab": ("AB", "admin")}


@dataclass
class World:
    db: Database
    app: object
    ids: dict[str, int]
    clients: dict[str, TestClient] = field(default_factory=dict)

    def client(self, user: str) -> TestClient:
        """A signed-in client of ``user`` (one sign-in per module: Argon2 is slow)."""
        if user not in self.clients:
            c = TestClient(self.app)  # type: ignore[arg-type]
            r = c.post("/api/v1/auth/login", json={"username": user, "password": PW})
            assert r.status_code == 200, r.text
            c.headers[CSRF_HEADER] = r.json()["csrf_token"]
            self.clients[user] = c
        return self.clients[user]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One database for the module (users cost an Argon2 hash each); each test leaves
    the spec in force for the PET devices as it found it."""
    db = Database(url=f"sqlite:///{tmp_path_factory.mktemp('evalapi') / 'db.sqlite'}")
    ids: dict[str, int] = {}
    try:
        with db.sessions() as s:
            a = sites.add_site(s, CLI, "Site A")
            b = sites.add_site(s, CLI, "Site B")
            ids["site_a"], ids["site_b"] = a.id, b.id
            for name, (where, role) in USERS.items():
                user = auth.add_user(s, CLI, name, PW)
                for site in ((a, b) if where == "AB" else (a,) if where == "A" else (b,)):
                    auth.grant(s, CLI, user, site, role)
            for key, site in (("a", a), ("b", b)):
                ident = DeviceIdentity("Siemens", "Biograph Vision", key)
                dev = devices.register(s, ident, modality="PT")
                dev.site_id = site.id
                s.flush()
                ids[f"device_{key}"] = dev.id
                for day in (10, 100, 190):  # one calibration QC a quarter, all passing
                    r = Result("pet.calibration_uniformity", "EARL calibration QC",
                               f"1.{key}.{day}", ident,
                               dt.datetime(2026, 1, 1, 9) + dt.timedelta(days=day))
                    r.add("activity_concentration_bias_percent", 3.0, "%")
                    repo.save_result(s, r, series_id=None, device_id=dev.id)
            A.assign(s, CLI, "earl-calibration", A.DeviceClassCriteria(modality="PT"),
                     valid_from=T0)
            s.commit()
        yield World(db, create_app(db), ids)
    finally:
        db.close()


BODY = {"date_from": "2026-01-01", "date_to": "2026-09-30"}


def test_another_sites_scorecards_and_due_lists_are_404(world: World) -> None:
    ids = world.ids
    ph = world.client("ph_a")
    r = ph.post(f"/api/v1/devices/{ids['device_a']}/scorecards", json=BODY)
    assert r.status_code == 200, r.text
    card = r.json()[0]["scorecard"]
    assert card["data"]["spec"]["name"] == "earl-calibration"
    assert card["data"]["tests"][0]["status"] == "passed" and card["compliance"] == 1.0
    vi_b = world.client("vi_b")
    for url in (f"/api/v1/devices/{ids['device_a']}/scorecards",
                f"/api/v1/scorecards/{card['id']}",
                f"/api/v1/devices/{ids['device_a']}/due",
                f"/api/v1/sites/{ids['site_a']}/due"):
        got = vi_b.get(url)
        assert got.status_code == 404, (url, got.text)
    assert vi_b.get(f"/api/v1/scorecards/summary?site_id={ids['site_a']}").status_code == 404
    summary = vi_b.get("/api/v1/scorecards/summary?by=site").json()
    assert [g["site_id"] for g in summary["groups"]] == [ids["site_b"]]
    assert summary["groups"][0]["without_scorecard"] == [ids["device_b"]]
    vi_a = world.client("vi_a")
    assert vi_a.get(f"/api/v1/scorecards/{card['id']}").json()["id"] == card["id"]
    due = vi_a.get(f"/api/v1/devices/{ids['device_a']}/due").json()
    assert due["spec"].startswith("earl-calibration")
    assert [i["test"] for i in due["items"]] == ["pet.calibration_uniformity"]


def test_recompute_needs_a_physicist_and_unchanged_inputs_add_nothing(world: World) -> None:
    ids = world.ids
    url = f"/api/v1/devices/{ids['device_a']}/scorecards"
    assert world.client("vi_a").post(url, json=BODY).status_code == 403
    ph = world.client("ph_a")
    before = len(ph.get(url).json())
    first = ph.post(url, json=BODY).json()
    again = ph.post(url, json=BODY).json()
    assert not again[0]["added"]
    assert first[0]["scorecard"]["id"] == again[0]["scorecard"]["id"]
    assert len(ph.get(url).json()) == before + first[0]["added"] == 1
    assert ph.post(f"/api/v1/devices/{ids['device_b']}/scorecards",
                   json=BODY).status_code == 404
    bad = ph.post(url, json={"date_from": "2026-05-01", "date_to": "2026-04-01"})
    assert bad.status_code == 400 and "before" in bad.json()["error"]


def test_assignments_need_the_admin_of_every_site_they_touch(world: World) -> None:
    ids = world.ids
    one = {"spec_name": "earl1", "device_id": ids["device_a"]}
    fleet = {"spec_name": "earl2", "modality": "PT"}
    assert world.client("ph_a").post("/api/v1/spec-assignments", json=one).status_code == 403
    ad_a = world.client("ad_a")
    r = ad_a.post("/api/v1/spec-assignments", json=one)
    assert r.status_code == 201, r.text
    device_assignment = r.json()["id"]
    assert ad_a.post("/api/v1/spec-assignments", json=fleet).status_code == 403  # not B's
    assert ad_a.post("/api/v1/spec-assignments", json={
        "spec_name": "earl1", "device_id": ids["device_b"]}).status_code == 404
    assert ad_a.post("/api/v1/spec-assignments", json={
        "spec_name": "no-such-spec", "site_id": ids["site_a"]}).status_code == 400
    ad_ab = world.client("ad_ab")
    r = ad_ab.post("/api/v1/spec-assignments", json=fleet)
    assert r.status_code == 201, r.text
    fleet_id = r.json()["id"]
    seen_b = {a["id"] for a in world.client("vi_b").get("/api/v1/spec-assignments").json()}
    assert fleet_id in seen_b and device_assignment not in seen_b
    assert ad_a.post(f"/api/v1/spec-assignments/{fleet_id}/deactivate").status_code == 403
    ended = ad_a.post(f"/api/v1/spec-assignments/{device_assignment}/deactivate")
    assert ended.status_code == 200 and ended.json()["active"] is False
    assert ad_ab.post(f"/api/v1/spec-assignments/{fleet_id}/deactivate").status_code == 200
    with world.db.sessions() as s:
        entries = list(s.scalars(select(m.AuditEntry).where(
            m.AuditEntry.entity == "spec_assignment").order_by(m.AuditEntry.id)))
        actions = [(e.action, e.actor) for e in entries]
        assert ("spec.assign", "ad_a") in actions and ("spec.assign", "ad_ab") in actions
        last = entries[-2]  # the device assignment ended (then the fleet-wide one)
        assert last.action == "spec.unassign" and last.site_id == ids["site_a"]
        assert (last.before or {})["active"] is True and (last.after or {})["active"] is False


def test_stored_specs_one_version_and_the_diff(world: World) -> None:
    vi = world.client("vi_a")
    names = {s["name"] for s in vi.get("/api/v1/specs").json()}
    assert {"earl1", "earl2", "earl-calibration"} <= names
    one = vi.get("/api/v1/specs/earl1").json()
    assert one["version"] == "2017-01" and one["yaml"].startswith("# EARL1")
    assert any(r["measurement"] == "rc_mean" for r in one["parsed"]["rules"])
    assert vi.get("/api/v1/specs/earl1/2017-01").json()["sha256"] == one["sha256"]
    assert vi.get("/api/v1/specs/earl1/1999").status_code == 404
    assert vi.get("/api/v1/specs/nothing").status_code == 404
    diff = vi.get("/api/v1/spec-diff?a=earl1&b=earl2@2018").json()
    assert diff["a"]["name"] == "earl1" and diff["b"]["name"] == "earl2" and diff["changes"]

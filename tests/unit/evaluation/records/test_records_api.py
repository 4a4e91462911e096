"""The lifecycle/telemetry/costs API (web/api/life_routes.py) through FastAPI's test
client on a real SQLite store: the role rules stated in the module (technologist adds
events, physicist marks a new baseline and sees costs), another site's device is a 404
on every endpoint, CSV uploads name the uploaded file's line, telemetry from a program's
token, reliability and cost per exam by hand, audit entries."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from life_world import CLI, make_fleet
from sqlalchemy import select

from scanbench.store import Database
from scanbench.store import models as m
from scanbench.web import auth
from scanbench.web.api import create_app
from scanbench.web.api.app import CSRF_HEADER

PW = "correct horse battery"
USERS = {"viewer": "vi", "technologist": "te", "physicist": "ph"}


@dataclass
class Api:
    db: Database
    ids: dict[str, int]
    clients: dict[str, TestClient]
    token: str


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One store for the module (the tests add to it in order, none depends on another's
    rows); one signed-in client per role on site A."""
    path: Path = tmp_path_factory.mktemp("life_api") / "api.sqlite"
    db = Database(url=f"sqlite:///{path}")
    ids = make_fleet(db)
    with db.sessions() as s:
        site_a = s.get_one(m.Site, ids["site_a"])
        for role, name in USERS.items():
            auth.grant(s, CLI, auth.add_user(s, CLI, name, PW), site_a, role)
        token, _ = auth.create_token(s, CLI, auth.get_user(s, "te"), role="technologist",
                                     site_ids=[ids["site_a"]], name="magnet monitor")
        s.commit()
    app = create_app(db)
    clients = {}
    for role, name in USERS.items():
        c = TestClient(app)
        r = c.post("/api/v1/auth/login", json={"username": name, "password": PW})
        assert r.status_code == 200, r.text
        c.headers[CSRF_HEADER] = r.json()["csrf_token"]
        clients[role] = c
    try:
        yield Api(db, ids, clients, token)
    finally:
        db.close()


def test_roles_on_lifecycle_events(api: Api) -> None:
    ct = api.ids["ct1"]
    url = f"/api/v1/devices/{ct}/lifecycle"
    event = {"kind": "unplanned_service", "occurred_at": "2026-02-02T09:00:00"}
    assert api.clients["viewer"].post(url, json=event).status_code == 403
    r = api.clients["technologist"].post(url, json=event)
    assert r.status_code == 201, r.text
    [row] = r.json()
    assert (row["kind"], row["source"], row["new_baseline"]) == ("unplanned_service", "user",
                                                                 False)
    baseline = {**event, "new_baseline": True, "occurred_at": "2026-02-03T09:00:00"}
    r = api.clients["technologist"].post(url, json=baseline)
    assert r.status_code == 403 and "physicist" in r.json()["error"]
    r = api.clients["physicist"].post(url, json=baseline)
    assert r.status_code == 201 and r.json()[0]["new_baseline"] is True
    r = api.clients["technologist"].post(url, json={
        "kind": "downtime", "occurred_at": "2026-02-04T10:00:00",
        "end_at": "2026-02-04T09:00:00"})
    assert r.status_code == 400 and "is not after the start" in r.json()["error"]
    r = api.clients["technologist"].post(url, json={"kind": "boom",
                                                    "occurred_at": "2026-02-04T10:00:00"})
    assert r.status_code == 400 and "unknown lifecycle event kind 'boom'" in r.json()["error"]
    listed = api.clients["viewer"].get(url + "?kind=unplanned_service").json()
    assert listed["total"] == 2
    # removing needs physicist; a header-detected event cannot be removed
    first = listed["items"][0]["id"]
    assert api.clients["technologist"].delete(f"/api/v1/lifecycle/{first}").status_code == 403
    assert api.clients["physicist"].delete(f"/api/v1/lifecycle/{first}").status_code == 204
    with api.db.sessions() as s:
        actions = [(e.action, e.actor) for e in s.scalars(select(m.AuditEntry).where(
            m.AuditEntry.entity == "lifecycle_event").order_by(m.AuditEntry.id))]
    assert actions == [("lifecycle.add", "te"), ("lifecycle.add", "ph"),
                       ("lifecycle.delete", "ph")]


def test_another_sites_device_is_404_everywhere(api: Api) -> None:
    other = api.ids["ct_b"]
    c = api.clients["physicist"]
    for method, url, body in (
            ("GET", f"/api/v1/devices/{other}/lifecycle", None),
            ("POST", f"/api/v1/devices/{other}/lifecycle",
             {"kind": "planned_service", "occurred_at": "2026-02-02T09:00:00"}),
            ("GET", f"/api/v1/devices/{other}/telemetry?channel=pressure_kpa", None),
            ("POST", f"/api/v1/devices/{other}/telemetry",
             {"readings": [{"channel": "pressure_kpa", "at": "2026-02-02T09:00:00",
                            "value": 3.0}]}),
            ("GET", f"/api/v1/devices/{other}/boil-off", None),
            ("GET", f"/api/v1/telemetry/compare?a={api.ids['mr_free']}&b={other}", None),
            ("GET", f"/api/v1/devices/{other}/costs", None),
            ("POST", f"/api/v1/devices/{other}/costs",
             {"kind": "parts", "amount": 1, "currency": "EUR", "start_on": "2026-01-01"}),
            ("GET", f"/api/v1/devices/{other}/reliability", None),
            ("GET", f"/api/v1/devices/{other}/economics", None),
            ("GET", f"/api/v1/devices/{other}/staffed-hours", None),
            ("PUT", f"/api/v1/devices/{other}/staffed-hours", {}),
            ("GET", f"/api/v1/reliability?site_id={api.ids['site_b']}", None)):
        r = c.request(method, url, json=body)
        assert r.status_code == 404, (method, url, r.text)
    # a CSV naming it finds no such device, like one that does not exist
    r = c.post("/api/v1/lifecycle/import?filename=life.csv", content="device,kind,start\n"
               "CT-B,repair,2026-01-02T00:00\n", headers={"Content-Type": "text/csv"})
    assert r.status_code == 400
    assert r.json()["error"].endswith("life.csv:2: field 'device': no device 'CT-B' (a device "
                                      "id, serial number or display name of a device you may "
                                      "change)")
    assert "/tmp" not in r.json()["error"]


def test_csv_uploads_and_reliability_over_http(api: Api) -> None:
    c = api.clients["technologist"]
    csv_text = ("id,device,kind,start,end,note\n"
                "a1,CT-2,installation,2025-12-01T00:00,,\n"
                "a2,CT-2,failure,2026-01-05T10:00,2026-01-06T10:00,tube\n"
                "a3,CT-2,failure,2026-01-20T14:00,2026-01-20T20:00,<b>detector</b>\n")
    post = {"headers": {"Content-Type": "text/csv"}, "content": csv_text}
    r = c.post("/api/v1/lifecycle/import?filename=ct2.csv", **post)
    assert r.status_code == 200, r.text
    assert r.json() == {"added": 5, "skipped": 0, "devices": [api.ids["ct2"]]}
    r = c.post("/api/v1/lifecycle/import?filename=ct2.csv", **post)
    assert r.json() == {"added": 0, "skipped": 3, "devices": []}
    bad = c.post("/api/v1/lifecycle/import?filename=x.csv", content="device,kind\nCT-2,x\n",
                 headers={"Content-Type": "text/csv"})
    assert bad.status_code == 400 and "x.csv: line 1: header: missing column 'start'" in (
        bad.json()["error"])
    assert c.post("/api/v1/lifecycle/import?filename=../etc/passwd", **post
                  ).status_code == 422
    rel = api.clients["viewer"].get(f"/api/v1/devices/{api.ids['ct2']}/reliability"
                                    "?date_from=2026-01-01&date_to=2026-02-01").json()
    # by hand: 744 h in service, 24 + 6 h down, 2 failures: MTBF 714/2, MTTR 15
    assert (rel["in_service_h"], rel["failures"], rel["mtbf_h"], rel["mttr_h"]) == (
        744.0, 2, 357.0, 15.0)
    assert "IEC 60050-192" in rel["definitions"]["availability_pct"]
    fleet = api.clients["viewer"].get("/api/v1/reliability?date_from=2026-01-01"
                                      "&date_to=2026-02-01&model=revolution").json()
    assert [d["device_names"] for d in fleet["devices"]] == [["CT one"], ["CT two"]]
    assert fleet["models"][0]["model"] == "GE Revolution"
    # the note is data in JSON, never markup
    events = api.clients["viewer"].get(f"/api/v1/devices/{api.ids['ct2']}/lifecycle").json()
    assert events["items"][-1]["summary"] == "<b>detector</b>"


def test_telemetry_from_a_token_and_boil_off(api: Api) -> None:
    mr = api.ids["mr_conv"]
    program = TestClient(api.clients["viewer"].app)
    program.headers["Authorization"] = f"Bearer {api.token}"
    readings = [{"channel": "helium_level_pct", "at": f"2026-03-{d:02d}T06:00:00",
                 "value": 80.0 - 0.1 * d} for d in range(1, 21)]
    r = program.post(f"/api/v1/devices/{mr}/telemetry", json={"readings": readings})
    assert r.status_code == 200 and r.json()["added"] == 20, r.text
    assert program.post(f"/api/v1/devices/{mr}/telemetry",
                        json={"readings": readings}).json()["skipped"] == 20
    r = program.post(f"/api/v1/devices/{mr}/telemetry", json={"readings": [
        {"channel": "helium_level_pct", "at": "2026-03-01T06:00:00", "value": 50.0}]})
    assert r.status_code == 400 and "already stored with another value" in r.json()["error"]
    series = api.clients["viewer"].get(f"/api/v1/devices/{mr}/telemetry"
                                       "?channel=helium_level_pct&max_points=4").json()
    assert (series["unit"], series["total"], series["downsampled"]) == ("%", 20, True)
    assert min(p["value"] for p in series["points"]) == pytest.approx(78.0)
    b = api.clients["viewer"].get(f"/api/v1/devices/{mr}/boil-off?dewar_l=1000").json()
    assert b["rate_pct_per_day"] == pytest.approx(0.1)
    assert b["rate_l_per_day"] == pytest.approx(1.0)
    assert b["consistent_with_zero"] is False
    # its helium cost in March: 1 L/day x 31 days x 20 EUR/L, beside the entered costs
    eco = api.clients["physicist"].get(
        f"/api/v1/devices/{mr}/economics?date_from=2026-03-01&date_to=2026-04-01"
        "&helium_price_per_l=20&dewar_l=1000&currency=EUR").json()
    assert eco["cryogen_estimate"]["estimated_cost"] == pytest.approx(620.0)
    assert eco["total_cost"] == 0.0 and eco["cost_per_exam"] is None
    r = api.clients["viewer"].get(f"/api/v1/devices/{mr}/telemetry?channel=helium")
    assert r.status_code == 400 and "unknown telemetry channel" in r.json()["error"]
    with api.db.sessions() as s:
        src = set(s.scalars(select(m.TelemetrySample.source).where(
            m.TelemetrySample.device_id == mr)))
    assert src == {"api:te"}


def test_costs_are_for_physicists_and_cost_per_exam_by_hand(api: Api) -> None:
    ct = api.ids["ct1"]
    url = f"/api/v1/devices/{ct}/costs"
    cost = {"kind": "service_contract", "amount": 73_050, "currency": "EUR",
            "start_on": "2026-01-01", "end_on": "2027-01-01"}
    for role in ("viewer", "technologist"):
        assert api.clients[role].post(url, json=cost).status_code == 403
        assert api.clients[role].get(url).status_code == 403
        assert api.clients[role].get(f"/api/v1/devices/{ct}/economics").status_code == 403
    r = api.clients["physicist"].post(url, json=cost)
    assert r.status_code == 201, r.text
    r = api.clients["physicist"].post(url, json={**cost, "kind": "acquisition"})
    assert r.status_code == 400 and "only a service contract" in r.json()["error"]
    with api.db.sessions() as s:
        for i, day in enumerate((2, 2, 3, 10)):
            study = m.Study(study_uid=f"1.8.{i}")
            s.add(study)
            s.flush()
            s.add(m.ExamTiming(study_id=study.id, device_id=ct,
                               started_at=m.dt.datetime(2026, 3, day, 9)))
        s.commit()
    eco = api.clients["physicist"].get(f"/api/v1/devices/{ct}/economics?date_from=2026-03-01"
                                       "&date_to=2026-04-01").json()
    # 73,050 EUR a year is 200 EUR a day: 31 days = 6,200 EUR over 4 exams
    assert (eco["total_cost"], eco["exams"], eco["cost_per_exam"]) == (6200.0, 4, 1550.0)
    assert eco["working_days"] == 3
    fleet = api.clients["physicist"].get("/api/v1/economics?date_from=2026-03-01"
                                         "&date_to=2026-04-01").json()
    assert [d["name"] for d in fleet["devices"]] == ["CT one"]
    listed = api.clients["physicist"].get(url).json()
    assert listed["total"] == 1
    cid = listed["items"][0]["id"]
    assert api.clients["physicist"].delete(f"/api/v1/costs/{cid}").status_code == 204
    with api.db.sessions() as s:
        entries = s.scalars(select(m.AuditEntry).where(
            m.AuditEntry.entity == "device_cost").order_by(m.AuditEntry.id)).all()
    assert [(e.action, e.actor) for e in entries] == [("cost.add", "ph"),
                                                      ("cost.delete", "ph")]
    assert entries[1].before is not None and entries[1].before["amount"] == 73_050


def test_staffed_hours_need_a_physicist(api: Api) -> None:
    url = f"/api/v1/devices/{api.ids['mr_free']}/staffed-hours"
    hours = {"weekdays": [0, 1, 2, 3, 4], "start": "07:30", "end": "19:00"}
    assert api.clients["technologist"].put(url, json=hours).status_code == 403
    r = api.clients["physicist"].put(url, json=hours)
    assert r.status_code == 200 and r.json() == hours
    assert api.clients["viewer"].get(url).json() == hours
    r = api.clients["physicist"].put(url, json={"start": "25:00", "end": "19:00"})
    assert r.status_code == 400 and "staffed hours: start '25:00'" in r.json()["error"]
    r = api.clients["physicist"].put(url, json={"hours": 3})
    assert r.status_code == 422
    # periods a day-by-day count cannot take are refused, not a 500
    r = api.clients["viewer"].get(f"/api/v1/devices/{api.ids['mr_free']}/reliability"
                                  "?date_from=0001-01-01&date_to=9999-12-31")
    assert r.status_code == 400 and "not a period of a device's life" in r.json()["error"]

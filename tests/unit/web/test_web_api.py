"""The /api/v1 JSON API (issue 12) through FastAPI's test client on a real database:
the role x endpoint table (a new endpoint without a rule or an example fails it), site
isolation (404, never 403), token revocation, session fixation, CSRF, throttling,
JSON errors for bad input, DICOM text carried as data."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from scanbench.store import Database, devices, repo
from scanbench.store import models as m
from scanbench.types import DeviceIdentity, Limits, Result
from scanbench.web import audit, auth, sites
from scanbench.web.api import create_app
from scanbench.web.api.app import COOKIE, CSRF_HEADER, RULE_KEY

CLI = audit.Actor(None, "cli:test")
PW = "correct horse battery"
XSS = "<script>alert(1)</script> & \"q\""
ROLE_USERS = {"viewer": "vi_a", "technologist": "te_a", "physicist": "ph_a", "admin": "ad_a"}


@dataclass
class World:
    db: Database
    client: TestClient
    ids: dict[str, int]


def _result(dev: DeviceIdentity, uid: str, day: int, value: float) -> Result:
    r = Result("pet.calibration_uniformity", "NEMA NU 2-2018 section 7.4.1", uid, dev,
               dt.datetime(2026, 3, day, 9, 0))
    r.add("activity_concentration_bias_percent", value, "%",
          limits=Limits(low=-5, high=5, source="NEMA NU 2-2018", verified=True))
    return r


def _populate(db: Database) -> dict[str, int]:
    ids: dict[str, int] = {}
    with db.sessions() as s:
        a = sites.add_site(s, CLI, "Site A")
        b = sites.add_site(s, CLI, "Site B")
        ids["site_a"], ids["site_b"] = a.id, b.id
        for role, name in ROLE_USERS.items():
            auth.grant(s, CLI, auth.add_user(s, CLI, name, PW), a, role)
        auth.grant(s, CLI, auth.add_user(s, CLI, "vi_b", PW), b, "viewer")
        auth.grant(s, CLI, auth.add_user(s, CLI, "spare", PW), a, "viewer")
        for key, site, serial in (("a", a, "111"), ("b", b, "222")):
            ident = DeviceIdentity("Siemens", "Biograph mCT", serial, XSS, "VG80")
            dev = devices.register(s, ident)
            dev.site_id = site.id
            study = m.Study(study_uid=f"1.2.{serial}", site_id=site.id)
            s.add(study)
            s.flush()
            for day in range(1, 21):  # one QC series a day
                ser = m.Series(series_uid=f"1.2.{serial}.{day}", study_id=study.id,
                               device_id=dev.id, modality="PT", description=XSS,
                               software_versions="VG80" if day < 10 else "VG80B",
                               acquired_at=dt.datetime(2026, 3, day, 9, 0), state="done")
                s.add(ser)
                s.flush()
                res = repo.save_result(s, _result(ident, ser.series_uid, day,
                                                  float(day % 7) - 3), series_id=ser.id,
                                       device_id=dev.id)
            job = m.Job(kind="series", target_uid=ser.series_uid, state="failed",
                        error="boom")
            s.add(job)
            s.flush()
            ids[f"device_{key}"], ids[f"series_{key}"] = dev.id, ser.id
            ids[f"result_{key}"], ids[f"job_{key}"] = res.id, job.id
        s.commit()
    return ids


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    db = Database(url=database_url)
    try:
        ids = _populate(db)
        with TestClient(create_app(db)) as client:
            yield World(db, client, ids)
    finally:
        db.close()


def _login(client: TestClient, user: str) -> str:
    r = client.post("/api/v1/auth/login", json={"username": user, "password": PW})
    assert r.status_code == 200, r.text
    csrf: str = r.json()["csrf_token"]
    return csrf


def _session(world: World, user: str) -> tuple[TestClient, str]:
    client = TestClient(world.client.app)
    return client, _login(client, user)


# Every operation of the API with a request that is valid for a caller with the role.
# {x} are filled from World.ids; a new endpoint without an entry fails the table test.
EXAMPLES: dict[tuple[str, str], tuple[str, dict[str, Any] | str | None]] = {
    ("POST", "/api/v1/auth/login"): ("/api/v1/auth/login", {"username": "vi_a",
                                                             "password": PW}),
    ("POST", "/api/v1/auth/logout"): ("/api/v1/auth/logout", None),
    ("GET", "/api/v1/auth/me"): ("/api/v1/auth/me", None),
    ("GET", "/api/v1/tokens"): ("/api/v1/tokens", None),
    ("POST", "/api/v1/tokens"): ("/api/v1/tokens", {"role": "viewer",
                                                     "site_ids": ["{site_a}"]}),
    ("DELETE", "/api/v1/tokens/{token_id}"): ("/api/v1/tokens/999999", None),
    ("GET", "/api/v1/sites"): ("/api/v1/sites", None),
    ("GET", "/api/v1/sites/{site_id}"): ("/api/v1/sites/{site_a}", None),
    ("GET", "/api/v1/devices"): ("/api/v1/devices", None),
    ("GET", "/api/v1/devices/{device_id}"): ("/api/v1/devices/{device_a}", None),
    ("GET", "/api/v1/devices/{device_id}/history"): (
        "/api/v1/devices/{device_a}/history?analysis=pet.calibration_uniformity"
        "&name=activity_concentration_bias_percent", None),
    ("GET", "/api/v1/series"): ("/api/v1/series", None),
    ("GET", "/api/v1/results"): ("/api/v1/results", None),
    ("GET", "/api/v1/results/{result_id}"): ("/api/v1/results/{result_a}", None),
    ("GET", "/api/v1/jobs"): ("/api/v1/jobs", None),
    ("POST", "/api/v1/jobs/{job_id}/retry"): ("/api/v1/jobs/{job_a}/retry", None),
    ("GET", "/api/v1/users"): ("/api/v1/users", None),
    ("POST", "/api/v1/users"): ("/api/v1/users", {
        "username": "new{n}", "password": PW, "site_id": "{site_a}", "role": "viewer"}),
    ("PUT", "/api/v1/users/{user_id}/grants"): ("/api/v1/users/{vi_a}/grants", {
        "site_id": "{site_a}", "role": "viewer"}),
    ("DELETE", "/api/v1/users/{user_id}/grants/{site_id}"): (
        "/api/v1/users/{spare}/grants/{site_a}", None),
    ("GET", "/api/v1/audit"): ("/api/v1/audit", None),
    # specs, assignments, scorecards, due lists (web/api/eval_routes.py)
    ("GET", "/api/v1/specs"): ("/api/v1/specs", None),
    ("GET", "/api/v1/specs/{name}"): ("/api/v1/specs/earl1", None),
    ("GET", "/api/v1/specs/{name}/{version}"): ("/api/v1/specs/earl1/2017-01", None),
    ("GET", "/api/v1/spec-diff"): ("/api/v1/spec-diff?a=earl1&b=earl2", None),
    ("GET", "/api/v1/spec-assignments"): ("/api/v1/spec-assignments", None),
    ("POST", "/api/v1/spec-assignments"): ("/api/v1/spec-assignments", {
        "spec_name": "earl1", "device_id": "{device_a}"}),
    ("POST", "/api/v1/spec-assignments/{assignment_id}/deactivate"): (
        "/api/v1/spec-assignments/999999/deactivate", None),
    ("GET", "/api/v1/devices/{device_id}/scorecards"): (
        "/api/v1/devices/{device_a}/scorecards", None),
    ("POST", "/api/v1/devices/{device_id}/scorecards"): (
        "/api/v1/devices/{device_a}/scorecards", {"date_from": "2026-03-01",
                                                  "date_to": "2026-03-20"}),
    ("GET", "/api/v1/scorecards/summary"): ("/api/v1/scorecards/summary", None),
    ("GET", "/api/v1/scorecards/{scorecard_id}"): ("/api/v1/scorecards/999999", None),
    ("GET", "/api/v1/devices/{device_id}/due"): ("/api/v1/devices/{device_a}/due", None),
    ("GET", "/api/v1/sites/{site_id}/due"): ("/api/v1/sites/{site_a}/due", None),
    # alerts and notification targets (web/api/alert_routes.py)
    ("GET", "/api/v1/alerts"): ("/api/v1/alerts?state=open", None),
    ("GET", "/api/v1/alerts/{alert_id}"): ("/api/v1/alerts/999999", None),
    ("POST", "/api/v1/alerts/{alert_id}/acknowledge"): (
        "/api/v1/alerts/999999/acknowledge", {"comment": "seen"}),
    ("GET", "/api/v1/notification-targets"): ("/api/v1/notification-targets", None),
    ("POST", "/api/v1/notification-targets"): ("/api/v1/notification-targets", {
        "site_id": "{site_a}", "channel": "email", "address": "qc{n}@example.org"}),
    ("DELETE", "/api/v1/notification-targets/{target_id}"): (
        "/api/v1/notification-targets/999999", None),
    ("GET", "/api/v1/studies"): ("/api/v1/studies", None),
    ("GET", "/api/v1/studies/{study_id}"): ("/api/v1/studies/999999", None),
    ("GET", "/api/v1/dose/events"): ("/api/v1/dose/events", None),
    ("GET", "/api/v1/dose/statistics"): ("/api/v1/dose/statistics", None),
    ("GET", "/api/v1/workflow/statistics"): ("/api/v1/workflow/statistics", None),
    ("GET", "/api/v1/compare/measurements"): ("/api/v1/compare/measurements", None),
    ("GET", "/api/v1/compare"): (
        "/api/v1/compare?analysis=pet.calibration_uniformity"
        "&name=activity_concentration_bias_percent", None),
    # lifecycle, telemetry, costs (web/api/life_routes.py); a CSV body is a JSON string
    ("GET", "/api/v1/devices/{device_id}/lifecycle"): (
        "/api/v1/devices/{device_a}/lifecycle", None),
    ("POST", "/api/v1/devices/{device_id}/lifecycle"): (
        "/api/v1/devices/{device_a}/lifecycle",
        {"kind": "planned_service", "occurred_at": "2026-03-01T08:00:00"}),
    ("DELETE", "/api/v1/lifecycle/{event_id}"): ("/api/v1/lifecycle/999999", None),
    ("POST", "/api/v1/lifecycle/import"): (
        "/api/v1/lifecycle/import", "device,kind,start\n{device_a},repair,2026-03-02T08:00\n"),
    ("GET", "/api/v1/devices/{device_id}/staffed-hours"): (
        "/api/v1/devices/{device_a}/staffed-hours", None),
    ("PUT", "/api/v1/devices/{device_id}/staffed-hours"): (
        "/api/v1/devices/{device_a}/staffed-hours",
        {"weekdays": [0, 1, 2, 3, 4], "start": "08:00", "end": "18:00"}),
    ("GET", "/api/v1/devices/{device_id}/telemetry"): (
        "/api/v1/devices/{device_a}/telemetry?channel=helium_level_pct", None),
    ("POST", "/api/v1/devices/{device_id}/telemetry"): (
        "/api/v1/devices/{device_a}/telemetry", {"readings": [
            {"channel": "helium_level_pct", "at": "2026-03-01T00:00:00", "value": 80.0}]}),
    ("POST", "/api/v1/telemetry/import"): (
        "/api/v1/telemetry/import",
        "device,time,helium_level_pct\n{device_a},2026-03-02T00:00,79.9\n"),
    ("GET", "/api/v1/devices/{device_id}/boil-off"): (
        "/api/v1/devices/{device_a}/boil-off", None),
    ("GET", "/api/v1/telemetry/compare"): (
        "/api/v1/telemetry/compare?a={device_a}&b={device_a}", None),
    ("GET", "/api/v1/devices/{device_id}/costs"): ("/api/v1/devices/{device_a}/costs", None),
    ("POST", "/api/v1/devices/{device_id}/costs"): (
        "/api/v1/devices/{device_a}/costs",
        {"kind": "consumable", "amount": 10.0, "currency": "EUR", "start_on": "2026-03-01"}),
    ("DELETE", "/api/v1/costs/{cost_id}"): ("/api/v1/costs/999999", None),
    ("GET", "/api/v1/devices/{device_id}/reliability"): (
        "/api/v1/devices/{device_a}/reliability", None),
    ("GET", "/api/v1/reliability"): ("/api/v1/reliability", None),
    ("GET", "/api/v1/devices/{device_id}/economics"): (
        "/api/v1/devices/{device_a}/economics", None),
    ("GET", "/api/v1/economics"): ("/api/v1/economics", None),
    # reports (web/api/report_routes.py)
    ("GET", "/api/v1/devices/{device_id}/report"): (
        "/api/v1/devices/{device_a}/report?from=2026-03-01&to=2026-03-31", None),
    ("GET", "/api/v1/devices/{device_id}/acceptance-report"): (
        "/api/v1/devices/{device_a}/acceptance-report", None),
    ("GET", "/api/v1/sites/{site_id}/dose-report"): (
        "/api/v1/sites/{site_a}/dose-report?from=2026-03-01&to=2026-03-31", None),
}


def _fill(value: Any, ids: dict[str, int]) -> Any:
    if isinstance(value, str):
        for k, v in ids.items():
            if value == "{" + k + "}":
                return v
            value = value.replace("{" + k + "}", str(v))
        return value
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def test_every_route_has_a_rule_and_each_role_gets_exactly_what_the_rule_allows(
        world: World) -> None:
    app = world.client.app
    spec = app.openapi()  # type: ignore[attr-defined]
    ops = {(method.upper(), path): op for path, item in spec["paths"].items()
           for method, op in item.items()}
    assert set(ops) == set(EXAMPLES), "an endpoint without an example here, or gone"
    ranks = list(auth.RANK)
    with world.db.sessions() as s:
        ids = dict(world.ids)
        for name in ("vi_a", "spare"):
            ids[name] = auth.get_user(s, name).id
    for n, ((method, path), op) in enumerate(sorted(ops.items())):
        rule = op.get(RULE_KEY)
        assert rule in ("public", "authenticated", *ranks), f"{method} {path}: no rule"
        url, body = EXAMPLES[(method, path)]
        url, body = _fill(url, ids), _fill(body, {**ids, "n": n})
        anonymous = TestClient(app).request(method, url, json=body)
        if rule == "public":
            assert anonymous.status_code == 200, (method, path, anonymous.text)
            continue
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        assert anonymous.json()["error"]
        for role in ranks:
            client, csrf = _session(world, ROLE_USERS[role])
            got = client.request(method, url, json=body, headers={CSRF_HEADER: csrf})
            allowed = rule == "authenticated" or auth.RANK[role] >= auth.RANK[rule]
            if allowed:
                assert got.status_code not in (401, 403), (method, path, role, got.text)
                assert got.status_code != 500, (method, path, role, got.text)
            else:
                assert got.status_code == 403, (method, path, role, got.text)


def test_another_sites_records_are_404_by_id_list_and_search(world: World) -> None:
    client, _ = _session(world, "vi_b")
    ids = world.ids
    for url in (f"/api/v1/devices/{ids['device_a']}", f"/api/v1/sites/{ids['site_a']}",
                f"/api/v1/results/{ids['result_a']}",
                f"/api/v1/devices/{ids['device_a']}/history?analysis=a&name=b"):
        r = client.get(url)
        assert r.status_code == 404, (url, r.text)
        assert r.json()["error"].startswith("no ")
    # The same message as for an id that does not exist at all.
    assert (client.get("/api/v1/devices/999999").json()["error"].replace("999999", "X")
            == client.get(f"/api/v1/devices/{ids['device_a']}").json()["error"]
            .replace(str(ids["device_a"]), "X"))
    listed = client.get("/api/v1/devices").json()
    assert [d["id"] for d in listed["items"]] == [ids["device_b"]]
    assert client.get("/api/v1/devices?q=111").json()["total"] == 0  # A's serial
    assert client.get(f"/api/v1/devices?site_id={ids['site_a']}").json()["total"] == 0
    results = client.get("/api/v1/results?limit=500").json()
    assert results["total"] == 20
    assert {r["device_id"] for r in results["items"]} == {ids["device_b"]}
    assert {j["id"] for j in client.get("/api/v1/jobs").json()["items"]} == {ids["job_b"]}
    assert client.get(f"/api/v1/jobs/{ids['job_a']}/retry").status_code == 405
    # A viewer of site B is no admin: users and audit refused outright.
    assert client.get("/api/v1/audit").status_code == 403


def test_dicom_text_is_carried_as_json_data(world: World) -> None:
    client, _ = _session(world, "vi_a")
    r = client.get(f"/api/v1/devices/{world.ids['device_a']}")
    assert r.headers["content-type"].startswith("application/json")
    aliases = {a["value"] for a in r.json()["aliases"]}
    assert XSS in aliases
    history = r.json()["software_history"]
    assert [(h["software_versions"], h["series"]) for h in history] == [("VG80", 9),
                                                                        ("VG80B", 11)]
    series = client.get("/api/v1/series").json()["items"]
    assert series[0]["description"] == XSS


def test_history_is_downsampled_on_the_server_and_complete_as_csv(world: World) -> None:
    client, _ = _session(world, "vi_a")
    base = (f"/api/v1/devices/{world.ids['device_a']}/history?analysis="
            "pet.calibration_uniformity&name=activity_concentration_bias_percent")
    full = client.get(base).json()
    assert full["total"] == 20 and not full["downsampled"] and full["unit"] == "%"
    values = [p["value"] for p in full["points"]]
    small = client.get(base + "&max_points=4").json()
    assert small["downsampled"] and len(small["points"]) <= 4
    kept = [p["value"] for p in small["points"]]
    assert min(kept) == min(values) and max(kept) == max(values)  # extremes survive
    csv_text = client.get(base + "&format=csv&max_points=4")
    assert csv_text.headers["content-type"].startswith("text/csv")
    assert len(csv_text.text.strip().splitlines()) == 21  # header + every point


def test_bad_input_is_a_json_error_never_a_traceback(world: World) -> None:
    client, csrf = _session(world, "ad_a")
    cases = [
        ("GET", "/api/v1/devices/notanumber", None, 422),
        ("GET", "/api/v1/devices/999999", None, 404),
        ("GET", "/api/v1/devices?limit=100000", None, 422),
        ("GET", "/api/v1/devices?offset=-1", None, 422),
        ("GET", "/api/v1/devices?sort=password_hash", None, 400),
        ("GET", "/api/v1/results?status=green", None, 400),
        ("GET", "/api/v1/results?date_from=2026-13-01", None, 422),
        ("GET", "/api/v1/results?date_from=2026-03-05&date_to=2026-03-01", None, 400),
        ("GET", f"/api/v1/devices/{world.ids['device_a']}/history?analysis=a&name=b"
         "&labels={not json", None, 400),
        ("GET", "/api/v1/nowhere", None, 404),
        ("PUT", f"/api/v1/users/{world.ids['site_a']}/grants", "{malformed", 422),
        ("POST", "/api/v1/users", {"username": "x", "password": PW,
                                   "site_id": world.ids["site_a"], "role": "root"}, 400),
        ("POST", "/api/v1/users", {"username": "y", "password": "short",
                                   "site_id": world.ids["site_a"], "role": "viewer"}, 400),
    ]
    for method, url, body, status in cases:
        kwargs: dict[str, Any] = {"headers": {CSRF_HEADER: csrf}}
        if isinstance(body, str):
            kwargs["content"] = body
            kwargs["headers"]["content-type"] = "application/json"
        elif body is not None:
            kwargs["json"] = body
        r = client.request(method, url, **kwargs)
        assert r.status_code == status, (method, url, r.status_code, r.text)
        payload = r.json()
        assert isinstance(payload["error"], str) and payload["error"]
        assert "Traceback" not in r.text


def test_csrf_is_required_for_cookie_sessions_not_for_tokens(world: World) -> None:
    client, csrf = _session(world, "ad_a")
    body = {"username": "zed", "password": PW, "site_id": world.ids["site_a"],
            "role": "viewer"}
    r = client.post("/api/v1/users", json=body)
    assert r.status_code == 403 and "CSRF" in r.json()["error"]
    r = client.post("/api/v1/users", json=body, headers={CSRF_HEADER: csrf + "x"})
    assert r.status_code == 403
    assert client.post("/api/v1/users", json=body,
                       headers={CSRF_HEADER: csrf}).status_code == 201
    with world.db.sessions() as s:
        raw, _ = auth.create_token(s, CLI, auth.get_user(s, "ad_a"), role="admin",
                                   site_ids=[world.ids["site_a"]])
        s.commit()
    bare = TestClient(world.client.app)
    r = bare.post("/api/v1/users", json={**body, "username": "zed2"},
                  headers={"Authorization": f"Bearer {raw}"})
    assert r.status_code == 201, r.text


def test_session_cookie_flags_and_a_new_id_at_login(world: World) -> None:
    client = TestClient(world.client.app)
    r = client.post("/api/v1/auth/login", json={"username": "vi_a", "password": PW},
                    headers={"Cookie": f"{COOKIE}=attacker-chosen-id"})
    header = r.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=lax" in header and "secure" not in header
    first = r.cookies.get(COOKIE)
    assert first and first != "attacker-chosen-id"
    # Login CSRF: a cross-site form can send text/plain but not application/json.
    forged = client.post("/api/v1/auth/login", headers={"content-type": "text/plain"},
                         content=f'{{"username": "vi_a", "password": "{PW}"}}')
    assert forged.status_code == 422 and COOKIE not in forged.cookies
    r = client.post("/api/v1/auth/login", json={"username": "vi_a", "password": PW})
    second = r.cookies.get(COOKIE)
    assert second and second != first
    old = TestClient(world.client.app)
    assert old.get("/api/v1/auth/me", headers={"Cookie": f"{COOKIE}={first}"}
                   ).status_code == 401  # the old session ended
    assert old.get("/api/v1/auth/me", headers={"Cookie": f"{COOKIE}={second}"}
                   ).status_code == 200
    tls = TestClient(world.client.app, base_url="https://testserver")
    r = tls.post("/api/v1/auth/login", json={"username": "vi_a", "password": PW})
    assert "secure" in r.headers["set-cookie"].lower()
    csrf = r.json()["csrf_token"]
    assert tls.post("/api/v1/auth/logout", headers={CSRF_HEADER: csrf}).status_code == 204
    assert tls.get("/api/v1/auth/me").status_code == 401


def test_revoked_token_is_refused_at_once(world: World) -> None:
    client, csrf = _session(world, "ph_a")
    made = client.post("/api/v1/tokens", json={"role": "viewer",
                                               "site_ids": [world.ids["site_a"]]},
                       headers={CSRF_HEADER: csrf})
    assert made.status_code == 201, made.text
    token, tid = made.json()["token"], made.json()["id"]
    bearer = TestClient(world.client.app)
    headers = {"Authorization": f"Bearer {token}"}
    assert bearer.get("/api/v1/auth/me", headers=headers).json()["grants"] == {
        str(world.ids["site_a"]): "viewer"}
    # A token cannot manage tokens (a viewer token of a physicist would escalate).
    assert bearer.post("/api/v1/tokens", json={"role": "physicist", "site_ids": [
        world.ids["site_a"]]}, headers=headers).status_code == 403
    assert client.delete(f"/api/v1/tokens/{tid}",
                         headers={CSRF_HEADER: csrf}).status_code == 204
    assert bearer.get("/api/v1/devices", headers=headers).status_code == 401
    with world.db.sessions() as s:
        assert s.scalars(select(m.ApiToken.token_hash)).all() == [auth.sha256(token)]
        assert audit.verify(s).ok


def test_login_is_throttled_with_429(world: World) -> None:
    client = TestClient(world.client.app)
    for _ in range(auth.MAX_FAILS_ACCOUNT):
        r = client.post("/api/v1/auth/login", json={"username": "vi_a", "password": "no"})
        assert r.status_code == 401
    r = client.post("/api/v1/auth/login", json={"username": "vi_a", "password": PW})
    assert r.status_code == 429 and "Retry-After" in r.headers


def test_docs_page_and_openapi_are_served_locally(world: World) -> None:
    page = world.client.get("/api/docs")
    assert page.status_code == 200 and "/api/v1/devices/{device_id}" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN
    assert world.client.get("/api/openapi.json").json()["paths"]


def test_job_retry_hands_the_job_to_the_node_and_is_audited(world: World) -> None:
    jid = world.ids["job_a"]
    viewer, vcsrf = _session(world, "vi_a")
    assert viewer.post(f"/api/v1/jobs/{jid}/retry",
                       headers={CSRF_HEADER: vcsrf}).status_code == 403
    other, ocsrf = _session(world, "vi_b")
    assert other.post(f"/api/v1/jobs/{jid}/retry",
                      headers={CSRF_HEADER: ocsrf}).status_code == 403  # no tech role
    client, csrf = _session(world, "te_a")
    r = client.post(f"/api/v1/jobs/{jid}/retry", headers={CSRF_HEADER: csrf})
    assert r.status_code == 200 and r.json()["state"] == "interrupted", r.text
    again = client.post(f"/api/v1/jobs/{jid}/retry", headers={CSRF_HEADER: csrf})
    assert again.status_code == 409 and "interrupted" in again.json()["error"]
    assert client.post(f"/api/v1/jobs/{world.ids['job_b']}/retry",
                       headers={CSRF_HEADER: csrf}).status_code == 404
    with world.db.sessions() as s:
        entry = s.scalars(select(m.AuditEntry).where(m.AuditEntry.action == "job.retry")).one()
        assert entry.actor == "te_a" and entry.before == {"state": "failed", "error": "boom"}
        assert s.get_one(m.Job, jid).owner is None
        assert audit.verify(s).ok

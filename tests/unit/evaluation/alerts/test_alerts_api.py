"""/api/v1/alerts and /api/v1/notification-targets on a real database: filters,
another site's alert is 404, acknowledgement needs a technologist on the device's
site, the CSRF header and a comment, is audited and happens once; targets are
admin-only and never show their secret."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alert_history import BASE, device, store
from fastapi.testclient import TestClient
from sqlalchemy import select

from scanbench.evaluation import alerts
from scanbench.store import Database
from scanbench.store import models as m
from scanbench.types import Limits
from scanbench.web import audit, auth, sites
from scanbench.web.api import create_app
from scanbench.web.api.app import CSRF_HEADER

CLI = audit.Actor(None, "cli:test")
PW = "correct horse battery"
LIMITS = Limits(low=-4.0, high=4.0, source="IEC 61223-3-5:2019 section 5.3", verified=True)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, int]]]:
    db = Database(tmp_path_factory.mktemp("alerts_api"))
    ids: dict[str, int] = {}
    with db.session() as s:
        a = sites.add_site(s, CLI, "Site A")
        b = sites.add_site(s, CLI, "Site B")
        ids["site_a"], ids["site_b"] = a.id, b.id
        for name, site, role in (("vi_a", a, "viewer"), ("te_a", a, "technologist"),
                                 ("ad_a", a, "admin"), ("te_b", b, "technologist")):
            auth.grant(s, CLI, auth.add_user(s, CLI, name, PW), site, role)
        for key, site in (("a", a), ("b", b)):
            dev = device(s, key, site.id)
            store(s, dev, [*BASE, 0.0, 0.0, 5.0], limits=LIMITS)
            alerts.recheck_device(s, dev.id)
            ids[f"device_{key}"] = dev.id
            ids[f"alert_{key}"] = s.scalars(select(m.Alert.id).where(
                m.Alert.device_id == dev.id, m.Alert.rule == "1-3s")).one()
    with TestClient(create_app(db)) as client:
        yield client, ids
    db.close()


def _login(app: TestClient, user: str) -> tuple[TestClient, str]:
    client = TestClient(app.app)
    r = client.post("/api/v1/auth/login", json={"username": user, "password": PW})
    assert r.status_code == 200, r.text
    return client, str(r.json()["csrf_token"])


def test_lists_filter_and_other_sites_are_404(api: tuple[TestClient, dict[str, int]]) -> None:
    app, ids = api
    client, _ = _login(app, "vi_a")
    page = client.get("/api/v1/alerts").json()
    assert page["total"] == 2 and {a["device_id"] for a in page["items"]} == {ids["device_a"]}
    assert {a["rule"] for a in page["items"]} == {"1-3s", "limit"}
    only = client.get("/api/v1/alerts?rule=limit&state=open").json()["items"]
    assert [(a["rule"], a["level"], a["threshold"], a["unit"]) for a in only] == [
        ("limit", "action", 4.0, "HU")]
    assert client.get(f"/api/v1/alerts?site_id={ids['site_b']}").json()["total"] == 0
    assert client.get(f"/api/v1/alerts?device_id={ids['device_b']}").json()["total"] == 0
    one = client.get(f"/api/v1/alerts/{ids['alert_a']}").json()
    assert one["rule"] == "1-3s" and "Westgard" in one["limit_source"]
    other = client.get(f"/api/v1/alerts/{ids['alert_b']}")
    assert other.status_code == 404
    assert other.json()["error"].replace(str(ids["alert_b"]), "X") == client.get(
        "/api/v1/alerts/999999").json()["error"].replace("999999", "X")
    assert client.get("/api/v1/alerts?state=gone").status_code == 400
    assert client.get("/api/v1/alerts?sort=-occurred_at").status_code == 200


def test_acknowledge_rules_audit_and_once(api: tuple[TestClient, dict[str, int]]) -> None:
    app, ids = api
    url = f"/api/v1/alerts/{ids['alert_a']}/acknowledge"
    viewer, vcsrf = _login(app, "vi_a")
    assert viewer.post(url, json={"comment": "seen"},
                       headers={CSRF_HEADER: vcsrf}).status_code == 403
    other, ocsrf = _login(app, "te_b")  # a technologist of the other site
    assert other.post(url, json={"comment": "seen"},
                      headers={CSRF_HEADER: ocsrf}).status_code == 404
    tech, csrf = _login(app, "te_a")
    assert tech.post(url, json={"comment": "seen"}).status_code == 403  # no CSRF header
    assert tech.post(url, json={"comment": ""}, headers={CSRF_HEADER: csrf}).status_code == 422
    r = tech.post(url, json={"comment": "<b>phantom</b> refilled"},
                  headers={CSRF_HEADER: csrf})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "acknowledged"
    assert r.json()["ack_comment"] == "<b>phantom</b> refilled"  # data, not markup
    again = tech.post(url, json={"comment": "again"}, headers={CSRF_HEADER: csrf})
    assert again.status_code == 409 and "acknowledged on" in again.json()["error"]
    admin, _ = _login(app, "ad_a")
    entries = admin.get("/api/v1/audit").json()["items"]
    ack = [e for e in entries if e["action"] == "alert.acknowledge"]
    assert len(ack) == 1 and ack[0]["before"]["state"] == "open"
    assert ack[0]["after"]["ack_comment"] == "<b>phantom</b> refilled"


def test_targets_are_for_admins_and_hide_their_secret(
        api: tuple[TestClient, dict[str, int]]) -> None:
    app, ids = api
    tech, tcsrf = _login(app, "te_a")
    body = {"site_id": ids["site_a"], "channel": "webhook", "address": "https://h.example/x"}
    assert tech.post("/api/v1/notification-targets", json=body,
                     headers={CSRF_HEADER: tcsrf}).status_code == 403
    admin, csrf = _login(app, "ad_a")
    made = admin.post("/api/v1/notification-targets", json=body, headers={CSRF_HEADER: csrf})
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]
    assert secret and len(secret) >= 40
    listed = admin.get("/api/v1/notification-targets")
    assert [t["address"] for t in listed.json()] == ["https://h.example/x"]
    assert secret not in listed.text
    bad = admin.post("/api/v1/notification-targets", headers={CSRF_HEADER: csrf},
                     json={**body, "address": "javascript:alert(1)"})
    assert bad.status_code == 400 and "address" in bad.json()["error"]
    other = admin.post("/api/v1/notification-targets", headers={CSRF_HEADER: csrf},
                       json={**body, "site_id": ids["site_b"]})
    assert other.status_code == 404
    tid = made.json()["id"]
    assert admin.delete(f"/api/v1/notification-targets/{tid}",
                        headers={CSRF_HEADER: csrf}).status_code == 204
    assert admin.get("/api/v1/notification-targets").json()[0]["active"] is False


def test_episodes_list_the_rules_told_once(api: tuple[TestClient, dict[str, int]]) -> None:
    """The step on day 32 raised the action limit and 1-3s on the same value: one
    episode of device a with both rules; site B's episode is not listed to site A."""
    app, ids = api
    client, _ = _login(app, "vi_a")
    r = client.get("/api/v1/alerts/episodes")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 1
    (ep,) = body["items"]
    assert ep["device_id"] == ids["device_a"] and ep["name"] == "noise_hu"
    assert sorted(ep["rules"]) == ["1-3s", "limit (action)"]
    assert ids["alert_a"] in ep["alert_ids"] and len(ep["alert_ids"]) == 2
    assert ep["opened_at"].startswith("2026-02-02T08:00")
    listed = client.get(f"/api/v1/alerts?device_id={ids['device_a']}").json()["items"]
    assert {a["first_at"] for a in listed} == {ep["opened_at"]}
    assert client.get(f"/api/v1/alerts/episodes?device_id={ids['device_b']}"
                      ).json()["total"] == 0
    bad = client.get("/api/v1/alerts/episodes?state=gone")
    assert bad.status_code == 400 and "unknown alert state" in bad.text

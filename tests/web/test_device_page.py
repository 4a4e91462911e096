"""The device page (web/pages/device.py) on a real SQLite database through FastAPI's
test client, and once in Debian's Chromium over a real HTTP server: site isolation (404),
no chart drawn in the first response (each loads on scroll), forms refused without the
CSRF token and for a viewer (403), lifecycle entry and alert acknowledgement stored and
audited, errors shown by their field, the drift's alert point marked on the chart."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from pg import pg_server  # noqa: F401  (fixture: a throw-away PostgreSQL server)
from scanbench.store import Database, devices, repo
from scanbench.store import models as m
from scanbench.types import DeviceIdentity, Limits, Result
from scanbench.web import audit, auth, sites
from scanbench.web.api import create_app

CLI = audit.Actor(None, "cli:test")
PW = "correct horse battery"
XSS = "<script>alert(1)</script>"
ANALYSIS = "pet.daily_qc"
NAME = "system_sensitivity"
UNIT = "cps/kBq"
SOURCE = "manufacturer's daily QC tolerance (test fixture)"
DAY0 = dt.datetime(2025, 1, 1, 7, 30)
DRIFT_FROM = 40  # days 0..39 in control, then +0.02 cps/kBq a day (σ 0.05)


@dataclass
class World:
    db: Database
    app: object
    ids: dict[str, int]
    signed_in: dict[str, tuple[TestClient, str]] = field(default_factory=dict)


def _values(n: int) -> list[float]:
    rng = np.random.default_rng(12)
    base = 10.0 + 0.05 * rng.standard_normal(n)
    drift = np.where(np.arange(n) >= DRIFT_FROM, 0.02 * (np.arange(n) - DRIFT_FROM + 1), 0.0)
    return [float(v) for v in base + drift]


def _populate(db: Database, days: int = 80) -> dict[str, int]:
    ids: dict[str, int] = {}
    with db.sessions() as s:
        a = sites.add_site(s, CLI, "Site A")
        b = sites.add_site(s, CLI, "Site B")
        ids["site_a"], ids["site_b"] = a.id, b.id
        for name, site, role in (("vi_a", a, "viewer"), ("te_a", a, "technologist"),
                                 ("ph_a", a, "physicist"), ("vi_b", b, "viewer")):
            auth.grant(s, CLI, auth.add_user(s, CLI, name, PW), site, role)
        # physicist on B but only viewer on A: the role counts on the device's site
        mixed = auth.add_user(s, CLI, "ph_b_vi_a", PW)
        auth.grant(s, CLI, mixed, a, "viewer")
        auth.grant(s, CLI, mixed, b, "physicist")
        for key, site, serial in (("a", a, "A-111"), ("b", b, "B-222")):
            ident = DeviceIdentity("Siemens", "Biograph Vision", serial, XSS, "VG80")
            dev = devices.register(s, ident)
            dev.site_id = site.id
            dev.display_name = f"PET {key.upper()} {XSS}"
            dev.staffed_hours = {"weekdays": [0, 1, 2, 3, 4], "start": "07:00",
                                 "end": "19:00", "timezone": "Europe/Paris"}
            study = m.Study(study_uid=f"1.2.{serial}", site_id=site.id)
            s.add(study)
            s.flush()
            for day, value in enumerate(_values(days)):
                when = DAY0 + dt.timedelta(days=day)
                ser = m.Series(series_uid=f"1.2.{serial}.{day}", study_id=study.id,
                               device_id=dev.id, modality="PT", acquired_at=when,
                               software_versions="VG80" if day < 60 else "VG85",
                               state="done")
                s.add(ser)
                s.flush()
                r = Result(ANALYSIS, "manufacturer daily QC", ser.series_uid, ident, when)
                r.add(NAME, value, UNIT, uncertainty=0.01,
                      limits=Limits(low=9.5, high=10.5, source=SOURCE, verified=True),
                      status="pass" if 9.5 <= value <= 10.5 else "fail")
                r.add("uniformity_percent", 2.0 + 0.01 * day, "%", labels={"axis": "axial"},
                      status="info")
                saved = repo.save_result(s, r, series_id=ser.id, device_id=dev.id)
            ids[f"device_{key}"], ids[f"result_{key}"] = dev.id, saved.id
            for n, (rule, state) in enumerate((("cusum", "open"), ("1-3s", "open"))):
                alert = m.Alert(key=f"{key}|{NAME}|{rule}|{n}", device_id=dev.id,
                                analysis=ANALYSIS, name=NAME, rule=rule, level="trend",
                                direction="high", result_id=saved.id,
                                occurred_at=DAY0 + dt.timedelta(days=70 + n), value=10.6,
                                unit=UNIT, message=f"{rule}: a drift above the mean {XSS}",
                                state=state)
                s.add(alert)
                s.flush()
                ids[f"alert_{key}{n}"] = alert.id
        s.commit()
    return ids


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    db = Database(url=f"sqlite:///{tmp_path_factory.mktemp('device')}/sb.db")
    try:
        ids = _populate(db)
        yield World(db, create_app(db), ids)
    finally:
        db.close()


def _client(world: World, user: str) -> tuple[TestClient, str]:
    """A client signed in as ``user`` (one sign-in per user and module: Argon2id is
    slow on purpose)."""
    if user not in world.signed_in:
        client = TestClient(world.app, follow_redirects=False)  # type: ignore[arg-type]
        r = client.post("/api/v1/auth/login", json={"username": user, "password": PW})
        assert r.status_code == 200, r.text
        world.signed_in[user] = (client, r.json()["csrf_token"])
    return world.signed_in[user]


def _url(world: World, key: str = "a") -> str:
    return f"/devices/{world.ids['device_' + key]}"


# --------------------------------------------------------------------------- reading

def test_own_sites_device_opens_with_every_section_and_no_chart_drawn(world: World) -> None:
    client, _ = _client(world, "vi_a")
    r = client.get(_url(world))
    assert r.status_code == 200, r.text
    page = r.text
    for text in ("A-111", "Biograph Vision", "Site A", "VG80", "VG85", "Alerts not closed",
                 "Mon, Tue, Wed, Thu, Fri 07:00–19:00 (Europe/Paris)",
                 "Scorecard", "Latest result of each test", "Control charts", "Lifecycle",
                 "Software history", f"/results/{world.ids['result_a']}"):
        assert text in page, text
    assert "<script>alert(1)</script>" not in page  # DICOM text and alert text escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # one lazy placeholder per (analysis, name, labels), and no figure in the page itself
    slots = re.findall(r'hx-get="/devices/\d+/chart\?[^"]+"', page)
    assert len(slots) == 2
    # each alert links to its measurement's chart on the page
    chart_ids = set(re.findall(r'class="chart-slot" id="([^"]+)"', page))
    alert_links = set(re.findall(r'<a href="#(chart-[^"]+)">chart</a>', page))
    assert alert_links and alert_links <= chart_ids
    assert "data-figure=" not in page and '"type": "scatter"' not in page
    assert "format=csv" in page


def test_another_sites_device_is_404_by_page_and_by_chart(world: World) -> None:
    client, _ = _client(world, "vi_b")
    assert client.get(_url(world, "b")).status_code == 200
    for path in (_url(world), f"{_url(world)}/chart?analysis={ANALYSIS}&name={NAME}",
                 "/devices/999999"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert "A-111" not in r.text


def test_chart_fragment_marks_the_drift_and_draws_bands_and_limits(world: World) -> None:
    client, _ = _client(world, "vi_a")
    r = client.get(f"{_url(world)}/chart", params={"analysis": ANALYSIS, "name": NAME,
                                                     "labels": "{}"})
    assert r.status_code == 200, r.text
    block = re.search(r"data-figure='([^']*)'", r.text)
    assert block is not None
    fig = json.loads(html.unescape(block.group(1)))
    names = [t["name"] for t in fig["data"]]
    assert "trend rule broken" in names and "baseline ±3σ" in names
    assert any(n.startswith("limit: manufacturer") for n in names)
    marks = next(t for t in fig["data"] if t["name"] == "trend rule broken")
    first = min(marks["meta"]["indices"])
    assert first >= DRIFT_FROM  # the first signal is in the drift, not before it
    assert fig["layout"]["yaxis"]["title"]["text"] == f"{NAME} ({UNIT})"
    assert "80 values, 80 drawn" in r.text
    # zoomed: the JSON the page's zoom fetches holds the window only
    z = client.get(f"{_url(world)}/chart", params={
        "analysis": ANALYSIS, "name": NAME, "format": "json",
        "date_from": (DAY0 + dt.timedelta(days=50)).isoformat(),
        "date_to": (DAY0 + dt.timedelta(days=60)).isoformat()})
    assert z.status_code == 200 and z.json()["total"] == 10
    window = [(DAY0 + dt.timedelta(days=d)).isoformat() for d in range(50, 60)]
    zmarks = next((t for t in z.json()["figure"]["data"] if t["name"] == "trend rule broken"),
                  {"x": []})
    assert zmarks["x"] == [x for x in marks["x"] if x in window]  # same marks, re-indexed
    zbands = [t for t in z.json()["figure"]["data"] if t["name"] == "baseline ±2σ"]
    full_band = next(t for t in fig["data"] if t["name"] == "baseline ±2σ")
    assert [min(t["y"]) for t in zbands] == [min(full_band["y"])]  # the whole history's
    bad = client.get(f"{_url(world)}/chart", params={"analysis": ANALYSIS, "name": NAME,
                                                       "labels": "[1"})
    assert bad.status_code == 400 and "labels must be a JSON object" in bad.text


def test_chart_mark_says_its_stored_alert_was_acknowledged(world: World) -> None:
    from scanbench.evaluation.alerts import series_trend

    key = '{"axis":"axial"}'
    with world.db.sessions() as s:
        first = series_trend(s, world.ids["device_a"], ANALYSIS, "uniformity_percent",
                             key).alerts[0]
        s.add(m.Alert(key="test-stored-trend-alert", device_id=world.ids["device_a"],
                      analysis=ANALYSIS, name="uniformity_percent", labels={"axis": "axial"},
                      labels_key=key, rule=first.rule, level="trend", direction="high",
                      occurred_at=first.time, value=first.value, unit="%",
                      message="stored", state="acknowledged",
                      ack_at=dt.datetime(2025, 2, 1, 8, 0, tzinfo=dt.UTC),
                      ack_comment=f"uniformity checked {XSS}"))
        s.commit()
    client, _ = _client(world, "vi_a")
    r = client.get(f"{_url(world)}/chart", params={
        "analysis": ANALYSIS, "name": "uniformity_percent", "labels": key,
        "format": "json"})
    marks = next(t for t in r.json()["figure"]["data"] if t["name"] == "trend rule broken")
    texts = [t for t in marks["text"] if "uniformity checked" in t]
    assert len(texts) == 1
    assert "acknowledged 2025-02-01 08:00 UTC: uniformity checked &lt;script&gt;" in texts[0]


def test_chart_trend_is_the_one_the_alerts_are_raised_from(world: World) -> None:
    from scanbench.evaluation.alerts import series_trend
    from scanbench.report.control_chart import series_history, stored_trend

    with world.db.sessions() as s:
        for name, key in ((NAME, "{}"), ("uniformity_percent", '{"axis":"axial"}')):
            points, untimed = series_history(s, world.ids["device_a"], ANALYSIS, name, key)
            assert len(points) == 80 and untimed == 0
            ours = stored_trend(s, world.ids["device_a"], ANALYSIS, name, key, points)
            theirs = series_trend(s, world.ids["device_a"], ANALYSIS, name, key)
            assert ours.alerts and ours.alerts == theirs.alerts
            assert ours.segments == theirs.segments


def test_scorecard_shows_each_required_test_with_its_evidence(world: World) -> None:
    rid = world.ids["result_a"]
    with world.db.sessions() as s:
        spec = m.Spec(name="daily-pet-qc-test", version="2", title=f"Daily PET QC {XSS}",
                      verified=True, yaml="name: daily-pet-qc-test", origin="test")
        s.add(spec)
        s.flush()
        tests = [
            {"test": ANALYSIS, "title": "Daily detector QC", "frequency": "daily",
             "dimension": "function_and_performance", "source": "manufacturer's manual",
             "status": "failed", "reason": f"failed on 2025-03-21: sensitivity {XSS}",
             "evidence": [rid], "last_done": "2025-03-21T07:30:00"},
            {"test": "pet.nema_nu2_2018.image_quality", "title": "Image quality",
             "frequency": None, "dimension": "image_quality", "source": "NEMA NU 2-2018",
             "status": "not_applicable", "reason": "listed, never due", "evidence": []},
        ]
        dims = [{"dimension": "function_and_performance", "weight": 0.5, "score": 0.0}]
        indicators = [{"indicator": "mean_sus_score", "dimension": "usability",
                       "unit": "points (0-100)", "value": 72.5, "low": 68, "high": None,
                       "source": f"programme board {XSS}", "confidence": "U",
                       "status": "not_judged", "reason": "inside the unconfirmed limit"}]
        for n in range(2):  # two computations: the newest is shown
            s.add(m.Scorecard(device_id=world.ids["device_a"], spec_id=spec.id,
                              period_start=dt.datetime(2025, 1, 1),
                              period_end=dt.datetime(2025, 4, 1), score=float(n),
                              status="fail", compliance=0.75, inputs_hash=f"h{n}",
                              data={"tests": tests, "dimensions": dims,
                                    "indicators": indicators}))
        s.commit()
        cards = s.scalar(select(func.count()).select_from(m.Scorecard))
    client, _ = _client(world, "vi_a")
    page = client.get(_url(world)).text
    with world.db.sessions() as s:  # viewing never writes a scorecard
        assert s.scalar(select(func.count()).select_from(m.Scorecard)) == cards
    card = page[page.index('id="scorecard"'):page.index('id="latest"')]
    assert "Daily PET QC &lt;script&gt;" in card and "version 2" in card
    assert "score 1 of 100" in card and "QC done on time 75 %" in card
    assert f'<a href="/results/{rid}">result {rid}</a>' in card
    assert "Daily detector QC" in card and "status-fail" in card and "failed" in card
    assert "sensitivity &lt;script&gt;" in card and "not applicable" in card
    assert card.count('class="scorecard"') == 1
    row = card[card.index('data-indicator="mean_sus_score"'):]
    row = row[:row.index("</tr>")]
    assert "72.5 points (0-100)" in row and "≥ 68" in row and "not judged" in row
    assert "programme board &lt;script&gt;" in row and "not confirmed: never judged" in row


def test_page_chart_and_entry_on_postgresql(pg_server: Any) -> None:  # noqa: F811
    """The page's queries (GROUP BY, the latest result per test, boolean ordering of
    alerts) and an entry on PostgreSQL too."""
    db = Database(url=pg_server.create())
    try:
        pg = World(db, create_app(db), _populate(db, days=30))
        client, csrf = _client(pg, "ph_a")
        page = client.get(_url(pg))
        assert page.status_code == 200 and "A-111" in page.text
        chart = client.get(f"{_url(pg)}/chart", params={"analysis": ANALYSIS, "name": NAME,
                                                          "format": "json"})
        assert chart.status_code == 200 and chart.json()["total"] == 30
        r = client.post(f"{_url(pg)}/lifecycle", data=_event_form(csrf))
        assert r.status_code == 303, r.text
        assert _count(pg, m.LifecycleEvent, kind="unplanned_service") == 1
        assert client.get(_url(pg, "b")).status_code == 404
    finally:
        db.close()


# --------------------------------------------------------------------------- forms

def _event_form(csrf: str | None, **over: str) -> dict[str, str]:
    form = {"kind": "unplanned_service", "occurred_at": "2025-03-20T10:15",
            "summary": f"detector block replaced {XSS}", "cost": "1250.5",
            "currency": "EUR", "new_baseline": "on"}
    if csrf is not None:
        form["csrf_token"] = csrf
    form.update(over)
    return form


def _count(world: World, model: type, **where: object) -> int:
    with world.db.sessions() as s:
        q = select(model)
        for k, v in where.items():
            q = q.where(getattr(model, k) == v)
        return len(s.scalars(q).all())


def test_viewer_sees_no_forms_and_a_viewers_post_is_403(world: World) -> None:
    client, csrf = _client(world, "vi_a")
    page = client.get(_url(world)).text
    assert "lifecycle-form" not in page and "ack-form" not in page
    before = _count(world, m.LifecycleEvent)
    r = client.post(f"{_url(world)}/lifecycle", data=_event_form(csrf))
    assert r.status_code == 403
    alert = world.ids["alert_a0"]
    r = client.post(f"{_url(world)}/alerts/{alert}/acknowledge",
                    data={"csrf_token": csrf, "comment": "seen"})
    assert r.status_code == 403
    assert _count(world, m.LifecycleEvent) == before


def test_a_role_on_another_site_does_not_count(world: World) -> None:
    client, csrf = _client(world, "ph_b_vi_a")
    page = client.get(_url(world)).text
    assert "lifecycle-form" not in page and "ack-form" not in page
    before = _count(world, m.LifecycleEvent)
    r = client.post(f"{_url(world)}/lifecycle", data=_event_form(csrf))
    assert r.status_code == 403 and "technologist role" in r.text
    r = client.post(f"{_url(world)}/alerts/{world.ids['alert_a0']}/acknowledge",
                    data={"csrf_token": csrf, "comment": "seen"})
    assert r.status_code == 403
    assert _count(world, m.LifecycleEvent) == before
    assert _count(world, m.Alert, id=world.ids["alert_a0"], state="open") == 1
    assert "lifecycle-form" in client.get(_url(world, "b")).text  # physicist there


def test_forms_without_the_csrf_token_are_refused(world: World) -> None:
    client, _csrf = _client(world, "te_a")
    page = client.get(_url(world)).text
    assert "lifecycle-form" in page and "ack-form" in page
    before = _count(world, m.LifecycleEvent)
    for data in (_event_form(None), _event_form("forged-token")):
        r = client.post(f"{_url(world)}/lifecycle", data=data)
        assert r.status_code == 403 and "CSRF" in r.text
    r = client.post(f"{_url(world)}/alerts/{world.ids['alert_a0']}/acknowledge",
                    data={"comment": "seen"})
    assert r.status_code == 403
    assert _count(world, m.LifecycleEvent) == before


def test_lifecycle_entry_is_stored_audited_and_shown(world: World) -> None:
    client, csrf = _client(world, "ph_a")  # a new baseline needs records.BASELINE_ROLE
    r = client.post(f"{_url(world)}/lifecycle", data=_event_form(csrf))
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"{_url(world)}?saved=lifecycle#lifecycle"
    with world.db.sessions() as s:
        ev = s.scalars(select(m.LifecycleEvent).where(
            m.LifecycleEvent.device_id == world.ids["device_a"],
            m.LifecycleEvent.kind == "unplanned_service")).one()
        assert ev.occurred_at == dt.datetime(2025, 3, 20, 10, 15)
        assert ev.cost == 1250.5 and ev.currency == "EUR" and ev.new_baseline
        assert ev.source == "user" and ev.user_id is not None
        entry = s.scalars(select(m.AuditEntry).where(
            m.AuditEntry.entity == "lifecycle_event",
            m.AuditEntry.entity_id == str(ev.id))).one()
        assert entry.actor == "ph_a" and entry.after is not None
        assert entry.after["kind"] == "unplanned_service" and entry.before is None
        assert audit.verify(s).ok
    page = client.get(r.headers["location"]).text
    assert "The lifecycle event was recorded." in page
    assert "detector block replaced &lt;script&gt;" in page


def test_a_technologist_records_events_but_cannot_mark_a_new_baseline(world: World) -> None:
    from scanbench.evaluation.records import BASELINE_ROLE

    client, csrf = _client(world, "te_a")
    before = _count(world, m.LifecycleEvent)
    r = client.post(f"{_url(world)}/lifecycle", data=_event_form(
        csrf, occurred_at="2025-02-02T09:00"))
    assert r.status_code == 403
    shown = re.search(r'data-field="new_baseline">([^<]*)<', r.text)
    assert shown is not None and f"needs the {BASELINE_ROLE} role" in shown.group(1)
    assert _count(world, m.LifecycleEvent) == before
    form = _event_form(csrf, occurred_at="2025-02-02T09:00", kind="planned_service")
    del form["new_baseline"]
    r = client.post(f"{_url(world)}/lifecycle", data=form)
    assert r.status_code == 303, r.text
    assert _count(world, m.LifecycleEvent) == before + 1


@pytest.mark.parametrize(("over", "field", "text"), [
    ({"occurred_at": "20 March"}, "occurred_at", "is not a date and time"),
    ({"occurred_at": "2999-01-01T00:00"}, "occurred_at", "in the future"),
    ({"kind": ""}, "kind", "choose the kind"),
    ({"cost": "a lot"}, "cost", "is not a number"),
    ({"currency": "euro"}, "currency", "ISO 4217"),
    ({"kind": "installation"}, "new_baseline", "cannot start a new baseline"),
])
def test_a_refused_entry_shows_its_message_by_its_field(world: World, over: dict[str, str],
                                                         field: str, text: str) -> None:
    client, csrf = _client(world, "ph_a")
    before = _count(world, m.LifecycleEvent)
    r = client.post(f"{_url(world)}/lifecycle", data=_event_form(csrf, **over))
    assert r.status_code == 400
    shown = re.search(rf'data-field="{field}">([^<]*)<', r.text)
    assert shown is not None and text in shown.group(1), r.text[-3000:]
    assert 'value="detector block replaced &lt;script&gt;' in r.text  # the form kept
    assert _count(world, m.LifecycleEvent) == before


def test_acknowledgement_needs_a_comment_and_is_stored_and_audited(world: World) -> None:
    client, csrf = _client(world, "te_a")
    alert = world.ids["alert_a1"]
    url = f"{_url(world)}/alerts/{alert}/acknowledge"
    r = client.post(url, data={"csrf_token": csrf, "comment": "   "})
    assert r.status_code == 400 and "a comment is required" in r.text
    assert _count(world, m.Alert, id=alert, state="open") == 1
    r = client.post(url, data={"csrf_token": csrf, "comment": f"phantom refilled {XSS}"})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"{_url(world)}?saved=alert#alerts"
    with world.db.sessions() as s:
        row = s.get_one(m.Alert, alert)
        assert row.state == "acknowledged" and row.ack_comment == f"phantom refilled {XSS}"
        entry = s.scalars(select(m.AuditEntry).where(
            m.AuditEntry.action == "alert.acknowledge",
            m.AuditEntry.entity_id == str(alert))).one()
        assert entry.actor == "te_a"
        assert entry.before is not None and entry.before["state"] == "open"
        assert entry.after is not None and entry.after["state"] == "acknowledged"
    page = client.get(r.headers["location"]).text
    assert "The alert was acknowledged." in page
    assert "phantom refilled &lt;script&gt;" in page
    again = client.post(url, data={"csrf_token": csrf, "comment": "twice"})
    assert again.status_code == 409 and "was acknowledged on" in again.text


def test_an_alert_of_another_device_or_site_is_404(world: World) -> None:
    client, csrf = _client(world, "te_a")
    other = world.ids["alert_b0"]
    for url in (f"{_url(world)}/alerts/{other}/acknowledge",  # B's alert under A's device
                f"{_url(world, 'b')}/alerts/{other}/acknowledge"):  # B's device
        r = client.post(url, data={"csrf_token": csrf, "comment": "not mine"})
        assert r.status_code == 404, url
    assert _count(world, m.Alert, id=other, state="open") == 1


# --------------------------------------------------------------------------- browser

@pytest.fixture(scope="module")
def server(world: World) -> Iterator[str]:
    """The application on a real HTTP server (uvicorn, a free port) in a thread."""
    from pages_world import serving

    with serving(world.app) as url:
        yield url


def test_browser_draws_the_control_chart_with_the_drift_alert_marked(
        world: World, server: str, browser: Any, tmp_path: Path) -> None:
    from scanbench.evaluation.alerts import series_trend

    with world.db.sessions() as s:
        trend = series_trend(s, world.ids["device_a"], ANALYSIS, NAME)
    drift_alert = min(trend.alerts, key=lambda a: a.index)
    assert drift_alert.index >= DRIFT_FROM
    device = _url(world)
    context = browser.new_context()
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server}/login?next={device}")
        page.fill("input[name=username]", "ph_a")
        page.fill("input[name=password]", PW)
        page.click("#login-form button[type=submit]")
        page.wait_for_url(f"**{device}")
        slot = page.locator(f'.chart-slot[data-series-name="{NAME}"]')
        slot.scroll_into_view_if_needed()
        page.wait_for_selector(f'.chart-slot[data-series-name="{NAME}"] [data-drawn]',
                               timeout=30_000)
        found = page.evaluate("""(name) => {
            const gd = document.querySelector(
                `.chart-slot[data-series-name="${name}"] [data-chart-target]`);
            const t = gd._fullData.find(d => d.name === "trend rule broken");
            const paths = gd.querySelectorAll(`g.trace${t.uid} .points path`);
            const legend = Array.from(gd.querySelectorAll(".legendtext"))
                .map(e => e.textContent);
            return {x: Array.from(t.x), n: paths.length, symbol: t.marker.symbol,
                    legend: legend};
        }""", NAME)
        # Zoom to ten days: device.js fetches that window again from the server.
        gd = f'.chart-slot[data-series-name="{NAME}"] [data-chart-target]'
        a, b = DAY0 + dt.timedelta(days=49, hours=12), DAY0 + dt.timedelta(days=59, hours=12)
        page.evaluate("""([sel, a, b]) => window.Plotly.relayout(
            document.querySelector(sel), {"xaxis.range": [a, b]})""",
                      [gd, a.isoformat(sep=" "), b.isoformat(sep=" ")])
        page.wait_for_function("""([sel, name]) => {
            const t = document.querySelector(sel).data.find(d => d.name === name);
            return t && t.x.length === 10; }""", arg=[gd, NAME], timeout=30_000)
        zoomed = page.evaluate("""([sel, name]) => document.querySelector(sel).data
            .find(d => d.name === name).x""", [gd, NAME])
        page.screenshot(path=str(tmp_path / "device.png"), full_page=False)
    finally:
        context.close()
    assert drift_alert.time.isoformat() in found["x"]
    assert found["n"] == len(found["x"]) == len({a.index for a in trend.alerts})
    assert found["symbol"] == "x"
    assert "trend rule broken" in found["legend"] and "baseline ±2σ" in found["legend"]
    assert zoomed == [(DAY0 + dt.timedelta(days=d)).isoformat() for d in range(50, 60)]
    assert not errors, errors

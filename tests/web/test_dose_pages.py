"""The dose, workflow, study and site-comparison pages and their API endpoints
(web/pages/dose.py, workflow.py, compare.py, web/api/dose_routes.py) on a real SQLite
database: another site's device, site or study is a 404 by page and by API, bad filters
are a JSON 400 with a message, a protocol name with markup is shown as text, the
outlier links to its study; once in Debian's Chromium over a real HTTP server: the
dose box plot is drawn. The statistics themselves are checked by hand, on SQLite and
PostgreSQL, in tests/unit/clinical/test_dose_stats.py."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from scanbench.store import Database
from scanbench.store import models as m
from scanbench.web import audit, auth, sites
from scanbench.web.api import create_app

CLI = audit.Actor(None, "cli:test")
PW = "correct horse battery"
XSS = "<script>alert(1)</script>"
PROTOCOL = f"Thorax {XSS}"
CHEST = {"value": "43799004", "scheme": "SCT", "meaning": "Chest"}
CTDI = [10.0, 11.0, 12.0, 13.0, 14.0, 90.0]  # 90 mGy: above the fence 13.75 + 1.5 x 2.5 = 17.5 mGy


@dataclass
class World:
    db: Database
    app: object
    ids: dict[str, int]


def _populate(db: Database) -> dict[str, int]:
    ids: dict[str, int] = {}
    with db.sessions() as s:
        a = sites.add_site(s, CLI, "Site A")
        b = sites.add_site(s, CLI, "Site B")
        ids["site_a"], ids["site_b"] = a.id, b.id
        auth.grant(s, CLI, auth.add_user(s, CLI, "vi_a", PW), a, "viewer")
        auth.grant(s, CLI, auth.add_user(s, CLI, "vi_b", PW), b, "viewer")
        for key, site in (("a", a), ("b", b)):
            dev = m.Device(identity_key=key, site_id=site.id, modality="CT",
                           manufacturer="GE", model="Revolution", serial=f"S-{key}",
                           display_name=f"CT {key.upper()}")
            s.add(dev)
            s.flush()
            ids[f"device_{key}"] = dev.id
            for i, v in enumerate(CTDI):
                when = dt.datetime(2026, 3, 2, 8 + i, 0)
                study = m.Study(study_uid=f"1.3.{key}.{i}", site_id=site.id,
                                description=XSS, study_datetime=when)
                s.add(study)
                s.flush()
                ids[f"study_{key}{i}"] = study.id
                s.add(m.DoseEvent(study_id=study.id, device_id=dev.id, kind="ct",
                                  occurred_at=when, protocol=PROTOCOL, ctdivol_mgy=v,
                                  data={"acquisition_type": "spiral",
                                        "target_region_code": CHEST}))
                s.add(m.DoseEvent(study_id=study.id, device_id=dev.id, kind="study",
                                  occurred_at=when, protocol=PROTOCOL, dlp_mgycm=v * 30))
                s.add(m.ExamTiming(study_id=study.id, device_id=dev.id, started_at=when,
                                   ended_at=when + dt.timedelta(minutes=20),
                                   duration_s=1200.0, data={"study_description": XSS}))
            res = m.Result(device_id=dev.id, analysis="ct.water", standard="ACR CT",
                           scanbench_version="0", acquired_at=dt.datetime(2026, 3, 1))
            res.measurements.append(m.Measurement(
                device_id=dev.id, analysis="ct.water", name="noise_hu", value=5.0,
                acquired_at=dt.datetime(2026, 3, 1), unit="HU", status="pass"))
            s.add(res)
        s.commit()
    return ids


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    db = Database(url=f"sqlite:///{tmp_path_factory.mktemp('dose') / 'scanbench.db'}")
    try:
        ids = _populate(db)
        yield World(db, create_app(db), ids)
    finally:
        db.close()


def _client(world: World, user: str) -> TestClient:
    client = TestClient(world.app)  # type: ignore[arg-type]
    r = client.post("/api/v1/auth/login", json={"username": user, "password": PW})
    assert r.status_code == 200, r.text
    return client


def test_dose_page_shows_markup_as_text_and_links_outliers_to_their_study(
        world: World) -> None:
    client = _client(world, "vi_a")
    r = client.get("/dose")
    assert r.status_code == 200, r.text
    page = r.text
    assert XSS not in page  # anywhere, also in the figure's JSON block
    assert "Thorax &lt;script&gt;alert(1)&lt;/script&gt;" in page
    # The 90 mGy exam of site A is the one outlier, linked to its study page.
    assert f'href="/studies/{world.ids["study_a5"]}"' in page
    assert f'/studies/{world.ids["study_b5"]}"' not in page
    assert "1.3.b." not in page and "CT B" not in page  # no trace of site B
    # The DRL and its source (Guangzhou survey, chest 13.3 mGy): median 12.5 -> within.
    assert "doi 10.16369" in page and "above drl" not in page
    study = client.get(f"/studies/{world.ids['study_a5']}")
    assert study.status_code == 200 and "&lt;script&gt;" in study.text
    assert XSS not in study.text
    other = client.get(f"/studies/{world.ids['study_b5']}")
    assert other.status_code == 404
    assert "no study with id" in other.text


def test_pages_refuse_another_sites_filters_and_bad_input(world: World) -> None:
    client = _client(world, "vi_a")
    for url in (f"/dose?device_id={world.ids['device_b']}",
                f"/workflow?site_id={world.ids['site_b']}",
                f"/compare?site_id={world.ids['site_b']}"):
        assert client.get(url).status_code == 404, url
    bad = client.get("/dose?date_from=2026-03-05&date_to=2026-03-01")
    assert bad.status_code == 400 and "must be after" in bad.text
    assert client.get("/dose?quantity=nope").status_code == 400
    assert client.get("/compare?measurement=nobar").status_code == 400
    assert client.get("/dose?device_id=abc").status_code == 400
    # Anonymous: to the sign-in page.
    anon = TestClient(world.app, follow_redirects=False)  # type: ignore[arg-type]
    assert anon.get("/dose").headers["location"].startswith("/login?next=")


def test_workflow_and_compare_pages(world: World) -> None:
    client = _client(world, "vi_a")
    wf = client.get("/workflow")
    assert wf.status_code == 200 and XSS not in wf.text
    # 6 exams x 20 min = 2 h over 24 h (no staffed hours set).
    assert "8.333" in wf.text and "24 h" in wf.text
    cmp_ = client.get("/compare?measurement=ct.water|noise_hu")
    assert cmp_.status_code == 200
    assert "CT A" in cmp_.text and "CT B" not in cmp_.text
    assert 'data-plot="compare-plot"' in cmp_.text


def test_api_dose_statistics_filters_and_isolation(world: World) -> None:
    a, b = _client(world, "vi_a"), _client(world, "vi_b")
    ids = world.ids
    r = a.get("/api/v1/dose/statistics")
    assert r.status_code == 200, r.text
    body = r.json()
    (g,) = body["groups"]
    assert g["device_id"] == ids["device_a"] and g["protocol"] == PROTOCOL  # data as data
    assert (g["n"], g["q1"], g["median"], g["q3"]) == (6, 11.25, 12.5, 13.75)
    assert g["reference"]["exam"] == "chest" and g["reference"]["drl"] == 13.3
    assert [o["study_id"] for o in body["outliers"]] == [ids["study_a5"]]
    assert "Hyndman" in body["percentile_method"]
    # No dates: the default period (the year up to the newest exam) is said; dates given
    # are kept as given.
    assert body["period"]["default"] is True and "12 months" in body["period"]["note"]
    assert body["period"]["date_to"] == "2026-03-03"
    given = a.get("/api/v1/dose/statistics?date_from=2000-01-01").json()["period"]
    assert given == {"date_from": "2000-01-01", "date_to": None, "default": False,
                     "note": "from 2000-01-01 on"}
    assert "Period: the last 12 months of stored exams" in a.get("/dose").text
    # Another site's device or site: 404, with the message of one that does not exist.
    for url in (f"/api/v1/dose/statistics?device_id={ids['device_b']}",
                f"/api/v1/dose/events?site_id={ids['site_b']}",
                f"/api/v1/workflow/statistics?device_id={ids['device_b']}",
                f"/api/v1/studies/{ids['study_b0']}"):
        got = a.get(url)
        assert got.status_code == 404 and got.json()["error"].startswith("no "), url
    assert [s["id"] for s in b.get("/api/v1/studies?limit=500").json()["items"]] == sorted(
        (ids[f"study_b{i}"] for i in range(6)), reverse=True)
    for url, words in (("/api/v1/dose/statistics?quantity=x", "unknown dose quantity"),
                       ("/api/v1/dose/statistics?group_by=site", "unknown grouping"),
                       ("/api/v1/dose/statistics?table=x", "unknown reference level table"),
                       ("/api/v1/dose/events?date_from=2026-03-03&date_to=2026-03-01",
                        "must be after"),
                       ("/api/v1/compare?analysis=a&name=b&labels=[1]", "JSON object"),
                       ("/api/v1/dose/events?sort=patient", "cannot sort by")):
        got = a.get(url)
        assert got.status_code == 400 and words in got.json()["error"], (url, got.text)
    assert a.get("/api/v1/dose/events?limit=100000").status_code == 422
    events = a.get(f"/api/v1/dose/events?kind=ct&protocol={PROTOCOL}&sort=-ctdivol_mgy")
    assert [e["ctdivol_mgy"] for e in events.json()["items"]] == sorted(CTDI, reverse=True)
    assert a.get("/api/v1/dose/events?kind=ct&protocol=other").json()["total"] == 0
    wf = a.get("/api/v1/workflow/statistics").json()
    assert wf["utilisation"][0]["utilisation_percent"] == pytest.approx(100 * 2 / 24)
    cmp_ = a.get("/api/v1/compare?analysis=ct.water&name=noise_hu").json()
    assert [d["device_id"] for d in cmp_["devices"]] == [ids["device_a"]]
    assert cmp_["unit"] == "HU" and cmp_["devices"][0]["latest"]["value"] == 5.0
    kinds = a.get("/api/v1/compare/measurements").json()
    assert kinds == [{"analysis": "ct.water", "name": "noise_hu", "unit": "HU", "devices": 1}]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (installed by .ci/run)")
def test_dose_box_plot_is_drawn_in_chromium(world: World, tmp_path: Path) -> None:
    import uvicorn
    from playwright.sync_api import sync_playwright

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(world.app, host="127.0.0.1",  # type: ignore[arg-type]
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):  # wait until it listens (not a timing assertion)
            if server.started:
                break
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(f"{base}/login?next=/dose")
                page.fill("input[name=username]", "vi_a")
                page.fill("input[name=password]", PW)
                page.click("button[type=submit]")
                page.wait_for_url(f"{base}/dose")
                page.wait_for_selector("#dose-box[data-drawn]", timeout=30000)
                boxes = page.locator("#dose-box g.trace.boxes path.box").count()
                assert boxes == 1  # one protocol on one device
                legend = page.locator("#dose-box .legendtext").all_text_contents()
                assert any("13.3 mGy" in t and "source" in t for t in legend), legend
                # The protocol name is drawn as text, never as an element.
                assert page.locator("#dose-box script").count() == 0
                assert not errors, errors
            finally:
                browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_dose_page_draws_at_most_max_drawn_groups(world: World,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from scanbench.web.pages import dose as dose_page

    monkeypatch.setattr(dose_page, "MAX_DRAWN", 0)
    page = _client(world, "vi_a").get("/dose").text
    assert "1 groups: the 0 with the most values are drawn" in page
    assert "Thorax &lt;script&gt;" not in page.split("Per protocol and device")[1].split(
        "Outliers")[0]

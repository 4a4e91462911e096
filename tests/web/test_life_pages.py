"""The life pages (web/pages/life.py) on a real SQLite database through FastAPI's test
client, and once in Debian's Chromium over a real HTTP server: a device's reliability,
telemetry and costs, ``/magnets`` and ``/reliability``. The numbers shown equal those of
scanbench.evaluation.records on the same store; another site's device is 404; costs
only for a physicist on the device's site; outside text escaped; the helium chart drawn."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from pages_world import serving
from scanbench.evaluation import records
from scanbench.report.numbers import format_number
from scanbench.store import Database, devices
from scanbench.store import models as m
from scanbench.types import DeviceIdentity
from scanbench.web import audit, auth, sites
from scanbench.web.api import create_app

CLI = audit.Actor(None, "cli:test")
PW = "correct horse battery"
XSS = "<script>alert(1)</script>"
P0, P1 = dt.date(2025, 1, 1), dt.date(2026, 1, 1)
PERIOD = {"date_from": P0.isoformat(), "date_to": P1.isoformat()}
T0 = dt.datetime(2025, 6, 1)


@dataclass
class World:
    db: Database
    app: Any
    ids: dict[str, int]
    signed_in: dict[str, TestClient] = field(default_factory=dict)


def _magnet(s: Any, site: m.Site, serial: str, name: str) -> m.Device:
    dev = devices.register(s, DeviceIdentity("Siemens", "MAGNETOM Free.Max", serial,
                                             XSS, "XA60"))
    dev.site_id, dev.display_name, dev.modality = site.id, name, "MR"
    dev.field_strength_t = 0.55
    s.flush()
    return dev


def _populate(db: Database) -> dict[str, int]:
    rng = np.random.default_rng(7)
    ids: dict[str, int] = {}
    with db.sessions() as s:
        a = sites.add_site(s, CLI, "Site A")
        b = sites.add_site(s, CLI, "Site B")
        for name, site, role in (("vi_a", a, "viewer"), ("ph_a", a, "physicist"),
                                 ("vi_b", b, "viewer")):
            auth.grant(s, CLI, auth.add_user(s, CLI, name, PW), site, role)
        free = _magnet(s, a, "F-1", f"Sealed Beta {XSS}")
        conv = _magnet(s, a, "C-2", "Conv Alpha")
        conv.model = "MAGNETOM Aera"
        other = _magnet(s, b, "B-3", "site B magnet")
        for dev in (free, conv, other):
            records.add_event(s, CLI, dev.id, "installation", dt.datetime(2024, 12, 1))
        # two failures of the conventional magnet (one a day long), a planned service
        records.add_event(s, CLI, conv.id, "downtime", dt.datetime(2025, 3, 3, 9),
                          end_at=dt.datetime(2025, 3, 4, 9), summary=f"coil {XSS}")
        records.add_event(s, CLI, conv.id, "downtime", dt.datetime(2025, 8, 5, 10),
                          end_at=dt.datetime(2025, 8, 5, 16))
        records.add_event(s, CLI, free.id, "downtime", dt.datetime(2025, 5, 5, 8),
                          end_at=dt.datetime(2025, 5, 5, 12), planned=True)
        # 60 days of helium level every 6 h: sealed flat, conventional -0.05 %/day
        hours = np.arange(0, 60 * 24, 6)
        for dev, slope, level in ((free, 0.0, 99.0), (conv, -0.05, 80.0),
                                  (other, -0.1, 70.0)):
            values = level + slope * hours / 24 + 0.005 * rng.standard_normal(len(hours))
            readings = [records.Reading("helium_level_pct", T0 + dt.timedelta(hours=int(h)),
                                        float(v)) for h, v in zip(hours, values, strict=True)]
            readings += [records.Reading("coldhead_temp_k", T0 + dt.timedelta(hours=int(h)),
                                         4.2 + 0.01 * float(rng.standard_normal()))
                         for h in hours[::4]]
            records.add_readings(s, CLI, dev.id, readings)
        # a log reliability refuses (an event before the installation), stored unchecked
        broken = devices.register(s, DeviceIdentity("GE", "Revolution", "K-4", "x", "1"))
        broken.site_id, broken.display_name, broken.modality = a.id, "Broken Log CT", "CT"
        s.flush()
        records.add_event(s, CLI, broken.id, "installation", dt.datetime(2025, 2, 1))
        records.add_event(s, CLI, broken.id, "planned_service", dt.datetime(2025, 1, 5),
                          check=False)
        ids["broken"] = broken.id
        records.add_cost(s, CLI, conv.id, "service_contract", 36500.0, "EUR", P0,
                         end_on=dt.date(2027, 1, 1), note=f"contract {XSS}")
        study = m.Study(study_uid="1.2.3.4", site_id=a.id)
        s.add(study)
        s.flush()
        for day in range(100):  # one exam a day, 100 of them in the period
            st = m.Study(study_uid=f"1.2.3.4.{day}", site_id=a.id)
            s.add(st)
            s.flush()
            s.add(m.ExamTiming(study_id=st.id, device_id=conv.id,
                               started_at=dt.datetime(2025, 2, 1, 9) + dt.timedelta(days=day)))
        s.commit()
        ids.update(free=free.id, conv=conv.id, other=other.id)
    return ids


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    db = Database(url=f"sqlite:///{tmp_path_factory.mktemp('life')}/sb.db")
    try:
        ids = _populate(db)
        yield World(db, create_app(db), ids)
    finally:
        db.close()


def _client(world: World, user: str) -> TestClient:
    if user not in world.signed_in:
        client = TestClient(world.app, follow_redirects=False)
        r = client.post("/api/v1/auth/login", json={"username": user, "password": PW})
        assert r.status_code == 200, r.text
        world.signed_in[user] = client
    return world.signed_in[user]


def _cell(page: str, row_attr: str, fieldname: str) -> str:
    """The text of the cell ``data-field=fieldname`` in the row carrying ``row_attr``."""
    row = re.search(rf"<tr {row_attr}[^>]*>(.*?)</tr>", page, re.S)
    assert row is not None, row_attr
    cell = re.search(rf'data-field="{fieldname}"[^>]*>(.*?)</td>', row.group(1), re.S)
    assert cell is not None, fieldname
    return html.unescape(re.sub(r"<[^>]+>", "", cell.group(1))).strip()


def _figures(page: str) -> dict[str, Any]:
    blocks = re.findall(r'<script type="application/json" data-plot="([^"]+)">(.*?)</script>',
                        page, re.S)
    return {k: json.loads(v) for k, v in blocks}


def test_device_life_numbers_equal_records_and_costs_need_physicist(world: World) -> None:
    dev = world.ids["conv"]
    with world.db.sessions() as s:
        rel = records.device_reliability(s, dev, P0, P1)
        econ = records.device_cost_per_exam(s, dev, P0, P1)
        boil = records.device_boil_off(s, dev)
    assert rel.failures == 2 and econ.exams == 100  # the world is what the test thinks
    page = _client(world, "ph_a").get(f"/devices/{dev}/life", params=PERIOD)
    assert page.status_code == 200, page.text
    text = page.text
    for name, value, unit in (("uptime_pct", rel.uptime_pct, "%"),
                              ("mtbf_h", rel.mtbf_h, "h"), ("mttr_h", rel.mttr_h, "h"),
                              ("availability_pct", rel.availability_pct, "%"),
                              ("unplanned_downtime_h", rel.unplanned_downtime_h, "h")):
        digits = 5 if unit == "%" else 4
        want = f"{format_number(value, digits=digits)} {unit}"
        assert _cell(text, 'data-row="reliability"', name) == want, name
    assert _cell(text, 'data-row="reliability"', "failures") == "2"
    assert _cell(text, 'data-row="economics"', "cost_per_exam") == (
        f"{format_number(econ.cost_per_exam, digits=5)} EUR")
    assert boil.rate_pct_per_day is not None and 0.04 < boil.rate_pct_per_day < 0.06
    assert f"{format_number(boil.rate_pct_per_day, digits=4)} %/day" in text
    assert "IEC 60050-192" in text and "Sen 1968" in text and "IAS 16" in text
    figs = _figures(text)
    assert set(figs) == {"telemetry-helium_level_pct", "telemetry-coldhead_temp_k"}
    assert len(figs["telemetry-helium_level_pct"]["data"][0]["y"]) == 240
    assert "contract &lt;script&gt;" in text and XSS not in text
    # a viewer sees reliability and telemetry, never the costs
    viewer = _client(world, "vi_a").get(f"/devices/{dev}/life", params=PERIOD).text
    assert _cell(viewer, 'data-row="reliability"', "failures") == "2"
    assert "contract" not in viewer and "cost_per_exam" not in viewer
    assert "Costs are shown to the physicist role" in viewer


def test_default_period_is_stated_and_bad_period_is_400(world: World) -> None:
    client = _client(world, "vi_a")
    device_page = client.get(f"/devices/{world.ids['free']}").text
    assert f'href="/devices/{world.ids["free"]}/life"' in device_page
    r = client.get(f"/devices/{world.ids['free']}/life")
    assert r.status_code == 200 and "the last 365 days up to and including today" in r.text
    bad = client.get(f"/devices/{world.ids['free']}/life",
                     params={"date_from": "2025-05-01", "date_to": "2025-04-01"})
    assert bad.status_code == 400 and "date_to 2025-04-01 must be after" in bad.text
    assert client.get(f"/devices/{world.ids['free']}/life",
                      params={"date_from": "soon"}).status_code == 400


def test_another_sites_device_is_404(world: World) -> None:
    client = _client(world, "vi_b")
    assert client.get(f"/devices/{world.ids['other']}/life").status_code == 200
    for dev in ("free", "conv"):
        r = client.get(f"/devices/{world.ids[dev]}/life")
        assert r.status_code == 404 and "Conv Alpha" not in r.text
    r = client.get("/magnets", params={"a": world.ids["free"], "b": world.ids["other"]})
    assert r.status_code == 404
    page = client.get("/magnets").text
    assert "site B magnet" in page and "Conv Alpha" not in page and "Sealed Beta" not in page
    assert "Conv Alpha" not in client.get("/reliability", params=PERIOD).text


def test_magnets_compare_sealed_and_conventional(world: World) -> None:
    page = _client(world, "vi_a").get("/magnets")
    assert page.status_code == 200, page.text
    with world.db.sessions() as s:
        want = records.compare_magnets(s, world.ids["free"], world.ids["conv"])
    assert want["a"]["consistent_with_zero"] is True and want["b"]["consistent_with_zero"] is False
    assert want["different"] is True
    text = page.text
    for key in ("free", "conv"):
        rate = want["a" if key == "free" else "b"]["rate_pct_per_day"]
        assert _cell(text, f'data-device-id="{world.ids[key]}"', "rate_pct_per_day"
                     ).startswith(f"{format_number(rate, digits=4)} %/day")
    assert (f"{format_number(want['difference_pct_per_day'], digits=4)} %/day" in text
            and "the rates differ" in text)
    assert "consistent with zero boil-off" in text and "boils off" in text
    fig = _figures(text)["helium-chart"]
    assert len(fig["data"]) == 2 and "&lt;script&gt;" in text and XSS not in text
    assert "\\u003cscript\\u003e" in text  # the name in the figure's JSON, escaped


def test_reliability_page_per_device_and_model(world: World) -> None:
    with world.db.sessions() as s:
        per = [records.device_reliability(s, world.ids[k], P0, P1) for k in ("free", "conv")]
        models = records.model_reliability(s, [world.ids["free"], world.ids["conv"]], P0, P1)
        econ = records.model_cost_per_exam(s, [world.ids["conv"]], P0, P1)
    text = _client(world, "vi_a").get("/reliability", params=PERIOD).text
    for r in per:
        row = f'data-device-id="{r.devices[0]}"'
        assert _cell(text, row, "failures") == str(r.failures)
        assert _cell(text, row, "uptime_pct") == f"{format_number(r.uptime_pct, digits=5)} %"
    assert {r.model for r in models} == {"Siemens MAGNETOM Free.Max", "Siemens MAGNETOM Aera"}
    for r in models:
        assert _cell(text, f'data-model="{r.model}"', "mtbf_h") == (
            f"{format_number(r.mtbf_h, digits=4)} h" if r.mtbf_h is not None else "—")
    assert "Costs are shown to the physicist role" in text
    # the device whose log cannot be computed is named with its reason; the others shown
    assert f"device {world.ids['broken']} (Broken Log CT)" in text
    assert f'data-device-id="{world.ids["broken"]}"' not in text
    ph = _client(world, "ph_a").get("/reliability", params=PERIOD).text
    assert _cell(ph, f'data-econ-model="{econ[0].name}"', "cost_per_exam") == (
        f"{format_number(econ[0].cost_per_exam, digits=5)} EUR")
    assert "Siemens MAGNETOM Aera" in _client(world, "vi_a").get(
        "/reliability", params={**PERIOD, "model": "magnetom aera"}).text
    assert _client(world, "vi_a").get("/reliability", params={**PERIOD, "model": "x"}
                                      ).text.count('data-device-id="') == 0


def test_helium_chart_is_drawn_in_chromium(world: World, browser: Any) -> None:
    with serving(world.app) as url:
        context = browser.new_context()
        try:
            pg = context.new_page()
            pg.goto(f"{url}/login")
            pg.fill("input[name=username]", "vi_a")
            pg.fill("input[name=password]", PW)
            pg.click("button[type=submit]")
            pg.wait_for_url(lambda u: "/login" not in u)
            pg.goto(f"{url}/magnets")
            pg.wait_for_selector("#helium-chart[data-drawn=true]", timeout=20000)
            assert pg.locator("#helium-chart .scatterlayer .trace").count() == 2
        finally:
            context.close()

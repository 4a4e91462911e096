"""Issue 12's browser tests on the demo fleet: ``scanbench demo --no-serve`` once (the
real ingest path, the scenario's drift, failure and repair), ``scanbench serve`` as a
subprocess on a free port on that home, and Debian's Chromium through Playwright.

Signed in as the demo physicist: the fleet lists the failing and drifting devices first
(their names taken from the demo's own record ``<home>/demo-fleet.json``); the drifting
CT's control chart is drawn with the drift's alert point marked (plotly's DOM); a result
page draws its figure; the device's PDF report downloads and is the device's report
(pdftotext). Signed in as the Riverside-only physicist: another site's device gives no
trace by page, API, fleet list, search or a guessed id (404, never 403). Then the
screenshot script (scripts/web_screenshots.py) runs on the same server.

The demo run is the shortest the scenario allows (``--days 70``, the command's minimum,
as in tests/e2e/test_demo_fleet.py: the drift's limit crossing and the failure and
repair kept, scanbench.demo.fleet.scenario), with a fixed ``--end`` so the simulated
values are the same every day the test runs.
``SCANBENCH_TEST_DEMO_HOME``: a home already prepared by exactly that command (reused,
not run again; for working on these tests)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
WATER = "ct_number_water_hu"

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                reason="needs poppler-utils (pdftotext), installed by .ci/run")


@dataclass
class Demo:
    home: Path
    plan: dict[str, Any]
    url: str

    def device(self, key: str) -> dict[str, Any]:
        return dict(self.plan["devices"][key])

    def password(self, username: str) -> str:
        return str(next(u["password"] for u in self.plan["users"]
                        if u["username"] == username))


@pytest.fixture(scope="module")
def demo(demo_fleet_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The prepared demo home, served by ``scanbench serve --port 0`` (the bound port
    read from its log line)."""
    home = demo_fleet_home  # one demo run shared with tests/e2e (tests/conftest.py)
    plan = json.loads((home / "demo-fleet.json").read_text(encoding="utf-8"))
    log = tmp_path_factory.mktemp("demo-serve") / "serve.log"
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen([sys.executable, "-m", "scanbench", "serve", "--home",
                                 str(home), "--port", "0"], stdout=out,
                                stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            found = re.search(r"ready on (http://127\.0\.0\.1:\d+)/",
                              log.read_text(encoding="utf-8"))
            url = found.group(1) if found else None
            if url is None:
                time.sleep(0.2)
        assert url is not None, log.read_text(encoding="utf-8")[-3000:]
        yield Demo(home, plan, url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _sign_in(browser: Any, demo: Demo, username: str, *, downloads: bool = False) -> Any:
    context = browser.new_context(accept_downloads=downloads,
                                  viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(f"{demo.url}/login?next=/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", demo.password(username))
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("table#fleet", timeout=60_000)
    return page


def _fleet_rows(page: Any) -> list[dict[str, Any]]:
    return list(page.evaluate("""() => Array.from(
        document.querySelectorAll('table#fleet tbody tr')).map(tr => ({
            id: Number(tr.dataset.deviceId), state: tr.dataset.state,
            name: tr.querySelector('td:nth-child(3) a').textContent}))"""))


def test_the_fleet_lists_the_failing_and_drifting_devices_first(browser: Any,
                                                                 demo: Demo) -> None:
    page = _sign_in(browser, demo, "physicist")
    try:
        rows = _fleet_rows(page)
    finally:
        page.context.close()
    assert {r["id"] for r in rows} == {d["id"] for d in demo.plan["devices"].values()}
    order = {"failing": 0, "drifting": 1}
    ranks = [order.get(r["state"], 2) for r in rows]
    assert ranks == sorted(ranks), rows  # failing, then drifting, then the rest
    drift = demo.device(demo.plan["scenario"]["drift"]["device"])
    flagged = [r for r in rows if r["state"] in order]
    # The drifting CT (its trend alerts open at the end of the period; failing if a
    # confirmed limit judged its last value) is among the devices listed first, under
    # the name the demo gave it.
    assert (drift["id"], drift["name"]) in [(r["id"], r["name"]) for r in flagged], rows
    assert rows[:len(flagged)] == flagged


def test_the_drifting_devices_chart_marks_the_drift(browser: Any, demo: Demo) -> None:
    from urllib.parse import quote_plus

    from sqlalchemy import select

    from scanbench.evaluation.alerts import series_trend
    from scanbench.store import models as m
    from scanbench.store.db import Database

    scenario = demo.plan["scenario"]["drift"]
    drift = demo.device(scenario["device"])
    db = Database(demo.home)
    try:
        with db.sessions() as s:
            # The drift's first stored trend alert on the water CT number (what the
            # device page lists), and the trend of its series (what the chart marks).
            first = s.scalars(select(m.Alert).where(
                m.Alert.device_id == drift["id"], m.Alert.name == WATER,
                m.Alert.level == "trend", m.Alert.direction == "high")
                .order_by(m.Alert.occurred_at, m.Alert.id)).first()
            assert first is not None and first.occurred_at is not None
            trend = series_trend(s, drift["id"], first.analysis, WATER, first.labels_key)
    finally:
        db.close()
    assert scenario["start"] <= first.occurred_at.date().isoformat() <= \
        scenario["crosses_7_hu"], (first.occurred_at, scenario)
    assert first.occurred_at in {a.time for a in trend.alerts}
    page = _sign_in(browser, demo, "physicist")
    try:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{demo.url}/devices/{drift['id']}")
        slot = (f'.chart-slot[data-series-name="{WATER}"]'
                f'[hx-get*="labels={quote_plus(first.labels_key)}"]')
        assert page.locator(slot).count() == 1, page.locator(slot).count()
        page.locator(slot).scroll_into_view_if_needed()
        page.wait_for_selector(f"{slot} [data-drawn]", timeout=60_000)
        found = page.evaluate("""(sel) => {
            const gd = document.querySelector(`${sel} [data-chart-target]`);
            const t = gd._fullData.find(d => d.name === "trend rule broken");
            const paths = gd.querySelectorAll(`g.trace${t.uid} .points path`);
            return {x: Array.from(t.x), n: paths.length, symbol: t.marker.symbol};
        }""", slot)
    finally:
        page.context.close()
    # The stored alert's point is drawn, marked ×, one mark per alerted value.
    assert first.occurred_at.isoformat() in found["x"], (first.occurred_at, found["x"])
    assert found["n"] == len(found["x"]) == len({a.index for a in trend.alerts})
    assert found["symbol"] == "x"
    assert not errors, errors


def test_a_result_page_draws_its_figure(browser: Any, demo: Demo) -> None:
    drift = demo.device(demo.plan["scenario"]["drift"]["device"])
    page = _sign_in(browser, demo, "physicist")
    try:
        page.goto(f"{demo.url}/devices/{drift['id']}")
        # The result an alert of the drift was raised on, as the alerts table links it.
        link = page.locator("#alerts-table a[href^='/results/']").first
        href = link.get_attribute("href")
        assert href is not None
        page.goto(demo.url + href)
        if page.locator("form.draw-figures").count():
            # Figures not kept from the job: drawn from the stored series on request.
            page.click("form.draw-figures button[type=submit]")
            page.wait_for_url(f"**{href}", timeout=120_000)
        targets = page.eval_on_selector_all("script[data-plot]",
                                            "els => els.map(e => e.dataset.plot)")
        assert targets, page.text_content("main")
        for target in targets:
            page.wait_for_selector(f"#{target}[data-drawn]", timeout=60_000)
        drawn = page.evaluate("""(ids) => ids.map(id =>
            document.getElementById(id).querySelectorAll('.main-svg, .gl-container').length)""",
                              targets)
    finally:
        page.context.close()
    assert all(n > 0 for n in drawn), drawn


def test_the_devices_pdf_report_downloads(browser: Any, demo: Demo, tmp_path: Path) -> None:
    drift = demo.device(demo.plan["scenario"]["drift"]["device"])
    page = _sign_in(browser, demo, "physicist", downloads=True)
    try:
        page.goto(f"{demo.url}/devices/{drift['id']}")
        with page.expect_download(timeout=180_000) as info:
            page.click("#report-pdf")
        download = info.value
        pdf = tmp_path / download.suggested_filename
        download.save_as(pdf)
    finally:
        page.context.close()
    assert pdf.name.startswith(f"device-{drift['id']}-qc-") and pdf.suffix == ".pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    text = " ".join(subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True,
                                   text=True, check=True).stdout.split())
    assert "Device QC report" in text
    assert drift["model"] in text and drift["manufacturer"] in text, text[:2000]


def test_a_one_site_user_gets_no_trace_of_another_sites_device(browser: Any,
                                                               demo: Demo) -> None:
    user = next(u for u in demo.plan["users"] if u["username"] == "riverside")
    sites = {site for site, _role in user["grants"]}
    other_key = demo.plan["scenario"]["drift"]["device"]
    other = demo.device(other_key)
    assert other["site"] not in sites
    mine = {d["id"] for d in demo.plan["devices"].values() if d["site"] in sites}
    guessed = max(d["id"] for d in demo.plan["devices"].values()) + 1
    page = _sign_in(browser, demo, "riverside")
    try:
        fleet_ids = {r["id"] for r in _fleet_rows(page)}
        fleet_html = page.content()
        api = page.request
        statuses = {}
        bodies = {}
        for label, device_id in (("other", other["id"]), ("guessed", guessed)):
            r = page.goto(f"{demo.url}/devices/{device_id}")
            statuses[f"page {label}"] = r.status if r else None
            for path in (f"/api/v1/devices/{device_id}",
                         f"/api/v1/devices/{device_id}/report?format=pdf",
                         f"/devices/{device_id}/chart?analysis=ct.water&name={WATER}"):
                resp = api.get(demo.url + path)
                statuses[f"{path} {label}"] = resp.status
                if path.startswith("/api/v1/devices/") and path.count("/") == 4:
                    bodies[label] = resp.json()
        searches = {q: api.get(f"{demo.url}/api/v1/devices", params={"q": q}).json()
                    for q in (other["model"], other["name"], other["manufacturer"])}
        listed = api.get(f"{demo.url}/api/v1/devices", params={"limit": 500}).json()
        results = api.get(f"{demo.url}/api/v1/results", params={"device_id": other["id"]})
        results_status = results.status
        result_items = results.json()["items"] if results.status == 200 else []
    finally:
        page.context.close()
    assert fleet_ids == mine
    assert other["name"] not in fleet_html and other["model"] not in fleet_html
    assert set(statuses.values()) == {404}, statuses
    # The other site's device and an id that does not exist are told apart by nothing.
    assert bodies["other"] == {k: (str(v).replace(str(guessed), str(other["id"]))
                                   if isinstance(v, str) else v)
                               for k, v in bodies["guessed"].items()}, bodies
    assert {i["id"] for i in listed["items"]} == mine
    for q, found in searches.items():
        assert other["id"] not in {i["id"] for i in found["items"]}, (q, found)
    # The same searches find it for a user of its site: they would show a leak.
    page = _sign_in(browser, demo, "physicist")
    try:
        for q in searches:
            found = page.request.get(f"{demo.url}/api/v1/devices", params={"q": q}).json()
            assert other["id"] in {i["id"] for i in found["items"]}, (q, found)
    finally:
        page.context.close()
    assert results_status in (200, 404) and result_items == []


def test_the_screenshot_script_shoots_the_demo_pages(demo: Demo, tmp_path: Path) -> None:
    """scripts/web_screenshots.py on the demo: SCANBENCH_SCREENSHOTS_DIR (e.g.
    docs/screenshots) keeps its images; otherwise they go to a temporary folder."""
    out = Path(os.environ.get("SCANBENCH_SCREENSHOTS_DIR") or tmp_path)
    drift = demo.device(demo.plan["scenario"]["drift"]["device"])
    env = {**os.environ, "SCANBENCH_SCREENSHOT_PASSWORD": demo.password("physicist")}
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "web_screenshots.py"),
                        demo.url, "physicist", str(out), "--device", str(drift["id"]),
                        "--chart", WATER],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    expected = {"web-login.png", "web-fleet.png", "web-device.png", "web-device-chart.png",
                "web-result.png", "web-dose.png"}
    assert expected <= set(report["screenshots"]), report
    for name in expected:
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name

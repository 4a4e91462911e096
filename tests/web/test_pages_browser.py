"""The pages in a real browser (Debian's Chromium through Playwright): sign in, the fleet
with failing and drifting devices first, sorted and filtered without a reload; a result
whose figure the job drew, drawn by plotly.js under the Content-Security-Policy; a DICOM
series description with markup shown as text (stored XSS); another site's result a 404;
and the screenshot script."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from pages_world import PW, XSS, analysed_node, populate, serving
from scanbench.store import Database
from scanbench.store import models as m
from scanbench.web.api import create_app

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Site:
    url: str
    ids: dict[str, int]
    result_id: int


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    home = tmp_path_factory.mktemp("browser-home")
    rid = analysed_node(home, tmp_path_factory.mktemp("browser-phantom"), description=XSS)
    db = Database(url=f"sqlite:///{home / 'scanbench.db'}")
    try:
        ids = populate(db)
        with db.sessions() as s:  # the analysed scanner belongs to Site A
            s.execute(update(m.Device).where(m.Device.site_id.is_(None))
                      .values(site_id=ids["site_a"], display_name="PET analysed"))
            s.commit()
        app = create_app(db)
        app.state.home = home
        with serving(app) as url:
            yield Site(url, ids, rid)
    finally:
        db.close()


def _sign_in(browser: Any, site: Site, username: str, next_path: str = "/") -> Any:
    page = browser.new_context().new_page()
    page.goto(f"{site.url}/login?next={next_path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PW)
    page.click("#login-form button[type=submit]")
    page.wait_for_load_state("load")
    return page


def test_sign_in_then_fleet_failing_and_drifting_first_sorted_and_filtered_in_place(
        browser: Any, site: Site) -> None:
    page = _sign_in(browser, site, "ph_a")
    try:
        page.wait_for_selector("table#fleet")
        assert page.url == f"{site.url}/"
        states = page.eval_on_selector_all(
            "table#fleet tbody tr", "rows => rows.map(r => r.dataset.state)")
        assert states[:2] == ["failing", "drifting"], states
        ids = page.eval_on_selector_all(
            "table#fleet tbody tr", "rows => rows.map(r => Number(r.dataset.deviceId))")
        assert ids[:2] == [site.ids["device_failing"], site.ids["device_drifting"]]
        page.evaluate("window.__samePage = true")  # gone if the page reloads
        page.select_option('select[data-filter-key="make"]', "GE")
        # The server filters the whole fleet (htmx swaps the table in place).
        page.wait_for_selector('#fleet-part[data-query="make=GE"]', state="attached")
        visible = page.eval_on_selector_all(
            "table#fleet tbody tr:not([hidden])", "rows => rows.map(r => r.dataset.make)")
        assert visible and set(visible) == {"GE"}
        assert "shown" in page.inner_text('[data-count-for="fleet"]')
        page.select_option('select[data-filter-key="make"]', "")
        page.wait_for_selector('#fleet-part[data-query=""]', state="attached")
        page.click("table#fleet th:has-text('device')")
        names = page.eval_on_selector_all(
            "table#fleet tbody tr td:nth-child(3)", "cells => cells.map(c => c.innerText)")
        assert names == sorted(names, key=str.lower)
        assert page.get_attribute("table#fleet th:has-text('device')", "aria-sort") \
            == "ascending"
        assert page.evaluate("window.__samePage") is True
    finally:
        page.context.close()


def test_result_figure_is_drawn_and_dicom_markup_is_text(browser: Any, site: Site) -> None:
    page = _sign_in(browser, site, "ph_a", f"/results/{site.result_id}")
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda msg: errors.append(msg.text)
            if msg.type == "error" else None)
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        page.reload()
        page.wait_for_selector("#fig-1[data-drawn] .main-svg", timeout=60_000)
        traces = page.evaluate("document.getElementById('fig-1')._fullData.length")
        assert traces >= 1
        # The series description is on the page as text, never as an element.
        assert XSS in page.inner_text("dl.meta")
        assert page.query_selector("img[src='x']") is None
        assert dialogs == []
        assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e], \
            errors
        assert errors == [], errors
    finally:
        page.context.close()


def test_another_sites_result_is_a_404_page(browser: Any, site: Site) -> None:
    page = _sign_in(browser, site, "vi_b")
    try:
        response = page.goto(f"{site.url}/results/{site.result_id}")
        assert response is not None and response.status == 404
        assert f"no result with id {site.result_id}" in page.inner_text("main")
        assert "PET analysed" not in page.content()
    finally:
        page.context.close()


def test_screenshot_script_writes_the_pages(site: Site, tmp_path: Path) -> None:
    env = {**os.environ, "SCANBENCH_SCREENSHOT_PASSWORD": PW}
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "web_screenshots.py"),
                        site.url, "ph_a", str(tmp_path), "--result", str(site.result_id)],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for name in ("web-login.png", "web-fleet.png", "web-result.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name

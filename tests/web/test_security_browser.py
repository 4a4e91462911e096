"""Stored XSS in a real browser (Debian's Chromium through Playwright): with a payload in
every DICOM text field and every form field (tests/api_world.py ``poison``), every page
of the application (enumerated from its routes) is opened signed in, its htmx fragments
and plotly figures loaded, and no payload ran or became an element: ``window.__xss``
stays unset, no element carries ``data-xss``, no dialog opened; the payloads the device
page shows are there as text."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from argon2 import PasswordHasher

from api_world import (
    EXAMPLES,
    PW,
    World,
    app_routes,
    enter_form_fields,
    fill,
    payload,
    poison,
    populate,
    tiny_dicom_zip,
)
from pages_world import serving
from scanbench.store import Database
from scanbench.web import auth
from scanbench.web.api import create_app


@dataclass
class Served:
    url: str
    pages: list[str]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with pytest.MonkeyPatch.context() as mp:  # Argon2id's cost is not this test's subject
        mp.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024,
                                                   parallelism=1))
        db = Database(url=f"sqlite:///{tmp_path_factory.mktemp('xss') / 'scanbench.db'}")
        try:
            world = World(db, create_app(db), populate(db))
            poison(world)
            enter_form_fields(world)
            # Every page the admin of site A may open (a reviewer's pages are the
            # reviewer's alone).
            pages = [fill(EXAMPLES[(method, path)][0], world.ids)
                     for (method, path), rule in sorted(app_routes(world.app).items())
                     if method == "GET" and not path.startswith(("/api", "/static"))
                     and rule is not None and (rule in ("public", "authenticated")
                                               or auth.satisfies("admin", rule))
                     and path != "/login" and (method, path) in EXAMPLES
                     and "999999" not in EXAMPLES[(method, path)][0]]  # a record that exists
            with serving(world.app) as url:
                yield Served(url, pages)
        finally:
            db.close()


def _signed_in(browser: Any, served: Served) -> tuple[Any, Any]:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{served.url}/login")
    page.fill("input[name=username]", "ad_a")
    page.fill("input[name=password]", PW)
    page.click("#login-form button[type=submit]")
    page.wait_for_load_state("load")
    assert "/login" not in page.url, "sign-in failed"
    return context, page


def test_the_upload_page_sends_a_zip_and_shows_member_names_as_text(
        browser: Any, served: Served) -> None:
    """The page's script posts the file to the API with the CSRF token; a member named
    with markup is listed as skipped, as text."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("sr.dcm", zipfile.ZipFile(io.BytesIO(tiny_dicom_zip())).read("sr.dcm"))
        zf.writestr(payload("member_name") + ".txt", "not DICOM")
    context, page = _signed_in(browser, served)
    try:
        page.goto(f"{served.url}/upload")
        page.set_input_files("input[name=archive]", files=[{
            "name": "scans.zip", "mimeType": "application/zip",
            "buffer": archive.getvalue()}])
        page.click("#upload-form button[type=submit]")
        page.wait_for_function("() => document.getElementById('upload-status')"
                               ".textContent.includes('stored')", timeout=60_000)
        status = page.text_content("#upload-status")
        assert status is not None and "1 instance(s) stored" in status, status
        assert "1 skipped" in status
        shown = page.text_content("#upload-result") or ""
        assert payload("member_name") + ".txt: not DICOM" in shown
        assert page.evaluate("document.querySelectorAll('[data-xss]').length") == 0
        assert page.evaluate("window.__xss === undefined")
    finally:
        context.close()


def test_no_payload_runs_or_becomes_markup_on_any_page(browser: Any, served: Served) -> None:
    context = browser.new_context()
    page = context.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:  # an alert() that ran: recorded, then closed
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(f"{served.url}/login")
    page.fill("input[name=username]", "ad_a")
    page.fill("input[name=password]", PW)
    page.click("#login-form button[type=submit]")
    page.wait_for_load_state("load")
    assert "/login" not in page.url, "sign-in failed"
    seen_as_text: dict[str, str] = {}
    try:
        assert len(served.pages) >= 8
        for path in served.pages:
            response = page.goto(served.url + path)
            assert response is not None and response.status == 200, (path, response)
            page.wait_for_load_state("networkidle")  # htmx fragments and chart data
            page.wait_for_timeout(300)  # plotly draws after its data arrived
            state = page.evaluate("""() => ({
                flag: window.__xss === undefined ? null : String(window.__xss),
                elements: [...document.querySelectorAll('[data-xss]')].map(e => e.outerHTML),
                text: document.body.innerText})""")
            assert state["flag"] is None, (path, state["flag"])
            assert state["elements"] == [], (path, state["elements"][:3])
            for field in ("lifecycle_note", "ack_comment", "alert_message", "manufacturer",
                          "site_name"):
                if payload(field) in state["text"]:
                    seen_as_text.setdefault(field, path)
        assert dialogs == []
        # The payloads are shown, as the text they are.
        assert set(seen_as_text) == {"lifecycle_note", "ack_comment", "alert_message",
                                     "manufacturer", "site_name"}, seen_as_text
        # The checks above do find a payload rendered as markup (a page without our
        # Content-Security-Policy): the detector works.
        probe = context.new_page()  # about:blank: no policy
        probe.set_content(f"<body>{payload('probe')}</body>")
        probe.wait_for_function("() => window.__xss === 'probe'", timeout=10_000)
        assert probe.evaluate("document.querySelectorAll('[data-xss]').length") == 2
    finally:
        context.close()

"""The page framework, sign-in, the fleet overview and the result page through FastAPI's
test client on a real database: redirects to sign-in with a safe ``next``, CSRF on every
form, session fixation, HTML error pages (404 for another site's record exactly as for a
missing one, 400 for bad input, never a traceback), security headers, escaping of DICOM
text, the fleet's order and its constant number of queries."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from pages_world import PW, XSS, PagesWorld, csrf_of, populate, signed_in
from scanbench.service import figures as figstore
from scanbench.store import Database, devices, repo
from scanbench.store import models as m
from scanbench.types import DeviceIdentity, Result
from scanbench.web.api import create_app
from scanbench.web.api.app import COOKIE
from scanbench.web.pages.common import PAGE_RULES, PRE_COOKIE, safe_next


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PagesWorld]:
    home = tmp_path_factory.mktemp("pages-home")
    db = Database(url=f"sqlite:///{home / 'scanbench.db'}")
    try:
        yield PagesWorld(db, populate(db))
    finally:
        db.close()


@pytest.fixture(scope="module")
def app(world: PagesWorld) -> Any:
    return create_app(world.db)


@pytest.fixture(scope="module")
def ph_a(app: Any) -> TestClient:
    return signed_in(app, "ph_a")


def _state_order(html: str) -> list[tuple[str, int]]:
    return [(s, int(i)) for s, i in
            re.findall(r'data-state="([^"]+)" data-device-id="(\d+)"', html)]


# --------------------------------------------------------------------------- framework

def test_a_page_without_session_redirects_to_sign_in_with_next(app: Any) -> None:
    client = TestClient(app)
    r = client.get("/results/5?tab=x", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=%2Fresults%2F5%3Ftab%3Dx"
    r = client.get("/", headers={"HX-Request": "true"}, follow_redirects=False)
    assert r.status_code == 204 and r.headers["HX-Redirect"] == "/login?next=%2F"


@pytest.mark.parametrize("value, expected", [
    ("/results/3?x=1", "/results/3?x=1"), ("//evil.example/x", "/"),
    ("https://evil.example/", "/"), ("/\\evil.example", "/"), ("results", "/"),
    ("/ok\r\nSet-Cookie: x=1", "/"), (None, "/"), ("javascript:alert(1)", "/")])
def test_next_is_only_a_path_of_this_site(value: str | None, expected: str) -> None:
    assert safe_next(value) == expected


def test_sign_in_goes_to_next_and_never_off_site(app: Any) -> None:
    client = TestClient(app)
    token = csrf_of(client, "/login")
    r = client.post("/login", data={"username": "ph_a", "password": PW, "csrf_token": token,
                                    "next": "https://evil.example/"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    client = TestClient(app)
    token = csrf_of(client, "/login")
    r = client.post("/login", data={"username": "ph_a", "password": PW, "csrf_token": token,
                                    "next": "/results/1"}, follow_redirects=False)
    assert r.headers["location"] == "/results/1"
    assert client.cookies.get(COOKIE)
    assert client.cookies.get(PRE_COOKIE) is None  # the pre-session token is dropped


def test_wrong_password_shows_the_form_again_with_the_reason(app: Any) -> None:
    client = TestClient(app)
    token = csrf_of(client, "/login")
    r = client.post("/login", data={"username": "ph_a", "password": "wrong password!!",
                                    "csrf_token": token, "next": "/"})
    assert r.status_code == 401
    assert "wrong username or password" in r.text and 'name="password"' in r.text
    assert client.cookies.get(COOKIE) is None


def test_sign_in_without_the_csrf_token_is_refused(app: Any) -> None:
    client = TestClient(app)
    client.get("/login")  # has the pre-session cookie, but the form omits the token
    r = client.post("/login", data={"username": "ph_a", "password": PW, "next": "/"},
                    follow_redirects=False)
    assert r.status_code == 403 and "CSRF" in r.text
    assert client.cookies.get(COOKIE) is None
    # A cross-site form cannot read the cookie: a guessed token fails as well.
    r = client.post("/login", data={"username": "ph_a", "password": PW, "csrf_token": "x"},
                    follow_redirects=False)
    assert r.status_code == 403


def test_a_session_id_from_before_sign_in_never_becomes_valid(app: Any) -> None:
    """Session fixation: whatever session id the browser holds when it signs in (one an
    attacker planted, even a valid one of the attacker's), sign-in issues a new id and
    the old one is ended."""
    attacker = signed_in(app, "vi_b")
    planted = attacker.cookies.get(COOKIE)
    assert planted
    victim = TestClient(app)
    victim.cookies.set(COOKIE, planted, domain="testserver.local")
    token = csrf_of(victim, "/")  # signed in as vi_b through the planted id
    r = victim.post("/login", data={"username": "ph_a", "password": PW, "csrf_token": token,
                                    "next": "/"}, follow_redirects=False)
    assert r.status_code == 303
    fresh = victim.cookies.get(COOKIE)
    assert fresh and fresh != planted
    stale = TestClient(app)
    stale.cookies.set(COOKIE, planted)
    assert stale.get("/", follow_redirects=False).status_code == 303  # ended
    unknown = TestClient(app)
    unknown.cookies.set(COOKIE, "attacker-chosen-value")
    assert unknown.get("/", follow_redirects=False).status_code == 303


def test_sign_out_needs_the_csrf_token_and_ends_the_session(app: Any) -> None:
    client = signed_in(app, "ph_a")
    r = client.post("/logout", follow_redirects=False)
    assert r.status_code == 403 and "CSRF" in r.text
    assert client.get("/", follow_redirects=False).status_code == 200  # still signed in
    token = csrf_of(client, "/")
    r = client.post("/logout", headers={"X-CSRF-Token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    old = client.cookies.get(COOKIE)
    assert old is None or TestClient(app, cookies={COOKIE: old}).get(
        "/", follow_redirects=False).status_code == 303


def test_header_shows_the_user_and_their_sites(ph_a: TestClient) -> None:
    r = ph_a.get("/")
    assert 'class="user"' in r.text and "ph_a" in r.text
    assert "Site A <small>(physicist)</small>" in r.text and "Site B" not in r.text


def test_pages_carry_the_security_headers(ph_a: TestClient) -> None:
    r = ph_a.get("/")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-eval" not in csp and "'unsafe-inline'" not in csp.split("script-src")[1] \
        .split(";")[0]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"
    assert r.headers["x-frame-options"] == "DENY"
    # No inline script: every <script> has a src or is a JSON data block.
    for tag in re.findall(r"<script\b[^>]*>", r.text):
        assert "src=" in tag or 'type="application/json"' in tag, tag


def test_static_files_are_served_from_the_package(app: Any) -> None:
    import plotly

    client = TestClient(app)
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    r = client.get("/static/plotly.min.js")
    assert r.status_code == 200 and r.content == plotly_js.read_bytes()
    r = client.get("/static/htmx.min.js")
    assert r.status_code == 200 and b"htmx" in r.content[:2000]
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/scanbench.css").status_code == 200
    assert client.get("/static/nothing.js").status_code == 404


def test_errors_are_pages_and_the_api_keeps_json(ph_a: TestClient) -> None:
    r = ph_a.get("/no/such/page")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "no such page" in r.text
    r = ph_a.get("/results/not-a-number")
    assert r.status_code == 400 and "result_id" in r.text and "Traceback" not in r.text
    r = ph_a.get("/api/v1/results/999999")
    assert r.status_code == 404 and r.json() == {"error": "no result with id 999999"}


def test_every_page_route_has_a_rule(app: Any) -> None:
    """Each route outside /api and /static was registered with page() and its rule."""
    # FastAPI >= 0.16x keeps included routers as such in app.routes: iterate the routes
    # they hold (iterating app.routes alone checked nothing).
    checked = 0
    for route in iter_route_contexts(app.routes):
        path = getattr(route, "path", None) or ""
        if path.startswith(("/api", "/static")) or not hasattr(route, "methods"):
            continue
        if not route.methods:
            continue
        for method in set(route.methods) - {"HEAD"}:
            assert (method, path) in PAGE_RULES, f"{method} {path} has no page rule"
            checked += 1
    assert checked >= 10


# --------------------------------------------------------------------------- fleet

def test_fleet_lists_failing_then_drifting_first(ph_a: TestClient, world: PagesWorld) -> None:
    r = ph_a.get("/")
    assert r.status_code == 200
    order = _state_order(r.text)
    ids = world.ids
    assert order[0] == ("failing", ids["device_failing"])
    assert order[1] == ("drifting", ids["device_drifting"])
    states = [s for s, _ in order]
    assert states == sorted(states, key=["failing", "drifting", "overdue", "ok",
                                         "no results"].index)
    assert order[2] == ("overdue", ids["device_ok"])
    row = r.text.split(f'data-device-id="{ids["device_ok"]}"')[1].split("</tr>")[0]
    assert "Image quality" in row and 'status-overdue">overdue' in row
    assert "Sensitivity" in row and ">due<" in row
    # A superseded failure no longer counts: the re-analysis passes.
    assert ("ok", ids["device_resolved"]) in order
    assert ("no results", ids["device_empty"]) in order
    # Site B's device is not there at all.
    assert ids["device_other"] not in [i for _, i in order]
    assert "SN5" not in r.text
    # The failing device links its failing result; filters list what is visible.
    assert f'href="/results/{ids["result_failing_2"]}"' in r.text
    assert 'data-filter-key="make"' in r.text and ">Siemens</option>" in r.text


def test_fleet_pages_filters_and_sorts_on_the_server(ph_a: TestClient, world: PagesWorld,
                                                     monkeypatch: Any) -> None:
    """Paging keeps the urgent-first order across pages, the counts are of every visible
    device, and the filters and the order apply to the whole fleet, not to one page."""
    from scanbench.web.pages import fleet

    whole = _state_order(ph_a.get("/").text)
    monkeypatch.setattr(fleet, "PAGE_SIZE", 2)
    assert len(whole) >= 3
    pages = [ph_a.get("/", params={"page": n}) for n in range(1, (len(whole) + 3) // 2)]
    first = pages[0].text
    assert _state_order(first) == whole[:2]
    assert _state_order(pages[1].text) == whole[2:4]
    assert [row for p in pages for row in _state_order(p.text)] == whole
    assert _state_order(ph_a.get("/", params={"page": 99}).text) == _state_order(
        pages[-1].text)  # past the end: the last page
    assert f"1–2 of {len(whole)} matching devices shown" in first
    assert 'href="/?page=2"' in first
    assert "failing</span> 1" in pages[1].text  # the counts are of all, on every page
    # Filter on the server: only Siemens devices, and the count says how many match.
    siemens = ph_a.get("/", params={"make": "siemens"}).text
    makes = re.findall(r'data-make="([^"]*)"', siemens)
    assert makes and set(makes) == {"Siemens"}
    state_only = _state_order(ph_a.get("/", params={"state": "failing"}).text)
    assert state_only == [("failing", world.ids["device_failing"])]
    monkeypatch.setattr(fleet, "PAGE_SIZE", 100)
    names = re.findall(r'<a href="/devices/\d+">([^<]*)</a>',
                       ph_a.get("/", params={"sort": "device"}).text)
    assert len(names) == len(whole) and names == sorted(names, key=str.lower)
    rev = re.findall(r'<a href="/devices/\d+">([^<]*)</a>',
                     ph_a.get("/", params={"sort": "device", "order": "desc"}).text)
    assert rev == names[::-1] or rev == sorted(names, key=str.lower, reverse=True)
    # Text search over names, serials and tests; a bad page number is page 1.
    assert _state_order(ph_a.get("/", params={"q": "no such device"}).text) == []
    assert _state_order(ph_a.get("/", params={"page": "x"}).text) == whole


def test_sign_in_is_throttled_after_five_failures(app: Any) -> None:
    """OWASP login throttling (web/auth.py): after 5 failures for one account even the
    right password is refused, with a 429 page that says so."""
    from scanbench.web import auth as web_auth

    client = TestClient(app)
    token = csrf_of(client, "/login")
    form = {"username": "spare_pages", "csrf_token": token, "next": "/"}
    for _ in range(web_auth.MAX_FAILS_ACCOUNT):
        r = client.post("/login", data={**form, "password": "not the password"})
        assert r.status_code == 401
    r = client.post("/login", data={**form, "password": PW})
    assert r.status_code == 429 and "too many failed sign-ins" in r.text
    assert r.headers["retry-after"] == str(int(web_auth.THROTTLE_WINDOW.total_seconds()))
    assert client.cookies.get(COOKIE) is None


def test_fleet_escapes_device_text(app: Any, world: PagesWorld, ph_a: TestClient) -> None:
    with world.db.sessions() as s:
        dev = s.get_one(m.Device, world.ids["device_empty"])
        old = dev.display_name
        dev.display_name = XSS
        s.commit()
    try:
        r = ph_a.get("/")
        assert "&lt;img src=x onerror=alert(1)&gt;" in r.text and XSS not in r.text
    finally:
        with world.db.sessions() as s:
            s.get_one(m.Device, world.ids["device_empty"]).display_name = old
            s.commit()


def _count_queries(db: Database, client: TestClient) -> int:
    seen: list[str] = []

    def count(*_a: Any) -> None:
        seen.append("q")

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert client.get("/").status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    return len(seen)


def _check_query_count(db: Database, client: TestClient, ids: dict[str, int]) -> None:
    client.get("/")  # once: the schema look-up for the index is cached per database
    before = _count_queries(db, client)
    order = _state_order(client.get("/").text)
    assert order[0] == ("failing", ids["device_failing"])
    assert order[1] == ("drifting", ids["device_drifting"])
    with db.sessions() as s:
        for n in range(30):
            ident = DeviceIdentity("Canon", "Aquilion", f"X{n}", None, None)
            dev = devices.register(s, ident)
            dev.site_id, dev.modality = ids["site_a"], "CT"
            r = Result("ct.acr464.uniformity", "ACR CT", None, ident,
                       dt.datetime(2026, 1, 1 + n % 28))
            r.add("uniformity_hu", 1.0, "HU", status="pass")
            repo.save_result(s, r, series_id=None, device_id=dev.id)
        s.commit()
    after = _count_queries(db, client)
    assert after == before, (before, after)
    assert before <= 13, before  # 13: the newest ids, then their results (two queries)
    assert len(_state_order(client.get("/").text)) == len(order) + 30


def _same_latest_both_ways(db: Database) -> None:
    """The loose index scan (with the index on result (device_id, analysis,
    acquired_at)) and the window function choose the same newest results."""
    from sqlalchemy import text

    from scanbench.store import fleet_state

    with db.sessions() as s:
        visible = select(m.Device.id)
        by_window = {tuple(row) for row in s.execute(fleet_state.latest_ids_by_window(visible))}
        s.execute(text("CREATE INDEX ix_test_result_latest ON result "
                       "(device_id, analysis, acquired_at)"))
        fleet_state._INDEXED.clear()
        try:
            assert fleet_state.has_latest_index(s)
            by_index = {tuple(row) for row in s.execute(fleet_state.latest_ids_by_index(visible))}
        finally:
            s.rollback()
            fleet_state._INDEXED.clear()
    assert by_window and by_index == by_window


def test_fleet_query_count_does_not_grow_with_devices(world: PagesWorld,
                                                      ph_a: TestClient) -> None:
    """30 more devices with results: the same number of SQL statements (SQLite)."""
    _check_query_count(world.db, ph_a, world.ids)
    with world.db.sessions() as s:  # a result without acquisition time, and a tie
        r = Result("ct.acr464.uniformity", "ACR CT", None,
                   DeviceIdentity("Canon", "Aquilion", "X0", None, None), None)
        r.add("uniformity_hu", 2.0, "HU", status="fail")
        dev = s.scalars(select(m.Device.id).where(m.Device.serial == "X0")).one()
        repo.save_result(s, r, series_id=None, device_id=dev)
        s.commit()
    _same_latest_both_ways(world.db)


def test_fleet_on_postgresql(pg_server: Any) -> None:
    """The window function and NULLS LAST of the fleet query on PostgreSQL."""
    db = Database(url=pg_server.create())
    try:
        ids = populate(db)
        _check_query_count(db, signed_in(create_app(db), "ph_a"), ids)
        _same_latest_both_ways(db)
    finally:
        db.close()


# --------------------------------------------------------------------------- result

def test_result_page_shows_every_number_with_limit_source_and_status(
        ph_a: TestClient, world: PagesWorld) -> None:
    r = ph_a.get(f"/results/{world.ids['result_failing_2']}")
    assert r.status_code == 200
    text = r.text
    assert "activity_concentration_bias_percent" in text
    assert ">9.00<" in text and "± 0.40" in text and ">%<" in text
    assert "-5 – 5" in text and "NEMA NU 2-2018 section 7.4.1" in text
    assert 'class="status status-fail"' in text
    assert 'href="/devices/' in text and "1.2.9.1.2" in text  # device and series
    assert "scanbench version" in text and "activity_ratio" in text  # provenance
    # DICOM and analysis text escaped (stored XSS through the series description).
    assert "&lt;img src=x onerror=alert(1)&gt;" in text and XSS not in text
    # No figure file in this world: the page says so instead of failing.
    assert "no figures were stored for this result" in text


def test_superseded_result_links_the_newer_one(ph_a: TestClient, world: PagesWorld) -> None:
    old, new = world.ids["result_resolved_1"], world.ids["result_resolved_new"]
    r = ph_a.get(f"/results/{old}")
    assert "superseded" in r.text and f'href="/results/{new}"' in r.text
    r = ph_a.get(f"/results/{new}")
    assert f'href="/results/{old}"' in r.text and "superseded by" not in r.text


def test_another_sites_result_is_the_same_404_as_a_missing_one(
        ph_a: TestClient, world: PagesWorld) -> None:
    other = world.ids["result_other_1"]
    r1 = ph_a.get(f"/results/{other}")
    r2 = ph_a.get("/results/987654")
    assert r1.status_code == r2.status_code == 404
    assert f"no result with id {other}" in r1.text and "no result with id 987654" in r2.text
    assert r1.text.replace(f"id {other}", "id N") == r2.text.replace("id 987654", "id N")
    assert "Site B" not in r1.text and "SN5" not in r1.text


def test_result_page_shows_stored_figures_and_refuses_anothers(
        app: Any, ph_a: TestClient, world: PagesWorld, tmp_path: Path) -> None:
    rid = world.ids["result_failing_2"]
    with world.db.sessions() as s:
        row = s.get_one(m.Result, rid)
        uid, analysis = row.series_uid, row.analysis
    fig = {"kind": "chart", "height": 300, "full_png": "", "full_png_label": "",
           "data": [{"type": "scatter", "x": [1, 2], "y": [3, 4], "name": "</script><b>"}],
           "layout": {"title": {"text": "profile"}}, "config": {}}
    import gzip
    import json

    blob = gzip.compress(json.dumps({"format": 1, "figures": [fig]}).encode())
    app.state.home = tmp_path
    try:
        figstore.save(tmp_path, rid, uid, analysis, None, blob)
        r = ph_a.get(f"/results/{rid}")
        assert 'data-plot="fig-1"' in r.text and '<script src="/static/plotly.min.js"' in r.text
        # The JSON block cannot be closed by text inside it.
        block = r.text.split('data-plot="fig-1">')[1].split("</script>")[0]
        assert json.loads(block)["data"][0]["name"] == "</script><b>"
        # A file naming another result is not shown.
        figstore.save(tmp_path, rid, "1.2.3.other", analysis, None, blob)
        r = ph_a.get(f"/results/{rid}")
        assert 'data-plot="fig-1"' not in r.text and "belong to another result" in r.text
    finally:
        del app.state.home


def test_json_data_blocks_cannot_close_the_script_and_have_no_nan() -> None:
    import json

    from scanbench.web.pages.common import ENV

    out = ENV.from_string("{{ v | json_data }}").render(
        v={"name": "</script><script>alert(1)</script>", "y": [1.0, float("nan"),
                                                              float("inf")]})
    assert "</script>" not in out and "<" not in out
    assert json.loads(out) == {"name": "</script><script>alert(1)</script>",
                               "y": [1.0, None, None]}

"""The security set of issue 12 through FastAPI's test client on a real database:

- stored XSS: a payload in every DICOM text field the pages show (series and study
  description, manufacturer, model, serial, station name, institution, software
  versions, dose protocol, result warnings ...) and in every form field (lifecycle note,
  alert acknowledgement comment, user display name, site name) is escaped on EVERY page
  (enumerated from the application's routes), never markup;
- CSRF: every state-changing route of the application (API and page forms, enumerated
  from the routes), called with a valid admin session cookie but without the token or
  with a wrong one, is refused with 403 and changes nothing (the audit log is unchanged);
- login throttling per account and per client address, session fixation, token
  revocation, audit-log tampering detected by ``scanbench audit verify``.
The same payloads are run in Chromium by tests/web/test_security_browser.py."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from api_world import (
    DICOM_FIELDS,
    EXAMPLES,
    FORM_FIELDS,
    PW,
    World,
    app_routes,
    enter_form_fields,
    fill,
    poison,
    populate,
    send,
    signed_in,
)
from scanbench.store import Database
from scanbench.store import models as m
from scanbench.web import audit, auth
from scanbench.web.api import create_app
from scanbench.web.api.app import COOKIE, CSRF_HEADER, SAFE_METHODS

CLI = audit.Actor(None, "cli:test")


@pytest.fixture(scope="module", autouse=True)
def cheap_argon2() -> Iterator[None]:
    """Argon2id at its lowest cost here (its parameters are test_web_audit_auth.py's)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024,
                                                   parallelism=1))
        yield


def _new_world(tmp_path_factory: pytest.TempPathFactory, name: str) -> World:
    path = tmp_path_factory.mktemp(name) / "scanbench.db"
    db = Database(url=f"sqlite:///{path}")
    return World(db, create_app(db), populate(db))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = _new_world(tmp_path_factory, "security")
    try:
        poison(w)
        yield w
    finally:
        w.db.close()


def _csrf_in_page(client: TestClient, path: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert found, path
    return found.group(1)


def _page_gets(world: World) -> list[tuple[str, str]]:
    """The URL of every GET page of the application (from the route table) and the user
    of site A who may open it (admin; the reviewer for a reviewer's page)."""
    return [(fill(EXAMPLES[(method, path)][0], world.ids),
             "rv_a" if rule == "reviewer" else "ad_a")
            for (method, path), rule in sorted(app_routes(world.app).items())
            if method == "GET" and not path.startswith(("/api", "/static"))
            # signed in, the sign-in page only redirects
            and path != "/login" and (method, path) in EXAMPLES
            and "999999" not in EXAMPLES[(method, path)][0]]  # a record that exists


# --------------------------------------------------------------------------- XSS

def test_stored_xss_in_dicom_text_and_form_fields_is_escaped_on_every_page(
        world: World) -> None:
    enter_form_fields(world)
    shown: dict[str, list[str]] = {}
    pages = _page_gets(world)
    assert len(pages) >= 8
    for url, user in pages:
        client, _ = world.client(user)
        r = client.get(url)
        assert r.status_code == 200, (url, r.status_code, r.text[:300])
        assert r.headers["content-type"].startswith("text/html"), url
        # Never as markup: not the tag, not the attribute in a tag of its own.
        assert "<b data-xss" not in r.text and "<img src=x" not in r.text, url
        assert "onerror=\"window" not in r.text, url
        for f in (*DICOM_FIELDS, *FORM_FIELDS):
            # escaped by Jinja2 (&lt;b data-xss=&#34;f&#34;) or inside JSON (\u003cb)
            if (f"&lt;b data-xss=&#34;{f}&#34;&gt;" in r.text
                    or f'\\u003cb data-xss=\\"{f}\\"' in r.text):
                shown.setdefault(f, []).append(url.split("?")[0])
    # Where each field is shown (so a page that stops escaping one is exercised above);
    # a field shown nowhere is checked by the JSON API tests as data.
    for must in ("series_description", "manufacturer", "model", "lifecycle_note",
                 "ack_comment", "site_name", "dose_protocol", "result_warning",
                 "alert_message"):
        assert must in shown, (must, sorted(shown))


def test_error_pages_escape_what_the_request_carried(world: World) -> None:
    client, _ = world.client("ad_a")
    r = client.get("/results/" + "%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert r.status_code in (400, 404) and "<script>alert(1)" not in r.text
    r = client.get("/login?next=" + "%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert "<script>alert(1)" not in r.text


# --------------------------------------------------------------------------- CSRF

def _changing_routes(world: World) -> list[tuple[str, str, str, Any]]:
    out = []
    for (method, path), rule in sorted(app_routes(world.app).items()):
        if method in SAFE_METHODS or rule == "public":
            continue
        # The token is checked before anything else: a route without an example yet
        # (test_web_api's table names it) is called with ids of 1 and no body.
        url, body = EXAMPLES.get((method, path), (re.sub(r"\{[^}]+\}", "1", path), None))
        out.append((method, path, fill(url, {**world.ids, "n": 7}),
                    fill(body, {**world.ids, "n": 7})))
    return out


def test_every_state_changing_route_refuses_a_session_without_its_csrf_token(
        world: World) -> None:
    client, csrf = world.client("ad_a")
    with world.db.sessions() as s:
        before = s.scalar(select(func.count()).select_from(m.AuditEntry))
    routes = _changing_routes(world)
    assert len(routes) >= 20 and any(not p.startswith("/api") for _, p, _, _ in routes)
    for method, path, url, body in routes:
        for token in (None, csrf[:-2] + "xx", ""):
            r = send(client, method, url, body if body is not None or path.startswith("/api")
                     else {}, token)
            what = f"{method} {path} with token {token!r}"
            assert r.status_code == 403, (what, r.status_code, r.text[:300])
            assert "CSRF" in r.text, what
    with world.db.sessions() as s:  # nothing was changed, so nothing was audited
        assert s.scalar(select(func.count()).select_from(m.AuditEntry)) == before
    # Still signed in: the refusals did not end the session.
    assert client.get("/api/v1/auth/me").status_code == 200


def test_sign_in_forms_are_protected_against_login_csrf(world: World) -> None:
    client = TestClient(world.app, follow_redirects=False)
    r = client.post("/login", data={"username": "vi_a", "password": PW})
    assert r.status_code == 403 and COOKIE not in client.cookies
    token = _csrf_in_page(client, "/login")
    r = client.post("/login", data={"username": "vi_a", "password": PW,
                                    "csrf_token": token + "x"})
    assert r.status_code == 403 and COOKIE not in client.cookies
    # The API's sign-in takes only JSON: a cross-site form can send text/plain only.
    forged = client.post("/api/v1/auth/login", headers={"content-type": "text/plain"},
                         content=f'{{"username": "vi_a", "password": "{PW}"}}')
    assert forged.status_code == 422 and COOKIE not in forged.cookies


def test_bearer_tokens_need_no_csrf_token(world: World) -> None:
    with world.db.sessions() as s:
        raw, _ = auth.create_token(s, CLI, auth.get_user(s, "ad_a"), role="admin",
                                   site_ids=[world.ids["site_a"]])
        s.commit()
    r = TestClient(world.app).post(
        "/api/v1/users", headers={"Authorization": f"Bearer {raw}"},
        json={"username": "by_token", "password": PW, "site_id": world.ids["site_a"],
              "role": "viewer"})
    assert r.status_code == 201, r.text


# --------------------------------------------------------------------------- sessions

def test_session_fixation_a_planted_or_earlier_id_is_never_the_one_after_sign_in(
        world: World) -> None:
    app = world.app
    # Through the API.
    client = TestClient(app)
    r = client.post("/api/v1/auth/login", json={"username": "vi_a", "password": PW},
                    headers={"Cookie": f"{COOKIE}=attacker-chosen-id"})
    header = r.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=lax" in header and "secure" not in header
    first = r.cookies.get(COOKIE)
    assert first and first != "attacker-chosen-id"
    r = client.post("/api/v1/auth/login", json={"username": "vi_a", "password": PW})
    second = r.cookies.get(COOKIE)
    assert second and second != first
    old = TestClient(app)
    assert old.get("/api/v1/auth/me", headers={"Cookie": f"{COOKIE}={first}"}
                   ).status_code == 401  # the earlier session ended
    assert old.get("/api/v1/auth/me", headers={"Cookie": f"{COOKIE}={second}"}
                   ).status_code == 200
    # Through the sign-in page: a session id the attacker holds (their own valid one)
    # planted in the victim's browser is ended, and the victim gets a new one.
    attacker, _ = signed_in(app, "vi_b")
    planted = attacker.cookies.get(COOKIE)
    assert planted
    victim = TestClient(app, follow_redirects=False, cookies={COOKIE: planted})
    assert victim.get("/login").status_code == 303  # signed in, as the attacker
    r = victim.post("/login", data={"username": "vi_a", "password": PW,
                                    "csrf_token": _csrf_in_page(victim, "/")})
    assert r.status_code == 303, r.text[:300]
    after = r.cookies.get(COOKIE)
    assert after and after != planted
    assert attacker.get("/api/v1/auth/me").status_code == 401  # the planted id is dead
    me = TestClient(app).get("/api/v1/auth/me", headers={"Cookie": f"{COOKIE}={after}"})
    assert me.json()["username"] == "vi_a"
    # TLS: the cookie is Secure; sign-out ends the session.
    tls = TestClient(app, base_url="https://testserver")
    r = tls.post("/api/v1/auth/login", json={"username": "vi_a", "password": PW})
    assert "secure" in r.headers["set-cookie"].lower()
    csrf = r.json()["csrf_token"]
    assert tls.post("/api/v1/auth/logout", headers={CSRF_HEADER: csrf}).status_code == 204
    assert tls.get("/api/v1/auth/me").status_code == 401


def test_revoked_token_is_refused_at_once(world: World) -> None:
    client, csrf = world.client("ph_a")
    made = client.post("/api/v1/tokens", json={"role": "viewer",
                                               "site_ids": [world.ids["site_a"]]},
                       headers={CSRF_HEADER: csrf})
    assert made.status_code == 201, made.text
    token, tid = made.json()["token"], made.json()["id"]
    bearer = TestClient(world.app)
    headers = {"Authorization": f"Bearer {token}"}
    assert bearer.get("/api/v1/auth/me", headers=headers).json()["grants"] == {
        str(world.ids["site_a"]): "viewer"}
    # A token cannot manage tokens (a viewer token of a physicist would escalate).
    assert bearer.post("/api/v1/tokens", json={"role": "physicist", "site_ids": [
        world.ids["site_a"]]}, headers=headers).status_code == 403
    assert bearer.get("/api/v1/devices", headers=headers).status_code == 200
    assert client.delete(f"/api/v1/tokens/{tid}",
                         headers={CSRF_HEADER: csrf}).status_code == 204
    r = bearer.get("/api/v1/devices", headers=headers)
    assert r.status_code == 401 and r.json()["error"]
    with world.db.sessions() as s:  # stored only as its hash
        assert auth.sha256(token) in s.scalars(select(m.ApiToken.token_hash)).all()
        assert token not in s.scalars(select(m.ApiToken.token_hash)).all()
        assert audit.verify(s).ok


# --------------------------------------------------------------------------- throttling

def test_login_is_throttled_per_account(tmp_path_factory: pytest.TempPathFactory) -> None:
    w = _new_world(tmp_path_factory, "throttle-account")
    try:
        client = TestClient(w.app)
        for _ in range(auth.MAX_FAILS_ACCOUNT):
            r = client.post("/api/v1/auth/login", json={"username": "vi_a", "password": "no"})
            assert r.status_code == 401
        # The right password now refused too, from any address, by API and by page.
        r = client.post("/api/v1/auth/login", json={"username": "vi_a", "password": PW})
        assert r.status_code == 429 and "Retry-After" in r.headers
        elsewhere = TestClient(w.app, client=("192.0.2.7", 40000), follow_redirects=False)
        r = elsewhere.post("/login", data={"username": "vi_a", "password": PW,
                                           "csrf_token": _csrf_in_page(elsewhere, "/login")})
        assert r.status_code == 429 and COOKIE not in elsewhere.cookies
        # Another account is not locked by it.
        assert client.post("/api/v1/auth/login", json={"username": "ph_a", "password": PW}
                           ).status_code == 200
    finally:
        w.db.close()


def test_login_is_throttled_per_address(tmp_path_factory: pytest.TempPathFactory) -> None:
    w = _new_world(tmp_path_factory, "throttle-address")
    try:
        attacker = TestClient(w.app, client=("198.51.100.9", 40000))
        names = ["vi_a", "te_a", "ph_a", "ad_a", "vi_b", "ad_b", "spare"]
        per_account = auth.MAX_FAILS_ACCOUNT - 1  # never enough to lock an account
        tries = [n for n in names for _ in range(per_account)][:auth.MAX_FAILS_ADDRESS]
        assert len(tries) == auth.MAX_FAILS_ADDRESS
        for name in tries:
            r = attacker.post("/api/v1/auth/login", json={"username": name,
                                                           "password": "wrong"})
            assert r.status_code == 401
        r = attacker.post("/api/v1/auth/login", json={"username": "spare", "password": PW})
        assert r.status_code == 429 and "Retry-After" in r.headers
        # The same account from another address signs in: only that address waits.
        other = TestClient(w.app, client=("203.0.113.5", 40000))
        assert other.post("/api/v1/auth/login", json={"username": "spare", "password": PW}
                          ).status_code == 200
    finally:
        w.db.close()


# --------------------------------------------------------------------------- audit log

def _audit_verify(url: str) -> subprocess.CompletedProcess[str]:
    """``scanbench audit verify`` as a user runs it: the installed command, a process."""
    command = Path(sys.executable).parent / "scanbench"
    return subprocess.run([str(command), "audit", "verify", "--database-url", url],
                          capture_output=True, text=True, timeout=120, check=False)


def test_audit_chain_tampering_is_detected_by_scanbench_audit_verify(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    home: Path = tmp_path_factory.mktemp("audit-home")
    url = f"sqlite:///{home / 'scanbench.db'}"
    db = Database(url=url)
    try:
        w = World(db, create_app(db), populate(db))
        client, csrf = w.client("ad_a")
        r = client.put(f"/api/v1/users/{w.ids['vi_a']}/grants", headers={CSRF_HEADER: csrf},
                       json={"site_id": w.ids["site_a"], "role": "technologist"})
        assert r.status_code < 300, r.text
        ok = _audit_verify(url)
        assert ok.returncode == 0 and "intact" in ok.stdout, ok.stdout + ok.stderr
        with db.sessions() as s:
            entry = s.scalars(select(m.AuditEntry).where(
                m.AuditEntry.action.like("grant%")).order_by(m.AuditEntry.id.desc())).first()
            assert entry is not None
            victim = entry.id
        # One row edited in the database, as someone with SQL access would: the grant
        # made to look like a viewer's.
        with db.engine.begin() as conn:
            conn.execute(update(m.AuditEntry).where(m.AuditEntry.id == victim)
                         .values(after={"role": "viewer"}))
        bad = _audit_verify(url)
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert f"entry {victim}" in bad.stderr and "tampered" in bad.stderr, bad.stderr
    finally:
        db.close()


def test_an_audit_row_removed_from_the_middle_is_detected(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    w = _new_world(tmp_path_factory, "audit-gap")
    try:
        with w.db.sessions() as s:
            ids = list(s.scalars(select(m.AuditEntry.id).order_by(m.AuditEntry.id)))
        middle = ids[len(ids) // 2]
        with w.db.engine.begin() as conn:
            conn.execute(m.AuditEntry.__table__.delete().where(  # type: ignore[attr-defined]
                m.AuditEntry.id == middle))
        with w.db.sessions() as s:
            verdict = audit.verify(s)
        assert not verdict.ok and verdict.bad_id == ids[ids.index(middle) + 1]
    finally:
        w.db.close()

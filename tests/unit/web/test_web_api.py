"""The /api/v1 JSON API and the pages (issue 12) through FastAPI's test client on a real
database: the role x route table over EVERY route of the application (API and pages; a
new route without a rule or an example fails it, naming the route), site isolation
(404, never 403), bad input generated from the routes (unknown ids, bad filters and
sorts, oversized pages, malformed JSON, wrong content type): a JSON error with a clear
message, never a 500 and never a traceback.

Speed: one database and one application per module, and each role signs in ONCE (the
world and the route table are in tests/api_world.py); the security set (CSRF, XSS,
throttling, fixation, revocation, audit tampering) is test_web_security.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from api_world import (
    EXAMPLES,
    EXPECTED,
    OTHER_ADMIN,
    PW,
    ROLE_USERS,
    SESSION_ENDING,
    SITE_A_KEY,
    XSS,
    World,
    app_routes,
    fill,
    populate,
    send,
    signed_in,
)
from scanbench.store import Database
from scanbench.store import models as m
from scanbench.web import audit, auth
from scanbench.web.api import create_app
from scanbench.web.api.app import CSRF_HEADER, RULE_KEY


@pytest.fixture(scope="module", autouse=True)
def cheap_argon2() -> Iterator[None]:
    """Argon2id at its lowest cost for this module (RFC 9106 parameters are
    test_web_audit_auth.py's subject; here they would only cost time): the table signs
    in a dozen users."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024,
                                                   parallelism=1))
        yield


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    db = Database(url=f"sqlite:///{tmp_path_factory.mktemp('api') / 'scanbench.db'}")
    try:
        ids = populate(db)
        yield World(db, create_app(db), ids)
    finally:
        db.close()
def _refused(r: Any, status: int, what: str) -> None:
    """A refusal: the status, and an error that says why (JSON for the API, a page that
    is no traceback for the pages)."""
    assert r.status_code == status, (what, r.status_code, r.text[:300])
    if r.headers.get("content-type", "").startswith("application/json"):
        assert isinstance(r.json()["error"], str) and r.json()["error"], what
    assert "Traceback" not in r.text, what


def test_every_route_has_a_rule_an_example_and_each_role_gets_what_the_rule_allows(
        world: World) -> None:
    routes = app_routes(world.app)
    no_rule = sorted(f"{m_} {p}" for (m_, p), rule in routes.items() if rule is None)
    assert not no_rule, f"routes registered without an access rule: {no_rule}"
    missing = sorted(f"{m_} {p}" for key in routes.keys() - EXAMPLES.keys() for m_, p in [key])
    assert not missing, ("routes without an example request: add each to EXAMPLES in "
                         f"tests/api_world.py: {missing}")
    gone = sorted(f"{m_} {p}" for key in EXAMPLES.keys() - routes.keys() for m_, p in [key])
    assert not gone, f"EXAMPLES entries of routes that no longer exist: {gone}"
    anonymous = TestClient(world.app, follow_redirects=False)
    n = 0
    for (method, path), rule in sorted(routes.items()):
        url_t, body_t = EXAMPLES[(method, path)]
        assert rule is not None
        is_page = not path.startswith("/api")
        what = f"{method} {path}"
        anonymous.cookies.clear()  # a public sign-in above must not sign this one in
        if rule == "public":
            r = send(anonymous, method, fill(url_t, world.ids), fill(body_t, world.ids), None)
            assert r.status_code < 500 and (method != "GET" or r.status_code == 200), (
                what, r.status_code, r.text[:300])
            continue
        anonymous.cookies.clear()
        r = send(anonymous, method, fill(url_t, world.ids), fill(body_t, world.ids), None)
        if is_page:
            assert r.status_code in (303, 403), (what, r.status_code)  # 403: form CSRF first
            if method == "GET":
                assert r.headers["location"].startswith("/login?next="), what
        else:
            _refused(r, 401, f"{what} anonymous")
        for who in (*ROLE_USERS.values(), OTHER_ADMIN):
            n += 1
            ids = {**world.ids, "n": n}
            url, body = fill(url_t, ids), fill(body_t, ids)
            if (method, path) in SESSION_ENDING:
                client, csrf = signed_in(world.app, who)
            else:
                client, csrf = world.client(who)
            r = send(client, method, url, body, csrf)
            label = f"{what} as {who}"
            assert r.status_code < 500, (label, r.text[:300])
            if who == OTHER_ADMIN:
                if SITE_A_KEY.search(url_t.split("?")[0]):
                    _refused(r, 404, label)  # another site's record: not found, never 403
                continue
            role = next(k for k, v in ROLE_USERS.items() if v == who)
            # a reviewer reads as a viewer; only a reviewer meets the reviewer rule
            allowed = rule == "authenticated" or auth.satisfies(role, rule)
            if not allowed:
                _refused(r, 403, label)
            elif "999999" in url:
                _refused(r, 404, label)
            elif (method, path) in EXPECTED:
                assert r.status_code == EXPECTED[(method, path)], (label, r.status_code)
            else:
                # 409: the same change made by a higher role again (a job retried twice)
                assert r.status_code < 400 or r.status_code == 409, (
                    label, r.status_code, r.text[:300])


def test_another_sites_records_are_404_by_id_list_and_search(world: World) -> None:
    _check_isolation(world)


def test_another_sites_records_are_404_on_postgresql(pg_server: Any) -> None:
    """The Scope's filters and searches (LIKE/ILIKE, IN) as PostgreSQL runs them."""
    db = Database(url=pg_server.create())
    try:
        _check_isolation(World(db, create_app(db), populate(db)))
    finally:
        db.close()


def _check_isolation(world: World) -> None:
    client, _ = world.client("vi_b")
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
    client, _ = world.client("vi_a")
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
    client, _ = world.client("vi_a")
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


def test_history_json_is_the_downsampled_full_history(world: World) -> None:
    """The JSON reads the values first and the other columns of the kept points only:
    the same points, unit and total as downsampling the whole history."""
    from scanbench.store import repo
    from scanbench.web.api.routes import downsample

    client, _ = world.client("vi_a")
    analysis, name = "pet.calibration_uniformity", "activity_concentration_bias_percent"
    base = (f"/api/v1/devices/{world.ids['device_a']}/history?analysis={analysis}"
            f"&name={name}")
    with world.db.sessions() as s:
        every = repo.history(s, world.ids["device_a"], analysis, name)
    for n in (2, 3, 4, 7, 1000):
        got = client.get(base + f"&max_points={n}").json()
        want = downsample(every, n)
        assert [(p["result_id"], p["value"], p["status"], p["labels"]) for p in got["points"]] \
            == [(p.result_id, p.value, p.status, p.labels) for p in want], n
        assert got["unit"] == every[0].unit and got["total"] == len(every)
        assert got["downsampled"] == (len(want) < len(every))


# --------------------------------------------------------------------------- bad input

def _json_error(r: Any, what: str) -> str:
    assert r.status_code < 500, (what, r.status_code, r.text[:300])
    assert "Traceback" not in r.text and 'File "' not in r.text, what
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/json"), (what, r.text[:200])
        message = r.json()["error"]
        assert isinstance(message, str) and message, what
        return message
    return ""


def caller_for(rule: str | None) -> str:
    """A user of site A whose grant meets ``rule`` (admin, or the reviewer for the
    reviewer rule, which no other role meets)."""
    return next(user for role, user in sorted(ROLE_USERS.items(),
                                               key=lambda kv: -auth.RANK[kv[0]])
                if rule in (None, "public", "authenticated") or auth.satisfies(role, rule))


def _api_ops(world: World) -> list[tuple[str, str, dict[str, Any]]]:
    spec = world.app.openapi()
    # Routes without an example are the table test's failure (named there), not these.
    return [(method.upper(), path, op) for path, item in sorted(spec["paths"].items())
            for method, op in item.items()
            if path.startswith("/api/v1") and (method.upper(), path) in EXAMPLES]


def test_unknown_and_malformed_ids_of_every_endpoint_are_json_404_and_422(
        world: World) -> None:
    checked = 0
    for method, path, op in _api_ops(world):
        client, csrf = world.client(caller_for(op.get(RULE_KEY)))
        params = [p for p in op.get("parameters", []) if p["in"] == "path"]
        if not params:
            continue
        url_t, body_t = EXAMPLES[(method, path)]
        body = fill(body_t, {**world.ids, "n": 0})
        for p in params:
            kind = p["schema"].get("type")
            # the example's URL with this one parameter replaced, segment by segment
            ex_path, _, query = fill(url_t, world.ids).partition("?")
            ex, tpl, query = ex_path.split("/"), path.split("/"), f"?{query}" if query else ""

            seg = [("999999" if t == "{" + p["name"] + "}" else e) for t, e in zip(tpl, ex,
                                                                                  strict=True)]
            concrete = "/".join(seg) + query
            r = client.request(method, concrete, json=body, headers={CSRF_HEADER: csrf})
            what = f"{method} {path} with {p['name']}=999999"
            message = _json_error(r, what)
            assert r.status_code == 404, (what, r.status_code, message)
            if kind == "integer":
                seg = [("not-a-number" if t == "{" + p["name"] + "}" else e)
                       for t, e in zip(tpl, ex, strict=True)]
                r = client.request(method, "/".join(seg) + query, json=body,
                                   headers={CSRF_HEADER: csrf})
                what = f"{method} {path} with {p['name']}=not-a-number"
                message = _json_error(r, what)
                assert r.status_code == 422 and p["name"] in message, (what, message)
            checked += 1
    assert checked > 30


def test_every_limit_above_its_maximum_is_422_naming_the_maximum(world: World) -> None:
    checked = 0
    for method, path, op in _api_ops(world):
        client, _ = world.client(caller_for(op.get(RULE_KEY)))
        for p in op.get("parameters", []):
            schema = p.get("schema", {})
            if p["in"] != "query" or "maximum" not in schema:
                continue
            url = fill(EXAMPLES[(method, path)][0], world.ids)
            too_many = int(schema["maximum"]) + 1
            r = client.request(method, f"{url}{'&' if '?' in url else '?'}"
                               f"{p['name']}={too_many}")
            what = f"{method} {path} {p['name']}={too_many}"
            message = _json_error(r, what)
            assert r.status_code == 422, (what, r.status_code)
            assert p["name"] in message and str(schema["maximum"]).rstrip("0").rstrip(".") \
                in message, (what, message)
            checked += 1
    assert checked >= 5


def test_garbage_in_every_query_parameter_is_a_clear_error_or_ignored(world: World) -> None:
    """Each query parameter of each GET endpoint, alone, given text that is no number,
    no date, no known field name, no JSON: a 2xx (the filter matched nothing) or a 4xx
    JSON error, never a 500."""
    garbage = "x'\"<>;--%00{"
    unclear = []
    for method, path, op in _api_ops(world):
        if method != "GET":
            continue
        client, _ = world.client(caller_for(op.get(RULE_KEY)))
        url = fill(EXAMPLES[(method, path)][0], world.ids)
        for p in op.get("parameters", []):
            if p["in"] != "query":
                continue
            base, _, query = url.partition("?")
            kept = "&".join(q for q in query.split("&") if q and
                            not q.startswith(p["name"] + "="))
            r = client.get(f"{base}?{kept}&{p['name']}={garbage}")
            message = _json_error(r, f"GET {path} {p['name']}=garbage")
            if r.status_code >= 400 and r.status_code != 404 and p["name"] not in message:
                unclear.append((path, p["name"], message))
    assert not unclear, f"errors that do not name the parameter: {unclear}"


def test_malformed_json_and_wrong_content_type_on_every_body_endpoint(world: World) -> None:
    checked = 0
    for method, path, op in _api_ops(world):
        if "requestBody" not in op:
            continue
        client, csrf = world.client(caller_for(op.get(RULE_KEY)))
        url = fill(EXAMPLES[(method, path)][0], world.ids)
        for content, ctype in (('{"broken": ', "application/json"),
                               ("[1, 2", "application/json"),
                               ("kind=repair", "text/plain"),
                               ("<x/>", "application/xml")):
            r = client.request(method, url, content=content,
                               headers={CSRF_HEADER: csrf, "content-type": ctype})
            what = f"{method} {path} body {content!r} as {ctype}"
            _json_error(r, what)
            assert 400 <= r.status_code < 500, (what, r.status_code, r.text[:200])
        checked += 1
    assert checked >= 10


def test_bad_filters_and_sorts_name_the_field(world: World) -> None:
    client, csrf = world.client("ad_a")
    cases = [
        ("GET", "/api/v1/devices?offset=-1", None, 422, "offset"),
        ("GET", "/api/v1/devices?sort=password_hash", None, 400, "sort"),
        ("GET", "/api/v1/results?status=green", None, 400, "status"),
        ("GET", "/api/v1/results?date_from=2026-13-01", None, 422, "date_from"),
        ("GET", "/api/v1/results?date_from=2026-03-05&date_to=2026-03-01", None, 400,
         "date_"),
        ("GET", f"/api/v1/devices/{world.ids['device_a']}/history?analysis=a&name=b"
         "&labels={not json", None, 400, "labels"),
        ("GET", "/api/v1/nowhere", None, 404, ""),
        ("POST", "/api/v1/users", {"username": "x", "password": PW,
                                   "site_id": world.ids["site_a"], "role": "root"}, 400,
         "role"),
        ("POST", "/api/v1/users", {"username": "y", "password": "short",
                                   "site_id": world.ids["site_a"], "role": "viewer"}, 400,
         "password"),
    ]
    for method, url, body, status, named in cases:
        r = client.request(method, url, json=body, headers={CSRF_HEADER: csrf})
        message = _json_error(r, url)
        assert r.status_code == status, (method, url, r.status_code, r.text)
        assert named in message, (url, message)


def test_docs_page_and_openapi_are_served_locally(world: World) -> None:
    client = TestClient(world.app)
    page = client.get("/api/docs")
    assert page.status_code == 200 and "/api/v1/devices/{device_id}" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN
    assert client.get("/api/openapi.json").json()["paths"]


def test_job_retry_hands_the_job_to_the_node_and_is_audited(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    # Its own database: the table test above retries site A's job too.
    db = Database(url=f"sqlite:///{tmp_path_factory.mktemp('retry') / 'scanbench.db'}")
    try:
        w = World(db, create_app(db), populate(db))
        jid = w.ids["job_a"]
        viewer, vcsrf = w.client("vi_a")
        assert viewer.post(f"/api/v1/jobs/{jid}/retry",
                           headers={CSRF_HEADER: vcsrf}).status_code == 403
        other, ocsrf = w.client("vi_b")
        assert other.post(f"/api/v1/jobs/{jid}/retry",
                          headers={CSRF_HEADER: ocsrf}).status_code == 403  # no tech role
        client, csrf = w.client("te_a")
        r = client.post(f"/api/v1/jobs/{jid}/retry", headers={CSRF_HEADER: csrf})
        assert r.status_code == 200 and r.json()["state"] == "interrupted", r.text
        again = client.post(f"/api/v1/jobs/{jid}/retry", headers={CSRF_HEADER: csrf})
        assert again.status_code == 409 and "interrupted" in again.json()["error"]
        assert client.post(f"/api/v1/jobs/{w.ids['job_b']}/retry",
                           headers={CSRF_HEADER: csrf}).status_code == 404
        from sqlalchemy import select

        with db.sessions() as s:
            entry = s.scalars(select(m.AuditEntry).where(
                m.AuditEntry.action == "job.retry")).one()
            assert entry.actor == "te_a"
            assert entry.before == {"state": "failed", "error": "boom"}
            assert s.get_one(m.Job, jid).owner is None
            assert audit.verify(s).ok
    finally:
        db.close()

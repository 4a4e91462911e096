"""A small two-site world for the API, route-table and security tests, and the table of
every route of the application with a request valid for its role (EXAMPLES): shared by
tests/unit/web/test_web_api.py, test_web_security.py and tests/web/test_security_browser.py.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from starlette.routing import Mount

from scanbench.store import Database, devices, repo
from scanbench.store import models as m
from scanbench.types import DeviceIdentity, Limits, Result
from scanbench.web import audit, auth, sites
from scanbench.web.api.app import CSRF_HEADER, RULE_KEY
from scanbench.web.pages.common import PAGE_RULES

CLI = audit.Actor(None, "cli:test")
PW = "correct horse battery"
XSS = "<script>alert(1)</script> & \"q\""
ROLE_USERS = {"viewer": "vi_a", "technologist": "te_a", "physicist": "ph_a", "admin": "ad_a",
              "reviewer": "rv_a"}
#: Beside the five roles of site A: nobody signed in, and the admin of site B only.
OTHER_ADMIN = "ad_b"


@dataclass
class World:
    db: Database
    app: Any
    ids: dict[str, int]
    clients: dict[str, tuple[TestClient, str]] = field(default_factory=dict)

    def client(self, user: str) -> tuple[TestClient, str]:
        """A client signed in as ``user`` (once per module: the sign-in is Argon2id)."""
        if user not in self.clients:
            self.clients[user] = signed_in(self.app, user)
        return self.clients[user]


def _result(dev: DeviceIdentity, uid: str, day: int, value: float) -> Result:
    r = Result("pet.calibration_uniformity", "NEMA NU 2-2018 section 7.4.1", uid, dev,
               dt.datetime(2026, 3, day, 9, 0))
    r.add("activity_concentration_bias_percent", value, "%",
          limits=Limits(low=-5, high=5, source="NEMA NU 2-2018", verified=True))
    return r


def populate(db: Database) -> dict[str, int]:
    ids: dict[str, int] = {}
    with db.sessions() as s:
        a = sites.add_site(s, CLI, "Site A")
        b = sites.add_site(s, CLI, "Site B")
        ids["site_a"], ids["site_b"] = a.id, b.id
        for role, name in ROLE_USERS.items():
            auth.grant(s, CLI, auth.add_user(s, CLI, name, PW), a, role)
        auth.grant(s, CLI, auth.add_user(s, CLI, "vi_b", PW), b, "viewer")
        auth.grant(s, CLI, auth.add_user(s, CLI, OTHER_ADMIN, PW), b, "admin")
        ids["spare"] = auth.add_user(s, CLI, "spare", PW).id
        auth.grant(s, CLI, s.get_one(m.User, ids["spare"]), a, "viewer")
        ids["vi_a"] = auth.get_user(s, "vi_a").id
        for key, site, serial in (("a", a, "111"), ("b", b, "222")):
            ident = DeviceIdentity("Siemens", "Biograph mCT", serial, XSS, "VG80")
            dev = devices.register(s, ident)
            dev.site_id = site.id
            study = m.Study(study_uid=f"1.2.{serial}", site_id=site.id)
            s.add(study)
            s.flush()
            for day in range(1, 21):  # one QC series a day
                ser = m.Series(series_uid=f"1.2.{serial}.{day}", study_id=study.id,
                               device_id=dev.id, modality="PT", description=XSS,
                               software_versions="VG80" if day < 10 else "VG80B",
                               acquired_at=dt.datetime(2026, 3, day, 9, 0), state="done")
                s.add(ser)
                s.flush()
                res = repo.save_result(s, _result(ident, ser.series_uid, day,
                                                  float(day % 7) - 3), series_id=ser.id,
                                       device_id=dev.id)
            job = m.Job(kind="series", target_uid=ser.series_uid, state="failed",
                        error="boom")
            alert = m.Alert(key=f"k-{key}", device_id=dev.id,
                            analysis="pet.calibration_uniformity",
                            name="activity_concentration_bias_percent", rule="1-3s",
                            level="trend", message="1-3s broken", state="open")
            s.add_all([job, alert])
            s.flush()
            ids[f"device_{key}"], ids[f"series_{key}"] = dev.id, ser.id
            ids[f"result_{key}"], ids[f"job_{key}"] = res.id, job.id
            ids[f"study_{key}"], ids[f"alert_{key}"] = study.id, alert.id
            rv = m.Review(result_id=res.id, site_id=site.id, triage_score=1.5,
                          triage_drivers=[{"note": XSS}])
            s.add(rv)
            s.flush()
            # not "review_a": a site B admin meets the reviewer rule (403) before the id
            ids["review" if key == "a" else "review_b"] = rv.id
        s.commit()
    return ids


def signed_in(app: Any, user: str) -> tuple[TestClient, str]:
    """A client signed in through the API (its session cookie also opens the pages) and
    the session's CSRF token."""
    client = TestClient(app, follow_redirects=False)
    r = client.post("/api/v1/auth/login", json={"username": user, "password": PW})
    assert r.status_code == 200, r.text
    csrf: str = r.json()["csrf_token"]
    return client, csrf


def tiny_dicom_zip() -> bytes:
    """A zip holding one small DICOM instance (a Basic Text SR: stored, no analysis) and
    a text file: a valid upload."""
    import io
    import zipfile

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.88.11")
    meta.MediaStorageSOPInstanceUID = UID("1.2.826.0.1.3680043.8.498.1")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.2"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.3"
    ds.Modality = "SR"
    raw = io.BytesIO()
    ds.save_as(raw, enforce_file_format=True)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("sr.dcm", raw.getvalue())
        zf.writestr("notes.txt", "not DICOM")
    return out.getvalue()


# Every route of the application (API and pages) with a request that is valid for a
# caller with the route's role. {x} are filled from World.ids, {n} with a number unique
# to the request; a page's POST body is its form (the CSRF token is added). A new route
# without an entry here fails the table test with its method and path named.
EXAMPLES: dict[tuple[str, str], tuple[str, dict[str, Any] | str | bytes | None]] = {
    ("POST", "/api/v1/auth/login"): ("/api/v1/auth/login", {"username": "vi_a",
                                                             "password": PW}),
    ("POST", "/api/v1/auth/logout"): ("/api/v1/auth/logout", None),
    ("GET", "/api/v1/auth/me"): ("/api/v1/auth/me", None),
    ("GET", "/api/v1/tokens"): ("/api/v1/tokens", None),
    ("POST", "/api/v1/tokens"): ("/api/v1/tokens", {"role": "viewer",
                                                     "site_ids": ["{site_a}"]}),
    ("DELETE", "/api/v1/tokens/{token_id}"): ("/api/v1/tokens/999999", None),
    ("GET", "/api/v1/sites"): ("/api/v1/sites", None),
    ("GET", "/api/v1/sites/{site_id}"): ("/api/v1/sites/{site_a}", None),
    ("GET", "/api/v1/devices"): ("/api/v1/devices", None),
    ("GET", "/api/v1/devices/{device_id}"): ("/api/v1/devices/{device_a}", None),
    ("GET", "/api/v1/devices/{device_id}/history"): (
        "/api/v1/devices/{device_a}/history?analysis=pet.calibration_uniformity"
        "&name=activity_concentration_bias_percent", None),
    ("GET", "/api/v1/series"): ("/api/v1/series", None),
    ("GET", "/api/v1/results"): ("/api/v1/results", None),
    ("GET", "/api/v1/results/{result_id}"): ("/api/v1/results/{result_a}", None),
    ("GET", "/api/v1/jobs"): ("/api/v1/jobs", None),
    ("POST", "/api/v1/jobs/{job_id}/retry"): ("/api/v1/jobs/{job_a}/retry", None),
    ("GET", "/api/v1/users"): ("/api/v1/users", None),
    ("POST", "/api/v1/users"): ("/api/v1/users", {
        "username": "new{n}", "password": PW, "site_id": "{site_a}", "role": "viewer"}),
    ("PUT", "/api/v1/users/{user_id}/grants"): ("/api/v1/users/{vi_a}/grants", {
        "site_id": "{site_a}", "role": "viewer"}),
    ("DELETE", "/api/v1/users/{user_id}/grants/{site_id}"): (
        "/api/v1/users/{spare}/grants/{site_a}", None),
    ("GET", "/api/v1/audit"): ("/api/v1/audit", None),
    # specs, assignments, scorecards, due lists (web/api/eval_routes.py)
    ("GET", "/api/v1/specs"): ("/api/v1/specs", None),
    ("GET", "/api/v1/specs/{name}"): ("/api/v1/specs/earl1", None),
    ("GET", "/api/v1/specs/{name}/{version}"): ("/api/v1/specs/earl1/2017-01", None),
    ("GET", "/api/v1/spec-diff"): ("/api/v1/spec-diff?a=earl1&b=earl2", None),
    ("GET", "/api/v1/spec-assignments"): ("/api/v1/spec-assignments", None),
    ("POST", "/api/v1/spec-assignments"): ("/api/v1/spec-assignments", {
        "spec_name": "earl1", "device_id": "{device_a}"}),
    ("POST", "/api/v1/spec-assignments/{assignment_id}/deactivate"): (
        "/api/v1/spec-assignments/999999/deactivate", None),
    ("GET", "/api/v1/devices/{device_id}/scorecards"): (
        "/api/v1/devices/{device_a}/scorecards", None),
    ("POST", "/api/v1/devices/{device_id}/scorecards"): (
        "/api/v1/devices/{device_a}/scorecards", {"date_from": "2026-03-01",
                                                  "date_to": "2026-03-20"}),
    ("GET", "/api/v1/scorecards/summary"): ("/api/v1/scorecards/summary", None),
    ("GET", "/api/v1/scorecards/{scorecard_id}"): ("/api/v1/scorecards/999999", None),
    ("GET", "/api/v1/devices/{device_id}/due"): ("/api/v1/devices/{device_a}/due", None),
    # clinical image quality (web/api/clinical_iq_routes.py)
    ("GET", "/api/v1/devices/{device_id}/clinical-iq"): (
        "/api/v1/devices/{device_a}/clinical-iq", None),
    ("GET", "/api/v1/clinical-iq/compare"): ("/api/v1/clinical-iq/compare", None),
    ("GET", "/api/v1/sites/{site_id}/due"): ("/api/v1/sites/{site_a}/due", None),
    # alerts and notification targets (web/api/alert_routes.py)
    ("GET", "/api/v1/alerts"): ("/api/v1/alerts?state=open", None),
    ("GET", "/api/v1/alerts/{alert_id}"): ("/api/v1/alerts/999999", None),
    ("GET", "/api/v1/alerts/episodes"): ("/api/v1/alerts/episodes", None),
    ("POST", "/api/v1/alerts/{alert_id}/acknowledge"): (
        "/api/v1/alerts/999999/acknowledge", {"comment": "seen"}),
    ("GET", "/api/v1/notification-targets"): ("/api/v1/notification-targets", None),
    ("POST", "/api/v1/notification-targets"): ("/api/v1/notification-targets", {
        "site_id": "{site_a}", "channel": "email", "address": "qc{n}@example.org"}),
    ("DELETE", "/api/v1/notification-targets/{target_id}"): (
        "/api/v1/notification-targets/999999", None),
    ("GET", "/api/v1/studies"): ("/api/v1/studies", None),
    ("GET", "/api/v1/studies/{study_id}"): ("/api/v1/studies/999999", None),
    ("GET", "/api/v1/dose/events"): ("/api/v1/dose/events", None),
    ("GET", "/api/v1/dose/statistics"): ("/api/v1/dose/statistics", None),
    ("GET", "/api/v1/workflow/statistics"): ("/api/v1/workflow/statistics", None),
    ("GET", "/api/v1/compare/measurements"): ("/api/v1/compare/measurements", None),
    ("GET", "/api/v1/compare"): (
        "/api/v1/compare?analysis=pet.calibration_uniformity"
        "&name=activity_concentration_bias_percent", None),
    # reports (web/api/report_routes.py)
    ("GET", "/api/v1/devices/{device_id}/report"): (
        "/api/v1/devices/{device_a}/report?from=2026-03-01&to=2026-03-31", None),
    ("GET", "/api/v1/devices/{device_id}/acceptance-report"): (
        "/api/v1/devices/{device_a}/acceptance-report", None),
    ("GET", "/api/v1/sites/{site_id}/dose-report"): (
        "/api/v1/sites/{site_a}/dose-report?from=2026-03-01&to=2026-03-31", None),
    # lifecycle, telemetry, costs (web/api/life_routes.py); a CSV body is a JSON string
    ("GET", "/api/v1/devices/{device_id}/lifecycle"): (
        "/api/v1/devices/{device_a}/lifecycle", None),
    ("POST", "/api/v1/devices/{device_id}/lifecycle"): (
        "/api/v1/devices/{device_a}/lifecycle",
        {"kind": "planned_service", "occurred_at": "2026-03-01T08:00:00"}),
    ("DELETE", "/api/v1/lifecycle/{event_id}"): ("/api/v1/lifecycle/999999", None),
    ("POST", "/api/v1/lifecycle/import"): (
        "/api/v1/lifecycle/import", "device,kind,start\n{device_a},repair,2026-03-02T08:00\n"),
    ("GET", "/api/v1/devices/{device_id}/staffed-hours"): (
        "/api/v1/devices/{device_a}/staffed-hours", None),
    ("PUT", "/api/v1/devices/{device_id}/staffed-hours"): (
        "/api/v1/devices/{device_a}/staffed-hours",
        {"weekdays": [0, 1, 2, 3, 4], "start": "08:00", "end": "18:00"}),
    ("GET", "/api/v1/devices/{device_id}/telemetry"): (
        "/api/v1/devices/{device_a}/telemetry?channel=helium_level_pct", None),
    ("POST", "/api/v1/devices/{device_id}/telemetry"): (
        "/api/v1/devices/{device_a}/telemetry", {"readings": [
            {"channel": "helium_level_pct", "at": "2026-03-01T00:00:00", "value": 80.0}]}),
    ("POST", "/api/v1/telemetry/import"): (
        "/api/v1/telemetry/import",
        "device,time,helium_level_pct\n{device_a},2026-03-02T00:00,79.9\n"),
    ("GET", "/api/v1/devices/{device_id}/boil-off"): (
        "/api/v1/devices/{device_a}/boil-off", None),
    ("GET", "/api/v1/telemetry/compare"): (
        "/api/v1/telemetry/compare?a={device_a}&b={device_a}", None),
    ("GET", "/api/v1/devices/{device_id}/costs"): ("/api/v1/devices/{device_a}/costs", None),
    ("POST", "/api/v1/devices/{device_id}/costs"): (
        "/api/v1/devices/{device_a}/costs",
        {"kind": "consumable", "amount": 10.0, "currency": "EUR", "start_on": "2026-03-01"}),
    ("DELETE", "/api/v1/costs/{cost_id}"): ("/api/v1/costs/999999", None),
    ("GET", "/api/v1/devices/{device_id}/reliability"): (
        "/api/v1/devices/{device_a}/reliability", None),
    ("GET", "/api/v1/reliability"): ("/api/v1/reliability", None),
    ("GET", "/api/v1/devices/{device_id}/economics"): (
        "/api/v1/devices/{device_a}/economics", None),
    ("GET", "/api/v1/economics"): ("/api/v1/economics", None),

    # a zip of DICOM through the ingest path (web/api/upload_routes.py)
    ("POST", "/api/v1/uploads"): ("/api/v1/uploads?site_id={site_a}", tiny_dicom_zip()),
    # pages (web/pages/): a POST body is the form
    ("GET", "/login"): ("/login", None),
    ("POST", "/login"): ("/login", {"username": "vi_a", "password": PW}),
    ("POST", "/logout"): ("/logout", {}),
    ("GET", "/"): ("/", None),
    ("GET", "/compare"): ("/compare", None),
    ("GET", "/devices/{device_id}"): ("/devices/{device_a}", None),
    ("GET", "/devices/{device_id}/chart"): (
        "/devices/{device_a}/chart?analysis=pet.calibration_uniformity"
        "&name=activity_concentration_bias_percent", None),
    ("POST", "/devices/{device_id}/lifecycle"): (
        "/devices/{device_a}/lifecycle",
        {"kind": "planned_service", "occurred_at": "2026-03-01T08:00", "summary": "note"}),
    ("POST", "/devices/{device_id}/alerts/{alert_id}/acknowledge"): (
        "/devices/{device_a}/alerts/{alert_a}/acknowledge", {"comment": "checked"}),
    ("GET", "/dose"): ("/dose", None),
    ("GET", "/devices/{device_id}/life"): ("/devices/{device_a}/life", None),
    ("GET", "/devices/{device_id}/clinical-iq"): ("/devices/{device_a}/clinical-iq", None),
    ("GET", "/compare/clinical-iq"): ("/compare/clinical-iq", None),
    ("GET", "/magnets"): ("/magnets", None),
    ("GET", "/reliability"): ("/reliability", None),
    ("GET", "/studies/{study_id}"): ("/studies/{study_a}", None),
    ("GET", "/results/{result_id}"): ("/results/{result_a}", None),
    ("GET", "/api/v1/reviews"): ("/api/v1/reviews", None),
    ("GET", "/api/v1/reviews/{review_id}"): ("/api/v1/reviews/{review}", None),
    ("POST", "/api/v1/reviews/{review_id}/decision"): (
        "/api/v1/reviews/{review}/decision", {"decision": "accepted", "comment": "fine"}),
    ("GET", "/review"): ("/review", None),
    ("POST", "/review/{review_id}/decision"): (
        "/review/{review}/decision", {"decision": "rejected", "reason": "r{n}",
                                      "comment": "c"}),
    ("POST", "/results/{result_id}/figures"): ("/results/{result_a}/figures", {}),
    ("GET", "/workflow"): ("/workflow", None),
    ("GET", "/upload"): ("/upload", None),
    # reader studies and SUS (web/api/study_routes.py, web/pages/studies.py)
    ("GET", "/api/v1/reader-studies"): ("/api/v1/reader-studies", None),
    ("POST", "/api/v1/reader-studies"): ("/api/v1/reader-studies", {
        "name": "rs{n}", "site_id": "{site_a}", "criteria": ["noise"]}),
    ("POST", "/api/v1/reader-studies/{study_id}/cases"): (
        "/api/v1/reader-studies/999999/cases", {"series_id": "{series_a}"}),
    ("POST", "/api/v1/reader-studies/{study_id}/readers"): (
        "/api/v1/reader-studies/999999/readers", {"user_id": "{vi_a}"}),
    ("GET", "/api/v1/reader-studies/{study_id}/results"): (
        "/api/v1/reader-studies/999999/results", None),
    ("GET", "/api/v1/reader-studies/{study_id}/cases/{case_id}/image.png"): (
        "/api/v1/reader-studies/999999/cases/999999/image.png", None),
    ("POST", "/api/v1/sus"): ("/api/v1/sus", {"device_id": "{device_a}",
                                              "role": "technologist", "answers": [3] * 10}),
    ("GET", "/api/v1/sus/summary"): ("/api/v1/sus/summary", None),
    ("GET", "/api/v1/programme/report"): ("/api/v1/programme/report?format=json", None),
    ("GET", "/reader-studies"): ("/reader-studies", None),
    ("GET", "/reader-studies/{study_id}/read"): ("/reader-studies/999999/read", None),
    ("GET", "/reader-studies/{study_id}/results"): ("/reader-studies/999999/results", None),
    ("POST", "/reader-studies/{study_id}/read"): ("/reader-studies/999999/read",
                                                  {"case_id": "1"}),
    ("GET", "/procedures/{key}/card"): (
        "/procedures/earl1:pet.nema_nu2_2018.image_quality/card", None),
    ("GET", "/procedures/{key}/quiz"): (
        "/procedures/earl1:pet.nema_nu2_2018.image_quality/quiz", None),
    ("POST", "/procedures/{key}/quiz"): (
        "/procedures/earl1:pet.nema_nu2_2018.image_quality/quiz", {"analysis": "0"}),
    ("POST", "/api/v1/training"): ("/api/v1/training", {
        "user_id": "{vi_a}", "site_id": "{site_a}", "topic": "radiation_safety",
        "completed_on": "2026-01-01", "valid_days": 365}),
    ("GET", "/api/v1/training/due"): ("/api/v1/training/due", None),
    ("GET", "/devices/{device_id}/sus"): ("/devices/{device_a}/sus", None),
    ("POST", "/devices/{device_id}/sus"): ("/devices/{device_a}/sus", {
        "role": "technologist", **{f"q{i}": "3" for i in range(1, 11)}}),
    # served to anyone: the API's description and the pages' plotly.js
    ("GET", "/api/openapi.json"): ("/api/openapi.json", None),
    ("GET", "/api/docs"): ("/api/docs", None),
    ("GET", "/static/plotly.min.js"): ("/static/plotly.min.js", None),
}
#: Mounted applications and why the role table does not enter them.
MOUNTS = {
    "/static": "the pages' CSS and scripts: files, no site data",
    "/api/v1/fed": "site nodes' batches with site credentials, not user roles "
                   "(federation; its own tests)",
}
#: The answer an allowed caller gets where it is not a success in this world, and why.
EXPECTED: dict[tuple[str, str], int] = {
    # No DICOM files are kept here: the page says the figures cannot be drawn
    # (test_web_result_figures.py draws real ones).
    ("POST", "/results/{result_id}/figures"): 400,
}
#: Routes that end the caller's session: each role calls them from a session of its own.
SESSION_ENDING = {("POST", "/api/v1/auth/logout"), ("POST", "/logout")}
#: A site-A id in a route's path: site B's admin must get 404, exactly as for no record.
SITE_A_KEY = re.compile(r"\{(\w+_a)\}")


def send(client: TestClient, method: str, url: str, body: Any, csrf: str | None) -> Any:
    """One request of the table: JSON for the API (bytes as a zip: the upload), a form
    for a page (the CSRF token as its field); ``csrf`` None sends no token at all."""
    headers = {CSRF_HEADER: csrf} if csrf is not None else {}
    if isinstance(body, bytes):
        return client.request(method, url, content=body,
                              headers={**headers, "content-type": "application/zip"})
    if url.startswith("/api") or body is None:
        return client.request(method, url, json=body, headers=headers)
    form = dict(body)
    if csrf is not None:
        form["csrf_token"] = csrf
    return client.request(method, url, data=form, headers=headers)


def fill(value: Any, ids: dict[str, int]) -> Any:
    if isinstance(value, str):
        for k, v in ids.items():
            if value == "{" + k + "}":
                return v
            value = value.replace("{" + k + "}", str(v))
        return value
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    return value


def app_routes(app: Any) -> dict[tuple[str, str], str | None]:
    """(METHOD, path) -> access rule of every route the application serves (the API's
    ``x-required-role``, the pages' :data:`PAGE_RULES`, ``public`` for the API
    description and plotly.js), None where a route has no rule. Read from the router
    itself, not from a list that goes stale."""
    out: dict[tuple[str, str], str | None] = {}
    for rc in iter_route_contexts(app.routes):
        if isinstance(rc.original_route, Mount):
            # A mounted application answers outside this table: each must be known here.
            assert rc.path in MOUNTS, f"{rc.path}: a mounted application this table " \
                "does not know (add its routes here or to MOUNTS with the reason)"
            continue
        methods = set(getattr(rc, "methods", None) or ()) - {"HEAD"}
        path = rc.path or ""
        for method in methods:
            rule: str | None = None
            original = rc.original_route
            if isinstance(original, APIRoute) and original.openapi_extra:
                rule = original.openapi_extra.get(RULE_KEY)
            rule = rule or PAGE_RULES.get((method, path))
            if path in ("/api/openapi.json", "/api/docs", "/static/plotly.min.js"):
                rule = "public"  # the documentation and a library file: no site data
            out[(method, path)] = rule
    return out


# --------------------------------------------------------------------------- XSS

def payload(field: str) -> str:
    """Markup that would make an element with ``data-xss`` and set ``window.__xss`` if a
    page ever rendered it as HTML (the browser test looks for both)."""
    return (f'<b data-xss="{field}">{field}</b><img src=x data-xss="{field}" '
            f'onerror="window.__xss=\'{field}\'">')


#: Text fields a DICOM header fills (written here as the node writes them) -> where.
DICOM_FIELDS = ("series_description", "study_description", "manufacturer", "model",
                "serial", "station_name", "software_versions", "institution",
                "dose_protocol", "result_warning", "alert_message")
#: Text fields people type into forms -> the form (or command) that takes them.
FORM_FIELDS = ("lifecycle_note", "ack_comment", "user_display_name", "site_name")


def poison(world: World) -> None:
    """Every text field of site A's device, series, study, dose event, result and alert
    set to its payload (the XSS a DICOM sender controls); a site and a user named by
    payloads, as an admin would create them."""
    ids = world.ids
    with world.db.sessions() as s:
        dev = s.get_one(m.Device, ids["device_a"])
        dev.manufacturer, dev.model = payload("manufacturer"), payload("model")
        dev.serial, dev.software_versions = payload("serial"), payload("software_versions")
        dev.display_name = None
        for alias in s.scalars(select(m.DeviceAlias).where(
                m.DeviceAlias.device_id == dev.id)):
            alias.value = payload("station_name")
        s.execute(update(m.Series).where(m.Series.device_id == dev.id).values(
            description=payload("series_description")))
        study = s.get_one(m.Study, ids["study_a"])
        study.description = payload("study_description")
        s.add(m.DoseEvent(study_id=study.id, device_id=dev.id, kind="ct_irradiation",
                          occurred_at=dt.datetime(2026, 3, 2, 10, 0),
                          protocol=payload("dose_protocol"), ctdivol_mgy=10.0,
                          dlp_mgycm=400.0))
        res = s.get_one(m.Result, ids["result_a"])
        res.warnings = [payload("result_warning")]
        s.get_one(m.Alert, ids["alert_a"]).message = payload("alert_message")
        site = s.get_one(m.Site, ids["site_a"])
        site.institution = payload("institution")
        sites.add_site(s, CLI, payload("site_name"))
        site.name = payload("site_name") + " A"
        user = auth.get_user(s, "ad_a")
        user.display_name = payload("user_display_name")
        s.commit()


def enter_form_fields(world: World) -> None:
    """The form fields typed through the pages' own forms (lifecycle note, alert
    acknowledgement comment) by a signed-in physicist."""
    client, csrf = world.client("ph_a")
    dev, alert = world.ids["device_a"], world.ids["alert_a"]
    r = client.post(f"/devices/{dev}/lifecycle", data={
        "kind": "unplanned_service", "occurred_at": "2026-03-03T08:00",
        "summary": payload("lifecycle_note"), "csrf_token": csrf})
    assert r.status_code == 303, r.text[:500]
    r = client.post(f"/devices/{dev}/alerts/{alert}/acknowledge", data={
        "comment": payload("ack_comment"), "csrf_token": csrf})
    assert r.status_code == 303, r.text[:500]

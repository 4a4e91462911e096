"""The expert review queue at the central node (issue 14 §2): results of reviewed sites
queued with their triage score, the queue ordered by it, a decision audited with
before/after, a reviewer of site A never sees site B's reviews (404), and a rejection
received at a site reopens the test on its due list."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select

from api_world import PW, signed_in
from scanbench.evaluation import assign as A
from scanbench.evaluation import scorecard as S
from scanbench.programme import review, triage
from scanbench.store import Database, devices, repo
from scanbench.store import models as m
from scanbench.types import DeviceIdentity, Limits, Result
from scanbench.web import audit, auth, sites
from scanbench.web.api.app import create_app

CLI = audit.Actor(None, "cli:test")
ANALYSIS = "pet.calibration_uniformity"
NAMES = ("bias_percent", "uniformity_percent", "recovery_percent")


def _result(dev: m.Device, n: int, values: tuple[float, float, float]) -> Result:
    r = Result(ANALYSIS, "NEMA NU 2-2018 section 7.4.1", f"1.2.{dev.id}.{n}",
               DeviceIdentity(dev.manufacturer, dev.model, dev.serial),
               dt.datetime(2026, 1, 1, 9) + dt.timedelta(days=n))
    for name, v in zip(NAMES, values, strict=True):
        r.add(name, v, "%", limits=Limits(low=-10, high=10, source="NEMA NU 2-2018",
                                          verified=True))
    return r


@pytest.fixture(scope="module", autouse=True)
def _cheap_hashes() -> Iterator[None]:
    """Argon2id's cost is not this module's subject."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024,
                                                   parallelism=1))
        yield


@dataclass
class World:
    db: Database
    app: Any
    ids: dict[str, int]
    home: Path


def _history(rng: np.random.Generator, n: int) -> np.ndarray:
    """Bias and recovery move together (one cause); uniformity on its own."""
    f = rng.standard_normal(n)
    return np.stack([f + 0.3 * rng.standard_normal(n), rng.standard_normal(n),
                     f + 0.3 * rng.standard_normal(n)], axis=1)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("central")
    db = Database(url=f"sqlite:///{home / 'db.sqlite'}")
    ids: dict[str, int] = {}
    rng = np.random.default_rng(1)
    with db.sessions() as s:
        for key in ("a", "b"):
            site = sites.add_site(s, CLI, f"Site {key.upper()}")
            ids[f"site_{key}"] = site.id
            auth.grant(s, CLI, auth.add_user(s, CLI, f"rv_{key}", PW), site, "reviewer")
            dev = devices.register(s, DeviceIdentity("Siemens", "Vision", f"9{key}"),
                                   modality="PT")
            dev.site_id = site.id
            s.flush()
            for n, x in enumerate(_history(rng, 40)):
                repo.save_result(s, _result(dev, n, tuple(x)), series_id=None,
                                 device_id=dev.id)
            ids[f"device_{key}"] = dev.id
        auth.grant(s, CLI, auth.add_user(s, CLI, "ad_a", PW),
                   s.get_one(m.Site, ids["site_a"]), "admin")
        s.commit()
        # the history is queued (and the class trained on its passing results) ...
        assert len(review.enqueue(s, home / triage.MODELS_FILE)) == 80
        # ... then three new results of site A: typical, bias and recovery parting ways
        # (each within its limits), and a gross uniformity fault (fails its limit)
        dev_a = s.get_one(m.Device, ids["device_a"])
        for n, vals in ((100, (0.0, 0.0, 0.0)), (101, (2.5, 0.0, -2.5)),
                        (102, (0.0, 12.0, 0.0))):
            ids[f"new_{n}"] = repo.save_result(s, _result(dev_a, n, vals), series_id=None,
                                               device_id=dev_a.id).id
        queued = review.enqueue(s, home / triage.MODELS_FILE)
        assert sorted(r.result_id for r in queued) == sorted(
            ids[f"new_{n}"] for n in (100, 101, 102))
        s.commit()
        ids["review_b"] = s.scalars(select(m.Review.id).where(
            m.Review.site_id == ids["site_b"])).first() or 0
    try:
        yield World(db, create_app(db), ids, home)
    finally:
        db.close()


def _client(world: World, who: str) -> tuple[TestClient, str]:
    return signed_in(world.app, who)


def test_queue_is_ordered_by_triage_score_with_drivers(world: World) -> None:
    client, _ = _client(world, "rv_a")
    r = client.get("/api/v1/reviews", params={"limit": 500})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert r.json()["total"] == 43 and {i["site_id"] for i in items} == {world.ids["site_a"]}
    scores = [i["triage_score"] for i in items]
    assert all(x is not None for x in scores) and scores == sorted(scores, reverse=True)
    top2 = [i["result_id"] for i in items[:2]]
    assert set(top2) == {world.ids["new_101"], world.ids["new_102"]}
    shifted = next(i for i in items if i["result_id"] == world.ids["new_101"])
    assert {d["name"] for d in shifted["triage_drivers"][:2]} == {"bias_percent",
                                                                   "recovery_percent"}
    typical = next(i for i in items if i["result_id"] == world.ids["new_100"])
    assert typical["triage_score"] < shifted["triage_score"]
    assert shifted["triage_model"].startswith("mcd-1:PT/pet.calibration_uniformity:")
    one = client.get(f"/api/v1/reviews/{shifted['id']}").json()
    assert one["result_page"] == f"/results/{world.ids['new_101']}" and one["images"] == 0
    assert {x["name"] for x in one["measurements"]} == set(NAMES)
    page = client.get("/review")
    assert page.status_code == 200 and "bias_percent" in page.text


def test_reviewer_of_site_a_cannot_see_or_decide_site_b_reviews(world: World) -> None:
    client, csrf = _client(world, "rv_a")
    rid = world.ids["review_b"]
    assert client.get(f"/api/v1/reviews/{rid}").status_code == 404
    r = client.post(f"/api/v1/reviews/{rid}/decision", json={"decision": "accepted"},
                    headers={"X-CSRF-Token": csrf})
    assert r.status_code == 404 and r.json()["error"]
    # an admin of site A is not its reviewer: the queue needs the reviewer role
    admin, _ = _client(world, "ad_a")
    assert admin.get("/api/v1/reviews").status_code == 403


def test_decision_is_audited_and_a_rejection_needs_a_reason(world: World) -> None:
    client, csrf = _client(world, "rv_a")
    with world.db.sessions() as s:
        rid = s.scalars(select(m.Review.id).where(
            m.Review.result_id == world.ids["new_101"])).one()
    h = {"X-CSRF-Token": csrf}
    r = client.post(f"/api/v1/reviews/{rid}/decision", json={"decision": "rejected"},
                    headers=h)
    assert r.status_code in (400, 422) and "reason" in r.json()["error"]
    r = client.post(f"/api/v1/reviews/{rid}/decision", headers=h, json={
        "decision": "rejected", "reason": "bias and recovery disagree",
        "comment": "<b>repeat</b> the calibration"})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "rejected" and r.json()["decided_at"]
    with world.db.sessions() as s:
        entry = s.scalars(select(m.AuditEntry).where(m.AuditEntry.entity == "review",
                                                     m.AuditEntry.entity_id == str(rid))
                          ).all()
        assert [e.action for e in entry] == ["review.reject"]
        assert entry[0].before["state"] == "queued"  # type: ignore[index]
        assert entry[0].after["reason"] == "bias and recovery disagree"  # type: ignore[index]
        assert entry[0].site_id == world.ids["site_a"]
    page = client.get("/review", params={"state": "rejected"})
    assert "&lt;b&gt;repeat&lt;/b&gt;" in page.text and "<b>repeat" not in page.text


SPEC = """name: cal
title: calibration QC
version: "1"
description: weekly calibration QC
verified: true
sources: ["site QC manual"]
applies_to: {modality: PT}
tests:
  - {test: pet.calibration_uniformity, analysis: pet.calibration_uniformity,
     frequency: weekly, source: "site QC manual 4.1"}
"""


def test_a_rejection_received_at_the_site_reopens_the_test(tmp_path: Path) -> None:
    db = Database(url=f"sqlite:///{tmp_path / 'site.sqlite'}")
    try:
        with db.sessions() as s:
            site = sites.add_site(s, CLI, "Site")
            dev = devices.register(s, DeviceIdentity("Siemens", "Vision", "1"),
                                   modality="PT")
            dev.site_id = site.id
            t0 = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)  # a Monday: one weekly slot
            A.store_spec_text(s, SPEC, origin="upload", created_at=t0)
            A.assign(s, CLI, "cal", A.DeviceClassCriteria(modality="PT"), valid_from=t0)
            res = repo.save_result(s, _result(dev, 6, (0.0, 0.0, 0.0)), series_id=None,
                                   device_id=dev.id)  # Wednesday 2026-01-07
            at = dt.datetime(2026, 1, 8, 12, tzinfo=dt.UTC)

            def status() -> list[str]:
                return [i.status for i in S.due_list_for_device(s, dev.id, at).items]

            assert status() == ["done"]
            s.add(m.ReviewDecision(remote_key="review:1:a", result_id=res.id,
                                   decision="rejected", reason="bias",
                                   decided_at=dt.datetime(2026, 1, 8, 10, tzinfo=dt.UTC)))
            s.flush()
            assert status() == ["due"]  # the week's test is to be done again
            auth.grant(s, CLI, auth.add_user(s, CLI, "vi_site", PW), site, "viewer")
            s.commit()
            client, _ = signed_in(create_app(db), "vi_site")
            page = client.get(f"/results/{res.id}").text
            assert "Expert review: <strong>rejected</strong>" in page
            assert "reason: bias" in page and "the test is due again" in page
            page = client.get(f"/devices/{dev.id}").text
            assert "rejected: bias" in page and "(test due again)" in page
            s.add(m.ReviewDecision(remote_key="review:1:b", result_id=res.id,
                                   decision="accepted", reason=None,
                                   decided_at=dt.datetime(2026, 1, 8, 11, tzinfo=dt.UTC)))
            s.flush()
            assert status() == ["done"]  # a later acceptance counts it again
    finally:
        db.close()


def test_cli_train_and_list(world: World) -> None:
    from typer.testing import CliRunner

    from scanbench.cli import _mount_subapps, app

    _mount_subapps(["review"])
    opts = ["--home", str(world.home), "--database-url",
            f"sqlite:///{world.home / 'db.sqlite'}"]
    runner = CliRunner()
    r = runner.invoke(app, ["review", "train", *opts])
    assert r.exit_code == 0, r.output
    assert "PT/pet.calibration_uniformity" in r.output and "mcd-1:" in r.output
    r = runner.invoke(app, ["review", "list", "--json", "--limit", "3", *opts])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert rows[0]["triage_score"] >= rows[1]["triage_score"] >= rows[2]["triage_score"]
    assert rows[0]["result_id"] == world.ids["new_102"]


def test_results_received_from_a_reviewed_site_are_queued(tmp_path: Path) -> None:
    """Batches a site posts to the central node's federation endpoint: results received
    before the site has a reviewer are not queued (they train the model); those received
    after are queued, scored by the model their predecessors trained."""
    from scanbench.programme import federation as fed

    db = Database(url=f"sqlite:///{tmp_path / 'central.sqlite'}")
    try:
        app = create_app(db)
        app.state.home = tmp_path
        with db.sessions() as s:
            token = audit.commit_with_retry(s, lambda s: fed.add_credential(s, CLI, "S"))
            s.commit()
        rng = np.random.default_rng(2)
        dev = {"identity_key": "acme|pet|1", "manufacturer": "ACME", "model": "P",
               "serial": "1", "modality": "PT"}
        records = [{"seq": i + 1, "kind": "result", "record_key": f"result:{i}",
                    "device": dev, "data": {
                        "analysis": ANALYSIS, "standard": "NEMA NU 2-2018 section 7.4.1",
                        "scanbench_version": "t",
                        "acquired_at": f"2026-02-{i % 28 + 1:02d}T09:00:00",
                        "measurements": [{"name": n, "value": float(v), "unit": "%",
                                          "status": "pass"}
                                         for n, v in zip(NAMES, x, strict=True)]}}
                   for i, x in enumerate(_history(rng, 35))]
        client = TestClient(app)

        def post(uid: str, prev: int, recs: list[dict[str, Any]]) -> None:
            body = json.dumps({"protocol": fed.PROTOCOL, "site": "S", "batch_uid": uid,
                               "prev_seq": prev, "records": recs}).encode()
            r = client.post("/api/v1/fed/batches", content=body, headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            assert r.status_code == 200 and r.json()["stored"] == len(recs), r.text

        post("batch-0001", 0, records[:30])
        with db.sessions() as s:
            assert s.scalars(select(m.Review)).all() == []  # nobody reviews S yet
            auth.grant(s, CLI, auth.add_user(s, CLI, "rv_s", PW),
                       auth.get_site(s, "S"), "reviewer")
            s.commit()
        post("batch-0002", 30, records[30:])
        with db.sessions() as s:
            rows = s.scalars(select(m.Review)).all()
            assert len(rows) == 5 and all(x.triage_score is not None for x in rows)
            assert {x.triage_model for x in rows} == {
                triage.load_models(tmp_path / triage.MODELS_FILE)[
                    f"PT/{ANALYSIS}"].version}  # the model was kept in the home
    finally:
        db.close()


def test_reviewer_role_is_outside_the_ladder() -> None:
    """A reviewer reads (viewer rules) and alone meets the reviewer rule; a token never
    carries more than both its role and its user's grant allow."""
    assert auth.satisfies("reviewer", "viewer") and auth.satisfies("reviewer", "reviewer")
    assert not auth.satisfies("reviewer", "technologist")
    assert not auth.satisfies("admin", "reviewer") and not auth.satisfies("viewer", "reviewer")
    assert auth.satisfies("admin", "physicist") and not auth.satisfies("viewer", "admin")
    assert auth.lesser("reviewer", "admin") == "viewer"
    assert auth.lesser("viewer", "reviewer") == "viewer"
    assert auth.lesser("reviewer", "reviewer") == "reviewer"
    assert auth.lesser("technologist", "admin") == "technologist"
    p = auth.Principal(1, "u", {1: "reviewer", 2: "admin", 3: "viewer"})
    assert p.sites_with("reviewer") == [1] and p.sites_with("viewer") == [1, 2, 3]
    assert p.sites_with("technologist") == [2]

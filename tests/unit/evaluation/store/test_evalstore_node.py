"""The node keeps scorecards current (issue 13 §3): a job's stored result updates the
device's stored scorecard with no request involved (real DICOM through the real
pipeline), the daily pass adds a row only when a status changed (a test became
overdue), and node start stores the built-in specs, idempotently."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

from sqlalchemy import func, select

from node_dicom import uniform_phantom
from scanbench.evaluation import assign as A
from scanbench.evaluation import current
from scanbench.service.jobs import InlineExecutor
from scanbench.service.pipeline import Pipeline
from scanbench.specs import list_specs
from scanbench.store import devices
from scanbench.store import models as m
from scanbench.types import DeviceIdentity
from scanbench.web import audit

CLI = audit.Actor(None, "cli:test")
ANALYSIS = "pet.calibration_uniformity"
SPEC = """name: node-cal
title: Weekly calibration QC
version: "1"
description: weekly calibration QC, for the node's scorecard hook
verified: true
sources: ["site QC manual"]
tests:
  - {test: pet.calibration_uniformity, analysis: pet.calibration_uniformity,
     frequency: weekly, dimension: image_quality, source: "site QC manual 4.1"}
"""


def _count(s: object, model: type) -> int:
    return int(s.scalar(select(func.count()).select_from(model)))  # type: ignore[attr-defined]


def test_a_job_updates_the_stored_scorecard_and_the_daily_pass_adds_only_changes(
        tmp_path: Path) -> None:
    uniform_phantom(tmp_path / "u")
    pipe = Pipeline(tmp_path / "home", None, quiet_seconds=0.0, executor=InlineExecutor())
    try:
        with pipe.db.session() as s:
            A.store_spec_text(s, SPEC, origin="upload",
                              created_at=dt.datetime(1990, 1, 1, tzinfo=dt.UTC))
            A.assign(s, CLI, "node-cal", A.DeviceClassCriteria(),
                     valid_from=dt.datetime(1990, 1, 1, tzinfo=dt.UTC))
            assert _count(s, m.Scorecard) == 0
        for f in sorted((tmp_path / "u").glob("*.dcm")):
            assert pipe.store_path(f).stored
        pipe.drain()
        (job,) = [j for j in pipe.jobs() if j.kind == "series"]
        assert job.state == "done", job.error
        with pipe.db.session() as s:
            res = s.scalars(select(m.Result).where(m.Result.analysis == ANALYSIS)).one()
            cards = s.scalars(select(m.Scorecard).where(
                m.Scorecard.device_id == res.device_id)).all()
            # the job's hook scored the device: the year of the result holds it as evidence
            assert cards, "no scorecard was stored after the job"
            evidence = {i for c in cards for t in c.data["tests"] for i in t["evidence"]}
            assert res.id in evidence
            now = dt.datetime.now(dt.UTC)
            this_year = current.current_year(s, s.get_one(m.Device, res.device_id), now)
            assert any(c.period_start == dt.datetime(this_year, 1, 1) for c in cards)
            device_id, n = res.device_id, len(cards)
        # the daily pass with nothing changed adds nothing
        pipe.score_all()
        with pipe.db.session() as s:
            assert _count(s, m.Scorecard) == n
            # ... and a row when a status changed: 60 days on, the weekly test is overdue
            later = dt.datetime.now(dt.UTC) + dt.timedelta(days=60)
            scored, added = current.refresh_all(s, later)
            assert (scored, added) == (1, 1)
            newest = s.scalars(select(m.Scorecard).where(m.Scorecard.device_id == device_id)
                               .order_by(m.Scorecard.id.desc())).first()
            assert newest is not None
            (test,) = newest.data["tests"]
            assert test["status"] == "overdue" and newest.status == "fail"
            assert current.refresh_all(s, later) == (1, 0)  # and once only
    finally:
        pipe.close()


class _OnePass(threading.Event):
    """A stop event that lets the node's loop run exactly one pass (no timing)."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    def is_set(self) -> bool:
        self.asked += 1
        return self.asked > 1

    def wait(self, timeout: float | None = None) -> bool:
        return True


def test_node_start_stores_the_built_in_specs_and_its_loop_scores_once_a_day(
        tmp_path: Path) -> None:
    pipe = Pipeline(tmp_path / "home", None, quiet_seconds=0.0, executor=InlineExecutor())
    try:
        with pipe.db.session() as s:
            dev = devices.register(s, DeviceIdentity("Siemens", "Vision", "9"),
                                   modality="PT")
            A.store_spec_text(s, SPEC, origin="upload",
                              created_at=dt.datetime(1990, 1, 1, tzinfo=dt.UTC))
            A.assign(s, CLI, "node-cal", A.DeviceClassCriteria(device_id=dev.id),
                     valid_from=dt.datetime(1990, 1, 1, tzinfo=dt.UTC))
            device_id = dev.id
        pipe.run_forever(_OnePass())  # node start, then one pass of its loop
        with pipe.db.session() as s:
            names = set(s.scalars(select(m.Spec.name)))
            n = _count(s, m.Spec)
            # the daily pass scored the device: no result this year, the weekly test due
            # or overdue, never a silent pass
            (card,) = s.scalars(select(m.Scorecard).where(
                m.Scorecard.device_id == device_id)).all()
            assert card.data["tests"][0]["status"] in ("overdue", "due")
        assert set(list_specs()) <= names
        t0 = time.perf_counter()
        pipe.node_start()
        second = time.perf_counter() - t0
        with pipe.db.session() as s:
            assert _count(s, m.Spec) == n  # idempotent
        print(f"node start, built-in specs already stored: {1000 * second:.1f} ms")
    finally:
        pipe.close()

"""The node's hook: a job's results are checked for alerts right after they are stored
(real DICOM through the real pipeline), running the job again adds no alert, and the
node's loop sends them (a real HTTP endpoint) once."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import func, select

from node_dicom import uniform_phantom
from notifykit import Endpoint
from scanbench.evaluation import alerts
from scanbench.service.jobs import InlineExecutor
from scanbench.service.pipeline import Pipeline
from scanbench.store import models as m
from scanbench.web import audit

ANALYSIS, NAME = "pet.calibration_uniformity", "activity_concentration_bq_ml"


def test_the_jobs_results_are_checked_once_however_often_it_runs(tmp_path: Path) -> None:
    truth = uniform_phantom(tmp_path / "u")
    pipe = Pipeline(tmp_path / "home", None, quiet_seconds=0.0, executor=InlineExecutor())
    try:
        for f in sorted((tmp_path / "u").glob("*.dcm")):
            assert pipe.store_path(f).stored
        pipe.drain()
        (job,) = [j for j in pipe.jobs() if j.kind == "series"]
        assert job.state == "done", job.error
        with pipe.db.session() as s:
            assert s.scalar(select(func.count()).select_from(m.Alert)) == 0  # no history
            res = s.scalars(select(m.Result).where(m.Result.analysis == ANALYSIS)).one()
            assert res.device_id is not None and res.acquired_at is not None
            # 30 earlier daily values at 80 % of the phantom's concentration (SD 1 %):
            # the measured value, ~100 %, is ~20σ above that baseline
            c = float(truth["concentration_bq_ml"])
            for k in range(30):
                at = res.acquired_at - dt.timedelta(days=30 - k)
                s.add(m.Result(device_id=res.device_id, analysis=ANALYSIS, standard="s",
                               series_uid=f"7.{k}", acquired_at=at, scanbench_version="t",
                               measurements=[m.Measurement(
                                   device_id=res.device_id, analysis=ANALYSIS,
                                   acquired_at=at, name=NAME,
                                   value=c * (0.8 + 0.008 * (1 if k % 2 else -1)),
                                   unit="Bq/mL", status="info")]))
        for _ in range(2):  # the job again (as `scanbench jobs retry` does), twice
            (again,) = pipe.retry(job.id)
            pipe.drain()
            assert [j.state for j in pipe.jobs() if j.id == again.id] == ["done"]
            with pipe.db.session() as s:
                rows = s.scalars(select(m.Alert)).all()
                latest = s.scalars(select(m.Result.id).where(
                    m.Result.analysis == ANALYSIS, m.Result.job_id == job.id)
                    .order_by(m.Result.id.desc())).first()
                assert {(a.rule, a.name) for a in rows if a.rule == "1-3s"} == {
                    ("1-3s", NAME)}
                one = next(a for a in rows if a.rule == "1-3s")
                assert one.direction == "high" and one.statistic is not None \
                    and one.statistic > 10
                keys = sorted(a.key for a in rows)
            if _ == 0:
                first_keys, first_result = keys, one.result_id
                assert first_result == latest
        assert keys == first_keys  # the second run added nothing
        assert one.result_id == first_result  # and the alert keeps its first result
        # the node's loop sends the open alerts to the site's webhook, once
        hook = Endpoint()
        try:
            with pipe.db.session() as s:
                alerts.add_target(s, audit.Actor(None, "cli:test"), site_id=None,
                                  channel="webhook", address=hook.url)
                n_open = len({alerts.episode_key(a) for a in s.scalars(
                    select(m.Alert).where(m.Alert.state == "open"))})
            pipe.send_notifications()
            pipe.send_notifications()
            assert n_open >= 1 and len(hook.bodies) == n_open  # one per episode
        finally:
            hook.close()
    finally:
        pipe.close()

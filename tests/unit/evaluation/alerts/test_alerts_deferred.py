"""``Pipeline(evaluate_each_job=False)`` (a backfill such as ``scanbench demo``): no
alert check and no rescoring after each job; the alerts computed once per device
afterwards (``recheck_device``) are those the per-job hook records (real DICOM through
the real pipeline, the same planted history in both)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import func, select

from node_dicom import uniform_phantom
from scanbench.evaluation import alerts
from scanbench.service.jobs import InlineExecutor
from scanbench.service.pipeline import Pipeline
from scanbench.store import models as m

ANALYSIS, NAME = "pet.calibration_uniformity", "activity_concentration_bq_ml"


def _run(home: Path, files: list[Path], c: float, *, each: bool) -> list[tuple[object, ...]]:
    """Ingest the phantom, plant 30 earlier daily values at 80 % of its concentration
    (the measured ~100 % is ~20 SD above them), run its job again and return the
    alerts (rule, name, level, direction, state, series of their result)."""
    pipe = Pipeline(home, None, quiet_seconds=0.0, executor=InlineExecutor(),
                    evaluate_each_job=each)
    try:
        for f in files:
            assert pipe.store_path(f).stored
        pipe.drain()
        (job,) = [j for j in pipe.jobs() if j.kind == "series"]
        assert job.state == "done", job.error
        with pipe.db.session() as s:
            res = s.scalars(select(m.Result).where(m.Result.analysis == ANALYSIS)).one()
            assert res.device_id is not None and res.acquired_at is not None
            device_id = res.device_id
            for k in range(30):
                at = res.acquired_at - dt.timedelta(days=30 - k)
                s.add(m.Result(device_id=device_id, analysis=ANALYSIS, standard="s",
                               series_uid=f"7.{k}", acquired_at=at, scanbench_version="t",
                               measurements=[m.Measurement(
                                   device_id=device_id, analysis=ANALYSIS,
                                   acquired_at=at, name=NAME,
                                   value=c * (0.8 + 0.008 * (1 if k % 2 else -1)),
                                   unit="Bq/mL", status="info")]))
        pipe.retry(job.id)
        pipe.drain()
        with pipe.db.session() as s:
            n = s.scalar(select(func.count()).select_from(m.Alert)) or 0
        if not each:
            assert n == 0  # nothing checked after the jobs
            with pipe.db.session() as s:
                assert alerts.recheck_device(s, device_id)
        with pipe.db.sessions() as s:
            rows = s.scalars(select(m.Alert)).all()
            return sorted((a.rule, a.name, a.level, a.direction, a.state, a.occurred_at,
                           s.get_one(m.Result, a.result_id).series_uid
                           if a.result_id is not None else None) for a in rows)
    finally:
        pipe.close()


def test_alerts_once_per_device_after_a_backfill_equal_the_per_job_hook(
        tmp_path: Path) -> None:
    truth = uniform_phantom(tmp_path / "u")
    files = sorted((tmp_path / "u").glob("*.dcm"))
    c = float(truth["concentration_bq_ml"])
    per_job = _run(tmp_path / "each", files, c, each=True)
    deferred = _run(tmp_path / "deferred", files, c, each=False)
    assert ("1-3s", NAME, "trend", "high") in {a[:4] for a in per_job}
    assert deferred == per_job

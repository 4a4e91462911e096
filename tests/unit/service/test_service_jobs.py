"""Where jobs run: a local process pool that survives a worker dying, and a Dask cluster
selected by SCANBENCH_DASK_SCHEDULER running the same job functions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select

from node_dicom import ct_series, uniform_phantom
from scanbench.service import jobs as jobs_mod
from scanbench.service.jobs import DaskExecutor, LocalExecutor, make_executor
from scanbench.service.pipeline import Pipeline
from scanbench.store import models as m


def test_local_pool_replaces_a_dead_worker() -> None:
    ex = LocalExecutor(workers=1)
    try:
        dead = ex.submit(os._exit, 3)  # type: ignore[arg-type]  # a worker killed mid-job
        with pytest.raises(Exception, match=r"terminated abruptly|died|Broken"):
            dead.result(timeout=60)
        alive = ex.submit(abs, -4)  # type: ignore[arg-type]
        assert alive.result(timeout=60) == 4
    finally:
        ex.close()


class _Killer(LocalExecutor):
    """The real pool, except that the job for CULPRIT kills its worker process."""

    CULPRIT = "1.2.3.999"

    def submit(self, fn, spec):  # type: ignore[no-untyped-def]
        if spec.target_uid == self.CULPRIT:
            return super().submit(os._exit, 9)  # type: ignore[arg-type]
        return super().submit(fn, spec)


def test_pipeline_records_a_dead_worker_and_goes_on(tmp_path: Path) -> None:
    p = Pipeline(tmp_path / "home", f"sqlite:///{tmp_path / 'db.sqlite'}", quiet_seconds=0,
                 executor=_Killer(workers=1))
    try:
        for r in ct_series(2)[2]:
            p.store_instance(r, source="t")
        with p.db.session() as s:
            job = m.Job(kind="series", target_uid=_Killer.CULPRIT, state="queued")
            s.add(job)
            s.flush()
            jid = job.id
        p._submit(jid)  # in the pool together with the CT series' job
        p.drain(timeout=120)
        states = {j.id: (j.state, j.error) for j in p.jobs()}
        assert states[jid][0] == "failed" and "worker process died" in (states[jid][1] or "")
        assert next(j for j in p.jobs() if j.id == jid).attempts == 2
        # The jobs that shared the broken pool were run again and succeeded.
        assert [st for i, (st, _) in states.items() if i != jid] == ["done", "done"]
    finally:
        p.close()


@pytest.fixture(scope="module")
def dask_scheduler():
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                           dashboard_address=None, protocol="tcp://", host="127.0.0.1")
    yield cluster.scheduler_address
    cluster.close()


def test_dask_cluster_runs_the_same_jobs(tmp_path: Path, dask_scheduler: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCANBENCH_DASK_SCHEDULER", dask_scheduler)
    assert isinstance(make_executor(), DaskExecutor) or pytest.fail("Dask not selected")
    _, bad_series, bad = ct_series(2)
    real = jobs_mod.run_series_job

    def flaky(spec: jobs_mod.JobSpec) -> jobs_mod.JobOutcome:
        if spec.target_uid == bad_series:
            raise RuntimeError("worker-side failure")
        return real(spec)

    monkeypatch.setattr(jobs_mod, "run_series_job", flaky)  # the workers are threads here
    uniform_phantom(tmp_path / "u")
    p = Pipeline(tmp_path / "home", f"sqlite:///{tmp_path / 'db.sqlite'}", quiet_seconds=0)
    try:
        assert p.executor.describe().startswith("Dask cluster at tcp://127.0.0.1")
        for f in sorted((tmp_path / "u").glob("*.dcm")):
            p.store_path(f)
        for r in bad:
            p.store_instance(r, source="t")
        p.drain(timeout=120)
        jobs = {j.target_uid: j for j in p.jobs() if j.kind == "series"}
        assert jobs[bad_series].state == "failed"
        assert "worker-side failure" in (jobs[bad_series].error or "")
        (good,) = [j for uid, j in jobs.items() if uid != bad_series]
        assert good.state == "done", good.error
        with p.db.session() as s:
            r = s.scalars(select(m.Result)).one()
            assert r.analysis == "pet.calibration_uniformity" and len(r.measurements) == 5
        monkeypatch.setattr(jobs_mod, "run_series_job", real)
        p.retry(jobs[bad_series].id)
        p.drain(timeout=120)
        assert next(j for j in p.jobs() if j.id == jobs[bad_series].id).state == "done"
    finally:
        p.close()

"""Where jobs run: local worker processes (one per job) that survive a worker dying,
stop a job past its timeout or cancelled, and never outlive the node; and a Dask cluster
selected by SCANBENCH_DASK_SCHEDULER running the same job functions."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from node_dicom import ct_series, uniform_phantom
from scanbench.service import jobs as jobs_mod
from scanbench.service.jobs import (
    DaskExecutor,
    JobCancelled,
    JobInterrupted,
    JobTimedOut,
    LocalExecutor,
    make_executor,
)
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
    """The real executor, except that the job for CULPRIT kills its worker process."""

    CULPRIT = "1.2.3.999"

    def submit(self, fn, spec, timeout_s=None):
        if spec.target_uid == self.CULPRIT:
            return super().submit(os._exit, 9)
        return super().submit(fn, spec, timeout_s)


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
        assert "exit status 9" in (states[jid][1] or "")
        # One process per job: the other jobs never shared its fate, each ran once.
        assert [st for i, (st, _) in states.items() if i != jid] == ["done", "done"]
        assert {j.attempts for j in p.jobs()} == {1}
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


def test_a_job_past_its_timeout_has_its_worker_killed_and_the_next_job_runs() -> None:
    """The job is time.sleep: a worker that does not finish; its timeout kills it."""
    ex = LocalExecutor(workers=1)
    try:
        stuck = ex.submit(time.sleep, 600, timeout_s=0.5)  # type: ignore[arg-type]
        after = ex.submit(abs, -4)  # type: ignore[arg-type]  # waits for the only worker
        with pytest.raises(JobTimedOut, match=r"timed out after 0.5 s"):
            stuck.result(timeout=120)
        assert after.result(timeout=120) == 4
        assert ex.pids() == []
    finally:
        ex.close()


def test_cancel_a_waiting_and_a_running_job() -> None:
    ex = LocalExecutor(workers=1)
    try:
        running = ex.submit(time.sleep, 600)  # type: ignore[arg-type]
        waiting = ex.submit(abs, -4)  # type: ignore[arg-type]
        _wait(lambda: running.running(), "the first job to start")  # type: ignore[attr-defined]
        (pid,) = ex.pids()
        assert not waiting.running()  # type: ignore[attr-defined]
        ex.cancel(waiting, JobCancelled("cancelled W"))
        ex.cancel(running, JobCancelled("cancelled R"))
        with pytest.raises(JobCancelled, match="cancelled W"):
            waiting.result(timeout=60)
        with pytest.raises(JobCancelled, match="cancelled R"):
            running.result(timeout=60)
        _wait(lambda: not _alive(pid), "the cancelled job's worker to end")
    finally:
        ex.close()


def test_close_interrupts_running_jobs_and_leaves_no_worker() -> None:
    ex = LocalExecutor(workers=2)
    jobs = [ex.submit(time.sleep, 600) for _ in range(3)]  # type: ignore[arg-type]
    _wait(lambda: len(ex.pids()) == 2, "two workers")
    pids = ex.pids()
    ex.close()
    for job in jobs:
        with pytest.raises(JobInterrupted):
            job.result(timeout=60)
    assert not any(_alive(p) for p in pids)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait(check: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_an_answer_sent_just_before_the_worker_exits_is_not_lost() -> None:
    """The monitor's race, driven in its order: the pipe is read while the job still runs
    (nothing there), then the worker answers and exits, then the monitor asks whether the
    process has ended. Asked in that order the answer was lost and the job failed with
    "died (exit status 0)" (the demo under load, 1 job in ~300); the liveness is now asked
    before the pipe is read. The job is time.sleep(5): ``is_alive`` is made to wait for
    the worker's end first, as a slow monitor thread would."""
    import concurrent.futures as cf

    from scanbench.service import executors

    ex = LocalExecutor(workers=1)
    task = executors._Task(time.sleep, 5.0, cf.Future(), None)
    try:
        ex._start(task)
        proc = task.proc
        assert proc is not None

        def started() -> bool:
            ex._check(task)  # reads "started"; no answer while the job sleeps
            return task.future.running()

        _wait(started, "the job to start")
        assert not task.future.done()
        real = proc.is_alive

        def ended_meanwhile() -> bool:
            proc.join()  # the worker answers and exits while the monitor looks away
            return real()

        proc.is_alive = ended_meanwhile  # type: ignore[method-assign]
        ex._check(task)
        assert task.future.result(timeout=0) is None  # time.sleep's answer, not "died"
    finally:
        ex.close()


def test_dask_job_past_its_timeout_is_released_and_recorded(dask_scheduler: str) -> None:
    """Dask cannot stop a task already running in a worker thread: the handle reports the
    timeout at once and the future is released; the task's late result is dropped."""
    ex = DaskExecutor(dask_scheduler)
    try:
        handle = ex.submit(time.sleep, 3, timeout_s=0.3)  # type: ignore[arg-type]
        _wait(handle.done, "the timeout")
        with pytest.raises(JobTimedOut, match=r"timed out after 0.3 s on the Dask cluster"):
            handle.result()
        cancelled = ex.submit(time.sleep, 3)  # type: ignore[arg-type]
        ex.cancel(cancelled, JobCancelled("cancelled on Dask"))
        assert cancelled.done()
        with pytest.raises(JobCancelled, match="cancelled on Dask"):
            cancelled.result()
        assert ex.submit(abs, -4).result(timeout=60) == 4  # type: ignore[arg-type]
    finally:
        ex.close()


def test_a_program_that_exits_without_closing_its_executor_does_not_wait_for_its_jobs(
        ) -> None:
    """multiprocessing joins live children at exit, and workers ignore SIGTERM: without
    the executor's exit hook this program would wait 600 s for its job."""
    code = ("import time\n"
            "from scanbench.service.executors import LocalExecutor\n"
            "ex = LocalExecutor(workers=1)\n"
            "job = ex.submit(time.sleep, 600)\n"
            "while not job.running():\n"
            "    time.sleep(0.02)\n"
            "print(ex.pids()[0])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    pid = int(r.stdout.split()[-1])
    _wait(lambda: not _alive(pid), "the job's worker to end")


def test_a_jobs_process_starts_with_every_analysis_already_imported() -> None:
    """The fork server imports every analysis module (scanbench.service.job_imports), so a
    job's process does not import them again for each job (0.45 s of CPU against 0.11 s
    for the demo's water analysis). The job is a builtin (eval) so that unpickling it
    imports nothing of scanbench's."""
    from scanbench.analysis.registry import CATALOGUE

    wanted = sorted({mod for _modality, mod in CATALOGUE.values()}
                    | {"scanbench.clinical.dose", "scipy.ndimage",
                       "scanbench.quality.ct_noise_kernel"})  # numba, the kernel loaded
    ex = LocalExecutor(workers=1)
    try:
        expr = f"[m for m in {wanted!r} if m not in __import__('sys').modules]"
        missing = ex.submit(eval, expr)  # type: ignore[arg-type]
        assert missing.result(timeout=120) == []
    finally:
        ex.close()


def test_job_figures_env_sets_and_gives_back_the_previous_value() -> None:
    from scanbench.service.jobs import ENV_FIGURES, job_figures_env

    saved = os.environ.pop(ENV_FIGURES, None)
    try:
        assert job_figures_env("0") is None and os.environ[ENV_FIGURES] == "0"
        assert job_figures_env("1") == "0" and os.environ[ENV_FIGURES] == "1"
        assert job_figures_env(None) == "1" and ENV_FIGURES not in os.environ
    finally:
        job_figures_env(saved)

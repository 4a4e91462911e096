"""The ingest pipeline on SQLite and PostgreSQL: every instance stored once, corrupt ones
rejected with nothing written, quiet series classified and analysed, failing jobs
recorded and retried, and a restart after a crash losing nothing."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from sqlalchemy import func, select, update

from node_dicom import ct_series, ct_slice, uniform_phantom
from scanbench.errors import ScanbenchError
from scanbench.service import jobs as jobs_mod
from scanbench.service.jobs import InlineExecutor
from scanbench.service.pipeline import Pipeline, StoreStatus
from scanbench.store import models as m
from scanbench.store import repo


def _count(p: Pipeline, model: type[m.Base]) -> int:
    with p.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _files(p: Pipeline) -> list[Path]:
    return sorted(x for x in p.files.root.rglob("*") if x.is_file())


@pytest.fixture
def pipe(tmp_path: Path, database_url: str):
    p = Pipeline(tmp_path / "home", database_url, quiet_seconds=5.0, executor=InlineExecutor())
    yield p
    p.close()


def test_stored_once_and_duplicates_change_nothing(pipe: Pipeline) -> None:
    _, series, raws = ct_series(5)
    outs = [pipe.store_instance(r, source="test", calling_ae="CT_AE") for r in raws]
    assert [o.status for o in outs] == [StoreStatus.STORED] * 5
    assert outs[0].series_instance_uid == series
    again = [pipe.store_instance(r, source="test") for r in raws]
    assert all(o.duplicate and o.ok for o in again)
    assert _count(pipe, m.Instance) == 5 and _count(pipe, m.Series) == 1
    assert _count(pipe, m.Study) == 1 and _count(pipe, m.Device) == 1
    assert len(_files(pipe)) == 5
    with pipe.db.session() as s:
        inst = s.scalars(select(m.Instance)).first()
        assert inst is not None and inst.calling_ae == "CT_AE"
        assert (pipe.files.root / inst.path).read_bytes() in raws
        aliases = {(a.kind, a.value) for a in s.scalars(select(m.DeviceAlias))}
        assert aliases == {("station_name", "CT1"), ("ae_title", "CT_AE")}


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_corrupt_instances_are_rejected_and_nothing_written(pipe: Pipeline) -> None:
    _, _, raws = ct_series(1)
    good = raws[0]
    cases = {
        "truncated": good[:-40],
        "not dicom": b"hello world" * 30,
        "no uid": ct_slice(study=generate_uid(), series=generate_uid(), sop="1.2.3.abc"),
        "garbage after preamble": good[:132] + os.urandom(300),
    }
    for name, raw in cases.items():
        out = pipe.store_instance(raw, source=name)
        assert out.rejected and not out.ok, name
        assert out.reason, name
    reason = pipe.store_instance(good[:-40], source="t").reason or ""
    assert reason.startswith("truncated: element (7FE0,0010)"), reason
    assert _files(pipe) == [] and _count(pipe, m.Instance) == 0
    assert pipe.store_instance(good, source="after").stored  # the pipeline goes on


def test_two_ingesters_at_once_store_each_instance_once(tmp_path: Path,
                                                        database_url: str) -> None:
    _, _, raws = ct_series(30)
    pipes = [Pipeline(tmp_path / "home", database_url, executor=InlineExecutor())
             for _ in range(3)]
    barrier = threading.Barrier(len(pipes))
    outcomes: list[list[StoreStatus]] = [[] for _ in pipes]

    def send(k: int) -> None:
        barrier.wait()
        order = raws if k % 2 == 0 else raws[::-1]
        outcomes[k] = [pipes[k].store_instance(r, source=f"sender {k}").status for r in order]

    threads = [threading.Thread(target=send, args=(k,)) for k in range(len(pipes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        flat = [o for out in outcomes for o in out]
        assert flat.count(StoreStatus.STORED) == 30
        assert flat.count(StoreStatus.DUPLICATE) == 60
        p = pipes[0]
        assert _count(p, m.Instance) == 30 and _count(p, m.Series) == 1
        assert _count(p, m.Device) == 1 and len(_files(p)) == 30
    finally:
        for p in pipes:
            p.close()


def test_quiet_series_is_analysed_and_results_stored(pipe: Pipeline, tmp_path: Path) -> None:
    truth = uniform_phantom(tmp_path / "u")
    files = sorted((tmp_path / "u").glob("*.dcm"))
    t0 = 1_000_000.0
    for f in files:
        assert pipe.store_path(f).stored
    with pipe.db.session() as s:  # pretend they arrived at t0
        s.execute(update(m.Series).values(last_received=t0))
    assert pipe.poll(now=t0 + 4.0) == []  # not quiet yet
    submitted = pipe.poll(now=t0 + 6.0)
    assert [j.kind for j in submitted] == ["series"]
    pipe.collect()
    (job,) = pipe.jobs()
    assert job.state == "done", job.error
    with pipe.db.session() as s:
        series = s.scalars(select(m.Series)).one()
        assert (series.kind, series.analysis, series.state) == (
            "phantom", "pet.calibration_uniformity", "done")
        assert series.device_id is not None
        pts = repo.history(s, series.device_id, "pet.calibration_uniformity",
                           "activity_concentration_bq_ml")
        assert len(pts) == 1 and pts[0].unit == "Bq/mL"
        # The stored value is the analysis' own: within 2 % of the simulated truth.
        assert pts[0].value == pytest.approx(truth["concentration_bq_ml"], rel=0.02)
    assert pipe.poll(now=t0 + 100) == []  # nothing left to do


def test_failed_job_is_recorded_retried_and_the_pipeline_goes_on(
        pipe: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    _, bad_series, bad = ct_series(3)
    _, good_series, good = ct_series(3)
    real = jobs_mod.run_series_job

    def flaky(spec: jobs_mod.JobSpec) -> jobs_mod.JobOutcome:
        if spec.target_uid == bad_series:
            raise RuntimeError("simulated analysis crash")
        return real(spec)

    monkeypatch.setattr(jobs_mod, "run_series_job", flaky)
    for r in bad + good:
        pipe.store_instance(r, source="t")
    pipe.drain()
    by_target = {j.target_uid: j for j in pipe.jobs() if j.kind == "series"}
    assert by_target[bad_series].state == "failed"
    assert "simulated analysis crash" in (by_target[bad_series].error or "")
    assert by_target[good_series].state == "done"
    # Two clinical CT series (no analysis recognises them) make their studies clinical.
    assert {j.kind for j in pipe.jobs()} == {"series", "study"}
    monkeypatch.setattr(jobs_mod, "run_series_job", real)  # "fixed"
    (again,) = pipe.retry(by_target[bad_series].id)
    pipe.drain()
    assert [j.state for j in pipe.jobs() if j.id == again.id] == ["done"]
    assert next(j for j in pipe.jobs() if j.id == again.id).attempts == 2


def test_software_change_seen_in_headers(pipe: Pipeline) -> None:
    t0 = dt.datetime(2026, 2, 1, 9, 0)
    for software, when in (("VA10", t0), ("VA10", t0 + dt.timedelta(days=1)),
                           ("VA20", t0 + dt.timedelta(days=9))):
        for r in ct_series(2, software=software, when=when)[2]:
            pipe.store_instance(r, source="t")
    with pipe.db.session() as s:
        (ev,) = s.scalars(select(m.LifecycleEvent)).all()
        assert (ev.kind, ev.details["from"], ev.details["to"]) == (
            "software_change", "VA10", "VA20")
        assert ev.occurred_at == t0 + dt.timedelta(days=9)


def _dead_owner() -> str:
    """The owner name of a process that has exited (as a killed node would be)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return f"{socket.gethostname()}:{proc.pid}:1"


def test_restart_after_a_crash_indexes_files_and_requeues_jobs(tmp_path: Path,
                                                               database_url: str) -> None:
    home = tmp_path / "home"
    p = Pipeline(home, database_url, quiet_seconds=0.0, executor=InlineExecutor())
    _, series, raws = ct_series(4)
    for r in raws[:2]:
        p.store_instance(r, source="t")
    # A node killed after a file was fsync'd but before its row was committed, and one
    # in the middle of writing a file, while a job of its was running:
    from scanbench.service.pipeline import _check

    orphan = _check(raws[2])
    p.files.write(orphan.sop_uid, orphan.data)
    stale = p.files.path(orphan.sop_uid).parent / ".tmp-deadbeef"
    stale.write_bytes(raws[3][:100])
    dead = _dead_owner()
    (home / "run" / dead).touch()
    with p.db.session() as s:
        s.add(m.Job(kind="series", target_uid=series, state="running", owner=dead))
        s.execute(update(m.Series).values(state="queued"))
    # ... and a node still running beside us, with a job of its own:
    alive = Pipeline(home, database_url, executor=InlineExecutor(), recover=False)
    with alive.db.session() as s:
        s.add(m.Job(kind="study", target_uid="1.2.3", state="running", owner=alive.owner))
    p.close()

    p = Pipeline(home, database_url, quiet_seconds=0.0, executor=InlineExecutor())
    try:
        assert p.recovered == 1 and not stale.exists()
        assert _count(p, m.Instance) == 3
        states = {j.owner: (j.id, j.state, j.error) for j in p.jobs()}
        interrupted, state, error = states[dead]
        assert state == "interrupted" and "interrupted" in (error or "")
        assert states[alive.owner][1:] == ("running", None)  # not ours to judge
        assert not (home / "run" / dead).exists()
        submitted = p.poll()
        # The same job, picked up again and run to its end.
        assert [(j.id, j.target_uid) for j in submitted] == [(interrupted, series)]
        p.collect(wait=60)
        (done,) = [j for j in p.jobs() if j.id == interrupted]
        assert done.state == "done" and done.owner == p.owner, done.error
    finally:
        p.close()
        alive.close()
    # A clean stop leaves nothing to recover: the next start does not walk the files.
    again = Pipeline(home, database_url, executor=InlineExecutor())
    try:
        assert again.recovered == 0 and [x.name for x in (home / "run").iterdir()] == [
            again.owner]
    finally:
        again.close()


def test_ingest_does_not_take_a_series_the_node_is_still_receiving(
        tmp_path: Path, database_url: str) -> None:
    node = Pipeline(tmp_path / "home", database_url, quiet_seconds=60,
                    executor=InlineExecutor())
    ingest = Pipeline(tmp_path / "home", database_url, quiet_seconds=60,
                      executor=InlineExecutor())
    try:
        _, live, raws = ct_series(2)
        node.store_instance(raws[0], source="c-store")  # more to come
        _, mine, files = ct_series(2)
        for r in files:
            ingest.store_instance(r, source="folder")
        ingest.drain(timeout=60)
        assert [j.target_uid for j in ingest.jobs() if j.kind == "series"] == [mine]
        with node.db.session() as s:
            state = s.scalars(select(m.Series.state).where(m.Series.series_uid == live)).one()
        assert state == "receiving"
    finally:
        node.close()
        ingest.close()


def test_interrupted_jobs_run_again_unless_superseded_cancelled_or_dying_each_time(
        tmp_path: Path, database_url: str) -> None:
    """Recovery of a dead node's jobs: one run again; one whose series received new
    instances since is superseded by a new job; one whose node died with it
    MAX_INTERRUPTIONS times is failed; a cancelled one is never run again."""
    from scanbench.service.pipeline import MAX_INTERRUPTIONS

    home = tmp_path / "home"
    p = Pipeline(home, database_url, quiet_seconds=0.0, executor=InlineExecutor())
    uids = []
    for _ in range(4):
        _, uid, raws = ct_series(2)
        for r in raws:
            p.store_instance(r, source="t")
        uids.append(uid)
    again, reopened, dying, cancelled = uids
    dead = _dead_owner()
    (home / "run" / dead).touch()
    with p.db.session() as s:
        for uid, tries in ((again, 1), (reopened, 1), (dying, MAX_INTERRUPTIONS),
                           (cancelled, 1)):
            s.add(m.Job(kind="series", target_uid=uid, state="running", owner=dead,
                        attempts=tries))
        s.execute(update(m.Series).values(state="queued"))
    p.close()

    p = Pipeline(home, database_url, quiet_seconds=0.0, executor=InlineExecutor())
    try:
        jobs = {j.target_uid: j for j in p.jobs()}
        assert [jobs[u].state for u in uids] == ["interrupted", "interrupted", "failed",
                                                 "interrupted"]
        assert "for the 5th time: not run again automatically" in (jobs[dying].error or "")
        p.cancel(jobs[cancelled].id)
        with pytest.raises(ScanbenchError, match="only a queued, running or interrupted"):
            p.cancel(jobs[cancelled].id)
        with p.db.session() as s:  # a late instance reopened this one
            s.execute(update(m.Series).where(m.Series.series_uid == reopened)
                      .values(state="receiving"))
        p.drain(timeout=120, everything=True)
        after = {j.id: j for j in p.jobs()}
        assert after[jobs[again].id].state == "done"  # the same job row, run again
        assert after[jobs[again].id].attempts == 2
        assert after[jobs[reopened].id].state == "cancelled"
        assert "superseded" in (after[jobs[reopened].id].error or "")
        (new,) = [j for j in after.values() if j.target_uid == reopened
                  and j.id != jobs[reopened].id]
        assert new.state == "done"
        assert after[jobs[dying].id].state == "failed"  # not run again by `jobs run`...
        assert after[jobs[cancelled].id].state == "cancelled"
        assert [r.target_uid for r in p.retry()] == [dying]  # ...only when retried
        p.drain(timeout=120)
        assert next(j for j in p.jobs() if j.id == jobs[cancelled].id).state == "cancelled"
    finally:
        p.close()


def test_a_running_node_runs_again_the_jobs_of_a_process_that_died_beside_it(
        tmp_path: Path, database_url: str) -> None:
    """A `scanbench ingest` killed beside a node: the node, still running, finds its run
    marker left behind and runs its job again, without waiting for its own restart."""
    home = tmp_path / "home"
    node = Pipeline(home, database_url, quiet_seconds=3600, executor=InlineExecutor())
    stop = threading.Event()
    loop = threading.Thread(target=node.run_forever, args=(stop,),
                            kwargs={"interval_s": 0.05, "recover_every_s": 0.05})
    loop.start()
    try:
        _, uid, raws = ct_series(2)
        for r in raws:
            node.store_instance(r, source="ingest")
        dead = _dead_owner()
        with node.db.session() as s:
            job = m.Job(kind="series", target_uid=uid, state="running", owner=dead,
                        attempts=1)
            s.add(job)
            s.execute(update(m.Series).where(m.Series.series_uid == uid)
                      .values(state="queued"))
            s.flush()
            jid = job.id
        (home / "run" / dead).touch()  # the killed process's marker, left behind
        deadline = time.monotonic() + 60
        while next(j for j in node.jobs() if j.id == jid).state != "done":
            assert time.monotonic() < deadline, node.jobs()
            time.sleep(0.05)
        assert next(j for j in node.jobs() if j.id == jid).attempts == 2
        assert not (home / "run" / dead).exists()
    finally:
        stop.set()
        loop.join(60)
        node.close()


def test_jobs_retry_runs_interrupted_jobs_too(tmp_path: Path, database_url: str) -> None:
    home = tmp_path / "home"
    p = Pipeline(home, database_url, quiet_seconds=0.0, executor=InlineExecutor())
    try:
        _, uid, raws = ct_series(2)
        for r in raws:
            p.store_instance(r, source="t")
        with p.db.session() as s:
            job = m.Job(kind="series", target_uid=uid, state="interrupted", attempts=1,
                        error="interrupted: the node stopped")
            s.add(job)
            s.execute(update(m.Series).values(state="queued"))
            s.flush()
            jid = job.id
        assert [r.id for r in p.retry()] == [jid]
        p.collect(wait=60)
        (done,) = p.jobs()
        assert (done.id, done.state, done.attempts) == (jid, "done", 2)
    finally:
        p.close()

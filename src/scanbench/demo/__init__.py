"""``scanbench demo``: a virtual fleet through the real ingest path.

:func:`prepare` builds a fresh data directory: three sites with eleven PET/CT, CT and
MRI scanners of five makes (scanbench.demo.fleet), a period of QC (default a year)
written as DICOM by the virtual scanners (scanbench.demo.qc) and a few hundred clinical
CT and PET/CT exams with their dose reports (scanbench.demo.clinical), all stored and
analysed by the node's pipeline exactly as ``scanbench ingest`` does (files -> store ->
jobs on the node's worker pool -> results, dose events and exam timings in the store).
Then what people enter: sites, users and grants, one evaluation spec per device class,
lifecycle events, magnet telemetry and costs (scanbench.demo.records), through the
audited functions the web forms and the API call. Finally the trend and limit alerts
of every device are computed from its stored history (scanbench.evaluation.alerts
``recheck_device``) and its scorecard for the period (scanbench.evaluation.scorecard).

Two choices for speed, stated: the analysis jobs of the demo do not draw the result
figures (``SCANBENCH_JOB_FIGURES=0``); afterwards the figures of each device's latest
result of each analysis and of every alerted result are drawn by running those jobs
again (:func:`_figures`). And the pipeline runs with ``evaluate_each_job=False``:
alerts are computed once per device after the ingest instead of after each job (the
same function over the same history gives the same alerts; checking every job of a
year re-reads the growing history each time), then the scorecards.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import json
import multiprocessing
import os
import shutil
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanbench.demo import clinical as demo_clinical
from scanbench.demo import fleet, qc

#: What a progress callback gets: (phase description, done, total or None).
Progress = Callable[[str, int, int | None], None]
#: While storing, how often the node's poll submits the jobs of what is stored (s).
POLL_EVERY_S = 1.0


@dataclass
class DemoSummary:
    """What :func:`prepare` made, with the time each phase took (s)."""

    home: Path
    scenario: fleet.Scenario
    qc_series: int = 0
    clinical_exams: int = 0
    files: int = 0
    jobs_done: int = 0
    jobs_failed: int = 0
    alerts: int = 0
    figures: int = 0
    scorecards: int = 0
    lifecycle_events: int = 0
    telemetry_readings: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    device_ids: dict[str, int] = field(default_factory=dict)


def _no_progress(_what: str, _done: int, _total: int | None) -> None:
    return None


def prepare(home: Path, *, days: int = 365, end: dt.date | None = None,
            workers: int | None = None, exams: int = 300, periodic: bool = True,
            progress: Progress = _no_progress,
            sites: Collection[str] | None = None) -> DemoSummary:
    """Build the demo's data directory ``home`` (which must be new or empty); see the
    module docstring. ``days``: the simulated period, ending ``end`` (default
    yesterday); ``workers``: the node's analysis processes (None: one per core, as for
    the simulation: the demo's own process mostly waits while they run; 0: in this
    process); ``exams``: clinical exams (about); ``periodic`` false
    leaves out the quarterly and annual phantom tests (faster, same scenario);
    ``sites``: only these sites' devices, sites and user grants (site keys of
    scanbench.demo.fleet.SITES; the programme demo prepares one site node each)."""
    from scanbench.service.jobs import make_executor
    from scanbench.web.audit import commit_with_retry

    home = Path(home)
    if home.exists() and any(home.iterdir()):
        raise FileExistsError(f"{home} is not empty: the demo needs a new data directory")
    home.mkdir(parents=True, exist_ok=True)
    end = end or (dt.date.today() - dt.timedelta(days=1))
    sc = fleet.scenario(days, end)
    summary = DemoSummary(home=home, scenario=sc)
    zones = {s.key: s.timezone for s in fleet.SITES}
    devices = fleet.DEVICES if sites is None else tuple(
        d for d in fleet.DEVICES if d.site in set(sites))
    tasks = qc.plan(devices, sc, zones, periodic=periodic)
    exam_days = demo_clinical.plan(devices, sc, exams)
    summary.qc_series = len(tasks)
    summary.clinical_exams = sum(e.n for e in exam_days)

    # Jobs draw no figures (module docstring): set before the node's worker processes
    # start, which inherit the environment of their fork server; restored after the
    # ingest (the served node draws the figures of what it receives).
    from scanbench.service.jobs import job_figures_env

    figures_env = job_figures_env("0")
    from scanbench.service.pipeline import Pipeline

    # Alerts and scorecards once per device after the ingest (module docstring).
    # One analysis process per core by default: the node's own default (cores - 1) keeps
    # a core for its other work, which in the demo is little beside the jobs.
    procs = workers if workers is not None else (os.cpu_count() or 2)
    pipe = Pipeline(home, quiet_seconds=0.0, executor=make_executor(procs), fsync=False,
                    group_wait_seconds=0.0, evaluate_each_job=False)
    staging = home / "incoming"
    try:
        t0 = time.monotonic()
        summary.files = _simulate(tasks, exam_days, staging, workers, progress)
        summary.timings["simulate"] = time.monotonic() - t0

        # Each device's first QC scan first: the device then exists in the node, so its
        # site and class attributes can be entered and the programme's specs assigned
        # (as a physicist enrols a scanner at installation) before the rest of the year
        # arrives; every later result is then judged by the spec its class is assigned
        # (scanbench.evaluation.node_spec), as on a live node.
        t0 = time.monotonic()
        first: dict[str, qc.QcTask] = {}
        for t in sorted(tasks, key=lambda t: t.at):
            first.setdefault(t.device.key, t)
        enrol = {t.folder for t in first.values()}
        _ingest(pipe, staging, progress, only=enrol)
        _enrol(pipe.db, sc, periodic, home, devices, sites)
        _ingest(pipe, staging, progress, skip=enrol)
        summary.timings["ingest"] = time.monotonic() - t0
    finally:
        pipe.close()
        job_figures_env(figures_env)
    shutil.rmtree(staging, ignore_errors=True)  # the node keeps its own copy of each file

    from scanbench.demo import records
    from scanbench.evaluation.alerts import recheck_device
    from scanbench.store import models as m
    from scanbench.store.db import Database

    t0 = time.monotonic()
    db = Database(home)
    try:
        with db.sessions() as s:
            progress("entering lifecycle, telemetry, costs", 0, 6)
            ids = records.device_ids(s, devices)
            summary.device_ids = ids
            progress("entering lifecycle, telemetry, costs", 2, 6)
            summary.lifecycle_events = commit_with_retry(
                s, lambda x: records.lifecycle(x, devices, ids, sc))
            progress("entering lifecycle, telemetry, costs", 4, 6)
            summary.telemetry_readings = commit_with_retry(
                s, lambda x: records.telemetry(x, devices, ids, sc))
            commit_with_retry(s, lambda x: records.costs(x, devices, ids, sc))
            progress("entering lifecycle, telemetry, costs", 6, 6)
            summary.timings["records"] = time.monotonic() - t0

            t0 = time.monotonic()
            for i, dev in enumerate(ids.values()):
                progress("alerts from each device's history", i, len(ids))
                summary.alerts += len(recheck_device(s, dev))
                s.commit()
            progress("alerts from each device's history", len(ids), len(ids))
            summary.timings["alerts"] = time.monotonic() - t0

            t0 = time.monotonic()
            summary.figures = _figures(s, home, progress, workers)
            summary.timings["figures"] = time.monotonic() - t0

            t0 = time.monotonic()
            progress("scorecards", 0, 1)
            summary.scorecards = records.scorecards(s, ids, sc)
            s.commit()
            progress("scorecards", 1, 1)
            summary.timings["scorecards"] = time.monotonic() - t0

            # The fleet as a small programme (issue 14 §7): its multi-site evaluation
            # report, grouped by field strength (1.5 T, 3 T and 5 T MR systems compared).
            t0 = time.monotonic()
            progress("programme report", 0, 1)
            from scanbench.report import programme_report

            report = programme_report.programme_report(
                s, sc.start, sc.start + dt.timedelta(days=sc.days - 1),
                group_by="field_strength", title="Demo fleet: programme evaluation report")
            programme_report.write(report, home / "programme-report.html")
            progress("programme report", 1, 1)
            summary.timings["programme_report"] = time.monotonic() - t0
            from sqlalchemy import func, select

            summary.jobs_done = s.scalar(select(func.count()).select_from(m.Job).where(
                m.Job.state == "done")) or 0
            summary.jobs_failed = s.scalar(select(func.count()).select_from(m.Job).where(
                m.Job.state == "failed")) or 0
    finally:
        db.close()
    _write_plan(summary, tasks, exam_days)
    return summary


def _simulate(tasks: list[qc.QcTask], exam_days: list[Any], staging: Path,
              workers: int | None, progress: Progress) -> int:
    """Write every QC scan and clinical exam as DICOM under ``staging``, on ``workers``
    processes (forkserver: the node's preloaded fork server when it runs one)."""
    n = len(tasks) + len(exam_days)
    procs = max(1, workers if workers is not None else (os.cpu_count() or 2))
    files = 0
    done = 0
    progress("simulating QC scans and clinical exams (virtual scanners)", 0, n)
    if procs <= 1 or workers == 0:
        for t in tasks:
            files += qc.write(t, staging)
            done += 1
            progress("simulating QC scans and clinical exams (virtual scanners)", done, n)
        for e in exam_days:
            files += demo_clinical.write(e, staging)
            done += 1
            progress("simulating QC scans and clinical exams (virtual scanners)", done, n)
        return files
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    # The longest scans first (an ACR MRI session takes some 30 times a daily scan), so
    # that no worker is left with one of them at the end while the other idles.
    longest = sorted(tasks, key=lambda t: qc.SLOW_TESTS.index(t.test)
                     if t.test in qc.SLOW_TESTS else len(qc.SLOW_TESTS))
    with cf.ProcessPoolExecutor(procs, mp_context=ctx) as pool:
        futures = [pool.submit(qc.write, t, staging) for t in longest]
        futures += [pool.submit(demo_clinical.write, e, staging) for e in exam_days]
        for fut in cf.as_completed(futures):
            files += fut.result()
            done += 1
            progress("simulating QC scans and clinical exams (virtual scanners)", done, n)
    return files


def _enrol(db: Any, sc: Any, periodic: bool, home: Path,
           devices: tuple[fleet.DeviceDef, ...] = fleet.DEVICES,
           only: Collection[str] | None = None) -> None:
    """The sites and demo users (``only``: these sites); each device (known to the node
    from its first scan) to its site with its class attributes; the programme's specs
    assigned by class."""
    from scanbench.demo import records
    from scanbench.web.audit import commit_with_retry

    with db.sessions() as s:
        sites = commit_with_retry(s, lambda x: records.sites_and_users(x, only))
        ids = records.device_ids(s, devices)
        commit_with_retry(s, lambda x: records.place_devices(x, devices, ids, sites))
        commit_with_retry(s, lambda x: records.assign_specs(
            x, sc, periodic=periodic, folder=home / "demo-specs"))


def _ingest(pipe: Any, staging: Path, progress: Progress, *,
            only: set[str] | None = None, skip: frozenset[str] | set[str] = frozenset()) -> None:
    """Store the files in the node (as ``scanbench ingest``) and run their jobs, with
    progress: stored files, then finished jobs. ``only``/``skip``: task folders (relative
    to ``staging``) to take alone or to leave out."""
    from sqlalchemy import func, select

    from scanbench.service.pipeline import iter_dicom_files
    from scanbench.store import models as m

    def within(p: Path, folders: set[str] | frozenset[str]) -> bool:
        rel = p.relative_to(staging).as_posix()
        return any(rel.startswith(f + "/") for f in folders)

    def analysed() -> None:
        with pipe.db.sessions() as s:
            total = s.scalar(select(func.count()).select_from(m.Job)) or 0
            finished = s.scalar(select(func.count()).select_from(m.Job).where(
                m.Job.state.in_(("done", "failed")))) or 0
        progress(f"analysing ({pipe.executor.describe()})", finished, total or None)

    files = sorted(p for p in iter_dicom_files([staging]) if p.suffix == ".dcm"
                   and (only is None or within(p, only)) and not within(p, skip))
    # The jobs run while the rest is stored, as on a node receiving a day's scans: at
    # most every POLL_EVERY_S, between two task folders (so every series stored so far
    # is complete: the pipeline's quiet time is 0), the node's poll submits the jobs of
    # what is stored and collects the finished ones. Storing is this process's work, the
    # jobs the workers'; before, the workers idled until every file was stored.
    last_poll, unit = time.monotonic(), None
    for i, f in enumerate(files):
        parts = f.relative_to(staging).parts
        here = parts[:3]  # a QC task (device/day/test) or a day's clinical exams
        if here != unit and time.monotonic() - last_poll >= POLL_EVERY_S:
            pipe.poll()
            analysed()
            last_poll = time.monotonic()
        unit = here
        out = pipe.store_instance(f.read_bytes(), source=str(f.relative_to(staging)))
        if out.rejected:
            raise RuntimeError(f"{f}: the node refused a simulated instance: {out.reason}")
        if i % 200 == 0:
            progress("storing in the node", i, len(files))
    progress("storing in the node", len(files), len(files))
    errors: list[BaseException] = []

    def drain() -> None:
        try:
            pipe.drain()
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    worker = threading.Thread(target=drain, name="demo-drain", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(1.0)
        analysed()
    if errors:
        raise errors[0]


def _job_with_figures(spec: Any) -> Any:
    """:func:`scanbench.service.jobs.run_series_job` drawing the figures (in a worker of
    the fork server, whose environment says not to: set before the ingest)."""
    from scanbench.service.jobs import job_figures_env, run_series_job

    job_figures_env("1")
    return run_series_job(spec)


def _figures(s: Any, home: Path, progress: Progress, workers: int | None = None) -> int:
    """Draw the figures of the results the demo's pages lead to: each device's latest
    result of each analysis, and every result an alert was raised or closed on. Each
    of their jobs is run again as the node ran it, on a process per core (``workers``;
    0: in this process) (scanbench.service.jobs.run_series_job: the same files, the
    same deterministic analysis), this time drawing the figures, which are stored for
    the job's stored results (scanbench.service.figures.store_job_figures). Returns the
    files written."""
    from sqlalchemy import func, or_, select

    from scanbench.service.figures import store_job_figures
    from scanbench.service.jobs import ENV_FIGURES, JobSpec, job_figures_env
    from scanbench.service.pipeline import job_targets
    from scanbench.store import models as m

    latest = select(func.max(m.Result.id)).where(m.Result.job_id.is_not(None)).group_by(
        m.Result.device_id, m.Result.analysis)
    alerted = select(m.Alert.result_id).where(m.Alert.result_id.is_not(None)).union(
        select(m.Alert.closing_result_id).where(m.Alert.closing_result_id.is_not(None)))
    # Series jobs only: a study job (a clinical exam's dose, timings and patient image
    # quality, e.g. pet.clinical_liver_noise) is not a series job and cannot be run
    # again as one; its figures are drawn on request by the served node's result page.
    job_ids = sorted(set(s.scalars(select(m.Result.job_id).join(
        m.Job, m.Job.id == m.Result.job_id).where(
        m.Job.kind == "series",
        or_(m.Result.id.in_(latest), m.Result.id.in_(alerted))).distinct())))
    root = home / "files"
    written = 0
    specs = []
    for job_id in job_ids:
        job = s.get_one(m.Job, job_id)
        targets = job_targets(job)
        # The job's files as the node gave them (Pipeline._files_of): its series and
        # the other phantom series of their studies, the partners of a group.
        studies = select(m.Series.study_id).where(m.Series.series_uid.in_(targets))
        files = tuple(str(root / p) for p in s.scalars(
            select(m.Instance.path).join(m.Series, m.Series.id == m.Instance.series_id)
            .where(or_(m.Series.series_uid.in_(targets),
                       m.Series.study_id.in_(studies) & (m.Series.kind == "phantom")))
            .order_by(m.Instance.id)))
        specs.append(JobSpec(job.id, "series", job.target_uid, files, targets=tuple(targets)))
    what = "figures of the latest and the alerted results"
    progress(what, 0, len(specs))
    procs = max(1, workers if workers is not None else (os.cpu_count() or 2))
    if procs <= 1 or workers == 0 or len(specs) < 2:
        before = os.environ.get(ENV_FIGURES)
        try:
            for i, spec in enumerate(specs):
                out = _job_with_figures(spec)
                written += store_job_figures(s, home, spec.job_id, out.figures,
                                             out.figure_errors)
                progress(what, i + 1, len(specs))
        finally:
            job_figures_env(before)
        return written
    # On every core (the fork server's processes, as the simulation): re-analysing and
    # drawing is most of this phase's time; storing the figures stays here.
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    with cf.ProcessPoolExecutor(procs, mp_context=ctx) as pool:
        for i, (spec, out) in enumerate(zip(specs, pool.map(_job_with_figures, specs),
                                            strict=True)):
            written += store_job_figures(s, home, spec.job_id, out.figures, out.figure_errors)
            progress(what, i + 1, len(specs))
    return written


def _write_plan(summary: DemoSummary, tasks: list[qc.QcTask], exam_days: list[Any]) -> None:
    """``<home>/demo-fleet.json``: the fleet, the scenario and the logins (for the
    tests, and for whoever wants to check what the pages show against what was made)."""
    sc = summary.scenario
    doc = {
        "period": {"start": sc.start.isoformat(), "days": sc.days,
                   "working_days": len(sc.workdays)},
        "scenario": {
            "drift": {"device": sc.drift_device, "start": sc.date(sc.drift_start).isoformat(),
                      "hu_per_working_day": sc.drift_hu_per_day,
                      "crosses_7_hu": sc.date(sc.limit_crossing_day).isoformat()},
            "failure": {"device": sc.failure_device,
                        "failed": sc.date(sc.failure_day).isoformat(),
                        "repaired_and_retested": sc.date(sc.repair_day).isoformat()},
            "upgrade": {"device": sc.upgrade_device, "software": qc.UPGRADED_SOFTWARE,
                        "on": sc.date(sc.upgrade_day).isoformat()},
        },
        "devices": {d.key: {"id": summary.device_ids.get(d.key), "site": d.site,
                            "name": d.display_name, "manufacturer": d.manufacturer,
                            "model": d.model, "modality": d.modality}
                    for d in fleet.DEVICES
                    if not summary.device_ids or d.key in summary.device_ids},
        "users": [{"username": u.username, "password": u.password,
                   "grants": [list(g) for g in u.grants]} for u in fleet.USERS],
        "counts": {"qc_series": summary.qc_series, "clinical_exams": summary.clinical_exams,
                   "files": summary.files, "jobs_done": summary.jobs_done,
                   "jobs_failed": summary.jobs_failed, "alerts": summary.alerts,
                   "figures": summary.figures,
                   "scorecards": summary.scorecards},
        "timings_s": {k: round(v, 1) for k, v in summary.timings.items()},
    }
    (summary.home / "demo-fleet.json").write_text(json.dumps(doc, indent=1) + "\n",
                                                  encoding="utf-8")

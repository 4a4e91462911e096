"""The ingest pipeline: every instance stored once, every quiet series classified and
its job run.

How an instance travels (``Pipeline.store_instance``):

1. parsed and checked (UIDs present and valid, nothing truncated, native pixel data
   as long as the image needs): a corrupt instance is REJECTED with the reason and
   nothing is written;
2. written to the file store atomically, keyed by SOP Instance UID
   (:mod:`scanbench.service.filestore`: temp file, fsync, link, fsync folder);
3. indexed in one transaction: study, series (the device registered from the
   headers on the series' first instance, :mod:`scanbench.store.devices`) and
   instance, each inserted with ``ON CONFLICT DO NOTHING`` on its UID, so two
   senders of the same instance at once give one row and one file, and the same
   study sent twice changes nothing (DUPLICATE);
4. then the call returns: the file is fsync'd and the row committed, so the
   storage SCP may acknowledge.

A series is complete when no instance has arrived for ``quiet_seconds``
(``Pipeline.poll``); then it is classified and its job submitted
(:mod:`scanbench.service.classify`, :mod:`scanbench.service.jobs`). Crash safety:
at start-up stale temporary files are removed, files on disk but missing from
the database are indexed, and jobs interrupted by the stop are recorded as such
and their series picked up again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from sqlalchemy import Connection, Table, bindparam, delete, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from scanbench.dicom import headers as h
from scanbench.dicom.facts import device_identity
from scanbench.dicom.parse import parse
from scanbench.errors import ScanbenchError
from scanbench.service import classify
from scanbench.service.executors import is_running
from scanbench.service.executors import stop as stop_job
from scanbench.service.figures import store_job_figures
from scanbench.service.filestore import FileStore, valid_uid
from scanbench.service.jobs import (
    Handle,
    JobCancelled,
    JobExecutor,
    JobInterrupted,
    JobOutcome,
    JobSpec,
    JobStopped,
    make_executor,
    run_job,
)
from scanbench.service.timeouts import JobTimeouts
from scanbench.store import devices, repo
from scanbench.store import models as m
from scanbench.store.db import Database, home_dir
from scanbench.types import DeviceIdentity

log = logging.getLogger("scanbench.node")
#: How often the node's loop sends pending alert notifications (s).
NOTIFY_EVERY_S = 60
#: A job whose node process died with it this many times (a crash, a kill -9, a power
#: cut, each while it ran) is failed instead of being run again at the next start.
MAX_INTERRUPTIONS = 5
#: How long a series a multi-series analysis could claim waits for its partners after the
#: last series of its study arrived: an ACR MRI localiser, T1 and T2 are acquired minutes
#: apart, and each is sent when it is reconstructed.
DEFAULT_GROUP_WAIT_S = 300.0
#: While collecting, how often running jobs are marked started and jobs cancelled by
#: another process are stopped (s).
CHECK_EVERY_S = 0.5


class StoreStatus(enum.Enum):
    STORED = "stored"  # new: written and indexed
    DUPLICATE = "duplicate"  # this SOP Instance UID was already stored; nothing changed
    REJECTED = "rejected"  # not stored; ``reason`` says why


@dataclass(frozen=True)
class StoreOutcome:
    """What became of one instance. ``STORED`` and ``DUPLICATE`` are both a success for
    the sender (the instance is safely kept); ``REJECTED`` carries the reason."""

    status: StoreStatus
    sop_instance_uid: str | None = None
    series_instance_uid: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not StoreStatus.REJECTED

    @property
    def stored(self) -> bool:
        return self.status is StoreStatus.STORED

    @property
    def duplicate(self) -> bool:
        return self.status is StoreStatus.DUPLICATE

    @property
    def rejected(self) -> bool:
        return self.status is StoreStatus.REJECTED


@dataclass(frozen=True)
class JobRecord:
    """A job as recorded in the database."""

    id: int
    kind: str
    target_uid: str
    state: str
    summary: str
    error: str | None
    attempts: int
    created_at: dt.datetime
    finished_at: dt.datetime | None

    owner: str | None = None

    @classmethod
    def of(cls, job: m.Job) -> JobRecord:
        return cls(job.id, job.kind, job.target_uid, job.state, job.summary, job.error,
                   job.attempts, job.created_at, job.finished_at, job.owner)


class Rejected(Exception):
    """An instance that must not be stored (the message says why)."""


@dataclass
class _Parsed:
    ds: Dataset
    data: bytes
    sop_uid: str
    sop_class: str
    study_uid: str
    series_uid: str


class Pipeline:
    """The node's ingest pipeline (module docstring).

    ``home``: the data directory (files under ``home/files``, the SQLite database
    ``home/scanbench.db`` unless ``database_url`` or ``SCANBENCH_DATABASE_URL`` names
    another); ``quiet_seconds``: how long a series must receive nothing to count as
    complete; ``group_wait_seconds``: how long a series that a multi-series analysis
    could claim (an ACR MRI axial series and its localiser, a NEMA MS 1 SNR pair, a PET
    and its CT) waits, after the last series of its study arrived, for its partners
    (0: never waits); ``executor``: where jobs run (default: Dask if
    ``SCANBENCH_DASK_SCHEDULER`` is set, else local worker processes); ``timeouts``:
    how long a job may run, per analysis class (default:
    :meth:`~scanbench.service.timeouts.JobTimeouts.load` of the home);
    ``evaluate_each_job``: after each job's results are stored, check them for alerts and
    rescore their devices (the node's default); false for a backfill of a long history
    (``scanbench demo``), which runs the same functions once per device afterwards
    (:func:`scanbench.evaluation.alerts.recheck_device`, the scorecards) instead of
    re-reading the growing history after every job. Thread-safe: the storage SCP calls
    ``store_instance`` from one thread per association.
    """

    def __init__(self, home: Path | None = None, database_url: str | None = None, *,
                 quiet_seconds: float = 5.0, executor: JobExecutor | None = None,
                 fsync: bool = True, recover: bool = True,
                 group_wait_seconds: float = DEFAULT_GROUP_WAIT_S,
                 timeouts: JobTimeouts | None = None,
                 evaluate_each_job: bool = True) -> None:
        self.home = home_dir(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.db = Database(self.home, database_url)
        self.files = FileStore(self.home / "files", fsync=fsync)
        self.quiet_seconds = float(quiet_seconds)
        self.group_wait_seconds = float(group_wait_seconds)
        self._executor = executor
        self._timeouts = timeouts
        self.evaluate_each_job = bool(evaluate_each_job)
        self._running: dict[int, Handle] = {}
        self._started: set[int] = set()  # jobs recorded as running (their worker started)
        self.submitted: list[int] = []  # every job this object submitted, in order
        self._stopping = False  # close() has begun: a worker that dies now is interrupted
        self._hurry = threading.Event()  # stop waiting for running jobs (a second signal)
        self._lock = threading.Lock()
        self._series_cache: dict[str, int] = {}
        self._stored_series: set[int] = set()  # series given new instances by this object
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"
        first_start = not (self.home / "run").exists()
        self._mark_running()
        self.recovered = 0
        if recover:
            self.recovered = self.recover(first_start)

    # ------------------------------------------------------------------ storing

    @property
    def timeouts(self) -> JobTimeouts:
        """Job timeouts: as given, else read from the home's ``jobs.toml`` when first
        needed (so that ``jobs list`` works whatever that file holds)."""
        if self._timeouts is None:
            self._timeouts = JobTimeouts.load(self.home)
        return self._timeouts

    @property
    def executor(self) -> JobExecutor:
        if self._executor is None:
            self._executor = make_executor()
        return self._executor

    def store_instance(self, raw: bytes, *, source: str,
                       calling_ae: str | None = None) -> StoreOutcome:
        """Check, write and index one DICOM instance (Part 10 bytes, or a bare data set
        in Implicit VR Little Endian, which is stored as a Part 10 file). Durable when
        it returns STORED or DUPLICATE; REJECTED writes nothing."""
        try:
            p = _check(raw)
        except Rejected as exc:
            log.warning("rejected an instance from %s: %s", calling_ae or source, exc)
            return StoreOutcome(StoreStatus.REJECTED, reason=str(exc))
        _path, _created = self.files.write(p.sop_uid, p.data)
        stored = self._index(p, source=source, calling_ae=calling_ae)
        return StoreOutcome(StoreStatus.STORED if stored else StoreStatus.DUPLICATE,
                            p.sop_uid, p.series_uid)

    def store_path(self, path: Path, *, source: str | None = None) -> StoreOutcome:
        """``store_instance`` of a file on disk (``source`` defaults to its path)."""
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            return StoreOutcome(StoreStatus.REJECTED, reason=f"{path}: cannot read ({exc})")
        out = self.store_instance(raw, source=source or str(path))
        if out.rejected:
            return StoreOutcome(StoreStatus.REJECTED, reason=f"{path}: {out.reason}")
        return out

    def _index(self, p: _Parsed, *, source: str, calling_ae: str | None,
               received: float | None = None) -> bool:
        now = time.time() if received is None else received
        rel = self.files.relative(p.sop_uid)
        with self._lock:
            cached = self._series_cache.get(p.series_uid)
        row = {"sop_uid": p.sop_uid, "sop_class_uid": p.sop_class,
               "instance_number": h.integer(p.ds, "InstanceNumber"),
               "transfer_syntax": h.text(getattr(p.ds, "file_meta", None), "TransferSyntaxUID"),
               "path": rel, "size_bytes": len(p.data), "source": source[:200],
               "calling_ae": calling_ae}
        instance_table = cast("Table", m.Instance.__table__)
        if cached is not None:  # the common case: a plain two-statement transaction
            series_id = cached
            with self.db.engine.begin() as conn:
                inserted = _insert_ignore(conn, instance_table, {**row, "series_id": series_id},
                                          "sop_uid")
                if inserted:
                    conn.execute(_REOPEN, {"sid": series_id, "t": now})
        else:
            with self.db.session() as s:
                series_id = self._series_id(s, p, calling_ae, now)
                conn = s.connection()
                inserted = _insert_ignore(conn, instance_table, {**row, "series_id": series_id},
                                          "sop_uid")
                if inserted:
                    conn.execute(_REOPEN, {"sid": series_id, "t": now})
        with self._lock:  # only once committed: a rolled-back id must not be remembered
            if len(self._series_cache) > 10000:
                self._series_cache.clear()
            self._series_cache[p.series_uid] = series_id
            if inserted:
                self._stored_series.add(series_id)
        return inserted

    def _series_id(self, s: Session, p: _Parsed, calling_ae: str | None, now: float) -> int:
        """The series row of this instance (with its study), created on first sight
        together with its device."""
        ds = p.ds
        _insert_ignore(s.connection(), cast("Table", m.Study.__table__), {
            "study_uid": p.study_uid, "patient_id": h.text(ds, "PatientID"),
            "accession_number": h.text(ds, "AccessionNumber"),
            "description": _cut(h.text(ds, "StudyDescription")),
            "study_datetime": _naive(h.localize(
                h.combine(h.text(ds, "StudyDate"), h.text(ds, "StudyTime")), None))},
            "study_uid")
        study_id = s.scalars(select(m.Study.id).where(m.Study.study_uid == p.study_uid)).one()
        kind = classify.instance_kind(ds)
        acquired = _acquired(ds)
        off = acquired.utcoffset() if acquired is not None else None
        created = _insert_ignore(s.connection(), _SERIES, {
            "series_uid": p.series_uid, "study_id": study_id,
            "modality": h.text(ds, "Modality"), "sop_class_uid": p.sop_class,
            "description": _cut(h.text(ds, "SeriesDescription")),
            "series_number": h.integer(ds, "SeriesNumber"),
            "acquired_at": _naive(acquired),
            "utc_offset_min": None if off is None else int(off.total_seconds() // 60),
            "software_versions": _cut(h.text(ds, "SoftwareVersions"), 400),
            "last_received": now, "state": "receiving",
            "kind": None if kind == "image" else kind}, "series_uid")
        series_id = s.scalars(select(m.Series.id).where(m.Series.series_uid == p.series_uid)
                              ).one()
        if created:
            identity = device_identity(ds)
            if _any_identity(identity):
                device = devices.register(s, identity, modality=h.text(ds, "Modality"),
                                          ae_title=calling_ae)
                s.execute(update(m.Series).where(m.Series.id == series_id)
                          .values(device_id=device.id))
                devices.record_software(s, device.id)
        return series_id

    # ------------------------------------------------------------------ recovery

    def _mark_running(self) -> None:
        """A marker file per running process (``<home>/run/host:pid:start``), removed by
        ``close``: one left behind by a process that is gone means it crashed."""
        self._runs = self.home / "run"
        self._runs.mkdir(exist_ok=True)
        (self._runs / self.owner).touch()

    def _dead_owners(self) -> list[str]:
        """Markers of processes of this host that are gone (killed, crashed)."""
        host = socket.gethostname()
        dead = []
        for marker in self._runs.iterdir():
            name = marker.name
            parts = name.rsplit(":", 2)
            if name == self.owner or len(parts) != 3 or parts[0] != host:
                continue  # ourselves, or another machine's process: not ours to judge
            try:
                os.kill(int(parts[1]), 0)
            except ProcessLookupError:
                dead.append(name)
            except (PermissionError, ValueError):
                continue  # alive under another user, or not a marker of ours
        return dead

    def recover(self, first_start: bool = False) -> int:
        """After a crash (a marker of a process that is gone; or ``first_start``, no
        marker folder yet): remove stale temporary files, index files the database lacks,
        and record the dead process's queued and running jobs as interrupted: the next
        poll (of this process or of any other) runs them again, the same job rows. A job
        whose process died with it ``MAX_INTERRUPTIONS`` times is failed instead (it may
        be what kills the node). Jobs of processes still running beside this one are left
        alone. Returns how many instances were re-indexed."""
        dead = self._dead_owners()
        if not dead and not first_start:
            return 0  # every earlier process stopped cleanly: nothing to recover
        removed = self.files.clean()
        if removed:
            log.warning("removed %d partly written file(s) left by a stop", removed)
        with self.db.session() as s:
            known = set(s.scalars(select(m.Instance.sop_uid)))
        count = 0
        for uid, path in self.files.uids():
            if uid in known:
                continue
            try:
                p = _check(path.read_bytes())
            except (Rejected, OSError) as exc:
                log.error("file store: %s cannot be indexed: %s", path, exc)
                continue
            self._index(p, source=f"recovered {path.name}", calling_ae=None,
                        received=path.stat().st_mtime)
            count += 1
        alive_elsewhere = any(name != self.owner for name in
                              (x.name for x in self._runs.iterdir()) if name not in dead)
        with self.db.session() as s:
            orphans: ColumnElement[bool] = m.Job.owner.in_(dead)
            if not alive_elsewhere:  # jobs of older versions, without an owner
                orphans = or_(orphans, m.Job.owner.is_(None))
            for job in s.scalars(select(m.Job).where(
                    m.Job.state.in_(("queued", "running")), orphans)):
                died = f"the node process ({job.owner or 'an older version'}) ended " \
                    f"while this job was {job.state}"
                if job.attempts >= MAX_INTERRUPTIONS:
                    self._record_failed(s, job, f"{died}, for the {job.attempts}th time: "
                                        "not run again automatically")
                    continue
                job.state, job.error = "interrupted", f"interrupted: {died}"
                _set_target_state(s, job, "queued")
                log.warning("job %d was interrupted (%s); it runs again", job.id, died)
        for name in dead:
            with contextlib.suppress(FileNotFoundError):
                (self._runs / name).unlink()
        if count:
            log.warning("re-indexed %d instance(s) found in the file store", count)
        return count

    # ------------------------------------------------------------------ jobs

    def poll(self, now: float | None = None, *,
             complete: Collection[int] = ()) -> list[JobRecord]:
        """Collect finished jobs; submit a job for every series and clinical study that
        has received nothing for ``quiet_seconds`` (and for the series whose ids are in
        ``complete``, and their studies, at once). Returns the jobs submitted now.

        Series of one study that are complete at the same poll go to one job, so a
        multi-series analysis groups them as ``scanbench analyze`` does. A series such
        an analysis could claim waits for its partners (state ``waiting``) until its
        study has received nothing for ``group_wait_seconds``; then one job analyses
        every waiting series of the study with the study's other phantom series as
        partners. Series given as ``complete`` (``scanbench ingest``, ``jobs run``)
        never wait: all their files are in. Interrupted jobs (a stop, a crash) are
        run again first (:meth:`_resume`)."""
        self.collect()
        resumed = self._resume()
        now = time.time() if now is None else now
        cutoff = now - self.quiet_seconds
        submitted: list[JobRecord] = []
        forced = set(complete)
        with self.db.session() as s:
            quiet = list(s.scalars(select(m.Series).where(
                m.Series.state == "receiving",
                or_(m.Series.last_received <= cutoff, m.Series.id.in_(forced)))
                .order_by(m.Series.id)))
            forced_studies = set(s.scalars(select(m.Series.study_id).where(
                m.Series.id.in_(forced)))) if forced else set()
            batches: dict[tuple[int, bool], list[str]] = {}
            for series in quiet:
                if not _claim(s, m.Series, series.id, "receiving", "queued"):
                    continue  # another node process took it
                _log_series_complete(s, series)
                if series.kind in ("dose_report", "other"):
                    s.execute(update(m.Series).where(m.Series.id == series.id)
                              .values(state="done"))
                    if series.kind == "dose_report":
                        _mark_clinical(s, series.study_id)
                    continue
                wait = (self.group_wait_seconds > 0 and series.id not in forced
                        and math.isfinite(now))
                batches.setdefault((series.study_id, wait), []).append(series.series_uid)
            group_cutoff = now - self.group_wait_seconds
            for study_id in list(s.scalars(select(m.Series.study_id).where(
                    m.Series.state == "waiting").distinct())):
                busy, last = s.execute(select(
                    func.count().filter(m.Series.state.in_(("receiving", "queued"))),
                    func.max(m.Series.last_received)).where(
                        m.Series.study_id == study_id)).one()
                if busy or (last is not None and last > group_cutoff
                            and study_id not in forced_studies):
                    continue  # a partner may still come
                for series in list(s.scalars(select(m.Series).where(
                        m.Series.study_id == study_id, m.Series.state == "waiting")
                        .order_by(m.Series.id))):
                    if _claim(s, m.Series, series.id, "waiting", "queued"):
                        batches.setdefault((study_id, False), []).append(series.series_uid)
            for (_study, wait), uids in batches.items():
                job = m.Job(kind="series", target_uid=uids[0], state="queued",
                            owner=self.owner, params={"targets": uids, "wait": wait})
                s.add(job)
                s.flush()
                submitted.append(JobRecord.of(job))
            for study in list(s.scalars(select(m.Study).where(
                    m.Study.clinical_state == "pending"))):
                busy, last = s.execute(select(
                    func.count().filter(m.Series.state.in_(("receiving", "queued",
                                                            "waiting"))),
                    func.max(m.Series.last_received)).where(
                        m.Series.study_id == study.id)).one()
                if busy or (last is not None and last > cutoff
                            and study.id not in forced_studies):
                    continue
                if not _claim(s, m.Study, study.id, "pending", "queued",
                              column="clinical_state"):
                    continue
                job = m.Job(kind="study", target_uid=study.study_uid, state="queued",
                            owner=self.owner)
                s.add(job)
                s.flush()
                submitted.append(JobRecord.of(job))
        for record in submitted:
            self._submit(record.id)
        return resumed + submitted

    def _submit(self, job_id: int) -> None:
        """Hand a job to the executor, with its timeout; it is recorded as queued (by
        this process) until its worker starts, then as running (:meth:`collect`)."""
        with self.db.session() as s:
            job = s.get_one(m.Job, job_id)
            files = self._files_of(s, job)
            job.state, job.owner, job.started_at = "queued", self.owner, None
            job.attempts += 1
            timeout_s, rule = self._timeout_of(s, job)
            analysis_params: dict[str, dict[str, Any]] = {}
            if job.kind == "series":
                from scanbench.store.protocols import usable_params

                chosen = self._protocols_for(s, job.target_uid)
                analysis_params = {aid: usable_params(p, aid) for aid, p in chosen.items()}
                used = {aid: p.id for aid, p in chosen.items() if analysis_params[aid]}
                analysis_params = {aid: v for aid, v in analysis_params.items() if v}
                job.params = {**(job.params or {}), "protocols": used}
            spec = JobSpec(job.id, job.kind, job.target_uid, tuple(files),
                           targets=tuple(job_targets(job)),
                           wait=bool((job.params or {}).get("wait")),
                           analysis_params=analysis_params)
        try:
            handle = self.executor.submit(run_job, spec, timeout_s=timeout_s)
        except Exception as exc:  # the executor itself failed: record, go on
            self.submitted.append(job_id)
            self._finish(job_id, None, f"could not submit the job: {exc}")
            return
        log.info("job %d (%s %s) submitted to %s; timeout %g s (rule %r)", job_id, spec.kind,
                 spec.target_uid, self.executor.describe(), timeout_s, rule)
        with self._lock:
            self._running[job_id] = handle
            self.submitted.append(job_id)

    def _timeout_of(self, s: Session, job: m.Job) -> tuple[float, str]:
        """The job's timeout and the rule that set it (:mod:`scanbench.service.timeouts`):
        by the analysis its series was routed to last time, else by its modality."""
        if job.kind != "series":
            return self.timeouts.for_job(job.kind)
        row = s.execute(select(m.Series.analysis, m.Series.modality).where(
            m.Series.series_uid == job.target_uid)).first()
        analysis, modality = (row[0], row[1]) if row is not None else (None, None)
        return self.timeouts.for_job("series", analysis, modality)

    def _resume(self) -> list[JobRecord]:
        """Claim and submit every interrupted job (of any process: each is claimed by
        one). A series that received new instances since is analysed by its new job:
        its interrupted one is recorded as superseded (cancelled)."""
        with self.db.session() as s:
            ids = list(s.scalars(select(m.Job.id).where(m.Job.state == "interrupted")
                                 .order_by(m.Job.id)))
        resumed: list[JobRecord] = []
        for jid in ids:
            with self.db.session() as s:
                if not _claim_job(s, jid, ("interrupted",), "queued", self.owner):
                    continue  # another process took it
                job = s.get_one(m.Job, jid)
                reopened = job.kind == "series" and s.scalar(
                    select(func.count()).select_from(m.Series).where(
                        m.Series.series_uid.in_(job_targets(job)),
                        m.Series.state == "receiving"))
                if reopened:
                    job.state, job.finished_at = "cancelled", m.utcnow()
                    job.error = ("superseded: its series received new instances after the "
                                 "interruption; a new job analyses it")
                    _set_target_state(s, job, "receiving", only_from="queued")
                    continue
                resumed.append(JobRecord.of(job))
            log.info("job %d was interrupted: running it again", jid)
            self._submit(jid)
        return resumed

    def _protocols_for(self, s: Session, series_uid: str) -> dict[str, m.Protocol]:
        """The protocol each analysis gets for this series' device
        (:func:`scanbench.store.protocols.resolve`)."""
        from scanbench.analysis import registry
        from scanbench.store import protocols

        series = s.scalars(select(m.Series).where(m.Series.series_uid == series_uid)).first()
        if series is None:
            return {}
        device = s.get(m.Device, series.device_id) if series.device_id is not None else None
        return protocols.resolve(s, device, series.modality, registry.all_analyses())

    def _files_of(self, s: Session, job: m.Job) -> list[str]:
        q = select(m.Instance.path).join(m.Series, m.Series.id == m.Instance.series_id)
        if job.kind == "series":
            # The job's series and, as partners for multi-series analyses, the other
            # phantom series of their studies (classified, waiting or analysed).
            targets = job_targets(job)
            studies = select(m.Series.study_id).where(m.Series.series_uid.in_(targets))
            q = q.where(or_(m.Series.series_uid.in_(targets),
                            (m.Series.study_id.in_(studies)) & (m.Series.kind == "phantom")
                            & m.Series.state.in_(("waiting", "done", "queued"))))
        else:
            q = q.join(m.Study, m.Study.id == m.Series.study_id).where(
                m.Study.study_uid == job.target_uid)
        return [str(self.files.root / rel) for rel in s.scalars(q.order_by(m.Instance.id))]

    def collect(self, wait: float = 0.0) -> int:
        """Record the outcome of every finished job (waiting up to ``wait`` s for running
        ones, less if :meth:`hurry` is called); record jobs whose worker started as
        running; stop the jobs cancelled meanwhile (``scanbench jobs cancel`` from another
        process). Returns how many finished."""
        deadline = time.monotonic() + wait
        finished = 0
        next_check = 0.0
        while True:
            if time.monotonic() >= next_check:
                # Twice a second, not at every 50 ms turn: with a long queue (a backfill
                # submits some 1,700 jobs at once) the two cost 4 ms of CPU a turn.
                self._mark_started()
                self._stop_cancelled()
                next_check = time.monotonic() + CHECK_EVERY_S
            with self._lock:
                ready = [(jid, hd) for jid, hd in self._running.items() if hd.done()]
                for jid, _ in ready:
                    del self._running[jid]
                    self._started.discard(jid)
            for jid, handle in ready:
                try:
                    outcome = handle.result()
                except JobCancelled:
                    continue  # recorded by cancel()
                except JobInterrupted as exc:
                    self._interrupted(jid, str(exc))
                except BaseException as exc:  # the job's error, a timeout, its worker died
                    if self._stopping and _worker_died(exc):
                        self._interrupted(jid, f"its worker process ended while the node "
                                          f"stopped ({exc})")
                    else:
                        self._finish(jid, None, _describe(exc))
                else:
                    self._finish(jid, outcome, None)
                finished += 1
            if (not self.pending() or time.monotonic() >= deadline
                    or self._hurry.is_set()):
                return finished
            time.sleep(0.05)

    def _mark_started(self) -> None:
        """Jobs whose worker has started: recorded as running, with the time."""
        with self._lock:
            started = [jid for jid, hd in self._running.items()
                       if jid not in self._started and is_running(hd)]
            self._started.update(started)
        if started:
            with self.db.session() as s:
                s.execute(update(m.Job).where(m.Job.id.in_(started), m.Job.state == "queued",
                                              m.Job.owner == self.owner)
                          .values(state="running", started_at=m.utcnow()))

    def _stop_cancelled(self) -> None:
        """Stop the jobs of this process that were cancelled in the database."""
        with self._lock:
            ids = list(self._running)
        if not ids:
            return
        with self.db.session() as s:
            gone = set(s.scalars(select(m.Job.id).where(
                m.Job.id.in_(ids), or_(m.Job.state == "cancelled",
                                       m.Job.owner != self.owner))))
        for jid in gone:
            with self._lock:
                handle = self._running.pop(jid, None)
                self._started.discard(jid)
            if handle is not None:
                log.info("job %d was cancelled: stopping its worker", jid)
                stop_job(self.executor, handle, JobCancelled(f"job {jid} was cancelled"))

    def _finish(self, job_id: int, outcome: JobOutcome | None, error: str | None) -> None:
        """Record a job's outcome (or its error), if the job is still this process's:
        a job cancelled meanwhile keeps its cancellation, and its outcome is dropped."""
        try:
            with self.db.session() as s:
                job = s.get_one(m.Job, job_id)
                if job.state not in ("queued", "running") or job.owner != self.owner:
                    log.info("job %d ended but is %s now: its outcome is not stored",
                             job_id, job.state)
                    return
                job.finished_at = m.utcnow()
                if outcome is not None:
                    _store_outcome(s, job, outcome)
                    store_job_figures(s, self.home, job_id, outcome.figures,
                                      outcome.figure_errors)
                    job.state, job.error = "done", None
                    job.summary = "; ".join(outcome.notes)[:4000]
                    log.info("job %d (%s %s) done: %s", job_id, job.kind, job.target_uid,
                             job.summary[:300] or "nothing to store")
        except Exception as exc:  # storing the outcome failed: the job fails, not the node
            error = f"the job's outcome could not be stored: {_describe(exc)}"
        if error is None:
            if outcome is not None and outcome.results and self.evaluate_each_job:
                self._check_alerts(job_id)
                self._update_scorecards(job_id)
            return
        with self.db.session() as s:
            self._record_failed(s, s.get_one(m.Job, job_id), error)

    def _check_alerts(self, job_id: int) -> None:
        """Trend and limit alerts of the results a job stored
        (:func:`scanbench.evaluation.alerts.check_job`), in their own transaction after
        the results are committed: a failure to alert is logged and never loses a
        result (``scanbench alerts recheck`` computes them again from the history)."""
        from scanbench.evaluation.alerts import check_job

        try:
            with self.db.session() as s:
                new = check_job(s, job_id)
            if new:
                log.warning("job %d: %d new alert(s): %s", job_id, len(new),
                            "; ".join(a.message for a in new[:3])[:600])
        except Exception:
            log.exception("job %d: checking its results for alerts failed", job_id)

    def _update_scorecards(self, job_id: int) -> None:
        """Rescore the devices of a job's results for the current period
        (:func:`scanbench.evaluation.current.refresh_job`), in their own transaction
        after the results are committed: a failure is logged and never loses a result
        (the daily pass and ``scanbench scorecard`` score again)."""
        from scanbench.evaluation.current import refresh_job

        try:
            with self.db.session() as s:
                added = sum(p.added for p in refresh_job(s, job_id))
            if added:
                log.info("job %d: %d scorecard(s) updated", job_id, added)
        except Exception:
            log.exception("job %d: updating its devices' scorecards failed", job_id)

    def node_start(self) -> None:
        """What the node does once when it starts serving: store the built-in
        evaluation specs not stored yet (:func:`scanbench.evaluation.assign.
        ensure_builtin_specs`: idempotent, a hash per shipped file after the first
        time). A failure is logged; the node serves anyway."""
        from scanbench.evaluation.assign import ensure_builtin_specs

        try:
            with self.db.session() as s:
                for note in ensure_builtin_specs(s):
                    log.warning("built-in spec not stored: %s", note)
        except Exception:
            log.exception("storing the built-in evaluation specs failed")

    def score_all(self) -> None:
        """The daily scorecard pass (:func:`scanbench.evaluation.current.refresh_all`):
        every device with a spec assigned scored for the current period, so an overdue
        test shows without a new result; a failure is logged, the loop goes on."""
        from scanbench.evaluation.current import refresh_all

        try:
            with self.db.session() as s:
                scored, added = refresh_all(s)
            log.info("daily scorecards: %d device(s) scored, %d scorecard(s) added",
                     scored, added)
        except Exception:
            log.exception("the daily scorecard pass failed; trying again tomorrow")

    def send_training_reminders(self) -> None:
        """The daily training reminders (:func:`scanbench.programme.training.
        send_reminders`: 30 and 7 days before expiry and on expiry, once each, to the
        sites' notification targets; SMTP from the ``SCANBENCH_SMTP_*`` environment); a
        failure is logged, the loop goes on (a failed delivery goes tomorrow)."""
        from scanbench.evaluation.alerts import smtp_from_env
        from scanbench.programme.training import send_reminders

        try:
            with self.db.sessions() as s:
                for d in send_reminders(s, dt.date.today(), smtp=smtp_from_env()):
                    if d.state != "sent":
                        log.warning("training reminder %d not sent: %s", d.notification_id,
                                    d.error)
        except Exception:
            log.exception("the daily training reminders failed; trying again tomorrow")

    def _record_failed(self, s: Session, job: m.Job, error: str) -> None:
        log.error("job %d failed: %s", job.id, error)
        job.state, job.error, job.finished_at = "failed", error, m.utcnow()
        _set_target_state(s, job, "failed")

    def _interrupted(self, job_id: int, why: str) -> None:
        """Record a job this process stops unfinished: interrupted, its series still
        queued; the next poll of any process (the next start) runs it again."""
        with self.db.session() as s:
            job = s.get_one(m.Job, job_id)
            if job.state not in ("queued", "running") or job.owner != self.owner:
                return
            job.state, job.error = "interrupted", f"interrupted: {why}"
            _set_target_state(s, job, "queued")
        log.warning("job %d interrupted (%s); it runs again at the next start", job_id, why)

    def cancel(self, job_id: int, reason: str = "cancelled by the user") -> JobRecord:
        """Cancel a queued, running or interrupted job: recorded as cancelled at once
        (with ``reason``), its worker stopped (by this process if it runs the job, else
        by the process that does, at its next poll), never run again automatically
        (``scanbench jobs retry ID`` still can). Its series are marked cancelled."""
        with self.db.session() as s:
            job = s.get(m.Job, job_id)
            if job is None:
                raise ScanbenchError(f"no job {job_id}", "scanbench jobs cancel")
            if job.state not in ("queued", "running", "interrupted"):
                raise ScanbenchError(f"job {job_id} is {job.state}; only a queued, running "
                                     "or interrupted job can be cancelled",
                                     "scanbench jobs cancel")
            was = job.state
            job.state, job.error, job.finished_at = "cancelled", reason, m.utcnow()
            _set_target_state(s, job, "cancelled")
            record = JobRecord.of(job)
        log.info("job %d cancelled (it was %s): %s", job_id, was, reason)
        self._stop_cancelled()
        return record

    def hurry(self) -> None:
        """Stop waiting for running jobs: :meth:`close` interrupts them now."""
        self._hurry.set()

    def pending(self) -> int:
        """Jobs submitted and not yet collected."""
        with self._lock:
            return len(self._running)

    def drain(self, timeout: float | None = None, *, everything: bool = False) -> None:
        """Treat every series this pipeline stored as complete, submit their jobs (and
        anything else that is due) and wait until none is left: for ``scanbench ingest``
        and ``pull``, which have all their files at once. Series another process is still
        receiving keep their quiet time, unless ``everything`` (``scanbench jobs run``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                mine = set(self._stored_series)
            self.poll(now=math.inf if everything else None, complete=mine)
            self.collect(wait=0.5)
            if not self.pending() and not self._due(None if everything else mine):
                return
            if deadline is not None and time.monotonic() > deadline:
                return

    def _due(self, mine: set[int] | None) -> bool:
        """Whether a poll would submit something of ours (``mine``: these series and their
        studies; None: anything): a series still receiving or waiting for its partners,
        or a pending study none of whose series is receiving, waiting or queued. (A study
        waiting on a series another process has queued is that process's to submit.)"""
        busy = (select(m.Series.id).where(m.Series.study_id == m.Study.id,
                                          m.Series.state.in_(("receiving", "queued",
                                                              "waiting")))
                .exists())
        series_q = select(func.count()).select_from(m.Series).where(
            m.Series.state.in_(("receiving", "waiting")))
        study_q = select(func.count()).select_from(m.Study).where(
            m.Study.clinical_state == "pending", ~busy)
        if mine is not None:
            if not mine:
                return False
            series_q = series_q.where(m.Series.id.in_(mine))
            study_q = study_q.where(m.Study.id.in_(
                select(m.Series.study_id).where(m.Series.id.in_(mine))))
        with self.db.session() as s:
            return bool(s.scalar(series_q) or s.scalar(study_q))

    def retry(self, job_id: int | None = None) -> list[JobRecord]:
        """Submit again the job ``job_id`` (failed, timed out, interrupted, cancelled or
        done), or every failed and interrupted job (never a cancelled one); their earlier
        outcome is replaced when the new one is stored."""
        with self.db.session() as s:
            q = select(m.Job).where(m.Job.state.in_(("failed", "interrupted")))
            if job_id is not None:
                q = select(m.Job).where(m.Job.id == job_id)
            jobs = list(s.scalars(q.order_by(m.Job.id)))
            if job_id is not None and not jobs:
                raise ScanbenchError(f"no job {job_id}", "scanbench jobs retry")
            if job_id is not None and jobs[0].state in ("queued", "running"):
                raise ScanbenchError(f"job {job_id} is {jobs[0].state}; only a finished job "
                                     "can be run again", "scanbench jobs retry")
            # An earlier job for the same target that failed and is retried by a later one
            # is the same work: retry each target once.
            seen: set[tuple[str, str]] = set()
            chosen = []
            for job in jobs:
                if (job.kind, job.target_uid) in seen:
                    continue
                seen.add((job.kind, job.target_uid))
                if not _claim_job(s, job.id, (job.state,), "queued", self.owner):
                    continue  # taken meanwhile (an interrupted job resumed by a node)
                s.refresh(job)
                job.error = None
                _set_target_state(s, job, "queued")
                chosen.append(job.id)
        for jid in chosen:
            self._submit(jid)
        with self.db.session() as s:
            return [JobRecord.of(s.get_one(m.Job, jid)) for jid in chosen]

    def jobs(self, state: str | None = None, limit: int = 100) -> list[JobRecord]:
        """The latest jobs (newest first), optionally only those in ``state``."""
        with self.db.session() as s:
            q = select(m.Job).order_by(m.Job.id.desc()).limit(limit)
            if state:
                q = q.where(m.Job.state == state)
            return [JobRecord.of(j) for j in s.scalars(q)]

    def run_forever(self, stop: threading.Event, interval_s: float = 1.0,
                    recover_every_s: float = 60.0) -> None:
        """Poll every ``interval_s`` until ``stop`` is set; an error in one poll is logged
        and the loop goes on (the node survives any single failure). Every
        ``recover_every_s``, :meth:`recover` from processes that died meanwhile (a
        ``scanbench ingest`` killed beside the node): their jobs run again without
        waiting for the node's next start."""
        next_recovery = time.monotonic() + recover_every_s
        next_notify = time.monotonic()
        self.node_start()
        scored_on: dt.date | None = None  # the UTC day of the last daily scorecard pass
        while not stop.is_set():
            try:
                if time.monotonic() >= next_recovery:
                    next_recovery = time.monotonic() + recover_every_s
                    self.recover()
                self.poll()
            except Exception:
                log.exception("pipeline poll failed; trying again in %.1f s", interval_s)
            if time.monotonic() >= next_notify:
                next_notify = time.monotonic() + NOTIFY_EVERY_S
                self.send_notifications()
            if scored_on != (today := dt.datetime.now(dt.UTC).date()):
                scored_on = today
                self.score_all()
                self.send_training_reminders()
            stop.wait(interval_s)

    def send_notifications(self) -> None:
        """Send pending alert notifications and yesterday's digests
        (:func:`scanbench.evaluation.alerts.run_notifications`, SMTP from the
        ``SCANBENCH_SMTP_*`` environment); a failure is logged, the loop goes on."""
        from scanbench.evaluation.alerts import run_notifications

        try:
            with self.db.sessions() as s:
                for d in run_notifications(s):
                    if d.state != "sent":
                        log.warning("notification %d not sent: %s", d.notification_id,
                                    d.error)
        except Exception:
            log.exception("sending alert notifications failed; trying again in %d s",
                          NOTIFY_EVERY_S)

    def close(self, grace: float = 0.0) -> None:
        """Stop cleanly: wait up to ``grace`` s for running jobs to finish (less once
        :meth:`hurry` is called), then stop those still queued or running and record them
        as interrupted (their series stay queued; the next start runs them again), stop
        the executor and release the database. (``InlineExecutor`` jobs have finished by
        the time they are submitted.)"""
        self._stopping = True
        with contextlib.suppress(Exception):
            self.collect(wait=grace)
        with self._lock:
            left = dict(self._running)
            self._running.clear()
            self._started.clear()
        for jid, handle in left.items():
            stop_job(self.executor, handle, JobInterrupted("the node stopped"))
            with contextlib.suppress(Exception):
                self._interrupted(jid, f"the node stopped before it finished (after a grace "
                                  f"period of {grace:g} s)")
        if self._executor is not None:
            self._executor.close()
        self.db.close()
        with contextlib.suppress(OSError):  # a clean stop: nothing to recover from
            (self._runs / self.owner).unlink()


# --------------------------------------------------------------------------- helpers

def _check(raw: bytes) -> _Parsed:
    """Parse and validate one instance; Rejected with the reason if it must not be kept."""
    from scanbench.dicom import pixels
    from scanbench.dicom.read import _looks_like_raw_dataset, _truncation

    part10 = len(raw) >= 132 and raw[128:132] == b"DICM"
    if not part10 and not _looks_like_raw_dataset(raw[:132]):
        raise Rejected("not DICOM: no DICM prefix at byte 128 and no data set at byte 0")
    try:
        ds = parse(raw, force=not part10)
    except Exception as exc:
        raise Rejected(f"damaged DICOM, cannot be parsed ({type(exc).__name__}: {exc})"
                       ) from None
    try:
        truncated = _truncation(ds)
        if truncated:
            raise Rejected(truncated)
        uids = {kw: h.text(ds, kw) for kw in ("SOPInstanceUID", "SOPClassUID",
                                              "StudyInstanceUID", "SeriesInstanceUID")}
        for kw, value in uids.items():
            if not value:
                raise Rejected(f"no {kw}: the instance cannot be filed")
            if not valid_uid(value):
                raise Rejected(f"{kw} {value!r} is not a valid UID")
        if pixels.has_pixels(ds):
            _check_pixels(ds)
        data = raw if part10 else _as_part10(ds)
    except Rejected:
        raise
    except Exception as exc:
        raise Rejected(f"damaged DICOM header ({type(exc).__name__}: {exc})") from None
    return _Parsed(ds, data, str(uids["SOPInstanceUID"]), str(uids["SOPClassUID"]),
                   str(uids["StudyInstanceUID"]), str(uids["SeriesInstanceUID"]))


def _log_series_complete(s: Session, series: m.Series) -> None:
    """INFO line of a series that went quiet (or was declared complete): its UID,
    description (quoted: DICOM text) and instance count."""
    if not log.isEnabledFor(logging.INFO):
        return
    count = s.scalar(select(func.count()).select_from(m.Instance)
                     .where(m.Instance.series_id == series.id))
    log.info("series %s (%r, %s, %d instance(s)) complete", series.series_uid,
             series.description or "", series.modality or "no modality", count or 0)


def _check_pixels(ds: Dataset) -> None:
    """The declared size within the limits of :mod:`scanbench.dicom.pixels` (for every
    transfer syntax: a few MB of RLE can declare frames of 16000 × 16000, and the job
    would decode them); native (uncompressed) Pixel Data must hold Rows × Columns ×
    Samples × Frames values of Bits Allocated (PS3.5 §8.1.1); encapsulated data must
    have its fragments and, for RLE and JPEG, codestream headers that fit the header
    (:func:`scanbench.dicom.pixels.check_encapsulated`; decoded by the job)."""
    from scanbench.dicom import pixels

    try:
        pixels.check_declared_size(ds, "")
        pixels.check_encapsulated(ds, "")
    except ScanbenchError as exc:
        raise Rejected(exc.message) from None
    meta = getattr(ds, "file_meta", None)
    syntax = h.text(meta, "TransferSyntaxUID") or "1.2.840.10008.1.2"
    if syntax not in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"):
        return
    rows, cols = h.integer(ds, "Rows"), h.integer(ds, "Columns")
    bits = h.integer(ds, "BitsAllocated")
    if not rows or not cols or not bits:
        raise Rejected("image without Rows, Columns or Bits Allocated")
    frames = h.integer(ds, "NumberOfFrames") or 1
    samples = h.integer(ds, "SamplesPerPixel") or 1
    need = (rows * cols * samples * frames * bits + 7) // 8
    elem = ds._dict.get(BaseTag(0x7FE00010))
    length = getattr(elem, "length", None)
    if length is None and elem is not None:
        value = getattr(elem, "value", None)
        length = len(value) if value is not None else None
    if length is not None and length != 0xFFFFFFFF and length < need:
        raise Rejected(f"Pixel Data holds {length} bytes; {rows}×{cols}×{frames} pixels of "
                       f"{bits} bits need {need}")


def _as_part10(ds: Dataset) -> bytes:
    """A bare data set (no preamble, no meta) written as a Part 10 file."""
    import io

    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ImplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ImplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True, implicit_vr=True, little_endian=True)
    return buf.getvalue()


_STATEMENTS: dict[tuple[str, str, str], Any] = {}


def _insert_ignore(conn: Connection, table: Table, values: dict[str, Any], key: str) -> bool:
    """INSERT ... ON CONFLICT (key) DO NOTHING RETURNING id; True if the row was inserted.
    The statement is built once per table and dialect, so its compiled form is reused."""
    dialect = conn.dialect.name
    stmt = _STATEMENTS.get((dialect, table.name, key))
    if stmt is None:
        from sqlalchemy.dialects import postgresql, sqlite

        insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = (insert(table).on_conflict_do_nothing(index_elements=[key])
                .returning(table.c.id))
        _STATEMENTS[(dialect, table.name, key)] = stmt
    return conn.execute(stmt, values).first() is not None


_SERIES = cast("Table", m.Series.__table__)
#: A new instance (re)opens its series: analysed again once quiet.
_REOPEN = (update(_SERIES).where(_SERIES.c.id == bindparam("sid"))
           .values(last_received=bindparam("t"), state="receiving"))


def _claim_job(s: Session, job_id: int, old: tuple[str, ...], new: str, owner: str) -> bool:
    """Move a job from one of the states ``old`` to ``new`` (owned by ``owner``) only if
    it is still in one of them: of two processes claiming it, one wins."""
    stmt = (update(m.Job).where(m.Job.id == job_id, m.Job.state.in_(old))
            .values(state=new, owner=owner).returning(m.Job.id))
    return s.connection().execute(stmt).first() is not None


#: What a series state means for a study's dose and workflow job (``clinical_state``).
_STUDY_STATE = {"receiving": "pending", "queued": "queued", "failed": "failed",
                "cancelled": "cancelled"}


def _set_target_state(s: Session, job: m.Job, state: str, only_from: str | None = None) -> None:
    """Set the state of what the job is about: its series, or its study's clinical
    state (``only_from``: only rows now in that state)."""
    if job.kind == "series":
        q = update(m.Series).where(m.Series.series_uid.in_(job_targets(job)))
        if only_from is not None:
            q = q.where(m.Series.state == only_from)
        s.execute(q.values(state=state))
        return
    q = update(m.Study).where(m.Study.study_uid == job.target_uid)
    if only_from is not None:
        q = q.where(m.Study.clinical_state == _STUDY_STATE.get(only_from, only_from))
    s.execute(q.values(clinical_state=_STUDY_STATE.get(state, state)))


def _claim(s: Session, model: type[m.Series] | type[m.Study], row_id: int, old: str,
           new: str, column: str = "state") -> bool:
    """Move a row from state ``old`` to ``new`` only if it is still ``old``."""
    col = getattr(model, column)
    stmt = (update(model).where(model.id == row_id, col == old).values({column: new})
            .returning(model.id))
    return s.connection().execute(stmt).first() is not None


def _mark_clinical(s: Session, study_id: int) -> None:
    s.execute(update(m.Study).where(m.Study.id == study_id,
                                    m.Study.clinical_state != "queued")
              .values(clinical_state="pending"))


def job_targets(job: m.Job) -> list[str]:
    """The series a series job analyses (``target_uid`` first)."""
    targets = [str(t) for t in (job.params or {}).get("targets") or ()]
    return targets if job.target_uid in targets else [job.target_uid, *targets]


def _store_outcome(s: Session, job: m.Job, outcome: JobOutcome) -> None:
    if job.kind == "series":
        _store_series_outcome(s, job, outcome)
        return
    study = s.scalars(select(m.Study).where(m.Study.study_uid == job.target_uid)).one()
    s.execute(delete(m.DoseEvent).where(m.DoseEvent.study_id == study.id))
    s.execute(delete(m.ExamTiming).where(m.ExamTiming.study_id == study.id))
    fallback = s.scalar(select(m.Series.device_id).where(
        m.Series.study_id == study.id, m.Series.device_id.is_not(None)).limit(1))
    for d in outcome.doses:
        device_id = _device_of(s, d.get("device"), fallback)
        eff_value = d.get("effective_dose_msv")
        eff: dict[str, Any] = eff_value if isinstance(eff_value, dict) else {}
        when = _when(d.get("irradiation_start") or d.get("study_datetime"))
        # The study's totals (total DLP, effective dose), then one row per event.
        s.add(m.DoseEvent(
            study_id=study.id, device_id=device_id, job_id=job.id, kind="study",
            occurred_at=when, protocol=_cut(d.get("study_description")),
            dlp_mgycm=_num(d.get("total_dlp_mgycm")), effective_dose_msv=_num(eff.get("total")),
            data={k: v for k, v in d.items() if k not in ("events", "files")}))
        for event in d.get("events") or []:
            s.add(m.DoseEvent(
                study_id=study.id, device_id=device_id, job_id=job.id, kind="ct",
                event_uid=_cut(event.get("event_uid"), 64),
                occurred_at=_when(event.get("datetime")) or when,
                protocol=_cut(event.get("protocol")), ctdivol_mgy=_num(event.get("ctdivol_mgy")),
                dlp_mgycm=_num(event.get("dlp_mgycm")), ssde_mgy=_num(event.get("ssde_mgy")),
                data=event))
        rp = d.get("radiopharmaceutical")
        if isinstance(rp, dict):
            s.add(m.DoseEvent(
                study_id=study.id, device_id=device_id, job_id=job.id,
                kind="radiopharmaceutical", event_uid=_cut(rp.get("event_uid"), 64),
                occurred_at=_when(rp.get("administered_at")), protocol=_cut(rp.get("agent")),
                administered_activity_mbq=_num(rp.get("administered_activity_mbq")),
                effective_dose_msv=_num(eff.get("radiopharmaceutical")), data=rp))
    for t in outcome.timings:
        start = _when(t.get("started_at") or t.get("start"))
        end = _when(t.get("ended_at") or t.get("end"))
        duration = _num(t.get("duration_s"))
        minutes = _num(t.get("duration_min"))
        if duration is None and minutes is not None:
            duration = minutes * 60.0
        if duration is None and start is not None and end is not None:
            duration = (end - start).total_seconds()
        s.add(m.ExamTiming(study_id=study.id, device_id=_device_of(s, t.get("device"), fallback),
                           job_id=job.id, started_at=start, ended_at=end, duration_s=duration,
                           data=t))
    if outcome.results:  # PET liver noise of the study's PET series (service.clinical_iq)
        _store_study_results(s, job, outcome)
    study.clinical_state = "done"


def _store_study_results(s: Session, job: m.Job, outcome: JobOutcome) -> None:
    """Results of a study job (clinical image quality of a series that needs the
    study's other series: a PET with its CT), each stored against the series it is
    about, judged as a series job's are; a new run supersedes the earlier row."""
    from scanbench.evaluation.node_spec import judged_for_storage

    saved: list[int] = []
    for result in outcome.results:
        series = s.scalars(select(m.Series).where(
            m.Series.series_uid == str(result.series_instance_uid))).first()
        if series is None:
            continue
        result = judged_for_storage(s, result, device_id=series.device_id,
                                    series_id=series.id, besides=saved)
        row = repo.save_result(s, result, series_id=series.id, device_id=series.device_id,
                               job_id=job.id, replace=True, besides=saved)
        saved.append(row.id)


def _store_series_outcome(s: Session, job: m.Job, outcome: JobOutcome) -> None:
    """Results go to the series they are about (a group's results may be about a
    partner analysed before: the new row supersedes its earlier one); each target is
    done, clinical, or waiting for its partners."""
    from scanbench.evaluation.node_spec import judged_for_storage

    targets = job_targets(job)
    rows = {r.series_uid: r for r in s.scalars(select(m.Series).where(
        m.Series.series_uid.in_(targets + [str(r.series_instance_uid)
                                          for r in outcome.results])))}
    used: dict[str, int] = dict((job.params or {}).get("protocols") or {})
    cache: dict[int, m.Protocol | None] = {}
    saved: list[int] = []  # this run's rows: they never supersede one another
    for result in outcome.results:
        series = rows.get(str(result.series_instance_uid)) or rows[targets[0]]
        ran = outcome.routed.get(str(result.series_instance_uid), result.analysis)
        pid = used.get(ran, used.get(result.analysis))
        if pid is not None and pid not in cache:
            cache[pid] = s.get(m.Protocol, pid)
        # judged by the spec assigned to the device at acquisition (issue 13 §6)
        result = judged_for_storage(s, result, device_id=series.device_id,
                                    series_id=series.id, besides=saved)
        row = repo.save_result(s, result, series_id=series.id, device_id=series.device_id,
                               job_id=job.id, replace=True, besides=saved,
                               protocol=cache.get(pid) if pid is not None else None)
        saved.append(row.id)
    for uid in targets:
        target = rows.get(uid)
        if target is None:
            continue
        kind, analysis = outcome.classified.get(uid, ("clinical", None))
        target.kind, target.analysis = kind, analysis
        if target.state == "queued":  # not reopened by a late instance meanwhile
            target.state = "waiting" if uid in outcome.waiting else "done"
        if kind == "clinical":
            _mark_clinical(s, target.study_id)


def _device_of(s: Session, d: Any, fallback: int | None) -> int | None:
    if not isinstance(d, dict):
        return fallback
    identity = DeviceIdentity(**{k: d.get(k) for k in ("manufacturer", "model", "serial",
                                                       "station", "software_versions")})
    if not _any_identity(identity):
        return fallback
    return devices.register(s, identity).id


def _any_identity(d: DeviceIdentity) -> bool:
    return any((d.manufacturer, d.model, d.serial, d.station))


def _acquired(ds: Dataset) -> dt.datetime | None:
    """When the series was acquired: Acquisition DateTime, else the first of Series,
    Acquisition, Content, Study date + time; local clock, aware if the header says."""
    tz = h.timezone(ds)
    value = h.parse_datetime(h.text(ds, "AcquisitionDateTime"))
    for date_kw, time_kw in (("SeriesDate", "SeriesTime"), ("AcquisitionDate", "AcquisitionTime"),
                             ("ContentDate", "ContentTime"), ("StudyDate", "StudyTime")):
        if value is not None:
            break
        value = h.combine(h.text(ds, date_kw), h.text(ds, time_kw))
    return h.localize(value, tz)


def _naive(t: dt.datetime | None) -> dt.datetime | None:
    return None if t is None else t.replace(tzinfo=None)


def _when(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, str) and value:
        try:
            return dt.datetime.fromisoformat(value).replace(tzinfo=None)
        except ValueError:
            return None
    return None


def _num(value: Any) -> float | None:
    if isinstance(value, dict):
        value = value.get("value")
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _cut(value: Any, n: int = 200) -> str | None:
    return None if value is None else str(value)[:n]


def _worker_died(exc: BaseException) -> bool:
    return type(exc).__name__ in ("WorkerDied", "BrokenProcessPool")


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if _worker_died(exc):
        return text if "worker process died" in text else \
            f"the worker process died (killed or crashed): {text}"
    if isinstance(exc, JobStopped) or type(exc).__name__ == "JobFailed":
        return text
    return f"{type(exc).__name__}: {text}"


def iter_dicom_files(paths: Iterable[Path]) -> Iterable[Path]:
    """Files under ``paths`` (folders recursively, sorted), for ``scanbench ingest``."""
    import os

    for p in paths:
        if p.is_dir():
            for root, dirs, names in os.walk(p):
                dirs.sort()
                for name in sorted(names):
                    yield Path(root) / name
        else:
            yield p


ProgressFn = Callable[[int, int], None]

"""Scorecards and due lists of devices from the store (issue 13 §2-§3).

The schedule rules (slots, windows, re-tests, compliance) are those of
:mod:`scanbench.evaluation.schedule`; this module feeds it from the store and scores.

Which results count
-------------------
A stored result counts for a required test of the spec when its analysis is the test's
``analysis`` or the test id itself; superseded results (a re-analysis replaced them)
do not count. Each result is **judged again with the spec version in force at its
acquisition** (:func:`scanbench.evaluation.apply_spec` on the stored values; a value
the analysis refused or did not judge stays so): the outcome is *failed* when a value
fails a confirmed limit, *passed* when none fails and one passes, else *not judged*
(no confirmed limit for it in the spec).

Baseline-relative rules (``baseline: {low, high, mode}``) are judged against the
device's **stored baseline**: the mean, per measurement (name and labels), of the first
:data:`BASELINE_RESULTS` (3) current results of the same analysis in the result's
*baseline segment*. A segment starts at each ``acceptance`` lifecycle event and at each
event marked ``new_baseline`` (:func:`scanbench.evaluation.alerts.baseline_starts`: a
service or upgrade the user marked), and, before the first of them, at the device's
first result. The first three results of a segment *are* the baseline: they are not
judged by baseline rules (their warnings say so), and neither is any result while its
segment has fewer than three earlier results. The warnings of a judged result name the
baseline's results.

Status of a required test in a period
-------------------------------------
* ``overdue`` — a required occurrence passed its deadline without the test (the
  schedule's due list at the end of the period, or now for a period still running);
* ``failed`` / ``passed`` — the newest result of the test in the period failed / passed;
* ``not_judged`` — the newest result was judged by no confirmed limit;
* ``due`` — not done yet in the current slot, deadline still ahead;
* ``not_applicable`` — nothing required in the period (no confirmed frequency, no
  service event for an after-service test, the device not in use), with the reason.
The evidence of each is the ids of the results of the test in the period.

Dimension scores and the overall score
--------------------------------------
Each test scores the dimension the spec gives it (``dimension``; ``unassigned``
otherwise). A dimension's score is 100 × passed / (passed + failed + overdue) over its
tests (due, not judged and not applicable tests do not count); a dimension without such
a test is *not scored*. The overall score is the weighted mean of the scored dimensions
with the spec's ``weights`` (renormalised over the scored ones; equal weights when the
spec gives none). Status ``fail`` when a test failed or is overdue, ``pass`` when at
least one passed and none failed, else ``info``.

Stored and versioned
--------------------
A scorecard is computed per part of the period with one spec version in force
(:func:`scanbench.evaluation.assign.spec_periods`): a spec changed mid-period gives two
scorecards, each judged by its own version. Rows are never rewritten: ``inputs_hash``
(SHA-256 of the spec text, the period, the results with their outcomes, the lifecycle
events, and for a period still running the computed statuses, dimensions and
compliance) makes a recompute of unchanged inputs add nothing — a running period gets
a new row only when something in it changed, not every day; a new spec version adds a
new row and leaves the old one. The node keeps the current period's scorecards
stored (:mod:`scanbench.evaluation.current`); viewers only read them.

Due lists
---------
:func:`due_list_for_device` is the schedule's due list at ``now`` (site local time), plus
one item per periodic test whose newest result is older than the device's latest
service event (planned or unplanned service, part replacement, software change,
relocation): a test after a service event is due at once, within one day (the
schedule's after-service window), as a failed test's re-test is. The due list reads
the last :data:`LOOKBACK` (800 days) of history: a run of missed tests longer than that
is reported as overdue since the start of that window.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from scanbench.errors import InputError
from scanbench.evaluation import apply_spec
from scanbench.evaluation import assign as A
from scanbench.evaluation.judge import Baseline, _label_key
from scanbench.evaluation.reliability import LifecycleEvent
from scanbench.evaluation.schedule import (
    DEFAULT_WINDOW_DAYS,
    PERIODIC,
    SERVICE_KINDS,
    DueItem,
    DueList,
    ScheduleSpec,
    TestRecord,
    compliance,
    due_list,
)
from scanbench.specs import DIMENSIONS, Spec, TestRequirement
from scanbench.store import models as m
from scanbench.types import DeviceIdentity, Limits
from scanbench.types import Result as TResult

TestStatus = Literal["passed", "failed", "overdue", "due", "not_judged", "not_applicable"]
TEST_STATUSES: tuple[str, ...] = ("passed", "failed", "overdue", "due", "not_judged",
                                  "not_applicable")
_US = dt.timedelta(microseconds=1)
#: How far back a due list (and a scorecard, before its period) reads the history: two
#: annual slots and their windows. A run of missed tests longer than that is reported as
#: overdue since the start of this window (ten years of daily QC judged on every fleet
#: page view would cost seconds per device).
LOOKBACK = dt.timedelta(days=800)
#: How many results of a baseline segment make the device's baseline (their mean): three
#: repeats are what an acceptance or a re-baselining after service usually records, and
#: their mean halves the repeat noise of a single scan (1/sqrt(3)).
BASELINE_RESULTS = 3


# --------------------------------------------------------------------------- results

@dataclass(frozen=True)
class Judged:
    """One stored result judged with one spec: outcome True/False/None (not judged),
    the failing values as text, and the local acquisition time."""

    result_id: int
    analysis: str
    time: dt.datetime
    passed: bool | None
    failures: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoredResult:
    """What judging a stored result needs, read as plain columns (ORM objects for ten
    years of daily QC cost seconds)."""

    id: int
    analysis: str
    standard: str
    series_uid: str | None
    acquired_at: dt.datetime | None
    created_at: dt.datetime
    parameters: dict[str, Any]
    measurements: list[tuple[Any, ...]]  # _MEAS_COLUMNS in order


_MEAS_COLUMNS = (m.Measurement.result_id, m.Measurement.name, m.Measurement.labels,
                 m.Measurement.value, m.Measurement.unit, m.Measurement.uncertainty,
                 m.Measurement.status, m.Measurement.note, m.Measurement.limit_low,
                 m.Measurement.limit_high, m.Measurement.limit_source,
                 m.Measurement.limit_verified)


def _rejected_by_review() -> Any:
    """SQL: the newest review decision received for the result is a rejection (no
    acceptance decided at or after it)."""
    rej, acc = aliased(m.ReviewDecision), aliased(m.ReviewDecision)
    newer_accept = select(acc.id).where(
        acc.result_id == m.Result.id, acc.decision == "accepted",
        or_(acc.decided_at > rej.decided_at, and_(acc.decided_at == rej.decided_at,
                                                  acc.id > rej.id))).exists()
    return select(rej.id).where(rej.result_id == m.Result.id, rej.decision == "rejected",
                                ~newer_accept).exists()


def _current_results(session: Session, device_id: int,
                     analyses: Iterable[str] | None = None,
                     until: dt.datetime | None = None,
                     since: dt.datetime | None = None) -> list[StoredResult]:
    """The device's results that no later row supersedes and that an expert reviewer
    did not reject (issue 14 §2: the newest review decision the site received is not a
    rejection; a rejected result does not count as done, so its test is due again),
    oldest first (acquisition)."""
    later = aliased(m.Result)
    conds = [m.Result.device_id == device_id,
             ~select(later.id).where(later.supersedes_id == m.Result.id).exists(),
             ~_rejected_by_review()]
    if analyses is not None:
        conds.append(m.Result.analysis.in_(sorted(set(analyses))))
    # a result without an acquisition time counts at its storage time (filtered by the
    # caller, which knows the site's time zone)
    if until is not None:
        conds.append(or_(m.Result.acquired_at.is_(None), m.Result.acquired_at < until))
    if since is not None:
        conds.append(or_(m.Result.acquired_at.is_(None), m.Result.acquired_at >= since))
    rows = session.execute(
        select(m.Result.id, m.Result.analysis, m.Result.standard, m.Result.series_uid,
               m.Result.acquired_at, m.Result.created_at, m.Result.parameters)
        .where(*conds).order_by(m.Result.acquired_at, m.Result.id)).all()
    meas: dict[int, list[tuple[Any, ...]]] = {}
    ids = select(m.Result.id).where(*conds).scalar_subquery()
    for row in session.execute(select(*_MEAS_COLUMNS).where(
            m.Measurement.result_id.in_(ids)).order_by(m.Measurement.id)):
        meas.setdefault(row[0], []).append(tuple(row))
    return [StoredResult(r[0], r[1], r[2], r[3], r[4], r[5], dict(r[6] or {}),
                         meas.get(r[0], [])) for r in rows]


def _local_time(row: StoredResult, zone: Any) -> dt.datetime:
    if row.acquired_at is not None:
        return row.acquired_at
    return A.to_local(row.created_at, zone)


class _Baselines:
    """The device's stored baselines (see the module docstring), read once per
    (analysis, segment)."""

    def __init__(self, session: Session, device: m.Device) -> None:
        from scanbench.evaluation.alerts import baseline_starts  # not loaded by --help

        self.session, self.device = session, device
        starts: set[dt.datetime] = {b.time for b in baseline_starts(session, device.id)
                                    if b.time is not None}
        starts.update(t for t in session.scalars(select(m.LifecycleEvent.occurred_at).where(
            m.LifecycleEvent.device_id == device.id, m.LifecycleEvent.kind == "acceptance",
            m.LifecycleEvent.occurred_at.is_not(None))) if t is not None)
        self.starts = sorted(starts)
        self._cache: dict[tuple[str, dt.datetime | None], list[StoredResult]] = {}

    def _segment(self, t: dt.datetime) -> tuple[dt.datetime | None, dt.datetime | None]:
        lo = next((x for x in reversed(self.starts) if x <= t), None)
        hi = next((x for x in self.starts if x > t), None)
        return lo, hi

    def baseline(self, row: StoredResult, t: dt.datetime) -> tuple[Baseline | None, str]:
        """The baseline ``row`` (acquired at local ``t``) is judged against, or None and
        why not."""
        lo, hi = self._segment(t)
        key = (row.analysis, lo)
        if key not in self._cache:
            first = _current_results(self.session, self.device.id, [row.analysis],
                                     until=hi, since=lo)
            self._cache[key] = [r for r in first if r.acquired_at is not None][
                :BASELINE_RESULTS]
        base = self._cache[key]
        where = (f"the segment from {lo.isoformat()}" if lo is not None
                 else "the device's first results")
        if any(r.id == row.id for r in base) or len(base) < BASELINE_RESULTS:
            return None, (f"this result is part of the device's baseline ({where}: the "
                          f"mean of its first {BASELINE_RESULTS} results); baseline-"
                          "relative limits do not judge it")
        if base[-1].acquired_at is not None and t <= base[-1].acquired_at:
            return None, f"acquired before the device's baseline ({where}) was complete"
        sums: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[float]] = {}
        for r in base:
            for (_, name, labels, value, *_rest) in r.measurements:
                if value is not None and math.isfinite(value):
                    sums.setdefault((r.analysis, name, _label_key(labels or {})),
                                    []).append(float(value))
        values = {k: sum(v) / len(v) for k, v in sums.items()}
        ids = ", ".join(str(r.id) for r in base)
        return Baseline(values=values, source=f"results {ids}"), (
            f"baseline-relative limits judged against the mean of results {ids} ({where})")


def judge(row: StoredResult, spec: Spec, device: m.Device, zone: Any,
          baselines: _Baselines | None = None) -> Judged:
    """``row`` judged by ``spec`` (see the module docstring); ``baselines``: the
    device's stored baselines, for baseline-relative rules."""
    res = TResult(row.analysis, row.standard, row.series_uid,
                  DeviceIdentity(device.manufacturer, device.model, device.serial),
                  row.acquired_at, parameters=dict(row.parameters))
    for (_, name, labels, value, unit, unc, status, note, lo, hi, source,
         verified) in row.measurements:
        meas = res.add(name, float("nan") if value is None else value, unit,
                       labels=dict(labels or {}), uncertainty=unc)
        if status in ("refused", "not_judged"):
            meas.status = status
            meas.note = note
            if lo is not None or hi is not None:
                meas.limits = Limits(lo, hi, source or "", bool(verified))
    base: Baseline | None = None
    note = ""
    if baselines is not None and any(r.baseline is not None
                                     for r in spec.rules_for(row.analysis)):
        base, note = baselines.baseline(row, _local_time(row, zone))
    apply_spec(res, spec, base)
    if note and base is None:
        # the generic "no baseline value was given" warning speaks of the command line
        res.warnings = [w for w in res.warnings if "no baseline value was given" not in w]
    if note:
        res.warnings.append(note)
    statuses = {x.status for x in res.measurements}
    passed = False if "fail" in statuses else True if "pass" in statuses else None
    failures = tuple(
        f"{x.name}{_labels(x.labels)} = {x.value:g} {x.unit} outside "
        f"{_band(x.limits)} ({x.limits.source})"
        for x in res.measurements if x.status == "fail" and x.limits is not None)
    return Judged(row.id, row.analysis, _local_time(row, zone), passed, failures,
                  tuple(res.warnings))


def _labels(labels: dict[str, Any]) -> str:
    return "" if not labels else " {" + ", ".join(f"{k}: {v}" for k, v in labels.items()) + "}"


def _band(lim: Limits) -> str:
    lo = "" if lim.low is None else f"{lim.low:g}"
    hi = "" if lim.high is None else f"{lim.high:g}"
    return f"[{lo}, {hi}]"


def _tests_for(spec: Spec, analysis: str) -> list[TestRequirement]:
    return [t for t in spec.tests if t.analysis == analysis or t.test == analysis]


def _analyses(spec: Spec) -> set[str]:
    return {x for t in spec.tests for x in (t.analysis, t.test) if x}


def _events(session: Session, device: m.Device) -> list[LifecycleEvent]:
    rows = session.scalars(select(m.LifecycleEvent).where(
        m.LifecycleEvent.device_id == device.id, m.LifecycleEvent.occurred_at.is_not(None))
        .order_by(m.LifecycleEvent.occurred_at, m.LifecycleEvent.id))
    return [LifecycleEvent(id=str(e.id), device=str(device.id), time=e.occurred_at,
                           kind=e.kind, planned=bool(e.planned))  # type: ignore[arg-type]
            for e in rows if e.occurred_at is not None]


# --------------------------------------------------------------------------- the timeline

@dataclass
class _Timeline:
    """A device's spec periods, its judged results and events over [start, end)."""

    device: m.Device
    zone: Any
    periods: list[A.SpecPeriod]
    schedule: list[ScheduleSpec]
    records: list[TestRecord]
    judged: dict[tuple[int, int], Judged] = field(default_factory=dict)  # (result, spec row)
    events: list[LifecycleEvent] = field(default_factory=list)


def _timeline(session: Session, device: m.Device, start: dt.datetime,
              end: dt.datetime) -> _Timeline:
    """``start``/``end`` aware UTC. Every spec period, each result judged by the spec in
    force at its acquisition, as the schedule's inputs (local naive times)."""
    zone = A.site_zone(session, device)
    periods = A.spec_periods(session, device, start, end)
    schedule = [ScheduleSpec(p.spec.row.name if p.spec else "(no spec)",
                             p.spec.row.version if p.spec else "",
                             A.to_local(p.start, zone), ())
                if p.spec is None else _schedule_of(p.spec.spec, A.to_local(p.start, zone))
                for p in periods]
    analyses = {x for p in periods if p.spec for x in _analyses(p.spec.spec)}
    tl = _Timeline(device, zone, periods, schedule, [], events=_events(session, device))
    baselines = _Baselines(session, device)
    for row in _current_results(session, device.id, analyses, A.to_local(end, zone),
                                A.to_local(start, zone)):
        t_utc = A.to_utc(_local_time(row, zone), zone)
        if not start <= t_utc < end:
            continue
        part = next((p for p in reversed(periods) if p.start <= t_utc), periods[0])
        if part.spec is None:
            continue
        j = judge(row, part.spec.spec, device, zone, baselines)
        tl.judged[(row.id, part.spec.row.id)] = j
        for t in _tests_for(part.spec.spec, row.analysis):
            tl.records.append(TestRecord(j.time, t.test, j.passed, str(row.id)))
    tl.records.sort(key=lambda r: (r.time, r.id))
    return tl


def _schedule_of(spec: Spec, valid_from: dt.datetime) -> ScheduleSpec:
    out: ScheduleSpec = spec.schedule(valid_from)
    return out


def _first_assignment(session: Session, device: m.Device) -> dt.datetime | None:
    starts = [a.valid_from for a in session.scalars(select(m.SpecAssignment)).all()
              if A.matches(a, device) and a.valid_from is not None]
    return min(starts) if starts else None


# --------------------------------------------------------------------------- due lists

def due_list_for_device(session: Session, device_id: int,
                        now: dt.datetime | None = None) -> DueList:
    """What is due for the device at ``now`` (aware; default now): one
    :class:`~scanbench.evaluation.schedule.DueItem` per required test of the spec in
    force (done / due / overdue since when / not applicable, with the reason), one per
    open re-test after a failure, and one per test due at once after a service event.
    Times in the items are the site's local clock time (naive), like result times.
    A device with no spec: no items and a note saying so."""
    return _due(session, device_id, now)[0]


def _due(session: Session, device_id: int, now: dt.datetime | None
         ) -> tuple[DueList, _Timeline | None]:
    now = now or dt.datetime.now(dt.UTC)
    device = session.get(m.Device, device_id)
    if device is None:
        raise InputError(f"no device with id {device_id}")
    first = _first_assignment(session, device)
    zone = A.site_zone(session, device)
    local_now = A.to_local(now, zone)
    if first is None or first > now:
        return DueList(str(device.id), local_now, None, (), (
            "no evaluation specification is assigned to this device: nothing is due",)), None
    tl = _timeline(session, device, max(first, now - LOOKBACK), now + _US)
    current = tl.periods[-1].spec
    if current is None:
        return DueList(str(device.id), local_now, None, (), (
            "no evaluation specification is assigned to this device now: nothing is due",)
        ), tl
    dl = due_list(str(device.id), tl.schedule, tl.records, tl.events, local_now)
    extra = _after_service(current.spec, tl, local_now, current.label)
    notes = (*dl.notes, *current.notes)
    return DueList(dl.device, dl.at, dl.spec, (*dl.items, *extra), notes), tl


def _after_service(spec: Spec, tl: _Timeline, at: dt.datetime, label: str
                   ) -> list[DueItem]:
    """A periodic test not done since the latest service event is due at once."""
    services = [e for e in tl.events if e.kind in SERVICE_KINDS and e.time <= at]
    if not services:
        return []
    last_service = services[-1]
    window = dt.timedelta(days=DEFAULT_WINDOW_DAYS["after_service"])
    out = []
    for t in spec.tests:
        if t.frequency not in PERIODIC:
            continue
        done = [r for r in tl.records if r.test == t.test and r.time <= at]
        last = done[-1] if done else None
        if last is not None and last.time >= last_service.time:
            continue
        deadline = last_service.time + window
        overdue = at > deadline
        out.append(DueItem(
            t.test, "after_service", "overdue" if overdue else "due", last_service.time,
            deadline, deadline if overdue else None, last.time if last else None,
            last.passed if last else None,
            f"{last_service.kind.replace('_', ' ')} on {last_service.time.isoformat()}: "
            "the test is due at once after a service event", label))
    return out


def due_list_for_site(session: Session, site_id: int, now: dt.datetime | None = None,
                      device_ids: Sequence[int] | None = None) -> list[DueList]:
    """The due list of every active device of the site (or of ``device_ids`` of it)."""
    q = select(m.Device).where(m.Device.site_id == site_id, m.Device.status != "retired")
    if device_ids is not None:
        q = q.where(m.Device.id.in_(list(device_ids)))
    return [due_list_for_device(session, d.id, now)
            for d in session.scalars(q.order_by(m.Device.id))]


@dataclass(frozen=True)
class RequiredTestState:
    """Latest status of one required test of a device (the fleet page's row): the spec,
    the test, its newest result (id, local time, outcome by the spec) and its due state
    (``due_status``: done / due / overdue / not_applicable, with ``overdue_since``)."""

    spec: str
    test: str
    title: str
    frequency: str | None
    dimension: str | None
    last_result_id: int | None
    last_at: dt.datetime | None
    last_outcome: str | None  # passed / failed / not_judged
    due_status: str
    overdue_since: dt.datetime | None
    deadline: dt.datetime | None
    reason: str


def required_tests(session: Session, device: m.Device,
                   now: dt.datetime | None = None) -> list[RequiredTestState]:
    """The required tests of the spec in force for ``device`` now, each with its latest
    result and whether it is overdue (what the fleet page shows per device). Empty when
    no spec is assigned. Cost: the device's results of the spec's analyses since its
    first assignment, read as plain columns and judged once (the due list's own)."""
    dl, tl = _due(session, device.id, now)
    if dl.spec is None or tl is None or tl.periods[-1].spec is None:
        return []
    current = tl.periods[-1].spec
    out = []
    for t in current.spec.tests:
        mine = [r for r in tl.records if r.test == t.test and r.time <= dl.at]
        last = mine[-1] if mine else None
        items = [i for i in dl.items if i.test == t.test]
        worst = next((i for s in ("overdue", "due", "done", "not_applicable")
                      for i in items if i.status == s), None)
        if t.frequency is None:
            due_status, reason = "not_applicable", ("the source's testing period is not "
                                                    "confirmed: listed, never due")
        elif worst is None:
            due_status, reason = "not_applicable", "not scheduled"
        else:
            due_status, reason = worst.status, worst.reason
        out.append(RequiredTestState(
            current.label, t.test, t.title, t.frequency, t.dimension,
            int(last.id) if last else None, last.time if last else None,
            None if last is None else _outcome(last.passed), due_status,
            worst.overdue_since if worst else None, worst.deadline if worst else None,
            reason))
    return out


def _outcome(passed: bool | None) -> str:
    return "passed" if passed else "failed" if passed is False else "not_judged"


# --------------------------------------------------------------------------- scorecards

@dataclass(frozen=True)
class ScorecardOutcome:
    """One part of a period: the stored scorecard (``row``, None when no spec was in
    force: then ``notes`` say so and there is no score), and whether it was added now."""

    start: dt.datetime  # local naive
    end: dt.datetime
    row: m.Scorecard | None
    added: bool
    notes: tuple[str, ...] = ()


def compute_scorecards(session: Session, device_id: int, start: dt.datetime,
                       end: dt.datetime, now: dt.datetime | None = None
                       ) -> list[ScorecardOutcome]:
    """Score the device over [start, end) (aware instants), one scorecard per spec
    version in force; store each unless a scorecard of the same inputs exists. The
    caller commits."""
    now = now or dt.datetime.now(dt.UTC)
    device = session.get(m.Device, device_id)
    if device is None:
        raise InputError(f"no device with id {device_id}")
    if end <= start:
        raise InputError(f"the period ends ({end.isoformat()}) before it starts "
                         f"({start.isoformat()})")
    if start >= now:
        raise InputError(f"the period starts ({start.isoformat()}) after now: nothing to "
                         "score yet")
    first = _first_assignment(session, device)
    zone = A.site_zone(session, device)
    t0 = max(min(start, first), start - LOOKBACK) if first is not None else start
    tl = _timeline(session, device, t0, max(end, now) + _US)
    out: list[ScorecardOutcome] = []
    for part in tl.periods:
        p0, p1 = max(part.start, start), min(part.end, end)
        if p1 <= p0 or p0 >= now:
            continue
        l0, l1 = A.to_local(p0, zone), A.to_local(p1, zone)
        if part.spec is None:
            out.append(ScorecardOutcome(l0, l1, None, False, (
                "no evaluation specification was assigned to this device in this part of "
                "the period: no score",)))
            continue
        out.append(_score_part(session, tl, part.spec, l0, l1, A.to_local(now, zone)))
    if not out:
        out.append(ScorecardOutcome(A.to_local(start, zone), A.to_local(end, zone), None,
                                    False, ("no evaluation specification is assigned to "
                                            "this device: no score",)))
    return out


def _score_part(session: Session, tl: _Timeline, sif: A.SpecInForce, l0: dt.datetime,
                l1: dt.datetime, local_now: dt.datetime) -> ScorecardOutcome:
    spec = sif.spec
    as_of = min(l1, local_now)
    running = local_now < l1
    dev = str(tl.device.id)
    recs = [r for r in tl.records if r.time < as_of]
    in_part = [r for r in recs if l0 <= r.time < l1]
    sched = [s for s in tl.schedule if s.valid_from < l1]
    dl = due_list(dev, sched, recs, tl.events, as_of - _US)
    after = _after_service(spec, _Timeline(tl.device, tl.zone, [], sched, recs,
                                           events=[e for e in tl.events if e.time >= l0]),
                           as_of - _US, sif.label)
    tests = []
    for t in spec.tests:
        tests.append(_test_status(t, [r for r in in_part if r.test == t.test],
                                  [i for i in (*dl.items, *after) if i.test == t.test],
                                  tl, sif, as_of))
    comp = compliance(dev, sched, recs, tl.events, l0, l1, as_of=as_of)
    indicators = _indicators(session, tl, spec, l0, l1, as_of, running)
    dims = _dimensions(spec, tests, indicators)
    score = _overall(dims)
    bad = any(x["status"] in ("failed", "overdue") for x in (*tests, *indicators))
    good = any(x["status"] == "passed" for x in (*tests, *indicators))
    status = "fail" if bad else "pass" if good else "info"
    data = {
        "device": {"id": tl.device.id, "manufacturer": tl.device.manufacturer,
                   "model": tl.device.model, "serial": tl.device.serial,
                   "modality": tl.device.modality},
        "spec": {"id": sif.row.id, "name": sif.row.name, "version": sif.row.version,
                 "title": sif.row.title, "sha256": sif.row.sha256,
                 "verified": sif.row.verified, "assignment_id": sif.assignment.id,
                 "unverified_reason": spec.unverified_reason},
        "period": {"start": l0.isoformat(), "end": l1.isoformat(),
                   "as_of": as_of.isoformat(), "running": running,
                   "timezone": str(tl.zone)},
        "tests": tests,
        "indicators": indicators,
        "dimensions": dims,
        "score": score,
        "score_method": ("dimension score = 100 x passed / (passed + failed + overdue) "
                         "of its tests and indicators; overall = mean of the scored "
                         "dimensions weighted by the spec's weights (equal when it gives "
                         "none)"),
        "compliance": {
            "required": comp.required, "on_time": comp.on_time,
            "percent": comp.compliance_pct, "pending": comp.pending,
            "missed": [{"test": o.test, "kind": o.kind, "start": o.start.isoformat(),
                        "deadline": o.deadline.isoformat()} for o in comp.missed],
            "follow_ups": [{"test": f.test, "failed_at": f.failed_at.isoformat(),
                            "action_at": f.action_at.isoformat() if f.action_at else None,
                            "action_event": f.action_event,
                            "hours_to_action": f.hours_to_action,
                            "passed_at": f.passed_at.isoformat() if f.passed_at else None,
                            "hours_to_pass": f.hours_to_pass} for f in comp.follow_ups],
            "notes": list(comp.notes)},
        "notes": list(sif.notes),
    }
    inputs = {
        "spec": sif.row.sha256, "spec_id": sif.row.id, "period": [l0.isoformat(),
                                                                   l1.isoformat()],
        # a running period: what was computed, not the day, so that the node's daily
        # pass adds a row only when a status changed (a test became overdue)
        "outcome": [tests, data["compliance"], dims] if running else None,
        "records": [[r.id, r.time.isoformat(), r.test, r.passed] for r in recs],
        "indicators": [[i["indicator"], i["value"], i["status"]] for i in indicators],
        "events": [[e.id, e.time.isoformat(), e.kind, e.planned] for e in tl.events
                   if e.time < as_of],
        "schedule": [[s.label, s.valid_from.isoformat()] for s in sched],
    }
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True, separators=(",", ":"),
                                       default=str).encode()).hexdigest()
    existing = _existing(session, tl.device.id, sif.row.id, digest)
    if existing is not None:
        return ScorecardOutcome(l0, l1, existing, False, tuple(sif.notes))
    row = m.Scorecard(device_id=tl.device.id, spec_id=sif.row.id, period_start=l0,
                      period_end=l1, score=score, status=status, data=data,
                      compliance=None if comp.compliance_pct is None
                      else comp.compliance_pct / 100.0, inputs_hash=digest)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # another process stored the same inputs first
        existing = _existing(session, tl.device.id, sif.row.id, digest)
        return ScorecardOutcome(l0, l1, existing, False, tuple(sif.notes))
    return ScorecardOutcome(l0, l1, row, True, tuple(sif.notes))


def _existing(session: Session, device_id: int, spec_id: int, digest: str
              ) -> m.Scorecard | None:
    return session.scalars(select(m.Scorecard).where(
        m.Scorecard.device_id == device_id, m.Scorecard.spec_id == spec_id,
        m.Scorecard.inputs_hash == digest)).first()


def _test_status(t: TestRequirement, recs: list[TestRecord], items: list[DueItem],
                 tl: _Timeline, sif: A.SpecInForce, as_of: dt.datetime) -> dict[str, Any]:
    evidence = [int(r.id) for r in recs]
    last = recs[-1] if recs else None
    overdue = next((i for i in items if i.status == "overdue"), None)
    due = next((i for i in items if i.status == "due"), None)
    status: str
    if overdue is not None:
        status, reason = "overdue", f"overdue since {_iso(overdue.overdue_since)}: " \
            f"{overdue.reason}"
    elif due is not None and due.deadline is not None and due.deadline <= as_of:
        # the due list is taken just before the end of the period: an occurrence whose
        # deadline is the end of the period was missed by then
        status, reason = "overdue", f"overdue since {due.deadline.isoformat()}: not done " \
            f"by its deadline ({due.reason})"
    elif last is not None:
        j = tl.judged.get((int(last.id), sif.row.id))
        when = last.time.isoformat()
        if last.passed is False:
            why = "; ".join(j.failures) if j and j.failures else "a value failed its limit"
            status, reason = "failed", f"failed on {when}: {why}"
            if due is not None:
                reason += f" (re-test due by {_iso(due.deadline)})"
        elif last.passed is True:
            earlier = [r for r in recs[:-1] if r.passed is False]
            status, reason = "passed", f"passed on {when}"
            if earlier:
                reason += f" (after a failure on {earlier[-1].time.isoformat()})"
        else:
            status, reason = "not_judged", (f"done on {when}; no confirmed limit of "
                                            f"{sif.label} judges it")
    elif t.frequency is None:
        status, reason = "not_applicable", ("the source's testing period is not confirmed: "
                                            "listed, never due")
    elif due is not None:
        status, reason = "due", due.reason
    else:
        na = next((i for i in items if i.status == "not_applicable"), None)
        done = next((i for i in items if i.status == "done"), None)
        if done is not None:  # done before the period, current slot still covered
            status, reason = "passed" if done.last_passed else "not_judged", done.reason
        else:
            status, reason = "not_applicable", na.reason if na else "nothing required"
    return {"test": t.test, "title": t.title, "frequency": t.frequency,
            "dimension": t.dimension or "unassigned", "source": t.source,
            "status": status, "reason": reason, "evidence": evidence,
            "last_done": last.time.isoformat() if last else None}


def _iso(t: dt.datetime | None) -> str:
    return t.isoformat() if t else "?"


def _indicators(session: Session, tl: _Timeline, spec: Spec, l0: dt.datetime,
                l1: dt.datetime, as_of: dt.datetime, running: bool) -> list[dict[str, Any]]:
    """The spec's device-level indicators over [l0, as_of)
    (:mod:`scanbench.evaluation.indicators`); day-based ones count whole days (a
    running period up to yesterday)."""
    if not spec.indicators:
        return []
    from scanbench.evaluation.indicators import score_indicator

    end_day = as_of.date() if running else l1.date()
    return [score_indicator(session, tl.device, ind, l0, as_of, end_day, tl.zone)
            for ind in spec.indicators]


def _dimensions(spec: Spec, tests: list[dict[str, Any]],
                indicators: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    weights = spec.normalised_weights()
    items = [*tests, *indicators]
    names = [d for d in DIMENSIONS if d in weights or any(x["dimension"] == d for x in items)]
    names += sorted({x["dimension"] for x in items} - set(names))
    out = []
    for d in names:
        mine = [x for x in items if x["dimension"] == d]
        counts = {s: sum(x["status"] == s for x in mine) for s in TEST_STATUSES}
        n = counts["passed"] + counts["failed"] + counts["overdue"]
        score = 100.0 * counts["passed"] / n if n else None
        out.append({"dimension": d, "weight": weights.get(d), "score": score, **counts,
                    "tests": [x["test"] for x in mine if "test" in x],
                    "indicators": [x["indicator"] for x in mine if "indicator" in x],
                    "evidence": sorted({i for x in mine if "test" in x
                                        for i in x["evidence"]}),
                    "note": "" if n else "not scored: no test or indicator of this dimension "
                                         "was judged or overdue in the period"})
    return out


def _overall(dims: list[dict[str, Any]]) -> float | None:
    scored = [d for d in dims if d["score"] is not None]
    if not scored:
        return None
    if any(d["weight"] for d in scored):
        pairs = [(d["weight"] or 0.0, d["score"]) for d in scored]
    else:
        pairs = [(1.0, d["score"]) for d in scored]
    total = sum(w for w, _ in pairs)
    return sum(w * s for w, s in pairs) / total if total > 0 else None


# --------------------------------------------------------------------------- aggregation

def latest_scorecards(session: Session, device_ids: Sequence[int]) -> dict[int, m.Scorecard]:
    """The newest stored scorecard of each device (by period end, then creation)."""
    out: dict[int, m.Scorecard] = {}
    if not device_ids:
        return out
    rows = session.scalars(select(m.Scorecard).where(m.Scorecard.device_id.in_(
        list(device_ids))).order_by(m.Scorecard.period_end, m.Scorecard.created_at,
                                    m.Scorecard.id))
    for r in rows:
        out[r.device_id] = r
    return out


def aggregate(session: Session, devices: Sequence[m.Device],
              by: Literal["model", "site"]) -> list[dict[str, Any]]:
    """Per model (manufacturer + model) or per site: each device's newest scorecard
    pooled — mean score over the scored devices, compliance pooled (Σ on time / Σ
    required), counts of each test status, devices without a scorecard."""
    latest = latest_scorecards(session, [d.id for d in devices])
    groups: dict[Any, list[m.Device]] = {}
    for d in devices:
        key = (d.manufacturer or "", d.model or "") if by == "model" else d.site_id
        groups.setdefault(key, []).append(d)
    out = []
    for key, devs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        cards = [latest[d.id] for d in devs if d.id in latest]
        scores = [c.score for c in cards if c.score is not None]
        required = sum(int(c.data.get("compliance", {}).get("required") or 0) for c in cards)
        on_time = sum(int(c.data.get("compliance", {}).get("on_time") or 0) for c in cards)
        counts = dict.fromkeys(TEST_STATUSES, 0)
        for c in cards:
            for t in c.data.get("tests", []):
                if t.get("status") in counts:
                    counts[t["status"]] += 1
        group = ({"manufacturer": key[0], "model": key[1]} if by == "model"
                 else {"site_id": key})
        out.append({**group, "devices": len(devs), "scored_devices": len(scores),
                    "without_scorecard": [d.id for d in devs if d.id not in latest],
                    "mean_score": sum(scores) / len(scores) if scores else None,
                    "compliance_percent": 100.0 * on_time / required if required else None,
                    "required": required, "on_time": on_time, "tests": counts,
                    "scorecard_ids": [c.id for c in cards],
                    "specs": sorted({f"{c.data.get('spec', {}).get('name')} "
                                     f"{c.data.get('spec', {}).get('version')}"
                                     for c in cards})})
    return out


__all__ = ["TEST_STATUSES", "Judged", "RequiredTestState", "ScorecardOutcome", "aggregate",
           "compute_scorecards", "due_list_for_device", "due_list_for_site", "judge",
           "latest_scorecards", "required_tests"]

"""QC schedules and compliance of one device: what is due at a date, what was done on
time in a period, and how long a failure took to be acted on and passed again.

Rules (this module's; the frequencies themselves come from the evaluation specification
and its sources, e.g. EARL: calibration QC quarterly, image quality yearly)
----------------------------------------------------------------------------------------
* A **periodic** test (daily, weekly, monthly, quarterly, annual) is required once per
  calendar slot in the site's local time: a day (only the listed weekdays for a daily
  test, when given), an ISO week from Monday, a calendar month, a calendar quarter
  (January, April, July, October), a calendar year. A slot is on time when the test was
  done inside it or within the test's ``window_days`` after it ends (default 0: inside
  the slot). Whether a slot is required is decided by the spec version in force at the
  slot's start, so a spec changed mid-period governs the slots that start after the
  change.
* An **after_service** test is due at once after each service event (planned or
  unplanned service, part replacement, software change, relocation) and on time when
  done within ``window_days`` of it (default 1 day).
* An **acceptance** test is due at the installation and on time when done within
  ``window_days`` of it (default 30 days).
* A **re-test** is due at once after every failed result of a test the spec requires,
  and on time when the same test is done again within the spec's ``retest_days``
  (default 1 day), whatever its outcome (a failed re-test makes the next one due).
* Nothing periodic or after-service is required before the device is in use (its
  acceptance, else its installation, when the log has them) or after its
  decommissioning.
* **Compliance** over a period = on-time occurrences / required occurrences, counting
  the occurrences that start in the period and whose deadline has passed at ``as_of``
  (default the end of the period); later ones are pending, not counted.
* **Follow-up of a failure**: from the first failed result of an episode (failures of
  the test until it passes again) to the first corrective action after it (an unplanned
  or planned service, a part replacement or a software change) and to the first passing
  result of the same test, in hours.

A device without a spec has nothing due and no compliance (None, with a note).
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal
from zoneinfo import ZoneInfo

from scanbench.errors import InputError
from scanbench.evaluation.reliability import LifecycleEvent

Frequency = Literal["daily", "weekly", "monthly", "quarterly", "annual", "after_service",
                    "acceptance"]
PERIODIC: tuple[Frequency, ...] = ("daily", "weekly", "monthly", "quarterly", "annual")
FREQUENCIES: tuple[Frequency, ...] = (*PERIODIC, "after_service", "acceptance")
DEFAULT_WINDOW_DAYS: dict[str, float] = {**dict.fromkeys(PERIODIC, 0.0),
                                         "after_service": 1.0, "acceptance": 30.0}
SERVICE_KINDS = ("planned_service", "unplanned_service", "part_replacement",
                 "software_change", "relocation")
CORRECTIVE_KINDS = ("unplanned_service", "planned_service", "part_replacement",
                    "software_change")

Status = Literal["done", "due", "overdue", "not_applicable"]
OccurrenceKind = Literal["slot", "after_service", "acceptance", "retest"]


@dataclass(frozen=True)
class RequiredTest:
    """One required test: ``test`` is the analysis id or QC test name the results carry;
    ``window_days`` extends the due window (see the module docstring for defaults);
    ``weekdays`` (0 = Monday) restricts a daily test to those days."""

    test: str
    frequency: Frequency
    window_days: float | None = None
    weekdays: tuple[int, ...] | None = None
    source: str = ""

    def window(self) -> dt.timedelta:
        days = DEFAULT_WINDOW_DAYS[self.frequency] if self.window_days is None \
            else self.window_days
        return dt.timedelta(days=days)


@dataclass(frozen=True)
class ScheduleSpec:
    """The tests one spec version requires of a device from ``valid_from`` on (until the
    next version assigned to the device)."""

    name: str
    version: str
    valid_from: dt.datetime
    tests: tuple[RequiredTest, ...]
    retest_days: float = 1.0

    def __post_init__(self) -> None:
        for t in self.tests:
            if t.frequency not in FREQUENCIES:
                raise InputError(f"test {t.test}: unknown frequency {t.frequency!r}; known: "
                                 f"{', '.join(FREQUENCIES)}", where=f"{self.name} {self.version}")

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


@dataclass(frozen=True)
class TestRecord:
    """A test done on the device: when, which test, and its outcome (None: done but not
    judged, e.g. only unconfirmed limits)."""

    __test__ = False  # not a pytest class

    time: dt.datetime
    test: str
    passed: bool | None
    id: str = ""


@dataclass(frozen=True)
class Occurrence:
    """One time a test was required: from ``start`` to ``deadline``; ``done_at`` the
    first record of the test inside that window (None: missed or not yet done)."""

    test: str
    kind: OccurrenceKind
    frequency: str
    start: dt.datetime
    deadline: dt.datetime
    spec: str
    done_at: dt.datetime | None
    trigger: str = ""

    @property
    def on_time(self) -> bool:
        return self.done_at is not None


@dataclass(frozen=True)
class DueItem:
    """The state of one required test at a date."""

    test: str
    frequency: str
    status: Status
    due_from: dt.datetime | None
    deadline: dt.datetime | None
    overdue_since: dt.datetime | None
    last_done: dt.datetime | None
    last_passed: bool | None
    reason: str
    spec: str


@dataclass(frozen=True)
class DueList:
    device: str
    at: dt.datetime
    spec: str | None
    items: tuple[DueItem, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class FailureFollowUp:
    """From a failed test to the corrective action and to the passing re-test (hours)."""

    test: str
    failed_at: dt.datetime
    action_at: dt.datetime | None
    action_event: str | None
    hours_to_action: float | None
    passed_at: dt.datetime | None
    hours_to_pass: float | None


@dataclass(frozen=True)
class Compliance:
    device: str
    period_start: dt.datetime
    period_end: dt.datetime
    required: int
    on_time: int
    compliance_pct: float | None
    occurrences: tuple[Occurrence, ...]
    pending: int
    follow_ups: tuple[FailureFollowUp, ...]
    notes: tuple[str, ...] = ()

    @property
    def missed(self) -> tuple[Occurrence, ...]:
        return tuple(o for o in self.occurrences if not o.on_time)


# --- calendar slots ----------------------------------------------------------------------

def slot_start(t: dt.datetime, frequency: Frequency, tz: str | None = None) -> dt.datetime:
    """Start of the calendar slot holding ``t`` (local midnight of its first day)."""
    zone = _zone(t, tz)
    local = t.astimezone(zone) if zone else t
    d = local.date()
    if frequency == "weekly":
        d -= dt.timedelta(days=d.weekday())
    elif frequency == "monthly":
        d = d.replace(day=1)
    elif frequency == "quarterly":
        d = d.replace(month=3 * ((d.month - 1) // 3) + 1, day=1)
    elif frequency == "annual":
        d = d.replace(month=1, day=1)
    elif frequency != "daily":
        raise InputError(f"{frequency} is not a periodic frequency")
    return dt.datetime.combine(d, dt.time(0), tzinfo=zone)


def next_slot(start: dt.datetime, frequency: Frequency) -> dt.datetime:
    """Start of the slot after the one starting at ``start`` (same zone)."""
    d = start.date()
    if frequency == "daily":
        d += dt.timedelta(days=1)
    elif frequency == "weekly":
        d += dt.timedelta(days=7)
    else:
        months = {"monthly": 1, "quarterly": 3, "annual": 12}[frequency]
        m = d.month - 1 + months
        d = d.replace(year=d.year + m // 12, month=m % 12 + 1, day=1)
    return dt.datetime.combine(d, dt.time(0), tzinfo=start.tzinfo)


def _zone(t: dt.datetime, tz: str | None) -> dt.tzinfo | None:
    if t.tzinfo is None:
        return None
    return ZoneInfo(tz) if tz else dt.UTC


# --- occurrences ---------------------------------------------------------------------------

def occurrences(device: str, specs: Sequence[ScheduleSpec], records: Iterable[TestRecord],
                events: Iterable[LifecycleEvent], start: dt.datetime, end: dt.datetime,
                tz: str | None = None) -> list[Occurrence]:
    """Every occurrence of a required test that starts in [start, end), with the first
    record that satisfied it. ``events`` of other devices are ignored."""
    specs_sorted = _check(device, specs, start, end)
    recs = sorted(records, key=lambda r: r.time)
    evs = sorted((e for e in events if e.device == device), key=lambda e: e.time)
    _check_records(device, recs, evs, start)
    in_use, until = _in_use(evs)
    out: list[Occurrence] = []

    times: dict[str, list[dt.datetime]] = {}
    for r in recs:
        times.setdefault(r.test, []).append(r.time)

    def done(test: str, lo: dt.datetime, hi: dt.datetime) -> dt.datetime | None:
        ts = times.get(test, [])
        k = bisect_left(ts, lo)  # ten years of daily QC: a search, not a scan
        return ts[k] if k < len(ts) and ts[k] <= hi else None

    for i, spec in enumerate(specs_sorted):
        v0 = max(spec.valid_from, start, in_use) if in_use else max(spec.valid_from, start)
        v1 = min(specs_sorted[i + 1].valid_from, end) if i + 1 < len(specs_sorted) else end
        if until is not None:
            v1 = min(v1, until)
        for rt in spec.tests:
            if rt.frequency in PERIODIC:
                s = slot_start(v0, rt.frequency, tz)
                if s < v0:
                    s = next_slot(s, rt.frequency)  # a slot belongs to the spec at its start
                while s < v1:
                    nxt = next_slot(s, rt.frequency)
                    if rt.weekdays is None or s.weekday() in rt.weekdays:
                        deadline = nxt + rt.window()
                        out.append(Occurrence(rt.test, "slot", rt.frequency, s, deadline,
                                              spec.label, done(rt.test, s, deadline)))
                    s = nxt
            elif rt.frequency == "after_service":
                for e in evs:
                    if e.kind in SERVICE_KINDS and v0 <= e.time < v1:
                        deadline = e.time + rt.window()
                        out.append(Occurrence(rt.test, "after_service", rt.frequency, e.time,
                                              deadline, spec.label,
                                              done(rt.test, e.time, deadline), e.id))
        # a failed result of a required test makes its re-test due at once
        required = {rt.test for rt in spec.tests}
        for j, r in enumerate(recs):
            if r.passed is False and r.test in required and \
                    max(spec.valid_from, start) <= r.time < v1:
                deadline = r.time + dt.timedelta(days=spec.retest_days)
                nxt_rec = next((x.time for x in recs[j + 1:] if x.test == r.test
                                and x.time <= deadline), None)
                out.append(Occurrence(r.test, "retest", "retest", r.time, deadline,
                                      spec.label, nxt_rec, r.id or r.time.isoformat()))
    inst = next((e for e in evs if e.kind == "installation"), None)
    if inst is not None and start <= inst.time < end:
        spec_at = _spec_at(specs_sorted, inst.time)
        for rt in spec_at.tests if spec_at else ():
            if rt.frequency == "acceptance":
                deadline = inst.time + rt.window()
                out.append(Occurrence(rt.test, "acceptance", rt.frequency, inst.time,
                                      deadline, spec_at.label if spec_at else "",
                                      done(rt.test, inst.time, deadline), inst.id))
    out.sort(key=lambda o: (o.start, o.test, o.kind))
    return out


def _spec_at(specs: Sequence[ScheduleSpec], t: dt.datetime) -> ScheduleSpec | None:
    return next((s for s in reversed(specs) if s.valid_from <= t), None)


def _in_use(evs: list[LifecycleEvent]) -> tuple[dt.datetime | None, dt.datetime | None]:
    acc = next((e.time for e in evs if e.kind == "acceptance"), None)
    inst = next((e.time for e in evs if e.kind == "installation"), None)
    dec = next((e.time for e in evs if e.kind == "decommissioning"), None)
    return acc or inst, dec


def _check(device: str, specs: Sequence[ScheduleSpec], start: dt.datetime,
           end: dt.datetime) -> list[ScheduleSpec]:
    if end <= start:
        raise InputError(f"the period ends ({end.isoformat()}) before it starts "
                         f"({start.isoformat()})", where=device)
    out = sorted(specs, key=lambda s: s.valid_from)
    for a, b in pairwise(out):
        if a.valid_from == b.valid_from:
            raise InputError(f"specs {a.label} and {b.label} both start at "
                             f"{a.valid_from.isoformat()}", where=device)
    return out


def _check_records(device: str, recs: list[TestRecord], evs: list[LifecycleEvent],
                   ref: dt.datetime) -> None:
    aware = ref.tzinfo is not None
    for r in recs:
        if (r.time.tzinfo is not None) != aware:
            raise InputError(f"result {r.id or r.test} at {r.time.isoformat()}: "
                             "timezone-aware and naive times are mixed", where=device)
    for e in evs:
        if (e.time.tzinfo is not None) != aware:
            raise InputError(f"{e.describe()}: timezone-aware and naive times are mixed",
                             where=device)


# --- due list ---------------------------------------------------------------------------

def due_list(device: str, specs: Sequence[ScheduleSpec], records: Iterable[TestRecord],
             events: Iterable[LifecycleEvent], at: dt.datetime, tz: str | None = None
             ) -> DueList:
    """What is due for ``device`` at ``at``: one item per test of the spec in force then
    (and one per open re-test after a failure), each done, due or overdue since when."""
    evs = [e for e in events if e.device == device]
    all_recs = list(records)
    _check_records(device, all_recs, evs, at)
    recs = sorted((r for r in all_recs if r.time <= at), key=lambda r: r.time)
    specs_sorted = sorted(specs, key=lambda s: s.valid_from)
    spec = _spec_at(specs_sorted, at)
    if spec is None:
        return DueList(device, at, None, (), ("no evaluation specification is assigned to "
                                              "this device at this date: nothing is due",))
    first = specs_sorted[0].valid_from
    occ = occurrences(device, specs_sorted, recs, evs, first,
                      at + dt.timedelta(microseconds=1), tz)
    items: list[DueItem] = []
    for rt in spec.tests:
        mine = [o for o in occ if o.test == rt.test and o.frequency == rt.frequency
                and o.kind != "retest"]
        last = next((r for r in reversed(recs) if r.test == rt.test), None)
        items.append(_state(rt.test, rt.frequency, mine, last, at, spec.label))
    for test in dict.fromkeys(rt.test for rt in spec.tests):
        last = next((r for r in reversed(recs) if r.test == test), None)
        if last is not None and last.passed is False:
            deadline = last.time + dt.timedelta(days=spec.retest_days)
            overdue = at > deadline
            items.append(DueItem(test, "retest", "overdue" if overdue else "due", last.time,
                                 deadline, deadline if overdue else None, last.time, False,
                                 f"failed at {last.time.isoformat()}: re-test due at once",
                                 spec.label))
    return DueList(device, at, spec.label, tuple(items))


def _state(test: str, frequency: str, occ: list[Occurrence], last: TestRecord | None,
           at: dt.datetime, spec: str) -> DueItem:
    last_t = last.time if last else None
    last_p = last.passed if last else None
    if not occ:
        why = {"after_service": "no service event since the spec applies",
               "acceptance": "no installation in the device's log under this spec"}.get(
            frequency, "not required yet (the device is not in use, or the first slot "
                       "under this spec has not started)")
        return DueItem(test, frequency, "not_applicable", None, None, None, last_t, last_p,
                       why, spec)
    cur = occ[-1]
    # the trailing run of occurrences past their deadline, not done, and not caught up by
    # a later record of the test (a late test still counts as done from then on)
    missed: list[Occurrence] = []
    for o in reversed(occ[:-1] if at <= cur.deadline else occ):
        if o.done_at is not None or o.deadline >= at or (last_t is not None
                                                         and last_t >= o.start):
            break
        missed.append(o)
    if missed:
        since = missed[-1].deadline
        return DueItem(test, frequency, "overdue", missed[-1].start, since, since, last_t,
                       last_p, f"{len(missed)} required occurrence(s) missed since "
                               f"{since.isoformat()}", spec)
    if cur.done_at is not None:
        return DueItem(test, frequency, "done", cur.start, cur.deadline, None, last_t,
                       last_p, f"done on {cur.done_at.isoformat()}", spec)
    return DueItem(test, frequency, "due", cur.start, cur.deadline, None, last_t, last_p,
                   f"due by {cur.deadline.isoformat()}", spec)


# --- compliance ------------------------------------------------------------------------------

def compliance(device: str, specs: Sequence[ScheduleSpec], records: Iterable[TestRecord],
               events: Iterable[LifecycleEvent], start: dt.datetime, end: dt.datetime,
               as_of: dt.datetime | None = None, tz: str | None = None) -> Compliance:
    """Share of required QC done on time in [start, end) (see the module docstring), the
    occurrences behind it, and the follow-up of each failure episode."""
    as_of = as_of or end
    recs = sorted(records, key=lambda r: r.time)
    evs = sorted((e for e in events if e.device == device), key=lambda e: e.time)
    _check_records(device, recs, evs, start)
    notes: list[str] = []
    if not specs:
        _check(device, specs, start, end)
        notes.append("no evaluation specification is assigned to this device: compliance "
                     "is not defined")
        return Compliance(device, start, end, 0, 0, None, (), 0,
                          tuple(_follow_ups(recs, evs, start, end)), tuple(notes))
    occ = occurrences(device, specs, [r for r in recs if r.time <= as_of], evs, start, end, tz)
    judged = [o for o in occ if o.deadline <= as_of]
    pending = len(occ) - len(judged)
    on_time = sum(o.on_time for o in judged)
    pct = 100.0 * on_time / len(judged) if judged else None
    if not judged:
        notes.append("no required occurrence has reached its deadline in the period")
    return Compliance(device, start, end, len(judged), on_time, pct, tuple(judged), pending,
                      tuple(_follow_ups(recs, evs, start, end)), tuple(notes))


def _follow_ups(recs: list[TestRecord], evs: list[LifecycleEvent], start: dt.datetime,
                end: dt.datetime) -> list[FailureFollowUp]:
    out: list[FailureFollowUp] = []
    open_tests: set[str] = set()
    for j, r in enumerate(recs):
        if r.passed is True:
            open_tests.discard(r.test)
        if r.passed is not False or r.test in open_tests:
            continue
        open_tests.add(r.test)  # later failures before a pass are the same episode
        if not (start <= r.time < end):
            continue
        action = next((e for e in evs if e.kind in CORRECTIVE_KINDS and e.time >= r.time),
                      None)
        passed = next((x.time for x in recs[j + 1:] if x.test == r.test and x.passed is True),
                      None)
        out.append(FailureFollowUp(
            r.test, r.time, action.time if action else None, action.id if action else None,
            _hours(r.time, action.time) if action else None, passed,
            _hours(r.time, passed) if passed else None))
    return out


def _hours(a: dt.datetime, b: dt.datetime) -> float:
    if a.tzinfo is not None:
        a, b = a.astimezone(dt.UTC), b.astimezone(dt.UTC)
    return (b - a).total_seconds() / 3600.0


__all__ = ["FREQUENCIES", "PERIODIC", "Compliance", "DueItem", "DueList", "FailureFollowUp",
           "Occurrence", "RequiredTest", "ScheduleSpec", "TestRecord", "compliance",
           "due_list", "next_slot", "occurrences", "slot_start"]

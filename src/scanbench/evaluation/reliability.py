"""Reliability of devices from their lifecycle event log: uptime, unplanned downtime,
MTBF, MTTR and availability, per device and pooled per model.

Definitions (IEC 60050-192:2015, *International Electrotechnical Vocabulary — Part 192:
Dependability*, for the terms; the formulas are the usual reliability-engineering
estimates, not limits from an imaging standard)
----------------------------------------------------------------------------------------
* **In service**: from the acceptance event (else the installation, else the start of the
  period, with a note) to the decommissioning (else the end of the period), within the
  period asked for. Hours are calendar hours (3600 s) unless said to be staffed.
* **Downtime**: from a ``downtime_start`` to its ``downtime_end``. A downtime is
  *unplanned* (a failure: the device lost the ability to perform as required, the
  IEC 60050-192 term) unless its start is marked ``planned`` (maintenance). The clock
  starts when the fault is reported (the downtime start) and stops when the device is
  back in clinical use (the downtime end): it includes waiting for the engineer and
  parts, i.e. the "mean time to restoration" of IEC 60050-192, which the field
  calls MTTR.
* **Up time**: in-service hours minus all downtime hours (planned and unplanned).
* **Failures**: unplanned downtimes that start in the period. An ``unplanned_service``
  without a downtime (fixed while the device stayed in use) is counted, not a failure.
* **MTBF** = up time / failures (IEC 60050-192: mean operating time between failures);
  undefined (None, with a note) without a failure.
* **MTTR** = total duration of the *completed* unplanned downtimes that start in the
  period (whole, even where the repair ends after the period) / their number (an
  unplanned downtime still open at the end of the period counts as downtime and as a
  failure, not as a repair: its duration is not known).
* **Availability** A = MTBF / (MTBF + MTTR), in % (IEC 60050-192: steady-state availability).
* **Uptime %** = 100 × (staffed hours − unplanned downtime within staffed hours) /
  staffed hours, over the in-service part of the period: the usual service-contract
  uptime. Planned maintenance is excluded from the downtime, i.e. counted as available
  (its hours are reported separately). The default staffed hours are all hours.

Per model, sums are pooled before dividing (time-weighted): MTBF = Σ up time / Σ
failures, MTTR = Σ repair hours / Σ repairs, uptime % from Σ staffed and Σ unplanned
staffed downtime; not a mean of the devices' percentages.

Log rules: every downtime has one start and one end; a downtime that starts while
another of the same device is open (overlapping downtimes) is refused, as is an end with
no open downtime, an end before its start and an event before the installation or after
the decommissioning; each error names the event. A downtime still open at the end of
the log is counted as down until the end of the period (or the decommissioning), with
a note. Times are all timezone-aware or all naive (local time of the staffed hours).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo

from scanbench.errors import InputError

EventKind = Literal["installation", "acceptance", "commissioning", "planned_service",
                    "unplanned_service", "downtime_start", "downtime_end",
                    "part_replacement", "software_change", "relocation", "decommissioning"]
EVENT_KINDS: tuple[EventKind, ...] = (
    "installation", "acceptance", "commissioning", "planned_service", "unplanned_service",
    "downtime_start", "downtime_end", "part_replacement", "software_change", "relocation",
    "decommissioning")

_H = 3600.0


@dataclass(frozen=True)
class LifecycleEvent:
    """One event in a device's life. ``planned`` matters for ``downtime_start`` only
    (maintenance rather than a failure); ``ends`` optionally names the ``id`` of the
    downtime start a ``downtime_end`` closes (checked when given)."""

    id: str
    device: str
    time: dt.datetime
    kind: EventKind
    planned: bool = False
    ends: str | None = None
    note: str = ""

    def describe(self) -> str:
        return f"event {self.id} ({self.kind} of {self.device} at {self.time.isoformat()})"


@dataclass(frozen=True)
class StaffedHours:
    """The hours a device is meant to be in clinical use, as a weekly schedule of local
    time windows (weekday 0 = Monday; an end of 00:00 means midnight at the end of the
    day), in ``timezone`` (an IANA name) when event times are timezone-aware."""

    weekly: Mapping[int, Sequence[tuple[dt.time, dt.time]]]
    timezone: str | None = None

    @classmethod
    def around_the_clock(cls, timezone: str | None = None) -> StaffedHours:
        return cls({d: [(dt.time(0), dt.time(0))] for d in range(7)}, timezone)

    @classmethod
    def weekdays(cls, start: dt.time, end: dt.time, timezone: str | None = None
                 ) -> StaffedHours:
        """Monday to Friday, ``start`` to ``end`` local time."""
        return cls({d: [(start, end)] for d in range(5)}, timezone)

    def hours(self, start: dt.datetime, end: dt.datetime) -> float:
        """Staffed hours inside [start, end) (wall-clock windows, computed in UTC when the
        times are aware, so a daylight-saving day has its real length)."""
        if end <= start:
            return 0.0
        tz = ZoneInfo(self.timezone) if self.timezone and start.tzinfo else None
        local_start = start.astimezone(tz) if tz else start
        local_end = end.astimezone(tz) if tz else end
        total = 0.0
        day = local_start.date() - dt.timedelta(days=1)
        while day <= local_end.date():
            for a, b in self.weekly.get(day.weekday(), ()):
                w0 = dt.datetime.combine(day, a)
                w1 = dt.datetime.combine(day + dt.timedelta(days=1) if b <= a else day, b)
                if tz:
                    w0, w1 = w0.replace(tzinfo=tz), w1.replace(tzinfo=tz)
                elif start.tzinfo:  # aware times, no zone given: windows in the times' zone
                    w0, w1 = w0.replace(tzinfo=start.tzinfo), w1.replace(tzinfo=start.tzinfo)
                lo, hi = max(w0, start), min(w1, end)
                if hi > lo:
                    total += _span_h(lo, hi)
            day += dt.timedelta(days=1)
        return total


def _span_h(a: dt.datetime, b: dt.datetime) -> float:
    """b − a in hours; aware times through UTC (two times of one zone subtract as wall
    clock in Python, which would make a daylight-saving day 24 h)."""
    if a.tzinfo is not None:
        a, b = a.astimezone(dt.UTC), b.astimezone(dt.UTC)
    return (b - a).total_seconds() / _H


@dataclass(frozen=True)
class Downtime:
    """One downtime, clipped to the period; ``end_event`` None when still open."""

    start_event: str
    end_event: str | None
    start: dt.datetime
    end: dt.datetime
    planned: bool
    hours: float  # inside the period and in service
    staffed_hours: float  # of those, within staffed hours
    repair_h: float | None  # start to end, whole (None while open): what MTTR averages


@dataclass(frozen=True)
class ReliabilityReport:
    """Reliability of one device (``devices`` has one id) or one model (pooled) over a
    period. Hours are hours; None where a ratio has no denominator."""

    model: str
    devices: tuple[str, ...]
    period_start: dt.datetime
    period_end: dt.datetime
    in_service_h: float
    staffed_h: float
    up_h: float
    unplanned_downtime_h: float
    unplanned_downtime_staffed_h: float
    planned_downtime_h: float
    failures: int
    repairs: int
    repair_h: float
    uptime_pct: float | None
    mtbf_h: float | None
    mttr_h: float | None
    availability_pct: float | None
    unplanned_services: int = 0
    event_counts: Mapping[str, int] = field(default_factory=dict)
    downtimes: tuple[Downtime, ...] = ()
    notes: tuple[str, ...] = ()


def device_reliability(device: str, model: str, events: Iterable[LifecycleEvent],
                       period_start: dt.datetime, period_end: dt.datetime,
                       staffed: StaffedHours | None = None) -> ReliabilityReport:
    """Reliability of ``device`` over [period_start, period_end) from its events (events
    of other devices are ignored). Raises :class:`InputError` naming the event for a
    log that breaks the rules in the module docstring."""
    staffed = staffed or StaffedHours.around_the_clock()
    evs = [e for e in events if e.device == device]
    _check_times(evs, period_start, period_end)
    evs = [e for _, e in sorted(enumerate(evs), key=lambda ie: (ie[1].time, ie[0]))]
    notes: list[str] = []
    install = next((e for e in evs if e.kind == "installation"), None)
    accept = next((e for e in evs if e.kind == "acceptance"), None)
    decom = next((e for e in evs if e.kind == "decommissioning"), None)
    for e in evs:
        if install and e.time < install.time:
            raise InputError(f"{e.describe()} is before the installation ({install.id} at "
                             f"{install.time.isoformat()})", where=device)
        if decom and e.time > decom.time:
            raise InputError(f"{e.describe()} is after the decommissioning ({decom.id} at "
                             f"{decom.time.isoformat()})", where=device)
    begin = accept or install
    if begin is None:
        notes.append(f"no installation or acceptance event: in service from the start of "
                     f"the period ({period_start.isoformat()})")
    svc_start = max(period_start, begin.time) if begin else period_start
    svc_end = min(period_end, decom.time) if decom else period_end
    svc_end = max(svc_end, svc_start)
    downs: list[Downtime] = []
    failures: list[Downtime] = []
    for start, end_ev, planned in _downtimes(device, evs, notes):
        end = end_ev.time if end_ev else (decom.time if decom else period_end)
        lo, hi = max(start.time, svc_start), min(end, svc_end)
        starts_here = svc_start <= start.time < svc_end
        if hi <= lo and not starts_here:
            continue  # wholly outside the in-service part of the period
        hi = max(hi, lo)
        d = Downtime(start.id, end_ev.id if end_ev else None, lo, hi, planned,
                     _span_h(lo, hi), staffed.hours(lo, hi),
                     _span_h(start.time, end) if end_ev else None)
        downs.append(d)
        if starts_here and not planned:
            failures.append(d)
    in_service_h = _span_h(svc_start, svc_end)
    staffed_h = staffed.hours(svc_start, svc_end)
    unplanned = [d for d in downs if not d.planned]
    repairs = [d for d in failures if d.repair_h is not None]
    repair_h = sum(d.repair_h or 0.0 for d in repairs)
    counts: dict[str, int] = defaultdict(int)
    for e in evs:
        if period_start <= e.time < period_end:
            counts[e.kind] += 1
    unplanned_services = counts.get("unplanned_service", 0)
    return _report(model, (device,), period_start, period_end, in_service_h, staffed_h,
                   in_service_h - sum(d.hours for d in downs), sum(d.hours for d in unplanned),
                   sum(d.staffed_hours for d in unplanned),
                   sum(d.hours for d in downs if d.planned), len(failures), len(repairs),
                   repair_h, unplanned_services, dict(counts), tuple(downs), notes)


def model_reliability(reports: Sequence[ReliabilityReport]) -> list[ReliabilityReport]:
    """Pool device reports per model (sums first, then ratios), one report per model in
    the order models first appear. All reports must cover the same period."""
    by_model: dict[str, list[ReliabilityReport]] = {}
    for r in reports:
        by_model.setdefault(r.model, []).append(r)
    out = []
    for model, rs in by_model.items():
        periods = {(r.period_start, r.period_end) for r in rs}
        if len(periods) > 1:
            raise InputError(f"reports of model {model} cover different periods; pool "
                             "reports of one period")
        counts: dict[str, int] = defaultdict(int)
        for r in rs:
            for k, v in r.event_counts.items():
                counts[k] += v
        notes = [f"{d}: {n}" for r in rs for d in r.devices for n in r.notes]
        out.append(_report(
            model, tuple(d for r in rs for d in r.devices), rs[0].period_start,
            rs[0].period_end, sum(r.in_service_h for r in rs), sum(r.staffed_h for r in rs),
            sum(r.up_h for r in rs), sum(r.unplanned_downtime_h for r in rs),
            sum(r.unplanned_downtime_staffed_h for r in rs),
            sum(r.planned_downtime_h for r in rs), sum(r.failures for r in rs),
            sum(r.repairs for r in rs), sum(r.repair_h for r in rs),
            sum(r.unplanned_services for r in rs), dict(counts), (), notes))
    return out


def _report(model: str, devices: tuple[str, ...], p0: dt.datetime, p1: dt.datetime,
            in_service_h: float, staffed_h: float, up_h: float, unplanned_h: float,
            unplanned_staffed_h: float, planned_h: float, failures: int, repairs: int,
            repair_h: float, unplanned_services: int, counts: dict[str, int],
            downs: tuple[Downtime, ...], notes: list[str]) -> ReliabilityReport:
    uptime = 100.0 * (staffed_h - unplanned_staffed_h) / staffed_h if staffed_h > 0 else None
    mtbf = up_h / failures if failures else None
    mttr = repair_h / repairs if repairs else None
    avail = 100.0 * mtbf / (mtbf + mttr) if mtbf is not None and mttr is not None else None
    if not failures:
        notes = [*notes, f"no failure in {up_h:.1f} h up: MTBF not defined"]
    if failures > repairs:
        notes = [*notes, f"{failures - repairs} unplanned downtime(s) still open at the end "
                         "of the period: counted as down and as failures, not as repairs"]
    return ReliabilityReport(model, devices, p0, p1, in_service_h, staffed_h, up_h,
                             unplanned_h, unplanned_staffed_h, planned_h, failures, repairs,
                             repair_h, uptime, mtbf, mttr, avail, unplanned_services, counts,
                             downs, tuple(notes))


def _check_times(evs: list[LifecycleEvent], p0: dt.datetime, p1: dt.datetime) -> None:
    aware = p0.tzinfo is not None
    if (p1.tzinfo is not None) != aware:
        raise InputError("the period mixes timezone-aware and naive times")
    if p1 <= p0:
        raise InputError(f"the period ends ({p1.isoformat()}) before it starts "
                         f"({p0.isoformat()})")
    for e in evs:
        if (e.time.tzinfo is not None) != aware:
            raise InputError(f"{e.describe()}: timezone-aware and naive times are mixed",
                             where=e.device)
        if e.kind not in EVENT_KINDS:
            raise InputError(f"{e.describe()}: unknown event kind; known: "
                             f"{', '.join(EVENT_KINDS)}", where=e.device)


def _downtimes(device: str, evs: list[LifecycleEvent], notes: list[str]
               ) -> list[tuple[LifecycleEvent, LifecycleEvent | None, bool]]:
    by_id = {e.id: e for e in evs}
    for e in evs:
        if e.kind == "downtime_end" and e.ends is not None:
            s = by_id.get(e.ends)
            if s is None or s.kind != "downtime_start":
                raise InputError(f"{e.describe()} closes {e.ends}, which is not a downtime "
                                 "start of this device", where=device)
            if e.time < s.time:
                raise InputError(f"{e.describe()} ends before its start {s.describe()}",
                                 where=device)
    out: list[tuple[LifecycleEvent, LifecycleEvent | None, bool]] = []
    open_: LifecycleEvent | None = None
    for e in evs:
        if e.kind == "downtime_start":
            if open_ is not None:
                raise InputError(f"{e.describe()} starts while the downtime "
                                 f"{open_.describe()} is still open: overlapping downtimes "
                                 "are refused (end the first, or record one downtime)",
                                 where=device)
            open_ = e
        elif e.kind == "downtime_end":
            if open_ is None:
                raise InputError(f"{e.describe()} closes no open downtime (its start is "
                                 "missing or later)", where=device)
            if e.ends is not None and e.ends != open_.id:
                raise InputError(f"{e.describe()} closes {e.ends}, but the open downtime "
                                 f"is {open_.describe()}", where=device)
            out.append((open_, e, open_.planned))
            open_ = None
    if open_ is not None:
        notes.append(f"downtime {open_.id} from {open_.time.isoformat()} has no end: counted "
                     "as down until the end of the period (or the decommissioning)")
        out.append((open_, None, open_.planned))
    return out


__all__ = ["EVENT_KINDS", "Downtime", "LifecycleEvent", "ReliabilityReport", "StaffedHours",
           "device_reliability", "model_reliability"]

"""A device's life in the store: lifecycle events, staffed hours, magnet telemetry and
costs, entered by a person, a program or a CSV file, and what scanbench computes from
them: reliability (:mod:`~scanbench.evaluation.reliability`), helium boil-off
(:mod:`~scanbench.evaluation.telemetry`) and cost per exam
(:mod:`~scanbench.evaluation.economics`), per device and per model (issue 13 §4, §5).

This module is the one service layer the command line (``records_cli``) and the web
API (``web/api/life_routes``) call: every change it makes writes its audit entry
(:func:`scanbench.web.audit.record`, with the values before and after and who made it)
in the caller's transaction; the caller commits (``commit_with_retry``).

Times
-----
Lifecycle events and telemetry are stored as the device's local clock time, naive, like
the times read from DICOM headers (``store/models.py``). A time given with a UTC offset
is converted to the time zone of the device's site when the site has one, else its
wall-clock time is kept. "In the future" means later than now on the site's clock (a
site without a time zone: later than now in the easternmost zone, UTC+14, so that no
clock on earth is refused).

Devices named in files
----------------------
A CSV row names its device by scanbench's device id, its serial number or its display
name (case-insensitive); a name that matches no device, or more than one, is refused
with the file's line. Only the devices the caller may change are candidates (on the web:
those of the sites where the caller is technologist or more).
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
import zoneinfo
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast, get_args

from sqlalchemy import Select, func, insert, select
from sqlalchemy.orm import Session

from scanbench.errors import InputError
from scanbench.evaluation import economics, reliability, telemetry
from scanbench.evaluation.lifecycle import read_lifecycle_csv
from scanbench.store import models as m
from scanbench.web.audit import Actor, record

#: Kinds after which a user may mark a new baseline for trend alerts (a service, a
#: repair, a part, an upgrade, a move or the end of a downtime can shift a device's
#: measurements; an installation has no baseline before it).
BASELINE_KINDS = ("acceptance", "commissioning", "planned_service", "unplanned_service",
                  "part_replacement", "software_change", "relocation", "downtime_end")
#: The role on the device's site that marking a new baseline needs (it changes how every
#: later result is judged by the trend rules); every entry point (API, pages) checks it.
BASELINE_ROLE = "physicist"
COST_KINDS: tuple[str, ...] = get_args(economics.CostKind)
_CURRENCY = re.compile(r"[A-Z]{3}")
_EASTERNMOST = dt.timedelta(hours=14)  # UTC+14 (Line Islands): the latest clock on earth
# Periods of a device's life: staffed hours are counted day by day, so a period of
# thousands of years is refused rather than computed.
_EARLIEST, _LATEST = dt.datetime(1950, 1, 1), dt.datetime(2200, 1, 1)
_LONGEST = dt.timedelta(days=100 * 365)

DEFINITIONS = {
    "standard": "IEC 60050-192:2015 International Electrotechnical Vocabulary - Part 192: "
                "Dependability (terms); the formulas are the usual reliability-engineering "
                "estimates, not limits of an imaging standard",
    "in_service": "from the acceptance (else the installation, else the start of the "
                  "period) to the decommissioning (else the end of the period)",
    "downtime": "from a downtime_start to its downtime_end; unplanned (a failure) unless "
                "its start is marked planned (maintenance)",
    "uptime_pct": "100 x (staffed hours - unplanned downtime within staffed hours) / "
                  "staffed hours, over the in-service part of the period; planned "
                  "maintenance counts as available",
    "failures": "unplanned downtimes that start in the period",
    "mtbf_h": "mean operating time between failures: up time / failures (IEC 60050-192)",
    "mttr_h": "mean time to restoration: mean duration of the completed unplanned "
              "downtimes starting in the period, from the fault report to the return to "
              "clinical use (IEC 60050-192)",
    "availability_pct": "steady-state availability: 100 x MTBF / (MTBF + MTTR) "
                        "(IEC 60050-192)",
    "per_model": "sums over the model's devices first, then the ratios (time-weighted)",
}


# --------------------------------------------------------------------------- helpers

def _site_tz(session: Session, device: m.Device) -> str | None:
    if device.site_id is None:
        return None
    site = session.get(m.Site, device.site_id)
    return site.timezone if site is not None else None


def local_time(t: dt.datetime, timezone: str | None) -> dt.datetime:
    """``t`` as a naive local clock time (see the module doc)."""
    if t.tzinfo is None:
        return t
    if timezone:
        return t.astimezone(zoneinfo.ZoneInfo(timezone)).replace(tzinfo=None)
    return t.replace(tzinfo=None)


def _now_local(timezone: str | None, now: dt.datetime | None) -> dt.datetime:
    now = now or dt.datetime.now(dt.UTC)
    if timezone:
        return now.astimezone(zoneinfo.ZoneInfo(timezone)).replace(tzinfo=None)
    return (now.astimezone(dt.UTC) + _EASTERNMOST).replace(tzinfo=None)


def device_label(d: m.Device) -> str:
    """How a device is named in output: its display name, else make, model and serial."""
    if d.display_name:
        return d.display_name
    return " ".join(x for x in (d.manufacturer, d.model, d.serial) if x) or f"device {d.id}"


def model_label(d: m.Device) -> str:
    """The model a device is pooled under (manufacturer and model)."""
    return " ".join(x for x in (d.manufacturer, d.model) if x) or "unknown model"


def _get_device(session: Session, device_id: int,
                allowed: Collection[int] | None = None) -> m.Device:
    d = session.get(m.Device, device_id)
    if d is None or (allowed is not None and d.id not in allowed):
        raise InputError(f"no device with id {device_id}")
    return d


#: The largest amount accepted (a typo of many zeros would otherwise swamp every sum).
MAX_AMOUNT = 1e12


def _check_amount(value: float, what: str) -> float:
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise InputError(f"{what}: {value!r} is not an amount ≥ 0")
    if value > MAX_AMOUNT:
        raise InputError(f"{what}: {value:g} is more than {MAX_AMOUNT:g}; check the zeros")
    return float(value)


def _check_currency(currency: str | None, what: str) -> str:
    if currency is None or not _CURRENCY.fullmatch(currency):
        raise InputError(f"{what}: currency {currency!r} is not an ISO 4217 code (three "
                         "capital letters, e.g. EUR)")
    return currency


class DeviceResolver:
    """Finds the device a file names (id, serial or display name, case-insensitive)
    among ``allowed`` devices (None: every device)."""

    def __init__(self, session: Session, allowed: Collection[int] | None = None) -> None:
        q: Select[Any] = select(m.Device)
        if allowed is not None:
            q = q.where(m.Device.id.in_(list(allowed)))
        self.devices: list[m.Device] = list(session.scalars(q))
        self._cache: dict[str, m.Device | str] = {}

    def find(self, ref: str) -> m.Device:
        """The one device ``ref`` names; ValueError with the reason otherwise."""
        hit = self._cache.get(ref)
        if hit is None:
            hit = self._find(ref)
            self._cache[ref] = hit
        if isinstance(hit, str):
            raise ValueError(hit)
        return hit

    def _find(self, ref: str) -> m.Device | str:
        key = ref.strip().casefold()
        if key.isdigit():
            by_id = [d for d in self.devices if d.id == int(key)]
            if by_id:
                return by_id[0]
        for attr in ("serial", "display_name"):
            found = [d for d in self.devices if (getattr(d, attr) or "").casefold() == key]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                return (f"device {ref!r} is ambiguous: {len(found)} devices have that "
                        f"{attr.replace('_', ' ')} (ids "
                        f"{', '.join(str(d.id) for d in found)}); name it by id")
        return (f"no device {ref!r} (a device id, serial number or display name of a device "
                "you may change)")


def _lines_with(path: Path, column: str, value: str) -> list[int]:
    """The lines of a CSV file whose ``column`` holds ``value`` (to name rows in errors)."""
    try:
        reader = csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines(True))
    except (OSError, UnicodeDecodeError):
        return []
    reader.fieldnames = [h.strip().lower() for h in (reader.fieldnames or [])]
    return [reader.line_num for row in reader if (row.get(column) or "").strip() == value]


# --------------------------------------------------------------------------- lifecycle

def event_view(ev: m.LifecycleEvent) -> dict[str, Any]:
    """A lifecycle event as plain values (audit before/after, JSON output)."""
    return {"id": ev.id, "device_id": ev.device_id, "kind": ev.kind,
            "occurred_at": ev.occurred_at.isoformat() if ev.occurred_at else None,
            "summary": ev.summary, "planned": ev.planned, "new_baseline": ev.new_baseline,
            "cost": ev.cost, "currency": ev.currency, "source": ev.source,
            "external_id": ev.external_id, "details": dict(ev.details or {})}


def device_events(session: Session, device_id: int) -> list[m.LifecycleEvent]:
    """The device's lifecycle events in time order (events without a time last)."""
    return list(session.scalars(
        select(m.LifecycleEvent).where(m.LifecycleEvent.device_id == device_id)
        .order_by(m.LifecycleEvent.occurred_at.is_(None), m.LifecycleEvent.occurred_at,
                  m.LifecycleEvent.id)))


def reliability_events(rows: Iterable[m.LifecycleEvent], *, named: bool = False
                       ) -> list[reliability.LifecycleEvent]:
    """Stored events as reliability.py's log (events without a time are left out); ids
    are the row ids, or with ``named`` the ids people know (the file's id, else #row)."""
    rows = list(rows)
    label = {r.id: (r.external_id or f"#{r.id}") if named else str(r.id) for r in rows}
    out = []
    for r in rows:
        if r.occurred_at is None or r.kind not in reliability.EVENT_KINDS:
            continue
        ends = (r.details or {}).get("ends")
        out.append(reliability.LifecycleEvent(
            label[r.id], str(r.device_id), r.occurred_at,
            cast(reliability.EventKind, r.kind), planned=r.planned,
            ends=None if ends is None else label.get(int(ends), str(ends)),
            note=r.summary or ""))
    return out


def check_log(session: Session, device: m.Device) -> None:
    """Refuse a device log that breaks reliability.py's rules (overlapping downtimes, an
    end with no open downtime, an event before the installation or after the
    decommissioning), naming the event."""
    events = reliability_events(device_events(session, device.id), named=True)
    if not events:
        return
    times = [e.time for e in events]
    lo, hi = min(times), max(times) + dt.timedelta(seconds=1)
    try:
        reliability.device_reliability(str(device.id), model_label(device), events, lo, hi)
    except InputError as exc:
        raise InputError(f"device {device.id} ({device_label(device)}): {exc.message}"
                         ) from None


def add_event(session: Session, actor: Actor, device_id: int, kind: str,
              occurred_at: dt.datetime, *, end_at: dt.datetime | None = None,
              planned: bool = False, new_baseline: bool = False, summary: str = "",
              cost: float | None = None, currency: str | None = None,
              source: str = "user", external_id: str | None = None,
              details: Mapping[str, Any] | None = None,
              allowed: Collection[int] | None = None,
              now: dt.datetime | None = None, check: bool = True) -> list[m.LifecycleEvent]:
    """Add one lifecycle event (a ``downtime_start`` with ``end_at``: the start and end
    pair) to a device, audited; returns the rows added.

    Refused with a message: an unknown kind; an end for a kind that has none; an end
    before the start; a ``downtime_end`` with no open downtime (an end without a
    start); a time in the future; ``planned`` on anything but a downtime;
    ``new_baseline`` on a kind in no :data:`BASELINE_KINDS`; a cost without a valid
    currency; and any log that reliability.py refuses (see :func:`check_log`; with
    ``check`` false the caller checks the log once after adding several events)."""
    device = _get_device(session, device_id, allowed)
    if kind == "downtime":
        kind = "downtime_start"
    if kind not in m.LIFECYCLE_KINDS:
        raise InputError(f"kind: unknown lifecycle event kind {kind!r}; one of "
                         f"{', '.join(m.LIFECYCLE_KINDS)} (or downtime)")
    tz = _site_tz(session, device)
    start = local_time(occurred_at, tz)
    end = local_time(end_at, tz) if end_at is not None else None
    latest = _now_local(tz, now)
    if start > latest:
        raise InputError(f"occurred_at: {start.isoformat()} is in the future (now "
                         f"{latest.replace(microsecond=0).isoformat()} on the site's clock)")
    if end is not None:
        if kind != "downtime_start":
            raise InputError(f"end: only a downtime has an end (kind {kind}); record the "
                             "downtime as a downtime_start with an end")
        if end <= start:
            raise InputError(f"end: {end.isoformat()} is not after the start "
                             f"{start.isoformat()}")
        if end > latest:
            raise InputError(f"end: {end.isoformat()} is in the future; leave the end out "
                             "while the device is still down and add the downtime_end later")
    if planned and kind != "downtime_start":
        raise InputError(f"planned: only a downtime can be planned (maintenance), not a "
                         f"{kind}; a planned service is the kind planned_service")
    if new_baseline and kind not in BASELINE_KINDS and not (
            kind == "downtime_start" and end is not None):
        raise InputError(f"new_baseline: a {kind} cannot start a new baseline; only "
                         f"{', '.join(BASELINE_KINDS)}")
    if cost is not None:
        _check_amount(cost, "cost")
        _check_currency(currency, "cost")
    elif currency is not None:
        raise InputError("currency: given without a cost")
    if len(summary) > 2000:
        raise InputError("summary: at most 2000 characters")
    if kind == "downtime_end":
        open_start = _open_downtime(session, device.id, start)
        if open_start is None:
            raise InputError(f"kind: downtime_end at {start.isoformat()} closes no open "
                             "downtime of this device (an end without a start)")
        details = {**(details or {}), "ends": open_start.id}
    rows = [m.LifecycleEvent(
        device_id=device.id, kind=kind, occurred_at=start, summary=summary,
        details=dict(details or {}), source=source, user_id=actor.user_id,
        planned=planned, new_baseline=new_baseline and end is None, cost=cost,
        currency=currency, external_id=external_id)]
    session.add(rows[0])
    session.flush()
    if end is not None:
        rows.append(m.LifecycleEvent(
            device_id=device.id, kind="downtime_end", occurred_at=end, summary=summary,
            details={"ends": rows[0].id}, source=source, user_id=actor.user_id,
            new_baseline=new_baseline,
            external_id=f"{external_id}/end" if external_id else None))
        session.add(rows[1])
        session.flush()
    if check:
        check_log(session, device)
    for row in rows:
        record(session, actor, f"lifecycle.{'import' if source == 'csv' else 'add'}",
               "lifecycle_event", row.id, site_id=device.site_id, after=event_view(row))
    return rows


def _open_downtime(session: Session, device_id: int, at: dt.datetime
                   ) -> m.LifecycleEvent | None:
    """The downtime of the device still open at ``at`` (its start at or before)."""
    open_: m.LifecycleEvent | None = None
    for ev in device_events(session, device_id):
        if ev.occurred_at is None or ev.occurred_at > at:
            break
        if ev.kind == "downtime_start":
            open_ = ev
        elif ev.kind == "downtime_end":
            open_ = None
    return open_


def delete_event(session: Session, actor: Actor, event_id: int,
                 allowed: Collection[int] | None = None) -> None:
    """Remove an entered event (a mistake), audited with its values; events seen in DICOM
    headers are the headers' and cannot be removed. A downtime start takes its end
    with it."""
    ev = session.get(m.LifecycleEvent, event_id)
    if ev is None or (allowed is not None and ev.device_id not in allowed):
        raise InputError(f"no lifecycle event with id {event_id}")
    if ev.source == "headers":
        raise InputError(f"lifecycle event {event_id} was read from DICOM headers "
                         "(Software Versions (0018,1020)); it cannot be removed")
    device = session.get_one(m.Device, ev.device_id)
    gone = [ev]
    if ev.kind == "downtime_start":
        gone += [e for e in device_events(session, ev.device_id)
                 if e.kind == "downtime_end" and (e.details or {}).get("ends") == ev.id]
    for row in gone:
        record(session, actor, "lifecycle.delete", "lifecycle_event", row.id,
               site_id=device.site_id, before=event_view(row))
        session.delete(row)
    session.flush()
    check_log(session, device)


@dataclass(frozen=True)
class ImportSummary:
    """What an import did: rows added, rows already stored (skipped), and the notes."""

    added: int
    skipped: int
    devices: tuple[int, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)


def import_lifecycle_csv(session: Session, actor: Actor, path: str | Path, *,
                         allowed: Collection[int] | None = None,
                         now: dt.datetime | None = None) -> ImportSummary:
    """Import a lifecycle CSV (format: :mod:`scanbench.evaluation.lifecycle`).

    Idempotent: each event is keyed by its ``id`` column (default ``<file name>:<line>``)
    as ``external_id``, so importing the same file again adds nothing. Every problem is
    reported at once, each with the file's line; nothing is stored unless every row is
    good (the caller rolls back on the error)."""
    path = Path(path)
    parsed = read_lifecycle_csv(path)
    resolver = DeviceResolver(session, allowed)
    errors: list[str] = []
    devs: dict[str, m.Device] = {}
    for ref in dict.fromkeys(e.device for e in parsed.events):
        try:
            devs[ref] = resolver.find(ref)
        except ValueError as exc:
            lines = _lines_with(path, "device", ref)
            where = f"{path}:{','.join(map(str, lines))}" if lines else str(path)
            errors.append(f"{where}: field 'device': {exc}")
    if errors:
        raise InputError(f"{len(errors)} problem(s) in the lifecycle CSV:\n"
                         + "\n".join(errors))
    costs = {c.event_id: c for c in parsed.costs}
    ends = {e.ends: e for e in parsed.events if e.kind == "downtime_end" and e.ends}
    by_start: dict[str, reliability.LifecycleEvent] = {}
    added = skipped = 0
    touched: set[int] = set()
    for ev in parsed.events:
        if ev.kind == "downtime_end" and ev.ends is not None and ev.ends in by_start:
            continue  # stored with its start below
        device = devs[ev.device]
        ext = ev.id
        exists = session.scalar(select(m.LifecycleEvent.id).where(
            m.LifecycleEvent.device_id == device.id, m.LifecycleEvent.external_id == ext))
        end = ends.get(ev.id) if ev.kind == "downtime_start" else None
        if ev.kind == "downtime_start":
            by_start[ev.id] = ev
        if exists is not None:
            skipped += 1
            if end is not None and session.scalar(select(m.LifecycleEvent.id).where(
                    m.LifecycleEvent.device_id == device.id,
                    m.LifecycleEvent.external_id == f"{ext}/end")) is None:
                # the downtime was open at the last import and has ended since
                add_event(session, actor, device.id, "downtime_end", end.time,
                          summary=end.note, source="csv", external_id=f"{ext}/end",
                          details={"file": path.name}, now=now, check=False)
                added += 1
                touched.add(device.id)
            continue
        c = costs.get(ev.id)
        try:
            rows = add_event(session, actor, device.id, ev.kind, ev.time,
                             end_at=end.time if end else None, planned=ev.planned,
                             summary=ev.note, cost=c.amount if c else None,
                             currency=c.currency if c else None, source="csv",
                             external_id=ext, details={"file": path.name}, now=now,
                             check=False)
        except InputError as exc:
            lines = _lines_with(path, "id", ev.id) or (
                [int(ev.id.rsplit(":", 1)[1])] if ev.id.startswith(f"{path.name}:") else [])
            where = f"{path}:{lines[0]}" if lines else str(path)
            raise InputError(f"{where}: event {ev.id!r}: {exc.message}") from None
        added += len(rows)
        touched.add(device.id)
    for device_id in sorted(touched):
        try:
            check_log(session, session.get_one(m.Device, device_id))
        except InputError as exc:  # names the events by the file's ids (default file:line)
            raise InputError(exc.message, path) from None
    return ImportSummary(added, skipped, tuple(sorted(touched)))


# --------------------------------------------------------------------------- staffed hours

def _hhmm(value: Any, what: str) -> dt.time:
    try:
        return dt.time.fromisoformat(str(value))
    except ValueError:
        raise InputError(f"staffed hours: {what} {value!r} is not a time HH:MM") from None


def check_staffed_hours(value: Mapping[str, Any]) -> dict[str, Any]:
    """Validate staffed hours: ``{}`` (around the clock) or ``{"weekdays": [0..6]
    (0 = Monday), "start": "HH:MM", "end": "HH:MM"}`` (end 00:00 = midnight, an end
    before the start runs past midnight), optionally ``"timezone"`` (an IANA name)."""
    if not isinstance(value, Mapping):
        raise InputError("staffed hours must be a JSON object")
    if not value:
        return {}
    unknown = sorted(set(value) - {"weekdays", "start", "end", "timezone"})
    if unknown:
        raise InputError(f"staffed hours: unknown field(s) {', '.join(unknown)} (fields: "
                         "weekdays, start, end, timezone)")
    days = value.get("weekdays", list(range(7)))
    if (not isinstance(days, list) or not days
            or not all(isinstance(d, int) and 0 <= d <= 6 for d in days)):
        raise InputError("staffed hours: weekdays must be a list of day numbers 0 (Monday) "
                         "to 6 (Sunday)")
    for k in ("start", "end"):
        if k not in value:
            raise InputError(f"staffed hours: {k} missing (HH:MM)")
    start, end = _hhmm(value["start"], "start"), _hhmm(value["end"], "end")
    if start == end and end != dt.time(0):
        raise InputError("staffed hours: start and end are the same time")
    out: dict[str, Any] = {"weekdays": sorted(set(days)), "start": start.strftime("%H:%M"),
                           "end": end.strftime("%H:%M")}
    tz = value.get("timezone")
    if tz is not None:
        try:
            zoneinfo.ZoneInfo(str(tz))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise InputError(f"staffed hours: unknown time zone {tz!r}") from None
        out["timezone"] = str(tz)
    return out


def staffed_hours(device: m.Device) -> reliability.StaffedHours:
    """The device's staffed hours for reliability.py (around the clock when none)."""
    v = device.staffed_hours or {}
    if not v:
        return reliability.StaffedHours.around_the_clock()
    window = (dt.time.fromisoformat(v["start"]), dt.time.fromisoformat(v["end"]))
    return reliability.StaffedHours({int(d): [window] for d in v["weekdays"]},
                                    v.get("timezone"))


def set_staffed_hours(session: Session, actor: Actor, device_id: int,
                      value: Mapping[str, Any],
                      allowed: Collection[int] | None = None) -> m.Device:
    """Set a device's staffed hours (validated by :func:`check_staffed_hours`), audited."""
    device = _get_device(session, device_id, allowed)
    new = check_staffed_hours(value)
    before = {"staffed_hours": dict(device.staffed_hours or {})}
    device.staffed_hours = new
    session.flush()
    record(session, actor, "device.staffed_hours", "device", device.id,
           site_id=device.site_id, before=before, after={"staffed_hours": new})
    return device


# --------------------------------------------------------------------------- reliability

def _period(start: dt.datetime | dt.date, end: dt.datetime | dt.date
            ) -> tuple[dt.datetime, dt.datetime]:
    def as_dt(x: dt.datetime | dt.date) -> dt.datetime:
        if isinstance(x, dt.datetime):
            return x.replace(tzinfo=None) if x.tzinfo else x
        return dt.datetime.combine(x, dt.time())
    p0, p1 = as_dt(start), as_dt(end)
    if p1 <= p0:
        raise InputError(f"period: the end {p1.isoformat()} is not after the start "
                         f"{p0.isoformat()}")
    if p0 < _EARLIEST or p1 > _LATEST or (p1 - p0) > _LONGEST:
        raise InputError(f"period: {p0.date()} to {p1.date()} is not a period of a device's "
                         f"life (between {_EARLIEST.year} and {_LATEST.year}, at most "
                         f"{_LONGEST.days // 365} years)")
    return p0, p1


def device_reliability(session: Session, device_id: int, start: dt.datetime | dt.date,
                       end: dt.datetime | dt.date,
                       allowed: Collection[int] | None = None
                       ) -> reliability.ReliabilityReport:
    """Reliability of one device over [start, end) (local clock time) from its stored
    events and staffed hours (definitions: :data:`DEFINITIONS`)."""
    device = _get_device(session, device_id, allowed)
    p0, p1 = _period(start, end)
    events = reliability_events(device_events(session, device.id))
    try:
        return reliability.device_reliability(str(device.id), model_label(device), events,
                                              p0, p1, staffed_hours(device))
    except InputError as exc:
        raise InputError(f"device {device.id} ({device_label(device)}): {exc.message}"
                         ) from None


def model_reliability(session: Session, device_ids: Sequence[int],
                      start: dt.datetime | dt.date, end: dt.datetime | dt.date,
                      allowed: Collection[int] | None = None
                      ) -> list[reliability.ReliabilityReport]:
    """Reliability pooled per model (manufacturer + model) over the devices given."""
    reports = [device_reliability(session, d, start, end, allowed) for d in device_ids]
    return reliability.model_reliability(reports)


def reliability_view(r: reliability.ReliabilityReport,
                     names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A report as plain values with units in the names, and the definitions."""
    names = names or {}
    return {
        "model": r.model, "devices": [int(d) for d in r.devices],
        "device_names": [names.get(d, d) for d in r.devices],
        "period_start": r.period_start.isoformat(), "period_end": r.period_end.isoformat(),
        "in_service_h": r.in_service_h, "staffed_h": r.staffed_h, "up_h": r.up_h,
        "unplanned_downtime_h": r.unplanned_downtime_h,
        "unplanned_downtime_staffed_h": r.unplanned_downtime_staffed_h,
        "planned_downtime_h": r.planned_downtime_h, "failures": r.failures,
        "repairs": r.repairs, "repair_h": r.repair_h, "uptime_pct": r.uptime_pct,
        "mtbf_h": r.mtbf_h, "mttr_h": r.mttr_h, "availability_pct": r.availability_pct,
        "unplanned_services": r.unplanned_services, "event_counts": dict(r.event_counts),
        "notes": list(r.notes), "definitions": DEFINITIONS,
    }


# --------------------------------------------------------------------------- telemetry

@dataclass(frozen=True)
class Reading:
    """One telemetry reading to store: ``channel`` of telemetry.CHANNELS."""

    channel: str
    at: dt.datetime
    value: float


def add_readings(session: Session, actor: Actor, device_id: int,
                 readings: Sequence[Reading], *, source: str = "api",
                 allowed: Collection[int] | None = None) -> ImportSummary:
    """Store readings of one device (unit per channel: telemetry.UNITS). Idempotent on
    device + channel + time: a reading already stored with the same value is skipped;
    the same time with another value is refused (a reading is not rewritten). One audit
    entry per call (counts, channels, time range)."""
    device = _get_device(session, device_id, allowed)
    tz = _site_tz(session, device)
    errors: list[str] = []
    rows: dict[tuple[str, dt.datetime], float] = {}
    for i, r in enumerate(readings):
        if r.channel not in telemetry.CHANNELS:
            errors.append(f"reading {i}: channel: unknown {r.channel!r}; one of "
                          f"{', '.join(telemetry.CHANNELS)}")
            continue
        if not math.isfinite(r.value):
            errors.append(f"reading {i}: value: not a finite number")
            continue
        if r.channel == "helium_level_pct" and not 0.0 <= r.value <= 100.0:
            errors.append(f"reading {i}: value: {r.value} % helium is outside 0-100 %")
            continue
        key = (r.channel, local_time(r.at, tz))
        if key in rows and rows[key] != r.value:
            errors.append(f"reading {i}: {r.channel} at {key[1].isoformat()} given twice "
                          "with different values")
        rows[key] = float(r.value)
    if errors:
        raise InputError(f"{len(errors)} problem(s) in the telemetry:\n" + "\n".join(errors))
    if not rows:
        return ImportSummary(0, 0, (device.id,))
    times = [t for _, t in rows]
    stored = {(s.channel, s.at): s.value for s in session.scalars(
        select(m.TelemetrySample).where(m.TelemetrySample.device_id == device.id,
                                        m.TelemetrySample.at >= min(times),
                                        m.TelemetrySample.at <= max(times)))}
    skipped = 0
    conflicts = []
    new: list[dict[str, Any]] = []
    for (channel, at), value in rows.items():
        old = stored.get((channel, at))
        if old is not None:
            if old != value:
                conflicts.append(f"{channel} at {at.isoformat()}: stored {old} "
                                 f"{telemetry.UNITS[channel]}, given {value}")
            skipped += 1
            continue
        new.append({"device_id": device.id, "channel": channel, "at": at, "value": value,
                    "unit": telemetry.UNITS[channel], "source": source[:200]})
    if conflicts:
        raise InputError(f"device {device.id}: {len(conflicts)} reading(s) already stored "
                         "with another value (a reading is not rewritten):\n"
                         + "\n".join(conflicts[:20]))
    added = len(new)
    for i in range(0, added, 5000):  # one multi-row INSERT per chunk, not one per reading
        session.execute(insert(m.TelemetrySample), new[i:i + 5000])
    session.flush()
    if added:
        record(session, actor, "telemetry.add", "device", device.id, site_id=device.site_id,
               details={"added": added, "skipped": skipped, "source": source,
                        "channels": sorted({c for c, _ in rows}),
                        "from": min(times).isoformat(), "to": max(times).isoformat()})
    return ImportSummary(added, skipped, (device.id,))


def import_telemetry_csv(session: Session, actor: Actor, path: str | Path, *,
                         allowed: Collection[int] | None = None) -> ImportSummary:
    """Import a telemetry CSV (format: :mod:`scanbench.evaluation.telemetry`);
    importing the same file twice adds nothing."""
    path = Path(path)
    samples = telemetry.read_telemetry_csv(path)
    resolver = DeviceResolver(session, allowed)
    errors, devs = [], {}
    for ref in dict.fromkeys(s.device for s in samples):
        try:
            devs[ref] = resolver.find(ref)
        except ValueError as exc:
            lines = _lines_with(path, "device", ref)
            where = f"{path}:{','.join(map(str, lines[:10]))}" if lines else str(path)
            errors.append(f"{where}: field 'device': {exc}")
    if errors:
        raise InputError(f"{len(errors)} problem(s) in the telemetry CSV:\n"
                         + "\n".join(errors))
    added = skipped = 0
    for ref, device in devs.items():
        readings = [Reading(c, s.time, v) for s in samples if s.device == ref
                    for c in telemetry.CHANNELS if (v := getattr(s, c)) is not None]
        try:
            got = add_readings(session, actor, device.id, readings,
                               source=f"csv:{path.name}", allowed=allowed)
        except InputError as exc:
            raise InputError(exc.message, path) from None
        added, skipped = added + got.added, skipped + got.skipped
    return ImportSummary(added, skipped, tuple(sorted(d.id for d in devs.values())))


def channel_series(session: Session, device_id: int, channel: str,
                   since: dt.datetime | None = None, until: dt.datetime | None = None,
                   allowed: Collection[int] | None = None) -> telemetry.TelemetrySeries:
    """One channel of one device over [since, until), in time order, with its unit."""
    device = _get_device(session, device_id, allowed)
    if channel not in telemetry.CHANNELS:
        raise InputError(f"channel: unknown telemetry channel {channel!r}; one of "
                         f"{', '.join(telemetry.CHANNELS)}")
    q = select(m.TelemetrySample.at, m.TelemetrySample.value).where(
        m.TelemetrySample.device_id == device.id, m.TelemetrySample.channel == channel)
    if since is not None:
        q = q.where(m.TelemetrySample.at >= since)
    if until is not None:
        q = q.where(m.TelemetrySample.at < until)
    pts = session.execute(q.order_by(m.TelemetrySample.at)).all()
    return telemetry.TelemetrySeries(str(device.id), channel, telemetry.UNITS[channel],
                                     tuple(t for t, _ in pts), tuple(v for _, v in pts))


def device_boil_off(session: Session, device_id: int, *, dewar_l: float | None = None,
                    window_days: float = 30.0, until: dt.datetime | None = None,
                    allowed: Collection[int] | None = None) -> telemetry.BoilOff:
    """Helium boil-off of one magnet from its stored helium level (method:
    :func:`scanbench.evaluation.telemetry.boil_off`), from readings before ``until``."""
    s = channel_series(session, device_id, "helium_level_pct", until=until, allowed=allowed)
    samples = [telemetry.TelemetrySample(s.device, t, helium_level_pct=v)
               for t, v in zip(s.times, s.values, strict=True)]
    if dewar_l is not None and (not math.isfinite(dewar_l) or dewar_l <= 0):
        raise InputError(f"dewar_l: {dewar_l} is not a volume > 0 L")
    return telemetry.boil_off(samples, s.device, dewar_l=dewar_l, window_days=window_days)


def boil_off_view(b: telemetry.BoilOff, name: str = "") -> dict[str, Any]:
    """A boil-off as plain values (rates in %/day and L/day, 95 % intervals)."""
    return {
        "device_id": int(b.device), "device": name or b.device,
        "rate_pct_per_day": b.rate_pct_per_day,
        "ci95_pct_per_day": list(b.ci_pct_per_day) if b.ci_pct_per_day else None,
        "rate_l_per_day": b.rate_l_per_day,
        "ci95_l_per_day": list(b.ci_l_per_day) if b.ci_l_per_day else None,
        "dewar_l": b.dewar_l, "consistent_with_zero": b.consistent_with_zero,
        "points": b.points,
        "window_start": b.window_start.isoformat() if b.window_start else None,
        "window_end": b.window_end.isoformat() if b.window_end else None,
        "refills": [t.isoformat() for t in b.refills], "notes": list(b.notes),
        "method": "Theil-Sen slope of the helium level over the last window after the last "
                  "refill, 95 % interval of Sen 1968 (J Am Stat Assoc 63:1379); consistent "
                  "with zero boil-off when the interval contains 0",
    }


def compare_magnets(session: Session, device_a: int, device_b: int, *,
                    dewar_l: Mapping[int, float] | None = None, window_days: float = 30.0,
                    allowed: Collection[int] | None = None) -> dict[str, Any]:
    """Two magnets' boil-off side by side (e.g. helium-free and conventional): each rate
    with its 95 % interval, the difference, and whether the intervals are disjoint."""
    dewar_l = dewar_l or {}
    a = device_boil_off(session, device_a, dewar_l=dewar_l.get(device_a),
                        window_days=window_days, allowed=allowed)
    b = device_boil_off(session, device_b, dewar_l=dewar_l.get(device_b),
                        window_days=window_days, allowed=allowed)
    c = telemetry.compare_boil_off(a, b)
    name = {d: device_label(session.get_one(m.Device, d)) for d in (device_a, device_b)}
    return {"a": boil_off_view(a, name[device_a]), "b": boil_off_view(b, name[device_b]),
            "difference_pct_per_day": c.difference_pct_per_day,
            "different": c.different,
            "test": "the two 95 % intervals are disjoint (conservative: overlapping "
                    "intervals do not prove equal rates)"}


# --------------------------------------------------------------------------- costs

def cost_view(c: m.DeviceCost) -> dict[str, Any]:
    return {"id": c.id, "device_id": c.device_id, "kind": c.kind, "amount": c.amount,
            "currency": c.currency, "start_on": c.start_on.isoformat(),
            "end_on": c.end_on.isoformat() if c.end_on else None,
            "life_years": c.life_years, "residual": c.residual, "note": c.note,
            "lifecycle_event_id": c.lifecycle_event_id}


def _as_cost(c: m.DeviceCost) -> economics.Cost:
    return economics.Cost(str(c.device_id), cast(economics.CostKind, c.kind), c.amount,
                          c.currency, c.start_on, c.end_on, c.life_years, c.residual or 0.0,
                          c.note)


def add_cost(session: Session, actor: Actor, device_id: int, kind: str, amount: float,
             currency: str, start_on: dt.date, *, end_on: dt.date | None = None,
             life_years: float | None = None, residual: float = 0.0, note: str = "",
             lifecycle_event_id: int | None = None,
             allowed: Collection[int] | None = None) -> m.DeviceCost:
    """Enter a cost of a device (kinds and meaning: economics.Cost), audited."""
    device = _get_device(session, device_id, allowed)
    if kind not in COST_KINDS:
        raise InputError(f"kind: unknown cost kind {kind!r}; one of {', '.join(COST_KINDS)}")
    _check_amount(amount, "amount")
    _check_currency(currency, "currency")
    _check_amount(residual, "residual")
    if kind != "acquisition" and (life_years is not None or residual):
        raise InputError("life_years/residual: only an acquisition depreciates over a life")
    if kind != "service_contract" and end_on is not None:
        raise InputError("end_on: only a service contract runs to an end date")
    if lifecycle_event_id is not None:
        ev = session.get(m.LifecycleEvent, lifecycle_event_id)
        if ev is None or ev.device_id != device.id:
            raise InputError(f"lifecycle_event_id: no event {lifecycle_event_id} of this "
                             "device")
    row = m.DeviceCost(device_id=device.id, kind=kind, amount=float(amount),
                       currency=currency, start_on=start_on, end_on=end_on,
                       life_years=life_years, residual=float(residual), note=note,
                       lifecycle_event_id=lifecycle_event_id, user_id=actor.user_id)
    # The checks economics applies when it counts the cost (life > 0, residual ≤ price,
    # a contract's end after its start), made now so a bad cost is never stored.
    economics.cost_in_period(_as_cost(row), start_on, start_on + dt.timedelta(days=1))
    session.add(row)
    session.flush()
    record(session, actor, "cost.add", "device_cost", row.id, site_id=device.site_id,
           after=cost_view(row))
    return row


def delete_cost(session: Session, actor: Actor, cost_id: int,
                allowed: Collection[int] | None = None) -> None:
    """Remove an entered cost (a mistake), audited with its values."""
    row = session.get(m.DeviceCost, cost_id)
    if row is None or (allowed is not None and row.device_id not in allowed):
        raise InputError(f"no cost with id {cost_id}")
    device = session.get_one(m.Device, row.device_id)
    record(session, actor, "cost.delete", "device_cost", row.id, site_id=device.site_id,
           before=cost_view(row))
    session.delete(row)
    session.flush()


def device_costs(session: Session, device_id: int) -> list[m.DeviceCost]:
    return list(session.scalars(select(m.DeviceCost).where(
        m.DeviceCost.device_id == device_id).order_by(m.DeviceCost.start_on,
                                                      m.DeviceCost.id)))


def _event_costs(session: Session, device_id: int) -> list[economics.Cost]:
    """Costs entered with lifecycle events (a part, a service visit) as one-off costs,
    unless a DeviceCost already accounts for the event."""
    linked = select(m.DeviceCost.lifecycle_event_id).where(
        m.DeviceCost.lifecycle_event_id.is_not(None))
    rows = session.scalars(select(m.LifecycleEvent).where(
        m.LifecycleEvent.device_id == device_id, m.LifecycleEvent.cost.is_not(None),
        m.LifecycleEvent.occurred_at.is_not(None), m.LifecycleEvent.id.not_in(linked)))
    return [economics.Cost(str(device_id), "parts" if r.kind == "part_replacement" else "other",
                           float(r.cost or 0.0), r.currency or "", r.occurred_at.date(),
                           note=f"{r.kind} (lifecycle event {r.id})")
            for r in rows if r.occurred_at is not None]


def exams_by_day(session: Session, device_id: int, start: dt.date, end: dt.date
                 ) -> dict[dt.date, int]:
    """Exams of a device per day in [start, end): its stored workflow exams (one
    ExamTiming per exam; distinct studies), dated by the exam's start, else the
    study's date (local clock)."""
    when = func.coalesce(m.ExamTiming.started_at, m.Study.study_datetime)
    rows = session.execute(
        select(m.ExamTiming.study_id, when)
        .join(m.Study, m.Study.id == m.ExamTiming.study_id)
        .where(m.ExamTiming.device_id == device_id,
               when >= dt.datetime.combine(start, dt.time()),
               when < dt.datetime.combine(end, dt.time()))).all()
    seen: set[tuple[int, dt.date]] = set()
    out: dict[dt.date, int] = {}
    for study_id, t in rows:
        if t is None:
            continue
        day = t.date() if isinstance(t, dt.datetime) else dt.datetime.fromisoformat(
            str(t)).date()
        if (study_id, day) in seen:
            continue
        seen.add((study_id, day))
        out[day] = out.get(day, 0) + 1
    return out


def device_cost_per_exam(session: Session, device_id: int, start: dt.date, end: dt.date,
                         allowed: Collection[int] | None = None) -> economics.CostPerExam:
    """Cost per exam of one device over [start, end) (method: economics module doc):
    its entered costs, the costs of its lifecycle events, and its stored exams."""
    device = _get_device(session, device_id, allowed)
    _period(start, end)
    costs = [_as_cost(c) for c in device_costs(session, device.id)]
    costs += _event_costs(session, device.id)
    try:
        r = economics.cost_per_exam(str(device.id), costs,
                                    exams_by_day(session, device.id, start, end), start, end)
    except InputError as exc:  # economics names the device by its id: say which it is
        msg = exc.message.removeprefix(f"{device.id}: ")
        raise InputError(f"device {device.id} ({device_label(device)}): {msg}") from None
    return r


def model_cost_per_exam(session: Session, device_ids: Sequence[int], start: dt.date,
                        end: dt.date, allowed: Collection[int] | None = None
                        ) -> list[economics.CostPerExam]:
    """Cost per exam pooled per model (Σ cost / Σ exams) over the devices given."""
    groups: dict[str, list[economics.CostPerExam]] = {}
    for d in device_ids:
        device = _get_device(session, d, allowed)
        groups.setdefault(model_label(device), []).append(
            device_cost_per_exam(session, d, start, end, allowed))
    return [economics.model_cost_per_exam(name, rs) for name, rs in groups.items()]


def economics_view(r: economics.CostPerExam, names: Mapping[str, str] | None = None
                   ) -> dict[str, Any]:
    names = names or {}
    return {
        "name": names.get(r.name, r.name), "devices": [int(d) for d in r.devices],
        "period_start": r.period_start.isoformat(), "period_end": r.period_end.isoformat(),
        "currency": r.currency, "costs_by_kind": dict(r.costs_by_kind),
        "total_cost": r.total_cost, "exams": r.exams, "days": r.days,
        "working_days": r.working_days, "exams_per_day": r.exams_per_day,
        "exams_per_working_day": r.exams_per_working_day,
        "cost_per_exam": r.cost_per_exam, "notes": list(r.notes),
        "method": "straight-line depreciation of the acquisition over its stated life "
                  "(IAS 16 Property, Plant and Equipment, paragraph 62), service contracts "
                  "pro rata per day, one-off costs on their date; cost per exam = total "
                  "cost in the period / exams in the period; no currency conversion",
    }


def cryogen_estimate(session: Session, device_id: int, start: dt.date, end: dt.date, *,
                     dewar_l: float, price_per_l: float, currency: str,
                     allowed: Collection[int] | None = None) -> dict[str, Any]:
    """Helium cost of the period estimated from the magnet's measured boil-off (rate in
    L/day x price per litre x days); not added to the entered costs, to be compared
    with what was paid."""
    _check_amount(price_per_l, "price_per_l")
    _check_currency(currency, "currency")
    b = device_boil_off(session, device_id, dewar_l=dewar_l,
                        until=dt.datetime.combine(end, dt.time()), allowed=allowed)
    days = float((end - start).days)
    amount = (economics.cryogen_cost(b.rate_l_per_day, price_per_l, days)
              if b.rate_l_per_day is not None else None)
    return {"device_id": device_id, "rate_l_per_day": b.rate_l_per_day, "days": days,
            "price_per_l": price_per_l, "currency": currency, "estimated_cost": amount,
            "consistent_with_zero": b.consistent_with_zero, "notes": list(b.notes)}


__all__ = [
    "BASELINE_KINDS", "BASELINE_ROLE", "COST_KINDS", "DEFINITIONS", "DeviceResolver",
    "ImportSummary",
    "Reading", "add_cost", "add_event", "add_readings", "boil_off_view", "channel_series",
    "check_log", "check_staffed_hours", "compare_magnets", "cost_view", "cryogen_estimate",
    "delete_cost", "delete_event", "device_boil_off", "device_cost_per_exam",
    "device_costs", "device_events", "device_label", "device_reliability",
    "economics_view", "event_view", "exams_by_day", "import_lifecycle_csv",
    "import_telemetry_csv", "local_time", "model_cost_per_exam", "model_label",
    "model_reliability", "reliability_events", "reliability_view", "set_staffed_hours",
    "staffed_hours",
]

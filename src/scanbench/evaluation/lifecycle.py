"""Import a device's lifecycle events from CSV into reliability.py's event log.

CSV format (UTF-8, a header row, columns in any order; extra columns are refused so a
misspelt column is not silently ignored)
----------------------------------------------------------------------------------------
==========  ========  ==================================================================
column      required  meaning
==========  ========  ==================================================================
device      yes       the device's identifier (as in scanbench's device list)
kind        yes       one of the kinds below
start       yes       ISO 8601 date-time (``2026-03-02T08:00``, optionally with offset)
end         no        ISO 8601; only for ``downtime``/``maintenance``: the device is
                      back in clinical use (empty: still down)
note        no        free text
cost        no        amount (a decimal number ≥ 0) spent on this event
currency    with cost ISO 4217 code (``EUR``, ``CNY``, ...)
id          no        the event's identifier (default: ``<file name>:<line>``)
==========  ========  ==================================================================

Kinds (case-insensitive; ``-`` and spaces read as ``_``): every event kind of
:data:`scanbench.evaluation.reliability.EVENT_KINDS` as itself, and

* ``downtime`` (alias ``failure``, ``breakdown``): an *unplanned* downtime, giving a
  ``downtime_start`` at ``start`` and, when ``end`` is given, a ``downtime_end``;
* ``maintenance`` (alias ``planned_downtime``): the same but planned;
* ``install`` → ``installation``, ``service`` → ``planned_service``, ``repair`` →
  ``unplanned_service``, ``upgrade`` / ``software`` → ``software_change``,
  ``part`` → ``part_replacement``, ``move`` → ``relocation``, ``decommission`` →
  ``decommissioning``.

Every row is checked; all problems are reported together, each naming the file, the
line and the field (:class:`~scanbench.errors.InputError`). Times in one file are all
with an offset or all without (local time), as reliability.py requires.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from scanbench.errors import InputError
from scanbench.evaluation.reliability import EVENT_KINDS, EventKind, LifecycleEvent

COLUMNS = ("device", "kind", "start", "end", "note", "cost", "currency", "id")
REQUIRED = ("device", "kind", "start")

ALIASES: dict[str, EventKind] = {
    "install": "installation", "service": "planned_service", "repair": "unplanned_service",
    "upgrade": "software_change", "software": "software_change",
    "part": "part_replacement", "move": "relocation", "decommission": "decommissioning",
}
DOWNTIME_KINDS: dict[str, bool] = {  # kind -> planned
    "downtime": False, "failure": False, "breakdown": False,
    "maintenance": True, "planned_downtime": True,
}
_CURRENCY = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True)
class EventCost:
    """Money spent on one imported event (service visit, part, ...), as entered."""

    event_id: str
    device: str
    kind: str
    time: dt.datetime
    amount: float
    currency: str


@dataclass(frozen=True)
class LifecycleImport:
    """What a CSV file gave: the events (sorted by device and time) and their costs."""

    events: tuple[LifecycleEvent, ...]
    costs: tuple[EventCost, ...]


def _kind(raw: str) -> tuple[EventKind | None, bool | None]:
    """(event kind, None) for a single event, (None, planned) for a downtime row."""
    k = re.sub(r"[\s-]+", "_", raw.strip().lower())
    if k in DOWNTIME_KINDS:
        return None, DOWNTIME_KINDS[k]
    if k in EVENT_KINDS:
        return cast(EventKind, k), None
    if k in ALIASES:
        return ALIASES[k], None
    raise ValueError(f"unknown kind {raw!r}; expected one of "
                     f"{', '.join(sorted({*EVENT_KINDS, *ALIASES, *DOWNTIME_KINDS}))}")


def _time(raw: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        raise ValueError(f"{raw!r} is not an ISO 8601 date-time") from None


def read_lifecycle_csv(path: str | Path) -> LifecycleImport:
    """Read and validate a lifecycle CSV (format in the module doc)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the lifecycle CSV: {e}", path) from None
    reader = csv.DictReader(text.splitlines(keepends=True))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if not header:
        raise InputError("empty file: a header row is required "
                         f"({', '.join(COLUMNS)})", path)
    unknown = [h for h in header if h not in COLUMNS]
    missing = [c for c in REQUIRED if c not in header]
    if unknown or missing:
        raise InputError("line 1: header: "
                         + "; ".join([f"unknown column {u!r}" for u in unknown]
                                     + [f"missing column {m!r}" for m in missing])
                         + f" (columns: {', '.join(COLUMNS)})", path)
    reader.fieldnames = header
    errors: list[str] = []
    events: list[LifecycleEvent] = []
    costs: list[EventCost] = []
    aware: tuple[bool, int] | None = None
    for row in reader:
        line = reader.line_num
        vals = {k: (v or "").strip() for k, v in row.items() if k is not None}
        if row.get(None):  # csv puts the fields beyond the header under the key None
            errors.append(f"{path}:{line}: more fields than columns")
            continue
        if not any(vals.values()):
            continue

        def err(fieldname: str, msg: str, line: int = line) -> None:
            errors.append(f"{path}:{line}: field {fieldname!r}: {msg}")

        n_err = len(errors)
        for c in REQUIRED:
            if not vals.get(c):
                err(c, "empty")
        kind: EventKind | None = None
        planned: bool | None = None
        if vals.get("kind"):
            try:
                kind, planned = _kind(vals["kind"])
            except ValueError as e:
                err("kind", str(e))
        start = end = None
        for f in ("start", "end"):
            if vals.get(f):
                try:
                    t = _time(vals[f])
                except ValueError as e:
                    err(f, str(e))
                    continue
                if aware is None:
                    aware = (t.tzinfo is not None, line)
                elif (t.tzinfo is not None) != aware[0]:
                    err(f, f"{'has' if t.tzinfo else 'has no'} UTC offset, unlike line "
                        f"{aware[1]} (all times with an offset or all without)")
                    continue
                start, end = (t, end) if f == "start" else (start, t)
        if vals.get("end") and kind is not None:
            err("end", f"only a downtime or maintenance row has an end (kind {kind})")
        if start and end and end <= start:
            err("end", f"{end.isoformat()} is not after the start {start.isoformat()}")
        amount = None
        if vals.get("cost"):
            try:
                amount = float(vals["cost"])
                if not math.isfinite(amount) or amount < 0:
                    raise ValueError
            except ValueError:
                err("cost", f"{vals['cost']!r} is not an amount ≥ 0")
                amount = None
            cur = vals.get("currency", "")
            if not _CURRENCY.fullmatch(cur):
                err("currency", f"{cur!r} is not an ISO 4217 code (three capital letters)"
                    " and a cost needs one")
        elif vals.get("currency"):
            err("currency", "given without a cost")
        if len(errors) > n_err or start is None:
            continue
        eid = vals.get("id") or f"{path.name}:{line}"
        dev, note = vals["device"], vals.get("note", "")
        if kind is not None:
            events.append(LifecycleEvent(eid, dev, start, kind, note=note))
            cost_kind: str = kind
        else:
            events.append(LifecycleEvent(eid, dev, start, "downtime_start",
                                         planned=bool(planned), note=note))
            if end is not None:
                events.append(LifecycleEvent(f"{eid}/end", dev, end, "downtime_end",
                                             ends=eid, note=note))
            cost_kind = "planned_downtime" if planned else "unplanned_downtime"
        if amount is not None:
            costs.append(EventCost(eid, dev, cost_kind, start, amount, vals["currency"]))
    if errors:
        raise InputError(f"{len(errors)} problem(s) in the lifecycle CSV:\n"
                         + "\n".join(errors), path)
    events.sort(key=lambda e: (e.device, e.time))
    return LifecycleImport(tuple(events), tuple(costs))

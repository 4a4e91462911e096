"""Cost per exam of a device over a period, from entered costs and the exam counts of the
workflow data, and its comparison per model.

Method
------
All amounts are as entered, in one currency per calculation: scanbench converts no
currency (a mixed set is refused, naming the items), and applies no discounting or
inflation. Over a period [start, end) of D days (calendar days, 24 h):

* **Acquisition** (purchase price P, residual value R, stated useful life L years, in
  service from date s): straight-line depreciation, (P − R) / (L × 365.25 days) per day,
  counted for the days of the period inside [s, s + L) (IAS 16 *Property, Plant and
  Equipment* §62 names the straight-line method; the life is the user's, stated).
* **Service contract** (annual price A over [from, to)): A / 365.25 per day for the days
  of the period inside the contract.
* **Consumables, cryogens, parts and other one-off costs** (amount on a date): counted
  when the date falls in the period. The helium cost of a conventional magnet can be
  entered directly or computed from a boil-off rate (:func:`cryogen_cost`).
* **Exams**: the exams of the device in the period, from the workflow data's per-day
  counts (``clinical.workflow.DeviceDay.exams``); exams per day = exams / D (calendar
  days) and exams per working day = exams / days with at least one exam.
* **Cost per exam** = total cost in the period / exams (None without exams).

Per model, costs and exams of the model's devices are summed before dividing (an
exam-weighted cost per exam, not a mean of the devices' figures).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from scanbench.clinical.workflow import DeviceDay
from scanbench.errors import InputError
from scanbench.evaluation.lifecycle import EventCost

CostKind = Literal["acquisition", "service_contract", "consumable", "cryogen", "parts",
                   "other"]
_YEAR_DAYS = 365.25


@dataclass(frozen=True)
class Cost:
    """One entered cost. ``acquisition`` needs ``life_years`` (and optionally
    ``residual``), with ``date`` the start of service; ``service_contract`` needs
    ``until`` (``amount`` is per year from ``date``); other kinds are one-off on
    ``date``."""

    device: str
    kind: CostKind
    amount: float
    currency: str
    date: dt.date
    until: dt.date | None = None
    life_years: float | None = None
    residual: float = 0.0
    note: str = ""

    def describe(self) -> str:
        return f"{self.kind} of {self.device} on {self.date.isoformat()}"


@dataclass(frozen=True)
class CostPerExam:
    """A device's (or a model's pooled) costs and exams over a period."""

    name: str
    devices: tuple[str, ...]
    period_start: dt.date
    period_end: dt.date
    currency: str | None
    costs_by_kind: Mapping[str, float]
    total_cost: float
    exams: int
    days: float
    working_days: int
    exams_per_day: float
    exams_per_working_day: float | None
    cost_per_exam: float | None
    notes: tuple[str, ...] = field(default_factory=tuple)


def _overlap_days(a0: dt.date, a1: dt.date, b0: dt.date, b1: dt.date) -> int:
    return max(0, (min(a1, b1) - max(a0, b0)).days)


def cost_in_period(c: Cost, start: dt.date, end: dt.date) -> float:
    """The part of one cost that falls in [start, end) (method in the module doc)."""
    if c.kind == "acquisition":
        if c.life_years is None or c.life_years <= 0:
            raise InputError(f"{c.describe()}: an acquisition needs a useful life in years "
                             "> 0 for straight-line depreciation")
        if not 0 <= c.residual <= c.amount:
            raise InputError(f"{c.describe()}: residual value {c.residual} {c.currency} "
                             f"must be between 0 and the price {c.amount} {c.currency}")
        life_days = c.life_years * _YEAR_DAYS
        # in fractional days, so the whole life depreciates exactly price − residual
        d0 = float((c.date - start).days)
        lo, hi = max(0.0, d0), min(float((end - start).days), d0 + life_days)
        per_day = (c.amount - c.residual) / life_days
        return per_day * max(0.0, hi - lo)
    if c.kind == "service_contract":
        if c.until is None or c.until <= c.date:
            raise InputError(f"{c.describe()}: a service contract needs an end date after "
                             "its start")
        return c.amount / _YEAR_DAYS * _overlap_days(start, end, c.date, c.until)
    return c.amount if start <= c.date < end else 0.0


def exams_by_day(days: Iterable[DeviceDay], device: str,
                 key: Callable[[DeviceDay], str] | None = None) -> dict[dt.date, int]:
    """Exams per day of ``device`` from the workflow report's device-days; ``key`` names
    a device-day's device (default: its serial number, else its station name)."""
    name = key or (lambda d: d.device.serial or d.device.station or "")
    out: dict[dt.date, int] = {}
    for d in days:
        if name(d) == device:
            out[d.day] = out.get(d.day, 0) + d.exams
    return out


def costs_from_lifecycle(costs: Iterable[EventCost]) -> list[Cost]:
    """The costs entered with lifecycle events (lifecycle CSV ``cost`` column) as one-off
    costs: ``parts`` for a part replacement, ``other`` for any other event."""
    return [Cost(c.device, "parts" if c.kind == "part_replacement" else "other", c.amount,
                 c.currency, c.time.date(), note=f"{c.kind} {c.event_id}") for c in costs]


def cryogen_cost(litres_per_day: float, price_per_litre: float, days: float) -> float:
    """Helium cost of ``days`` at a boil-off of ``litres_per_day`` (e.g.
    :attr:`scanbench.evaluation.telemetry.BoilOff.rate_l_per_day`)."""
    return max(0.0, litres_per_day) * price_per_litre * days


def _currency(costs: Sequence[Cost], name: str) -> str | None:
    cur = {c.currency for c in costs}
    if len(cur) > 1:
        raise InputError(f"{name}: costs in several currencies ({', '.join(sorted(cur))}); "
                         "scanbench converts no currency, enter them in one: "
                         + "; ".join(f"{c.describe()} in {c.currency}" for c in costs))
    return next(iter(cur), None)


def cost_per_exam(device: str, costs: Iterable[Cost], exams_by_day: Mapping[dt.date, int],
                  start: dt.date, end: dt.date) -> CostPerExam:
    """Cost per exam of ``device`` over [start, end) (costs of other devices ignored;
    ``exams_by_day`` is this device's exam count per day)."""
    if end <= start:
        raise InputError(f"{device}: the period end {end} is not after its start {start}")
    mine = [c for c in costs if c.device == device]
    cur = _currency(mine, device)
    by_kind: dict[str, float] = {}
    for c in mine:
        v = cost_in_period(c, start, end)
        if v:
            by_kind[c.kind] = by_kind.get(c.kind, 0.0) + v
    exams = sum(n for d, n in exams_by_day.items() if start <= d < end)
    working = sum(1 for d, n in exams_by_day.items() if start <= d < end and n > 0)
    return _result(device, (device,), start, end, cur, by_kind, exams, working)


def _result(name: str, devices: tuple[str, ...], start: dt.date, end: dt.date,
            cur: str | None, by_kind: Mapping[str, float], exams: int, working: int
            ) -> CostPerExam:
    days = float((end - start).days)
    total = sum(by_kind.values())
    notes = [] if exams else ["no exams in the period: cost per exam undefined"]
    return CostPerExam(name, devices, start, end, cur, dict(by_kind), total, exams, days,
                       working, exams / days, exams / working if working else None,
                       total / exams if exams else None, tuple(notes))


def model_cost_per_exam(model: str, reports: Sequence[CostPerExam]) -> CostPerExam:
    """Pool devices of one model (same period and currency): Σ cost / Σ exams."""
    if not reports:
        raise InputError(f"{model}: no device to pool")
    periods = {(r.period_start, r.period_end) for r in reports}
    if len(periods) > 1:
        raise InputError(f"{model}: devices computed over different periods")
    curs = {r.currency for r in reports if r.currency is not None}
    if len(curs) > 1:
        raise InputError(f"{model}: devices' costs in several currencies "
                         f"({', '.join(sorted(curs))}); scanbench converts no currency")
    by_kind: dict[str, float] = {}
    for r in reports:
        for k, v in r.costs_by_kind.items():
            by_kind[k] = by_kind.get(k, 0.0) + v
    r0 = reports[0]
    days = (r0.period_end - r0.period_start).days
    res = _result(model, tuple(d for r in reports for d in r.devices), r0.period_start,
                  r0.period_end, next(iter(curs), None), by_kind,
                  sum(r.exams for r in reports), sum(r.working_days for r in reports))
    # per model, exams per day is per device-day (a fleet of n devices has n × D days)
    n = len(reports)
    return CostPerExam(res.name, res.devices, res.period_start, res.period_end,
                       res.currency, res.costs_by_kind, res.total_cost, res.exams,
                       float(days * n), res.working_days, res.exams / (days * n),
                       res.exams_per_working_day, res.cost_per_exam, res.notes)

"""``/api/v1`` endpoints of a device's life: lifecycle events, staffed hours, magnet
telemetry and boil-off, costs, and the reliability and cost per exam computed from them
(issue 12 "lifecycle events", issue 13 §4, §5). Reads go through the caller's
:class:`~scanbench.web.scope.Scope` (another site's device is a 404); changes go through
:mod:`scanbench.evaluation.records`, which writes the audit entry in the same
transaction.

Role rules (on the device's site):

* read lifecycle events, staffed hours, telemetry, boil-off, reliability: viewer;
* add lifecycle events, import a lifecycle or telemetry CSV, send telemetry readings
  (a program with a technologist token): technologist; marking an event as a **new
  baseline** for trend alerts, removing an event and changing staffed hours: physicist
  (they change how results are judged and what uptime means);
* costs and economics, read and write: physicist (admin includes physicist) — the
  budget is not for every viewer.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from scanbench.errors import InputError
from scanbench.evaluation import records
from scanbench.store import models as m
from scanbench.store import repo
from scanbench.web.api import schemas as w
from scanbench.web.api.app import PREFIX, Ctx, context, route
from scanbench.web.api.routes import (
    DEFAULT_LIMIT,
    DEFAULT_POINTS,
    MAX_POINTS,
    Limit,
    Offset,
    Since,
    Sort,
    Until,
    _dates,
    _page,
    _sorted,
    downsample,
)
from scanbench.web.audit import commit_with_retry
from scanbench.web.scope import Forbidden

router = APIRouter(prefix=PREFIX)
C = Annotated[Ctx, Depends(context)]
#: The largest CSV accepted in one request (a year of hourly readings of four channels
#: of ten magnets is about 4 MB).
MAX_CSV_BYTES = 8_000_000
MAX_READINGS = 10_000
FileName = Annotated[str, Query(max_length=100, pattern=r"^[A-Za-z0-9._-]+$",
                                description="the file's name, used in error messages "
                                "and as the default event id prefix")]
CsvBody = Annotated[str, Body(media_type="text/csv", description="the CSV file")]


# --------------------------------------------------------------------------- wire format

class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LifecycleIn(_In):
    kind: str = Field(max_length=32, description="a lifecycle kind, or 'downtime'")
    occurred_at: dt.datetime = Field(description="the site's local time, or with offset")
    end_at: dt.datetime | None = Field(None, description="a downtime's end")
    planned: bool = False
    new_baseline: bool = False
    summary: str = Field("", max_length=2000)
    cost: float | None = Field(None, ge=0)
    currency: str | None = Field(None, max_length=3)


class LifecycleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    device_id: int
    kind: str
    occurred_at: dt.datetime | None
    summary: str
    planned: bool
    new_baseline: bool
    cost: float | None
    currency: str | None
    source: str
    external_id: str | None
    details: dict[str, Any]
    created_at: dt.datetime


class ImportOut(BaseModel):
    added: int
    skipped: int
    devices: list[int]


class ReadingIn(_In):
    channel: str = Field(max_length=64)
    at: dt.datetime
    value: float


class ReadingsIn(_In):
    readings: list[ReadingIn] = Field(min_length=1, max_length=MAX_READINGS)


class CostIn(_In):
    kind: str = Field(max_length=32)
    amount: float = Field(ge=0)
    currency: str = Field(min_length=3, max_length=3)
    start_on: dt.date
    end_on: dt.date | None = None
    life_years: float | None = Field(None, gt=0, le=100)
    residual: float = Field(0.0, ge=0)
    note: str = Field("", max_length=2000)
    lifecycle_event_id: int | None = None


class CostOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    device_id: int
    kind: str
    amount: float
    currency: str
    start_on: dt.date
    end_on: dt.date | None
    life_years: float | None
    residual: float
    note: str
    lifecycle_event_id: int | None
    created_at: dt.datetime


class StaffedHoursIn(_In):
    weekdays: list[int] | None = Field(None, description="0 = Monday ... 6 = Sunday")
    start: str | None = Field(None, max_length=5, description="HH:MM")
    end: str | None = Field(None, max_length=5, description="HH:MM (00:00 = midnight)")
    timezone: str | None = Field(None, max_length=64)


# --------------------------------------------------------------------------- helpers

def _device(ctx: Ctx, device_id: int, role: str) -> m.Device:
    """A device the caller sees (else 404) on whose site they hold ``role`` (else 403)."""
    d = ctx.scope.device(device_id)
    ctx.scope.require(role, d.site_id)
    return d


def _period(date_from: dt.date | None, date_to: dt.date | None
            ) -> tuple[dt.date, dt.date]:
    """[from, to): default the year up to and including today."""
    end = date_to or dt.date.today() + dt.timedelta(days=1)
    start = date_from or end - dt.timedelta(days=365)
    if end <= start:
        raise InputError(f"date_to {end} must be after date_from {start}")
    return start, end


def _with_csv(body: str, filename: str, work: Callable[[Path], Any]) -> Any:
    """Run ``work`` on the uploaded CSV saved under its name (so that errors name it)."""
    if len(body.encode("utf-8")) > MAX_CSV_BYTES:
        raise InputError(f"{filename}: larger than {MAX_CSV_BYTES // 1_000_000} MB; split it")
    with tempfile.TemporaryDirectory(prefix="scanbench-upload-") as tmp:
        path = Path(tmp) / filename
        path.write_text(body, encoding="utf-8")
        try:
            return work(path)
        except InputError as exc:  # name the upload, not the temporary folder
            raise InputError(str(exc).replace(str(path), filename)) from None


# --------------------------------------------------------------------------- lifecycle

@route(router, "GET", "/devices/{device_id}/lifecycle", "viewer",
       response_model=w.Page[LifecycleOut])
def lifecycle_list(device_id: int, ctx: C,
                   kind: Annotated[str | None, Query(max_length=32)] = None,
                   date_from: Since = None, date_to: Until = None,
                   limit: Limit = DEFAULT_LIMIT, offset: Offset = 0, sort: Sort = None
                   ) -> dict[str, Any]:
    """A device's lifecycle events (installation, service, downtime, software changes
    entered or read from headers, ...), oldest first by default."""
    d = ctx.scope.device(device_id)
    q = ctx.scope.lifecycle_events().where(m.LifecycleEvent.device_id == d.id,
                                           *_dates(m.LifecycleEvent.occurred_at,
                                                   date_from, date_to))
    if kind:
        q = q.where(m.LifecycleEvent.kind == kind)
    q = _sorted(q, sort, {"id": m.LifecycleEvent.id,
                          "occurred_at": m.LifecycleEvent.occurred_at,
                          "kind": m.LifecycleEvent.kind}, "occurred_at")
    return _page(ctx, q, LifecycleOut, limit, offset)


@route(router, "POST", "/devices/{device_id}/lifecycle", "technologist",
       response_model=list[LifecycleOut], status_code=201)
def lifecycle_add(device_id: int, body: LifecycleIn, ctx: C) -> list[m.LifecycleEvent]:
    """Add a lifecycle event (a downtime with ``end_at``: its start and end): technologist
    on the device's site; ``new_baseline`` needs physicist."""
    d = _device(ctx, device_id, "technologist")
    if body.new_baseline and not ctx.who.may(records.BASELINE_ROLE, d.site_id):
        raise Forbidden(f"marking a new baseline for trend alerts needs the "
                        f"{records.BASELINE_ROLE} role on the device's site")
    rows: list[m.LifecycleEvent] = commit_with_retry(ctx.session, lambda s: records.add_event(
        s, ctx.actor(), d.id, body.kind, body.occurred_at, end_at=body.end_at,
        planned=body.planned, new_baseline=body.new_baseline, summary=body.summary,
        cost=body.cost, currency=body.currency,
        source="user" if ctx.who.via == "session" else "api"))
    return rows


@route(router, "DELETE", "/lifecycle/{event_id}", "physicist", status_code=204)
def lifecycle_delete(event_id: int, ctx: C) -> Response:
    """Remove an entered event (a mistake; a downtime start takes its end): physicist."""
    ev = ctx.scope.lifecycle_event(event_id)
    _device(ctx, ev.device_id, "physicist")
    commit_with_retry(ctx.session, lambda s: records.delete_event(s, ctx.actor(), event_id))
    return Response(status_code=204)


@route(router, "POST", "/lifecycle/import", "technologist", response_model=ImportOut)
def lifecycle_import(body: CsvBody, ctx: C, filename: FileName = "lifecycle.csv"
                     ) -> ImportOut:
    """Import a lifecycle CSV (``Content-Type: text/csv``; columns device, kind, start,
    end, note, cost, currency, id) for devices of the sites where you are technologist
    or more; the same file twice adds nothing; errors name the line and field."""
    allowed = ctx.scope.device_ids_with("technologist")
    got: records.ImportSummary = _with_csv(body, filename, lambda p: commit_with_retry(
        ctx.session, lambda s: records.import_lifecycle_csv(s, ctx.actor(), p,
                                                            allowed=allowed)))
    return ImportOut(added=got.added, skipped=got.skipped, devices=list(got.devices))


@route(router, "GET", "/devices/{device_id}/staffed-hours", "viewer",
       response_model=dict[str, Any])
def staffed_get(device_id: int, ctx: C) -> dict[str, Any]:
    """The hours the device is meant to be in clinical use ({} = around the clock)."""
    return dict(ctx.scope.device(device_id).staffed_hours or {})


@route(router, "PUT", "/devices/{device_id}/staffed-hours", "physicist",
       response_model=dict[str, Any])
def staffed_put(device_id: int, body: StaffedHoursIn, ctx: C) -> dict[str, Any]:
    """Set the staffed hours (physicist): weekdays, start, end (HH:MM), timezone; an
    empty object is around the clock."""
    d = _device(ctx, device_id, "physicist")
    value = body.model_dump(exclude_none=True)
    commit_with_retry(ctx.session, lambda s: records.set_staffed_hours(
        s, ctx.actor(), d.id, value))
    return dict(d.staffed_hours or {})


# --------------------------------------------------------------------------- telemetry

@route(router, "GET", "/devices/{device_id}/telemetry", "viewer",
       response_model=dict[str, Any])
def telemetry_get(device_id: int, ctx: C,
                  channel: Annotated[str, Query(max_length=64, description=(
                      "helium_level_pct, pressure_kpa, coldhead_temp_k or "
                      "field_drift_ppm_per_h"))],
                  date_from: Since = None, date_to: Until = None,
                  max_points: Annotated[int, Query(ge=2, le=MAX_POINTS)] = DEFAULT_POINTS
                  ) -> dict[str, Any]:
    """One telemetry channel of a device with its unit, downsampled on the server to
    ``max_points`` (min-max per bucket, so spikes and refills survive)."""
    d = ctx.scope.device(device_id)
    _dates(m.TelemetrySample.at, date_from, date_to)  # checks the range
    since = dt.datetime.combine(date_from, dt.time()) if date_from else None
    until = dt.datetime.combine(date_to, dt.time()) if date_to else None
    s = records.channel_series(ctx.session, d.id, channel, since, until)
    points = [repo.Point(t, v, s.unit, None, "info", {}, 0, None)
              for t, v in zip(s.times, s.values, strict=True)]
    kept = downsample(points, max_points)
    return {"device_id": d.id, "channel": channel, "unit": s.unit, "total": len(points),
            "downsampled": len(kept) < len(points),
            "points": [{"at": p.acquired_at, "value": p.value} for p in kept]}


@route(router, "POST", "/devices/{device_id}/telemetry", "technologist",
       response_model=ImportOut)
def telemetry_post(device_id: int, body: ReadingsIn, ctx: C) -> ImportOut:
    """Store readings of a device (for programs: a technologist token); readings already
    stored are skipped, the same time with another value is refused."""
    d = _device(ctx, device_id, "technologist")
    readings = [records.Reading(r.channel, r.at, r.value) for r in body.readings]
    source = f"api:{ctx.who.username}"[:200]
    got: records.ImportSummary = commit_with_retry(ctx.session, lambda s: records.add_readings(
        s, ctx.actor(), d.id, readings, source=source))
    return ImportOut(added=got.added, skipped=got.skipped, devices=list(got.devices))


@route(router, "POST", "/telemetry/import", "technologist", response_model=ImportOut)
def telemetry_import(body: CsvBody, ctx: C, filename: FileName = "telemetry.csv"
                     ) -> ImportOut:
    """Import a telemetry CSV (device, time, helium_level_pct, pressure_kpa,
    coldhead_temp_k, field_drift_ppm_per_h) for devices of the sites where you are
    technologist or more."""
    allowed = ctx.scope.device_ids_with("technologist")
    got: records.ImportSummary = _with_csv(body, filename, lambda p: commit_with_retry(
        ctx.session, lambda s: records.import_telemetry_csv(s, ctx.actor(), p,
                                                            allowed=allowed)))
    return ImportOut(added=got.added, skipped=got.skipped, devices=list(got.devices))


DewarL = Annotated[float | None, Query(gt=0, le=100_000, description=(
    "liquid helium capacity of the dewar in litres (gives L/day)"))]
Window = Annotated[float, Query(gt=0, le=3650, description="days of readings for the rate")]


@route(router, "GET", "/devices/{device_id}/boil-off", "viewer", response_model=dict[str, Any])
def boil_off(device_id: int, ctx: C, dewar_l: DewarL = None, window_days: Window = 30.0
             ) -> dict[str, Any]:
    """Helium boil-off of a magnet: Theil-Sen rate in %/day (and L/day) with its 95 %
    interval, refills, and whether it is consistent with zero (a sealed magnet)."""
    d = ctx.scope.device(device_id)
    b = records.device_boil_off(ctx.session, d.id, dewar_l=dewar_l, window_days=window_days)
    return records.boil_off_view(b, records.device_label(d))


@route(router, "GET", "/telemetry/compare", "viewer", response_model=dict[str, Any])
def boil_off_compare(ctx: C, a: int, b: int, dewar_l_a: DewarL = None,
                     dewar_l_b: DewarL = None, window_days: Window = 30.0) -> dict[str, Any]:
    """Two magnets' boil-off side by side (e.g. helium-free and conventional), the
    difference and whether their 95 % intervals are disjoint."""
    da, db = ctx.scope.device(a), ctx.scope.device(b)
    dewar = {k: v for k, v in ((da.id, dewar_l_a), (db.id, dewar_l_b)) if v is not None}
    return records.compare_magnets(ctx.session, da.id, db.id, dewar_l=dewar,
                                   window_days=window_days)


# --------------------------------------------------------------------------- costs

@route(router, "GET", "/devices/{device_id}/costs", "physicist",
       response_model=w.Page[CostOut])
def costs_list(device_id: int, ctx: C, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0,
               sort: Sort = None) -> dict[str, Any]:
    """A device's entered costs (physicist on its site)."""
    d = _device(ctx, device_id, "physicist")
    q = _sorted(ctx.scope.costs().where(m.DeviceCost.device_id == d.id), sort,
                {"id": m.DeviceCost.id, "start_on": m.DeviceCost.start_on,
                 "kind": m.DeviceCost.kind, "amount": m.DeviceCost.amount}, "start_on")
    return _page(ctx, q, CostOut, limit, offset)


@route(router, "POST", "/devices/{device_id}/costs", "physicist", response_model=CostOut,
       status_code=201)
def costs_add(device_id: int, body: CostIn, ctx: C) -> m.DeviceCost:
    """Enter a cost (physicist): acquisition (life_years, residual), service_contract
    (amount per year, start_on to end_on), consumable, cryogen, parts or other."""
    d = _device(ctx, device_id, "physicist")
    row: m.DeviceCost = commit_with_retry(ctx.session, lambda s: records.add_cost(
        s, ctx.actor(), d.id, body.kind, body.amount, body.currency, body.start_on,
        end_on=body.end_on, life_years=body.life_years, residual=body.residual,
        note=body.note, lifecycle_event_id=body.lifecycle_event_id))
    return row


@route(router, "DELETE", "/costs/{cost_id}", "physicist", status_code=204)
def costs_delete(cost_id: int, ctx: C) -> Response:
    """Remove an entered cost (a mistake), audited (physicist)."""
    row = ctx.scope.cost(cost_id)
    _device(ctx, row.device_id, "physicist")
    commit_with_retry(ctx.session, lambda s: records.delete_cost(s, ctx.actor(), cost_id))
    return Response(status_code=204)


# --------------------------------------------------------------------------- reliability, economics

def _fleet(ctx: Ctx, role: str, site_id: int | None, modality: str | None,
           model: str | None, having: Any) -> list[m.Device]:
    """The caller's devices (``role`` on their site) filtered, with rows in ``having``."""
    q = ctx.scope.devices().where(m.Device.id.in_(ctx.scope.device_ids_with(role)),
                                  m.Device.id.in_(select(having).distinct()))
    if site_id is not None:
        q = q.where(m.Device.site_id == site_id)
    if modality:
        q = q.where(m.Device.modality == modality.upper())
    rows = list(ctx.session.scalars(q.order_by(m.Device.id)))
    if model:
        key = model.casefold()
        rows = [d for d in rows if key in (records.model_label(d).casefold(),
                                           (d.model or "").casefold())]
    return rows


Model = Annotated[str | None, Query(max_length=400, description=(
    "manufacturer and model, or the model alone (case-insensitive)"))]


@route(router, "GET", "/devices/{device_id}/reliability", "viewer",
       response_model=dict[str, Any])
def reliability_device(device_id: int, ctx: C, date_from: Since = None,
                       date_to: Until = None) -> dict[str, Any]:
    """Uptime %, unplanned downtime, MTBF, MTTR and availability of a device over
    [date_from, date_to) (default: the last 365 days), with the definitions."""
    d = ctx.scope.device(device_id)
    p0, p1 = _period(date_from, date_to)
    r = records.device_reliability(ctx.session, d.id, p0, p1)
    return records.reliability_view(r, {str(d.id): records.device_label(d)})


@route(router, "GET", "/reliability", "viewer", response_model=dict[str, Any])
def reliability_fleet(ctx: C, site_id: int | None = None,
                      modality: Annotated[str | None, Query(max_length=16)] = None,
                      model: Model = None, date_from: Since = None, date_to: Until = None
                      ) -> dict[str, Any]:
    """Reliability per device and pooled per model over your devices with lifecycle
    events (filters: site, modality, model)."""
    if site_id is not None:
        ctx.scope.site(site_id)
    p0, p1 = _period(date_from, date_to)
    devs = _fleet(ctx, "viewer", site_id, modality, model, m.LifecycleEvent.device_id)
    names = {str(d.id): records.device_label(d) for d in devs}
    per = [records.device_reliability(ctx.session, d.id, p0, p1) for d in devs]
    from scanbench.evaluation.reliability import model_reliability

    return {"devices": [records.reliability_view(r, names) for r in per],
            "models": [records.reliability_view(r, names) for r in model_reliability(per)],
            "definitions": records.DEFINITIONS}


@route(router, "GET", "/devices/{device_id}/economics", "physicist",
       response_model=dict[str, Any])
def economics_device(device_id: int, ctx: C, date_from: Since = None,
                     date_to: Until = None,
                     helium_price_per_l: Annotated[float | None, Query(gt=0, le=1e6, description=(
                         "with dewar_l: price the magnet's measured boil-off"))] = None,
                     dewar_l: DewarL = None,
                     currency: Annotated[str | None, Query(pattern="^[A-Z]{3}$", description=(
                         "of the helium price (default: the costs' currency)"))] = None
                     ) -> dict[str, Any]:
    """Cost per exam of a device over [date_from, date_to) (physicist): entered costs,
    lifecycle event costs, exams per day from the stored workflow data; with
    ``helium_price_per_l`` and ``dewar_l`` also the helium cost its measured boil-off
    implies (beside the entered cryogen costs, not added to them)."""
    d = _device(ctx, device_id, "physicist")
    p0, p1 = _period(date_from, date_to)
    r = records.device_cost_per_exam(ctx.session, d.id, p0, p1)
    out = records.economics_view(r, {str(d.id): records.device_label(d)})
    if helium_price_per_l is not None and dewar_l is not None:
        cur = currency or r.currency
        if cur is None:
            raise InputError("currency: give the helium price's currency (no cost entered)")
        out["cryogen_estimate"] = records.cryogen_estimate(
            ctx.session, d.id, p0, p1, dewar_l=dewar_l, price_per_l=helium_price_per_l,
            currency=cur)
    return out


@route(router, "GET", "/economics", "physicist", response_model=dict[str, Any])
def economics_fleet(ctx: C, site_id: int | None = None,
                    modality: Annotated[str | None, Query(max_length=16)] = None,
                    model: Model = None, date_from: Since = None, date_to: Until = None
                    ) -> dict[str, Any]:
    """Cost per exam per device and pooled per model (Σ cost / Σ exams) over the devices
    with entered costs on the sites where you are physicist."""
    if site_id is not None:
        ctx.scope.site(site_id)
    p0, p1 = _period(date_from, date_to)
    devs = _fleet(ctx, "physicist", site_id, modality, model, m.DeviceCost.device_id)
    names = {str(d.id): records.device_label(d) for d in devs}
    per = [records.device_cost_per_exam(ctx.session, d.id, p0, p1) for d in devs]
    pooled = records.model_cost_per_exam(ctx.session, [d.id for d in devs], p0, p1)
    return {"devices": [records.economics_view(r, names) for r in per],
            "models": [records.economics_view(r) for r in pooled]}


__all__ = ["router"]

"""A device's life on the pages (issue 13 §4, §5): reliability, magnet telemetry and
helium boil-off, costs and cost per exam, computed from the store by
:mod:`scanbench.evaluation.records` (the same functions the ``/api/v1`` endpoints of
``web/api/life_routes.py`` call, so a page and the API give the same numbers).

Pages
-----
* ``GET /devices/{id}/life`` (viewer on the device's site): the device's reliability
  over a period (default: the 365 days up to and including today, stated on the page)
  with the definitions; for a magnet, each telemetry channel as a chart (downsampled
  on the server, min-max per bucket so refills and spikes survive) and the helium
  boil-off with its 95 % interval; for a physicist on the device's site, its costs and
  cost per exam (the API's rule: the budget is not for every viewer).
* ``GET /magnets`` (viewer): every visible MRI magnet (modality MR, or a device with
  telemetry) side by side: helium level over time, boil-off per magnet and the
  comparison of two magnets (by default a helium-free one, consistent with zero
  boil-off, against a conventional one) with its stated test.
* ``GET /reliability`` (viewer): uptime, unplanned downtime, MTBF, MTTR and
  availability per device and pooled per model over a period, with the definitions
  (IEC 60050-192); for a physicist, cost per exam per device and per model over the
  sites where they are physicist.

Every query goes through the caller's Scope: another site's device is a 404.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import or_, select

from scanbench.errors import InputError
from scanbench.evaluation import records, telemetry
from scanbench.evaluation.reliability import model_reliability
from scanbench.store import models as m
from scanbench.store import repo
from scanbench.web.api.routes import downsample
from scanbench.web.pages.common import P, PageCtx, nav, page, render

router = APIRouter()
nav("Magnets", "/magnets", order=60)
nav("Reliability", "/reliability", order=61)

#: The role that sees costs (as ``/api/v1/devices/{id}/costs``).
COST_ROLE = "physicist"
#: Points per telemetry chart at most (each bucket's lowest and highest kept).
MAX_POINTS = 2000
CHANNEL_TITLES = {"helium_level_pct": "Helium level", "pressure_kpa": "Helium vessel pressure",
                  "coldhead_temp_k": "Cold-head temperature",
                  "field_drift_ppm_per_h": "Field drift"}


def period(date_from: dt.date | None, date_to: dt.date | None) -> tuple[dt.date, dt.date]:
    """[from, to): by default the 365 days up to and including today (as the API)."""
    end = date_to or dt.date.today() + dt.timedelta(days=1)
    start = date_from or end - dt.timedelta(days=365)
    if end <= start:
        raise InputError(f"date_to {end} must be after date_from {start}")
    return start, end


def _series(ctx: PageCtx, device_id: int, channel: str,
            max_points: int = MAX_POINTS) -> dict[str, Any]:
    """One channel downsampled for a chart: times, values, unit and counts."""
    s = records.channel_series(ctx.session, device_id, channel)
    points = [repo.Point(t, v, s.unit, None, "info", {}, 0, None)
              for t, v in zip(s.times, s.values, strict=True)]
    kept = downsample(points, max_points)
    return {"channel": channel, "unit": s.unit, "total": len(points), "drawn": len(kept),
            "x": [p.acquired_at.isoformat() if p.acquired_at else None for p in kept],
            "y": [p.value for p in kept]}


def _figure(title: str, unit: str, traces: list[dict[str, Any]]) -> dict[str, Any]:
    return {"data": [{"type": "scatter", "mode": "lines+markers", "marker": {"size": 3},
                      "name": t["name"], "x": t["x"], "y": t["y"]} for t in traces],
            "layout": {"title": {"text": title}, "height": 320,
                       "margin": {"l": 60, "r": 20, "t": 40, "b": 40},
                       "xaxis": {"title": {"text": "time (site's clock)"}},
                       "yaxis": {"title": {"text": f"{title} ({unit})"}},
                       "showlegend": len(traces) > 1}}


def _has_telemetry(ctx: PageCtx, device_id: int) -> bool:
    return ctx.session.scalar(select(m.TelemetrySample.id).where(
        m.TelemetrySample.device_id == device_id).limit(1)) is not None


def _boil_off(ctx: PageCtx, d: m.Device) -> dict[str, Any]:
    return records.boil_off_view(records.device_boil_off(ctx.session, d.id),
                                 records.device_label(d))


@page(router, "/devices/{device_id}/life", "viewer")
def device_life(ctx: P, device_id: int, date_from: dt.date | None = None,
                date_to: dt.date | None = None) -> Response:
    """Reliability, telemetry, boil-off and (physicist) costs of one device."""
    d = ctx.scope.device(device_id)
    p0, p1 = period(date_from, date_to)
    label = records.device_label(d)
    rel = records.reliability_view(records.device_reliability(ctx.session, d.id, p0, p1),
                                   {str(d.id): label})
    charts: list[dict[str, Any]] = []
    boil = None
    if _has_telemetry(ctx, d.id):
        for channel in telemetry.CHANNELS:
            s = _series(ctx, d.id, channel)
            if s["total"]:
                title = CHANNEL_TITLES[channel]
                charts.append({**s, "title": title, "id": f"telemetry-{channel}",
                               "figure": _figure(title, s["unit"],
                                                 [{"name": label, **s}])})
        boil = _boil_off(ctx, d)
    can_cost = ctx.who.may(COST_ROLE, d.site_id)
    costs: list[dict[str, Any]] = []
    econ = None
    if can_cost:
        costs = [records.cost_view(c) for c in records.device_costs(ctx.session, d.id)]
        econ = records.economics_view(
            records.device_cost_per_exam(ctx.session, d.id, p0, p1), {str(d.id): label})
    return render(ctx, "life.html", device=d, label=label, rel=rel, p0=p0, p1=p1,
                  default_period=date_from is None and date_to is None,
                  definitions=records.DEFINITIONS, charts=charts, boil=boil,
                  can_cost=can_cost, cost_role=COST_ROLE, costs=costs, econ=econ,
                  is_magnet=(d.modality or "").upper() == "MR")


def _magnets(ctx: PageCtx) -> list[m.Device]:
    with_telemetry = select(m.TelemetrySample.device_id).distinct()
    q = ctx.scope.devices().where(or_(m.Device.modality == "MR",
                                      m.Device.id.in_(with_telemetry)))
    return list(ctx.session.scalars(q.order_by(m.Device.id)))


@page(router, "/magnets", "viewer")
def magnets(ctx: P, a: int | None = None, b: int | None = None) -> Response:
    """Every visible magnet's helium level and boil-off, and two of them compared."""
    devs = _magnets(ctx)
    rows = []
    traces = []
    # The chart's point budget shared by the magnets (at least 200 each).
    budget = max(200, MAX_POINTS // max(1, len(devs)))
    for d in devs:
        boil = _boil_off(ctx, d)
        s = _series(ctx, d.id, "helium_level_pct", budget)
        rows.append({"device": d, "boil": boil, "points": s["total"]})
        if s["total"]:
            traces.append({"name": records.device_label(d), **s})
    figure = _figure("Helium level", telemetry.UNITS["helium_level_pct"], traces)
    ids = [d.id for d in devs]
    if a is None or b is None:
        free = [r["device"].id for r in rows if r["boil"]["consistent_with_zero"] is True]
        conv = [r["device"].id for r in rows if r["boil"]["consistent_with_zero"] is False]
        a = a if a is not None else (free[0] if free else None)
        b = b if b is not None else (conv[0] if conv else None)
    compare = None
    if a is not None and b is not None:
        ctx.scope.device(a), ctx.scope.device(b)  # another site's magnet: 404
        if a != b:
            compare = records.compare_magnets(ctx.session, a, b)
    return render(ctx, "life_magnets.html", rows=rows, figure=figure,
                  drawn=sum(t["drawn"] for t in traces), ids=ids, a=a, b=b,
                  compare=compare, devices={d.id: records.device_label(d) for d in devs})


@page(router, "/reliability", "viewer")
def reliability_page(ctx: P, date_from: dt.date | None = None, date_to: dt.date | None = None,
                     model: str | None = None) -> Response:
    """Reliability per device and per model (and cost per exam for a physicist)."""
    p0, p1 = period(date_from, date_to)
    with_events = select(m.LifecycleEvent.device_id).distinct()
    devs = list(ctx.session.scalars(ctx.scope.devices().where(
        m.Device.id.in_(with_events)).order_by(m.Device.id)))
    if model:
        key = model.casefold()
        devs = [d for d in devs if key in (records.model_label(d).casefold(),
                                           (d.model or "").casefold())]
    names = {str(d.id): records.device_label(d) for d in devs}
    # One device whose log cannot be computed (say, a downtime end without its start)
    # is named with the reason; it does not take the whole fleet's page down.
    problems: list[str] = []
    per = []
    for d in devs:
        try:
            per.append(records.device_reliability(ctx.session, d.id, p0, p1))
        except InputError as exc:
            problems.append(exc.message)
    rel_devices = [records.reliability_view(r, names) for r in per]
    rel_models = [records.reliability_view(r, names) for r in model_reliability(per)]
    econ_devices: list[dict[str, Any]] = []
    econ_models: list[dict[str, Any]] = []
    can_cost = bool(ctx.who.sites_with(COST_ROLE))
    if can_cost:
        allowed = set(ctx.scope.device_ids_with(COST_ROLE))
        with_costs = set(ctx.session.scalars(select(m.DeviceCost.device_id).distinct()))
        cdevs = [d for d in ctx.session.scalars(ctx.scope.devices().where(
            m.Device.id.in_(allowed & with_costs)).order_by(m.Device.id))]
        if model:
            key = model.casefold()
            cdevs = [d for d in cdevs if key in (records.model_label(d).casefold(),
                                                 (d.model or "").casefold())]
        cnames = {str(d.id): records.device_label(d) for d in cdevs}
        ok = []
        for d in cdevs:
            try:
                econ_devices.append(records.economics_view(
                    records.device_cost_per_exam(ctx.session, d.id, p0, p1), cnames))
                ok.append(d.id)
            except InputError as exc:
                problems.append(exc.message)
        econ_models = [records.economics_view(r) for r in records.model_cost_per_exam(
            ctx.session, ok, p0, p1)]
    return render(ctx, "life_reliability.html", p0=p0, p1=p1, model=model or "",
                  default_period=date_from is None and date_to is None,
                  devices=rel_devices, models=rel_models, definitions=records.DEFINITIONS,
                  can_cost=can_cost, cost_role=COST_ROLE, econ_devices=econ_devices,
                  econ_models=econ_models, problems=problems)


__all__ = ["COST_ROLE", "period", "router"]

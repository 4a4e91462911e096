"""The dose page (distributions per protocol and device against reference levels, the
outliers with a link to their study) and the study page. The numbers come from
:mod:`scanbench.clinical.dose_stats` through the caller's Scope, the figures from
:mod:`scanbench.report.dose_charts` (the same as the site dose report)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from scanbench.clinical import dose_stats as ds
from scanbench.clinical import federated
from scanbench.clinical import reference_levels as rl
from scanbench.errors import InputError
from scanbench.report import dose_charts as charts
from scanbench.store import models as m
from scanbench.web.api.dose_routes import filters
from scanbench.web.pages.common import P, PageCtx, nav, page, render

router = APIRouter()
nav("Dose", "/dose", order=30)

Text = Annotated[str | None, Query(max_length=200)]
#: Groups drawn and listed on the page at most (the largest by number of values).
MAX_DRAWN = 300


def device_names(ctx: PageCtx) -> dict[int, str]:
    """Visible devices' display names: the name given, else make, model and serial."""
    out = {}
    for d in ctx.session.scalars(ctx.scope.devices()):
        out[d.id] = d.display_name or " ".join(
            x for x in (d.manufacturer, d.model, d.serial) if x) or f"device {d.id}"
    return out


def site_names(ctx: PageCtx) -> dict[int, str]:
    return {s.id: s.name for s in ctx.session.scalars(ctx.scope.sites())}


def blank(value: str | None) -> str | None:
    """A form field left empty means no filter."""
    return value.strip() or None if value is not None else None


def number(value: str | None, what: str) -> int | None:
    """An optional id from a GET form (an empty select sends '')."""
    value = blank(value)
    if value is None:
        return None
    if not value.isdigit():
        raise InputError(f"{what} must be a number, got {value[:40]!r}")
    return int(value)


def day(value: str | None, what: str) -> dt.date | None:
    value = blank(value)
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{what} must be a date YYYY-MM-DD, got {value[:40]!r}") from None


def common_filters(ctx: PageCtx, site_id: str | None, device_id: str | None,
                   modality: str | None, protocol: str | None, date_from: str | None,
                   date_to: str | None) -> tuple[ds.Filters, dict[str, Any]]:
    """The filters of a GET form, checked (another site's device or site: 404), and
    the values to show back in the form."""
    chosen: dict[str, Any] = {
        "site_id": number(site_id, "site"), "device_id": number(device_id, "device"),
        "modality": blank(modality), "protocol": blank(protocol),
        "date_from": day(date_from, "from"), "date_to": day(date_to, "to")}
    return filters(ctx, **chosen), chosen


@page(router, "/dose", "viewer")
def dose(ctx: P, quantity: Annotated[str, Query(max_length=40)] = "ctdivol_mgy",
         table: Text = None, site_id: Text = None, device_id: Text = None,
         modality: Text = None, protocol: Text = None, date_from: Text = None,
         date_to: Text = None) -> HTMLResponse:
    """Dose distributions per protocol and device against reference levels."""
    f, chosen = common_filters(ctx, site_id, device_id, modality, protocol, date_from,
                               date_to)
    # The last 12 months of stored exams unless dates are given (said on the page).
    f = federated.default_period(ctx.session, quantity, f)
    # with the federated sites' per-day values (scanbench.clinical.federated)
    stats = federated.dose_statistics(ctx.session, quantity, f, table=blank(table),
                                      max_outliers=200)
    names = device_names(ctx)
    # A figure and a table the browser can still draw: the largest groups (a fleet of
    # 1,000 devices x 20 protocols has 20,000); the rest by filtering, or from the API.
    drawn = sorted(stats.groups, key=lambda g: -g.distribution.n)[:MAX_DRAWN]
    drawn_ids = {id(g) for g in drawn}
    shown = dataclasses.replace(stats, groups=[g for g in stats.groups if id(g) in drawn_ids])
    return render(ctx, "dose.html", stats=stats, shown=shown, max_drawn=MAX_DRAWN,
                  chosen=chosen, quantity=quantity,
                  quantities=ds.QUANTITIES, tables=rl.list_tables(),
                  table=stats.table.name if stats.table else blank(table),
                  names=names, sites=site_names(ctx),
                  figure=charts.dose_box_figure(shown, names),
                  protocols=sorted({g.protocol or "" for g in stats.groups}),
                  percentile_method=ds.PERCENTILE_METHOD, drl_rule=ds.DRL_RULE,
                  outlier_rule=ds.OUTLIER_RULE)


@page(router, "/studies/{study_id}", "viewer")
def study(ctx: P, study_id: int) -> HTMLResponse:
    """One study: its dose events and exam timings (of visible devices)."""
    st = ctx.scope.study(study_id)
    events = list(ctx.session.scalars(ctx.scope.dose_events().where(
        m.DoseEvent.study_id == st.id).order_by(m.DoseEvent.id)))
    timings = list(ctx.session.scalars(ctx.scope.exam_timings().where(
        m.ExamTiming.study_id == st.id).order_by(m.ExamTiming.id)))
    return render(ctx, "dose_study.html", study=st, events=events, timings=timings,
                  names=device_names(ctx))

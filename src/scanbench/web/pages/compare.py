"""The site comparison page: one measurement (an analysis and a measurement name)
across devices and sites side by side: each device's latest value and its
distribution over the period (:func:`scanbench.clinical.dose_stats.compare_measurement`
through the caller's Scope)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from scanbench.clinical import dose_stats as ds
from scanbench.errors import InputError
from scanbench.report import dose_charts as charts
from scanbench.store import models as m
from scanbench.web.pages.common import P, nav, page, render
from scanbench.web.pages.dose import blank, common_filters, device_names, site_names

router = APIRouter()
nav("Compare", "/compare", order=34)

Text = Annotated[str | None, Query(max_length=200)]


@page(router, "/compare", "viewer")
def compare(ctx: P, measurement: Annotated[str | None, Query(max_length=250)] = None,
            site_id: Text = None, modality: Text = None, date_from: Text = None,
            date_to: Text = None) -> HTMLResponse:
    """Choose ``analysis|name``; the same measurement across devices and sites."""
    f, chosen = common_filters(ctx, site_id, None, modality, None, date_from, date_to)
    me = m.Measurement
    choices = ctx.session.execute(
        select(me.analysis, me.name, me.unit, func.count(func.distinct(me.device_id)))
        .where(*f.conditions(me.device_id, me.acquired_at))
        .group_by(me.analysis, me.name, me.unit).order_by(me.analysis, me.name)).all()
    chosen_m = blank(measurement)
    rows: list[ds.DeviceValue] = []
    unit = figure = None
    analysis = name = None
    if chosen_m is not None:
        analysis, sep, name = chosen_m.partition("|")
        if not sep or not analysis or not name:
            raise InputError("measurement must be 'analysis|name', e.g. "
                             "'ct.acr_464.ct_number_accuracy|mean_hu'")
        unit, rows = ds.compare_measurement(ctx.session, analysis, name, f)
    names, sites = device_names(ctx), site_names(ctx)
    if rows:
        figure = charts.comparison_figure(name or "", unit, rows, names, sites)
    return render(ctx, "compare.html", choices=choices, measurement=chosen_m,
                  analysis=analysis, name=name, unit=unit, rows=rows, figure=figure,
                  chosen=chosen, names=names, sites=sites,
                  percentile_method=ds.PERCENTILE_METHOD)

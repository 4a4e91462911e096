"""The workflow page: exam durations and PET uptake times per device, their histograms,
and utilisation per device and day (:mod:`scanbench.clinical.dose_stats`, through the
caller's Scope; figures from :mod:`scanbench.report.dose_charts`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from scanbench.clinical import dose_stats as ds
from scanbench.clinical import federated
from scanbench.clinical.workflow import WorkflowSettings
from scanbench.report import dose_charts as charts
from scanbench.web.pages.common import P, nav, page, render
from scanbench.web.pages.dose import common_filters, device_names, site_names

router = APIRouter()
nav("Workflow", "/workflow", order=32)

Text = Annotated[str | None, Query(max_length=200)]


@page(router, "/workflow", "viewer")
def workflow(ctx: P, site_id: Text = None, device_id: Text = None, modality: Text = None,
             protocol: Text = None, date_from: Text = None, date_to: Text = None,
             bin_min: Annotated[float, Query(ge=0.5, le=240)] = 5.0) -> HTMLResponse:
    """Exam durations, PET uptake times and utilisation per device and day."""
    f, chosen = common_filters(ctx, site_id, device_id, modality, protocol, date_from,
                               date_to)
    # with the federated sites' per-day values (scanbench.clinical.federated)
    stats = federated.workflow_statistics(ctx.session, f, bin_min=bin_min)
    names = device_names(ctx)
    window = WorkflowSettings().uptake_window_min
    figures = {
        "duration": charts.histogram_figure(stats.duration_histogram, bin_min,
                                            "Exam durations", "duration (min)"),
        "uptake": charts.histogram_figure(stats.uptake_histogram, bin_min,
                                          "PET uptake times (injection to first PET "
                                          "acquisition)", "uptake time (min)", window),
        "utilisation": charts.utilisation_heatmap(stats.days, names)}
    return render(ctx, "workflow.html", stats=stats, chosen=chosen, names=names,
                  sites=site_names(ctx), figures=figures, window=window, bin_min=bin_min,
                  percentile_method=ds.PERCENTILE_METHOD, max_days=2000)

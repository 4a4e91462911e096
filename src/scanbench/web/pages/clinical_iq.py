"""The device page's clinical image-quality fragment (issue 16 §3): per protocol, the
clinical CT noise of every measured patient series against the patient's
water-equivalent diameter with the device's reference band from its baseline, and the
size model's standardised residuals as a control chart with the drift rule's signals
(:mod:`scanbench.evaluation.clinical_iq`). Loaded by htmx when the section is shown."""

from __future__ import annotations

import datetime as dt
import html
import math
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import select

from scanbench.evaluation import clinical_iq
from scanbench.store import models as m
from scanbench.web.pages.common import P, page, render, render_partial

router = APIRouter()


def _days(t: str, t0: dt.datetime) -> float:
    return (dt.datetime.fromisoformat(t) - t0).total_seconds() / 86400.0


def size_figure(p: dict[str, Any]) -> dict[str, Any] | None:
    """Noise against size (CT: σ against D_w; PET: liver COV against weight), normalised
    to the protocol's median dose by the model's 1/√dose law (noise · √(dose / median)),
    baseline exams grey, later exams coloured by date, the baseline model's curve with
    its ±2 prediction-SD band."""
    model = p.get("model")
    ref = p.get("median_dose")
    q = p["quantities"]
    pts = [e for e in p["exams_list"] if e["refused"] is None]
    if not pts or not ref:
        return None
    t0 = dt.datetime.fromisoformat(pts[0]["acquired_at"])

    def norm(e: dict[str, Any]) -> float:
        return float(e["noise"]) * math.sqrt(float(e["dose"]) / ref)

    def text(e: dict[str, Any]) -> str:
        return html.escape(f"{e['acquired_at']} · {e['noise']:.3g} {q['noise']['unit']} at "
                           f"{e['dose']:.3g} {q['dose']['unit']}"
                           + (f" · z {e['z']:+.2f}" if e["z"] is not None else ""))

    base = [e for e in pts if e["baseline"]]
    later = [e for e in pts if not e["baseline"]]
    data: list[dict[str, Any]] = []
    if model is not None:
        sizes = [e["size"] for e in pts] + list(model["size_range"])
        lo, hi = min(sizes), max(sizes)
        xs = [lo + i * (hi - lo) / 40 for i in range(41)]
        # the band's width is the baseline's prediction SD at the reference size (leverage
        # changes it by a few % over the baseline's range; each exam's z uses its own)
        sd = float(model["prediction_sd_ln_at_reference"])
        mid = [math.exp(model["a"] + model["b"] * x - 0.5 * math.log(ref)) for x in xs]
        data += [
            {"type": "scatter", "mode": "lines", "x": xs, "y": [v * math.exp(2 * sd)
                                                               for v in mid],
             "line": {"width": 0}, "showlegend": False, "hoverinfo": "skip"},
            {"type": "scatter", "mode": "lines", "x": xs, "y": [v * math.exp(-2 * sd)
                                                               for v in mid],
             "line": {"width": 0}, "fill": "tonexty", "fillcolor": "rgba(70,130,180,0.18)",
             "name": "baseline ±2 prediction SD", "hoverinfo": "skip"},
            {"type": "scatter", "mode": "lines", "x": xs, "y": mid,
             "line": {"color": "steelblue"}, "name": "baseline model"}]
    data.append({"type": "scatter", "mode": "markers", "name": "baseline exams",
                 "x": [e["size"] for e in base], "y": [norm(e) for e in base],
                 "text": [text(e) for e in base], "marker": {"color": "#999", "size": 6}})
    if later:
        data.append({"type": "scatter", "mode": "markers", "name": "later exams",
                     "x": [e["size"] for e in later], "y": [norm(e) for e in later],
                     "text": [text(e) for e in later],
                     "marker": {"size": 7, "color": [_days(e["acquired_at"], t0)
                                                     for e in later],
                                "colorscale": "Viridis", "showscale": True,
                                "colorbar": {"title": {"text": "days"}}}})
    return {"data": data, "layout": {
        "height": 380, "margin": {"t": 30, "r": 10, "b": 50, "l": 60},
        "xaxis": {"title": {"text": f"{q['size']['label']} ({q['size']['unit']})"}},
        "yaxis": {"title": {"text": f"{q['noise']['label']} at {ref:.3g} "
                                    f"{q['dose']['unit']} ({q['noise']['unit']})"}},
        "legend": {"orientation": "h", "y": -0.25}}}


def residual_figure(p: dict[str, Any], alert_results: set[int]) -> dict[str, Any] | None:
    """The standardised residuals of the judged exams over time, ±3 lines, the exams
    where the drift rule signalled marked ×."""
    judged = [e for e in p["exams_list"] if e["z"] is not None]
    if not judged:
        return None
    unit = p["quantities"]["noise"]["unit"]
    t = [e["acquired_at"] for e in judged]
    marked = [e for e in judged if e["result_id"] in alert_results]
    data: list[dict[str, Any]] = [
        {"type": "scatter", "mode": "lines+markers", "name": "standardised residual z",
         "x": t, "y": [e["z"] for e in judged], "line": {"color": "#555"},
         "text": [html.escape(f"{e['noise']:.3g} {unit}, expected "
                              f"{e['expected_noise']:.3g} {unit}") for e in judged]}]
    for k in (-3, 3):
        data.append({"type": "scatter", "mode": "lines", "x": [t[0], t[-1]], "y": [k, k],
                     "line": {"dash": "dash", "color": "firebrick"}, "showlegend": False,
                     "hoverinfo": "skip"})
    if marked:
        data.append({"type": "scatter", "mode": "markers", "name": "drift rule signal",
                     "x": [e["acquired_at"] for e in marked], "y": [e["z"] for e in marked],
                     "marker": {"symbol": "x", "size": 12, "color": "firebrick"}})
    return {"data": data, "layout": {
        "height": 300, "margin": {"t": 30, "r": 10, "b": 50, "l": 60},
        "yaxis": {"title": {"text": "z (prediction SD)"}},
        "legend": {"orientation": "h", "y": -0.3}}}


def _protocols(view: dict[str, Any], alert_results: set[int]) -> list[dict[str, Any]]:
    return [{**p, "size_figure": size_figure(p),
             "residual_figure": residual_figure(p, alert_results),
             "refused_list": [e for e in p["exams_list"] if e["refused"]]}
            for p in view["protocols"]]


@page(router, "/devices/{device_id}/clinical-iq", "viewer")
def clinical_iq_fragment(ctx: P, device_id: int) -> Response:
    """The device's clinical image quality per kind and protocol (an htmx fragment)."""
    d = ctx.scope.device(device_id)
    alert_results = {r for r in ctx.session.scalars(select(m.Alert.result_id).where(
        m.Alert.device_id == d.id,
        m.Alert.name.in_([k.residual for k in clinical_iq.KINDS]))) if r is not None}
    kinds = []
    for kind in clinical_iq.KINDS:
        view = clinical_iq.device_view(ctx.session, d.id, kind)
        if view["protocols"] or kind is clinical_iq.CT:
            kinds.append({"view": view, "protocols": _protocols(view, alert_results)})
    return render_partial(ctx, "clinical_iq.html", device=d, kinds=kinds)


@page(router, "/compare/clinical-iq", "viewer")
def clinical_iq_compare(ctx: P) -> Response:
    """Clinical image quality (CT noise, PET liver COV) across the caller's devices and
    models (the tables of ``GET /api/v1/clinical-iq/compare``)."""
    tables, names = [], {}
    for kind in clinical_iq.KINDS:
        q = ctx.scope.devices().where(m.Device.id.in_(
            select(m.Result.device_id).where(m.Result.analysis == kind.analysis)
            .distinct()))
        devs = list(ctx.session.scalars(q.order_by(m.Device.id)))
        names.update({d.id: " ".join(x for x in (d.manufacturer, d.model, d.serial) if x)
                      for d in devs})
        tables.append(clinical_iq.compare(ctx.session, devs, kind))
    return render(ctx, "clinical_iq_compare.html", tables=tables, names=names)

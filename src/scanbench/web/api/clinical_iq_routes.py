"""Clinical image quality endpoints (issue 16 §3): a device's clinical CT noise per
protocol, normalised for patient size (:mod:`scanbench.evaluation.clinical_iq`), and
the comparison across devices and models. Reads only; every device comes through the
caller's :class:`~scanbench.web.scope.Scope` (another site's device is a 404)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from scanbench.evaluation import clinical_iq
from scanbench.store import models as m
from scanbench.web.api.app import PREFIX, Ctx, context, route

router = APIRouter(prefix=PREFIX)
C = Annotated[Ctx, Depends(context)]


@route(router, "GET", "/devices/{device_id}/clinical-iq", "viewer",
       response_model=dict[str, Any])
def device_clinical_iq(device_id: int, ctx: C) -> dict[str, Any]:
    """The device's clinical CT global noise (Duke tissue mode) per protocol: every
    measured patient series with its water-equivalent diameter and CTDIvol, the size
    model fitted on the device's baseline exams (ln σ = a + b·D_w − ½·ln CTDIvol), each
    exam's expected noise, residual and standardised residual, the drift rule's
    expected number of exams to detect a 15 % noise increase, and open drift alerts."""
    d = ctx.scope.device(device_id)
    return clinical_iq.device_view(ctx.session, d.id)


@route(router, "GET", "/clinical-iq/compare", "viewer", response_model=dict[str, Any])
def compare_clinical_iq(
        ctx: C, site_id: int | None = None,
        model: Annotated[str | None, Query(max_length=200, description=(
            "the model name (case-insensitive): only devices of that model"))] = None,
) -> dict[str, Any]:
    """Clinical CT noise compared across your devices (per device and protocol with a
    fitted size model) and across models: the noise the device's model predicts for a
    patient of water-equivalent diameter 300 mm at the protocol's median CTDIvol."""
    if site_id is not None:
        ctx.scope.site(site_id)
    q = ctx.scope.devices().where(m.Device.id.in_(
        select(m.Result.device_id).where(m.Result.analysis == clinical_iq.ANALYSIS)
        .distinct()))
    if site_id is not None:
        q = q.where(m.Device.site_id == site_id)
    devs = list(ctx.session.scalars(q.order_by(m.Device.id)))
    if model:
        devs = [d for d in devs if (d.model or "").casefold() == model.casefold()]
    return clinical_iq.compare(ctx.session, devs)

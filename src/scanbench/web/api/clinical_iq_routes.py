"""Clinical image quality endpoints (issue 16 §3): a device's clinical CT noise per
protocol, normalised for patient size (:mod:`scanbench.evaluation.clinical_iq`), and
the comparison across devices and models. Reads only; every device comes through the
caller's :class:`~scanbench.web.scope.Scope` (another site's device is a 404)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from scanbench.evaluation import clinical_iq
from scanbench.store import models as m
from scanbench.web.api.app import PREFIX, Ctx, context, route

router = APIRouter(prefix=PREFIX)
C = Annotated[Ctx, Depends(context)]
KindKey = Annotated[Literal["ct", "pet"], Query(description=(
    "ct: CT global noise (Duke tissue mode) against water-equivalent diameter and CTDIvol; "
    "pet: PET liver COV (3 cm VOI) against patient weight and activity × time per kg"))]


@route(router, "GET", "/devices/{device_id}/clinical-iq", "viewer",
       response_model=dict[str, Any])
def device_clinical_iq(device_id: int, ctx: C, kind: KindKey = "ct") -> dict[str, Any]:
    """The device's clinical image quality per protocol (``kind`` ct: CT global noise,
    Duke tissue mode, against water-equivalent diameter and CTDIvol; pet: PET liver COV
    against weight and activity × time per kg): every measured patient series, the model
    fitted on the device's baseline exams (ln noise = a + b·size − ½·ln dose), each
    exam's expected noise, residual and standardised residual, the drift rule's expected
    number of exams to detect a 15 % noise increase, and open drift alerts. Units:
    ``quantities``."""
    d = ctx.scope.device(device_id)
    return clinical_iq.device_view(ctx.session, d.id, clinical_iq.kind_of(kind))


@route(router, "GET", "/clinical-iq/compare", "viewer", response_model=dict[str, Any])
def compare_clinical_iq(
        ctx: C, kind: KindKey = "ct", site_id: int | None = None,
        model: Annotated[str | None, Query(max_length=200, description=(
            "the model name (case-insensitive): only devices of that model"))] = None,
) -> dict[str, Any]:
    """Clinical image quality compared across your devices (per device and protocol with
    a fitted model) and across models: the noise the device's model predicts at the
    reference size (CT: D_w 300 mm; PET: 75 kg) and the protocol's median dose."""
    if site_id is not None:
        ctx.scope.site(site_id)
    k = clinical_iq.kind_of(kind)
    q = ctx.scope.devices().where(m.Device.id.in_(
        select(m.Result.device_id).where(m.Result.analysis == k.analysis)
        .distinct()))
    if site_id is not None:
        q = q.where(m.Device.site_id == site_id)
    devs = list(ctx.session.scalars(q.order_by(m.Device.id)))
    if model:
        devs = [d for d in devs if (d.model or "").casefold() == model.casefold()]
    return clinical_iq.compare(ctx.session, devs, k)

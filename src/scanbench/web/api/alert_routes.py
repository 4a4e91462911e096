"""``/api/v1/alerts`` and ``/api/v1/notification-targets``: trend and limit alerts of the
caller's devices (read through :class:`~scanbench.web.scope.Scope`: another site's alert
is a 404), their acknowledgement (technologist or higher on the device's site, a comment
required, audited), and where a site's alerts are sent (admin). The alerts themselves
are computed when results are stored (:mod:`scanbench.evaluation.alerts`), never when
they are read."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from scanbench.errors import InputError
from scanbench.evaluation import alerts as service
from scanbench.store import models as m
from scanbench.web.api.app import PREFIX, Conflict, Ctx, context, route
from scanbench.web.api.routes import DEFAULT_LIMIT, Limit, Offset, Sort, _page, _sorted
from scanbench.web.api.schemas import Page, Wire
from scanbench.web.audit import commit_with_retry

router = APIRouter(prefix=PREFIX)
C = Annotated[Ctx, Depends(context)]

_SORT = {"id": m.Alert.id, "occurred_at": m.Alert.occurred_at, "opened_at": m.Alert.opened_at,
         "rule": m.Alert.rule, "state": m.Alert.state, "device_id": m.Alert.device_id}


class AlertOut(Wire):
    """One alert. ``occurred_at``/``first_at`` are the scanner's local clock time (the
    offending value; the value that opened the alert's episode, the same for every
    alert of one episode: ``GET /alerts/episodes``); ``statistic`` and ``threshold`` are
    in units of the baseline σ for trend rules, ``threshold`` is the limit in ``unit``
    for limit alerts."""

    id: int
    device_id: int
    analysis: str
    name: str
    labels: dict[str, Any]
    rule: str
    level: str
    direction: str | None
    result_id: int | None
    occurred_at: dt.datetime | None
    first_at: dt.datetime | None
    value: float | None
    unit: str
    statistic: float | None
    threshold: float | None
    limit_source: str | None
    message: str
    state: str
    opened_at: dt.datetime
    ack_user_id: int | None
    ack_at: dt.datetime | None
    ack_comment: str | None
    closed_at: dt.datetime | None
    closed_reason: str | None
    closing_result_id: int | None


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: str = Field(min_length=1, max_length=4000,
                         description="what was done or decided")


class TargetOut(Wire):
    """A notification target (its webhook secret is never returned)."""

    id: int
    site_id: int | None
    channel: str
    address: str
    digest: bool
    active: bool
    created_at: dt.datetime


class TargetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site_id: int
    channel: str = Field(description="email or webhook")
    address: str = Field(min_length=3, max_length=500)
    secret: str | None = Field(default=None, min_length=16, max_length=200,
                               description="webhook only; made at random when left out")
    digest: bool = False


class TargetCreated(TargetOut):
    """The new target; ``secret`` (webhook) is shown only here, to give the receiver."""

    secret: str | None = None


@route(router, "GET", "/alerts", "viewer", response_model=Page[AlertOut])
def alert_list(ctx: C, site_id: int | None = None, device_id: int | None = None,
               state: Annotated[str | None, Query(max_length=16, description=(
                   "open, acknowledged or closed"))] = None,
               rule: Annotated[str | None, Query(max_length=16, description=(
                   "limit, 1-3s, 2-2s, R-4s, 4-1s, 10x, cusum or ewma"))] = None,
               limit: Limit = DEFAULT_LIMIT, offset: Offset = 0,
               sort: Sort = None) -> dict[str, Any]:
    """Alerts of your devices, newest first by default, with filters."""
    query = service.alerts_query(site_id=site_id, device_id=device_id, state=state,
                                 rule=rule, base=ctx.scope.alerts())
    if sort:
        query = _sorted(query.order_by(None), sort, _SORT, "id")
    return _page(ctx, query, AlertOut, limit, offset)


class EpisodeOut(BaseModel):
    """One episode: the alerts of one series that fired while an earlier one was still
    open, told once (docs/evaluation.md section 9). ``opened_at`` is the scanner's
    local time of the value that opened it; ``rules`` in the order they fired."""

    key: str
    device_id: int
    analysis: str
    name: str
    labels: dict[str, Any]
    opened_at: dt.datetime | None
    state: str
    rules: list[str]
    alert_ids: list[int]
    message: str


@route(router, "GET", "/alerts/episodes", "viewer", response_model=Page[EpisodeOut])
def alert_episodes(ctx: C, site_id: int | None = None, device_id: int | None = None,
                   state: Annotated[str | None, Query(max_length=16, description=(
                       "open, acknowledged or closed (of the episode)"))] = None,
                   limit: Limit = DEFAULT_LIMIT, offset: Offset = 0) -> dict[str, Any]:
    """Episodes of your devices' alerts, newest first: each with its rules and alert
    ids (one notification was sent per episode and target)."""
    query = service.alerts_query(site_id=site_id, device_id=device_id,
                                 base=ctx.scope.alerts())
    if state is not None:
        service.alerts_query(state=state)  # refuses an unknown state by name
    found = [e for e in service.episodes(ctx.session, query)
             if state is None or e.state == state]
    items = [EpisodeOut(key=e.key, device_id=e.device_id, analysis=e.analysis, name=e.name,
                        labels=e.labels, opened_at=e.opened_at, state=e.state,
                        rules=list(e.rules), alert_ids=list(e.alert_ids), message=e.message)
             for e in found[offset:offset + limit]]
    return {"total": len(found), "limit": limit, "offset": offset, "items": items}


@route(router, "GET", "/alerts/{alert_id}", "viewer", response_model=AlertOut)
def alert_one(alert_id: int, ctx: C) -> m.Alert:
    """One alert."""
    return ctx.scope.alert(alert_id)


@route(router, "POST", "/alerts/{alert_id}/acknowledge", "technologist",
       response_model=AlertOut)
def alert_acknowledge(alert_id: int, body: AckIn, ctx: C) -> m.Alert:
    """Acknowledge an alert with a comment (technologist or higher on its device's
    site); audited with the values before and after. 409 when acknowledged before."""
    row = ctx.scope.alert(alert_id)
    device = ctx.session.get_one(m.Device, row.device_id)
    ctx.scope.require("technologist", device.site_id)
    try:
        commit_with_retry(ctx.session, lambda s: service.acknowledge(
            s, alert_id, ctx.actor(), body.comment))
    except service.AlertConflict as exc:
        ctx.session.rollback()
        raise Conflict(str(exc)) from None
    ctx.session.refresh(row)
    return row


@route(router, "GET", "/notification-targets", "admin", response_model=list[TargetOut])
def target_list(ctx: C) -> list[m.NotificationTarget]:
    """Where the alerts of the sites you administer are sent."""
    return list(ctx.session.scalars(ctx.scope.notification_targets()
                                    .order_by(m.NotificationTarget.id)))


@route(router, "POST", "/notification-targets", "admin", response_model=TargetCreated,
       status_code=201)
def target_add(body: TargetIn, ctx: C) -> TargetCreated:
    """Send a site's alerts by e-mail or webhook (admin of that site); audited."""
    ctx.scope.site(body.site_id)
    ctx.scope.require("admin", body.site_id)

    def work(s: Any) -> TargetCreated:
        row = service.add_target(s, ctx.actor(), site_id=body.site_id, channel=body.channel,
                                 address=body.address, secret=body.secret,
                                 digest=body.digest)
        return TargetCreated.model_validate({**TargetOut.model_validate(row).model_dump(),
                                             "secret": row.secret})

    out: TargetCreated = commit_with_retry(ctx.session, work)
    return out


@route(router, "DELETE", "/notification-targets/{target_id}", "admin", status_code=204)
def target_remove(target_id: int, ctx: C) -> Response:
    """Stop sending to a target (admin of its site); audited, the row is kept."""
    row = ctx.scope.notification_target(target_id)
    if not row.active:
        raise InputError(f"notification target {target_id} was removed before")
    commit_with_retry(ctx.session, lambda s: service.remove_target(s, ctx.actor(), target_id))
    return Response(status_code=204)

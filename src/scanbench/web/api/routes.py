"""The ``/api/v1`` endpoints. Every read goes through the caller's
:class:`~scanbench.web.scope.Scope`; every change through a service function of
:mod:`scanbench.web.auth` that writes its audit entry in the same transaction."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel
from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute

from scanbench.errors import InputError
from scanbench.store import models as m
from scanbench.store import repo
from scanbench.web import auth
from scanbench.web.api import schemas as w
from scanbench.web.api.app import COOKIE, PREFIX, Conflict, Ctx, context, route
from scanbench.web.audit import commit_with_retry, record
from scanbench.web.scope import Forbidden, NotFound

router = APIRouter(prefix=PREFIX)
C = Annotated[Ctx, Depends(context)]

#: Rows per page: default and hard maximum (a larger ``limit`` is a 422, not a cut).
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
#: History points per response: default and maximum (full data: ``format=csv``).
DEFAULT_POINTS = 1000
MAX_POINTS = 10000

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"rows, at most {MAX_LIMIT}")]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
Sort = Annotated[str | None, Query(max_length=40, description="a field; '-field' descending")]
Since = Annotated[dt.date | None, Query(description="acquired on or after (scanner's date)")]
Until = Annotated[dt.date | None, Query(description="acquired before (scanner's date)")]


def _sorted(query: Select[Any], sort: str | None,
            allowed: dict[str, InstrumentedAttribute[Any]], default: str) -> Select[Any]:
    key = sort or default
    desc = key.startswith("-")
    column = allowed.get(key.lstrip("-"))
    if column is None:
        raise InputError(f"cannot sort by {key!r}: one of {', '.join(sorted(allowed))} "
                         "(prefix '-' for descending)")
    return query.order_by(column.desc() if desc else column.asc(), *(
        [] if key.lstrip("-") == "id" else [allowed["id"].asc()]))


def _page(ctx: Ctx, query: Select[Any], out: type[BaseModel], limit: int,
          offset: int) -> dict[str, Any]:
    total = ctx.session.scalar(select(func.count()).select_from(
        query.order_by(None).subquery())) or 0
    items = [out.model_validate(row)
             for row in ctx.session.scalars(query.limit(limit).offset(offset))]
    return {"total": total, "limit": limit, "offset": offset, "items": items}


def _dates(column: InstrumentedAttribute[Any], since: dt.date | None,
           until: dt.date | None) -> list[ColumnElement[bool]]:
    conds = []
    if since is not None and until is not None and until <= since:
        raise InputError(f"date_to {until} must be after date_from {since}")
    if since is not None:
        conds.append(column >= dt.datetime.combine(since, dt.time()))
    if until is not None:
        conds.append(column < dt.datetime.combine(until, dt.time()))
    return conds


# --------------------------------------------------------------------------- auth

@route(router, "POST", "/auth/login", "public", response_model=w.Me)
def login(body: w.LoginIn, ctx: C, response: Response) -> w.Me:
    """Sign in: a new session (fresh id, the old one ended) in an HttpOnly cookie."""
    s = ctx.session
    try:
        user = auth.authenticate(s, body.username, body.password, ctx.client)
    except auth.Throttled:
        raise
    except auth.AuthError:
        s.commit()  # the failure counts towards throttling
        raise
    raw, row = auth.start_session(s, user, ctx.client, ctx.request.cookies.get(COOKIE))
    s.commit()
    secure = (ctx.request.url.scheme == "https"
              or bool(ctx.request.app.state.secure_cookies))
    response.set_cookie(COOKIE, raw, httponly=True, samesite="lax", secure=secure, path="/",
                        max_age=int(auth.SESSION_LIFETIME.total_seconds()))
    return w.Me(username=user.username, via="session",
                grants=auth.grants_of(s, user.id), csrf_token=row.csrf_token)


@route(router, "POST", "/auth/logout", "authenticated", status_code=204)
def logout(ctx: C) -> Response:
    """End this session."""
    raw = ctx.request.cookies.get(COOKIE)
    if raw:
        auth.end_session(ctx.session, raw)
        ctx.session.commit()
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/")
    return response


@route(router, "GET", "/auth/me", "authenticated", response_model=w.Me)
def me(ctx: C) -> w.Me:
    """Who is calling, their sites and roles, and (sessions) the CSRF token."""
    who = ctx.who
    return w.Me(username=who.username, via=who.via, grants=who.grants, csrf_token=who.csrf)


def _session_only(ctx: Ctx) -> None:
    if ctx.who.via != "session":
        raise Forbidden("tokens are managed only when signed in (not with a token)")


@route(router, "GET", "/tokens", "authenticated", response_model=list[w.TokenOut])
def tokens(ctx: C) -> list[m.ApiToken]:
    """Your API tokens (never the tokens themselves: only their prefixes)."""
    return list(ctx.session.scalars(select(m.ApiToken).where(
        m.ApiToken.user_id == ctx.who.user_id).order_by(m.ApiToken.id)))


@route(router, "POST", "/tokens", "authenticated", response_model=w.TokenCreated,
       status_code=201)
def token_create(body: w.TokenIn, ctx: C) -> w.TokenCreated:
    """A new API token for you, within your grants; the token is shown only here."""
    _session_only(ctx)

    def work(s: Any) -> w.TokenCreated:
        user = s.get_one(m.User, ctx.who.user_id)
        raw, row = auth.create_token(s, ctx.actor(), user, role=body.role,
                                     site_ids=body.site_ids, name=body.name,
                                     expires_at=body.expires_at)
        s.flush()
        return w.TokenCreated.model_validate({**w.TokenOut.model_validate(row).model_dump(),
                                              "token": raw})

    out: w.TokenCreated = commit_with_retry(ctx.session, work)
    return out


@route(router, "DELETE", "/tokens/{token_id}", "authenticated", status_code=204)
def token_revoke(token_id: int, ctx: C) -> Response:
    """Revoke one of your tokens."""
    _session_only(ctx)
    row = ctx.session.get(m.ApiToken, token_id)
    if row is None or row.user_id != ctx.who.user_id:
        raise NotFound(f"no token with id {token_id}")
    commit_with_retry(ctx.session, lambda s: auth.revoke_token(s, ctx.actor(), token_id))
    return Response(status_code=204)


# --------------------------------------------------------------------------- sites, devices

@route(router, "GET", "/sites", "viewer", response_model=w.Page[w.SiteOut])
def sites(ctx: C, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0,
          sort: Sort = None) -> dict[str, Any]:
    """The sites you were granted."""
    q = _sorted(ctx.scope.sites(), sort, {"id": m.Site.id, "name": m.Site.name}, "name")
    return _page(ctx, q, w.SiteOut, limit, offset)


@route(router, "GET", "/sites/{site_id}", "viewer", response_model=w.SiteOut)
def site(site_id: int, ctx: C) -> m.Site:
    """One site."""
    return ctx.scope.site(site_id)


_DEVICE_SORT: dict[str, InstrumentedAttribute[Any]] = {
    "id": m.Device.id, "manufacturer": m.Device.manufacturer, "model": m.Device.model,
    "modality": m.Device.modality, "last_seen_at": m.Device.last_seen_at,
    "site_id": m.Device.site_id}


@route(router, "GET", "/devices", "viewer", response_model=w.Page[w.DeviceOut])
def devices(ctx: C, site_id: int | None = None,
            modality: Annotated[str | None, Query(max_length=16)] = None,
            q: Annotated[str | None, Query(max_length=200, description=(
                "text in manufacturer, model, serial, name, station name or AE title"))]
            = None,
            limit: Limit = DEFAULT_LIMIT, offset: Offset = 0, sort: Sort = None
            ) -> dict[str, Any]:
    """Devices of your sites, with filters and search."""
    query = ctx.scope.devices()
    if site_id is not None:
        query = query.where(m.Device.site_id == site_id)
    if modality:
        query = query.where(m.Device.modality == modality.upper())
    if q:
        like = f"%{q.lower()}%"
        query = query.where(or_(
            *(func.lower(col).like(like) for col in (m.Device.manufacturer, m.Device.model,
                                                     m.Device.serial,
                                                     m.Device.display_name)),
            exists().where(m.DeviceAlias.device_id == m.Device.id,
                           func.lower(m.DeviceAlias.value).like(like))))
    return _page(ctx, _sorted(query, sort, _DEVICE_SORT, "id"), w.DeviceOut, limit, offset)


@route(router, "GET", "/devices/{device_id}", "viewer", response_model=w.DeviceDetail)
def device(device_id: int, ctx: C) -> w.DeviceDetail:
    """One device: identity, aliases, and software versions seen in its series' headers
    (Software Versions (0018,1020)) with when each was first and last acquired."""
    d = ctx.scope.device(device_id)
    rows = ctx.session.execute(
        select(m.Series.software_versions, func.min(m.Series.acquired_at),
               func.max(m.Series.acquired_at), func.count())
        .where(m.Series.device_id == d.id, m.Series.software_versions.is_not(None))
        .group_by(m.Series.software_versions)
        .order_by(func.min(m.Series.acquired_at))).all()
    base = w.DeviceOut.model_validate(d).model_dump()
    return w.DeviceDetail(
        **base, aliases=[w.AliasOut.model_validate(a) for a in d.aliases],
        software_history=[w.SoftwareOut(software_versions=v or "", first_acquired_at=a,
                                        last_acquired_at=b, series=n)
                          for v, a, b, n in rows])


def downsample(points: Sequence[repo.Point], max_points: int) -> list[repo.Point]:
    """Min-max decimation: the points, in time order, cut into ``max_points // 2``
    buckets of equal count; each bucket keeps its lowest and highest finite value (in
    time order), so spikes and limit crossings survive; a bucket with no finite value
    keeps its first point. Fewer points than ``max_points``: all of them."""
    return [points[i] for i in downsample_indices([p.value for p in points], max_points)]


def downsample_indices(values: Sequence[float | None], max_points: int) -> list[int]:
    """The positions :func:`downsample` keeps, from the values alone (so the rest of
    each point need be read only for the points kept)."""
    if len(values) <= max_points:
        return list(range(len(values)))
    buckets = max(1, max_points // 2)
    size = len(values) / buckets
    out: list[int] = []
    for b in range(buckets):
        start, end = int(b * size), int((b + 1) * size)
        finite = [(i, v) for i in range(start, end)
                  if (v := values[i]) is not None and math.isfinite(v)]
        if not finite:
            out.append(start)
            continue
        lo = min(finite, key=lambda iv: iv[1] or 0.0)
        hi = max(finite, key=lambda iv: iv[1] or 0.0)
        out.extend(sorted({lo[0], hi[0]}))
    return out


def _cell(value: Any) -> Any:
    """A CSV cell; text that a spreadsheet would run as a formula is quoted with a
    leading apostrophe (OWASP, "CSV Injection")."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@route(router, "GET", "/devices/{device_id}/history", "viewer", response_model=w.HistoryOut)
def history(device_id: int, ctx: C,
            analysis: Annotated[str, Query(min_length=1, max_length=120)],
            name: Annotated[str, Query(min_length=1, max_length=120)],
            labels: Annotated[str | None, Query(max_length=400, description=(
                "the measurement's labels as a JSON object (one repeat); "
                "default: every repeat"))] = None,
            date_from: Since = None, date_to: Until = None,
            max_points: Annotated[int, Query(ge=2, le=MAX_POINTS)] = DEFAULT_POINTS,
            format: Annotated[str, Query(pattern="^(json|csv)$")] = "json") -> Any:
    """One measurement of one device over time (superseded results left out): JSON
    downsampled on the server to ``max_points`` (min-max per bucket), or every point
    as CSV."""
    d = ctx.scope.device(device_id)
    wanted: dict[str, Any] | None = None
    if labels is not None:
        try:
            wanted = json.loads(labels)
        except json.JSONDecodeError:
            raise InputError("labels must be a JSON object, e.g. {\"sphere_mm\": 37}") from None
        if not isinstance(wanted, dict):
            raise InputError("labels must be a JSON object, e.g. {\"sphere_mm\": 37}")
    _dates(m.Measurement.acquired_at, date_from, date_to)  # checks the range
    since = dt.datetime.combine(date_from, dt.time(), dt.UTC) if date_from else None
    until = dt.datetime.combine(date_to, dt.time(), dt.UTC) if date_to else None
    if format == "json":
        # The values first, then every column of the points kept only (bench/web.py).
        values = repo.history_values(ctx.session, d.id, analysis, name, wanted,
                                     since=since, until=until)
        keep = downsample_indices([v for _, v in values], max_points)
        ids = [values[i][0] for i in keep]
        kept = repo.points_by_id(ctx.session, ids if not values or keep[:1] == [0]
                                 else [values[0][0], *ids])
        unit = kept[0].unit if kept else None  # the unit of the first point
        kept = kept if not values or keep[:1] == [0] else kept[1:]
        return w.HistoryOut(
            device_id=d.id, analysis=analysis, name=name, unit=unit, total=len(values),
            downsampled=len(kept) < len(values),
            method="min-max per bucket of equal count" if len(kept) < len(values) else "none",
            points=[w.PointOut(acquired_at=p.acquired_at, value=p.value,
                               uncertainty=p.uncertainty, status=p.status, labels=p.labels,
                               result_id=p.result_id, series_uid=p.series_uid, note=p.note)
                    for p in kept])
    points = repo.history(ctx.session, d.id, analysis, name, wanted, since=since,
                          until=until)
    if format == "csv":
        buf = io.StringIO()
        out = csv.writer(buf)
        out.writerow(["acquired_at", "value", "unit", "uncertainty", "status", "labels",
                      "result_id", "series_uid", "note"])
        for p in points:
            out.writerow([p.acquired_at.isoformat() if p.acquired_at else "", p.value,
                          p.unit, p.uncertainty, p.status,
                          _cell(json.dumps(p.labels, sort_keys=True)), p.result_id,
                          _cell(p.series_uid or ""), _cell(p.note or "")])
        filename = f"device{d.id}_{analysis}_{name}.csv".replace('"', "")
        return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})
    raise InputError(f"format must be json or csv, not {format!r}")  # the pattern stops it


# --------------------------------------------------------------------------- series, results

def _device_filters(site_id: int | None, device_id: int | None, modality: str | None,
                    column: InstrumentedAttribute[Any]) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if device_id is not None:
        conds.append(column == device_id)
    if site_id is not None:
        conds.append(column.in_(select(m.Device.id).where(m.Device.site_id == site_id)))
    if modality:
        conds.append(column.in_(select(m.Device.id).where(
            m.Device.modality == modality.upper())))
    return conds


@route(router, "GET", "/series", "viewer", response_model=w.Page[w.SeriesOut])
def series(ctx: C, site_id: int | None = None, device_id: int | None = None,
           modality: Annotated[str | None, Query(max_length=16)] = None,
           analysis: Annotated[str | None, Query(max_length=120)] = None,
           date_from: Since = None, date_to: Until = None,
           limit: Limit = DEFAULT_LIMIT, offset: Offset = 0, sort: Sort = None
           ) -> dict[str, Any]:
    """Series of your sites' devices."""
    conds = _device_filters(site_id, device_id, modality, m.Series.device_id)
    conds += _dates(m.Series.acquired_at, date_from, date_to)
    if analysis:
        conds.append(m.Series.analysis == analysis)
    query = ctx.scope.series().where(and_(True, *conds))
    allowed = {"id": m.Series.id, "acquired_at": m.Series.acquired_at,
               "modality": m.Series.modality, "state": m.Series.state}
    return _page(ctx, _sorted(query, sort, allowed, "-id"), w.SeriesOut, limit, offset)


@route(router, "GET", "/results", "viewer", response_model=w.Page[w.ResultOut])
def results(ctx: C, site_id: int | None = None, device_id: int | None = None,
            modality: Annotated[str | None, Query(max_length=16)] = None,
            analysis: Annotated[str | None, Query(max_length=120)] = None,
            status: Annotated[str | None, Query(description=(
                "results with at least one measurement of this status"))] = None,
            date_from: Since = None, date_to: Until = None,
            limit: Limit = DEFAULT_LIMIT, offset: Offset = 0, sort: Sort = None
            ) -> dict[str, Any]:
    """Analysis results of your sites' devices."""
    from scanbench.types import STATUSES

    conds = _device_filters(site_id, device_id, modality, m.Result.device_id)
    conds += _dates(m.Result.acquired_at, date_from, date_to)
    if analysis:
        conds.append(m.Result.analysis == analysis)
    if status is not None:
        if status not in STATUSES:
            raise InputError(f"unknown status {status!r}: one of {', '.join(STATUSES)}")
        conds.append(exists().where(m.Measurement.result_id == m.Result.id,
                                    m.Measurement.status == status))
    query = ctx.scope.results().where(and_(True, *conds))
    allowed = {"id": m.Result.id, "acquired_at": m.Result.acquired_at,
               "analysis": m.Result.analysis, "created_at": m.Result.created_at}
    return _page(ctx, _sorted(query, sort, allowed, "-id"), w.ResultOut, limit, offset)


@route(router, "GET", "/results/{result_id}", "viewer", response_model=w.ResultDetail)
def result(result_id: int, ctx: C) -> m.Result:
    """One result with every measurement, its limit, the limit's source and status."""
    return ctx.scope.result(result_id)


# --------------------------------------------------------------------------- jobs

@route(router, "GET", "/jobs", "viewer", response_model=w.Page[w.JobOut])
def jobs(ctx: C, state: Annotated[str | None, Query(max_length=16)] = None,
         limit: Limit = DEFAULT_LIMIT, offset: Offset = 0, sort: Sort = None
         ) -> dict[str, Any]:
    """Analysis and dose jobs of your sites' series and studies."""
    query = ctx.scope.jobs()
    if state:
        query = query.where(m.Job.state == state)
    allowed = {"id": m.Job.id, "created_at": m.Job.created_at, "state": m.Job.state}
    return _page(ctx, _sorted(query, sort, allowed, "-id"), w.JobOut, limit, offset)


#: States from which a job may be run again (a queued, running or interrupted job is
#: already going to run).
RETRYABLE = ("failed", "done", "cancelled")


@route(router, "POST", "/jobs/{job_id}/retry", "technologist", response_model=w.JobOut)
def job_retry(job_id: int, ctx: C) -> m.Job:
    """Run a finished job again (technologist or more on its site). The job is marked
    interrupted, the state every node resumes at its next poll (the node of ``scanbench
    serve --dicom-port`` or of ``scanbench node`` on the same database), so the web
    application needs no pipeline of its own; 409 if it is queued or running."""
    job = ctx.scope.job(job_id)
    try:
        ctx.scope.job(job_id, "technologist")
    except NotFound:
        raise Forbidden("retrying a job needs the technologist role on its site") from None

    def work(s: Any) -> None:
        s.refresh(job)
        before = {"state": job.state, "error": job.error}
        claimed = s.execute(update(m.Job).where(m.Job.id == job_id,
                                                m.Job.state.in_(RETRYABLE))
                            .values(state="interrupted", owner=None,
                                    error=f"retry requested by {ctx.who.username}")
                            .returning(m.Job.id)).first()
        if claimed is None:
            raise Conflict(f"job {job_id} is {job.state}: only a finished job "
                           f"({', '.join(RETRYABLE)}) can be run again")
        record(s, ctx.actor(), "job.retry", "job", job_id, before=before,
               after={"state": "interrupted"})

    commit_with_retry(ctx.session, work)
    ctx.session.refresh(job)
    return job


# --------------------------------------------------------------------------- users, audit

def _user_out(u: m.User, admin_sites: set[int]) -> w.UserOut:
    return w.UserOut(id=u.id, username=u.username, display_name=u.display_name,
                     email=u.email, active=u.active,
                     grants=[w.GrantOut(site_id=g.site_id, role=g.role)
                             for g in u.grants if g.site_id in admin_sites])


@route(router, "GET", "/users", "admin", response_model=w.Page[w.UserOut])
def users(ctx: C, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0,
          sort: Sort = None) -> dict[str, Any]:
    """Users holding a role on a site you administer (their grants on those sites)."""
    query = _sorted(ctx.scope.users(), sort, {"id": m.User.id, "username": m.User.username},
                    "username")
    mine = set(ctx.scope.site_ids("admin"))
    total = ctx.session.scalar(select(func.count()).select_from(
        query.order_by(None).subquery())) or 0
    rows = ctx.session.scalars(query.limit(limit).offset(offset))
    return {"total": total, "limit": limit, "offset": offset,
            "items": [_user_out(u, mine) for u in rows]}


def _admin_site(ctx: Ctx, site_id: int) -> m.Site:
    """A site the caller administers: 404 if they cannot see it, 403 if they can but
    are not its admin."""
    row = ctx.scope.site(site_id)
    ctx.scope.require("admin", site_id)
    return row


@route(router, "POST", "/users", "admin", response_model=w.UserOut, status_code=201)
def user_add(body: w.UserIn, ctx: C) -> w.UserOut:
    """Create a user with a role on a site you administer."""
    site_row = _admin_site(ctx, body.site_id)

    def work(s: Any) -> int:
        user = auth.add_user(s, ctx.actor(), body.username, body.password,
                             display_name=body.display_name, email=body.email,
                             site_id=site_row.id)
        auth.grant(s, ctx.actor(), user, site_row, body.role)
        return user.id

    uid = commit_with_retry(ctx.session, work)
    return _user_out(ctx.session.get_one(m.User, uid), set(ctx.scope.site_ids("admin")))


@route(router, "PUT", "/users/{user_id}/grants", "admin", response_model=w.UserOut)
def user_grant(user_id: int, body: w.GrantIn, ctx: C) -> w.UserOut:
    """Give a user you administer a role on a site you administer."""
    user = ctx.scope.user(user_id)
    site_row = _admin_site(ctx, body.site_id)
    commit_with_retry(ctx.session, lambda s: auth.grant(s, ctx.actor(), user, site_row,
                                                        body.role))
    ctx.session.refresh(user)
    return _user_out(user, set(ctx.scope.site_ids("admin")))


@route(router, "DELETE", "/users/{user_id}/grants/{site_id}", "admin", status_code=204)
def user_revoke(user_id: int, site_id: int, ctx: C) -> Response:
    """Take a user's role on a site you administer away."""
    user = ctx.scope.user(user_id)
    site_row = _admin_site(ctx, site_id)
    commit_with_retry(ctx.session, lambda s: auth.revoke(s, ctx.actor(), user, site_row))
    return Response(status_code=204)


@route(router, "GET", "/audit", "admin", response_model=w.Page[w.AuditOut])
def audit_log(ctx: C, action: Annotated[str | None, Query(max_length=64)] = None,
              entity: Annotated[str | None, Query(max_length=64)] = None,
              limit: Limit = DEFAULT_LIMIT, offset: Offset = 0, sort: Sort = None
              ) -> dict[str, Any]:
    """Audit entries about the sites you administer, with before/after values."""
    query = ctx.scope.audit()
    if action:
        query = query.where(m.AuditEntry.action == action)
    if entity:
        query = query.where(m.AuditEntry.entity == entity)
    allowed = {"id": m.AuditEntry.id, "at": m.AuditEntry.at}
    return _page(ctx, _sorted(query, sort, allowed, "-id"), w.AuditOut, limit, offset)

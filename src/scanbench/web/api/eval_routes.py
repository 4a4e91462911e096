"""``/api/v1`` endpoints of the evaluation layer (issue 13 §1-§3): stored specs and their
diff, spec assignments by device class, scorecards (list, one, recompute, aggregated per
model or site) and due lists per device and per site.

Access rules (each route's ``x-required-role`` and the per-record checks):

* reading specs, assignments, scorecards and due lists: viewer (records of other sites
  are 404, through :class:`~scanbench.web.scope.Scope`);
* recomputing a device's scorecards: physicist on the device's site;
* creating or ending an assignment: admin of every site it touches — the device's site
  for a device assignment, the site for a site assignment, and **every site in the
  database** for a fleet-wide class assignment (no device, no site), because it changes
  how every site's devices are judged. A caller who cannot see the device or site
  named gets 404.

Every change is audited with before/after in its transaction
(:mod:`scanbench.evaluation.assign`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from scanbench.errors import InputError
from scanbench.evaluation import assign as A
from scanbench.evaluation import scorecard as S
from scanbench.store import models as m
from scanbench.web.api.app import PREFIX, Ctx, context, route
from scanbench.web.audit import commit_with_retry, record
from scanbench.web.scope import Forbidden

router = APIRouter(prefix=PREFIX)
C = Annotated[Ctx, Depends(context)]
Name = Annotated[str, Field(min_length=1, max_length=120)]


# --------------------------------------------------------------------------- wire models

class Wire(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class SpecOut(Wire):
    id: int
    name: str
    version: str
    title: str
    verified: bool
    sha256: str | None
    extends: str | None
    origin: str
    created_at: dt.datetime


class SpecDetail(SpecOut):
    yaml: str
    parsed: dict[str, Any]


class SpecDiffOut(BaseModel):
    a: dict[str, Any]
    b: dict[str, Any]
    changes: list[dict[str, Any]]


class AssignmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    spec_name: Name
    device_id: int | None = None
    site_id: int | None = None
    modality: str | None = Field(None, max_length=16)
    manufacturer: str | None = Field(None, max_length=200)
    model: str | None = Field(None, max_length=200)
    field_strength_min_t: float | None = Field(None, ge=0, le=20)
    field_strength_max_t: float | None = Field(None, ge=0, le=20)
    axial_fov_min_cm: float | None = Field(None, ge=0, le=1000)
    axial_fov_max_cm: float | None = Field(None, ge=0, le=1000)
    priority: int = Field(0, ge=-1000, le=1000)
    valid_from: dt.datetime | None = Field(None, description="aware instant; default now")


class AssignmentOut(Wire):
    id: int
    spec_name: str
    device_id: int | None
    site_id: int | None
    modality: str | None
    manufacturer: str | None
    model: str | None
    field_strength_min_t: float | None
    field_strength_max_t: float | None
    axial_fov_min_cm: float | None
    axial_fov_max_cm: float | None
    priority: int
    active: bool
    valid_from: dt.datetime
    valid_until: dt.datetime | None
    user_id: int | None


class ScorecardOut(Wire):
    id: int
    device_id: int
    spec_id: int
    period_start: dt.datetime | None
    period_end: dt.datetime | None
    score: float | None
    status: str
    compliance: float | None
    inputs_hash: str | None
    created_at: dt.datetime


class ScorecardDetail(ScorecardOut):
    data: dict[str, Any]


class RecomputeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date_from: dt.date = Field(description="first day (the site's local date)")
    date_to: dt.date = Field(description="last day, included (the site's local date)")


class PartOut(BaseModel):
    start: dt.datetime
    end: dt.datetime
    added: bool
    scorecard: ScorecardDetail | None
    notes: list[str]


class DueItemOut(BaseModel):
    test: str
    frequency: str
    status: str
    due_from: dt.datetime | None
    deadline: dt.datetime | None
    overdue_since: dt.datetime | None
    last_done: dt.datetime | None
    last_passed: bool | None
    reason: str
    spec: str


class DueListOut(BaseModel):
    device_id: int
    at: dt.datetime
    spec: str | None
    items: list[DueItemOut]
    notes: list[str]


class AggregateOut(BaseModel):
    by: str
    groups: list[dict[str, Any]]


# --------------------------------------------------------------------------- helpers

def _builtins(ctx: Ctx) -> None:
    """Shipped specs are stored on first use (idempotent; a concurrent first use that
    stored them first is fine)."""
    s = ctx.session
    try:
        A.ensure_builtin_specs(s)
        s.commit()
    except IntegrityError:
        s.rollback()


def _day_start(d: dt.date, zone: Any) -> dt.datetime:
    return A.to_utc(dt.datetime.combine(d, dt.time()), zone)


def _due_out(device_id: int, dl: Any) -> DueListOut:
    return DueListOut(device_id=device_id, at=dl.at, spec=dl.spec,
                      items=[DueItemOut(**{k: getattr(i, k) for k in DueItemOut.model_fields})
                             for i in dl.items], notes=list(dl.notes))


def _assignment_sites(ctx: Ctx, a: A.DeviceClassCriteria | m.SpecAssignment) -> list[int]:
    """The sites whose admin the caller must be (module docstring); 404 for a device or
    site the caller cannot see."""
    if a.device_id is not None:
        dev = ctx.scope.device(a.device_id)
        if dev.site_id is None:
            raise InputError(f"device {dev.id} belongs to no site")
        return [dev.site_id]
    if a.site_id is not None:
        return [ctx.scope.site(a.site_id).id]
    return A.sites_touched(ctx.session, a)


def _require_admin(ctx: Ctx, sites: list[int], what: str) -> None:
    missing = [s for s in sites if not ctx.who.may("admin", s)]
    if missing or not sites:
        raise Forbidden(f"{what} needs the admin role on every site it touches "
                        f"({len(sites)} site(s); a fleet-wide assignment touches every site)")


# --------------------------------------------------------------------------- specs

@route(router, "GET", "/specs", "viewer", response_model=list[SpecOut])
def specs(ctx: C) -> list[m.Spec]:
    """Every stored spec version (shipped specs are stored on first use), by name."""
    _builtins(ctx)
    return list(ctx.session.scalars(select(m.Spec).order_by(m.Spec.name, m.Spec.created_at,
                                                            m.Spec.id)))


def _spec_detail(ctx: Ctx, row: m.Spec) -> SpecDetail:
    from scanbench.catalogue import spec_json

    parsed = spec_json(A.parse_stored(ctx.session, row))
    return SpecDetail.model_validate({**SpecOut.model_validate(row).model_dump(),
                                      "yaml": row.yaml, "parsed": parsed})


@route(router, "GET", "/specs/{name}", "viewer", response_model=SpecDetail)
def spec_newest(name: str, ctx: C) -> SpecDetail:
    """The newest stored version of a spec: its exact YAML text and its limits."""
    _builtins(ctx)
    return _spec_detail(ctx, _stored(ctx, name, None))


@route(router, "GET", "/specs/{name}/{version}", "viewer", response_model=SpecDetail)
def spec_version(name: str, version: str, ctx: C) -> SpecDetail:
    """One stored version of a spec."""
    _builtins(ctx)
    return _spec_detail(ctx, _stored(ctx, name, version))


def _stored(ctx: Ctx, name: str, version: str | None) -> m.Spec:
    from scanbench.web.scope import NotFound

    try:
        return A.stored_spec(ctx.session, name, version)
    except InputError as exc:
        raise NotFound(str(exc)) from None


@route(router, "GET", "/spec-diff", "viewer", response_model=SpecDiffOut)
def spec_diff(ctx: C, a: Annotated[str, Query(min_length=1, max_length=160, description=(
                  "spec A: NAME (newest version) or NAME@VERSION"))],
              b: Annotated[str, Query(min_length=1, max_length=160)]) -> SpecDiffOut:
    """What changed from stored spec A to stored spec B (limits, tests, weights)."""
    from scanbench.catalogue import diff_json
    from scanbench.specs.diff import diff_specs

    _builtins(ctx)
    pa, pb = (A.parse_stored(ctx.session, _stored(ctx, *_name_version(x))) for x in (a, b))
    return SpecDiffOut.model_validate(diff_json(pa, pb, diff_specs(pa, pb)))


def _name_version(ref: str) -> tuple[str, str | None]:
    name, _, version = ref.partition("@")
    return name.strip(), (version.strip() or None)


# --------------------------------------------------------------------------- assignments

@route(router, "GET", "/spec-assignments", "viewer", response_model=list[AssignmentOut])
def assignments(ctx: C, include_ended: bool = False) -> list[m.SpecAssignment]:
    """Spec assignments of your sites and devices, and the fleet-wide ones."""
    q = ctx.scope.spec_assignments()
    if not include_ended:
        q = q.where(m.SpecAssignment.active.is_(True))
    return list(ctx.session.scalars(q.order_by(m.SpecAssignment.id.desc())))


@route(router, "POST", "/spec-assignments", "admin", response_model=AssignmentOut,
       status_code=201)
def assignment_add(body: AssignmentIn, ctx: C) -> m.SpecAssignment:
    """Assign a spec to a device class (admin of every site it touches: see the module
    docstring); audited."""
    crit = A.DeviceClassCriteria(
        device_id=body.device_id, site_id=body.site_id, modality=body.modality,
        manufacturer=body.manufacturer, model=body.model,
        field_strength_min_t=body.field_strength_min_t,
        field_strength_max_t=body.field_strength_max_t,
        axial_fov_min_cm=body.axial_fov_min_cm, axial_fov_max_cm=body.axial_fov_max_cm)
    _require_admin(ctx, _assignment_sites(ctx, crit), "assigning a spec")
    if body.valid_from is not None and body.valid_from.tzinfo is None:
        raise InputError("valid_from needs its time zone (e.g. 2026-01-01T00:00:00Z)")
    row: m.SpecAssignment = commit_with_retry(ctx.session, lambda s: A.assign(
        s, ctx.actor(), body.spec_name, crit, priority=body.priority,
        valid_from=body.valid_from))
    return row


@route(router, "POST", "/spec-assignments/{assignment_id}/deactivate", "admin",
       response_model=AssignmentOut)
def assignment_end(assignment_id: int, ctx: C) -> m.SpecAssignment:
    """End an assignment now (it stays stored; past periods keep their spec); admin of
    every site it touches; audited."""
    row = ctx.scope.spec_assignment(assignment_id)
    _require_admin(ctx, _assignment_sites(ctx, row), "ending a spec assignment")
    out: m.SpecAssignment = commit_with_retry(
        ctx.session, lambda s: A.deactivate(s, ctx.actor(), assignment_id))
    return out


# --------------------------------------------------------------------------- scorecards

@route(router, "GET", "/devices/{device_id}/scorecards", "viewer",
       response_model=list[ScorecardOut])
def device_scorecards(device_id: int, ctx: C) -> list[m.Scorecard]:
    """Every stored scorecard of the device, newest period first."""
    d = ctx.scope.device(device_id)
    return list(ctx.session.scalars(ctx.scope.scorecards().where(
        m.Scorecard.device_id == d.id).order_by(m.Scorecard.period_end.desc(),
                                                m.Scorecard.id.desc())))


@route(router, "POST", "/devices/{device_id}/scorecards", "physicist",
       response_model=list[PartOut])
def device_score(device_id: int, body: RecomputeIn, ctx: C) -> list[PartOut]:
    """Score the device from ``date_from`` to ``date_to`` (local dates, included): one
    scorecard per spec version in force; unchanged inputs add nothing (physicist on the
    device's site)."""
    d = ctx.scope.device(device_id)
    ctx.scope.require("physicist", d.site_id)
    if body.date_to < body.date_from:
        raise InputError(f"date_to {body.date_to} is before date_from {body.date_from}")
    zone = A.site_zone(ctx.session, d)
    start = _day_start(body.date_from, zone)
    end = _day_start(body.date_to + dt.timedelta(days=1), zone)
    now = dt.datetime.now(dt.UTC)

    def work(s: Any) -> list[S.ScorecardOutcome]:
        parts = S.compute_scorecards(s, d.id, start, min(end, now), now)
        for p in parts:
            if p.added and p.row is not None:
                record(s, ctx.actor(), "scorecard.compute", "scorecard", p.row.id,
                       site_id=d.site_id, after={"device_id": d.id, "spec_id": p.row.spec_id,
                                                 "score": p.row.score,
                                                 "inputs_hash": p.row.inputs_hash})
        return parts

    parts: list[S.ScorecardOutcome] = commit_with_retry(ctx.session, work)
    return [PartOut(start=p.start, end=p.end, added=p.added, notes=list(p.notes),
                    scorecard=ScorecardDetail.model_validate(p.row) if p.row else None)
            for p in parts]


@route(router, "GET", "/scorecards/summary", "viewer", response_model=AggregateOut)
def scorecards_summary(ctx: C, by: Annotated[Literal["model", "site"], Query()] = "model",
                       site_id: int | None = None) -> AggregateOut:
    """Each visible device's newest scorecard pooled per model or per site."""
    q = ctx.scope.devices()
    if site_id is not None:
        q = q.where(m.Device.site_id == ctx.scope.site(site_id).id)
    devs = list(ctx.session.scalars(q.order_by(m.Device.id)))
    return AggregateOut(by=by, groups=S.aggregate(ctx.session, devs, by))


@route(router, "GET", "/scorecards/{scorecard_id}", "viewer", response_model=ScorecardDetail)
def scorecard(scorecard_id: int, ctx: C) -> m.Scorecard:
    """One scorecard: each required test's status with its reason and evidence (result
    ids), each dimension's score, the compliance figures and the spec version."""
    return ctx.scope.scorecard(scorecard_id)


# --------------------------------------------------------------------------- due lists

@route(router, "GET", "/devices/{device_id}/due", "viewer", response_model=DueListOut)
def device_due(device_id: int, ctx: C) -> DueListOut:
    """What is due for the device now (the site's local time)."""
    d = ctx.scope.device(device_id)
    return _due_out(d.id, S.due_list_for_device(ctx.session, d.id))


@route(router, "GET", "/sites/{site_id}/due", "viewer", response_model=list[DueListOut])
def site_due(site_id: int, ctx: C) -> list[DueListOut]:
    """What is due now for every active device of the site."""
    site = ctx.scope.site(site_id)
    ids = list(ctx.session.scalars(ctx.scope.devices().with_only_columns(m.Device.id)
                                   .where(m.Device.site_id == site.id)))
    return [_due_out(int(dl.device), dl)
            for dl in S.due_list_for_site(ctx.session, site.id, device_ids=ids)]

"""``/api/v1`` endpoints of the programme's clinical and usability evidence (issue 14 §4,
§5): reader studies and System Usability Scale questionnaires.

Role rules:

* a reader study belongs to a site: creating it, adding its cases (series the caller
  sees) and readers, closing it and reading its results need physicist on that site;
* a reader (any signed-in user assigned to the study, whatever their grants: a
  radiologist of another hospital reads blinded cases) sees the studies they read and
  their cases' images, never a case's device or site when the study is blinded;
  a reviewer is not a reader by their role, only by assignment;
* a SUS questionnaire about a device: viewer on the device's site (anyone who uses it);
  SUS summaries: viewer, over the devices the caller sees;
* training records: physicist on the site records them and sees the reminders of the
  sites where they are physicist.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import or_, select

from scanbench.errors import InputError
from scanbench.programme import readers, sus, training
from scanbench.store import models as m
from scanbench.web.api.app import PREFIX, Ctx, context, route
from scanbench.web.audit import commit_with_retry
from scanbench.web.scope import NotFound

router = APIRouter(prefix=PREFIX)
C = Annotated[Ctx, Depends(context)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StudyIn(_In):
    name: str = Field(min_length=1, max_length=120)
    title: str = Field("", max_length=300)
    site_id: int
    criteria: list[str] = Field(min_length=1, max_length=readers.MAX_CRITERIA)
    blinded: bool = True
    scale_min: int = Field(1, ge=0, le=10)
    scale_max: int = Field(5, ge=1, le=20)


class StudyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    title: str
    site_id: int | None
    criteria: list[str]
    blinded: bool
    scale_min: int
    scale_max: int
    state: str


class CaseIn(_In):
    series_id: int
    label: str | None = Field(None, max_length=120)
    pair_key: str | None = Field(None, max_length=120)


class CaseOut(BaseModel):
    id: int
    label: str


class ReaderIn(_In):
    user_id: int
    seed: int | None = Field(None, ge=0, le=2**31 - 1)


class ReaderOut(BaseModel):
    user_id: int
    seed: int
    case_order: list[int]


class SusIn(_In):
    device_id: int
    role: str = Field(min_length=1, max_length=32)
    answers: list[int] = Field(min_length=10, max_length=10,
                               description="items 1..10, each 1 (strongly disagree) .. 5")


class SusOut(BaseModel):
    id: int
    device_id: int
    role: str
    score: float
    method: str = sus.SOURCE


def _managed(ctx: Ctx, study_id: int) -> m.ReaderStudy:
    """A study the caller manages (physicist on its site); else 404 (another site's
    study is not shown) or 403."""
    study = ctx.session.get(m.ReaderStudy, study_id)
    if study is None or (study.site_id is not None
                         and study.site_id not in ctx.who.sites_with("viewer")):
        raise NotFound(f"no reader study {study_id}")
    ctx.scope.require("physicist", study.site_id)
    return study


def _readable(ctx: Ctx, study_id: int) -> m.ReaderStudy:
    """A study the caller reads (assigned) or manages; else 404."""
    study = ctx.session.get(m.ReaderStudy, study_id)
    if study is None:
        raise NotFound(f"no reader study {study_id}")
    if readers.assignment(ctx.session, study.id, ctx.who.user_id) is not None:
        return study
    if study.site_id is not None and ctx.who.may("physicist", study.site_id):
        return study
    raise NotFound(f"no reader study {study_id}")


@route(router, "GET", "/reader-studies", "authenticated", response_model=list[StudyOut])
def study_list(ctx: C) -> list[m.ReaderStudy]:
    """The reader studies you read or manage."""
    mine = select(m.ReaderAssignment.study_id).where(
        m.ReaderAssignment.user_id == ctx.who.user_id)
    managed = ctx.who.sites_with("physicist")
    return list(ctx.session.scalars(select(m.ReaderStudy).where(or_(
        m.ReaderStudy.id.in_(mine), m.ReaderStudy.site_id.in_(managed)))
        .order_by(m.ReaderStudy.id)))


@route(router, "POST", "/reader-studies", "physicist", response_model=StudyOut,
       status_code=201)
def study_create(body: StudyIn, ctx: C) -> m.ReaderStudy:
    """Create a reader study on a site where you are physicist."""
    ctx.scope.site(body.site_id)
    ctx.scope.require("physicist", body.site_id)
    row: m.ReaderStudy = commit_with_retry(ctx.session, lambda s: readers.create_study(
        s, ctx.actor(), body.name, body.criteria, title=body.title, blinded=body.blinded,
        site_id=body.site_id, scale_min=body.scale_min, scale_max=body.scale_max))
    return row


@route(router, "POST", "/reader-studies/{study_id}/cases", "physicist",
       response_model=CaseOut, status_code=201)
def study_add_case(study_id: int, body: CaseIn, ctx: C) -> CaseOut:
    """Add a series you see as a case (before readers are assigned)."""
    study = _managed(ctx, study_id)
    series = ctx.scope.one_series(body.series_id)
    row: m.ReaderCase = commit_with_retry(ctx.session, lambda s: readers.add_case(
        s, ctx.actor(), study.id, series.id, label=body.label, pair_key=body.pair_key))
    return CaseOut(id=row.id, label=row.label)


@route(router, "POST", "/reader-studies/{study_id}/readers", "physicist",
       response_model=ReaderOut, status_code=201)
def study_add_reader(study_id: int, body: ReaderIn, ctx: C) -> ReaderOut:
    """Assign a reader (any user) with their seeded random order of the cases."""
    study = _managed(ctx, study_id)
    row: m.ReaderAssignment = commit_with_retry(ctx.session, lambda s: readers.assign_reader(
        s, ctx.actor(), study.id, body.user_id, seed=body.seed))
    return ReaderOut(user_id=row.user_id, seed=row.seed, case_order=list(row.case_order))


@route(router, "GET", "/reader-studies/{study_id}/results", "physicist",
       response_model=dict[str, Any])
def study_results(study_id: int, ctx: C) -> dict[str, Any]:
    """Per-criterion means by model (95 % t intervals), weighted kappa and ICC(2,1)
    between readers, and the paired comparison of two models."""
    study = _managed(ctx, study_id)
    return readers.results(ctx.session, study.id)


@route(router, "GET", "/reader-studies/{study_id}/cases/{case_id}/image.png",
       "authenticated", response_class=Response)
def study_case_image(study_id: int, case_id: int, ctx: C) -> Response:
    """The case's middle image (pixels only, no header text) for its readers."""
    from scanbench.web.pages.result import figures_home

    study = _readable(ctx, study_id)
    case = ctx.session.get(m.ReaderCase, case_id)
    if case is None or case.study_id != study.id:
        raise NotFound(f"no case {case_id} in this study")
    home = figures_home(ctx.request)
    if home is None:
        raise InputError("this server keeps no DICOM files: the case cannot be shown")
    png = readers.case_image_png(ctx.session, case, home / "files")
    return Response(png, media_type="image/png", headers={"Cache-Control": "private"})


@route(router, "POST", "/sus", "viewer", response_model=SusOut, status_code=201)
def sus_add(body: SusIn, ctx: C) -> SusOut:
    """Record your System Usability Scale answers about a device (Brooke 1996 scoring)."""
    dev = ctx.scope.device(body.device_id)
    row: m.SusResponse = commit_with_retry(ctx.session, lambda s: sus.add_response(
        s, ctx.actor(), dev.id, body.role, body.answers, user_id=ctx.who.user_id))
    return SusOut(id=row.id, device_id=row.device_id, role=row.role, score=row.score)


@route(router, "GET", "/sus/summary", "viewer", response_model=dict[str, Any])
def sus_summary(ctx: C, device_id: Annotated[int | None, Query()] = None) -> dict[str, Any]:
    """SUS per device and role, per model and by year of each device's life (95 % t
    intervals), over the devices you see (or one)."""
    if device_id is not None:
        ids = [ctx.scope.device(device_id).id]
    else:
        ids = list(ctx.session.scalars(ctx.scope.device_ids()))
    return sus.summarise(ctx.session, ids)


# --------------------------------------------------------------------------- training

class TrainingIn(_In):
    user_id: int
    site_id: int
    topic: str = Field(description="device_operation, qc_procedure or radiation_safety")
    completed_on: dt.date
    expires_on: dt.date | None = None
    valid_days: int | None = Field(None, gt=0, le=3650)
    device_id: int | None = None
    procedure_key: str | None = Field(None, max_length=120,
                                      description="<spec>:<test>, e.g. "
                                      "earl1:pet.nema_nu2_2018.image_quality")
    provider: str = Field("", max_length=200)
    note: str = Field("", max_length=2000)


class TrainingOut(BaseModel):
    id: int
    user_id: int
    topic: str
    completed_on: dt.date
    expires_on: dt.date | None


@route(router, "POST", "/training", "physicist", response_model=TrainingOut,
       status_code=201)
def training_add(body: TrainingIn, ctx: C) -> TrainingOut:
    """Record a person's completed training (physicist on the site)."""
    ctx.scope.site(body.site_id)
    ctx.scope.require("physicist", body.site_id)
    # staff of the site: a user holding any grant there (Scope.user is for admins)
    user = ctx.session.scalars(select(m.User).join(m.Grant, m.Grant.user_id == m.User.id)
                               .where(m.User.id == body.user_id,
                                      m.Grant.site_id == body.site_id)).first()
    if user is None:
        raise NotFound(f"no user {body.user_id} with a role on site {body.site_id}")
    if body.device_id is not None and ctx.scope.device(body.device_id).site_id != body.site_id:
        raise InputError("device_id: the device is not on this site")
    row: m.TrainingRecord = commit_with_retry(ctx.session, lambda s: training.add_record(
        s, ctx.actor(), user.id, body.topic, body.completed_on, expires_on=body.expires_on,
        valid_days=body.valid_days, site_id=body.site_id, device_id=body.device_id,
        procedure_key=body.procedure_key, provider=body.provider, note=body.note))
    return TrainingOut(id=row.id, user_id=row.user_id, topic=row.topic,
                       completed_on=row.completed_on, expires_on=row.expires_on)


@route(router, "GET", "/training/due", "physicist", response_model=list[dict[str, Any]])
def training_due(ctx: C, within: Annotated[int, Query(ge=0, le=3650)] = training.DUE_SOON_DAYS
                 ) -> list[dict[str, Any]]:
    """Training of your sites (where you are physicist) that has expired or expires
    within ``within`` days: the reminders, most urgent first."""
    return training.reminders(ctx.session, dt.date.today(), within_days=within,
                              site_ids=ctx.who.sites_with("physicist"))

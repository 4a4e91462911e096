"""``/api/v1/reviews``: the expert review queue at the central node (issue 14 §2-3).

Every route needs the ``reviewer`` role (:func:`scanbench.web.auth.satisfies`: only a
reviewer grant, not a higher rank) and sees only the reviews of the sites the caller
reviews: another site's review is a 404. The queue is ordered by the automatic triage
score (:mod:`scanbench.programme.triage`), most unusual first. A decision (accepted /
rejected with a reason, and a comment) is audited and flows back to the site through
the federation (``GET /api/v1/fed/decisions``).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from scanbench.programme import review as service
from scanbench.store import models as m
from scanbench.web.api.app import PREFIX, Ctx, context, route
from scanbench.web.api.routes import DEFAULT_LIMIT, Limit, Offset, _page
from scanbench.web.api.schemas import Page, Wire
from scanbench.web.audit import commit_with_retry
from scanbench.web.scope import NotFound

router = APIRouter(prefix=PREFIX)
C = Annotated[Ctx, Depends(context)]
ROLE = "reviewer"


class ReviewOut(Wire):
    """One review. ``triage_score``: robust Mahalanobis distance of the result's
    measurements from its device class's normal behaviour (higher = more unusual; null:
    not scored, the first driver's ``note`` says why); ``triage_drivers``: the
    measurements that drove it (``contribution``: drop in the squared distance when the
    value is replaced by the class median; ``z``: robust standardised residual)."""

    id: int
    result_id: int
    site_id: int | None
    state: str
    triage_score: float | None
    triage_drivers: list[Any]
    triage_model: str | None
    reviewer_id: int | None
    decided_at: dt.datetime | None
    reason: str | None
    comment: str | None
    created_at: dt.datetime
    sent_back_at: dt.datetime | None


class MeasurementOut(BaseModel):
    name: str
    labels: dict[str, Any]
    value: float | None
    unit: str
    status: str
    limit_low: float | None
    limit_high: float | None
    limit_source: str | None


class ReviewDetail(ReviewOut):
    """A review with its evidence: the result's numbers and where its page (figures,
    numbers, the de-identified images where enabled) is."""

    analysis: str
    standard: str
    device_id: int | None
    acquired_at: dt.datetime | None
    result_page: str
    images: int = Field(description="de-identified instances the site sent for review "
                        "(0 unless the site enabled image upload); shown on the result page")
    measurements: list[MeasurementOut]


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["accepted", "rejected"]
    reason: str | None = Field(default=None, max_length=service.MAX_TEXT,
                               description="required for a rejection")
    comment: str | None = Field(default=None, max_length=service.MAX_TEXT)


State = Annotated[Literal["queued", "accepted", "rejected", "all"],
                  Query(description="queued (default), accepted, rejected or all")]


def _one(ctx: Ctx, review_id: int) -> m.Review:
    row = ctx.session.scalars(service.queue_query(ctx.scope.site_ids(ROLE), None)
                              .where(m.Review.id == review_id)).first()
    if row is None:
        raise NotFound(f"no review with id {review_id}")
    return row


def _images(ctx: Ctx, res: m.Result) -> int:
    if res.series_id is None:
        return 0
    return int(ctx.session.scalar(select(func.count()).select_from(m.Instance).where(
        m.Instance.series_id == res.series_id)) or 0)


@route(router, "GET", "/reviews", ROLE, response_model=Page[ReviewOut])
def review_queue(ctx: C, state: State = "queued", limit: Limit = DEFAULT_LIMIT,
                 offset: Offset = 0) -> dict[str, Any]:
    """The reviews of the sites you review, most unusual result first."""
    q = service.queue_query(ctx.scope.site_ids(ROLE), None if state == "all" else state)
    return _page(ctx, q, ReviewOut, limit, offset)


@route(router, "GET", "/reviews/{review_id}", ROLE, response_model=ReviewDetail)
def review_one(review_id: int, ctx: C) -> ReviewDetail:
    """One review with the result's measurements and the address of its page."""
    row = _one(ctx, review_id)
    res = ctx.session.get_one(m.Result, row.result_id)
    meas = ctx.session.scalars(select(m.Measurement).where(
        m.Measurement.result_id == res.id).order_by(m.Measurement.id)).all()
    return ReviewDetail(
        **ReviewOut.model_validate(row).model_dump(), analysis=res.analysis,
        standard=res.standard, device_id=res.device_id, acquired_at=res.acquired_at,
        result_page=f"/results/{res.id}", images=_images(ctx, res),
        measurements=[MeasurementOut.model_validate(x, from_attributes=True) for x in meas])


@route(router, "POST", "/reviews/{review_id}/decision", ROLE, response_model=ReviewOut)
def review_decide(review_id: int, body: DecisionIn, ctx: C) -> m.Review:
    """Accept or reject the result (a rejection needs a reason); audited; the site
    receives it with the comment, and a rejection reopens the test on its due list."""
    row = _one(ctx, review_id)
    ctx.scope.require(ROLE, row.site_id)
    commit_with_retry(ctx.session, lambda s: service.decide(
        s, ctx.actor(), s.get_one(m.Review, review_id), body.decision, body.reason,
        body.comment))
    ctx.session.refresh(row)
    return row

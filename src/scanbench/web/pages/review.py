"""``/review``: the expert review queue page at the central node (issue 14 §2-3): the
queued results of the sites the caller reviews, most unusual first (triage score and
the measurements that drove it), a link to each result's page (figures, numbers), and
a form to accept or reject with a reason and a comment (CSRF-checked, audited; the
same service as ``POST /api/v1/reviews/{id}/decision``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from scanbench.programme import review as service
from scanbench.store import models as m
from scanbench.web.audit import commit_with_retry
from scanbench.web.pages.common import P, nav, page, redirect, render
from scanbench.web.scope import NotFound

router = APIRouter()
nav("Review", "/review", order=80)
ROLE = "reviewer"


@page(router, "/review", ROLE)
def review_page(ctx: P, state: str = "queued") -> HTMLResponse:
    """The queue (or the decided reviews) with the device and result of each row."""
    sites = ctx.scope.site_ids(ROLE)
    q = service.queue_query(sites, None if state == "all" else state).limit(500)
    rows: list[dict[str, Any]] = []
    for rv in ctx.session.scalars(q):
        res = ctx.session.get_one(m.Result, rv.result_id)
        dev = ctx.session.get(m.Device, res.device_id) if res.device_id else None
        site = ctx.session.get(m.Site, rv.site_id) if rv.site_id else None
        rows.append({"review": rv, "result": res, "device": dev, "site": site})
    return render(ctx, "review.html", rows=rows, state=state,
                  counts=service.counts(ctx.session, sites), states=service.STATES)


@page(router, "/review/{review_id}/decision", ROLE, methods=("POST",))
def review_decide_page(ctx: P, review_id: int) -> Response:
    row = ctx.session.scalars(service.queue_query(ctx.scope.site_ids(ROLE), None)
                              .where(m.Review.id == review_id)).first()
    if row is None:
        raise NotFound(f"no review with id {review_id}")
    ctx.scope.require(ROLE, row.site_id)
    form = ctx.form
    commit_with_retry(ctx.session, lambda s: service.decide(
        s, ctx.actor(), s.get_one(m.Review, review_id), str(form.get("decision", "")),
        str(form.get("reason", "")), str(form.get("comment", ""))))
    return redirect("/review")


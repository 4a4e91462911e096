"""Reader study pages (issue 14 §4): a reader scores one case at a time in their own
random order (``/reader-studies/{id}/read``), seeing the case's image and label only
when the study is blinded; the list of studies you read or manage.

The clinical DICOM studies already have ``/studies/{id}`` (web/pages/dose.py), so
reader studies live under ``/reader-studies``.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import or_, select

from scanbench.programme import readers
from scanbench.store import models as m
from scanbench.web.api.study_routes import _readable
from scanbench.web.audit import commit_with_retry
from scanbench.web.pages.common import P, nav, page, redirect, render
from scanbench.web.scope import NotFound

router = APIRouter()
nav("Reader studies", "/reader-studies", order=70)


@page(router, "/reader-studies", "authenticated")
def study_list(ctx: P) -> HTMLResponse:
    """The studies you read (with your progress) or manage."""
    mine = select(m.ReaderAssignment.study_id).where(
        m.ReaderAssignment.user_id == ctx.who.user_id)
    rows = ctx.session.scalars(select(m.ReaderStudy).where(or_(
        m.ReaderStudy.id.in_(mine),
        m.ReaderStudy.site_id.in_(ctx.who.sites_with("physicist"))))
        .order_by(m.ReaderStudy.id)).all()
    items = []
    for s in rows:
        _next, done, total = readers.progress(ctx.session, s, ctx.who.user_id)
        items.append({"study": s, "done": done, "total": total})
    return render(ctx, "studies.html", items=items)


@page(router, "/reader-studies/{study_id}/read", "authenticated")
def read(ctx: P, study_id: int) -> HTMLResponse:
    """Your next case: its label, its image, and one choice per criterion."""
    study = _readable(ctx, study_id)
    if readers.assignment(ctx.session, study.id, ctx.who.user_id) is None:
        raise NotFound(f"you are not a reader of study {study_id}")
    nxt, done, total = readers.progress(ctx.session, study, ctx.who.user_id)
    case = ctx.session.get(m.ReaderCase, nxt) if nxt is not None else None
    facts = readers.case_facts(ctx.session, study, case) if case is not None else {}
    scale = list(range(study.scale_min, study.scale_max + 1))
    return render(ctx, "studies_read.html", study=study, case=case, facts=facts,
                  done=done, total=total, scale=scale)


@page(router, "/reader-studies/{study_id}/read", "authenticated", methods=("POST",))
def read_submit(ctx: P, study_id: int) -> Response:
    """Store your scores of the case (every criterion), then the next case."""
    study = _readable(ctx, study_id)
    try:
        case_id = int(ctx.form.get("case_id", ""))
    except ValueError:
        raise NotFound("no such case") from None
    scores = {c: ctx.form.get(f"score_{i}", "") for i, c in enumerate(study.criteria)}
    commit_with_retry(ctx.session, lambda s: readers.score_case(
        s, ctx.actor(), study.id, case_id, ctx.who.user_id, scores))
    return redirect(f"/reader-studies/{study.id}/read")

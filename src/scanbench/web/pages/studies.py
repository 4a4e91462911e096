"""Reader study pages (issue 14 §4): a reader scores one case at a time in their own
random order (``/reader-studies/{id}/read``), seeing the case's image and label only
when the study is blinded; the list of studies you read or manage. QC procedure cards
(``/procedures/<spec>:<test>/card``, printable) and their competency quizzes
(``/procedures/<spec>:<test>/quiz``, each attempt recorded).

The clinical DICOM studies already have ``/studies/{id}`` (web/pages/dose.py), so
reader studies live under ``/reader-studies``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import or_, select

from scanbench.errors import ScanbenchError
from scanbench.programme import cards, readers, sus, training
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
        items.append({"study": s, "done": done, "total": total,
                      "manage": s.site_id is not None and ctx.who.may("physicist", s.site_id)})
    if any(i["manage"] for i in items):  # the results link is shown: their imports begin
        from scanbench.programme.stats import preload_in_background

        preload_in_background()
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


# --------------------------------------------------------------------------- procedures

def stored_spec(ctx: P, key: str) -> Any:
    """The spec of ``<spec>:<test>`` in force on this node: the newest version stored in
    the database (what scorecards judge by), else the shipped spec of that name."""
    from scanbench.specs import parse_spec

    name = key.rpartition(":")[0]
    row = ctx.session.scalars(select(m.Spec).where(m.Spec.name == name)
                              .order_by(m.Spec.id.desc()).limit(1)).first()
    if row is not None:
        try:
            return parse_spec(row.yaml, where=f"stored spec {name}")
        except ScanbenchError:  # e.g. a parent it extends is not on this node
            pass
    return None


@page(router, "/procedures/{key}/card", "viewer")
def procedure_card(ctx: P, key: str) -> HTMLResponse:
    """The printable QC procedure card of ``<spec>:<test>`` (generated from the spec)."""
    return HTMLResponse(cards.render_html(cards.card(key, stored_spec(ctx, key))))


@page(router, "/procedures/{key}/quiz", "authenticated")
def procedure_quiz(ctx: P, key: str) -> HTMLResponse:
    """The competency quiz of a procedure, and your earlier attempts."""
    c = cards.card(key, stored_spec(ctx, key))
    mine = ctx.session.scalars(select(m.QuizAttempt).where(
        m.QuizAttempt.user_id == ctx.who.user_id, m.QuizAttempt.procedure_key == c.key)
        .order_by(m.QuizAttempt.at)).all()
    return render(ctx, "studies_quiz.html", card=c, questions=cards.quiz(c), attempts=mine,
                  pass_mark=cards.PASS_MARK, outcome=None)


@page(router, "/procedures/{key}/quiz", "authenticated", methods=("POST",))
def procedure_quiz_submit(ctx: P, key: str) -> HTMLResponse:
    """Mark and record your answers (one attempt)."""
    spec = stored_spec(ctx, key)
    c = cards.card(key, spec)
    qs = cards.quiz(c)
    answers = {q["id"]: ctx.form[q["id"]] for q in qs if ctx.form.get(q["id"], "") != ""}
    row = commit_with_retry(ctx.session, lambda s: training.attempt_quiz(
        s, ctx.actor(), ctx.who.user_id, c.key, answers, spec=spec))
    mine = ctx.session.scalars(select(m.QuizAttempt).where(
        m.QuizAttempt.user_id == ctx.who.user_id, m.QuizAttempt.procedure_key == c.key)
        .order_by(m.QuizAttempt.at)).all()
    return render(ctx, "studies_quiz.html", card=c, questions=qs, attempts=mine,
                  pass_mark=cards.PASS_MARK, outcome=row)


# --------------------------------------------------------------------------- SUS

#: The roles a SUS respondent can say they answer as (their job, not their web role).
SUS_ROLES = ("technologist", "radiographer", "radiologist", "nuclear medicine physician",
             "physicist", "service engineer", "other")


@page(router, "/devices/{device_id}/sus", "viewer")
def sus_form(ctx: P, device_id: int) -> HTMLResponse:
    """The System Usability Scale questionnaire about one device (Brooke 1996)."""
    dev = ctx.scope.device(device_id)
    return render(ctx, "studies_sus.html", device=dev, items=sus.ITEMS, roles=SUS_ROLES,
                  stored=None, error=None)


@page(router, "/devices/{device_id}/sus", "viewer", methods=("POST",))
def sus_submit(ctx: P, device_id: int) -> HTMLResponse:
    """Store your answers and show your score; a missing answer is named, nothing
    stored."""
    dev = ctx.scope.device(device_id)
    role = ctx.form.get("role", "")
    raw = [ctx.form.get(f"q{i}", "") for i in range(1, 11)]
    missing = [str(i) for i, a in enumerate(raw, start=1) if a not in ("1", "2", "3", "4", "5")]
    if missing or role not in SUS_ROLES:
        error = (f"answer every statement (missing: {', '.join(missing)})" if missing
                 else "choose the role you answer as")
        return render(ctx, "studies_sus.html", status=400, device=dev, items=sus.ITEMS,
                      roles=SUS_ROLES, stored=None, error=error)
    row = commit_with_retry(ctx.session, lambda s: sus.add_response(
        s, ctx.actor(), dev.id, role, [int(a) for a in raw], user_id=ctx.who.user_id))
    return render(ctx, "studies_sus.html", device=dev, items=sus.ITEMS, roles=SUS_ROLES,
                  stored=row, error=None)


@page(router, "/reader-studies/{study_id}/results", "physicist")
def study_results(ctx: P, study_id: int) -> HTMLResponse:
    """A study's results for the physicists of its site: means by model with 95 % t
    intervals, weighted kappa and ICC(2,1) between readers, the paired comparison."""
    from scanbench.web.api.study_routes import _managed

    study = _managed(ctx, study_id)
    return render(ctx, "studies_results.html", study=study,
                  res=readers.results(ctx.session, study.id))

"""Staff training and competency (issue 14 §6): training records with expiry, the
list of training that has expired or expires soon (the reminders), and competency
quiz attempts per person and QC procedure (marked against the procedure's card,
:mod:`scanbench.programme.cards`).

Every change writes its audit entry in the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from scanbench.errors import InputError
from scanbench.programme import cards
from scanbench.specs import Spec
from scanbench.store import models as m
from scanbench.web.audit import Actor, record

TOPICS = ("device_operation", "qc_procedure", "radiation_safety")
#: How long before expiry a training is listed as due soon (days).
DUE_SOON_DAYS = 60


def add_record(session: Session, actor: Actor, user_id: int, topic: str,
               completed_on: dt.date, *, expires_on: dt.date | None = None,
               valid_days: int | None = None, site_id: int | None = None,
               device_id: int | None = None, procedure_key: str | None = None,
               provider: str = "", note: str = "") -> m.TrainingRecord:
    """Record a completed training; it expires on ``expires_on`` or ``valid_days``
    after completion (or never, when neither is given)."""
    if topic not in TOPICS:
        raise InputError(f"training: topic must be one of {', '.join(TOPICS)}, not {topic!r}")
    user = session.get(m.User, user_id)
    if user is None:
        raise InputError(f"training: no user {user_id}")
    if expires_on is None and valid_days is not None:
        if valid_days <= 0:
            raise InputError("training: valid_days must be positive")
        expires_on = completed_on + dt.timedelta(days=valid_days)
    if expires_on is not None and expires_on <= completed_on:
        raise InputError(f"training: expires_on {expires_on} must be after completed_on "
                         f"{completed_on}")
    if device_id is not None and session.get(m.Device, device_id) is None:
        raise InputError(f"training: no device {device_id}")
    if procedure_key is not None:
        cards.card(procedure_key)  # the procedure must exist (clear error otherwise)
    row = m.TrainingRecord(user_id=user_id, site_id=site_id, topic=topic,
                           device_id=device_id, procedure_key=procedure_key,
                           completed_on=completed_on, expires_on=expires_on,
                           provider=provider[:200], note=note)
    session.add(row)
    session.flush()
    record(session, actor, "training.add", "training_record", row.id, site_id=site_id,
           after={"user": user.username, "topic": topic, "completed_on": completed_on,
                  "expires_on": expires_on, "device_id": device_id,
                  "procedure_key": procedure_key, "provider": provider})
    return row


def reminders(session: Session, today: dt.date, *, within_days: int = DUE_SOON_DAYS,
              site_ids: list[int] | None = None) -> list[dict[str, Any]]:
    """Each person's newest training per (topic, device, procedure) that has expired or
    expires within ``within_days`` of ``today``, most urgent first. A newer record of
    the same training replaces an older one (a renewal clears the reminder)."""
    q = select(m.TrainingRecord, m.User.username).join(
        m.User, m.User.id == m.TrainingRecord.user_id).order_by(m.TrainingRecord.completed_on)
    if site_ids is not None:
        q = q.where(m.TrainingRecord.site_id.in_(site_ids))
    newest: dict[tuple[Any, ...], tuple[m.TrainingRecord, str]] = {}
    for row, username in session.execute(q).all():
        newest[(row.user_id, row.topic, row.device_id, row.procedure_key)] = (row, username)
    out = []
    for row, username in newest.values():
        if row.expires_on is None:
            continue
        days = (row.expires_on - today).days
        if days <= within_days:
            out.append({"user_id": row.user_id, "user": username, "topic": row.topic,
                        "device_id": row.device_id, "procedure_key": row.procedure_key,
                        "completed_on": row.completed_on, "expires_on": row.expires_on,
                        "days_left": days, "state": "expired" if days < 0 else "due soon",
                        "record_id": row.id})
    return sorted(out, key=lambda r: (r["days_left"], r["user"]))


def attempt_quiz(session: Session, actor: Actor, user_id: int, procedure_key: str,
                 answers: dict[str, Any], *, at: dt.datetime | None = None,
                 spec: Spec | None = None) -> m.QuizAttempt:
    """Mark and record one attempt at the procedure's quiz (pass mark
    :data:`scanbench.programme.cards.PASS_MARK`); ``spec``: the version in force (else
    the shipped spec of that name)."""
    if session.get(m.User, user_id) is None:
        raise InputError(f"quiz: no user {user_id}")
    c = cards.card(procedure_key, spec)
    got = cards.mark(c, answers)
    row = m.QuizAttempt(user_id=user_id, procedure_key=c.key, score=got["score"],
                        pass_mark=got["pass_mark"], passed=got["passed"],
                        answers={"given": answers, "detail": got["detail"]},
                        at=at or dt.datetime.now(dt.UTC))
    session.add(row)
    session.flush()
    record(session, actor, "quiz.attempt", "quiz_attempt", row.id,
           after={"user_id": user_id, "procedure_key": c.key, "score": got["score"],
                  "passed": got["passed"], "pass_mark": got["pass_mark"]})
    return row


def competency(session: Session, user_id: int) -> dict[str, Any]:
    """A person's training records and, per procedure, their attempts and whether they
    have passed."""
    recs = session.scalars(select(m.TrainingRecord).where(
        m.TrainingRecord.user_id == user_id).order_by(m.TrainingRecord.completed_on)).all()
    attempts = session.scalars(select(m.QuizAttempt).where(
        m.QuizAttempt.user_id == user_id).order_by(m.QuizAttempt.at)).all()
    by_proc: dict[str, dict[str, Any]] = {}
    for a in attempts:
        e = by_proc.setdefault(a.procedure_key, {"attempts": 0, "passed": False,
                                                 "best": 0.0, "pass_mark": a.pass_mark})
        e["attempts"] += 1
        e["passed"] = e["passed"] or a.passed
        e["best"] = max(e["best"], a.score)
    return {"training": [{"topic": r.topic, "completed_on": r.completed_on,
                          "expires_on": r.expires_on, "device_id": r.device_id,
                          "procedure_key": r.procedure_key, "provider": r.provider}
                         for r in recs],
            "quizzes": by_proc}

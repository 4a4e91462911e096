"""Staff training and competency (issue 14 §6): training records with expiry, the
list of training that has expired or expires soon, the reminders sent before and on
expiry (:func:`send_reminders`, e-mail and signed webhook), and competency
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


#: When reminders are sent: 30 and 7 days before a training expires, and on the day it
#: expires (0) — the programme's choice (no standard sets them): a month leaves time to
#: book a course, a week is the last call. Each record gets each reminder at most once
#: per notification target; a record first seen late gets only the most urgent one due.
REMINDER_DAYS = (30, 7, 0)


def reminder_due(days_left: int) -> int | None:
    """The most urgent reminder threshold (days before expiry) ``days_left`` has
    reached, or None when none is due yet (:data:`REMINDER_DAYS`)."""
    reached = [t for t in REMINDER_DAYS if days_left <= t]
    return min(reached) if reached else None


def _reminder_message(session: Session, row: dict[str, Any], threshold: int,
                      key: str) -> Any:
    from scanbench.evaluation.notify import Message

    days = int(row["days_left"])
    when = ("expired on" if days < 0 else "expires today," if days == 0
            else "expires on")
    tail = (f" ({-days} days ago)" if days < 0 else "" if days == 0
            else f" (in {days} days)")
    what = row["topic"].replace("_", " ")
    dev = session.get(m.Device, row["device_id"]) if row["device_id"] else None
    device = (dev.display_name or " ".join(x for x in (dev.manufacturer, dev.model,
                                                        dev.serial) if x)) if dev else ""
    rows: list[tuple[str, str]] = [
        ("Person", row["user"]), ("Training", what),
        ("Completed", row["completed_on"].isoformat()),
        ("Expires", row["expires_on"].isoformat()),
        ("Reminder", "on expiry" if threshold == 0 else f"{threshold} days before expiry")]
    if device:
        rows.append(("Device", device))
    if row["procedure_key"]:
        rows.append(("QC procedure", row["procedure_key"]))
    body = {"type": "training_reminder", "reminder": {
        "record_id": row["record_id"], "user": row["user"], "topic": row["topic"],
        "device": device or None, "procedure_key": row["procedure_key"],
        "completed_on": row["completed_on"].isoformat(),
        "expires_on": row["expires_on"].isoformat(), "days_left": days,
        "threshold_days": threshold, "state": row["state"]}}
    return Message(key=key, subject=f"scanbench training reminder: {what} of {row['user']} "
                   f"{when} {row['expires_on'].isoformat()}",
                   intro=f"The {what} training of {row['user']} {when} "
                         f"{row['expires_on'].isoformat()}{tail}: renew it (a new training "
                         "record clears the reminder).", rows=tuple(rows), body=body)


def send_reminders(session: Session, today: dt.date, *, smtp: Any = None) -> list[Any]:
    """Send the training reminders due on ``today`` (:data:`REMINDER_DAYS`) to every
    active notification target (e-mail or signed webhook, :mod:`scanbench.evaluation.
    notify`) of the record's site — a record for no device goes to the sites where the
    person holds a role — and to targets for every site. Exactly once per record,
    threshold and target: a ``notification`` row (key ``<channel>:t<target>:training:
    <record>:<days>``) records each; a failed delivery keeps its error and is tried
    again at the next call; a training renewed meanwhile is not reminded. ``smtp``: an
    :class:`scanbench.evaluation.alerts.SmtpServer` (None: e-mail targets stay pending
    with the error saying e-mail is not configured). Commits after each delivery;
    returns what each attempt did (:class:`scanbench.evaluation.alerts.Sent`)."""
    from scanbench.evaluation import alerts
    from scanbench.evaluation.notify import send_message

    due = reminders(session, today, within_days=max(REMINDER_DAYS))
    targets = list(session.scalars(select(m.NotificationTarget).where(
        m.NotificationTarget.active.is_(True)).order_by(m.NotificationTarget.id)))
    grants: dict[int, set[int]] = {}
    for user_id, site_id in session.execute(select(m.Grant.user_id, m.Grant.site_id)):
        grants.setdefault(int(user_id), set()).add(int(site_id))
    wanted: dict[str, tuple[m.NotificationTarget, dict[str, Any], int]] = {}
    for row in due:
        threshold = reminder_due(int(row["days_left"]))
        if threshold is None:
            continue
        rec = session.get_one(m.TrainingRecord, row["record_id"])
        sites = {rec.site_id} if rec.site_id is not None else grants.get(rec.user_id, set())
        for target in targets:
            if target.site_id is not None and target.site_id not in sites:
                continue
            key = f"{target.channel}:t{target.id}:training:{rec.id}:{threshold}"
            alerts._ensure(session, key, target_id=target.id)
            wanted[key] = (target, row, threshold)
    session.commit()
    out = []
    for note in list(session.scalars(select(m.Notification).where(
            m.Notification.key.in_(list(wanted)), m.Notification.state != "sent")
            .order_by(m.Notification.id))) if wanted else []:
        target, row, threshold = wanted[note.key]
        message = _reminder_message(session, row, threshold, note.key)

        def send(message: Any = message, **channel: Any) -> Any:
            return send_message(message, set(), **channel)

        out.append(alerts._deliver(session, note, target, send, smtp))
    return out


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

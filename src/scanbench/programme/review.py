"""Expert review of sites' QC results at the central node (issue 14 §2).

* **Queue**: :func:`enqueue` gives every result of a site that has a reviewer (a
  ``reviewer`` grant), stored since that grant, and no review yet a
  :class:`~scanbench.store.models.Review` (state ``queued``) with its automatic triage
  score and drivers (:mod:`scanbench.programme.triage`; the class's stored model,
  trained first when the class has none). A result of a class without enough history
  is queued unscored and says why; it sorts after the scored ones.
* **Order**: :func:`queue_query` — highest triage score first (most unusual), then
  oldest first; unscored last.
* **Decision**: :func:`decide` — accepted or rejected, with a reason (required for a
  rejection) and a comment, by a user holding ``reviewer`` on the result's site;
  audited with the values before and after in the same transaction. A decision may be
  changed later (a new ``decided_at``: the site receives it as a new decision and keeps
  the history).
* **Back to the site**: the federation serves decided reviews to the site they came
  from (:func:`scanbench.programme.federation.decisions_for`); the site stores each as a
  :class:`~scanbench.store.models.ReviewDecision`, shows it on the result and device
  pages, and a result whose newest decision is a rejection no longer counts as done on
  its due list (:func:`scanbench.evaluation.scorecard._current_results`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Select, exists, func, select
from sqlalchemy.orm import Session, aliased

from scanbench.errors import InputError
from scanbench.programme import triage
from scanbench.store import models as m
from scanbench.web.audit import Actor, record

DECISIONS = ("accepted", "rejected")
STATES = ("queued", *DECISIONS)
MAX_TEXT = 4000


def device_class(modality: str | None, analysis: str) -> str:
    """A result's device class for triage: the modality and the analysis."""
    return f"{modality or '?'}/{analysis}"


# --------------------------------------------------------------------------- reading values

def _values(session: Session, result_ids: Sequence[int]
            ) -> tuple[dict[int, dict[triage.Key, float | None]], dict[str, str]]:
    vals: dict[int, dict[triage.Key, float | None]] = {rid: {} for rid in result_ids}
    units: dict[str, str] = {}
    for chunk in range(0, len(result_ids), 500):
        ids = list(result_ids[chunk:chunk + 500])
        for rid, name, lk, value, unit in session.execute(
                select(m.Measurement.result_id, m.Measurement.name, m.Measurement.labels_key,
                       m.Measurement.value, m.Measurement.unit)
                .where(m.Measurement.result_id.in_(ids))):
            vals[rid][(name, lk or "{}")] = value
            units[triage.feature_label((name, lk or "{}"))] = unit
    return vals, units


def _rejected(result_id: Any) -> Any:
    """SQL: the result's newest decision at the centre is a rejection."""
    later = aliased(m.Review)
    return exists(select(later.id).where(later.result_id == result_id,
                                         later.state == "rejected"))


def _class_results(session: Session) -> dict[str, list[int]]:
    """Current (not superseded) results by device class."""
    newer = aliased(m.Result)
    rows = session.execute(
        select(m.Result.id, m.Device.modality, m.Result.analysis)
        .join(m.Device, m.Device.id == m.Result.device_id)
        .where(~select(newer.id).where(newer.supersedes_id == m.Result.id).exists())
        .order_by(m.Result.id)).all()
    out: dict[str, list[int]] = {}
    for rid, modality, analysis in rows:
        out.setdefault(device_class(modality, analysis), []).append(rid)
    return out


def training_set(session: Session, ids: Sequence[int]) -> tuple[list[int], str]:
    """The training results among a class's ``ids`` and what they are (module docstring
    of :mod:`scanbench.programme.triage`)."""
    accepted = list(session.scalars(select(m.Review.result_id).where(
        m.Review.result_id.in_(ids), m.Review.state == "accepted")))
    if len(accepted) >= triage.MIN_TRAIN:
        return sorted(accepted), "results accepted by expert review"
    failing = select(m.Measurement.id).where(m.Measurement.result_id == m.Result.id,
                                             m.Measurement.status == "fail").exists()
    passing = list(session.scalars(select(m.Result.id).where(
        m.Result.id.in_(ids), ~failing, ~_rejected(m.Result.id))))
    return sorted(passing), ("results with no failed limit (fewer than "
                             f"{triage.MIN_TRAIN} accepted by expert review)")


def train(session: Session, models_file: Path | None, only: str | None = None
          ) -> list[tuple[str, triage.TriageModel | str]]:
    """Fit every class's model from the store (or class ``only``) and store them in
    ``models_file`` (None: not stored); returns (class, model or the reason it was not
    fitted)."""
    out: list[tuple[str, triage.TriageModel | str]] = []
    for cls, ids in sorted(_class_results(session).items()):
        if only is not None and cls != only:
            continue
        train_ids, what = training_set(session, ids)
        vals, units = _values(session, train_ids)
        out.append((cls, triage.fit(cls, [(rid, vals[rid]) for rid in train_ids], what,
                                    units)))
    if models_file is not None:
        triage.save_models(models_file, [mdl for _c, mdl in out
                                         if isinstance(mdl, triage.TriageModel)])
    return out


# --------------------------------------------------------------------------- queue

def reviewed_sites(session: Session) -> list[int]:
    """Sites with at least one reviewer."""
    return sorted(set(session.scalars(select(m.Grant.site_id).where(
        m.Grant.role == "reviewer"))))


def enqueue(session: Session, models_file: Path | None,
            result_ids: Iterable[int] | None = None) -> list[m.Review]:
    """Queue every result (or those of ``result_ids``) of a reviewed site, stored since
    the site's first reviewer grant, that has no review yet, scored by its class's
    stored model (a class without one is trained first; ``models_file`` None: trained
    and not stored). The caller commits."""
    sites = reviewed_sites(session)
    if not sites:
        return []
    # "new": stored since the site got its first reviewer (a site's older history is
    # not dumped on the reviewer; it still trains the model)
    since = (select(m.Grant.site_id, func.min(m.Grant.created_at).label("at"))
             .where(m.Grant.role == "reviewer").group_by(m.Grant.site_id).subquery())
    newer = aliased(m.Result)
    q = (select(m.Result.id, m.Device.modality, m.Result.analysis, m.Device.site_id)
         .join(m.Device, m.Device.id == m.Result.device_id)
         .join(since, since.c.site_id == m.Device.site_id)
         .where(m.Result.created_at >= since.c.at,
                ~select(newer.id).where(newer.supersedes_id == m.Result.id).exists(),
                ~select(m.Review.id).where(m.Review.result_id == m.Result.id).exists())
         .order_by(m.Result.id))
    if result_ids is not None:
        q = q.where(m.Result.id.in_(list(result_ids)))
    rows = session.execute(q).all()
    if not rows:
        return []
    models = triage.load_models(models_file) if models_file is not None else {}
    missing = {device_class(mod, an) for _r, mod, an, _s in rows} - set(models)
    reasons: dict[str, str] = {}
    for cls in sorted(missing):
        for c, fitted in train(session, models_file, only=cls):
            if isinstance(fitted, triage.TriageModel):
                models[c] = fitted
            else:
                reasons[c] = fitted
    vals, _units = _values(session, [r[0] for r in rows])
    out = []
    for rid, mod, an, site_id in rows:
        cls = device_class(mod, an)
        mdl = models.get(cls)
        if mdl is None:
            scored = triage.Scored(None, reason=reasons.get(
                cls, f"not scored, too little history of {cls}"))
        else:
            scored = mdl.score(vals[rid])
        drivers = scored.drivers if scored.score is not None else [{"note": scored.reason}]
        row = m.Review(result_id=rid, site_id=site_id, state="queued",
                       triage_score=scored.score, triage_drivers=drivers,
                       triage_model=scored.model)
        session.add(row)
        out.append(row)
    session.flush()
    return out


def rescore(session: Session, models_file: Path) -> int:
    """Score the queued reviews again with the stored models (after a retrain)."""
    models = triage.load_models(models_file)
    rows = session.execute(
        select(m.Review, m.Device.modality, m.Result.analysis)
        .join(m.Result, m.Result.id == m.Review.result_id)
        .join(m.Device, m.Device.id == m.Result.device_id)
        .where(m.Review.state == "queued")).all()
    vals, _u = _values(session, [r[0].result_id for r in rows])
    n = 0
    for review, mod, an in rows:
        mdl = models.get(device_class(mod, an))
        if mdl is None:
            continue
        scored = mdl.score(vals[review.result_id])
        review.triage_score = scored.score
        review.triage_drivers = (scored.drivers if scored.score is not None
                                 else [{"note": scored.reason}])
        review.triage_model = scored.model
        n += 1
    return n


def queue_query(site_ids: Sequence[int], state: str | None = "queued") -> Select[Any]:
    """Reviews of ``site_ids`` (the caller's reviewer sites), most unusual first."""
    q = select(m.Review).where(m.Review.site_id.in_(list(site_ids)) if site_ids
                               else m.Review.id.is_(None))
    if state is not None:
        if state not in STATES:
            raise InputError(f"unknown review state {state!r}: one of {', '.join(STATES)}",
                             where="state")
        q = q.where(m.Review.state == state)
    return q.order_by(m.Review.triage_score.is_(None), m.Review.triage_score.desc(),
                      m.Review.created_at, m.Review.id)


def view(review: m.Review) -> dict[str, Any]:
    return {"state": review.state, "reason": review.reason, "comment": review.comment,
            "reviewer_id": review.reviewer_id,
            "decided_at": review.decided_at.isoformat() if review.decided_at else None}


def decide(session: Session, actor: Actor, review: m.Review, decision: str,
           reason: str | None, comment: str | None) -> m.Review:
    """Record a reviewer's decision with an audit entry (before/after) in the caller's
    transaction. The caller has checked the actor holds ``reviewer`` on the site."""
    if decision not in DECISIONS:
        raise InputError(f"a decision is one of {', '.join(DECISIONS)}, not {decision!r}",
                         where="decision")
    reason = (reason or "").strip() or None
    comment = (comment or "").strip() or None
    if decision == "rejected" and not reason:
        raise InputError("a rejection needs a reason the site can act on", where="reason")
    for what, text in (("reason", reason), ("comment", comment)):
        if text is not None and len(text) > MAX_TEXT:
            raise InputError(f"the {what} has {len(text)} characters; at most {MAX_TEXT}",
                             where=what)
    before = view(review)
    review.state, review.reason, review.comment = decision, reason, comment
    review.reviewer_id = actor.user_id
    review.decided_at = m.utcnow()
    review.sent_back_at = None
    record(session, actor, f"review.{decision[:-2]}", "review", review.id,
           site_id=review.site_id, before=before, after=view(review),
           details={"result_id": review.result_id})
    return review


# --------------------------------------------------------------------------- site side

def site_decisions(session: Session, result_ids: Sequence[int]
                   ) -> dict[int, list[m.ReviewDecision]]:
    """At a site: the decisions received for ``result_ids``, newest first."""
    out: dict[int, list[m.ReviewDecision]] = {}
    if not result_ids:
        return out
    for row in session.scalars(select(m.ReviewDecision).where(
            m.ReviewDecision.result_id.in_(list(result_ids)))
            .order_by(m.ReviewDecision.decided_at.desc(), m.ReviewDecision.id.desc())):
        assert row.result_id is not None
        out.setdefault(row.result_id, []).append(row)
    return out


def counts(session: Session, site_ids: Sequence[int]) -> dict[str, int]:
    rows = session.execute(select(m.Review.state, func.count()).where(
        m.Review.site_id.in_(list(site_ids))).group_by(m.Review.state)).all()
    return {state: int(n) for state, n in rows}

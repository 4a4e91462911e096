"""Reader studies (issue 14 §4): cases (stored series), readers (users), criteria scored
on a 5-point scale, blinding to device and site, a seeded random reading order per
reader, and the results: per-criterion means by model with confidence intervals,
agreement between readers (weighted kappa, ICC) and the paired comparison of two models.

Design of the results (stated on every result):

* a case's score on a criterion is the mean over the readers who scored it; the mean by
  model is the mean of those case scores with a Student-t 95 % interval (cases are the
  independent units, readers are repeated measures of a case);
* agreement: Cohen's linearly weighted kappa for every pair of readers over the cases
  both scored (Cohen 1968) and ICC(2,1) — two-way random effects, absolute agreement,
  single rater (Shrout & Fleiss 1979; McGraw & Wong 1996 ICC(A,1)) — over the cases
  every reader scored;
* the paired comparison of two models: cases with the same ``pair_key`` (the same
  patient or phantom imaged on both) are pairs; Wilcoxon signed-rank on the case scores,
  with effect size, Hodges-Lehmann interval and smallest detectable difference
  (:func:`scanbench.programme.stats.paired_comparison`).

Every change writes its audit entry in the caller's transaction.
"""

from __future__ import annotations

import io
import itertools
import random
import secrets
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scanbench.errors import InputError
from scanbench.programme import stats
from scanbench.store import models as m
from scanbench.web.audit import Actor, record

MAX_CRITERIA = 20
#: The largest side of a case image shown to a reader (pixels): enough to judge image
#: quality on a screen, small enough to send quickly.
IMAGE_SIDE = 512


class StudyStateError(InputError):
    """The study is not in a state that allows the change (e.g. closed)."""


def create_study(session: Session, actor: Actor, name: str, criteria: Sequence[str], *,
                 title: str = "", blinded: bool = True, site_id: int | None = None,
                 scale_min: int = 1, scale_max: int = 5) -> m.ReaderStudy:
    """A new open study with its criteria (distinct names) and scale."""
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise InputError("reader study: name must be 1..120 characters")
    crit = [str(c).strip() for c in criteria]
    if not crit or len(crit) > MAX_CRITERIA or any(not c or len(c) > 120 for c in crit):
        raise InputError(f"reader study: criteria must be 1..{MAX_CRITERIA} names of "
                         "1..120 characters")
    if len(set(crit)) != len(crit):
        raise InputError("reader study: criteria names must differ")
    if not scale_min < scale_max or scale_max - scale_min > 10:
        raise InputError(f"reader study: scale {scale_min}..{scale_max} must rise by 1..10")
    if session.scalar(select(m.ReaderStudy.id).where(m.ReaderStudy.name == name)):
        raise InputError(f"reader study: the name {name!r} is taken")
    row = m.ReaderStudy(name=name, title=title[:300], criteria=crit, blinded=blinded,
                        site_id=site_id, scale_min=scale_min, scale_max=scale_max)
    row.created_by = actor.user_id
    session.add(row)
    session.flush()
    record(session, actor, "reader_study.create", "reader_study", row.id, site_id=site_id,
           after=_study_dict(row))
    return row


def _study_dict(s: m.ReaderStudy) -> dict[str, Any]:
    return {"name": s.name, "title": s.title, "criteria": list(s.criteria),
            "blinded": s.blinded, "scale": [s.scale_min, s.scale_max], "state": s.state}


def _open(session: Session, study_id: int) -> m.ReaderStudy:
    study = session.get(m.ReaderStudy, study_id)
    if study is None:
        raise InputError(f"no reader study {study_id}")
    if study.state != "open":
        raise StudyStateError(f"reader study {study.name!r} is {study.state}")
    return study


def add_case(session: Session, actor: Actor, study_id: int, series_id: int, *,
             label: str | None = None, pair_key: str | None = None) -> m.ReaderCase:
    """Add a stored series as a case (before any reader is assigned: every reader reads
    the same cases). Its label is what readers see: by default ``Case <n>``."""
    study = _open(session, study_id)
    if session.scalar(select(func.count()).select_from(m.ReaderAssignment)
                      .where(m.ReaderAssignment.study_id == study.id)):
        raise StudyStateError("reader study: add every case before assigning readers "
                              "(each reader's random order covers all cases)")
    series = session.get(m.Series, series_id)
    if series is None:
        raise InputError(f"reader study: no series {series_id}")
    n = int(session.scalar(select(func.count()).select_from(m.ReaderCase)
                           .where(m.ReaderCase.study_id == study.id)) or 0)
    label = (label or f"Case {n + 1}").strip()[:120]
    row = m.ReaderCase(study_id=study.id, label=label, series_id=series.id,
                       device_id=series.device_id, pair_key=pair_key)
    session.add(row)
    session.flush()
    record(session, actor, "reader_study.add_case", "reader_case", row.id,
           site_id=study.site_id, after={"study_id": study.id, "series_id": series.id,
                                         "label": label, "pair_key": pair_key})
    return row


def assign_reader(session: Session, actor: Actor, study_id: int, user_id: int, *,
                  seed: int | None = None) -> m.ReaderAssignment:
    """Make ``user_id`` a reader with their own random order of the cases: a Fisher-Yates
    shuffle (Python's ``random.Random(seed).shuffle``) with a stored seed, so the order
    can be reproduced and checked."""
    study = _open(session, study_id)
    if session.get(m.User, user_id) is None:
        raise InputError(f"reader study: no user {user_id}")
    cases = list(session.scalars(select(m.ReaderCase.id).where(
        m.ReaderCase.study_id == study.id).order_by(m.ReaderCase.id)))
    if len(cases) < 2:
        raise InputError("reader study: add at least 2 cases before assigning readers")
    if session.scalar(select(m.ReaderAssignment.id).where(
            m.ReaderAssignment.study_id == study.id, m.ReaderAssignment.user_id == user_id)):
        raise InputError(f"reader study: user {user_id} is already a reader")
    seed = secrets.randbits(31) if seed is None else int(seed)
    order = reading_order(cases, seed)
    row = m.ReaderAssignment(study_id=study.id, user_id=user_id, case_order=order, seed=seed)
    session.add(row)
    session.flush()
    record(session, actor, "reader_study.assign", "reader_assignment", row.id,
           site_id=study.site_id, after={"study_id": study.id, "user_id": user_id,
                                         "seed": seed, "case_order": order})
    return row


def reading_order(case_ids: Sequence[int], seed: int) -> list[int]:
    """The reading order of ``case_ids`` for ``seed`` (deterministic)."""
    order = list(case_ids)
    random.Random(seed).shuffle(order)
    return order


def assignment(session: Session, study_id: int, user_id: int) -> m.ReaderAssignment | None:
    return session.scalars(select(m.ReaderAssignment).where(
        m.ReaderAssignment.study_id == study_id,
        m.ReaderAssignment.user_id == user_id)).first()


def progress(session: Session, study: m.ReaderStudy, user_id: int
             ) -> tuple[int | None, int, int]:
    """(the reader's next case id in their order, or None when done; cases done; total)."""
    a = assignment(session, study.id, user_id)
    if a is None:
        return None, 0, 0
    done_rows = session.execute(
        select(m.ReaderScore.case_id, func.count()).where(
            m.ReaderScore.study_id == study.id, m.ReaderScore.user_id == user_id)
        .group_by(m.ReaderScore.case_id)).all()
    need = len(study.criteria)
    done = {int(c) for c, k in done_rows if k >= need}
    nxt = next((int(c) for c in a.case_order if int(c) not in done), None)
    return nxt, len(done), len(a.case_order)


def score_case(session: Session, actor: Actor, study_id: int, case_id: int, user_id: int,
               scores: Mapping[str, Any]) -> list[m.ReaderScore]:
    """Store a reader's scores of one case: one integer on the scale for every criterion
    (a second submission replaces the first, with its before in the audit)."""
    study = _open(session, study_id)
    a = assignment(session, study.id, user_id)
    if a is None:
        raise InputError("reader study: you are not a reader of this study")
    case = session.get(m.ReaderCase, case_id)
    if case is None or case.study_id != study.id:
        raise InputError(f"reader study: no case {case_id} in this study")
    clean: dict[str, int] = {}
    for crit in study.criteria:
        raw = scores.get(crit)
        try:
            value = int(str(raw).strip())
        except (TypeError, ValueError):
            raise InputError(f"reader study: criterion {crit!r}: a score "
                             f"{study.scale_min}..{study.scale_max} is required") from None
        if not study.scale_min <= value <= study.scale_max:
            raise InputError(f"reader study: criterion {crit!r}: {value} is outside the "
                             f"scale {study.scale_min}..{study.scale_max}")
        clean[crit] = value
    unknown = set(scores) - set(study.criteria)
    if unknown:
        raise InputError(f"reader study: unknown criteria {sorted(unknown)}")
    existing = {r.criterion: r for r in session.scalars(select(m.ReaderScore).where(
        m.ReaderScore.case_id == case.id, m.ReaderScore.user_id == user_id))}
    before = {k: v.score for k, v in existing.items()} or None
    rows = []
    for crit, value in clean.items():
        row = existing.get(crit)
        if row is None:
            row = m.ReaderScore(study_id=study.id, case_id=case.id, user_id=user_id,
                                criterion=crit, score=value)
            session.add(row)
        else:
            row.score = value
        rows.append(row)
    session.flush()
    record(session, actor, "reader_study.score", "reader_case", case.id,
           site_id=study.site_id, before=before, after=clean,
           details={"study_id": study.id, "user_id": user_id})
    return rows


def close_study(session: Session, actor: Actor, study_id: int) -> m.ReaderStudy:
    study = _open(session, study_id)
    study.state = "closed"
    session.flush()
    record(session, actor, "reader_study.close", "reader_study", study.id,
           site_id=study.site_id, before={"state": "open"}, after={"state": "closed"})
    return study


# --------------------------------------------------------------------------- images

def case_image_png(session: Session, case: m.ReaderCase, files_root: Path) -> bytes:
    """The middle image of the case's series as a grey PNG (pixels only: no header text
    is drawn), windowed to its 1st..99th percentile, downsampled by an integer stride to
    at most :data:`IMAGE_SIDE` pixels. A series whose images declare burned-in
    annotation (DICOM Burned In Annotation (0028,0301) YES) is refused: its pixels may
    show the device, site or patient."""
    import pydicom
    from PIL import Image

    if case.series_id is None:
        raise InputError(f"{case.label}: its series is no longer stored")
    paths = list(session.scalars(select(m.Instance.path).where(
        m.Instance.series_id == case.series_id)
        .order_by(m.Instance.instance_number, m.Instance.id)))
    if not paths:
        raise InputError(f"{case.label}: the series has no stored files")
    path = files_root / paths[len(paths) // 2]
    if not path.is_file():
        raise InputError(f"{case.label}: the series' files are no longer in the file store")
    ds = pydicom.dcmread(str(path))
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        raise InputError(f"{case.label}: its images have burned-in annotation (DICOM "
                         "(0028,0301) YES) and cannot be shown blinded")
    px = np.asarray(ds.pixel_array, dtype=np.float32)
    if px.ndim == 3 and px.shape[-1] not in (3, 4):  # a multi-frame: its middle frame
        px = px[px.shape[0] // 2]
    if px.ndim == 3:
        px = px.mean(axis=-1)
    px = px * float(ds.get("RescaleSlope", 1) or 1) + float(ds.get("RescaleIntercept", 0) or 0)
    step = max(1, int(np.ceil(max(px.shape) / IMAGE_SIDE)))
    px = px[::step, ::step]
    lo, hi = np.percentile(px, [1, 99])
    grey = np.clip((px - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    out = io.BytesIO()
    Image.fromarray((grey * 255).astype(np.uint8), mode="L").save(out, format="PNG")
    return out.getvalue()


def case_facts(session: Session, study: m.ReaderStudy, case: m.ReaderCase
               ) -> dict[str, str]:
    """What a reader is told about a case: nothing but its label when the study is
    blinded; else also the device and its site."""
    facts = {"case": case.label}
    if study.blinded or case.device_id is None:
        return facts
    dev = session.get(m.Device, case.device_id)
    if dev is not None:
        facts["device"] = f"{dev.manufacturer} {dev.model} ({dev.display_name or dev.serial})"
        site = session.get(m.Site, dev.site_id) if dev.site_id else None
        if site is not None:
            facts["site"] = site.name
    return facts


# --------------------------------------------------------------------------- results

def _model_of(dev: m.Device | None) -> str:
    return f"{dev.manufacturer} {dev.model}".strip() if dev is not None else "unknown"


def results(session: Session, study_id: int) -> dict[str, Any]:
    """Per criterion: means by model with t intervals, kappa between each pair of
    readers, ICC(2,1) over the cases every reader scored, and the paired comparison
    of two models (see the module docstring)."""
    study = session.get(m.ReaderStudy, study_id)
    if study is None:
        raise InputError(f"no reader study {study_id}")
    cases = {c.id: c for c in session.scalars(select(m.ReaderCase).where(
        m.ReaderCase.study_id == study.id))}
    models = {cid: _model_of(session.get(m.Device, c.device_id) if c.device_id else None)
              for cid, c in cases.items()}
    readers = sorted(session.scalars(select(m.ReaderAssignment.user_id).where(
        m.ReaderAssignment.study_id == study.id)))
    scores: dict[str, dict[int, dict[int, int]]] = defaultdict(lambda: defaultdict(dict))
    for s in session.scalars(select(m.ReaderScore).where(m.ReaderScore.study_id == study.id)):
        scores[s.criterion][s.case_id][s.user_id] = s.score
    labels = list(range(study.scale_min, study.scale_max + 1))
    out: dict[str, Any] = {
        "study": study.name, "blinded": study.blinded, "readers": len(readers),
        "cases": len(cases), "scale": [study.scale_min, study.scale_max],
        "method": {
            "case_score": "mean over the readers who scored the case",
            "means": "mean of case scores by model, 95 % Student t interval (cut at the "
                     "scale's ends where it passes them)",
            "kappa": "Cohen's kappa, linear weights (Cohen 1968), per reader pair",
            "icc": "ICC(2,1) two-way random effects, absolute agreement, single rater "
                   "(Shrout & Fleiss 1979; McGraw & Wong 1996 ICC(A,1))",
            "paired": "Wilcoxon signed-rank over cases paired by pair_key"},
        "criteria": []}
    for crit in study.criteria:
        by_case = scores.get(crit, {})
        case_mean = {cid: float(np.mean(list(r.values()))) for cid, r in by_case.items() if r}
        entry: dict[str, Any] = {"criterion": crit, "scored_cases": len(case_mean)}
        per_model: dict[str, list[float]] = defaultdict(list)
        for cid, v in case_mean.items():
            per_model[models[cid]].append(v)
        scale = (float(study.scale_min), float(study.scale_max))
        entry["by_model"] = [{"model": k, **stats.mean_ci(v, bounds=scale).as_dict()}
                             for k, v in sorted(per_model.items())]
        kappas = []
        for r1, r2 in itertools.combinations(readers, 2):
            both = [cid for cid, r in by_case.items() if r1 in r and r2 in r]
            if len(both) >= 2:
                try:
                    k = stats.weighted_kappa([by_case[c][r1] for c in both],
                                             [by_case[c][r2] for c in both], "linear", labels)
                except InputError:
                    continue
                kappas.append({"readers": [r1, r2], "cases": len(both),
                               "kappa": None if np.isnan(k) else k})
        entry["kappa_linear"] = kappas
        full = [cid for cid in sorted(by_case) if all(r in by_case[cid] for r in readers)]
        entry["icc"] = None
        if len(readers) >= 2 and len(full) >= 3:
            table = [[by_case[c][r] for r in readers] for c in full]
            try:
                entry["icc"] = stats.icc(table, "ICC(2,1)")
            except (InputError, ValueError, ZeroDivisionError) as exc:
                entry["icc"] = {"error": str(exc)}
        entry["paired"] = _paired(case_mean, cases, models)
        out["criteria"].append(entry)
    return dict(stats.finite(out))


def _paired(case_mean: dict[int, float], cases: dict[int, m.ReaderCase],
            models: dict[int, str]) -> dict[str, Any] | None:
    """Two models, cases paired by ``pair_key``: the signed-rank comparison, or None
    where the design has no pairs."""
    keyed: dict[str, dict[str, float]] = defaultdict(dict)
    for cid, v in case_mean.items():
        key = cases[cid].pair_key
        if key:
            keyed[key][models[cid]] = v
    names = sorted({mo for d in keyed.values() for mo in d})
    if len(names) != 2:
        return None
    pairs = [(d[names[0]], d[names[1]]) for d in keyed.values() if len(d) == 2]
    if len(pairs) < 2:
        return None
    got = stats.paired_comparison([p[0] for p in pairs], [p[1] for p in pairs])
    got["models"] = names
    got["difference"] = f"{names[0]} minus {names[1]}"
    return got

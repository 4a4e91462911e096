"""System Usability Scale (issue 14 §5): scoring by the standard method, validation,
recording per device and role, the trend over a device's life and the comparison
between models.

Scoring (Brooke J. 1996, "SUS: a 'quick and dirty' usability scale", in Usability
Evaluation in Industry, Taylor & Francis, pp. 189-194): ten statements answered 1
(strongly disagree) .. 5 (strongly agree); each odd-numbered item contributes its answer
minus 1, each even-numbered item 5 minus its answer; the sum of the ten contributions
(0..40) times 2.5 is the SUS score, 0..100. Brooke asks for every item to be answered.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from scipy import stats as sps
from sqlalchemy import select
from sqlalchemy.orm import Session

from scanbench.errors import InputError
from scanbench.programme import stats
from scanbench.store import models as m
from scanbench.web.audit import Actor, record

SOURCE = "Brooke 1996, SUS: a 'quick and dirty' usability scale"
#: The ten statements as Brooke (1996) published them.
ITEMS = (
    "I think that I would like to use this system frequently.",
    "I found the system unnecessarily complex.",
    "I thought the system was easy to use.",
    "I think that I would need the support of a technical person to be able to use "
    "this system.",
    "I found the various functions in this system were well integrated.",
    "I thought there was too much inconsistency in this system.",
    "I would imagine that most people would learn to use this system very quickly.",
    "I found the system very cumbersome to use.",
    "I felt very confident using the system.",
    "I needed to learn a lot of things before I could get going with this system.",
)


def validate(answers: Sequence[Any]) -> list[int]:
    """The ten answers as integers 1..5, or an :class:`InputError` naming the item."""
    if not isinstance(answers, (list, tuple)) or len(answers) != 10:
        n = len(answers) if isinstance(answers, (list, tuple)) else "no list of"
        raise InputError(f"SUS answers: need exactly 10 answers (items 1..10), got {n}")
    out = []
    for i, a in enumerate(answers, start=1):
        if isinstance(a, bool) or not isinstance(a, int) or not 1 <= a <= 5:
            raise InputError(f"SUS answers: item {i} must be an integer 1..5 "
                             f"(1 strongly disagree, 5 strongly agree), got {a!r}")
        out.append(a)
    return out


def score(answers: Sequence[Any]) -> float:
    """The SUS score 0..100 of ten answers (Brooke 1996): (Σ odd (a-1) + Σ even (5-a))
    × 2.5."""
    a = validate(answers)
    total = sum(a[i] - 1 if i % 2 == 0 else 5 - a[i] for i in range(10))
    return total * 2.5


def add_response(session: Session, actor: Actor, device_id: int, role: str,
                 answers: Sequence[Any], *, user_id: int | None = None,
                 at: dt.datetime | None = None) -> m.SusResponse:
    """Store one questionnaire about ``device_id`` by someone in ``role`` (their job,
    e.g. technologist, radiologist, physicist), with its score, and its audit entry."""
    device = session.get(m.Device, device_id)
    if device is None:
        raise InputError(f"SUS response: no device {device_id}")
    role = (role or "").strip()
    if not role or len(role) > 32:
        raise InputError("SUS response: role must be 1..32 characters (e.g. technologist)")
    a = validate(answers)
    row = m.SusResponse(device_id=device_id, user_id=user_id, role=role, answers=a,
                        score=score(a), at=at or dt.datetime.now(dt.UTC))
    session.add(row)
    session.flush()
    record(session, actor, "sus.add", "sus_response", row.id, site_id=device.site_id,
           after={"device_id": device_id, "role": role, "answers": a, "score": row.score})
    return row


def _summary(scores: list[float]) -> dict[str, Any]:
    ci = stats.mean_ci(scores, bounds=(0.0, 100.0))
    return {"n": len(scores), "mean": ci.estimate, "ci_low": ci.low, "ci_high": ci.high,
            "ci": f"95 % {ci.method}", "unit": "SUS score (0-100)"}


def summarise(session: Session, device_ids: Sequence[int]) -> dict[str, Any]:
    """SUS per device and role, per model (manufacturer + model), each device's trend by
    year of its life since installation (or since its first response), and every pair of
    models with at least 2 responses each compared (:func:`compare_models`)."""
    rows = session.execute(
        select(m.SusResponse, m.Device).join(m.Device, m.Device.id == m.SusResponse.device_id)
        .where(m.SusResponse.device_id.in_(list(device_ids)))
        .order_by(m.SusResponse.at)).all()
    by_dev_role: dict[tuple[int, str], list[float]] = defaultdict(list)
    by_model: dict[str, list[float]] = defaultdict(list)
    trend: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    first: dict[int, dt.date] = {}
    for resp, dev in rows:
        by_dev_role[(dev.id, resp.role)].append(resp.score)
        by_model[f"{dev.manufacturer} {dev.model}".strip()].append(resp.score)
        start = first.setdefault(dev.id, _installed(session, dev) or resp.at.date())
        year = max(0, (resp.at.date() - start).days // 365)
        trend[dev.id][year].append(resp.score)
    return dict(stats.finite({
        "method": SOURCE,
        "per_device_role": [{"device_id": d, "role": r, **_summary(v)}
                            for (d, r), v in sorted(by_dev_role.items())],
        "per_model": [{"model": k, **_summary(v)} for k, v in sorted(by_model.items())],
        "trend": [{"device_id": d, "year_of_life": y + 1, **_summary(v)}
                  for d, years in sorted(trend.items()) for y, v in sorted(years.items())],
        "model_comparisons": [
            {"models": [a, b], **compare_models(by_model[a], by_model[b])}
            for a, b in itertools.combinations(sorted(by_model), 2)
            if len(by_model[a]) >= 2 and len(by_model[b]) >= 2],
    }))


def _installed(session: Session, dev: m.Device) -> dt.date | None:
    ev = session.scalars(select(m.LifecycleEvent.occurred_at).where(
        m.LifecycleEvent.device_id == dev.id,
        m.LifecycleEvent.kind.in_(("installation", "acceptance")))
        .order_by(m.LifecycleEvent.occurred_at).limit(1)).first()
    return ev.date() if ev is not None else None


def compare_models(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Two models' SUS scores (different respondents, so unpaired): Mann-Whitney U
    (two-sided), rank-biserial correlation r = 2 U_a/(n_a n_b) - 1 as effect size (Wendt
    1972; positive: ``a`` higher), and the difference of means with its Welch t
    interval."""
    x, y = list(map(float, a)), list(map(float, b))
    if len(x) < 2 or len(y) < 2:
        raise InputError("comparing two models needs at least 2 SUS responses for each")
    u = sps.mannwhitneyu(x, y, alternative="two-sided")
    welch = sps.ttest_ind(x, y, equal_var=False)
    ci = welch.confidence_interval(0.95)
    return {"test": "Mann-Whitney U (two-sided)", "u": float(u.statistic),
            "p": float(u.pvalue), "effect_size": "rank-biserial correlation (Wendt 1972)",
            "rank_biserial": 2 * float(u.statistic) / (len(x) * len(y)) - 1,
            "mean_difference": sum(x) / len(x) - sum(y) / len(y),
            "ci_low": float(ci.low), "ci_high": float(ci.high), "ci": "95 % Welch t",
            "n": [len(x), len(y)]}

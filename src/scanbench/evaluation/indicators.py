"""Device-level indicators a spec scores (issue 13 §3: reliability, workflow, dose,
usability, economics), computed from the store over a scorecard's period.

A spec states them under ``indicators:`` (:class:`scanbench.specs.Indicator`): which
indicator, its limit (``low``/``high``; both may be empty: reported, never judged), the
limit's source and whether that source confirms it. Methods, all over the period
[start, end) in the site's local clock time:

* ``uptime_percent``, ``availability_percent``, ``mtbf_h``, ``mttr_h`` — the lifecycle
  log and staffed hours (:func:`scanbench.evaluation.records.device_reliability`,
  definitions in :mod:`scanbench.evaluation.reliability`: uptime = staffed hours up /
  staffed hours in service; MTBF = up time / unplanned failures; MTTR = unplanned
  repair time / repairs; availability = MTBF / (MTBF + MTTR)).
* ``exams_per_day`` — exams with workflow timings (distinct studies, by exam start,
  :func:`scanbench.evaluation.records.exams_by_day`) / calendar days of the period
  (whole days: a running period counts up to yesterday).
* ``median_exam_duration_min`` — the median of the stored exam durations
  (``exam_timing.duration_s``) of exams started in the period, in minutes.
* ``cost_per_exam`` — :func:`scanbench.evaluation.records.device_cost_per_exam` (costs
  attributed to the period by the economics module's rules / exams), in the costs'
  currency.
* ``ctdivol_median_to_drl``, ``dlp_median_to_drl`` — per protocol of the device, the
  median CTDIvol (DLP) over the period / the diagnostic reference level of the
  protocol's exam category in the default DRL table
  (:func:`scanbench.clinical.dose_stats.dose_statistics`; ICRP Publication 135, 2017:
  the facility's median is compared with the DRL); the indicator is the highest ratio
  over the protocols that match a reference level (the protocol that most needs a
  review), and names it.
* ``mean_sus_score`` — the mean System Usability Scale score of the questionnaires
  about the device answered in the period (``sus_response``), each scored from its ten
  answers by Brooke's method (:func:`scanbench.programme.sus.score`; Brooke 1996, "SUS:
  a quick and dirty usability scale"): odd items contribute answer − 1, even items
  5 − answer, the sum × 2.5 (0–100); an incomplete questionnaire is left out, counted.

Judging: no limit -> ``not_judged`` (reported only); a limit whose source is not
confirmed (P/U) -> ``not_judged``, saying whether the value is inside or outside it
(an unconfirmed limit is shown, never judged as fail); a confirmed limit -> ``passed``
/ ``failed``; no value (no events, no exams, no questionnaires) -> ``not_applicable``
with the reason.
"""

from __future__ import annotations

import datetime as dt
import statistics
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from scanbench.errors import InputError, ScanbenchError
from scanbench.specs import CONFIDENCE_WORDS, Indicator
from scanbench.store import models as m
from scanbench.types import Limits

SUS_METHOD = ("Brooke 1996: odd items answer - 1, even items 5 - answer, sum x 2.5 "
              "(0-100)")


def _value(session: Session, device: m.Device, name: str, start: dt.datetime,
           end: dt.datetime, end_day: dt.date, zone: Any
           ) -> tuple[float | None, str, dict[str, Any]]:
    """(value, how it was obtained or why there is none, evidence)."""
    from scanbench.evaluation import records

    if name in ("uptime_percent", "availability_percent", "mtbf_h", "mttr_h"):
        r = records.device_reliability(session, device.id, start, end)
        value = {"uptime_percent": r.uptime_pct, "availability_percent": r.availability_pct,
                 "mtbf_h": r.mtbf_h, "mttr_h": r.mttr_h}[name]
        how = (f"{r.failures} unplanned failure(s), {r.repairs} repair(s), "
               f"{r.up_h:g} h up of {r.in_service_h:g} h in service "
               f"({r.staffed_h:g} staffed h)")
        ev = {"failures": r.failures, "repairs": r.repairs, "up_h": r.up_h,
              "in_service_h": r.in_service_h, "staffed_h": r.staffed_h,
              "unplanned_downtime_h": r.unplanned_downtime_h}
        return value, how if value is not None else f"not defined: {how}", ev
    days = (end_day - start.date()).days
    if name == "exams_per_day":
        if days <= 0:
            return None, "no whole day in the period yet", {}
        n = sum(records.exams_by_day(session, device.id, start.date(), end_day).values())
        return n / days, f"{n} exam(s) in {days} day(s)", {"exams": n, "days": days}
    if name == "median_exam_duration_min":
        rows = [d for d in session.scalars(select(m.ExamTiming.duration_s).where(
            m.ExamTiming.device_id == device.id, m.ExamTiming.started_at >= start,
            m.ExamTiming.started_at < end, m.ExamTiming.duration_s.is_not(None)))
            if d is not None]
        if not rows:
            return None, "no exam with a duration in the period", {}
        return (statistics.median(rows) / 60.0, f"median of {len(rows)} exam duration(s)",
                {"exams": len(rows)})
    if name == "cost_per_exam":
        if days <= 0:
            return None, "no whole day in the period yet", {}
        c = records.device_cost_per_exam(session, device.id, start.date(), end_day)
        if c.cost_per_exam is None:
            return None, (f"no exam in the period ({c.total_cost:g} "
                          f"{c.currency or ''} of costs)"), {}
        return (c.cost_per_exam, f"{c.total_cost:g} {c.currency or ''} / {c.exams} exam(s)",
                {"total_cost": c.total_cost, "currency": c.currency, "exams": c.exams})
    if name in ("ctdivol_median_to_drl", "dlp_median_to_drl"):
        from scanbench.clinical import dose_stats as ds

        if days <= 0:
            return None, "no whole day in the period yet", {}
        key = "ctdivol_mgy" if name.startswith("ctdivol") else "dlp_mgycm"
        st = ds.dose_statistics(session, key, ds.Filters(
            device_id=device.id, date_from=start.date(), date_to=end_day),
            group_by="device_protocol", max_outliers=0)
        refs = [g for g in st.groups if g.reference is not None]
        if not refs:
            return None, (f"no protocol of this device in the period matches a reference "
                          f"level of {st.table.name if st.table else 'the DRL table'}"), {}
        worst = max(refs, key=lambda g: g.reference.ratio_median)  # type: ignore[union-attr]
        ref = worst.reference
        assert ref is not None
        return ref.ratio_median, (
            f"protocol {worst.protocol!r}: median {worst.distribution.median:g} "
            f"{st.quantity.unit} / DRL {ref.level:g} {st.quantity.unit} ({ref.exam}, "
            f"{ref.table}: {ref.source}); {len(refs)} protocol(s) compared"), {
            "protocol": worst.protocol, "median": worst.distribution.median,
            "drl": ref.level, "table": ref.table, "protocols": len(refs)}
    if name == "mean_sus_score":
        from scanbench.evaluation import assign as A

        u0, u1 = A.to_utc(start, zone), A.to_utc(end, zone)  # sus_response.at is UTC
        from scanbench.programme.sus import score as sus_score  # scipy: only when asked

        scores, bad = [], 0
        for answers in session.scalars(select(m.SusResponse.answers).where(
                m.SusResponse.device_id == device.id, m.SusResponse.at >= u0,
                m.SusResponse.at < u1)):
            try:  # scored again from the answers, by the one SUS scoring in scanbench
                scores.append(sus_score(answers or []))
            except InputError:
                bad += 1
        skipped = f"; {bad} incomplete questionnaire(s) left out" if bad else ""
        if not scores:
            return None, f"no SUS questionnaire about this device in the period{skipped}", {}
        return (statistics.fmean(scores), f"mean of {len(scores)} questionnaire(s), "
                f"{SUS_METHOD}{skipped}", {"questionnaires": len(scores)})
    raise ValueError(f"unknown indicator {name!r}")  # the spec loader refuses it first


def score_indicator(session: Session, device: m.Device, ind: Indicator, start: dt.datetime,
                    end: dt.datetime, end_day: dt.date, zone: Any) -> dict[str, Any]:
    """One indicator of a spec over [start, end) (local naive; ``end_day``: the first
    day not counted by the day-based indicators), judged by its limit (module doc)."""
    try:
        value, how, evidence = _value(session, device, ind.indicator, start, end, end_day,
                                      zone)
    except ScanbenchError as exc:  # e.g. a lifecycle log that breaks the rules
        value, how, evidence = None, f"cannot be computed: {exc}", {}
    lim = Limits(ind.low, ind.high, ind.source, ind.confidence == "C")
    band = _band(ind)
    limit_text = (f"limit {band} ({ind.source}, {CONFIDENCE_WORDS[ind.confidence]})"
                  if ind.has_limit else f"no limit ({ind.source})")
    if value is None:
        status, reason = "not_applicable", how
    elif not ind.has_limit:
        status, reason = "not_judged", f"{value:.4g} {ind.unit}: {how}; {limit_text}"
    else:
        check = lim.check(value)
        if check in ("pass", "fail"):
            status = "passed" if check == "pass" else "failed"
            reason = (f"{value:.4g} {ind.unit} {'inside' if check == 'pass' else 'outside'} "
                      f"{limit_text}: {how}")
        else:
            status = "not_judged"
            where = "inside" if check == "within_unconfirmed" else "outside"
            reason = (f"{value:.4g} {ind.unit} {where} the unconfirmed {limit_text}, shown "
                      f"and not judged: {how}")
    return {"indicator": ind.indicator, "dimension": ind.dimension, "unit": ind.unit,
            "value": value, "low": ind.low, "high": ind.high, "source": ind.source,
            "confidence": ind.confidence, "status": status, "reason": reason,
            "evidence": evidence, "note": ind.note}


def _band(ind: Indicator) -> str:
    if ind.low is not None and ind.high is not None:
        return f"{ind.low:g} to {ind.high:g} {ind.unit}"
    if ind.low is not None:
        return f"≥ {ind.low:g} {ind.unit}"
    if ind.high is not None:
        return f"≤ {ind.high:g} {ind.unit}"
    return "none"


__all__ = ["SUS_METHOD", "score_indicator"]

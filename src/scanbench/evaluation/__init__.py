"""Evaluating results against a spec: limits, pass/fail, and summaries.

How a rule is chosen for a measurement (:func:`apply_spec`):

1. Only rules for the result's analysis and the measurement's name count.
2. A rule's ``labels`` must all be present on the measurement with equal
   values (numbers compared numerically, strings ignoring case); a rule
   without labels covers every measurement of that name.
3. A rule with a ``device`` applies only when the result's manufacturer and
   model match. If any device rule matches a measurement, the general rules
   for it are ignored: a vendor's claim for a model replaces a generic limit.
4. All remaining rules must hold: their lows and highs are intersected, and
   their sources joined.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from scanbench.specs import Rule, Spec
from scanbench.types import Limits, Measurement, Result, Status


def _matching_rules(spec_rules: Iterable[Rule], result: Result, m: Measurement) -> list[Rule]:
    candidates = [r for r in spec_rules
                  if r.measurement == m.name and r.matches_labels(m.labels)
                  and (r.device is None or r.device.matches(result.device))]
    device_rules = [r for r in candidates if r.device is not None]
    return device_rules or candidates


def _combine(rules: list[Rule], spec: Spec) -> Limits:
    lows = [r.low for r in rules if r.low is not None]
    highs = [r.high for r in rules if r.high is not None]
    sources = list(dict.fromkeys(
        f"{r.source} [{r.confidence}]" + (f" — {r.note}" if r.note else "") for r in rules))
    return Limits(
        low=max(lows) if lows else None,
        high=min(highs) if highs else None,
        source=f"{spec.name}: " + "; ".join(sources),
        verified=spec.verified and all(r.confidence == "C" for r in rules),
    )


def unverified_warning(spec: Spec) -> str:
    """The warning every result evaluated with an unverified spec carries."""
    return f"spec {spec.name} contains unconfirmed limits: {spec.unverified_reason}"


def apply_spec(result: Result, spec: Spec) -> Result:
    """Set limits and pass/fail status on ``result``'s measurements from ``spec``.

    Mutates and returns ``result``. Measurements without a rule get no limits
    and status ``info`` (so applying a second spec replaces the first). A
    measurement whose value is not finite fails its limits, with a warning.
    Warnings are added when the spec is unverified and has rules for this
    analysis, when it has no rule for this analysis, and when a rule that
    applies finds no measurement to judge.
    """
    rules = spec.rules_for(result.analysis)
    for m in result.measurements:
        matched = _matching_rules(rules, result, m)
        if not matched:
            m.limits = None
            m.status = "info"
            continue
        m.limits = _combine(matched, spec)
        if math.isfinite(m.value):
            m.status = m.limits.check(m.value)
        else:
            m.status = "fail"
            _warn(result, f"{m.name} {_labels(m.labels)}is not a number; it fails its "
                          f"{spec.name} limits")
    result.spec = spec.name
    if rules and not spec.verified:
        _warn(result, unverified_warning(spec))
    if not rules:
        _warn(result, f"spec {spec.name} has no limits for {result.analysis}; "
                      "all its measurements are reported without pass/fail")
    for r in rules:
        # A rule that judges nothing means a measurement the spec requires is
        # missing: say so rather than pass silently.
        applies = r.device is None or r.device.matches(result.device)
        if applies and not any(m.name == r.measurement and r.matches_labels(m.labels)
                               for m in result.measurements):
            _warn(result, f"spec {spec.name} requires {r.describe()}, which this result "
                          "does not contain")
    return result


def _labels(labels: dict[str, Any]) -> str:
    if not labels:
        return ""
    return "(" + ", ".join(f"{k} {v}" for k, v in labels.items()) + ") "


def _warn(result: Result, text: str) -> None:
    if text not in result.warnings:
        result.warnings.append(text)


def overall_status(result: Result) -> Status:
    """``fail`` if any measurement fails, else ``pass`` if any passes, else ``info``."""
    statuses = {m.status for m in result.measurements}
    if "fail" in statuses:
        return "fail"
    return "pass" if "pass" in statuses else "info"


def summarise(results: Iterable[Result]) -> dict[str, Any]:
    """Counts of pass / fail / info per result and in total.

    Returns ``{"results": [{"analysis", "series_instance_uid", "source", "spec",
    "pass", "fail", "info", "status", "warnings"}, ...], "total": {"pass",
    "fail", "info", "results"}, "status": overall}``, plain JSON-able data.
    """
    rows = []
    total = {"pass": 0, "fail": 0, "info": 0, "results": 0}
    for r in results:
        counts = {"pass": 0, "fail": 0, "info": 0}
        for m in r.measurements:
            counts[m.status] += 1
        status = overall_status(r)
        rows.append({"analysis": r.analysis, "series_instance_uid": r.series_instance_uid,
                     "source": r.source, "spec": r.spec, **counts, "status": status,
                     "warnings": len(r.warnings)})
        for k, v in counts.items():
            total[k] += v
        total["results"] += 1
    statuses = {row["status"] for row in rows}
    overall: Status = "fail" if "fail" in statuses else "pass" if "pass" in statuses else "info"
    return {"results": rows, "total": total, "status": overall}


__all__ = ["apply_spec", "overall_status", "summarise", "unverified_warning"]

"""Evaluating results against a spec: limits, pass/fail, and summaries.

How a rule is chosen for a measurement (:func:`apply_spec`):

1. Only rules for the result's analysis and the measurement's name count.
2. A rule's ``labels`` must all be present on the measurement with equal
   values (numbers compared numerically, strings ignoring case); a rule
   without labels covers every measurement of that name.
3. A rule with a ``device`` applies only when the result's manufacturer and
   model match. If any device rule matches a measurement, the general rules
   for it are ignored: a vendor's claim for a model replaces a generic limit.
4. A rule with ``when`` conditions applies only when the result's
   ``parameters`` satisfy them; when the result does not state a parameter a
   condition needs, the rule is not applied and the result says so.
5. A ``baseline`` rule takes its limits around the device's baseline value of
   the same measurement (:class:`Baseline`); without one it judges nothing, and
   the result says so.
6. All remaining rules must hold: their lows and highs are intersected, and
   their sources joined.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanbench.errors import InputError
from scanbench.specs import CONFIDENCE_WORDS, Rule, Spec
from scanbench.types import STATUSES, DeviceIdentity, Limits, Measurement, Result, Status


def _label_key(labels: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    def norm(v: Any) -> str:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        return str(v).strip().lower()
    return tuple(sorted((str(k), norm(v)) for k, v in labels.items()))


@dataclass
class Baseline:
    """A device's accepted baseline values, per (analysis, measurement, labels).

    Built from earlier results (``scanbench analyze --json`` output): the values
    an acceptance test or a commissioning session recorded, against which a
    ``baseline`` rule judges later QC of the same device.
    """

    values: dict[tuple[str, str, tuple[tuple[str, str], ...]], float] = field(
        default_factory=dict)
    devices: dict[str, DeviceIdentity] = field(default_factory=dict)  # analysis -> device
    source: str = ""

    @classmethod
    def from_results(cls, results: Iterable[Result | Mapping[str, Any]],
                     source: str = "") -> Baseline:
        """Later results of the same key replace earlier ones."""
        out = cls(source=source)
        for r in results:
            d = r.to_dict() if isinstance(r, Result) else r
            analysis = str(d.get("analysis", ""))
            dev = d.get("device") or {}
            out.devices[analysis] = DeviceIdentity(
                **{k: dev.get(k) for k in ("manufacturer", "model", "serial", "station",
                                           "software_versions")})
            for m in d.get("measurements", []):
                value = m.get("value")
                if isinstance(value, int | float) and math.isfinite(float(value)):
                    out.values[(analysis, str(m.get("name")),
                                _label_key(m.get("labels") or {}))] = float(value)
        return out

    @classmethod
    def load(cls, path: str | Path) -> Baseline:
        """Read a results JSON file (an array of results, or one result)."""
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise InputError("baseline file not found", where=p) from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read baseline results JSON ({exc})", where=p) from exc
        items = data if isinstance(data, list) else [data]
        if not all(isinstance(x, dict) and "analysis" in x and "measurements" in x
                   for x in items):
            raise InputError("not scanbench results JSON (expected the output of "
                             "`scanbench analyze --json`)", where=p)
        return cls.from_results(items, source=str(p))

    def value(self, analysis: str, m: Measurement) -> float | None:
        return self.values.get((analysis, m.name, _label_key(m.labels)))

    def same_device(self, result: Result) -> bool | None:
        """Whether the baseline was measured on the result's device (None: unknown)."""
        dev = self.devices.get(result.analysis)
        if dev is None:
            return None
        for k in ("manufacturer", "model", "serial"):
            mine, theirs = getattr(dev, k), getattr(result.device, k)
            if mine and theirs and str(mine).strip().lower() != str(theirs).strip().lower():
                return False
        return True


def _conditions_hold(rule: Rule, result: Result) -> bool | None:
    states = [c.holds(result.parameters) for c in rule.when]
    if any(s is False for s in states):
        return False
    if any(s is None for s in states):
        return None
    return True


def _matching_rules(spec_rules: Iterable[Rule], result: Result, m: Measurement) -> list[Rule]:
    candidates = [r for r in spec_rules
                  if r.measurement == m.name and r.matches_labels(m.labels)
                  and (r.device is None or r.device.matches(result.device))
                  and _conditions_hold(r, result) is True]
    device_rules = [r for r in candidates if r.device is not None]
    return device_rules or candidates


def _bounds(rule: Rule, result: Result, m: Measurement, baseline: Baseline | None
            ) -> tuple[float | None, float | None, str] | None:
    """(low, high, how) of one rule for one measurement; None when a baseline rule has
    no baseline value to work from."""
    if rule.baseline is None:
        return rule.low, rule.high, ""
    ref = baseline.value(result.analysis, m) if baseline is not None else None
    if ref is None:
        return None
    low, high = rule.baseline.around(ref)
    return low, high, f"{rule.baseline.describe()} of {ref:g}"


def _combine(rules: list[Rule], spec: Spec, result: Result, m: Measurement,
             baseline: Baseline | None) -> Limits | None:
    bounds = [(r, b) for r in rules if (b := _bounds(r, result, m, baseline)) is not None]
    if not bounds:
        return None
    rules = [r for r, _ in bounds]
    lows = [b[0] for _, b in bounds if b[0] is not None]
    highs = [b[1] for _, b in bounds if b[1] is not None]
    sources = list(dict.fromkeys(
        f"{r.source} ({CONFIDENCE_WORDS[r.confidence]})" + (f" — {r.note}" if r.note else "")
        + (f" ({b[2]})" if b[2] else "") for r, b in bounds))
    return Limits(
        low=max(lows) if lows else None,
        high=min(highs) if highs else None,
        source=f"{spec.name}: " + "; ".join(sources),
        # Judged pass/fail only when every limit that applies is confirmed in its source;
        # a confirmed limit stays pass/fail inside a spec that also holds unconfirmed ones.
        verified=all(r.confidence == "C" for r in rules),
    )


def unverified_warning(spec: Spec) -> str:
    """The warning every result evaluated with an unverified spec carries."""
    return f"spec {spec.name} contains unconfirmed limits: {spec.unverified_reason}"


def apply_spec(result: Result, spec: Spec, baseline: Baseline | None = None) -> Result:
    """Set limits and pass/fail status on ``result``'s measurements from ``spec``.

    ``baseline`` gives the device's accepted values for rules whose limits are
    relative to a baseline; one measured on another device is refused with a
    warning.

    Mutates and returns ``result``. Measurements without a rule get no limits
    and status ``info`` (so applying a second spec replaces the first). A
    measurement whose value is not finite fails its limits, with a warning.
    Warnings are added when the spec is unverified and has rules for this
    analysis, when it has no rule for this analysis, and when a rule that
    applies finds no measurement to judge.
    """
    rules = spec.rules_for(result.analysis)
    if baseline is not None and baseline.same_device(result) is False:
        _warn(result, f"baseline {baseline.source or ''} was measured on another device "
                      f"({baseline.devices[result.analysis].to_dict()}); not used")
        baseline = None
    for r in rules:
        if r.when and _conditions_hold(r, result) is None:
            missing = [c.parameter for c in r.when if c.holds(result.parameters) is None]
            _warn(result, f"spec {spec.name}: rule for {r.describe()} needs "
                          f"{', '.join(missing)}, which this result does not state; not applied")
    for m in result.measurements:
        matched = _matching_rules(rules, result, m)
        limits = _combine(matched, spec, result, m, baseline) if matched else None
        if matched and limits is None:
            _warn(result, f"spec {spec.name} judges {m.name} {_labels(m.labels)}against the "
                          "device's baseline, and no baseline value was given for it "
                          "(scanbench analyze --baseline RESULTS.json)")
        if m.status in _STICKY:
            # refused and not-judged values are never judged; a not-judged one still shows
            # the limit it would have been held to
            m.limits = limits if m.status == "not_judged" else None
            if matched:
                _warn(result, f"spec {spec.name} judges {m.name} {_labels(m.labels)}but it "
                              f"is {m.status.replace('_', ' ')}: {m.note}")
            continue
        if limits is None:
            m.limits = None
            m.status = "info"
            continue
        m.limits = limits
        if math.isfinite(m.value):
            m.status = m.limits.check(m.value)
            if m.status in ("pass", "within_unconfirmed"):
                _tolerance_warning(result, spec, m, matched)
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
        applies = (r.device is None or r.device.matches(result.device)) and \
            _conditions_hold(r, result) is True
        if applies and not any(m.name == r.measurement and r.matches_labels(m.labels)
                               for m in result.measurements):
            _warn(result, f"spec {spec.name} requires {r.describe()}, which this result "
                          "does not contain")
    return result


def _tolerance_warning(result: Result, spec: Spec, m: Measurement, rules: list[Rule]) -> None:
    """A value inside the action limits but outside a rule's tolerance band (QATrack+'s
    two levels: tolerance warns, action fails) keeps its status and gets a warning."""
    for r in rules:
        if r.tolerance is not None and r.level(m.value) == "tolerance":
            lo, hi = r.tolerance
            band = " to ".join(x for x in ("" if lo is None else f"≥ {lo:g}",
                                           "" if hi is None else f"≤ {hi:g}") if x)
            _warn(result, f"spec {spec.name}: {m.name} {_labels(m.labels)}= {m.value:g} "
                          f"{m.unit} is inside the action limits but outside the tolerance "
                          f"level ({band}; {r.source}): act before it fails")


def _labels(labels: dict[str, Any]) -> str:
    if not labels:
        return ""
    return "(" + ", ".join(f"{k} {v}" for k, v in labels.items()) + ") "


def _warn(result: Result, text: str) -> None:
    if text not in result.warnings:
        result.warnings.append(text)


_STICKY = ("refused", "not_judged")  # set by the analysis; no spec changes them


def overall_status(result: Result) -> Status:
    """``fail`` if any measurement fails, else ``refused`` if a value was refused, else
    ``pass`` if any passes, else ``info``. Unconfirmed limits never make a result fail."""
    return _overall({m.status for m in result.measurements})


def _overall(statuses: set[str]) -> Status:
    for s in ("fail", "refused", "pass"):
        if s in statuses:
            return s
    return "info"


def summarise(results: Iterable[Result]) -> dict[str, Any]:
    """Counts of each status (:data:`scanbench.types.STATUSES`) per result and in total.

    Returns ``{"results": [{"analysis", "series_instance_uid", "source", "spec",
    <one count per status>, "status", "warnings"}, ...], "total": {<one count per
    status>, "results"}, "status": overall}``, plain JSON-able data.
    """
    rows: list[dict[str, Any]] = []
    total: dict[str, int] = {**dict.fromkeys(STATUSES, 0), "results": 0}
    for r in results:
        counts = dict.fromkeys(STATUSES, 0)
        for m in r.measurements:
            counts[m.status] += 1
        status = overall_status(r)
        row: dict[str, Any] = {"analysis": r.analysis,
                               "series_instance_uid": r.series_instance_uid,
                               "source": r.source, "spec": r.spec}
        rows.append(row | counts | {"status": status, "warnings": len(r.warnings)})
        for k, v in counts.items():
            total[k] += v
        total["results"] += 1
    return {"results": rows, "total": total, "status": _overall({row["status"] for row in rows})}


__all__ = ["Baseline", "apply_spec", "overall_status", "summarise", "unverified_warning"]

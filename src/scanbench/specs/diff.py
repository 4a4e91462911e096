"""What changed between two evaluation specifications (``scanbench specs diff A B``).

Limits are matched by what they apply to (:attr:`scanbench.specs.Rule.key`: analysis,
measurement, labels, device and conditions). A matched limit is *tightened* when its
accepted range shrank (a higher low, a lower high, or a bound added) and nothing grew,
*loosened* when it grew and nothing shrank, *changed* otherwise (shifted, a different
kind of bound, another source, confidence or tolerance band). Required tests are matched
by their test id; a test done more often is tightened, less often loosened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from scanbench.specs import CONFIDENCE_WORDS, Indicator, Rule, Spec, TestRequirement

Change = Literal["added", "removed", "tightened", "loosened", "changed"]

# Periodic frequencies from most to least often (after_service and acceptance are events).
_ORDER = {"daily": 0, "weekly": 1, "monthly": 2, "quarterly": 3, "annual": 4}


@dataclass(frozen=True)
class SpecChange:
    """One row of a spec diff: what (a limit or a required test), old and new."""

    change: Change
    kind: Literal["limit", "test", "weight", "indicator"]
    what: str  # "analysis measurement {labels}" or the test id or the dimension
    old: str
    new: str
    detail: str = ""


def _bounds_text(r: Rule | None) -> str:
    if r is None:
        return ""
    if r.baseline is not None:
        b = r.baseline
        return b.describe()
    lo = "" if r.low is None else f"{r.low:g}"
    hi = "" if r.high is None else f"{r.high:g}"
    text = f"{lo} to {hi}" if lo and hi else (f"≥ {lo}" if lo else f"≤ {hi}")
    if r.tolerance is not None:
        tl, th = r.tolerance
        tol = f"{tl:g} to {th:g}" if tl is not None and th is not None else (
            f"≥ {tl:g}" if tl is not None else f"≤ {th:g}")
        text += f" (tolerance {tol})"
    return text


def _direction(old_low: float | None, old_high: float | None, new_low: float | None,
               new_high: float | None) -> tuple[bool, bool]:
    """(tighter, looser): whether any bound moved inwards / outwards."""
    tighter = looser = False
    for old, new, sign in ((old_low, new_low, 1.0), (old_high, new_high, -1.0)):
        if old == new:
            continue
        if old is None:
            tighter = True
        elif new is None:
            looser = True
        elif (new - old) * sign > 0:
            tighter = True
        else:
            looser = True
    return tighter, looser


def _compare_rules(old: Rule, new: Rule) -> tuple[Change, str] | None:
    notes = []
    if old.confidence != new.confidence:
        notes.append(f"{CONFIDENCE_WORDS[old.confidence]} -> {CONFIDENCE_WORDS[new.confidence]}")
    if old.source != new.source:
        notes.append("source changed")
    if old.tolerance != new.tolerance:
        notes.append("tolerance band changed")
    if (old.baseline is None) != (new.baseline is None) or (
            old.baseline is not None and new.baseline is not None
            and old.baseline.mode != new.baseline.mode):
        return "changed", "; ".join(["a different kind of limit", *notes])
    if old.baseline is not None and new.baseline is not None:
        tighter, looser = _direction(old.baseline.low, old.baseline.high,
                                     new.baseline.low, new.baseline.high)
    else:
        tighter, looser = _direction(old.low, old.high, new.low, new.high)
    if tighter and not looser:
        return "tightened", "; ".join(notes)
    if looser and not tighter:
        return "loosened", "; ".join(notes)
    if tighter and looser:
        return "changed", "; ".join(["the range moved", *notes])
    return ("changed", "; ".join(notes)) if notes else None


def _what(r: Rule) -> str:
    return f"{r.analysis} {r.describe()}"


def _test_text(t: TestRequirement | None) -> str:
    if t is None:
        return ""
    freq = t.frequency or "frequency not confirmed"
    window = "" if t.window_days is None else f", window {t.window_days:g} d"
    return freq + window


def diff_specs(a: Spec, b: Spec) -> list[SpecChange]:
    """The changes from spec ``a`` to spec ``b``: limits, required tests, weights."""
    out: list[SpecChange] = []
    old_rules = {r.key: r for r in a.rules}
    new_rules = {r.key: r for r in b.rules}
    for key, r in old_rules.items():
        if key not in new_rules:
            out.append(SpecChange("removed", "limit", _what(r), _bounds_text(r), ""))
            continue
        found = _compare_rules(r, new_rules[key])
        if found is not None:
            out.append(SpecChange(found[0], "limit", _what(r), _bounds_text(r),
                                  _bounds_text(new_rules[key]), found[1]))
    out.extend(SpecChange("added", "limit", _what(r), "", _bounds_text(r))
               for key, r in new_rules.items() if key not in old_rules)
    old_tests = {t.test: t for t in a.tests}
    new_tests = {t.test: t for t in b.tests}
    for name, t in old_tests.items():
        if name not in new_tests:
            out.append(SpecChange("removed", "test", name, _test_text(t), ""))
            continue
        n = new_tests[name]
        if (t.frequency, t.window_days, t.weekdays) == (n.frequency, n.window_days,
                                                        n.weekdays):
            continue
        change: Change = "changed"
        if t.frequency in _ORDER and n.frequency in _ORDER and t.frequency != n.frequency:
            change = "tightened" if _ORDER[n.frequency] < _ORDER[t.frequency] else "loosened"
        elif t.frequency == n.frequency and t.window_days is not None \
                and n.window_days is not None and t.weekdays == n.weekdays:
            change = "tightened" if n.window_days < t.window_days else "loosened"
        out.append(SpecChange(change, "test", name, _test_text(t), _test_text(n)))
    out.extend(SpecChange("added", "test", name, "", _test_text(t))
               for name, t in new_tests.items() if name not in old_tests)
    out.extend(_diff_indicators(a, b))
    wa, wb = a.normalised_weights(), b.normalised_weights()
    for dim in sorted(set(wa) | set(wb)):
        if abs(wa.get(dim, 0.0) - wb.get(dim, 0.0)) > 1e-9:
            out.append(SpecChange("changed", "weight", dim,
                                  f"{wa[dim]:.0%}" if dim in wa else "none",
                                  f"{wb[dim]:.0%}" if dim in wb else "none",
                                  "share of the total weight"))
    return out


def _indicator_text(i: Indicator | None) -> str:
    if i is None:
        return ""
    lo = "" if i.low is None else f"{i.low:g}"
    hi = "" if i.high is None else f"{i.high:g}"
    band = f"{lo} to {hi}" if lo and hi else (f"≥ {lo}" if lo else f"≤ {hi}" if hi
                                             else "no limit")
    return f"{band} ({CONFIDENCE_WORDS[i.confidence]})"


def _diff_indicators(a: Spec, b: Spec) -> list[SpecChange]:
    """Device-level indicators matched by name; a limit compared as a rule's is."""
    out: list[SpecChange] = []
    old = {i.indicator: i for i in a.indicators}
    new = {i.indicator: i for i in b.indicators}
    for name, i in old.items():
        if name not in new:
            out.append(SpecChange("removed", "indicator", name, _indicator_text(i), ""))
            continue
        n = new[name]
        if (i.low, i.high, i.confidence, i.source) == (n.low, n.high, n.confidence, n.source):
            continue
        tighter, looser = _direction(i.low, i.high, n.low, n.high)
        notes = [] if i.source == n.source else ["source changed"]
        change: Change = ("tightened" if tighter and not looser else
                          "loosened" if looser and not tighter else "changed")
        out.append(SpecChange(change, "indicator", name, _indicator_text(i),
                              _indicator_text(n), "; ".join(notes)))
    out.extend(SpecChange("added", "indicator", name, "", _indicator_text(i))
               for name, i in new.items() if name not in old)
    return out


__all__ = ["SpecChange", "diff_specs"]

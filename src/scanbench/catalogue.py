"""What scanbench can measure and judge, as tables: ``scanbench analyses`` and ``specs``.

Every cell is a :class:`rich.text.Text`, never markup: a spec may be any YAML file a
user points at, and its sources and notes are outside text.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from scanbench.analysis.base import Analysis, parameters_of
from scanbench.specs import CONFIDENCE_WORDS, Rule, Spec, measurement_unit
from scanbench.specs.diff import SpecChange

# The "confirmed" column: only a confirmed limit judges pass/fail.
_CONFIRMED = {"C": Text("yes", style="green"),
              "P": Text("no (secondary source only)", style="yellow"),
              "U": Text("no", style="yellow")}


def _number(v: float | None) -> str:
    return "" if v is None else f"{v:g}"


def analyses_table(analyses: list[Analysis]) -> Table:
    """One row per analysis: id, modality, the standard it implements, its parameters."""
    table = Table(title="analyses (use with --analysis ID; parameters with --param NAME=VALUE)",
                  title_justify="left", show_lines=True)
    table.add_column("id", no_wrap=True)  # ids are typed back: never cut them
    table.add_column("modality", no_wrap=True)
    table.add_column("what and standard", overflow="fold")
    table.add_column(Text("parameters: name [unit]: meaning; default"), overflow="fold")
    for a in sorted(analyses, key=lambda a: a.id):
        table.add_row(Text(a.id), Text(a.modality),
                      Text(f"{a.title}\n{a.standard}"), Text(parameters_text(a)))
    return table


def parameters_text(analysis: Analysis) -> str:
    """The parameters of one analysis, one per line, or "none" when it takes none."""
    lines = []
    for p in parameters_of(analysis):
        unit = f" [{p.unit}]" if p.unit else ""
        lines.append(f"{p.name}{unit}: {p.description}; default: {p.default_text()}")
    return "\n".join(lines) or "none"


def analyses_json(analyses: list[Analysis]) -> list[dict[str, Any]]:
    """The same as :func:`analyses_table`, as plain JSON values."""
    return [{"id": a.id, "modality": a.modality, "title": a.title, "standard": a.standard,
             "parameters": [{"name": p.name, "description": p.description, "unit": p.unit,
                             "default": p.default} for p in parameters_of(a)]}
            for a in sorted(analyses, key=lambda a: a.id)]


def specs_table(specs: list[Spec]) -> Table:
    """One row per spec: name, title, whether every limit is confirmed, number of rules."""
    table = Table(title="specifications (use with --spec NAME; `scanbench specs NAME` shows "
                  "the limits)", title_justify="left")
    table.add_column("name", no_wrap=True)
    table.add_column("title")
    table.add_column("limits confirmed")
    table.add_column("rules", justify="right")
    for s in specs:
        n_unconfirmed = len(s.unconfirmed_rules)
        confirmed = Text("no limits", style="yellow") if not s.rules else Text(
            "all", style="green") if s.verified else Text(
            f"{len(s.rules) - n_unconfirmed} of {len(s.rules)}", style="yellow")
        table.add_row(Text(s.name), Text(s.title), confirmed, str(len(s.rules)))
    return table


def rule_where(rule: Rule) -> str:
    """Which measurements a rule applies to: labels, device and conditions."""
    parts = [f"{k} {v}" for k, v in rule.labels.items()]
    if rule.device:
        parts.append(f"device {rule.device.describe()}")
    parts.extend(f"when {c.describe()}" for c in rule.when)
    return "; ".join(parts)


def rule_bounds(rule: Rule) -> tuple[str, str]:
    """The low and high columns: numbers, or the offsets around the device's baseline."""
    if rule.baseline is not None:
        b = rule.baseline
        unit = " %" if b.mode == "percent" else ""
        lo = "" if b.low is None else f"baseline {b.low:+g}{unit}"
        hi = "" if b.high is None else f"baseline {b.high:+g}{unit}"
        return lo, hi
    return _number(rule.low), _number(rule.high)


def spec_table(spec: Spec) -> Table:
    """The limits of one spec: analysis, measurement, labels, low, high, unit, source and
    whether the source confirms the number (only confirmed limits judge pass/fail)."""
    title = f"{spec.name}: {spec.title} (version {spec.version})"
    if not spec.rules:
        title += ": no limits" + (" (the required tests are listed above)" if spec.tests
                                  else "")
    table = Table(title=Text(title), title_justify="left", show_lines=True)
    table.add_column("analysis", no_wrap=True)
    table.add_column("measurement", no_wrap=True)
    table.add_column("labels", overflow="fold")
    table.add_column("low", justify="right", no_wrap=True)
    table.add_column("high", justify="right", no_wrap=True)
    table.add_column("unit", no_wrap=True)
    table.add_column("source", min_width=30, ratio=1, overflow="fold")
    table.add_column("confirmed", min_width=9)
    for r in spec.rules:
        lo, hi = rule_bounds(r)
        source = r.source + (f" ({r.note})" if r.note else "")
        table.add_row(Text(r.analysis), Text(r.measurement), Text(rule_where(r)), Text(lo),
                      Text(hi), Text(measurement_unit(r.measurement)), Text(source),
                      _CONFIRMED[r.confidence].copy())
    return table


def spec_json(spec: Spec) -> dict[str, Any]:
    """The same as :func:`spec_table` with the spec's header, as plain JSON values."""
    rules = []
    for r in spec.rules:
        lo, hi = rule_bounds(r)
        rules.append({"analysis": r.analysis, "measurement": r.measurement,
                      "labels": dict(r.labels), "where": rule_where(r),
                      "low": r.low, "high": r.high,
                      "baseline": None if r.baseline is None else {"low": lo, "high": hi},
                      "unit": measurement_unit(r.measurement), "source": r.source,
                      "note": r.note or None, "confirmed": r.confidence == "C",
                      "confirmation": CONFIDENCE_WORDS[r.confidence]})
    for r, row in zip(spec.rules, rules, strict=True):
        if r.tolerance is not None:
            row["tolerance"] = {"low": r.tolerance[0], "high": r.tolerance[1]}
    tests = [{"test": t.test, "title": t.title or None, "analysis": t.analysis,
              "frequency": t.frequency, "window_days": t.window_days,
              "weekdays": None if t.weekdays is None else list(t.weekdays),
              "dimension": t.dimension, "source": t.source,
              "confirmed": t.confidence == "C", "limits": t.limits, "note": t.note or None}
             for t in spec.tests]
    a = spec.applies_to
    return {"name": spec.name, "title": spec.title, "version": spec.version,
            "verified": spec.verified, "unverified_reason": spec.unverified_reason or None,
            "sources": list(spec.sources), "extends": list(spec.extends),
            "metadata": dict(spec.metadata),
            "applies_to": None if a is None else a.describe(),
            "weights": dict(spec.weights), "tests": tests, "rules": rules,
            "indicators": [{"indicator": i.indicator, "dimension": i.dimension,
                            "unit": i.unit, "low": i.low, "high": i.high,
                            "source": i.source, "confirmed": i.confidence == "C",
                            "confirmation": CONFIDENCE_WORDS[i.confidence],
                            "note": i.note or None} for i in spec.indicators]}


def spec_header(spec: Spec) -> str:
    """What a reader needs before the limits: whether they are all confirmed, and why not."""
    lines = [spec.description.strip()]
    if spec.verified:
        lines.append("Every limit in this spec is confirmed in its source: results are "
                     "judged pass or fail.")
    else:
        lines.append("Not every limit is confirmed: " + spec.unverified_reason + " Limits "
                     "that are not confirmed are shown beside the value (within or outside "
                     "the unconfirmed limit), never as pass or fail.")
    if spec.extends:
        lines.append("Extends: " + " <- ".join(spec.extends) + " (its limits unless replaced "
                     "here)")
    if spec.applies_to is not None:
        lines.append(f"Applies to: {spec.applies_to.describe()}")
    if spec.weights:
        lines.append("Dimension weights: " + ", ".join(
            f"{k} {v:.0%}" for k, v in spec.normalised_weights().items()))
    if spec.tests:
        lines.append("Required tests:")
        for t in spec.tests:
            freq = t.frequency or "period not confirmed"
            window = "" if t.window_days is None else f", window {t.window_days:g} days"
            limit = "; limits not confirmed" if t.limits == "not confirmed" else ""
            lines.append(f"  - {t.test}{' (' + t.title + ')' if t.title else ''}: "
                         f"{freq}{window}{limit}. {t.source}")
    if spec.indicators:
        lines.append("Device-level indicators (over the scorecard's period):")
        for i in spec.indicators:
            lo = "" if i.low is None else f"≥ {i.low:g}"
            hi = "" if i.high is None else f"≤ {i.high:g}"
            band = " and ".join(x for x in (lo, hi) if x) or "no limit"
            lines.append(f"  - {i.indicator} ({i.dimension}, {i.unit}): {band}, "
                         f"{CONFIDENCE_WORDS[i.confidence]}. {i.source}")
    lines.append("Sources:")
    lines.extend(f"  - {s}" for s in spec.sources)
    return "\n".join(lines)


_CHANGE_STYLE = {"added": "cyan", "removed": "magenta", "tightened": "green",
                 "loosened": "yellow", "changed": "yellow"}


def diff_table(a: Spec, b: Spec, changes: list[SpecChange]) -> Table:
    """What changed from spec ``a`` to spec ``b``: one row per limit, test or weight."""
    table = Table(title=Text(f"{a.name} {a.version} -> {b.name} {b.version}: "
                             f"{len(changes)} change(s)"), title_justify="left",
                  show_lines=True)
    table.add_column("change", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("what", overflow="fold")
    table.add_column(Text(a.name), overflow="fold")
    table.add_column(Text(b.name), overflow="fold")
    table.add_column("detail", overflow="fold")
    for c in changes:
        table.add_row(Text(c.change, style=_CHANGE_STYLE[c.change]), Text(c.kind),
                      Text(c.what), Text(c.old), Text(c.new), Text(c.detail))
    return table


def diff_json(a: Spec, b: Spec, changes: list[SpecChange]) -> dict[str, Any]:
    """The same as :func:`diff_table`, as plain JSON values."""
    return {"a": {"name": a.name, "version": a.version},
            "b": {"name": b.name, "version": b.version},
            "changes": [{"change": c.change, "kind": c.kind, "what": c.what, "old": c.old,
                         "new": c.new, "detail": c.detail or None} for c in changes]}


__all__ = ["analyses_json", "analyses_table", "diff_json", "diff_table", "parameters_text",
           "rule_bounds", "rule_where", "spec_header", "spec_json", "spec_table", "specs_table"]

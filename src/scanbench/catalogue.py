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
        confirmed = Text("all", style="green") if s.verified else Text(
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
    table = Table(title=Text(f"{spec.name}: {spec.title} (version {spec.version})"),
                  title_justify="left", show_lines=True)
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
    return {"name": spec.name, "title": spec.title, "version": spec.version,
            "verified": spec.verified, "unverified_reason": spec.unverified_reason or None,
            "sources": list(spec.sources), "rules": rules}


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
    lines.append("Sources:")
    lines.extend(f"  - {s}" for s in spec.sources)
    return "\n".join(lines)


__all__ = ["analyses_json", "analyses_table", "parameters_text", "rule_bounds", "rule_where",
           "spec_header", "spec_json", "spec_table", "specs_table"]

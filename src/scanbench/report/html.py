"""Render results as one self-contained HTML page (plotly.js embedded, no network)."""

from __future__ import annotations

import datetime as dt
import math
import platform
import re
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, TypedDict

import jinja2

from scanbench import __version__
from scanbench.evaluation import summarise
from scanbench.types import Measurement, Result

FigureSource = Callable[[Result], Sequence[Any]]

_UNVERIFIED_RE = re.compile(r"^spec (\S+) contains unconfirmed limits: (.*)$", re.S)
_LIBRARIES = ("numpy", "scipy", "scikit-image", "pydicom", "plotly", "jinja2", "pyyaml")


def format_value(value: float | None, digits: int = 4) -> str:
    """A number with about ``digits`` significant digits, without exponents for
    everyday magnitudes (1e-3 ≤ |v| < 1e6); '—' for None, 'n/a' for NaN."""
    if value is None:
        return "—"
    v = float(value)
    if not math.isfinite(v):
        return "n/a" if math.isnan(v) else ("∞" if v > 0 else "−∞")
    if v == 0:
        return "0"
    mag = math.floor(math.log10(abs(v)))
    if mag >= 6 or mag < -3:
        return f"{v:.{digits - 1}e}"
    decimals = max(0, digits - 1 - mag)
    return f"{v:.{decimals}f}"


def _exact(value: float) -> str:
    """A limit or label as written in the spec: 0.85 stays '0.85', 10.0 is '10'."""
    return f"{float(value):.6g}"


def format_limits(low: float | None, high: float | None) -> str:
    """'0.76 – 0.89', '≤ 3', '≥ -10' or '' when neither is set."""
    if low is not None and high is not None:
        return f"{_exact(low)} – {_exact(high)}"
    if high is not None:
        return f"≤ {_exact(high)}"
    if low is not None:
        return f"≥ {_exact(low)}"
    return ""


def _labels(labels: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {_exact(v) if isinstance(v, float) else v}"
                     for k, v in labels.items())


class _Section(TypedDict):
    """What the template shows of one result."""

    result: Result
    row: dict[str, Any]  # the result's row of summarise()
    title: str
    device: str
    acquired: str
    rows: list[dict[str, Any]]
    parameters: list[tuple[str, str]]
    figures: list[str]
    figure_error: str
    unverified: bool
    unverified_reason: str


def _measurement_row(m: Measurement) -> dict[str, Any]:
    unc = m.uncertainty
    return {
        "name": m.name, "labels": _labels(m.labels), "value": format_value(m.value),
        "unit": m.unit, "uncertainty": "—" if unc is None else f"± {format_value(unc, 2)}",
        "limits": format_limits(m.limits.low, m.limits.high) if m.limits else "",
        "source": m.limits.source if m.limits else "",
        "verified": m.limits.verified if m.limits else True,
        "status": m.status,
    }


def _device(result: Result) -> str:
    d = result.device
    parts = [p for p in (d.manufacturer, d.model) if p]
    text = " ".join(parts) or "unknown device"
    extra = [f"serial {d.serial}" if d.serial else "", f"station {d.station}" if d.station else "",
             f"software {d.software_versions}" if d.software_versions else ""]
    extra = [e for e in extra if e]
    return text + (f" ({', '.join(extra)})" if extra else "")


def _unverified(result: Result) -> tuple[bool, str]:
    """Whether ``result`` was judged by an unverified spec, and the spec's reason."""
    for w in result.warnings:
        match = _UNVERIFIED_RE.match(w)
        if match and match.group(1) == result.spec:
            return True, match.group(2)
    flagged = any(m.limits is not None and not m.limits.verified for m in result.measurements)
    return flagged, ""


def _parameters(params: dict[str, Any]) -> list[tuple[str, str]]:
    return [(str(k), str(v)) for k, v in sorted(params.items(), key=lambda kv: str(kv[0]))]


def _analysis_title(analysis_id: str) -> str:
    try:
        from scanbench.analysis import registry

        return registry.get(analysis_id).title
    except Exception:  # a report must not fail because an analysis module cannot load
        return analysis_id


def registry_figures(result: Result) -> Sequence[Any]:
    """The figures the result's own analysis draws (the default figure source)."""
    from scanbench.analysis import registry

    return registry.get(result.analysis).figures(result)


def provenance() -> list[tuple[str, str]]:
    """scanbench, Python and key library versions, for the report footer."""
    rows = [("scanbench", __version__),
            ("python", f"{platform.python_version()} ({platform.python_implementation()})"),
            ("platform", platform.platform())]
    for lib in _LIBRARIES:
        try:
            rows.append((lib, metadata.version(lib)))
        except metadata.PackageNotFoundError:
            rows.append((lib, "not installed"))
    return rows


def render_html(
    results: Sequence[Result],
    *,
    title: str = "scanbench report",
    failures: Sequence[tuple[str, str]] = (),
    skipped: Sequence[tuple[str, str]] = (),
    inputs: Sequence[str | Path] = (),
    figures: FigureSource | None = registry_figures,
    figure_size: tuple[int, int] | None = None,
    embed_plotlyjs: bool = True,
) -> str:
    """The report as an HTML string.

    ``figures`` maps a result to its Plotly figures (default: its analysis's
    ``figures``; None: no figures). A figure source that raises does not stop
    the report: the error is shown in place of that result's figures.
    ``figure_size`` fixes every figure's (width, height) in px, as print needs.
    """
    import plotly.offline

    summary = summarise(results)
    sections: list[_Section] = []
    any_figures = False
    for result, row in zip(results, summary["results"], strict=True):
        figs_html: list[str] = []
        figure_error = ""
        if figures is not None:
            try:
                figs = list(figures(result))
            except Exception as exc:  # shown in the report, next to the result it concerns
                figs = []
                figure_error = f"{type(exc).__name__}: {exc}"
            for i, fig in enumerate(figs):
                if figure_size is not None:
                    fig.update_layout(width=figure_size[0], height=figure_size[1],
                                      autosize=False)
                figs_html.append(fig.to_html(
                    full_html=False, include_plotlyjs=False,
                    div_id=f"fig-{len(sections) + 1}-{i + 1}",
                    config={"displaylogo": False, "responsive": figure_size is None,
                            "displayModeBar": "hover" if figure_size is None else False}))
        any_figures = any_figures or bool(figs_html)
        unverified, reason = _unverified(result)
        acquired = result.acquired_at.isoformat() if result.acquired_at else "unknown"
        if result.acquired_at is not None and result.acquired_at.tzinfo is None:
            acquired += " (local time; no timezone in the header)"
        sections.append({
            "result": result, "row": row, "title": _analysis_title(result.analysis),
            "device": _device(result), "acquired": acquired,
            "rows": [_measurement_row(m) for m in result.measurements],
            "parameters": _parameters(result.parameters),
            "figures": figs_html, "figure_error": figure_error,
            "unverified": unverified, "unverified_reason": reason,
        })
    unverified_specs = list(dict.fromkeys(
        (s["result"].spec, s["unverified_reason"]) for s in sections if s["unverified"]))
    if not inputs:
        inputs = list(dict.fromkeys(r.source for r in results if r.source))
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("scanbench.report", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("report.html").render(
        title=title, version=__version__,
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        inputs=[str(i) for i in inputs], results=results, summary=summary,
        sections=sections, unverified_specs=unverified_specs,
        specs_used=list(dict.fromkeys(r.spec for r in results if r.spec)),
        failures=[(str(w), str(why)) for w, why in failures],
        skipped=[(str(w), str(why)) for w, why in skipped],
        provenance=provenance(),
        plotlyjs=plotly.offline.get_plotlyjs() if (any_figures and embed_plotlyjs) else "",
    )

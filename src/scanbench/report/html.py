"""Render results as one self-contained HTML page (plotly.js embedded, no network)."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import gzip
import json
import platform
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TypedDict

import jinja2
from markupsafe import Markup, escape

from scanbench import __version__
from scanbench.evaluation import summarise
from scanbench.report.figures import readable_shapes
from scanbench.report.numbers import format_number, format_uncertainty
from scanbench.report.tables import SummaryTable, summary_tables
from scanbench.types import STATUSES, Measurement, Result

FigureSource = Callable[[Result], Sequence[Any]]

_UNVERIFIED_RE = re.compile(r"^spec (\S+) contains unconfirmed limits: (.*)$", re.S)
_LIBRARIES = ("numpy", "scipy", "scikit-image", "pydicom", "plotly", "jinja2", "pyyaml")


def format_value(value: float | None, digits: int = 4,
                 uncertainty: float | None = None) -> str:
    """The report's one number format (:func:`scanbench.report.numbers.format_number`)."""
    return format_number(value, uncertainty, digits=digits)


def _exact(value: float) -> str:
    """A limit or label as written in the spec: 0.85 stays '0.85', 10.0 is '10' (up to
    six significant digits, by the report's number format: no '-0', no 'e-07')."""
    return format_number(float(value), digits=6)


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


def _breakable(name: str) -> Markup:
    """``name`` escaped, with a line-break opportunity after each underscore: a long
    measurement name wraps between its words, never inside one."""
    return Markup("_<wbr>").join(escape(part) for part in name.split("_"))


# What each status reads as in the report (the word, never a bare code), and its meaning.
STATUS_WORDS: dict[str, str] = {
    "pass": "pass", "fail": "fail", "info": "reported",
    "within_unconfirmed": "within unconfirmed limit",
    "outside_unconfirmed": "outside unconfirmed limit",
    "not_judged": "not judged", "refused": "refused",
}
STATUS_MEANINGS: dict[str, str] = {
    "pass": "within a limit confirmed by its source",
    "fail": "outside a limit confirmed by its source",
    "info": "no limit applies; the value is reported",
    "within_unconfirmed": "inside a limit the standards do not confirm: shown, not judged",
    "outside_unconfirmed": "outside a limit the standards do not confirm: shown, not judged "
                           "(never a fail)",
    "not_judged": "the value rests on a parameter that was neither given nor measurable",
    "refused": "the analysis produced a value physics does not allow; it is withheld",
}


class _FigureSlot(TypedDict):
    """Where one figure is drawn: its div, its height, and the full-resolution link."""

    id: str
    kind: str  # "image" or "chart"
    height: int
    full_png: str
    full_png_label: str


@dataclass(frozen=True)
class ExtraSection:
    """A section after the results that is not an analysis result (e.g. the patient dose
    and workflow tables of the demo's clinical studies)."""

    title: str
    intro: str
    tables: Sequence[SummaryTable]


class _Section(TypedDict):
    """What the template shows of one result."""

    result: Result
    row: dict[str, Any]  # the result's row of summarise()
    title: str
    device: str
    acquired: str
    rows: list[dict[str, Any]]
    parameters: list[tuple[str, str]]
    shown_status: str  # the result's status as the report shows it (see _shown_status)
    figures: list[_FigureSlot]
    tables: Sequence[SummaryTable]
    figure_error: str
    unverified: bool
    unverified_reason: str


def _measurement_row(m: Measurement) -> dict[str, Any]:
    unc = m.uncertainty
    return {
        "name": _breakable(m.name), "raw_name": m.name, "labels": _labels(m.labels),
        "value": format_value(m.value, uncertainty=unc),
        "unit": m.unit, "uncertainty": "—" if unc is None else f"± {format_uncertainty(unc)}",
        "note": m.note or "", "status_word": STATUS_WORDS.get(m.status, m.status),
        "limits": format_limits(m.limits.low, m.limits.high) if m.limits else "",
        "source": m.limits.source if m.limits else "",
        "verified": m.limits.verified if m.limits else True,
        "status": m.status,
    }


def _shown_status(row: dict[str, Any]) -> str:
    """The result's overall status, except that a result with no confirmed limit but
    unconfirmed ones reads as outside (or within) an unconfirmed limit, not as a bare
    "reported": what its limits say without judging."""
    if row["status"] == "info":
        if row.get("outside_unconfirmed"):
            return "outside_unconfirmed"
        if row.get("within_unconfirmed"):
            return "within_unconfirmed"
    return str(row["status"])


def _numbered_notes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Number each distinct note of a result: its first row shows the text, later rows
    with the same note refer to it ("note 1, as above"), so one reason shared by twenty
    refused values is printed once."""
    seen: dict[str, int] = {}
    for row in rows:
        note = row["note"]
        if not note:
            row["note_ref"], row["note_repeat"] = 0, False
            continue
        row["note_repeat"] = note in seen
        row["note_ref"] = seen.setdefault(note, len(seen) + 1)
    return rows


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
        # a node result's spec is stored as name@version (evaluation.node_spec)
        if match and result.spec and match.group(1) == result.spec.partition("@")[0]:
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


# Figures are drawn by plotly.js, which the page carries once, gzip-compressed (1.5 of its
# 4.8 MB) and inflated by the browser (DecompressionStream, in every current browser),
# with every figure's data in one compressed block beside it: a report works offline and
# stays small. Images travel reduced (report.figures.DISPLAY_MAX_PX) with the full
# resolution as a PNG link.
_IMAGE_HEIGHT_PX = 520


def _gzip_b64(text: str) -> str:
    return base64.b64encode(gzip.compress(text.encode("utf-8"), 9, mtime=0)).decode("ascii")


@functools.lru_cache(maxsize=1)
def _plotlyjs_b64() -> str:
    import plotly.offline

    return _gzip_b64(plotly.offline.get_plotlyjs())


def _figure_entry(fig: Any, div_id: str, figure_size: tuple[int, int] | None,
                  templates: dict[str, int]) -> tuple[str, _FigureSlot]:
    """The figure as JSON for the page's block (its template stored once per report),
    and its slot in the page."""
    import plotly.io

    meta = fig.layout.meta if isinstance(fig.layout.meta, dict) else {}
    kind = str(meta.get("kind", "chart"))
    full_png = str(meta.get("full_png", ""))
    label = str(meta.get("full_png_name", ""))
    fig.layout.meta = None
    readable_shapes(fig)
    if figure_size is not None:
        # An image is about square: as wide as it is high plus its colour bar, so it
        # fills its axes instead of a third of a page-wide figure.
        width = min(figure_size[0], figure_size[1] + 140) if kind == "image" \
            else figure_size[0]
        fig.update_layout(width=width, height=figure_size[1], autosize=False)
    elif kind == "image" and fig.layout.height is None:
        fig.update_layout(height=_IMAGE_HEIGHT_PX)
    height = int(fig.layout.height or 450)
    body = json.loads(plotly.io.to_json(fig, validate=False, pretty=False))
    layout = body.get("layout", {})
    template = json.dumps(layout.pop("template", {}), separators=(",", ":"))
    t = templates.setdefault(template, len(templates))
    config = {"displaylogo": False, "responsive": figure_size is None,
              "displayModeBar": "hover" if figure_size is None else False}
    entry = json.dumps({"id": div_id, "t": t, "data": body.get("data", []), "layout": layout,
                        "config": config}, separators=(",", ":"))
    return entry, {"id": div_id, "kind": kind, "height": height, "full_png": full_png,
                   "full_png_label": label}


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
    extra_sections: Sequence[ExtraSection] = (),
) -> str:
    """The report as an HTML string.

    ``figures`` maps a result to its Plotly figures (default: its analysis's
    ``figures``; None: no figures). A figure source that raises does not stop
    the report: the error is shown in place of that result's figures.
    ``figure_size`` fixes every figure's (width, height) in px, as print needs
    (and draws every figure at once; otherwise the figures in view are drawn
    first and the rest after them). ``extra_sections`` follow the results.
    """
    summary = summarise(results)
    sections: list[_Section] = []
    entries: list[str] = []
    templates: dict[str, int] = {}
    for result, row in zip(results, summary["results"], strict=True):
        slots: list[_FigureSlot] = []
        figure_error = ""
        if figures is not None:
            try:
                figs = list(figures(result))
            except Exception as exc:  # shown in the report, next to the result it concerns
                figs = []
                figure_error = f"{type(exc).__name__}: {exc}"
            for i, fig in enumerate(figs):
                entry, slot = _figure_entry(fig, f"fig-{len(sections) + 1}-{i + 1}",
                                            figure_size, templates)
                entries.append(entry)
                slots.append(slot)
        unverified, reason = _unverified(result)
        acquired = result.acquired_at.isoformat() if result.acquired_at else "unknown"
        if result.acquired_at is not None and result.acquired_at.tzinfo is None:
            acquired += " (local time; no timezone in the header)"
        sections.append({
            "result": result, "row": row, "title": _analysis_title(result.analysis),
            "device": _device(result), "acquired": acquired,
            "rows": _numbered_notes([_measurement_row(m) for m in result.measurements]),
            "parameters": _parameters(result.parameters), "shown_status": _shown_status(row),
            "figures": slots, "tables": summary_tables(result), "figure_error": figure_error,
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
    template_list = [json.loads(t) for t, _ in sorted(templates.items(), key=lambda kv: kv[1])]
    figure_block = ""
    if entries:
        figure_block = _gzip_b64('{"templates":' + json.dumps(template_list, separators=(",", ":"))
                                 + ',"figures":[' + ",".join(entries) + "]}")
    used = {s for s in STATUSES if summary["total"][s]}
    return env.get_template("report.html").render(
        title=title, version=__version__,
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        inputs=[str(i) for i in inputs], results=results, summary=summary,
        sections=sections, unverified_specs=unverified_specs,
        specs_used=list(dict.fromkeys(r.spec for r in results if r.spec)),
        failures=[(str(w), str(why)) for w, why in failures],
        skipped=[(str(w), str(why)) for w, why in skipped],
        provenance=provenance(), extra_sections=list(extra_sections),
        status_words=STATUS_WORDS,
        status_legend=[(s, STATUS_WORDS[s], STATUS_MEANINGS[s]) for s in STATUSES if s in used],
        plotlyjs_b64=_plotlyjs_b64() if (entries and embed_plotlyjs) else "",
        figure_block=figure_block, eager=figure_size is not None,
    )

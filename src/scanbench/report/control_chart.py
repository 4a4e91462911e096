"""The control chart of one measurement of one device over time: the ONE builder that
the device page and the device QC report both draw.

What the chart shows (issue 12, "device page"; issue 13, "trend alerts"):

* every value (downsampled on the server for long histories, see below) with its
  uncertainty and status in the hover, the result it came from in ``customdata``;
* the limits each value was judged by, as step lines, one legend entry per limit
  source, the source in the hover (a limit marked unconfirmed says so: it is shown,
  never judged as fail);
* per baseline segment of the trend report (:mod:`scanbench.evaluation.trend`): the
  baseline mean μ0 and the ±2σ and ±3σ bands, restarting at each new baseline (a service
  or an upgrade the user marked as one), so a chart never mixes two baselines;
* the values at which a trend rule (1-3s, 2-2s, R-4s, 4-1s, 10x, CUSUM, EWMA) fired,
  marked with a symbol, the rule and its message in the hover; values outside a limit
  marked with another symbol;
* lifecycle events (service, software change, ...) as vertical markers with their
  kind and note in the hover;
* the unit on the value axis.

Downsampling: a history of ten years of daily QC (3,650 values) is more than a browser
needs to draw a readable chart. :func:`keep_indices` cuts the values, in time order,
into buckets of equal count and keeps each bucket's lowest and highest value (min-max
decimation, the method of the API's ``/history``), and *always* every value that broke
a rule or a limit and the first and last value of each baseline segment, so that what
the chart marks is drawn at its real value. The full data is the API's
``/devices/{id}/history?format=csv``.

The builders here are pure (data in, a plotly figure dict out); :func:`chart_for_device`
is the one function that reads the store (history, lifecycle events) and runs the trend
rules, for the page and the report alike.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from scanbench.evaluation.trend import (
    Alert,
    BaselineStart,
    Segment,
    TrendPoint,
    TrendReport,
    TrendSettings,
    check_trend,
)
from scanbench.report.numbers import format_number
from scanbench.store.repo import Point

#: Points drawn by default (each of ``max_points / 2`` buckets keeps its min and max).
DEFAULT_MAX_POINTS = 1000

#: Colours: the values dark blue; limits red; baseline grey-green; bands graded.
_VALUE = "#1f4e79"
_LIMIT = "#c0392b"
_MEAN = "#2e7d32"
_BAND2 = "rgba(46,125,50,0.10)"
_BAND3 = "rgba(46,125,50,0.06)"
_RULE = "#d35400"
_OUTSIDE = "#c0392b"
_EVENT = "#6c3483"


@dataclass(frozen=True)
class ChartEvent:
    """A lifecycle event drawn as a vertical marker at ``time`` (the device's local
    clock, like the values). ``summary`` is the user's note (escaped when drawn)."""

    time: dt.datetime
    kind: str
    summary: str = ""
    new_baseline: bool = False


@dataclass(frozen=True)
class Chart:
    """A built chart: the plotly ``figure`` dict and what it was made from (for
    captions and tests): how many values there were, how many are drawn, the trend
    report the marks come from, and notes (values without a time, skipped values)."""

    figure: dict[str, Any]
    total: int
    drawn: int
    trend: TrendReport | None
    notes: tuple[str, ...]


# --------------------------------------------------------------------------- downsampling

def keep_indices(values: Sequence[float | None], max_points: int,
                 always: Iterable[int] = ()) -> list[int]:
    """Indices of the values to draw, in order: all when there are at most
    ``max_points``; otherwise min-max decimation (``max_points // 2`` buckets of equal
    count, each keeping its lowest and highest finite value; a bucket with no finite
    value keeps its first) plus every index in ``always`` (rule-breaking values,
    segment ends), which may make the result longer than ``max_points``."""
    n = len(values)
    if n <= max_points:
        return list(range(n))
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    keep = {i for i in always if 0 <= i < n}
    buckets = max_points // 2
    size = n / buckets
    for b in range(buckets):
        lo_i, hi_i = int(b * size), int((b + 1) * size)
        finite = [i for i in range(lo_i, hi_i) if _finite(values[i])]
        if not finite:
            keep.add(lo_i)
            continue
        keep.add(min(finite, key=lambda i: values[i]))  # type: ignore[arg-type,return-value]
        keep.add(max(finite, key=lambda i: values[i]))  # type: ignore[arg-type,return-value]
    return sorted(keep)


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


# --------------------------------------------------------------------------- trend

def trend_points(points: Sequence[Point]) -> list[TrendPoint]:
    """The history as trend-rule input, index for index (a missing value is NaN, which
    :func:`~scanbench.evaluation.trend.check_trend` skips with a note). Every point
    must have a time (see :func:`timed`)."""
    out = []
    for p in points:
        if p.acquired_at is None:
            raise ValueError("a point without acquisition time cannot be charted")
        value = p.value if p.value is not None and math.isfinite(p.value) else math.nan
        out.append(TrendPoint(p.acquired_at, value, p.uncertainty))
    return out


def timed(points: Sequence[Point]) -> tuple[list[Point], int]:
    """The points that have an acquisition time (a chart has no place for the others),
    and how many were left out."""
    kept = [p for p in points if p.acquired_at is not None]
    return kept, len(points) - len(kept)


def baseline_starts(events: Iterable[ChartEvent]) -> list[BaselineStart]:
    """A new baseline at each event the user marked as one (issue 13: the baseline
    restarts after a service event or an upgrade marked as a new baseline)."""
    return [BaselineStart(time=e.time, reason=_event_label(e))
            for e in sorted(events, key=lambda e: e.time) if e.new_baseline]


# --------------------------------------------------------------------------- the figure

def _iso(t: dt.datetime) -> str:
    return t.isoformat()


def _fmt(v: float | None) -> str:
    return "–" if v is None else format_number(v)


def _unit(unit: str) -> str:
    return "" if unit in ("", "1") else f" {unit}"


def _event_label(e: ChartEvent) -> str:
    kind = e.kind.replace("_", " ")
    return f"{kind}: {e.summary}" if e.summary else kind


def build_control_chart(points: Sequence[Point], *, title: str, name: str, unit: str,
                        trend: TrendReport | None = None,
                        events: Sequence[ChartEvent] = (),
                        max_points: int = DEFAULT_MAX_POINTS,
                        result_url: Callable[[int], str] | None = None,
                        alert_states: Mapping[tuple[str, dt.datetime], str] | None = None
                        ) -> Chart:
    """The control chart of ``points`` (a device's history of one measurement, oldest
    first, every point with a time) as a plotly figure dict.

    ``alert_states``: what became of the stored alert a rule raised at a value, by
    (rule, time of the value) — e.g. "acknowledged: phantom refilled" — added to that
    mark's hover.

    ``trend`` is the trend report of exactly these points (its indices are positions
    in ``points``; :func:`chart_for_device` and :func:`trend_of` make it); without one,
    no baseline or rule marks are drawn. ``result_url`` maps a result id to a link put
    in each value's ``customdata`` (the page opens the result on click). Text from
    outside (event notes, limit sources) is HTML-escaped: plotly renders hover text as
    a subset of HTML.
    """
    notes: list[str] = []
    if any(p.acquired_at is None for p in points):
        raise ValueError("every point of a control chart needs its acquisition time "
                         "(drop the others with timed())")
    u = _unit(unit)
    values = [p.value if _finite(p.value) else None for p in points]
    alerts_at: dict[int, list[Alert]] = {}
    segments: tuple[Segment, ...] = ()
    if trend is not None:
        segments = trend.segments
        for a in trend.alerts:
            alerts_at.setdefault(a.index, []).append(a)
        notes.extend(trend.notes)
    outside = [i for i, p in enumerate(points)
               if p.status in ("fail", "outside_unconfirmed") and values[i] is not None]
    always = set(alerts_at) | set(outside)
    for seg in segments:
        always.update((seg.start, seg.end - 1))
    keep = keep_indices(values, max_points, always)
    drawn = [i for i in keep if values[i] is not None]
    if len(drawn) < len(points):
        missing = sum(v is None for v in values)
        if missing:
            notes.append(f"{missing} value(s) refused or not finite are not drawn")
    traces: list[dict[str, Any]] = []
    traces.extend(_band_traces(points, segments, u))
    traces.extend(_limit_traces(points, u))
    traces.append(_value_trace(points, drawn, name, u, result_url))
    if outside:
        traces.append(_outside_trace(points, outside, u, result_url))
    if alerts_at:
        traces.append(_rule_trace(points, alerts_at, u, result_url, alert_states or {}))
    if events:
        traces.append(_event_trace(events))
    figure = {"data": traces, "layout": _layout(title, name, unit, bool(events))}
    return Chart(figure, len(points), len(drawn), trend, tuple(notes))


def _band_traces(points: Sequence[Point], segments: Sequence[Segment], u: str
                 ) -> list[dict[str, Any]]:
    """Per segment: the ±3σ band, the ±2σ band (filled rectangles over the segment's
    time span) and the mean line; one legend entry per kind (legendgroup)."""
    out: list[dict[str, Any]] = []
    for n, seg in enumerate(segments):
        t0 = _iso(points[seg.start].acquired_at)  # type: ignore[arg-type]
        t1 = _iso(points[seg.end - 1].acquired_at)  # type: ignore[arg-type]
        how = (f"estimated from its first {seg.baseline_points} values"
               if seg.baseline_points else "given")
        why = f" ({html.escape(seg.reason)})" if seg.reason else ""
        head = f"baseline from {html.escape(t0)}{why}, {how}"
        for k, fill, group in ((3.0, _BAND3, "band3"), (2.0, _BAND2, "band2")):
            lo, hi = seg.band(k)
            out.append({
                "type": "scatter", "mode": "lines", "name": f"baseline ±{k:g}σ",
                "legendgroup": group, "showlegend": n == 0,
                "x": [t0, t1, t1, t0, t0], "y": [lo, lo, hi, hi, lo],
                "fill": "toself", "fillcolor": fill, "line": {"width": 0},
                "hoveron": "fills", "meta": {"segment": n, "k": k, "low": lo, "high": hi},
                "text": f"μ0 ± {k:g}σ: {_fmt(lo)} to {_fmt(hi)}{u}<br>{head}",
                "hoverinfo": "text"})
        out.append({
            "type": "scatter", "mode": "lines", "name": "baseline mean μ0",
            "legendgroup": "mean", "showlegend": n == 0,
            "x": [t0, t1], "y": [seg.mean, seg.mean],
            "line": {"color": _MEAN, "dash": "dash", "width": 1.5},
            "meta": {"segment": n, "mean": seg.mean, "sigma": seg.sigma},
            "hovertemplate": (f"μ0 = {_fmt(seg.mean)}{u}, σ = {_fmt(seg.sigma)}{u}<br>"
                              f"{head}<extra></extra>")})
    return out


_X = TypeVar("_X")


def _limit_traces(points: Sequence[Point], u: str) -> list[dict[str, Any]]:
    """One step line per (limit source, side): the limit in force at each value, with a
    gap where that source gave none (a spec changed, or no limit)."""
    sources: list[tuple[str, bool | None]] = []
    for p in points:
        if (p.limit_low is not None or p.limit_high is not None) and p.limit_source is not None:
            key = (p.limit_source, p.limit_verified)
            if key not in sources:
                sources.append(key)
        elif p.limit_low is not None or p.limit_high is not None:
            key = ("(no source given)", p.limit_verified)
            if key not in sources:
                sources.append(key)
    out: list[dict[str, Any]] = []
    for source, verified in sources:
        label = html.escape(source) + ("" if verified is not False else " (unconfirmed)")
        for side in ("low", "high"):
            at: list[int | None] = []  # positions; dates written for the kept steps only
            ys: list[float | None] = []
            for i, p in enumerate(points):
                src = p.limit_source if p.limit_source is not None else "(no source given)"
                v = p.limit_low if side == "low" else p.limit_high
                if src == source and p.limit_verified == verified and v is not None:
                    at.append(i)
                    ys.append(v)
                elif ys and ys[-1] is not None:
                    at.append(None)  # a gap: this limit is not in force here
                    ys.append(None)
            if not any(y is not None for y in ys):
                continue
            kept, sy = _thin_steps(at, ys)
            sx = [None if i is None else _iso(points[i].acquired_at)  # type: ignore[arg-type]
                  for i in kept]
            out.append({
                "type": "scatter", "mode": "lines", "name": f"limit: {label}",
                "legendgroup": f"limit {source} {verified}",
                "showlegend": not any(t["legendgroup"] == f"limit {source} {verified}"
                                      for t in out),
                "x": sx, "y": sy,
                "line": {"color": _LIMIT, "shape": "hv", "width": 1.5,
                         "dash": "solid" if verified is not False else "dot"},
                "connectgaps": False,
                "meta": {"source": source, "side": side, "verified": verified},
                "hovertemplate": (f"{side} limit %{{y}}{u}<br>source: {label}"
                                  "<extra></extra>")})
    return out


def _thin_steps(xs: list[_X], ys: list[float | None]) -> tuple[list[_X], list[float | None]]:
    """A step line needs only the points where the value changes (and the last one of
    each run): 3,650 equal limits are drawn by two points."""
    ox: list[_X] = []
    oy: list[float | None] = []
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        prev = ys[i - 1] if i else object()
        nxt = ys[i + 1] if i + 1 < len(ys) else object()
        if y is None or y != prev or y != nxt:
            ox.append(x)
            oy.append(y)
    return ox, oy


def _value_trace(points: Sequence[Point], drawn: list[int], name: str, u: str,
                 result_url: Callable[[int], str] | None) -> dict[str, Any]:
    xs, ys, text, custom = [], [], [], []
    for i in drawn:
        p = points[i]
        xs.append(_iso(p.acquired_at))  # type: ignore[arg-type]
        ys.append(p.value)
        unc = (f" ± {format_number(p.uncertainty, digits=2)}" if p.uncertainty is not None
               else "")
        text.append(f"{_fmt(p.value)}{unc}{u}<br>{html.escape(p.status)}"
                    f"<br>result {p.result_id}")
        custom.append(_link(p.result_id, result_url))
    return {"type": "scattergl" if len(drawn) > 2000 else "scatter",
            "mode": "lines+markers", "name": html.escape(name),
            "x": xs, "y": ys, "text": text, "customdata": custom,
            "marker": {"size": 4, "color": _VALUE}, "line": {"width": 1, "color": _VALUE},
            "hovertemplate": "%{x}<br>%{text}<extra></extra>"}


def _link(result_id: int, result_url: Callable[[int], str] | None) -> int | str:
    return result_url(result_id) if result_url else result_id


def _outside_trace(points: Sequence[Point], idx: list[int], u: str,
                   result_url: Callable[[int], str] | None = None) -> dict[str, Any]:
    text = []
    for i in idx:
        p = points[i]
        src = html.escape(p.limit_source or "no source given")
        what = ("outside an unconfirmed limit (shown, not judged)"
                if p.status == "outside_unconfirmed" else "outside its limit")
        text.append(f"{_fmt(p.value)}{u}: {what} [{_fmt(p.limit_low)}, "
                    f"{_fmt(p.limit_high)}]{u}<br>source: {src}")
    return {"type": "scatter", "mode": "markers", "name": "outside a limit",
            "x": [_iso(points[i].acquired_at) for i in idx],  # type: ignore[arg-type]
            "y": [points[i].value for i in idx], "text": text,
            "customdata": [_link(points[i].result_id, result_url) for i in idx],
            "marker": {"symbol": "diamond-open", "size": 11, "color": _OUTSIDE,
                       "line": {"width": 2}},
            "meta": {"indices": idx},
            "hovertemplate": "%{x}<br>%{text}<extra></extra>"}


def _rule_trace(points: Sequence[Point], alerts_at: dict[int, list[Alert]], u: str,
                result_url: Callable[[int], str] | None = None,
                states: Mapping[tuple[str, dt.datetime], str] | None = None
                ) -> dict[str, Any]:
    """One marker per value at which one or more trend rules fired; the hover lists
    each rule with its message and, when stored, what became of its alert; ``meta``
    the rules and the trend report's alert keys."""
    idx = sorted(alerts_at)
    text, rules, keys = [], [], []
    for i in idx:
        alerts = alerts_at[i]
        rules.append([a.rule for a in alerts])
        keys.append([a.key for a in alerts])
        lines = []
        for a in alerts:
            state = (states or {}).get((a.rule, a.time))
            lines.append(f"<b>{html.escape(a.rule)}</b> {_wrap(a.message)}"
                         + (f"<br><i>alert {_wrap(state)}</i>" if state else ""))
        text.append("<br>".join(lines))
    return {"type": "scatter", "mode": "markers", "name": "trend rule broken",
            "x": [_iso(points[i].acquired_at) for i in idx],  # type: ignore[arg-type]
            "y": [points[i].value for i in idx], "text": text,
            "customdata": [_link(points[i].result_id, result_url) for i in idx],
            "marker": {"symbol": "x", "size": 11, "color": _RULE,
                       "line": {"width": 1, "color": _RULE}},
            "meta": {"indices": idx, "rules": rules, "keys": keys},
            "hovertemplate": "%{x}<br>%{text}<extra></extra>"}


def _wrap(text: str, width: int = 90) -> str:
    """``text`` HTML-escaped, in lines of at most about ``width`` characters joined by
    <br> (plotly does not wrap hover text; a rule's message is long)."""
    import textwrap

    return "<br>".join(html.escape(line) for line in
                       textwrap.wrap(text, width, break_long_words=False) or [""])


def _event_trace(events: Sequence[ChartEvent]) -> dict[str, Any]:
    """Vertical lines from the bottom to the top of the plot (on a hidden second y axis
    spanning 0..1), one hoverable marker at the top of each."""
    xs: list[str | None] = []
    ys: list[float | None] = []
    text: list[str] = []
    for e in sorted(events, key=lambda e: e.time):
        t = _iso(e.time)
        label = html.escape(_event_label(e)) + (" (new baseline)" if e.new_baseline else "")
        xs += [t, t, None]
        ys += [0.0, 1.0, None]
        text += [label, label, ""]
    return {"type": "scatter", "mode": "lines+markers", "name": "lifecycle events",
            "x": xs, "y": ys, "yaxis": "y2", "text": text,
            "line": {"color": _EVENT, "width": 1, "dash": "dot"},
            "marker": {"symbol": "triangle-down", "size": 8, "color": _EVENT},
            "hovertemplate": "%{x}<br>%{text}<extra></extra>"}


def _layout(title: str, name: str, unit: str, events: bool) -> dict[str, Any]:
    axis = name if unit in ("", "1") else f"{name} ({unit})"
    layout: dict[str, Any] = {
        "title": {"text": html.escape(title)},
        "xaxis": {"title": {"text": "acquired (scanner's local time)"}, "type": "date"},
        "yaxis": {"title": {"text": html.escape(axis)}},
        "hovermode": "closest", "margin": {"l": 60, "r": 20, "t": 50, "b": 40},
        # below the axis title (a horizontal legend at y -0.2 overlapped it)
        "legend": {"orientation": "h", "yanchor": "top", "y": -0.25},
        "height": 420,
    }
    if events:
        layout["yaxis2"] = {"overlaying": "y", "range": [0, 1], "visible": False,
                            "fixedrange": True}
    return layout


# --------------------------------------------------------------------------- from the store

def trend_of(points: Sequence[Point], measurement: str, unit: str,
             events: Sequence[ChartEvent] = (),
             settings: TrendSettings | None = None) -> TrendReport:
    """The trend report of ``points`` (index for index), with a new baseline at each
    event marked as one."""
    return check_trend(measurement, unit, trend_points(points), baseline_starts(events),
                       settings)


def chart_for_device(session: Any, device_id: int, analysis: str, name: str,
                     labels: dict[str, Any] | None = None, *,
                     since: dt.datetime | None = None, until: dt.datetime | None = None,
                     max_points: int = DEFAULT_MAX_POINTS,
                     result_url: Callable[[int], str] | None = None) -> Chart:
    """The control chart of one measurement (``analysis``, ``name``, exactly ``labels``;
    None: no labels) of one device from the store: its history (superseded results left
    out), its lifecycle events (vertical markers; those marked ``new_baseline`` restart
    the baseline), and the trend rules run on the whole history exactly as the alerts
    are raised (:func:`stored_trend`; a zoomed window ``since``/``until`` is judged with
    the baselines of the whole history, then cut). The caller has checked that the
    device may be seen (the web layer through its Scope)."""
    from sqlalchemy import select

    from scanbench.store import models as m
    from scanbench.store.repo import labels_key

    key = labels_key(labels or {})
    points, untimed = series_history(session, device_id, analysis, name, key)
    unit = next((p.unit for p in points if p.unit), "")
    rows = session.execute(select(m.LifecycleEvent.occurred_at, m.LifecycleEvent.kind,
                                  m.LifecycleEvent.summary, m.LifecycleEvent.new_baseline)
                           .where(m.LifecycleEvent.device_id == device_id,
                                  m.LifecycleEvent.occurred_at.is_not(None))
                           .order_by(m.LifecycleEvent.occurred_at, m.LifecycleEvent.id))
    events = [ChartEvent(t, kind, summary or "", bool(nb)) for t, kind, summary, nb in rows]
    trend = (stored_trend(session, device_id, analysis, name, key, points)
             if points else None)
    states = stored_alert_states(session, device_id, analysis, name, key) if trend else {}
    title = name + (" " + _label_text(labels) if labels else "")
    if since is not None or until is not None:
        points, trend, events = _window(points, trend, events, since, until)
    chart = build_control_chart(points, title=title, name=name, unit=unit, trend=trend,
                                events=events, max_points=max_points,
                                result_url=result_url, alert_states=states)
    if untimed:
        extra = f"{untimed} value(s) without an acquisition time are not drawn"
        chart = Chart(chart.figure, chart.total + untimed, chart.drawn, chart.trend,
                      (*chart.notes, extra))
    return chart


def stored_alert_states(session: Any, device_id: int, analysis: str, name: str,
                        labels_key: str = "{}") -> dict[tuple[str, dt.datetime], str]:
    """What became of the series' stored trend alerts, by (rule, time of the value that
    raised it): "open", "acknowledged <when> UTC: <comment>", "closed: <reason>"."""
    from sqlalchemy import select

    from scanbench.store import models as m

    a = m.Alert
    rows = session.execute(select(a.rule, a.occurred_at, a.state, a.ack_at, a.ack_comment,
                                  a.closed_reason)
                           .where(a.device_id == device_id, a.analysis == analysis,
                                  a.name == name, a.labels_key == labels_key,
                                  a.level == "trend", a.occurred_at.is_not(None)))
    out: dict[tuple[str, dt.datetime], str] = {}
    for rule, at, state, ack_at, comment, reason in rows:
        text = "closed" + (f" ({reason})" if reason else "") if state == "closed" else state
        if ack_at is not None:
            ack = f"acknowledged {ack_at:%Y-%m-%d %H:%M} UTC: {comment or ''}"
            text = ack if state == "acknowledged" else f"{text}; {ack}"
        out[(rule, at)] = text
    return out


def series_history(session: Any, device_id: int, analysis: str, name: str,
                   labels_key: str = "{}") -> tuple[list[Point], int]:
    """One measurement series of a device as chart points, oldest first (by acquisition
    time, then storage order: the order of
    :func:`scanbench.evaluation.alerts.series_points`, so trend indices match),
    superseded results and values without an acquisition time left out; and how many
    were left out for having no time. Plain columns only (no ORM objects, no JSON
    decoding): ten years of daily values load in tens of milliseconds. The points'
    ``series_uid`` is not read (None): nothing drawn uses it, and joining each value's
    result for it was ~20 of the query's ~33 ms on 3,650 values (PostgreSQL, EXPLAIN
    ANALYZE on bench/web.py's data: 3,650 index lookups into 3.65 million results)."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import aliased

    from scanbench.store import models as m

    later = aliased(m.Result)
    meas = m.Measurement
    where = (meas.device_id == device_id, meas.analysis == analysis, meas.name == name,
             meas.labels_key == labels_key,
             ~select(later.id).where(later.supersedes_id == meas.result_id).exists())
    rows = session.execute(
        select(meas.acquired_at, meas.value, meas.unit, meas.uncertainty, meas.status,
               meas.result_id, meas.note, meas.limit_low, meas.limit_high,
               meas.limit_source, meas.limit_verified)
        .where(*where, meas.acquired_at.is_not(None))
        .order_by(meas.acquired_at, meas.id))
    labels = _labels_of(labels_key)
    points = [Point(t, v, u, unc, st, labels, rid, None, note, lo, hi, src, ver)
              for t, v, u, unc, st, rid, note, lo, hi, src, ver in rows]
    untimed = session.scalar(select(func.count()).select_from(meas).where(
        *where, meas.acquired_at.is_(None))) or 0
    return points, int(untimed)


def _labels_of(key: str) -> dict[str, Any]:
    import json

    try:
        value = json.loads(key)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def stored_trend(session: Any, device_id: int, analysis: str, name: str, labels_key: str,
                 points: Sequence[Point]) -> TrendReport:
    """The trend report the stored alerts are raised from, on ``points`` (from
    :func:`series_history`): the inputs of
    :func:`scanbench.evaluation.alerts.series_trend` — the same series key, the
    baselines restarted at lifecycle events marked new baseline
    (``alerts.baseline_starts``), the same rules and constants (``alerts.SETTINGS``),
    a refused or not-judged value skipped as missing — so the chart marks what the
    alerts say, without reading the history a second time."""
    from scanbench.evaluation import alerts

    unit = next((p.unit for p in points if p.unit), "")
    tpoints = [TrendPoint(p.acquired_at,  # type: ignore[arg-type]  # series_history: timed
                          math.nan if (p.value is None or not math.isfinite(p.value)
                                       or p.status in _NOT_A_VALUE) else p.value,
                          p.uncertainty) for p in points]
    series = alerts.SeriesId(device_id, analysis, name, labels_key)
    return check_trend(series.text, unit, tpoints, alerts.baseline_starts(session, device_id),
                       alerts.SETTINGS)


#: Statuses whose value the trend rules skip (as evaluation.alerts does).
_NOT_A_VALUE = ("refused", "not_judged")


def _label_text(labels: dict[str, Any]) -> str:
    return "(" + ", ".join(f"{k} {v}" for k, v in sorted(labels.items())) + ")"


def _window(points: list[Point], trend: TrendReport | None, events: list[ChartEvent],
            since: dt.datetime | None, until: dt.datetime | None
            ) -> tuple[list[Point], TrendReport | None, list[ChartEvent]]:
    """The points in [since, until) with the trend report re-indexed to them (segments
    clipped to the window; alerts outside it dropped)."""
    def inside(t: dt.datetime) -> bool:
        a = since.replace(tzinfo=None) if since else None
        b = until.replace(tzinfo=None) if until else None
        return (a is None or t >= a) and (b is None or t < b)

    idx = [i for i, p in enumerate(points) if inside(p.acquired_at)]  # type: ignore[arg-type]
    if not idx:
        return [], None, []
    first, last = idx[0], idx[-1]
    sub = points[first:last + 1]
    if trend is None:
        return sub, None, [e for e in events if inside(e.time)]
    segs = []
    for s in trend.segments:
        lo, hi = max(s.start, first), min(s.end, last + 1)
        if lo < hi:
            segs.append(Segment(lo - first, hi - first, max(s.judged_from, lo) - first,
                                s.start_time, s.mean, s.sigma, s.baseline_points, s.reason))
    alerts = []
    for a in trend.alerts:
        if first <= a.index <= last:
            alerts.append(_reindex(a, first))
    clipped = TrendReport(trend.measurement, trend.unit, tuple(segs), tuple(alerts),
                          trend.notes)
    return sub, clipped, [e for e in events if inside(e.time)]


def _reindex(a: Alert, offset: int) -> Alert:
    from dataclasses import replace

    return replace(a, index=a.index - offset, first_index=max(a.first_index - offset, 0))


__all__ = ["DEFAULT_MAX_POINTS", "Chart", "ChartEvent", "baseline_starts",
           "build_control_chart", "chart_for_device", "keep_indices", "series_history",
           "stored_alert_states", "stored_trend", "timed", "trend_of", "trend_points"]

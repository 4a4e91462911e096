"""Plotly figures (plain dicts, JSON-ready) of patient dose, workflow and site
comparison, drawn from :mod:`scanbench.clinical.dose_stats` results: the same figures
on the web pages and in the site dose report. Pure functions: no database, no I/O.

Box plots are drawn from the statistics the database computed (plotly's precomputed
``q1``/``median``/``q3``/fences), not from the raw values, so a million exams never
leave the database: the box is Q1-Q3 with the median, the whiskers run from the
minimum to the maximum, cut at Tukey's upper fence (Q3 + 1.5 IQR) when values lie
above it; those values are drawn as points.

Labels (protocol names, device names) are DICOM or user text: plotly reads a few HTML
tags in labels, so every label is HTML-escaped here (plotly shows the entities as the
characters they stand for, and no tag is ever interpreted).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from scanbench.clinical import dose_stats as ds

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#d62728")
REFERENCE_COLOUR = "#d62728"


def label(text: object) -> str:
    """Untrusted text as a plotly label: HTML-escaped (module docstring)."""
    return html.escape(str(text if text is not None else "—"), quote=False)


def _device(names: Mapping[int, str], device_id: int | None) -> str:
    if device_id is None:
        return "all devices"
    return names.get(device_id, f"device {device_id}")


def _layout(title: str, y_title: str, **extra: Any) -> dict[str, Any]:
    return {"title": {"text": title}, "yaxis": {"title": {"text": y_title}},
            "margin": {"l": 60, "r": 20, "t": 50, "b": 90}, "legend": {"orientation": "h",
                                                                    "y": -0.25},
            **extra}


def dose_box_figure(stats: ds.DoseStatistics, device_names: Mapping[int, str]
                    ) -> dict[str, Any]:
    """Box plots of one dose quantity: x = protocol, one trace per device (no mean
    line: a mean pulled by outliers would sit outside the box); each exam
    category's reference level as a dashed line over its protocols, named with its
    value and source; the listed outliers as points."""
    q = stats.quantity
    by_device: dict[int | None, list[ds.DoseGroup]] = {}
    for g in stats.groups:
        by_device.setdefault(g.device_id, []).append(g)
    data: list[dict[str, Any]] = []
    for i, (device_id, groups) in enumerate(sorted(by_device.items(),
                                                   key=lambda kv: kv[0] or 0)):
        colour = PALETTE[i % len(PALETTE)]
        d = [g.distribution for g in groups]
        data.append({
            "type": "box", "name": label(_device(device_names, device_id)),
            "legendgroup": f"d{device_id}", "marker": {"color": colour},
            "x": [label(g.protocol) for g in groups],
            "q1": [x.q1 for x in d], "median": [x.median for x in d],
            "q3": [x.q3 for x in d], "lowerfence": [x.minimum for x in d],
            "upperfence": [min(x.maximum, x.upper_fence) if x.upper_fence is not None
                           else x.maximum for x in d],
            "boxpoints": False,
            "hovertext": [f"n = {x.n}" for x in d]})
        outliers = [o for o in stats.outliers if o.device_id == device_id]
        if outliers:
            data.append({
                "type": "scatter", "mode": "markers", "showlegend": False,
                "legendgroup": f"d{device_id}", "name": "outliers",
                "x": [label(o.protocol) for o in outliers], "y": [o.value for o in outliers],
                "marker": {"color": colour, "symbol": "circle-open", "size": 8},
                "text": [f"study {label(o.study_uid)}" for o in outliers]})
    refs: dict[tuple[str, float], tuple[ds.ReferenceComparison, list[str]]] = {}
    for g in stats.groups:
        if g.reference is not None:
            key = (g.reference.exam, g.reference.level)
            refs.setdefault(key, (g.reference, []))[1].append(label(g.protocol))
    for (exam, level), (ref, protocols) in sorted(refs.items()):
        data.append({
            "type": "scatter", "mode": "markers",
            # plotly's <br> between the escaped parts: the source on its own line
            "name": (label(f"DRL {exam}: {level:g} {q.unit} ({ref.title})") + "<br>"
                     + label(f"source: {ref.source}")),
            "x": protocols, "y": [level] * len(protocols),
            "marker": {"symbol": "line-ew-open", "size": 64, "color": REFERENCE_COLOUR,
                       "line": {"width": 3, "color": REFERENCE_COLOUR}}})
    title = f"{q.label} per protocol and device ({q.unit}; one value per {q.per})"
    return {"data": data, "layout": _layout(title, f"{q.label} ({q.unit})",
                                            boxmode="group",
                                            xaxis={"type": "category", "automargin": True})}


def histogram_figure(bins: Sequence[tuple[float, int]], width: float, title: str,
                     x_title: str, window: tuple[float, float] | None = None
                     ) -> dict[str, Any]:
    """A histogram from database bins (start, count), ``width`` wide; ``window``
    (e.g. the uptake window) shaded."""
    layout = _layout(title, "exams", xaxis={"title": {"text": x_title}}, bargap=0.05)
    if window is not None:
        layout["shapes"] = [{"type": "rect", "xref": "x", "yref": "paper", "x0": window[0],
                             "x1": window[1], "y0": 0, "y1": 1, "fillcolor": "#2ca02c",
                             "opacity": 0.12, "line": {"width": 0}}]
    return {"data": [{"type": "bar", "x": [a + width / 2 for a, _ in bins],
                      "y": [n for _, n in bins], "width": [width] * len(bins),
                      "name": "exams", "marker": {"color": PALETTE[0]}}],
            "layout": layout}


def utilisation_heatmap(days: Sequence[ds.DeviceDayUse], device_names: Mapping[int, str]
                        ) -> dict[str, Any]:
    """Utilisation (%) per device (rows) and day (columns); a day without exams is
    empty, a day without staffed hours shows no value."""
    devices = sorted({u.device_id for u in days})
    all_days = sorted({u.day for u in days})
    col = {d: i for i, d in enumerate(all_days)}
    row = {d: i for i, d in enumerate(devices)}
    z: list[list[float | None]] = [[None] * len(all_days) for _ in devices]
    text: list[list[str]] = [[""] * len(all_days) for _ in devices]
    for u in days:
        z[row[u.device_id]][col[u.day]] = u.utilisation
        text[row[u.device_id]][col[u.day]] = (f"{u.exams} exams, {u.exam_hours:.1f} h of "
                                              f"{u.available_hours:g} h ({u.basis})")
    return {"data": [{"type": "heatmap", "z": z, "text": text,
                      "x": [d.isoformat() for d in all_days],
                      "y": [label(_device(device_names, d)) for d in devices],
                      "colorscale": "Viridis", "zmin": 0,
                      "colorbar": {"title": {"text": "%"}},
                      "hovertemplate": "%{y} %{x}: %{z:.0f} %<br>%{text}<extra></extra>"}],
            "layout": _layout("Utilisation per device and day (exam hours / staffed hours, "
                              "else 24 h)", "", xaxis={"type": "category"},
                              yaxis={"automargin": True, "type": "category"})}


def comparison_figure(title: str, unit: str | None, rows: Sequence[ds.DeviceValue],
                      device_names: Mapping[int, str], site_names: Mapping[int, str]
                      ) -> dict[str, Any]:
    """One measurement across devices, grouped by site: each device's distribution over
    the period as a box and its latest value as a diamond."""
    data: list[dict[str, Any]] = []
    sites = sorted({r.site_id for r in rows}, key=lambda s: (site_names.get(s or 0, ""), s))
    for i, site_id in enumerate(sites):
        colour = PALETTE[i % len(PALETTE)]
        mine = [r for r in rows if r.site_id == site_id]
        xs = [label(f"{site_names.get(site_id or 0, '?')} / "
                    f"{_device(device_names, r.device_id)}") for r in mine]
        with_d = [(x, r.distribution) for x, r in zip(xs, mine, strict=True)
                  if r.distribution is not None]
        site = label(site_names.get(site_id or 0, "no site"))
        if with_d:
            data.append({
                "type": "box", "name": site, "legendgroup": site, "marker": {"color": colour},
                "x": [x for x, _ in with_d], "q1": [d.q1 for _, d in with_d],
                "median": [d.median for _, d in with_d], "q3": [d.q3 for _, d in with_d],
                "lowerfence": [d.minimum for _, d in with_d],
                "upperfence": [d.maximum for _, d in with_d], "boxpoints": False})
        data.append({
            "type": "scatter", "mode": "markers", "name": f"{site}: latest",
            "legendgroup": site, "x": xs, "y": [r.latest_value for r in mine],
            "marker": {"symbol": "diamond", "size": 11, "color": colour,
                       "line": {"width": 1, "color": "#000"}}})
    y = f"{label(title)} ({unit})" if unit else label(title)
    return {"data": data, "layout": _layout(f"{label(title)} across devices and sites", y,
                                            xaxis={"type": "category", "automargin": True})}

"""Shared Plotly figure helpers for the analyses' ``figures(result)``.

Every helper returns a :class:`plotly.graph_objects.Figure` and draws in
millimetres, so a reader can check ROI sizes and distances against the
standard directly on the figure.

Coordinate convention: an image ``image_yx[row, col]`` is drawn with the
centre of pixel ``(row, col)`` at ``x = col * dx``, ``y = row * dy`` mm
(``spacing_yx = (dy, dx)``), row 0 at the top, and a 1:1 aspect ratio in mm.
ROI centres are given like everywhere else in scanbench
(:mod:`scanbench.analysis.roi`): a fractional pixel index ``(row, col)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

_ROI_COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4",
                "#f032e6", "#bfef45", "#fabed4", "#469990")


@dataclass(frozen=True)
class RoiShape:
    """A circular ROI to draw on a slice.

    ``centre_yx`` is a fractional pixel index (row, column) on the slice, the
    same convention as :func:`scanbench.analysis.roi.circle_weights`;
    ``radius_mm`` is in mm; ``colour`` any CSS colour (None: picked from a
    palette by position in the list).
    """

    centre_yx: tuple[float, float]
    radius_mm: float
    label: str = ""
    colour: str | None = None


def slice_with_rois(
    image_yx: np.ndarray,
    spacing_yx: tuple[float, float],
    rois: Sequence[RoiShape],
    title: str,
    *,
    unit: str = "Bq/mL",
    view_margin_mm: float | None = 40.0,
) -> go.Figure:
    """A greyscale image in mm with each ROI drawn as a labelled circle outline.

    The view opens on the ROIs plus ``view_margin_mm`` around them (the whole
    image stays in the figure: zoom out to see it); ``None`` shows the whole image.
    """
    img = np.asarray(image_yx, dtype=float)
    if img.ndim != 2:
        raise ValueError(f"slice_with_rois needs a 2-D image, got shape {img.shape}")
    dy, dx = (float(s) for s in spacing_yx)
    ny, nx = img.shape
    x = np.arange(nx) * dx
    y = np.arange(ny) * dy
    fig = go.Figure(go.Heatmap(
        # float32: the figure travels base64-encoded in the HTML, and half the bytes of
        # float64 keep a report with many 512² slices a few MB per figure smaller.
        z=np.where(np.isfinite(img), img, np.nan).astype(np.float32), x=x, y=y,
        colorscale="Greys",
        reversescale=True, colorbar={"title": {"text": unit}},
        hovertemplate="x %{x:.1f} mm<br>y %{y:.1f} mm<br>%{z:.4g} " + unit + "<extra></extra>",
    ))
    for i, roi in enumerate(rois):
        colour = roi.colour or _ROI_COLOURS[i % len(_ROI_COLOURS)]
        cy, cx = roi.centre_yx[0] * dy, roi.centre_yx[1] * dx
        r = float(roi.radius_mm)
        fig.add_shape(type="circle", xref="x", yref="y", x0=cx - r, x1=cx + r,
                      y0=cy - r, y1=cy + r, line={"color": colour, "width": 2})
        if roi.label:
            fig.add_annotation(x=cx, y=cy - r, text=roi.label, showarrow=False,
                               yshift=0, yanchor="bottom", font={"color": colour, "size": 11})
    x_range = [x[0] - dx / 2, x[-1] + dx / 2]
    y_range = [y[0] - dy / 2, y[-1] + dy / 2]
    if rois and view_margin_mm is not None:
        m = float(view_margin_mm)
        xs = [r.centre_yx[1] * dx + s * (r.radius_mm + m) for r in rois for s in (-1, 1)]
        ys = [r.centre_yx[0] * dy + s * (r.radius_mm + m) for r in rois for s in (-1, 1)]
        x_range = [max(x_range[0], min(xs)), min(x_range[1], max(xs))]
        y_range = [max(y_range[0], min(ys)), min(y_range[1], max(ys))]
    fig.update_xaxes(title_text="x (mm)", range=x_range, constrain="domain")
    # Row 0 at the top, and 1 mm on y drawn as long as 1 mm on x.
    fig.update_yaxes(title_text="y (mm)", range=[y_range[1], y_range[0]],
                     scaleanchor="x", scaleratio=1, constrain="domain")
    fig.update_layout(title_text=title, template="simple_white",
                      margin={"l": 60, "r": 20, "t": 50, "b": 50})
    return fig


def profile_figure(
    x_mm: Sequence[float] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    *,
    title: str,
    markers: Sequence[tuple[float, float, str]] = (),
    fit_curve: tuple[Sequence[float] | np.ndarray, Sequence[float] | np.ndarray] | None = None,
    levels: Sequence[tuple[float, str]] = (),
    x_title: str = "position (mm)",
    y_title: str = "value",
) -> go.Figure:
    """A measured profile with optional fitted curve, marked points and levels.

    ``markers`` are ``(x, y, label)`` points such as the fitted peak and the
    half- and tenth-maximum crossings; ``levels`` are ``(y, label)``
    horizontal lines such as the half and tenth maximum.
    """
    fig = go.Figure(go.Scatter(x=np.asarray(x_mm, float), y=np.asarray(values, float),
                               mode="lines+markers", name="measured",
                               line={"color": "#333333"}, marker={"size": 5}))
    if fit_curve is not None:
        fig.add_trace(go.Scatter(x=np.asarray(fit_curve[0], float),
                                 y=np.asarray(fit_curve[1], float), mode="lines",
                                 name="fit", line={"color": "#4363d8", "dash": "dash"}))
    if markers:
        fig.add_trace(go.Scatter(
            x=[m[0] for m in markers], y=[m[1] for m in markers], mode="markers+text",
            text=[m[2] for m in markers], textposition="top center", name="points",
            marker={"color": "#e6194b", "size": 9, "symbol": "x"}))
    for y, label in levels:
        fig.add_hline(y=y, line={"color": "#888888", "dash": "dot", "width": 1},
                      annotation_text=label, annotation_position="top right")
    fig.update_layout(title_text=title, template="simple_white", xaxis_title=x_title,
                      yaxis_title=y_title, margin={"l": 60, "r": 20, "t": 50, "b": 50})
    return fig


def bar_figure(
    categories: Sequence[str],
    values: Sequence[float] | np.ndarray,
    *,
    title: str,
    y_title: str = "value",
    errors: Sequence[float] | np.ndarray | None = None,
    bands: Sequence[tuple[float | None, float | None]] | None = None,
    band_label: str = "limits",
) -> go.Figure:
    """One bar per category (e.g. contrast per sphere), optionally with error
    bars and a per-category acceptance band drawn as low/high ticks."""
    cats = [str(c) for c in categories]
    vals = np.asarray(values, dtype=float)
    if len(cats) != len(vals):
        raise ValueError(f"{len(cats)} categories but {len(vals)} values")
    err = None if errors is None else {"type": "data", "array": np.asarray(errors, float)}
    fig = go.Figure(go.Bar(x=cats, y=vals, error_y=err, name="measured",
                           marker={"color": "#4363d8"}))
    if bands is not None:
        if len(bands) != len(cats):
            raise ValueError(f"{len(cats)} categories but {len(bands)} bands")
        for which, idx in (("low", 0), ("high", 1)):
            ys = [b[idx] if b[idx] is not None else None for b in bands]
            if any(v is not None for v in ys):
                fig.add_trace(go.Scatter(
                    x=cats, y=ys, mode="markers", name=f"{band_label} ({which})",
                    marker={"symbol": "line-ew-open", "size": 30, "color": "#e6194b",
                            "line": {"width": 3, "color": "#e6194b"}}))
    fig.update_layout(title_text=title, template="simple_white", yaxis_title=y_title,
                      margin={"l": 60, "r": 20, "t": 50, "b": 50})
    return fig

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

from scanbench.report.numbers import format_number

# Mid-tone colours: an outline must show on black and on white, and a label (on its light
# box) must be readable, which the palette's pale lime, pink and cyan were not.
_ROI_COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#0082c8",
                "#f032e6", "#808000", "#9a6324", "#469990")


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


@dataclass(frozen=True)
class Window:
    """A display window: grey levels from ``centre - width/2`` (black) to
    ``centre + width/2`` (white), as DICOM Window Center/Width (PS3.3 C.11.2.1.2)."""

    centre: float
    width: float
    name: str = ""

    @property
    def low(self) -> float:
        return self.centre - self.width / 2

    @property
    def high(self) -> float:
        return self.centre + self.width / 2

    def label(self) -> str:
        text = f"W {format_number(self.width)} L {format_number(self.centre)}"
        return f"{self.name} window ({text})" if self.name else f"window {text}"


# CT windows chosen for what each test looks at (W/L in HU).
CT_SOFT_TISSUE = Window(40.0, 400.0, "soft-tissue")
# Air (−1000 HU) to bone (≈ +950 HU) in one view: the CT-number (linearity) inserts.
CT_WIDE = Window(0.0, 2200.0, "wide")
# Low-contrast detectability: a narrow window around the background, so a 6 HU
# insert is a visible step of grey (ACR CT Phantom Testing Instructions view the
# low-contrast module at W 100).
LOW_CONTRAST_WIDTH_HU = 100.0


def window_around(image_yx: np.ndarray, width: float, name: str, *,
                  inside: np.ndarray | None = None) -> Window:
    """A window of ``width`` centred on the median of ``image_yx`` (optionally only the
    pixels where ``inside`` is true): the background a low-contrast test looks at."""
    img = np.asarray(image_yx, dtype=float)
    vals = img[inside] if inside is not None else img
    vals = vals[np.isfinite(vals)]
    centre = float(np.median(vals)) if vals.size else 0.0
    return Window(round(centre), width, name)


# plotly's "simple_white" template fills shapes black at 30 % opacity with no outline:
# an ROI circle would darken the insert it marks and a threshold line drawn with
# add_hline would be invisible. Every report figure gets these defaults instead.
SHAPE_DEFAULTS: dict[str, object] = {"fillcolor": "rgba(0,0,0,0)", "opacity": 1,
                                     "line": {"width": 1.5}}


def readable_shapes(fig: go.Figure) -> go.Figure:
    """Outlines, not filled shapes, and lines with a width (see :data:`SHAPE_DEFAULTS`).

    Shape defaults live in the figure's template (plotly.js reads ``shapedefaults``
    only there), so the template is set to "simple_white" with these defaults."""
    import plotly.io as pio

    template = go.layout.Template(fig.layout.template) if fig.layout.template else \
        go.layout.Template(pio.templates["simple_white"])
    template.layout.shapedefaults = SHAPE_DEFAULTS
    fig.update_layout(template=template)
    return fig


# Images are shown at most this many pixels on a side (the report stays small and
# fast); the full-resolution slice is a PNG link below the figure.
DISPLAY_MAX_PX = 256
# Label boxes: readable on black and on white.
_LABEL_BG = "rgba(255,255,255,0.8)"


def _reduce(img: np.ndarray, factor: int, how: str) -> np.ndarray:
    """Block ``factor`` × ``factor`` mean (or max, for projections of point sources)."""
    if factor <= 1:
        return img
    ny, nx = (img.shape[0] // factor) * factor, (img.shape[1] // factor) * factor
    blocks = img[:ny, :nx].reshape(ny // factor, factor, nx // factor, factor)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks stay NaN
            out = np.nanmax(blocks, axis=(1, 3)) if how == "max" \
                else np.nanmean(blocks, axis=(1, 3))
    return np.asarray(out)


def _compact(img: np.ndarray, zmin: float, zmax: float) -> np.ndarray:
    """Values for display, rounded to the largest power of ten that is at most 1 % of
    the displayed range (1 HU in a 100-400 HU window, 10 HU in a 2200 HU one): finer
    than the grey levels a screen shows, and a report stays small. int16 when that step
    is a whole number and the values fit, else float32."""
    span = float(zmax - zmin)
    step = 10.0 ** np.floor(np.log10(span / 100.0)) if span > 0 else 1.0
    finite = img[np.isfinite(img)]
    rounded = np.round(img / step) * step
    if step >= 1 and np.all(np.isfinite(img)) and finite.size \
            and rounded.min() >= -32768 and rounded.max() <= 32767:
        return rounded.astype(np.int16)
    return rounded.astype(np.float32)


def png_data_uri(image_yx: np.ndarray, low: float, high: float, *, invert: bool = False) -> str:
    """The image as an 8-bit greyscale PNG data URI, ``low`` black and ``high`` white."""
    import base64
    import io

    from PIL import Image

    img = np.asarray(image_yx, dtype=float)
    span = high - low if high > low else 1.0
    grey = np.clip((np.nan_to_num(img, nan=low) - low) / span, 0.0, 1.0)
    if invert:
        grey = 1.0 - grey
    buf = io.BytesIO()
    Image.fromarray(np.round(grey * 255).astype(np.uint8), mode="L").save(
        buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def wrap_title(title: str, width: int = 46) -> str:
    """``title`` broken into lines of at most ``width`` characters at spaces (plotly
    does not wrap titles; an image figure is half a page wide)."""
    lines: list[str] = []
    for word in title.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "<br>".join(lines)


def image_figure(
    image_yx: np.ndarray,
    spacing_yx: tuple[float, float],
    title: str,
    *,
    unit: str,
    window: Window | None = None,
    invert: bool = False,
    view_mm: tuple[tuple[float, float], tuple[float, float]] | None = None,
    reduce: str = "mean",
    x_title: str = "x (mm)",
    y_title: str = "y (mm)",
    full_resolution_link: bool = True,
    origin_mm: tuple[float, float] = (0.0, 0.0),
) -> go.Figure:
    """A greyscale image in mm, 1:1 aspect, row 0 at the top, windowed.

    ``window`` sets black and white (None: the image's own 0.5–99.9 percentile range,
    which a few outliers such as padding cannot stretch); ``invert`` draws high values
    dark (the nuclear-medicine convention for PET). ``view_mm`` ((x0, x1), (y0, y1))
    is the part shown; only that part travels in the figure, reduced to at most
    :data:`DISPLAY_MAX_PX` pixels on a side by block ``reduce`` ("mean", or "max" for
    maximum-intensity projections of point sources). When reduced, the full-resolution
    image (whole slice) is attached as a PNG link (``layout.meta["full_png"]``).
    Pixel (0, 0) is drawn at ``origin_mm`` (x, y); ``view_mm`` is in the same frame.
    """
    img = np.asarray(image_yx, dtype=float)
    if img.ndim != 2:
        raise ValueError(f"image_figure needs a 2-D image, got shape {img.shape}")
    dy, dx = (float(s) for s in spacing_yx)
    ox, oy = (float(o) for o in origin_mm)
    ny, nx = img.shape
    full_x = (ox - dx / 2, ox + (nx - 0.5) * dx)
    full_y = (oy - dy / 2, oy + (ny - 0.5) * dy)
    (x0, x1), (y0, y1) = view_mm if view_mm is not None else (full_x, full_y)
    if window is not None:
        zmin, zmax = window.low, window.high
    else:
        finite = img[np.isfinite(img)]
        zmin, zmax = ((float(np.percentile(finite, 0.5)), float(np.percentile(finite, 99.9)))
                      if finite.size else (0.0, 1.0))
        if reduce == "max" and finite.size:
            zmin, zmax = float(finite.min()), float(finite.max())
        if zmax <= zmin:
            zmax = zmin + 1.0
    # The pixels covering the view (one pixel of margin), then reduced for display.
    c0 = max(0, int(np.floor((x0 - ox) / dx)) - 1)
    c1 = min(nx, int(np.ceil((x1 - ox) / dx)) + 2)
    r0 = max(0, int(np.floor((y0 - oy) / dy)) - 1)
    r1 = min(ny, int(np.ceil((y1 - oy) / dy)) + 2)
    crop = img[r0:r1, c0:c1]
    factor = max(1, int(np.ceil(max(crop.shape) / DISPLAY_MAX_PX)))
    shown = _reduce(crop, factor, reduce)
    # Block centres in mm: pixel (r0 + i*f + (f-1)/2) of the slice.
    xs = ox + (c0 + np.arange(shown.shape[1]) * factor + (factor - 1) / 2) * dx
    ys = oy + (r0 + np.arange(shown.shape[0]) * factor + (factor - 1) / 2) * dy
    z = _compact(np.where(np.isfinite(shown), shown, np.nan), zmin, zmax)
    # The axes' own names in the hover text ("z" on a coronal view, not "y").
    hover = (f"{x_title.split(' ')[0]} %{{x:.1f}} mm<br>{y_title.split(' ')[0]} "
             f"%{{y:.1f}} mm<br>%{{z:.4g}} {unit}<extra></extra>")
    bar_title = unit if window is None else f"{unit}<br>{window.label()}"
    fig = go.Figure(go.Heatmap(
        z=z, x=np.round(xs, 3), y=np.round(ys, 3), zmin=zmin, zmax=zmax,
        colorscale="Greys", reversescale=not invert,
        colorbar={"title": {"text": bar_title, "side": "right"}, "thickness": 14},
        hovertemplate=hover))
    fig.update_xaxes(title_text=x_title, range=[x0, x1], constrain="domain",
                     showgrid=False, zeroline=False)
    # Row 0 at the top, and 1 mm on y drawn as long as 1 mm on x.
    fig.update_yaxes(title_text=y_title, range=[y1, y0], scaleanchor="x", scaleratio=1,
                     constrain="domain", showgrid=False, zeroline=False)
    meta: dict[str, object] = {"kind": "image"}
    if factor > 1 and full_resolution_link:
        meta["full_png"] = png_data_uri(img, zmin, zmax, invert=invert)
        meta["full_png_name"] = f"{nx} × {ny} px, {format_number(dx)} × {format_number(dy)} mm"
    shown_title = wrap_title(title)
    fig.update_layout(title_text=shown_title, template="simple_white", meta=meta,
                      margin={"l": 60, "r": 20, "t": 40 + 20 * (shown_title.count("<br>") + 1),
                              "b": 50})
    return readable_shapes(fig)


def slice_with_rois(
    image_yx: np.ndarray,
    spacing_yx: tuple[float, float],
    rois: Sequence[RoiShape],
    title: str,
    *,
    unit: str = "Bq/mL",
    view_margin_mm: float | None = 40.0,
    window: Window | None = None,
    invert: bool = False,
    reduce: str = "mean",
    x_title: str = "x (mm)",
    y_title: str = "y (mm)",
) -> go.Figure:
    """A greyscale image in mm (see :func:`image_figure`) with each ROI drawn as a
    labelled circle outline (thin, so the insert under it stays visible).

    The view shows the ROIs plus ``view_margin_mm`` around them; ``None`` shows the
    whole image.
    """
    img = np.asarray(image_yx, dtype=float)
    if img.ndim != 2:
        raise ValueError(f"slice_with_rois needs a 2-D image, got shape {img.shape}")
    dy, dx = (float(s) for s in spacing_yx)
    ny, nx = img.shape
    x_range = [-dx / 2, (nx - 1) * dx + dx / 2]
    y_range = [-dy / 2, (ny - 1) * dy + dy / 2]
    if rois and view_margin_mm is not None:
        m = float(view_margin_mm)
        xs = [r.centre_yx[1] * dx + s * (r.radius_mm + m) for r in rois for s in (-1, 1)]
        ys = [r.centre_yx[0] * dy + s * (r.radius_mm + m) for r in rois for s in (-1, 1)]
        x_range = [max(x_range[0], min(xs)), min(x_range[1], max(xs))]
        y_range = [max(y_range[0], min(ys)), min(y_range[1], max(ys))]
    fig = image_figure(img, (dy, dx), title, unit=unit, window=window, invert=invert,
                       view_mm=((x_range[0], x_range[1]), (y_range[0], y_range[1])),
                       reduce=reduce, x_title=x_title, y_title=y_title)
    # All outlines and labels set at once: plotly's add_shape / add_annotation validate the
    # whole list again on every call (0.9 s for the IQ analysis's 72 ROIs); the figure is
    # the same (tests/unit/report/test_figures.py).
    shapes: list[dict[str, object]] = []
    labels: list[dict[str, object]] = []
    for i, roi in enumerate(rois):
        colour = roi.colour or _ROI_COLOURS[i % len(_ROI_COLOURS)]
        cy, cx = roi.centre_yx[0] * dy, roi.centre_yx[1] * dx
        r = float(roi.radius_mm)
        shapes.append({"type": "circle", "xref": "x", "yref": "y", "x0": cx - r, "x1": cx + r,
                       "y0": cy - r, "y1": cy + r, "line": {"color": colour, "width": 1.5}})
        if roi.label:
            labels.append({"x": cx, "y": cy - r, "text": roi.label, "showarrow": False,
                           "yshift": 2, "yanchor": "bottom", "bgcolor": _LABEL_BG,
                           "borderpad": 1, "font": {"color": colour, "size": 11}})
    if shapes:
        fig.update_layout(shapes=[*fig.layout.shapes, *shapes],
                          annotations=[*fig.layout.annotations, *labels])
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


def bar_mtf_figure(lp_per_cm: Sequence[float], mtf: Sequence[float], *, threshold: float,
                   title: str, rule: str) -> go.Figure:
    """Bar-pattern MTF against spatial frequency with the resolved threshold drawn as a
    solid red line in the legend (``rule`` names where the threshold comes from), and a
    y range that always shows it."""
    f = np.asarray(lp_per_cm, dtype=float)
    m = np.asarray(mtf, dtype=float)
    fig = go.Figure(go.Scatter(x=f, y=m, mode="lines+markers", name="bar MTF",
                               line={"color": "#4363d8"}, marker={"size": 8}))
    if f.size:
        pad = 0.5
        fig.add_trace(go.Scatter(
            x=[float(f.min()) - pad, float(f.max()) + pad], y=[threshold, threshold],
            mode="lines", name=f"resolved threshold, MTF {format_number(threshold)} ({rule})",
            line={"color": "#d62728", "width": 2, "dash": "dash"}, hoverinfo="name"))
    finite = m[np.isfinite(m)]
    low = min(0.0, float(finite.min()) if finite.size else 0.0) - 0.05
    high = max(1.05, float(finite.max()) + 0.05 if finite.size else 1.05)
    fig.update_layout(title_text=title, template="simple_white", xaxis_title="lp/cm",
                      yaxis_title="MTF (1)", yaxis_range=[low, high],
                      legend={"orientation": "h", "y": -0.2},
                      margin={"l": 60, "r": 20, "t": 50, "b": 50})
    return fig

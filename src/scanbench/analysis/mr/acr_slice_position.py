"""ACR large MRI phantom: slice position accuracy (``mr.acr.slice_position``).

ACR Large and Medium Phantom Test Guidance, test 4 (slices 1 and 11) [C]
(STANDARDS.md C.1 #4; hazen acr_slice_position.py; pylinac acr.py): a pair of
crossed 45° wedges appears at the top of slices 1 and 11 as two dark bars side
by side; when the slice is centred on the wedges' crossing the bars are equally
long, and a slice displaced by d along the phantom axis makes one bar longer by
2d. The guidance judges the bar length difference; the displacement is half of it.

Method: the bars' pair is found on a left-right profile 12–18 mm below the top
edge of the phantom, below any air bubble (half-way crossings of the dark region); each bar is read
on a top-to-bottom profile through its middle (the quarter points of the pair,
averaged over a quarter of the pair's width), in the phantom frame so that an
in-plane rotation is followed. A bar ends where its profile, walked down from
14 mm below the top edge (inside both bars), rises through half-way between
the bar there and the fill below it (linear interpolation, 0.1 mm sampling).

Sign (hazen's convention, which the published values use): the difference is
right bar minus left bar as the image is displayed, positive when the right bar
is longer.

``bar_length_difference_mm{slice}`` (what the ACR criterion bounds) and
``slice_position_error_mm{slice}`` = difference / 2, for slices 1 and 11.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from scanbench.analysis.mr import ndi
from scanbench.analysis.mr.acr_locate import (
    AcrAxial,
    AcrAxialTest,
    axial_geometry,
)
from scanbench.analysis.registry import register
from scanbench.errors import AnalysisError
from scanbench.types import Result, Series

STEP_MM = 0.1
SLICES = (1, 11)


def _crossings(profile: np.ndarray, x: np.ndarray, half: float) -> tuple[float, float]:
    """First and last positions where ``profile`` is below ``half`` (interpolated)."""
    below = np.flatnonzero(profile < half)
    if below.size == 0 or below[0] == 0 or below[-1] == x.size - 1:
        return float("nan"), float("nan")
    a, b = below[0], below[-1]

    def at(i0: int, i1: int) -> float:
        p0, p1 = profile[i0], profile[i1]
        t = (half - p0) / (p1 - p0) if p1 != p0 else 0.5
        return float(x[i0] + t * (x[i1] - x[i0]))

    return at(a - 1, a), at(b, b + 1)


def bars(acr: AcrAxial, n: int) -> dict[str, Any]:
    """Locate the two bars on slice ``n`` and measure where each ends."""
    o = acr.outline(n)
    top = -o.radius_at(270.0 - acr.rotation_deg)  # the phantom's top edge, phantom frame
    u = np.arange(-25.0, 25.0001, STEP_MM)
    vs = np.arange(top + 12.0, top + 18.0001, 0.5)  # below an air bubble at the top
    uu, vv = np.meshgrid(u, vs)
    across = np.nanmean(acr.sample(n, uu, vv), axis=0)
    level = float(np.nanpercentile(across, 90))
    floor = float(np.nanmin(ndi.uniform_filter1d(np.nan_to_num(across), 5)))
    left, right = _crossings(across, u, floor + 0.5 * (level - floor))
    width = right - left
    if not np.isfinite(width) or not 4.0 < width < 25.0:
        raise AnalysisError(f"the slice-position bars were not found at the top of slice {n}")
    v = np.arange(top + 1.0, top + 60.0, STEP_MM)
    out: dict[str, Any] = {"v": v, "top": top, "pair": (left, right)}
    for name, uc in (("left", left + width / 4), ("right", right - width / 4)):
        us = np.linspace(uc - width / 8, uc + width / 8, 5)
        uu, vv = np.meshgrid(us, v)
        prof = np.nanmean(acr.sample(n, uu, vv), axis=1)
        smooth = ndi.uniform_filter1d(np.nan_to_num(prof), 5)
        i_min = int(14.0 / STEP_MM)  # inside both bars, below any air bubble
        bar = float(np.median(smooth[i_min - int(2.0 / STEP_MM): i_min + int(2.0 / STEP_MM)]))
        fill = float(np.median(smooth[-int(10.0 / STEP_MM):]))
        half = bar + 0.5 * (fill - bar)
        rise = np.flatnonzero(smooth[i_min:] >= half)
        if rise.size == 0:
            raise AnalysisError(f"the end of the {name} slice-position bar on slice {n} "
                                "was not found")
        j = i_min + int(rise[0])
        p0, p1 = smooth[j - 1], smooth[j]
        t = (half - p0) / (p1 - p0) if p1 != p0 else 0.5
        end = float(v[j - 1] + t * (v[j] - v[j - 1]))
        out[name] = {"u": uc, "profile": prof, "end": end, "half": half}
    out["difference"] = out["right"]["end"] - out["left"]["end"]
    return out


def measure(series: Series, result: Result) -> None:
    acr = axial_geometry(series)
    ev: dict[int, Any] = {}
    for n in SLICES:
        b = bars(acr, n)
        result.add("bar_length_difference_mm", b["difference"], "mm", labels={"slice": n})
        result.add("slice_position_error_mm", b["difference"] / 2.0, "mm", labels={"slice": n})
        ev[n] = b
    result.evidence["bars"] = ev


@register
class AcrSlicePosition(AcrAxialTest):
    """Slice position from the crossed wedges of slices 1 and 11."""

    id: ClassVar[str] = "mr.acr.slice_position"
    standard: ClassVar[str] = (
        "ACR Large and Medium Phantom Test Guidance (2022): slice position accuracy (see "
        "docs/standards/acr-mri.md#slice-position-accuracy)")
    title: ClassVar[str] = "ACR MRI slice position (slices 1 and 11 wedges)"

    measure = staticmethod(measure)

    def figures(self, result: Result) -> list[Any]:
        import plotly.graph_objects as go

        from scanbench.report.numbers import format_number

        figs = []
        for n, b in result.evidence.get("bars", {}).items():
            fig = go.Figure()
            for name, colour in (("left", "#4363d8"), ("right", "#e6194b")):
                fig.add_trace(go.Scatter(x=b["v"], y=b[name]["profile"], name=f"{name} bar",
                                         line={"color": colour}))
                fig.add_vline(x=b[name]["end"], line={"color": colour, "dash": "dot"})
            fig.update_layout(title_text=f"slice {n}: bar length difference "
                              f"{format_number(b['difference'], decimals=2)} mm",
                              template="simple_white",
                              xaxis_title="down from the top (mm, phantom frame)",
                              yaxis_title="signal")
            figs.append(fig)
        return figs

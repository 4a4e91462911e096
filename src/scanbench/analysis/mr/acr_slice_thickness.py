"""ACR large MRI phantom: slice thickness (``mr.acr.slice_thickness``).

ACR Large and Medium Phantom Test Guidance, test 3 (slice 1) [C] (STANDARDS.md
C.1 #3; hazen acr_slice_thickness.py; pylinac acr.py): two crossed signal
ramps with a 10:1 slope lie in the dark slab across the middle of slice 1; each
appears as a bright streak whose length at half its maximum is ten times the
slice's FWHM. With ``top`` and ``bottom`` the two streak lengths,

    T = 0.2 × (top × bottom) / (top + bottom),

which cancels a tilt of the phantom about the left-right axis (the crossed-ramp
correction).

Method: the slab's upper and lower edges are the half-way crossings of the
slab's mean profile across its length (the central ±60 mm, in the phantom frame
so that an in-plane rotation is followed); each ramp is read on the band of
±1 mm about the middle of its half of the slab (a quarter of the slab height
from each edge), averaged across the band and smoothed along it over 2 mm; the
streak's length is the distance between the outermost half-maximum crossings
(linear interpolation), with the maximum the 98th percentile of the smoothed
profile and the baseline its 10th percentile (the dark slab). Unlike hazen,
which takes of seven profile offsets the one closest to the header's Slice
Thickness, scanbench never uses the header's value: a measurement must be able
to disagree with the nominal value.

``slice_thickness_mm`` and ``ramp_length_mm{ramp: top|bottom}``.
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

RAMP_SLOPE = 0.1  # 10:1 [C]
STEP_MM = 0.1


def slab_edges(acr: AcrAxial, n: int = 1) -> tuple[float, float]:
    """v (mm) of the upper and lower edges of the dark slab on slice ``n``."""
    v = np.arange(-15.0, 15.0001, STEP_MM)
    u = np.arange(-60.0, 60.0001, 1.0)
    uu, vv = np.meshgrid(u, v)
    prof = np.nanmean(acr.sample(n, uu, vv), axis=1)
    level = acr.outline(n).level
    floor = float(np.nanmin(prof))
    half = floor + 0.5 * (level - floor)
    centre = int(np.nanargmin(np.abs(v)) if prof[np.nanargmin(np.abs(v))] < half
                 else np.nanargmin(prof))
    i = centre
    while i > 0 and prof[i] < half:
        i -= 1
    j = centre
    while j < v.size - 1 and prof[j] < half:
        j += 1
    if i == 0 or j == v.size - 1:
        raise AnalysisError("the slice-thickness slab was not found across the middle of slice 1")

    def cross(a: int, b: int) -> float:
        pa, pb = prof[a], prof[b]
        t = (half - pa) / (pb - pa) if pb != pa else 0.5
        return float(v[a] + t * (v[b] - v[a]))

    return cross(i, i + 1), cross(j - 1, j)


def slab_extent(acr: AcrAxial, v_mid: float, height: float) -> np.ndarray:
    """Sample positions along the slab, from 3 mm inside its left end to 3 mm inside
    its right end (the slab may stop short of the wall, as in a drawing of the insert)."""
    u = np.arange(-92.0, 92.0001, STEP_MM)
    vs = np.linspace(v_mid - height / 2 + 1.0, v_mid + height / 2 - 1.0, 5)
    uu, vv = np.meshgrid(u, vs)
    prof = np.nanmean(acr.sample(1, uu, vv), axis=0)
    level = acr.outline(1).level
    dark = np.nan_to_num(prof, nan=level) < 0.5 * level
    centre = int(np.argmin(np.abs(u)))
    if not dark[centre - int(5.0 / STEP_MM): centre + int(5.0 / STEP_MM)].any():
        raise AnalysisError("the slice-thickness slab was not found across the middle of slice 1")
    lo, hi = centre, centre
    # walk out from the centre; bright gaps shorter than 3 mm are ramp signal, not the end
    gap = int(3.0 / STEP_MM)
    while lo > 0 and dark[max(lo - gap, 0): lo].any():
        lo -= 1
    while hi < u.size - 1 and dark[hi + 1: hi + 1 + gap].any():
        hi += 1
    return u[lo + int(3.0 / STEP_MM): hi - int(3.0 / STEP_MM)]


def streak_length(profile: np.ndarray, u: np.ndarray) -> tuple[float, float, float, float, float]:
    """Length at half maximum of a bright streak: (length, left, right, half, baseline)."""
    smooth = ndi.uniform_filter1d(np.nan_to_num(profile), max(1, round(2.0 / STEP_MM)))
    base = float(np.percentile(smooth, 10))
    peak = float(np.percentile(smooth, 98))
    half = base + 0.5 * (peak - base)
    above = np.flatnonzero(smooth >= half)
    if above.size < 2 or above[0] == 0 or above[-1] == u.size - 1:
        raise AnalysisError("a slice-thickness ramp was not found inside the slab")
    a, b = above[0], above[-1]

    def x_at(i0: int, i1: int) -> float:
        p0, p1 = smooth[i0], smooth[i1]
        t = (half - p0) / (p1 - p0) if p1 != p0 else 0.5
        return float(u[i0] + t * (u[i1] - u[i0]))

    left, right = x_at(a - 1, a), x_at(b, b + 1)
    return right - left, left, right, half, base


def measure(series: Series, result: Result) -> None:
    acr = axial_geometry(series)
    top_edge, bottom_edge = slab_edges(acr)
    height = bottom_edge - top_edge
    if not 4.0 < height < 25.0:
        raise AnalysisError(f"the slice-thickness slab on slice 1 is {height:.1f} mm high; "
                            "expected about 10 mm")
    u = slab_extent(acr, (top_edge + bottom_edge) / 2, height)
    lengths = {}
    ev: dict[str, Any] = {"u": u, "profiles": {}, "slab": (top_edge, bottom_edge)}
    for name, v_mid in (("top", top_edge + height / 4), ("bottom", bottom_edge - height / 4)):
        vs = np.arange(v_mid - 1.0, v_mid + 1.0001, 0.25)
        uu, vv = np.meshgrid(u, vs)
        prof = np.nanmean(acr.sample(1, uu, vv), axis=0)
        length, left, right, half, base = streak_length(prof, u)
        if length > 0.8 * (u[-1] - u[0]):
            raise AnalysisError(f"the {name} slice-thickness ramp does not stand out of the "
                                f"slab on slice 1 (its half-maximum spans {length:.0f} of the "
                                f"slab's {u[-1] - u[0]:.0f} mm)")
        lengths[name] = length
        result.add("ramp_length_mm", length, "mm", labels={"ramp": name})
        ev["profiles"][name] = {"v": v_mid, "profile": prof, "left": left, "right": right,
                                "half": half, "base": base}
    a, b = lengths["top"], lengths["bottom"]
    thickness = 2.0 * RAMP_SLOPE * a * b / (a + b)
    result.add("slice_thickness_mm", thickness, "mm")
    ev["image"] = acr.image(1)
    result.evidence.update(ev)


@register
class AcrSliceThickness(AcrAxialTest):
    """Slice thickness from the crossed 10:1 ramps of slice 1."""

    id: ClassVar[str] = "mr.acr.slice_thickness"
    standard: ClassVar[str] = (
        "ACR Large and Medium Phantom Test Guidance (2022): slice thickness accuracy (see "
        "docs/standards/acr-mri.md#slice-thickness-accuracy)")
    title: ClassVar[str] = "ACR MRI slice thickness (slice 1 ramps)"

    measure = staticmethod(measure)

    def figures(self, result: Result) -> list[Any]:
        from scanbench.report.figures import profile_figure
        from scanbench.report.numbers import format_number

        ev = result.evidence
        if not ev:
            return []
        figs = []
        for name, p in ev["profiles"].items():
            figs.append(profile_figure(
                ev["u"], p["profile"],
                title=f"{name} ramp: {format_number(p['right'] - p['left'], decimals=1)} mm "
                f"at half "
                f"maximum (slab row v = {format_number(p['v'], decimals=1)} mm)",
                markers=[(p["left"], p["half"], "½"), (p["right"], p["half"], "½")],
                levels=[(p["half"], "half maximum"), (p["base"], "slab")],
                x_title="along the ramp (mm from the phantom centre)", y_title="signal"))
        return figs

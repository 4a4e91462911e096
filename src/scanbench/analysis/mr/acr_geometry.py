"""ACR large MRI phantom: geometric accuracy (``mr.acr.geometric_accuracy``).

ACR Large and Medium Phantom Test Guidance (2022), geometric accuracy: the
phantom's inside length on the sagittal localiser (148 mm), and its inside
diameter on slice 1 (horizontal and vertical) and slice 5 (horizontal,
vertical and both diagonals), 190 mm [C] (STANDARDS.md C.1 #1).

Method: the phantom edge is the half-plateau crossing of profiles walked inward
from outside (:mod:`scanbench.analysis.mr.acr_locate`); a diameter is the
edge-to-edge length through the fitted centre in one image direction, each
radius the median of the rays within ±5° that agree with an ellipse fitted to
the whole outline (an air bubble or an insert touching the wall is bridged by
the ellipse, as a convex hull would bridge it); the localiser length is the
sum of the two end caps' outermost robust positions over profiles along the
head-foot axis. The guidance asks for the same measurement with a window set to
half the phantom signal, read with the scanner's ruler.

``length_mm{slice, direction}``: ``slice`` is ``localiser``, 1 or 5;
``direction`` ``head_foot`` (localiser), ``horizontal`` (image left-right),
``vertical`` (image top-bottom), ``diagonal_down`` (image top-left to
bottom-right) and ``diagonal_up`` (bottom-left to top-right).
``length_error_mm{slice, direction}``: the length minus its nominal value
(190 mm, 148 mm), which the ACR criterion bounds.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from scanbench.analysis.mr.acr_locate import (
    INSIDE_DIAMETER_MM,
    INSIDE_LENGTH_MM,
    acr_axial_confidence,
    axial_geometry,
    localiser_confidence,
    localiser_length,
    new_result,
    orientation,
)
from scanbench.analysis.registry import register
from scanbench.errors import AnalysisError
from scanbench.types import Result, Series

AXIAL_DIRECTIONS: dict[int, tuple[tuple[str, float], ...]] = {
    1: (("horizontal", 0.0), ("vertical", 90.0)),
    5: (("horizontal", 0.0), ("vertical", 90.0), ("diagonal_down", 45.0),
        ("diagonal_up", 135.0)),
}


def measure_axial(series: Series, result: Result) -> None:
    """Slice 1 and slice 5 diameters into ``result``."""
    acr = axial_geometry(series)
    ev: dict[str, Any] = {"slices": {}}
    for n, directions in AXIAL_DIRECTIONS.items():
        o = acr.outline(n)
        lines = []
        for name, angle in directions:
            length = o.diameter_mm(angle)
            result.add("length_mm", length, "mm", labels={"slice": n, "direction": name})
            result.add("length_error_mm", length - INSIDE_DIAMETER_MM, "mm",
                       labels={"slice": n, "direction": name})
            lines.append((name, angle, o.radius_at(angle), o.radius_at(angle + 180.0)))
        ev["slices"][n] = {"image": acr.image(n), "centre": o.centre, "lines": lines}
    ev["pixel_mm"] = acr.pixel_mm
    result.evidence.setdefault("axial", ev)


def measure_localiser(series: Series, result: Result) -> None:
    """The localiser's head-foot length into ``result``."""
    loc = localiser_length(series)
    result.add("length_mm", loc.length_mm, "mm",
               labels={"slice": "localiser", "direction": "head_foot"})
    result.add("length_error_mm", loc.length_mm - INSIDE_LENGTH_MM, "mm",
               labels={"slice": "localiser", "direction": "head_foot"})
    result.evidence["localiser"] = {"image": loc.image, "pixel_mm": loc.pixel_mm,
                                    "centre": loc.centre, "angle": loc.axis_angle_deg,
                                    "length": loc.length_mm}


@register
class AcrGeometricAccuracy:
    """Geometric accuracy: localiser length, slice 1 and slice 5 diameters."""

    id: ClassVar[str] = "mr.acr.geometric_accuracy"
    modality: ClassVar[str] = "MR"
    standard: ClassVar[str] = (
        "ACR Large and Medium Phantom Test Guidance (2022): geometric accuracy (see "
        "docs/standards/acr-mri.md#geometric-accuracy)")
    title: ClassVar[str] = "ACR MRI geometric accuracy (localiser, slices 1 and 5)"

    def detect(self, series: Series) -> float:
        return max(acr_axial_confidence(series), localiser_confidence(series))

    def run(self, series: Series, **params: Any) -> Result:
        """An axial series gives slice 1 and 5 diameters, a sagittal or coronal
        localiser its head-foot length; ``localiser=`` (a Series) adds the latter to
        an axial series' result."""
        result = new_result(self, series)
        orient = orientation(series)
        if orient == "axial":
            measure_axial(series, result)
            loc = params.get("localiser")
            if isinstance(loc, Series):
                measure_localiser(loc, result)
                result.parameters["localiser_series"] = loc.uid
            else:
                result.warnings.append(
                    "localiser length not measured: no sagittal or coronal ACR localiser "
                    "was given with this axial series (export it with the axial series)")
        elif orient in ("sagittal", "coronal"):
            measure_localiser(series, result)
        else:
            raise AnalysisError(f"geometric accuracy needs the axial series or a sagittal/"
                                f"coronal localiser; this series is {orient}")
        return result

    def figures(self, result: Result) -> list[Any]:
        from scanbench.report.figures import RoiShape, slice_with_rois
        from scanbench.report.numbers import format_number

        figs = []
        axial = result.evidence.get("axial")
        if axial:
            dy, dx = axial["pixel_mm"]
            for n, ev in axial["slices"].items():
                fig = slice_with_rois(ev["image"], (dy, dx),
                                      [RoiShape(ev["centre"], 1.0, "centre")],
                                      f"slice {n}: measured diameters", unit="signal",
                                      view_margin_mm=None)
                cy, cx = ev["centre"][0] * dy, ev["centre"][1] * dx
                for name, angle, r_plus, r_minus in ev["lines"]:
                    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
                    fig.add_shape(type="line", x0=cx - r_minus * c, y0=cy - r_minus * s,
                                  x1=cx + r_plus * c, y1=cy + r_plus * s,
                                  line={"color": "#e6194b", "width": 2})
                    # Inside the phantom (at 3/4 of the line), where the colour bar and
                    # the figure edge cannot cut the label.
                    fig.add_annotation(x=cx + 0.75 * r_plus * c, y=cy + 0.75 * r_plus * s,
                                       text=f"{name.replace('_', ' ')} "
                                       f"{format_number(r_plus + r_minus, decimals=1)} mm",
                                       showarrow=False, bgcolor="rgba(255,255,255,0.8)",
                                       font={"color": "#e6194b"})
                figs.append(fig)
        loc = result.evidence.get("localiser")
        if loc:
            figs.append(slice_with_rois(loc["image"], loc["pixel_mm"],
                                        [RoiShape(loc["centre"], 1.0, "centre")],
                                        "localiser: head-foot length "
                                        f"{format_number(loc['length'], decimals=1)} mm",
                                        unit="signal", view_margin_mm=None))
        return figs

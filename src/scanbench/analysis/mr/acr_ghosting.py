"""ACR large MRI phantom: percent-signal ghosting (``mr.acr.ghosting``).

ACR Large and Medium Phantom Test Guidance, test 6 (slice 7) [C] (STANDARDS.md
C.1 #6; hazen acr_ghosting.py; pylinac acr.py): the 200 cm² ROI of the
uniformity test, and four elliptical background ROIs of about **10 cm²** with a
**4:1** length-to-width ratio, above, below, left and right of the phantom, long
axes parallel to the phantom edge:

    ghosting ratio = |((top + bottom) − (left + right)) / (2 × large-ROI mean)|,
    PSG = 100 × ratio.

Placement: each ellipse is centred halfway between the phantom edge (the
measured outline) and the edge of the field of view, on the line through the
phantom centre; where the gap is narrower than the ellipse's width the ellipse
is shrunk in width (keeping its area as far as the gap allows) and a warning
says so, as the guidance lets the ROIs be made smaller when the phantom nearly
fills the field of view.

``percent_signal_ghosting`` (%), and ``background_mean{roi}`` for the record.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from scanbench.analysis.mr.acr_locate import (
    AcrAxialTest,
    axial_geometry,
)
from scanbench.analysis.mr.acr_uniformity import UNIFORM_SLICE, large_roi
from scanbench.analysis.registry import register
from scanbench.analysis.roi import weighted_mean
from scanbench.types import Result, Series

GHOST_ROI_CM2 = 10.0  # [C]
ASPECT = 4.0  # [C]


def ellipse_weights(shape: tuple[int, int], centre: tuple[float, float], semi_x_mm: float,
                    semi_y_mm: float, pixel_mm: tuple[float, float]) -> np.ndarray:
    """Fraction of each pixel inside an axis-aligned ellipse (5 × 5 sub-samples)."""
    dy, dx = pixel_mm
    n = 5
    sub = (np.arange(n) + 0.5) / n - 0.5
    r0 = int(np.floor(centre[0] - semi_y_mm / dy)) - 1
    r1 = int(np.ceil(centre[0] + semi_y_mm / dy)) + 2
    c0 = int(np.floor(centre[1] - semi_x_mm / dx)) - 1
    c1 = int(np.ceil(centre[1] + semi_x_mm / dx)) + 2
    r0, c0 = max(r0, 0), max(c0, 0)
    r1, c1 = min(r1, shape[0]), min(c1, shape[1])
    out = np.zeros(shape)
    if r1 <= r0 or c1 <= c0:
        return out
    rr = (np.arange(r0, r1)[:, None] + sub[None, :]).ravel()
    cc = (np.arange(c0, c1)[:, None] + sub[None, :]).ravel()
    yy = ((rr - centre[0]) * dy / semi_y_mm) ** 2
    xx = ((cc - centre[1]) * dx / semi_x_mm) ** 2
    inside = (yy[:, None] + xx[None, :]) <= 1.0
    frac = inside.reshape(r1 - r0, n, c1 - c0, n).mean(axis=(1, 3))
    out[r0:r1, c0:c1] = frac
    return out


def measure(series: Series, result: Result) -> None:
    acr = axial_geometry(series)
    image = acr.image(UNIFORM_SLICE)
    o = acr.outline(UNIFORM_SLICE)
    w, centre, radius = large_roi(acr)
    large = weighted_mean(image, w)
    dy, dx = acr.pixel_mm
    ny, nx = image.shape
    semi_minor = float(np.sqrt(GHOST_ROI_CM2 * 100.0 / (np.pi * ASPECT)))
    semi_major = ASPECT * semi_minor
    means: dict[str, float] = {}
    shapes = []
    # (name, unit vector (row, col) from the centre, distance to the FOV edge in mm)
    places = (("top", (-1, 0), centre[0] * dy), ("bottom", (1, 0), (ny - 1 - centre[0]) * dy),
              ("left", (0, -1), centre[1] * dx), ("right", (0, 1), (nx - 1 - centre[1]) * dx))
    for name, (sr, sc), to_edge in places:
        angle = {"top": 270.0, "bottom": 90.0, "left": 180.0, "right": 0.0}[name]
        edge = o.radius_at(angle) + 3.0  # outside the wall's signal
        gap = to_edge - edge
        half_width = min(semi_minor, max(gap / 2.0 - 1.0, 1.0))
        if half_width < semi_minor:
            result.warnings.append(
                f"ghosting ROI {name}: only {gap:.0f} mm between phantom and field-of-view edge; "
                f"its width is {2 * half_width:.1f} mm instead of {2 * semi_minor:.1f} mm")
        dist = edge + gap / 2.0
        c = (centre[0] + sr * dist / dy, centre[1] + sc * dist / dx)
        sx, sy = (semi_major, half_width) if sr else (half_width, semi_major)
        ew = ellipse_weights(image.shape, c, sx, sy, acr.pixel_mm)
        means[name] = weighted_mean(image, ew)
        shapes.append((name, c, sx, sy))
        result.add("background_mean", means[name], "signal", labels={"roi": name})
    ratio = abs(((means["top"] + means["bottom"]) - (means["left"] + means["right"]))
                / (2.0 * large))
    result.add("percent_signal_ghosting", 100.0 * ratio, "%")
    result.add("large_roi_mean", large, "signal")
    result.evidence.update({"image": image, "pixel_mm": acr.pixel_mm, "centre": centre,
                            "radius": radius, "ellipses": shapes})


@register
class AcrGhosting(AcrAxialTest):
    """Percent-signal ghosting on slice 7."""

    id: ClassVar[str] = "mr.acr.ghosting"
    standard: ClassVar[str] = (
        "ACR Large and Medium Phantom Test Guidance (2022): percent-signal ghosting (see "
        "docs/standards/acr-mri.md#percent-signal-ghosting)")
    title: ClassVar[str] = "ACR MRI percent-signal ghosting (slice 7)"

    measure = staticmethod(measure)

    def figures(self, result: Result) -> list[Any]:
        from scanbench.report.figures import RoiShape, slice_with_rois
        from scanbench.report.numbers import format_number

        ev = result.evidence
        if not ev:
            return []
        psg = result.get("percent_signal_ghosting").value
        fig = slice_with_rois(ev["image"], ev["pixel_mm"],
                              [RoiShape(ev["centre"], ev["radius"], "200 cm²", "#4363d8")],
                              f"slice 7: ghosting {format_number(psg, digits=2)} %",
                              unit="signal", view_margin_mm=None)
        dy, dx = ev["pixel_mm"]
        for name, c, sx, sy in ev["ellipses"]:
            fig.add_shape(type="circle", x0=c[1] * dx - sx, x1=c[1] * dx + sx,
                          y0=c[0] * dy - sy, y1=c[0] * dy + sy, line={"color": "#e6194b"})
            fig.add_annotation(x=c[1] * dx, y=c[0] * dy, text=name, showarrow=False,
                               bgcolor="rgba(255,255,255,0.8)", font={"color": "#e6194b"})
        return [fig]

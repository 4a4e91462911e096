"""ACR large MRI phantom: image intensity uniformity (``mr.acr.uniformity``).

ACR Large and Medium Phantom Test Guidance, test 5 (slice 7) [C] (STANDARDS.md
C.1 #5; hazen acr_uniformity.py; pylinac acr.py):

- a large circular ROI of **200 cm²** (160 cm² on the medium phantom) centred on
  the phantom;
- inside it, the 1 cm² circular ROI with the highest mean and the one with the
  lowest mean (the guidance finds them by windowing; here every position whose
  1 cm² disc lies wholly inside the large ROI is tried, by convolving the image
  with the disc's partial-pixel weights, and the extremes are taken);
- **PIU = 100 × [1 − (high − low) / (high + low)]**.

``percent_integral_uniformity`` (%), with ``large_roi_mean`` (the stored signal
unit) and the two extreme means as ``roi_mean{roi: high|low}`` for the record.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from scanbench.analysis.convolve import fftconvolve_same
from scanbench.analysis.mr.acr_locate import (
    AcrAxial,
    AcrAxialTest,
    axial_geometry,
)
from scanbench.analysis.registry import register
from scanbench.analysis.roi import circle_weights, weighted_mean
from scanbench.types import Result, Series

UNIFORM_SLICE = 7
LARGE_ROI_CM2 = 200.0  # [C] large phantom
SMALL_ROI_CM2 = 1.0  # [C]


def large_roi(acr: AcrAxial, n: int = UNIFORM_SLICE,
              ) -> tuple[np.ndarray, tuple[float, float], float]:
    """Weights of the 200 cm² ROI on slice ``n``, its centre (row, col) and radius (mm)."""
    radius = float(np.sqrt(LARGE_ROI_CM2 * 100.0 / np.pi))
    centre = acr.centre(n)
    w = circle_weights(acr.image(n).shape, centre, radius, acr.pixel_mm)
    return w, centre, radius


def extremes(image: np.ndarray, pixel_mm: tuple[float, float], centre: tuple[float, float],
             large_radius_mm: float, small_radius_mm: float,
             ) -> tuple[tuple[float, tuple[int, int]], tuple[float, tuple[int, int]]]:
    """(mean, (row, col)) of the highest and the lowest ``small_radius_mm`` disc whose
    disc lies wholly inside the large circle."""
    dy, dx = pixel_mm
    hy, hx = int(np.ceil(small_radius_mm / dy)) + 1, int(np.ceil(small_radius_mm / dx)) + 1
    k = circle_weights((2 * hy + 1, 2 * hx + 1), (hy, hx), small_radius_mm, pixel_mm)
    k /= k.sum()
    img = np.nan_to_num(image)
    means = fftconvolve_same(img, k[::-1, ::-1], backend="numpy")
    rows, cols = np.indices(img.shape)
    dist = np.hypot((rows - centre[0]) * dy, (cols - centre[1]) * dx)
    allowed = dist <= large_radius_mm - small_radius_mm
    hi_idx = np.unravel_index(np.argmax(np.where(allowed, means, -np.inf)), img.shape)
    lo_idx = np.unravel_index(np.argmin(np.where(allowed, means, np.inf)), img.shape)
    return ((float(means[hi_idx]), (int(hi_idx[0]), int(hi_idx[1]))),
            (float(means[lo_idx]), (int(lo_idx[0]), int(lo_idx[1]))))


def measure(series: Series, result: Result) -> None:
    acr = axial_geometry(series)
    image = acr.image(UNIFORM_SLICE)
    w, centre, radius = large_roi(acr)
    small_r = float(np.sqrt(SMALL_ROI_CM2 * 100.0 / np.pi))
    (high, hi_at), (low, lo_at) = extremes(image, acr.pixel_mm, centre, radius, small_r)
    piu = 100.0 * (1.0 - (high - low) / (high + low))
    result.add("percent_integral_uniformity", piu, "%")
    result.add("large_roi_mean", weighted_mean(image, w), "signal")
    result.add("roi_mean", high, "signal", labels={"roi": "high"})
    result.add("roi_mean", low, "signal", labels={"roi": "low"})
    result.evidence.update({"image": image, "pixel_mm": acr.pixel_mm, "centre": centre,
                            "radius": radius, "small_radius": small_r,
                            "high_at": hi_at, "low_at": lo_at})


@register
class AcrUniformity(AcrAxialTest):
    """Percent integral uniformity on slice 7."""

    id: ClassVar[str] = "mr.acr.uniformity"
    standard: ClassVar[str] = (
        "ACR Large and Medium Phantom Test Guidance (2022): image intensity uniformity (see "
        "docs/standards/acr-mri.md#image-intensity-uniformity)")
    title: ClassVar[str] = "ACR MRI percent integral uniformity (slice 7)"

    measure = staticmethod(measure)

    def figures(self, result: Result) -> list[Any]:
        from scanbench.report.figures import RoiShape, slice_with_rois
        from scanbench.report.numbers import format_number

        ev = result.evidence
        if not ev:
            return []
        rois = [RoiShape(ev["centre"], ev["radius"], "200 cm²", "#4363d8"),
                RoiShape(ev["high_at"], ev["small_radius"], "high", "#e6194b"),
                RoiShape(ev["low_at"], ev["small_radius"], "low", "#3cb44b")]
        piu = result.get("percent_integral_uniformity").value
        return [slice_with_rois(ev["image"], ev["pixel_mm"], rois,
                                f"slice 7: PIU {format_number(piu, digits=3)} %", unit="signal",
                                view_margin_mm=20)]

"""MRI image uniformity (NEMA MS 3) and ghosting of a uniform phantom.

- ``percent_integral_uniformity`` — NEMA MS 3 (STANDARDS.md C.2 [U]): the image is
  low-pass filtered with a 3 × 3 (9-point) mean, the ROI is the central 75 % of the
  phantom's area (``common.central_roi``), and
  PIU = 100 × (1 − (max − min) / (max + min)) over the filtered ROI. The filter keeps
  noise from setting max and min; what is left is the shading (B1, coil sensitivity).
- ``percent_signal_ghosting`` — the ACR ghosting ratio (STANDARDS.md C.1 #6 [C]) on a
  uniform phantom: four elliptical background ROIs (10 cm², 4:1, long axis along the
  image edge) midway between the phantom and the image edges (``common.background_rois``),
  PSG = 100 × |(top + bottom) − (left + right)| / (2 × signal mean), the signal mean
  over the central ROI (the ACR ratio, as the guidance writes it, so that the number
  compares with the ACR criteria and with other tools). Ghosts lie along the
  phase-encode direction, so the pair on that axis holds ghost plus noise and the
  other pair noise only. In a magnitude image noise does not simply add to a ghost:
  a ghost comparable with σ is compressed (|g + n| averages to less than g plus the
  noise floor), so the ratio reads low at low SNR — as it does for every tool that
  follows the guidance. The parameters keep the mean-square form
  ``percent_signal_ghosting_mean_square`` = 100 √(|(T² + B²) − (L² + R²)| / 2) / S,
  in which the Rician second moment E[M²] = A² + 2σ² (Henkelman 1985; Gudbjartsson &
  Patz 1995) makes a uniform noise floor cancel: it recovers a ghost buried in noise,
  but reads noise that differs between the ROIs (array coils) as ghosting, so it is
  a diagnostic, not the reported value.
- ``signal_mean`` in the central ROI (stored value).

``field_strength_t`` is recorded in the parameters so that field-specific specs
(``field-specific-baseline``) can apply.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from scanbench.analysis.base import Parameter, result_for
from scanbench.analysis.mr import common
from scanbench.analysis.mr.snr import ROI_FRACTION, _uniform_confidence
from scanbench.analysis.registry import register
from scanbench.errors import AnalysisError
from scanbench.types import Result, Series

FILTER_SIZE = 3


def nema_piu(image: np.ndarray, roi: np.ndarray) -> tuple[float, float, float, tuple[int, int],
                                                           tuple[int, int]]:
    """PIU after the 3 × 3 low-pass filter, with max, min and where they are (row, col)."""
    from scipy import ndimage  # here, not at import: an ACR MRI run never needs it (issue 15)

    smooth = ndimage.uniform_filter(np.asarray(image, dtype=float), FILTER_SIZE)
    vals = np.where(roi, smooth, np.nan)
    imax = np.unravel_index(int(np.nanargmax(vals)), vals.shape)
    imin = np.unravel_index(int(np.nanargmin(vals)), vals.shape)
    hi, lo = float(vals[imax]), float(vals[imin])
    return (100.0 * (1.0 - (hi - lo) / (hi + lo)), hi, lo, (int(imax[0]), int(imax[1])),
            (int(imin[0]), int(imin[1])))


def noise_sigma_estimate(obj: common.ObjectSlice, roi: np.ndarray) -> float:
    """σ of the image noise from inside the phantom: the SD of the image minus its 3 × 3
    mean (which removes the smooth shading) over the central ROI, divided by √(8/9), the
    SD of that residual for white noise of SD 1. Inside a phantom at SNR > 5 the magnitude
    noise is Gaussian with SD σ."""
    from scipy import ndimage  # here, not at import: an ACR MRI run never needs it (issue 15)

    smooth = ndimage.uniform_filter(obj.image, FILTER_SIZE)
    depth = obj.depth
    inner = roi & (depth >= float(depth[roi].min()) + 2.0)  # clear of the 3 × 3 reach
    resid = (obj.image - smooth)[inner if inner.any() else roi]
    return float(resid.std(ddof=1) / np.sqrt(8.0 / 9.0))


def ghosting_percent(obj: common.ObjectSlice, roi: np.ndarray, pixel_mm: float
                     ) -> tuple[float, float, dict[str, float], dict[str, np.ndarray],
                                list[str], float]:
    """(ACR PSG from plain means, mean-square PSG, ROI means, ROI masks, notes, σ)."""
    rois, notes = common.background_rois(obj, pixel_mm)
    if len(rois) < 4 or not all(m.any() for m in rois.values()):
        raise AnalysisError("the phantom fills the image: no room for the four background "
                            "ROIs of the ghosting measure")
    means = {k: float(obj.image[m].mean()) for k, m in rois.items()}
    sigma = noise_sigma_estimate(obj, roi)
    # Magnitude pixels of true value A in noise σ have E[M²] = A² + 2σ² (Rician second
    # moment): in mean squares the noise floor is the same in all four ROIs and cancels
    # from (T² + B²) − (L² + R²), which is then 2 g² for a ghost of level g on one axis.
    ms = {k: float(np.mean(obj.image[m].astype(float) ** 2)) for k, m in rois.items()}
    excess = (ms["top"] + ms["bottom"]) - (ms["left"] + ms["right"])
    signal = float(obj.image[roi].mean())
    corrected = 100.0 * float(np.sqrt(abs(excess) / 2.0)) / signal

    def psg(v: dict[str, float]) -> float:
        return 100.0 * abs((v["top"] + v["bottom"]) - (v["left"] + v["right"])) / (2.0 * signal)

    return psg(means), corrected, means, rois, notes, sigma


@register
class NemaUniformity:
    """NEMA MS 3 uniformity and the ACR-style ghosting ratio of a uniform phantom image."""

    id: ClassVar[str] = "mr.nema_ms3.uniformity"
    modality: ClassVar[str] = "MR"
    standard: ClassVar[str] = (
        "NEMA MS 3-2008 (R2014, R2020): image uniformity; ghosting ratio as in the ACR Large and "
        "Medium Phantom Test Guidance (2022) (see docs/standards/nema-ms.md#uniformity-nema-ms-3)")
    title: ClassVar[str] = "MRI uniformity and ghosting (uniform phantom)"

    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("roi_fraction", "uniformity ROI area as a fraction of the phantom's area "
                  "in the slice", "", 0.75),
        Parameter("slice", "0-based index of the slice analysed", "", "the middle slice"),
    )

    def detect(self, series: Series) -> float:
        try:
            return _uniform_confidence(series)
        except Exception:
            return 0.0

    def run(self, series: Series, **params: Any) -> Result:
        frac = common.number_param(params, "roi_fraction", ROI_FRACTION, 0.05, 1.0)
        obj = common.find_object(series, common.slice_param(params, series))
        roi = obj.central(frac)
        dy, dx = float(series.spacing[1]), float(series.spacing[2])
        result = result_for(self, series)
        piu, hi, lo, at_max, at_min = nema_piu(obj.image, roi)
        result.add("percent_integral_uniformity", piu, "%")
        result.add("signal_mean", float(obj.image[roi].mean()), "stored value")
        extra: dict[str, Any] = {}
        try:
            psg, mean_square, means, rois, notes, sigma = ghosting_percent(obj, roi, dx)
            result.add("percent_signal_ghosting", psg, "%")
            result.warnings.extend(notes)
            extra = {"percent_signal_ghosting_mean_square": round(mean_square, 4),
                     "noise_sigma_estimate": round(sigma, 3)}
        except AnalysisError as exc:
            result.warnings.append(f"ghosting not measured: {exc.message}")
            means, rois = {}, {}
        mr = series.facts.mr
        result.parameters.update({
            "field_strength_t": common.field_strength_t(series),
            "slice_index": obj.index, "roi_fraction": frac, "filter": "3x3 mean",
            "roi_area_cm2": round(float(roi.sum()) * dy * dx / 100.0, 2),
            "max_filtered": round(hi, 3), "min_filtered": round(lo, 3),
            "phase_encoding_direction": mr.phase_encoding_direction if mr else None,
            **{f"background_mean_{k}": round(v, 3) for k, v in means.items()},
            **extra,
        })
        result.evidence = {"image": obj.image, "roi": roi, "rois": rois, "max_rc": at_max,
                           "min_rc": at_min, "spacing_yx": (dy, dx)}
        return result

    def figures(self, result: Result) -> list[Any]:
        """The slice with the uniformity ROI, the filtered max and min, and the four
        background ROIs of the ghosting measure."""
        import plotly.graph_objects as go

        ev = result.evidence
        if not ev:
            return []
        dy, dx = ev["spacing_yx"]
        outlines = [(ev["roi"], "#e6194b", "uniformity ROI")] + [
            (m, "#4363d8", f"{k} background") for k, m in ev["rois"].items()]
        fig = common.image_figure(ev["image"], ev["spacing_yx"],
                                  "Uniformity ROI (central 75 %) and ghosting ROIs", outlines)
        assert isinstance(fig, go.Figure)
        for (r, c), label in ((ev["max_rc"], "max"), (ev["min_rc"], "min")):
            fig.add_annotation(x=c * dx, y=r * dy, text=label, showarrow=True)
        return [fig]

"""Noise power spectrum of CT images (ICRU Report 87 eq. 11.1; AAPM TG-233).

:func:`nps_2d` (arrays in, :class:`Nps` out) is reused by the ACR 464 and
CatPhan analyses; the ``ct.nps`` analysis applies it to a uniform phantom.

NPS(f_x, f_y) = (Δx·Δy / (N_x·N_y)) · (1/M) · Σ_i |DFT2D[ I_i(x, y) − P_i(x, y) ]|²

over M square ROIs I_i of N_x × N_y pixels, where P_i is the ROI's own
second-order polynomial fit (``detrend="poly2"``: removes cupping and other
slow trends, which are not noise) or its mean (``detrend="mean"``, the plain
ICRU form). Units HU²·mm². The 1-D curve is the radial average of the 2-D NPS
in rings one frequency step (1 / (N·Δx)) wide, up to the Nyquist frequency.

- ``noise_hu`` = √(Σ NPS · Δf_x · Δf_y): the pixel SD the spectrum holds
  (Parseval), equal to the mean ROI SD after detrending;
- ``peak_frequency_per_mm``: the vertex of a parabola fitted to the 1-D curve
  where it is above 70 % of its maximum (the peak is broad; a single ring
  would wander with noise);
- ``mean_frequency_per_mm``: Σ f · NPS₁D(f) / Σ NPS₁D(f), the average
  frequency of the 1-D curve (TG-233's f_av; pylinac's "average power
  frequency" is the same quantity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from scanbench.analysis.base import Parameter, result_for
from scanbench.analysis.ct.common import (
    check_axial,
    find_section,
    series_where,
    uniform_radius,
)
from scanbench.analysis.ct.water import uniform_score
from scanbench.analysis.registry import register
from scanbench.errors import AnalysisError
from scanbench.types import Result, Series


@dataclass
class Nps:
    """A measured noise power spectrum."""

    nps_2d: np.ndarray  # HU² mm², zero frequency in the middle (fftshift)
    fx_per_mm: np.ndarray  # column frequencies of nps_2d (shifted)
    fy_per_mm: np.ndarray  # row frequencies of nps_2d (shifted)
    frequency_per_mm: np.ndarray  # radial bin centres
    nps_1d: np.ndarray  # HU² mm²
    noise_hu: float
    peak_frequency_per_mm: float
    mean_frequency_per_mm: float
    n_rois: int
    roi_pixels: tuple[int, int]

    def to_dict(self) -> dict[str, Any]:
        """The 1-D curve and summary as plain lists (for ``Result.data``)."""
        return {"frequency_per_mm": [round(float(f), 5) for f in self.frequency_per_mm],
                "nps_hu2_mm2": [float(f"{v:.5g}") for v in self.nps_1d],
                "noise_hu": self.noise_hu, "n_rois": self.n_rois,
                "roi_pixels": list(self.roi_pixels)}


def _poly2_trend(roi: np.ndarray) -> np.ndarray:
    ny, nx = roi.shape
    y, x = np.mgrid[:ny, :nx]
    y = (y - (ny - 1) / 2) / ny
    x = (x - (nx - 1) / 2) / nx
    a = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=-1).reshape(-1, 6)
    coef, *_ = np.linalg.lstsq(a, roi.ravel(), rcond=None)
    return (a @ coef).reshape(ny, nx)


def radial_average(nps2d_shifted: np.ndarray, pixel_mm: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies, radial mean) of a centred 2-D spectrum in rings of one frequency step."""
    ny, nx = nps2d_shifted.shape
    fy = np.fft.fftshift(np.fft.fftfreq(ny, d=pixel_mm))
    fx = np.fft.fftshift(np.fft.fftfreq(nx, d=pixel_mm))
    fr = np.hypot(*np.meshgrid(fx, fy))
    step = 1.0 / (max(nx, ny) * pixel_mm)
    nyquist = 0.5 / pixel_mm
    nbins = int(np.floor(nyquist / step + 0.5)) + 1
    idx = np.rint(fr / step).astype(int)
    keep = idx < nbins
    sums = np.bincount(idx[keep], weights=nps2d_shifted[keep], minlength=nbins)
    counts = np.bincount(idx[keep], minlength=nbins)
    f = np.arange(nbins) * step
    ok = counts > 0
    return f[ok], sums[ok] / counts[ok]


def summary_frequencies(f: np.ndarray, nps1d: np.ndarray) -> tuple[float, float]:
    """(peak, mean) frequency of a 1-D NPS curve (module docstring).

    The peak is the vertex of a least-squares parabola through the contiguous
    points above 70 % of the maximum around it (at least three): a CT NPS peak
    is broad, and the single highest ring of a noisy estimate wanders.
    """
    i = int(np.argmax(nps1d))
    peak = float(f[i])
    lo, hi = i, i
    top = float(nps1d[i])
    while lo > 0 and nps1d[lo - 1] >= 0.7 * top:
        lo -= 1
    while hi < len(f) - 1 and nps1d[hi + 1] >= 0.7 * top:
        hi += 1
    lo, hi = min(lo, max(i - 1, 0)), max(hi, min(i + 1, len(f) - 1))
    if hi - lo >= 2:
        a, b, _c = np.polyfit(f[lo:hi + 1], nps1d[lo:hi + 1], 2)
        if a < 0:
            vertex = -b / (2 * a)
            if f[lo] <= vertex <= f[hi]:
                peak = float(vertex)
    total = float(nps1d.sum())
    mean = float((f * nps1d).sum() / total) if total > 0 else float("nan")
    return peak, mean


def nps_2d(rois: np.ndarray, pixel_mm: float, detrend: str = "poly2") -> Nps:
    """The ICRU 87 NPS of a stack of equal square ROIs ``(n, ny, nx)`` in HU."""
    arr = np.asarray(rois, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] == 0 or min(arr.shape[1:]) < 8:
        raise AnalysisError("the NPS needs at least one ROI of at least 8 × 8 pixels")
    if detrend not in ("poly2", "mean"):
        raise AnalysisError(f"detrend must be 'poly2' or 'mean', got {detrend!r}")
    n, ny, nx = arr.shape
    px = float(pixel_mm)
    acc = np.zeros((ny, nx))
    for roi in arr:
        resid = roi - (_poly2_trend(roi) if detrend == "poly2" else roi.mean())
        acc += np.abs(np.fft.fft2(resid)) ** 2
    nps = np.fft.fftshift(acc / n * (px * px) / (nx * ny))
    fx = np.fft.fftshift(np.fft.fftfreq(nx, d=px))
    fy = np.fft.fftshift(np.fft.fftfreq(ny, d=px))
    noise = float(np.sqrt(nps.sum() / (nx * px * ny * px)))
    f, n1 = radial_average(nps, px)
    peak, mean = summary_frequencies(f, n1)
    return Nps(nps_2d=nps, fx_per_mm=fx, fy_per_mm=fy, frequency_per_mm=f, nps_1d=n1,
               noise_hu=noise, peak_frequency_per_mm=peak, mean_frequency_per_mm=mean,
               n_rois=n, roi_pixels=(ny, nx))


# --------------------------------------------------------------------------- ct.nps analysis


def roi_corners(centre_yx: tuple[float, float], region_radius_mm: float, pixel_mm: float,
                n: int) -> list[tuple[int, int]]:
    """Top-left corners of n×n ROIs inside the uniform disc: one on the centre and
    up to 8 around it (TG-233 places several ROIs around the centre), none overlapping."""
    side = n * pixel_mm
    half_diag = side / math.sqrt(2.0)
    corners = [(round(centre_yx[0] - n / 2), round(centre_yx[1] - n / 2))]
    ring = region_radius_mm - half_diag
    if ring >= side:  # room for a ring that does not overlap the centre ROI
        for a in range(8):
            ang = math.radians(45.0 * a)
            cy = centre_yx[0] + ring * math.sin(ang) / pixel_mm
            cx = centre_yx[1] + ring * math.cos(ang) / pixel_mm
            cand = (round(cy - n / 2), round(cx - n / 2))
            if all(abs(cand[0] - c[0]) >= n or abs(cand[1] - c[1]) >= n for c in corners):
                corners.append(cand)
    return corners


@register
class CtNps:
    """ICRU 87 noise power spectrum from a uniform phantom (module docstring)."""

    id: ClassVar[str] = "ct.nps"
    modality: ClassVar[str] = "CT"
    standard: ClassVar[str] = (
        "ICRU Report 87 (2012), eq. 11.1: noise power spectrum; AAPM Report 233 (2019) (see "
        "docs/standards/iec-aapm-ct.md#noise-power-spectrum)")
    title: ClassVar[str] = "CT noise power spectrum"

    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("roi_size_mm", "side of each square NPS ROI", "mm", 32.0),
        Parameter("detrend", "background removed from each ROI before the Fourier "
                  "transform: poly2 (second-order surface) or mean", "", "poly2"),
        Parameter("edge_distance_mm", "ROIs stay this far inside the uniform region", "mm",
                  10.0),
    )

    def detect(self, series: Series) -> float:
        # The same uniform phantom as ct.water, which is the default for it: NPS on request.
        return 0.6 * uniform_score(series)

    def run(self, series: Series, **params: Any) -> Result:
        where = series_where(series)
        check_axial(series)
        _dz, dy, dx = series.spacing
        if abs(dy - dx) > 1e-3 * dx:
            raise AnalysisError("non-square pixels: the NPS needs square pixels", where)
        roi_mm = float(params.get("roi_size_mm", 32.0))
        n = int(np.clip(2 * round(roi_mm / dx / 2), 16, 256))
        detrend = str(params.get("detrend", "poly2"))
        v = series.voxels
        rois = []
        used = 0
        for k in range(v.shape[0]):
            img = np.asarray(v[k], dtype=np.float64)
            try:
                sec = find_section(img, (dy, dx), where)
            except AnalysisError as exc:
                if "cut by the reconstruction circle" in exc.message:
                    raise
                continue
            r_u, _host = uniform_radius(img, sec, (dy, dx))
            region = r_u - float(params.get("edge_distance_mm", 10.0))
            if region * math.sqrt(2.0) < n * dx:
                raise AnalysisError(f"the uniform region ({2 * r_u:.0f} mm) is too small for "
                                    f"{n * dx:.0f} mm NPS ROIs; give a smaller roi_size_mm", where)
            for y0, x0 in roi_corners(sec.centre_yx, region, dx, n):
                rois.append(img[y0:y0 + n, x0:x0 + n])
            used += 1
        if not rois:
            raise AnalysisError("no slice shows a uniform phantom for the NPS", where)
        spec = nps_2d(np.array(rois), dx, detrend=detrend)
        result = result_for(self, series)
        result.add("nps_peak_frequency_per_mm", spec.peak_frequency_per_mm, "1/mm")
        result.add("nps_mean_frequency_per_mm", spec.mean_frequency_per_mm, "1/mm")
        result.add("noise_hu", spec.noise_hu, "HU")
        result.data["nps"] = spec.to_dict()
        result.parameters.update({"roi_pixels": n, "roi_size_mm": round(n * dx, 2),
                                  "n_rois": spec.n_rois, "slices_used": used,
                                  "detrend": detrend})
        if spec.n_rois < 10:
            result.warnings.append(f"only {spec.n_rois} ROIs: the NPS is noisy; TG-233 "
                                   "averages many ROIs over several slices")
        result.evidence = {"nps": spec}
        return result

    def figures(self, result: Result) -> list[Any]:
        """The radial NPS curve with its peak and mean frequencies."""
        import plotly.graph_objects as go

        from scanbench.report.numbers import format_number

        ev = result.evidence
        if not ev:
            return []
        spec: Nps = ev["nps"]
        fig = go.Figure()
        fig.add_trace(go.Scatter(x=spec.frequency_per_mm, y=spec.nps_1d, mode="lines+markers",
                                 name="NPS"))
        # The peak and mean frequencies are close: one label right of its line, the other
        # left, so they do not print over each other; both with their unit.
        peak, mean = spec.peak_frequency_per_mm, spec.mean_frequency_per_mm
        fig.add_vline(x=peak, line={"dash": "dot"},
                      annotation_position="top right" if peak >= mean else "top left",
                      annotation_text=f"peak {format_number(peak, digits=3)} mm⁻¹")
        fig.add_vline(x=mean, line={"dash": "dash"},
                      annotation_position="top left" if peak >= mean else "top right",
                      annotation_text=f"mean {format_number(mean, digits=3)} mm⁻¹")
        fig.update_layout(title_text=f"Noise power spectrum ({spec.n_rois} ROIs)",
                          xaxis_title="spatial frequency (1/mm)", yaxis_title="NPS (HU² mm²)",
                          template="simple_white")
        return [fig]


__all__ = ["CtNps", "Nps", "nps_2d", "radial_average", "roi_corners", "summary_frequencies"]

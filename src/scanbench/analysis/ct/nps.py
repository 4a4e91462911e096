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
- ``peak_frequency_per_mm``: the frequency of the 1-D maximum, refined by a
  parabola through it and its neighbours;
- ``mean_frequency_per_mm``: Σ f · NPS₁D(f) / Σ NPS₁D(f), the average
  frequency of the 1-D curve (TG-233's f_av; pylinac's "average power
  frequency" is the same quantity).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from scanbench.errors import AnalysisError


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
    """(peak, mean) frequency of a 1-D NPS curve (module docstring)."""
    i = int(np.argmax(nps1d))
    peak = float(f[i])
    if 0 < i < len(f) - 1:
        y0, y1, y2 = nps1d[i - 1], nps1d[i], nps1d[i + 1]
        den = y0 - 2 * y1 + y2
        if den < 0:
            peak = float(f[i] + 0.5 * (y0 - y2) / den * (f[1] - f[0]))
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


__all__ = ["Nps", "nps_2d", "radial_average", "summary_frequencies"]

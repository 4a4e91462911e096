"""MRI signal-to-noise ratio by NEMA MS 1 (STANDARDS.md C.2).

Two methods:

- **Two-acquisition (difference) method** — NEMA MS 1, method 1 [C]: two
  acquisitions identical in every parameter, made one after the other. The signal
  S is the mean of image 1 in the signal ROI; the noise is the SD of the difference
  image (1 − 2) in the same ROI divided by √2 (the difference of two images with
  independent noise has √2 times the noise of one); SNR = S / N. Pairs are recognised
  automatically among the series of one ``analyze`` call: same grid and position,
  same frame of reference or study, and the same TR, TE, flip angle, bandwidth,
  averages, matrix, phase direction, field and coil (``common.same_acquisition``),
  taken in acquisition order.
- **Single-image method with an air ROI** — for a real-valued (phase-sensitive)
  image, Image Type value 3 "R", the background noise is Gaussian around 0 and its SD
  is σ itself (recognised from the data: background mean/SD within ±0.3 of 0 with
  negative values). For one magnitude image with one
  receive channel, the background (signal-free) follows a Rayleigh distribution
  whose SD is 0.655 σ (σ the SD of the underlying Gaussian noise,
  √((4 − π)/2) = 0.655), so σ = SD_air / 0.655 and SNR = 0.655 × S / SD_air
  [U: the Rayleigh statistics are standard; the MS 1 text was not read]. It is
  **refused** (AnalysisError in a single-series run, a warning beside the difference
  result in a pair) when it is invalid: parallel imaging in the header, a receive
  coil whose name says it is an array (``MULTICHANNEL_COIL``), or a
  background whose statistics are not Rayleigh — multichannel root-sum-of-squares or
  parallel reconstructions give non-central χ backgrounds (AAPM 2022, STANDARDS.md
  C.2 [P]), scanners that zero or clip the background give too little noise. The test:
  the mean/SD ratio of a Rayleigh variable is √(π/(4 − π)) = 1.913 whatever σ; the
  background is accepted within ±15 % of it (a 2-channel χ has 2.76, so the test
  separates one channel from several with a wide margin; ±15 % allows the residual
  ringing and ghosts the air ROI may hold) and with at least 2 stored units of SD.

The signal ROI is the central 75 % of the phantom's area in the slice
(``common.central_roi``; NEMA MS 1 practice of a large central ROI [U]); the air ROI
is the background at least 10 mm from the phantom, 3 pixels from the image border,
and outside the band the phantom's ghosts fall into along the phase-encode direction.

``snr_normalised`` makes scanners and protocols comparable: SNR ∝ V √(N_pe · NSA /
BW) for voxel volume V (mm³, pixel area × Slice Thickness), N_pe phase-encode steps,
NSA averages and BW the pixel bandwidth (Hz/pixel), so
snr_normalised = SNR · √BW / (V · √(N_pe · NSA)) (unit Hz^0.5 / mm³). hazen reports
a normalised SNR relative to a reference protocol instead; the ratio of the two is a
constant for a given reference.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from scanbench.analysis.base import Parameter
from scanbench.analysis.mr import common
from scanbench.analysis.registry import register
from scanbench.errors import AnalysisError
from scanbench.types import Result, Series

RAYLEIGH_SD_FACTOR = math.sqrt((4 - math.pi) / 2)  # 0.655: SD of Rayleigh / σ
RAYLEIGH_MEAN_OVER_SD = math.sqrt(math.pi / (4 - math.pi))  # 1.913
RAYLEIGH_TOLERANCE = 0.15
MIN_AIR_SD = 2.0  # stored units
ROI_FRACTION = 0.75
# Receive Coil Name (0018,1250) values that name an array: "MULTI COIL", "32Ch Head",
# "HEAD 8CH", "8HRBRAIN", "Head_Neck_16", "phased array".
MULTICHANNEL_COIL = re.compile(r"multi|\d+\s*-?\s*ch(an)?\b|\d+\s*hr|array|_\d{2,}\b", re.I)

STANDARD = (
    "NEMA MS 1-2008 (R2014, R2020): SNR by the two-acquisition difference method, and by the "
    "single-image method with the Rayleigh background correction (see "
    "docs/standards/nema-ms.md#snr-nema-ms-1)")


def _pixel_mm(series: Series) -> tuple[float, float]:
    return float(series.spacing[1]), float(series.spacing[2])


def _phase_encodes(series: Series) -> float | None:
    mr = series.facts.mr
    if mr is None:
        return None
    if mr.phase_encoding_steps:
        return float(mr.phase_encoding_steps)
    m = mr.acquisition_matrix
    if m is not None:
        # (frequency rows, frequency columns, phase rows, phase columns)
        ph = m[2] or m[3]
        if ph:
            return float(ph)
    return None


def normalisation(series: Series) -> tuple[float | None, list[str], dict[str, float]]:
    """The factor √BW / (V √(N_pe NSA)) and what was missing."""
    mr = series.facts.mr
    missing = []
    dy, dx = _pixel_mm(series)
    thick = common.slice_thickness_mm(series)
    bw = mr.pixel_bandwidth_hz if mr else None
    nsa = mr.averages if mr else None
    npe = _phase_encodes(series)
    if thick is None:
        missing.append("Slice Thickness (0018,0050)")
    if bw is None:
        missing.append("Pixel Bandwidth (0018,0095)")
    if nsa is None:
        missing.append("Number of Averages (0018,0083)")
    if npe is None:
        missing.append("Number of Phase Encoding Steps (0018,0089) / Acquisition Matrix")
    if missing:
        return None, missing, {}
    assert thick is not None and bw is not None and nsa is not None and npe is not None
    v = dy * dx * thick
    factor = math.sqrt(bw) / (v * math.sqrt(npe * nsa))
    return factor, [], {"voxel_volume_mm3": round(v, 4), "pixel_bandwidth_hz": bw,
                        "averages": nsa, "phase_encoding_steps": npe}


def single_image_validity(series: Series,
                          obj: common.ObjectSlice) -> tuple[str | None, dict[str, Any]]:
    """Why the Rayleigh single-image method is invalid for this image (None if valid),
    and the background statistics it looked at."""
    mr = series.facts.mr
    if mr is not None and (mr.parallel_imaging or (mr.parallel_factor or 1.0) > 1.0):
        return ("the header says parallel imaging was used (factor "
                f"{mr.parallel_factor or 'unknown'}): the background noise is not Rayleigh and "
                "varies across the image, so the single-image method is invalid; use the "
                "two-acquisition (difference) method"), {}
    coil = (mr.receive_coil or "") if mr else ""
    if MULTICHANNEL_COIL.search(coil):
        return (f"the receive coil {coil!r} is a multichannel array: its combined image has "
                "non-Rayleigh, position-dependent background noise, so the single-image "
                "method is invalid; use the two-acquisition (difference) method"), {}
    pdir = mr.phase_encoding_direction if mr else None
    air = common.air_region(obj, pdir, _pixel_mm(series)[1])
    vals = obj.image[air]
    if vals.size < 200:
        return ("too little background outside the phantom for the single-image method "
                f"({vals.size} pixels); use the two-acquisition (difference) method"), {}
    mean, sd = float(vals.mean()), float(vals.std(ddof=1))
    stats: dict[str, Any] = {"air_mean": mean, "air_sd": sd, "air_pixels": int(vals.size),
                             "air_mean_over_sd": mean / sd if sd > 0 else math.inf,
                             "background": "rayleigh"}
    if sd >= MIN_AIR_SD and abs(mean / sd) < 0.3 and float(np.mean(vals < 0)) > 0.2:
        # A real-valued (phase-sensitive) image: the background noise is Gaussian around 0
        # and its SD is σ itself.
        stats["background"] = "gaussian"
        return None, stats
    if sd < MIN_AIR_SD or float(np.mean(vals == 0)) > 0.2:
        return (f"the background is zeroed or quantised (SD {sd:.2f} stored units, "
                f"{100 * float(np.mean(vals == 0)):.0f} % zeros): the single-image method would "
                "underestimate the noise; use the two-acquisition (difference) method"), stats
    ratio = stats["air_mean_over_sd"]
    if abs(ratio / RAYLEIGH_MEAN_OVER_SD - 1.0) > RAYLEIGH_TOLERANCE:
        return (f"the background is not Rayleigh-distributed (mean/SD = {ratio:.2f}; one "
                f"receive channel gives {RAYLEIGH_MEAN_OVER_SD:.2f}): a multichannel"
                f"{' (' + coil + ')' if coil else ''} or parallel-imaging reconstruction, for "
                "which the single-image method is invalid; use the two-acquisition "
                "(difference) method"), stats
    return None, stats


def _air_sigma(stats: dict[str, Any]) -> float:
    """σ from the air SD: / 0.655 for a Rayleigh (magnitude) background, as is for a
    Gaussian (real-valued image) one."""
    sd = float(stats["air_sd"])
    return sd if stats.get("background") == "gaussian" else sd / RAYLEIGH_SD_FACTOR


def _base(series: Series, standard: str, analysis_id: str) -> Result:
    r = Result(analysis=analysis_id, standard=standard, series_instance_uid=series.uid,
               device=series.facts.device, acquired_at=series.facts.acquired_at)
    r.parameters["field_strength_t"] = common.field_strength_t(series)
    return r


def _add_snr(result: Result, method: str, snr: float, factor: float | None) -> None:
    result.add("snr", snr, "1", labels={"method": method})
    if factor is not None:
        result.add("snr_normalised", snr * factor, "Hz^0.5/mm^3", labels={"method": method})


def structure_fraction(obj: common.ObjectSlice) -> float:
    """Fraction of the central object pixels that differ by more than 25 % from a smooth
    (Gaussian, σ = 4 pixels) version of the image: about 0 for a uniform phantom even
    with strong shading, large for a slice with inserts, grids or holes."""
    from scipy import ndimage

    roi = obj.central(ROI_FRACTION)
    depth = obj.depth
    roi = roi & (depth >= float(depth[roi].min()) + 4.0)  # 4 pixels in from the ROI's edge
    if not roi.any():
        return 1.0
    smooth = ndimage.gaussian_filter(obj.image, 4.0)
    resid = np.abs(obj.image - smooth)[roi] / np.maximum(np.abs(smooth[roi]), 1e-9)
    return float(np.mean(resid > 0.25))


def _uniform_confidence(series: Series) -> float:
    """How sure we are that the series shows a uniform phantom (no inserts)."""
    if series.facts.modality != "MR":
        return 0.0
    try:
        obj = common.find_object(series)
    except AnalysisError:
        return 0.0
    if structure_fraction(obj) > 0.02:
        return 0.1
    return 0.7 if series.shape[0] <= 3 else 0.3


@register
class NemaSnr:
    """NEMA MS 1 SNR of a uniform phantom: difference of a pair, or one image's air."""

    id: ClassVar[str] = "mr.nema_ms1.snr"
    modality: ClassVar[str] = "MR"
    standard: ClassVar[str] = STANDARD
    title: ClassVar[str] = "MRI signal-to-noise ratio (NEMA MS 1)"

    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("roi_fraction", "signal ROI area as a fraction of the phantom's area in "
                  "the slice", "", 0.75),
        Parameter("slice", "0-based index of the slice analysed", "", "the middle slice"),
    )

    def detect(self, series: Series) -> float:
        """A uniform object in a short MR series; below the uniformity analysis (0.7), which
        takes a lone uniform image by default: SNR is chosen for pairs (``group``)."""
        try:
            return min(_uniform_confidence(series), 0.6)
        except Exception:
            return 0.0

    def group(self, series: Sequence[Series]) -> list[tuple[Series, ...]]:
        """Pairs of repeated identical acquisitions of a uniform object, in acquisition order."""
        # _uniform_confidence reaches 0.5 only for a series of at most 3 slices: asking it
        # only those spares a run on other series (an 11-slice ACR series) its object search,
        # and the scikit-image and scipy.ndimage imports (about 0.13 s, issue 15)
        cands = [s for s in series if s.facts.modality == "MR" and s.shape[0] <= 3
                 and _uniform_confidence(s) >= 0.5]
        cands.sort(key=lambda s: (s.facts.acquired_at is None, str(s.facts.acquired_at or ""),
                                  s.facts.series_number or 0))
        pairs: list[tuple[Series, ...]] = []
        used: set[int] = set()
        for i, a in enumerate(cands):
            if id(a) in used:
                continue
            for b in cands[i + 1:]:
                if id(b) not in used and common.same_acquisition(a, b):
                    pairs.append((a, b))
                    used.update((id(a), id(b)))
                    break
        return pairs

    def _setup(self, series: Series, params: dict[str, Any]) -> tuple[common.ObjectSlice,
                                                                      np.ndarray, float]:
        frac = common.number_param(params, "roi_fraction", ROI_FRACTION, 0.05, 1.0)
        obj = common.find_object(series, common.slice_param(params, series))
        roi = obj.central(frac)
        return obj, roi, frac

    def run(self, series: Series, **params: Any) -> Result:
        """The single-image method on one series (refused where invalid)."""
        obj, roi, frac = self._setup(series, params)
        why, stats = single_image_validity(series, obj)
        if why:
            raise AnalysisError(f"single-image SNR refused: {why}")
        result = _base(series, self.standard, self.id)
        factor, missing, norm_params = normalisation(series)
        s = float(obj.image[roi].mean())
        sigma = _air_sigma(stats)
        _add_snr(result, "single_image", s / sigma, factor)
        result.add("signal_mean", s, "stored value")
        result.add("noise_sd", sigma, "stored value", labels={"method": "single_image"})
        self._finish(result, series, obj, roi, frac, missing, norm_params, stats)
        return result

    def run_group(self, group: tuple[Series, ...], **params: Any) -> list[Result]:
        if len(group) != 2:
            raise AnalysisError(f"the difference method needs two series, got {len(group)}")
        a, b = group
        if a.shape != b.shape:
            raise AnalysisError("the two acquisitions have different image sizes "
                                f"{a.shape} and {b.shape}", where=a.uid)
        obj, roi, frac = self._setup(a, params)
        img2 = np.asarray(b.voxels[obj.index], dtype=float)
        diff = obj.image - img2
        s = float(obj.image[roi].mean())
        noise = float(diff[roi].std(ddof=1)) / math.sqrt(2.0)
        if noise <= 0:
            raise AnalysisError("the two acquisitions are identical pixel for pixel (zero "
                                "difference): they are copies, not repeated acquisitions",
                                where=b.uid)
        result = _base(a, self.standard, self.id)
        factor, missing, norm_params = normalisation(a)
        _add_snr(result, "difference", s / noise, factor)
        result.add("signal_mean", s, "stored value")
        result.add("noise_sd", noise, "stored value", labels={"method": "difference"})
        m1, m2 = float(obj.image[roi].mean()), float(img2[roi].mean())
        drift = 100.0 * (m2 - m1) / m1
        if abs(drift) > 1.0:
            result.warnings.append(
                f"the mean signal changed by {drift:+.1f} % between the two acquisitions: "
                "a drift adds to the difference image and lowers the SNR")
        why, stats = single_image_validity(a, obj)
        if why:
            result.warnings.append(f"single-image SNR not reported: {why}")
        else:
            sigma = _air_sigma(stats)
            _add_snr(result, "single_image", s / sigma, factor)
            result.add("noise_sd", sigma, "stored value", labels={"method": "single_image"})
        result.parameters["second_series_instance_uid"] = b.uid
        result.parameters["signal_change_percent"] = round(drift, 3)
        self._finish(result, a, obj, roi, frac, missing, norm_params, stats)
        result.evidence["difference"] = diff
        return [result]

    def _finish(self, result: Result, series: Series, obj: common.ObjectSlice, roi: np.ndarray,
                frac: float, missing: list[str], norm_params: dict[str, float],
                stats: dict[str, Any]) -> None:
        dy, dx = _pixel_mm(series)
        if missing:
            result.warnings.append("no normalised SNR: the header lacks " + ", ".join(missing))
        result.parameters.update(norm_params)
        result.parameters.update({
            "slice_index": obj.index, "roi_fraction": frac,
            "roi_area_cm2": round(float(roi.sum()) * dy * dx / 100.0, 2),
            "phantom_area_cm2": round(obj.area_px * dy * dx / 100.0, 2),
        })
        if "air_mean_over_sd" in stats:
            result.parameters["air_mean_over_sd"] = round(float(stats["air_mean_over_sd"]), 3)
            result.parameters["background_distribution"] = stats["background"]
        mr = series.facts.mr
        air = common.air_region(obj, mr.phase_encoding_direction if mr else None, dx)
        result.evidence.update({"image": obj.image, "roi": roi, "air": air,
                                "spacing_yx": (dy, dx), "centre_rc": obj.centre_rc})

    def figures(self, result: Result) -> list[Any]:
        """The slice with the signal ROI and the air region outlined, and the difference
        image when the difference method was used."""
        ev = result.evidence
        if not ev:
            return []
        figs = []
        outlines = [(ev["roi"], "#e6194b", "signal ROI"), (ev["air"], "#4363d8", "air")]
        for title, img in (("Signal ROI (central 75 %) and air region", ev["image"]),
                           ("Difference image (acquisition 1 − 2)", ev.get("difference"))):
            if img is not None:
                figs.append(common.image_figure(img, ev["spacing_yx"], title, outlines))
        return figs

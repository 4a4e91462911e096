"""Physical ranges of every measurement scanbench reports, applied in one place.

A number outside what physics allows (a modulation of 1.9, a negative FWHM, a percent
contrast of 260 % for a hot sphere, a frequency beyond the series' Nyquist frequency) is
never reported as a measurement: :func:`enforce_physical_ranges` turns it into
``Measurement.refuse("<name> read <value> <unit>, outside the physical range <range>:
<why>")``. The limits of a *specification* (pass/fail) live in specs; these ranges say
only what a value *can* be, whatever the scanner.

:data:`RANGES` is a declarative table keyed by measurement name: the unit the analyses
report it in, the lower and upper bound (``None`` for none), whether a bound is open
(``> 0`` rather than ``≥ 0``), an allowance, and the physical reason. Every name an
analysis emits has an entry, or an explicit "no physical bound" entry with its reason
(``tests/unit/analysis/test_physical.py`` walks the analyses and fails otherwise).

Allowance. A measured value scatters around the true one, so a bound is widened by
``k × uncertainty`` (``k`` = :data:`K_SIGMA`, 3: a value beyond it by chance happens
about once in 740 one-sided) when the measurement carries its standard uncertainty,
plus a fixed ``allowance`` where the measurement method itself can overshoot a bound
(stated with the entry). Bounds that depend on the series (the Nyquist frequency,
``1 / (2 × pixel spacing)``, of the finest in-plane spacing) are taken from it; without
the series such a bound is not applied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from scanbench.types import Measurement, Result, Series

K_SIGMA = 3.0
# Floating-point round-off: a PIU of exactly 0 computed as -2e-14 % is 0, not impossible.
_ROUND_OFF = 1e-9

Dynamic = Literal["nyquist_lp_per_cm", "nyquist_per_mm", "radial_nyquist_per_mm"]


@dataclass(frozen=True)
class PhysicalRange:
    """What one measurement can physically read, and why."""

    unit: str
    low: float | None
    high: float | None
    reason: str
    low_open: bool = False  # value must be > low (not ≥)
    high_open: bool = False
    allowance: float = 0.0  # fixed widening of both bounds, in ``unit`` (see ``reason``)
    high_from_series: Dynamic | None = None  # the upper bound is the series' Nyquist
    k: float = K_SIGMA  # how many standard uncertainties widen a bound
    # The upper bound scales with the value's relative uncertainty, ``high (1 + k u/|v|)``,
    # for a ratio to a true value whose noise is proportional to the signal (recovery).
    relative: bool = False

    @property
    def bounded(self) -> bool:
        return self.low is not None or self.high is not None or \
            self.high_from_series is not None

    def bounds(self, m: Measurement, series: Series | None) -> tuple[float | None, float | None]:
        """The (low, high) bounds for ``m`` with its allowance (``None``: no bound)."""
        u = m.uncertainty
        u = float(u) if u is not None and math.isfinite(u) and u > 0 else 0.0
        widen = self.allowance + self.k * u
        # a relative entry's k is for its upper tail (a maximum of noisy voxels); its lower
        # bound takes the plain K_SIGMA
        low_widen = self.allowance + K_SIGMA * u if self.relative else widen
        low = None if self.low is None else self.low - low_widen
        high = self.high
        if self.high_from_series is not None:
            high = _nyquist(series, self.high_from_series)
        if high is not None and self.relative:
            v = abs(float(m.value))
            high = high * (1.0 + self.k * u / v) + self.allowance if v > 0 else high
        elif high is not None:
            high = high + widen
        return low, high

    def describe(self, low: float | None, high: float | None) -> str:
        """The range as text, e.g. ``[0, 1]``, ``> 0 mm``, ``≤ 100 %``."""
        u = f" {self.unit}" if self.unit not in ("1", "") else ""
        if low is not None and high is not None:
            lb = "(" if self.low_open else "["
            hb = ")" if self.high_open else "]"
            return f"{lb}{low:.4g}, {high:.4g}{hb}{u}"
        if low is not None:
            return f"{'>' if self.low_open else '≥'} {low:.4g}{u}"
        if high is not None:
            return f"{'<' if self.high_open else '≤'} {high:.4g}{u}"
        return "unbounded"

    def outside(self, value: float, low: float | None, high: float | None) -> bool:
        if low is not None:
            eps = _ROUND_OFF * max(1.0, abs(low))
            if value <= low if self.low_open else value < low - eps:
                return True
        if high is not None:
            eps = _ROUND_OFF * max(1.0, abs(high))
            return value >= high if self.high_open else value > high + eps
        return False


def _nyquist(series: Series | None, kind: Dynamic) -> float | None:
    """The Nyquist frequency of the series' finest in-plane spacing, in the unit asked."""
    if series is None:
        return None
    try:
        pixel = min(float(series.spacing[1]), float(series.spacing[2]))
    except (TypeError, ValueError, IndexError):
        return None
    if not (math.isfinite(pixel) and pixel > 0):
        return None
    per_mm = 1.0 / (2.0 * pixel)
    if kind == "nyquist_lp_per_cm":
        return 10.0 * per_mm
    if kind == "radial_nyquist_per_mm":
        return math.sqrt(2.0) * per_mm
    return per_mm


def no_bound(unit: str, reason: str) -> PhysicalRange:
    """An explicit entry for a measurement with no physical bound, and why."""
    return PhysicalRange(unit, None, None, f"no physical bound: {reason}")


# Reasons shared by several names
_RATE = "a count rate counts events: it cannot be negative"
_DOSE = "an absorbed dose (CTDI) is an energy per mass deposited: it cannot be negative"
_LENGTH = "a length or width is positive"
# The MTF50/MTF10 of the CT analyses are those of the presampled MTF (ICRU Report 87): the
# wire/bead PSF and the edge profile are binned at an eighth or a tenth of a pixel, so the
# curve is known, and can be non-zero, beyond the image's Nyquist frequency (a sharp
# kernel on large pixels passes frequencies the pixel grid then aliases). The image's
# Nyquist frequency is therefore no bound on them; it is on a resolved bar pattern.
_PRESAMPLED = ("a spatial frequency is positive; a presampled MTF (oversampled wire, bead "
               "or edge profile, ICRU Report 87) can extend beyond the image's Nyquist "
               "frequency, so that is no bound on it")
_SD = "a standard deviation (or a coefficient of variation) is never negative"
_CT_NUMBER = ("CT number = 1000 (μ - μ_water) / μ_water, and μ ≥ 0 gives at least -1000 HU; "
              "the CT-number scale ends at -1024 HU (the 24 HU below -1000 allow for "
              "calibration offset)")
_ACTIVITY = "an activity concentration is never negative"
_MAGNITUDE = "MR magnitude images hold no negative signal"
_SIGNED = "a signed difference from a nominal or reference value"

RANGES: dict[str, PhysicalRange] = {
    # ---------------------------------------------------------------- PET image quality
    "percent_contrast": PhysicalRange(
        "%", 0.0, 100.0,
        "partial volume only lowers the contrast of a sphere against its background "
        "(NEMA NU 2-2018 section 7.4.1): a hot sphere reads between the background and "
        "its true concentration, a cold one between no activity and the background; "
        "above 100 % the activity ratio used is wrong"),
    "background_variability": PhysicalRange("%", 0.0, None, _SD),
    "background_mean_bq_ml": PhysicalRange("Bq/mL", 0.0, None, _ACTIVITY, low_open=True),
    "lung_residual": PhysicalRange(
        "%", 0.0, 100.0,
        "the lung insert holds no activity: its apparent concentration comes from scatter "
        "and spill-in only, between none and the background (NEMA NU 2-2018 section "
        "7.4.1)"),
    # EARL recovery coefficients. Partial volume only lowers recovery (RC ≤ 1); the
    # bound adds the edge overshoot of resolution-modelling (PSF) reconstructions, and
    # widens with the value's own relative uncertainty (the image's relative noise at the
    # scale of the VOI, which image_quality reports with each RC): high (1 + k u / RC).
    "rc_mean": PhysicalRange(
        "1", 0.0, 1.3,
        "partial volume only lowers recovery (≤ 1); up to 1.3 for the edge overshoot of "
        "resolution-modelling reconstructions, times 1 + 3 relative uncertainties for "
        "the noise of the A50 volume", relative=True),
    "rc_peak": PhysicalRange(
        "1", 0.0, 1.3,
        "partial volume only lowers recovery (≤ 1); up to 1.3 for the edge overshoot of "
        "resolution-modelling reconstructions, times 1 + 3 relative uncertainties for "
        "the noise of a 1 mL mean", relative=True),
    "rc_max": PhysicalRange(
        "1", 0.0, 1.4,
        "partial volume only lowers recovery (≤ 1); up to 1.4 for the edge overshoot of "
        "resolution-modelling reconstructions, times 1 + 7 relative voxel SDs: the "
        "hottest of n noisy voxels exceeds their mean by about √(2 ln n) SD (3.7 for "
        "10³ voxels), and 3 SD more", relative=True, k=7.0),
    "activity_ratio_estimated": PhysicalRange(
        "1", 0.0, None, "a ratio of two activity concentrations is positive", low_open=True),
    # ---------------------------------------------------------------- PET other
    "fwhm_mm": PhysicalRange("mm", 0.0, None, _LENGTH, low_open=True),
    "fwtm_mm": PhysicalRange("mm", 0.0, None, _LENGTH, low_open=True),
    "fwhm_mean_mm": PhysicalRange("mm", 0.0, None, _LENGTH, low_open=True),
    "fwtm_mean_mm": PhysicalRange("mm", 0.0, None, _LENGTH, low_open=True),
    "activity_concentration_bq_ml": PhysicalRange("Bq/mL", 0.0, None, _ACTIVITY),
    "expected_activity_concentration_bq_ml": PhysicalRange("Bq/mL", 0.0, None, _ACTIVITY,
                                                           low_open=True),
    "activity_concentration_bias_percent": PhysicalRange(
        "%", -100.0, None, "100 (C_measured / C_expected - 1) with C_measured ≥ 0 is at "
        "least -100 %"),
    "suv_mean": PhysicalRange("g/mL", 0.0, None, "an SUV scales a non-negative "
                              "concentration by a positive factor"),
    "axial_nonuniformity_percent": PhysicalRange("%", 0.0, None,
                                                 "a largest absolute deviation is never "
                                                 "negative"),
    "transverse_cv_percent": PhysicalRange("%", 0.0, None, _SD),
    "voxel_cv_percent": PhysicalRange("%", 0.0, None, _SD),
    "system_sensitivity_cps_per_kbq": PhysicalRange(
        "cps/kBq", 0.0, None, "a scanner detects a positive count rate per activity",
        low_open=True),
    "peak_slice_sensitivity_cps_per_kbq": PhysicalRange(
        "cps/kBq", 0.0, None, "a scanner detects a positive count rate per activity",
        low_open=True),
    "aluminium_attenuation_coefficient_per_cm": PhysicalRange(
        "1/cm", 0.0, None, "aluminium attenuates: its linear attenuation coefficient is "
        "positive", low_open=True),
    "true_rate_kcps": PhysicalRange("kcps", 0.0, None, _RATE),
    "random_rate_kcps": PhysicalRange("kcps", 0.0, None, _RATE),
    "scatter_rate_kcps": PhysicalRange("kcps", 0.0, None, _RATE),
    "total_rate_kcps": PhysicalRange("kcps", 0.0, None, _RATE),
    "necr_kcps": PhysicalRange("kcps", 0.0, None, "NECR = T² / (T + S + R) of non-negative "
                               "rates is never negative"),
    "peak_necr_kcps": PhysicalRange("kcps", 0.0, None, "NECR = T² / (T + S + R) of "
                                    "non-negative rates is never negative"),
    "peak_true_rate_kcps": PhysicalRange("kcps", 0.0, None, _RATE),
    "activity_at_peak_necr_kbq_ml": PhysicalRange("kBq/mL", 0.0, None, _ACTIVITY),
    "activity_at_peak_true_rate_kbq_ml": PhysicalRange("kBq/mL", 0.0, None, _ACTIVITY),
    "scatter_fraction_percent": PhysicalRange(
        "%", 0.0, 100.0, "scattered events are a part of the scattered plus true events"),
    "rate_error_percent": PhysicalRange(
        "%", -100.0, None, "100 (R_measured / R_extrapolated - 1) with a non-negative "
        "measured rate is at least -100 %"),
    "max_rate_error_percent": PhysicalRange("%", 0.0, None,
                                            "a largest absolute error is never negative"),
    "tof_resolution_ps": PhysicalRange("ps", 0.0, None, "a timing resolution (FWHM) is "
                                       "positive", low_open=True),
    "events_used": PhysicalRange("1", 0.0, None, "a count of events is never negative"),
    "coregistration_error_mm": PhysicalRange("mm", 0.0, None,
                                             "a distance between two points is never "
                                             "negative"),
    "max_coregistration_error_mm": PhysicalRange("mm", 0.0, None,
                                                 "a distance between two points is never "
                                                 "negative"),
    "coregistration_offset_mm": no_bound("mm", "a signed offset along one axis"),
    # ---------------------------------------------------------------- CT
    "ct_number_hu": PhysicalRange("HU", -1024.0, None, _CT_NUMBER),
    "ct_number_centre_hu": PhysicalRange("HU", -1024.0, None, _CT_NUMBER),
    "ct_number_water_hu": PhysicalRange("HU", -1024.0, None, _CT_NUMBER),
    "noise_hu": PhysicalRange("HU", 0.0, None, _SD),
    # clinical CT global noise (scanbench.quality.ct_noise)
    "global_noise_hu": PhysicalRange("HU", 0.0, None, _SD + " (a mode or mean of local SDs)"),
    "soft_tissue_area_cm2": PhysicalRange("cm²", 0.0, None, "an area is never negative"),
    "water_equivalent_diameter_mm": PhysicalRange(
        "mm", 0.0, None, "D_w = 2 sqrt(water-equivalent area / π) (AAPM Report 220): a "
        "diameter of a non-negative area", low_open=True),
    "kvp": PhysicalRange("kV", 0.0, None, "an X-ray tube voltage is positive",
                         low_open=True),
    "uniformity_deviation_hu": no_bound("HU", _SIGNED + " (edge minus centre CT number)"),
    "uniformity_max_deviation_hu": PhysicalRange("HU", 0.0, None,
                                                 "a largest absolute deviation is never "
                                                 "negative"),
    "bar_modulation": PhysicalRange(
        "1", 0.0, 1.0,
        "a modulation transfer is a fraction of the object's contrast, between 0 and 1; "
        "the allowance of 0.1 covers the fundamental-harmonic estimate's error on a noisy "
        "image and the mild overshoot of edge-enhancing kernels",
        allowance=0.1),
    "mtf50_lp_per_cm": PhysicalRange("lp/cm", 0.0, None, _PRESAMPLED, low_open=True),
    "mtf10_lp_per_cm": PhysicalRange("lp/cm", 0.0, None, _PRESAMPLED, low_open=True),
    "high_contrast_resolution_lp_per_cm": PhysicalRange(
        "lp/cm", 0.0, None,
        "a spatial frequency is not negative (0: no pattern resolved) and a sampled image "
        "resolves none above its Nyquist frequency 1 / (2 × pixel spacing)",
        high_from_series="nyquist_lp_per_cm"),
    "nps_peak_frequency_per_mm": PhysicalRange(
        "1/mm", 0.0, None,
        "a radial spatial frequency of a 2-D noise power spectrum lies between 0 and √2 "
        "times the Nyquist frequency (the spectrum's corner)",
        high_from_series="radial_nyquist_per_mm"),
    "nps_mean_frequency_per_mm": PhysicalRange(
        "1/mm", 0.0, None,
        "a radial spatial frequency of a 2-D noise power spectrum lies between 0 and √2 "
        "times the Nyquist frequency (the spectrum's corner)",
        high_from_series="radial_nyquist_per_mm"),
    "low_contrast_cnr": PhysicalRange("1", 0.0, None,
                                      "an absolute contrast over a noise SD is never "
                                      "negative"),
    "slice_thickness_mm": PhysicalRange("mm", 0.0, None, _LENGTH, low_open=True),
    "bb_distance_mm": PhysicalRange("mm", 0.0, None, _LENGTH, low_open=True),
    "distance_accuracy_mm": no_bound("mm", _SIGNED + " (measured minus nominal distance)"),
    "hu_electron_density_slope_hu": PhysicalRange(
        "HU", 0.0, None, "the CT number rises with electron density (attenuation is "
        "proportional to it at CT energies)", low_open=True),
    "hu_electron_density_intercept_hu": no_bound(
        "HU", "a fitted line's extrapolation to zero electron density"),
    "hu_electron_density_r_squared": PhysicalRange("1", 0.0, 1.0,
                                                   "a coefficient of determination of a "
                                                   "least-squares line lies in [0, 1]"),
    "ctdivol_mgy": PhysicalRange("mGy", 0.0, None, _DOSE),
    "ctdiw_mgy": PhysicalRange("mGy", 0.0, None, _DOSE),
    "ctdi100_centre_mgy": PhysicalRange("mGy", 0.0, None, _DOSE),
    "ctdi100_periphery_mgy": PhysicalRange("mGy", 0.0, None, _DOSE),
    "ctdivol_measured_mgy": PhysicalRange("mGy", 0.0, None, _DOSE),
    "ctdivol_displayed_mgy": PhysicalRange("mGy", 0.0, None, _DOSE),
    "ctdivol_deviation_percent": PhysicalRange(
        "%", -100.0, None, "100 (measured / displayed - 1) with a non-negative measured "
        "dose is at least -100 %"),
    # ---------------------------------------------------------------- MR
    "length_mm": PhysicalRange("mm", 0.0, None, _LENGTH, low_open=True),
    "length_error_mm": no_bound("mm", _SIGNED + " (measured minus nominal length)"),
    "percent_integral_uniformity": PhysicalRange(
        "%", 0.0, 100.0, "PIU = 100 (1 - (max - min) / (max + min)) of non-negative "
        "magnitude signals lies in [0, 100] %"),
    "percent_signal_ghosting": PhysicalRange(
        "%", 0.0, None, "an absolute ghosting ratio is never negative"),
    "signal_mean": PhysicalRange("stored value", 0.0, None, _MAGNITUDE),
    "noise_sd": PhysicalRange("stored value", 0.0, None, _SD),
    "large_roi_mean": PhysicalRange("signal", 0.0, None, _MAGNITUDE),
    "roi_mean": PhysicalRange("signal", 0.0, None, _MAGNITUDE),
    "background_mean": PhysicalRange("signal", 0.0, None, _MAGNITUDE),
    "snr": PhysicalRange("1", 0.0, None, "a phantom's mean signal in a magnitude image is "
                         "positive, and so is its ratio to a noise SD", low_open=True),
    "snr_normalised": PhysicalRange("Hz^0.5/mm^3", 0.0, None,
                                    "a positive SNR scaled by positive acquisition factors is "
                                    "positive", low_open=True),
    "ramp_length_mm": PhysicalRange("mm", 0.0, None, _LENGTH),
    "slice_position_error_mm": no_bound("mm", _SIGNED + " (bar length difference, scaled)"),
    "bar_length_difference_mm": no_bound("mm", _SIGNED + " (one wedge bar minus the other)"),
    "resolved_hole_mm": PhysicalRange("mm", 0.0, None, "a hole diameter is positive",
                                      low_open=True),
    "rows_resolved": PhysicalRange("1", 0.0, 4.0, "each ACR resolution array has four rows"),
    "spokes_detected": PhysicalRange("1", 0.0, 10.0, "each ACR low-contrast slice has 10 "
                                     "spokes"),
    "spokes_detected_total": PhysicalRange("1", 0.0, 40.0, "the four ACR low-contrast "
                                           "slices have 10 spokes each"),
    "spokes_detected_strict": PhysicalRange("1", 0.0, 10.0, "each ACR low-contrast slice "
                                            "has 10 spokes"),
    "spokes_detected_strict_total": PhysicalRange("1", 0.0, 40.0, "the four ACR low-contrast "
                                                  "slices have 10 spokes each"),
}


def range_for(name: str) -> PhysicalRange | None:
    """The physical range of a measurement name, or ``None`` when the table lacks it."""
    return RANGES.get(name)


def check(m: Measurement, series: Series | None = None) -> str | None:
    """Why ``m`` is physically impossible (the refusal text), or ``None`` when it is
    possible, already refused, not a finite number, or has no range in the table."""
    rng = RANGES.get(m.name)
    if rng is None or m.status == "refused" or not rng.bounded:
        return None
    if rng.unit != m.unit:
        return None  # a different quantity under the same name: no range known for it
    value = float(m.value)
    if not math.isfinite(value):
        return None
    low, high = rng.bounds(m, series)
    if not rng.outside(value, low, high):
        return None
    shown = f"{value:.4g}" + (f" {m.unit}" if m.unit not in ("1", "") else "")
    where = "".join(f", {k} {v}" for k, v in m.labels.items())
    return (f"{m.name}{where} read {shown}, outside the physical range "
            f"{rng.describe(low, high)}: {rng.reason}")


def enforce_physical_ranges(result: Result, series: Series | None = None) -> list[str]:
    """Refuse every measurement of ``result`` outside its physical range (in place).

    ``series`` gives the bounds that depend on the images (the Nyquist frequency); without
    it those bounds are not applied. Adds one warning to ``result.warnings`` naming the
    refused measurements, and returns the refusal texts.
    """
    refused = []
    for m in result.measurements:
        why = check(m, series)
        if why is not None:
            m.refuse(why)
            refused.append(why)
    if refused:
        result.warnings.append(
            f"{len(refused)} measurement(s) refused as physically impossible (a defect of "
            "the analysis or of its parameters on this series, never reported as a "
            "value): " + "; ".join(refused))
    return refused

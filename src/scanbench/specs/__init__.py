"""Evaluation specifications: YAML files of acceptance limits, and their loader.

A spec says whether a measurement passes; analyses only measure (DESIGN.md).
Every limit in a spec names its ``source`` and a ``confidence`` tag
(STANDARDS.md): ``C`` confirmed in the cited source, ``P`` partly confirmed
(a secondary source only), ``U`` not confirmed. A spec may declare
``verified: true`` only when every limit in it is ``C``; otherwise it must say
``verified: false`` and give ``unverified_reason``, and every result evaluated
with it carries that reason as a warning.

Spec file format (YAML)::

    name: earl1                      # the name --spec uses; the file is <name>.yaml
    title: EARL1 FDG-PET/CT ...      # one line, for reports
    version: "2017-01"               # the version of the source document
    description: >                   # what the spec is for and how to use it
      ...
    verified: true
    unverified_reason: "..."         # required when verified is false
    sources:                         # citations for the limits below
      - "EARL, Accreditation specifications (R. Boellaard, January 2017), http://..."
    rules:
      - analysis: pet.nema_nu2_2018.image_quality   # an analysis id
        measurement: rc_mean                        # a measurement that analysis produces
        labels: {sphere_mm: 37}                     # optional: only these measurements
        device: {manufacturer: UIH, model: [uMI 550, uMI550]}   # optional: vendor claims
        low: 0.76                                   # optional; at least one of low/high
        high: 0.89
        source: "EARL accreditation specifications, Table 1 (VOI-A50)"
        confidence: C
      - analysis: mr.acr.uniformity
        measurement: percent_integral_uniformity
        when: {field_strength_t: {min: 2.5, max: 3.5}}   # optional: conditions on the
        low: 80.0                                        # result's parameters
        ...
      - analysis: ct.water
        measurement: ct_number_water_hu
        baseline: {low: -4.0, high: 4.0, mode: absolute} # instead of low/high: limits
        ...                                              # around the device's baseline

``when`` maps a parameter the analysis records in ``Result.parameters`` to a
value (equal; strings ignoring case) or a range ``{min: a, max: b}`` meaning
``a <= value < b`` (either end may be left out). A rule with ``when`` applies
only to results whose parameters satisfy it.

``baseline`` makes the limits relative to the device's own accepted baseline
value of the same measurement (same analysis, name and labels), given when the
spec is applied (``scanbench analyze --baseline RESULTS.json``): ``mode:
absolute`` adds ``low``/``high`` to the baseline value, ``mode: percent``
allows ``low``/``high`` percent of it. Without a baseline value such a rule
judges nothing, and the result says so.

How rules are matched is described in :mod:`scanbench.evaluation`.

Issue 13 added optional keys, documented with an example in ``docs/specs.md``:
``metadata``, ``applies_to`` (device class), ``tests`` (required tests with frequency
and due window, mapped to :mod:`scanbench.evaluation.schedule`), ``retest_days``,
``weights`` (dimension weights), a rule's ``tolerance`` band inside its action limits
``low``/``high`` (QATrack+'s two levels), and ``extends`` (a parent spec; loops
refused). Files are validated against ``spec.schema.json`` (JSON Schema 2020-12), and
every error names the file, the key and its line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, NoReturn

import yaml

from scanbench.errors import SpecError
from scanbench.types import DeviceIdentity

Confidence = Literal["C", "P", "U"]

# The confidence of a limit in words for users (the letters are the YAML's shorthand):
# only a confirmed limit judges pass/fail; the others are reported as within/outside an
# unconfirmed limit (scanbench.types.Limits.check).
CONFIDENCE_WORDS: dict[str, str] = {
    "C": "confirmed",
    "P": "not confirmed in the standard's own text: secondary source only",
    "U": "not confirmed",
}

# Units of measurement names, by the naming convention (the name ends with its unit);
# names without a unit suffix are listed in _UNITS_BY_NAME.
_UNIT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_cps_per_kbq", "cps/kBq"), ("_per_cm", "/cm"), ("_lp_per_cm", "lp/cm"),
    ("_per_mm", "/mm"), ("_bq_ml", "Bq/mL"), ("_kbq_ml", "kBq/mL"), ("_kcps", "kcps"),
    ("_percent", "%"), ("_mgycm", "mGy·cm"), ("_mgy", "mGy"), ("_hu", "HU"),
    ("_mm", "mm"), ("_cm", "cm"), ("_ps", "ps"),
)
_UNITS_BY_NAME: dict[str, str] = {
    "percent_contrast": "%", "background_variability": "%", "lung_residual": "%",
    "percent_integral_uniformity": "%", "percent_signal_ghosting": "%",
    "rc_max": "ratio", "rc_mean": "ratio", "rc_peak": "ratio", "suv_mean": "SUV",
    "bar_modulation": "ratio", "low_contrast_cnr": "ratio",
    "hu_electron_density_r_squared": "ratio", "snr": "ratio", "snr_normalised": "ratio",
    "activity_ratio_estimated": "ratio",
    "spokes_detected": "spokes", "spokes_detected_total": "spokes",
    "spokes_detected_strict": "spokes", "spokes_detected_strict_total": "spokes",
    "rows_resolved": "rows", "events_used": "events",
    "signal_mean": "signal", "noise_sd": "signal", "large_roi_mean": "signal",
    "roi_mean": "signal", "background_mean": "signal",
}


def measurement_unit(name: str) -> str:
    """The unit of a measurement name ("ratio" for a pure number, "signal" for MR pixel
    values, which have no physical unit)."""
    if name in _UNITS_BY_NAME:
        return _UNITS_BY_NAME[name]
    # longest suffix first: _lp_per_cm before _per_cm, _kbq_ml before _bq_ml
    for suffix, unit in sorted(_UNIT_SUFFIXES, key=lambda t: -len(t[0])):
        if name.endswith(suffix):
            return unit
    raise KeyError(f"no unit known for measurement {name!r}")

# What each analysis can produce: measurement name -> the label keys it carries.
# Kept here so a spec can be checked at load time without importing the
# analyses; it must list every name the analyses emit (DESIGN.md naming).
MEASUREMENTS: dict[str, dict[str, tuple[str, ...]]] = {
    # axial_position_mm: only when one long-AFOV scan holds phantoms at several positions
    "pet.nema_nu2_2018.image_quality": {
        "percent_contrast": ("sphere_mm", "axial_position_mm"),
        "background_variability": ("sphere_mm", "axial_position_mm"),
        "lung_residual": ("axial_position_mm",),
        "background_mean_bq_ml": ("axial_position_mm",),
        "rc_max": ("sphere_mm", "axial_position_mm"),
        "rc_mean": ("sphere_mm", "axial_position_mm"),
        "rc_peak": ("sphere_mm", "axial_position_mm"),
        # the fill ratio the image shows (no label: one per phantom)
        "activity_ratio_estimated": ("axial_position_mm",),
    },
    "pet.nema_nu2_2018.spatial_resolution": {
        # one per point source; position_cm is the nominal 1 / 10 / 20 cm class
        "fwhm_mm": ("direction", "position_cm", "radius_mm", "axial_mm"),
        "fwtm_mm": ("direction", "position_cm", "radius_mm", "axial_mm"),
        # NU 2-2018's reported value: the mean over the axial positions
        "fwhm_mean_mm": ("direction", "position_cm", "n_sources"),
        "fwtm_mean_mm": ("direction", "position_cm", "n_sources"),
    },
    "pet.nema_nu2_2018.sensitivity": {
        "system_sensitivity_cps_per_kbq": ("radius_mm",),
        "aluminium_attenuation_coefficient_per_cm": ("radius_mm",),
        "peak_slice_sensitivity_cps_per_kbq": ("radius_mm",),
    },
    "pet.nema_nu2_2018.count_rate": {
        "total_rate_kcps": ("frame", "activity_kbq_ml"),
        "true_rate_kcps": ("frame", "activity_kbq_ml"),
        "random_rate_kcps": ("frame", "activity_kbq_ml"),
        "scatter_rate_kcps": ("frame", "activity_kbq_ml"),
        "necr_kcps": ("frame", "activity_kbq_ml"),
        "peak_necr_kcps": (),
        "activity_at_peak_necr_kbq_ml": (),
        "peak_true_rate_kcps": (),
        "activity_at_peak_true_rate_kbq_ml": (),
        "scatter_fraction_percent": ("activity",),
    },
    "pet.nema_nu2_2018.tof_resolution": {
        "tof_resolution_ps": ("frame", "activity_kbq_ml"),
        "events_used": ("frame", "activity_kbq_ml"),
    },
    "pet.nema_nu2_2018.coregistration": {
        "coregistration_error_mm": ("marker", "x_mm", "y_mm", "z_mm"),
        "coregistration_offset_mm": ("marker", "axis"),
        "max_coregistration_error_mm": ("n_markers",),
    },
    "pet.nema_nu2_2018.corrections_accuracy": {
        "rate_error_percent": ("frame", "activity_kbq_ml"),
        "max_rate_error_percent": (),
    },
    "pet.calibration_uniformity": {
        "activity_concentration_bq_ml": (),
        "expected_activity_concentration_bq_ml": (),
        "activity_concentration_bias_percent": (),
        "suv_mean": (),
        "axial_nonuniformity_percent": (),
        "transverse_cv_percent": (),
        "voxel_cv_percent": (),
    },
    # CT part A (issue 3). ct.water: per slice (slice = 1, 2, ...; z_mm) and the series
    # (slice = "all"); position = "12 o'clock", "3 o'clock", "6 o'clock", "9 o'clock".
    "ct.water": {
        "ct_number_water_hu": ("slice", "z_mm"),
        "noise_hu": ("slice", "z_mm"),
        "uniformity_deviation_hu": ("slice", "z_mm", "position"),
        "uniformity_max_deviation_hu": ("slice", "z_mm"),
    },
    "ct.mtf": {  # method = "point" (wire/bead) or "circular_edge"
        "mtf50_lp_per_cm": ("method",),
        "mtf10_lp_per_cm": ("method",),
    },
    "ct.nps": {
        "nps_peak_frequency_per_mm": (),
        "nps_mean_frequency_per_mm": (),
        "noise_hu": (),
    },
    # CT part B (issue 3). material: ACR water, air, polyethylene, acrylic, bone; CatPhan
    # air, air_2, pmp, ldpe, polystyrene, acrylic, delrin, teflon, bone_20, bone_50.
    # position: "12 o'clock", "3 o'clock", "6 o'clock", "9 o'clock"; method: "phantom
    # edge", "teflon edge", "bead"; level: "1%", "0.5%", "0.3%".
    "ct.acr464": {
        "ct_number_hu": ("material",),
        "slice_thickness_mm": (),
        "low_contrast_cnr": (),
        "ct_number_water_hu": (),
        "noise_hu": (),
        "uniformity_deviation_hu": ("position",),
        "uniformity_max_deviation_hu": (),
        "bb_distance_mm": (),
        "distance_accuracy_mm": (),
        "mtf50_lp_per_cm": ("method",),
        "mtf10_lp_per_cm": ("method",),
        "bar_modulation": ("lp_per_cm",),
        "high_contrast_resolution_lp_per_cm": (),
        "ctdivol_mgy": ("phantom_cm",),
    },
    "ct.catphan": {
        "ct_number_hu": ("material",),
        "hu_electron_density_slope_hu": (),
        "hu_electron_density_intercept_hu": (),
        "hu_electron_density_r_squared": (),
        "slice_thickness_mm": (),
        "mtf50_lp_per_cm": ("method",),
        "mtf10_lp_per_cm": ("method",),
        "ct_number_centre_hu": (),
        "noise_hu": (),
        "uniformity_deviation_hu": ("position",),
        "uniformity_max_deviation_hu": (),
        "nps_peak_frequency_per_mm": (),
        "nps_mean_frequency_per_mm": (),
        "bar_modulation": ("lp_per_cm",),
        "high_contrast_resolution_lp_per_cm": (),
        "low_contrast_cnr": ("diameter_mm", "level"),
    },
    "ct.dose_verification": {
        "ctdi100_centre_mgy": (),
        "ctdi100_periphery_mgy": (),
        "ctdiw_mgy": (),
        "ctdivol_measured_mgy": ("phantom_cm",),
        "ctdivol_displayed_mgy": ("phantom_cm",),
        "ctdivol_deviation_percent": ("phantom_cm",),
    },
    # MRI, ACR large phantom (issue 7 part B): one analysis per test of the guidance
    "mr.acr.geometric_accuracy": {
        "length_mm": ("slice", "direction"),  # slice: localiser, 1, 5
        "length_error_mm": ("slice", "direction"),
    },
    "mr.acr.high_contrast_resolution": {
        "resolved_hole_mm": ("direction",),  # left_right (UL arrays), top_bottom (LR)
        "rows_resolved": ("direction", "hole_mm"),
    },
    "mr.acr.slice_thickness": {
        "slice_thickness_mm": (),
        "ramp_length_mm": ("ramp",),
    },
    "mr.acr.slice_position": {
        "bar_length_difference_mm": ("slice",),
        "slice_position_error_mm": ("slice",),
    },
    "mr.acr.uniformity": {
        "percent_integral_uniformity": (),
        "large_roi_mean": (),
        "roi_mean": ("roi",),
    },
    "mr.acr.ghosting": {
        "percent_signal_ghosting": (),
        "background_mean": ("roi",),
        "large_roi_mean": (),
    },
    "mr.acr.low_contrast": {
        "spokes_detected": ("slice",),
        "spokes_detected_total": (),
        "spokes_detected_strict": ("slice",),
        "spokes_detected_strict_total": (),
    },
    # MRI, NEMA MS (issue 7 part A). method: "difference" (two acquisitions) or
    # "single_image" (air background, Rayleigh-corrected).
    "mr.nema_ms1.snr": {
        "snr": ("method",),
        "snr_normalised": ("method",),
        "signal_mean": (),
        "noise_sd": ("method",),
    },
    "mr.nema_ms3.uniformity": {
        "percent_integral_uniformity": (),
        "percent_signal_ghosting": (),
        "signal_mean": (),
    },
}

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_TOP_KEYS = {"name", "title", "version", "description", "verified", "unverified_reason",
             "sources", "rules", "extends", "metadata", "applies_to", "weights", "retest_days",
             "tests", "indicators"}
_RULE_KEYS = {"analysis", "measurement", "labels", "device", "low", "high", "source",
              "confidence", "note", "when", "baseline", "tolerance"}
# The dimensions a spec weighs (issue 13): what a scorecard scores per device.
DIMENSIONS: tuple[str, ...] = ("image_quality", "radiation_dose", "workflow", "function",
                               "reliability", "usability", "economics")
#: Device-level indicators a spec can score (``indicators:``): name -> (dimension, unit,
#: definition). Computed over the scorecard's period from the store by
#: :mod:`scanbench.evaluation.indicators`, which states each method and its source.
INDICATORS: dict[str, tuple[str, str, str]] = {
    "uptime_percent": ("reliability", "%", "staffed hours up / staffed hours in service"),
    "availability_percent": ("reliability", "%", "MTBF / (MTBF + MTTR)"),
    "mtbf_h": ("reliability", "h", "mean time between unplanned failures"),
    "mttr_h": ("reliability", "h", "mean time to repair an unplanned failure"),
    "exams_per_day": ("workflow", "exams/day",
                      "exams with workflow timings / calendar days of the period"),
    "median_exam_duration_min": ("workflow", "min", "median exam duration"),
    "cost_per_exam": ("economics", "currency/exam",
                      "costs attributed to the period / exams in it"),
    "ctdivol_median_to_drl": ("radiation_dose", "ratio",
                              "highest median CTDIvol / DRL over the device's protocols"),
    "dlp_median_to_drl": ("radiation_dose", "ratio",
                          "highest median DLP / DRL over the device's protocols"),
    "mean_sus_score": ("usability", "points (0-100)",
                       "mean System Usability Scale score (Brooke 1996)"),
}
_BASELINE_KEYS = {"low", "high", "mode"}
_DEVICE_KEYS = {"manufacturer", "model"}


def _normalise(text: str) -> str:
    """Lower case, letters and digits only: 'uMI 550' and 'UMI-550' compare equal."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


@dataclass(frozen=True)
class DeviceMatch:
    """Which devices a rule applies to. Each field is a tuple of accepted names
    (empty: any); names compare ignoring case, spaces and punctuation."""

    manufacturer: tuple[str, ...] = ()
    model: tuple[str, ...] = ()

    def matches(self, device: DeviceIdentity) -> bool:
        for wanted, have in ((self.manufacturer, device.manufacturer),
                             (self.model, device.model)):
            if wanted and (have is None
                           or _normalise(have) not in {_normalise(w) for w in wanted}):
                return False
        return True

    def describe(self) -> str:
        parts = []
        if self.manufacturer:
            parts.append(" / ".join(self.manufacturer))
        if self.model:
            parts.append(" / ".join(self.model))
        return " ".join(parts)


@dataclass(frozen=True)
class Condition:
    """A condition on one result parameter: equal to ``equals``, or in
    ``[minimum, maximum)`` (either end optional)."""

    parameter: str
    equals: str | float | None = None
    minimum: float | None = None
    maximum: float | None = None

    def holds(self, parameters: Mapping[str, Any]) -> bool | None:
        """True/False, or None when the result does not state the parameter."""
        value = parameters.get(self.parameter)
        if value is None:
            return None
        if self.equals is not None:
            return _label_equal(self.equals, value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        v = float(value)
        return (self.minimum is None or v >= self.minimum) and \
            (self.maximum is None or v < self.maximum)

    def describe(self) -> str:
        if self.equals is not None:
            return f"{self.parameter} = {self.equals}"
        lo = "" if self.minimum is None else f"{self.minimum:g} ≤ "
        hi = "" if self.maximum is None else f" < {self.maximum:g}"
        return f"{lo}{self.parameter}{hi}"


@dataclass(frozen=True)
class BaselineLimits:
    """Limits around the device's baseline value: ``absolute`` adds low/high to it,
    ``percent`` allows low/high percent of it."""

    low: float | None
    high: float | None
    mode: Literal["absolute", "percent"]

    def around(self, baseline: float) -> tuple[float | None, float | None]:
        def shift(d: float | None) -> float | None:
            if d is None:
                return None
            return baseline + d if self.mode == "absolute" else baseline + abs(baseline) * d / 100
        return shift(self.low), shift(self.high)

    def describe(self) -> str:
        unit = "" if self.mode == "absolute" else " %"
        lo = "" if self.low is None else f"{self.low:+g}{unit}"
        hi = "" if self.high is None else f"{self.high:+g}{unit}"
        return f"baseline {lo}{' / ' if lo and hi else ''}{hi}"


@dataclass(frozen=True)
class Rule:
    """One limit: for one analysis's measurement, optionally narrowed by labels
    and by device."""

    analysis: str
    measurement: str
    low: float | None
    high: float | None
    source: str
    confidence: Confidence
    labels: Mapping[str, Any] = field(default_factory=dict)
    device: DeviceMatch | None = None
    note: str = ""
    when: tuple[Condition, ...] = ()
    baseline: BaselineLimits | None = None
    # QATrack+-style two bands: low/high are the action levels (outside: fail);
    # ``tolerance`` is the narrower warning band inside them (outside it: act soon).
    tolerance: tuple[float | None, float | None] | None = None

    @property
    def key(self) -> tuple[Any, ...]:
        """What a rule applies to: two rules with the same key judge the same values (a
        child spec's rule replaces its parent's rule of the same key)."""
        return (self.analysis, self.measurement,
                tuple(sorted((k, str(x)) for k, x in self.labels.items())), self.device,
                self.when)

    def level(self, value: float) -> Literal["within tolerance", "tolerance", "action"]:
        """The QATrack+-style level of ``value``: inside the tolerance band (or no band
        given) and inside the action limits, between the two, or outside the action
        limits. Baseline-relative rules need the baseline: use the absolute bounds."""
        if (self.low is not None and value < self.low) or \
                (self.high is not None and value > self.high):
            return "action"
        if self.tolerance is not None:
            lo, hi = self.tolerance
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                return "tolerance"
        return "within tolerance"

    def matches_labels(self, labels: Mapping[str, Any]) -> bool:
        """True when every label of the rule is present with an equal value."""
        return all(k in labels and _label_equal(v, labels[k]) for k, v in self.labels.items())

    def describe(self) -> str:
        """e.g. ``rc_mean {sphere_mm: 37}`` or ``fwhm_mm {...} for UIH uMI 550``."""
        text = self.measurement
        if self.labels:
            text += " {" + ", ".join(f"{k}: {v}" for k, v in self.labels.items()) + "}"
        if self.device:
            text += f" for {self.device.describe()}"
        if self.when:
            text += " when " + " and ".join(c.describe() for c in self.when)
        return text


def _label_equal(want: Any, have: Any) -> bool:
    if isinstance(want, int | float) and isinstance(have, int | float) \
            and not isinstance(want, bool) and not isinstance(have, bool):
        return math.isclose(float(want), float(have), rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(want, str) and isinstance(have, str):
        return want.strip().lower() == have.strip().lower()
    return bool(want == have)


@dataclass(frozen=True)
class DeviceClass:
    """Which devices a spec applies to (``applies_to``): each name tuple empty means
    any; ranges are ``[min, max)`` like ``when`` conditions."""

    modality: tuple[str, ...] = ()
    manufacturer: tuple[str, ...] = ()
    model: tuple[str, ...] = ()
    field_strength_t: Condition | None = None
    axial_fov_mm: Condition | None = None

    def matches(self, device: DeviceIdentity, modality: str | None = None,
                field_strength_t: float | None = None,
                axial_fov_mm: float | None = None) -> bool | None:
        """True/False; None when a condition depends on something not given."""
        unknown = False
        for wanted, have in ((self.modality, modality),
                             (self.manufacturer, device.manufacturer),
                             (self.model, device.model)):
            if not wanted:
                continue
            if have is None:
                unknown = True
            elif _normalise(have) not in {_normalise(w) for w in wanted}:
                return False
        for cond, value in ((self.field_strength_t, field_strength_t),
                            (self.axial_fov_mm, axial_fov_mm)):
            if cond is None:
                continue
            held = cond.holds({cond.parameter: value})
            if held is None:
                unknown = True
            elif not held:
                return False
        return None if unknown else True

    def describe(self) -> str:
        parts = [" / ".join(x) for x in (self.modality, self.manufacturer, self.model) if x]
        parts.extend(c.describe() for c in (self.field_strength_t, self.axial_fov_mm) if c)
        return ", ".join(parts) or "any device"


@dataclass(frozen=True)
class TestRequirement:
    """One required test of a spec (``tests:``): the test id results carry (an analysis
    id or a QC test name), how often and the due window (the frequencies of
    :mod:`scanbench.evaluation.schedule`), the dimension it scores and its source.
    ``frequency`` is None when the source's period is not confirmed: the test is then
    listed but not scheduled. ``limits`` is ``not confirmed`` when the source's limit
    for it could not be confirmed (the spec then holds no rule for it)."""

    test: str
    source: str
    title: str = ""
    analysis: str | None = None
    frequency: str | None = None
    window_days: float | None = None
    weekdays: tuple[int, ...] | None = None
    dimension: str | None = None
    confidence: Confidence = "C"
    limits: str = "in rules"
    note: str = ""


@dataclass(frozen=True)
class Indicator:
    """A device-level indicator a spec scores (``indicators:``), one of
    :data:`INDICATORS`: its limit (``low``/``high``, both may be empty: reported, never
    judged), the limit's source and whether the source confirms it (only a confirmed
    limit judges pass/fail; an unconfirmed one is shown)."""

    indicator: str
    source: str
    confidence: Confidence
    low: float | None = None
    high: float | None = None
    note: str = ""

    @property
    def dimension(self) -> str:
        return INDICATORS[self.indicator][0]

    @property
    def unit(self) -> str:
        return INDICATORS[self.indicator][1]

    @property
    def has_limit(self) -> bool:
        return self.low is not None or self.high is not None


@dataclass(frozen=True)
class Spec:
    """A loaded, validated evaluation specification."""

    name: str
    title: str
    version: str
    description: str
    verified: bool
    sources: tuple[str, ...]
    rules: tuple[Rule, ...]
    unverified_reason: str = ""
    path: Path | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    applies_to: DeviceClass | None = None
    tests: tuple[TestRequirement, ...] = ()
    weights: Mapping[str, float] = field(default_factory=dict)
    retest_days: float | None = None
    extends: tuple[str, ...] = ()  # the parent chain, nearest first
    indicators: tuple[Indicator, ...] = ()

    def schedule(self, valid_from: Any) -> Any:
        """This spec's tests as a :class:`scanbench.evaluation.schedule.ScheduleSpec` in
        force from ``valid_from`` (a datetime). Tests without a confirmed frequency are
        left out (they cannot be due)."""
        from scanbench.evaluation.schedule import RequiredTest, ScheduleSpec

        tests = tuple(RequiredTest(test=t.test, frequency=t.frequency,  # type: ignore[arg-type]
                                   window_days=t.window_days, weekdays=t.weekdays,
                                   source=t.source)
                      for t in self.tests if t.frequency is not None)
        extra = {} if self.retest_days is None else {"retest_days": self.retest_days}
        return ScheduleSpec(name=self.name, version=self.version, valid_from=valid_from,
                            tests=tests, **extra)

    def normalised_weights(self) -> dict[str, float]:
        """The dimension weights scaled to sum to 1 (empty when none are given)."""
        total = sum(self.weights.values())
        return {k: v / total for k, v in self.weights.items()} if total > 0 else {}

    def rules_for(self, analysis: str) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.analysis == analysis)

    @property
    def unconfirmed_rules(self) -> tuple[Rule, ...]:
        """Rules whose limits are not confirmed in their primary source (P or U)."""
        return tuple(r for r in self.rules if r.confidence != "C")


# ---------------------------------------------------------------- loading


def _spec_dir() -> Any:
    return resources.files("scanbench.specs")


def list_specs() -> list[str]:
    """Names of the specs shipped with scanbench, sorted."""
    return sorted(p.name[:-5] for p in _spec_dir().iterdir()
                  if p.name.endswith(".yaml"))


def load_spec(name_or_path: str | Path) -> Spec:
    """Load a shipped spec by name (``earl1``) or any spec file by path.

    A string that names an existing file, or ends in ``.yaml``/``.yml``, is a
    path. Raises :class:`SpecError` naming the file, the line, the key and the problem.
    """
    return _load(name_or_path, chain=())


def _locate(name_or_path: str | Path, relative_to: Path | None = None) -> tuple[Path, str]:
    """The file of a spec reference and its text: a path (relative to the spec that
    names it, for ``extends``), else a shipped spec's name."""
    text_arg = str(name_or_path)
    as_path = Path(text_arg).expanduser()
    if relative_to is not None and not as_path.is_absolute():
        as_path = relative_to / as_path
    if isinstance(name_or_path, Path) or as_path.is_file() or text_arg.endswith((".yaml", ".yml")):
        if not as_path.is_file():
            raise SpecError("spec file not found", where=as_path)
        try:
            return as_path, as_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(f"cannot read spec file ({exc})", where=as_path) from exc
    shipped = _spec_dir() / f"{text_arg}.yaml"
    if not shipped.is_file():
        known = ", ".join(list_specs())
        raise SpecError(f"unknown spec {text_arg!r}; shipped specs: {known}; "
                        "or give the path of a spec YAML file")
    return Path(str(shipped)), shipped.read_text(encoding="utf-8")


def _load(name_or_path: str | Path, chain: tuple[Path, ...],
          relative_to: Path | None = None) -> Spec:
    path, text = _locate(name_or_path, relative_to)
    return parse_spec(text, where=path, _chain=chain)


_SCHEMA_VALIDATOR: Any = None


def _schema_validator() -> Any:
    """The JSON Schema (draft 2020-12) validator of spec files, from package data."""
    global _SCHEMA_VALIDATOR
    if _SCHEMA_VALIDATOR is None:
        import json

        import jsonschema

        schema = json.loads((_spec_dir() / "spec.schema.json").read_text(encoding="utf-8"))
        _SCHEMA_VALIDATOR = jsonschema.Draft202012Validator(schema)
    return _SCHEMA_VALIDATOR


def _key_text(path: Sequence[str | int]) -> str:
    """['rules', 0, 'low'] -> 'rules[0].low'."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


_KEY_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _key_path(key: str) -> list[str | int]:
    """'rules[0].labels.sphere_mm' -> ['rules', 0, 'labels', 'sphere_mm']."""
    return [int(m.group(2)) if m.group(2) is not None else m.group(1)
            for m in _KEY_PART.finditer(key)]


def _line_of(root: yaml.Node | None, path: Sequence[str | int]) -> int | None:
    """The 1-based line of the YAML node at ``path`` (of its key, for a mapping entry),
    or of the deepest node on the way when the path goes further than the document."""
    node, line = root, None
    if node is not None:
        line = node.start_mark.line + 1
    for p in path:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if str(k.value) == str(p):
                    line, node = k.start_mark.line + 1, v
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(p, int) \
                and 0 <= p < len(node.value):
            node = node.value[p]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _schema_error(data: Any, root: yaml.Node | None, where: str | Path) -> None:
    """Raise the first (by line) JSON Schema violation as a SpecError naming the line."""
    errors = list(_schema_validator().iter_errors(data))
    if not errors:
        return
    found = []
    for e in errors:
        path: list[str | int] = list(e.absolute_path)
        if e.validator == "additionalProperties" and isinstance(e.instance, dict):
            allowed = sorted(e.schema.get("properties", {}))
            extra = sorted(str(k) for k in e.instance if k not in allowed)
            path = [*path, extra[0]]
            problem = f"unknown key; allowed keys are {', '.join(allowed)}"
        elif e.validator == "required" and isinstance(e.instance, dict):
            missing = [k for k in e.validator_value if k not in e.instance]
            problem = "missing"
            if missing[0] == "source" and path and path[0] == "rules":
                problem = "missing: every limit names its source (document and clause)"
            line = _line_of(root, path)
            path = [*path, missing[0]]
            found.append((line or 0, len(path), _key_text(path), line, problem))
            continue
        else:
            problem = e.schema.get("x-message") or e.message
            if e.validator in ("type", "enum", "pattern") and path and \
                    path[-1] == "name" and len(path) == 1:
                problem = f"{e.instance!r} is {problem}"
        line = _line_of(root, path)
        found.append((line or 0, len(path), _key_text(path), line, problem))
    found.sort(key=lambda t: (t[0], -t[1]))
    _, _, key, line, problem = found[0]
    raise SpecError(_located(key, line, problem), where=where)


def _located(key: str, line: int | None, problem: str) -> str:
    """'rules[0].low (line 12): must be a finite number' (key first: what to fix)."""
    at = f" (line {line})" if line is not None else ""
    return f"{key}{at}: {problem}" if key else f"line {line}: {problem}" if line else problem


def parse_spec(text: str, where: str | Path = "<spec>",
               _chain: tuple[Path, ...] = ()) -> Spec:
    """Parse and validate the YAML text of a spec: the JSON Schema
    (``specs/spec.schema.json``) first, then what the schema cannot know (analysis ids,
    measurement names and labels, bands, confirmed limits in a verified spec), then the
    parent named by ``extends`` (loops refused). Errors name the file, key and line."""
    try:  # one parse: the node tree (for lines) and the data built from it
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            data: Any = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise SpecError(_yaml_problem(exc), where=where) from exc
    _schema_error(data, root, where)
    v = _Validator(where, root)
    v.unknown_keys(data, _TOP_KEYS, "")
    name = v.string(data, "name", "")
    if not _NAME_RE.match(name):
        v.fail("name", f"{name!r} is not a valid spec name (lower case, digits, . _ -)")
    verified = data.get("verified")
    if not isinstance(verified, bool):
        v.fail("verified", "must be true or false")
    reason = data.get("unverified_reason", "")
    if not isinstance(reason, str):
        v.fail("unverified_reason", "must be a string")
    if not verified and not reason.strip():
        v.fail("unverified_reason", "an unverified spec must say what is unconfirmed")
    sources = data.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(s, str) and s.strip()
                                                for s in sources):
        v.fail("sources", "must be a list of citation strings")
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        v.fail("rules", "must be a list")
    rules = tuple(v.rule(r, f"rules[{i}]") for i, r in enumerate(raw_rules))
    seen: dict[tuple[Any, ...], int] = {}
    for i, r in enumerate(rules):
        if r.key in seen:
            v.fail(f"rules[{i}]", f"duplicates rules[{seen[r.key]}] ({r.describe()})")
        seen[r.key] = i
    tests = v.tests(data.get("tests") or [])
    indicators = v.indicators(data.get("indicators") or [])
    mine_all = indicators
    applies_to = v.device_class(data.get("applies_to"))
    weights = {str(k): float(x) for k, x in (data.get("weights") or {}).items()}
    if weights and sum(weights.values()) <= 0:
        v.fail("weights", "at least one weight must be above 0")
    here = Path(where) if not str(where).startswith("<") else None
    parents: tuple[str, ...] = ()
    parent: Spec | None = None
    own_rules = rules
    if data.get("extends") is not None:
        parent = v.parent(str(data["extends"]).strip(), here, _chain)
        parents = (parent.name, *parent.extends)
        rules, tests, sources = _inherit(parent, rules, tests, sources)
        weights = weights or dict(parent.weights)
        mine = {i.indicator: i for i in indicators}
        indicators = (*(mine.pop(i.indicator, i) for i in parent.indicators),
                      *(i for i in indicators if i.indicator in mine))
        applies_to = applies_to or parent.applies_to
    for i, r in enumerate(rules):
        if verified and r.confidence != "C":
            inherited = parent is not None and not any(r is o for o in own_rules)
            key = "verified" if inherited and parent is not None else f"rules[{i}].confidence"
            v.fail(key, f"{r.confidence} limit ({r.describe()}) in a spec marked verified: "
                   "true; only C (confirmed) limits may be pass/fail rules of a verified spec "
                   "— set verified: false and say why in unverified_reason"
                   + (f" (the limit comes from the parent spec {parent.name})"
                      if inherited and parent is not None else ""))
    for i, ind in enumerate(indicators):
        if verified and ind.has_limit and ind.confidence != "C":
            v.fail(f"indicators[{i}].confidence" if any(ind is o for o in mine_all)
                   else "verified",
                   f"{ind.confidence} limit of {ind.indicator} in a spec marked verified: "
                   "true; only C (confirmed) limits may judge a verified spec — set "
                   "verified: false and say why in unverified_reason")
    retest = data.get("retest_days")
    return Spec(
        name=name,
        title=v.string(data, "title", ""),
        version=str(v.required(data, "version", "")),
        description=v.string(data, "description", ""),
        verified=bool(verified),
        sources=tuple(dict.fromkeys(s.strip() for s in sources)),
        rules=rules,
        unverified_reason=reason.strip(),
        path=here,
        metadata={str(k): str(x) for k, x in (data.get("metadata") or {}).items()},
        applies_to=applies_to,
        tests=tests,
        weights=weights,
        retest_days=float(retest) if retest is not None else
        (parent.retest_days if parent is not None else None),
        extends=parents,
        indicators=indicators,
    )


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """'not valid YAML (line 7, column 6): expected ',' or ']', but got ':' (while parsing
    a flow sequence opened on line 6)' from a PyYAML error."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    context, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    opened = f" ({context} opened on line {cmark.line + 1})" if context and cmark else ""
    return f"not valid YAML{at}: {problem}{opened}"


def _inherit(parent: Spec, rules: tuple[Rule, ...], tests: tuple[TestRequirement, ...],
             sources: list[str]) -> tuple[tuple[Rule, ...], tuple[TestRequirement, ...],
                                          list[str]]:
    """A child's rules replace its parent's rules of the same key (in the parent's
    order) and add the others after them; tests likewise by test id; sources add up."""
    own = {r.key: r for r in rules}
    merged = [own.pop(r.key, r) for r in parent.rules]
    merged.extend(r for r in rules if r.key in own)
    own_tests = {t.test: t for t in tests}
    merged_tests = [own_tests.pop(t.test, t) for t in parent.tests]
    merged_tests.extend(t for t in tests if t.test in own_tests)
    return tuple(merged), tuple(merged_tests), [*parent.sources, *sources]


class _Validator:
    """Builds SpecErrors of the form '<file>: <key> (line <n>): <problem>'."""

    def __init__(self, where: str | Path, root: yaml.Node | None = None) -> None:
        self.where = where
        self.root = root

    def fail(self, key: str, problem: str) -> NoReturn:
        line = _line_of(self.root, _key_path(key)) if self.root is not None else None
        raise SpecError(_located(key, line, problem), where=self.where)

    def parent(self, ref: str, here: Path | None, chain: tuple[Path, ...]) -> Spec:
        """Load the spec named by ``extends``, refusing a loop of inheritance."""
        me = here.resolve() if here is not None else None
        seen = (*chain, me) if me is not None else chain
        try:
            path, _ = _locate(ref, here.parent if here is not None else None)
        except SpecError as exc:
            self.fail("extends", f"cannot load the parent spec {ref!r}: {exc}")
        if path.resolve() in seen:
            names = " -> ".join(p.name for p in (*seen, path.resolve()))
            self.fail("extends", f"inheritance loop refused: {names}")
        return _load(ref, chain=seen, relative_to=here.parent if here is not None else None)

    def tests(self, raw: list[Any]) -> tuple[TestRequirement, ...]:
        out: list[TestRequirement] = []
        seen: set[str] = set()
        for i, t in enumerate(raw):
            p = f"tests[{i}]."
            test = str(t["test"]).strip()
            if test in seen:
                self.fail(p + "test", f"{test!r} is listed twice")
            seen.add(test)
            analysis = t.get("analysis")
            if analysis is not None and analysis not in MEASUREMENTS:
                self.fail(p + "analysis", f"unknown analysis {analysis!r}; known: "
                          f"{', '.join(sorted(MEASUREMENTS))}")
            if t.get("weekdays") is not None and t.get("frequency") != "daily":
                self.fail(p + "weekdays", "weekdays apply only to a daily test")
            out.append(TestRequirement(
                test=test, source=str(t["source"]).strip(), title=str(t.get("title", "")),
                analysis=analysis, frequency=t.get("frequency"),
                window_days=None if t.get("window_days") is None else float(t["window_days"]),
                weekdays=None if t.get("weekdays") is None else tuple(t["weekdays"]),
                dimension=t.get("dimension"), confidence=t.get("confidence", "C"),
                limits=t.get("limits", "in rules"), note=str(t.get("note", "")).strip()))
        return tuple(out)

    def indicators(self, raw: list[Any]) -> tuple[Indicator, ...]:
        out: list[Indicator] = []
        seen: set[str] = set()
        for i, x in enumerate(raw):  # the schema checked names, types and required keys
            p = f"indicators[{i}]"
            name = str(x["indicator"])
            if name in seen:
                self.fail(p + ".indicator", f"{name!r} is listed twice")
            seen.add(name)
            low, high = self.number(x, "low", p + "."), self.number(x, "high", p + ".")
            if low is not None and high is not None and low > high:
                self.fail(p, f"low {low} is above high {high}")
            out.append(Indicator(indicator=name, source=str(x["source"]).strip(),
                                 confidence=x["confidence"], low=low, high=high,
                                 note=str(x.get("note", "")).strip()))
        return tuple(out)

    def device_class(self, raw: Any) -> DeviceClass | None:
        if raw is None:
            return None
        ranges: dict[str, Condition | None] = {}
        for key in ("field_strength_t", "axial_fov_mm"):
            r = raw.get(key)
            ranges[key] = None if r is None else self.conditions({key: r}, "applies_to")[0]
        names = {k: self.names(raw[k], f"applies_to.{k}") if k in raw else ()
                 for k in ("modality", "manufacturer", "model")}
        return DeviceClass(modality=names["modality"], manufacturer=names["manufacturer"],
                           model=names["model"], field_strength_t=ranges["field_strength_t"],
                           axial_fov_mm=ranges["axial_fov_mm"])

    def required(self, data: Mapping[str, Any], key: str, prefix: str) -> Any:
        if key not in data or data[key] is None:
            self.fail(prefix + key, "missing")
        return data[key]

    def string(self, data: Mapping[str, Any], key: str, prefix: str) -> str:
        value = self.required(data, key, prefix)
        if not isinstance(value, str) or not value.strip():
            self.fail(prefix + key, "must be a non-empty string")
        return value.strip()

    def unknown_keys(self, data: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
        extra = sorted(set(map(str, data)) - allowed)
        if extra:
            self.fail(prefix + extra[0],
                      f"unknown key; allowed keys are {', '.join(sorted(allowed))}")

    def number(self, data: Mapping[str, Any], key: str, prefix: str) -> float | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(float(value)):
            self.fail(prefix + key, f"must be a finite number, got {value!r}")
        return float(value)

    def names(self, value: Any, key: str) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or \
                not all(isinstance(x, str) and x.strip() for x in items):
            self.fail(key, "must be a name or a list of names")
        return tuple(x.strip() for x in items)

    def rule(self, raw: Any, prefix: str) -> Rule:
        if not isinstance(raw, dict):
            self.fail(prefix, "a rule must be a mapping")
        p = prefix + "."
        self.unknown_keys(raw, _RULE_KEYS, p)
        analysis = self.string(raw, "analysis", p)
        if analysis not in MEASUREMENTS:
            self.fail(p + "analysis", f"unknown analysis {analysis!r}; known: "
                      f"{', '.join(sorted(MEASUREMENTS))}")
        measurement = self.string(raw, "measurement", p)
        produced = MEASUREMENTS[analysis]
        if measurement not in produced:
            self.fail(p + "measurement", f"{analysis} does not produce {measurement!r}; it "
                      f"produces {', '.join(sorted(produced))}")
        from scanbench.analysis.physical import RANGES

        if measurement not in RANGES:  # the table of every name the analyses emit
            self.fail(p + "measurement", f"unknown measurement {measurement!r}: no analysis "
                      "reports it")
        labels = raw.get("labels") or {}
        if not isinstance(labels, dict):
            self.fail(p + "labels", "must be a mapping such as {sphere_mm: 37}")
        for k, val in labels.items():
            if k not in produced[measurement]:
                allowed = ", ".join(produced[measurement]) or "none"
                self.fail(f"{p}labels.{k}", f"{measurement} has no label {k!r} "
                          f"(its labels: {allowed})")
            if not isinstance(val, str | int | float) or isinstance(val, bool):
                self.fail(f"{p}labels.{k}", "must be a number or a string")
        device = None
        if raw.get("device") is not None:
            d = raw["device"]
            if not isinstance(d, dict) or not d:
                self.fail(p + "device", "must be a mapping with manufacturer and/or model")
            self.unknown_keys(d, _DEVICE_KEYS, p + "device.")
            device = DeviceMatch(
                manufacturer=self.names(d["manufacturer"], p + "device.manufacturer")
                if "manufacturer" in d else (),
                model=self.names(d["model"], p + "device.model") if "model" in d else (),
            )
        low = self.number(raw, "low", p)
        high = self.number(raw, "high", p)
        baseline = self.baseline(raw.get("baseline"), p + "baseline")
        if baseline is not None and (low is not None or high is not None):
            self.fail(prefix, "a rule gives either low/high or baseline, not both")
        if baseline is None and low is None and high is None:
            self.fail(prefix, "a rule needs low, high or both (or baseline)")
        if low is not None and high is not None and low > high:
            self.fail(prefix, f"low {low} is above high {high}")
        tolerance = self.tolerance(raw.get("tolerance"), p + "tolerance", low, high)
        when = self.conditions(raw.get("when"), p + "when")
        source = self.string(raw, "source", p)
        confidence = raw.get("confidence")
        if confidence not in ("C", "P", "U"):
            self.fail(p + "confidence", "must be C (confirmed), P (partly confirmed) "
                      "or U (unconfirmed)")
        note = raw.get("note", "")
        if not isinstance(note, str):
            self.fail(p + "note", "must be a string")
        return Rule(analysis=analysis, measurement=measurement, low=low, high=high,
                    source=source, confidence=confidence, labels=dict(labels),
                    device=device, note=note.strip(), when=when, baseline=baseline,
                    tolerance=tolerance)

    def tolerance(self, raw: Any, key: str, low: float | None,
                  high: float | None) -> tuple[float | None, float | None] | None:
        """The tolerance (warning) band: inside the action limits low/high, never
        outside them (QATrack+: tolerance levels lie within action levels)."""
        if raw is None:
            return None
        t_low = self.number(raw, "low", key + ".")
        t_high = self.number(raw, "high", key + ".")
        if t_low is None and t_high is None:
            self.fail(key, "needs low, high or both")
        if low is None and high is None:
            self.fail(key, "a tolerance band needs the rule's action limits low/high")
        if t_low is not None and t_high is not None and t_low > t_high:
            self.fail(key, f"low {t_low} is above high {t_high}")
        for name, t, action, inside in (("low", t_low, low, lambda a, b: b >= a),
                                        ("high", t_high, high, lambda a, b: b <= a)):
            if t is not None and action is not None and not inside(action, t):
                self.fail(f"{key}.{name}", f"the tolerance level {t:g} lies outside the "
                          f"action level {action:g}: the tolerance band is the narrower one")
        return (t_low, t_high)

    def baseline(self, raw: Any, key: str) -> BaselineLimits | None:
        if raw is None:
            return None
        if not isinstance(raw, dict):
            self.fail(key, "must be a mapping such as {low: -4, high: 4, mode: absolute}")
        self.unknown_keys(raw, _BASELINE_KEYS, key + ".")
        mode = raw.get("mode")
        if mode not in ("absolute", "percent"):
            self.fail(key + ".mode", "must be absolute or percent")
        low = self.number(raw, "low", key + ".")
        high = self.number(raw, "high", key + ".")
        if low is None and high is None:
            self.fail(key, "needs low, high or both")
        if low is not None and high is not None and low > high:
            self.fail(key, f"low {low} is above high {high}")
        return BaselineLimits(low=low, high=high, mode=mode)

    def conditions(self, raw: Any, key: str) -> tuple[Condition, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, dict) or not raw:
            self.fail(key, "must be a mapping such as {field_strength_t: {min: 2.5, max: 3.5}}")
        out = []
        for name, cond in raw.items():
            k = f"{key}.{name}"
            if isinstance(cond, dict):
                self.unknown_keys(cond, {"min", "max"}, k + ".")
                lo = self.number(cond, "min", k + ".")
                hi = self.number(cond, "max", k + ".")
                if lo is None and hi is None:
                    self.fail(k, "a range needs min, max or both")
                if lo is not None and hi is not None and lo >= hi:
                    self.fail(k, f"min {lo} is not below max {hi}")
                out.append(Condition(str(name), minimum=lo, maximum=hi))
            elif isinstance(cond, str | int | float) and not isinstance(cond, bool):
                out.append(Condition(str(name), equals=cond))
            else:
                self.fail(k, "must be a value or a range {min: ..., max: ...}")
        return tuple(out)


__all__ = ["CONFIDENCE_WORDS", "DIMENSIONS", "INDICATORS", "MEASUREMENTS", "BaselineLimits",
           "Condition", "DeviceClass", "DeviceMatch", "Indicator", "Rule", "Spec",
           "TestRequirement", "list_specs",
           "load_spec", "measurement_unit", "parse_spec"]

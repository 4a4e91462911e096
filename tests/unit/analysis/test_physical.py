"""Physical ranges of measurements (scanbench.analysis.physical), applied on the shared path.

Issue 11: physically impossible values (bar modulations of -1.04 and 1.90 on a real
cone-beam CatPhan, percent contrasts of 260 %) were reported as measurements. Each range
kind is tested here on its own, the table is checked to cover every measurement name an
analysis emits, and the shared result path (``scanbench.api``) is shown to apply it.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

import scanbench
from scanbench.analysis.physical import RANGES, check, enforce_physical_ranges
from scanbench.types import DeviceIdentity, Measurement, Result, Series, SeriesFacts

SRC = Path(scanbench.__file__).parent
# result.add("name", value, "unit" ...) as every analysis writes it
_ADD = re.compile(r"""\.add\(\s*["']([a-z0-9_]+)["']\s*,"""  # the name
                  r"""(?:[^,"']|\([^)]*\))*?,"""  # the value (commas only inside brackets)
                  r"""\s*["']([^"']*)["']""", re.S)  # the unit


def _emitted() -> dict[str, set[str]]:
    """Every measurement name the analysis code adds, with the units it adds it in."""
    out: dict[str, set[str]] = {}
    for folder in ("analysis", "rawdata"):
        for path in (SRC / folder).rglob("*.py"):
            for name, unit in _ADD.findall(path.read_text(encoding="utf-8")):
                out.setdefault(name, set()).add(unit)
    return out


def test_every_emitted_name_has_a_range_or_an_explicit_no_bound() -> None:
    from scanbench.specs import MEASUREMENTS

    emitted = _emitted()
    names = set(emitted) | {n for table in MEASUREMENTS.values() for n in table}
    assert len(names) > 60  # the grep found the analyses
    missing = sorted(names - set(RANGES))
    assert not missing, f"no physical range (nor an explicit no-bound entry) for {missing}"
    for name, units in emitted.items():
        assert units == {RANGES[name].unit}, (name, units, RANGES[name].unit)
    for name, rng in RANGES.items():
        assert len(rng.reason) > 20, name  # every entry says why
        if not rng.bounded:
            assert rng.reason.startswith("no physical bound: "), name


def _m(name: str, value: float, unit: str, uncertainty: float | None = None,
       **labels: object) -> Measurement:
    return Measurement(name=name, value=value, unit=unit, uncertainty=uncertainty,
                       labels=dict(labels))


def _series(pixel_mm: float) -> Series:
    return Series(np.zeros((1, 4, 4), dtype=np.float32), (1.0, pixel_mm, pixel_mm), np.eye(4),
                  SeriesFacts(modality="CT"))


def test_modulation_between_0_and_1() -> None:
    """The real cone-beam CatPhan's bar modulations of issue 11 are refused."""
    for v in (-1.04, 1.90, 1.2):
        why = check(_m("bar_modulation", v, "1", lp_per_cm=4))
        assert why is not None and why.startswith(f"bar_modulation, lp_per_cm 4 read {v:.4g}")
        assert "outside the physical range [-0.1, 1.1]" in why
    for v in (0.0, 0.35, 1.0, 1.05):  # 0.1 allowance for the estimate and kernel overshoot
        assert check(_m("bar_modulation", v, "1")) is None


def test_open_lower_bound_fwhm_positive() -> None:
    assert check(_m("fwhm_mm", 0.0, "mm")) is not None
    assert check(_m("fwhm_mm", -2.0, "mm")) is not None
    assert check(_m("fwhm_mm", 4.1, "mm")) is None
    assert "> 0 mm" in (check(_m("fwhm_mm", 0.0, "mm")) or "")


def test_upper_bound_widened_by_the_uncertainty() -> None:
    """Percent contrast ≤ 100 % + 3 standard uncertainties (hot or cold sphere)."""
    assert check(_m("percent_contrast", 105.0, "%", 2.0)) is None  # 1.7 u above 100
    why = check(_m("percent_contrast", 110.0, "%", 2.0))
    assert why is not None and "[-6, 106] %" in why
    assert check(_m("percent_contrast", 260.0, "%", 8.0)) is not None
    assert check(_m("percent_contrast", 101.0, "%")) is not None  # no uncertainty: strict


def test_piu_at_most_100_and_cnr_snr_not_negative() -> None:
    assert check(_m("percent_integral_uniformity", 100.5, "%")) is not None
    assert check(_m("percent_integral_uniformity", 93.0, "%")) is None
    # real MagNET slice-width series: PIU 0 computed as -2.2e-14 % is round-off, not physics
    assert check(_m("percent_integral_uniformity", -2.22e-14, "%")) is None
    assert check(_m("low_contrast_cnr", -0.5, "1")) is not None
    assert check(_m("snr", -3.0, "1")) is not None
    assert check(_m("snr", 120.0, "1")) is None
    assert check(_m("snr", 0.0, "1")) is not None  # SNR > 0
    assert check(_m("low_contrast_cnr", 0.0, "1")) is None  # CNR ≥ 0


def test_recovery_coefficients() -> None:
    """RCs ≤ 1 by partial volume, plus the stated edge overshoot; the noise allowance
    scales with the value's relative uncertainty (RCmax: 7 voxel SDs, the maximum of
    many noisy voxels)."""
    # the real PSF recon (pet_recon_2, 10:1 given): rc_mean 1.088 ± 0.09 (10 mm), rc_max
    # 1.616 ± 0.274 (13 mm, voxel SD 17 %): possible
    assert check(_m("rc_mean", 1.088, "1", 0.09)) is None
    assert check(_m("rc_max", 1.616, "1", 0.274)) is None
    # the same read as 4:1 (issue 11: RCmax 2.5-3.9): 2.5 times higher, same relative SD
    why = check(_m("rc_max", 4.04, "1", 0.685))
    assert why is not None and "[-2.055, 3.062]" in why and "√(2 ln n)" in why
    assert check(_m("rc_mean", 2.7, "1", 0.225)) is not None
    # without an uncertainty only the overshoot is allowed
    assert check(_m("rc_mean", 1.25, "1")) is None
    assert check(_m("rc_mean", 1.35, "1")) is not None
    assert check(_m("rc_peak", -0.1, "1")) is not None


def test_ct_number_of_air() -> None:
    assert check(_m("ct_number_hu", -1000.0, "HU", material="air")) is None
    assert check(_m("ct_number_hu", -1020.0, "HU", 1.0)) is None
    why = check(_m("ct_number_hu", -1100.0, "HU", 1.0, material="air"))
    assert why is not None and "≥ -1027 HU" in why
    assert check(_m("ct_number_hu", 3000.0, "HU")) is None  # no upper bound (metal)


def test_frequency_below_the_series_nyquist() -> None:
    """0.5 mm pixels: Nyquist 10 lp/cm; a resolved bar pattern of 11 lp/cm is refused only
    with the series. A presampled MTF's MTF10 of 11 lp/cm is physical (ICRU Report 87:
    the oversampled profile carries frequencies the pixel grid aliases), and so is
    refused only at or below 0."""
    m = _m("high_contrast_resolution_lp_per_cm", 11.0, "lp/cm")
    assert check(m) is None  # the bound needs the series' spacing
    why = check(m, _series(0.5))
    assert why is not None and "[0, 10] lp/cm" in why and "Nyquist" in why
    assert check(_m("high_contrast_resolution_lp_per_cm", 6.0, "lp/cm"), _series(0.5)) is None
    assert check(_m("mtf10_lp_per_cm", 11.0, "lp/cm"), _series(0.5)) is None
    assert check(_m("mtf50_lp_per_cm", 6.0, "lp/cm"), _series(0.5)) is None
    assert check(_m("mtf10_lp_per_cm", 0.0, "lp/cm"), _series(0.5)) is not None
    assert check(_m("high_contrast_resolution_lp_per_cm", 0.0, "lp/cm"), _series(0.5)) is None
    # the NPS is 2-D: its radial frequencies reach √2 times the Nyquist frequency
    assert check(_m("nps_peak_frequency_per_mm", 1.2, "1/mm"), _series(0.5)) is None
    assert check(_m("nps_peak_frequency_per_mm", 1.5, "1/mm"), _series(0.5)) is not None


def test_percentages_of_non_negative_quantities() -> None:
    assert check(_m("activity_concentration_bias_percent", -100.5, "%")) is not None
    assert check(_m("activity_concentration_bias_percent", -12.0, "%")) is None
    assert check(_m("scatter_fraction_percent", 101.0, "%")) is not None
    assert check(_m("true_rate_kcps", -1.0, "kcps")) is not None


def test_no_bound_entries_never_refuse_and_other_cases_are_left_alone() -> None:
    assert check(_m("distance_accuracy_mm", -40.0, "mm")) is None
    assert check(_m("length_error_mm", 12.0, "mm")) is None
    assert check(_m("fwhm_mm", float("nan"), "mm")) is None  # not a number: nothing to judge
    assert check(_m("fwhm_mm", -1.0, "cm")) is None  # another quantity under the same name
    assert check(_m("no_such_measurement", -1.0, "mm")) is None


def _result(*ms: Measurement) -> Result:
    return Result(analysis="ct.catphan", standard="x", series_instance_uid="1.2",
                  device=DeviceIdentity(), acquired_at=None, measurements=list(ms))


def test_enforce_refuses_in_place_with_one_warning() -> None:
    bad = _m("bar_modulation", 1.90, "1", lp_per_cm=5)
    good = _m("bar_modulation", 0.4, "1", lp_per_cm=4)
    r = _result(good, bad)
    refused = enforce_physical_ranges(r)
    assert len(refused) == 1
    assert bad.status == "refused" and math.isnan(bad.value) and bad.note == refused[0]
    assert good.status == "info" and good.value == 0.4
    assert len(r.warnings) == 1 and "refused as physically impossible" in r.warnings[0]
    assert r.to_dict()["measurements"][1]["value"] is None
    # applying it again changes nothing (the refused value stays refused, no new warning)
    assert enforce_physical_ranges(r) == [] and len(r.warnings) == 1


def test_the_shared_result_path_applies_the_ranges() -> None:
    """Every result leaves ``scanbench.api`` through one function, which refuses
    physically impossible values, with the series for the Nyquist bound."""
    from scanbench import api

    r = _result(_m("high_contrast_resolution_lp_per_cm", 11.0, "lp/cm"),
                _m("noise_hu", 12.0, "HU"))
    out = api._leaving(r, _series(0.5))
    assert out.get("high_contrast_resolution_lp_per_cm").status == "refused"
    assert out.get("noise_hu").status == "info"


def test_a_real_analysis_through_the_shared_path(tmp_path: Path) -> None:
    """A virtual PET IQ scan through ``analyze_paths``: every value physically possible,
    nothing refused; its estimated ratio is reported with its uncertainty."""
    from scanbench.api import analyze_paths
    from scanbench.simulate.pet import simulate_iq

    simulate_iq(tmp_path / "iq", voxel_mm=4.0, activity_ratio=8.0, seed=1)
    report = analyze_paths([tmp_path / "iq"], params={"activity_ratio": 8})
    assert not report.failures and len(report.results) == 1
    r = report.results[0]
    assert not [m.note for m in r.measurements if m.status == "refused"]
    with pytest.raises(KeyError):
        r.get("no_such_measurement")
    assert r.get("activity_ratio_estimated").uncertainty


def test_the_ranges_page_lists_every_entry() -> None:
    """docs/physical-ranges.md shows users the table; it must not fall behind it."""
    page = (SRC.parent.parent / "docs" / "physical-ranges.md").read_text(encoding="utf-8")
    missing = [name for name in RANGES if f"| `{name}` |" not in page]
    assert not missing, missing

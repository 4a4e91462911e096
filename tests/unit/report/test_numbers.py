"""The report's one number format: digits from the uncertainty, no negative zero, no
exponent for ordinary magnitudes (issue 11: `t > 2.935199468866706`, `6.771e-04 %`,
`-0.00 mm` were shown)."""

from __future__ import annotations

import math

import pytest

from scanbench.report.numbers import format_number, format_uncertainty, format_with_unit


@pytest.mark.parametrize(("value", "text"), [
    (2.935199468866706, "2.935"),  # a threshold in a title: 4 significant digits
    (6.771e-04, "0.0006771"),  # an ordinary small percentage: no exponent
    (0.7634, "0.7634"), (54.236, "54.24"), (5312.456, "5312"), (123456.0, "123456"),
    (10.0, "10"), (0.5, "0.5"), (0.0, "0"), (-12.5, "-12.5"),
    (-0.0, "0"), (-1e-12, "-1 × 10⁻¹²"),
    (2.5e-5, "2.5 × 10⁻⁵"), (3.2e7, "3.2 × 10⁷"),
    (None, "—"), (math.nan, "n/a"), (math.inf, "∞"), (-math.inf, "−∞"),
])
def test_format_number_without_uncertainty(value: float | None, text: str) -> None:
    assert format_number(value) == text


@pytest.mark.parametrize(("value", "unc", "text"), [
    (12.3456, 0.0712, "12.346"),  # uncertainty to 2 digits (0.071): value to 3 decimals
    (0.91234, 0.0137, "0.912"),
    (2034.567, 12.5, "2035"),
    (-0.0004, 0.01, "0.000"),  # rounds to zero: no sign
    (-0.004, 0.0004, "-0.00400"),  # 0.00040: five decimals
    (98.3, math.nan, "98.3"),  # an unusable uncertainty is ignored
    (98.3, 0.0, "98.3"),
])
def test_format_number_takes_its_digits_from_the_uncertainty(value: float, unc: float,
                                                              text: str) -> None:
    assert format_number(value, unc) == text


@pytest.mark.parametrize(("value", "decimals", "text"), [
    (-0.001, 2, "0.00"), (-0.0049, 2, "0.00"), (-0.006, 2, "-0.01"), (3.0, 2, "3.00"),
    (148.27, 1, "148.3"), (-0.04, 1, "0.0"),
])
def test_fixed_decimals_never_give_a_negative_zero(value: float, decimals: int,
                                                   text: str) -> None:
    assert format_number(value, decimals=decimals) == text


def test_uncertainty_and_unit() -> None:
    assert format_uncertainty(0.0137) == "0.014" and format_uncertainty(None) == "—"
    assert format_uncertainty(12.5) == "12"
    assert format_with_unit(12.3456, "%", 0.0712) == "12.346 ± 0.071 %"
    assert format_with_unit(0.5, "1") == "0.5"  # dimensionless: no unit shown
    assert format_with_unit(None, "mm") == "— mm"

"""One number format for everything a report shows: tables, figure titles and labels.

Rules (the usual metrology convention, JCGM 100:2008 "Guide to the expression of
uncertainty in measurement", section 7.2.6: give the uncertainty with at most two
significant digits and the value to the same decimal place):

- with an uncertainty: the uncertainty keeps two significant digits and the value is
  rounded to the uncertainty's last digit;
- without one: ``digits`` significant digits (4 by default), trailing zeros after the
  decimal point dropped;
- never a negative zero (``-0.00`` is shown as ``0.00``);
- no exponent for ordinary magnitudes (1e-4 ≤ |v| < 1e7); outside that range the
  exponent is written as ``× 10ⁿ``, never ``e-04``;
- a fixed number of decimals on request (``decimals=``), for quantities read to a
  known resolution;
- '—' for a missing value, 'n/a' for NaN, '∞' for infinities.
"""

from __future__ import annotations

import math

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
# Beyond these magnitudes a plain decimal is hard to read; inside them it is never written
# with an exponent.
_SMALLEST_PLAIN = 1e-4
_LARGEST_PLAIN = 1e7


def _no_negative_zero(text: str) -> str:
    """'-0', '-0.00', '−0.0' → without the sign: a rounded zero has no sign."""
    body = text.lstrip("-−")
    if body != text and body.replace("0", "").replace(".", "") == "":
        return body
    return text


def _decimals_for(value: float, sig: int) -> int:
    """Decimal places that give ``value`` ``sig`` significant digits (≥ 0)."""
    mag = math.floor(math.log10(abs(value)))
    return max(0, sig - 1 - mag)


def _plain(value: float, decimals: int, *, strip: bool) -> str:
    text = f"{value:.{decimals}f}"
    if strip and "." in text:
        text = text.rstrip("0").rstrip(".")
    return _no_negative_zero(text)


def _scientific(value: float, sig: int) -> str:
    mantissa, exponent = f"{value:.{max(sig - 1, 0)}e}".split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa} × 10{str(int(exponent)).translate(_SUPERSCRIPT)}"


def format_number(value: float | None, uncertainty: float | None = None, *,
                  digits: int = 4, decimals: int | None = None) -> str:
    """``value`` as text by the module's rules; with ``uncertainty`` rounded to match it.
    ``decimals`` fixes the decimal places instead (a quantity read to a known
    resolution, e.g. widths in mm to 0.01 mm), still without a negative zero.

    >>> format_number(2.935199468866706)
    '2.935'
    >>> format_number(12.3456, 0.0712)
    '12.346'
    >>> format_number(-0.001, digits=2)
    '-0.001'
    >>> format_number(-0.0004, 0.01)
    '0.000'
    """
    if value is None:
        return "—"
    v = float(value)
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if decimals is not None and abs(v) < _LARGEST_PLAIN:
        return _plain(v, max(0, decimals), strip=False)
    if v == 0 and (uncertainty is None or not _usable(uncertainty)):
        return "0"
    if uncertainty is not None and _usable(uncertainty):
        u = abs(float(uncertainty))
        if _SMALLEST_PLAIN <= u < _LARGEST_PLAIN:
            return _plain(v, _decimals_for(u, 2), strip=False)
    if not _SMALLEST_PLAIN <= abs(v) < _LARGEST_PLAIN:
        return _scientific(v, digits)
    return _plain(v, _decimals_for(v, digits), strip=True)


def format_uncertainty(uncertainty: float | None) -> str:
    """An uncertainty with two significant digits ('—' when there is none)."""
    if uncertainty is None or not math.isfinite(float(uncertainty)):
        return "—"
    u = abs(float(uncertainty))
    if u == 0:
        return "0"
    if not _SMALLEST_PLAIN <= u < _LARGEST_PLAIN:
        return _scientific(u, 2)
    return _plain(u, _decimals_for(u, 2), strip=False)


def format_with_unit(value: float | None, unit: str, uncertainty: float | None = None, *,
                     digits: int = 4) -> str:
    """'2.94 mm', '12.35 ± 0.07 %': value (and uncertainty) with its unit."""
    text = format_number(value, uncertainty, digits=digits)
    if uncertainty is not None and _usable(uncertainty) and value is not None \
            and math.isfinite(float(value)):
        text += f" ± {format_uncertainty(uncertainty)}"
    return f"{text} {unit}".rstrip() if unit and unit != "1" else text


def _usable(u: float) -> bool:
    f = float(u)
    return math.isfinite(f) and f > 0


__all__ = ["format_number", "format_uncertainty", "format_with_unit"]

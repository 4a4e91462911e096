"""Convert SR numeric values to scanbench units by their UCUM unit code.

SR NUM items carry a Measurement Units Code Sequence in UCUM (PS3.16 CID 82,
scheme ``UCUM``). Vendors sometimes write non-UCUM spellings (``mGycm``);
known ones are accepted with a note, unknown units are left to the caller
to report.
"""

from __future__ import annotations

#: target unit → {unit code as written → factor to the target}
FACTORS: dict[str, dict[str, float]] = {
    "mGy": {"mGy": 1.0, "Gy": 1000.0, "uGy": 1e-3, "cGy": 10.0},
    "mGy.cm": {"mGy.cm": 1.0, "mGycm": 1.0, "mGy*cm": 1.0, "Gy.cm": 1000.0, "mGy.mm": 0.1,
               "uGy.cm": 1e-3, "cGy.cm": 10.0},
    "mm": {"mm": 1.0, "cm": 10.0, "m": 1000.0, "um": 1e-3},
    "s": {"s": 1.0, "ms": 1e-3, "min": 60.0},
    "kV": {"kV": 1.0, "V": 1e-3},
    "mA": {"mA": 1.0, "A": 1000.0, "uA": 1e-3},
    "MBq": {"MBq": 1.0, "Bq": 1e-6, "kBq": 1e-3, "GBq": 1000.0, "mCi": 37.0, "uCi": 0.037},
    "mSv": {"mSv": 1.0, "Sv": 1000.0, "uSv": 1e-3},
    "kg": {"kg": 1.0, "g": 1e-3, "[lb_av]": 0.45359237},
    "m": {"m": 1.0, "cm": 0.01, "mm": 1e-3},
    "a": {"a": 1.0, "mo": 1 / 12, "wk": 7 / 365.25, "d": 1 / 365.25},
}
#: Spellings accepted though they are not UCUM, with the note to give.
NON_UCUM = {"mGycm": "mGy.cm", "mGy*cm": "mGy.cm"}


def convert(value: float, unit: str | None, target: str) -> tuple[float | None, str | None]:
    """``value`` in ``target`` units, and a note when the unit was odd (None if fine).

    A missing unit is taken as the target unit, with a note; an unknown unit
    gives (None, note).
    """
    table = FACTORS[target]
    if unit is None:
        return value, f"no unit given; taken as {target}"
    factor = table.get(unit)
    if factor is None:
        return None, f"unit '{unit}' cannot be converted to {target}; value ignored"
    note = (f"non-UCUM unit '{unit}' read as {NON_UCUM[unit]}" if unit in NON_UCUM else None)
    return value * factor, note

"""Tolerant access to DICOM header values.

Every getter here returns ``None`` for a missing, empty or malformed value and
never raises: header facts are optional (DICOM PS3.5 §7.4, Type 2/3 attributes
may be absent or empty), and a damaged value must not stop a series from being
read. Date and time parsing follows the DA, TM and DT value representations of
PS3.5 §6.2, including the ACR-NEMA forms (``YYYY.MM.DD``, ``HH:MM:SS``) that
older scanners still write.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import struct
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

_DT_RE = re.compile(
    r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?([+-]\d{4})?$")
_TM_RE = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?$")


#: Value representations restricted to the default (ASCII) repertoire, PS3.5 §6.2:
#: their raw bytes can be read without the Specific Character Set.
_ASCII_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI"})
_UNPACK = {"US": "H", "UL": "I", "SS": "h", "SL": "i", "FL": "f", "FD": "d"}


@lru_cache(maxsize=512)
def _tag_and_vr(keyword: str) -> tuple[BaseTag | None, str | None]:
    number = tag_for_keyword(keyword)
    if number is None:
        return None, None
    tag = BaseTag(number)  # the key type of Dataset._dict (an int, equal and hashed alike)
    try:
        return tag, dictionary_VR(tag)
    except KeyError:
        return tag, None


def _fast(ds: Dataset, keyword: str) -> tuple[bool, Any]:
    """Read a still-raw element's bytes directly (pydicom's conversion is the slow part
    of reading a series); (False, None) when the general path is needed."""
    tag, vr = _tag_and_vr(keyword)
    if tag is None:
        return False, None
    elem = ds._dict.get(tag)
    if elem is None:
        return True, None
    if not isinstance(elem, RawDataElement) or elem.value is None:
        return False, None
    if elem.VR is not None and vr != elem.VR:
        return False, None  # explicit VR disagrees with the dictionary: let pydicom decide
    data = elem.value
    if vr in _ASCII_VRS:
        s = data.decode("ascii", "replace").strip(" \x00")
        if not s:
            return True, None
        parts = [p.strip(" \x00") for p in s.split("\\")]
        return True, parts[0] if len(parts) == 1 else parts
    code = _UNPACK.get(vr or "")
    if code is not None:
        size = struct.calcsize(code)
        if not data or len(data) % size:
            return False, None
        order = "<" if elem.is_little_endian else ">"
        values = struct.unpack(f"{order}{len(data) // size}{code}", data)
        return True, values[0] if len(values) == 1 else list(values)
    return False, None


def has(ds: Dataset, keyword: str) -> bool:
    """``keyword in ds`` without pydicom's per-call keyword-to-tag conversion (same answer:
    whether the data set holds the element, whatever its value)."""
    tag, _ = _tag_and_vr(keyword)
    return tag is not None and tag in ds._dict


def raw(ds: Dataset | None, keyword: str) -> Any:
    """The value of ``keyword`` in ``ds``, or None if absent, empty or unreadable."""
    if ds is None:
        return None
    try:
        done, value = _fast(ds, keyword)
        if not done:
            value = ds.get(keyword)
    except Exception:  # pydicom converts lazily; a damaged value raises here
        return None
    if value is None:
        return None
    if isinstance(value, str | bytes) and not value.strip():
        return None
    return value


def text(ds: Dataset | None, keyword: str) -> str | None:
    """A string value; multi-valued elements are joined with the DICOM backslash."""
    value = raw(ds, keyword)
    if value is None:
        return None
    try:
        if isinstance(value, bytes):
            out = value.decode("ascii", "replace")
        elif isinstance(value, Sequence) and not isinstance(value, str):
            out = "\\".join(str(v) for v in value)
        else:
            out = str(value)
    except Exception:
        return None
    out = out.strip().strip("\x00").strip()
    return out or None


def texts(ds: Dataset | None, keyword: str) -> tuple[str, ...]:
    """All values of a multi-valued string element (e.g. CorrectedImage) as a tuple."""
    value = text(ds, keyword)
    if value is None:
        return ()
    return tuple(v.strip() for v in value.split("\\") if v.strip())


def number(ds: Dataset | None, keyword: str) -> float | None:
    """The first value of a numeric element (DS, IS, FD, US...) as a finite float."""
    values = numbers(ds, keyword)
    return values[0] if values else None


def numbers(ds: Dataset | None, keyword: str) -> tuple[float, ...] | None:
    """All values of a numeric element as finite floats, or None if any is unusable."""
    value = raw(ds, keyword)
    if value is None:
        return None
    try:
        if isinstance(value, str | bytes):
            parts: list[Any] = [p for p in str(value if isinstance(value, str) else
                                                value.decode("ascii", "replace")).split("\\")]
        elif isinstance(value, Sequence):
            parts = list(value)
        else:
            parts = [value]
        out = tuple(float(p) for p in parts)
    except Exception:
        return None
    if not out or not all(math.isfinite(v) for v in out):
        return None
    return out


def integer(ds: Dataset | None, keyword: str) -> int | None:
    """An integer value (IS, US, UL...), or None."""
    value = number(ds, keyword)
    if value is None or value != int(value):
        return None
    return int(value)


def item(ds: Dataset | None, keyword: str, index: int = 0) -> Dataset | None:
    """Item ``index`` of a sequence element, or None."""
    value = raw(ds, keyword)
    try:
        if value is not None and len(value) > index and isinstance(value[index], Dataset):
            return value[index]
    except Exception:
        return None
    return None


def timezone(ds: Dataset | None) -> dt.tzinfo | None:
    """Timezone Offset From UTC (0008,0201), ``&ZZXX`` (PS3.3 C.12.1.1.8), or None."""
    value = text(ds, "TimezoneOffsetFromUTC")
    return _offset(value) if value else None


def _offset(value: str) -> dt.tzinfo | None:
    m = re.fullmatch(r"([+-])(\d{2})(\d{2})", value.strip())
    if not m:
        return None
    hours, minutes = int(m.group(2)), int(m.group(3))
    if hours > 14 or minutes > 59:
        return None
    delta = dt.timedelta(hours=hours, minutes=minutes)
    return dt.timezone(-delta if m.group(1) == "-" else delta)


def parse_date(value: str | None) -> dt.date | None:
    """A DA value ``YYYYMMDD`` (or ACR-NEMA ``YYYY.MM.DD``)."""
    if not value:
        return None
    s = str(value).strip().replace(".", "").replace("-", "")
    if len(s) != 8 or not s.isdigit():
        return None
    try:
        return dt.date(int(s[:4]), int(s[4:6]), int(s[6:8]))
    except ValueError:
        return None


def parse_time(value: str | None) -> dt.time | None:
    """A TM value ``HH[MM[SS[.FFFFFF]]]`` (or ACR-NEMA ``HH:MM:SS.frac``)."""
    if not value:
        return None
    s = str(value).strip().replace(":", "")
    m = _TM_RE.match(s)
    if not m:
        return None
    hh, mm, ss, frac = m.groups()
    try:
        sec = int(ss or 0)
        return dt.time(int(hh), int(mm or 0), min(sec, 59),  # leap second 60 → 59
                       int((frac or "0").ljust(6, "0")))
    except ValueError:
        return None


def parse_datetime(value: str | None) -> dt.datetime | None:
    """A DT value ``YYYY[MM[DD[HH[MM[SS[.F]]]]]][&ZZXX]``; aware if it carries an offset."""
    if not value:
        return None
    m = _DT_RE.match(str(value).strip())
    if not m:
        return None
    y, mo, d, hh, mi, ss, frac, off = m.groups()
    try:
        out = dt.datetime(int(y), int(mo or 1), int(d or 1), int(hh or 0), int(mi or 0),
                          min(int(ss or 0), 59), int((frac or "0").ljust(6, "0")))
    except ValueError:
        return None
    tz = _offset(off) if off else None
    return out.replace(tzinfo=tz) if tz else out


def combine(date_value: str | None, time_value: str | None) -> dt.datetime | None:
    """A naive datetime from a DA and a TM value; None unless both parse."""
    d, t = parse_date(date_value), parse_time(time_value)
    if d is None or t is None:
        return None
    return dt.datetime.combine(d, t)


def localize(value: dt.datetime | None, tz: dt.tzinfo | None) -> dt.datetime | None:
    """Apply the series' timezone rule: aware in ``tz`` when the header gives one, else naive.

    A DT that carries its own offset is converted to ``tz``; without a header
    offset every time is kept as naive local clock time, so that times of one
    series can always be subtracted from each other.
    """
    if value is None:
        return None
    try:
        if tz is None:
            return value.replace(tzinfo=None)
        if value.tzinfo is None:
            return value.replace(tzinfo=tz)
        return value.astimezone(tz)
    except (OverflowError, ValueError):
        return None

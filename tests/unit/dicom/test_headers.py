"""DA / TM / DT parsing (PS3.5 §6.2) and tolerant header access."""

from __future__ import annotations

import datetime as dt

import pytest
from pydicom.dataset import Dataset

from scanbench.dicom import headers as h


@pytest.mark.parametrize(("value", "expected"), [
    ("20220310", dt.date(2022, 3, 10)),
    ("2022.03.10", dt.date(2022, 3, 10)),  # ACR-NEMA
    ("20221310", None), ("2022031", None), ("", None), (None, None),
])
def test_parse_date(value, expected):
    assert h.parse_date(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("133155", dt.time(13, 31, 55)),
    ("133155.5", dt.time(13, 31, 55, 500000)),
    ("13:31:55.25", dt.time(13, 31, 55, 250000)),  # ACR-NEMA
    ("1331", dt.time(13, 31)), ("13", dt.time(13)),
    ("235960", dt.time(23, 59, 59)),  # leap second
    ("256000", None), ("ab", None),
])
def test_parse_time(value, expected):
    assert h.parse_time(value) == expected


def test_parse_datetime_with_and_without_offset():
    assert h.parse_datetime("20220310124100.00") == dt.datetime(2022, 3, 10, 12, 41)
    aware = h.parse_datetime("20220310124100.000000-0500")
    assert aware.utcoffset() == dt.timedelta(hours=-5)
    assert h.parse_datetime("2022") == dt.datetime(2022, 1, 1)
    assert h.parse_datetime("20220310124100+2500") == dt.datetime(2022, 3, 10, 12, 41)
    assert h.parse_datetime("garbage") is None


def test_localize_follows_the_series_timezone_rule():
    tz = dt.timezone(dt.timedelta(hours=8))
    naive = dt.datetime(2024, 1, 1, 9)
    own = dt.datetime(2024, 1, 1, 1, tzinfo=dt.UTC)
    assert h.localize(naive, tz) == dt.datetime(2024, 1, 1, 9, tzinfo=tz)
    assert h.localize(own, tz) == dt.datetime(2024, 1, 1, 9, tzinfo=tz)
    assert h.localize(own, None) == dt.datetime(2024, 1, 1, 1)  # no header offset: naive
    assert h.localize(None, tz) is None


def test_getters_never_raise():
    ds = Dataset()
    ds.Manufacturer = "  "
    ds.SoftwareVersions = ["A", "B"]
    ds.PixelSpacing = [0.5, 0.5]
    ds.TimezoneOffsetFromUTC = "+0800"
    assert h.text(ds, "Manufacturer") is None
    assert h.text(ds, "SoftwareVersions") == "A\\B"
    assert h.numbers(ds, "PixelSpacing") == (0.5, 0.5)
    assert h.number(ds, "SliceThickness") is None
    assert h.integer(ds, "Rows") is None
    assert h.item(ds, "RadiopharmaceuticalInformationSequence") is None
    assert h.timezone(ds) == dt.timezone(dt.timedelta(hours=8))
    assert h.text(None, "Manufacturer") is None

"""Lifecycle CSV import: rows to reliability events, and row-by-row errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from scanbench.errors import InputError
from scanbench.evaluation.lifecycle import read_lifecycle_csv
from scanbench.evaluation.reliability import device_reliability

GOOD = """device,kind,start,end,note,cost,currency
MR-1,Install,2026-01-01T00:00,,delivered,,
MR-1,acceptance,2026-01-02T00:00,,,,
MR-1,downtime,2026-01-10T00:00,2026-01-10T10:00,"gradient amp, replaced",1200.50,EUR
MR-1,maintenance,2026-01-20T00:00,2026-01-20T04:00,PM visit,,
MR-1,failure,2026-01-25T00:00,2026-01-25T20:00,coldhead,300,EUR
MR-1,upgrade,2026-01-26T00:00,,VA50,,
"""


def test_import_maps_kinds_and_feeds_reliability(tmp_path: Path) -> None:
    p = tmp_path / "life.csv"
    p.write_text(GOOD)
    imp = read_lifecycle_csv(p)
    kinds = [e.kind for e in imp.events]
    assert kinds == ["installation", "acceptance", "downtime_start", "downtime_end",
                     "downtime_start", "downtime_end", "downtime_start", "downtime_end",
                     "software_change"]
    assert [e.planned for e in imp.events if e.kind == "downtime_start"] == [
        False, True, False]
    assert imp.events[2].note == "gradient amp, replaced"
    assert [(c.amount, c.currency, c.kind) for c in imp.costs] == [
        (1200.5, "EUR", "unplanned_downtime"), (300.0, "EUR", "unplanned_downtime")]
    r = device_reliability("MR-1", "X", imp.events, dt.datetime(2026, 1, 2),
                           dt.datetime(2026, 2, 1))
    # by hand: 30 days = 720 h in service; down 10 + 4 + 20 = 34 h; 2 failures
    assert r.failures == 2 and r.mttr_h == pytest.approx(15.0)
    assert r.mtbf_h == pytest.approx((720 - 34) / 2)
    assert r.uptime_pct == pytest.approx(100 * (720 - 30) / 720)


def test_errors_name_file_line_and_field(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_text("device,kind,start,end,cost,currency\n"
                 "MR-1,installation,2026-01-01T00:00,,,\n"
                 "MR-1,explosion,2026-01-02T00:00,,,\n"
                 ",acceptance,yesterday,,,\n"
                 "MR-1,downtime,2026-01-03T00:00,2026-01-02T00:00,,\n"
                 "MR-1,repair,2026-01-04T00:00+01:00,,-5,eur\n")
    with pytest.raises(InputError) as ei:
        read_lifecycle_csv(p)
    msg = str(ei.value)
    for s in (f"{p}:3: field 'kind': unknown kind 'explosion'",
              f"{p}:4: field 'device': empty", f"{p}:4: field 'start': 'yesterday'",
              f"{p}:5: field 'end'", f"{p}:6: field 'start': has UTC offset",
              f"{p}:6: field 'cost'", f"{p}:6: field 'currency'"):
        assert s in msg, s
    assert "Traceback" not in msg


def test_unknown_column_refused(tmp_path: Path) -> None:
    p = tmp_path / "h.csv"
    p.write_text("device,kind,strat\nMR-1,installation,2026-01-01\n")
    with pytest.raises(InputError, match=r"unknown column 'strat'.*missing column 'start'"):
        read_lifecycle_csv(p)

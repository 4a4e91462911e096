"""Magnet telemetry: boil-off on constructed series with hand-computed rates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from scanbench.errors import InputError
from scanbench.evaluation.telemetry import (
    TelemetrySample,
    boil_off,
    compare_boil_off,
    read_telemetry_csv,
    series,
)

T0 = dt.datetime(2026, 1, 1)


def _conventional() -> list[TelemetrySample]:
    # 0.5 %/day, refill from 75 % to 90 % on day 10, one spurious reading on day 15
    out = []
    for d in range(21):
        level = 80.0 - 0.5 * d if d < 10 else 90.0 - 0.5 * (d - 10)
        if d == 15:
            level = 60.0
        out.append(TelemetrySample("MR-A", T0 + dt.timedelta(days=d), level))
    return out


def _sealed() -> list[TelemetrySample]:
    noise = [0.0, 0.1, -0.1, 0.0, -0.1, 0.1]  # gauge readout noise, no trend
    return [TelemetrySample("MR-S", T0 + dt.timedelta(days=d), 100.0 + noise[d % 6])
            for d in range(24)]


def test_boil_off_rate_refill_and_litres() -> None:
    r = boil_off(_conventional(), "MR-A", dewar_l=1500.0)
    assert r.refills == (T0 + dt.timedelta(days=10),)
    assert [s.points for s in r.segments] == [10, 11]
    assert r.rate_pct_per_day == pytest.approx(0.5)  # the outlier does not move it
    assert r.rate_l_per_day == pytest.approx(7.5)  # 0.5 % of 1500 L
    assert r.consistent_with_zero is False
    assert r.points == 11 and r.window_start == T0 + dt.timedelta(days=10)


def test_sealed_magnet_consistent_with_zero_and_comparison() -> None:
    s = boil_off(_sealed(), "MR-S", dewar_l=7.0)
    assert s.refills == () and s.consistent_with_zero is True
    assert s.rate_pct_per_day is not None and abs(s.rate_pct_per_day) < 0.01
    c = compare_boil_off(boil_off(_conventional(), "MR-A"), s)
    assert c.different is True
    assert c.difference_pct_per_day == pytest.approx(0.5 - s.rate_pct_per_day)


def test_too_few_points_gives_no_rate() -> None:
    r = boil_off(_conventional()[:3], "MR-A")
    assert r.rate_pct_per_day is None and "too few" in r.notes[-1]


def test_window_limits_the_fit() -> None:
    r = boil_off(_conventional(), "MR-A", window_days=5)
    assert r.points == 6 and r.window_start == T0 + dt.timedelta(days=15)


def test_csv_read_and_errors(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("device,time,helium_level_pct,pressure_kpa\n"
                 "MR-A,2026-01-02T00:00,79.5,\nMR-A,2026-01-01T00:00,80,3.1\n")
    got = read_telemetry_csv(p)
    assert [s.helium_level_pct for s in got] == [80.0, 79.5]
    assert got[0].pressure_kpa == 3.1 and got[1].pressure_kpa is None
    pressure = series(got, "MR-A", "pressure_kpa")
    assert pressure.values == (3.1,) and pressure.unit == "kPa"
    with pytest.raises(InputError, match="unknown telemetry channel"):
        series(got, "MR-A", "helium")
    p.write_text("device,time,helium_level_pct\nMR-A,soon,80\nMR-A,2026-01-01,120\n")
    with pytest.raises(InputError) as ei:
        read_telemetry_csv(p)
    assert f"{p}:2: field 'time'" in str(ei.value)
    assert f"{p}:3: field 'helium_level_pct': 120.0 % is outside" in str(ei.value)
    p.write_text("device,time,helium\n")
    with pytest.raises(InputError, match="unknown column 'helium'"):
        read_telemetry_csv(p)

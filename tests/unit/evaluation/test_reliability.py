"""Reliability metrics (evaluation/reliability.py) against values computed by hand on
constructed lifecycle logs, and bad logs refused with a message naming the event."""

from __future__ import annotations

import datetime as dt

import pytest

from scanbench.errors import InputError
from scanbench.evaluation.reliability import (
    EventKind,
    LifecycleEvent,
    StaffedHours,
    device_reliability,
    model_reliability,
)

UTC = dt.UTC
P0 = dt.datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday
P1 = dt.datetime(2026, 2, 1, tzinfo=UTC)  # January: 744 h, 22 weekdays


def _t(day: int, hour: int = 0, month: int = 1, year: int = 2026) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=UTC)


def _ev(i: str, dev: str, time: dt.datetime, kind: EventKind, **kw: object
        ) -> LifecycleEvent:
    return LifecycleEvent(i, dev, time, kind, **kw)  # type: ignore[arg-type]


LOG_A = [
    _ev("a1", "A", _t(1, 0, 11, 2025), "installation"),
    _ev("a2", "A", _t(1, 0, 12, 2025), "acceptance"),
    _ev("a3", "A", _t(5, 10), "downtime_start"),  # Monday: fault, 24 h
    _ev("a4", "A", _t(6, 10), "downtime_end", ends="a3"),
    _ev("a5", "A", _t(10, 8), "downtime_start", planned=True),  # Saturday maintenance, 4 h
    _ev("a6", "A", _t(10, 12), "downtime_end"),
    _ev("a7", "A", _t(12, 9), "unplanned_service"),  # fixed without taking it down
    _ev("a8", "A", _t(20, 14), "downtime_start"),  # Tuesday: fault, 6 h
    _ev("a9", "A", _t(20, 19), "part_replacement"),
    _ev("a10", "A", _t(20, 20), "downtime_end"),
]
LOG_B = [
    _ev("b1", "B", _t(15), "installation"),
    _ev("b2", "B", _t(16), "acceptance"),
    _ev("b3", "B", _t(25), "downtime_start"),  # never closed: down to the end, 168 h
]


def test_device_metrics_by_hand() -> None:
    r = device_reliability("A", "Scanner X", LOG_A + LOG_B, P0, P1)
    assert r.in_service_h == 744.0
    assert (r.unplanned_downtime_h, r.planned_downtime_h, r.up_h) == (30.0, 4.0, 710.0)
    assert (r.failures, r.repairs, r.repair_h, r.unplanned_services) == (2, 2, 30.0, 1)
    assert r.mtbf_h == pytest.approx(355.0)  # 710 h up / 2 failures
    assert r.mttr_h == pytest.approx(15.0)  # (24 + 6) h / 2 repairs
    assert r.availability_pct == pytest.approx(100 * 355 / 370)  # 95.95 %
    assert r.uptime_pct == pytest.approx(100 * (744 - 30) / 744)  # planned 4 h not counted
    assert r.event_counts["part_replacement"] == 1 and r.event_counts["downtime_start"] == 3
    assert [d.repair_h for d in r.downtimes] == [24.0, 4.0, 6.0]


def test_uptime_within_staffed_weekday_hours_by_hand() -> None:
    staffed = StaffedHours.weekdays(dt.time(8), dt.time(18))
    r = device_reliability("A", "Scanner X", LOG_A, P0, P1, staffed)
    assert r.staffed_h == 220.0  # 22 weekdays × 10 h
    # Mon 5th 10-18 (8 h) + Tue 6th 8-10 (2 h) + Tue 20th 14-18 (4 h); the Saturday
    # maintenance lies outside staffed hours and is planned anyway
    assert r.unplanned_downtime_staffed_h == 14.0
    assert r.uptime_pct == pytest.approx(100 * 206 / 220)  # 93.64 %
    assert r.mtbf_h == pytest.approx(355.0)  # MTBF and MTTR stay on calendar hours


def test_unterminated_downtime_and_model_pooling_by_hand() -> None:
    b = device_reliability("B", "Scanner X", LOG_B, P0, P1)
    assert b.in_service_h == 384.0  # accepted on the 16th
    assert (b.unplanned_downtime_h, b.up_h, b.failures, b.repairs) == (168.0, 216.0, 1, 0)
    assert b.mtbf_h == 216.0 and b.mttr_h is None and b.availability_pct is None
    assert b.uptime_pct == pytest.approx(100 * 216 / 384)
    assert any("b3" in n and "no end" in n for n in b.notes)
    assert b.downtimes[0].end_event is None and b.downtimes[0].repair_h is None
    a = device_reliability("A", "Scanner X", LOG_A, P0, P1)
    c = device_reliability("C", "Scanner Y", [_ev("c1", "C", _t(1, 0, 6, 2025),
                                                  "installation"),
                                              _ev("c2", "C", _t(11), "decommissioning")],
                           P0, P1)
    [x, y] = model_reliability([a, b, c])
    assert (x.model, x.devices) == ("Scanner X", ("A", "B"))
    assert (x.in_service_h, x.up_h, x.failures, x.repairs) == (1128.0, 926.0, 3, 2)
    assert x.mtbf_h == pytest.approx(926 / 3)
    assert x.mttr_h == pytest.approx(15.0)
    assert x.availability_pct == pytest.approx(100 * (926 / 3) / (926 / 3 + 15))
    assert x.uptime_pct == pytest.approx(100 * (1128 - 198) / 1128)  # pooled, not averaged
    assert any(n.startswith("B: downtime b3") for n in x.notes)
    assert (y.in_service_h, y.failures, y.mtbf_h, y.uptime_pct) == (240.0, 0, None, 100.0)
    assert any("MTBF not defined" in n for n in y.notes)


def test_repair_across_the_period_end_counts_whole_in_mttr() -> None:
    log = [_ev("d1", "D", _t(31, 20), "downtime_start"),
           _ev("d2", "D", _t(1, 8, 2), "downtime_end")]  # 12 h, 4 of them in January
    r = device_reliability("D", "M", log, P0, P1)
    assert (r.unplanned_downtime_h, r.repair_h, r.mttr_h) == (4.0, 12.0, 12.0)
    assert any("no installation" in n for n in r.notes)
    nxt = device_reliability("D", "M", log, P1, dt.datetime(2026, 3, 1, tzinfo=UTC))
    assert (nxt.unplanned_downtime_h, nxt.failures) == (8.0, 0)  # January's failure


def test_staffed_hours_on_a_daylight_saving_day() -> None:
    berlin = StaffedHours.around_the_clock("Europe/Berlin")
    start = dt.datetime(2026, 3, 28, 23, tzinfo=UTC)  # 00:00 on the 29th in Berlin
    assert berlin.hours(start, start + dt.timedelta(hours=23)) == pytest.approx(23.0)
    assert berlin.hours(start, start + dt.timedelta(days=2)) == pytest.approx(48.0)


@pytest.mark.parametrize(("log", "pattern"), [
    ([_ev("e1", "A", _t(5), "downtime_start"),
      _ev("e2", "A", _t(4), "downtime_end", ends="e1")],
     r"event e2 \(downtime_end of A at 2026-01-04.*\) ends before its start event e1"),
    ([_ev("e2", "A", _t(4), "downtime_end")],
     r"event e2 \(downtime_end .*\) closes no open downtime"),
    ([_ev("e1", "A", _t(5), "downtime_start"), _ev("e3", "A", _t(6), "downtime_start"),
      _ev("e2", "A", _t(7), "downtime_end")],
     r"event e3 .* starts while the downtime event e1 .* is still open: overlapping"),
    ([_ev("e0", "A", _t(3), "installation"), _ev("e1", "A", _t(2), "software_change")],
     r"event e1 \(software_change .*\) is before the installation \(e0"),
    ([_ev("e0", "A", _t(3), "decommissioning"), _ev("e1", "A", _t(4), "relocation")],
     r"event e1 .* is after the decommissioning \(e0"),
    ([_ev("e1", "A", dt.datetime(2026, 1, 5), "downtime_start")],
     r"event e1 .* timezone-aware and naive times are mixed"),
    ([_ev("e1", "A", _t(5), "repair")],  # type: ignore[arg-type]
     r"event e1 .* unknown event kind"),
])
def test_bad_logs_refused_naming_the_event(log: list[LifecycleEvent], pattern: str) -> None:
    with pytest.raises(InputError, match=pattern) as err:
        device_reliability("A", "M", log, P0, P1)
    assert err.value.where == "A"


def test_naive_local_times_throughout() -> None:
    log = [LifecycleEvent("n1", "N", dt.datetime(2026, 1, 5, 17), "downtime_start"),
           LifecycleEvent("n2", "N", dt.datetime(2026, 1, 6, 9), "downtime_end")]
    r = device_reliability("N", "M", log, dt.datetime(2026, 1, 1), dt.datetime(2026, 2, 1),
                           StaffedHours.weekdays(dt.time(8), dt.time(18)))
    # 16 h down, of them Mon 17-18 and Tue 8-9 staffed: 2 h
    assert (r.unplanned_downtime_h, r.unplanned_downtime_staffed_h, r.staffed_h) == (
        16.0, 2.0, 220.0)
    assert r.uptime_pct == pytest.approx(100 * 218 / 220)

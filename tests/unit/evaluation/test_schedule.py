"""QC schedules and compliance (evaluation/schedule.py) on constructed histories: on
time, overdue, failed then fixed, a device with no spec, a spec changed mid-period,
acceptance, calendar slots and bad input. Counts are worked out by hand in comments
(January 2026 starts on a Thursday and has 22 weekdays)."""

from __future__ import annotations

import datetime as dt

import pytest

from scanbench.errors import InputError
from scanbench.evaluation.reliability import LifecycleEvent
from scanbench.evaluation.schedule import (
    RequiredTest,
    ScheduleSpec,
    TestRecord,
    compliance,
    due_list,
    next_slot,
    slot_start,
)

UTC = dt.UTC
DAILY = "pet.daily_qc"
WATER = "ct.water"
IQ = "pet.nema_nu2_2018.image_quality"


def _t(month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=UTC)


SPEC = ScheduleSpec("site-qc", "1", _t(1, 1), (
    RequiredTest(DAILY, "daily", weekdays=(0, 1, 2, 3, 4), source="site QC manual"),
    RequiredTest(WATER, "monthly"),
    RequiredTest(DAILY, "after_service"),
    RequiredTest(IQ, "acceptance"),
))


def _weekday_dailies(first: int, last: int, skip: tuple[int, ...] = ()) -> list[TestRecord]:
    return [TestRecord(_t(1, d, 8), DAILY, True, f"d{d}") for d in range(first, last + 1)
            if _t(1, d).weekday() < 5 and d not in skip]


def test_everything_on_time() -> None:
    recs = [*_weekday_dailies(1, 31), TestRecord(_t(1, 15, 10), WATER, True)]
    c = compliance("A", [SPEC], recs, [], _t(1, 1), _t(2, 1))
    assert (c.required, c.on_time, c.compliance_pct, c.pending) == (23, 23, 100.0, 0)
    assert not c.missed and not c.follow_ups
    due = due_list("A", [SPEC], recs, [], _t(1, 30, 12))
    state = {(i.test, i.frequency): i.status for i in due.items}
    assert state == {(DAILY, "daily"): "done", (WATER, "monthly"): "done",
                     (DAILY, "after_service"): "not_applicable",
                     (IQ, "acceptance"): "not_applicable"}
    # a Saturday: the daily test is not required, Friday's is the last slot and was done
    assert due_list("A", [SPEC], recs, [], _t(1, 31, 12)).items[0].status == "done"


def test_overdue_since_the_first_missed_deadline() -> None:
    recs = [*_weekday_dailies(1, 9), TestRecord(_t(1, 5, 10), WATER, True)]
    due = due_list("A", [SPEC], recs, [], _t(1, 14, 12))  # Wednesday; Mon 12, Tue 13 missed
    daily = due.items[0]
    assert (daily.status, daily.overdue_since) == ("overdue", _t(1, 13))
    assert daily.due_from == _t(1, 12) and daily.last_done == _t(1, 9, 8)
    assert "2 required occurrence(s) missed" in daily.reason
    assert due.items[1].status == "done"
    # done late on Wednesday: no longer overdue, even though Mon and Tue stay missed
    late = [*recs, TestRecord(_t(1, 14, 9), DAILY, True)]
    assert due_list("A", [SPEC], late, [], _t(1, 14, 12)).items[0].status == "done"
    # Thursday with Wednesday done late: the daily test is only due
    item = due_list("A", [SPEC], late, [], _t(1, 15, 7)).items[0]
    assert (item.status, item.deadline) == ("due", _t(1, 16))
    # Jan 1..13 hold 9 weekday slots judged by 14 Jan 12:00 (7 done); the slot of the
    # 14th and the January water slot are pending
    c = compliance("A", [SPEC], recs, [], _t(1, 1), _t(1, 15), as_of=_t(1, 14, 12))
    assert (c.required, c.on_time, c.pending) == (9, 7, 2)
    assert c.compliance_pct == pytest.approx(100 * 7 / 9)
    assert [o.start for o in c.missed] == [_t(1, 12), _t(1, 13)]


def test_failed_then_fixed() -> None:
    recs = [*_weekday_dailies(1, 2), TestRecord(_t(1, 5, 8), DAILY, False, "fail1"),
            TestRecord(_t(1, 5, 15), DAILY, True, "retest1"),
            TestRecord(_t(1, 5, 9), WATER, True)]
    events = [LifecycleEvent("s1", "A", _t(1, 5, 13), "unplanned_service"),
              LifecycleEvent("x1", "B", _t(1, 5, 9), "unplanned_service")]  # another device
    at_10 = due_list("A", [SPEC], recs, events, _t(1, 5, 10))
    retest = [i for i in at_10.items if i.frequency == "retest"]
    assert [(i.test, i.status, i.due_from, i.deadline) for i in retest] == [
        (DAILY, "due", _t(1, 5, 8), _t(1, 6, 8))]
    assert "re-test due at once" in retest[0].reason
    at_14 = {i.frequency: i for i in due_list("A", [SPEC], recs, events, _t(1, 5, 14)).items}
    assert (at_14["after_service"].status, at_14["after_service"].due_from) == (
        "due", _t(1, 5, 13))
    at_16 = due_list("A", [SPEC], recs, events, _t(1, 5, 16)).items
    assert {i.frequency: i.status for i in at_16} == {
        "daily": "done", "monthly": "done", "after_service": "done",
        "acceptance": "not_applicable"}
    # never re-tested: overdue a day after the failure
    late = due_list("A", [SPEC], recs[:3], events, _t(1, 6, 9))
    assert [(i.status, i.overdue_since) for i in late.items if i.frequency == "retest"] == [
        ("overdue", _t(1, 6, 8))]
    c = compliance("A", [SPEC], recs, events, _t(1, 5), _t(1, 6), as_of=_t(1, 7))
    kinds = {o.kind: o for o in c.occurrences}
    assert kinds["retest"].done_at == _t(1, 5, 15) and kinds["retest"].trigger == "fail1"
    assert kinds["after_service"].done_at == _t(1, 5, 15)
    assert kinds["after_service"].trigger == "s1"
    # the daily slot of the 5th, its re-test and the after-service test: all on time; the
    # water slot started on 1 Jan, before this period
    assert (c.required, c.on_time) == (3, 3)
    [f] = c.follow_ups
    assert (f.failed_at, f.action_event, f.hours_to_action, f.hours_to_pass) == (
        _t(1, 5, 8), "s1", 5.0, 7.0)


def test_failures_before_a_pass_are_one_episode() -> None:
    recs = [TestRecord(_t(1, 5, 8), DAILY, False), TestRecord(_t(1, 5, 15), DAILY, False),
            TestRecord(_t(1, 6, 11), DAILY, True), TestRecord(_t(1, 7, 8), DAILY, False)]
    events = [LifecycleEvent("p1", "A", _t(1, 6, 9), "part_replacement")]
    c = compliance("A", [SPEC], recs, events, _t(1, 1), _t(2, 1), as_of=_t(1, 31))
    first, second = c.follow_ups
    assert (first.hours_to_action, first.hours_to_pass) == (25.0, 27.0)
    assert (second.failed_at, second.action_at, second.passed_at) == (_t(1, 7, 8), None, None)
    retests = [o for o in c.occurrences if o.kind == "retest"]
    # each failure makes a re-test due; the failed re-test at 15:00 counts as done
    assert [(o.start, o.on_time) for o in retests] == [
        (_t(1, 5, 8), True), (_t(1, 5, 15), True), (_t(1, 7, 8), False)]


def test_device_with_no_spec() -> None:
    recs = [TestRecord(_t(1, 5, 8), DAILY, False), TestRecord(_t(1, 5, 9), DAILY, True)]
    due = due_list("A", [], recs, [], _t(1, 5, 12))
    assert due.items == () and due.spec is None and "no evaluation specification" in \
        due.notes[0]
    c = compliance("A", [], recs, [], _t(1, 1), _t(2, 1))
    assert (c.required, c.compliance_pct) == (0, None)
    assert "not defined" in c.notes[0]
    assert c.follow_ups[0].hours_to_pass == 1.0  # follow-up needs no spec
    # a spec that starts later: nothing due before it
    later = ScheduleSpec("site-qc", "1", _t(3, 1), SPEC.tests)
    assert due_list("A", [later], recs, [], _t(2, 1)).items == ()


def test_spec_changed_mid_period() -> None:
    v1 = ScheduleSpec("mr", "1", _t(1, 1), (RequiredTest("mr.acr", "monthly"),))
    v2 = ScheduleSpec("mr", "2", _t(2, 16), (RequiredTest("mr.acr", "weekly"),))
    days = [(1, 10), (2, 3), (2, 17), (2, 24), (3, 3), (3, 10), (3, 25)]  # week of 16 Mar missed
    recs = [TestRecord(_t(m, d, 9), "mr.acr", True) for m, d in days]
    c = compliance("M", [v2, v1], recs, [], _t(1, 1), _t(4, 1))
    # v1 governs the January and February slots (they start before 16 Feb); v2 the weeks
    # from Monday 16 Feb: 16, 23 Feb, 2, 9, 16, 23 Mar judged, 30 Mar pending (ends 6 Apr)
    assert [(o.frequency, o.start.date().isoformat(), o.spec, o.on_time)
            for o in c.occurrences] == [
        ("monthly", "2026-01-01", "mr 1", True), ("monthly", "2026-02-01", "mr 1", True),
        ("weekly", "2026-02-16", "mr 2", True), ("weekly", "2026-02-23", "mr 2", True),
        ("weekly", "2026-03-02", "mr 2", True), ("weekly", "2026-03-09", "mr 2", True),
        ("weekly", "2026-03-16", "mr 2", False), ("weekly", "2026-03-23", "mr 2", True)]
    assert (c.required, c.on_time, c.pending, c.compliance_pct) == (8, 7, 1, 87.5)
    due = due_list("M", [v1, v2], recs, [], _t(3, 20))  # Friday: still inside its week
    assert due.spec == "mr 2" and due.items[0].status == "due"
    assert due.items[0].deadline == _t(3, 23)
    due = due_list("M", [v1, v2], recs, [], _t(3, 24))  # the week of the 16th went by
    assert (due.items[0].status, due.items[0].overdue_since) == ("overdue", _t(3, 23))
    assert due_list("M", [v1, v2], recs, [], _t(3, 26)).items[0].status == "done"
    with pytest.raises(InputError, match="specs mr 1 and mr 2 both start"):
        compliance("M", [v1, ScheduleSpec("mr", "2", _t(1, 1), ())], recs, [], _t(1, 1),
                   _t(4, 1))


def test_acceptance_and_service_life() -> None:
    events = [LifecycleEvent("i1", "A", _t(1, 3), "installation"),
              LifecycleEvent("a1", "A", _t(1, 21), "acceptance"),
              LifecycleEvent("d1", "A", _t(1, 29), "decommissioning")]
    recs = [TestRecord(_t(1, 20, 10), IQ, True), *_weekday_dailies(21, 28)]
    c = compliance("A", [SPEC], recs, events, _t(1, 1), _t(2, 1), as_of=_t(3, 1))
    kinds = [(o.kind, o.test, o.start.date().day, o.on_time) for o in c.occurrences]
    # acceptance due at installation, done within 30 days; dailies only from the
    # acceptance (21st) to the decommissioning (29th): 21, 22, 23, 26, 27, 28; no water
    # slot (January's started before the device was in use)
    assert kinds[0] == ("acceptance", IQ, 3, True)
    assert [k[2] for k in kinds[1:]] == [21, 22, 23, 26, 27, 28]
    assert c.compliance_pct == 100.0


def test_calendar_slots() -> None:
    sun = dt.datetime(2026, 5, 17, 15, tzinfo=UTC)
    assert slot_start(sun, "weekly") == dt.datetime(2026, 5, 11, tzinfo=UTC)
    assert slot_start(sun, "quarterly") == dt.datetime(2026, 4, 1, tzinfo=UTC)
    assert slot_start(sun, "annual") == dt.datetime(2026, 1, 1, tzinfo=UTC)
    assert next_slot(dt.datetime(2026, 10, 1, tzinfo=UTC), "quarterly") == \
        dt.datetime(2027, 1, 1, tzinfo=UTC)
    assert next_slot(dt.datetime(2026, 12, 1, tzinfo=UTC), "monthly") == \
        dt.datetime(2027, 1, 1, tzinfo=UTC)
    # 23:30 UTC on 31 March is 01:30 on 1 April in Berlin: April's slot there
    s = slot_start(dt.datetime(2026, 3, 31, 23, 30, tzinfo=UTC), "monthly", "Europe/Berlin")
    assert s.astimezone(UTC) == dt.datetime(2026, 3, 31, 22, tzinfo=UTC)


def test_bad_input_named() -> None:
    with pytest.raises(InputError, match="test x: unknown frequency 'hourly'") as err:
        ScheduleSpec("s", "1", _t(1, 1), (RequiredTest("x", "hourly"),))  # type: ignore[arg-type]
    assert err.value.where == "s 1"
    naive = TestRecord(dt.datetime(2026, 1, 5, 8), DAILY, True, "r9")
    with pytest.raises(InputError, match="result r9 at 2026-01-05T08:00:00: timezone-aware"):
        compliance("A", [SPEC], [naive], [], _t(1, 1), _t(2, 1))
    with pytest.raises(InputError, match="period ends"):
        compliance("A", [SPEC], [], [], _t(2, 1), _t(1, 1))


def test_naive_local_times() -> None:
    spec = ScheduleSpec("s", "1", dt.datetime(2026, 1, 1), (RequiredTest(WATER, "weekly"),))
    recs = [TestRecord(dt.datetime(2026, 1, 7, 9), WATER, True)]  # week of Mon 5 Jan
    c = compliance("A", [spec], recs, [], dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 19))
    # weeks from 5 and 12 Jan judged (the week of 29 Dec started before the spec)
    assert [(o.start.day, o.on_time) for o in c.occurrences] == [(5, True), (12, False)]
    item = due_list("A", [spec], recs, [], dt.datetime(2026, 1, 20, 9)).items[0]
    assert (item.status, item.overdue_since) == ("overdue", dt.datetime(2026, 1, 19))

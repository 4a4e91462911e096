"""Lifecycle events stored through evaluation/records.py: reliability per device and per
model against values computed by hand on a constructed event log (issue 13 "Must
show"), validation messages, CSV import idempotence and row-named errors, and the audit
entries every change writes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from life_world import CLI, Fleet, make_fleet
from sqlalchemy import func, select

from scanbench.errors import InputError
from scanbench.evaluation import records
from scanbench.store import Database
from scanbench.store import models as m
from scanbench.web import audit

P0, P1 = dt.date(2026, 1, 1), dt.date(2026, 2, 1)  # January 2026: 744 h, 22 weekdays


def _t(day: int, hour: int = 0, month: int = 1, year: int = 2026) -> dt.datetime:
    return dt.datetime(year, month, day, hour)


def _store_log(s: object, ids: dict[str, int]) -> None:
    """Device ct1: installed 1 Nov 2025, accepted 1 Dec 2025; a 24 h failure (Mon 5 Jan
    10:00 to Tue 6 Jan 10:00), 4 h planned maintenance (Sat 10 Jan 08-12), a repair
    without downtime, a 6 h failure (Tue 20 Jan 14-20) with a part replaced.
    Device ct2 (same model): installed 15 Jan, accepted 16 Jan, down from 25 Jan on."""
    add = records.add_event
    a, b = ids["ct1"], ids["ct2"]
    add(s, CLI, a, "installation", _t(1, 0, 11, 2025))  # type: ignore[arg-type]
    add(s, CLI, a, "acceptance", _t(1, 0, 12, 2025))  # type: ignore[arg-type]
    add(s, CLI, a, "downtime_start", _t(5, 10), end_at=_t(6, 10))  # type: ignore[arg-type]
    add(s, CLI, a, "downtime_start", _t(10, 8), end_at=_t(10, 12),  # type: ignore[arg-type]
        planned=True)
    add(s, CLI, a, "unplanned_service", _t(12, 9))  # type: ignore[arg-type]
    add(s, CLI, a, "downtime_start", _t(20, 14))  # type: ignore[arg-type]
    add(s, CLI, a, "part_replacement", _t(20, 19), cost=500.0,  # type: ignore[arg-type]
        currency="EUR")
    add(s, CLI, a, "downtime_end", _t(20, 20), new_baseline=True)  # type: ignore[arg-type]
    add(s, CLI, b, "installation", _t(15))  # type: ignore[arg-type]
    add(s, CLI, b, "acceptance", _t(16))  # type: ignore[arg-type]
    add(s, CLI, b, "downtime_start", _t(25))  # type: ignore[arg-type]


def test_reliability_from_the_stored_log_by_hand(database_url: str) -> None:
    db = Database(url=database_url)
    try:
        ids = make_fleet(db)
        with db.sessions() as s:
            audit.commit_with_retry(s, lambda s: _store_log(s, ids))
        with db.sessions() as s:
            r = records.device_reliability(s, ids["ct1"], P0, P1)
            assert r.in_service_h == 744.0
            assert (r.unplanned_downtime_h, r.planned_downtime_h, r.up_h) == (30.0, 4.0, 710.0)
            assert (r.failures, r.repairs, r.repair_h, r.unplanned_services) == (2, 2, 30.0, 1)
            assert r.mtbf_h == pytest.approx(355.0)  # 710 h up / 2 failures
            assert r.mttr_h == pytest.approx(15.0)  # (24 + 6) h / 2 repairs
            assert r.availability_pct == pytest.approx(100 * 355 / 370)  # 95.95 %
            assert r.uptime_pct == pytest.approx(100 * 714 / 744)  # planned 4 h not counted
            # staffed weekdays 08-18: Mon 5th 10-18 (8 h) + Tue 6th 8-10 (2 h) + Tue 20th
            # 14-18 (4 h) unplanned in 22 x 10 h staffed
            audit.commit_with_retry(s, lambda s: records.set_staffed_hours(
                s, CLI, ids["ct1"], {"weekdays": [0, 1, 2, 3, 4], "start": "08:00",
                                     "end": "18:00"}))
            r = records.device_reliability(s, ids["ct1"], P0, P1)
            assert (r.staffed_h, r.unplanned_downtime_staffed_h) == (220.0, 14.0)
            assert r.uptime_pct == pytest.approx(100 * 206 / 220)  # 93.64 %
            assert r.mtbf_h == pytest.approx(355.0)  # calendar hours
            # per model: ct2 in service 384 h (from the 16th), down 168 h, never repaired
            audit.commit_with_retry(s, lambda s: records.set_staffed_hours(
                s, CLI, ids["ct1"], {}))
            [x] = records.model_reliability(s, [ids["ct1"], ids["ct2"]], P0, P1)
            assert x.model == "GE Revolution"
            assert (x.in_service_h, x.up_h, x.failures, x.repairs) == (1128.0, 926.0, 3, 2)
            assert x.mtbf_h == pytest.approx(926 / 3)
            assert x.mttr_h == pytest.approx(15.0)
            assert x.uptime_pct == pytest.approx(100 * (1128 - 198) / 1128)  # pooled
            view = records.reliability_view(x)
            assert "IEC 60050-192" in view["definitions"]["mtbf_h"]
            assert any("no end" in n for n in view["notes"])
            # the repair's end was marked as a new baseline; the pair is linked
            end = s.scalars(select(m.LifecycleEvent).where(
                m.LifecycleEvent.device_id == ids["ct1"],
                m.LifecycleEvent.kind == "downtime_end").order_by(
                m.LifecycleEvent.occurred_at)).all()
            assert [e.new_baseline for e in end] == [False, False, True]
            # every event and the two staffed-hours changes are in the audit log
            n = s.scalar(select(func.count()).select_from(m.AuditEntry).where(
                m.AuditEntry.entity == "lifecycle_event"))
            assert n == 13  # 11 calls, two of them a downtime with its end (2 rows)
            staffed = s.scalars(select(m.AuditEntry).where(
                m.AuditEntry.action == "device.staffed_hours").order_by(
                m.AuditEntry.id)).all()
            assert staffed[1].before == {"staffed_hours": {
                "weekdays": [0, 1, 2, 3, 4], "start": "08:00", "end": "18:00"}}
            assert staffed[1].after == {"staffed_hours": {}}
            assert audit.verify(s).ok
    finally:
        db.close()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kind": "explosion"}, r"kind: unknown lifecycle event kind 'explosion'"),
    ({"kind": "downtime_start", "end_at": _t(4)}, r"end: 2026-01-04T00:00:00 is not after"),
    ({"kind": "installation", "end_at": _t(6)}, r"end: only a downtime has an end"),
    ({"kind": "downtime_end"}, r"closes no open downtime .*an end without a start"),
    ({"kind": "acceptance", "occurred_at": dt.datetime(2027, 6, 1)}, r"in the future"),
    ({"kind": "acceptance", "planned": True}, r"planned: only a downtime can be planned"),
    ({"kind": "installation", "new_baseline": True}, r"new_baseline: a installation"),
    ({"kind": "part_replacement", "cost": 10.0}, r"currency None is not an ISO 4217"),
    ({"kind": "part_replacement", "cost": -1.0, "currency": "EUR"}, r"not an amount"),
])
def test_bad_events_refused_with_a_message(fleet: Fleet, kwargs: dict[str, object],
                                           message: str) -> None:
    args = {"occurred_at": _t(5), **kwargs}
    with fleet.db.sessions() as s, pytest.raises(InputError, match=message):
        records.add_event(s, CLI, fleet.ids["ct1"], now=dt.datetime(2026, 12, 6, tzinfo=dt.UTC),
                          **args)  # type: ignore[arg-type]


def test_log_rules_of_reliability_refuse_overlaps_and_events_before_installation(
        fleet: Fleet) -> None:
    ct = fleet.ids["ct1"]
    with fleet.db.sessions() as s:
        records.add_event(s, CLI, ct, "installation", _t(3))
        records.add_event(s, CLI, ct, "downtime_start", _t(5))
        with pytest.raises(InputError, match=r"still open: overlapping downtimes"):
            records.add_event(s, CLI, ct, "downtime_start", _t(6), end_at=_t(7))
        s.rollback()
        records.add_event(s, CLI, ct, "installation", _t(3))
        with pytest.raises(InputError, match=r"CT one\): event #\d+ \(software_change .*"
                           r"before the installation \(#\d+"):
            records.add_event(s, CLI, ct, "software_change", _t(2))


def test_future_is_judged_on_the_sites_clock(fleet: Fleet) -> None:
    now = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)  # 12:00 in Paris (CEST)
    with fleet.db.sessions() as s:
        records.add_event(s, CLI, fleet.ids["ct1"], "acceptance",
                          dt.datetime(2026, 6, 1, 11, 30), now=now)
        with pytest.raises(InputError, match="in the future"):
            records.add_event(s, CLI, fleet.ids["ct1"], "planned_service",
                              dt.datetime(2026, 6, 1, 12, 30), now=now)
        # an aware time is stored as the site's local clock time
        [sw] = records.add_event(s, CLI, fleet.ids["ct1"], "software_change",
                                 dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC), now=now)
        assert sw.occurred_at == dt.datetime(2026, 6, 1, 11, 0)


LIFE_CSV = """id,device,kind,start,end,note,cost,currency
e1,CT-1,installation,2025-11-01T00:00,,,,
e2,ct one,acceptance,2025-12-01T00:00,,,,
e3,CT-1,failure,2026-01-05T10:00,2026-01-06T10:00,tube arc,1200,EUR
e4,{ct2},maintenance,2026-01-10T08:00,2026-01-10T12:00,PM,,
"""


def test_csv_import_twice_adds_nothing_the_second_time(fleet: Fleet, tmp_path: Path) -> None:
    p = tmp_path / "life.csv"
    p.write_text(LIFE_CSV.format(ct2=fleet.ids["ct2"]))
    with fleet.db.sessions() as s:
        first = audit.commit_with_retry(s, lambda s: records.import_lifecycle_csv(s, CLI, p))
        assert (first.added, first.skipped) == (6, 0)  # two downtimes give start + end
        second = audit.commit_with_retry(s, lambda s: records.import_lifecycle_csv(s, CLI, p))
        assert (second.added, second.skipped) == (0, 4)
        rows = records.device_events(s, fleet.ids["ct1"])
        assert [(e.kind, e.external_id) for e in rows] == [
            ("installation", "e1"), ("acceptance", "e2"), ("downtime_start", "e3"),
            ("downtime_end", "e3/end")]
        assert (rows[2].cost, rows[2].currency, rows[2].source) == (1200.0, "EUR", "csv")
        assert rows[3].details["ends"] == rows[2].id
        ct2 = records.device_events(s, fleet.ids["ct2"])
        assert [(e.kind, e.planned) for e in ct2] == [("downtime_start", True),
                                                       ("downtime_end", False)]
        n = s.scalar(select(func.count()).select_from(m.AuditEntry).where(
            m.AuditEntry.action == "lifecycle.import"))
        assert n == 6


def test_csv_import_names_the_bad_rows_and_stores_nothing(fleet: Fleet,
                                                          tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_text("device,kind,start\nCT-1,installation,2025-11-01T00:00\n"
                 "CT-9,acceptance,2025-12-01T00:00\nCT-9,repair,2025-12-02T00:00\n"
                 "CT-B,repair,2025-12-02T00:00\n")
    with fleet.db.sessions() as s:
        allowed = [fleet.ids[k] for k in ("ct1", "ct2", "mr_free", "mr_conv")]
        with pytest.raises(InputError) as err:
            records.import_lifecycle_csv(s, CLI, p, allowed=allowed)
        msg = str(err.value)
        assert f"{p}:3,4: field 'device': no device 'CT-9'" in msg
        # a device of a site the caller may not change is as unknown as a missing one
        assert f"{p}:5: field 'device': no device 'CT-B'" in msg
        s.rollback()
        assert s.scalar(select(func.count()).select_from(m.LifecycleEvent)) == 0
    p.write_text("device,kind,start\nCT-1,installation,2026-01-03T00:00\n"
                 "CT-1,relocation,2026-01-02T00:00\n")
    with fleet.db.sessions() as s, pytest.raises(
            InputError, match=r"bad.csv: device \d+ \(CT one\): event bad.csv:3 \(relocation "
            r"of \d+ at 2026-01-02T00:00:00\) is before the installation \(bad.csv:2 at"):
        records.import_lifecycle_csv(s, CLI, p)
    p.write_text("device,kind,start\nCT,installation,2026-01-03T00:00\n")
    with fleet.db.sessions() as s:
        s.get_one(m.Device, fleet.ids["ct2"]).display_name = "CT"
        s.get_one(m.Device, fleet.ids["ct1"]).display_name = "ct"
        with pytest.raises(InputError, match=r":2: field 'device': device 'CT' is ambiguous"):
            records.import_lifecycle_csv(s, CLI, p)


def test_deleting_an_entered_downtime_takes_its_end_and_is_audited(fleet: Fleet) -> None:
    with fleet.db.sessions() as s:
        start, _end = records.add_event(s, CLI, fleet.ids["ct1"], "downtime_start", _t(5),
                                        end_at=_t(6))
        records.delete_event(s, CLI, start.id)
        assert records.device_events(s, fleet.ids["ct1"]) == []
        gone = s.scalars(select(m.AuditEntry).where(
            m.AuditEntry.action == "lifecycle.delete")).all()
        assert sorted(e.before["kind"] for e in gone if e.before) == [
            "downtime_end", "downtime_start"]
        hdr = m.LifecycleEvent(device_id=fleet.ids["ct1"], kind="software_change",
                               occurred_at=_t(7), source="headers")
        s.add(hdr)
        s.flush()
        with pytest.raises(InputError, match=r"read from DICOM headers"):
            records.delete_event(s, CLI, hdr.id)


def test_staffed_hours_are_checked(fleet: Fleet) -> None:
    with fleet.db.sessions() as s:
        for bad, msg in (({"weekdays": [7], "start": "08:00", "end": "18:00"}, "weekdays"),
                         ({"start": "8h", "end": "18:00"}, "start '8h' is not a time"),
                         ({"start": "08:00"}, "end missing"),
                         ({"days": [1]}, "unknown field"),
                         ({"start": "08:00", "end": "18:00", "timezone": "Mars/Olympus"},
                          "unknown time zone")):
            with pytest.raises(InputError, match=msg):
                records.set_staffed_hours(s, CLI, fleet.ids["ct1"], bad)
        d = records.set_staffed_hours(s, CLI, fleet.ids["ct1"],
                                      {"start": "20:00", "end": "06:00"})
        # a night shift: 10 h a day, every day
        staffed = records.staffed_hours(d)
        assert staffed.hours(_t(5), _t(6)) == pytest.approx(10.0)

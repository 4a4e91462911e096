"""Magnet telemetry and costs stored through evaluation/records.py: a helium-free magnet's
zero boil-off beside a conventional magnet's (issue 13 §4), idempotent imports, cost per
exam from stored costs and exams computed by hand (§5), and the audit entries."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from life_world import CLI, Fleet
from sqlalchemy import func, select

from scanbench.errors import InputError
from scanbench.evaluation import records
from scanbench.store import models as m
from scanbench.web import audit

T0 = dt.datetime(2026, 3, 1, 6, 0)
# A small alternating reading error (±0.02 %), the same for both magnets.
NOISE = (0.02, -0.02, 0.01, -0.01, 0.0)


def _telemetry_csv(path: Path) -> None:
    """60 daily readings of each magnet: the sealed one stays at 99.9 %; the conventional
    one loses 0.25 %/day of its helium, with a refill from 70 % to 95 % on day 20."""
    lines = ["device,time,helium_level_pct,pressure_kpa,coldhead_temp_k"]
    for day in range(60):
        t = (T0 + dt.timedelta(days=day)).isoformat()
        e = NOISE[day % len(NOISE)]
        lines.append(f"HF-1,{t},{99.9 + e:.3f},,3.9")
        level = (75.0 - 0.25 * day) if day < 20 else (95.0 - 0.25 * (day - 20))
        lines.append(f"Conventional 1.5T,{t},{level + e:.3f},{3.5 + e:.3f},4.1")
    path.write_text("\n".join(lines) + "\n")


def test_helium_free_and_conventional_magnets_side_by_side(fleet: Fleet,
                                                           tmp_path: Path) -> None:
    p = tmp_path / "magnets.csv"
    _telemetry_csv(p)
    free, conv = fleet.ids["mr_free"], fleet.ids["mr_conv"]
    with fleet.db.sessions() as s:
        got = audit.commit_with_retry(s, lambda s: records.import_telemetry_csv(s, CLI, p))
        # sealed: 60 helium + 60 cold-head; conventional: 60 each of three channels
        assert (got.added, got.skipped) == (300, 0)
        again = audit.commit_with_retry(s, lambda s: records.import_telemetry_csv(s, CLI, p))
        assert (again.added, again.skipped) == (0, 300)
        assert s.scalar(select(func.count()).select_from(m.TelemetrySample)) == 300
        series = records.channel_series(s, conv, "pressure_kpa")
        assert series.unit == "kPa" and len(series.values) == 60
        assert series.times[0] == T0
        side = records.compare_magnets(s, free, conv, dewar_l={conv: 1500.0})
    a, b = side["a"], side["b"]
    assert a["device"] == "Sealed 1.5T" and a["consistent_with_zero"] is True
    assert abs(a["rate_pct_per_day"]) < 0.005
    # after the refill on day 20, the last 30 days lose 0.25 %/day: 3.75 L/day of 1500 L
    assert b["rate_pct_per_day"] == pytest.approx(0.25, abs=0.005)
    assert b["rate_l_per_day"] == pytest.approx(3.75, abs=0.08)
    assert b["consistent_with_zero"] is False
    assert b["refills"] == [(T0 + dt.timedelta(days=20)).isoformat()]
    assert side["different"] is True
    assert side["difference_pct_per_day"] == pytest.approx(-0.25, abs=0.01)
    with fleet.db.sessions() as s:
        imports = s.scalars(select(m.AuditEntry).where(
            m.AuditEntry.action == "telemetry.add")).all()
        assert sorted(e.details["added"] for e in imports) == [120, 180]  # one per magnet


def test_telemetry_by_program_is_idempotent_and_checked(fleet: Fleet) -> None:
    conv = fleet.ids["mr_conv"]
    readings = [records.Reading("helium_level_pct", T0, 80.0),
                records.Reading("field_drift_ppm_per_h",
                                dt.datetime(2026, 3, 1, 5, 0, tzinfo=dt.UTC), 0.01)]
    with fleet.db.sessions() as s:
        assert records.add_readings(s, CLI, conv, readings).added == 2
        assert records.add_readings(s, CLI, conv, readings).skipped == 2
        # 05:00 UTC is 06:00 in Paris (site A's clock)
        drift = records.channel_series(s, conv, "field_drift_ppm_per_h")
        assert drift.times == (T0,) and drift.unit == "ppm/h"
        with pytest.raises(InputError, match=r"helium_level_pct at 2026-03-01T06:00:00: "
                                             r"stored 80.0 %, given 81.0"):
            records.add_readings(s, CLI, conv, [records.Reading("helium_level_pct", T0, 81.0)])
        with pytest.raises(InputError, match=r"reading 0: channel: unknown 'helium'"):
            records.add_readings(s, CLI, conv, [records.Reading("helium", T0, 1.0)])
        with pytest.raises(InputError, match=r"reading 0: value: 120.0 % helium"):
            records.add_readings(s, CLI, conv,
                                 [records.Reading("helium_level_pct", T0, 120.0)])
        with pytest.raises(InputError, match=r"channel: unknown telemetry channel"):
            records.channel_series(s, conv, "temperature")


def test_telemetry_csv_names_unknown_devices_with_their_lines(fleet: Fleet,
                                                              tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("device,time,helium_level_pct\nHF-1,2026-03-01T00:00,99\n"
                 "HF-2,2026-03-02T00:00,99\nHF-1,2026-03-03T00:00,nine\n")
    with fleet.db.sessions() as s, pytest.raises(InputError,
                                                 match=r"t.csv:4: field 'helium_level_pct'"):
        records.import_telemetry_csv(s, CLI, p)
    p.write_text("device,time,helium_level_pct\nHF-1,2026-03-01T00:00,99\n"
                 "HF-2,2026-03-02T00:00,99\n")
    with fleet.db.sessions() as s, pytest.raises(InputError,
                                                 match=r"t.csv:3: field 'device': no device"):
        records.import_telemetry_csv(s, CLI, p)


def _exams(s: object, device_id: int, days: list[dt.datetime]) -> None:
    for i, t in enumerate(days):
        study = m.Study(study_uid=f"1.9.{device_id}.{i}", study_datetime=t)
        s.add(study)  # type: ignore[attr-defined]
        s.flush()  # type: ignore[attr-defined]
        s.add(m.ExamTiming(study_id=study.id, device_id=device_id,  # type: ignore[attr-defined]
                           started_at=t, ended_at=t + dt.timedelta(minutes=20),
                           duration_s=1200.0))


def test_cost_per_exam_from_stored_costs_and_exams_by_hand(fleet_any_db: Fleet) -> None:
    fleet = fleet_any_db
    ct1, ct2 = fleet.ids["ct1"], fleet.ids["ct2"]
    with fleet.db.sessions() as s:
        def enter(s: object) -> None:
            # 1,461,000 EUR over 10 years (3652.5 days): 400 EUR/day
            records.add_cost(s, CLI, ct1, "acquisition", 1_461_000, "EUR",  # type: ignore[arg-type]
                             dt.date(2025, 6, 1), life_years=10)
            # 73,050 EUR a year: 200 EUR/day
            records.add_cost(s, CLI, ct1, "service_contract", 73_050, "EUR",  # type: ignore[arg-type]
                             dt.date(2026, 1, 1), end_on=dt.date(2027, 1, 1))
            records.add_cost(s, CLI, ct1, "consumable", 1_000, "EUR",  # type: ignore[arg-type]
                             dt.date(2026, 3, 10))
            records.add_cost(s, CLI, ct1, "consumable", 999, "EUR",  # type: ignore[arg-type]
                             dt.date(2026, 4, 1))  # after the period
            records.add_event(s, CLI, ct1, "part_replacement",  # type: ignore[arg-type]
                              dt.datetime(2026, 3, 15, 9), cost=500.0, currency="EUR")
            records.add_cost(s, CLI, ct2, "consumable", 300, "EUR",  # type: ignore[arg-type]
                             dt.date(2026, 3, 3))
        audit.commit_with_retry(s, enter)
        _exams(s, ct1, [dt.datetime(2026, 3, 2, h) for h in (8, 9, 10)]
               + [dt.datetime(2026, 3, 3, h) for h in (8, 9)]
               + [dt.datetime(2026, 2, 28, 8), dt.datetime(2026, 4, 1, 8)])
        _exams(s, ct2, [dt.datetime(2026, 3, 3, 8)])
        s.commit()
        r = records.device_cost_per_exam(s, ct1, dt.date(2026, 3, 1), dt.date(2026, 4, 1))
        assert r.costs_by_kind == pytest.approx({"acquisition": 31 * 400.0,
                                                 "service_contract": 31 * 200.0,
                                                 "consumable": 1000.0, "parts": 500.0})
        assert r.total_cost == pytest.approx(20_100.0)
        assert (r.exams, r.working_days) == (5, 2)
        assert r.cost_per_exam == pytest.approx(4_020.0)
        assert r.exams_per_day == pytest.approx(5 / 31)
        assert r.exams_per_working_day == pytest.approx(2.5)
        [pooled] = records.model_cost_per_exam(s, [ct1, ct2], dt.date(2026, 3, 1),
                                               dt.date(2026, 4, 1))
        assert pooled.name == "GE Revolution" and pooled.exams == 6
        assert pooled.cost_per_exam == pytest.approx(20_400.0 / 6)  # Σ cost / Σ exams
        assert pooled.exams_per_day == pytest.approx(6 / 62)  # per device-day
        view = records.economics_view(r)
        assert "IAS 16" in view["method"] and view["currency"] == "EUR"
        added = s.scalars(select(m.AuditEntry).where(m.AuditEntry.action == "cost.add")).all()
        assert len(added) == 5 and added[0].after is not None
        assert added[0].after["life_years"] == 10


def test_bad_costs_refused(fleet: Fleet) -> None:
    ct1 = fleet.ids["ct1"]
    day = dt.date(2026, 1, 1)
    with fleet.db.sessions() as s:
        for kwargs, msg in (
                ({"kind": "lunch"}, "kind: unknown cost kind 'lunch'"),
                ({"kind": "acquisition"}, "needs a useful life"),
                ({"kind": "acquisition", "life_years": 7, "residual": 2e6},
                 "residual value 2000000.0 EUR must be between"),
                ({"kind": "service_contract"}, "needs an end date"),
                ({"kind": "consumable", "end_on": day}, "only a service contract"),
                ({"kind": "consumable", "currency": "euro"}, "not an ISO 4217 code"),
                ({"kind": "consumable", "amount": float("nan")}, "not an amount"),
                ({"kind": "consumable", "amount": 1e308}, "more than 1e\\+12")):
            args: dict[str, object] = {"amount": 1e6, "currency": "EUR", "start_on": day,
                                       **kwargs}
            with pytest.raises(InputError, match=msg):
                records.add_cost(s, CLI, ct1, **args)  # type: ignore[arg-type]
        records.add_cost(s, CLI, ct1, "consumable", 10, "USD", day)
        records.add_cost(s, CLI, ct1, "consumable", 10, "EUR", day)
        with pytest.raises(InputError, match=r"CT one\): costs in several currencies"):
            records.device_cost_per_exam(s, ct1, day, dt.date(2026, 2, 1))

"""Cost per exam against hand-computed values on constructed costs and exam counts."""

from __future__ import annotations

import datetime as dt

import pytest

from scanbench.clinical.workflow import DeviceDay
from scanbench.errors import InputError
from scanbench.evaluation.economics import (
    Cost,
    cost_per_exam,
    costs_from_lifecycle,
    cryogen_cost,
    exams_by_day,
    model_cost_per_exam,
)
from scanbench.types import DeviceIdentity

P0, P1 = dt.date(2026, 1, 1), dt.date(2026, 4, 1)  # 31 + 28 + 31 = 90 days
COSTS = [
    Cost("CT-1", "acquisition", 1_000_000.0, "EUR", dt.date(2025, 1, 1), life_years=8),
    Cost("CT-1", "service_contract", 73_050.0, "EUR", dt.date(2025, 7, 1),
         until=dt.date(2026, 2, 15)),
    Cost("CT-1", "consumable", 500.0, "EUR", dt.date(2026, 2, 1)),
    Cost("CT-1", "consumable", 700.0, "EUR", dt.date(2026, 4, 1)),  # after the period
    Cost("CT-2", "consumable", 1000.0, "EUR", dt.date(2026, 3, 1)),
]
EXAMS = {P0 + dt.timedelta(days=i): 25 for i in range(60)} | {dt.date(2025, 12, 31): 10}


def test_cost_per_exam_by_hand() -> None:
    r = cost_per_exam("CT-1", COSTS, EXAMS, P0, P1)
    depreciation = 1_000_000.0 / 2922.0 * 90  # 8 × 365.25 days of life, 90 in the period
    contract = 73_050.0 / 365.25 * 45  # 200 per day, 1 Jan to 15 Feb
    assert r.costs_by_kind["acquisition"] == pytest.approx(depreciation)
    assert r.costs_by_kind["service_contract"] == pytest.approx(9000.0)
    assert r.costs_by_kind["consumable"] == pytest.approx(500.0)
    assert r.exams == 1500 and r.working_days == 60
    assert r.exams_per_day == pytest.approx(1500 / 90) and r.exams_per_working_day == 25
    assert r.cost_per_exam == pytest.approx((depreciation + contract + 500.0) / 1500)
    assert r.currency == "EUR"


def test_model_pooled_exam_weighted() -> None:
    r1 = cost_per_exam("CT-1", COSTS, EXAMS, P0, P1)
    r2 = cost_per_exam("CT-2", COSTS, {P0: 500}, P0, P1)
    assert r2.cost_per_exam == pytest.approx(2.0)
    m = model_cost_per_exam("Model X", [r1, r2])
    assert m.exams == 2000 and m.days == 180
    assert m.cost_per_exam == pytest.approx((r1.total_cost + 1000.0) / 2000)
    assert m.cost_per_exam != pytest.approx(((r1.cost_per_exam or 0.0) + 2.0) / 2)  # not a mean


def test_no_exams_and_refusals() -> None:
    assert cost_per_exam("CT-1", COSTS, {}, P0, P1).cost_per_exam is None
    mixed = [*COSTS, Cost("CT-1", "cryogen", 10.0, "USD", dt.date(2026, 1, 5))]
    with pytest.raises(InputError, match="several currencies"):
        cost_per_exam("CT-1", mixed, EXAMS, P0, P1)
    with pytest.raises(InputError, match="useful life"):
        cost_per_exam("X", [Cost("X", "acquisition", 1.0, "EUR", P0)], {}, P0, P1)


def test_exams_from_workflow_days_and_cryogen() -> None:
    dev = DeviceIdentity(serial="CT-1")
    days = [DeviceDay(dev, P0, 12, 300.0, 540.0, []),
            DeviceDay(DeviceIdentity(serial="CT-9"), P0, 7, 0.0, 540.0, [])]
    assert exams_by_day(days, "CT-1") == {P0: 12}
    assert cryogen_cost(7.5, 20.0, 30) == pytest.approx(4500.0)  # 7.5 L/day × 20 × 30 d


def test_whole_life_depreciates_exactly_price_minus_residual() -> None:
    # 7 years = 2556.75 days: a whole-life period must give price − residual, no day lost
    c = Cost("MR-1", "acquisition", 2_556_750.0, "EUR", dt.date(2020, 1, 1),
             life_years=7, residual=100_000.0)
    whole = cost_per_exam("MR-1", [c], {}, dt.date(2019, 1, 1), dt.date(2030, 1, 1))
    assert whole.total_cost == pytest.approx(2_456_750.0)
    first_day = cost_per_exam("MR-1", [c], {}, dt.date(2020, 1, 1), dt.date(2020, 1, 2))
    assert first_day.total_cost == pytest.approx(2_456_750.0 / 2556.75)


def test_lifecycle_costs_become_one_off_costs() -> None:
    from scanbench.evaluation.lifecycle import EventCost

    ev = [EventCost("e1", "CT-1", "part_replacement", dt.datetime(2026, 1, 5), 900.0, "EUR"),
          EventCost("e2", "CT-1", "unplanned_downtime", dt.datetime(2026, 5, 5), 50.0, "EUR")]
    costs = costs_from_lifecycle(ev)
    assert [(c.kind, c.amount) for c in costs] == [("parts", 900.0), ("other", 50.0)]
    assert cost_per_exam("CT-1", costs, {}, P0, P1).costs_by_kind == {"parts": 900.0}

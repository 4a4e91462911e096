"""Cost per exam against hand-computed values on constructed costs and exam counts."""

from __future__ import annotations

import datetime as dt

import pytest

from scanbench.clinical.workflow import DeviceDay
from scanbench.errors import InputError
from scanbench.evaluation.economics import (
    Cost,
    cost_per_exam,
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

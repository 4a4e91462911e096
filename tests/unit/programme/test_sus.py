"""System Usability Scale scoring (Brooke 1996) and its summaries from the store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from scanbench.errors import InputError
from scanbench.programme import sus
from scanbench.store import Database, devices
from scanbench.store import models as m
from scanbench.types import DeviceIdentity
from scanbench.web import audit

CLI = audit.Actor(None, "cli:test")


@pytest.mark.parametrize(("answers", "expected"), [
    ([5, 1, 5, 1, 5, 1, 5, 1, 5, 1], 100.0),   # best answer on every item
    ([1, 5, 1, 5, 1, 5, 1, 5, 1, 5], 0.0),     # worst on every item
    ([3] * 10, 50.0),                          # neutral: 10 x 2 contributions
    # odd items 4,4,5,3,4 -> 3+3+4+2+3 = 15; even items 2,1,2,2,1 -> 3+4+3+3+4 = 17;
    # (15 + 17) x 2.5 = 80
    ([4, 2, 4, 1, 5, 2, 3, 2, 4, 1], 80.0),
])
def test_sus_score_by_brookes_method(answers: list[int], expected: float) -> None:
    """Brooke 1996: odd items contribute answer-1, even items 5-answer, sum x 2.5
    (the four cases worked by hand above; even items scored like odd ones would give
    (15 + 3) x 2.5 = 45 instead of 80 in the last)."""
    assert sus.score(answers) == expected


# The scored questionnaire published with the scale: Brooke's example as printed in
# Tullis T. & Albert B. (2008), Measuring the User Experience, Morgan Kaufmann, Figure 6.8
# ("The System Usability Scale, developed by John Brooke at Digital Equipment
# Corporation and an example of scoring it"). The figure prints each item's score
# contribution, 4 1 1 4 1 2 1 1 4 3, "Total = 22" and "SUS Score = 22 * 2.5 = 55"; the
# marked scale positions follow from the contributions (odd items: contribution + 1,
# even items: 5 - contribution).
BROOKE_EXAMPLE_CONTRIBUTIONS = (4, 1, 1, 4, 1, 2, 1, 1, 4, 3)
BROOKE_EXAMPLE_ANSWERS = [5, 4, 2, 1, 2, 3, 2, 4, 5, 2]


def test_sus_published_worked_example_tullis_albert_figure_6_8() -> None:
    """Brooke's scored example (Tullis & Albert 2008, Figure 6.8): total 22, SUS 55.
    Reversing the odd items instead of the even ones gives 45 on these answers, and
    reversing none (every item answer - 1) gives 50: only Brooke's rule gives 55."""
    a = BROOKE_EXAMPLE_ANSWERS
    assert tuple(a[i] - 1 if i % 2 == 0 else 5 - a[i] for i in range(10)) \
        == BROOKE_EXAMPLE_CONTRIBUTIONS
    assert sum(BROOKE_EXAMPLE_CONTRIBUTIONS) == 22
    assert sus.score(a) == 55.0


@pytest.mark.parametrize(("answers", "message"), [
    ([3] * 9, "need exactly 10 answers"),
    ([3] * 9 + [6], "item 10 must be an integer 1..5"),
    ([0] + [3] * 9, "item 1 must be"),
    ([3, "4"] + [3] * 8, "item 2 must be"),
    ([3, True] + [3] * 8, "item 2 must be"),
])
def test_sus_validation_names_the_item(answers: list[object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        sus.score(answers)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    d = Database(url=f"sqlite:///{tmp_path_factory.mktemp('sus') / 'db.sqlite'}")
    yield d
    d.close()


def test_sus_stored_per_device_role_model_and_year_of_life(db: Database) -> None:
    with db.sessions() as s:
        a = devices.register(s, DeviceIdentity("GE", "Signa", "1", "A", "V1"))
        b = devices.register(s, DeviceIdentity("Siemens", "Vida", "2", "B", "V1"))
        s.add(m.LifecycleEvent(device_id=a.id, kind="installation",
                               occurred_at=dt.datetime(2024, 1, 1), source="user"))
        s.flush()
        at = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
        for ans, role, when in (([4, 2, 4, 1, 5, 2, 3, 2, 4, 1], "technologist", at),
                                ([3] * 10, "technologist", at),
                                ([5, 1, 5, 1, 5, 1, 5, 1, 5, 1], "radiologist", at),
                                ([3] * 10, "technologist", at + dt.timedelta(days=400))):
            sus.add_response(s, CLI, a.id, role, ans, at=when)
        for ans in ([1, 5, 1, 5, 1, 5, 1, 5, 1, 5], [3] * 10):
            sus.add_response(s, CLI, b.id, "technologist", ans, at=at)
        s.commit()
        got = sus.summarise(s, [a.id, b.id])
        assert s.scalar(select(m.AuditEntry.action).where(
            m.AuditEntry.action == "sus.add").limit(1)) == "sus.add"
    rows = {(r["device_id"], r["role"]): r for r in got["per_device_role"]}
    assert rows[(a.id, "technologist")]["mean"] == pytest.approx((80 + 50 + 50) / 3)
    assert rows[(a.id, "radiologist")]["n"] == 1 and rows[(a.id, "radiologist")]["ci_low"] is None
    model = {r["model"]: r for r in got["per_model"]}
    assert model["Siemens Vida"]["mean"] == 25.0
    # t interval of (0, 50): 25 ± 12.706 * 25 = -293 .. 343, cut at the scale's 0 and 100
    assert (model["Siemens Vida"]["ci_low"], model["Siemens Vida"]["ci_high"]) == (0, 100)
    assert "cut at the scale's ends 0 and 100" in model["Siemens Vida"]["ci"]
    tech = rows[(a.id, "technologist")]  # 80, 50, 50: 60 ± 4.303 * 10 = 17 .. 103 -> 100
    assert tech["ci_low"] == pytest.approx(60 - 4.3027 * 10, abs=1e-2)
    assert tech["ci_high"] == 100
    years = [(r["device_id"], r["year_of_life"], r["n"]) for r in got["trend"]]
    assert (a.id, 1, 3) in years and (a.id, 2, 1) in years
    (pair,) = got["model_comparisons"]
    assert pair["models"] == ["GE Signa", "Siemens Vida"] and pair["n"] == [4, 2]
    assert pair["mean_difference"] == pytest.approx(70 - 25)
    cmp = sus.compare_models([80, 50, 100, 50], [0, 50])
    assert cmp["test"].startswith("Mann-Whitney") and cmp["mean_difference"] == 45
    assert cmp["rank_biserial"] > 0


def test_bad_role_and_device(db: Database) -> None:
    with db.sessions() as s, pytest.raises(InputError, match="no device 999"):
        sus.add_response(s, CLI, 999, "technologist", [3] * 10)

"""Training records with expiry and reminders; QC procedure cards from a spec; the
competency quiz marked against its card and recorded per person."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from scanbench.errors import InputError
from scanbench.programme import cards, training
from scanbench.specs import load_spec
from scanbench.store import Database
from scanbench.store import models as m
from scanbench.web import audit, auth

CLI = audit.Actor(None, "cli:test")
KEY = "earl1:pet.nema_nu2_2018.image_quality"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    d = Database(url=f"sqlite:///{tmp_path_factory.mktemp('train') / 'db.sqlite'}")
    yield d
    d.close()


def test_card_carries_the_specs_limits_and_sources() -> None:
    """Every rule of EARL1 on the test's analysis is on the card with its limit and
    source; the printable HTML escapes them and names the standard."""
    c = cards.card(KEY)
    spec = load_spec("earl1")
    rules = [r for r in spec.rules if r.analysis == "pet.nema_nu2_2018.image_quality"]
    assert len(c.limits) == len(rules) > 0
    first = next(lim for lim in c.limits if lim["labels"] == {"sphere_mm": 37}
                 and lim["measurement"] == "rc_mean")
    assert (first["low"], first["high"]) == (0.76, 0.89)
    assert "Table 1" in first["source"] and first["confirmed"]
    assert c.frequency == "annual" and "EARL" in c.frequency_source
    assert "NEMA NU 2-2018" in c.standard and "IEC body phantom" in c.analysis_title
    html = cards.render_html(c)
    assert "0.76..0.89 ratio" in html and "every year" in html and "<script" not in html
    with pytest.raises(InputError, match="has no required test"):
        cards.card("earl1:ct.water")
    with pytest.raises(InputError, match="expected <spec>:<test>"):
        cards.card("earl1")


def test_quiz_is_stable_and_marked_against_the_card() -> None:
    c = cards.card(KEY)
    qs = cards.quiz(c)
    assert qs == cards.quiz(c)  # the same questions and order every time
    assert {"analysis", "frequency", "limit0", "source0"} <= {q["id"] for q in qs}
    limit0 = next(q for q in qs if q["id"] == "limit0")
    assert limit0["choices"][limit0["answer"]] == "0.76 .. 0.89 ratio"
    right = {q["id"]: q["answer"] for q in qs}
    assert cards.mark(c, right)["passed"] and cards.mark(c, right)["score"] == 1.0
    wrong = {q["id"]: (q["answer"] + 1) % len(q["choices"]) for q in qs}
    assert cards.mark(c, wrong)["score"] == 0.0
    with pytest.raises(InputError, match="unknown questions"):
        cards.mark(c, {"nope": 1})


def test_training_expiry_reminders_and_quiz_attempts_recorded(db: Database) -> None:
    with db.sessions() as s:
        u1 = auth.add_user(s, CLI, "tech1", "correct horse battery")
        u2 = auth.add_user(s, CLI, "tech2", "correct horse battery")
        today = dt.date(2026, 12, 1)
        # expired; due in 30 days; fine for a year; renewed (old one expired: no reminder)
        training.add_record(s, CLI, u1.id, "radiation_safety", dt.date(2025, 11, 1),
                            valid_days=365)
        training.add_record(s, CLI, u1.id, "qc_procedure", dt.date(2025, 12, 31),
                            expires_on=dt.date(2026, 12, 31), procedure_key=KEY)
        training.add_record(s, CLI, u2.id, "device_operation", dt.date(2026, 11, 1),
                            valid_days=400)
        training.add_record(s, CLI, u2.id, "radiation_safety", dt.date(2024, 1, 1),
                            valid_days=365)
        training.add_record(s, CLI, u2.id, "radiation_safety", dt.date(2026, 1, 1),
                            valid_days=730)
        due = training.reminders(s, today)
        assert [(r["user"], r["topic"], r["state"], r["days_left"]) for r in due] == [
            ("tech1", "radiation_safety", "expired", -30),
            ("tech1", "qc_procedure", "due soon", 30)]
        with pytest.raises(InputError, match="topic must be one of"):
            training.add_record(s, CLI, u1.id, "cooking", today)
        with pytest.raises(InputError, match="must be after completed_on"):
            training.add_record(s, CLI, u1.id, "qc_procedure", today, expires_on=today)
        qs = cards.quiz(cards.card(KEY))
        fail = training.attempt_quiz(s, CLI, u1.id, KEY, {qs[0]["id"]: qs[0]["answer"]})
        ok = training.attempt_quiz(s, CLI, u1.id, KEY, {q["id"]: q["answer"] for q in qs})
        s.commit()
        assert not fail.passed and fail.score == pytest.approx(1 / len(qs))
        assert ok.passed and ok.pass_mark == cards.PASS_MARK
        comp = training.competency(s, u1.id)
        assert comp["quizzes"][KEY] == {"attempts": 2, "passed": True, "best": 1.0,
                                        "pass_mark": cards.PASS_MARK}
        actions = set(s.scalars(select(m.AuditEntry.action)))
        assert {"training.add", "quiz.attempt"} <= actions

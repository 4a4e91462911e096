"""``scanbench study|sus|training`` on a real SQLite store: training and its reminder,
the procedure card written as HTML, a quiz printed and then marked and recorded, a SUS
answer sheet scored, bad input exit 2 naming the field."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import typer
from sqlalchemy import select
from typer.testing import CliRunner

from scanbench.programme import cards, studies_cli
from scanbench.store import Database, devices
from scanbench.store import models as m
from scanbench.types import DeviceIdentity
from scanbench.web import audit, auth

KEY = "earl1:pet.nema_nu2_2018.image_quality"


def test_training_sus_card_and_quiz_commands(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    db = Database(url=url)
    with db.sessions() as s:
        auth.add_user(s, audit.Actor(None, "cli:test"), "tech", "correct horse battery")
        devices.register(s, DeviceIdentity("GE", "Discovery MI", "77", "PET1", "V1"))
        s.commit()
    db.close()
    app = typer.Typer()
    studies_cli.register(app)
    runner = CliRunner()
    h = ["--database-url", url]
    soon = (dt.date.today() - dt.timedelta(days=300)).isoformat()
    r = runner.invoke(app, ["training", "add", "tech", "qc_procedure", soon,
                            "--valid-days", "330", "--procedure", KEY, *h])
    assert r.exit_code == 0, r.output
    due = json.loads(runner.invoke(app, ["training", "due", "--json", *h]).stdout)
    assert [(d["user"], d["state"], d["days_left"]) for d in due] == [("tech", "due soon", 30)]
    r = runner.invoke(app, ["training", "add", "tech", "cooking", soon, *h])
    assert r.exit_code == 2 and "topic must be one of" in r.output
    card = tmp_path / "card.html"
    assert runner.invoke(app, ["training", "card", KEY, "-o", str(card)]).exit_code == 0
    assert "0.76..0.89 ratio" in card.read_text()
    printed = runner.invoke(app, ["training", "quiz", KEY]).stdout
    assert "[limit0]" in printed and "pass mark 80%" in printed
    qs = cards.quiz(cards.card(KEY))
    right = json.dumps({q["id"]: q["answer"] for q in qs})
    r = runner.invoke(app, ["training", "quiz", KEY, "tech", "--answers", right, *h])
    assert r.exit_code == 0 and "100%: passed" in r.output, r.output
    r = runner.invoke(app, ["training", "quiz", KEY, "tech", "--answers", "{}", *h])
    assert "0%: not passed" in r.output
    r = runner.invoke(app, ["sus", "add", "77", "technologist",
                            *["4", "2", "4", "1", "5", "2", "3", "2", "4", "1"], *h])
    assert r.exit_code == 0 and "SUS score 80" in r.output, r.output
    r = runner.invoke(app, ["sus", "add", "77", "technologist", *["4", "2", "4"], *h])
    assert r.exit_code == 2 and "exactly 10 answers" in r.output
    db = Database(url=url)
    with db.sessions() as s:
        attempts = s.scalars(select(m.QuizAttempt.passed).order_by(m.QuizAttempt.id)).all()
        assert attempts == [True, False]
    db.close()

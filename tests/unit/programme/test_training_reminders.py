"""Training reminders (issue 14 §6) delivered to a real SMTP server (aiosmtpd) and a real
HTTP endpoint (http.server), both on free loopback ports: 30 and 7 days before expiry and
on expiry, once per record, threshold and target however often the pass runs; only to
the targets of the record's site (or of the person's sites, for a training of no
device); an e-mail that could not be sent goes at the next pass; a renewal clears the
reminder; the command sends them too."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from notifykit import Endpoint, MailSink, free_port
from scanbench.evaluation import alerts
from scanbench.evaluation.notify import verify
from scanbench.programme import training
from scanbench.store import Database
from scanbench.store import models as m
from scanbench.web import audit, auth, sites

CLI = audit.Actor(None, "cli:test")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Site A (e-mail and webhook targets) with a device; site B (a webhook target);
    a technologist of site A with a radiation-safety training (no device) expiring on
    2026-12-31 and a device-operation training of site A's device on 2026-12-08."""
    sink, port = MailSink(), free_port()
    smtp = Controller(sink, hostname="127.0.0.1", port=port)
    smtp.start()
    hook = Endpoint(path="")
    db = Database(url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        with db.session() as s:
            a, b = sites.add_site(s, CLI, "Site A"), sites.add_site(s, CLI, "Site B")
            dev = m.Device(identity_key="acme|pet|1", manufacturer="ACME", model="PET-1",
                           serial="1", modality="PT", site_id=a.id, display_name="PET one")
            s.add(dev)
            s.flush()
            user = auth.add_user(s, CLI, "tech_a", "correct horse battery")
            auth.grant(s, CLI, user, a, "technologist")
            alerts.add_target(s, CLI, site_id=a.id, channel="email",
                              address="qc-a@example.org")
            secret = alerts.add_target(s, CLI, site_id=a.id, channel="webhook",
                                       address=hook.url + "/a").secret
            alerts.add_target(s, CLI, site_id=b.id, channel="webhook", address=hook.url + "/b")
            safety = training.add_record(s, CLI, user.id, "radiation_safety",
                                         dt.date(2025, 12, 31), expires_on=dt.date(2026, 12, 31))
            operation = training.add_record(s, CLI, user.id, "device_operation",
                                            dt.date(2025, 12, 8), expires_on=dt.date(2026, 12, 8),
                                            device_id=dev.id, site_id=a.id)
            ids = {"user": user.id, "safety": safety.id, "operation": operation.id}
        yield {"db": db, "sink": sink, "hook": hook, "secret": secret, "ids": ids,
               "smtp": alerts.SmtpServer("127.0.0.1", port, "qc@example.org"),
               "home": tmp_path, "port": port}
    finally:
        db.close()
        hook.close()
        smtp.stop()


def _send(w: dict[str, Any], day: dt.date, smtp: bool = True) -> list[Any]:
    with w["db"].sessions() as s:
        return training.send_reminders(s, day, smtp=w["smtp"] if smtp else None)


def _reminders(w: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(path, record id, threshold) of each webhook body received, checked signed."""
    out = []
    for path, body, header in w["hook"].posts:
        assert path == "/a" and verify(body, w["secret"], header)
        doc = json.loads(body)
        assert doc["type"] == "training_reminder" and doc["version"] == 1
        r = doc["reminder"]
        out.append((path, r["record_id"], r["threshold_days"]))
    return out


def test_reminders_before_and_on_expiry_once_each(world: dict[str, Any]) -> None:
    ids = world["ids"]
    assert training.reminder_due(31) is None
    assert [training.reminder_due(d) for d in (30, 8, 7, 1, 0, -5)] == [30, 30, 7, 7, 0, 0]
    # 2026-11-30: 31 and 8 days left: the device training's 30-day reminder only
    sent = _send(world, dt.date(2026, 11, 30))
    assert [d.state for d in sent] == ["sent", "sent"]
    assert _reminders(world) == [("/a", ids["operation"], 30)]
    # 2026-12-01: the radiation safety training reaches 30 days; the device training
    # (7 days left) its 7-day reminder; the pass run twice sends nothing twice
    assert len(_send(world, dt.date(2026, 12, 1))) == 4
    assert _send(world, dt.date(2026, 12, 1)) == []
    assert _send(world, dt.date(2026, 12, 2)) == []
    assert sorted(_reminders(world)[1:]) == [("/a", ids["safety"], 30),
                                             ("/a", ids["operation"], 7)]
    mails = world["sink"].messages
    assert len(mails) == 3 and {str(x["To"]) for x in mails} == {"qc-a@example.org"}
    texts = [x.get_body(("plain",)).get_content() for x in mails]
    assert "device operation training of tech_a expires on 2026-12-08 (in 7 days)" in texts[1]
    assert "radiation safety training of tech_a expires on 2026-12-31 (in 30 days)" in texts[2]
    assert "Device: PET one" in texts[1]
    # 2026-12-08: the device training expires today; e-mail not configured at this pass:
    # the webhook goes, the e-mail stays pending with the reason and goes at the next
    sent = _send(world, dt.date(2026, 12, 8), smtp=False)
    assert sorted(d.state for d in sent) == ["failed", "sent"]
    assert "e-mail is not configured" in next(d.error for d in sent if d.state == "failed")
    assert len(world["sink"].messages) == 3
    sent = _send(world, dt.date(2026, 12, 9))
    assert [d.state for d in sent] == ["sent"] and len(world["sink"].messages) == 4
    subject = str(world["sink"].messages[-1]["Subject"])
    assert "device operation of tech_a expired on 2026-12-08" in subject  # sent a day late
    assert _reminders(world)[-1] == ("/a", ids["operation"], 0)
    # renewed before its expiry: the radiation safety training is not reminded again
    with world["db"].session() as s:
        training.add_record(s, CLI, ids["user"], "radiation_safety", dt.date(2026, 12, 20),
                            valid_days=3 * 365)
    before = len(world["hook"].posts)
    assert _send(world, dt.date(2026, 12, 24)) == []
    assert _send(world, dt.date(2026, 12, 31)) == []
    assert len(world["hook"].posts) == before
    with world["db"].sessions() as s:  # site B's target got nothing, its rows none
        keys = list(s.scalars(select(m.Notification.key)))
        assert len(keys) == 8 and all(":training:" in k for k in keys)


def test_remind_command_sends_through_smtp_from_the_environment(
        world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from scanbench.cli import _mount_subapps, app

    _mount_subapps(["training"])
    monkeypatch.setenv("SCANBENCH_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SCANBENCH_SMTP_PORT", str(world["port"]))
    opts = ["--home", str(world["home"]), "--database-url",
            f"sqlite:///{world['home'] / 'db.sqlite'}"]
    runner = CliRunner()
    r = runner.invoke(app, ["training", "remind", "--today", "2026-12-01", *opts])
    assert r.exit_code == 0, r.output
    assert "4 training reminder(s) sent, 0 failed" in r.output
    assert len(world["sink"].messages) == 2
    r = runner.invoke(app, ["training", "remind", "--today", "2026-12-01", *opts])
    assert r.exit_code == 0 and "0 training reminder(s) sent" in r.output
    r = runner.invoke(app, ["training", "remind", "--today", "12/01/2026", *opts])
    assert r.exit_code == 2 and "--today" in r.output


def test_the_node_daily_pass_sends_the_reminders_due_today(tmp_path: Path) -> None:
    """The node's daily pass (``Pipeline.send_training_reminders``, run with the daily
    scorecards) sends a training that expires in 7 days its reminder, once."""
    from scanbench.service.jobs import InlineExecutor
    from scanbench.service.pipeline import Pipeline

    hook = Endpoint(path="")
    pipe = Pipeline(tmp_path / "home", None, quiet_seconds=0.0, executor=InlineExecutor())
    try:
        with pipe.db.session() as s:
            user = auth.add_user(s, CLI, "tech_n", "correct horse battery")
            secret = alerts.add_target(s, CLI, site_id=None, channel="webhook",
                                       address=hook.url + "/a").secret
            today = dt.date.today()
            rec = training.add_record(s, CLI, user.id, "qc_procedure",
                                      today - dt.timedelta(days=300),
                                      expires_on=today + dt.timedelta(days=7))
            rec_id = rec.id
        pipe.send_training_reminders()
        pipe.send_training_reminders()
        assert _reminders({"hook": hook, "secret": secret}) == [("/a", rec_id, 7)]
    finally:
        pipe.close()
        hook.close()

"""``scanbench alerts`` in process (typer's runner) on a real SQLite node database:
recheck from the history (twice: nothing new), list with filters, acknowledge
(audited, once), targets add/list/remove, send to a real aiosmtpd; bad input is a
message and exit status 2, a failed delivery exit status 1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from alert_history import BASE, device, store
from sqlalchemy import select
from typer.testing import CliRunner

from notifykit import MailSink, free_port
from scanbench import cli
from scanbench.store import Database
from scanbench.store import models as m
from scanbench.types import Limits
from scanbench.web import audit, sites

LIMITS = Limits(low=-4.0, high=4.0, source="IEC 61223-3-5:2019 section 5.3", verified=True)


def test_alerts_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    db = Database(home)
    with db.session() as s:
        site = sites.add_site(s, audit.Actor(None, "cli:test"), "Site A")
        dev = device(s, "1", site.id)
        store(s, dev, [*BASE, 0.0, 0.0, 5.0], limits=LIMITS)
        dev_id = dev.id
    db.close()
    cli._mount_subapps(["alerts"])
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli.app, [*args, "--home", str(home)])

    first = run("alerts", "recheck")
    assert first.exit_code == 0, first.output
    assert "2 new alert(s)" in first.output  # 1-3s and the action limit on the step
    assert "0 new alert(s)" in run("alerts", "recheck", "--device", str(dev_id)).output
    listed = run("alerts", "list", "--site", "Site A", "--rule", "limit")
    assert listed.exit_code == 0 and "1 alert(s)" in listed.output
    assert "action" in listed.output and "5 HU" in listed.output
    bad = run("alerts", "list", "--state", "gone")
    assert bad.exit_code == 2 and "unknown alert state" in bad.output
    db = Database(home)
    with db.sessions() as s:
        aid = s.scalars(select(m.Alert.id).where(m.Alert.rule == "limit")).one()
    db.close()
    assert run("alerts", "ack", str(aid), "--comment", "refilled").exit_code == 0
    again = run("alerts", "ack", str(aid), "--comment", "again")
    assert again.exit_code == 2 and "acknowledged on" in again.output
    added = run("alerts", "targets", "add", "email", "qc@example.org", "--site", "Site A")
    assert added.exit_code == 0, added.output
    assert run("alerts", "targets", "add", "sms", "x").exit_code == 2
    port = free_port()
    monkeypatch.setenv("SCANBENCH_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SCANBENCH_SMTP_PORT", str(port))
    down = run("alerts", "send")  # nothing listens yet: kept pending, exit 1
    assert down.exit_code == 1 and "1 failed (kept pending)" in down.output
    sink = MailSink()
    smtp = Controller(sink, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        up = run("alerts", "send")
        assert up.exit_code == 0 and "1 sent, 0 failed" in up.output  # the open 1-3s
        assert "0 sent, 0 failed" in run("alerts", "send").output
    finally:
        smtp.stop()
    assert len(sink.messages) == 1
    assert "removed" in run("alerts", "targets", "remove", "1").output
    assert "no" in run("alerts", "targets", "list").output
    db = Database(home)
    with db.sessions() as s:
        actions = list(s.scalars(select(m.AuditEntry.action).order_by(m.AuditEntry.id)))
        assert actions[-3:] == ["alert.acknowledge", "notification_target.add",
                                "notification_target.remove"]
        assert audit.verify(s).ok
    db.close()

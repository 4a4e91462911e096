"""Alert deliveries from the store to a real SMTP server (aiosmtpd) and a real HTTP
endpoint (http.server), both started here on free ports: exactly one message per alert
per target however often send_pending runs; a failed delivery stays pending with its
error and goes at a later run; one digest a day."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from alert_history import BASE, device, store
from sqlalchemy import select

from notifykit import Endpoint, MailSink, free_port
from scanbench.errors import InputError
from scanbench.evaluation import alerts
from scanbench.evaluation.notify import verify
from scanbench.store import Database
from scanbench.store import models as m
from scanbench.types import Limits
from scanbench.web import audit, sites

CLI = audit.Actor(None, "cli:test")
LIMITS = Limits(low=-4.0, high=4.0, source="IEC 61223-3-5:2019 section 5.3", verified=True)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Database, int, int]]:
    """A site with a device whose 4.4σ step on day 32 raised alerts (1-3s and the
    action limit, one episode), and a device on another site with its own."""
    db = Database(tmp_path)
    with db.session() as s:
        site = sites.add_site(s, CLI, "Site A")
        other = sites.add_site(s, CLI, "Site B")
        dev = device(s, "1", site.id)
        store(s, dev, [*BASE, 0.0, 0.0, 5.0], limits=LIMITS)
        alerts.recheck_device(s, dev.id)
        dev_b = device(s, "2", other.id)
        store(s, dev_b, [*BASE, 0.0, 0.0, 5.0], limits=LIMITS)
        alerts.recheck_device(s, dev_b.id)
        site_id = site.id
        dev_id = dev.id
    yield db, site_id, dev_id
    db.close()


def _open(db: Database, dev_id: int) -> list[m.Alert]:
    with db.sessions() as s:
        return list(s.scalars(select(m.Alert).where(m.Alert.device_id == dev_id,
                                                    m.Alert.state == "open")))


def test_one_message_per_episode_and_target_even_when_sent_twice(
        world: tuple[Database, int, int]) -> None:
    db, site_id, dev_id = world
    open_alerts = _open(db, dev_id)
    assert {(a.rule, a.level) for a in open_alerts} == {("1-3s", "trend"),
                                                        ("limit", "action")}
    sink, port = MailSink(), free_port()
    smtp = Controller(sink, hostname="127.0.0.1", port=port)
    smtp.start()
    hook = Endpoint()
    try:
        with db.session() as s:
            alerts.add_target(s, CLI, site_id=site_id, channel="email",
                              address="physicist@example.org")
            secret = alerts.add_target(s, CLI, site_id=site_id, channel="webhook",
                                       address=hook.url).secret
        server = alerts.SmtpServer("127.0.0.1", port, "qc@example.org")
        with db.sessions() as s:
            first = alerts.send_pending(s, smtp=server, base_url="https://qc.example.org")
            second = alerts.send_pending(s, smtp=server, base_url="https://qc.example.org")
        # the limit and the 1-3s alert fired on the same value: one episode, so one
        # message per target (the first alert of the episode: the limit)
        assert [d.state for d in first] == ["sent"] * 2 and second == []
        assert len(sink.messages) == 1 and len(hook.bodies) == 1  # site B's alert: not here
        texts = "\n".join(str(msg.get_body(("plain",)).get_content())  # type: ignore[union-attr]
                          for msg in sink.messages)
        assert "Action limit alert" in texts and "action limit 4 HU (upper)" in texts
        assert "IEC 61223-3-5:2019 section 5.3" in texts
        assert f"https://qc.example.org/devices/{dev_id}#alert-" in texts
        assert all(msg["To"] == "physicist@example.org" for msg in sink.messages)
        bodies = [json.loads(b) for b, _ in hook.bodies]
        assert all(verify(b, secret or "", sig) for b, sig in hook.bodies)
        assert [d["alert"]["rule"] for d in bodies] == ["limit"]
        with db.sessions() as s:
            rows = s.scalars(select(m.Notification)).all()
            assert len(rows) == 2 and all(r.state == "sent" and r.attempts == 1 for r in rows)
            assert {r.alert_id for r in rows} == {a.id for a in open_alerts
                                                  if a.rule == "limit"}
    finally:
        smtp.stop()
        hook.close()


def test_a_failed_delivery_stays_pending_with_its_error_and_goes_later(
        world: tuple[Database, int, int]) -> None:
    db, site_id, _ = world
    port = free_port()  # nothing listens there yet
    with db.session() as s:
        alerts.add_target(s, CLI, site_id=site_id, channel="email",
                          address="physicist@example.org")
    server = alerts.SmtpServer("127.0.0.1", port, "qc@example.org")
    with db.sessions() as s:
        failed = alerts.send_pending(s, smtp=server)
        assert [d.state for d in failed] == ["failed"]  # one episode
        assert all(f"SMTP 127.0.0.1:{port}" in (d.error or "") for d in failed)
        none = alerts.send_pending(s, smtp=None)  # e-mail not configured: still pending
        assert all("SCANBENCH_SMTP_HOST" in (d.error or "") for d in none)
    sink = MailSink()
    smtp = Controller(sink, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        with db.sessions() as s:
            later = alerts.send_pending(s, smtp=server)
            assert [d.state for d in later] == ["sent"]
            assert alerts.send_pending(s, smtp=server) == []
            rows = s.scalars(select(m.Notification)).all()
            assert [(r.state, r.attempts, r.error) for r in rows] == [("sent", 3, None)]
        assert len(sink.messages) == 1
    finally:
        smtp.stop()


def test_daily_digest_is_one_message_once(world: tuple[Database, int, int]) -> None:
    db, site_id, _ = world
    sink, port = MailSink(), free_port()
    smtp = Controller(sink, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        with db.session() as s:
            alerts.add_target(s, CLI, site_id=site_id, channel="email",
                              address="lead@example.org", digest=True)
        server = alerts.SmtpServer("127.0.0.1", port, "qc@example.org")
        day = dt.date(2026, 2, 2)  # day 32 of the history: the step
        with db.sessions() as s:
            assert alerts.send_pending(s, smtp=server) == []  # digest targets wait
            assert alerts.send_digest(s, day - dt.timedelta(days=1), smtp=server) == []
            sent = alerts.send_digest(s, day, smtp=server)
            assert [d.state for d in sent] == ["sent"]
            assert alerts.send_digest(s, day, smtp=server) == []
        assert len(sink.messages) == 1
        assert "2 alert(s)" in sink.messages[0]["Subject"]
    finally:
        smtp.stop()


def test_targets_and_smtp_settings_refuse_bad_input(tmp_path: Path) -> None:
    db = Database(tmp_path)
    try:
        with db.session() as s:
            for kw, field in ((dict(channel="sms", address="x"), "channel"),
                              (dict(channel="email", address="not an address"), "address"),
                              (dict(channel="webhook", address="ftp://h/x"), "address"),
                              (dict(channel="webhook", address="https://h/x",
                                    secret="short"), "secret")):
                with pytest.raises(InputError) as exc:
                    alerts.add_target(s, CLI, site_id=None, **kw)  # type: ignore[arg-type]
                assert exc.value.where == field
            t = alerts.add_target(s, CLI, site_id=None, channel="webhook",
                                  address="https://h.example/x")
            assert t.secret and len(t.secret) >= 40
            alerts.remove_target(s, CLI, t.id)
            entries = s.scalars(select(m.AuditEntry).where(
                m.AuditEntry.entity == "notification_target")).all()
            assert [e.action for e in entries] == ["notification_target.add",
                                                   "notification_target.remove"]
            assert all(t.secret not in json.dumps([e.before, e.after]) for e in entries)
    finally:
        db.close()
    assert alerts.smtp_from_env({}) is None
    got = alerts.smtp_from_env({"SCANBENCH_SMTP_HOST": "mail", "SCANBENCH_SMTP_STARTTLS": "yes",
                                "SCANBENCH_SMTP_FROM": "qc@h"})
    assert got == alerts.SmtpServer("mail", 587, "qc@h", None, None, True)
    with pytest.raises(InputError) as exc:
        alerts.smtp_from_env({"SCANBENCH_SMTP_HOST": "mail", "SCANBENCH_SMTP_PORT": "smtp"})
    assert exc.value.where == "SCANBENCH_SMTP_PORT"

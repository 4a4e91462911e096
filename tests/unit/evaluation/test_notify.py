"""Alerts delivered to a real SMTP server (aiosmtpd) and a real HTTP endpoint
(http.server), both started by the tests on free ports."""

from __future__ import annotations

import datetime as dt
import json
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from dicom_tls import make_pki
from notifykit import Endpoint, MailSink, free_port
from scanbench.evaluation.notify import (
    AlertNotice,
    SmtpSettings,
    WebhookSettings,
    digest,
    notify,
    verify,
)
from scanbench.evaluation.trend import Alert

T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)


def _alert(key: str, time: dt.datetime, measurement: str = "SUVmean") -> Alert:
    return Alert(key=key, measurement=measurement, rule="1-3s", direction="high", index=25,
                 time=time, value=1.37, unit="g/mL", uncertainty=None, statistic=3.5,
                 limit=3.0, first_index=25, first_time=time, baseline_mean=1.0,
                 baseline_sigma=0.1, message="1-3s high")


def _part(msg: EmailMessage, kind: str) -> str:
    body = msg.get_body((kind,))
    assert isinstance(body, EmailMessage)
    return str(body.get_content())


@pytest.fixture
def smtp() -> Iterator[tuple[SmtpSettings, MailSink]]:
    sink = MailSink()
    port = free_port()
    c = Controller(sink, hostname="127.0.0.1", port=port)
    c.start()
    try:
        yield SmtpSettings("127.0.0.1", port, "qc@example.org", ("phys@example.org",)), sink
    finally:
        c.stop()


def test_email_once_with_context_and_escaped_html(
        smtp: tuple[SmtpSettings, MailSink]) -> None:
    settings, sink = smtp
    n = AlertNotice(_alert("k1", T0), device="<b>PET-1</b>", link="https://qc/x")
    sent: set[str] = set()
    first = notify(n, sent, smtp=settings)
    again = notify(n, sent, smtp=settings)
    assert [d.status for d in first] == ["sent"] and [d.status for d in again] == ["skipped"]
    assert len(sink.messages) == 1
    text = _part(sink.messages[0], "plain")
    page = _part(sink.messages[0], "html")
    for s in ("SUVmean", "1-3s", "1.37 g/mL", "band 0.7 to 1.3 g/mL", "Westgard",
              "https://qc/x"):
        assert s in text
    assert "&lt;b&gt;PET-1&lt;/b&gt;" in page and "<b>PET-1</b>" not in page


def test_digest_one_message_for_the_day(smtp: tuple[SmtpSettings, MailSink]) -> None:
    settings, sink = smtp
    ns = [AlertNotice(_alert("a", T0), "PET-1"),
          AlertNotice(_alert("b", T0 + dt.timedelta(hours=3), "contrast"), "PET-2"),
          AlertNotice(_alert("c", T0 + dt.timedelta(days=1)), "PET-1")]
    sent: set[str] = set()
    out = digest(T0.date(), ns, sent, smtp=settings)
    assert [d.status for d in out] == ["sent"]
    assert digest(T0.date(), ns, sent, smtp=settings)[0].status == "skipped"
    assert len(sink.messages) == 1
    text = _part(sink.messages[0], "plain")
    assert "PET-2" in text and "contrast" in text and text.count("Device:") == 2
    assert "2 alert(s)" in sink.messages[0]["Subject"]


def test_webhook_signed_and_once() -> None:
    ep = Endpoint()
    try:
        hook = WebhookSettings(ep.url, secret="s3cret")
        sent: set[str] = set()
        n = AlertNotice(_alert("k1", T0), device="PET-1")
        assert notify(n, sent, webhook=hook)[0].status == "sent"
        assert notify(n, sent, webhook=hook)[0].status == "skipped"
        assert len(ep.bodies) == 1
        body, sig = ep.bodies[0]
        assert verify(body, "s3cret", sig) and not verify(body, "other", sig)
        doc = json.loads(body)
        assert doc["type"] == "alert" and doc["alert"]["device"] == "PET-1"
        assert doc["alert"]["value"] == 1.37 and doc["alert"]["unit"] == "g/mL"
        d = digest(T0.date(), [n], sent, webhook=hook)
        assert d[0].status == "sent" and json.loads(ep.bodies[1][0])["type"] == "digest"
    finally:
        ep.close()


def test_webhook_retried_then_delivered() -> None:
    ep = Endpoint(fail_first=2)
    waits: list[float] = []
    try:
        hook = WebhookSettings(ep.url, "k", retries=3, backoff_s=0.5)
        out = notify(AlertNotice(_alert("k", T0), "PET-1"), set(), webhook=hook,
                     sleep=waits.append)
        assert out[0].status == "sent" and out[0].attempts == 3 and waits == [0.5, 1.0]
    finally:
        ep.close()


def test_failing_endpoint_bounded_and_reported_not_raised() -> None:
    ep = Endpoint(fail_first=100)
    sent: set[str] = set()
    try:
        hook = WebhookSettings(ep.url, "k", retries=2, backoff_s=0.0)
        out = notify(AlertNotice(_alert("k", T0), "PET-1"), sent, webhook=hook)
        assert out[0].status == "failed" and out[0].attempts == 3 and ep.hits == 3
        assert "HTTP 503" in (out[0].error or "") and not sent  # tried again next time
    finally:
        ep.close()
    # nobody listening: connection refused, reported
    dead = WebhookSettings(f"http://127.0.0.1:{free_port()}/", "k", retries=1, backoff_s=0)
    out = notify(AlertNotice(_alert("k", T0), "PET-1"), sent, webhook=dead)
    assert out[0].status == "failed" and out[0].attempts == 2
    bad_mail = SmtpSettings("127.0.0.1", free_port(), "a@b", ("c@d",), timeout_s=5)
    out = notify(AlertNotice(_alert("k", T0), "PET-1"), sent, smtp=bad_mail)
    assert out[0].status == "failed" and "SMTP" in (out[0].error or "")


def test_client_error_not_retried() -> None:
    ep = Endpoint(fail_first=100, status=400)
    try:
        out = notify(AlertNotice(_alert("k", T0), "PET-1"), set(),
                     webhook=WebhookSettings(ep.url, "k", retries=3, backoff_s=0))
        assert out[0].status == "failed" and ep.hits == 1
    finally:
        ep.close()


def test_starttls_verifies_certificate_and_logs_in(tmp_path: Path) -> None:
    make_pki(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    logins: list[str] = []

    def auth(server: Any, session: Any, envelope: Any, mechanism: str,
             data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.password == b"pw"
        if ok:
            logins.append(data.login.decode())
        return AuthResult(success=ok)

    sink, port = MailSink(), free_port()
    c = Controller(sink, hostname="127.0.0.1", port=port, tls_context=ctx,
                   require_starttls=True, authenticator=auth, auth_require_tls=True)
    c.start()
    try:
        base = dict(host="127.0.0.1", port=port, sender="qc@example.org",
                    to=("phys@example.org",), username="qc", password="pw", starttls=True)
        n = AlertNotice(_alert("k", T0), device="PET-1\r\nBcc: spy@example.org")
        # a server certificate signed by an unknown CA: refused, reported, not sent
        out = notify(n, set(), smtp=SmtpSettings(**base))  # type: ignore[arg-type]
        assert out[0].status == "failed" and "CERTIFICATE_VERIFY_FAILED" in (
            out[0].error or "") and not sink.messages
        trusted = SmtpSettings(**base, cafile=str(tmp_path / "ca.pem"))  # type: ignore[arg-type]
        assert notify(n, set(), smtp=trusted)[0].status == "sent"
        assert logins == ["qc"] and len(sink.messages) == 1
        assert "Bcc" not in sink.messages[0] and "\n" not in sink.messages[0]["Subject"]
    finally:
        c.stop()

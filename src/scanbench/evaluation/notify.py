"""Send trend alerts by e-mail (SMTP) and/or webhook (HTTP POST), one at a time or as a
daily digest, each exactly once.

Method
------
* **What is sent**: a :class:`~scanbench.evaluation.trend.Alert` with its context
  (:class:`AlertNotice`: the device, the source of the rule's limit and a link). The text
  names the device, the measurement, the rule, the value with its unit, the limit the
  rule's statistic crossed (in units of the baseline σ and, for the Westgard rules, as
  the band μ0 ± kσ in the measurement's unit) with its source, and the link.
* **E-mail**: :mod:`smtplib` (STARTTLS when asked, login when a user name is given), one
  ``multipart/alternative`` message with a plain-text and an HTML part. Every outside
  string (device and measurement names, notes) is HTML-escaped in the HTML part.
* **Webhook**: ``POST`` of the JSON body documented in docs/evaluation.md
  (``"type": "alert"`` or ``"digest"``, ``"version": 1``) with the header
  ``X-Scanbench-Signature: sha256=<hex>``, the HMAC-SHA256 (RFC 2104, FIPS 198-1) of the
  exact body bytes under the shared secret, so the receiver can check the sender and
  that the body was not changed. A connection error, a timeout, a 429 or a 5xx answer
  is retried up to ``retries`` more times, waiting ``backoff_s × 2^(n−1)`` before retry
  n; any other 4xx answer is final (sending it again cannot help).
* **Exactly once**: the caller passes a record of what was already sent (any mutable
  set of strings, e.g. one backed by the store). The record key is
  ``"<channel>:<alert key>"`` (``"email:…"``, ``"webhook:…"``), or
  ``"<channel>:digest:<date>"`` for a digest; a key already in the record is skipped,
  and a key is added only after its delivery succeeded, so a failed channel is tried
  again at the next call while a channel that succeeded is not repeated.
* **Never raises for a delivery failure**: every attempt ends in a
  :class:`Delivery` (sent, skipped or failed with the error), which the caller records.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import html
import json
import math
import smtplib
import ssl
import time
from collections.abc import Callable, MutableSet, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Literal

import httpx

from scanbench.evaluation.trend import WESTGARD_RULES, Alert, Rule

SIGNATURE_HEADER = "X-Scanbench-Signature"
BODY_VERSION = 1

#: Where each rule's limit comes from (cited in every message).
RULE_SOURCES: dict[Rule, str] = {
    "1-3s": "Westgard et al. 1981, Clin Chem 27:493 (1-3s rule)",
    "2-2s": "Westgard et al. 1981, Clin Chem 27:493 (2-2s rule)",
    "R-4s": "Westgard et al. 1981, Clin Chem 27:493 (R-4s rule)",
    "4-1s": "Westgard et al. 1981, Clin Chem 27:493 (4-1s rule)",
    "10x": "Westgard et al. 1981, Clin Chem 27:493 (10x rule)",
    "cusum": "Montgomery, Introduction to Statistical Quality Control, ch. 9 (tabular CUSUM)",
    "ewma": "Lucas & Saccucci 1990, Technometrics 32:1 (EWMA control limits)",
}

Channel = Literal["email", "webhook"]


@dataclass(frozen=True)
class AlertNotice:
    """An alert with what a reader needs around it. ``limit_source`` overrides the rule's
    default source (e.g. a spec's limit); ``link`` is where the evidence is shown (the
    caller's URL; ``{link}`` stays as a placeholder when there is none). ``limit``
    replaces the text of the limit crossed (a spec's action or tolerance limit is not
    in σ); ``kind`` names the alert in the message's first line."""

    alert: Alert
    device: str
    limit_source: str | None = None
    link: str = "{link}"
    limit: str | None = None
    kind: str = "Trend alert"

    @property
    def source(self) -> str:
        return self.limit_source or RULE_SOURCES.get(self.alert.rule, self.alert.rule)


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send e-mail. ``starttls`` upgrades the connection (RFC 3207)
    before the login, checking the server's certificate and host name against the
    system's CAs or ``cafile``; ``username``/``password`` are used only when both are
    given."""

    host: str
    port: int
    sender: str
    to: tuple[str, ...]
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout_s: float = 30.0
    cafile: str | None = None  # CA certificates to trust for STARTTLS (default: system's)


@dataclass(frozen=True)
class WebhookSettings:
    """Where to POST, the shared secret of the signature, the time limit of one attempt
    and the bounded retries with exponential backoff."""

    url: str
    secret: str
    timeout_s: float = 10.0
    retries: int = 3
    backoff_s: float = 1.0


@dataclass(frozen=True)
class Delivery:
    """The outcome of one notification on one channel (never an exception)."""

    channel: Channel
    key: str
    status: Literal["sent", "skipped", "failed"]
    attempts: int = 0
    error: str | None = None


def _num(x: float) -> float | None:
    return None if not math.isfinite(x) else x


def _fmt(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.4g}"


def limit_text(alert: Alert) -> str:
    """The limit the alert crossed, in σ and (for a Westgard rule) in the unit."""
    stat = {"cusum": "CUSUM", "ewma": "EWMA"}.get(alert.rule, "z")
    text = f"{stat} {_fmt(alert.statistic)} σ beyond limit {_fmt(alert.limit)} σ"
    if alert.rule in WESTGARD_RULES and alert.rule != "10x":
        k = 2.0 if alert.rule == "R-4s" else alert.limit
        band = (alert.baseline_mean - k * alert.baseline_sigma,
                alert.baseline_mean + k * alert.baseline_sigma)
        text += f" (band {_fmt(band[0])} to {_fmt(band[1])} {alert.unit})"
    text += (f"; baseline {_fmt(alert.baseline_mean)} ± {_fmt(alert.baseline_sigma)} "
             f"{alert.unit} (1σ)")
    return text


def alert_lines(n: AlertNotice) -> list[tuple[str, str]]:
    """(label, text) pairs of one alert, shared by the text, HTML and JSON forms."""
    a = n.alert
    unc = f" ± {_fmt(a.uncertainty)}" if a.uncertainty is not None else ""
    return [("Device", n.device), ("Measurement", a.measurement),
            ("Rule", f"{a.rule} ({a.direction})"),
            ("Time", a.time.isoformat()),
            ("Value", f"{_fmt(a.value)}{unc} {a.unit}"),
            ("Limit", n.limit or limit_text(a)), ("Source", n.source), ("Link", n.link)]


def alert_json(n: AlertNotice) -> dict[str, Any]:
    """The JSON object of one alert (documented in docs/evaluation.md)."""
    a = n.alert
    return {"key": a.key, "device": n.device, "measurement": a.measurement,
            "rule": a.rule, "direction": a.direction, "time": a.time.isoformat(),
            "first_time": a.first_time.isoformat(), "value": _num(a.value),
            "uncertainty": None if a.uncertainty is None else _num(a.uncertainty),
            "unit": a.unit, "statistic_sigma": _num(a.statistic),
            "limit_sigma": _num(a.limit), "baseline_mean": _num(a.baseline_mean),
            "baseline_sigma": _num(a.baseline_sigma), "limit_text": n.limit or limit_text(a),
            "limit_source": n.source, "message": a.message, "link": n.link}


def alert_body(n: AlertNotice) -> bytes:
    """The webhook body of one alert, as sent (and signed)."""
    doc = {"type": "alert", "version": BODY_VERSION, "alert": alert_json(n)}
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, allow_nan=False).encode()


def digest_body(day: dt.date, notices: Sequence[AlertNotice]) -> bytes:
    """The webhook body of a daily digest."""
    doc = {"type": "digest", "version": BODY_VERSION, "date": day.isoformat(),
           "alerts": [alert_json(n) for n in notices]}
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, allow_nan=False).encode()


def sign(body: bytes, secret: str) -> str:
    """The signature header value: ``sha256=`` + hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, header: str) -> bool:
    """True when ``header`` is the signature of ``body`` (constant-time comparison)."""
    return hmac.compare_digest(sign(body, secret), header)


def _email(settings: SmtpSettings, subject: str, notices: Sequence[AlertNotice],
           intro: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = " ".join(subject.split())  # outside text: no line breaks in a header
    msg["From"] = settings.sender
    msg["To"] = ", ".join(settings.to)
    text = [intro, ""]
    parts = [f"<p>{html.escape(intro)}</p>"]
    for n in notices:
        rows = alert_lines(n)
        text += [f"{k}: {v}" for k, v in rows] + [""]
        cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                        for k, v in rows)
        parts.append(f"<table>{cells}</table>")
    msg.set_content("\n".join(text))
    msg.add_alternative("<html><body>" + "".join(parts) + "</body></html>", subtype="html")
    return msg


def _send_mail(settings: SmtpSettings, msg: EmailMessage) -> str | None:
    """Send; the error text on failure, None on success."""
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s) as s:
            if settings.starttls:
                # smtplib's default context checks no certificate: a verifying one instead
                s.starttls(context=ssl.create_default_context(cafile=settings.cafile))
            if settings.username and settings.password:
                s.login(settings.username, settings.password)
            s.send_message(msg)
    except (OSError, ValueError, smtplib.SMTPException) as e:
        return f"SMTP {settings.host}:{settings.port}: {type(e).__name__}: {e}"
    return None


def _post(settings: WebhookSettings, body: bytes,
          sleep: Callable[[float], None]) -> tuple[int, str | None]:
    """POST with bounded retries; (attempts, error or None)."""
    headers = {"Content-Type": "application/json",
               SIGNATURE_HEADER: sign(body, settings.secret)}
    error: str | None = None
    attempts = 0
    for attempt in range(settings.retries + 1):
        if attempt:
            sleep(settings.backoff_s * 2 ** (attempt - 1))
        attempts += 1
        try:
            r = httpx.post(settings.url, content=body, headers=headers,
                           timeout=settings.timeout_s)
        except httpx.HTTPError as e:
            error = f"webhook {settings.url}: {type(e).__name__}: {e}"
            continue
        if r.is_success:
            return attempts, None
        error = f"webhook {settings.url}: HTTP {r.status_code}"
        if not (r.status_code == 429 or r.status_code >= 500):
            break  # a client error: the same request will fail again
    return attempts, error


def _deliver(channel: Channel, key: str, sent: MutableSet[str],
             send: Callable[[], tuple[int, str | None]]) -> Delivery:
    record = f"{channel}:{key}"
    if record in sent:
        return Delivery(channel, key, "skipped")
    try:
        attempts, error = send()
    except Exception as e:  # a notification must never break the caller
        attempts, error = 1, f"{channel}: {type(e).__name__}: {e}"
    if error is None:
        sent.add(record)
        return Delivery(channel, key, "sent", attempts)
    return Delivery(channel, key, "failed", attempts, error)


def _channels(key: str, subject: str, intro: str, notices: Sequence[AlertNotice],
              body: bytes, sent: MutableSet[str], smtp: SmtpSettings | None,
              webhook: WebhookSettings | None, sleep: Callable[[float], None]
              ) -> list[Delivery]:
    out: list[Delivery] = []
    if smtp is not None:
        def mail() -> tuple[int, str | None]:
            return 1, _send_mail(smtp, _email(smtp, subject, notices, intro))
        out.append(_deliver("email", key, sent, mail))
    if webhook is not None:
        out.append(_deliver("webhook", key, sent, lambda: _post(webhook, body, sleep)))
    return out


def notify(notice: AlertNotice, sent: MutableSet[str], *, smtp: SmtpSettings | None = None,
           webhook: WebhookSettings | None = None,
           sleep: Callable[[float], None] = time.sleep) -> list[Delivery]:
    """Send one alert on each configured channel, once per channel (see module doc)."""
    a = notice.alert
    subject = f"scanbench alert: {notice.device} {a.measurement} {a.rule} ({a.direction})"
    intro = f"{notice.kind} for {notice.device}: {a.measurement}, rule {a.rule}."
    return _channels(a.key, subject, intro, [notice], alert_body(notice), sent, smtp,
                     webhook, sleep)


@dataclass(frozen=True)
class Message:
    """A notice that is not an alert (e.g. a training reminder): the same channels,
    the same signature and exactly-once record as an alert. ``rows`` are the (label,
    text) pairs of the e-mail; ``body`` the webhook's JSON object (its ``type`` names
    the kind; ``version`` is added)."""

    key: str
    subject: str
    intro: str
    rows: tuple[tuple[str, str], ...]
    body: dict[str, Any]


def send_message(message: Message, sent: MutableSet[str], *,
                 smtp: SmtpSettings | None = None, webhook: WebhookSettings | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> list[Delivery]:
    """Send ``message`` on each configured channel, once per channel and key (the
    record ``sent`` as for :func:`notify`). Outside text is escaped in the HTML part."""
    doc = {"version": BODY_VERSION, **message.body}
    body = json.dumps(doc, ensure_ascii=False, sort_keys=True, allow_nan=False).encode()
    out: list[Delivery] = []
    if smtp is not None:
        def mail() -> tuple[int, str | None]:
            msg = EmailMessage()
            msg["Subject"] = " ".join(message.subject.split())
            msg["From"] = smtp.sender
            msg["To"] = ", ".join(smtp.to)
            msg.set_content("\n".join([message.intro, ""]
                                      + [f"{k}: {v}" for k, v in message.rows]))
            cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                            for k, v in message.rows)
            msg.add_alternative(f"<html><body><p>{html.escape(message.intro)}</p>"
                                f"<table>{cells}</table></body></html>", subtype="html")
            return 1, _send_mail(smtp, msg)
        out.append(_deliver("email", message.key, sent, mail))
    if webhook is not None:
        out.append(_deliver("webhook", message.key, sent,
                            lambda: _post(webhook, body, sleep)))
    return out


def digest(day: dt.date, notices: Sequence[AlertNotice], sent: MutableSet[str], *,
           smtp: SmtpSettings | None = None, webhook: WebhookSettings | None = None,
           sleep: Callable[[float], None] = time.sleep) -> list[Delivery]:
    """Send all alerts whose time falls on ``day`` (in the alerts' own time zone) in one
    message per channel, once per day and channel. A day without alerts sends nothing."""
    todays = sorted((n for n in notices if n.alert.time.date() == day),
                    key=lambda n: (n.alert.time, n.device, n.alert.key))
    if not todays:
        return []
    subject = f"scanbench daily digest {day.isoformat()}: {len(todays)} alert(s)"
    intro = f"{len(todays)} alert(s) on {day.isoformat()}."
    return _channels(f"digest:{day.isoformat()}", subject, intro, todays,
                     digest_body(day, todays), sent, smtp, webhook, sleep)

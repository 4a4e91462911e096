"""``scanbench alerts``: list and acknowledge trend and limit alerts, recompute them from
a device's history, manage where they are sent and send them
(:mod:`scanbench.evaluation.alerts`). Every change is audited as done by
``cli:<login>``. Exit status: 0 done, 1 a delivery failed (it stays pending and is
tried again at the next run), 2 bad usage or input."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from scanbench.console import console, safe, text
from scanbench.errors import InputError, ScanbenchError
from scanbench.service.cli import HomeOpt, UrlOpt
from scanbench.service.cli import open_database as _db
from scanbench.service.cli import usage_error as _fail

err = console(stderr=True)
out = console()

alerts_app = typer.Typer(help="Trend and limit alerts: list, acknowledge, recheck, send.",
                         no_args_is_help=True)
targets_app = typer.Typer(help="Where a site's alerts are sent (e-mail or webhook).",
                          no_args_is_help=True)
alerts_app.add_typer(targets_app, name="targets")


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")


def _actor() -> Any:
    from scanbench.web.cli import _actor as actor

    return actor()


def _site_id(s: Any, site: str | None) -> int | None:
    from scanbench.web.auth import get_site

    if site is None:
        return None
    return get_site(s, int(site) if site.isdigit() else site).id


def _run(home: Path | None, database_url: str | None, work: Any, audited: bool = False
         ) -> Any:
    from scanbench.web.audit import commit_with_retry

    db = _db(home, database_url)
    try:
        with db.sessions() as s:
            return commit_with_retry(s, work) if audited else work(s)
    except ScanbenchError as exc:
        raise _fail(exc) from None
    finally:
        db.close()


@alerts_app.command("list")
def alerts_list(
    device: Annotated[int | None, typer.Option(help="Only this device (id).")] = None,
    site: Annotated[str | None, typer.Option(help="Only this site (name or id).")] = None,
    state: Annotated[str | None, typer.Option(
        help="open, acknowledged or closed.")] = None,
    rule: Annotated[str | None, typer.Option(
        help="limit, 1-3s, 2-2s, R-4s, 4-1s, 10x, cusum or ewma.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    home: HomeOpt = None, database_url: UrlOpt = None,
) -> None:
    """Alerts, newest first (time is the scanner's clock)."""
    from scanbench.evaluation.alerts import alerts_query

    def work(s: Any) -> list[tuple[Any, ...]]:
        q = alerts_query(device_id=device, site_id=_site_id(s, site), state=state, rule=rule)
        return [(a.id, a.device_id, a.occurred_at, a.analysis, a.name, a.rule, a.level,
                 a.value, a.unit, a.state, a.message) for a in s.scalars(q.limit(limit))]

    rows = _run(home, database_url, work)
    table = Table("id", "device", "when", "measurement", "rule", "level", "value", "state",
                  "message")
    for aid, dev, at, analysis, name, r, level, value, unit, st, msg in rows:
        table.add_row(str(aid), str(dev), at.isoformat(sep=" ") if at else "",
                      text(f"{analysis} {name}"), r, level,
                      text("" if value is None else f"{value:.4g} {unit}"), st, text(msg))
    out.print(table)
    out.print(f"{len(rows)} alert(s)")


@alerts_app.command("ack")
def alerts_ack(alert_id: int,
               comment: Annotated[str, typer.Option(help="What was done or decided.")],
               home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """Acknowledge an alert with a comment (audited)."""
    from scanbench.evaluation.alerts import AlertConflict, acknowledge

    try:
        _run(home, database_url, lambda s: acknowledge(s, alert_id, _actor(), comment).id,
             audited=True)
    except AlertConflict as exc:
        raise _fail(InputError(str(exc))) from None
    out.print(f"alert {alert_id} acknowledged")


@alerts_app.command("recheck")
def alerts_recheck(device: Annotated[int | None, typer.Option(
                       help="Only this device (id); default every device.")] = None,
                   home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """Compute the alerts of a device (or all) again from its stored history, after an
    import or a baseline marked later: records what is missing, closes what has ended;
    running it again changes nothing."""
    from sqlalchemy import select

    from scanbench.evaluation.alerts import recheck_device
    from scanbench.store import models as m

    def work(s: Any) -> int:
        ids = [device] if device is not None else list(s.scalars(select(m.Device.id)))
        if device is not None and s.get(m.Device, device) is None:
            raise InputError(f"no device with id {device}", where="--device")
        n = sum(len(recheck_device(s, d)) for d in ids)
        s.commit()
        return n

    out.print(f"{_run(home, database_url, work)} new alert(s)")


@alerts_app.command("send")
def alerts_send(digest: Annotated[str | None, typer.Option(
                    help="Send the daily digest of this day (YYYY-MM-DD) instead.")] = None,
                home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """Send pending alert notifications now (the node does this every minute), or one
    day's digest. SMTP from SCANBENCH_SMTP_HOST/PORT/USER/PASSWORD/FROM/STARTTLS."""
    from scanbench.evaluation.alerts import send_digest, send_pending, smtp_from_env

    day = None
    if digest is not None:
        try:
            day = dt.date.fromisoformat(digest)
        except ValueError:
            raise _fail(InputError(f"{digest!r} is not a date YYYY-MM-DD",
                                   where="--digest")) from None
    try:
        smtp = smtp_from_env()
    except ScanbenchError as exc:
        raise _fail(exc) from None

    def work(s: Any) -> Any:
        return send_pending(s, smtp=smtp) if day is None else send_digest(s, day, smtp=smtp)

    sent = _run(home, database_url, work)
    failed = [d for d in sent if d.state != "sent"]
    for d in failed:
        err.print(f"[red]not sent:[/] notification {d.notification_id} to target "
                  f"{d.target_id}: {safe(d.error)}")
    out.print(f"{len(sent) - len(failed)} sent, {len(failed)} failed (kept pending)")
    if failed:
        raise typer.Exit(1)


@targets_app.command("add")
def targets_add(
    channel: Annotated[str, typer.Argument(help="email or webhook")],
    address: Annotated[str, typer.Argument(help="E-mail address or http(s) URL.")],
    site: Annotated[str | None, typer.Option(
        help="The site (name or id) whose alerts go there; default every site.")] = None,
    secret: Annotated[str | None, typer.Option(
        help="Webhook signing secret (default: made at random and printed once).")] = None,
    digest: Annotated[bool, typer.Option(help="One message a day instead.")] = False,
    home: HomeOpt = None, database_url: UrlOpt = None,
) -> None:
    """Send alerts to an e-mail address or a webhook (audited)."""
    from scanbench.evaluation.alerts import add_target

    def work(s: Any) -> tuple[int, str | None]:
        row = add_target(s, _actor(), site_id=_site_id(s, site), channel=channel,
                         address=address, secret=secret, digest=digest)
        return row.id, row.secret

    tid, made = _run(home, database_url, work, audited=True)
    out.print(f"notification target {tid} added")
    if made and not secret:
        out.print(f"webhook secret (shown once; give it to the receiver): {made}")


@targets_app.command("list")
def targets_list(home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """Notification targets (never their secrets)."""
    from sqlalchemy import select

    from scanbench.store import models as m

    def work(s: Any) -> list[tuple[Any, ...]]:
        return [(t.id, t.site_id, t.channel, t.address, t.digest, t.active)
                for t in s.scalars(select(m.NotificationTarget)
                                   .order_by(m.NotificationTarget.id))]

    table = Table("id", "site", "channel", "address", "digest", "active")
    for tid, site_id, channel, address, dig, active in _run(home, database_url, work):
        table.add_row(str(tid), "every" if site_id is None else str(site_id), channel,
                      text(address), "yes" if dig else "no", "yes" if active else "no")
    out.print(table)


@targets_app.command("remove")
def targets_remove(target_id: int, home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """Stop sending to a target (audited; its deliveries stay on record)."""
    from scanbench.evaluation.alerts import remove_target

    _run(home, database_url, lambda s: remove_target(s, _actor(), target_id).id, audited=True)
    out.print(f"notification target {target_id} removed")

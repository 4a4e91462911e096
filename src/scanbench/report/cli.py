"""``scanbench report device|acceptance|site-dose|programme``: the reports of
:mod:`scanbench.report.store_reports` (and the multi-site programme report of
:mod:`scanbench.report.programme_report`) from the node's database, written as HTML or,
for an output ending in ``.pdf``, as PDF (headless Chromium).

The command line is the node's own operator: it sees every device and site (the web
API filters by the caller's sites). A device is named by its id, serial number or
display name; a site by its id or name. Exit status: 0 written, 2 bad usage or input
(an unknown device, a period that ends before it starts, a PDF without Chromium).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer

from scanbench.console import console, safe
from scanbench.errors import InputError, ScanbenchError
from scanbench.service.cli import HomeOpt, UrlOpt
from scanbench.service.cli import open_database as _db
from scanbench.service.cli import usage_error as _fail

err = console(stderr=True)

report_app = typer.Typer(help="Reports from the node's database: a device's QC over a "
                              "period, its acceptance tests, a site's patient dose, a "
                              "programme's multi-site evaluation "
                              "(HTML, or PDF for an output ending in .pdf).",
                         no_args_is_help=True)

OutOpt = Annotated[Path, typer.Option("--output", "-o", help=(
    "File to write: .html (self-contained) or .pdf (printed by headless Chromium)."))]
FromOpt = Annotated[str | None, typer.Option("--from", help=(
    "First day, YYYY-MM-DD (scanner local date, included; default: a year before --to)."))]
ToOpt = Annotated[str | None, typer.Option("--to", help=(
    "Last day, YYYY-MM-DD (scanner local date, included; default: today)."))]


def register(app: typer.Typer) -> None:
    app.add_typer(report_app, name="report")


def _date(text: str | None, option: str) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{option} {text!r}: expected a date YYYY-MM-DD") from None


def _period(start: str | None, end: str | None) -> tuple[dt.date, dt.date]:
    hi = _date(end, "--to") or dt.date.today()
    lo = _date(start, "--from") or hi - dt.timedelta(days=364)
    return lo, hi


def _device(session: Any, ref: str) -> Any:
    from scanbench.evaluation.records import DeviceResolver

    try:
        return DeviceResolver(session).find(ref)
    except ValueError as exc:
        raise InputError(f"device {ref!r}: {exc}") from None


def _site(session: Any, ref: str) -> Any:
    from sqlalchemy import func, select

    from scanbench.store import models as m

    key = ref.strip()
    row = session.get(m.Site, int(key)) if key.isdigit() else None
    if row is None:
        row = session.scalars(select(m.Site).where(
            func.lower(m.Site.name) == key.casefold())).first()
    if row is None:
        raise InputError(f"no site {ref!r} (give its id or its name: scanbench site list)")
    return row


def _write(home: Path | None, database_url: str | None, out: Path, build: Any) -> None:
    """Build the report in a session, store what it computed (a period's scorecard),
    and write it."""
    from scanbench.report import store_reports as sr

    db = _db(home, database_url)
    try:
        with db.sessions() as s:
            report = build(s)
            s.commit()
        path = sr.write(report, out)
    except ScanbenchError as exc:
        raise _fail(exc) from None
    finally:
        db.close()
    err.print(f"wrote {safe(str(path))}")


@report_app.command("device")
def device(ref: Annotated[str, typer.Argument(help="Device id, serial or display name.")],
           output: OutOpt, start: FromOpt = None, end: ToOpt = None,
           home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """A device's QC report for a period: identity, the spec in force and the period's
    scorecard, every test's results with limits and sources, control charts, alerts,
    lifecycle events and reliability."""
    from scanbench.report import store_reports as sr

    try:
        lo, hi = _period(start, end)
    except ScanbenchError as exc:
        raise _fail(exc) from None
    _write(home, database_url, output,
           lambda s: sr.device_report(s, _device(s, ref), lo, hi))


@report_app.command("acceptance")
def acceptance(ref: Annotated[str, typer.Argument(help="Device id, serial or display name.")],
               output: OutOpt,
               spec: Annotated[str | None, typer.Option(
                   "--spec", help="Acceptance spec (a built-in name or a YAML file); "
                   "default: the one assigned to the device.")] = None,
               home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """A device's acceptance tests (from its installation to its acceptance event) against
    the acceptance spec, with the vendor's claims the spec holds."""
    from scanbench.report import store_reports as sr

    _write(home, database_url, output,
           lambda s: sr.acceptance_report(s, _device(s, ref), spec))


@report_app.command("site-dose")
def site_dose(ref: Annotated[str, typer.Argument(help="Site id or name.")], output: OutOpt,
              start: FromOpt = None, end: ToOpt = None,
              drl: Annotated[str | None, typer.Option(
                  "--drl", help="Reference level table (a shipped name).")] = None,
              home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """A site's patient dose over a period: per protocol and device, distributions,
    medians against diagnostic reference levels, outliers, box plots."""
    from scanbench.report import store_reports as sr

    try:
        lo, hi = _period(start, end)
    except ScanbenchError as exc:
        raise _fail(exc) from None
    _write(home, database_url, output,
           lambda s: sr.site_dose_report(s, _site(s, ref), lo, hi, drl=drl))


@report_app.command("programme")
def programme(output: OutOpt, start: FromOpt = None, end: ToOpt = None,
              group_by: Annotated[str, typer.Option(
                  "--group-by", help="Device attribute: make, model, country, "
                  "field_strength, axial_fov or site.")] = "model",
              site: Annotated[list[str] | None, typer.Option(
                  "--site", help="Only this site's devices (id or name; repeat for "
                  "more). Default: every device in the store.")] = None,
              home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """The multi-site evaluation report from the (central) store: per group of devices,
    every measurement's distribution with confidence intervals, pass rates, reliability,
    dose and workflow, reader and SUS scores, costs, and the comparison between groups
    (test, effect size, interval, smallest detectable difference)."""
    from sqlalchemy import select

    from scanbench.report import programme_report as pr
    from scanbench.store import models as m

    try:
        lo, hi = _period(start, end)
    except ScanbenchError as exc:
        raise _fail(exc) from None

    def build(s: Any) -> Any:
        ids = None
        if site:
            sids = [_site(s, ref).id for ref in site]
            ids = list(s.scalars(select(m.Device.id).where(m.Device.site_id.in_(sids))))
        return pr.programme_report(s, lo, hi, group_by=group_by, device_ids=ids)

    db = _db(home, database_url)
    try:
        with db.sessions() as s:
            report = build(s)
        path = pr.write(report, output)
    except ScanbenchError as exc:
        raise _fail(exc) from None
    finally:
        db.close()
    err.print(f"wrote {safe(str(path))}")

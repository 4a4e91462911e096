"""``scanbench demo`` (the fleet): prepare with a progress bar, print what was made, the
URL and the demo logins, then serve the web application (scanbench.web.cli.serve)."""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from scanbench.console import safe


def end_date(end: str | None, console_err: Any) -> dt.date | None:
    """The ``--end`` option of both demos: a date before today, or None (yesterday);
    anything else is a usage error (exit status 2) naming the value."""
    try:
        last = dt.date.fromisoformat(end) if end else None
    except ValueError:
        console_err.print(f"[red]error:[/] --end {safe(end)}: not a date YYYY-MM-DD")
        raise typer.Exit(2) from None
    if last is not None and last >= dt.date.today():
        console_err.print(f"[red]error:[/] --end {last}: the simulated period must end "
                          "before today")
        raise typer.Exit(2)
    return last


def run_fleet_demo(*, home: Path | None, days: int, end: str | None, exams: int,
                   workers: int | None, periodic: bool, serve: bool, host: str, port: int,
                   dicom_port: int | None,
                   console_out: Console, console_err: Console) -> None:
    """Prepare the fleet in ``home`` (a new folder if None) and serve it unless not
    ``serve``. Exit status 1 when a job failed, 2 when the home is not new."""
    from scanbench.demo import fleet, prepare

    last = end_date(end, console_err)
    if home is None:
        home = Path(tempfile.mkdtemp(prefix="scanbench-demo-"))
    home = home.resolve()
    if home.exists() and any(home.iterdir()):
        console_err.print(f"[red]error:[/] {safe(home)} is not empty: give --home a new "
                          "folder (the demo makes a fresh data directory)")
        raise typer.Exit(2)
    console_err.print(f"demo data directory: [bold]{safe(home)}[/]")
    started = time.monotonic()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    tasks: dict[str, Any] = {}
    with Progress(*columns, console=console_err, transient=False) as prog:
        def progress(what: str, done: int, total: int | None) -> None:
            if what not in tasks:
                tasks[what] = prog.add_task(what, total=total)
            prog.update(tasks[what], completed=done, total=total)

        summary = prepare(home, days=days, end=last, workers=workers, exams=exams,
                          periodic=periodic, progress=progress)
    elapsed = time.monotonic() - started
    sc = summary.scenario
    t = Table(title=f"scanbench demo: prepared in {elapsed:.0f} s", show_header=False)
    t.add_row("period", f"{sc.start} to {sc.workdays[-1]} ({sc.days} days, "
              f"{len(sc.workdays)} working days)")
    t.add_row("sites / devices", f"{len(fleet.SITES)} / {len(fleet.DEVICES)}")
    t.add_row("QC series / clinical exams", f"{summary.qc_series} / {summary.clinical_exams}")
    t.add_row("DICOM files through the node", str(summary.files))
    t.add_row("jobs done / failed", f"{summary.jobs_done} / {summary.jobs_failed}")
    t.add_row("alerts / figures / scorecards",
              f"{summary.alerts} / {summary.figures} / {summary.scorecards}")
    t.add_row("lifecycle events / telemetry readings",
              f"{summary.lifecycle_events} / {summary.telemetry_readings}")
    t.add_row("the story", f"drift: {sc.drift_device} water CT number from "
              f"{sc.date(sc.drift_start)}; failure: {sc.failure_device} on "
              f"{sc.date(sc.failure_day)}, repaired {sc.date(sc.repair_day)}; upgrade: "
              f"{sc.upgrade_device} on {sc.date(sc.upgrade_day)}")
    t.add_row("timings (s)", ", ".join(f"{k} {v:.0f}" for k, v in summary.timings.items()))
    console_out.print(t)
    logins = Table(title="demo logins (demo passwords: for this demo only)")
    for col in ("user", "password", "role on"):
        logins.add_column(col)
    names = {s.key: s.name for s in fleet.SITES}
    for u in fleet.USERS:
        logins.add_row(u.username, u.password,
                       "; ".join(f"{names[k]}: {r}" for k, r in u.grants))
    console_out.print(logins)
    if summary.jobs_failed:
        console_err.print(f"[red]error:[/] {summary.jobs_failed} job(s) failed: "
                          f"scanbench jobs list --home {safe(home)}")
    if not serve:
        console_out.print(f"prepared; serve it with: scanbench serve --home {safe(home)}")
        if summary.jobs_failed:
            raise typer.Exit(1)
        return
    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    console_out.print(f"open [bold]http://{shown}:{port}/[/] and sign in "
                      "(port 0: the bound port is printed below)")
    from scanbench.web.cli import serve as serve_app

    serve_app(host=host, port=port, dicom_port=dicom_port, ae_title="SCANBENCH",
              secure_cookies=False, home=home, database_url=None)

"""``scanbench ingest``, ``scanbench db upgrade``, ``scanbench jobs list|run|retry|cancel``.

The node's data directory is ``--home`` or ``SCANBENCH_HOME`` (default
``~/.scanbench``); the database is ``--database-url`` or ``SCANBENCH_DATABASE_URL``
(default: the SQLite file under the home). Exit status as for ``analyze``: 0 all
stored and analysed, 1 some instance rejected or some job failed, 2 bad usage or
nothing readable.
"""

from __future__ import annotations

import signal
import threading
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from scanbench.console import configure_logging, console, safe, text
from scanbench.errors import ScanbenchError

if TYPE_CHECKING:
    from scanbench.service.pipeline import JobRecord, Pipeline
    from scanbench.service.timeouts import JobTimeouts

# Not a terminal: a log or a program reads it; one message, one line; tables 132 wide.
err: Console = console(stderr=True)
out: Console = console()
EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2

HomeOpt = Annotated[Path | None, typer.Option(
    "--home", help="Data directory (default: SCANBENCH_HOME or ~/.scanbench).")]
UrlOpt = Annotated[str | None, typer.Option(
    "--database-url", help="SQLAlchemy URL (default: SCANBENCH_DATABASE_URL or the SQLite "
    "file under the home).")]

JobTimeoutOpt = Annotated[list[str] | None, typer.Option(
    "--job-timeout", metavar="RULE=SECONDS",
    help="How long a job may run before its worker is killed and the job failed "
    "('timed out', retryable): RULE an analysis id or pattern (ct.*), a modality (PT), "
    "study, or default; a bare SECONDS sets default. Repeatable; overrides <home>/jobs.toml "
    "(see docs/node.md).")]

db_app = typer.Typer(help="The node's database.", no_args_is_help=True)
jobs_app = typer.Typer(help="Analysis and dose jobs of the node.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
    app.add_typer(db_app, name="db")
    app.add_typer(jobs_app, name="jobs")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, transient=True)


def _log_plain() -> None:
    """The pipeline's warnings (a rejected instance, a failed job) quote file names and
    DICOM text: printed through the control-character-safe formatter, as bare lines."""
    configure_logging(fmt="%(message)s")


def usage_error(exc: ScanbenchError) -> typer.Exit:
    """Print ``exc`` (outside text, escaped) and give the bad-usage exit to raise."""
    err.print(f"[red]error:[/] {safe(exc)}")
    return typer.Exit(EXIT_USAGE)


_fail = usage_error


def open_database(home: Path | None, database_url: str | None) -> Any:
    """The node's database for a command that only reads or edits records (no pipeline):
    the home folder made if missing, migrations applied as at every start."""
    from scanbench.store.db import Database, home_dir

    h = home_dir(home)
    h.mkdir(parents=True, exist_ok=True)
    return Database(h, database_url)


def _sigterm_interrupts() -> Any:
    """SIGTERM stops ingest and ``jobs run``/``retry`` as Ctrl-C does: the ``finally``
    runs, so their running jobs are stopped and recorded as interrupted (the next start
    runs them again). Returns the handler to restore (None off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def _restore_sigterm(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def timeouts(home: Path | None, options: list[str] | None) -> JobTimeouts:
    """The job timeouts of the home's ``jobs.toml`` and the ``--job-timeout`` options
    (ScanbenchError naming the file or option when one is wrong)."""
    from scanbench.service.timeouts import JobTimeouts
    from scanbench.store.db import home_dir

    return JobTimeouts.load(home_dir(home), options or ())


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="DICOM files, folders (recursive), zips.")],
    home: HomeOpt = None,
    database_url: UrlOpt = None,
    workers: Annotated[int | None, typer.Option(
        help="Analysis processes (default: cores − 1; 0: in this process). Ignored when "
        "SCANBENCH_DASK_SCHEDULER names a Dask cluster.")] = None,
    analyse: Annotated[bool, typer.Option(
        "--analyse/--no-analyse", help="Run the analysis and dose jobs now (default).")] = True,
    job_timeout: JobTimeoutOpt = None,
) -> None:
    """Store DICOM files already on disk in the node, as if sent to it, and analyse them:
    phantom series → analysis results, clinical studies and dose reports → dose and
    workflow. Files already stored are recognised (by SOP Instance UID) and not stored
    twice."""
    _log_plain()
    from scanbench.dicom.read import damaged_prefix
    from scanbench.service.jobs import make_executor
    from scanbench.service.pipeline import Pipeline, iter_dicom_files

    missing = [p for p in paths if not p.exists()]
    for p in missing:
        err.print(f"[red]error:[/] {safe(p)}: no such file or folder")
    if missing:
        raise typer.Exit(EXIT_USAGE)
    try:
        pipe = Pipeline(home, database_url, quiet_seconds=0.0,
                        executor=make_executor(workers),
                        timeouts=timeouts(home, job_timeout))
    except ScanbenchError as exc:
        raise _fail(exc) from None
    counts: Counter[str] = Counter()
    rejected: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    previous = _sigterm_interrupts()
    try:
        files = list(iter_dicom_files(paths))
        with _progress() as prog:
            task = prog.add_task("storing", total=len(files))
            for f in files:
                for where, raw in _contents(f, skipped, rejected):
                    if raw is None:
                        continue
                    if not _dicom_like(raw):
                        if damaged_prefix(raw[:140]):  # a damaged Part 10 file: a failure
                            rejected.append((where, "damaged: bytes 128-131 are not the DICM "
                                             "prefix, but File Meta Information follows"))
                        else:
                            skipped.append((where, "not DICOM"))
                        continue
                    o = pipe.store_instance(raw, source=where)
                    counts[o.status.value] += 1
                    if o.rejected:
                        rejected.append((where, o.reason or "rejected"))
                prog.advance(task)
            if analyse:
                prog.update(task, description=f"analysing ({pipe.executor.describe()})",
                            total=None, completed=0)
                pipe.drain()
        jobs = _ran(pipe)
        _summary(pipe, counts, rejected, skipped, jobs)
    finally:
        pipe.close()
        _restore_sigterm(previous)
    if rejected or any(j.state == "failed" for j in jobs):
        raise typer.Exit(EXIT_FAILURES)
    if not counts:
        err.print("[red]error:[/] no DICOM files found in " + ", ".join(map(safe, paths)))
        raise typer.Exit(EXIT_USAGE)


def _contents(path: Path, skipped: list[tuple[str, str]],
              rejected: list[tuple[str, str]]) -> Iterator[tuple[str, bytes | None]]:
    """The file's bytes, or a zip's members one at a time (a few MB of zip can hold GBs
    of deflated zeros): a member over the series limit is refused unread, and a member
    that does not open like DICOM is read only to its first 132 bytes."""
    from scanbench.dicom import pixels

    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
            if head not in (b"PK\x03\x04", b"PK\x05\x06"):
                yield str(path), head + fh.read()
                return
            fh.seek(0)
            limit = pixels.max_series_bytes()
            with zipfile.ZipFile(fh) as zf:
                for info in zf.infolist():
                    if info.is_dir():
                        continue
                    where = f"{path}/{info.filename}"
                    if info.file_size > limit:
                        rejected.append((where, f"zip member of {info.file_size / 2**20:.0f} "
                                         f"MiB exceeds the {limit / 2**20:.0f} MiB limit "
                                         "(SCANBENCH_MAX_SERIES_MIB); not unpacked"))
                        continue
                    with zf.open(info) as member:
                        first = member.read(140)
                        yield where, first + member.read() if _dicom_like(first) else first
    except (OSError, zipfile.BadZipFile, ValueError, EOFError, NotImplementedError,
            zlib.error) as exc:
        skipped.append((str(path), f"cannot read: {exc}"))


def _dicom_like(raw: bytes) -> bool:
    from scanbench.dicom.read import _looks_like_raw_dataset

    return (len(raw) >= 132 and raw[128:132] == b"DICM") or _looks_like_raw_dataset(raw[:132])


def _summary(pipe: Pipeline, counts: Counter[str], rejected: list[tuple[str, str]],
             skipped: list[tuple[str, str]], records: list[JobRecord]) -> None:
    from sqlalchemy import func, select

    from scanbench.store import models as m

    for where, why in skipped:
        err.print(f"[dim]note: skipped {safe(where)}: {safe(why)}[/]")
    for where, why in rejected:
        err.print(f"[red]rejected:[/] {safe(where)}: {safe(why)}")
    table = Table(title="ingest", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("instances stored", str(counts["stored"]))
    table.add_row("already stored (same SOP Instance UID)", str(counts["duplicate"]))
    table.add_row("rejected", str(counts["rejected"]))
    table.add_row("non-DICOM files skipped", str(len(skipped)))
    by_state = Counter(j.state for j in records)
    table.add_row("jobs done / failed", f"{by_state['done']} / {by_state['failed']}")
    with pipe.db.session() as s:
        ids = [j.id for j in records]
        results = s.scalar(select(func.count()).select_from(m.Result)
                           .where(m.Result.job_id.in_(ids))) if ids else 0
        doses = s.scalar(select(func.count()).select_from(m.DoseEvent)
                         .where(m.DoseEvent.job_id.in_(ids))) if ids else 0
        devices = s.scalar(select(func.count()).select_from(m.Device))
        events = s.scalar(select(func.count()).select_from(m.LifecycleEvent))
    table.add_row("analysis results", str(results))
    table.add_row("dose rows", str(doses))
    table.add_row("devices known / lifecycle events", f"{devices} / {events}")
    out.print(table)
    _report_jobs(sorted(records, key=lambda j: j.id))


@db_app.command("upgrade")
def db_upgrade(home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """Create or upgrade the database schema to this version of scanbench (the node also
    does this by itself when it starts)."""
    from scanbench.store.db import current_revision, make_engine, upgrade
    from scanbench.store.db import database_url as resolve

    url = resolve(home, database_url)
    try:
        engine = make_engine(url)
        before = current_revision(engine)
        after = upgrade(engine)
    except ScanbenchError as exc:
        raise _fail(exc) from None
    shown = engine.url.render_as_string(hide_password=True)
    engine.dispose()
    if before == after:
        out.print(f"{safe(shown)}: already at revision {after}")
    else:
        out.print(f"{safe(shown)}: upgraded from {before or 'empty'} to revision {after}")


@db_app.command("rebuild-state")
def db_rebuild_state(home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """Recompute the stored fleet state of every device (the node keeps it itself when it
    stores results, alerts and scorecards; this is for data loaded around it)."""
    import time

    from scanbench.store import fleet_state
    from scanbench.store.db import Database

    try:
        db = Database(home, database_url)
    except ScanbenchError as exc:
        raise _fail(exc) from None
    t = time.perf_counter()
    with db.session() as s:
        n = fleet_state.rebuild(s)
    db.close()
    out.print(f"fleet state of {n} devices recomputed in {time.perf_counter() - t:.1f} s")


@jobs_app.command("list")
def jobs_list(
    home: HomeOpt = None, database_url: UrlOpt = None,
    state: Annotated[str | None, typer.Option(
        help="Only jobs in this state: queued, running, done, failed, interrupted, "
        "cancelled.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
) -> None:
    """The node's latest jobs, with the error of each failed one."""
    from scanbench.service.jobs import InlineExecutor
    from scanbench.service.pipeline import Pipeline

    try:
        pipe = Pipeline(home, database_url, executor=InlineExecutor(), recover=False)
    except ScanbenchError as exc:
        raise _fail(exc) from None
    try:
        jobs = pipe.jobs(state, limit)
    finally:
        pipe.close()
    table = Table("id", "kind", "target", "state", "tries", "finished", "summary / error")
    style = {"failed": "bold red", "done": "green"}
    for j in jobs:
        # Cells are Text, never markup: target, error and summary quote DICOM text, and a
        # state without a style was once "[]running[/]", a markup error.
        table.add_row(str(j.id), text(j.kind), text(j.target_uid),
                      text(j.state, style.get(j.state, "")), str(j.attempts),
                      j.finished_at.strftime("%Y-%m-%d %H:%M:%S") if j.finished_at else "",
                      text((j.error or j.summary or "")[:200]))
    out.print(table)


@jobs_app.command("run")
def jobs_run(
    home: HomeOpt = None, database_url: UrlOpt = None,
    workers: Annotated[int | None, typer.Option(
        help="Analysis processes (0: in this process).")] = None,
    job_timeout: JobTimeoutOpt = None,
) -> None:
    """Run every job that is due now (series and studies stored but not yet analysed,
    e.g. after `scanbench ingest --no-analyse`, and jobs interrupted by a stop or a
    crash) and wait for them."""
    _log_plain()
    from scanbench.service.jobs import make_executor
    from scanbench.service.pipeline import Pipeline

    try:
        pipe = Pipeline(home, database_url, quiet_seconds=0.0, executor=make_executor(workers),
                        timeouts=timeouts(home, job_timeout))
    except ScanbenchError as exc:
        raise _fail(exc) from None
    previous = _sigterm_interrupts()
    try:
        with _progress() as prog:
            prog.add_task(f"running jobs ({pipe.executor.describe()})", total=None)
            pipe.drain(everything=True)
        ran = _ran(pipe)
    finally:
        pipe.close()
        _restore_sigterm(previous)
    _report_jobs(sorted(ran, key=lambda j: j.id))
    if not ran:
        out.print("nothing to do")
    if any(j.state == "failed" for j in ran):
        raise typer.Exit(EXIT_FAILURES)


def _ran(pipe: Pipeline) -> list[JobRecord]:
    """The jobs this command submitted (new ones, retried and resumed ones), by id."""
    ids = set(pipe.submitted)
    return sorted((j for j in pipe.jobs(limit=100000) if j.id in ids), key=lambda j: j.id)


def _report_jobs(jobs: list[JobRecord]) -> None:
    for j in jobs:
        if j.state == "failed":
            err.print(f"[red]job {j.id} failed[/] ({safe(j.kind)} {safe(j.target_uid)}): "
                      f"{safe(j.error)}\n  retry with: scanbench jobs retry {j.id}")
        else:
            out.print(f"job {j.id} ({safe(j.kind)} {safe(j.target_uid)}): {safe(j.state)}; "
                      f"{safe(j.summary[:300])}")


@jobs_app.command("retry")
def jobs_retry(
    job_id: Annotated[int | None, typer.Argument(
        help="The job; default every failed (or timed out) and interrupted job.")] = None,
    home: HomeOpt = None, database_url: UrlOpt = None,
    workers: Annotated[int | None, typer.Option(
        help="Analysis processes (0: in this process).")] = None,
    job_timeout: JobTimeoutOpt = None,
) -> None:
    """Run failed, timed-out and interrupted jobs again (after a fix, or once a missing
    extractor is installed) and wait for them; the new outcome replaces the old. A
    cancelled job runs again only when named."""
    _log_plain()
    from scanbench.service.jobs import make_executor
    from scanbench.service.pipeline import Pipeline

    try:
        pipe = Pipeline(home, database_url, executor=make_executor(workers), recover=False,
                        timeouts=timeouts(home, job_timeout))
    except ScanbenchError as exc:
        raise _fail(exc) from None
    previous = _sigterm_interrupts()
    try:
        try:
            records = pipe.retry(job_id)
        except ScanbenchError as exc:
            raise _fail(exc) from None
        if not records:
            out.print("no failed or interrupted jobs")
            return
        with _progress() as prog:
            prog.add_task(f"running {len(records)} job(s)", total=None)
            pipe.drain()
        again = [j for j in pipe.jobs(limit=100000) if j.id in {r.id for r in records}]
    finally:
        pipe.close()
        _restore_sigterm(previous)
    _report_jobs(again)
    if any(j.state == "failed" for j in again):
        raise typer.Exit(EXIT_FAILURES)


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: Annotated[int, typer.Argument(help="The job to cancel.")],
    home: HomeOpt = None, database_url: UrlOpt = None,
) -> None:
    """Cancel a queued, running or interrupted job: recorded as cancelled at once; the
    node running it kills its worker within a second or so. A cancelled job is never
    run again automatically (`scanbench jobs retry ID` runs it again)."""
    from scanbench.service.jobs import InlineExecutor
    from scanbench.service.pipeline import Pipeline

    try:
        pipe = Pipeline(home, database_url, executor=InlineExecutor(), recover=False)
    except ScanbenchError as exc:
        raise _fail(exc) from None
    try:
        try:
            record = pipe.cancel(job_id)
        except ScanbenchError as exc:
            raise _fail(exc) from None
    finally:
        pipe.close()
    out.print(f"job {record.id} ({safe(record.kind)} {safe(record.target_uid)}): cancelled")

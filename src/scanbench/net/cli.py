"""``scanbench node``, ``scanbench pull``, ``scanbench export``.

``node`` runs the storage SCP, the ingest pipeline (quiet-time series completion, jobs)
and, with ``--pull-url``, a scheduled DICOMweb pull, until SIGTERM or SIGINT; then it
stops accepting associations, lets the ones under way finish, gives running jobs
``--stop-grace`` seconds to finish, records the others as interrupted (the next start
runs them again) and exits 0; a second signal stops waiting for the jobs. Data
directory and database as for ``scanbench ingest`` (``--home``, ``--database-url``).
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from scanbench.console import configure_logging, console, safe
from scanbench.errors import InputError, ScanbenchError
from scanbench.service.cli import JobTimeoutOpt, timeouts

# Not a terminal: no hard wrap (a message stays one searchable line).
err: Console = console(stderr=True)
out: Console = console()
EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2

HomeOpt = Annotated[Path | None, typer.Option(
    "--home", help="Data directory (default: SCANBENCH_HOME or ~/.scanbench).")]
UrlOpt = Annotated[str | None, typer.Option(
    "--database-url", help="SQLAlchemy URL (default: SCANBENCH_DATABASE_URL or the SQLite "
    "file under the home).")]


def register(app: typer.Typer) -> None:
    app.command("node")(node)
    app.command("pull")(pull_cmd)
    app.command("export")(export)


def _fail(exc: ScanbenchError) -> typer.Exit:
    err.print(f"[red]error:[/] {safe(exc)}")
    return typer.Exit(EXIT_USAGE)


def _date(text: str | None, name: str) -> dt.date | None:
    if text is None:
        return None
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            pass
    raise typer.BadParameter(f"{text!r}: expected a date YYYY-MM-DD", param_hint=name)


def _logging(verbose: bool) -> None:
    # Log lines quote DICOM text (descriptions, AE titles): PlainFormatter keeps each
    # message one line without control characters.
    configure_logging(logging.DEBUG if verbose else logging.INFO,
                      "%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:  # pynetdicom logs every PDU at INFO, alembic every migration step
        for name in ("pynetdicom", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _federation_sender(pipe: Any, central: str | None, token_file: Path | None,
                       images: bool = False) -> Any:
    """The federation sender of ``scanbench node --central`` (None without it)."""
    if central is None:
        if token_file is not None:
            raise ScanbenchError("--central-token-file needs --central URL")
        return None
    if token_file is None:
        raise ScanbenchError("--central needs --central-token-file (the site's credential)")
    from scanbench.programme.fed_cli import read_token
    from scanbench.programme.outbox import Sender

    return Sender(pipe.db, pipe.home, central, read_token(token_file), images=images)


def node(
    ae_title: Annotated[str, typer.Option(help="The node's AE title (senders call it).")]
    = "SCANBENCH",
    port: Annotated[int, typer.Option(help="TCP port of the storage SCP.")] = 11112,
    host: Annotated[str, typer.Option(
        help="Address to listen on; 0.0.0.0 to accept scanners on the network.")]
    = "127.0.0.1",
    allow: Annotated[list[str] | None, typer.Option(
        "--allow", help="Calling AE title allowed to send (repeatable, or comma-separated); "
        "compared exactly, case included, leading/trailing spaces ignored. AE titles are "
        "not secrets: use --allow-host too. Default: any (a warning at start).")] = None,
    allow_host: Annotated[list[str] | None, typer.Option(
        "--allow-host", help="IP address or CIDR network allowed to connect (repeatable, "
        "or comma-separated), e.g. 10.1.2.3 or 10.1.2.0/24; others are closed at once. "
        "Default: any (a warning at start).")] = None,
    max_associations: Annotated[int, typer.Option(
        help="Associations at once, in all (more are rejected).")] = 32,
    max_per_peer: Annotated[int, typer.Option(
        help="Connections at once from one address (more are closed at once), so that one "
        "host cannot use up --max-associations.")] = 8,
    idle_timeout: Annotated[float, typer.Option(
        help="Seconds without a PDU after which an association is aborted.")] = 60.0,
    artim_timeout: Annotated[float, typer.Option(
        help="Seconds a new connection has to request its association (DICOM ARTIM "
        "timer, PS3.8 9.1.5; the TLS handshake included).")] = 10.0,
    tls_cert: Annotated[Path | None, typer.Option(
        help="DICOM TLS: the node's certificate (PEM); with --tls-key.")] = None,
    tls_key: Annotated[Path | None, typer.Option(
        help="DICOM TLS: the certificate's private key (PEM).")] = None,
    tls_ca: Annotated[Path | None, typer.Option(
        help="DICOM TLS: accept only senders with a client certificate signed by these CA "
        "certificates (PEM).")] = None,
    quiet_seconds: Annotated[float, typer.Option(
        help="A series is complete when nothing arrived for this long.")] = 5.0,
    group_wait_seconds: Annotated[float, typer.Option(
        help="A series a multi-series analysis could claim (ACR MRI axial series and "
        "localiser, NEMA MS 1 SNR pair, PET/CT co-registration) waits this long after the "
        "last series of its study for its partners, then runs without them; 0: no wait."
    )] = 300.0,
    pull_url: Annotated[str | None, typer.Option(
        help="DICOMweb base URL of a PACS to pull new studies from on a schedule.")] = None,
    pull_every: Annotated[float, typer.Option(
        help="Seconds between scheduled pulls.")] = 300.0,
    pull_since: Annotated[str | None, typer.Option(
        help="First scheduled pull: studies from this date (default: yesterday).")] = None,
    workers: Annotated[int | None, typer.Option(
        help="Analysis processes (default: cores − 1; 0: in this process, where a job "
        "can be neither timed out nor cancelled).")] = None,
    stop_grace: Annotated[float, typer.Option(
        help="On SIGTERM or Ctrl-C, seconds running jobs get to finish before they are "
        "stopped and recorded as interrupted (run again at the next start).")] = 8.0,
    job_timeout: JobTimeoutOpt = None,
    central: Annotated[str | None, typer.Option(
        "--central", help="Federation: base URL of the programme's central node; this "
        "node sends it de-identified records (docs/programme.md).")] = None,
    central_token_file: Annotated[Path | None, typer.Option(
        "--central-token-file", help="File holding this site's central credential.")] = None,
    central_every: Annotated[float, typer.Option(
        help="Seconds between federation passes (doubling after a failed one).")] = 30.0,
    central_images: Annotated[bool, typer.Option(
        "--central-images", help="Federation: also upload results' images, de-identified "
        "(DICOM PS3.15), for expert review — only when the programme enables it.")] = False,
    home: HomeOpt = None,
    database_url: UrlOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the hospital node: receive DICOM (C-STORE, C-ECHO; DICOMweb pull), store each
    instance once, analyse every phantom series and extract every clinical study's dose
    and timings once it is complete. Stops cleanly on SIGTERM or Ctrl-C (a second one
    stops at once, interrupting running jobs, which run again at the next start)."""
    from scanbench.net.dicomweb import PullSchedule
    from scanbench.net.scp import ScpConfig, StorageScp, parse_allow
    from scanbench.service.jobs import make_executor
    from scanbench.service.pipeline import Pipeline

    _logging(verbose)
    log = logging.getLogger("scanbench.node")
    since = _date(pull_since, "--pull-since") or dt.date.today() - dt.timedelta(days=1)
    try:
        config = ScpConfig(
            ae_title=ae_title, host=host, port=port, allow=parse_allow(allow),
            allow_hosts=parse_allow(allow_host, "--allow-host"),
            max_associations=max_associations, max_per_peer=max_per_peer,
            network_timeout_s=idle_timeout, artim_timeout_s=artim_timeout,
            tls_cert=tls_cert, tls_key=tls_key, tls_ca=tls_ca)
        if not stop_grace >= 0:
            raise ScanbenchError(f"--stop-grace {stop_grace}: expected seconds >= 0")
        if not group_wait_seconds >= 0:
            raise ScanbenchError(f"--group-wait-seconds {group_wait_seconds}: must be 0 or "
                                 "more", "scanbench node")
        pipe = Pipeline(home, database_url, quiet_seconds=quiet_seconds,
                        group_wait_seconds=group_wait_seconds,
                        executor=make_executor(workers), timeouts=timeouts(home, job_timeout))
        sender = _federation_sender(pipe, central, central_token_file, central_images)
    except ScanbenchError as exc:
        raise _fail(exc) from None
    stop = threading.Event()
    fed_loop: Any = None
    scp = StorageScp(pipe, config)
    schedule: PullSchedule | None = None
    previous: dict[int, Any] = {}

    def _stop(signum: int, _frame: Any) -> None:
        if stop.is_set():  # a second signal: do not wait for running jobs
            log.info("received %s again: interrupting running jobs now",
                     signal.Signals(signum).name)
            pipe.hurry()
            return
        log.info("received %s: stopping (running jobs get %g s to finish)",
                 signal.Signals(signum).name, stop_grace)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, _stop)
    try:
        scp.start()
        if pull_url:
            schedule = PullSchedule(pull_url, pipe, pipe.home, pull_every, since, stop)
            schedule.start()
        if sender is not None:
            from scanbench.programme.outbox import SenderLoop

            fed_loop = SenderLoop(sender, stop, every_s=central_every)
            fed_loop.start()
        gates = [f"allowed: {', '.join(config.allow)}"] if config.allow else []
        if config.allow_hosts:
            gates.append(f"hosts: {', '.join(config.allow_hosts)}")
        if config.tls_cert is not None:
            gates.append("TLS" + (" with client certificates" if config.tls_ca else ""))
        log.info("node ready: AE %s on %s:%d%s; data in %s; database %s", config.ae_title,
                 config.host, scp.port, f" ({'; '.join(gates)})" if gates else "", pipe.home,
                 pipe.db.engine.url.render_as_string(hide_password=True))
        pipe.run_forever(stop)
    except ScanbenchError as exc:
        stop.set()
        raise _fail(exc) from None
    finally:
        stop.set()
        scp.stop()
        if schedule is not None:
            schedule.join(timeout=30)
        if fed_loop is not None:
            fed_loop.join(timeout=60)
        pipe.close(grace=stop_grace)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        s = scp.stats
        log.info("node stopped: %d stored, %d duplicates, %d rejected, %d failed", s.stored,
                 s.duplicate, s.rejected, s.failed)


def pull_cmd(
    url: Annotated[str, typer.Option("--url", help="DICOMweb base URL of the PACS.")],
    since: Annotated[str, typer.Option(help="Pull studies dated on or after this day.")],
    analyse: Annotated[bool, typer.Option(
        "--analyse/--no-analyse", help="Run the analysis and dose jobs now (default).")] = True,
    workers: Annotated[int | None, typer.Option(help="Analysis processes.")] = None,
    home: HomeOpt = None,
    database_url: UrlOpt = None,
) -> None:
    """Pull new studies from a PACS over DICOMweb into the node, once; studies pulled
    before and unchanged on the PACS are not fetched again."""
    from scanbench.net.dicomweb import client_for, pull
    from scanbench.service.jobs import make_executor
    from scanbench.service.pipeline import Pipeline

    day = _date(since, "--since")
    assert day is not None
    try:
        client = client_for(url)
        pipe = Pipeline(home, database_url, quiet_seconds=0.0, executor=make_executor(workers))
    except ScanbenchError as exc:
        raise _fail(exc) from None
    try:
        with err.status("searching") as status:
            report = pull(url, pipe, pipe.home, day, client=client,
                          progress=lambda what: status.update(safe(what)))
            if analyse:
                status.update("analysing")
                pipe.drain()
    except ScanbenchError as exc:
        raise _fail(exc) from None
    finally:
        pipe.close()
    out.print(safe(report.summary()))
    for e in report.errors:
        err.print(f"[red]error:[/] {safe(e)}")
    if report.errors or report.rejected:
        raise typer.Exit(EXIT_FAILURES)


def export(
    study: Annotated[list[str] | None, typer.Argument(
        help="Study Instance UID(s) to export.")] = None,
    series: Annotated[list[str] | None, typer.Option(
        "--series", help="Series Instance UID to export (repeatable).")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write into.")] = Path(
        "export"),
    deidentified: Annotated[bool, typer.Option(
        "--deidentified", help="Apply the DICOM PS3.15 Basic Profile with Retain Device "
        "Identity (see docs/node-network.md).")] = False,
    dates: Annotated[str, typer.Option(
        help="With --deidentified: shift (per-patient offset), keep or remove dates.")]
    = "shift",
    retain_patient_characteristics: Annotated[bool, typer.Option(
        help="With --deidentified: keep sex, age, size, weight (dose estimates need "
        "them).")] = False,
    home: HomeOpt = None,
    database_url: UrlOpt = None,
) -> None:
    """Copy the stored instances of studies or series to a folder, as received or
    de-identified for anything that leaves the site."""
    from scanbench.dicom.deid import Deidentifier, DeidOptions, site_secret
    from scanbench.store.db import Database, home_dir

    if not study and not series:
        err.print("[red]error:[/] name a Study Instance UID or --series UID")
        raise typer.Exit(EXIT_USAGE)
    if dates not in ("shift", "keep", "remove"):
        err.print(f"[red]error:[/] --dates {safe(repr(dates))}: expected shift, keep or remove")
        raise typer.Exit(EXIT_USAGE)
    root = home_dir(home)
    try:
        db = Database(root, database_url)
    except ScanbenchError as exc:
        raise _fail(exc) from None
    try:
        found = _instances(db, study or [], series or [])
    finally:
        db.close()
    missing = [u for u in [*(study or []), *(series or [])] if u not in found.matched]
    for u in missing:
        err.print(f"[red]error:[/] {safe(u)}: no such study or series in the node")
    if not found.paths:
        raise typer.Exit(EXIT_USAGE)
    deid = None
    if deidentified:
        try:
            deid = Deidentifier(site_secret(root), DeidOptions(
                dates=dates,  # type: ignore[arg-type]
                retain_patient_characteristics=retain_patient_characteristics))
        except ScanbenchError as exc:
            raise _fail(exc) from None
    written, failed = 0, 0
    for rel in found.paths:
        src = root / "files" / rel
        warnings: list[str] = []
        try:
            _check_size(src, found.sizes.get(rel))
            written += _export_one(src, out_dir, deid, warnings)
        except Exception as exc:  # one bad file is named and skipped: a
            # damaged or refused instance must never stop the export of the others
            failed += 1
            reason = exc if isinstance(exc, ScanbenchError | OSError) else (
                f"{type(exc).__name__}: {exc}")
            err.print(f"[red]error:[/] {safe(src)}: {safe(reason)}; not exported")
        for w in warnings:
            err.print(f"[yellow]warning:[/] {safe(src)}: {safe(w)}")
    out.print(f"{written} instance(s) written to {safe(out_dir)}"
              + (f" (de-identified: {safe(deid.method_summary())})" if deid else "")
              + (f"; {failed} not exported" if failed else ""))
    if failed or missing:
        raise typer.Exit(EXIT_FAILURES)


class _Found:
    def __init__(self) -> None:
        self.paths: list[str] = []
        self.sizes: dict[str, int] = {}  # bytes, as stored (to find a file damaged since)
        self.matched: set[str] = set()


def _instances(db: Any, studies: list[str], series: list[str]) -> _Found:
    from sqlalchemy import select

    from scanbench.store import models as m

    found = _Found()
    with db.session() as s:
        q = (select(m.Instance.path, m.Study.study_uid, m.Series.series_uid,
                    m.Instance.size_bytes)
             .join(m.Series, m.Instance.series_id == m.Series.id)
             .join(m.Study, m.Series.study_id == m.Study.id))
        rows = []
        if studies:
            rows += list(s.execute(q.where(m.Study.study_uid.in_(studies))))
        if series:
            rows += list(s.execute(q.where(m.Series.series_uid.in_(series))))
    seen: set[str] = set()
    for path, study_uid, series_uid, size in rows:
        found.matched.update((study_uid, series_uid))
        if path not in seen:
            seen.add(path)
            found.paths.append(path)
            found.sizes[path] = size
    return found


def _check_size(src: Path, stored: int | None) -> None:
    """A file cut or grown since the node stored it is damaged: pydicom would read a cut
    sequence of undefined length without complaint, and export part of it."""
    size = src.stat().st_size
    if stored is not None and size != stored:
        raise InputError(f"damaged in the file store: {size} bytes on disk, {stored} bytes "
                         "when stored", src)


def _export_one(src: Path, out_dir: Path, deid: Any, warnings: list[str]) -> int:
    """Copy one stored instance, or write it de-identified; nothing is left behind for an
    instance that fails (written to a temporary name, renamed once complete)."""
    import pydicom

    if deid is None:
        ds = pydicom.dcmread(src, stop_before_pixels=True)
        dest = out_dir / str(ds.StudyInstanceUID) / str(ds.SeriesInstanceUID)
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest / src.name)
        return 1
    ds = pydicom.dcmread(src)
    deid.apply(ds, warnings)
    dest = out_dir / str(ds.StudyInstanceUID) / str(ds.SeriesInstanceUID)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / f"{ds.SOPInstanceUID}.dcm"
    tmp = target.with_suffix(".tmp")
    try:
        ds.save_as(tmp, enforce_file_format=True)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return 1


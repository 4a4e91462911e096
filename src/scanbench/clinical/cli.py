"""``scanbench dose`` and ``scanbench workflow``: patient dose and exam timings per study.

Contract (issue 4, DESIGN.md): ``--json`` prints exactly one JSON array on
stdout, one object per study (dose) or per exam (workflow); ``--csv FILE``
writes one row per study / exam; otherwise rich tables. Notes and failures go
to stderr, each naming its file. Exit status 0 when every object was read, 1
when some failed but studies were reported, 2 for bad usage or when nothing
could be read.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from scanbench.console import console, safe, text
from scanbench.errors import ScanbenchError

if TYPE_CHECKING:  # imported where used: pydicom and numpy cost --help ~0.3 s (issue 15)
    from scanbench.clinical import reference_levels as rl
    from scanbench.clinical.dose import StudyDose

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2
_err = console(stderr=True)  # not a terminal: a message is one line, for grep and logs

PathsArg = Annotated[list[Path], typer.Argument(
    help="DICOM files, folders (searched recursively) or zips.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON array on stdout.")]
CsvOpt = Annotated[Path | None, typer.Option("--csv", help="Also write one row per study to "
                                                           "this CSV file.")]


def shipped_drl_tables() -> list[str]:
    """Names of the DRL tables shipped with scanbench, as
    :func:`scanbench.clinical.reference_levels.list_tables` gives them, without importing
    that module for an option's help text."""
    folder = resources.files("scanbench.clinical") / "drl"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir()
                  if p.name.endswith(".yaml"))


def _out() -> Console:
    out = Console(emoji=False)  # outside text shown as written (scanbench.console.console)
    return out if out.is_terminal else Console(width=160, soft_wrap=True, emoji=False)


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    if not enabled:
        yield None
        return
    with Progress(TextColumn("reading headers"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=_err, transient=True) as prog:
        task = prog.add_task("read", total=None)

        def update(done: int, total: int) -> None:
            prog.update(task, completed=done, total=total)

        yield update


def _check_paths(paths: list[Path]) -> None:
    missing = [p for p in paths if not p.exists()]
    for p in missing:
        _err.print(f"[red]error:[/] {safe(p)}: no such file or folder")
    if missing:
        raise typer.Exit(EXIT_USAGE)


def _f(v: float | None, digits: int = 2) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def _when(t: dt.datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M") if t else ""


def _device(d: Any) -> str:
    return " ".join(x for x in (d.manufacturer, d.model) if x) or "?"


def dose_rows(studies: list[StudyDose]) -> list[dict[str, Any]]:
    """One flat row per study, for CSV."""
    rows = []
    for s in studies:
        a = s.radiopharmaceutical
        ctdi = [e.ctdivol_mgy for e in s.events if e.ctdivol_mgy is not None]
        rows.append({
            "study_instance_uid": s.study_instance_uid,
            "study_datetime": s.study_datetime.isoformat() if s.study_datetime else "",
            "manufacturer": s.device.manufacturer, "model": s.device.model,
            "serial": s.device.serial, "station": s.device.station,
            "modality": s.modality, "study_description": s.study_description,
            "number_of_events": len(s.events), "total_dlp_mgycm": s.total_dlp_mgycm,
            "max_ctdivol_mgy": max(ctdi) if ctdi else None,
            "agent": a.agent if a else None,
            "administered_activity_mbq": a.administered_activity_mbq if a else None,
            "activity_per_kg_mbq_per_kg": (a.administered_activity_mbq / s.patient.weight_kg
                                           if a and a.administered_activity_mbq
                                           and s.patient.weight_kg else None),
            "patient_age_years": s.patient.age_years, "patient_weight_kg": s.patient.weight_kg,
            "effective_dose_ct_msv": s.effective_dose.ct_msv,
            "effective_dose_radiopharmaceutical_msv": s.effective_dose.radiopharmaceutical_msv,
            "effective_dose_total_msv": s.effective_dose.total_msv,
            "dose_sources": ";".join(s.dose_sources), "warnings": len(s.warnings),
        })
    return rows


def event_rows(studies: list[StudyDose]) -> list[dict[str, Any]]:
    """One flat row per CT irradiation event, for protocol-level analysis."""
    rows = []
    for s in studies:
        for i, e in enumerate(s.events, start=1):
            d = e.to_dict()
            d.pop("target_region_code")
            alerts = d.pop("dose_check_alerts")
            rows.append({
                "study_instance_uid": s.study_instance_uid,
                "study_datetime": s.study_datetime.isoformat() if s.study_datetime else "",
                "manufacturer": s.device.manufacturer, "model": s.device.model,
                "serial": s.device.serial, "station": s.device.station,
                "study_description": s.study_description, "event": i, **d,
                "dose_check_alerts": len(alerts)})
    return rows


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    try:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            if rows:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
    except OSError as exc:
        _err.print(f"[red]error:[/] {safe(path)}: cannot write the CSV file "
                   f"({safe(exc.strerror)})")
        raise typer.Exit(EXIT_FAILURES) from None
    _err.print(f"CSV written to {safe(path)} ({len(rows)} rows)")


def print_dose(studies: list[StudyDose], out: Console) -> None:
    table = Table(title="Patient dose per study", header_style="bold")
    for col, kw in (("study", {}), ("device", {}), ("modality", {}),
                    ("events", {"justify": "right"}),
                    ("CTDIvol max mGy", {"justify": "right"}),
                    ("DLP total mGy·cm", {"justify": "right"}), ("tracer", {}),
                    ("activity MBq", {"justify": "right"}),
                    ("MBq/kg", {"justify": "right"}), ("E mSv (CT+tracer)", {"justify": "right"}),
                    ("notes", {"justify": "right"})):
        table.add_column(col, **kw)  # type: ignore[arg-type]
    for s in studies:
        a = s.radiopharmaceutical
        ctdi = [e.ctdivol_mgy for e in s.events if e.ctdivol_mgy is not None]
        e = s.effective_dose
        parts = " + ".join(_f(v, 1) for v in (e.ct_msv, e.radiopharmaceutical_msv)
                           if v is not None)
        per_kg = (a.administered_activity_mbq / s.patient.weight_kg
                  if a and a.administered_activity_mbq and s.patient.weight_kg else None)
        table.add_row(*map(text, (  # DICOM text: never markup
            _when(s.study_datetime) or s.study_instance_uid[-16:], _device(s.device), s.modality,
            str(len(s.events)) if s.events else "", _f(max(ctdi)) if ctdi else "",
            _f(s.total_dlp_mgycm), (a.agent or "") if a else "",
            _f(a.administered_activity_mbq, 1) if a else "", _f(per_kg),
            (f"{parts} = {_f(e.total_msv, 1)}" if e.ct_msv is not None
             and e.radiopharmaceutical_msv is not None else parts),
            str(len(s.warnings)) if s.warnings else "")))
    out.print(table)
    for s in studies:
        for w in s.warnings:
            _err.print(f"[yellow]warning:[/] study {safe(s.study_instance_uid)}: {safe(w)}")


def dose(paths: PathsArg, as_json: JsonOpt = False, csv_file: CsvOpt = None,
         age: Annotated[float | None, typer.Option(
             "--age", help="Patient age in years for the k-factors (default: from the "
                           "header, else adult).")] = None,
         drl: Annotated[str | None, typer.Option(
             "--drl", help="Compare with a reference-level table: a shipped name "
                           f"({', '.join(shipped_drl_tables())}) or a YAML file.")] = None,
         local_drl: Annotated[Path | None, typer.Option(
             "--local-drl", help="Write a local DRL table (P25/P50/P75 of facility medians) "
                                 "computed from these studies, categorised by --drl (default "
                                 "the WS/T 637 template's categories), to this YAML file.")]
         = None,
         events_csv: Annotated[Path | None, typer.Option(
             "--events-csv", help="Also write one row per CT irradiation event (with its "
                                  "study's identity) to this CSV file.")] = None,
         ssde_method: Annotated[str | None, typer.Option(
             "--ssde", help="Measure SSDE on the CT images (AAPM 220 D_w) for events whose "
                            "report gives none: 'central' slice or 'mean' over z.")] = None,
         ) -> None:
    """Patient dose per study: CT dose reports (RDSR), radiopharmaceutical dose reports,
    image-header fallbacks; effective dose with its coefficient source; reference levels."""
    from scanbench.clinical import reference_levels as rl
    from scanbench.clinical.dose import doses_from_paths

    _check_paths(paths)
    if ssde_method not in (None, "central", "mean"):
        _err.print(f"[red]error:[/] --ssde '{ssde_method}': use 'central' or 'mean'")
        raise typer.Exit(EXIT_USAGE)
    table = None
    if drl is not None or local_drl is not None:
        try:
            table = rl.load_table(drl or "ws-t-637-2018-template")
        except ScanbenchError as exc:
            _err.print(f"[red]error:[/] {safe(exc)}")
            raise typer.Exit(EXIT_USAGE) from None
    with _progress(not as_json) as progress:
        report = doses_from_paths(paths, age_years=age, ssde_method=ssde_method,
                                  progress=progress)
    for where, why in report.notes:
        _err.print(f"[dim]note: skipped {safe(where)}: {safe(why)}[/]")
    for where, why in report.failures:
        _err.print(f"[red]error:[/] {safe(where)}: {safe(why)}")
    exams = rl.compare_exams(report.studies, table) if table and drl else []
    medians = rl.compare_medians(report.studies, table) if table and drl else []
    if as_json:
        objs = [s.to_dict() for s in report.studies]
        if table is not None and drl:
            for obj in objs:
                obj["reference_levels"] = {
                    "table": table.name, "source": table.source, "confidence": table.confidence,
                    "comparisons": [c.to_dict() for c in exams
                                    if c.subject == obj["study_instance_uid"]]}
        sys.stdout.write(json.dumps(objs, indent=1) + "\n")
    else:
        out = _out()
        print_dose(report.studies, out)
        if table is not None and drl:
            _print_drl(table, exams, medians, out)
    if local_drl is not None and table is not None:
        import yaml

        data = rl.local_drl_table(report.studies, table, local_drl.stem)
        try:
            local_drl.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        except OSError as exc:
            _err.print(f"[red]error:[/] {safe(local_drl)}: cannot write ({safe(exc.strerror)})")
            raise typer.Exit(EXIT_FAILURES) from None
        _err.print(f"local DRL table ({len(data['exams'])} exam categories) written to "
                   f"{safe(local_drl)}")
    if csv_file is not None:
        _write_csv(csv_file, dose_rows(report.studies))
    if events_csv is not None:
        _write_csv(events_csv, event_rows(report.studies))
    if not report.studies:
        if not report.failures:
            _err.print("[red]error:[/] no dose report, dose screen or PET/CT image found in "
                       + ", ".join(map(safe, paths)))
        raise typer.Exit(EXIT_USAGE)
    if report.failures:
        raise typer.Exit(EXIT_FAILURES)


def _print_drl(table: rl.DrlTable, exams: list[rl.Comparison], medians: list[rl.Comparison],
               out: Console) -> None:
    style = {"above_drl": "bold red", "above_achievable": "yellow",
             "below_abnormally_low": "magenta", "within": "green"}
    t = Table(title=text(f"Reference levels: {table.title} [{table.confidence}] — "
                         f"{table.source}"), header_style="bold")
    for col in ("exam, or facility | protocol median", "category", "quantity", "n", "value", "DRL",
                "achievable", "abnormally low", "outcome"):
        t.add_column(col, justify="right" if col in ("n", "value", "DRL", "achievable",
                                                       "abnormally low") else "left")
    for c in medians + exams:
        t.add_row(*map(text, (c.subject if c.n > 1 or "|" in c.subject else c.subject[-20:],
                              c.exam, c.quantity, str(c.n), _f(c.value),
                              _f(c.levels.get("drl")), _f(c.levels.get("achievable")),
                              _f(c.levels.get("abnormally_low")))),
                  text(c.outcome, style.get(c.outcome, "")))
    out.print(t)
    if not exams:
        _err.print(f"[yellow]note:[/] no CT exam matched a category of '{safe(table.name)}' with "
                   "numbers to compare")


def _time_arg(value: str) -> tuple[dt.time, dt.time]:
    try:
        a, b = value.split("-")
        start, end = dt.time.fromisoformat(a.strip()), dt.time.fromisoformat(b.strip())
    except ValueError:
        raise typer.BadParameter(f"'{value}': expected HH:MM-HH:MM, e.g. 08:00-17:00") from None
    if end <= start:
        raise typer.BadParameter(f"'{value}': the end must be after the start")
    return start, end


def _window_arg(value: str) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in value.split("-"))
    except ValueError:
        raise typer.BadParameter(f"'{value}': expected MIN-MAX in minutes, e.g. 55-75") from None
    if not 0 <= a < b:
        raise typer.BadParameter(f"'{value}': expected 0 ≤ MIN < MAX")
    return a, b


def workflow(paths: PathsArg, as_json: JsonOpt = False, csv_file: CsvOpt = None,
             uptake_window: Annotated[str, typer.Option(
                 "--uptake-window", help="PET uptake window in minutes, MIN-MAX.")] = "55-75",
             staffed: Annotated[str, typer.Option(
                 "--staffed-hours", help="Staffed hours per day, HH:MM-HH:MM.")] = "08:00-17:00",
             setup: Annotated[float, typer.Option(
                 "--setup-min", help="Set-up allowance added to each table time, min.")] = 0.0,
             cleardown: Annotated[float, typer.Option(
                 "--cleardown-min", help="Clear-down allowance added, min.")] = 0.0,
             days_csv: Annotated[Path | None, typer.Option(
                 "--days-csv", help="Also write one row per device and day (exams, "
                                    "utilisation, gaps) to this CSV file.")] = None) -> None:
    """Exam start, end, duration, table time, PET uptake time, CT scan time; per device and
    day the exams, utilisation of staffed hours and gaps between patients."""
    from scanbench.clinical.workflow import WorkflowSettings, workflow_from_paths

    _check_paths(paths)
    settings = WorkflowSettings(uptake_window_min=_window_arg(uptake_window),
                                staffed_hours=_time_arg(staffed),
                                setup_allowance_min=setup, cleardown_allowance_min=cleardown)
    with _progress(not as_json) as progress:
        report = workflow_from_paths(paths, settings=settings, progress=progress)
    for where, why in report.notes:
        _err.print(f"[dim]note: skipped {safe(where)}: {safe(why)}[/]")
    for where, why in report.failures:
        _err.print(f"[red]error:[/] {safe(where)}: {safe(why)}")
    if as_json:
        sys.stdout.write(json.dumps([e.to_dict() for e in report.exams], indent=1) + "\n")
    else:
        out = _out()
        table = Table(title="Exams", header_style="bold")
        for col in ("start", "device", "modality", "series", "duration min", "table min",
                    "uptake min", "CT scan s", "times from"):
            table.add_column(col, justify="right" if "min" in col or col.endswith(" s")
                             or col == "series" else "left")
        for e in report.exams:
            uptake = text(_f(e.uptake_time_min, 1))
            if e.uptake_in_window not in (None, True):
                uptake.append(" (outside)", style="red")
            table.add_row(*map(text, (_when(e.start), _device(e.device), "/".join(e.modalities),
                                      str(e.number_of_series or ""), _f(e.duration_min, 1),
                                      _f(e.table_time_min, 1))),
                          uptake, text(_f(e.ct_scan_time_s, 1)), text(e.time_source or ""))
        out.print(table)
        days = Table(title="Per device and day", header_style="bold")
        for col in ("day", "device", "exams", "table min", "utilisation %",
                    "median gap min", "max gap min"):
            days.add_column(col, justify="left" if col in ("day", "device") else "right")
        for d in report.days:
            dd = d.to_dict()
            days.add_row(d.day.isoformat(), text(_device(d.device)), str(d.exams),
                         _f(d.table_time_min, 1), _f(d.utilisation_pct, 1),
                         _f(dd["median_gap_min"], 1), _f(dd["max_gap_min"], 1))
        out.print(days)
        for e in report.exams:
            for w in e.warnings:
                _err.print(f"[yellow]warning:[/] study {safe(e.study_instance_uid)}: {safe(w)}")
    if csv_file is not None:
        rows = []
        for e in report.exams:
            row = e.to_dict()
            device = row.pop("device")
            row.pop("warnings")
            row["uptake_window_min"] = "-".join(f"{v:g}" for v in e.uptake_window_min or ())
            rows.append({**{f"device_{k}": v for k, v in device.items()}, **row,
                         "warnings": len(e.warnings)})
        _write_csv(csv_file, rows)
    if days_csv is not None:
        day_rows = []
        for d in report.days:
            row = d.to_dict()
            device = row.pop("device")
            row["gaps_min"] = ";".join(f"{g:.1f}" for g in d.gaps_min)
            day_rows.append({**{f"device_{k}": v for k, v in device.items()}, **row})
        _write_csv(days_csv, day_rows)
    if not report.exams:
        if not report.failures:
            _err.print("[red]error:[/] no exam with images or dose reports found in "
                       + ", ".join(map(safe, paths)))
        raise typer.Exit(EXIT_USAGE)
    if report.failures:
        raise typer.Exit(EXIT_FAILURES)


def register(app: typer.Typer) -> None:
    """Add ``dose`` and ``workflow`` to the main command line."""
    app.command("dose")(dose)
    app.command("workflow")(workflow)

"""The ``scanbench`` command line (Typer + rich).

Contract (DESIGN.md, "Command line and JSON contract"): ``--json`` prints exactly
one JSON array on stdout and nothing else; messages and progress go to stderr.
Exit status 0 when everything was analysed, 1 when at least one series or file
could not be, 2 for bad usage or when nothing readable was found.
"""

from __future__ import annotations

import copy
import importlib
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from scanbench import __version__
from scanbench.console import console, safe, text
from scanbench.entry import number_or_text
from scanbench.errors import ScanbenchError

if TYPE_CHECKING:  # scanbench.types imports numpy, which --help need not pay for
    from scanbench.types import Measurement, Result

app = typer.Typer(
    name="scanbench",
    help="Open, vendor-neutral evaluation of PET/CT, CT and MRI scanners from their DICOM.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Not a terminal: no hard wrap (a message stays one searchable line), tables 132 wide.
err = console(stderr=True)
out = console()

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2


# Commands that live beside the code they drive: command -> module whose
# ``register(app: typer.Typer) -> None`` adds it. Only the module of the command
# being run is imported: the virtual scanners alone pull in scipy and every
# phantom, seconds that `scanbench node` or `scanbench dose` should not pay.
COMMAND_MODULES: dict[str, str] = {
    "dose": "scanbench.clinical.cli",
    "workflow": "scanbench.clinical.cli",
    "ingest": "scanbench.service.cli",
    "db": "scanbench.service.cli",
    "jobs": "scanbench.service.cli",
    "node": "scanbench.net.cli",
    "pull": "scanbench.net.cli",
    "export": "scanbench.net.cli",
    "protocol": "scanbench.service.protocol_cli",
    "serve": "scanbench.web.cli",
    "user": "scanbench.web.cli",
    "site": "scanbench.web.cli",
    "audit": "scanbench.web.cli",
    "alerts": "scanbench.evaluation.alerts_cli",
    "lifecycle": "scanbench.evaluation.records_cli",
    "telemetry": "scanbench.evaluation.records_cli",
    "costs": "scanbench.evaluation.records_cli",
    "reliability": "scanbench.evaluation.records_cli",
    "economics": "scanbench.evaluation.records_cli",
    "scorecard": "scanbench.evaluation.cli",
    "due": "scanbench.evaluation.cli",
    "report": "scanbench.report.cli",
    "federation": "scanbench.programme.fed_cli",
    "review": "scanbench.programme.review_cli",
    "study": "scanbench.programme.studies_cli",
    "sus": "scanbench.programme.studies_cli",
    "training": "scanbench.programme.studies_cli",
}
_NATIVE_COMMANDS = {"analyze", "analyses", "specs", "demo", "version"}
SIMULATE_HELP = "Virtual scanners: write DICOM phantom scans with their ground truth."


def _mount_subapps(argv: list[str] | None = None) -> None:
    """Mount what the command line asks for; everything for no or an unknown command, and
    for the top-level ``--help`` everything but the virtual scanners' commands."""
    args = sys.argv[1:] if argv is None else argv
    command = next((a for a in args if not a.startswith("-")), None)
    if command in _NATIVE_COMMANDS:
        return
    if command in COMMAND_MODULES:
        importlib.import_module(COMMAND_MODULES[command]).register(app)
        return
    top_help = command is None and "--help" in args
    if top_help:
        # The top-level help lists ``simulate`` by its name and the help below alone:
        # the virtual scanners import SciPy and every phantom (~1 s, issue 15).
        simulate_app = typer.Typer()
    else:
        from scanbench.simulate.cli import simulate_app
    app.add_typer(simulate_app, name="simulate", help=SIMULATE_HELP)
    if command == "simulate":
        return
    for module in dict.fromkeys(COMMAND_MODULES.values()):
        importlib.import_module(module).register(app)
    if top_help:
        _shallow_groups(app)


def _shallow_groups(root: typer.Typer) -> None:
    """Give each command group of ``root`` an empty copy of its Typer app (same help and
    callback, no subcommands): the top-level help shows a group by its name and help only,
    and Typer would otherwise build all ~80 subcommands first, evaluating every parameter's
    type hints (about 0.06 s of the 0.24 s ``scanbench --help``, issue 15)."""
    for info in root.registered_groups:
        if info.typer_instance is None:
            continue
        shallow = copy.copy(info.typer_instance)
        shallow.registered_commands = []
        shallow.registered_groups = []
        info.typer_instance = shallow


def parse_params(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; numbers become int/float, everything else stays a string."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise typer.BadParameter(f"--param {item!r}: expected KEY=VALUE")
        params[key] = number_or_text(raw.strip())
    return params


def _labels_text(m: Measurement) -> str:
    """Labels in a physicist's words: '37 mm sphere', 'radial, 10 cm (r 98.7 mm, z 12.0 mm)'."""
    lab = dict(m.labels)
    parts = []
    if "sphere_mm" in lab:
        parts.append(f"{lab.pop('sphere_mm')} mm sphere")
    if "direction" in lab:
        parts.append(str(lab.pop("direction")))
    if "position_cm" in lab:
        parts.append(f"{lab.pop('position_cm')} cm")
    exact = [f"{k.removesuffix('_mm')} {v} mm" for k, v in list(lab.items()) if k.endswith("_mm")]
    for k in [k for k in lab if k.endswith("_mm")]:
        lab.pop(k)
    parts.extend(f"{k} {v}" for k, v in lab.items())
    text = ", ".join(parts)
    return f"{text} ({', '.join(exact)})" if exact else text


def _fmt(v: float | None) -> str:
    if v is None:
        return ""
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 1e5 or a < 1e-3:
        return f"{v:.4g}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 10:
        return f"{v:.2f}"
    return f"{v:.3f}"


_STATUS_STYLE = {"pass": "green", "fail": "bold red", "info": "dim",
                 "within_unconfirmed": "cyan", "outside_unconfirmed": "yellow",
                 "not_judged": "magenta", "refused": "bold magenta"}


def print_result(result: Result, console: Console) -> None:
    """A physicist's table of one result: quantity, where, value, unit, limits, status."""
    d = result.device
    device = " ".join(x for x in (d.manufacturer, d.model) if x) or "unknown device"
    if d.serial:
        device += f" (serial {d.serial})"
    # Device, series and source are DICOM text: never read as markup (text()).
    table = Table(title=text(f"{result.analysis}  ·  {result.standard}"), title_justify="left",
                  caption=text(f"{device}; "
                               + (f"series {result.series_instance_uid}"
                                  if result.series_instance_uid
                                  else (result.source or "no series UID"))
                               + (f"; spec {result.spec}" if result.spec else "")),
                  caption_justify="left")
    table.add_column("measurement", no_wrap=True)
    table.add_column("where")
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("±", justify="right", no_wrap=True)
    table.add_column("unit", no_wrap=True)
    table.add_column("limits")
    table.add_column("status", no_wrap=True)
    notes: list[str] = []  # why a value is refused or not judged, numbered once each
    for m in result.measurements:
        limits = ""
        if m.limits:
            lo = _fmt(m.limits.low) if m.limits.low is not None else "−∞"
            hi = _fmt(m.limits.high) if m.limits.high is not None else "+∞"
            limits = f"{lo} … {hi}" + ("" if m.limits.verified else " (unconfirmed)")
        status: str = m.status
        if m.note:
            if m.note not in notes:
                notes.append(m.note)
            status += f" [{notes.index(m.note) + 1}]"
        value = _fmt(m.value) if math.isfinite(m.value) else "—"  # a refused value is withheld
        table.add_row(text(m.name), text(_labels_text(m)), value,
                      _fmt(m.uncertainty) if m.uncertainty else "", text(m.unit), text(limits),
                      text(status, _STATUS_STYLE.get(m.status, "")))
    console.print(table)
    for k, note in enumerate(notes, 1):
        console.print(f"[magenta]note {k}:[/] {safe(note)}")
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {safe(w)}")


@app.command()
def analyze(
    paths: Annotated[list[Path], typer.Argument(help="DICOM files, folders (recursive) or zips.")],
    analysis: Annotated[str | None, typer.Option(
        "--analysis", "-a", help="Run this analysis instead of the most confident one.")] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="KEY=VALUE passed to the analysis; repeatable.")] = None,
    spec: Annotated[str | None, typer.Option(
        help="Score against this spec (name or YAML path); see `scanbench specs`.")] = None,
    baseline: Annotated[Path | None, typer.Option(
        help="Results JSON (from `analyze --json`) holding the device's accepted baseline, "
             "for spec limits relative to it.")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print one JSON array on stdout.")] = False,
    report: Annotated[Path | None, typer.Option(
        help="Write an HTML (.html) or PDF (.pdf) report with figures.")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, help="Processes analysing series at once (default: every core; 1: in this "
                    "process).")] = None,
) -> None:
    """Analyse every image series found: the phantom is recognised, ROIs placed, measured."""
    from scanbench.api import analyze_paths

    params = parse_params(param or [])
    try:  # a misspelt analysis or spec is bad usage, found before any file is read
        if analysis:
            from scanbench.analysis.registry import get as get_analysis

            get_analysis(analysis)
        if spec:
            from scanbench.specs import load_spec

            load_spec(spec)
        if baseline is not None:
            from scanbench.evaluation import Baseline

            if not spec:
                raise ScanbenchError("--baseline needs --spec: a baseline only sets the "
                                     "limits of a spec's baseline rules")
            Baseline.load(baseline)
    except ScanbenchError as exc:
        err.print(f"[red]error:[/] {safe(exc)}")
        raise typer.Exit(EXIT_USAGE) from None
    missing = [p for p in paths if not p.exists()]
    if missing:
        for p in missing:
            err.print(f"[red]error:[/] {safe(p)}: no such file or folder")
        raise typer.Exit(EXIT_USAGE)
    if report is not None and report.suffix.lower() not in (".html", ".htm", ".pdf"):
        err.print(f"[red]error:[/] {safe(report)}: the report must end in .html or .pdf")
        raise typer.Exit(EXIT_USAGE)
    if report is not None and not report.parent.is_dir():
        # A mistyped folder is bad usage, found before minutes of analysis (never created:
        # a typo would otherwise put the report where nobody looks for it).
        where = report.parent
        problem = "is not a folder" if where.exists() else "no such folder"
        err.print(f"[red]error:[/] --report {safe(report)}: {safe(where)}: {problem}")
        raise typer.Exit(EXIT_USAGE)
    try:
        with _progress() as prog:
            task = prog.add_task("reading files", total=None)

            def reading(done: int, total: int) -> None:
                prog.update(task, completed=done, total=total)

            def analysing(where: str) -> None:
                prog.update(task, description=f"analysing {safe(where[-60:])}", total=None,
                            completed=0)

            rep = analyze_paths(paths, analysis=analysis, params=params, spec=spec,
                                baseline=baseline, progress=analysing, read_progress=reading,
                                workers=workers)
    except ScanbenchError as exc:  # bad spec name, unknown analysis: usage errors
        err.print(f"[red]error:[/] {safe(exc)}")
        raise typer.Exit(EXIT_USAGE) from None

    from scanbench.entry import outcome, print_err, report_lines

    print_err(report_lines(rep))
    if as_json:
        sys.stdout.write(json.dumps([r.to_dict() for r in rep.results], indent=1) + "\n")
    else:
        for r in rep.results:
            print_result(r, out)
    if report is not None and rep.results:
        from scanbench.report import write_report

        try:
            write_report(rep.results, report, failures=[(f.where, f.reason) for f in rep.failures],
                         skipped=[(s.where, s.reason) for s in rep.skipped])
        except (ScanbenchError, OSError) as exc:
            err.print(f"[red]error:[/] report {safe(report)}: {safe(exc)}")
            raise typer.Exit(EXIT_FAILURES) from None
        err.print(f"report written to {safe(report)}")
    lines, status = outcome(rep, paths)
    print_err(lines)
    if status:
        raise typer.Exit(status)


def _progress() -> Progress:
    """The progress bar on stderr, drawn on a terminal only (elsewhere rich's live display
    drew nothing but left one empty line on stderr)."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, transient=True,
                    disable=not err.is_terminal)


@app.command("analyses")
def list_analyses(
    analysis_id: Annotated[str | None, typer.Argument(
        metavar="ID", help="Show only this analysis.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """List the analyses: id, modality, the standard and clause each implements (with its
    reference page under docs/standards/), and the parameters it takes (name, meaning,
    unit, default, or "required")."""
    from scanbench.analysis.registry import all_analyses, get
    from scanbench.catalogue import analyses_json, analyses_table

    try:
        chosen = [get(analysis_id)] if analysis_id else list(all_analyses().values())
    except ScanbenchError as exc:
        err.print(Text(f"error: {exc}", style="red"))
        raise typer.Exit(EXIT_USAGE) from None
    if as_json:
        sys.stdout.write(json.dumps(analyses_json(chosen), indent=1) + "\n")
    else:
        out.print(analyses_table(chosen))


@app.command("specs")
def list_specs_cmd(
    name: Annotated[str | None, typer.Argument(
        metavar="NAME", help="A shipped spec's name or a spec YAML file: print its limits. "
        "`diff A B`: what changed from spec A to spec B.")
    ] = None,
    compared: Annotated[list[str] | None, typer.Argument(
        metavar="A B", help="With `diff`: the two specs A and B.", show_default=False)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """List the evaluation specifications shipped with scanbench; with NAME, print that
    spec's limits (analysis, measurement, labels, low, high, unit, source) and whether
    each is confirmed by its source (only confirmed limits judge pass or fail).
    `scanbench specs diff A B` lists the limits and tests added, removed, tightened or
    loosened from A to B. Specs in the node's database: `scanbench specs load FILE`,
    `specs assign NAME --modality ...`, `specs assignments`, `specs unassign ID`."""
    from scanbench.catalogue import spec_header, spec_json, spec_table, specs_table
    from scanbench.specs import list_specs, load_spec

    if name == "diff" or compared:
        _specs_diff(name, compared or [], as_json)
        return
    try:
        specs = [load_spec(name)] if name else [load_spec(n) for n in list_specs()]
    except ScanbenchError as exc:
        err.print(Text(f"error: {exc}", style="red"))
        raise typer.Exit(EXIT_USAGE) from None
    if as_json:
        doc: Any = spec_json(specs[0]) if name else [spec_json(s) for s in specs]
        sys.stdout.write(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    elif name:
        out.print(Text(spec_header(specs[0])))
        out.print(spec_table(specs[0]))
    else:
        out.print(specs_table(specs))


def _specs_diff(name: str | None, compared: list[str], as_json: bool) -> None:
    """`scanbench specs diff A B`: the changes from spec A to spec B, table or JSON."""
    from scanbench.catalogue import diff_json, diff_table
    from scanbench.specs import load_spec
    from scanbench.specs.diff import diff_specs

    if name != "diff" or len(compared) != 2:
        err.print(Text("error: compare two specs with `scanbench specs diff A B`; "
                       "`scanbench specs NAME` prints one", style="red"))
        raise typer.Exit(EXIT_USAGE)
    try:
        a, b = (load_spec(x) for x in compared)
    except ScanbenchError as exc:
        err.print(Text(f"error: {exc}", style="red"))
        raise typer.Exit(EXIT_USAGE) from None
    changes = diff_specs(a, b)
    if as_json:
        sys.stdout.write(json.dumps(diff_json(a, b, changes), indent=1, ensure_ascii=False)
                         + "\n")
    else:
        out.print(diff_table(a, b, changes))


@app.command()
def demo(
    home: Annotated[Path | None, typer.Option(
        "--home", help="The new data directory of the demo node (default: a new folder, "
        "printed).")] = None,
    days: Annotated[int, typer.Option(help="Days of simulated history, ending yesterday.",
                                      min=70)] = 365,
    end: Annotated[str | None, typer.Option(
        help="The last simulated day, YYYY-MM-DD (default: yesterday).")] = None,
    exams: Annotated[int, typer.Option(help="Clinical CT and PET/CT exams (about).",
                                       min=10)] = 300,
    workers: Annotated[int | None, typer.Option(
        help="Processes that simulate and analyse (default: cores − 1 for the node's "
        "analysis jobs; 0: in this process).")] = None,
    periodic: Annotated[bool, typer.Option(
        "--periodic/--no-periodic", help="Include the quarterly and annual phantom tests "
        "(default); --no-periodic: daily and weekly QC only (faster; the same story).")
    ] = True,
    serve: Annotated[bool, typer.Option(
        "--serve/--no-serve", help="Serve the web application when prepared (default); "
        "--no-serve prepares only.")] = True,
    host: Annotated[str, typer.Option(help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0: any free port, printed).")] = 8000,
    dicom_port: Annotated[int | None, typer.Option(
        help="Also run the node's DICOM receiver (C-STORE) on this port.")] = None,
    phantom_report: Annotated[bool, typer.Option(
        "--phantom-report", help="Instead of the fleet: simulate one scan of each phantom, "
        "analyse each and write report.html into --out (the analyses' showcase).")] = False,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="With --phantom-report: where to write the scans and report "
        "(default: a new temp folder).")] = None,
    programme: Annotated[bool, typer.Option(
        "--programme", help="The fleet as a small programme: a central node and one site "
        "node per hospital under --home, sending over HTTP on loopback; review queue, "
        "reader study, SUS, training, programme report (docs/programme.md). Try --days 70 "
        "--no-periodic --exams 30.")] = False,
) -> None:
    """A virtual fleet of PET/CT, CT and MRI scanners at three sites, a year of QC and
    clinical exams through the node's real ingest path, evaluated; then the web
    application with demo logins (see docs/demo.md). With --phantom-report: the phantom
    analyses' report instead. With --programme: the same hospitals as a small programme,
    a central node and one site node each (see docs/programme.md)."""
    if phantom_report:
        _phantom_report(out_dir)
        return
    if programme:
        from scanbench.demo.programme import run_programme_demo

        run_programme_demo(home=home, days=days, end=end, exams=exams, workers=workers,
                           periodic=periodic, serve=serve, host=host, port=port,
                           console_out=out, console_err=err)
        return
    from scanbench.demo.cli import run_fleet_demo

    run_fleet_demo(home=home, days=days, end=end, exams=exams, workers=workers,
                   periodic=periodic, serve=serve, host=host, port=port,
                   dicom_port=dicom_port, console_out=out, console_err=err)


def _phantom_report(out_dir: Path | None) -> None:
    """Simulate PET, CT and MRI phantom scans and clinical studies, analyse them, write a report.

    PET: the NEMA IEC body phantom (shifted and rotated; and an EARL1-harmonised
    10:1 reconstruction), point sources at 1, 10 and 20 cm, a uniform cylinder.
    CT: a daily-QC water phantom off-centre on the table and the ACR 464
    phantom rotated by 4°. MRI: the ACR large phantom, T1 and T2 with a sagittal
    localiser. Each is analysed as a physicist would and scored against its spec.
    Then the patient dose and workflow timings of simulated CT and PET/CT studies.
    """
    from scanbench.api import analyze_paths
    from scanbench.clinical.cli import print_dose
    from scanbench.clinical.dose import doses_from_paths
    from scanbench.clinical.workflow import workflow_from_paths
    from scanbench.report import write_report
    from scanbench.report.clinical import dose_section, workflow_section
    from scanbench.simulate.clinical import simulate_ct_exams, simulate_petct_exams
    from scanbench.simulate.ct import CtScannerModel, render_water
    from scanbench.simulate.ct_dicom import write_ct_series
    from scanbench.simulate.ct_phantoms import render_acr464
    from scanbench.simulate.mr import simulate_acr
    from scanbench.simulate.pet import simulate_iq, simulate_point, simulate_uniform

    base = out_dir or Path(tempfile.mkdtemp(prefix="scanbench-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    ct_model = CtScannerModel()

    def ct_scan(render: Any, description: str, **kwargs: Any) -> Any:
        def write(d: Path) -> dict[str, Any]:
            volume, truth = render(ct_model, **kwargs)
            write_ct_series(volume, d, model=ct_model, description=description)
            (d / "ground_truth.json").write_text(json.dumps(truth, indent=1, default=float))
            return dict(truth)
        return write

    # (title, folder, simulate, analysis parameters from the truth, spec)
    jobs: list[tuple[str, str, Any, Any, str | None]] = [
        ("NEMA IEC body phantom, 4:1, shifted and rotated", "pet-iq",
         lambda d: simulate_iq(d, shift_mm=(12.0, -8.0, 5.0), rotation_deg=7.0, seed=1,
                               scatter_residual_percent=3.0),
         lambda t: {"activity_ratio": t["activity_ratio"]}, None),
        # EARL1 harmonisation of a ~3 mm scanner: 4 mm voxels and a 7 mm Gaussian filter.
        ("NEMA IEC body phantom, 10:1, EARL1-harmonised reconstruction", "pet-iq-earl",
         lambda d: simulate_iq(d, activity_ratio=10.0, background_bq_ml=2000.0, voxel_mm=4.0,
                               post_filter_fwhm_mm=7.0, seed=4),
         lambda t: {"activity_ratio": t["activity_ratio"],
                    "sphere_concentration_bq_ml": t["sphere_bq_ml"]}, "earl1"),
        ("point sources at 1, 10 and 20 cm", "pet-point",
         lambda d: simulate_point(d, seed=2), lambda t: {}, "nema-nu2-2018"),
        ("uniform cylinder for calibration", "pet-uniform",
         lambda d: simulate_uniform(d, seed=3),
         lambda t: {"volume_ml": t["volume_ml"]}, "earl-calibration"),
        ("CT daily water phantom, off-centre", "ct-water",
         ct_scan(render_water, "CT water phantom", seed=5, shift_mm=(8.0, -5.0, 0.0),
                 table_z_mm=120.0),
         lambda t: {}, "daily-water-qc"),
        ("ACR CT 464 phantom, rotated 4°", "ct-acr464",
         ct_scan(render_acr464, "ACR CT 464 phantom", seed=6, rotation_deg=4.0,
                 shift_mm=(5.0, -3.0, 0.0)),
         lambda t: {"protocol": "adult_abdomen"}, "acr-ct"),
        ("ACR MRI large phantom, T1 and T2 with a sagittal localiser", "mr-acr",
         lambda d: simulate_acr(d, seed=7), lambda t: {}, "acr-mri-2022"),
    ]
    results: list[Result] = []
    failures: list[tuple[str, str]] = []
    with _progress() as prog:
        task = prog.add_task("demo", total=2 * len(jobs) + 1)
        for title, name, simulate, params, spec in jobs:
            prog.update(task, description=f"simulating {title}")
            truth = simulate(base / name)
            prog.advance(task)
            prog.update(task, description=f"analysing {title}")
            rep = analyze_paths([base / name], params=params(truth), spec=spec)
            results.extend(rep.results)
            failures.extend((f.where, f.reason) for f in rep.failures)
            prog.advance(task)
        prog.update(task, description="simulating CT and PET/CT patient studies")
        simulate_ct_exams(base / "clinical", n=4)
        simulate_petct_exams(base / "clinical", n=2)
        doses = doses_from_paths([base / "clinical"])
        failures.extend((str(where), why) for where, why in doses.failures)
        timings = workflow_from_paths([base / "clinical"])
        failures.extend((str(where), why) for where, why in timings.failures)
        prog.advance(task)
    for r in results:
        print_result(r, out)
    print_dose(doses.studies, out)
    for where, why in failures:
        err.print(f"[red]error:[/] {safe(where)}: {safe(why)}")
    report = base / "report.html"
    write_report(results, report, title="scanbench demo: virtual PET, CT and MRI scanners",
                 failures=failures,
                 extra_sections=[dose_section(doses.studies), workflow_section(timings)])
    out.print(f"\nscans and ground truth in [bold]{safe(base)}[/]; report: [bold]{safe(report)}[/]"
              f"\npatient dose of the simulated studies: scanbench dose {safe(base / 'clinical')}")
    if failures:
        raise typer.Exit(EXIT_FAILURES)


@app.command()
def version() -> None:
    """Print the scanbench version."""
    out.print(__version__)


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["specs"] and args[1:2] and args[1] in ("load", "assign", "assignments",
                                                           "unassign"):
        # specs stored in the node's database (scanbench.evaluation.cli); `specs NAME`
        # and `specs diff A B` below read spec files
        from scanbench.evaluation.cli import run_specs_store

        run_specs_store(args[1:])
        return
    # no arguments prints the top-level help (no_args_is_help): mounted as for --help
    _mount_subapps(args or ["--help"])
    try:
        app()
    except ScanbenchError as exc:  # anything that escaped a command: a message, never a traceback
        err.print(f"[red]error:[/] {safe(exc)}")
        sys.exit(EXIT_USAGE)


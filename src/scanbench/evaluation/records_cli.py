"""``scanbench lifecycle add|import|list|staffed``, ``scanbench telemetry import|show``,
``scanbench costs add|list``, ``scanbench reliability`` and ``scanbench economics``: a
device's life, its magnet telemetry and its costs in the node's store, and the
reliability and cost per exam computed from them (issue 13 §4, §5; the methods are in
:mod:`scanbench.evaluation.records`).

Devices are named by id, serial number or display name. Every change is audited as done
by ``cli:<login>``. Exit status: 0 done, 2 bad usage or input (the message names the
file, line and field)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
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

lifecycle_app = typer.Typer(help="Lifecycle events of devices (installation, service, "
                            "downtime, upgrades, ...) and their staffed hours.",
                            no_args_is_help=True)
telemetry_app = typer.Typer(help="MRI magnet telemetry: helium level, pressure, cold-head "
                            "temperature, field drift; helium boil-off.",
                            no_args_is_help=True)
costs_app = typer.Typer(help="Entered costs of devices (acquisition, service contract, "
                        "consumables, cryogens, parts).", no_args_is_help=True)

DeviceArg = Annotated[str, typer.Argument(help="Device id, serial number or display name.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout only.")]
FromOpt = Annotated[str | None, typer.Option(
    "--from", help="Period start, a date or date-time (local clock; default: one year "
    "before --to).")]
ToOpt = Annotated[str | None, typer.Option(
    "--to", help="Period end, excluded (default: tomorrow, so today counts).")]


def register(app: typer.Typer) -> None:
    app.add_typer(lifecycle_app, name="lifecycle")
    app.add_typer(telemetry_app, name="telemetry")
    app.add_typer(costs_app, name="costs")
    app.command("reliability")(reliability)
    app.command("economics")(economics)


def _actor() -> Any:
    from scanbench.web.cli import _actor as actor

    return actor()


def _run(home: Path | None, url: str | None, work: Callable[[Any], Any],
         change: bool = False) -> Any:
    """Run ``work(session)`` (committed with its audit entries when ``change``); a
    ScanbenchError is the bad-input exit with its message."""
    from scanbench.web.audit import commit_with_retry

    try:
        db = _db(home, url)
    except ScanbenchError as exc:
        raise _fail(exc) from None
    try:
        with db.sessions() as s:
            return commit_with_retry(s, work) if change else work(s)
    except ScanbenchError as exc:
        raise _fail(exc) from None
    finally:
        db.close()


def _device(s: Any, ref: str) -> Any:
    from scanbench.evaluation.records import DeviceResolver

    try:
        return DeviceResolver(s).find(ref)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _when(value: str, what: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"{what}: {value!r} is not an ISO 8601 date or date-time "
                         "(2026-03-02 or 2026-03-02T08:00)") from None


def _period(start: str | None, end: str | None) -> tuple[dt.datetime, dt.datetime]:
    p1 = (_when(end, "--to") if end else
          dt.datetime.combine(dt.date.today() + dt.timedelta(days=1), dt.time()))
    p0 = _when(start, "--from") if start else p1 - dt.timedelta(days=365)
    return p0.replace(tzinfo=None), p1.replace(tzinfo=None)


def _num(v: float | None, fmt: str = ".1f") -> str:
    return "—" if v is None else format(v, fmt)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=1, ensure_ascii=False, default=str))


# --------------------------------------------------------------------------- lifecycle

@lifecycle_app.command("add")
def lifecycle_add(
    device: DeviceArg,
    kind: Annotated[str, typer.Argument(help="installation, acceptance, commissioning, "
                                        "planned_service, unplanned_service, downtime "
                                        "(= downtime_start), downtime_end, "
                                        "part_replacement, software_change, relocation, "
                                        "decommissioning.")],
    time: Annotated[str, typer.Argument(help="When (ISO 8601, the site's local time).")],
    end: Annotated[str | None, typer.Option(help="A downtime's end (back in clinical "
                                                 "use); leave out while still down.")] = None,
    planned: Annotated[bool, typer.Option(help="The downtime is planned maintenance, "
                                               "not a failure.")] = False,
    new_baseline: Annotated[bool, typer.Option(
        help="Trend alerts start a new baseline here (after a service, repair, part or "
        "upgrade that shifts the measurements).")] = False,
    note: Annotated[str, typer.Option(help="What happened.")] = "",
    cost: Annotated[float | None, typer.Option(help="What it cost.")] = None,
    currency: Annotated[str | None, typer.Option(help="ISO 4217 code of the cost.")] = None,
    home: HomeOpt = None, database_url: UrlOpt = None,
) -> None:
    """Add a lifecycle event to a device (a downtime with --end: its start and end)."""
    from scanbench.evaluation import records

    def work(s: Any) -> list[int]:
        d = _device(s, device)
        rows = records.add_event(
            s, _actor(), d.id, kind, _when(time, "time"),
            end_at=_when(end, "--end") if end else None, planned=planned,
            new_baseline=new_baseline, summary=note, cost=cost, currency=currency)
        return [r.id for r in rows]

    ids = _run(home, database_url, work, change=True)
    out.print(f"lifecycle event(s) {', '.join(map(str, ids))} added")


@lifecycle_app.command("import")
def lifecycle_import(path: Path, home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """Import a lifecycle CSV (columns device, kind, start, end, note, cost, currency,
    id; see docs/evaluation.md). Importing the same file again adds nothing."""
    from scanbench.evaluation import records

    got = _run(home, database_url,
               lambda s: records.import_lifecycle_csv(s, _actor(), path), change=True)
    out.print(f"{got.added} event(s) added, {got.skipped} already stored, "
              f"{len(got.devices)} device(s)")


@lifecycle_app.command("list")
def lifecycle_list(device: DeviceArg, as_json: JsonOpt = False, home: HomeOpt = None,
                   database_url: UrlOpt = None) -> None:
    """A device's lifecycle events in time order."""
    from scanbench.evaluation import records

    def work(s: Any) -> list[dict[str, Any]]:
        return [records.event_view(e) for e in records.device_events(s, _device(s, device).id)]

    rows = _run(home, database_url, work)
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "when", "kind", "planned", "new baseline", "cost", "source",
                  "summary")
    for r in rows:
        cost = f"{r['cost']:.2f} {r['currency']}" if r["cost"] is not None else ""
        table.add_row(str(r["id"]), text(r["occurred_at"] or ""), text(r["kind"]),
                      "yes" if r["planned"] else "", "yes" if r["new_baseline"] else "",
                      text(cost), text(r["source"]), text(r["summary"]))
    out.print(table)


@lifecycle_app.command("staffed")
def lifecycle_staffed(
    device: DeviceArg,
    hours: Annotated[str | None, typer.Argument(
        help='New staffed hours as JSON, e.g. \'{"weekdays": [0,1,2,3,4], "start": '
        '"08:00", "end": "18:00"}\' (0 = Monday); \'{}\' = around the clock. Leave out '
        "to print them.")] = None,
    home: HomeOpt = None, database_url: UrlOpt = None,
) -> None:
    """Print or set the hours a device is meant to be in clinical use (for uptime %)."""
    from scanbench.evaluation import records

    if hours is None:
        value = _run(home, database_url, lambda s: _device(s, device).staffed_hours or {})
        _print_json(value)
        return
    try:
        parsed = json.loads(hours)
    except json.JSONDecodeError as exc:
        raise _fail(InputError(f"staffed hours: not JSON ({exc.msg})")) from None
    _run(home, database_url, lambda s: records.set_staffed_hours(
        s, _actor(), _device(s, device).id, parsed).id, change=True)
    out.print("staffed hours set")


# --------------------------------------------------------------------------- telemetry

@telemetry_app.command("import")
def telemetry_import(path: Path, home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """Import a telemetry CSV (device, time, helium_level_pct, pressure_kpa,
    coldhead_temp_k, field_drift_ppm_per_h). Readings already stored are skipped."""
    from scanbench.evaluation import records

    got = _run(home, database_url,
               lambda s: records.import_telemetry_csv(s, _actor(), path), change=True)
    out.print(f"{got.added} reading(s) added, {got.skipped} already stored, "
              f"{len(got.devices)} device(s)")


@telemetry_app.command("show")
def telemetry_show(
    device: DeviceArg,
    channel: Annotated[str | None, typer.Option(
        help="Print this channel's readings (helium_level_pct, pressure_kpa, "
        "coldhead_temp_k, field_drift_ppm_per_h).")] = None,
    compare: Annotated[str | None, typer.Option(
        help="Another magnet: both boil-off rates side by side.")] = None,
    dewar_l: Annotated[float | None, typer.Option(
        "--dewar-l", help="Liquid helium capacity of DEVICE's dewar in litres (gives "
        "L/day).")] = None,
    window_days: Annotated[float, typer.Option(help="Days of readings for the rate.")] = 30.0,
    as_json: JsonOpt = False, home: HomeOpt = None, database_url: UrlOpt = None,
) -> None:
    """A magnet's helium boil-off (Theil-Sen rate with its 95 % interval), or one
    channel's readings, or two magnets side by side."""
    from scanbench.evaluation import records

    def work(s: Any) -> Any:
        d = _device(s, device)
        if channel:
            ser = records.channel_series(s, d.id, channel)
            return {"device_id": d.id, "channel": channel, "unit": ser.unit,
                    "points": [[t.isoformat(), v]
                               for t, v in zip(ser.times, ser.values, strict=True)]}
        if compare:
            other = _device(s, compare)
            return records.compare_magnets(
                s, d.id, other.id, dewar_l={d.id: dewar_l} if dewar_l else None,
                window_days=window_days)
        b = records.device_boil_off(s, d.id, dewar_l=dewar_l, window_days=window_days)
        return records.boil_off_view(b, records.device_label(d))

    got = _run(home, database_url, work)
    if as_json:
        _print_json(got)
        return
    if channel:
        table = Table("time", f"{channel} ({got['unit']})")
        for t, v in got["points"]:
            table.add_row(t, f"{v:g}")
        out.print(table)
        return
    views = [got["a"], got["b"]] if compare else [got]
    table = Table("magnet", "boil-off %/day", "95 % interval", "L/day", "readings",
                  "consistent with zero", "notes")
    for v in views:
        ci = v["ci95_pct_per_day"]
        table.add_row(text(v["device"]), _num(v["rate_pct_per_day"], ".4f"),
                      f"{ci[0]:.4f} to {ci[1]:.4f}" if ci else "—",
                      _num(v["rate_l_per_day"], ".3f"), str(v["points"]),
                      {True: "yes", False: "no", None: "—"}[v["consistent_with_zero"]],
                      text("; ".join(v["notes"])))
    out.print(table)
    if compare:
        verdict = {True: "different (95 % intervals disjoint)",
                   False: "not shown different (intervals overlap)",
                   None: "not comparable"}[got["different"]]
        out.print(f"difference {_num(got['difference_pct_per_day'], '.4f')} %/day: "
                  f"{verdict}")
    out.print(safe(views[0]["method"]))


# --------------------------------------------------------------------------- costs

@costs_app.command("add")
def costs_add(
    device: DeviceArg,
    kind: Annotated[str, typer.Argument(help="acquisition, service_contract, consumable, "
                                        "cryogen, parts or other.")],
    amount: Annotated[float, typer.Argument(help="Amount (per year for a service "
                                                 "contract).")],
    currency: Annotated[str, typer.Argument(help="ISO 4217 code, e.g. EUR.")],
    on: Annotated[str, typer.Argument(help="Date (an acquisition: start of service; a "
                                      "contract: its start).")],
    until: Annotated[str | None, typer.Option(help="A service contract's end date "
                                                   "(excluded).")] = None,
    life_years: Annotated[float | None, typer.Option(
        help="An acquisition's useful life in years (straight-line depreciation).")] = None,
    residual: Annotated[float, typer.Option(help="An acquisition's residual value.")] = 0.0,
    note: Annotated[str, typer.Option()] = "",
    home: HomeOpt = None, database_url: UrlOpt = None,
) -> None:
    """Enter a cost of a device."""
    from scanbench.evaluation import records

    def work(s: Any) -> int:
        row = records.add_cost(
            s, _actor(), _device(s, device).id, kind, amount, currency,
            _when(on, "date").date(), end_on=_when(until, "--until").date() if until else None,
            life_years=life_years, residual=residual, note=note)
        return int(row.id)

    cid = _run(home, database_url, work, change=True)
    out.print(f"cost {cid} added")


@costs_app.command("list")
def costs_list(device: DeviceArg, as_json: JsonOpt = False, home: HomeOpt = None,
               database_url: UrlOpt = None) -> None:
    """A device's entered costs."""
    from scanbench.evaluation import records

    rows = _run(home, database_url, lambda s: [
        records.cost_view(c) for c in records.device_costs(s, _device(s, device).id)])
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "kind", "amount", "from", "until", "life (years)", "residual", "note")
    for r in rows:
        table.add_row(str(r["id"]), r["kind"], f"{r['amount']:.2f} {r['currency']}",
                      r["start_on"], r["end_on"] or "", _num(r["life_years"], "g"),
                      f"{r['residual']:.2f}" if r["residual"] else "", text(r["note"]))
    out.print(table)


# --------------------------------------------------------------------------- reports

def _devices(s: Any, device: list[str] | None, model: str | None, with_: Any) -> list[Any]:
    """The devices named, else every device of ``model`` (case-insensitive, manufacturer
    and model or model alone), else every device with rows in ``with_``."""
    from sqlalchemy import select

    from scanbench.evaluation import records
    from scanbench.store import models as m

    if device:
        return [_device(s, d) for d in device]
    rows = list(s.scalars(select(m.Device).order_by(m.Device.id)))
    if model:
        key = model.casefold()
        rows = [d for d in rows if key in (records.model_label(d).casefold(),
                                           (d.model or "").casefold())]
        if not rows:
            raise InputError(f"--model: no device of model {model!r}")
        return rows
    used = set(s.scalars(select(with_).distinct()))
    return [d for d in rows if d.id in used]


def reliability(
    device: Annotated[list[str] | None, typer.Option(
        "--device", help="Device id, serial or name (repeatable); default: every device "
        "with lifecycle events.")] = None,
    model: Annotated[str | None, typer.Option(help="Every device of this model.")] = None,
    start: FromOpt = None, end: ToOpt = None, as_json: JsonOpt = False,
    home: HomeOpt = None, database_url: UrlOpt = None,
) -> None:
    """Uptime %, unplanned downtime, MTBF, MTTR and availability per device and per model
    from the stored lifecycle events (definitions printed; IEC 60050-192 terms)."""
    from scanbench.evaluation import records
    from scanbench.store import models as m

    p0, p1 = _period(start, end)

    def work(s: Any) -> dict[str, Any]:
        devs = _devices(s, device, model, m.LifecycleEvent.device_id)
        names = {str(d.id): records.device_label(d) for d in devs}
        per = [records.device_reliability(s, d.id, p0, p1) for d in devs]
        from scanbench.evaluation.reliability import model_reliability

        return {"devices": [records.reliability_view(r, names) for r in per],
                "models": [records.reliability_view(r, names)
                           for r in model_reliability(per)],
                "definitions": records.DEFINITIONS}

    got = _run(home, database_url, work)
    if as_json:
        _print_json(got)
        return
    for title, rows in (("device", got["devices"]), ("model", got["models"])):
        table = Table(title, "in service h", "uptime %", "unplanned down h", "planned h",
                      "failures", "MTBF h", "MTTR h", "availability %",
                      title=f"reliability per {title}, {p0:%Y-%m-%d %H:%M} to "
                            f"{p1:%Y-%m-%d %H:%M}")
        for r in rows:
            table.add_row(text(", ".join(r["device_names"]) if title == "device"
                               else r["model"]),
                          _num(r["in_service_h"]), _num(r["uptime_pct"], ".2f"),
                          _num(r["unplanned_downtime_h"]), _num(r["planned_downtime_h"]),
                          str(r["failures"]), _num(r["mtbf_h"]), _num(r["mttr_h"]),
                          _num(r["availability_pct"], ".2f"))
        out.print(table)
    for key, value in got["definitions"].items():
        out.print(f"{key}: {safe(value)}")


def economics(
    device: Annotated[list[str] | None, typer.Option(
        "--device", help="Device id, serial or name (repeatable); default: every device "
        "with entered costs.")] = None,
    model: Annotated[str | None, typer.Option(help="Every device of this model.")] = None,
    start: FromOpt = None, end: ToOpt = None,
    helium_price: Annotated[float | None, typer.Option(
        help="With --dewar-l: price per litre of liquid helium; each magnet's measured "
        "boil-off is priced beside its entered costs (not added to them).")] = None,
    dewar_l: Annotated[float | None, typer.Option(
        "--dewar-l", help="Liquid helium capacity of the magnets' dewar in litres.")] = None,
    currency: Annotated[str, typer.Option(help="Currency of --helium-price.")] = "EUR",
    as_json: JsonOpt = False, home: HomeOpt = None, database_url: UrlOpt = None,
) -> None:
    """Cost per exam per device and per model over a period: entered costs (acquisition
    depreciated straight-line, service contracts pro rata, one-off costs and lifecycle
    event costs) over the exams stored from the workflow data."""
    from scanbench.evaluation import records
    from scanbench.store import models as m

    p0, p1 = _period(start, end)
    if (helium_price is None) != (dewar_l is None):
        raise _fail(InputError("--helium-price and --dewar-l go together"))

    def work(s: Any) -> dict[str, Any]:
        devs = _devices(s, device, model, m.DeviceCost.device_id)
        names = {str(d.id): records.device_label(d) for d in devs}
        per = [records.device_cost_per_exam(s, d.id, p0.date(), p1.date()) for d in devs]
        pooled = records.model_cost_per_exam(s, [d.id for d in devs], p0.date(), p1.date())
        views = [records.economics_view(r, names) for r in per]
        if helium_price is not None and dewar_l is not None:
            for v, d in zip(views, devs, strict=True):
                if d.modality == "MR":
                    v["cryogen_estimate"] = records.cryogen_estimate(
                        s, d.id, p0.date(), p1.date(), dewar_l=dewar_l,
                        price_per_l=helium_price, currency=currency)
        return {"devices": views, "models": [records.economics_view(r) for r in pooled]}

    got = _run(home, database_url, work)
    if as_json:
        _print_json(got)
        return
    for title, rows in (("device", got["devices"]), ("model", got["models"])):
        table = Table(title, "total cost", "exams", "exams/day", "cost per exam", "by kind",
                      title=f"cost per exam per {title}, {p0:%Y-%m-%d} to {p1:%Y-%m-%d}")
        for r in rows:
            cur = r["currency"] or ""
            kinds = ", ".join(f"{k} {v:.0f}" for k, v in sorted(r["costs_by_kind"].items()))
            table.add_row(text(r["name"]), f"{r['total_cost']:.2f} {cur}", str(r["exams"]),
                          _num(r["exams_per_day"], ".2f"),
                          f"{_num(r['cost_per_exam'], '.2f')} {cur}", text(kinds))
        out.print(table)
    for r in got["devices"]:
        est = r.get("cryogen_estimate")
        if est:
            out.print(f"{safe(r['name'])}: helium boil-off {_num(est['rate_l_per_day'], '.3f')}"
                      f" L/day over {est['days']:g} days at {est['price_per_l']:g} "
                      f"{safe(est['currency'])}/L = {_num(est['estimated_cost'], '.2f')} "
                      f"{safe(est['currency'])} (estimate, not in the total)")
    if got["devices"]:
        out.print(safe(got["devices"][0]["method"]))

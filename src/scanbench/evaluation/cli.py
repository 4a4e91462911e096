"""``scanbench specs load|assign|assignments|unassign``, ``scanbench scorecard`` and
``scanbench due``: specs in the node's database, their assignment by device class,
scorecards and due lists (issue 13 §1-§3; docs/evaluation.md). Changes are audited as
done by ``cli:<login>``. Exit status: 0 done, 2 bad usage or input.

``scanbench specs NAME`` and ``scanbench specs diff A B`` (the shipped spec files) stay
in :mod:`scanbench.cli`; the subcommands here are routed by :func:`run_specs_store`."""

from __future__ import annotations

import datetime as dt
import json
import sys
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

#: ``scanbench specs <one of these>`` runs the stored-spec commands below.
STORE_COMMANDS = ("load", "assign", "assignments", "unassign")

specs_app = typer.Typer(help="Evaluation specs stored in the node's database and their "
                        "assignment to device classes.", no_args_is_help=True,
                        add_completion=False, pretty_exceptions_enable=False)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]


def register(app: typer.Typer) -> None:
    app.command("scorecard")(scorecard)
    app.command("due")(due)


def run_specs_store(args: list[str]) -> None:
    """Run ``scanbench specs load|assign|assignments|unassign ...`` (``args`` from the
    subcommand on)."""
    specs_app(args, prog_name="scanbench specs")


def _actor() -> Any:
    from scanbench.web.cli import _actor as actor

    return actor()


def _change(home: Path | None, url: str | None, work: Any) -> Any:
    from scanbench.web.audit import commit_with_retry

    db = _db(home, url)
    try:
        with db.sessions() as s:
            return commit_with_retry(s, work)
    except ScanbenchError as exc:
        raise _fail(exc) from None
    finally:
        db.close()


def _date(value: str | None, what: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise _fail(InputError(f"{what} {value!r} is not a date (YYYY-MM-DD)")) from None


# --------------------------------------------------------------------------- specs

@specs_app.command("load")
def load(file: Annotated[Path, typer.Argument(help="A spec YAML file.")],
         home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """Store a spec file (and the parent file it extends). The same name and version
    with another text is refused: a changed spec needs a new version."""
    from scanbench.evaluation import assign as A

    def work(s: Any) -> tuple[str, str, str, int]:
        row = A.load_spec_file(s, file)
        return row.name, row.version, row.sha256 or "", row.id

    name, version, digest, ident = _change(home, database_url, work)
    out.print(f"stored spec {safe(name)} version {safe(version)} (id {ident}, sha256 "
              f"{digest[:16]}…)")


@specs_app.command("assign")
def assign(
    name: Annotated[str, typer.Argument(help="The spec's name (stored or shipped).")],
    modality: Annotated[str | None, typer.Option(help="DICOM modality: PT, CT, MR.")] = None,
    manufacturer: Annotated[str | None, typer.Option()] = None,
    model: Annotated[str | None, typer.Option()] = None,
    site: Annotated[int | None, typer.Option(help="Site id.")] = None,
    device: Annotated[int | None, typer.Option(help="Device id.")] = None,
    field_min: Annotated[float | None, typer.Option(help="Field strength at least (T).")]
    = None,
    field_max: Annotated[float | None, typer.Option(help="Field strength at most (T).")]
    = None,
    fov_min: Annotated[float | None, typer.Option(help="Axial FOV at least (cm).")] = None,
    fov_max: Annotated[float | None, typer.Option(help="Axial FOV at most (cm).")] = None,
    priority: Annotated[int, typer.Option(help="Breaks ties between equally specific "
                                          "assignments (higher wins).")] = 0,
    valid_from: Annotated[str | None, typer.Option(
        "--from", help="In force from this date (UTC, YYYY-MM-DD; default now).")] = None,
    home: HomeOpt = None, database_url: UrlOpt = None,
) -> None:
    """Assign a spec to a class of devices (every criterion given must hold; the most
    specific assignment of a device wins: device, then model, then the most criteria)."""
    from scanbench.evaluation import assign as A

    start = _date(valid_from, "--from")
    crit = A.DeviceClassCriteria(
        device_id=device, site_id=site, modality=modality, manufacturer=manufacturer,
        model=model, field_strength_min_t=field_min, field_strength_max_t=field_max,
        axial_fov_min_cm=fov_min, axial_fov_max_cm=fov_max)
    when = dt.datetime.combine(start, dt.time(), dt.UTC) if start else None
    ident = _change(home, database_url, lambda s: A.assign(
        s, _actor(), name, crit, priority=priority, valid_from=when).id)
    out.print(f"assignment {ident}: spec {safe(name)} assigned")


@specs_app.command("unassign")
def unassign(assignment: Annotated[int, typer.Argument(help="Assignment id.")],
             home: HomeOpt = None, database_url: UrlOpt = None) -> None:
    """End an assignment now (it stays stored: past periods keep their spec)."""
    from scanbench.evaluation import assign as A

    _change(home, database_url, lambda s: A.deactivate(s, _actor(), assignment).id)
    out.print(f"assignment {assignment} ended")


@specs_app.command("assignments")
def assignments(
    all_: Annotated[bool, typer.Option("--all", help="Ended ones too.")] = False,
    as_json: JsonOpt = False, home: HomeOpt = None, database_url: UrlOpt = None,
) -> None:
    """The spec assignments, newest first."""
    from scanbench.evaluation import assign as A

    db = _db(home, database_url)
    try:
        with db.sessions() as s:
            rows = [A.assignment_dict(a) for a in A.assignments_list(s, include_ended=all_)]
    finally:
        db.close()
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=1, default=str, ensure_ascii=False) + "\n")
        return
    table = Table("id", "spec", "device class", "priority", "from", "until")
    for a in rows:
        table.add_row(str(a["id"]), text(a["spec_name"]), text(_criteria(a)),
                      str(a["priority"]), _when(a["valid_from"]), _when(a["valid_until"]))
    out.print(table)


def _criteria(a: dict[str, Any]) -> str:
    parts = [f"{k} {a[k]}" for k in ("device_id", "site_id", "modality", "manufacturer",
                                      "model") if a[k] is not None]
    for lo, hi, unit, what in (("field_strength_min_t", "field_strength_max_t", "T", "field"),
                               ("axial_fov_min_cm", "axial_fov_max_cm", "cm", "axial FOV")):
        if a[lo] is not None or a[hi] is not None:
            if a[lo] is not None and a[hi] is not None:
                parts.append(f"{what} {a[lo]:g}–{a[hi]:g} {unit}")
            elif a[lo] is not None:
                parts.append(f"{what} ≥ {a[lo]:g} {unit}")
            else:
                parts.append(f"{what} ≤ {a[hi]:g} {unit}")
    return ", ".join(parts) or "every device"


def _when(t: dt.datetime | None) -> str:
    return "" if t is None else t.strftime("%Y-%m-%d %H:%M UTC")


# --------------------------------------------------------------------------- scorecards

def _find_device(s: Any, ref: str) -> Any:
    """A device by id, serial or display name."""
    from sqlalchemy import or_, select

    from scanbench.store import models as m

    if ref.isdigit():
        dev = s.get(m.Device, int(ref))
        if dev is not None:
            return dev
    found = list(s.scalars(select(m.Device).where(or_(m.Device.serial == ref,
                                                      m.Device.display_name == ref))))
    if len(found) != 1:
        raise InputError(f"{'no' if not found else 'more than one'} device with id, serial "
                         f"or name {ref!r}")
    return found[0]


def scorecard(
    device: Annotated[str, typer.Argument(help="Device id, serial or name.")],
    date_from: Annotated[str | None, typer.Option(
        "--from", help="First day, the site's local date (default: 1 January this year).")]
    = None,
    date_to: Annotated[str | None, typer.Option(
        "--to", help="Last day, included (default: today).")] = None,
    as_json: JsonOpt = False, home: HomeOpt = None, database_url: UrlOpt = None,
) -> None:
    """Score a device against the spec assigned to it, one scorecard per spec version in
    force in the period; each is stored (unchanged inputs add nothing) and printed."""
    from scanbench.evaluation import assign as A
    from scanbench.evaluation import scorecard as S

    d0, d1 = _date(date_from, "--from"), _date(date_to, "--to")
    now = dt.datetime.now(dt.UTC)

    def work(s: Any) -> list[dict[str, Any]]:
        dev = _find_device(s, device)
        zone = A.site_zone(s, dev)
        today = A.to_local(now, zone).date()
        first, last = d0 or today.replace(month=1, day=1), d1 or today
        if last < first:
            raise InputError(f"--to {last} is before --from {first}")
        start = A.to_utc(dt.datetime.combine(first, dt.time()), zone)
        end = min(A.to_utc(dt.datetime.combine(last + dt.timedelta(days=1), dt.time()),
                           zone), now)
        parts = S.compute_scorecards(s, dev.id, start, end, now)
        return [{"start": p.start.isoformat(), "end": p.end.isoformat(), "added": p.added,
                 "notes": list(p.notes),
                 "scorecard": None if p.row is None else {
                     "id": p.row.id, "score": p.row.score, "status": p.row.status,
                     "compliance": p.row.compliance, "data": p.row.data}} for p in parts]

    parts = _change(home, database_url, work)
    if as_json:
        sys.stdout.write(json.dumps(parts, indent=1, ensure_ascii=False) + "\n")
        return
    for p in parts:
        _print_part(p)


def _print_part(p: dict[str, Any]) -> None:
    card = p["scorecard"]
    if card is None:
        out.print(f"{p['start']} to {p['end']}: " + "; ".join(safe(n) for n in p["notes"]))
        return
    data = card["data"]
    spec = data["spec"]
    score = "not scored" if card["score"] is None else f"{card['score']:.0f} / 100"
    comp = data["compliance"]
    pct = "n/a" if comp["percent"] is None else f"{comp['percent']:.0f} %"
    out.print(f"scorecard {card['id']} ({'new' if p['added'] else 'unchanged inputs'}): "
              f"{safe(data['device']['manufacturer'])} {safe(data['device']['model'])} "
              f"{safe(data['device']['serial'])}, {p['start']} to {p['end']}, spec "
              f"{safe(spec['name'])} {safe(spec['version'])}: {score}, {card['status']}, "
              f"compliance {pct} ({comp['on_time']} of {comp['required']} on time)")
    table = Table("test", "frequency", "dimension", "status", "reason", "results")
    for t in data["tests"]:
        table.add_row(text(t["test"]), str(t["frequency"] or "not confirmed"),
                      text(t["dimension"]), t["status"], text(t["reason"]),
                      ", ".join(map(str, t["evidence"])))
    out.print(table)
    dims = Table("dimension", "weight", "score", "passed", "failed", "overdue")
    for d in data["dimensions"]:
        dims.add_row(text(d["dimension"]), "" if d["weight"] is None else f"{d['weight']:.2f}",
                     "not scored" if d["score"] is None else f"{d['score']:.0f}",
                     str(d["passed"]), str(d["failed"]), str(d["overdue"]))
    out.print(dims)
    for n in p["notes"]:
        out.print(f"note: {safe(n)}")


def due(
    site: Annotated[str | None, typer.Option(help="Site id or name (default: every "
                                             "site).")] = None,
    as_json: JsonOpt = False, home: HomeOpt = None, database_url: UrlOpt = None,
) -> None:
    """What is due today for each active device (per site): done, due, overdue since
    when, a re-test after a failure, a test after a service event."""
    from sqlalchemy import select

    from scanbench.evaluation import scorecard as S
    from scanbench.store import models as m

    db = _db(home, database_url)
    try:
        with db.sessions() as s:
            sites = list(s.scalars(select(m.Site).order_by(m.Site.id)))
            if site is not None:
                sites = [x for x in sites if str(x.id) == site or x.name == site]
                if not sites:
                    raise _fail(InputError(f"no site with id or name {site!r}"))
            rows = []
            for x in sites:
                for dl in S.due_list_for_site(s, x.id):
                    dev = s.get(m.Device, int(dl.device))
                    rows.append({"site": x.name, "device_id": dev.id,
                                 "device": " ".join(v for v in (dev.manufacturer, dev.model,
                                                                dev.serial) if v),
                                 "at": dl.at.isoformat(), "spec": dl.spec,
                                 "notes": list(dl.notes),
                                 "items": [{"test": i.test, "frequency": i.frequency,
                                            "status": i.status,
                                            "deadline": i.deadline.isoformat()
                                            if i.deadline else None,
                                            "overdue_since": i.overdue_since.isoformat()
                                            if i.overdue_since else None,
                                            "reason": i.reason} for i in dl.items]})
    except ScanbenchError as exc:
        raise _fail(exc) from None
    finally:
        db.close()
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
        return
    table = Table("site", "device", "spec", "test", "frequency", "status", "deadline",
                  "reason")
    for r in rows:
        if not r["items"]:
            table.add_row(text(r["site"]), text(r["device"]), "", "", "", "",
                          "", text("; ".join(r["notes"])))
        for i in r["items"]:
            table.add_row(text(r["site"]), text(r["device"]), text(r["spec"] or ""),
                          text(i["test"]), i["frequency"], i["status"], i["deadline"] or "",
                          text(i["reason"]))
    out.print(table)

"""``scanbench protocol set|list|show|remove``: protocols for automatic analysis.

A protocol gives the node's analyses the phantom fill and acquisition facts they cannot
read from the images (``activity_ratio``, ``sphere_concentration_bq_ml``, the ACR CT
``protocol`` name, ...) for one device or a class of devices
(:mod:`scanbench.store.protocols`). Every change is a new version; results record the
version they were analysed with. Exit status: 0 done, 2 bad usage or input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from scanbench.console import console, safe, text
from scanbench.errors import ScanbenchError
from scanbench.service.cli import HomeOpt, UrlOpt
from scanbench.service.cli import open_database as _db
from scanbench.service.cli import usage_error as _fail

err = console(stderr=True)
out = console()

protocol_app = typer.Typer(
    help="Protocols for automatic analysis: phantom fill and acquisition facts per device "
    "or class of devices, used by the node's analyses and recorded on their results.",
    no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(protocol_app, name="protocol")


def _scope(p: Any) -> str:
    parts = []
    if p.device_id is not None:
        parts.append(f"device {p.device_id}")
    if p.manufacturer:
        parts.append(f"{p.manufacturer} {p.model or ''}".strip())
    if p.site_id is not None:
        parts.append(f"site {p.site_id}")
    if p.modality:
        parts.append(p.modality)
    return ", ".join(parts) or "every device"


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


@protocol_app.command("set")
def protocol_set(
    name: Annotated[str | None, typer.Argument(help="Protocol name (with --param).")] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="NAME=VALUE, a parameter of the analyses it is for "
        "(`scanbench analyses` lists them); repeatable.")] = None,
    file: Annotated[Path | None, typer.Option(
        "--file", "-f", help="YAML file of protocols (a list of mappings with name, params "
        "and scope keys), instead of NAME and --param.")] = None,
    device: Annotated[int | None, typer.Option(help="Scope: one device (its id).")] = None,
    manufacturer: Annotated[str | None, typer.Option(help="Scope: a manufacturer.")] = None,
    model: Annotated[str | None, typer.Option(
        help="Scope: a model (with --manufacturer).")] = None,
    site: Annotated[int | None, typer.Option(help="Scope: a site (its id).")] = None,
    modality: Annotated[str | None, typer.Option(help="Scope: a modality, e.g. PT.")] = None,
    analysis: Annotated[str | None, typer.Option(
        help="Only for this analysis id or id prefix, e.g. pet.nema_nu2_2018.image_quality."
    )] = None,
    description: Annotated[str, typer.Option(help="What the protocol is for.")] = "",
    home: HomeOpt = None,
    database_url: UrlOpt = None,
) -> None:
    """Add a protocol, or the next version of one (earlier versions stay, and so do the
    results analysed with them)."""
    from scanbench.cli import parse_params
    from scanbench.store import protocols

    try:
        if file is not None:
            if name or param:
                raise ScanbenchError("give either --file or NAME with --param", "protocol set")
            items = protocols.load_file(file)
        else:
            if not name or not param:
                raise ScanbenchError("give NAME and at least one --param NAME=VALUE (or "
                                     "--file)", "protocol set")
            items = [{"name": name, "params": parse_params(param), "device": device,
                      "manufacturer": manufacturer, "model": model, "site": site,
                      "modality": modality, "analysis": analysis,
                      "description": description}]
        db = _db(home, database_url)
    except ScanbenchError as exc:
        raise _fail(exc) from None
    try:
        with db.session() as s:
            rows = []
            for item in items:
                row = protocols.set_protocol(
                    s, item["name"], item["params"],
                    device_id=item.get("device", item.get("device_id")),
                    manufacturer=item.get("manufacturer"), model=item.get("model"),
                    site_id=item.get("site", item.get("site_id")),
                    modality=item.get("modality"), analysis=item.get("analysis"),
                    description=item.get("description") or "")
                check = protocols.validate(row.params, row.analysis, row.modality)
                rows.append((row.name, row.version, _scope(row), check))
    except ScanbenchError as exc:
        raise _fail(exc) from None
    finally:
        db.close()
    for pname, version, scope, check in rows:
        out.print(f"protocol {safe(pname)} version {version} ({safe(scope)})")
        if not check.checked:
            err.print(f"[yellow]note:[/] the parameter names of {safe(pname)} could not be "
                      "checked: no analysis in its scope describes its parameters")


@protocol_app.command("list")
def protocol_list(
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
    home: HomeOpt = None,
    database_url: UrlOpt = None,
) -> None:
    """The protocols in force (the newest version of each name, if not removed)."""
    from scanbench.store import protocols

    try:
        db = _db(home, database_url)
    except ScanbenchError as exc:
        raise _fail(exc) from None
    try:
        with db.session() as s:
            rows = [_as_dict(p) for p in protocols.in_force(s)]
    finally:
        db.close()
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(title="protocols in force", title_justify="left")
    for col in ("name", "version", "scope", "analysis", "parameters"):
        table.add_column(col)
    for r in rows:
        table.add_row(text(r["name"]), str(r["version"]), text(r["scope"]),
                      text(r["analysis"] or "all"), text(_params_text(r["params"])))
    out.print(table)


@protocol_app.command("show")
def protocol_show(
    name: Annotated[str, typer.Argument(help="Protocol name.")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
    home: HomeOpt = None,
    database_url: UrlOpt = None,
) -> None:
    """Every version of a protocol, oldest first."""
    from scanbench.store import protocols

    try:
        db = _db(home, database_url)
    except ScanbenchError as exc:
        raise _fail(exc) from None
    try:
        with db.session() as s:
            rows = [_as_dict(p) for p in protocols.versions(s, name)]
    finally:
        db.close()
    if not rows:
        raise _fail(ScanbenchError(f"no protocol {name!r}", "scanbench protocol show"))
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(title=f"protocol {safe(name)}", title_justify="left")
    for col in ("version", "id", "in force", "scope", "analysis", "parameters", "created"):
        table.add_column(col)
    last = rows[-1]["version"]
    for r in rows:
        table.add_row(str(r["version"]), str(r["id"]),
                      "yes" if r["active"] and r["version"] == last else
                      ("removed" if not r["active"] else "no"),
                      text(r["scope"]), text(r["analysis"] or "all"),
                      text(_params_text(r["params"])), r["created_at"][:19])
    out.print(table)


@protocol_app.command("remove")
def protocol_remove(
    name: Annotated[str, typer.Argument(help="Protocol name.")],
    home: HomeOpt = None,
    database_url: UrlOpt = None,
) -> None:
    """Retire a protocol: a new version that is not in force (history is kept)."""
    from scanbench.store import protocols

    try:
        db = _db(home, database_url)
        with db.session() as s:
            row = protocols.remove(s, name)
            version = row.version
    except ScanbenchError as exc:
        raise _fail(exc) from None
    finally:
        if "db" in locals():
            db.close()
    out.print(f"protocol {safe(name)} removed (version {version}, not in force)")


def _as_dict(p: Any) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "version": p.version, "active": p.active,
            "scope": _scope(p), "device_id": p.device_id, "manufacturer": p.manufacturer,
            "model": p.model, "site_id": p.site_id, "modality": p.modality,
            "analysis": p.analysis, "params": dict(p.params), "description": p.description,
            "created_at": p.created_at.isoformat()}

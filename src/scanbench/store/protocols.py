"""Protocols for automatic analysis: the phantom fill and acquisition facts an analysis
needs and cannot read from the images (activity ratio, sphere concentration, calibration
time, the ACR CT protocol name, ...), per device or class of devices.

A protocol has a ``name``, a scope and ``params`` (``--param`` names of the analyses it
is for, with their values). Scope, from the most to the least specific: one device
(``device_id``), a model (``manufacturer`` + ``model``), a manufacturer, a site, a
modality; none of them: every device. ``analysis`` (an analysis id, or a dotted prefix
such as ``pet`` or ``mr.acr``) limits it to those analyses.

History is never rewritten: ``set`` adds the next version of a name, ``remove`` adds a
version that is not active. The newest version of each name is the one in force, and a
result keeps the id of the version it was analysed with.

Which protocol an analysis gets (:func:`resolve`): of the protocols in force whose scope
matches the device and whose ``analysis`` covers the analysis, the most specific scope
wins (device over model over manufacturer over site over modality over every device);
among equally specific ones, the narrower ``analysis``, then the newest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scanbench.errors import ScanbenchError
from scanbench.store import models as m

SCOPE_FIELDS = ("device_id", "manufacturer", "model", "site_id", "modality")
#: How much each scope field adds to a protocol's specificity (device > model > ...).
_WEIGHT = {"device_id": 16, "model": 8, "manufacturer": 4, "site_id": 2, "modality": 1}
_FIELDS = {"name", "analysis", "params", "description", "device", "device_id",
           "manufacturer", "model", "site", "site_id", "modality"}


@dataclass(frozen=True)
class Check:
    """What validating a protocol's parameters found: ``checked`` False when no analysis
    in its scope describes its parameters (then only the value types were checked)."""

    checked: bool
    analyses: tuple[str, ...]


def _norm(text: str | None) -> str:
    return " ".join((text or "").lower().split())


def _covers(scope: str | None, analysis_id: str) -> bool:
    return not scope or analysis_id == scope or analysis_id.startswith(scope + ".")


def validate(params: Mapping[str, Any], analysis: str | None = None,
             modality: str | None = None, where: str = "protocol") -> Check:
    """Check ``params`` against the parameters the analyses in scope declare
    (:func:`scanbench.analysis.base.parameters_of`); ScanbenchError naming the problem.

    Values must be numbers, text or true/false (a finite number); a number where every
    declaration of the parameter has a number as its default. A name no analysis in
    scope declares is refused when at least one of them declares its parameters; when
    none does, names cannot be checked (``Check.checked`` False, said to the user).
    Other types (a ratio given as text) are found by the analysis itself, whose error
    names the parameter, when the job runs."""
    from scanbench.analysis import registry
    from scanbench.analysis.base import parameters_of

    if not isinstance(params, Mapping) or not params:
        raise ScanbenchError("a protocol needs at least one parameter (NAME=VALUE)", where)
    for k, v in params.items():
        if not isinstance(k, str) or not k:
            raise ScanbenchError(f"parameter name {k!r} is not a name", where)
        if isinstance(v, bool | str):
            continue
        if isinstance(v, int | float) and math.isfinite(float(v)):
            continue
        raise ScanbenchError(f"parameter {k}: {v!r} is not a finite number, text or "
                             "true/false", where)
    analyses = {aid: a for aid, a in registry.all_analyses().items() if _covers(analysis, aid)
                and (modality is None or a.modality == modality)}
    if analysis and not analyses:
        raise ScanbenchError(f"no analysis {analysis!r} (nor any whose id starts with "
                             f"'{analysis}.'); `scanbench analyses` lists them", where)
    declared = {aid: {p.name: p for p in parameters_of(a)} for aid, a in analyses.items()}
    describing = {aid: names for aid, names in declared.items() if names}
    if not describing:
        return Check(False, tuple(sorted(analyses)))
    known = set().union(*describing.values())
    unknown = sorted(set(params) - known)
    if unknown:
        raise ScanbenchError(
            f"{', '.join(unknown)}: not a parameter of "
            f"{analysis or modality or 'any analysis'} (accepted: {', '.join(sorted(known))})",
            where)
    for k, v in params.items():
        # A parameter whose every declaration has a number as its default is a number.
        defaults = [d[k].default for d in describing.values() if k in d]
        numeric = all(isinstance(x, int | float) and not isinstance(x, bool) for x in defaults)
        if numeric and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise ScanbenchError(f"parameter {k}: {v!r} is not a number (default "
                                 f"{defaults[0]})", where)
    return Check(True, tuple(sorted(describing)))


def set_protocol(s: Session, name: str, params: Mapping[str, Any], *,
                 device_id: int | None = None, manufacturer: str | None = None,
                 model: str | None = None, site_id: int | None = None,
                 modality: str | None = None, analysis: str | None = None,
                 description: str = "") -> m.Protocol:
    """Add the next version of protocol ``name`` (version 1 if new); validated first."""
    name = name.strip()
    if not name:
        raise ScanbenchError("a protocol needs a name", "protocol")
    if model and not manufacturer:
        raise ScanbenchError("a model scope needs its manufacturer too", f"protocol {name}")
    validate(params, analysis, modality, f"protocol {name}")
    if device_id is not None and s.get(m.Device, device_id) is None:
        raise ScanbenchError(f"no device {device_id}", f"protocol {name}")
    if site_id is not None and s.get(m.Site, site_id) is None:
        raise ScanbenchError(f"no site {site_id}", f"protocol {name}")
    last = s.scalar(select(func.max(m.Protocol.version)).where(m.Protocol.name == name))
    row = m.Protocol(name=name, version=(last or 0) + 1, active=True, device_id=device_id,
                     manufacturer=manufacturer, model=model, site_id=site_id,
                     modality=modality, analysis=analysis or None, params=dict(params),
                     description=description)
    s.add(row)
    s.flush()
    return row


def remove(s: Session, name: str) -> m.Protocol:
    """Retire protocol ``name``: a new version, same scope, not active."""
    cur = latest(s, name)
    if cur is None or not cur.active:
        raise ScanbenchError(f"no protocol {name!r} in force", "scanbench protocol remove")
    row = m.Protocol(name=cur.name, version=cur.version + 1, active=False,
                     device_id=cur.device_id, manufacturer=cur.manufacturer, model=cur.model,
                     site_id=cur.site_id, modality=cur.modality, analysis=cur.analysis,
                     params=dict(cur.params), description=cur.description)
    s.add(row)
    s.flush()
    return row


def latest(s: Session, name: str) -> m.Protocol | None:
    """The newest version of ``name`` (active or not), None if never set."""
    return s.scalars(select(m.Protocol).where(m.Protocol.name == name)
                     .order_by(m.Protocol.version.desc()).limit(1)).first()


def versions(s: Session, name: str) -> list[m.Protocol]:
    """Every version of ``name``, oldest first."""
    return list(s.scalars(select(m.Protocol).where(m.Protocol.name == name)
                          .order_by(m.Protocol.version)))


def in_force(s: Session) -> list[m.Protocol]:
    """The newest version of every name, if active, by name."""
    newest = (select(m.Protocol.name, func.max(m.Protocol.version).label("v"))
              .group_by(m.Protocol.name).subquery())
    q = (select(m.Protocol).join(newest, (newest.c.name == m.Protocol.name)
                                 & (newest.c.v == m.Protocol.version))
         .where(m.Protocol.active.is_(True)).order_by(m.Protocol.name))
    return list(s.scalars(q))


def specificity(p: m.Protocol) -> int:
    return sum(w for f, w in _WEIGHT.items() if getattr(p, f) not in (None, ""))


def matches(p: m.Protocol, device: m.Device | None, modality: str | None) -> bool:
    """Whether every scope field ``p`` sets agrees with the device / series modality."""
    if p.device_id is not None and (device is None or device.id != p.device_id):
        return False
    for f in ("manufacturer", "model"):
        want = getattr(p, f)
        if want and (device is None or _norm(getattr(device, f)) != _norm(want)):
            return False
    if p.site_id is not None and (device is None or device.site_id != p.site_id):
        return False
    return not (p.modality and _norm(p.modality) != _norm(modality))


def resolve(s: Session, device: m.Device | None, modality: str | None,
            analysis_ids: Iterable[str]) -> dict[str, m.Protocol]:
    """For each analysis id, the protocol it gets on this device (module docstring);
    analyses no protocol covers are left out."""
    candidates = [p for p in in_force(s) if matches(p, device, modality)]
    chosen: dict[str, m.Protocol] = {}
    for aid in analysis_ids:
        fits = [p for p in candidates if _covers(p.analysis, aid)]
        if fits:
            chosen[aid] = max(fits, key=lambda p: (specificity(p), len(p.analysis or ""), p.id))
    return chosen


def usable_params(p: m.Protocol, analysis_id: str) -> dict[str, Any]:
    """The parameters of ``p`` that analysis ``analysis_id`` takes: those it declares
    (:func:`scanbench.analysis.base.parameters_of`), so that a protocol for several
    analyses never hands one of them a parameter it would refuse as unknown; all of
    them for an analysis that declares none (its parameters cannot be told apart)."""
    from scanbench.analysis import registry
    from scanbench.analysis.base import parameters_of

    try:
        declared = {x.name for x in parameters_of(registry.get(analysis_id))}
    except ScanbenchError:
        declared = set()
    if not declared:
        return dict(p.params)
    return {k: v for k, v in p.params.items() if k in declared}


def load_file(path: Path) -> list[dict[str, Any]]:
    """Protocol definitions from a YAML file: a list (or ``protocols:`` list) of mappings
    with ``name``, ``params`` and optional scope keys (``device`` id, ``manufacturer``,
    ``model``, ``site`` id, ``modality``), ``analysis`` and ``description``."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScanbenchError(f"cannot read: {exc.strerror or exc}", str(path)) from None
    except yaml.YAMLError as exc:
        raise ScanbenchError(f"not valid YAML: {exc}", str(path)) from None
    if isinstance(data, dict) and "protocols" in data:
        data = data["protocols"]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        raise ScanbenchError("expected a list of protocols (each with name and params)",
                             str(path))
    out = []
    for k, item in enumerate(data, 1):
        where = f"{path}: protocol {k}"
        if not isinstance(item, dict):
            raise ScanbenchError("each protocol is a mapping (name, params, scope)", where)
        extra = sorted(set(map(str, item)) - _FIELDS)
        if extra:
            raise ScanbenchError(f"unknown key(s) {', '.join(extra)} (known: "
                                 f"{', '.join(sorted(_FIELDS))})", where)
        if not isinstance(item.get("name"), str) or not isinstance(item.get("params"), dict):
            raise ScanbenchError("needs name (text) and params (a mapping)", where)
        for key in ("device", "device_id", "site", "site_id"):
            if item.get(key) is not None and not isinstance(item[key], int):
                raise ScanbenchError(f"{key} is a number (the id `scanbench devices` "
                                     "shows)", where)
        out.append(item)
    return out

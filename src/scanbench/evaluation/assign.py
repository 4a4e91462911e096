"""Evaluation specifications in the store, and which one each device is judged by.

Stored specs (table ``spec``)
-----------------------------
A spec is stored with its exact YAML text and the SHA-256 of that text, so a scorecard
can always be traced to the limits it used. A (name, version) pair is written once:
loading the same text again adds nothing; loading a *different* text under a stored
(name, version) is refused (give the changed spec a new ``version``). The specs shipped
with scanbench are stored on first use (:func:`ensure_builtin_specs`, idempotent).
A spec that ``extends`` a parent file stores the parent too (a shipped parent is stored
as a built-in).

Versions in force: the version of a name in force at an instant is the newest one
stored (``created_at``) at or before it; before its first version was stored, that
first version (assigning a spec today judges last year too). So a new version judges
what comes after it was loaded and never changes a scorecard computed with the one
before.

Assignment by device class (table ``spec_assignment``)
-----------------------------------------------------
An assignment names a spec and any of: one device, a site, a modality, a manufacturer,
a model (names compared ignoring case, spaces and punctuation, as the spec language
does), a field-strength range [min, max] in T and an axial-FOV range [min, max] in cm;
every criterion given must hold. When several match a device the **most specific
wins**, in this order:

1. an assignment to the device itself;
2. one naming the model (with or without the manufacturer);
3. the one with more criteria given (site, modality, manufacturer, each range);
4. the higher ``priority``; then the newer (``valid_from``, then id).

The spec's own ``applies_to`` is honoured too: an assignment whose spec says it does
not apply to the device (another modality, a field strength outside its range) is
passed over for the next one, and :func:`spec_for_device` says so in its notes.
An assignment is in force from ``valid_from`` until ``valid_until`` (set when it is
deactivated); rows are never deleted, so the spec a past period was judged by stays
known. Every change is written to the audit log with its before and after values.

Times: assignments and stored specs carry UTC instants; results and lifecycle events
carry the scanner's local clock time. :func:`to_utc` and :func:`to_local` convert with
the device's site time zone (UTC when the site has none).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from scanbench.errors import InputError, SpecError
from scanbench.specs import Spec, list_specs, load_spec, parse_spec
from scanbench.store import models as m
from scanbench.web.audit import Actor, record

BUILTIN = "builtin"


def sha256_text(text: str) -> str:
    """The SHA-256 (FIPS 180-4) of a spec's UTF-8 text, hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- time zones

def site_zone(session: Session, device: m.Device) -> ZoneInfo:
    """The time zone of the device's site (UTC when it has none or no site)."""
    if device.site_id is not None:
        site = session.get(m.Site, device.site_id)
        if site is not None and site.timezone:
            return ZoneInfo(site.timezone)
    return ZoneInfo("UTC")


def to_local(instant: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """An aware instant as naive local clock time in ``zone`` (how headers store time)."""
    if instant.tzinfo is None:
        raise InputError(f"{instant.isoformat()}: an instant needs its time zone")
    return instant.astimezone(zone).replace(tzinfo=None)


def to_utc(local: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """Naive local clock time in ``zone`` as an aware UTC instant (aware input: as is)."""
    if local.tzinfo is not None:
        return local.astimezone(dt.UTC)
    return local.replace(tzinfo=zone).astimezone(dt.UTC)


# --------------------------------------------------------------------------- storing specs

def store_spec_text(session: Session, text: str, *, origin: str,
                    where: str | Path | None = None,
                    created_at: dt.datetime | None = None) -> m.Spec:
    """Validate ``text`` (a spec's YAML) and store it; return the stored row.

    The same (name, version) with the same text: the stored row, nothing added. With a
    different text: :class:`~scanbench.errors.SpecError` naming both hashes.
    ``where`` is the file the text came from (to resolve a relative ``extends``).
    ``created_at`` (default now) is when this version comes into force."""
    spec = parse_spec(text, where=where or f"<{origin}>")
    return _store(session, spec, text, origin, created_at)


def load_spec_file(session: Session, path: str | Path,
                   created_at: dt.datetime | None = None) -> m.Spec:
    """Store the spec file at ``path`` (and the parent files it extends)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("spec file not found", where=p) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read spec file ({exc})", where=p) from None
    spec = load_spec(p)
    return _store(session, spec, text, str(p.resolve()), created_at)


def _store(session: Session, spec: Spec, text: str, origin: str,
           created_at: dt.datetime | None) -> m.Spec:
    _store_parents(session, spec, created_at)
    digest = sha256_text(text)
    row = session.scalars(select(m.Spec).where(m.Spec.name == spec.name,
                                               m.Spec.version == spec.version)).first()
    if row is not None:
        if row.sha256 != digest:
            raise SpecError(
                f"spec {spec.name} version {spec.version} is already stored with a different "
                f"text (stored sha256 {(row.sha256 or '')[:12]}…, this one {digest[:12]}…, "
                f"stored from {row.origin or 'unknown'}); a changed spec needs a new version",
                where=origin if origin != BUILTIN else spec.name)
        return row
    for column, value in (("name", spec.name), ("version", spec.version)):
        limit = getattr(m.Spec.__table__.c[column].type, "length", None)
        if limit is not None and len(value) > limit:
            raise SpecError(f"{column} {value!r} has {len(value)} characters; the store "
                            f"keeps at most {limit}", where=origin if origin != BUILTIN
                            else spec.name)
    row = m.Spec(name=spec.name, version=spec.version, title=spec.title[:300],
                 verified=spec.verified, yaml=text, sha256=digest,
                 extends=spec.extends[0] if spec.extends else None, origin=origin)
    if created_at is not None:
        row.created_at = created_at
    session.add(row)
    session.flush()
    return row


def _store_parents(session: Session, spec: Spec, created_at: dt.datetime | None) -> None:
    """Store the parent named by ``extends`` (a file's parent is stored from its file;
    a shipped one as a built-in), so the stored child can always be parsed again."""
    if not spec.extends or spec.path is None:
        return
    raw = yaml.safe_load(spec.path.read_text(encoding="utf-8")) or {}
    ref = str(raw.get("extends", "")).strip()
    if not ref:
        return
    as_path = Path(ref).expanduser()
    if not as_path.is_absolute():
        as_path = spec.path.parent / as_path
    if as_path.is_file() or ref.endswith((".yaml", ".yml")):
        load_spec_file(session, as_path, created_at)
    else:
        _store_builtin(session, ref)


def _store_builtin(session: Session, name: str) -> m.Spec:
    spec = load_spec(name)
    assert spec.path is not None
    return _store(session, spec, spec.path.read_text(encoding="utf-8"), BUILTIN, None)


def ensure_builtin_specs(session: Session) -> list[str]:
    """Store every spec shipped with scanbench that is not stored yet (idempotent: a
    second call adds nothing). Returns notes: a shipped spec whose text differs from
    the stored one of the same version is not stored again (the stored text stays the
    one past scorecards used) and is named in the notes."""
    from importlib import resources

    notes: list[str] = []
    stored = {(r[0], r[1]) for r in session.execute(select(m.Spec.name, m.Spec.sha256))}
    folder = resources.files("scanbench.specs")
    for name in list_specs():
        # parsed only when not stored yet: a page view or a start costs a hash per file
        digest = sha256_text((folder / f"{name}.yaml").read_text(encoding="utf-8"))
        if (name, digest) in stored:
            continue
        try:
            _store_builtin(session, name)
        except SpecError as exc:
            notes.append(str(exc))
    return notes


def stored_spec(session: Session, name: str, version: str | None = None,
                at: dt.datetime | None = None) -> m.Spec:
    """The stored spec ``name``: that ``version``, else the newest one stored at or before
    ``at`` (an aware instant; default: the newest; before the first version was stored,
    the first version). Unknown: InputError naming it."""
    q = select(m.Spec).where(m.Spec.name == name)
    if version is not None:
        q = q.where(m.Spec.version == version)
    newest = q.order_by(m.Spec.created_at.desc(), m.Spec.id.desc())
    row = session.scalars(newest.where(m.Spec.created_at <= at) if at is not None
                          else newest).first()
    if row is None and at is not None:
        # Before its first version was stored, a spec is in force as that first version
        # (assigning a spec judges the past too; later versions judge only what follows).
        row = session.scalars(q.order_by(m.Spec.created_at, m.Spec.id)).first()
    if row is None:
        what = f"spec {name!r}" + (f" version {version!r}" if version else "")
        raise InputError(f"no stored {what}; store it with `scanbench specs load FILE` "
                         "(shipped specs are stored on first use)")
    return row


def parse_stored(session: Session, row: m.Spec) -> Spec:
    """The stored spec parsed again from its stored text. A parent named by ``extends``
    is the parent version stored at or before the child (a shipped name, or a file that
    was stored with the child): so a stored spec means the same limits for ever."""
    chain = _chain_texts(session, row)
    return _parse_chain(tuple(chain))


def _chain_texts(session: Session, row: m.Spec) -> list[tuple[int, str, str]]:
    """(id, name, text) of the spec and its stored ancestors, child first."""
    out: list[tuple[int, str, str]] = []
    seen: set[int] = set()
    cur: m.Spec | None = row
    while cur is not None and cur.id not in seen:
        seen.add(cur.id)
        out.append((cur.id, cur.name, cur.yaml))
        if not cur.extends:
            break
        cur = session.scalars(
            select(m.Spec).where(m.Spec.name == cur.extends,
                                 m.Spec.created_at <= cur.created_at)
            .order_by(m.Spec.created_at.desc(), m.Spec.id.desc())).first() or \
            session.scalars(select(m.Spec).where(m.Spec.name == cur.extends)
                            .order_by(m.Spec.created_at, m.Spec.id)).first()
    return out


@lru_cache(maxsize=256)
def _parse_chain(chain: tuple[tuple[int, str, str], ...]) -> Spec:
    """Parse a stored chain: each ancestor is written to a temporary folder and the
    child's ``extends`` is pointed at it (the stored texts are unchanged)."""
    if len(chain) == 1 or not _extends_ref(chain[0][2]):
        return parse_spec(chain[0][2], where=f"<stored spec {chain[0][1]}>")
    with tempfile.TemporaryDirectory(prefix="scanbench-spec-") as tmp:
        folder = Path(tmp)
        path: Path | None = None
        for i, (ident, name, text) in enumerate(reversed(chain)):
            data = yaml.safe_load(text)
            if path is not None and data.get("extends") is not None:
                data["extends"] = str(path)
                text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
            path = folder / f"{i}-{ident}-{_safe_name(name)}.yaml"
            path.write_text(text, encoding="utf-8")
        assert path is not None
        spec = load_spec(path)
    return spec


def _extends_ref(text: str) -> str | None:
    data = yaml.safe_load(text) or {}
    ref = data.get("extends") if isinstance(data, dict) else None
    return None if ref is None else str(ref)


def _safe_name(name: str) -> str:
    return re.sub(r"[^a-z0-9._-]", "_", name.lower())[:60]


# --------------------------------------------------------------------------- assignments

@dataclass(frozen=True)
class DeviceClassCriteria:
    """The device class an assignment covers (every field given must hold)."""

    device_id: int | None = None
    site_id: int | None = None
    modality: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    field_strength_min_t: float | None = None
    field_strength_max_t: float | None = None
    axial_fov_min_cm: float | None = None
    axial_fov_max_cm: float | None = None

    def check(self) -> None:
        for lo, hi, what in ((self.field_strength_min_t, self.field_strength_max_t,
                              "field strength (T)"),
                             (self.axial_fov_min_cm, self.axial_fov_max_cm, "axial FOV (cm)")):
            if lo is not None and hi is not None and lo > hi:
                raise InputError(f"{what}: the minimum {lo:g} is above the maximum {hi:g}")
            for v in (lo, hi):
                if v is not None and v < 0:
                    raise InputError(f"{what}: {v:g} is negative")


def _norm(text: str | None) -> str:
    return re.sub(r"[^a-z0-9]", "", (text or "").lower())


def matches(a: m.SpecAssignment, device: m.Device) -> bool:
    """Whether every criterion of assignment ``a`` holds for ``device`` (a criterion on
    something the device does not state, e.g. no field strength entered, does not)."""
    if a.device_id is not None and a.device_id != device.id:
        return False
    if a.site_id is not None and a.site_id != device.site_id:
        return False
    for want, have in ((a.modality, device.modality), (a.manufacturer, device.manufacturer),
                       (a.model, device.model)):
        if want is not None and _norm(want) != _norm(have):
            return False
    for lo, hi, value in ((a.field_strength_min_t, a.field_strength_max_t,
                           device.field_strength_t),
                          (a.axial_fov_min_cm, a.axial_fov_max_cm, device.axial_fov_cm)):
        if lo is None and hi is None:
            continue
        if value is None or (lo is not None and value < lo) or (hi is not None and value > hi):
            return False
    return True


def specificity(a: m.SpecAssignment) -> tuple[Any, ...]:
    """The sort key of the most-specific-wins rule (module docstring): larger wins."""
    others = sum(x is not None for x in (a.site_id, a.modality, a.manufacturer)) + \
        (a.field_strength_min_t is not None or a.field_strength_max_t is not None) + \
        (a.axial_fov_min_cm is not None or a.axial_fov_max_cm is not None)
    valid_from = a.valid_from.timestamp() if a.valid_from else 0.0
    return (a.device_id is not None, a.model is not None, others, a.priority, valid_from, a.id)


def in_force(a: m.SpecAssignment, at: dt.datetime) -> bool:
    """Whether the assignment holds at the aware instant ``at``."""
    if a.valid_from is not None and a.valid_from > at:
        return False
    if a.valid_until is not None:
        return at < a.valid_until
    return bool(a.active)


def assignment_dict(a: m.SpecAssignment) -> dict[str, Any]:
    """The assignment's fields as plain data (audit before/after, API, CLI)."""
    return {k: getattr(a, k) for k in (
        "id", "spec_name", "device_id", "site_id", "modality", "manufacturer", "model",
        "field_strength_min_t", "field_strength_max_t", "axial_fov_min_cm",
        "axial_fov_max_cm", "priority", "active", "valid_from", "valid_until", "user_id")}


def assign(session: Session, actor: Actor, spec_name: str, criteria: DeviceClassCriteria,
           *, priority: int = 0, valid_from: dt.datetime | None = None) -> m.SpecAssignment:
    """Assign the stored spec ``spec_name`` (its newest version at each time) to a class
    of devices; audited (action ``spec.assign``). The spec must be stored (shipped ones
    are stored here on first use)."""
    criteria.check()
    name = spec_name.strip()
    if name in list_specs():
        _store_builtin(session, name)
    stored_spec(session, name)  # refuses an unknown name, with the way to store it
    if criteria.device_id is not None and session.get(m.Device, criteria.device_id) is None:
        raise InputError(f"no device with id {criteria.device_id}")
    if criteria.site_id is not None and session.get(m.Site, criteria.site_id) is None:
        raise InputError(f"no site with id {criteria.site_id}")
    row = m.SpecAssignment(
        spec_name=name, device_id=criteria.device_id, site_id=criteria.site_id,
        modality=criteria.modality.upper() if criteria.modality else None,
        manufacturer=criteria.manufacturer, model=criteria.model,
        field_strength_min_t=criteria.field_strength_min_t,
        field_strength_max_t=criteria.field_strength_max_t,
        axial_fov_min_cm=criteria.axial_fov_min_cm, axial_fov_max_cm=criteria.axial_fov_max_cm,
        priority=priority, active=True, user_id=actor.user_id,
        valid_from=valid_from or dt.datetime.now(dt.UTC))
    session.add(row)
    session.flush()
    site = criteria.site_id
    if site is None and criteria.device_id is not None:
        site = session.get_one(m.Device, criteria.device_id).site_id
    record(session, actor, "spec.assign", "spec_assignment", row.id, site_id=site,
           after=assignment_dict(row))
    return row


def deactivate(session: Session, actor: Actor, assignment_id: int,
               at: dt.datetime | None = None) -> m.SpecAssignment:
    """End an assignment at ``at`` (default now): it stays stored, in force before then;
    audited (action ``spec.unassign``, before/after)."""
    row = session.get(m.SpecAssignment, assignment_id)
    if row is None:
        raise InputError(f"no spec assignment with id {assignment_id}")
    if not row.active:
        raise InputError(f"spec assignment {assignment_id} has already ended")
    before = assignment_dict(row)
    row.active = False
    row.valid_until = at or dt.datetime.now(dt.UTC)
    site = row.site_id
    if site is None and row.device_id is not None:
        dev = session.get(m.Device, row.device_id)
        site = dev.site_id if dev else None
    record(session, actor, "spec.unassign", "spec_assignment", row.id, site_id=site,
           before=before, after=assignment_dict(row))
    return row


def sites_touched(session: Session, a: m.SpecAssignment | DeviceClassCriteria) -> list[int]:
    """The sites whose devices the assignment could cover: its site, its device's site,
    else every site (a fleet-wide class assignment touches them all)."""
    if a.device_id is not None:
        dev = session.get(m.Device, a.device_id)
        return [dev.site_id] if dev is not None and dev.site_id is not None else []
    if a.site_id is not None:
        return [a.site_id]
    return list(session.scalars(select(m.Site.id).order_by(m.Site.id)))


# --------------------------------------------------------------------------- spec in force

@dataclass(frozen=True)
class SpecInForce:
    """The spec a device is judged by at an instant: the stored row (name, version,
    sha256), the parsed spec, the assignment that chose it, and notes (assignments
    passed over because the spec's ``applies_to`` excludes the device)."""

    row: m.Spec
    spec: Spec
    assignment: m.SpecAssignment
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.row.name} {self.row.version}"


def candidate_assignments(session: Session, device: m.Device,
                          at: dt.datetime) -> list[m.SpecAssignment]:
    """Assignments in force at ``at`` that match the device, most specific first."""
    rows = session.scalars(select(m.SpecAssignment)).all()
    found = [a for a in rows if in_force(a, at) and matches(a, device)]
    return sorted(found, key=specificity, reverse=True)


def spec_for_device(session: Session, device: m.Device,
                    at: dt.datetime | None = None) -> SpecInForce | None:
    """The stored spec in force for ``device`` at the aware instant ``at`` (default now):
    the most specific assignment in force whose spec's ``applies_to`` does not exclude
    the device, and the newest version of that spec stored at or before ``at``.
    None: no spec is assigned to the device then."""
    at = at or dt.datetime.now(dt.UTC)
    notes: list[str] = []
    for a in candidate_assignments(session, device, at):
        try:
            row = stored_spec(session, a.spec_name, at=at)
        except InputError:
            notes.append(f"assignment {a.id}: spec {a.spec_name} had no stored version at "
                         f"{at.isoformat()}")
            continue
        spec = parse_stored(session, row)
        if spec.applies_to is not None:
            from scanbench.types import DeviceIdentity

            ok = spec.applies_to.matches(
                DeviceIdentity(device.manufacturer, device.model, device.serial),
                modality=device.modality, field_strength_t=device.field_strength_t,
                axial_fov_mm=None if device.axial_fov_cm is None else device.axial_fov_cm * 10)
            if ok is False:
                notes.append(f"assignment {a.id}: spec {row.name} {row.version} applies to "
                             f"{spec.applies_to.describe()}, which this device is not")
                continue
            if ok is None:
                notes.append(f"spec {row.name} applies to {spec.applies_to.describe()}; "
                             "the device does not state all of it (assigned anyway)")
        return SpecInForce(row, spec, a, tuple(notes))
    return None


@dataclass(frozen=True)
class SpecPeriod:
    """A part of a period during which one spec version was in force."""

    start: dt.datetime  # aware UTC
    end: dt.datetime
    spec: SpecInForce | None
    notes: tuple[str, ...] = field(default_factory=tuple)


def spec_periods(session: Session, device: m.Device, start: dt.datetime,
                 end: dt.datetime) -> list[SpecPeriod]:
    """[start, end) cut where the spec in force for the device changes (an assignment
    starts or ends, a new version of an assigned spec is stored); aware UTC instants."""
    if end <= start:
        raise InputError(f"the period ends ({end.isoformat()}) before it starts "
                         f"({start.isoformat()})")
    changes = {start}
    for a in session.scalars(select(m.SpecAssignment)).all():
        if not matches(a, device):
            continue
        for t in (a.valid_from, a.valid_until):
            if t is not None and start < t < end:
                changes.add(t)
        for t in session.scalars(select(m.Spec.created_at).where(
                m.Spec.name == a.spec_name)):
            if start < t < end:
                changes.add(t)
    cuts = sorted(changes)
    out: list[SpecPeriod] = []
    for t0, t1 in zip(cuts, [*cuts[1:], end], strict=True):
        chosen = spec_for_device(session, device, t0)
        if out and _same(out[-1].spec, chosen):
            out[-1] = SpecPeriod(out[-1].start, t1, out[-1].spec, out[-1].notes)
        else:
            out.append(SpecPeriod(t0, t1, chosen, chosen.notes if chosen else ()))
    return out


def _same(a: SpecInForce | None, b: SpecInForce | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.row.id == b.row.id


def assignments_list(session: Session, site_ids: Sequence[int] | None = None,
                     include_ended: bool = False) -> list[m.SpecAssignment]:
    """Assignments (newest first); with ``site_ids``, those of these sites, of their
    devices, and the fleet-wide ones (no site, no device)."""
    q = select(m.SpecAssignment)
    if not include_ended:
        q = q.where(m.SpecAssignment.active.is_(True))
    rows = list(session.scalars(q.order_by(m.SpecAssignment.id.desc())))
    if site_ids is None:
        return rows
    sites = set(site_ids)
    dev_sites = dict(session.execute(select(m.Device.id, m.Device.site_id)).tuples().all())
    return [a for a in rows
            if (a.site_id is None and a.device_id is None)
            or (a.site_id in sites)
            or (a.device_id is not None and dev_sites.get(a.device_id) in sites)]


__all__ = ["BUILTIN", "DeviceClassCriteria", "SpecInForce", "SpecPeriod", "assign",
           "assignment_dict", "assignments_list", "candidate_assignments", "deactivate",
           "ensure_builtin_specs", "in_force", "load_spec_file", "matches", "parse_stored",
           "sha256_text", "site_zone", "sites_touched", "spec_for_device", "spec_periods",
           "specificity", "store_spec_text", "stored_spec", "to_local", "to_utc"]

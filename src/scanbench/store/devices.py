"""The device registry: every scanner known by its own headers.

A device is identified by Manufacturer (0008,0070) + Manufacturer's Model Name
(0008,1090) + Device Serial Number (0018,1000) (General Equipment Module, PS3.3
C.7.5.1), normalised (:func:`normalise`) so that "GE MEDICAL SYSTEMS" and
"GE Medical Systems" are one maker. Station Name (0008,1010) and the calling AE
title are kept as aliases; a header without a serial number is matched through
them (same maker and model), else by its station name, so a device that never
writes its serial still gets one stable record. A device is created the first
time it is seen. When the Software Versions (0018,1020) of its series change, in
acquisition order, a ``software_change`` lifecycle event records it
(:func:`record_software`).
"""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scanbench.store.models import Device, DeviceAlias, LifecycleEvent, Series, utcnow
from scanbench.types import DeviceIdentity

_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def normalise(value: str | None) -> str:
    """Lower case, punctuation and runs of spaces as one space, trimmed ("" for None)."""
    return _NON_ALNUM.sub(" ", (value or "").casefold()).strip()


def identity_key(device: DeviceIdentity, ae_title: str | None = None) -> str:
    """``maker|model|serial``; without a serial, ``maker|model|~station:NAME`` (or the AE
    title, or ``~unknown``) so the key is still stable for that scanner."""
    serial = normalise(device.serial)
    if not serial:
        if normalise(device.station):
            serial = f"~station:{normalise(device.station)}"
        elif normalise(ae_title):
            serial = f"~ae:{normalise(ae_title)}"
        else:
            serial = "~unknown"
    return f"{normalise(device.manufacturer)}|{normalise(device.model)}|{serial}"


def register(session: Session, device: DeviceIdentity, *, modality: str | None = None,
             ae_title: str | None = None) -> Device:
    """The device these headers describe, created on first sight, its aliases brought up
    to date. Safe against another process registering the same device at the same
    moment (unique key, retried). Software changes: :func:`record_software`."""
    found = _find(session, device, ae_title)
    if found is None:
        found = _create(session, device, modality, ae_title)
    found.last_seen_at = utcnow()
    if found.modality is None and modality:
        found.modality = modality
    for kind, value in (("station_name", device.station), ("ae_title", ae_title)):
        if value and not any(a.kind == kind and a.value == value for a in found.aliases):
            _add_alias(session, found, kind, value)
    if found.software_versions is None and device.software_versions:
        found.software_versions = device.software_versions
    return found


def _find(session: Session, device: DeviceIdentity, ae_title: str | None) -> Device | None:
    key = identity_key(device, ae_title)
    hit = session.scalars(select(Device).where(Device.identity_key == key)).first()
    if hit is not None or normalise(device.serial):
        return hit
    # No serial in these headers: a known device of the same maker and model with this
    # station name or AE title as an alias is the same scanner.
    maker, model = normalise(device.manufacturer), normalise(device.model)
    for kind, value in (("station_name", device.station), ("ae_title", ae_title)):
        if not value:
            continue
        for candidate in session.scalars(
                select(Device).join(DeviceAlias).where(DeviceAlias.kind == kind,
                                                       DeviceAlias.value == value)):
            if (normalise(candidate.manufacturer), normalise(candidate.model)) == (maker, model):
                return candidate
    return None


def _create(session: Session, device: DeviceIdentity, modality: str | None,
            ae_title: str | None) -> Device:
    key = identity_key(device, ae_title)
    try:
        with session.begin_nested():
            new = Device(identity_key=key, manufacturer=device.manufacturer,
                         model=device.model, serial=device.serial, modality=modality,
                         display_name=" ".join(x for x in (device.manufacturer, device.model,
                                                           device.serial) if x) or None,
                         software_versions=device.software_versions)
            session.add(new)
            session.flush()
        return new
    except IntegrityError:  # created by another process since _find: use theirs
        return session.scalars(select(Device).where(Device.identity_key == key)).one()


def _add_alias(session: Session, device: Device, kind: str, value: str) -> None:
    try:
        with session.begin_nested():
            alias = DeviceAlias(device_id=device.id, kind=kind, value=value)
            session.add(alias)
            session.flush()
    except IntegrityError:
        pass  # added by another process meanwhile
    session.refresh(device, ["aliases"])


def record_software(session: Session, device_id: int) -> list[LifecycleEvent]:
    """Bring the device's ``software_change`` events in line with the Software Versions
    (0018,1020) its series carry, in acquisition order, per modality (a PET/CT writes
    one version on its PET images and another on its CT images; neither is a change).
    Series may arrive in any order: an old series received late moves or splits a
    change rather than inventing one. Returns the events added. The device row is
    locked meanwhile, so two processes never record one change twice."""
    device = session.scalars(select(Device).where(Device.id == device_id)
                             .with_for_update()).one()
    rows = session.execute(
        select(Series.acquired_at, Series.software_versions, Series.modality,
               Series.series_uid)
        .where(Series.device_id == device_id, Series.software_versions.is_not(None),
               Series.acquired_at.is_not(None))
        .order_by(Series.acquired_at, Series.id)).all()
    wanted: dict[tuple[dt.datetime, str, str, str], str] = {}
    last: dict[str, str] = {}
    for at, version, modality, uid in rows:
        if at is None or version is None:  # excluded by the query; narrows the types
            continue
        key = modality or ""
        if key in last and last[key] != version:
            wanted[(at, last[key], version, key)] = uid
        last[key] = version
    if rows:
        device.software_versions, device.software_seen_at = rows[-1][1], rows[-1][0]
    existing = list(session.scalars(select(LifecycleEvent).where(
        LifecycleEvent.device_id == device_id, LifecycleEvent.kind == "software_change",
        LifecycleEvent.source == "headers")))
    have = set()
    for ev in existing:
        k = (ev.occurred_at, ev.details.get("from"), ev.details.get("to"),
             ev.details.get("modality") or "")
        if k in wanted and k not in have:
            have.add(k)
        else:
            session.delete(ev)  # superseded by a series that arrived late
    added = []
    for (at, old, new, modality), uid in wanted.items():
        if (at, old, new, modality) in have:
            continue
        ev = LifecycleEvent(
            device_id=device_id, kind="software_change", occurred_at=at, source="headers",
            summary=f"software {old} → {new}" + (f" ({modality})" if modality else ""),
            details={"from": old, "to": new, "modality": modality or None,
                     "series_instance_uid": uid})
        session.add(ev)
        added.append(ev)
    session.flush()
    return added

"""The device registry: every scanner known by its own headers.

A device is identified by Manufacturer (0008,0070) + Manufacturer's Model Name
(0008,1090) + Device Serial Number (0018,1000) (General Equipment Module, PS3.3
C.7.5.1), normalised (:func:`normalise`) so that "GE MEDICAL SYSTEMS" and
"GE Medical Systems" are one maker. Station Name (0008,1010) and the calling AE
title are kept as aliases; a header without a serial number is matched through
them (same maker and model), else by its station name, so a device that never
writes its serial still gets one stable record. A device is created the first
time it is seen; a Software Versions (0018,1020) value that differs from the
device's latest, on a series acquired later than the one that gave the latest,
records a ``software_change`` lifecycle event.
"""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scanbench.store.models import Device, DeviceAlias, LifecycleEvent, utcnow
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
             ae_title: str | None = None, acquired_at: dt.datetime | None = None,
             series_uid: str | None = None) -> Device:
    """The device these headers describe, created on first sight; its aliases and software
    version brought up to date (see module docstring). Safe against another process
    registering the same device at the same moment (unique key, retried)."""
    found = _find(session, device, ae_title)
    if found is None:
        found = _create(session, device, modality, ae_title, acquired_at)
    found.last_seen_at = utcnow()
    if found.modality is None and modality:
        found.modality = modality
    for kind, value in (("station_name", device.station), ("ae_title", ae_title)):
        if value and not any(a.kind == kind and a.value == value for a in found.aliases):
            _add_alias(session, found, kind, value)
    _software(session, found, device.software_versions, acquired_at, series_uid)
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
            ae_title: str | None, acquired_at: dt.datetime | None) -> Device:
    key = identity_key(device, ae_title)
    try:
        with session.begin_nested():
            new = Device(identity_key=key, manufacturer=device.manufacturer,
                         model=device.model, serial=device.serial, modality=modality,
                         display_name=" ".join(x for x in (device.manufacturer, device.model,
                                                           device.serial) if x) or None,
                         software_versions=device.software_versions,
                         software_seen_at=_naive(acquired_at))
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


def _naive(t: dt.datetime | None) -> dt.datetime | None:
    return None if t is None else t.replace(tzinfo=None)


def _software(session: Session, device: Device, version: str | None,
              acquired_at: dt.datetime | None, series_uid: str | None) -> None:
    if not version or version == device.software_versions:
        return
    seen = _naive(acquired_at)
    if device.software_versions is None:  # first version ever seen: not a change
        device.software_versions, device.software_seen_at = version, seen
        return
    if seen is not None and device.software_seen_at is not None and seen < device.software_seen_at:
        return  # an older series arriving late: history, not a change
    previous = device.software_versions
    # Compare-and-set: of two processes seeing the new version at once, one records it.
    won = session.connection().execute(
        update(Device).where(Device.id == device.id, Device.software_versions == previous)
        .values(software_versions=version, software_seen_at=seen)
        .returning(Device.id)).first() is not None
    session.refresh(device, ["software_versions", "software_seen_at"])
    if not won:
        return
    session.add(LifecycleEvent(
        device_id=device.id, kind="software_change", occurred_at=seen, source="headers",
        summary=f"software {previous} → {version}",
        details={"from": previous, "to": version, "series_instance_uid": series_uid}))

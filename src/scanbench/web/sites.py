"""Sites and which site a device belongs to: audited state changes (issue 12)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from scanbench.errors import InputError
from scanbench.store import models as m
from scanbench.web.audit import Actor, record


def add_site(session: Session, actor: Actor, name: str, *, institution: str | None = None,
             timezone: str | None = None) -> m.Site:
    """A new site; ``timezone`` is an IANA name (checked against the tz database)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InputError("a site name must have 1 to 200 characters")
    if session.scalars(select(m.Site).where(m.Site.name == name)).first():
        raise InputError(f"a site named {name!r} exists already")
    if timezone is not None:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise InputError(f"unknown time zone {timezone!r} (an IANA name such as "
                             "Europe/Paris)") from None
    site = m.Site(name=name, institution=institution, timezone=timezone)
    session.add(site)
    session.flush()
    record(session, actor, "site.add", "site", site.id, site_id=site.id,
           after={"name": name, "institution": institution, "timezone": timezone})
    return site


def assign_device(session: Session, actor: Actor, device_id: int, site: m.Site) -> m.Device:
    """Move a device to ``site`` (who can see it changes with it)."""
    device = session.get(m.Device, device_id)
    if device is None:
        raise InputError(f"no device with id {device_id}")
    before = {"site_id": device.site_id}
    device.site_id = site.id
    record(session, actor, "device.site", "device", device.id, site_id=site.id,
           before=before, after={"site_id": site.id})
    return device

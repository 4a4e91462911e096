"""What the demo enters beside the DICOM, each through the function a user's form, the
API or the command line calls (so each change is audited as theirs would be): sites and
the devices' site and class attributes, users and grants, spec assignments by device
class, lifecycle events, magnet telemetry, costs; then scorecards.

Lifecycle (per device): installation and acceptance before the period, a planned
service each half year (with its planned downtime), and the scenario's failure (an
unplanned downtime, the service visit and the part replaced) and upgrade (a software
change the site marks as a new baseline for trend alerts).

Magnet telemetry, one reading a day for the two 1.5 T magnets side by side: the
conventional magnet boils off helium at 0.08 % of its level a day (about 1.2 L/day of a
1,500 L vessel) and is refilled from 62 % to 95 % once; the sealed helium-free magnet's
level does not move (sensor noise 0.05 %). Pressure and cold-head temperature vary
around their nominal values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from scanbench.demo.fleet import SITES, USERS, DeviceDef, Scenario
from scanbench.store import models as m
from scanbench.web.audit import Actor

ACTOR = Actor(None, "cli:scanbench-demo", "scanbench demo")
SPECS_DIR = Path(__file__).parent / "specs"

#: Spec per device class: (spec file, criteria). The most specific assignment wins
#: (scanbench.evaluation.assign): the total-body PET/CT by its axial FOV, the 5 T MRI by
#: its field strength.
ASSIGNMENTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("demo-ct-qc.yaml", {"modality": "CT"}),
    ("demo-pet-qc.yaml", {"modality": "PT"}),
    ("demo-pet-qc-long-afov.yaml", {"modality": "PT", "axial_fov_min_cm": 100.0}),
    ("demo-mr-qc.yaml", {"modality": "MR"}),
    ("demo-mr-qc-ultra-high-field.yaml", {"modality": "MR", "field_strength_min_t": 4.0}),
)


def sites_and_users(session: Session, only: Collection[str] | None = None
                    ) -> dict[str, int]:
    """The sites (``only``: these site keys) and the demo users with their grants on
    them (a user with no grant there is left out); returns site key -> id."""
    from scanbench.web import auth
    from scanbench.web.sites import add_site

    ids: dict[str, int] = {}
    for s in SITES:
        if only is None or s.key in only:
            ids[s.key] = add_site(session, ACTOR, s.name, institution=s.institution,
                                  timezone=s.timezone).id
    for u in USERS:
        grants = [(k, r) for k, r in u.grants if k in ids]
        if not grants:
            continue
        user = auth.add_user(session, ACTOR, u.username, u.password,
                             display_name=u.display_name)
        for site_key, role in grants:
            auth.grant(session, ACTOR, user, session.get_one(m.Site, ids[site_key]), role)
    return ids


def device_ids(session: Session, devices: Sequence[DeviceDef]) -> dict[str, int]:
    """The stored device of each definition (registered by the ingest from its headers)."""
    from scanbench.store.devices import identity_key
    from scanbench.types import DeviceIdentity

    out: dict[str, int] = {}
    for d in devices:
        key = identity_key(DeviceIdentity(d.manufacturer, d.model, d.serial))
        row = session.scalars(select(m.Device).where(m.Device.identity_key == key)).first()
        if row is None:
            raise RuntimeError(f"device {d.display_name} ({d.manufacturer} {d.model}) was "
                               "not registered by the ingest")
        out[d.key] = row.id
    return out


def place_devices(session: Session, devices: Sequence[DeviceDef], ids: dict[str, int],
                  sites: dict[str, int]) -> None:
    """Each device to its site (audited, scanbench.web.sites) with its class attributes."""
    from scanbench.web.sites import assign_device

    for d in devices:
        row = assign_device(session, ACTOR, ids[d.key], session.get_one(m.Site, sites[d.site]))
        row.display_name = d.display_name
        row.modality = d.modality  # a PET/CT is judged as PET (its CT shares the identity)
        row.country_of_manufacture = d.country
        row.field_strength_t = d.field_strength_t
        row.axial_fov_cm = d.axial_fov_cm
        row.staffed_hours = {"weekdays": [0, 1, 2, 3, 4], "start": "07:00", "end": "19:00",
                             "timezone": next(s.timezone for s in SITES if s.key == d.site)}


#: The tests a demo without the periodic phantoms (``--no-periodic``) still does.
ROUTINE_FREQUENCIES = ("daily", "weekly")


def assign_specs(session: Session, sc: Scenario, *, periodic: bool = True,
                 folder: Path | None = None) -> list[str]:
    """Store the demo specs and assign one per device class from the start of the period
    (the programme was in force all year); returns their names. Without ``periodic``
    (the demo simulated no quarterly or annual phantom), each spec is stored without
    those tests, as its own version written to ``folder``: a programme that does not
    include a test cannot find it overdue."""
    import yaml

    from scanbench.evaluation.assign import DeviceClassCriteria, assign, load_spec_file

    since = dt.datetime.combine(sc.start - dt.timedelta(days=1), dt.time(0), tzinfo=dt.UTC)
    names = []
    for file, criteria in ASSIGNMENTS:
        path = SPECS_DIR / file
        if not periodic:
            if folder is None:
                raise ValueError("assign_specs: periodic=False needs a folder for the specs")
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
            if "tests" in doc:  # a spec without tests inherits its parent's, filtered
                doc["tests"] = [t for t in doc["tests"]
                                if t.get("frequency") in ROUTINE_FREQUENCIES]
            doc["version"] = f"{doc['version']}, daily and weekly tests only"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / file
            path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True),
                            encoding="utf-8")
        row = load_spec_file(session, path, created_at=since)
        assign(session, ACTOR, row.name, DeviceClassCriteria(**criteria), valid_from=since)
        names.append(row.name)
    return names


def _at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute))


def lifecycle(session: Session, devices: Sequence[DeviceDef], ids: dict[str, int],
              sc: Scenario) -> int:
    """Every device's life over the period (module docstring); returns events added."""
    from scanbench.demo.qc import UPGRADED_SOFTWARE
    from scanbench.evaluation.records import add_event, check_log

    n = 0
    for idx, d in enumerate(devices):
        dev = ids[d.key]
        installed = sc.start - dt.timedelta(days=400 + 61 * idx)

        def ev(kind: str, at: dt.datetime, dev: int = dev, **kw: Any) -> None:
            nonlocal n
            n += len(add_event(session, ACTOR, dev, kind, at, source="user", check=False,
                               **kw))

        ev("installation", _at(installed, 9), summary="installed by the vendor")
        ev("acceptance", _at(installed + dt.timedelta(days=21), 9),
           summary="acceptance tests passed")
        for frac in (0.25, 0.75):
            day = sc.date(round(frac * (len(sc.workdays) - 1)))
            if d.key == sc.failure_device and abs((day - sc.date(sc.failure_day)).days) < 10:
                day += dt.timedelta(days=14)
            ev("planned_service", _at(day, 19), summary="preventive maintenance visit")
            ev("downtime_start", _at(day, 19), end_at=_at(day, 23), planned=True,
               summary="preventive maintenance")
        if d.key == sc.failure_device:
            fail = sc.date(sc.failure_day)
            fixed = sc.date(sc.repair_day)
            ev("downtime_start", _at(fail, 8), end_at=_at(fixed, 7),
               summary="ring artefact and cupping on the daily water phantom; scanner "
               "taken out of clinical use")
            ev("unplanned_service", _at(fixed, 6), summary="detector module fault found "
               "by the field engineer", cost=4800.0, currency="EUR")
            ev("part_replacement", _at(fixed, 6, 30), summary="detector module 17 and "
               "its data acquisition board replaced; air calibration done; marked as a "
               "new baseline by the physicist", cost=38500.0, currency="EUR",
               new_baseline=True)
        if d.key == sc.upgrade_device:
            ev("software_change", _at(sc.date(sc.upgrade_day), 6),
               summary=f"upgrade {d.software} -> {UPGRADED_SOFTWARE} (new reconstruction); "
               "marked as a new baseline by the physicist", new_baseline=True)
        check_log(session, session.get_one(m.Device, dev))  # the whole log, once
    return n


def telemetry(session: Session, devices: Sequence[DeviceDef], ids: dict[str, int],
              sc: Scenario) -> int:
    """A daily magnet log for the conventional and the helium-free 1.5 T magnets of the
    lead hospital (module docstring); returns the readings stored."""
    from scanbench.evaluation.records import Reading, add_readings

    n = 0
    for d in devices:
        if d.kind != "mr" or d.site != "lead" or d.field_strength_t != 1.5:
            continue
        rng = np.random.default_rng(7 if d.helium_free else 11)
        level = 94.0
        refill = len(sc.workdays) // 2
        readings = []
        for i in range(sc.days):
            day = sc.start + dt.timedelta(days=i)
            at = dt.datetime.combine(day, dt.time(6, 0))
            if d.helium_free:
                value = 97.0 + float(rng.normal(0.0, 0.05))  # sealed: its small charge
                pressure = 101.3 + float(rng.normal(0.0, 0.2))
            else:
                level -= 0.08
                if i == refill:
                    level = 95.0
                value = level + float(rng.normal(0.0, 0.05))
                pressure = 104.5 + float(rng.normal(0.0, 0.3))
            readings += [Reading("helium_level_pct", at, round(value, 3)),
                         Reading("pressure_kpa", at, round(pressure, 2)),
                         Reading("coldhead_temp_k", at, round(4.2 + float(rng.normal(0, 0.02)),
                                                               3))]
        add_readings(session, ACTOR, ids[d.key], readings, source="demo magnet log")
        n += len(readings)
    return n


def costs(session: Session, devices: Sequence[DeviceDef], ids: dict[str, int],
          sc: Scenario) -> int:
    """Acquisition (10-year life) and service contract per device; the conventional
    magnet's helium refill as a cryogen cost."""
    from scanbench.evaluation.records import add_cost

    price = {"petct": 2_800_000.0, "ct": 1_100_000.0, "mr": 1_500_000.0}
    n = 0
    for d in devices:
        dev = ids[d.key]
        p = price[d.kind] * (2.2 if d.axial_fov_cm and d.axial_fov_cm > 100 else 1.0) \
            * (2.0 if (d.field_strength_t or 0) > 4 else 1.0)
        bought = sc.start - dt.timedelta(days=420)
        add_cost(session, ACTOR, dev, "acquisition", p, "EUR", bought, life_years=10.0,
                 note="purchase price (demo figure)")
        add_cost(session, ACTOR, dev, "service_contract", round(0.08 * p, -3), "EUR",
                 sc.start, end_on=sc.start + dt.timedelta(days=sc.days - 1),
                 note="full service contract, per year (demo figure)")
        n += 2
        if d.kind == "mr" and d.site == "lead" and d.field_strength_t == 1.5 \
                and not d.helium_free:
            add_cost(session, ACTOR, dev, "cryogen", 16_500.0, "EUR",
                     sc.date(len(sc.workdays) // 2),
                     note="helium refill, about 500 L (demo figure)")
            n += 1
    return n


def scorecards(session: Session, ids: dict[str, int], sc: Scenario) -> int:
    """One scorecard per device over the period (scanbench.evaluation.scorecard)."""
    from scanbench.evaluation.scorecard import compute_scorecards

    n = 0
    for dev in ids.values():
        device = session.get_one(m.Device, dev)
        site = session.get(m.Site, device.site_id) if device.site_id else None
        zone = ZoneInfo(site.timezone) if site and site.timezone else dt.UTC
        start = dt.datetime.combine(sc.start, dt.time(0), tzinfo=zone)
        end = dt.datetime.combine(sc.start + dt.timedelta(days=sc.days), dt.time(0),
                                  tzinfo=zone)
        n += sum(1 for o in compute_scorecards(session, dev, start.astimezone(dt.UTC),
                                               end.astimezone(dt.UTC)) if o.row is not None)
    return n

"""The device registry on SQLite and PostgreSQL: identity, aliases, software changes,
concurrent first sight, and a device's measurement history as one indexed query."""

from __future__ import annotations

import datetime as dt
import itertools
import threading

import numpy as np
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from scanbench.store import Database, devices, repo
from scanbench.store import models as m
from scanbench.types import DeviceIdentity, Limits, Result

GE = DeviceIdentity("GE MEDICAL SYSTEMS", "Discovery MI", "DMI-7", "PETCT1", "pet 4.1")


def test_identity_is_normalised() -> None:
    a = devices.identity_key(DeviceIdentity("GE MEDICAL SYSTEMS", "Discovery  MI", "dmi-7"))
    b = devices.identity_key(DeviceIdentity("GE Medical Systems", "Discovery MI", "DMI 7"))
    assert a == b == "ge medical systems|discovery mi|dmi 7"
    assert devices.identity_key(DeviceIdentity("X", "Y", None, "ST 1")) == "x|y|~station:st 1"
    assert devices.identity_key(DeviceIdentity("X", "Y"), ae_title="CT_A") == "x|y|~ae:ct a"


def test_created_once_with_aliases(database_url: str) -> None:
    db = Database(url=database_url)
    try:
        with db.session() as s:
            d1 = devices.register(s, GE, modality="PT", ae_title="PETCT1_AE")
        with db.session() as s:
            d2 = devices.register(s, DeviceIdentity("GE Medical Systems", "Discovery MI",
                                                    "DMI-7", "PETCT1b", "pet 4.1"))
            assert d2.id == d1.id
            aliases = {(a.kind, a.value) for a in d2.aliases}
            assert aliases == {("station_name", "PETCT1"), ("ae_title", "PETCT1_AE"),
                               ("station_name", "PETCT1b")}
            # Headers without a serial: the station alias finds the same scanner.
            d3 = devices.register(s, DeviceIdentity("GE MEDICAL SYSTEMS", "Discovery MI", None,
                                                    "PETCT1"))
            assert d3.id == d1.id
            # Another model with the same station name is another device.
            d4 = devices.register(s, DeviceIdentity("GE MEDICAL SYSTEMS", "Revolution", None,
                                                    "PETCT1"))
            assert d4.id != d1.id
            assert s.scalar(select(func.count()).select_from(m.Device)) == 2
    finally:
        db.close()


_UIDS = itertools.count(1)


def _series(s: Session, device_id: int, when: dt.datetime, version: str,
            modality: str = "PT") -> None:
    study = m.Study(study_uid=f"1.2.{next(_UIDS)}")
    s.add(study)
    s.flush()
    s.add(m.Series(series_uid=f"9.{study.id}", study_id=study.id, device_id=device_id,
                   modality=modality, acquired_at=when, software_versions=version))
    s.flush()


def test_software_change_is_a_lifecycle_event(database_url: str) -> None:
    db = Database(url=database_url)
    t0 = dt.datetime(2026, 1, 5, 9, 0)
    day = dt.timedelta(days=1)
    try:
        with db.session() as s:
            dev = devices.register(s, GE)
            _series(s, dev.id, t0, "pet 4.1")  # first sight: no change
            assert devices.record_software(s, dev.id) == []
            _series(s, dev.id, t0 + day, "pet 4.1")
            assert devices.record_software(s, dev.id) == []
            _series(s, dev.id, t0 + 30 * day, "pet 4.2")
            (ev,) = devices.record_software(s, dev.id)
            assert (ev.occurred_at, ev.details["from"], ev.details["to"]) == (
                t0 + 30 * day, "pet 4.1", "pet 4.2")
            # The CT half of the PET/CT writes its own version: not a change of the PET's.
            _series(s, dev.id, t0 + 2 * day, "ct 7.0", modality="CT")
            _series(s, dev.id, t0 + 3 * day, "ct 7.0", modality="CT")
            assert devices.record_software(s, dev.id) == []
            # A series received late shows the update happened earlier: the event moves.
            _series(s, dev.id, t0 + 10 * day, "pet 4.2")
            (moved,) = devices.record_software(s, dev.id)
            assert moved.occurred_at == t0 + 10 * day
        with db.session() as s:
            events = list(s.scalars(select(m.LifecycleEvent)))
            assert [(e.kind, e.occurred_at, e.details["to"]) for e in events] == [
                ("software_change", t0 + 10 * day, "pet 4.2")]
            assert events[0].source == "headers" and events[0].device_id == dev.id
            assert s.get_one(m.Device, dev.id).software_versions == "pet 4.2"
    finally:
        db.close()


def test_two_processes_seeing_a_new_device_at_once_make_one(database_url: str) -> None:
    dbs = [Database(url=database_url) for _ in range(4)]
    barrier = threading.Barrier(len(dbs))
    errors: list[BaseException] = []

    def work(db: Database) -> None:
        try:
            barrier.wait()
            with db.session() as s:
                devices.register(s, GE, ae_title="AE1")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(db,)) for db in dbs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors, errors
        with dbs[0].session() as s:
            assert s.scalar(select(func.count()).select_from(m.Device)) == 1
            assert s.scalar(select(func.count()).select_from(m.DeviceAlias)) == 2
    finally:
        for db in dbs:
            db.close()


def _result(when: dt.datetime, value: float) -> Result:
    r = Result("pet.calibration_uniformity", "EARL", "1.2.3", GE, when)
    r.add("activity_concentration_bias_percent", value, "%")
    r.add("percent_contrast", value * 10, "%", labels={"sphere_mm": np.int64(10)})
    r.add("percent_contrast", value * 20, "%", labels={"sphere_mm": 37},
          limits=Limits(low=50, source="test"), status="pass")
    return r


def test_history_is_one_indexed_query(database_url: str) -> None:
    db = Database(url=database_url)
    t0 = dt.datetime(2026, 1, 1, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    try:
        with db.session() as s:
            dev = devices.register(s, GE)
            for k, v in [(2, 1.5), (0, -0.5), (1, 0.7)]:  # stored out of order
                repo.save_result(s, _result(t0 + dt.timedelta(days=k), v), series_id=None,
                                 device_id=dev.id)
        with db.session() as s:
            pts = repo.history(s, dev.id, "pet.calibration_uniformity",
                               "activity_concentration_bias_percent")
            assert [p.value for p in pts] == [-0.5, 0.7, 1.5]
            assert pts[0].acquired_at == dt.datetime(2026, 1, 1, 8, 0)  # local clock time
            big = repo.history(s, dev.id, "pet.calibration_uniformity", "percent_contrast",
                               {"sphere_mm": 37})
            assert [p.value for p in big] == [-10.0, 14.0, 30.0]
            assert big[0].status == "pass"
            since = repo.history(s, dev.id, "pet.calibration_uniformity", "percent_contrast",
                                 {"sphere_mm": 10}, since=dt.datetime(2026, 1, 2))
            assert [p.value for p in since] == [7.0, 15.0]
            # The query plan uses the history index.
            sql = ("SELECT value FROM measurement WHERE device_id = 1 AND analysis = 'a' "
                   "AND name = 'n' ORDER BY acquired_at")
            if db.dialect == "sqlite":
                plan = " ".join(str(r[-1]) for r in s.execute(text("EXPLAIN QUERY PLAN " + sql)))
            else:
                s.execute(text("SET LOCAL enable_seqscan = off"))
                plan = " ".join(r[0] for r in s.execute(text("EXPLAIN " + sql)))
            assert "ix_measurement_history" in plan, plan
    finally:
        db.close()

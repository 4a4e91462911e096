"""The stored fleet state (``device_state``, scanbench.store.fleet_state) kept in the
transaction that stores results, measurements, alerts, scorecards and devices: after
every step of a sequence it equals the state computed from scratch by an independent
reading of every result, alert and scorecard (SQLite and PostgreSQL); migration 0007
fills it for an existing database; the dose version rises with dose events."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session

from scanbench.evaluation.scorecard import latest_scorecards
from scanbench.store import Database, devices, fleet_state, repo
from scanbench.store import models as m
from scanbench.store.db import upgrade
from scanbench.types import DeviceIdentity, Result


def _oracle(s: Session, device_id: int) -> dict[str, Any]:
    """The fleet state of one device from every one of its rows, in Python: the newest
    result per analysis by (dated first, acquisition time, id), its measurements'
    statuses, the open alerts, the newest scorecard."""
    newest: dict[str, m.Result] = {}
    for r in s.scalars(select(m.Result).where(m.Result.device_id == device_id)):
        if r.analysis in ("ct.clinical_global_noise", "pet.clinical_liver_noise"):
            continue  # a patient's series is not a QC test
        key = (r.acquired_at is not None, r.acquired_at or dt.datetime.min, r.id)
        old = newest.get(r.analysis)
        if old is None or key > (old.acquired_at is not None,
                                 old.acquired_at or dt.datetime.min, old.id):
            newest[r.analysis] = r
    tests = []
    for analysis in sorted(newest):
        r = newest[analysis]
        statuses = set(s.scalars(select(m.Measurement.status)
                                 .where(m.Measurement.result_id == r.id)))
        tests.append({"analysis": analysis, "result_id": r.id,
                      "acquired_at": r.acquired_at.isoformat() if r.acquired_at else None,
                      "status": fleet_state.result_status(statuses)})
    alerts = list(s.scalars(select(m.Alert).where(m.Alert.device_id == device_id,
                                                  m.Alert.state == "open")
                            .order_by(m.Alert.id)))
    failing = sum(a.level == "action" for a in alerts)
    card = latest_scorecards(s, [device_id]).get(device_id)
    listed = card.data.get("tests", []) if card else []
    overdue = [str(t.get("title") or t.get("test")) for t in listed
               if t.get("status") == "overdue"]
    if failing or any(t["status"] == "fail" for t in tests):
        state = "failing"
    elif len(alerts) > failing:
        state = "drifting"
    elif overdue:
        state = "overdue"
    else:
        state = "ok" if tests else "no results"
    return {"state": state, "tests": tests, "alerts_failing": failing,
            "alerts_drifting": len(alerts) - failing, "overdue": overdue,
            "alert_messages": [a.message for a in alerts]}


def _check(db: Database) -> dict[int, str]:
    """Every device's stored state equals the oracle's; returns device -> state."""
    out = {}
    with db.sessions() as s:
        ids = list(s.scalars(select(m.Device.id)))
        stored = {r.device_id: r for r in s.scalars(select(m.DeviceState))}
        assert set(stored) == set(ids)
        for did in ids:
            want, row = _oracle(s, did), stored[did]
            got = {"state": row.state, "tests": row.tests, "alerts_failing": row.alerts_failing,
                   "alerts_drifting": row.alerts_drifting, "overdue": row.overdue,
                   "alert_messages": row.alert_messages}
            assert got == want, (did, got, want)
            assert row.rank == fleet_state.RANK[row.state]
            out[did] = row.state
    return out


def _result(s: Session, device: m.Device, when: dt.datetime | None, status: str,
            analysis: str = "ct.acr464.uniformity") -> int:
    ident = DeviceIdentity(device.manufacturer, device.model, device.serial, None, None)
    r = Result(analysis, "ACR CT", None, ident, when)
    r.add("uniformity_hu", 1.0, "HU", status=status)
    return repo.save_result(s, r, series_id=None, device_id=device.id).id


def _device(s: Session, serial: str) -> m.Device:
    dev = devices.register(s, DeviceIdentity("Canon", "Aquilion", serial, None, None))
    dev.modality = "CT"
    return dev


def _alert(device_id: int, key: str, level: str) -> m.Alert:
    return m.Alert(key=key, device_id=device_id, analysis="ct.acr464.uniformity",
                   name="uniformity_hu", rule="limit" if level != "trend" else "1-3s",
                   level=level, message=f"{key} <b>broke</b>", state="open")


def test_stored_state_equals_state_from_scratch(database_url: str) -> None:
    db = Database(url=database_url)
    try:
        t0 = dt.datetime(2026, 3, 1, 9, 0)
        with db.sessions() as s:
            a, b, c = (_device(s, n) for n in ("A1", "B1", "C1"))
            s.commit()
            ids = a.id, b.id, c.id
        assert set(_check(db).values()) == {"no results"}
        with db.sessions() as s:
            a, b, c = (s.get_one(m.Device, i) for i in ids)
            _result(s, a, t0, "pass")
            _result(s, a, None, "fail")  # undated: a dated result is newer
            _result(s, b, t0, "pass", "ct.acr464.ct_number")
            s.commit()
        assert _check(db)[ids[0]] == "ok"
        with db.sessions() as s:
            a = s.get_one(m.Device, ids[0])
            failed = _result(s, a, t0 + dt.timedelta(days=1), "fail")
            s.commit()
        assert _check(db)[ids[0]] == "failing"
        with db.sessions() as s:  # a re-analysis of the same acquisition supersedes it
            a = s.get_one(m.Device, ids[0])
            _result(s, a, t0 + dt.timedelta(days=1), "pass")
            s.add(_alert(ids[1], "b-trend", "trend"))
            s.commit()
        states = _check(db)
        assert (states[ids[0]], states[ids[1]]) == ("ok", "drifting")
        with db.sessions() as s:  # the trend alert closed; an action alert on A
            s.scalars(select(m.Alert).where(m.Alert.key == "b-trend")).one().state = "closed"
            s.add(_alert(ids[0], "a-limit", "action"))
            spec = m.Spec(name="bench spec", yaml="name: bench spec")
            s.add(spec)
            s.flush()
            s.add(m.Scorecard(device_id=ids[2], spec_id=spec.id, period_end=t0, data={
                "tests": [{"test": "ct.annual", "title": "Annual test", "status": "overdue"},
                          {"test": "ct.daily", "status": "due"}]}))
            s.commit()
        states = _check(db)
        assert (states[ids[0]], states[ids[1]], states[ids[2]]) == ("failing", "ok",
                                                                    "overdue")
        with db.sessions() as s:  # a newer scorecard without overdue tests
            spec_id = s.scalars(select(m.Spec.id)).one()
            s.add(m.Scorecard(device_id=ids[2], spec_id=spec_id,
                              period_end=t0 + dt.timedelta(days=30),
                              data={"tests": [{"test": "ct.annual", "status": "passed"}]}))
            # a measurement re-judged, and a result moved to another device
            mm = s.scalars(select(m.Measurement).where(m.Measurement.result_id == failed)).one()
            mm.status = "pass"
            moved = s.get_one(m.Result, failed)
            moved.device_id = ids[2]
            s.scalars(select(m.Alert).where(m.Alert.key == "a-limit")).one().state = "closed"
            s.commit()
        states = _check(db)
        assert states[ids[2]] == "ok" and states[ids[0]] == "ok"
        with db.sessions() as s:  # a result deleted
            s.delete(s.get_one(m.Result, failed))
            s.commit()
        _check(db)
        with db.sessions() as s:  # a patient's clinical noise, refused: not a QC test
            b = s.get_one(m.Device, ids[1])
            _result(s, b, t0 + dt.timedelta(days=2), "refused", "ct.clinical_global_noise")
            s.commit()
        assert _check(db)[ids[1]] == "ok"
        with db.sessions() as s:
            row = s.get_one(m.DeviceState, ids[1])
            assert [t["analysis"] for t in row.tests] == ["ct.acr464.ct_number"]
        with db.sessions() as s:  # a rebuild from scratch writes the same rows
            before = {r.device_id: (r.state, r.tests) for r in s.scalars(select(m.DeviceState))}
            assert fleet_state.rebuild(s) == 3
            s.commit()
            after = {r.device_id: (r.state, r.tests) for r in s.scalars(select(m.DeviceState))}
        assert after == before
    finally:
        db.close()


def test_dose_version_rises_with_dose_events_only(tmp_path: Any) -> None:
    db = Database(url=f"sqlite:///{tmp_path / 'v.db'}")
    try:
        with db.sessions() as s:
            dev = _device(s, "D1")
            s.commit()
            v0 = fleet_state.version(s, "dose")
            _result(s, dev, dt.datetime(2026, 1, 1), "pass")
            dev.last_seen_at = m.utcnow()  # what every stored image does
            s.commit()
            assert fleet_state.version(s, "dose") == v0
            st = m.Study(study_uid="1.2.3")
            s.add(st)
            s.flush()
            s.add(m.DoseEvent(study_id=st.id, device_id=dev.id, kind="ct", ctdivol_mgy=9.0))
            s.commit()
            v1 = fleet_state.version(s, "dose")
            assert v1 > v0
            st.description = "touched by a stored image"  # not in the statistics
            s.commit()
            assert fleet_state.version(s, "dose") == v1
            dev.site_id = s.scalars(select(m.Site.id)).first()  # None: no change
            dev.modality = "PT"
            s.commit()
            assert fleet_state.version(s, "dose") > v1
    finally:
        db.close()


def test_migration_0007_fills_the_state_of_an_existing_database(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    db = Database(url=url, auto_upgrade=False)
    try:
        assert upgrade(db.engine, "0006") == "0006"
        with db.sessions() as s:  # written by 0.2.0's schema: no device_state yet
            dev = _device(s, "OLD1")
            s.flush()
            _result(s, dev, dt.datetime(2026, 2, 1), "fail")
            s.commit()
        assert "device_state" not in sa.inspect(db.engine).get_table_names()
        assert upgrade(db.engine) == "0007"
        assert _check(db) == {dev.id: "failing"}
    finally:
        db.close()


def test_two_transactions_storing_results_of_one_device(database_url: str) -> None:
    """PostgreSQL, two writers: the second waits on the device's state row until the
    first commits, then computes from data that includes the first's result (without
    the lock its state, computed before, would overwrite the first's)."""
    import threading
    import time

    if not database_url.startswith("postgresql"):
        return  # SQLite writers are serialised by BEGIN IMMEDIATE
    db = Database(url=database_url)
    try:
        with db.sessions() as s:
            dev = _device(s, "RACE1")
            _result(s, dev, dt.datetime(2026, 1, 1), "pass")
            s.commit()
        first = db.sessions()
        first_dev = first.get_one(m.Device, dev.id)
        _result(first, first_dev, dt.datetime(2026, 1, 2), "fail", "ct.acr464.ct_number")
        first.flush()
        fleet_state._before_commit(first)  # its state written and the row locked
        errors: list[BaseException] = []

        def second() -> None:
            try:
                with db.sessions() as s2:
                    d2 = s2.get_one(m.Device, dev.id)
                    _result(s2, d2, dt.datetime(2026, 1, 3), "pass", "ct.acr464.noise")
                    s2.commit()
            except BaseException as exc:  # reported below
                errors.append(exc)

        worker = threading.Thread(target=second)
        worker.start()
        with db.engine.connect() as watch:  # until the second writer waits on the lock
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not watch.execute(sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = current_database()")).scalar():
                watch.rollback()
                time.sleep(0.05)
        first.commit()
        first.close()
        worker.join(120)
        assert not errors, errors
        states = _check(db)
        assert states[dev.id] == "failing"
        with db.sessions() as s:
            row = s.get_one(m.DeviceState, dev.id)
            assert len(row.tests) == 3  # both writers' results in the stored state
    finally:
        db.close()


def test_stored_answers_are_bounded_and_recomputed_at_a_new_version(
        tmp_path: Any, monkeypatch: Any) -> None:
    db = Database(url=f"sqlite:///{tmp_path / 'c.db'}")
    monkeypatch.setattr(fleet_state, "MAX_STORED", 3)
    calls: list[str] = []
    try:
        with db.sessions() as s:
            def computed(n: int) -> str:
                calls.append("x")
                return f'{{"n": {n}}}'

            for n in range(5):
                key = fleet_state.cache_key("dose", {"n": n}, [1, 2])
                got = fleet_state.cached(s, "dose", key, functools.partial(computed, n))
                assert got == f'{{"n": {n}}}'
            keys = set(s.scalars(select(m.StatsCache.key)))
            assert len(keys) == 3 and fleet_state.cache_key("dose", {"n": 4}, [1, 2]) in keys
            last = fleet_state.cache_key("dose", {"n": 4}, [2, 1])  # the same devices
            assert fleet_state.cached(s, "dose", last, lambda: "other") == '{"n": 4}'
            assert len(calls) == 5
            fleet_state.bump(s, "dose")
            s.commit()
            assert fleet_state.cached(s, "dose", last, lambda: '"new"') == '"new"'
            assert set(s.scalars(select(m.StatsCache.key))) == {last}  # older versions gone
    finally:
        db.close()

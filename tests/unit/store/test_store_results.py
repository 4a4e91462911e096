"""Results in the store on SQLite and PostgreSQL: every status of scanbench.types (up to
19 characters: PostgreSQL enforces the column length) and the note saying why a value is
refused or not judged come back as stored; a re-analysis supersedes, never rewrites."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from scanbench.store import Database, devices, repo
from scanbench.store import models as m
from scanbench.types import STATUSES, DeviceIdentity, Limits, Result

DEV = DeviceIdentity("Siemens", "Biograph mCT", "1234", "PET1", "VG80")
T0 = dt.datetime(2026, 3, 1, 9, 0)


def _result(value: float) -> Result:
    r = Result("pet.calibration_uniformity", "NEMA NU 2-2018", "1.2.3", DEV, T0)
    r.add("activity_concentration_bias_percent", value, "%")
    return r


def test_every_status_and_its_note_round_trip(database_url: str) -> None:
    db = Database(url=database_url)
    try:
        r = _result(1.0)
        for k, status in enumerate(STATUSES):
            r.add("x", float(k), "%", labels={"k": k}, status=status)
        r.add("rc", 3.1, "1", labels={"k": "refused"})
        r.measurements[-1].refuse("recovery coefficient 3.1 outside 0..1.3 (partial volume)")
        r.add("pc", 40.0, "%", labels={"k": "nj"}, limits=Limits(low=30, source="EARL"))
        r.measurements[-1].not_judged("activity ratio neither given nor measurable")
        with db.session() as s:
            dev = devices.register(s, DEV)
            repo.save_result(s, r, series_id=None, device_id=dev.id)
        with db.session() as s:
            rows = {str(x.labels.get("k")): x for x in s.scalars(select(m.Measurement))}
            for k, status in enumerate(STATUSES):
                assert rows[str(k)].status == status
            assert rows["refused"].status == "refused" and rows["refused"].value is None
            assert rows["refused"].note == ("recovery coefficient 3.1 outside 0..1.3 "
                                            "(partial volume)")
            assert (rows["nj"].status, rows["nj"].note) == (
                "not_judged", "activity ratio neither given nor measurable")
            assert rows["0"].note is None
            (pt,) = repo.history(s, dev.id, "pet.calibration_uniformity", "rc")
            assert pt.note and pt.note.startswith("recovery coefficient")
    finally:
        db.close()


def test_a_reanalysis_supersedes_and_leaves_the_history_once(database_url: str) -> None:
    db = Database(url=database_url)
    try:
        with db.session() as s:
            dev = devices.register(s, DEV)
            study = m.Study(study_uid="1.2.9")
            s.add(study)
            s.flush()
            series = m.Series(series_uid="1.2.3", study_id=study.id, device_id=dev.id)
            s.add(series)
            s.flush()
            first = repo.save_result(s, _result(1.0), series_id=series.id, device_id=dev.id)
            second = repo.save_result(s, _result(2.0), series_id=series.id, device_id=dev.id)
            first_id, second_id, series_id = first.id, second.id, series.id
        with db.session() as s:
            rows = list(s.scalars(select(m.Result).order_by(m.Result.id)))
            assert [r.id for r in rows] == [first_id, second_id]  # the first is kept
            assert rows[1].supersedes_id == first_id and rows[0].supersedes_id is None
            pts = repo.history(s, dev.id, "pet.calibration_uniformity",
                               "activity_concentration_bias_percent")
            assert [p.value for p in pts] == [2.0]
            cur = repo.current(s, series_id, "pet.calibration_uniformity")
            assert cur is not None and cur.id == second_id
    finally:
        db.close()


def test_results_stored_together_do_not_supersede_each_other(database_url: str) -> None:
    """An analysis may give two results for one series (one per phantom position, say):
    both stay current; a re-run's two results supersede the earlier two, one each."""
    db = Database(url=database_url)
    try:
        with db.session() as s:
            dev = devices.register(s, DEV)
            study = m.Study(study_uid="1.2.9")
            s.add(study)
            s.flush()
            series = m.Series(series_uid="1.2.3", study_id=study.id, device_id=dev.id)
            s.add(series)
            s.flush()
            saved: list[int] = []
            for v in (1.0, 2.0):
                saved.append(repo.save_result(s, _result(v), series_id=series.id,
                                              device_id=dev.id, besides=saved).id)
            again: list[int] = []
            for v in (3.0, 4.0):
                again.append(repo.save_result(s, _result(v), series_id=series.id,
                                              device_id=dev.id, besides=again).id)
        with db.session() as s:
            rows = {r.id: r for r in s.scalars(select(m.Result))}
            assert [rows[i].supersedes_id for i in saved] == [None, None]
            assert [rows[i].supersedes_id for i in again] == saved
            pts = repo.history(s, dev.id, "pet.calibration_uniformity",
                               "activity_concentration_bias_percent")
            assert sorted(p.value for p in pts) == [3.0, 4.0]
    finally:
        db.close()

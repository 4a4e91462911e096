"""Dose and workflow statistics from the store (clinical.dose_stats) against values
computed by hand on a constructed set, on SQLite and PostgreSQL: percentiles (linear
interpolation, checked against numpy too), Tukey outliers with their study, the DRL
comparison of a group's median, utilisation over staffed hours or 24 h, and the
comparison of one measurement across devices."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from pg import database_url, pg_server  # noqa: F401  (fixtures: SQLite and PostgreSQL)
from scanbench.clinical import dose_stats as ds
from scanbench.errors import InputError
from scanbench.store import Database
from scanbench.store import models as m

CHEST = {"value": "43799004", "scheme": "SCT", "meaning": "Chest"}
# Guangzhou 2022 survey (shipped table): chest CTDIvol P75 13.3 mGy, DLP 350 mGy·cm.
CHEST_CTDI = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]  # device A, "Thorax routine"
HEAD_CTDI = [1.0, 2.0, 3.0, 4.0, 100.0]  # device B, "<script>x</script> head"


@dataclass
class Fixture:
    db: Database
    ids: dict[str, int]


def _populate(db: Database) -> dict[str, int]:
    ids: dict[str, int] = {}
    with db.sessions() as s:
        site_a, site_b = m.Site(name="A"), m.Site(name="B")
        s.add_all([site_a, site_b])
        s.flush()
        dev_a = m.Device(identity_key="a", site_id=site_a.id, modality="CT",
                         staffed_hours={"weekdays": [0, 1, 2, 3, 4], "start": "08:00",
                                        "end": "18:00"})
        dev_b = m.Device(identity_key="b", site_id=site_b.id, modality="CT")
        s.add_all([dev_a, dev_b])
        s.flush()
        ids.update(site_a=site_a.id, site_b=site_b.id, dev_a=dev_a.id, dev_b=dev_b.id)
        day = dt.datetime(2026, 3, 2, 9, 0)  # a Monday
        for dev, protocol, values, region in (
                (dev_a, "Thorax routine", CHEST_CTDI, CHEST),
                (dev_b, "<script>x</script> head", HEAD_CTDI, None)):
            for i, v in enumerate(values):
                study = m.Study(study_uid=f"1.9.{dev.id}.{i}", site_id=dev.site_id)
                s.add(study)
                s.flush()
                ids[f"study_{dev.identity_key}{i}"] = study.id
                when = day + dt.timedelta(hours=i)
                s.add(m.DoseEvent(study_id=study.id, device_id=dev.id, kind="study",
                                  occurred_at=when, protocol=protocol, dlp_mgycm=v * 10))
                s.add(m.DoseEvent(study_id=study.id, device_id=dev.id, kind="ct",
                                  occurred_at=when, protocol=protocol, ctdivol_mgy=v,
                                  data={"acquisition_type": "spiral",
                                        "target_region_code": region}))
                # A localizer with a huge CTDIvol: never in the statistics.
                s.add(m.DoseEvent(study_id=study.id, device_id=dev.id, kind="ct",
                                  occurred_at=when, protocol=protocol, ctdivol_mgy=999.0,
                                  data={"acquisition_type": "constant_angle"}))
                # Exams: 30 min each on device A (Monday), 60 min on device B.
                minutes = 30 if dev is dev_a else 60
                s.add(m.ExamTiming(study_id=study.id, device_id=dev.id, started_at=when,
                                   ended_at=when + dt.timedelta(minutes=minutes),
                                   duration_s=minutes * 60.0,
                                   data={"uptake_time_min": 50.0 + 5 * i,
                                         "uptake_in_window": 55 <= 50 + 5 * i <= 75}))
        # A PET administration with weight: 300 MBq over 75 kg = 4 MBq/kg.
        s.add(m.DoseEvent(study_id=ids["study_a0"], device_id=dev_a.id,
                          kind="radiopharmaceutical", occurred_at=day, protocol="FDG",
                          administered_activity_mbq=300.0,
                          data={"activity_per_kg_mbq_per_kg": 4.0}))
        s.commit()
    return ids


@pytest.fixture
def world(database_url: str) -> Iterator[Fixture]:  # noqa: F811
    db = Database(url=database_url)
    try:
        yield Fixture(db, _populate(db))
    finally:
        db.close()


def test_percentiles_are_linear_between_ranks_like_numpy(world: Fixture) -> None:
    with world.db.sessions() as s:
        st = ds.dose_statistics(s, "ctdivol_mgy", ds.Filters())
    by_dev = {g.device_id: g for g in st.groups}
    a = by_dev[world.ids["dev_a"]].distribution
    # Hand: h = (n-1)p = 5 x 0.25 = 1.25 -> 20 + 0.25 x 10 = 22.5; median 35;
    # h = 3.75 -> 47.5; p95 h = 4.75 -> 57.5. The localizers (999 mGy) are left out.
    assert (a.n, a.q1, a.median, a.q3, a.p95) == (6, 22.5, 35.0, 47.5, 57.5)
    assert a.maximum == 60.0 and a.mean == 35.0
    for values, d in ((CHEST_CTDI, a), (HEAD_CTDI, by_dev[world.ids["dev_b"]].distribution)):
        assert [d.q1, d.median, d.q3, d.p95] == pytest.approx(
            list(np.percentile(values, [25, 50, 75, 95])))


def test_outliers_above_tukey_fence_listed_with_their_study(world: Fixture) -> None:
    with world.db.sessions() as s:
        st = ds.dose_statistics(s, "ctdivol_mgy", ds.Filters())
    # Head: Q1 2, Q3 4 -> fence 4 + 1.5 x 2 = 7: only 100 mGy. Chest: fence 85, none.
    assert st.outliers_total == 1
    (o,) = st.outliers
    assert (o.value, o.upper_fence, o.study_id) == (100.0, 7.0, world.ids["study_b4"])
    assert o.study_uid == f"1.9.{world.ids['dev_b']}.4"
    assert o.protocol == "<script>x</script> head"


def test_group_median_against_the_drl_of_its_category(world: Fixture) -> None:
    with world.db.sessions() as s:
        st = ds.dose_statistics(s, "ctdivol_mgy", ds.Filters(), table="guangzhou-2022-survey")
        dlp = ds.dose_statistics(s, "dlp_mgycm", ds.Filters())
    chest = next(g for g in st.groups if g.device_id == world.ids["dev_a"])
    assert chest.region == "chest"  # from the coded target region, not the text
    ref = chest.reference
    assert ref is not None and ref.exam == "chest" and ref.level == 13.3
    assert ref.ratio_median == pytest.approx(35.0 / 13.3)
    assert ref.ratio_p75 == pytest.approx(47.5 / 13.3)
    assert ref.outcome == "above_drl" and "doi" in ref.source
    # No region, no matching protocol text (head categories match by region only).
    assert next(g for g in st.groups if g.device_id == world.ids["dev_b"]).reference is None
    # Exam DLP (study rows): the region comes from the exam's CT events.
    chest_dlp = next(g for g in dlp.groups if g.device_id == world.ids["dev_a"])
    assert chest_dlp.distribution.median == 350.0
    assert chest_dlp.reference is not None and chest_dlp.reference.ratio_median == 1.0
    assert chest_dlp.reference.outcome == "within"  # at the DRL is not above it


def test_filters_and_bad_input(world: Fixture) -> None:
    with world.db.sessions() as s:
        only_a = ds.dose_statistics(s, "ctdivol_mgy", ds.Filters(site_id=world.ids["site_a"]))
        assert [g.device_id for g in only_a.groups] == [world.ids["dev_a"]]
        visible = ds.Filters(devices=m.Device.__table__.select().with_only_columns(
            m.Device.id).where(m.Device.site_id == world.ids["site_b"]))
        assert [g.device_id for g in ds.dose_statistics(s, "ctdivol_mgy", visible).groups] \
            == [world.ids["dev_b"]]
        late = ds.Filters(date_from=dt.date(2026, 3, 2), date_to=dt.date(2026, 3, 3),
                          protocol="Thorax routine")
        (g,) = ds.dose_statistics(s, "ctdivol_mgy", late, group_by="protocol").groups
        assert g.distribution.n == 6
        assert ds.dose_statistics(s, "ctdivol_mgy", ds.Filters(
            date_from=dt.date(2026, 3, 3))).groups == []
        per_kg = ds.dose_statistics(s, "activity_per_kg_mbq_per_kg", ds.Filters())
        assert per_kg.groups[0].distribution.median == 4.0 and per_kg.quantity.unit == "MBq/kg"
        with pytest.raises(InputError, match="unknown dose quantity 'x'"):
            ds.dose_statistics(s, "x", ds.Filters())
        with pytest.raises(InputError, match="unknown reference level table"):
            ds.dose_statistics(s, "ctdivol_mgy", ds.Filters(), table="../etc/passwd")
        with pytest.raises(InputError, match="unknown grouping"):
            ds.dose_statistics(s, "ctdivol_mgy", ds.Filters(), group_by="site")
    with pytest.raises(InputError, match="must be after"):
        ds.Filters(date_from=dt.date(2026, 3, 3), date_to=dt.date(2026, 3, 1))


def test_workflow_durations_uptake_and_utilisation(world: Fixture) -> None:
    with world.db.sessions() as s:
        wf = ds.workflow_statistics(s, ds.Filters(), bin_min=30)
    dur = dict(wf.durations)
    assert dur[world.ids["dev_a"]].median == 30.0 and dur[world.ids["dev_b"]].median == 60.0
    up = {d: (dist, n) for d, dist, n in wf.uptake}
    # Device A uptakes 50, 55, ..., 75 min: median 62.5; in 55-75 min: 5 of 6.
    assert up[world.ids["dev_a"]][0].median == 62.5 and up[world.ids["dev_a"]][1] == 5
    days = {u.device_id: u for u in wf.days}
    a, b = days[world.ids["dev_a"]], days[world.ids["dev_b"]]
    # A: 6 exams x 0.5 h = 3 h over 10 staffed hours on Monday = 30 %.
    assert (a.exams, a.exam_hours, a.available_hours, a.basis) == (6, 3.0, 10.0,
                                                                   "staffed hours")
    assert a.utilisation == pytest.approx(30.0)
    # B: 5 exams x 1 h over 24 h (no staffed hours set).
    assert (b.exam_hours, b.available_hours, b.basis) == (5.0, 24.0, "24 h")
    assert b.utilisation == pytest.approx(500 / 24)
    # Bins of 30 min: six 30-min exams in [30, 60), five 60-min in [60, 90).
    assert wf.duration_histogram == [(30.0, 6), (60.0, 5)]


def test_compare_measurement_latest_and_distribution(world: Fixture) -> None:
    with world.db.sessions() as s:
        for key in ("dev_a", "dev_b"):
            for day, value in ((1, 1.0), (2, 2.0), (3, 6.0)):
                off = 10.0 if key == "dev_b" else 0.0
                res = m.Result(device_id=world.ids[key], analysis="ct.water", standard="s",
                               scanbench_version="0", acquired_at=dt.datetime(2026, 3, day))
                res.measurements.append(m.Measurement(
                    device_id=world.ids[key], analysis="ct.water", name="noise_hu",
                    acquired_at=dt.datetime(2026, 3, day), value=value + off, unit="HU",
                    status="pass"))
                s.add(res)
        s.commit()
        unit, rows = ds.compare_measurement(s, "ct.water", "noise_hu", ds.Filters())
    assert unit == "HU"
    by = {r.device_id: r for r in rows}
    a = by[world.ids["dev_a"]]
    assert a.latest_value == 6.0 and a.site_id == world.ids["site_a"]
    assert a.distribution is not None and a.distribution.median == 2.0
    assert by[world.ids["dev_b"]].latest_value == 16.0


def test_events_without_protocol_form_one_group_with_its_outliers(world: Fixture) -> None:
    with world.db.sessions() as s:
        for v in (1.0, 1.0, 1.0, 1.0, 50.0):
            s.add(m.DoseEvent(study_id=world.ids["study_a0"], device_id=world.ids["dev_a"],
                              kind="ct", occurred_at=dt.datetime(2026, 3, 3), protocol=None,
                              ctdivol_mgy=v))
        s.commit()
        st = ds.dose_statistics(s, "ctdivol_mgy", ds.Filters(device_id=world.ids["dev_a"]))
    none = next(g for g in st.groups if g.protocol is None)
    assert none.distribution.n == 5 and none.distribution.upper_fence == 1.0
    assert [(o.value, o.protocol) for o in st.outliers] == [(50.0, None)]


def test_a_group_with_mixed_target_regions_takes_the_most_frequent(world: Fixture) -> None:
    head = {"value": "69536005", "scheme": "SCT", "meaning": "Head"}
    with world.db.sessions() as s:
        for v in (30.0, 31.0):  # two head events among six chest ones
            s.add(m.DoseEvent(study_id=world.ids["study_a0"], device_id=world.ids["dev_a"],
                              kind="ct", occurred_at=dt.datetime(2026, 3, 3),
                              protocol="Thorax routine", ctdivol_mgy=v,
                              data={"target_region_code": head}))
        s.commit()
        st = ds.dose_statistics(s, "ctdivol_mgy", ds.Filters(device_id=world.ids["dev_a"]))
    (g,) = [g for g in st.groups if g.protocol == "Thorax routine"]
    assert g.distribution.n == 8 and g.region == "chest"
    assert g.reference is not None and g.reference.exam == "chest"


def test_no_outlier_pass_when_none_are_asked_for(world: Fixture) -> None:
    with world.db.sessions() as s:
        st = ds.dose_statistics(s, "ctdivol_mgy", ds.Filters(), max_outliers=0)
        assert (st.outliers, st.outliers_total) == ([], None)  # not looked for
        one = ds.dose_statistics(s, "ctdivol_mgy", ds.Filters(), max_outliers=1)
        assert one.outliers_total == 1 and len(one.outliers) == 1


def test_default_period_is_the_year_up_to_the_newest_exam_and_is_stated(
        world: Fixture) -> None:
    """Without dates: the 12 months up to the newest exam of the selection (never
    today's date), said in the result; an explicit longer period keeps older exams."""
    old = dt.datetime(2024, 3, 1, 9, 0)  # two years before the fixture's exams
    with world.db.sessions() as s:
        s.add(m.DoseEvent(study_id=world.ids["study_a0"], device_id=world.ids["dev_a"],
                          kind="ct", occurred_at=old, protocol="Thorax routine",
                          ctdivol_mgy=500.0, data={"acquisition_type": "spiral"}))
        s.commit()
        f = ds.default_period(s, "ctdivol_mgy", ds.Filters())
        assert (f.date_from, f.date_to) == (dt.date(2025, 3, 3), dt.date(2026, 3, 3))
        st = ds.dose_statistics(s, "ctdivol_mgy", f).to_dict()
        by_dev = {g["device_id"]: g for g in st["groups"]}
        assert by_dev[world.ids["dev_a"]]["n"] == 6  # the 2024 exam is out
        assert st["period"]["default"] is True
        assert st["period"]["date_from"] == "2025-03-03"
        assert "12 months" in st["period"]["note"] and "2026-03-02" in st["period"]["note"]
        longer = ds.Filters(date_from=dt.date(2020, 1, 1))
        assert ds.default_period(s, "ctdivol_mgy", longer) is longer
        st = ds.dose_statistics(s, "ctdivol_mgy", longer).to_dict()
        assert {g["device_id"]: g["n"] for g in st["groups"]}[world.ids["dev_a"]] == 7
        assert st["period"]["default"] is False and "2020-01-01" in st["period"]["note"]
        # The newest exam of the selection only: device B's alone.
        only_b = ds.default_period(s, "ctdivol_mgy", ds.Filters(device_id=world.ids["dev_b"]))
        assert only_b.date_to == dt.date(2026, 3, 3)
        assert ds.newest_event(s, "ct", ds.Filters(device_id=world.ids["dev_b"])) \
            == dt.datetime(2026, 3, 2, 13, 0)
        # No exams at all: no period is made up.
        none = ds.Filters(modality="MR")
        assert ds.default_period(s, "ctdivol_mgy", none) is none


def test_outliers_of_protocols_with_quotes_and_backslashes(world: Fixture) -> None:
    """The fences go to the database as a VALUES list written inline: protocol text
    with quotes and backslashes still joins its own rows (and nothing else)."""
    name = "it's a \\'; DROP TABLE dose_event; -- head"
    with world.db.sessions() as s:
        for i, v in enumerate([1.0, 2.0, 3.0, 4.0, 100.0]):
            s.add(m.DoseEvent(study_id=world.ids[f"study_b{i}"], device_id=world.ids["dev_b"],
                              kind="ct", occurred_at=dt.datetime(2026, 3, 3, 9 + i),
                              protocol=name, ctdivol_mgy=v, data={"acquisition_type": "spiral"}))
        s.commit()
        st = ds.dose_statistics(s, "ctdivol_mgy", ds.Filters())
        assert st.outliers_total == 2
        assert {(o.protocol, o.value, o.upper_fence) for o in st.outliers} == {
            (name, 100.0, 7.0), ("<script>x</script> head", 100.0, 7.0)}
        assert s.query(m.DoseEvent).count() > 0


def test_api_statistics_are_stored_and_always_equal_a_fresh_computation(
        world: Fixture) -> None:
    """The API's dose statistics are kept in ``stats_cache`` (scanbench.store.fleet_state
    .cached): a second request reads no dose event, and after a new dose event or a
    device's modality change the answer equals the computation from scratch again."""
    from fastapi.testclient import TestClient
    from sqlalchemy import event, func, select

    from pages_world import CLI, PW, signed_in
    from scanbench.clinical import federated
    from scanbench.web import auth
    from scanbench.web.api import create_app
    from scanbench.web.api.dose_routes import DoseStatsOut

    db = world.db
    with db.sessions() as s:
        user = auth.add_user(s, CLI, "dose_cache", PW)
        for site in s.scalars(select(m.Site)):
            auth.grant(s, CLI, user, site, "viewer")
        s.commit()
    client: TestClient = signed_in(create_app(db), "dose_cache")

    def fresh(**kw: Any) -> object:
        with db.sessions() as s:
            f = federated.default_period(s, "ctdivol_mgy", ds.Filters(
                devices=select(m.Device.id), **kw))
            stats = federated.dose_statistics(s, "ctdivol_mgy", f).to_dict()
            return DoseStatsOut.model_validate(stats).model_dump(mode="json")

    def get(**params: str) -> tuple[object, list[str]]:
        seen: list[str] = []

        def note(_c: object, _cur: object, statement: str, *_a: object) -> None:
            seen.append(statement)

        event.listen(db.engine, "before_cursor_execute", note)
        try:
            r = client.get("/api/v1/dose/statistics", params=params)
        finally:
            event.remove(db.engine, "before_cursor_execute", note)
        assert r.status_code == 200, r.text
        return r.json(), [q for q in seen if "dose_event" in q]

    first, read = get()
    assert read and first == fresh()
    again, read = get()
    assert again == first and read == []  # served as stored
    with db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(m.StatsCache)) == 1
        study = m.Study(study_uid="1.9.new")
        s.add(study)
        s.flush()
        s.add(m.DoseEvent(study_id=study.id, device_id=world.ids["dev_a"], kind="ct",
                          occurred_at=dt.datetime(2026, 3, 2, 15, 0),
                          protocol="Thorax routine", ctdivol_mgy=45.0,
                          data={"acquisition_type": "spiral",
                                "target_region_code": CHEST}))
        s.commit()
    after, read = get()
    assert read and after == fresh() and after != first
    ct, _ = get(modality="CT")
    with db.sessions() as s:
        s.get_one(m.Device, world.ids["dev_b"]).modality = "MR"
        s.commit()
    moved, read = get(modality="CT")
    assert read and moved == fresh(modality="CT") and moved != ct
    dated, _ = get(date_from="2026-03-01", date_to="2026-03-03")
    assert dated == fresh(date_from=dt.date(2026, 3, 1), date_to=dt.date(2026, 3, 3))
    # Sent as kept, compressed, to a client that accepts gzip; plain to one that does not.
    packed = client.get("/api/v1/dose/statistics", params={"modality": "CT"})
    plain = client.get("/api/v1/dose/statistics", params={"modality": "CT"},
                       headers={"Accept-Encoding": "identity"})
    assert packed.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in plain.headers
    assert packed.json() == plain.json() == moved
    from scanbench.web.api.dose_routes import accepts_gzip

    assert accepts_gzip("br, gzip;q=0.5") and accepts_gzip("*")
    assert not accepts_gzip("gzip;q=0") and not accepts_gzip("identity")

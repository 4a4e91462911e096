"""The node judges each result by the spec assigned to its device at acquisition (issue
13 §6, "every new result checked against its limits"): real PET DICOM through the real
pipeline. A device with an assigned spec whose limit the value breaks gets a stored
``fail`` with that spec's source and version and one limit alert (however often the job
runs); without an assignment in force at acquisition the result is stored as analysed;
an assignment made after a result never rewrites it, while the scorecard judges it
again by the spec in force. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from node_dicom import uniform_phantom
from scanbench.evaluation import assign as A
from scanbench.evaluation import scorecard as S
from scanbench.service.jobs import InlineExecutor, job_figures_env
from scanbench.service.pipeline import Pipeline
from scanbench.store import models as m
from scanbench.web import audit

CLI = audit.Actor(None, "cli:test")
ANALYSIS, NAME = "pet.calibration_uniformity", "activity_concentration_bq_ml"
SOURCE = "Site PET QC manual section 4.2: concentration at most {high:g} Bq/mL"
SPEC = """name: {name}
title: Site PET calibration QC
version: "{version}"
description: the site's calibration check, for the node's judging of stored results
verified: true
sources: ["Site PET QC manual"]
tests:
  - {{test: pet.calibration_uniformity, analysis: pet.calibration_uniformity,
     frequency: quarterly, dimension: image_quality, source: "Site PET QC manual 4.1"}}
rules:
  - analysis: pet.calibration_uniformity
    measurement: activity_concentration_bq_ml
    high: {high}
    source: "{source}"
    confidence: C
  - analysis: pet.calibration_uniformity
    measurement: suv_mean
    low: 0.5
    high: 2.0
    tolerance: {{high: 0.9}}
    source: "Site PET QC manual section 4.3: SUV of the uniform cylinder"
    confidence: C
"""
OLD = dt.datetime(1990, 1, 1, tzinfo=dt.UTC)
# the assignment is in force from 10 March 2026 (the phantoms' clock is UTC+8)
VALID_FROM = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)
TZ8 = dt.timezone(dt.timedelta(hours=8))


@dataclass
class World:
    pipe: Pipeline
    truth: dict[str, Any]
    before: int  # result acquired 4 March, stored before any assignment
    early: int  # result acquired 5 March, stored after the assignment (not yet in force)
    judged: int  # result acquired 20 March, assignment in force
    judged_job: int
    high: float
    snapshot: list[tuple[Any, ...]]  # the 'before' result's stored columns


def _rows(s: Any, result_id: int) -> list[tuple[Any, ...]]:
    r = s.get_one(m.Result, result_id)
    return [(r.spec, r.parameters.get("assigned_spec"))] + [
        (x.name, x.value, x.status, x.limit_low, x.limit_high, x.limit_source,
         x.limit_verified) for x in sorted(r.measurements, key=lambda x: x.id)]


def _run(pipe: Pipeline, folder: Path) -> tuple[int, int]:
    """Store a phantom's files, run its job; (result id, job id)."""
    for f in sorted(folder.glob("*.dcm")):
        assert pipe.store_path(f).stored
    pipe.drain()
    with pipe.db.session() as s:
        uids = {str(u) for u in s.scalars(select(m.Series.series_uid))}
        res = s.scalars(select(m.Result).where(m.Result.analysis == ANALYSIS,
                                               m.Result.series_uid.in_(uids))
                        .order_by(m.Result.id.desc())).first()
        assert res is not None and res.job_id is not None
        job = s.get_one(m.Job, res.job_id)
        assert job.state == "done", job.error
        return res.id, res.job_id


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("nodespec")
    url = None if request.param == "sqlite" else request.getfixturevalue("pg_server").create()
    old_env = job_figures_env("0")  # figures are not what is tested here
    truth = uniform_phantom(tmp / "a", scan_start=dt.datetime(2026, 3, 4, 10, 30, tzinfo=TZ8))
    uniform_phantom(tmp / "b", seed=2,
                    scan_start=dt.datetime(2026, 3, 20, 10, 30, tzinfo=TZ8))
    uniform_phantom(tmp / "c", seed=3,
                    scan_start=dt.datetime(2026, 3, 5, 10, 30, tzinfo=TZ8))
    # a limit the phantom's concentration (the truth, within a few %) clearly breaks
    high = round(0.5 * float(truth["concentration_bq_ml"]))
    pipe = Pipeline(tmp / "home", url, quiet_seconds=0.0, executor=InlineExecutor())
    try:
        before, _ = _run(pipe, tmp / "a")
        with pipe.db.session() as s:
            snapshot = _rows(s, before)
            A.store_spec_text(s, SPEC.format(name="site-pet", version="1", high=high,
                                             source=SOURCE.format(high=high)),
                              origin="upload", created_at=OLD)
            A.assign(s, CLI, "site-pet", A.DeviceClassCriteria(modality="PT"),
                     valid_from=VALID_FROM)
        judged, judged_job = _run(pipe, tmp / "b")
        early, _ = _run(pipe, tmp / "c")
        yield World(pipe, truth, before, early, judged, judged_job, high, snapshot)
    finally:
        pipe.close()
        job_figures_env(old_env)


def test_a_value_breaking_the_assigned_specs_limit_is_stored_failed_with_its_source(
        world: World) -> None:
    with world.pipe.db.session() as s:
        res = s.get_one(m.Result, world.judged)
        assert res.spec == "site-pet@1"  # the spec that judged it, with its version
        prov = res.parameters["assigned_spec"]
        assert (prov["name"], prov["version"]) == ("site-pet", "1")
        assert prov["sha256"] == A.stored_spec(s, "site-pet", "1").sha256
        (conc,) = [x for x in res.measurements if x.name == NAME]
        assert conc.value is not None and conc.value > world.high
        assert conc.status == "fail"
        assert conc.limit_high == world.high and conc.limit_low is None
        assert conc.limit_verified is True
        assert conc.limit_source is not None and conc.limit_source.startswith("site-pet: ")
        assert SOURCE.format(high=world.high) in conc.limit_source
        (suv,) = [x for x in res.measurements if x.name == "suv_mean"]
        assert suv.status == "pass" and (suv.limit_low, suv.limit_high) == (0.5, 2.0)
        # the spec has no rule for the other measurements: reported without pass/fail
        assert {x.status for x in res.measurements if x.name not in (NAME, "suv_mean")} <= {
            "info", "refused", "not_judged"}


def test_the_failed_limit_raises_one_action_alert_however_often_the_job_runs(
        world: World) -> None:
    def limit_alerts() -> list[tuple[Any, ...]]:
        with world.pipe.db.session() as s:
            return [(a.key, a.level, a.name, a.result_id, a.limit_source, a.threshold)
                    for a in s.scalars(select(m.Alert).where(m.Alert.rule == "limit"))]

    all_first = limit_alerts()
    # SUV ~1.0 passes its action limits 0.5..2.0 but is above its tolerance level 0.9
    tol = [a for a in all_first if a[1] == "tolerance"]
    assert [(a[2], a[3], a[5]) for a in tol] == [("suv_mean", world.judged, 0.9)]
    assert tol[0][4] is not None and tol[0][4].startswith("site-pet@1: Site PET QC manual")
    first = [a for a in all_first if a[1] == "action"]
    assert len(first) == 1
    _, level, name, result_id, source, threshold = first[0]
    assert (level, name, result_id, threshold) == ("action", NAME, world.judged, world.high)
    assert source is not None and SOURCE.format(high=world.high) in source
    world.pipe.retry(world.judged_job)  # the job again (`scanbench jobs retry`)
    world.pipe.drain()
    assert [(k, lv, n, src) for k, lv, n, _, src, _ in limit_alerts()] == [
        (k, lv, n, src) for k, lv, n, _, src, _ in all_first]


def test_without_an_assignment_in_force_the_result_is_stored_as_analysed(
        world: World) -> None:
    with world.pipe.db.session() as s:
        for rid in (world.before, world.early):  # none yet / not yet in force at acquisition
            res = s.get_one(m.Result, rid)
            assert res.spec is None and "assigned_spec" not in res.parameters
            (conc,) = [x for x in res.measurements if x.name == NAME]
            assert conc.value is not None and conc.value > world.high  # would fail...
            assert conc.status not in ("pass", "fail")  # ...but nothing judged it
            assert conc.limit_source is None and conc.limit_high is None


def test_a_later_assignment_never_rewrites_a_stored_result_but_the_scorecard_rejudges(
        world: World) -> None:
    with world.pipe.db.session() as s:
        assert _rows(s, world.before) == world.snapshot
        # a relaxed spec assigned to this device (more specific than the modality one)
        # from 15 March: the result of 20 March stays stored as judged ...
        first = s.get_one(m.Result, world.judged)
        device_id = first.device_id
        assert device_id is not None
        # the series' current result (a retried job's row supersedes the first)
        judged = max(s.scalars(select(m.Result.id).where(
            m.Result.series_uid == first.series_uid, m.Result.analysis == ANALYSIS)))
        stored = _rows(s, judged)
        assert any(r[2] == "fail" for r in stored[1:])  # judged by site-pet when stored
        relaxed = 4 * world.high
        A.store_spec_text(s, SPEC.format(name="site-pet-relaxed", version="2", high=relaxed,
                                         source=SOURCE.format(high=relaxed)),
                          origin="upload", created_at=OLD)
        A.assign(s, CLI, "site-pet-relaxed", A.DeviceClassCriteria(device_id=device_id),
                 valid_from=dt.datetime(2026, 3, 15, tzinfo=dt.UTC))
        s.flush()
        assert _rows(s, judged) == stored
        # ... while the scorecard judges it by the spec in force then: it passes
        parts = S.compute_scorecards(s, device_id, dt.datetime(2026, 3, 16, tzinfo=dt.UTC),
                                     dt.datetime(2026, 3, 31, tzinfo=dt.UTC))
        (part,) = parts
        assert part.row is not None
        assert s.get_one(m.Spec, part.row.spec_id).name == "site-pet-relaxed"
        (test,) = part.row.data["tests"]
        assert judged in test["evidence"] and test["status"] == "passed", test
        s.rollback()


BASE_SPEC = """name: site-ct-baseline
title: Site CT daily water QC against the device's baseline
version: "1"
description: water CT number within 2 HU of the device's baseline
verified: true
sources: ["Site CT QC manual"]
rules:
  - analysis: ct.water
    measurement: ct_number_water_hu
    baseline: {low: -2, high: 2, mode: absolute}
    source: "Site CT QC manual section 2.1: within 2 HU of the baseline"
    confidence: C
"""


def test_baseline_rules_use_the_devices_stored_baseline(tmp_path: Path) -> None:
    """The new result is held to the mean of the device's first three stored results;
    a re-analysis of one of those three is part of the baseline and not judged by it."""
    from scanbench.evaluation.node_spec import judged_for_storage
    from scanbench.store import devices, repo
    from scanbench.store.db import Database
    from scanbench.types import DeviceIdentity, Result

    ident = DeviceIdentity("ACME", "CT-1", "42")
    db = Database(tmp_path, None)

    def water(uid: str, day: int, hu: float) -> Result:
        r = Result("ct.water", "IEC 61223-3-5", uid, ident, dt.datetime(2026, 5, day, 8))
        r.add("ct_number_water_hu", hu, "HU", labels={"slice": "all"})
        return r

    with db.session() as s:
        dev = devices.register(s, ident, modality="CT")
        A.store_spec_text(s, BASE_SPEC, origin="upload", created_at=OLD)
        A.assign(s, CLI, "site-ct-baseline", A.DeviceClassCriteria(device_id=dev.id),
                 valid_from=OLD)
        first = [repo.save_result(s, water(f"9.{d}", d, hu), series_id=None,
                                  device_id=dev.id)
                 for d, hu in ((1, 1.0), (2, 2.0), (3, 3.0))]  # baseline mean 2 HU
        new = judged_for_storage(s, water("9.10", 10, 4.5), device_id=dev.id, series_id=None)
        (meas,) = new.measurements
        assert (meas.limits is not None and meas.limits.low == 0.0
                and meas.limits.high == 4.0 and meas.status == "fail")
        assert meas.limits.source.endswith("(baseline -2 / +2 of 2)")
        assert any(f"results {', '.join(str(r.id) for r in first)}" in w
                   for w in new.warnings)
        ok = judged_for_storage(s, water("9.11", 11, 3.0), device_id=dev.id, series_id=None)
        assert ok.measurements[0].status == "pass"
        # a re-analysis of the first baseline result (it supersedes that row)
        study = m.Study(study_uid="9")
        s.add(study)
        s.flush()
        series = m.Series(series_uid="9.1", study_id=study.id, device_id=dev.id)
        s.add(series)
        s.flush()
        s.get_one(m.Result, first[0].id).series_id = series.id
        s.flush()
        again = judged_for_storage(s, water("9.1", 1, 9.0), device_id=dev.id,
                                   series_id=series.id)
        assert again.measurements[0].status == "info"  # not judged: part of the baseline
        assert any("part of the device's baseline" in w for w in again.warnings)

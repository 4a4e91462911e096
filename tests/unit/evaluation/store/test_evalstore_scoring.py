"""Scorecards and due lists from the store on constructed histories (issue 13 §2-§3,
"Must show"): on time, overdue, failed then fixed, a device with no spec, a spec changed
mid-period (two scorecards, each judged by its version, the old one untouched),
recomputing unchanged inputs adds nothing, due at once after a service event, and the
per-model aggregation. Weekly calibration QC, 4 ISO weeks from Monday 2026-01-05."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scanbench.evaluation import assign as A
from scanbench.evaluation import scorecard as S
from scanbench.store import Database, devices, repo
from scanbench.store import models as m
from scanbench.types import DeviceIdentity, Result
from scanbench.web import audit, sites

CLI = audit.Actor(None, "cli:test")
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)  # a Monday
END = dt.datetime(2026, 2, 2, tzinfo=dt.UTC)  # four ISO weeks later
NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
ANALYSIS = "pet.calibration_uniformity"
SPEC = """name: site-cal
title: Site calibration QC
version: "{version}"
description: weekly calibration QC
verified: true
sources: ["site QC manual"]
applies_to: {{modality: PT}}
weights: {{image_quality: 3, radiation_dose: 1}}
tests:
  - {{test: pet.calibration_uniformity, analysis: pet.calibration_uniformity,
     frequency: weekly, dimension: image_quality, source: "site QC manual 4.1"}}
rules:
  - analysis: pet.calibration_uniformity
    measurement: activity_concentration_bias_percent
    low: -{band}
    high: {band}
    source: "site QC manual 4.1"
    confidence: C
"""


@dataclass
class World:
    s: Session
    pet: m.Device
    site: m.Site
    n: int = 0

    def qc(self, day: int, bias: float, device: m.Device | None = None) -> int:
        """A calibration QC result on 2026-01-<day> 09:00 (days past 31 run into Feb)."""
        self.n += 1
        d = device or self.pet
        r = Result(ANALYSIS, "EARL calibration QC", f"1.2.{d.id}.{self.n}",
                   DeviceIdentity(d.manufacturer, d.model, d.serial),
                   dt.datetime(2026, 1, 1, 9) + dt.timedelta(days=day - 1))
        r.add("activity_concentration_bias_percent", bias, "%")
        return repo.save_result(self.s, r, series_id=None, device_id=d.id).id

    def event(self, kind: str, day: int, hour: int) -> None:
        self.s.add(m.LifecycleEvent(device_id=self.pet.id, kind=kind,
                                    occurred_at=dt.datetime(2026, 1, day, hour)))
        self.s.flush()

    def score(self, now: dt.datetime = NOW) -> list[S.ScorecardOutcome]:
        return S.compute_scorecards(self.s, self.pet.id, START, END, now)


def _device(s: Session, site: m.Site, serial: str, modality: str = "PT",
            model: str = "Biograph Vision") -> m.Device:
    dev = devices.register(s, DeviceIdentity("Siemens", model, serial), modality=modality)
    dev.site_id = site.id
    s.flush()
    return dev


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from _world(f"sqlite:///{tmp_path / 'db.sqlite'}")


@pytest.fixture
def world_any(database_url: str) -> Iterator[World]:
    """The world on SQLite and on PostgreSQL."""
    yield from _world(database_url)


def _world(url: str) -> Iterator[World]:
    db = Database(url=url)
    try:
        with db.sessions() as s:
            site = sites.add_site(s, CLI, "A")
            pet = _device(s, site, "1")
            A.store_spec_text(s, SPEC.format(version="1", band=10), origin="upload",
                              created_at=T0)
            A.assign(s, CLI, "site-cal", A.DeviceClassCriteria(modality="PT"), valid_from=T0)
            yield World(s, pet, site)
    finally:
        db.close()


def _one(parts: list[S.ScorecardOutcome]) -> dict:
    assert len(parts) == 1 and parts[0].row is not None
    return parts[0].row.data


def test_on_time(world: World) -> None:
    ids = [world.qc(d, 2.0) for d in (7, 14, 21, 28)]  # every Wednesday
    data = _one(world.score())
    t = data["tests"][0]
    assert (t["status"], t["evidence"]) == ("passed", ids)
    assert data["compliance"]["required"] == 4 and data["compliance"]["on_time"] == 4
    assert data["score"] == 100.0 and world.score()[0].row.status == "pass"  # type: ignore[union-attr]
    dims = {d["dimension"]: d for d in data["dimensions"]}
    assert dims["image_quality"]["weight"] == 0.75 and dims["image_quality"]["score"] == 100
    assert dims["radiation_dose"]["score"] is None  # weighted, but no test: not scored
    assert world.score()[0].row.compliance == 1.0  # type: ignore[union-attr]


def test_overdue(world: World) -> None:
    world.qc(7, 2.0)
    world.qc(14, 2.0)  # weeks of 19 and 26 January missed
    parts = world.score()
    data = _one(parts)
    t = data["tests"][0]
    assert t["status"] == "overdue"
    assert t["reason"].startswith("overdue since 2026-01-26T00:00:00")
    assert data["compliance"]["on_time"] == 2 and data["compliance"]["required"] == 4
    assert parts[0].row.compliance == 0.5 and parts[0].row.score == 0.0  # type: ignore[union-attr]
    assert parts[0].row.status == "fail"  # type: ignore[union-attr]


def test_failed_then_fixed(world: World) -> None:
    world.qc(7, 2.0)
    bad = world.qc(14, 30.0)  # Wednesday 09:00: outside ±10 %
    world.event("unplanned_service", 14, 15)
    good = world.qc(15, 1.0)  # re-test the next morning passes
    world.qc(21, 2.0)
    world.qc(28, 2.0)
    data = _one(world.score())
    t = data["tests"][0]
    assert t["status"] == "passed" and bad in t["evidence"] and good in t["evidence"]
    assert "after a failure on 2026-01-14T09:00:00" in t["reason"]
    fu = data["compliance"]["follow_ups"]
    assert [(f["hours_to_action"], f["hours_to_pass"]) for f in fu] == [(6.0, 24.0)]
    # 4 weekly slots + the re-test after the failure, all on time
    assert (data["compliance"]["required"], data["compliance"]["on_time"]) == (5, 5)
    # the same history judged just after the failure: failed, the re-test due
    parts = S.compute_scorecards(world.s, world.pet.id, START,
                                 dt.datetime(2026, 1, 14, 12, tzinfo=dt.UTC),
                                 dt.datetime(2026, 1, 14, 12, tzinfo=dt.UTC))
    t = _one(parts)["tests"][0]
    assert t["status"] == "failed" and "activity_concentration_bias_percent = 30 %" in \
        t["reason"] and "re-test due by 2026-01-15T09:00:00" in t["reason"]


def test_a_device_with_no_spec_has_no_score(world: World) -> None:
    mr = _device(world.s, world.site, "9", modality="MR", model="Skyra")
    parts = S.compute_scorecards(world.s, mr.id, START, END, NOW)
    assert [p.row for p in parts] == [None]
    assert "no evaluation specification" in parts[0].notes[0]
    assert world.s.scalar(select(func.count()).select_from(m.Scorecard)) == 0
    due = S.due_list_for_device(world.s, mr.id, NOW)
    assert due.spec is None and due.items == () and "nothing is due" in due.notes[0]
    assert S.required_tests(world.s, mr, NOW) == []


def test_a_spec_changed_mid_period_gives_two_scorecards_and_keeps_the_old(
        world_any: World) -> None:
    world = world_any
    for d in (7, 14, 21, 28):
        world.qc(d, 2.0)
    before = world.score()
    old = before[0].row
    assert old is not None and old.data["tests"][0]["status"] == "passed"
    old_data = dict(old.data)
    # version 2 (±1 %) stored on Monday 19 January: the second half is judged by it
    A.store_spec_text(world.s, SPEC.format(version="2", band=1), origin="upload",
                      created_at=dt.datetime(2026, 1, 19, tzinfo=dt.UTC))
    parts = world.score()
    assert [(p.row.data["spec"]["version"] if p.row else None) for p in parts] == ["1", "2"]
    first, second = (p.row for p in parts)
    assert first is not None and second is not None
    assert (first.period_start, first.period_end) == (dt.datetime(2026, 1, 5),
                                                      dt.datetime(2026, 1, 19))
    assert first.data["tests"][0]["status"] == "passed"
    # 2 % is outside ±1 %: both results fail under version 2 and no re-test followed
    t = second.data["tests"][0]
    assert t["status"] == "overdue" and "re-test due at once" in t["reason"]
    comp = second.data["compliance"]
    assert (comp["required"], comp["on_time"]) == (4, 2)  # 2 slots on time, 2 re-tests missed
    assert [f["failed_at"] for f in comp["follow_ups"]] == ["2026-01-21T09:00:00"]
    # the scorecard computed before version 2 is still there, unchanged
    world.s.refresh(old)
    assert old.data == old_data and old.spec_id != second.spec_id
    assert world.s.scalar(select(func.count()).select_from(m.Scorecard)) == 3


def test_recomputing_unchanged_inputs_adds_nothing(world: World) -> None:
    world.qc(7, 2.0)
    first = world.score()
    assert first[0].added
    again = world.score()
    assert not again[0].added and again[0].row.id == first[0].row.id  # type: ignore[union-attr]
    assert world.s.scalar(select(func.count()).select_from(m.Scorecard)) == 1
    world.qc(14, 2.0)  # a new input: a new scorecard beside the old one
    third = world.score()
    assert third[0].added and third[0].row.id != first[0].row.id  # type: ignore[union-attr]
    assert world.s.scalar(select(func.count()).select_from(m.Scorecard)) == 2


def test_due_today_after_a_failure_and_after_a_service_event(world: World) -> None:
    world.qc(7, 2.0)
    at = dt.datetime(2026, 1, 8, 12, tzinfo=dt.UTC)
    due = S.due_list_for_device(world.s, world.pet.id, at)
    assert [(i.frequency, i.status) for i in due.items] == [("weekly", "done")]
    world.event("part_replacement", 8, 8)
    due = S.due_list_for_device(world.s, world.pet.id, at)
    assert ("after_service", "due") in [(i.frequency, i.status) for i in due.items]
    world.qc(8, 30.0)  # the test after the repair fails at 09:00: re-test due at once
    due = S.due_list_for_device(world.s, world.pet.id, at)
    got = {(i.frequency, i.status) for i in due.items}
    assert ("retest", "due") in got and ("after_service", "due") not in got
    later = S.due_list_for_device(world.s, world.pet.id, at + dt.timedelta(days=2))
    assert ("retest", "overdue") in {(i.frequency, i.status) for i in later.items}
    rows = S.required_tests(world.s, world.pet, at)
    assert [(r.test, r.last_outcome, r.due_status) for r in rows] == [
        (ANALYSIS, "failed", "due")]
    site_lists = S.due_list_for_site(world.s, world.site.id, at)
    assert [d.device for d in site_lists] == [str(world.pet.id)]


def test_per_model_and_per_site_aggregation(world: World) -> None:
    other = _device(world.s, world.site, "2")
    for d in (7, 14, 21, 28):
        world.qc(d, 2.0)
        world.qc(d, 30.0 if d == 28 else 2.0, device=other)
    world.score()
    S.compute_scorecards(world.s, other.id, START, END, NOW)
    [group] = S.aggregate(world.s, [world.pet, other], "model")
    assert group["devices"] == 2 and group["scored_devices"] == 2
    # pet: 4 of 4 on time; other: 4 slots + 1 re-test missed (nothing after the 28th)
    assert (group["required"], group["on_time"]) == (9, 8)
    assert group["tests"]["passed"] == 1 and group["tests"]["overdue"] == 1
    assert group["mean_score"] == 50.0
    [by_site] = S.aggregate(world.s, [world.pet, other], "site")
    assert by_site["site_id"] == world.site.id and by_site["devices"] == 2


def test_a_skeleton_spec_lists_its_items_and_scores_nothing(world: World) -> None:
    """WS 817-2023 (PET) holds items without a confirmed period or limit: each is listed
    as not applicable with the reason, the scorecard has no score and says info."""
    skeleton = _device(world.s, world.site, "7", model="uMI 550")
    A.assign(world.s, CLI, "ws-817-2023", A.DeviceClassCriteria(device_id=skeleton.id),
             valid_from=T0)
    world.qc(7, 2.0, device=skeleton)
    rows = S.required_tests(world.s, skeleton, NOW)
    assert rows and {r.due_status for r in rows} == {"not_applicable"}
    assert all("not confirmed" in r.reason for r in rows)
    [part] = S.compute_scorecards(world.s, skeleton.id, START, END, NOW)
    assert part.row is not None and part.row.score is None and part.row.status == "info"
    statuses = {t["status"] for t in part.row.data["tests"]}
    assert statuses <= {"not_applicable", "not_judged"}


BASELINE_SPEC = """name: site-cal-baseline
title: Site calibration QC against the device's baseline
version: "1"
description: weekly calibration QC, bias within 2 points of the device's baseline
verified: true
sources: ["site QC manual"]
tests:
  - {test: pet.calibration_uniformity, analysis: pet.calibration_uniformity,
     frequency: weekly, dimension: image_quality, source: "site QC manual 4.2"}
rules:
  - analysis: pet.calibration_uniformity
    measurement: activity_concentration_bias_percent
    baseline: {low: -2, high: 2, mode: absolute}
    source: "site QC manual 4.2"
    confidence: C
"""


def test_a_baseline_relative_rule_is_judged_against_the_stored_baseline(world: World) -> None:
    A.store_spec_text(world.s, BASELINE_SPEC, origin="upload", created_at=T0)
    A.assign(world.s, CLI, "site-cal-baseline",
             A.DeviceClassCriteria(device_id=world.pet.id), valid_from=T0)
    world.event("acceptance", 2, 12)
    base1 = [world.qc(d, v) for d, v in ((5, 1.0), (6, 2.0), (7, 3.0))]  # mean 2.0
    in_band, out = world.qc(14, 3.5), world.qc(21, 4.5)  # [0, 4]: 3.5 passes, 4.5 fails
    world.s.add(m.LifecycleEvent(device_id=world.pet.id, kind="planned_service",
                                 occurred_at=dt.datetime(2026, 1, 22, 8), new_baseline=True,
                                 summary="detector recalibrated"))
    world.s.flush()
    base2 = [world.qc(d, 5.0) for d in (23, 24, 25)]  # mean 5.0
    after = world.qc(28, 4.5)  # [3, 7]: passes against the new baseline
    tl = S._timeline(world.s, world.pet, START, END)
    spec_id = tl.periods[-1].spec.row.id  # type: ignore[union-attr]
    judged = {rid: j for (rid, sid), j in tl.judged.items() if sid == spec_id}
    assert [judged[i].passed for i in base1 + base2] == [None] * 6  # they are the baseline
    assert all("part of the device's baseline" in judged[i].warnings[-1]
               for i in base1 + base2)
    assert (judged[in_band].passed, judged[out].passed, judged[after].passed) == (
        True, False, True)
    assert "mean of results " + ", ".join(map(str, base1)) in judged[out].warnings[-1]
    assert judged[out].failures == (
        "activity_concentration_bias_percent = 4.5 % outside [0, 4] (site-cal-baseline: "
        "site QC manual 4.2 (confirmed) (baseline -2 / +2 of 2))",)
    data = _one(world.score())
    (t,) = data["tests"]
    assert t["status"] == "passed" and "after a failure on 2026-01-21T09:00:00" in t["reason"]

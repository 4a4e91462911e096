"""Every dimension a spec can ask for, scored on a constructed store against values
computed by hand (issue 13 §3): reliability (uptime %, MTBF, MTTR from the lifecycle
log), workflow (exams per day, median exam duration from exam timings), economics (cost
per exam), radiation dose (median CTDIvol against the DRL of the protocol's exam
category) and usability (mean SUS score, Brooke 1996). A confirmed limit judges, an
unconfirmed one is shown only, an indicator without a limit is reported."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from pg import pg_server  # noqa: F401  (fixture: a real PostgreSQL server)
from scanbench.errors import SpecError
from scanbench.evaluation import assign as A
from scanbench.evaluation import scorecard as S
from scanbench.specs import load_spec, parse_spec
from scanbench.store import Database, devices
from scanbench.store import models as m
from scanbench.types import DeviceIdentity
from scanbench.web import audit, sites

CLI = audit.Actor(None, "cli:test")
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SPEC = """name: prog-test
title: Programme indicators
version: "1"
description: every dimension's device-level indicators
verified: false
unverified_reason: the DRL ratio's limit is a review trigger, not a confirmed limit
sources: ["test programme"]
weights: {reliability: 1, workflow: 1, usability: 2}
indicators:
  - {indicator: uptime_percent, low: 90, source: "test programme 1", confidence: C}
  - {indicator: mtbf_h, source: "test programme 2", confidence: U}
  - {indicator: mttr_h, source: "test programme 3", confidence: U}
  - {indicator: exams_per_day, low: 10, source: "test programme 4", confidence: C}
  - {indicator: median_exam_duration_min, high: 30, source: "test programme 5",
     confidence: C}
  - {indicator: cost_per_exam, source: "test programme 6", confidence: U}
  - {indicator: ctdivol_median_to_drl, high: 1.0, confidence: P,
     source: "ICRP Publication 135 (2017): a median above the DRL calls for a review"}
  - {indicator: mean_sus_score, low: 68, source: "test programme 7", confidence: C}
"""


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    db = Database(url=f"sqlite:///{tmp_path_factory.mktemp('ind') / 'db.sqlite'}")
    try:
        with db.sessions() as s:
            data = _build(s)
            s.commit()
            yield {**data, "_db": db}
    finally:
        db.close()


def _build(s: Session) -> dict:
    site = sites.add_site(s, CLI, "A")
    dev = devices.register(s, DeviceIdentity("GE", "Revolution", "7"), modality="CT")
    dev.site_id = site.id
    s.flush()
    t = dt.datetime
    for kind, when in (("installation", t(2026, 1, 10)), ("acceptance", t(2026, 1, 20)),
                       ("downtime_start", t(2026, 3, 10, 8)), ("downtime_end", t(2026, 3, 10, 20)),
                       ("downtime_start", t(2026, 3, 20)), ("downtime_end", t(2026, 3, 21))):
        s.add(m.LifecycleEvent(device_id=dev.id, kind=kind, occurred_at=when, planned=False))
    for i, (day, seconds) in enumerate(((2, 600), (3, 900), (3, 1200), (4, 1800), (5, 2400))):
        st = m.Study(study_uid=f"5.{i}", site_id=site.id, study_datetime=t(2026, 3, day, 10))
        s.add(st)
        s.flush()
        s.add(m.ExamTiming(study_id=st.id, device_id=dev.id, started_at=t(2026, 3, day, 10),
                           duration_s=seconds))
        if i < 3:  # three lumbar-spine CT exams: CTDIvol 10, 12, 14 mGy
            s.add(m.DoseEvent(study_id=st.id, device_id=dev.id, kind="ct",
                              occurred_at=t(2026, 3, day, 10, 5), protocol="Lumbar spine",
                              ctdivol_mgy=10.0 + 2 * i, dlp_mgycm=300.0))
    s.add(m.DeviceCost(device_id=dev.id, kind="consumable", amount=500.0, currency="EUR",
                       start_on=dt.date(2026, 3, 15)))
    for answers in ([5, 1] * 5, [3] * 10, [3, 3]):  # 100, 50, and an incomplete one
        s.add(m.SusResponse(device_id=dev.id, role="technologist", answers=answers,
                            score=0.0, at=t(2026, 3, 15, 12, tzinfo=dt.UTC)))
    A.store_spec_text(s, SPEC, origin="upload", created_at=T0)
    A.assign(s, CLI, "prog-test", A.DeviceClassCriteria(device_id=dev.id), valid_from=T0)
    s.flush()
    zone = A.site_zone(s, dev)
    (part,) = S.compute_scorecards(s, dev.id, A.to_utc(t(2026, 3, 1), zone),
                                   A.to_utc(t(2026, 4, 1), zone),
                                   now=dt.datetime(2026, 5, 1, tzinfo=dt.UTC))
    assert part.row is not None
    return part.row.data


def _ind(card: dict, name: str) -> dict:
    return next(i for i in card["indicators"] if i["indicator"] == name)


def test_reliability_from_the_lifecycle_log(card: dict) -> None:
    # March: 744 h in service (around the clock), unplanned downtime 12 h + 24 h
    up = _ind(card, "uptime_percent")
    assert up["value"] == pytest.approx(100 * (744 - 36) / 744)  # 95.16 % >= 90: passed
    assert up["status"] == "passed" and up["dimension"] == "reliability"
    assert _ind(card, "mtbf_h")["value"] == pytest.approx((744 - 36) / 2)  # 354 h
    assert _ind(card, "mttr_h")["value"] == pytest.approx(18.0)
    assert _ind(card, "mttr_h")["status"] == "not_judged"  # no limit: reported only


def test_workflow_from_exam_timings(card: dict) -> None:
    epd = _ind(card, "exams_per_day")
    assert epd["value"] == pytest.approx(5 / 31) and epd["status"] == "failed"  # < 10
    dur = _ind(card, "median_exam_duration_min")
    assert dur["value"] == pytest.approx(20.0) and dur["status"] == "passed"  # 1200 s


def test_economics_dose_and_usability(card: dict) -> None:
    cost = _ind(card, "cost_per_exam")
    assert cost["value"] == pytest.approx(100.0) and cost["status"] == "not_judged"
    drl = _ind(card, "ctdivol_median_to_drl")
    assert drl["value"] == pytest.approx(12.0 / 23.1)  # Guangzhou 2022 lumbar spine DRL
    assert drl["status"] == "not_judged" and "inside the unconfirmed" in drl["reason"]
    sus = _ind(card, "mean_sus_score")
    assert sus["value"] == pytest.approx(75.0) and sus["status"] == "passed"
    assert "1 incomplete questionnaire(s) left out" in sus["reason"]


def test_dimension_scores_and_the_overall_score(card: dict) -> None:
    dims = {d["dimension"]: d for d in card["dimensions"]}
    assert dims["reliability"]["score"] == 100.0
    assert dims["workflow"]["score"] == 50.0  # one passed, one failed
    assert dims["usability"]["score"] == 100.0
    assert dims["economics"]["score"] is None and dims["radiation_dose"]["score"] is None
    assert card["score"] == pytest.approx((100 * 1 + 50 * 1 + 100 * 2) / 4)  # 87.5


def test_indicator_errors_name_the_line(tmp_path: Path) -> None:
    bad = SPEC.replace("indicator: mttr_h", "indicator: mttr_days")
    with pytest.raises(SpecError,
                       match=r"indicators\[2\]\.indicator \(line 12\): must be one of"):
        parse_spec(bad, "bad.yaml")
    verified = SPEC.replace("verified: false", "verified: true")
    with pytest.raises(SpecError, match=r"indicators\[6\]\.confidence.*P limit of "
                                        "ctdivol_median_to_drl"):
        parse_spec(verified, "v.yaml")


def test_the_programme_spec_covers_every_dimension() -> None:
    spec = load_spec("programme-evaluation")
    dims = {i.dimension for i in spec.indicators} | {t.dimension for t in spec.tests}
    assert {"reliability", "workflow", "economics", "radiation_dose", "usability",
            "image_quality"} <= dims
    # no invented limit: every limit there is sourced, and none is confirmed unless C
    assert all(i.confidence != "C" or i.has_limit for i in spec.indicators)


def test_spec_diff_shows_an_indicator_limit_tightened_and_one_added() -> None:
    from scanbench.specs.diff import diff_specs

    a = parse_spec(SPEC, "a.yaml")
    b = parse_spec(SPEC.replace("uptime_percent, low: 90", "uptime_percent, low: 95")
                   .replace("  - {indicator: mtbf_h", "  - {indicator: availability_percent, "
                            "source: x, confidence: U}\n  - {indicator: mtbf_h"), "b.yaml")
    rows = [(c.change, c.kind, c.what, c.old, c.new) for c in diff_specs(a, b)
            if c.kind == "indicator"]
    assert rows == [("tightened", "indicator", "uptime_percent", "≥ 90 (confirmed)",
                     "≥ 95 (confirmed)"),
                    ("added", "indicator", "availability_percent", "", "no limit (not confirmed)")]


def test_the_device_report_lists_the_indicators_and_adds_no_scorecard(card: dict) -> None:
    from sqlalchemy import func, select

    from scanbench.report import store_reports as sr

    with card["_db"].sessions() as s:
        before = s.scalar(select(func.count()).select_from(m.Scorecard))
        dev = s.get_one(m.Device, card["device"]["id"])
        report = sr.device_report(s, dev, dt.date(2026, 3, 1), dt.date(2026, 3, 31))
        s.commit()
        assert s.scalar(select(func.count()).select_from(m.Scorecard)) == before == 1
    section = next(x for x in report.sections if x.title == "Specification and scorecard")
    table = next(t for t in section.tables if t.title == "Device-level indicators")
    rows = {r[0].text: r for r in table.rows}
    assert rows["mean sus score"][2].text == "75 points (0-100)"
    assert rows["exams per day"][4].status == "failed"
    assert rows["uptime percent"][3].text == "≥ 90 (test programme 1; confirmed)"


def test_the_same_indicators_on_postgresql(card: dict, pg_server: Any) -> None:  # noqa: F811
    """The indicator queries (JSON answers, percentile_cont for the DRL median, aware
    times) give the same values on PostgreSQL."""
    db = Database(url=pg_server.create())
    try:
        with db.sessions() as s:
            pg = _build(s)
    finally:
        db.close()
    assert [(i["indicator"], i["status"]) for i in pg["indicators"]] == [
        (i["indicator"], i["status"]) for i in card["indicators"]]
    for a, b in zip(pg["indicators"], card["indicators"], strict=True):
        assert a["value"] == pytest.approx(b["value"]), a["indicator"]
    assert pg["score"] == pytest.approx(card["score"])

"""The node groups series as ``scanbench analyze`` does (one shared function): an ACR MRI
T1, T2 and localiser arriving minutes apart give the full suite of seven tests; a
localiser that never comes holds nothing back for longer than the group wait (the suite
runs without it, with analyze's warning); a late localiser re-runs the group and the new
results supersede the old ones, which stay stored but leave the device's history."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from node_results import analyze_rows, arrive, assert_same, dicom_files, states, stored_rows
from scanbench.analysis.mr.acr_suite import NO_LOCALISER
from scanbench.api import analyze_paths
from scanbench.service.jobs import InlineExecutor
from scanbench.service.pipeline import Pipeline
from scanbench.store import models as m
from scanbench.store import repo

ACR_TESTS = {"mr.acr.geometric_accuracy", "mr.acr.high_contrast_resolution",
             "mr.acr.slice_thickness", "mr.acr.slice_position", "mr.acr.uniformity",
             "mr.acr.ghosting", "mr.acr.low_contrast"}
WAIT = 120.0
T0 = 1_000_000.0


@pytest.fixture(scope="module")
def acr_sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from scanbench.simulate.mr import simulate_acr

    out = tmp_path_factory.mktemp("acr")
    simulate_acr(out)
    return out


def _pipe(tmp_path: Path, url: str | None = None) -> Pipeline:
    return Pipeline(tmp_path / "home", url or f"sqlite:///{tmp_path / 'db.sqlite'}",
                    quiet_seconds=5.0, group_wait_seconds=WAIT, executor=InlineExecutor())


def _poll(pipe: Pipeline, now: float) -> list[str]:
    jobs = pipe.poll(now=now)
    pipe.collect()
    return [j.target_uid for j in jobs]


def test_acr_t1_t2_localiser_minutes_apart_give_the_full_suite(
        acr_sim: Path, tmp_path: Path, database_url: str) -> None:
    pipe = _pipe(tmp_path, database_url)
    try:
        t1 = arrive(pipe, acr_sim / "T1", T0)
        assert _poll(pipe, T0 + 6)  # T1 complete: it waits for its partners
        assert {states(pipe)[u] for u in t1} == {"waiting"}
        t2 = arrive(pipe, acr_sim / "T2", T0 + 60)
        _poll(pipe, T0 + 66)
        loc = arrive(pipe, acr_sim / "LOCALISER", T0 + 120)
        _poll(pipe, T0 + 126)
        assert set(states(pipe).values()) == {"waiting"}
        with pipe.db.session() as s:
            assert s.scalars(select(m.Result)).first() is None  # nothing ran alone
        assert _poll(pipe, T0 + 120 + WAIT - 1) == []  # the study may still grow
        assert _poll(pipe, T0 + 120 + WAIT + 1)  # the group is in: one job runs it
        assert set(states(pipe).values()) == {"done"}
        with pipe.db.session() as s:
            stored = stored_rows(s)
            analyses = {(r.series_uid, r.analysis) for r in s.scalars(select(m.Result))}
            job = s.scalars(select(m.Job).order_by(m.Job.id.desc())).first()
            assert job is not None and set(job.params["targets"]) == t1 | t2 | loc
        for uid in t1 | t2:
            assert {a for u, a in analyses if u == uid} == ACR_TESTS
        report = analyze_paths([acr_sim / "T1", acr_sim / "T2", acr_sim / "LOCALISER"])
        assert_same(stored, analyze_rows(report.results), "simulated ACR study")
        lengths = [k for k in stored if k[2] == "length_mm" and "localiser" in k[3]]
        assert len(lengths) == 2  # the localiser's length, once per axial series
    finally:
        pipe.close()


def test_a_localiser_that_never_comes_holds_the_suite_back_only_for_the_wait(
        shared_data: Path, tmp_path: Path) -> None:
    t1_dir = shared_data / "mr" / "acr" / "PhilipsAchieva"
    pipe = _pipe(tmp_path)
    try:
        (t1,) = arrive(pipe, t1_dir, T0)
        _poll(pipe, T0 + 6)
        assert states(pipe)[t1] == "waiting"
        assert _poll(pipe, T0 + WAIT - 1) == []
        assert _poll(pipe, T0 + WAIT + 1) == [t1]
        assert states(pipe)[t1] == "done"
        with pipe.db.session() as s:
            stored = stored_rows(s)
            geo = s.scalars(select(m.Result).where(
                m.Result.analysis == "mr.acr.geometric_accuracy")).one()
            assert NO_LOCALISER in geo.warnings  # analyze's warning, stored
        assert_same(stored, analyze_rows(analyze_paths([t1_dir]).results), "T1 alone")
        assert {k[1] for k in stored} == ACR_TESTS
    finally:
        pipe.close()


def test_a_late_localiser_reruns_the_group_and_supersedes(shared_data: Path,
                                                          tmp_path: Path) -> None:
    t1_dir = shared_data / "mr" / "acr" / "PhilipsAchieva"
    loc_dir = shared_data / "mr" / "acr" / "PhilipsAchievaLocalizer"
    pipe = _pipe(tmp_path)
    try:
        (t1,) = arrive(pipe, t1_dir, T0)
        _poll(pipe, T0 + 6)
        _poll(pipe, T0 + WAIT + 1)  # ran without its localiser
        with pipe.db.session() as s:
            first = {r.analysis: r.id for r in s.scalars(select(m.Result))}
        assert set(first) == ACR_TESTS
        (loc,) = arrive(pipe, loc_dir, T0 + 3600)  # an hour later
        _poll(pipe, T0 + 3606)
        assert states(pipe)[loc] == "waiting"
        assert _poll(pipe, T0 + 3600 + WAIT + 1) == [loc]
        assert states(pipe) == {t1: "done", loc: "done"}
        with pipe.db.session() as s:
            rows = list(s.scalars(select(m.Result).order_by(m.Result.id)))
            assert len(rows) == 2 * len(ACR_TESTS)  # the first results are kept...
            new = [r for r in rows if r.id not in first.values()]
            # ... and each new one names the result it supersedes
            assert {r.supersedes_id for r in new} == set(first.values())
            stored = stored_rows(s)
            device = rows[0].device_id
            assert device is not None
            hist = repo.history(s, device, "mr.acr.geometric_accuracy", "length_mm",
                                {"slice": "localiser", "direction": "head_foot"})
        both = analyze_paths([t1_dir, loc_dir])
        assert_same(stored, analyze_rows(both.results), "T1 with its late localiser")
        assert len(hist) == 1  # once: the superseded run had none, the new run has it
        assert any(k[2] == "length_mm" and "localiser" in k[3] for k in stored)
    finally:
        pipe.close()


def test_series_complete_together_are_analysed_together_without_waiting(
        shared_data: Path, tmp_path: Path) -> None:
    """``scanbench ingest`` (drain): every file is in, nobody waits."""
    t1_dir = shared_data / "mr" / "acr" / "PhilipsAchieva"
    loc_dir = shared_data / "mr" / "acr" / "PhilipsAchievaLocalizer"
    pipe = _pipe(tmp_path)
    try:
        for f in dicom_files(t1_dir, loc_dir):
            assert pipe.store_path(f).ok
        pipe.drain(timeout=600)
        assert set(states(pipe).values()) == {"done"}
        with pipe.db.session() as s:
            stored = stored_rows(s)
            assert len(list(s.scalars(select(m.Job)))) == 1
        assert_same(stored, analyze_rows(analyze_paths([t1_dir, loc_dir]).results),
                    "ingest of T1 and localiser")
    finally:
        pipe.close()


def test_nema_snr_pair_sent_apart_is_analysed_as_a_pair(shared_data: Path,
                                                         tmp_path: Path) -> None:
    """NEMA MS 1-2008 difference SNR needs both acquisitions: the first waits for the
    second (sent 90 s later) and the node stores analyze's pair result."""
    ge = shared_data / "mr" / "magnet" / "snr" / "GE"
    first, second = ge / "IM-0003-0001.dcm", ge / "IM-0004-0001.dcm"
    pipe = _pipe(tmp_path)
    try:
        a = pipe.store_path(first).series_instance_uid
        with pipe.db.session() as s:
            s.execute(m.Series.__table__.update().values(last_received=T0))
        _poll(pipe, T0 + 6)
        assert states(pipe) == {a: "waiting"}
        b = pipe.store_path(second).series_instance_uid
        with pipe.db.session() as s:
            s.execute(m.Series.__table__.update().where(m.Series.series_uid == b)
                      .values(last_received=T0 + 90))
        _poll(pipe, T0 + 96)
        assert _poll(pipe, T0 + 90 + WAIT + 1)
        assert states(pipe) == {a: "done", b: "done"}
        with pipe.db.session() as s:
            stored = stored_rows(s)
        assert {k[1] for k in stored} == {"mr.nema_ms1.snr"}
        assert_same(stored, analyze_rows(analyze_paths([ge]).results), "GE SNR pair")
    finally:
        pipe.close()


def test_a_series_of_a_batch_that_cannot_be_read_fails_the_job_not_made_clinical(
        tmp_path: Path) -> None:
    """Two series of one study complete together go to one job; when one of them cannot
    be read (its files gone), the job fails naming it, instead of the series being
    filed as clinical beside the other's results."""
    from node_dicom import ct_series

    study, _good, raws = ct_series(3)
    _, bad, bad_raws = ct_series(3, study=study)
    pipe = _pipe(tmp_path)
    try:
        for r in raws + bad_raws:
            assert pipe.store_instance(r, source="t").ok
        with pipe.db.session() as s:
            paths = [pipe.files.root / i.path for i in s.scalars(
                select(m.Instance).join(m.Series).where(m.Series.series_uid == bad))]
        for p in paths:
            p.unlink()
        pipe.drain(timeout=300)
        (job,) = [j for j in pipe.jobs() if j.kind == "series"]
        assert job.state == "failed" and bad in (job.error or "")
        assert "could not be read" in (job.error or "")
        assert states(pipe)[bad] == "failed"
    finally:
        pipe.close()

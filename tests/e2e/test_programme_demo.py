"""The programme demo (issue 14 "must show": the demo runs as a small programme): one
``scanbench demo --programme --no-serve`` run, a central node and three site nodes each
with its own SQLite database under one home, the sites sending over HTTP on loopback
to a real central ``scanbench serve`` process. Checked in the databases themselves:
every site's results at the centre exactly once, a triaged review queue, the rejection
received by its site and its test due again, a closed reader study with its statistics,
SUS scores, training records with reminders, quiz attempts, and the programme report
(HTML and PDF) naming every site."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scanbench.demo import fleet
from scanbench.programme import sus
from scanbench.store import models as m
from scanbench.store.db import Database

#: The shortest period the demo's story allows, a fixed end (the same values every
#: day), no periodic phantoms, few exams (the reader study's cases are virtual PET/CT
#: patients of their own, not the clinical exams).
ARGS = ["--days", "70", "--end", "2026-09-30", "--no-periodic", "--exams", "12",
        "--workers", "2"]


@pytest.fixture(scope="module")
def programme(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run of the command; its summary (programme-demo.json) and stdout."""
    home = tmp_path_factory.mktemp("programme-demo") / "home"
    proc = subprocess.run([sys.executable, "-m", "scanbench", "demo", "--programme",
                           "--no-serve", "--home", str(home), *ARGS],
                          capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr[-4000:] + proc.stdout[-2000:]
    doc = json.loads((home / "programme-demo.json").read_text(encoding="utf-8"))
    return {"home": home, "doc": doc, "stdout": proc.stdout}


def _session(home: Path) -> Iterator[Session]:
    db = Database(home)
    try:
        with db.sessions() as s:
            yield s
    finally:
        db.close()


def test_every_site_result_at_the_centre_exactly_once(programme: dict[str, Any]) -> None:
    home = programme["home"]
    assert programme["doc"]["jobs_failed"] == 0
    for s in _session(home / "central"):
        for site in fleet.SITES:
            at_site = []
            for t in _session(home / "sites" / site.key):
                at_site = list(t.scalars(select(m.Result.id)))
            assert at_site, site.key
            site_id = s.scalars(select(m.Site.id).where(m.Site.name == site.name)).one()
            keys = list(s.scalars(select(m.FedRecord.record_key).where(
                m.FedRecord.site_id == site_id, m.FedRecord.local_table == "result")))
            assert sorted(keys) == sorted(f"result:{i}" for i in at_site)  # once each
            central = list(s.scalars(select(m.Result.device_id).join(
                m.FedRecord, (m.FedRecord.local_id == m.Result.id)
                & (m.FedRecord.local_table == "result") & (m.FedRecord.site_id == site_id))))
            assert len(central) == len(at_site)
            devices = set(s.scalars(select(m.Device.id).where(m.Device.site_id == site_id)))
            assert set(central) <= devices  # stored under the site that sent them
            assert programme["doc"]["sites"][site.key]["results_at_centre"] == len(at_site)
        # every central result is a site's (the reader study's uploaded images are not
        # analysed again at the centre: no exam counted twice)
        assert s.scalar(select(func.count()).select_from(m.Result)) == s.scalar(
            select(func.count()).select_from(m.FedRecord)
            .where(m.FedRecord.local_table == "result"))


def test_review_queue_is_triaged_and_the_rejection_reopens_the_site_test(
        programme: dict[str, Any]) -> None:
    home, doc = programme["home"], programme["doc"]
    rej = doc["review"]["rejection"]
    for s in _session(home / "central"):
        reviewed = [s.scalars(select(m.Site.id).where(m.Site.name == site.name)).one()
                    for site in fleet.SITES if site.key in ("riverside", "hillcrest")]
        queued = list(s.scalars(select(m.Review).where(m.Review.state == "queued",
                                                       m.Review.site_id.in_(reviewed))))
        scored = [r for r in queued if r.triage_score is not None]
        assert len(scored) >= 20 and all(r.triage_model for r in scored)
        assert {r.site_id for r in queued} == set(reviewed)
        # only the reviewed sites are queued (the lead hospital has its own physicists)
        assert s.scalar(select(func.count()).select_from(m.Review)
                        .where(m.Review.site_id.not_in(reviewed))) == 0
        decided = {r.state: r for r in s.scalars(select(m.Review).where(
            m.Review.state != "queued"))}
        assert set(decided) == {"accepted", "rejected"}
        assert s.scalar(select(func.count()).select_from(m.AuditEntry).where(
            m.AuditEntry.action == "review.reject")) == 1
    for t in _session(home / "sites" / rej["site"]):
        got = list(t.scalars(select(m.ReviewDecision).where(
            m.ReviewDecision.result_id == rej["site_result"])))
        assert [d.decision for d in got] == ["rejected"]
        assert got[0].reason == rej["reason"] and got[0].reviewer == "reviewer"
    assert rej["due_before"] == "done"
    assert rej["due_after"] in ("due", "overdue")


def test_reader_study_sus_and_training(programme: dict[str, Any]) -> None:
    home, doc = programme["home"], programme["doc"]
    rs = doc["reader_study"]
    assert rs["cases"] >= 6 and rs["readers"] == 3
    for crit in rs["criteria"]:
        assert crit["scored_cases"] == rs["cases"]
        assert len(crit["by_model"]) == 3  # the three PET/CT models
        for row in crit["by_model"]:
            assert row["low"] <= row["estimate"] <= row["high"]
        assert len(crit["kappa_linear"]) == 3  # each pair of readers
        assert crit["icc"] and "ICC" in json.dumps(crit["icc"])
    for s in _session(home / "central"):
        study = s.scalars(select(m.ReaderStudy)).one()
        assert study.state == "closed" and study.blinded
        rows = list(s.scalars(select(m.SusResponse)))
        assert len(rows) == doc["sus_responses"] > 0
        assert {r.role for r in rows} == {"technologist", "radiologist"}
        assert all(r.score == sus.score(r.answers) for r in rows)
        assert s.scalar(select(func.count()).select_from(m.TrainingRecord)) == \
            doc["training"]["records"]
        attempts = list(s.scalars(select(m.QuizAttempt)))
        assert len(attempts) == doc["training"]["quiz_attempts"] > 0
        assert {a.passed for a in attempts} == {True, False}
    states = {(r["user"], r["state"]) for r in doc["training"]["reminders"]}
    assert ("reader3", "expired") in states
    assert any(state == "due soon" for _u, state in states)


def test_programme_report_names_every_site(programme: dict[str, Any]) -> None:
    home = programme["home"]
    html = (home / "programme-report.html").read_text(encoding="utf-8")
    for site in fleet.SITES:
        assert site.name in html
    assert "Reader" in html or "reader" in html
    assert (home / "programme-report.pdf").read_bytes()[:5] == b"%PDF-"
    out = programme["stdout"]
    assert "demo-reviewer-pass" in out and "scanbench serve --home" in out


def test_reader_study_cases_are_virtual_patients_scored_by_their_noise(
        programme: dict[str, Any]) -> None:
    """The cases are the virtual PET/CT patients' PET series, uploaded de-identified
    under each site's PET liver noise result, stored at the centre as clinical series
    with the site's PET/CT model in their headers; the simulated readers' noise scores
    follow the cases' liver noise (derived from it, not drawn at random)."""
    from scipy.stats import spearmanr

    home = programme["home"]
    models = {(d.manufacturer, d.model) for d in fleet.DEVICES if d.kind == "petct"}
    for s in _session(home / "central"):
        cases = list(s.scalars(select(m.ReaderCase)))
        assert len(cases) == 12
        seen, cov, noise = set(), [], []
        for case in cases:
            series = s.get_one(m.Series, case.series_id)
            assert series.kind == "clinical" and series.modality == "PT"
            result = s.scalars(select(m.Result).where(
                m.Result.series_id == series.id)).one()
            assert result.analysis == "pet.clinical_liver_noise"
            inst = s.scalars(select(m.Instance).where(
                m.Instance.series_id == series.id)).all()
            assert len(inst) >= 20  # a whole-body PET volume, not a placeholder slice
            ds = pydicom.dcmread(home / "central" / "files" / inst[0].path)
            assert ds.PatientIdentityRemoved == "YES" and ds.Rows >= 48
            seen.add((ds.Manufacturer, ds.ManufacturerModelName))
            cov.append(float(next(x.value for x in result.measurements
                                  if x.name == "liver_cov_percent") or 0.0))
            scores = s.scalars(select(m.ReaderScore.score).where(
                m.ReaderScore.case_id == case.id, m.ReaderScore.criterion == "noise")).all()
            assert len(scores) == 3
            noise.append(sum(scores) / 3)
        assert seen == models
        assert np.ptp(cov) > 4.0  # patients, activities and bed times differ
        rho = spearmanr(cov, noise).statistic
        assert rho < -0.6, (rho, cov, noise)

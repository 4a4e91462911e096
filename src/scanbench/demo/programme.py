"""``scanbench demo --programme``: the demo fleet run as a small programme (issue 14).

Under one data directory ``home``:

- ``home/sites/<site>``: one **site node** per demo hospital (its own home and SQLite
  database), each prepared by :func:`scanbench.demo.prepare` with only that hospital's
  scanners (the virtual scanners' DICOM through the node's ingest path, its users,
  specs, lifecycle, alerts and scorecards).
- ``home/central``: the **central node** of the lead hospital (its own home and SQLite
  database): the three sites, a credential for each (:func:`federation.add_credential`,
  as ``scanbench federation credential add``), the programme's people (coordinator,
  expert reviewer granted the two smaller hospitals, three readers, a physicist).

The central web application is started as a real process (``scanbench serve --port 0``)
and every site sends to it over HTTP on loopback through the federation sender
(:class:`scanbench.programme.outbox.Sender`, the ``scanbench federation send`` pass): no
database is copied. The results of the reviewed sites join the review queue as they
arrive (``web/api/fed_routes.py``); the triage model is then trained on the whole
received history and the queue rescored (``scanbench review train``). The reviewer reads
the top of the queue and accepts it, and rejects one site's newest weekly result with a
reason (:func:`scanbench.programme.review.decide`, the function the review page and API
call, audited); the site's next send pass fetches the decision and the test is due again
on the site's due list (shown before and after).

Then, at the centre: a reader study of de-identified clinical PET series (each site
receives four virtual PET/CT patients of :mod:`scanbench.simulate.pet_patient` as
patient studies, measures their PET liver noise, sends the results, and uploads their
PET images through the federation's image upload for review, ``/api/v1/fed/images``,
each instance de-identified with the site's key by the DICOM PS3.15 Basic Profile
de-identifier), read by the three readers
through :func:`readers.score_case` (the browser's function), closed, with its
statistics; System Usability Scale questionnaires per device and role; training
records (some expiring within 60 days, one expired) and competency quiz attempts; and
the programme report (HTML and PDF) from the central store.

What is simulated, stated: the patients, the readers' scores (a latent score per case
from its ground-truth liver noise and lesion contrast, :func:`case_scores`, plus each
reader's own bias and noise), the SUS answers (drawn around a per-model
tendency) and the training dates. The statistics computed from them are the real
ones; the scores are not evidence about any product.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scanbench.demo import Progress, _no_progress, fleet
from scanbench.simulate.pet_patient import SMALL_GRID

#: The programme's people at the central node (demo passwords: this demo only).
CENTRE_USERS: tuple[fleet.UserDef, ...] = (
    fleet.UserDef("coordinator", "demo-coordinator-pass", "Programme coordinator",
                  tuple((s.key, "admin") for s in fleet.SITES)),
    fleet.UserDef("physicist", "demo-physicist-pass", "Programme physicist",
                  tuple((s.key, "physicist") for s in fleet.SITES)),
    fleet.UserDef("reviewer", "demo-reviewer-pass",
                  "Expert reviewer (Northfield physicist)",
                  (("riverside", "reviewer"), ("hillcrest", "reviewer"))),
    fleet.UserDef("reader1", "demo-reader-pass", "Reader 1 (nuclear medicine)", ()),
    fleet.UserDef("reader2", "demo-reader-pass", "Reader 2 (radiology)", ()),
    fleet.UserDef("reader3", "demo-reader-pass", "Reader 3 (nuclear medicine)", ()),
)
#: The hospitals the expert centre reviews (no physicist on site).
REVIEWED = ("riverside", "hillcrest")
READERS = ("reader1", "reader2", "reader3")
STUDY = "demo-pet-image-quality"
CRITERIA = ("overall image quality", "noise", "lesion conspicuity")
#: Clinical PET series per site in the reader study.
CASES_PER_SITE = 4
#: How many of the top of each reviewed site's queue the reviewer reads and accepts.
ACCEPTED_PER_SITE = 5


@dataclass
class ProgrammeSummary:
    """What :func:`prepare_programme` made (see the module docstring)."""

    home: Path
    central: Path
    sites: dict[str, Path] = field(default_factory=dict)
    site_results: dict[str, int] = field(default_factory=dict)
    central_results: dict[str, int] = field(default_factory=dict)
    batches: dict[str, int] = field(default_factory=dict)
    queued: int = 0
    accepted: int = 0
    rejection: dict[str, Any] = field(default_factory=dict)
    reader_study: dict[str, Any] = field(default_factory=dict)
    sus: int = 0
    training: int = 0
    training_due: list[dict[str, Any]] = field(default_factory=list)
    quiz_attempts: int = 0
    reports: list[Path] = field(default_factory=list)
    period: tuple[dt.date, dt.date] | None = None
    jobs_failed: int = 0  # the site nodes' analysis jobs that failed
    timings: dict[str, float] = field(default_factory=dict)


def _actor(session: Any, username: str) -> Any:
    from sqlalchemy import select

    from scanbench.store import models as m
    from scanbench.web.audit import Actor

    user = session.scalars(select(m.User).where(m.User.username == username)).one()
    return Actor(user.id, username, "scanbench demo --programme")


def _count_results(db: Any) -> int:
    from sqlalchemy import func, select

    from scanbench.store import models as m

    with db.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(m.Result)) or 0)


# --------------------------------------------------------------------------- central

def _setup_centre(session: Any) -> dict[str, str]:
    """Sites, the programme's users and grants, one site credential each (audited, as
    the commands do); returns site key -> token."""
    from scanbench.demo.records import ACTOR
    from scanbench.programme import federation
    from scanbench.store import models as m
    from scanbench.web import auth
    from scanbench.web.sites import add_site

    ids = {s.key: add_site(session, ACTOR, s.name, institution=s.institution,
                           timezone=s.timezone).id for s in fleet.SITES}
    for u in CENTRE_USERS:
        user = auth.add_user(session, ACTOR, u.username, u.password,
                             display_name=u.display_name)
        for key, role in u.grants:
            auth.grant(session, ACTOR, user, session.get_one(m.Site, ids[key]), role)
    return {s.key: federation.add_credential(session, ACTOR, s.name, name="demo site node")
            for s in fleet.SITES}


class CentralServer:
    """The central web application as its own process (``scanbench serve --port 0``),
    as in tests/e2e/test_federation.py; ``url`` once it says it is ready."""

    def __init__(self, home: Path) -> None:
        env = {k: v for k, v in os.environ.items()
               if k not in ("SCANBENCH_DATABASE_URL", "SCANBENCH_DASK_SCHEDULER")}
        env["SCANBENCH_HOME"] = str(home)
        self.log = home / "central-serve.log"
        with open(self.log, "wb") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "scanbench", "serve", "--port", "0"], env=env,
                stdout=fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            text = self.log.read_text(errors="replace")
            found = re.search(r"ready on (http://127\.0\.0\.1:\d+)", text)
            if found:
                self.url = found.group(1)
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the central node did not start (log {self.log}):\n"
                                   + text[-2000:])
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _send(site_home: Path, url: str, token: str) -> Any:
    """One ``scanbench federation send`` pass of a site node."""
    from scanbench.programme.outbox import Sender
    from scanbench.store.db import Database

    db = Database(site_home)
    sender = Sender(db, site_home, url, token)
    try:
        rep = sender.send_pass()
    finally:
        sender.close()
        db.close()
    if rep.error:
        raise RuntimeError(f"site node {site_home.name}: federation send failed: {rep.error}")
    return rep


# --------------------------------------------------------------------------- review

def _weekly_target(site_home: Path, now: dt.datetime) -> tuple[int, str, str, str]:
    """At a site: the newest result of a weekly test that the due list counts as done
    (the test a rejection visibly reopens): (result id, device name, test, status)."""
    from sqlalchemy import select

    from scanbench.evaluation.scorecard import due_list_for_device
    from scanbench.store import models as m
    from scanbench.store.db import Database

    db = Database(site_home)
    try:
        with db.sessions() as s:
            best: tuple[int, str, str, str] | None = None
            for dev in s.scalars(select(m.Device).order_by(m.Device.id)):
                for item in due_list_for_device(s, dev.id, now).items:
                    if item.frequency != "weekly":
                        continue
                    rid = s.scalar(select(m.Result.id).where(
                        m.Result.device_id == dev.id, m.Result.analysis == item.test)
                        .order_by(m.Result.acquired_at.desc(), m.Result.id.desc()).limit(1))
                    if rid is None:
                        continue
                    cand = (rid, dev.display_name or str(dev.id), item.test, item.status)
                    if best is None or (item.status == "done" and best[3] != "done"):
                        best = cand
            if best is None:
                raise RuntimeError(f"site node {site_home.name}: no weekly test to review")
            return best
    finally:
        db.close()


def _due_status(site_home: Path, result_id: int, test: str, now: dt.datetime
                ) -> tuple[str, int]:
    """The due status of ``test`` on the device of ``result_id`` at a site, and the
    review decisions the site holds for that result."""
    from sqlalchemy import func, select

    from scanbench.evaluation.scorecard import due_list_for_device
    from scanbench.store import models as m
    from scanbench.store.db import Database

    db = Database(site_home)
    try:
        with db.sessions() as s:
            res = s.get_one(m.Result, result_id)
            assert res.device_id is not None
            items = [i for i in due_list_for_device(s, res.device_id, now).items
                     if i.test == test and i.frequency != "after_service"]
            decisions = int(s.scalar(select(func.count()).select_from(m.ReviewDecision)
                                     .where(m.ReviewDecision.result_id == result_id)) or 0)
            return (items[0].status if items else "not on the due list"), decisions
    finally:
        db.close()


def _review(central_db: Any, central: Path, summary: ProgrammeSummary,
            target_site: str, target_result: int, reason_of: str) -> None:
    """Train the triage models on everything received, queue and rescore; the reviewer
    accepts the top of each reviewed site's queue and rejects the target result."""
    from sqlalchemy import select

    from scanbench.programme import review, triage
    from scanbench.store import models as m
    from scanbench.web.audit import commit_with_retry

    models = triage.models_path(central)
    with central_db.sessions() as s, warnings.catch_warnings():
        # FAST-MCD warns on the demo's short, nearly collinear histories (a covariance
        # not of full rank); the fit is still made and the model says what it used.
        warnings.filterwarnings("ignore", module="sklearn.covariance")
        review.train(s, models)
        review.enqueue(s, models)
        review.rescore(s, models)
        s.commit()
        actor = _actor(s, "reviewer")
        site_ids = {k: s.scalars(select(m.Site.id).where(m.Site.name == name)).one()
                    for k, name in ((x.key, x.name) for x in fleet.SITES)}
        central_rid = s.scalar(select(m.FedRecord.local_id).where(
            m.FedRecord.site_id == site_ids[target_site], m.FedRecord.local_table == "result",
            m.FedRecord.record_key == f"result:{target_result}"))
        target = s.scalars(select(m.Review).where(m.Review.result_id == central_rid)).first()
        if target is None:
            raise RuntimeError(f"the rejected result {target_result} of {target_site} is not "
                               "in the central review queue")
        summary.queued = len(list(s.scalars(review.queue_query(list(site_ids.values())))))
        for key in REVIEWED:
            top = [r.id for r in s.scalars(review.queue_query([site_ids[key]])
                                           .limit(ACCEPTED_PER_SITE + 1)) if r.id != target.id]
            for rid in top[:ACCEPTED_PER_SITE]:
                commit_with_retry(s, lambda x, rid=rid: review.decide(
                    x, actor, x.get_one(m.Review, rid), "accepted", None,
                    "read remotely: numbers and figures consistent with the site's log"))
                summary.accepted += 1
        drivers = ", ".join(str(d.get("measurement") or d.get("feature") or d.get("note"))
                            for d in (target.triage_drivers or [])[:3]) or "none listed"
        commit_with_retry(s, lambda x: review.decide(
            x, actor, x.get_one(m.Review, target.id), "rejected", reason_of,
            f"triage score {target.triage_score if target.triage_score is not None else 'n/a'}"
            f"; drivers: {drivers}"))
        summary.rejection.update(central_review=target.id, central_result=central_rid,
                                 triage_score=target.triage_score)


# --------------------------------------------------------------------------- reader study

#: Virtual PET/CT patients of the reader study (scanbench.simulate.pet_patient), on its
#: small grids (SMALL_GRID: about a second a case, the liver whole).
CASE_GRID: dict[str, Any] = dict(SMALL_GRID)
#: Seconds per bed position the sites use for the reader-study patients.
CASE_BED_S = (60.0, 90.0, 120.0, 150.0, 180.0)
#: The demo readers' score model: liver COV (ground truth, %) at which the latent score
#: is 5 and 1 (linear between, clipped): the demo's own model, not a published scale.
COV_SCORE = (6.0, 20.0)
#: Rose (1948) criterion: a signal-to-noise ratio of about 5 for a lesion to be seen.
ROSE_K = 5.0


@dataclass(frozen=True)
class ReaderCase:
    """One virtual patient of the reader study as written and analysed at its site."""

    site: str
    device: str
    series_uid: str  # the PET series at the site (before de-identification)
    truth: dict[str, Any]


def _case_patients(rng: np.random.Generator) -> list[Any]:
    """``CASES_PER_SITE`` virtual FDG patients: body size (lateral 290-390 mm, AP 0.68-0.8
    of it, weight with the cross-section), injected 2.5-4.0 MBq/kg, uptake 55-75 min, a
    time per bed from ``CASE_BED_S``, and one hot lesion (10-20 mm, SUV 3.5-7) in the
    left liver lobe (away from the right-lobe VOI of the liver noise measurement)."""
    from scanbench.simulate.pet_patient import Lesion, PetPatient

    out = []
    for _ in range(CASES_PER_SITE):
        lat = float(rng.uniform(290.0, 390.0))
        ap = lat * float(rng.uniform(0.68, 0.8))
        weight = 75.0 * (lat * ap) / (340.0 * 250.0)
        base = PetPatient(lat_mm=lat, ap_mm=ap, weight_kg=round(weight, 1), **CASE_GRID)
        (cx, cy, cz), _ = base.left_lobe()
        lesion = Lesion(cx, cy, cz, float(rng.choice((10.0, 14.0, 20.0))),
                        round(float(rng.uniform(3.5, 7.0)), 1))
        out.append(PetPatient(
            lat_mm=lat, ap_mm=ap, weight_kg=round(weight, 1),
            injected_mbq=round(weight * float(rng.uniform(2.5, 4.0)), 0),
            uptake_min=round(float(rng.uniform(55.0, 75.0)), 0),
            bed_s=float(rng.choice(CASE_BED_S)), lesions=(lesion,), **CASE_GRID))
    return out


def _write_cases(site_home: Path, site_key: str, end: dt.date, rng: np.random.Generator
                 ) -> list[ReaderCase]:
    """Write this site's reader-study patients (PET and its CT, one study each) with the
    site's PET/CT identity in the headers, and analyse them at the site as any patient
    study it receives (the node's pipeline: stored, classified clinical, PET liver
    noise measured in the study's job): each case becomes a site result that the
    federation sends, under which its images are uploaded."""
    import dataclasses

    from scanbench.service.executors import make_executor
    from scanbench.service.jobs import job_figures_env
    from scanbench.service.pipeline import Pipeline, iter_dicom_files
    from scanbench.simulate.dicom_writer import write_series
    from scanbench.simulate.pet import ScannerModel
    from scanbench.simulate.pet_patient import STUDY_DESCRIPTION, _write_ct, pet_ct_series
    from scanbench.types import DeviceIdentity

    dev = next(d for d in fleet.DEVICES if d.site == site_key and d.kind == "petct")
    ident = DeviceIdentity(dev.manufacturer, dev.model, dev.serial, dev.station, dev.software)
    staging = site_home / "reader-cases"
    cases: list[ReaderCase] = []
    for j, p in enumerate(_case_patients(rng)):
        seed = int(rng.integers(1, 2**31))
        start = dt.datetime.combine(end - dt.timedelta(days=3 * j + 1), dt.time(9 + j, 0))
        pet, ct, truth = pet_ct_series(p, seed, scan_start=start)
        pet = dataclasses.replace(pet, facts=dataclasses.replace(pet.facts, device=ident))
        ct = dataclasses.replace(ct, facts=dataclasses.replace(ct.facts, device=ident))
        folder, pid = staging / f"case-{j + 1}", f"RS-{site_key}-{j + 1:02d}"
        write_series(pet, folder / "PT", patient_name="SIM^READER^CASE", patient_id=pid,
                     reconstruction_method=ScannerModel().reconstruction_method,
                     study_description=STUDY_DESCRIPTION)
        _write_ct(ct, folder / "CT", pid)
        cases.append(ReaderCase(site_key, dev.display_name,
                                str(pet.facts.series_instance_uid), truth))
    figures = job_figures_env("0")  # as the demo's ingest: figures drawn on request
    # In process (a handful of small studies): no worker processes to start.
    pipe = Pipeline(site_home, quiet_seconds=0.0, executor=make_executor(0), fsync=False,
                    group_wait_seconds=0.0, evaluate_each_job=False)
    try:
        for f in sorted(iter_dicom_files([staging])):
            out = pipe.store_instance(f.read_bytes(), source=str(f.relative_to(site_home)))
            if out.rejected:
                raise RuntimeError(f"{f}: the site node refused a reader-study instance: "
                                   f"{out.reason}")
        pipe.drain()
    finally:
        pipe.close()
        job_figures_env(figures)
    return cases


def case_scores(truth: dict[str, Any]) -> dict[str, float]:
    """The latent (noise-free) score of a simulated reader on each criterion, from the
    case's ground truth: *noise* and *overall image quality* fall linearly from 5 at a
    liver COV of ``COV_SCORE[0]`` % to 1 at ``COV_SCORE[1]`` %; *lesion conspicuity*
    from the lesion's signal-to-noise ratio by the Rose model, SNR = C · RC / COV ·
    d / FWHM (C the lesion's contrast to the liver, RC the peak of the uniform sphere
    of diameter d blurred by a Gaussian of FWHM sqrt(resolution² + voxel²), d / FWHM
    for the resolution elements across it), 1 at the Rose criterion ``ROSE_K`` and 5 at
    four times it. The demo's own model of a reader, not a published observer model."""
    cov = float(truth["liver_cov_percent"]) / 100.0
    lo, hi = COV_SCORE
    q = float(np.clip(5.0 - 4.0 * (100.0 * cov - lo) / (hi - lo), 1.0, 5.0))
    les = truth["lesions"][0]
    liver = float(truth["liver_suv_mean"])
    fwhm = math.hypot(float(truth["patient"]["fwhm_mm"]), float(truth["patient"]["voxel_mm"]))
    r, sigma = les["diameter_mm"] / 2.0, fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    # centre of a uniform sphere of radius r convolved with an isotropic Gaussian
    rc = (math.erf(r / (math.sqrt(2.0) * sigma))
          - math.sqrt(2.0 / math.pi) * (r / sigma) * math.exp(-r * r / (2.0 * sigma**2)))
    snr = (les["suv"] - liver) / liver * rc / cov * les["diameter_mm"] / fwhm
    c = float(np.clip(1.0 + 4.0 * (snr - ROSE_K) / (3.0 * ROSE_K), 1.0, 5.0))
    return {"overall image quality": q, "noise": q, "lesion conspicuity": c}


def _reader_cases(summary: ProgrammeSummary, url: str, tokens: dict[str, str],
                  cases: list[ReaderCase]) -> dict[str, dict[str, Any]]:
    """Each site uploads the de-identified PET images of its reader-study patients
    (``cases``: the PET series the reader-study page shows, under the site's PET liver
    noise result of each; the CT stays at the site) to the centre, as a site does when
    the programme enables image upload for expert review:
    each instance through the site's DICOM PS3.15 Basic Profile de-identifier (its key,
    as the sender's ``--images`` pass), posted to ``/api/v1/fed/images`` with the site's
    credential; the centre stores it under the result's series (no analysis there: the
    site's result is the one). Returns each case's de-identified Series Instance UID
    with its ground truth."""
    import io

    import httpx
    import pydicom
    from sqlalchemy import select

    from scanbench.dicom.deid import Deidentifier, site_secret
    from scanbench.store import models as m
    from scanbench.store.db import Database

    truth = {c.series_uid: c.truth for c in cases}
    uids: dict[str, dict[str, Any]] = {}
    for key, home in summary.sites.items():
        deid = Deidentifier(site_secret(home))  # the sender's options
        db = Database(home)
        client = httpx.Client(base_url=url, timeout=60.0,
                              headers={"Authorization": f"Bearer {tokens[key]}"})
        try:
            with db.sessions() as s:
                mine = [c.series_uid for c in cases if c.site == key]
                results = list(s.scalars(select(m.Result).where(
                    m.Result.analysis == "pet.clinical_liver_noise",
                    m.Result.series_uid.in_(mine)).order_by(m.Result.id)))
                if len(results) != len(mine):
                    raise RuntimeError(f"site node {key}: {len(mine) - len(results)} "
                                       "reader-study patient(s) have no PET liver noise "
                                       "result (scanbench jobs list)")
                for res in results:
                    series = s.get_one(m.Series, res.series_id)
                    for inst in s.scalars(select(m.Instance).where(
                            m.Instance.series_id == series.id).order_by(m.Instance.id)):
                        ds = pydicom.dcmread(home / "files" / inst.path)
                        deid.apply(ds)
                        buf = io.BytesIO()
                        ds.save_as(buf, enforce_file_format=True)
                        resp = client.post("/api/v1/fed/images", content=buf.getvalue(),
                                           params={"record_key": f"result:{res.id}"},
                                           headers={"Content-Type": "application/dicom"})
                        if resp.status_code != 200:
                            raise RuntimeError(f"site node {key}: an image of result "
                                               f"{res.id} was refused: {resp.status_code} "
                                               f"{resp.text[:300]}")
                    uids[deid.uid(series.series_uid)] = truth[series.series_uid]
        finally:
            client.close()
            db.close()
    return uids


def _reader_study(central: Path, uids: dict[str, dict[str, Any]], rng: np.random.Generator
                  ) -> dict[str, Any]:
    """Make the study of the uploaded series at the centre, let the readers score in
    their own order, close it; returns its results (scanbench.programme.readers). A
    simulated reader's score is the case's latent score from its ground truth
    (:func:`case_scores`) plus the reader's own bias (normal, SD 0.3) and noise per
    reading (normal, SD 0.5), rounded and clipped to the 1-5 scale."""
    from sqlalchemy import select

    from scanbench.programme import readers
    from scanbench.store import models as m
    from scanbench.store.db import Database
    from scanbench.web.audit import commit_with_retry

    db = Database(central)
    try:
        with db.sessions() as s:
            lead = s.scalars(select(m.Site.id).where(
                m.Site.name == fleet.SITES[0].name)).one()
            physicist = _actor(s, "physicist")
            study = commit_with_retry(s, lambda x: readers.create_study(
                x, physicist, STUDY, CRITERIA, site_id=lead, blinded=True,
                title="Clinical FDG PET image quality across the programme's PET/CT "
                      "models (demo: simulated reader scores)"))
            sid = study.id
            series = {se.series_uid: se.id for se in s.scalars(
                select(m.Series).where(m.Series.series_uid.in_(uids)))}
            missing = [u for u in uids if u not in series]
            if missing:
                raise RuntimeError(f"reader study: {len(missing)} de-identified series not "
                                   "stored at the centre")
            latent: dict[int, dict[str, float]] = {}
            for u, truth in uids.items():
                case = commit_with_retry(s, lambda x, u=u: readers.add_case(
                    x, physicist, sid, series[u]))
                latent[case.id] = case_scores(truth)
            for i, name in enumerate(READERS):
                reader = _actor(s, name)
                commit_with_retry(s, lambda x, r=reader, i=i: readers.assign_reader(
                    x, physicist, sid, r.user_id, seed=1000 + i))
                bias = float(rng.normal(0.0, 0.3))
                while True:
                    nxt, _done, _total = readers.progress(s, s.get_one(m.ReaderStudy, sid),
                                                          reader.user_id)
                    if nxt is None:
                        break
                    scores = {c: int(np.clip(round(latent[nxt][c] + bias
                                                   + float(rng.normal(0.0, 0.5))), 1, 5))
                              for c in CRITERIA}
                    commit_with_retry(s, lambda x, r=reader, c=nxt, sc=scores:
                                      readers.score_case(x, r, sid, c, r.user_id, sc))
            commit_with_retry(s, lambda x: readers.close_study(x, physicist, sid))
            return readers.results(s, sid)
    finally:
        db.close()


# --------------------------------------------------------------------------- SUS, training

def _sus(session: Any, start: dt.date, days: int, rng: np.random.Generator) -> int:
    """Two questionnaires per device and role (technologist, radiologist) over the
    period, answers drawn around a per-model tendency (simulated)."""
    from sqlalchemy import select

    from scanbench.programme import sus
    from scanbench.store import models as m
    from scanbench.web.audit import commit_with_retry

    coordinator = _actor(session, "coordinator")
    n = 0
    for dev in session.scalars(select(m.Device).where(m.Device.site_id.is_not(None))
                               .order_by(m.Device.id)):
        lean = float(rng.uniform(-0.6, 0.6))  # this model's tendency
        for role in ("technologist", "radiologist"):
            for k in range(2):
                at = dt.datetime.combine(start + dt.timedelta(days=int((k + 0.5) * days / 2)),
                                         dt.time(15, 0), tzinfo=dt.UTC)
                good = np.clip(np.round(4.0 + lean + rng.normal(0, 0.6, 10)), 1, 5)
                answers = [int(g) if i % 2 == 0 else int(6 - g) for i, g in enumerate(good)]
                commit_with_retry(session, lambda x, d=dev.id, r=role, a=answers, t=at:
                                  sus.add_response(x, coordinator, d, r, a, at=t))
                n += 1
    return n


def _training(session: Any, end: dt.date) -> tuple[int, int]:
    """Training records of the centre's people (radiation safety yearly, device
    operation and QC procedure every two years: some expire within 60 days of the end of
    the period, reader3's radiation safety has expired) and competency quiz attempts on
    the procedures of the demo specs (marked by scanbench.programme.cards.mark)."""
    from sqlalchemy import select

    from scanbench.demo.records import SPECS_DIR
    from scanbench.programme import cards, training
    from scanbench.specs import load_spec
    from scanbench.store import models as m
    from scanbench.web.audit import commit_with_retry

    coordinator = _actor(session, "coordinator")
    lead = session.scalars(select(m.Site.id).where(m.Site.name == fleet.SITES[0].name)).one()
    # (user, topic, completed days before the end, valid days)
    plan = [("physicist", "radiation_safety", 300, 365), ("physicist", "qc_procedure", 100, 730),
            ("reviewer", "radiation_safety", 330, 365), ("reviewer", "qc_procedure", 700, 730),
            ("coordinator", "radiation_safety", 120, 365),
            ("reader1", "radiation_safety", 200, 365), ("reader2", "radiation_safety", 40, 365),
            ("reader3", "radiation_safety", 375, 365),  # expired 10 days before the end
            ("reader1", "device_operation", 500, 730), ("reader3", "device_operation", 90, 730)]
    n = 0
    for username, topic, ago, valid in plan:
        user = _actor(session, username)
        commit_with_retry(session, lambda x, u=user.user_id, t=topic, a=ago, v=valid:
                          training.add_record(x, coordinator, u, t, end - dt.timedelta(days=a),
                                              valid_days=v, site_id=lead,
                                              provider="Northfield training centre (demo)"))
        n += 1
    attempts = 0
    specs = [load_spec(SPECS_DIR / f) for f in ("demo-ct-qc.yaml", "demo-pet-qc.yaml",
                                                "demo-mr-qc.yaml")]
    at = dt.datetime.combine(end, dt.time(10, 0), tzinfo=dt.UTC)
    for spec in specs:
        c = cards.cards_of(spec)[0]
        qs = cards.quiz(c)
        for username, wrong in (("physicist", 0), ("reviewer", 1), ("coordinator", 2)):
            answers: dict[str, Any] = {q["id"]: q["answer"] for q in qs}
            for q in qs[:wrong]:  # a wrong choice for the first `wrong` questions
                answers[q["id"]] = (q["answer"] + 1) % len(q["choices"])
            user = _actor(session, username)
            commit_with_retry(session, lambda x, w=user, a=answers, k=c.key, sp=spec:
                              training.attempt_quiz(x, w, w.user_id, k, a, at=at, spec=sp))
            attempts += 1
    return n, attempts


# --------------------------------------------------------------------------- the whole

def prepare_programme(home: Path, *, days: int = 70, end: dt.date | None = None,
                      workers: int | None = None, exams: int = 30, periodic: bool = False,
                      progress: Progress = _no_progress) -> ProgrammeSummary:
    """Build the programme demo in ``home`` (new or empty); see the module docstring."""
    from sqlalchemy import func, select

    from scanbench.demo import prepare
    from scanbench.programme import training
    from scanbench.report import programme_report
    from scanbench.store import models as m
    from scanbench.store.db import Database

    home = Path(home)
    if home.exists() and any(home.iterdir()):
        raise FileExistsError(f"{home} is not empty: the demo needs a new data directory")
    home.mkdir(parents=True, exist_ok=True)
    end = end or (dt.date.today() - dt.timedelta(days=1))
    central = home / "central"
    central.mkdir()
    summary = ProgrammeSummary(home=home, central=central)
    summary.period = (end - dt.timedelta(days=days - 1), end)
    rng = np.random.default_rng(14)
    cases: list[ReaderCase] = []

    for i, site in enumerate(fleet.SITES):
        t0 = time.monotonic()
        site_home = home / "sites" / site.key

        def site_progress(what: str, done: int, total: int | None, k: str = site.key
                          ) -> None:
            progress(f"{k}: {what}", done, total)

        made = prepare(site_home, days=days, end=end, workers=workers,
                       exams=max(1, exams // len(fleet.SITES)), periodic=periodic,
                       progress=site_progress, sites={site.key})
        summary.jobs_failed += made.jobs_failed
        summary.sites[site.key] = site_home
        t1 = time.monotonic()
        progress(f"{site.key}: reader-study patients", 0, CASES_PER_SITE)
        cases += _write_cases(site_home, site.key, end, np.random.default_rng(1400 + i))
        progress(f"{site.key}: reader-study patients", CASES_PER_SITE, CASES_PER_SITE)
        summary.timings["reader-study patients"] = (
            summary.timings.get("reader-study patients", 0.0) + time.monotonic() - t1)
        db = Database(site_home)
        summary.site_results[site.key] = _count_results(db)
        db.close()
        summary.timings[f"site {site.key}"] = time.monotonic() - t0

    t0 = time.monotonic()
    progress("central node: sites, people, credentials", 0, 1)
    cdb = Database(central)
    from scanbench.web.audit import commit_with_retry

    with cdb.sessions() as s:
        tokens = commit_with_retry(s, _setup_centre)
    for key, token in tokens.items():
        path = summary.sites[key] / "central.token"
        path.write_text(token + "\n", encoding="utf-8")
        path.chmod(0o600)
    now = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(12, 0), tzinfo=dt.UTC)
    server = CentralServer(central)
    try:
        for i, site in enumerate(fleet.SITES):
            progress("sites send to the central node (HTTP)", i, len(fleet.SITES))
            rep = _send(summary.sites[site.key], server.url, tokens[site.key])
            summary.batches[site.key] = rep.sent_batches
        progress("sites send to the central node (HTTP)", len(fleet.SITES), len(fleet.SITES))
        summary.timings["federation"] = time.monotonic() - t0

        t0 = time.monotonic()
        progress("expert review", 0, 2)
        target_site = REVIEWED[0]
        rid, device, test, before = _weekly_target(summary.sites[target_site], now)
        # The demo's reviewer rejects the site's newest weekly result to show a
        # rejection reaching the site; the reason says so (not a finding in the values).
        reason = (f"demo rejection: repeat the weekly {test} test on {device} and send "
                  "the repeat (chosen to show a rejection reaching the site, not for its "
                  "values)")
        _review(cdb, central, summary, target_site, rid, reason)
        progress("expert review", 1, 2)
        for site in fleet.SITES:  # the next pass: the decisions flow back
            _send(summary.sites[site.key], server.url, tokens[site.key])
        after, decisions = _due_status(summary.sites[target_site], rid, test, now)
        summary.rejection.update(site=target_site, site_result=rid, device=device,
                                 test=test, reason=reason, due_before=before,
                                 due_after=after, decisions_at_site=decisions,
                                 due_at=now.isoformat())
        progress("expert review", 2, 2)
        summary.timings["review"] = time.monotonic() - t0

        t0 = time.monotonic()
        progress("reader study, SUS, training", 0, 3)
        uids = _reader_cases(summary, server.url, tokens, cases)
        summary.timings["reader-study upload"] = time.monotonic() - t0
    finally:
        server.stop()

    cdb.close()
    summary.reader_study = _reader_study(central, uids, rng)
    progress("reader study, SUS, training", 1, 3)
    cdb = Database(central)
    start = summary.period[0]
    try:
        with cdb.sessions() as s:
            summary.sus = _sus(s, start, days, rng)
            progress("reader study, SUS, training", 2, 3)
            summary.training, summary.quiz_attempts = _training(s, end)
            summary.training_due = [
                {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in r.items()}
                for r in training.reminders(s, end)]
            progress("reader study, SUS, training", 3, 3)
            summary.timings["people"] = time.monotonic() - t0

            t0 = time.monotonic()
            progress("programme report (HTML, PDF)", 0, 2)
            # Grouped by field strength (the 1.5 T and 3 T MR systems of the three sites
            # compared); the per-site tables are in the report whatever the grouping.
            report = programme_report.programme_report(
                s, start, end, group_by="field_strength",
                title="Demo programme: multi-site evaluation report")
            summary.reports.append(programme_report.write(report,
                                                          home / "programme-report.html"))
            progress("programme report (HTML, PDF)", 1, 2)
            pdf = home / "programme-report.pdf"
            pdf.write_bytes(programme_report.pdf_bytes(report))
            summary.reports.append(pdf)
            progress("programme report (HTML, PDF)", 2, 2)
            summary.timings["report"] = time.monotonic() - t0
            for site in fleet.SITES:  # the site's results stored from its batches
                summary.central_results[site.key] = int(s.scalar(
                    select(func.count(func.distinct(m.FedRecord.local_id)))
                    .join(m.Site, m.Site.id == m.FedRecord.site_id)
                    .join(m.Result, m.Result.id == m.FedRecord.local_id)
                    .where(m.Site.name == site.name, m.FedRecord.local_table == "result"))
                    or 0)
    finally:
        cdb.close()
    _write_summary(summary)
    return summary


def _write_summary(summary: ProgrammeSummary) -> None:
    """``<home>/programme-demo.json``: the nodes, what was sent and decided, the reader
    study's results, the logins (for the tests and for checking the pages)."""
    doc = {
        "period": [d.isoformat() for d in summary.period] if summary.period else None,
        "central": str(summary.central),
        "sites": {k: {"home": str(v), "name": next(s.name for s in fleet.SITES if s.key == k),
                      "results_at_site": summary.site_results.get(k),
                      "results_at_centre": summary.central_results.get(k),
                      "batches": summary.batches.get(k)}
                  for k, v in summary.sites.items()},
        "review": {"queued": summary.queued, "accepted": summary.accepted,
                   "rejection": summary.rejection},
        "reader_study": summary.reader_study,
        "sus_responses": summary.sus,
        "training": {"records": summary.training, "reminders": summary.training_due,
                     "quiz_attempts": summary.quiz_attempts},
        "reports": [str(p) for p in summary.reports],
        "users": {"central": [{"username": u.username, "password": u.password,
                               "grants": [list(g) for g in u.grants]} for u in CENTRE_USERS],
                  "sites": [{"username": u.username, "password": u.password,
                             "grants": [list(g) for g in u.grants]} for u in fleet.USERS]},
        "jobs_failed": summary.jobs_failed,
        "timings_s": {k: round(v, 1) for k, v in summary.timings.items()},
    }
    (summary.home / "programme-demo.json").write_text(
        json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- command

def run_programme_demo(*, home: Path | None, days: int, end: str | None, exams: int,
                       workers: int | None, periodic: bool, serve: bool, host: str,
                       port: int, console_out: Any, console_err: Any) -> None:
    """``scanbench demo --programme``: prepare with a progress bar, print the nodes,
    what was sent and decided, the logins, then serve the central node (each site
    node's serve command printed). Exit status 2 when the home is not new."""
    import tempfile

    import typer
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import Progress as Bar
    from rich.table import Table

    from scanbench.console import safe
    from scanbench.demo.cli import end_date

    last = end_date(end, console_err)
    home = (home or Path(tempfile.mkdtemp(prefix="scanbench-programme-"))).resolve()
    if home.exists() and any(home.iterdir()):
        console_err.print(f"[red]error:[/] {safe(home)} is not empty: give --home a new "
                          "folder (the demo makes fresh data directories)")
        raise typer.Exit(2)
    console_err.print(f"programme demo directory: [bold]{safe(home)}[/]")
    started = time.monotonic()
    tasks: dict[str, Any] = {}
    with Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
             TimeElapsedColumn(), console=console_err) as bar:
        def progress(what: str, done: int, total: int | None) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(safe(what), total=total)
            bar.update(tasks[what], completed=done, total=total)

        summary = prepare_programme(home, days=days, end=last, workers=workers, exams=exams,
                                    periodic=periodic, progress=progress)
    names = {s.key: s.name for s in fleet.SITES}
    t = Table(title=f"scanbench demo --programme: prepared in "
              f"{time.monotonic() - started:.0f} s", show_header=False)
    t.add_row("central node", safe(str(summary.central)))
    for key, path in summary.sites.items():
        t.add_row(f"site node: {names[key]}",
                  f"{safe(str(path))}: {summary.site_results[key]} results, "
                  f"{summary.central_results.get(key)} at the centre "
                  f"({summary.batches.get(key)} batches)")
    rej = summary.rejection
    t.add_row("review queue", f"{summary.queued} results queued, ordered by triage "
              f"score; the reviewer accepted {summary.accepted} and rejected 1")
    t.add_row("rejection", safe(f"{rej.get('device')} ({names.get(rej.get('site', ''))}), "
                                f"{rej.get('test')}: due list {rej.get('due_before')} -> "
                                f"{rej.get('due_after')} after the next send pass"))
    rs = summary.reader_study
    t.add_row("reader study", f"{rs.get('study')}: {rs.get('cases')} cases, "
              f"{rs.get('readers')} readers, closed")
    t.add_row("SUS / training / quiz attempts",
              f"{summary.sus} / {summary.training} ({len(summary.training_due)} expired or "
              f"due within 60 days) / {summary.quiz_attempts}")
    t.add_row("programme report", ", ".join(safe(str(p)) for p in summary.reports))
    console_out.print(t)
    logins = Table(title="central node logins (demo passwords: for this demo only)")
    for col in ("user", "password", "role on"):
        logins.add_column(col)
    for u in CENTRE_USERS:
        logins.add_row(u.username, u.password,
                       "; ".join(f"{names[k]}: {r}" for k, r in u.grants) or "reader studies")
    console_out.print(logins)
    console_out.print("site nodes: the demo logins of 'scanbench demo' (physicist / "
                      "demo-physicist-pass, ...); serve a site node with:")
    for i, (key, path) in enumerate(summary.sites.items()):
        console_out.print(f"  scanbench serve --home {safe(str(path))} --port "
                          f"{port + 1 + i if port else 0}    # {names[key]}")
    if summary.jobs_failed:
        console_err.print(f"[red]error:[/] {summary.jobs_failed} job(s) of the site nodes "
                          "failed: scanbench jobs list --home <site node>")
    if not serve:
        console_out.print(f"prepared; serve the central node with: scanbench serve --home "
                          f"{safe(str(summary.central))}")
        if summary.jobs_failed:
            raise typer.Exit(1)
        return
    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    console_out.print(f"central node: open [bold]http://{shown}:{port}/review[/] "
                      "(reviewer) or /reader-studies (reader1)"
                      + (" (port 0: the bound port is printed below)" if not port else ""))
    from scanbench.web.cli import serve as serve_app

    serve_app(host=host, port=port, dicom_port=None, ae_title="SCANBENCH",
              secure_cookies=False, home=summary.central, database_url=None)

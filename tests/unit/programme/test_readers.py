"""A reader study end to end through the web application (TestClient on a real SQLite
node home): a physicist sets it up by the API, two readers score every case in the
browser pages in their own seeded random orders, blinding hides the device and site,
and the results are computed (means by model, kappa, ICC(2,1), paired comparison)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid
from sqlalchemy import func, select

from scanbench.programme import readers
from scanbench.store import Database, devices
from scanbench.store import models as m
from scanbench.types import DeviceIdentity
from scanbench.web import audit, auth, sites
from scanbench.web.api.app import create_app

CLI = audit.Actor(None, "cli:test")
PW = "correct horse battery"
SECRET = ("Hidden Hospital", "SERIALX1", "Vision-600", "Revolution-Apex", "Site Secret")


@pytest.fixture(scope="module", autouse=True)
def cheap_argon2() -> Iterator[None]:
    """Argon2id at its lowest cost here (its parameters are test_web_audit_auth.py's)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024,
                                                   parallelism=1))
        yield


def _dicom(path: Path, series_uid: str, number: int, value: int) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.2")
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID, ds.Modality, ds.InstanceNumber = series_uid, "CT", number
    ds.InstitutionName, ds.Manufacturer = SECRET[0], "Siemens"
    ds.Rows = ds.Columns = 64
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    yy, xx = np.mgrid[:64, :64]
    ds.PixelData = ((xx + yy) * value).astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("readers")
    db = Database(url=f"sqlite:///{home / 'scanbench.db'}")
    ids: dict[str, Any] = {"series": []}
    with db.sessions() as s:
        site = sites.add_site(s, CLI, SECRET[4])
        ph = auth.add_user(s, CLI, "ph", PW)
        auth.grant(s, CLI, ph, site, "physicist")
        for name in ("r1", "r2"):  # readers with no grant at all (outside radiologists)
            ids[name] = auth.add_user(s, CLI, name, PW).id
        study = m.Study(study_uid="1.2.9", site_id=site.id)
        s.add(study)
        s.flush()
        for k, (model, serial) in enumerate(((SECRET[2], SECRET[1]), (SECRET[3], "S2"))):
            dev = devices.register(s, DeviceIdentity("Siemens" if k == 0 else "GE", model,
                                                     serial, SECRET[0], "V1"))
            dev.site_id = site.id
            for p in range(4):  # patient p on both models: pair_key p
                uid = f"1.2.9.{k}.{p}"
                ser = m.Series(series_uid=uid, study_id=study.id, device_id=dev.id,
                               modality="CT", description=SECRET[0], state="done")
                s.add(ser)
                s.flush()
                for n in range(3):
                    rel = f"{uid}/{n}.dcm"
                    (home / "files" / uid).mkdir(parents=True, exist_ok=True)
                    _dicom(home / "files" / rel, uid, n + 1, 1 + p)
                    s.add(m.Instance(sop_uid=f"{uid}.{n}", series_id=ser.id,
                                     instance_number=n + 1, path=rel, size_bytes=1,
                                     source="test"))
                ids["series"].append((ser.id, f"p{p}"))
        ids["site"] = site.id
        s.commit()
    app = create_app(db)
    yield {"db": db, "app": app, "ids": ids, "home": home}
    db.close()


def _client(app: Any, user: str) -> tuple[TestClient, str]:
    c = TestClient(app, follow_redirects=False)
    r = c.post("/api/v1/auth/login", json={"username": user, "password": PW})
    assert r.status_code == 200, r.text
    return c, str(r.json()["csrf_token"])


def test_reader_study_end_to_end(world: dict[str, Any]) -> None:
    app, ids = world["app"], world["ids"]
    ph, ph_csrf = _client(app, "ph")
    h = {"X-CSRF-Token": ph_csrf}
    r = ph.post("/api/v1/reader-studies", headers=h, json={
        "name": "ct-iq", "title": "CT image quality", "site_id": ids["site"],
        "criteria": ["noise", "sharpness"], "blinded": True})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    for series_id, key in ids["series"]:
        assert ph.post(f"/api/v1/reader-studies/{sid}/cases", headers=h, json={
            "series_id": series_id, "pair_key": key}).status_code == 201
    orders = {}
    for name, seed in (("r1", 11), ("r2", 12)):
        r = ph.post(f"/api/v1/reader-studies/{sid}/readers", headers=h,
                    json={"user_id": ids[name], "seed": seed})
        assert r.status_code == 201, r.text
        orders[name] = r.json()["case_order"]
        assert r.json()["case_order"] == readers.reading_order(sorted(orders[name]), seed)
    assert sorted(orders["r1"]) == sorted(orders["r2"]) and orders["r1"] != orders["r2"]
    # a reader cannot manage the study nor see its results
    r1, _ = _client(app, "r1")
    assert r1.get(f"/api/v1/reader-studies/{sid}/results").status_code == 403
    # each reader reads in their own order; blinded: no device, model, serial, site or
    # institution text on the page; the image is a PNG
    with world["db"].sessions() as s:
        model_of = {c.id: s.get_one(m.Device, c.device_id).model for c in s.scalars(
            select(m.ReaderCase).where(m.ReaderCase.study_id == sid))}
    for name, offset in (("r1", 0), ("r2", 1)):
        client, _csrf = _client(app, name)
        seen = []
        for _ in range(len(orders[name])):
            page = client.get(f"/reader-studies/{sid}/read")
            assert page.status_code == 200, page.text
            for secret in SECRET:
                assert secret not in page.text, (secret, name)
            case_id = int(re.search(r'name="case_id" value="(\d+)"', page.text)[1])
            seen.append(case_id)
            img = client.get(f"/api/v1/reader-studies/{sid}/cases/{case_id}/image.png")
            assert img.status_code == 200 and img.content[:8] == b"\x89PNG\r\n\x1a\n"
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]
            # model "Vision-600" scores higher; reader 2 one point lower on some cases
            base = 4 if model_of[case_id] == SECRET[2] else 2
            score = base - (offset if case_id % 2 else 0)
            r = client.post(f"/reader-studies/{sid}/read", data={
                "csrf_token": csrf, "case_id": str(case_id), "score_0": str(score),
                "score_1": str(base)})
            assert r.status_code == 303, r.text
        assert seen == orders[name]
        assert "read every case" in client.get(f"/reader-studies/{sid}/read").text
    got = ph.get(f"/api/v1/reader-studies/{sid}/results")
    assert got.status_code == 200, got.text
    res = got.json()
    noise, sharp = res["criteria"]
    means = {b["model"]: b["estimate"] for b in sharp["by_model"]}
    assert means == {"Siemens Vision-600": 4.0, "GE Revolution-Apex": 2.0}
    assert sharp["kappa_linear"][0]["kappa"] == pytest.approx(1.0)
    assert sharp["icc"]["icc"] == pytest.approx(1.0) and sharp["icc"]["f"] is None  # F = inf
    assert noise["icc"]["form"] == "ICC(2,1)" and noise["icc"]["icc"] < 1
    assert noise["paired"]["pairs"] == 4
    assert sharp["paired"]["mean_difference"] == pytest.approx(-2.0)  # GE minus Siemens
    listing = ph.get("/reader-studies")  # the way to the results: their imports begin
    assert listing.status_code == 200 and f"/reader-studies/{sid}/results" in listing.text
    from scanbench.programme import stats

    assert stats._preloaded is not None
    stats._preloaded.join()
    page = ph.get(f"/reader-studies/{sid}/results")
    assert page.status_code == 200 and "ICC(2,1)" in page.text
    assert "Siemens Vision-600" in page.text and "Wilcoxon signed-rank" in page.text
    assert r1.get(f"/reader-studies/{sid}/results").status_code == 403


def test_score_out_of_scale_is_refused_by_name(world: dict[str, Any]) -> None:
    with world["db"].sessions() as s:
        st = readers.create_study(s, CLI, "scale", ["contrast"])
        for series_id, _k in world["ids"]["series"][:2]:
            readers.add_case(s, CLI, st.id, series_id)
        a = readers.assign_reader(s, CLI, st.id, world["ids"]["r1"], seed=1)
        with pytest.raises(readers.InputError, match="'contrast': 9 is outside the scale"):
            readers.score_case(s, CLI, st.id, a.case_order[0], world["ids"]["r1"],
                               {"contrast": 9})
        with pytest.raises(readers.InputError, match="before assigning readers"):
            readers.add_case(s, CLI, st.id, world["ids"]["series"][3][0])


def test_procedure_card_and_quiz_pages(world: dict[str, Any]) -> None:
    """The QC card page shows the spec's limits with their sources; the quiz page marks
    an attempt and records it for the signed-in person (pass and fail)."""
    from scanbench.programme import cards

    key = "earl1:pet.nema_nu2_2018.image_quality"
    ph, _ = _client(world["app"], "ph")
    page = ph.get(f"/procedures/{key}/card")
    assert page.status_code == 200 and "0.76..0.89 ratio" in page.text
    assert "Table 1 (VOI-A50), 37 mm sphere" in page.text
    assert ph.get("/procedures/earl1:no.such.test/card").status_code == 400
    qs = cards.quiz(cards.card(key))
    form = ph.get(f"/procedures/{key}/quiz")
    assert form.status_code == 200 and qs[0]["question"].split("'")[0] in form.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)[1]
    good = ph.post(f"/procedures/{key}/quiz", data={
        "csrf_token": csrf, **{q["id"]: str(q["answer"]) for q in qs}})
    assert good.status_code == 200 and "100 %: passed" in good.text
    bad = ph.post(f"/procedures/{key}/quiz", data={"csrf_token": csrf})
    assert "0 %: not passed" in bad.text
    assert ph.post(f"/procedures/{key}/quiz", data={}).status_code == 403  # no CSRF
    with world["db"].sessions() as s:
        got = s.scalars(select(m.QuizAttempt.passed).order_by(m.QuizAttempt.id)).all()
    assert got == [True, False]


def test_device_scorecard_links_each_required_test_to_its_card(world: dict[str, Any]) -> None:
    """The device page's required tests link to their QC procedure card, which opens
    from the spec stored on the node."""
    import datetime as dt
    from importlib import resources

    earl1 = (resources.files("scanbench.specs") / "earl1.yaml").read_text(encoding="utf-8")
    with world["db"].sessions() as s:
        dev = s.scalars(select(m.Device).order_by(m.Device.id)).first()
        assert dev is not None
        spec = m.Spec(name="earl1", version="2017-01", yaml=earl1, origin="test")
        s.add(spec)
        s.flush()
        s.add(m.Scorecard(device_id=dev.id, spec_id=spec.id,
                          period_start=dt.datetime(2026, 1, 1),
                          period_end=dt.datetime(2026, 2, 1), score=None, status="fail",
                          inputs_hash="h", data={"tests": [{
                              "test": "pet.nema_nu2_2018.image_quality",
                              "status": "overdue", "frequency": "annual"}]}))
        s.commit()
        dev_id = dev.id
    ph, _ = _client(world["app"], "ph")
    page = ph.get(f"/devices/{dev_id}")
    assert page.status_code == 200, page.text[:300]
    link = re.search(r'class="qc-card" href="([^"]+)"', page.text)
    assert link is not None
    card = ph.get(link[1])
    assert card.status_code == 200 and "0.76..0.89 ratio" in card.text


def test_sus_questionnaire_page(world: dict[str, Any]) -> None:
    """A viewer's SUS answers in the browser: scored by Brooke's method and stored; a
    missing answer is named and nothing is stored."""
    ph, _ = _client(world["app"], "ph")
    with world["db"].sessions() as s:
        dev_id = s.scalars(select(m.Device.id).order_by(m.Device.id)).first()
        before = s.scalar(select(func.count()).select_from(m.SusResponse))
    form = ph.get(f"/devices/{dev_id}/sus")
    assert form.status_code == 200 and "unnecessarily complex" in form.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)[1]
    answers = dict(zip([f"q{i}" for i in range(1, 11)], "4241523241", strict=True))
    r = ph.post(f"/devices/{dev_id}/sus", data={"csrf_token": csrf, "role": "radiologist",
                                               **answers})
    assert r.status_code == 200 and "SUS score 80 of 100" in r.text, r.text[-600:]
    del answers["q7"]
    r = ph.post(f"/devices/{dev_id}/sus", data={"csrf_token": csrf, "role": "radiologist",
                                               **answers})
    assert r.status_code == 400 and "missing: 7" in r.text
    with world["db"].sessions() as s:
        rows = s.scalars(select(m.SusResponse).order_by(m.SusResponse.id)).all()
        assert len(rows) == before + 1 and rows[-1].score == 80.0
        assert rows[-1].role == "radiologist" and rows[-1].answers == [4, 2, 4, 1, 5, 2, 3, 2,
                                                                        4, 1]


def test_training_api_records_and_lists_reminders_of_the_site(world: dict[str, Any]) -> None:
    """A physicist records the training of their site's staff and sees its reminder; a
    person without a role on the site is not found there."""
    import datetime as dt

    ph, csrf = _client(world["app"], "ph")
    h = {"X-CSRF-Token": csrf}
    with world["db"].sessions() as s:
        me = s.scalars(select(m.User.id).where(m.User.username == "ph")).one()
    done = (dt.date.today() - dt.timedelta(days=20)).isoformat()
    r = ph.post("/api/v1/training", headers=h, json={
        "user_id": me, "site_id": world["ids"]["site"], "topic": "radiation_safety",
        "completed_on": done, "valid_days": 30})
    assert r.status_code == 201, r.text
    due = ph.get("/api/v1/training/due").json()
    assert [(d["user"], d["state"], d["days_left"]) for d in due] == [("ph", "due soon", 10)]
    r = ph.post("/api/v1/training", headers=h, json={
        "user_id": world["ids"]["r1"], "site_id": world["ids"]["site"],
        "topic": "radiation_safety", "completed_on": done})
    assert r.status_code == 404

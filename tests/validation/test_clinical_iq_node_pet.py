"""PET liver noise on the node (issue 16 §2 through §3's node): a virtual whole-body
PET/CT study (PET and its CT on one frame of reference, sent as separate series) is
measured by the study's job once both series are in, and stored against the PET
series; a study with a lesion in the right lobe is stored refused with the reason.
Coarse CT (2 mm pixels, 6 mm slices) and a 450 mm field keep it cheap."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from scanbench.service.jobs import InlineExecutor, job_figures_env
from scanbench.service.pipeline import Pipeline
from scanbench.simulate.pet_patient import PetPatient, right_lobe_lesion, write_pet_patient
from scanbench.store import models as m

PET_LIVER = "pet.clinical_liver_noise"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pipeline, list[Any]]]:
    tmp = tmp_path_factory.mktemp("clinical_pet")
    old = job_figures_env("0")
    pipe = Pipeline(tmp / "home", quiet_seconds=0.0, executor=InlineExecutor())
    base = PetPatient(ct_pixel_mm=2.0, ct_slice_mm=6.0, z_min_mm=-300.0, z_max_mm=150.0)
    truths = []
    try:
        for i, p in enumerate((base, dataclasses.replace(
                base, lesions=(right_lobe_lesion(base),)))):
            out = tmp / f"petct{i}"
            truths.append(write_pet_patient(out, p, seed=i + 1))
            for f in sorted(Path(out).rglob("*.dcm")):
                assert pipe.store_path(f).stored
            pipe.drain()
        yield pipe, truths
    finally:
        pipe.close()
        job_figures_env(old)


def _result(pipe: Pipeline, pet_uid: str) -> m.Result:
    with pipe.db.session() as s:
        (row,) = s.scalars(select(m.Result).where(m.Result.analysis == PET_LIVER,
                                                  m.Result.series_uid == pet_uid)).all()
        assert row.job_id is not None
        assert s.get_one(m.Job, row.job_id).kind == "study"
        series = s.get_one(m.Series, row.series_id)
        assert series.modality == "PT" and series.series_uid == pet_uid
        row.measurements  # noqa: B018 - loaded before the session closes
        return row


def test_the_study_job_measures_the_liver_and_stores_it_against_the_pet(
        node: tuple[Pipeline, list[Any]]) -> None:
    pipe, truths = node
    row = _result(pipe, truths[0]["pet_series_instance_uid"])
    values = {x.name: x for x in row.measurements}
    assert values["liver_suv_mean"].status != "refused"
    assert values["liver_suv_mean"].value == pytest.approx(truths[0]["liver_suv_mean"],
                                                           rel=0.02)
    assert row.parameters["protocol"]  # the series description as read
    with pipe.db.session() as s:  # no trend alert from patients' raw values
        assert not s.scalars(select(m.Alert).where(m.Alert.analysis == PET_LIVER)).all()


def test_a_lesion_in_the_right_lobe_is_stored_refused_with_the_reason(
        node: tuple[Pipeline, list[Any]]) -> None:
    pipe, truths = node
    row = _result(pipe, truths[1]["pet_series_instance_uid"])
    cov = next(x for x in row.measurements if x.name == "liver_cov_percent")
    assert cov.status == "refused" and "lesion" in (cov.note or "")


def test_the_pet_liver_noise_is_given_per_protocol_by_the_api_and_the_page(
        node: tuple[Pipeline, list[Any]]) -> None:
    from argon2 import PasswordHasher
    from fastapi.testclient import TestClient

    from scanbench.web import audit, auth, sites
    from scanbench.web.api import create_app

    pipe, _ = node
    cli = audit.Actor(None, "cli:test")
    with pipe.db.session() as s, pytest.MonkeyPatch.context() as mp:
        mp.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024,
                                                   parallelism=1))
        site = sites.add_site(s, cli, "Site P")
        pet_device = s.scalars(select(m.Series.device_id).where(
            m.Series.modality == "PT")).first()
        assert pet_device is not None
        s.get_one(m.Device, pet_device).site_id = site.id
        auth.grant(s, cli, auth.add_user(s, cli, "viewer_p", "correct horse battery"), site,
                   "viewer")
    client = TestClient(create_app(pipe.db), follow_redirects=False)
    assert client.post("/api/v1/auth/login", json={
        "username": "viewer_p", "password": "correct horse battery"}).status_code == 200
    r = client.get(f"/api/v1/devices/{pet_device}/clinical-iq?kind=pet")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["quantities"]["noise"] == {"name": "liver_cov_percent", "label": "liver COV",
                                           "unit": "%"}
    (p,) = body["protocols"]
    assert (p["measured"], p["refused"], p["model"]) == (1, 1, None)  # 30 needed for a model
    assert "lesion" in next(e["refused"] for e in p["exams_list"] if e["refused"])
    assert client.get(f"/api/v1/devices/{pet_device}/clinical-iq?kind=mr").status_code == 422
    page = client.get(f"/devices/{pet_device}/clinical-iq")
    assert page.status_code == 200 and "PET liver noise" in page.text

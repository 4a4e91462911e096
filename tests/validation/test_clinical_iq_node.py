"""Clinical CT noise on the node (issue 16 §3 'must show'): a simulated CT device's
patient exams — virtual patients of varied size and dose (tube current modulation:
CTDIvol rises with size), each with a patient-to-patient noise variation the size
model does not capture (lognormal, SD 5 %) — go through the real node (DICOM files ->
Pipeline -> series jobs -> store -> drift rule). After the first 50 exams the device's
noise rises by 15 % at the same dose: the drift rule must signal within twice the
CUSUM's expected run length for that shift (Siegmund's approximation, computed from
the device's own baseline model), and never before the drift. A contrast-enhanced
exam is stored refused with its reason and left out of the trend. Then the API and
the device page's fragment show it, and a new baseline closes the alerts.

Patients from 200 × 136 mm (a child's abdomen) to 420 × 336 mm (lateral × AP): the
small ones have about the area of a 200 mm CatPhan or ACR 464 and were once taken for
them; the phantom detectors now require the phantom's circular section
(tests/unit/analysis/test_patients_not_phantoms.py), so every exam is measured as a
patient.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from scanbench.evaluation import alerts, clinical_iq, records
from scanbench.service.jobs import InlineExecutor, job_figures_env
from scanbench.service.pipeline import Pipeline
from scanbench.simulate.ct_patient import VirtualPatient, write_ct_patient
from scanbench.store import models as m
from scanbench.web import audit, auth, sites
from scanbench.web.api import create_app

CLI = audit.Actor(None, "cli:test")
PW = "correct horse battery"
PROTOCOL = "ABDOMEN <b>ROUTINE</b>"  # header text: escaped on the page
N_EXAMS, DRIFT_AT, CONTRAST_AT = 65, 50, 40
START = dt.datetime(2026, 1, 5, 8, 0)


@dataclass
class World:
    pipe: Pipeline
    device_id: int
    times: list[dt.datetime]
    truths: list[dict[str, Any]]
    app: Any


def _exam_time(i: int) -> dt.datetime:
    return START + dt.timedelta(hours=7 * i)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("clinical_iq")
    old = job_figures_env("0")
    pipe = Pipeline(tmp / "home", quiet_seconds=0.0, executor=InlineExecutor())
    rng = np.random.default_rng(3)
    truths = []
    try:
        for i in range(N_EXAMS):
            lat = float(rng.uniform(200.0, 420.0))
            ap = lat * float(rng.uniform(0.68, 0.8))
            # automatic exposure control: CTDIvol grows with size, with some scatter
            ctdi = 12.0 * math.exp(0.01 * (0.85 * lat - 300.0) + rng.normal(0.0, 0.15))
            factor = math.exp(rng.normal(0.0, 0.05)) * (1.15 if i >= DRIFT_AT else 1.0)
            p = VirtualPatient(lat_mm=lat, ap_mm=ap, ctdivol_mgy=round(ctdi, 2), slices=2,
                               matrix=128, contrast="IOHEXOL" if i == CONTRAST_AT else None)
            out = tmp / f"exam{i:03d}"
            truths.append(write_ct_patient(out, p, seed=i, noise_factor=factor,
                                           acquired=_exam_time(i), serial="CT-0042",
                                           protocol=PROTOCOL))
            for f in sorted(out.glob("*.dcm")):
                assert pipe.store_path(f).stored
            pipe.drain()
        with pipe.db.session() as s, pytest.MonkeyPatch.context() as mp:
            # Argon2id at its lowest cost: the passwords are not the subject
            mp.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024,
                                                       parallelism=1))
            (device,) = s.scalars(select(m.Device)).all()
            site = sites.add_site(s, CLI, "Site A")
            device.site_id = site.id
            auth.grant(s, CLI, auth.add_user(s, CLI, "viewer_a", PW), site, "viewer")
            auth.grant(s, CLI, auth.add_user(s, CLI, "viewer_b", PW),
                       sites.add_site(s, CLI, "Site B"), "viewer")
            device_id = device.id
        yield World(pipe, device_id, [_exam_time(i) for i in range(N_EXAMS)], truths,
                    create_app(pipe.db))
    finally:
        pipe.close()
        job_figures_env(old)


def test_every_patient_series_is_measured_and_stored_with_its_protocol(world: World) -> None:
    with world.pipe.db.session() as s:
        series = s.scalars(select(m.Series).where(m.Series.modality == "CT")).all()
        assert len(series) == N_EXAMS
        assert {x.kind for x in series} == {"clinical"}  # no phantom analysis claimed one
        results = s.scalars(select(m.Result).where(
            m.Result.analysis == clinical_iq.ANALYSIS)).all()
        assert len(results) == N_EXAMS  # one per series, the refused one included
        assert {r.parameters["protocol"] for r in results} == {PROTOCOL}
        assert {r.parameters["protocol_name"] for r in results} == {PROTOCOL}
    exams = _exams(world)
    assert len(exams) == N_EXAMS
    # measured σ follows the known σ: the log ratio's spread is small beside the 15 % drift
    ratio = [math.log(e.noise / t["noise_hu"]) for e, t in zip(exams, world.truths,
                                                                  strict=True) if e.usable]
    print(f"ln(measured/known) mean {np.mean(ratio):+.3f} SD {np.std(ratio):.3f}")
    assert float(np.std(ratio)) < 0.06


def _exams(world: World) -> list[clinical_iq.Exam]:
    with world.pipe.db.session() as s:
        return clinical_iq.load_exams(s, world.device_id)


def test_a_contrast_enhanced_exam_is_stored_refused_with_the_reason(world: World) -> None:
    refused = [e for e in _exams(world) if not e.usable]
    assert [e.time for e in refused] == [world.times[CONTRAST_AT]]
    assert "contrast-enhanced series" in (refused[0].refused or "")
    assert "IOHEXOL" in (refused[0].refused or "")


def test_drift_is_caught_within_the_expected_number_of_exams(world: World) -> None:
    with world.pipe.db.session() as s:
        (trend,) = clinical_iq.device_trends(s, world.device_id)
        model = trend.segments[0].model
        assert model is not None and model.n == clinical_iq.BASELINE_EXAMS
        # the fitted size coefficient is the simulator's μ/2 = 0.0095 /mm within 25 %
        assert model.b_fitted and abs(model.b / 0.0095 - 1.0) < 0.25
        delta = math.log(1.15) / model.prediction_sd(300.0)
        arl = clinical_iq.cusum_arl(delta)
        rows = s.scalars(select(m.Alert).where(
            m.Alert.device_id == world.device_id, m.Alert.name == clinical_iq.RESIDUAL)
            .order_by(m.Alert.occurred_at)).all()
        assert rows, "the drift was not caught"
        drift_start = world.times[DRIFT_AT]
        assert all(a.occurred_at is not None and a.occurred_at >= drift_start
                   for a in rows), "a false alarm before the drift"
        first = rows[0]
        assert first.occurred_at is not None
        caught_at = sum(1 for t in world.times[DRIFT_AT:] if t <= first.occurred_at)
        print(f"caught at drifted exam {caught_at}; expected {arl:.2f} (CUSUM ARL1); "
              f"prediction SD {model.prediction_sd(300.0):.3f}, residual SD {model.s:.3f}, "
              f"D_w {model.size_range}")
        assert caught_at <= math.ceil(2 * arl), (caught_at, arl)
        assert first.level == "trend" and first.labels == {
            "protocol": PROTOCOL, "method": clinical_iq.METHOD}
        assert "size model" in first.message and first.limit_source == clinical_iq.SOURCE


def test_the_api_gives_the_protocol_model_and_exams_within_the_callers_sites(
        world: World) -> None:
    from fastapi.testclient import TestClient

    if True:  # the users' hashes are cheap (the fixture)
        client = TestClient(world.app, follow_redirects=False)
        assert client.post("/api/v1/auth/login", json={
            "username": "viewer_a", "password": PW}).status_code == 200
        r = client.get(f"/api/v1/devices/{world.device_id}/clinical-iq")
        assert r.status_code == 200, r.text
        (p,) = r.json()["protocols"]
        assert p["protocol"] == PROTOCOL and p["measured"] == N_EXAMS - 1
        assert p["refused"] == 1 and p["judged"] == N_EXAMS - 1 - clinical_iq.BASELINE_EXAMS
        assert p["model"]["expected_exams_to_detect_15pct"] > 1
        assert p["open_alerts"] >= 1
        whole = client.get(f"/devices/{world.device_id}")
        assert whole.status_code == 200 and 'id="clinical-iq"' in whole.text
        # no raw control chart of the patients' noise (it varies with the patient)
        assert 'data-series-name="global_noise_hu"' not in whole.text
        assert 'href="#clinical-iq">chart</a>' in whole.text  # an open drift alert's link
        page = client.get(f"/devices/{world.device_id}/clinical-iq")
        assert page.status_code == 200
        assert "ABDOMEN &lt;b&gt;ROUTINE&lt;/b&gt;" in page.text and "<b>ROUTINE" not in page.text
        assert "data-figure=" in page.text
        # the exams' period as people read it, not the API's ISO form with microseconds
        first = dt.datetime.fromisoformat(p["first"]).strftime("%Y-%m-%d %H:%M")
        (exams_row,) = re.findall(r"<tr><th>exams</th><td>(.*?)</td></tr>", page.text)
        assert f"; {first} to " in exams_row and p["first"] not in exams_row
        cmp = client.get("/api/v1/clinical-iq/compare").json()
        assert [d["device_id"] for d in cmp["devices"]] == [world.device_id]
        assert cmp["models"][0]["devices"] == 1
        table = client.get("/compare/clinical-iq")
        assert table.status_code == 200
        assert "ABDOMEN &lt;b&gt;ROUTINE&lt;/b&gt;" in table.text and "Virtual CT 64" in table.text
        other = TestClient(world.app, follow_redirects=False)
        assert other.post("/api/v1/auth/login", json={
            "username": "viewer_b", "password": PW}).status_code == 200
        assert other.get(f"/api/v1/devices/{world.device_id}/clinical-iq").status_code == 404
        assert other.get("/api/v1/clinical-iq/compare").json()["devices"] == []


def test_a_new_baseline_closes_the_drift_alerts(world: World) -> None:
    with world.pipe.db.session() as s:
        records.add_event(s, CLI, world.device_id, "part_replacement", world.times[-1]
                          + dt.timedelta(hours=1), new_baseline=True,
                          summary="tube replaced")
    with world.pipe.db.session() as s:
        alerts.refresh_open(s)
    with world.pipe.db.session() as s:
        rows = s.scalars(select(m.Alert).where(
            m.Alert.device_id == world.device_id, m.Alert.name == clinical_iq.RESIDUAL)).all()
        assert rows and {a.state for a in rows} == {"closed"}
        assert all(a.closed_reason for a in rows)


def test_the_device_qc_report_has_the_clinical_section_not_the_raw_control_charts(
        world: World) -> None:
    from scanbench.report.store_reports import device_report, render_html

    with world.pipe.db.session() as s:
        device = s.get_one(m.Device, world.device_id)
        report = device_report(s, device, dt.date(2026, 1, 1), dt.date(2026, 2, 28))
        titles = [x.title for x in report.sections]
        assert "Clinical image quality" in titles
        (sec,) = [x for x in report.sections if x.title == "Clinical image quality"]
        (table,) = sec.tables
        (row,) = table.rows
        assert row[0].text == PROTOCOL and row[1].text == f"{N_EXAMS - 1} / 1"
        assert len(sec.figures) == 2  # noise against D_w, residual chart
        (qc,) = [x for x in report.sections if x.title == "QC results in the period"]
        assert not any(clinical_iq.ANALYSIS in (t.clause or "") for t in qc.tables)
        text = render_html(report)
        assert "ABDOMEN &lt;b&gt;ROUTINE&lt;/b&gt;" in text

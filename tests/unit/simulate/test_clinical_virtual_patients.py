"""Clinical exams with virtual-patient images (scanbench.simulate.clinical:
``patient_slices`` for CT exams, ``patient_grid`` for PET/CT exams, as the fleet demo
writes them): the dose reports and times are those of the dose-only exams of the same
seed, and the node's clinical image-quality analyses measure the known noise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scanbench import dicom
from scanbench.api import analyze_series_list
from scanbench.simulate.clinical import PetProtocol, simulate_ct_exams, simulate_petct_exams
from scanbench.simulate.pet_patient import SMALL_GRID

PROTOCOLS = ("chest", "abdomen_pelvis", "head", "chest_abdomen_pelvis")
KEEP = ("study_instance_uid", "start", "end", "total_dlp_mgycm", "first_acquisition",
        "administered_activity_mbq", "injection", "first_pet_acquisition", "pet_end", "beds")


def _same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    for x, y in zip(a, b, strict=True):
        for k in KEEP:
            if k != "study_instance_uid":  # a fresh UID each run
                assert x.get(k) == y.get(k), k


def _value(folder: Path, analysis: str, modality: str, name: str) -> float:
    read = dicom.read([folder])
    only = {str(s.uid) for s in read.series if s.facts.modality == modality}
    report = analyze_series_list(read.series, analysis=analysis, only=only)
    assert not report.failures and len(report.results) == 1
    ms = [x for x in report.results[0].measurements if x.name == name]
    assert ms and ms[0].status != "refused", ms
    return float(ms[0].value)


@pytest.fixture(scope="module")
def exams(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("virtual-exams")
    simulate_ct_exams(root / "ct", n=3, images=False, protocols=PROTOCOLS, seed=3,
                      patient_slices=6)
    simulate_petct_exams(root / "pet", n=1, pet=PetProtocol(bed_overlap_mm=20.0), seed=3,
                         patient_grid=SMALL_GRID)
    return root


def test_dose_reports_and_times_unchanged_by_the_images(exams: Path, tmp_path: Path) -> None:
    plain_ct = simulate_ct_exams(tmp_path / "ct", n=3, images=False, protocols=PROTOCOLS,
                                 seed=3)
    plain_pet = simulate_petct_exams(tmp_path / "pet", n=1,
                                     pet=PetProtocol(bed_overlap_mm=20.0), seed=3)
    _same(json.loads((exams / "ct" / "truth.json").read_text())["exams"], plain_ct)
    _same(json.loads((exams / "pet" / "truth.json").read_text())["exams"], plain_pet)


def test_ct_exam_noise_is_measured_as_simulated(exams: Path) -> None:
    truth = json.loads((exams / "ct" / "truth.json").read_text())["exams"]
    assert "image_noise_hu" not in truth[2]  # the head exam: no trunk to simulate
    assert not (exams / "ct" / "exam_003" / "series_002").exists()
    for i in (0, 1):
        sigma = truth[i]["image_noise_hu"]
        got = _value(exams / "ct" / f"exam_{i + 1:03d}", "ct.clinical_global_noise", "CT",
                     "global_noise_hu")
        assert got == pytest.approx(sigma, rel=0.15), (i, got, sigma)


def test_petct_exam_liver_noise_is_measured_as_simulated(exams: Path) -> None:
    truth = json.loads((exams / "pet" / "truth.json").read_text())["exams"][0]
    folder = exams / "pet" / "exam_001"
    cov = _value(folder, "pet.clinical_liver_noise", "PT", "liver_cov_percent")
    suv = _value(folder, "pet.clinical_liver_noise", "PT", "liver_suv_mean")
    assert cov == pytest.approx(truth["liver_cov_percent"], rel=0.3)
    assert suv == pytest.approx(truth["liver_suv_mean"], rel=0.1)
    ct = _value(folder, "ct.clinical_global_noise", "CT", "global_noise_hu")
    assert ct == pytest.approx(truth["ct_image_noise_hu"], rel=0.2)

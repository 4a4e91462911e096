"""Effective dose against hand-computed values (STANDARDS.md B.4 and D.4).

CT: E = Σ k(region, age) × DLP with the Shrimpton / AAPM Report 96 k-factors; tracer:
E = A × e(agent) with ICRP 128 coefficients; PET/CT: both parts and their sum.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scanbench.clinical import effective_dose as ed
from scanbench.clinical.dose import doses_from_paths
from scanbench.clinical.sr import Code
from scanbench.errors import AnalysisError


@pytest.mark.parametrize(("region", "age", "k"), [
    ("head", None, 0.0021), ("head", 40, 0.0021), ("chest", 40, 0.014),
    ("abdomen_pelvis", 40, 0.015), ("trunk", 40, 0.015),
    ("head", 0.1, 0.011), ("head", 1, 0.0067), ("chest", 5, 0.018),
    ("abdomen_pelvis", 10, 0.015), ("trunk", 1.2, 0.028), ("chest", 14.9, 0.013),
    ("chest", 15, 0.014),
])
def test_k_factor_table(region: str, age: float | None, k: float) -> None:
    assert ed.k_factor(region, age)[0] == k


def test_neck_is_flagged_unconfirmed_and_paediatric_neck_refused() -> None:
    assert ed.k_factor("neck", 50) == (0.0059, False)
    with pytest.raises(AnalysisError, match="no k-factor for region 'neck'"):
        ed.k_factor("neck", 5)


def test_ct_effective_dose_hand_computed() -> None:
    # chest 350 mGy·cm × 0.014 + abdomen-pelvis 500 × 0.015 + localizer 10 (no region)
    e, notes = ed.ct_effective_dose([(350.0, "chest"), (500.0, "abdomen_pelvis"),
                                     (10.0, None)], age_years=50)
    assert e == pytest.approx(350 * 0.014 + 500 * 0.015)  # 4.9 + 7.5 = 12.4 mSv
    assert any("event 3: no coded target region" in n for n in notes)


def test_ct_effective_dose_child_head() -> None:
    e, _ = ed.ct_effective_dose([(300.0, "head")], age_years=4)
    assert e == pytest.approx(300 * 0.0040)  # 5 y band: 1.2 mSv


@pytest.mark.parametrize(("code", "text", "msv_per_mbq", "confirmed"), [
    (Code("35321007", "SCT", "Fluorodeoxyglucose F^18^"), None, 0.019, True),
    (Code("C-B1031", "SRT", "Fluorodeoxyglucose F^18^"), None, 0.019, True),
    (None, "FDG -- fluorodeoxyglucose", 0.019, True),
    (None, "18F-NaF", 0.017, False),
    (None, "Rubidium-82 chloride", 0.0011, False),
])
def test_tracer_coefficients(code: Code | None, text: str | None, msv_per_mbq: float,
                             confirmed: bool) -> None:
    coeff, _ = ed.tracer_coefficient(code, text)
    assert coeff is not None
    assert coeff.msv_per_mbq == msv_per_mbq and coeff.confirmed is confirmed


def test_unknown_tracer_has_no_coefficient() -> None:
    assert ed.tracer_coefficient(None, "68Ga-PSMA-11") == (None, None)


def test_petct_total_is_the_two_parts(shared_data: Path) -> None:
    rdsr = shared_data / "dose" / "rdsr"
    s = doses_from_paths([rdsr / "NM-RRDSR-Siemens.dcm", rdsr / "NM-CT-RDSR-Siemens.dcm"]
                         ).studies[0]
    e = s.effective_dose
    # tracer: 394 MBq × 0.019 = 7.486 mSv (Siemens wrote the same number in the report)
    assert e.radiopharmaceutical_msv == pytest.approx(7.486)
    # CT: the events' DLP × the k of their coded region, adult
    expected_ct = sum(ev.dlp_mgycm * ed.k_factor(ed.region_of(ev.target_region_code) or "", 63)[0]
                      for ev in s.events if ev.dlp_mgycm and ed.region_of(ev.target_region_code))
    assert e.ct_msv == pytest.approx(expected_ct)
    assert e.total_msv == pytest.approx(e.ct_msv + 7.486)
    d = e.to_dict()
    assert "ICRP Publication 128" in d["sources"]["radiopharmaceutical"]
    assert "AAPM Report 96" in d["sources"]["ct"]

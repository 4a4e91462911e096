"""SSDE (AAPM Reports 204 / 220) against worked examples with a known water-equivalent
diameter.

1. The conversion factors reproduce the Report 204 fit (STANDARDS.md B.3) at hand-computed
   points, and refuse outside the 8–45 cm range of the fit.
2. D_w measured on CT images of the virtual scanner's patient (a water ellipse with two
   −800 HU lungs, on a separate table) equals the closed form
   2·sqrt((A_body − 0.8·A_lungs)/π) within 1 %, over a sweep of body sizes, and the SSDE
   from it equals f(D_w)·CTDIvol.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from scanbench.clinical import ssde
from scanbench.dicom.read import read
from scanbench.errors import AnalysisError
from scanbench.simulate.clinical import (
    _Patient,
    body_slice,
    simulate_ct_exams,
    water_equivalent_diameter_truth,
)


@pytest.mark.parametrize(("d_cm", "phantom", "expected"), [
    # the fit as STANDARDS.md B.3 writes it: 3.704369·e^(−0.03671937·D), 1.874799·e^(−0.03871313·D)
    (30.0, 32, 3.704369 * math.exp(-0.03671937 * 30.0)),
    (20.0, 32, 3.704369 * math.exp(-0.03671937 * 20.0)),
    (15.0, 16, 1.874799 * math.exp(-0.03871313 * 15.0)),
    (8.0, 32, 3.704369 * math.exp(-0.03671937 * 8.0)),
    (45.0, 16, 1.874799 * math.exp(-0.03871313 * 45.0)),
])
def test_conversion_factor_matches_report_204_fit(d_cm: float, phantom: int,
                                                  expected: float) -> None:
    assert ssde.conversion_factor(d_cm, phantom) == pytest.approx(expected, rel=1e-12)


def test_conversion_factor_known_values() -> None:
    # By hand: a 30 cm patient, body phantom: 0.03671937 × 30 = 1.1015811,
    # e^−1.1015811 = 0.332347, × 3.704369 = 1.23113; CTDIvol 10 mGy → SSDE 12.311 mGy.
    # A 15 cm child, head phantom: 0.03871313 × 15 = 0.580697, e^−0.580697 = 0.559502,
    # × 1.874799 = 1.048966.
    assert ssde.conversion_factor(30.0, 32) == pytest.approx(1.23113, abs=1e-5)
    assert ssde.ssde_mgy(10.0, 30.0, 32) == pytest.approx(12.3113, abs=1e-4)
    assert ssde.conversion_factor(15.0, 16) == pytest.approx(1.048966, abs=1e-6)


@pytest.mark.parametrize("d_cm", [7.9, 45.1, 0.0, 60.0])
def test_refuses_outside_fit_range(d_cm: float) -> None:
    with pytest.raises(AnalysisError, match="outside the 8–45 cm range"):
        ssde.conversion_factor(d_cm, 32)


def test_refuses_unknown_phantom() -> None:
    with pytest.raises(AnalysisError, match="16 or 32 cm"):
        ssde.conversion_factor(30.0, 20)


@pytest.mark.parametrize(("lat", "ap"), [(250, 170), (330, 230), (420, 310), (160, 150)])
def test_slice_dw_matches_closed_form(lat: float, ap: float) -> None:
    patient = _Patient("X", "X", __import__("datetime").date(1970, 1, 1), "M", 70, 1.7, lat, ap)
    hu = body_slice(patient, matrix=128, fov_mm=500.0)
    rng = np.random.default_rng(1)
    noisy = hu + rng.normal(0, 10, hu.shape)  # CT noise must not bias the integral
    px = 500.0 / 128
    truth = water_equivalent_diameter_truth(patient)
    assert ssde.water_equivalent_diameter_slice(noisy, px * px) == pytest.approx(truth, rel=0.01)


def test_series_dw_and_ssde_from_virtual_ct_exam(tmp_path: Path) -> None:
    truths = simulate_ct_exams(tmp_path, n=1, protocols=("abdomen_pelvis",), seed=3,
                               matrix=96)
    t = truths[0]
    res = read([tmp_path / t["folder"] / "series_002"])
    assert not res.errors
    series = res.series[0]
    for method in ("central", "mean"):
        dw = ssde.water_equivalent_diameter(series, method=method)
        assert dw.diameter_mm == pytest.approx(t["water_equivalent_diameter_mm"], rel=0.01)
    got = ssde.ssde_mgy(t["events"][1]["ctdivol_mgy"], dw.diameter_mm / 10, 32)
    assert got == pytest.approx(t["ssde_mgy"], rel=0.01)


def test_dose_report_gains_ssde_measured_on_its_images(tmp_path: Path) -> None:
    """scanbench dose --ssde: the report gives no SSDE; D_w is measured on the axial series
    its Irradiation Event UID names, and SSDE = f(D_w)·CTDIvol matches the truth."""
    from scanbench.clinical.dose import doses_from_paths

    truths = simulate_ct_exams(tmp_path, n=2, protocols=("chest", "head"), seed=8)
    plain = doses_from_paths([tmp_path])
    assert all(e.ssde_mgy is None for s in plain.studies for e in s.events)
    report = doses_from_paths([tmp_path], ssde_method="mean")
    by_uid = {s.study_instance_uid: s for s in report.studies}
    for t in truths:
        s = by_uid[t["study_instance_uid"]]
        heli = s.events[1]
        assert heli.water_equivalent_diameter_mm == pytest.approx(
            t["water_equivalent_diameter_mm"], rel=0.01)
        if t["ssde_mgy"] is None:  # a head smaller than the fit's 8 cm would be refused
            assert heli.ssde_mgy is None
        else:
            assert heli.ssde_mgy == pytest.approx(t["ssde_mgy"], rel=0.01)
            assert "mean over z" in (heli.ssde_source or "")
        assert s.events[0].ssde_mgy is None  # the localizer has no SSDE

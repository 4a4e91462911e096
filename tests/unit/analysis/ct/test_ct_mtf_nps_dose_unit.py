"""ct.mtf, ct.nps and ct.dose_verification: method choice, refusals, result contents."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from scanbench.analysis.ct.dose_verification import CtdiVerification
from scanbench.analysis.ct.mtf import CtMtf, mtf_from_circular_edge, mtf_from_point
from scanbench.analysis.ct.nps import CtNps, nps_2d
from scanbench.errors import AnalysisError, MissingTagError
from scanbench.simulate.ct import CtScannerModel, render_edge, render_water, render_wire

MODEL = CtScannerModel(noise_hu=5.0, mtf50_lp_per_cm=5.0)


def test_mtf_picks_the_method_and_carries_the_curve():
    wire, _ = render_wire(MODEL, pixel_mm=0.4, n_slices=2, noise=False)
    r = CtMtf().run(wire.to_series(MODEL))
    assert r.get("mtf50_lp_per_cm").labels == {"method": "point"}
    data = json.loads(json.dumps(r.to_dict()))["data"]["mtf"]
    assert len(data["frequency_per_mm"]) == len(data["mtf"]) and data["mtf"][0] == 1.0
    assert len(CtMtf().figures(r)) == 2
    edge, _ = render_edge(MODEL, pixel_mm=0.8, n_slices=2, noise=False)
    r2 = CtMtf().run(edge.to_series(MODEL))
    assert r2.get("mtf10_lp_per_cm").labels == {"method": "circular_edge"}


def test_mtf_refuses_a_plain_water_phantom():
    vol, _ = render_water(MODEL, pixel_mm=1.0, n_slices=1)
    with pytest.raises(AnalysisError, match="not an MTF phantom"):
        CtMtf().run(vol.to_series(MODEL))
    with pytest.raises(AnalysisError, match="method must be"):
        CtMtf().run(vol.to_series(MODEL), method="bars")


def test_mtf_functions_refuse_nonsense():
    with pytest.raises(AnalysisError):
        mtf_from_point(np.zeros((40, 40)), 0.5, (20, 20))
    with pytest.raises(AnalysisError, match="no contrast"):
        mtf_from_circular_edge(np.zeros((80, 80)), 0.5, (40, 40), 8.0)


def test_negative_contrast_edge_gives_the_same_mtf():
    air_rod, _ = render_edge(MODEL, pixel_mm=0.5, n_slices=1, noise=False, insert_hu=-900.0)
    r = CtMtf().run(air_rod.to_series(MODEL))
    assert r.get("mtf50_lp_per_cm").value == pytest.approx(5.0, rel=0.03)


def test_nps_result_and_refusal():
    vol, _ = render_water(MODEL, pixel_mm=0.8, n_slices=2, seed=2)
    r = CtNps().run(vol.to_series(MODEL))
    assert {m.name for m in r.measurements} == {
        "nps_peak_frequency_per_mm", "nps_mean_frequency_per_mm", "noise_hu"}
    assert r.data["nps"]["n_rois"] == r.parameters["n_rois"] >= 2
    with pytest.raises(AnalysisError, match="too small"):
        CtNps().run(vol.to_series(MODEL), roi_size_mm=250)
    with pytest.raises(AnalysisError, match="8 × 8"):
        nps_2d(np.zeros((1, 4, 4)), 1.0)


def _ct_series(**changes):
    m = dataclasses.replace(MODEL, **changes)
    vol, _ = render_water(m, pixel_mm=2.0, n_slices=1)
    return m, vol.to_series(m)


def test_dose_verification_arithmetic():
    m, s = _ct_series(pitch=1.5, ctdiw_per_100mas_mgy=8.0)
    # CTDIw 12 mGy from centre 9, periphery 13.5: CTDIvol = 12 / 1.5 = 8
    r = CtdiVerification().run(s, centre_mgy=9.0, periphery_mgy="13,14,13.5,13.5")
    assert r.get("ctdiw_mgy").value == pytest.approx(12.0)
    assert r.get("ctdivol_measured_mgy").value == pytest.approx(8.0)
    displayed = m.ctdivol_mgy  # 8 * 200/100 / 1.5
    assert r.get("ctdivol_displayed_mgy").value == pytest.approx(displayed)
    assert r.get("ctdivol_deviation_percent").value == pytest.approx(100 * (displayed / 8 - 1))
    # raw chamber readings over a 40 mm beam
    r2 = CtdiVerification().run(s, centre_mgycm=36.0, periphery_mgycm=54.0)
    assert r2.get("ctdivol_measured_mgy").value == pytest.approx(8.0)
    assert CtdiVerification().detect(s) == 0.0


def test_dose_verification_refusals():
    _m, s = _ct_series()
    with pytest.raises(AnalysisError, match="no chamber measurement"):
        CtdiVerification().run(s)
    with pytest.raises(AnalysisError, match="both"):
        CtdiVerification().run(s, centre_mgy=10)
    with pytest.raises(AnalysisError, match="16 cm phantom but the console"):
        CtdiVerification().run(s, centre_mgy=10, periphery_mgy=12, phantom_diameter_cm=16)
    with pytest.raises(AnalysisError, match="positive"):
        CtdiVerification().run(s, centre_mgy=-1, periphery_mgy=12)
    ct = dataclasses.replace(s.facts.ct, ctdivol_mgy=None)
    s.facts = dataclasses.replace(s.facts, ct=ct)
    with pytest.raises(MissingTagError, match="CTDIvol"):
        CtdiVerification().run(s, centre_mgy=10, periphery_mgy=12)


def test_edge_mtf_uses_only_the_slices_that_show_the_insert():
    # the host (and its rod) starts at z = 7 mm: slices at 0 and 5 mm are air
    vol, _ = render_edge(MODEL, pixel_mm=0.8, n_slices=4, noise=False,
                         shift_mm=(0.0, 0.0, 74.5))
    r = CtMtf().run(vol.to_series(MODEL))
    assert r.parameters["slices_used"] == 2
    assert r.get("mtf50_lp_per_cm").value == pytest.approx(5.0, rel=0.03)


def test_low_dose_water_is_still_a_water_phantom():
    from scanbench.analysis.ct.water import WaterPhantomQc

    noisy = dataclasses.replace(MODEL, noise_hu=60.0)
    vol, _ = render_water(noisy, pixel_mm=0.8, n_slices=2, seed=9)
    r = WaterPhantomQc().run(vol.to_series(noisy))
    assert r.get("noise_hu", slice="all").value == pytest.approx(60.0, rel=0.1)


def test_low_dose_water_is_recognised():
    from scanbench.analysis.registry import choose

    noisy = dataclasses.replace(MODEL, noise_hu=60.0)
    vol, _ = render_water(noisy, pixel_mm=0.8, n_slices=2, seed=9)
    assert choose(vol.to_series(noisy))[0].id == "ct.water"

"""NEMA NU 2-2018 raw-data analyses against the raw-mode virtual scanner's ground truth.

Must show (issue 6): sensitivity within 2 %, scatter fraction within 1 point, peak NECR
within 3 % and at the right activity, TOF FWHM within 5 ps for 150-400 ps systems. The
scanners are the shipped models with fewer views (and, for the long ones, coarser
planes) so the suite stays fast; the methods see the same physics.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from scanbench.rawdata.analysis import analyze_raw
from scanbench.simulate.pet_raw import (
    RAW_SCANNER_MODELS,
    simulate_count_rate,
    simulate_sensitivity,
    simulate_tof,
)


def _small(name: str, **kw: object) -> object:
    m = RAW_SCANNER_MODELS[name]
    small = {"n_views": 48, "n_bins": 160, "plane_mash": m.plane_mash * 2}
    small.update(kw)
    return dataclasses.replace(m, **small)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["virtual-pet", "long-afov-106"])
def test_sensitivity_within_2_percent(tmp_path: Path, name: str) -> None:
    truth = simulate_sensitivity(tmp_path / "s.h5", scanner=_small(name), seed=3)
    r = analyze_raw(tmp_path / "s.h5")
    assert r.analysis == "pet.nema_nu2_2018.sensitivity"
    for radius, s_true in truth["sensitivity_cps_per_kbq"].items():
        m = r.get("system_sensitivity_cps_per_kbq", radius_mm=float(radius))
        assert m.value == pytest.approx(s_true, rel=0.02), (radius, m.value, s_true)
        mu = r.get("aluminium_attenuation_coefficient_per_cm", radius_mm=float(radius))
        assert 0.2 < mu.value < 0.3  # aluminium at 511 keV, inflated by oblique paths
    assert r.parameters["line_length_mm"] == 700.0
    assert r.parameters["max_ring_difference"] == RAW_SCANNER_MODELS[name].max_ring_difference


@pytest.mark.parametrize("name,dead_time,length", [
    ("virtual-pet", "paralysable", 700.0),
    ("virtual-pet", "nonparalysable", 700.0),
    ("long-afov-106", "paralysable", 1400.0),
])
def test_count_rate_against_truth(tmp_path: Path, name: str, dead_time: str,
                                  length: float) -> None:
    model = _small(name, dead_time_model=dead_time)
    truth = simulate_count_rate(tmp_path / "c.h5", scanner=model, frames=12, frame_s=120.0,
                                gap_s=1800.0, phantom_length_mm=length,
                                start_activity_mbq=1100.0 * length / 700.0, seed=5)
    # the truth is over every plane; analyse every plane too (the 65 cm rule is separate)
    r = analyze_raw(tmp_path / "c.h5", params={"central_axial_mm": 0})
    peak = r.get("peak_necr_kcps").value
    assert peak == pytest.approx(truth["peak_necr_kcps"], rel=0.03)
    assert r.get("activity_at_peak_necr_kbq_ml").value == pytest.approx(
        truth["activity_at_peak_necr_kbq_ml"], rel=1e-6)
    k = truth["peak_necr_frame"]
    sf_true = truth["frames"][k]["scatter_fraction_percent"]
    assert r.get("scatter_fraction_percent", activity="peak_necr").value == pytest.approx(
        sf_true, abs=1.0)
    for i, f in enumerate(truth["frames"]):
        assert r.get("necr_kcps", frame=i).value == pytest.approx(f["necr_kcps"], rel=0.03)
        assert r.get("random_rate_kcps", frame=i).value == pytest.approx(f["randoms_kcps"],
                                                                         rel=0.02)
    assert r.parameters["phantom_length_mm"] == length
    assert ("long-AFOV" in r.parameters["convention"]) == (length != 700.0)


def test_central_65_cm_rule_for_long_afov(tmp_path: Path) -> None:
    """Over 65 cm AFOV only the central 65 cm of planes are analysed by default."""
    model = _small("long-afov-106")
    simulate_count_rate(tmp_path / "c.h5", scanner=model, frames=4, frame_s=60.0, seed=1)
    r = analyze_raw(tmp_path / "c.h5")
    assert r.parameters["central_axial_mm"] == 650.0
    lay = model.layout()  # type: ignore[attr-defined]
    assert r.parameters["planes_used"] < lay.n_planes


@pytest.mark.parametrize("name,fwhm", [("virtual-pet", 150.0), ("long-afov-106", 228.0),
                                       ("virtual-pet", 400.0)])
def test_tof_fwhm_within_5_ps(tmp_path: Path, name: str, fwhm: float) -> None:
    model = dataclasses.replace(RAW_SCANNER_MODELS[name], tof_fwhm_ps=fwhm)
    truth = simulate_tof(tmp_path / "t.h5", scanner=model, events_per_frame=250_000,
                         activities_mbq=(30.0, 400.0), seed=2)
    r = analyze_raw(tmp_path / "t.h5")
    for i, level in enumerate(truth["levels"]):
        m = r.get("tof_resolution_ps", frame=i)
        assert m.value == pytest.approx(level["tof_fwhm_ps"], abs=5.0), (i, m.value, level)

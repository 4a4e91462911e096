"""The raw-data analyses on small virtual acquisitions: choice of analysis, the NEMA
band method on a known profile, bad input named, vendor claims scored."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np
import pytest

from scanbench.analysis.pet.count_rate import band_split
from scanbench.api import analyze_paths
from scanbench.errors import AnalysisError, InputError
from scanbench.rawdata import read_raw
from scanbench.rawdata.analysis import analyze_raw, choose_raw
from scanbench.simulate.pet_raw import (
    RAW_SCANNER_MODELS,
    simulate_count_rate,
    simulate_sensitivity,
    simulate_tof,
)

SMALL = dataclasses.replace(RAW_SCANNER_MODELS["analog-pmt"], n_views=32, n_bins=140)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("raw")
    simulate_sensitivity(d / "s.h5", scanner=SMALL, seed=1)
    simulate_count_rate(d / "c.h5", scanner=SMALL, frames=5, frame_s=30.0, seed=1)
    simulate_tof(d / "t.h5", scanner=SMALL, events_per_frame=40_000, activities_mbq=(30.0,))
    return {"s": d / "s.h5", "c": d / "c.h5", "t": d / "t.h5"}


def test_each_file_finds_its_analysis(files: dict[str, Path]) -> None:
    ids = {k: choose_raw(read_raw(p)).id for k, p in files.items()}
    assert ids == {"s": "pet.nema_nu2_2018.sensitivity", "c": "pet.nema_nu2_2018.count_rate",
                   "t": "pet.nema_nu2_2018.tof_resolution"}


def test_purpose_missing_still_chosen_by_content(tmp_path: Path, files: dict[str, Path]) -> None:
    p = tmp_path / "s.h5"
    p.write_bytes(files["s"].read_bytes())
    with h5py.File(p, "a") as h:
        del h.attrs["purpose"]
    assert choose_raw(read_raw(p)).id == "pet.nema_nu2_2018.sensitivity"


def test_band_method_on_a_known_profile() -> None:
    """A flat background of 10 per 2 mm bin plus a peak of 1000 inside the band: the band
    method gives the background exactly (linear interpolation of a flat line)."""
    prof = np.full((1, 101), 10.0)
    prof[0, 49:52] += [250.0, 500.0, 250.0]
    c_tot, c_rs = band_split(prof, 2.0)
    assert c_tot[0] == pytest.approx(1010 + 1000)
    assert c_rs[0] == pytest.approx(1010)


def test_missing_delayed_is_named(tmp_path: Path, files: dict[str, Path]) -> None:
    for key, message in (("s", "no delayed sinogram"), ("c", "missing delayed sinogram")):
        p = tmp_path / f"{key}.h5"
        p.write_bytes(files[key].read_bytes())
        with h5py.File(p, "a") as h:
            for name in h["frames"]:
                if "delayed" in h["frames"][name]:
                    del h["frames"][name]["delayed"]
        with pytest.raises(InputError, match=message):
            analyze_raw(p)


def test_missing_activity_and_wrong_analysis(tmp_path: Path, files: dict[str, Path]) -> None:
    p = tmp_path / "s.h5"
    p.write_bytes(files["s"].read_bytes())
    with h5py.File(p, "a") as h:
        del h["phantom"].attrs["activity_bq"]
    with pytest.raises(AnalysisError, match="activity_bq"):
        analyze_raw(p)
    r = analyze_raw(p, params={"activity_bq": 5e6})  # given by hand, it runs
    assert r.get("system_sensitivity_cps_per_kbq", radius_mm=0.0).value > 0
    with pytest.raises(AnalysisError, match="not PET raw data"):
        analyze_raw(files["c"], "pet.nema_nu2_2018.image_quality")
    with pytest.raises(AnalysisError, match="line source"):
        analyze_raw(files["t"], params={"line_mm": "600,600"})


def test_vendor_claim_scores_the_named_model(tmp_path: Path) -> None:
    umi = dataclasses.replace(SMALL, manufacturer="UIH", model="uMI 550")
    simulate_sensitivity(tmp_path / "s.h5", scanner=umi, seed=2)
    rep = analyze_paths([tmp_path / "s.h5"], spec="nema-nu2-2018")
    m = rep.results[0].get("system_sensitivity_cps_per_kbq", radius_mm=0.0)
    assert m.limits is not None and m.limits.low == 10.24
    assert m.status == ("pass" if m.value >= 10.24 else "fail")


def test_figures(files: dict[str, Path]) -> None:
    from scanbench.analysis.registry import get

    for key in files:
        r = analyze_raw(files[key])
        assert get(r.analysis).figures(r)


def test_too_much_activity_for_the_sensitivity_test_is_said(tmp_path: Path) -> None:
    simulate_sensitivity(tmp_path / "hot.h5", scanner=SMALL, activity_mbq=150.0,
                         sleeves=(5, 1), radii_mm=(0.0,), seed=3)
    r = analyze_raw(tmp_path / "hot.h5")
    assert any("count losses above 1 %" in w for w in r.warnings)


def test_sensitivity_never_rests_silently_on_assumed_values(tmp_path: Path,
                                                            files: dict[str, Path]) -> None:
    """Issue 11, no silent defaults: without a background frame and without
    intrinsic_cps the Lu-176 rate is taken as 0, so the sensitivities are not judged;
    without the sleeves' wall thickness the aluminium coefficient assumes 1.25 mm and
    is not judged. Given or read from the file, both are judged as before."""
    r = analyze_raw(files["s"])  # background frame and sleeve_wall_mm in the file
    assert r.get("system_sensitivity_cps_per_kbq", radius_mm=0.0).status == "info"
    assert r.get("aluminium_attenuation_coefficient_per_cm", radius_mm=0.0).status == "info"
    p = tmp_path / "s.h5"
    p.write_bytes(files["s"].read_bytes())
    with h5py.File(p, "a") as h:
        for name in list(h["frames"]):
            if h["frames"][name].attrs.get("role") == "background":
                del h["frames"][name]
            else:
                del h["frames"][name].attrs["sleeve_wall_mm"]
    bare = analyze_raw(p)
    for name in ("system_sensitivity_cps_per_kbq", "peak_slice_sensitivity_cps_per_kbq"):
        m = bare.get(name, radius_mm=0.0)
        assert m.status == "not_judged" and m.note and "--param intrinsic_cps=" in m.note
    mu = bare.get("aluminium_attenuation_coefficient_per_cm", radius_mm=0.0)
    assert mu.status == "not_judged" and mu.note and "--param sleeve_wall_mm=" in mu.note
    given = analyze_raw(p, params={"intrinsic_cps": 0, "sleeve_wall_mm": 1.25})
    assert {m.status for m in given.measurements} == {"info"}
    # the wall thickness does not move the sensitivity (extrapolated to no wall)
    assert given.get("system_sensitivity_cps_per_kbq", radius_mm=0.0).value == pytest.approx(
        bare.get("system_sensitivity_cps_per_kbq", radius_mm=0.0).value, rel=1e-9)


def test_count_rate_without_intrinsic_rate_does_not_judge_scatter(
        tmp_path: Path, files: dict[str, Path]) -> None:
    """Without a background frame or intrinsic_cps the Lu-176 rate is counted as scatter:
    the scatter, NECR and scatter-fraction values are not judged (issue 11); the true
    rate does not rest on it and stays judged."""
    p = tmp_path / "c.h5"
    p.write_bytes(files["c"].read_bytes())
    with h5py.File(p, "a") as h:
        for name in list(h["frames"]):
            if h["frames"][name].attrs.get("role") == "background":
                del h["frames"][name]
    bare = analyze_raw(p)
    for name in ("peak_necr_kcps", "activity_at_peak_necr_kbq_ml"):
        m = bare.get(name)
        assert m.status == "not_judged" and m.note and "--param intrinsic_cps=" in m.note
    assert {m.status for m in bare.measurements if m.name == "scatter_fraction_percent"} == \
        {"not_judged"}
    assert bare.get("peak_true_rate_kcps").status == "info"
    given = analyze_raw(p, params={"intrinsic_cps": 0})
    assert {m.status for m in given.measurements} == {"info"}

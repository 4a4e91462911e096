"""Calibration QC (EARL) and uniformity of a uniform cylinder, on volumes built here."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import numpy as np
import pytest

from scanbench.analysis.pet.calibration_uniformity import (
    CalibrationUniformity,
    expected_concentration,
    find_cylinder,
)
from scanbench.dicom.pet import Reference, frame_average_factor, reference_instant
from scanbench.errors import AnalysisError, MissingTagError
from scanbench.types import PetFacts, Series, SeriesFacts

T_HALF = 6586.2  # s, F-18
CAL = dt.datetime(2024, 5, 2, 8, 0, 0)
SERIES = CAL + dt.timedelta(seconds=T_HALF)  # exactly one half-life later
PET = PetFacts(units="BQML", decay_correction="START", corrected_image=("ATTN", "DECY"),
               series_datetime=SERIES, acquisition_start=SERIES, frame_duration_s=600.0,
               injected_activity_bq=100e6, injection_datetime=CAL, half_life_s=T_HALF,
               patient_weight_kg=5.0)
VOLUME_ML = 5000.0


def cylinder_series(value: float | np.ndarray = 10_000.0, *, pet: PetFacts = PET,
                    radius_mm: float = 100.0, length_mm: float = 150.0,
                    centre_xy: tuple[float, float] = (6.0, -4.0), shape=(70, 80, 80),
                    spacing=(3.0, 4.0, 4.0), noise_sd: float = 0.0, seed: int = 0) -> Series:
    """A cylinder along z with voxel-area partial volume at the rim (16× sub-sampling)."""
    nz, ny, nx = shape
    dz, dy, dx = spacing
    x0, y0, z0 = -(nx - 1) / 2 * dx, -(ny - 1) / 2 * dy, -(nz - 1) / 2 * dz
    x = x0 + np.arange(nx) * dx
    y = y0 + np.arange(ny) * dy
    z = z0 + np.arange(nz) * dz
    sub = (np.arange(16) + 0.5) / 16 - 0.5
    xs = (x[:, None] + sub[None, :] * dx).ravel()
    ys = (y[:, None] + sub[None, :] * dy).ravel()
    inside = ((xs[None, :] - centre_xy[0]) ** 2 + (ys[:, None] - centre_xy[1]) ** 2
              <= radius_mm**2)
    frac_xy = inside.reshape(ny, 16, nx, 16).mean(axis=(1, 3))
    top = np.minimum(z + dz / 2, length_mm / 2)
    frac_z = np.clip(top - np.maximum(z - dz / 2, -length_mm / 2), 0, dz) / dz
    v = np.asarray(value, dtype=float).reshape(-1, 1, 1) * frac_z[:, None, None] * frac_xy[None]
    if noise_sd:
        v = v + np.random.default_rng(seed).normal(0.0, noise_sd, v.shape) * (v > 0)
    affine = np.array([[0, 0, dx, x0], [0, dy, 0, y0], [dz, 0, 0, z0], [0, 0, 0, 1.0]])
    return Series(v.astype(np.float32), spacing, affine, SeriesFacts(modality="PT", pet=pet))


# --------------------------------------------------------------------------- decay arithmetic


def test_start_reference_decays_the_calibration_activity_to_the_series_time() -> None:
    ref = reference_instant(PET)
    assert ref.mode == "START" and ref.instant == SERIES
    # one half-life: 100 MBq / 5000 mL / 2
    assert expected_concentration(100e6, VOLUME_ML, CAL, ref, T_HALF) == pytest.approx(10_000.0)


def test_start_reference_uses_an_earlier_acquisition_time() -> None:
    # QIBA App. G: a post-processed series can carry a later series time.
    pet = dataclasses.replace(PET, series_datetime=SERIES + dt.timedelta(hours=1))
    assert reference_instant(pet).instant == SERIES


def test_admin_reference_is_the_injection_time() -> None:
    pet = dataclasses.replace(PET, decay_correction="ADMIN")
    ref = reference_instant(pet)
    assert ref.instant == CAL
    assert expected_concentration(100e6, VOLUME_ML, CAL, ref, T_HALF) == pytest.approx(20_000.0)
    # calibrated two half-lives before the injection: a quarter left at injection
    early = CAL - dt.timedelta(seconds=2 * T_HALF)
    assert expected_concentration(100e6, VOLUME_ML, early, ref, T_HALF) == pytest.approx(5_000.0)


def test_none_reference_is_the_frame_average_from_the_acquisition_start() -> None:
    pet = dataclasses.replace(PET, decay_correction="NONE")
    ref = reference_instant(pet)
    assert ref.instant == SERIES and ref.frame_duration_s == 600.0
    lam_t = math.log(2) / T_HALF * 600.0  # 0.0631446: factor 1 − x/2 + x²/6 − … = 0.969081
    by_hand = 10_000.0 * (1 - math.exp(-lam_t)) / lam_t
    assert by_hand == pytest.approx(9_690.81, abs=0.01)
    assert expected_concentration(100e6, VOLUME_ML, CAL, ref, T_HALF) == pytest.approx(by_hand)
    assert frame_average_factor(T_HALF, 0.0) == 1.0


def test_reference_needs_its_tags() -> None:
    with pytest.raises(MissingTagError, match=r"DecayCorrection \(0054,1102\)"):
        reference_instant(dataclasses.replace(PET, decay_correction=None))
    with pytest.raises(MissingTagError, match=r"\(0008,0031\)"):
        reference_instant(dataclasses.replace(PET, series_datetime=None, acquisition_start=None))
    with pytest.raises(MissingTagError, match=r"RadiopharmaceuticalStartDateTime \(0018,1078\)"):
        reference_instant(dataclasses.replace(PET, decay_correction="ADMIN",
                                              injection_datetime=None))
    with pytest.raises(MissingTagError, match=r"ActualFrameDuration \(0018,1242\)"):
        reference_instant(dataclasses.replace(PET, decay_correction="NONE",
                                              frame_duration_s=None))
    with pytest.raises(AnalysisError, match="not START, ADMIN or NONE"):
        reference_instant(dataclasses.replace(PET, decay_correction="WEIRD"))


# --------------------------------------------------------------------------- the analysis


@pytest.mark.parametrize(("mode", "truth"), [("START", 10_000.0), ("ADMIN", 20_000.0),
                                             ("NONE", 10_000.0 * 0.969081)])
@pytest.mark.parametrize("bias", [0.0, 4.0, -7.5])
def test_bias_is_found_for_every_decay_mode(mode: str, truth: float, bias: float) -> None:
    pet = dataclasses.replace(PET, decay_correction=mode)
    series = cylinder_series(truth * (1 + bias / 100), pet=pet)
    result = CalibrationUniformity().run(series, volume_ml=VOLUME_ML)
    assert result.get("activity_concentration_bias_percent").value == pytest.approx(bias, abs=0.01)
    assert result.get("activity_concentration_bq_ml").value == pytest.approx(
        truth * (1 + bias / 100), rel=1e-6)
    assert result.get("activity_concentration_bq_ml").unit == "Bq/mL"
    assert result.parameters["decay_reference"] == mode
    assert result.parameters["activity_source"] == "RadionuclideTotalDose (0018,1074)"


def test_parameters_override_the_header() -> None:
    # 50 MBq calibrated one half-life before the series: 50e6 / 5000 / 2 = 5000 Bq/mL.
    series = cylinder_series(5_000.0)
    result = CalibrationUniformity().run(series, volume_ml=VOLUME_ML, activity_bq=50e6,
                                         calibration_time=CAL.isoformat())
    assert result.get("activity_concentration_bias_percent").value == pytest.approx(0.0, abs=0.01)
    assert result.parameters["activity_source"] == "parameter activity_bq"
    assert result.parameters["calibration_time_source"] == "parameter calibration_time"
    # an aware calibration time against a naive header is read on the header's clock
    aware = CAL.replace(tzinfo=dt.timezone(dt.timedelta(hours=2))).isoformat()
    again = CalibrationUniformity().run(series, volume_ml=VOLUME_ML, activity_bq=50e6,
                                        calibration_time=aware)
    assert again.get("activity_concentration_bias_percent").value == pytest.approx(0.0, abs=0.01)
    with pytest.raises(AnalysisError, match="ISO date-time"):
        CalibrationUniformity().run(series, volume_ml=VOLUME_ML, calibration_time="yesterday")


def test_suv_mean_uses_the_body_weight_scale() -> None:
    # SUV = C × W / A_decayed = 10000 Bq/mL × 5000 g / 50e6 Bq = 1.0
    result = CalibrationUniformity().run(cylinder_series(10_000.0), volume_ml=VOLUME_ML)
    assert result.get("suv_mean").value == pytest.approx(1.0, rel=1e-6)
    assert result.get("suv_mean").unit == "g/mL"


def test_missing_weight_gives_a_warning_naming_the_tag_not_an_error() -> None:
    series = cylinder_series(pet=dataclasses.replace(PET, patient_weight_kg=None))
    result = CalibrationUniformity().run(series, volume_ml=VOLUME_ML)
    assert not [m for m in result.measurements if m.name == "suv_mean"]
    assert any("PatientWeight (0010,1030)" in w for w in result.warnings)
    assert result.get("activity_concentration_bias_percent").value == pytest.approx(0, abs=0.01)


@pytest.mark.parametrize(("change", "tag"), [
    ({"half_life_s": None}, r"RadionuclideHalfLife \(0018,1075\)"),
    ({"injected_activity_bq": None}, r"RadionuclideTotalDose \(0018,1074\)"),
    ({"injection_datetime": None}, r"RadiopharmaceuticalStartDateTime \(0018,1078\)"),
    ({"decay_correction": None}, r"DecayCorrection \(0054,1102\)"),
    ({"units": None}, r"Units \(0054,1001\)"),
])
def test_missing_tags_raise_naming_the_tag(change: dict, tag: str) -> None:
    series = cylinder_series(pet=dataclasses.replace(PET, **change))
    with pytest.raises(MissingTagError, match=tag):
        CalibrationUniformity().run(series, volume_ml=VOLUME_ML)


def test_params_stand_in_for_missing_tags() -> None:
    pet = dataclasses.replace(PET, half_life_s=None, injected_activity_bq=None,
                              injection_datetime=None)
    result = CalibrationUniformity().run(
        cylinder_series(pet=pet), volume_ml=VOLUME_ML, half_life_s=T_HALF, activity_bq=100e6,
        calibration_time=CAL.isoformat())
    assert result.get("activity_concentration_bias_percent").value == pytest.approx(0, abs=0.01)
    assert result.parameters["half_life_source"] == "parameter half_life_s"


def test_without_volume_there_is_no_bias_but_a_warning() -> None:
    result = CalibrationUniformity().run(cylinder_series())
    assert not [m for m in result.measurements if "bias" in m.name]
    assert any("volume_ml" in w for w in result.warnings)


def test_wrong_units_are_refused() -> None:
    series = cylinder_series(pet=dataclasses.replace(PET, units="CNTS"))
    with pytest.raises(AnalysisError, match="BQML"):
        CalibrationUniformity().run(series, volume_ml=VOLUME_ML)


def test_geometry_is_recovered() -> None:
    series = cylinder_series(radius_mm=95.0, length_mm=162.0, centre_xy=(-13.0, 9.0))
    cyl = find_cylinder(series.voxels, series.spacing)
    assert cyl.radius_mm == pytest.approx(95.0, abs=0.5)
    assert cyl.length_mm(3.0) == pytest.approx(162.0, abs=0.5)
    centre_xyz = series.index_to_patient((35.0, *cyl.centre_yx[35]))
    assert centre_xyz[:2] == pytest.approx([-13.0, 9.0], abs=0.2)
    assert cyl.truncated == (False, False)
    result = CalibrationUniformity().run(series, volume_ml=VOLUME_ML)
    assert result.parameters["voi_radius_mm"] == pytest.approx(0.75 * 95.0, abs=0.4)
    assert result.parameters["voi_length_mm"] == pytest.approx(0.75 * 162.0, abs=0.4)


def test_axial_nonuniformity_by_hand() -> None:
    # One slice in the central range 5 % hot: the slice means are n−1 times 1 and
    # once 1.05, so max |m − m̄| / m̄ = (1.05 − m̄) / m̄ with m̄ = (n − 1 + 1.05) / n.
    values = np.full(70, 10_000.0)
    values[37] *= 1.05
    result = CalibrationUniformity().run(cylinder_series(values), volume_ml=VOLUME_ML)
    n = result.parameters["central_slices"]
    # 150 mm × 0.75 = 112.5 mm of 3 mm slices centred on the cylinder: 37 or 38 centres
    assert n in (37, 38)
    mbar = (n - 1 + 1.05) / n
    assert result.get("axial_nonuniformity_percent").value == pytest.approx(
        100 * (1.05 - mbar) / mbar, rel=1e-5)
    assert result.get("transverse_cv_percent").value == pytest.approx(0.0, abs=1e-4)


def test_noise_figures_match_white_noise_statistics() -> None:
    # White noise of SD σ: voxel CV = σ / C; the mean of an n×n ROI has SD σ / n.
    sd, c = 800.0, 10_000.0
    series = cylinder_series(c, noise_sd=sd, seed=3)
    result = CalibrationUniformity().run(series, volume_ml=VOLUME_ML)
    n = round(result.parameters["grid_roi_side_mm"] / 4.0)
    assert n == 2  # 10 mm / 4 mm pixels, rounded
    assert result.get("voxel_cv_percent").value == pytest.approx(100 * sd / c, rel=0.03)
    assert result.get("transverse_cv_percent").value == pytest.approx(100 * sd / n / c, rel=0.05)
    assert result.get("activity_concentration_bias_percent").value == pytest.approx(0, abs=0.1)


def test_truncated_cylinder_is_measured_over_the_imaged_range_with_a_warning() -> None:
    series = cylinder_series(length_mm=400.0)  # longer than the 210 mm imaged
    result = CalibrationUniformity().run(series, volume_ml=VOLUME_ML)
    assert sum("reaches the" in w for w in result.warnings) == 2
    assert result.parameters["cylinder_truncated"] == [True, True]
    assert result.get("activity_concentration_bias_percent").value == pytest.approx(0, abs=0.01)


def _points_series() -> Series:
    v = np.zeros((40, 80, 80), np.float32)
    for j, i in ((20, 20), (40, 40), (60, 50)):
        v[20, j, i] = 1e5
        v[20, j - 1:j + 2, i - 1:i + 2] += 2e4
    return Series(v, (2.0, 2.0, 2.0), np.diag([2.0, 2.0, 2.0, 1.0]),
                  SeriesFacts(modality="PT", pet=PET))


def _iec_like_series() -> Series:
    # A D-shaped body (flat bottom) with a cold 50 mm lung insert and hot spheres.
    nz, ny, nx = 40, 100, 100
    y, x = np.mgrid[:ny, :nx] * 3.0 - 150.0
    body = ((x**2 + (y + 20) ** 2 <= 140**2) & (y <= 60.0)) | (
        (np.abs(x) <= 140) & (y > 0) & (y <= 60.0))
    body &= np.abs(x) <= 147
    img = np.where(body, 5000.0, 0.0)
    img[x**2 + y**2 <= 25**2] = 0.0
    for ang in range(0, 360, 60):
        cx, cy = 57 * math.cos(math.radians(ang)), 57 * math.sin(math.radians(ang))
        img[(x - cx) ** 2 + (y - cy) ** 2 <= 10**2] = 20000.0
    v = np.repeat(img[None], nz, axis=0).astype(np.float32)
    v[:5] = 0
    v[-5:] = 0
    return Series(v, (3.0, 3.0, 3.0), np.diag([3.0, 3.0, 3.0, 1.0]),
                  SeriesFacts(modality="PT", pet=PET))


def test_points_and_iec_are_refused_and_scored_low() -> None:
    analysis = CalibrationUniformity()
    assert analysis.detect(cylinder_series(noise_sd=500.0)) >= 0.9
    for series, why in ((_points_series(), "not a uniform cylinder"),
                        (_iec_like_series(), "not a uniform cylinder")):
        assert analysis.detect(series) < 0.2
        with pytest.raises(AnalysisError, match=why):
            analysis.run(series, volume_ml=VOLUME_ML)


def test_figures_and_evidence() -> None:
    analysis = CalibrationUniformity()
    result = analysis.run(cylinder_series(noise_sd=300.0), volume_ml=VOLUME_ML)
    figs = analysis.figures(result)
    assert len(figs) == 2
    assert "VOI" in figs[0].layout.title.text
    ev = result.evidence
    assert np.isfinite(ev["slice_means"][ev["central"]]).all()
    assert "evidence" not in result.to_dict()


def test_reference_dataclass_is_what_run_records() -> None:
    ref = Reference(SERIES, "START", "x")
    result = CalibrationUniformity().run(cylinder_series(), volume_ml=VOLUME_ML)
    assert result.parameters["decay_reference_time"] == ref.instant.isoformat()

"""The virtual PET scanner's images agree with its own ground truth and with physics."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
from scipy.interpolate import CubicSpline

from scanbench.analysis.roi import circle_mean
from scanbench.phantoms import nema_iq
from scanbench.simulate.pet import (
    F18_HALF_LIFE_S,
    ScannerModel,
    _ball_fraction,
    _Grid,
    render_iq,
    render_point,
    render_uniform,
)

LAMBDA_PER_S = math.log(2) / F18_HALF_LIFE_S


@pytest.fixture(scope="module")
def iq_noiseless():
    return render_iq(noise=False, shift_mm=(12.0, -7.0, 3.3), rotation_deg=17.0,
                     cold_spheres=(37.0,))


def _roi_mean(series, xyz, radius_mm):
    k, j, i = series.patient_to_index(xyz)
    k = round(k)
    return circle_mean(series.voxels[k], (j, i), radius_mm, series.spacing[1:])


def test_noiseless_background_equals_the_fill(iq_noiseless):
    series, truth = iq_noiseless
    # A 37 mm ROI 85 mm anterior of the ring centre (phantom frame) and 20 mm off the
    # sphere plane: 8.5 mm (7 PSF sigmas) from the curved wall 112 mm away, clear of spheres.
    t = math.radians(truth["rotation_deg"])
    cx, cy, cz = truth["phantom_centre_lps_mm"]
    far = (cx + 85 * math.sin(t), cy - 85 * math.cos(t), cz + 20.0)
    assert _roi_mean(series, far, 18.5) == pytest.approx(truth["background_bq_ml"], rel=1e-4)
    assert truth["background_bq_ml"] == 5300.0
    assert truth["sphere_bq_ml"] == pytest.approx(4 * 5300.0)


def test_image_holds_the_true_total_activity(iq_noiseless):
    series, truth = iq_noiseless
    voxel_ml = np.prod(series.spacing) / 1000
    total = float(series.voxels.astype(np.float64).sum()) * voxel_ml
    assert total == pytest.approx(truth["total_activity_bq"], rel=2e-3)
    # The header's injected activity decays to the same total at the scan start.
    injected = series.facts.pet.injected_activity_bq
    assert injected * math.exp(-LAMBDA_PER_S * 1800) == pytest.approx(total, rel=2e-3)


def test_spheres_sit_where_the_truth_says(iq_noiseless):
    series, truth = iq_noiseless
    vox = series.voxels.astype(np.float64)
    for sphere in truth["spheres"]:
        c = np.array(sphere["centre_lps_mm"])
        kji = np.round(series.patient_to_index(c)).astype(int)
        half = np.ceil((sphere["inner_radius_mm"] + 6) / np.array(series.spacing)).astype(int)
        sl = tuple(slice(a - h, a + h + 1) for a, h in zip(kji, half, strict=True))
        excess = np.abs(vox[sl] - truth["background_bq_ml"])
        kk, jj, ii = np.meshgrid(*(np.arange(s.start, s.stop) for s in sl), indexing="ij")
        idx = np.stack([kk, jj, ii], -1).reshape(-1, 3)
        centroid = series.index_to_patient(
            (idx * excess.reshape(-1, 1)).sum(0) / excess.sum())
        assert np.linalg.norm(centroid - c) < 0.5, sphere["diameter_mm"]
    assert truth["sphere_plane_z_mm"] == pytest.approx(3.3)
    z_plane = series.index_to_patient((truth["sphere_plane_slice_index"], 0, 0))[2]
    assert abs(z_plane - 3.3) <= series.spacing[0] / 2
    assert truth["sphere_plane_offset_from_slice_centre_mm"] != pytest.approx(0.0, abs=0.05)


def test_percent_contrast_truth_is_the_nema_measurement(iq_noiseless):
    series, truth = iq_noiseless
    pc = truth["percent_contrast_noiseless"]
    hot = [pc[f"{d:g}"] for d in nema_iq.SPHERE_DIAMETERS_MM[:-1]]
    assert all(a < b for a, b in itertools.pairwise(hot))  # grows with size
    assert 40 < hot[0] < 80 and 80 < hot[-1] < 100
    for sphere in truth["spheres"]:
        c_h = _roi_mean(series, sphere["centre_lps_mm"], sphere["inner_radius_mm"])
        c_b = truth["background_bq_ml"]
        expected = (100 * (c_h / c_b - 1) / 3) if sphere["hot"] else 100 * (1 - c_h / c_b)
        assert pc[f"{sphere['diameter_mm']:g}"] == pytest.approx(expected, rel=1e-9)
    cold = next(s for s in truth["spheres"] if s["diameter_mm"] == 37.0)
    assert not cold["hot"] and cold["concentration_bq_ml"] == 0.0
    assert 80 < pc["37"] < 100
    assert 0 <= truth["lung_residual_percent_noiseless"] < 3


def test_sharp_scanner_recovers_full_contrast():
    sharp = ScannerModel(fwhm_mm=(0.3, 0.3, 0.3), radial_growth_mm=0.0)
    _, truth = render_iq(scanner=sharp, noise=False, voxel_mm=2.0)
    assert truth["percent_contrast_noiseless"]["37"] > 95
    assert truth["recovery_coefficient_noiseless"]["37"] > 0.95


def test_cold_glass_wall_and_sphere_volume_are_integrated():
    grid = _Grid((40, 40, 40), (1.0, 1.0, 1.0), (-19.5, -19.5, -19.5))
    for radius in (5.0, 6.0, 18.5):
        _box, frac = _ball_fraction(np.array([0.3, -0.2, 0.1]), radius, grid)
        assert frac.sum() * 1e-3 == pytest.approx(4 / 3 * math.pi * radius**3 / 1000, rel=3e-3)
        assert np.all((frac >= 0) & (frac <= 1))
    # The 1 mm glass wall: activity = outer ball − inner ball volume is missing.
    _, inner = _ball_fraction(np.zeros(3), 5.0, grid)
    _, outer = _ball_fraction(np.zeros(3), 6.0, grid)
    assert (outer.sum() - inner.sum()) * 1e-3 == pytest.approx(
        4 / 3 * math.pi * (6**3 - 5**3) / 1000, rel=1e-2)


def test_background_variability_is_calibrated():
    """Background ROIs on the NU 2-2018 7.4 slices (sphere plane, ±10, ±20 mm) at the
    default scan: six non-overlapping places per slice, each at least 8 mm clear of the
    phantom wall, the lung insert and every sphere (checked with phantoms.nema_iq)."""
    series, truth = render_iq(seed=3)
    z0 = series.affine[2, 3]
    centres = [(-110, 0), (110, 0), (-80, 55), (80, 55), (0, 80), (0, -80)]
    bv = {}
    for d in (10.0, 37.0):
        values = []
        for off in (-20, -10, 0, 10, 20):
            k = int(np.argmin(np.abs(z0 + np.arange(series.shape[0]) * series.spacing[0] - off)))
            values += [_roi_mean(series, (x, y, series.index_to_patient((k, 0, 0))[2]), d / 2)
                       for x, y in centres]
        bv[d] = 100 * np.std(values, ddof=1) / np.mean(values)
    assert 1.5 < bv[37.0] < 4.5
    assert 5.0 < bv[10.0] < 12.0
    assert np.mean(values) == pytest.approx(truth["background_bq_ml"], rel=0.02)


def test_noise_scales_as_one_over_sqrt_duration():
    sds = {}
    for duration in (75.0, 1200.0):
        series, truth = render_uniform(duration_s=duration, seed=int(duration), voxel_mm=4.0)
        k = series.patient_to_index((0, 0, 0))[0]
        block = series.voxels[round(k) - 8:round(k) + 8, 60:90, 60:90]
        assert block.mean() == pytest.approx(truth["concentration_bq_ml"], rel=0.02)
        sds[duration] = block.std() / block.mean()
    frames = {t: -math.expm1(-LAMBDA_PER_S * t) for t in sds}  # counts ∝ decayed duration
    expected = math.sqrt(frames[1200.0] / frames[75.0])
    assert sds[75.0] / sds[1200.0] == pytest.approx(expected, rel=0.08)


@pytest.mark.parametrize("reference", ["ADMIN", "NONE"])
def test_decay_reference_scales_the_voxels(reference):
    start, t_start = render_uniform(noise=False, voxel_mm=4.0, duration_s=900.0)
    other, t_other = render_uniform(noise=False, voxel_mm=4.0, duration_s=900.0,
                                    decay_correction=reference)
    if reference == "ADMIN":
        factor = math.exp(LAMBDA_PER_S * 3600.0)
    else:
        factor = -math.expm1(-LAMBDA_PER_S * 900.0) / (LAMBDA_PER_S * 900.0)
    np.testing.assert_allclose(other.voxels, start.voxels * factor, rtol=1e-5, atol=1e-3)
    assert t_other["concentration_bq_ml"] == pytest.approx(
        t_start["concentration_bq_ml"] * factor)
    assert other.facts.pet.decay_correction == reference


def test_uniform_truth_follows_from_the_header():
    series, truth = render_uniform(noise=False)
    pet = series.facts.pet
    elapsed = (pet.series_datetime - pet.injection_datetime).total_seconds()
    expected = pet.injected_activity_bq * 2 ** (-elapsed / pet.half_life_s) / truth["volume_ml"]
    assert truth["concentration_bq_ml"] == pytest.approx(expected, rel=1e-9)
    centre = series.patient_to_index((0, 0, 0)).round().astype(int)
    assert series.voxels[tuple(centre)] == pytest.approx(expected, rel=1e-4)
    suv = series.voxels[tuple(centre)] * pet.patient_weight_kg * 1000 / (
        pet.injected_activity_bq * 2 ** (-elapsed / pet.half_life_s))
    assert suv == pytest.approx(truth["expected_suv"], rel=1e-3)
    assert truth["expected_suv"] == pytest.approx(1.0, abs=1e-3)


def test_calibration_bias_scales_the_image_not_the_truth():
    biased = ScannerModel(calibration_bias_percent=-7.0)
    series, truth = render_uniform(scanner=biased, noise=False)
    centre = tuple(series.patient_to_index((0, 0, 0)).round().astype(int))
    assert series.voxels[centre] == pytest.approx(0.93 * truth["concentration_bq_ml"], rel=1e-4)
    assert truth["expected_image_bq_ml"] == pytest.approx(0.93 * truth["concentration_bq_ml"])


def test_resolution_grows_with_radius():
    scanner = ScannerModel()
    r0, t0, a0 = scanner.fwhm_at(0.0)
    r20, t20, a20 = scanner.fwhm_at(200.0)
    assert (r0, t0, a0) == pytest.approx(scanner.fwhm_mm)
    assert r20 > t20 > t0 and r20 - r0 > 2 * (t20 - t0)
    assert a20 == pytest.approx(a0)
    with pytest.raises(ValueError, match="outside"):
        scanner.fwhm_at(390.0)


def _marginal_fwhm(profile: np.ndarray, step_mm: float) -> float:
    """FWHM of a sampled profile from a cubic spline through the samples (0.01 mm)."""
    t = np.arange(profile.size) * step_mm
    fine = np.arange(0, t[-1], 0.01)
    values = CubicSpline(t, profile)(fine)
    above = fine[values >= values.max() / 2]
    return float(above[-1] - above[0])


def test_point_fwhm_truth_matches_a_high_resolution_measurement():
    """Sources on the y and x axes: the PSF is aligned with the grid, so the image is
    separable and the summed (line-spread) profile samples the true profile exactly."""
    positions = [(0.0, -100.0, 0.0), (150.0, 0.0, 10.0)]
    series, truth = render_point(positions_mm=positions, voxel_mm=0.4, noise=False,
                                 matrix=820, axial_margin_mm=8.0, source_extent_mm=1.0)
    vox = series.voxels.astype(np.float64)
    dz, dy, dx = series.spacing
    for src in truth["sources"]:
        k, j, i = np.round(series.patient_to_index(src["position_lps_mm"])).astype(int)
        sub = vox[max(k - 25, 0):k + 26, j - 25:j + 26, i - 25:i + 26]
        along = {"x": sub.sum(axis=(0, 1)), "y": sub.sum(axis=(0, 2)), "z": sub.sum(axis=(1, 2))}
        radial_axis = "y" if abs(src["radial_unit_xy"][1]) > 0.5 else "x"
        tangential_axis = "x" if radial_axis == "y" else "y"
        assert _marginal_fwhm(along[radial_axis], dy) == pytest.approx(
            src["fwhm_mm"]["radial"], abs=0.02)
        assert _marginal_fwhm(along[tangential_axis], dx) == pytest.approx(
            src["fwhm_mm"]["tangential"], abs=0.02)
        assert _marginal_fwhm(along["z"], dz) == pytest.approx(src["fwhm_mm"]["axial"], abs=0.02)
        # The true profile is wider than the PSF alone (source cube, voxel aperture).
        assert src["fwhm_mm"]["radial"] > src["psf_fwhm_mm"]["radial"]
        assert src["fwtm_mm"]["radial"] > 1.7 * src["fwhm_mm"]["radial"]
    r100, r150 = truth["sources"]
    assert r150["fwhm_mm"]["radial"] > r100["fwhm_mm"]["radial"]


def test_point_image_holds_the_source_activity():
    series, truth = render_point(voxel_mm=2.0, noise=False)
    total = float(series.voxels.astype(np.float64).sum()) * np.prod(series.spacing) / 1000
    assert total == pytest.approx(truth["total_activity_bq"], rel=1e-5)
    assert len(truth["sources"]) == 6
    assert [s["radius_from_axis_mm"] for s in truth["sources"][:3]] == [10.0, 100.0, 200.0]
    assert truth["sources"][3]["position_lps_mm"][2] == pytest.approx(3 / 8 * 300.0)


def test_point_widths_include_the_voxel_aperture():
    _, fine = render_point(positions_mm=[(0.0, -10.0, 0.0)], voxel_mm=0.5, noise=False)
    _, coarse = render_point(positions_mm=[(0.0, -10.0, 0.0)], voxel_mm=4.0, noise=False)
    assert coarse["sources"][0]["fwhm_mm"]["radial"] > fine["sources"][0]["fwhm_mm"]["radial"] + 0.5


@pytest.mark.parametrize("bad", [
    {"voxel_mm": 0.0}, {"activity_ratio": -1.0}, {"cold_spheres": (12.0,)},
    {"decay_correction": "LATER"}, {"shift_mm": (0.0, 0.0)}, {"shift_mm": (0.0, 0.0, 200.0)},
    {"matrix": 100}, {"duration_s": 0.0},
])
def test_bad_parameters_raise_value_error(bad):
    with pytest.raises(ValueError):
        render_iq(noise=False, **bad)


def test_scanner_model_rejects_nonsense():
    with pytest.raises(ValueError):
        ScannerModel(fwhm_mm=(3.0, -1.0, 3.0))
    with pytest.raises(ValueError):
        dataclasses.replace(ScannerModel(), sensitivity_cps_per_kbq=0.0)


def test_attenuation_noise_gain_matches_the_disc_formula():
    """For a disc of radius R, the chord at angle φ through a point d from the centre
    is L = 2 sqrt(R² − d² sin² φ); the variance gain is the mean of L·exp(μL)."""
    from scanbench.simulate.pet import attenuation_noise_gain

    n, pixel, radius, mu = 150, 2.0, 100.0, 0.0096
    yy, xx = np.mgrid[:n, :n]
    disc = np.hypot(yy - 74.5, xx - 74.5) * pixel <= radius
    gain = attenuation_noise_gain(disc, pixel, mu)
    assert gain[disc].mean() == pytest.approx(1.0)

    def analytic(d: float) -> float:
        phi = np.linspace(0, np.pi, 3600, endpoint=False)
        chord = 2 * np.sqrt(radius**2 - (d * np.sin(phi)) ** 2)
        return float(np.mean(chord * np.exp(mu * chord)))

    centre = gain[74:76, 74:76].mean()
    for col, d in ((100, 51.0), (120, 91.0)):  # pixel centres 51 and 91 mm from the centre
        ring = gain[74:76, col].mean()
        assert centre / ring == pytest.approx(analytic(0.0) / analytic(d), rel=0.02)
    assert np.all(attenuation_noise_gain(disc, pixel, 0.0) == 1.0)

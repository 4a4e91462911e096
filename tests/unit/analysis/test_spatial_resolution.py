"""NEMA NU 2-2018 section 3 spatial resolution on synthetic volumes built here.

The volumes are exact Gaussians sampled at voxel centres (no noise, no voxel
integration), so the true FWHM is 2·sqrt(2 ln 2)·σ and the true FWTM
2·sqrt(2 ln 10)·σ. The NEMA method (3-point parabola for the peak, linear
interpolation at the crossings) has a bounded error on such a profile, which
:func:`nema_error_bound` derives; the tests hold the analysis to that bound.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from scanbench.analysis.pet.spatial_resolution import (
    SpatialResolution,
    crossings,
    find_point_sources,
    nema_width,
    parabolic_peak,
)
from scanbench.errors import AnalysisError
from scanbench.types import Series, SeriesFacts

K_HALF = 2.0 * math.sqrt(2.0 * math.log(2.0))  # FWHM / σ
K_TENTH = 2.0 * math.sqrt(2.0 * math.log(10.0))  # FWTM / σ


def nema_error_bound(h: float, sigma: float, fraction: float, *, spline: bool = False) -> float:
    """Upper bound (mm) of |measured − true| full width at ``fraction`` of the peak
    for a unit Gaussian of SD ``sigma`` point-sampled every ``h`` mm.

    - Peak: the parabola through three samples around the maximum interpolates f
      with error ≤ max|f'''| · h³ / (9√3) on [−h, h] (Lagrange remainder with
      max |(x+h) x (x−h)| = 2h³/(3√3)), so the fitted peak is within that of 1.
    - Crossing: linear interpolation errs by ≤ h²/8 · max|f''| on the straddling
      interval; the level errs by ``fraction`` × the peak error. Divided by the
      smallest slope |f'| within h of the true crossing, this bounds the shift of
      each crossing; the width bound is twice that.
    - ``spline``: the samples themselves come from cubic-spline interpolation in
      up to three axes, each erring by ≤ 5/384 · h⁴ · max|f''''| (max |f''''| = 3/σ⁴).
    """
    u = np.linspace(-8, 8, 160001)
    g = np.exp(-0.5 * u**2)
    d1 = u * g / sigma
    d2 = np.abs(u**2 - 1) * g / sigma**2
    d3 = np.abs(u**3 - 3 * u) * g / sigma**3
    peak_err = d3.max() * h**3 / (9 * math.sqrt(3))
    sample_err = 3 * 5 / 384 * h**4 * 3 / sigma**4 if spline else 0.0
    peak_err += sample_err
    uc = math.sqrt(-2 * math.log(fraction))
    near = np.abs(u - uc) <= h / sigma
    level_err = fraction * peak_err + sample_err + h**2 / 8 * d2[near].max()
    return 2 * level_err / d1[near].min()


def gaussian_series(sources: list[tuple[float, float, float]], fwhm_xyz: list[tuple[float, ...]],
                    spacing: tuple[float, float, float], shape: tuple[int, int, int],
                    origin_xyz: tuple[float, float, float], *, radial_xyz: list | None = None,
                    ) -> Series:
    """Point-sampled Gaussians. ``fwhm_xyz[n]`` is (radial, tangential, axial) FWHM when
    ``radial_xyz[n]`` (a transverse unit vector) is given, else (x, y, z) FWHM."""
    nz, ny, nx = shape
    dz, dy, dx = spacing
    z = origin_xyz[2] + np.arange(nz) * dz
    y = origin_xyz[1] + np.arange(ny) * dy
    x = origin_xyz[0] + np.arange(nx) * dx
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij", sparse=True)
    v = np.zeros(shape, dtype=np.float64)
    for n, ((cx, cy, cz), f) in enumerate(zip(sources, fwhm_xyz, strict=True)):
        s1, s2, s3 = (w / K_HALF for w in f)
        if radial_xyz is not None and radial_xyz[n] is not None:
            ex, ey = radial_xyz[n]
            a = (xx - cx) * ex + (yy - cy) * ey
            b = -(xx - cx) * ey + (yy - cy) * ex
            v += 1000.0 * np.exp(-0.5 * ((a / s1) ** 2 + (b / s2) ** 2 + ((zz - cz) / s3) ** 2))
        else:
            v += 1000.0 * np.exp(-0.5 * (((xx - cx) / s1) ** 2 + ((yy - cy) / s2) ** 2
                                         + ((zz - cz) / s3) ** 2))
    affine = np.array([[0, 0, dx, origin_xyz[0]], [0, dy, 0, origin_xyz[1]],
                       [dz, 0, 0, origin_xyz[2]], [0, 0, 0, 1.0]])
    return Series(v.astype(np.float32), spacing, affine, SeriesFacts(modality="PT"))


# --------------------------------------------------------------------------- profile maths


def test_parabolic_peak_recovers_a_parabola_vertex_exactly() -> None:
    x = np.arange(9, dtype=float)
    y = 50.0 - 3.0 * (x - 4.3) ** 2
    pos, val = parabolic_peak(y, 4)
    assert pos == pytest.approx(4.3, abs=1e-12)
    assert val == pytest.approx(50.0, abs=1e-9)


def test_parabolic_peak_at_an_end_or_flat_top_returns_the_sample() -> None:
    assert parabolic_peak(np.array([5.0, 3.0, 1.0]), 0) == (0.0, 5.0)
    assert parabolic_peak(np.array([2.0, 2.0, 2.0]), 1) == (1.0, 2.0)


def test_linear_crossings_are_exact_on_a_triangle() -> None:
    # Apex on a sample: the parabola through apex and neighbours peaks at the apex,
    # and linear interpolation is exact on straight flanks.
    x = np.arange(-10, 11, dtype=float)
    y = np.clip(100.0 - 13.0 * np.abs(x), 0, None)
    w = nema_width(y, step_mm=2.0)
    assert w is not None
    assert w.peak_value == pytest.approx(100.0)
    assert w.fwhm_mm == pytest.approx(2 * (50.0 / 13.0) * 2.0, abs=1e-12)
    assert w.fwtm_mm == pytest.approx(2 * (90.0 / 13.0) * 2.0, abs=1e-12)


def test_crossings_need_both_sides() -> None:
    y = np.array([10.0, 9.0, 8.0, 4.0, 1.0])
    assert crossings(y, 0, 5.0) is None
    xl, xr = crossings(np.array([0.0, 4.0, 10.0, 4.0, 0.0]), 2, 5.0)
    assert (xl, xr) == pytest.approx((1 + 1 / 6, 3 - 1 / 6))


@pytest.mark.parametrize("h_over_fwhm", [1 / 3, 1 / 6, 1 / 10])
@pytest.mark.parametrize("offset", [0.0, 0.17, 0.5])
def test_nema_width_of_a_sampled_gaussian_is_within_the_derived_bound(
        h_over_fwhm: float, offset: float) -> None:
    fwhm = 4.0
    sigma = fwhm / K_HALF
    h = h_over_fwhm * fwhm
    x = (np.arange(-40, 41) - offset) * h
    w = nema_width(np.exp(-0.5 * (x / sigma) ** 2), h)
    assert w is not None
    assert abs(w.fwhm_mm - fwhm) <= nema_error_bound(h, sigma, 0.5)
    assert abs(w.fwtm_mm - K_TENTH * sigma) <= nema_error_bound(h, sigma, 0.1)
    # and the bound is tight enough to mean something at NU 2's finest sampling
    if h_over_fwhm == 1 / 10:
        assert nema_error_bound(h, sigma, 0.5) < 0.02 * fwhm


# --------------------------------------------------------------------------- the analysis

SPACING = (1.0, 1.0, 1.0)


def _nu2_series(fwhm: tuple[float, float, float] = (3.0, 3.0, 3.0)) -> Series:
    # NU 2 positions: 1, 10, 20 cm above the axis (LPS: anterior is -y) at two axial
    # positions; grid origin off the half-millimetre so peaks fall between samples.
    srcs = [(0.0, -r, z) for z in (0.0, 30.0) for r in (10.0, 100.0, 200.0)]
    radial = [(0.0, -1.0)] * len(srcs)
    return gaussian_series(srcs, [fwhm] * len(srcs), SPACING, (50, 232, 40),
                           (-20.3, -215.2, -9.6), radial_xyz=radial)


def test_nu2_positions_give_analytic_widths_per_direction() -> None:
    fr, ft, fa = 3.3, 3.1, 3.6  # radial (vertical here), tangential (x), axial
    series = _nu2_series((fr, ft, fa))
    result = SpatialResolution().run(series)
    h = 1.0
    assert len(result.evidence["sources"]) == 6
    for direction, f in (("radial", fr), ("tangential", ft), ("axial", fa)):
        sigma = f / K_HALF
        ms = [m for m in result.measurements if m.name == "fwhm_mm"
              and m.labels["direction"] == direction]
        assert len(ms) == 6
        for m in ms:
            assert abs(m.value - f) <= nema_error_bound(h, sigma, 0.5), (direction, m)
            assert m.unit == "mm"
        for m in (m for m in result.measurements if m.name == "fwtm_mm"
                  and m.labels["direction"] == direction):
            assert abs(m.value - K_TENTH * sigma) <= nema_error_bound(h, sigma, 0.1)
    m = result.get("fwhm_mm", direction="radial", position_cm=20, axial_mm=30.0)
    assert m.labels["radius_mm"] == pytest.approx(200.0, abs=0.05)
    assert not result.warnings


def test_axial_averages_are_the_mean_over_axial_positions() -> None:
    result = SpatialResolution().run(_nu2_series((3.3, 3.1, 3.6)))
    for cm in (1, 10, 20):
        for d in ("radial", "tangential", "axial"):
            per = [m.value for m in result.measurements if m.name == "fwhm_mm"
                   and m.labels["position_cm"] == cm and m.labels["direction"] == d]
            mean = result.get("fwhm_mean_mm", direction=d, position_cm=cm)
            assert mean.value == pytest.approx(np.mean(per), abs=1e-12)
            assert mean.labels["n_sources"] == 2


def test_band_summation_does_not_change_a_separable_psf() -> None:
    series = _nu2_series((3.3, 3.1, 3.6))
    single = SpatialResolution().run(series, sum_width_fwhm=0)
    summed = SpatialResolution().run(series)
    for a, b in zip(single.measurements, summed.measurements, strict=True):
        assert a.labels == b.labels
        assert a.value == pytest.approx(b.value, abs=1e-4)
    bands = [p["band_samples"] for s in summed.evidence["sources"]
             for p in s["profiles"].values()]
    assert all(sum(b) > 0 for b in bands)  # the band really was used


def test_off_axis_source_is_measured_along_the_radius_by_interpolation() -> None:
    # A source at 45° and 120 mm with an elliptical PSF elongated radially.
    fr, ft, fa = 5.0, 3.5, 4.0
    c = 120.0 / math.sqrt(2)
    e = (1 / math.sqrt(2), 1 / math.sqrt(2))
    h = 0.8
    series = gaussian_series([(c, c, 0.0)], [(fr, ft, fa)], (h, h, h), (40, 100, 100),
                             (c - 40.1, c - 39.7, -15.9), radial_xyz=[e])
    result = SpatialResolution().run(series)
    src = result.evidence["sources"][0]
    assert not src["profiles"]["radial"]["snapped"]
    assert src["profiles"]["axial"]["snapped"]
    for d, f in (("radial", fr), ("tangential", ft), ("axial", fa)):
        sigma = f / K_HALF
        m = result.get("fwhm_mm", direction=d)
        assert abs(m.value - f) <= nema_error_bound(h, sigma, 0.5, spline=True), (d, m.value)
        t = result.get("fwtm_mm", direction=d)
        assert abs(t.value - K_TENTH * sigma) <= nema_error_bound(h, sigma, 0.1, spline=True)
    assert m.labels["position_cm"] == 10
    assert m.labels["radius_mm"] == pytest.approx(120.0, abs=0.1)


def test_near_axis_source_follows_the_nu2_vertical_convention() -> None:
    # Displaced horizontally by 1 cm: radial would be x geometrically, but within
    # 2 cm of the axis NU 2's convention (radial = vertical) applies.
    fx, fy, fz = 2.8, 3.4, 3.1
    series = gaussian_series([(10.0, 0.0, 0.0)], [(fx, fy, fz)], SPACING, (30, 40, 40),
                             (-9.7, -20.2, -15.4))
    result = SpatialResolution().run(series)
    assert result.get("fwhm_mm", direction="radial").value == pytest.approx(fy, rel=0.03)
    assert result.get("fwhm_mm", direction="tangential").value == pytest.approx(fx, rel=0.03)
    assert result.get("fwhm_mm", direction="radial").labels["position_cm"] == 1


def test_axis_parameter_moves_the_reference_axis() -> None:
    fx, fy, fz = 2.8, 3.4, 3.1
    series = gaussian_series([(0.0, -100.0, 0.0)], [(fx, fy, fz)], SPACING, (30, 40, 40),
                             (-20.3, -120.2, -15.4))
    # With the axis 100 mm to the left of the source, the radius runs along x.
    result = SpatialResolution().run(series, axis_mm="-100,-100")
    m = result.get("fwhm_mm", direction="radial")
    assert m.labels["radius_mm"] == pytest.approx(100.0, abs=0.1)
    assert m.value == pytest.approx(fx, rel=0.03)
    assert result.parameters["axis_mm"] == [-100.0, -100.0]
    assert result.parameters["axis_mm_source"] == "given"
    assert SpatialResolution().run(series).parameters["axis_mm_source"].startswith("not given")
    with pytest.raises(AnalysisError, match="axis_mm"):
        SpatialResolution().run(series, axis_mm="12")


def test_coarse_voxels_raise_a_sampling_warning() -> None:
    series = gaussian_series([(0.0, -10.0, 0.0)], [(4.0, 4.0, 4.0)], (2.0, 2.0, 2.0),
                             (20, 30, 30), (-29.3, -39.6, -19.7))
    result = SpatialResolution().run(series)
    assert len(result.warnings) == 3
    assert all("third of the FWHM" in w for w in result.warnings)


def test_finds_twelve_sources_and_draws_their_figures() -> None:
    srcs = [(x, y, z) for x in (-60.0, 0.0, 60.0) for y in (-40.0, 40.0) for z in (-20.0, 20.0)]
    series = gaussian_series(srcs, [(3.0, 3.0, 3.0)] * 12, (2.0, 1.5, 1.5), (30, 80, 110),
                             (-81.0, -60.1, -29.3))
    analysis = SpatialResolution()
    result = analysis.run(series)
    assert len(result.evidence["sources"]) == 12
    assert len([m for m in result.measurements if m.name == "fwhm_mm"]) == 36
    figs = analysis.figures(result)
    # one figure per source (radial, tangential, axial side by side) and two projections
    assert len(figs) == 12 + 2
    assert [a.text.split("<br>")[0] for a in figs[0].layout.annotations] == \
        ["radial", "tangential", "axial"]
    assert all("FWHM" in a.text and "FWTM" in a.text for a in figs[0].layout.annotations)


def test_find_point_sources_merges_plateaus_and_orders_by_height() -> None:
    v = np.zeros((10, 40, 40), dtype=np.float32)
    v[5, 10, 10] = v[5, 10, 11] = 100.0  # a two-voxel plateau: one source
    v[5, 30, 30] = 60.0
    assert find_point_sources(v, (2.0, 2.0, 2.0)) == [(5, 10, 10), (5, 30, 30)]


def test_a_uniform_cylinder_is_refused_and_not_detected() -> None:
    _, y, x = np.mgrid[:20, :64, :64]
    rng = np.random.default_rng(0)
    v = np.where((y - 32) ** 2 + (x - 32) ** 2 < 25**2, 1000.0, 0.0)
    v = (v + rng.normal(0, 30, v.shape) * (v > 0)).astype(np.float32)
    affine = np.array([[0, 0, 4.0, 0], [0, 4.0, 0, 0], [3.0, 0, 0, 0], [0, 0, 0, 1]])
    series = Series(v, (3.0, 4.0, 4.0), affine, SeriesFacts(modality="PT"))
    analysis = SpatialResolution()
    assert analysis.detect(series) < 0.2
    with pytest.raises(AnalysisError, match="not a sparse point-source image"):
        analysis.run(series)


def test_detects_sparse_points_with_high_confidence() -> None:
    series = _nu2_series()
    assert SpatialResolution().detect(series) >= 0.9


def test_an_empty_image_is_refused() -> None:
    series = Series(np.zeros((5, 8, 8), np.float32), (1.0, 1.0, 1.0), np.eye(4),
                    SeriesFacts(modality="PT"))
    with pytest.raises(AnalysisError, match="no positive voxel"):
        SpatialResolution().run(series)

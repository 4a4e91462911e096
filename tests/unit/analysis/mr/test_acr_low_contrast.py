"""Unit tests of the low-contrast disc statistic (``acr_low_contrast.disc_z``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from scanbench.analysis.mr import acr_low_contrast as lc
from scanbench.analysis.mr.acr_locate import AcrAxial
from scanbench.types import Series, SeriesFacts

N, PIX = 256, 0.5  # a 128 mm field at 0.5 mm pixels (the 512-matrix pixel size)


class _Centred(AcrAxial):
    """Phantom centre at the middle of the image, no rotation (no outline search)."""

    def centre(self, n: int) -> tuple[float, float]:
        return ((N - 1) / 2, (N - 1) / 2)


def _acr(image: np.ndarray) -> AcrAxial:
    voxels = np.repeat(image[None].astype(np.float32), 11, axis=0)
    series = Series(voxels=voxels, spacing=(10.0, PIX, PIX), affine=np.eye(4),
                    facts=SeriesFacts(modality="MR"))
    return _Centred(series=series, order=tuple(range(11)), pixel_mm=(PIX, PIX),
                    rotation_deg=0.0)


def _discs(contrast: float, spokes: int) -> np.ndarray:
    """Discs of the ACR pattern (pixel centres inside each disc) on spokes 1..spokes."""
    c = (N - 1) / 2
    rr, cc = np.mgrid[:N, :N]
    img = np.zeros((N, N))
    for k, ring in np.ndindex(spokes, 3):
        z = lc.model_positions(0.0, 1.0)[k, ring]
        inside = np.hypot((rr - c - z.imag / PIX) * PIX, (cc - c - z.real / PIX) * PIX)
        img[inside <= lc.DIAMETERS_MM[k] / 2] = contrast
    return img


def test_no_disc_gives_standard_normal_z_so_the_stated_false_positive_rate_holds() -> None:
    """White noise, no discs: z over 30 discs × 40 images has mean 0 and SD 1 (within
    4 standard errors), so z > 2.94 has the stated 0.17 % per-disc rate."""
    rng = np.random.default_rng(7)
    centres = lc.model_positions(0.0, 1.0)
    zs = np.concatenate([
        lc.disc_z(_acr(1000.0 + 10.0 * rng.standard_normal((N, N))), 8, centres, 10.0,
                  (0.0, 0.0, 44.0)).ravel()
        for _ in range(40)])
    assert abs(zs.mean()) < 4 / np.sqrt(zs.size)
    assert abs(zs.std() - 1.0) < 4 / np.sqrt(2 * zs.size)
    assert np.mean(zs > lc.Z_THRESHOLD) < 0.01


def test_linear_shading_cancels_and_empty_places_read_zero() -> None:
    """Noise-free: a strong linear B1-like shading changes no disc's z, and the places
    of absent discs (spokes 6-10) read z = 0 exactly (the plane fits the background)."""
    centres = lc.model_positions(0.0, 1.0)
    flat = 1000.0 + _discs(14.0, 5)  # 1.4 % contrast on spokes 1-5
    rr, cc = np.mgrid[:N, :N]
    shaded = flat + 3.0 * (cc - N / 2) * PIX - 1.5 * (rr - N / 2) * PIX  # 30 % over 100 mm
    z_flat = lc.disc_z(_acr(flat), 8, centres, 1.0, (0.0, 0.0, 44.0))
    z_shaded = lc.disc_z(_acr(shaded), 8, centres, 1.0, (0.0, 0.0, 44.0))
    assert np.abs(z_flat[5:]).max() < 1e-6
    np.testing.assert_allclose(z_shaded, z_flat, atol=1e-6)
    # the z of a disc is its contrast over its standard error: 14 / √(1/n_d + v_b) with
    # n_d pixels in the disc (a 7 mm disc at 0.5 mm pixels: about 154) and v_b < 1/n_d
    assert 14.0 * np.sqrt(100.0) < z_flat[0].min() < 14.0 * np.sqrt(160.0)


def test_the_background_stays_inside_the_sheet() -> None:
    """Outside the sheet there is no plastic (as bright as a disc): a background that
    reached past the rim would read the outer-ring discs lower."""
    centres = lc.model_positions(0.0, 1.0)
    rr, cc = np.mgrid[:N, :N]
    outside = np.hypot(rr - (N - 1) / 2, cc - (N - 1) / 2) * PIX > 44.0
    img = 1000.0 + _discs(14.0, 10) + 14.0 * outside
    z_in = lc.disc_z(_acr(img), 8, centres, 1.0, (0.0, 0.0, 44.0))
    z_nosheet = lc.disc_z(_acr(img), 8, centres, 1.0, None)
    assert np.all(z_nosheet[:, 2] < z_in[:, 2])
    # an unseen rim (NaN radius) falls back to the nominal sheet radius
    z_nan = lc.disc_z(_acr(img), 8, centres, 1.0, (0.0, 0.0, float("nan")))
    np.testing.assert_allclose(z_nan, z_in)


@pytest.mark.parametrize("shear", [0.0, 0.02])
def test_refine_follows_an_anisotropic_scale(shear: float) -> None:
    """The pattern imaged with a 1.5 % / −1 % scale (a gradient-calibration error) and a
    shear is recovered from the big discs: every disc within 0.15 mm."""
    a = np.array([[1.015, shear], [0.0, 0.99]])
    true = lc.model_positions(0.0, 1.0)
    xy = np.stack([true.real, true.imag], -1) @ a.T
    moved = xy[..., 0] + 1j * xy[..., 1]
    c = (N - 1) / 2
    rr, cc = np.mgrid[:N, :N]
    img = np.full((N, N), 1000.0)
    for k, ring in np.ndindex(10, 3):
        z = moved[k, ring]
        img[np.hypot((rr - c) * PIX - z.imag, (cc - c) * PIX - z.real)
            <= lc.DIAMETERS_MM[k] / 2] += 50.0
    got = lc.refine(_acr(img), 8, true)
    assert np.abs(got - moved).max() < 0.15


def test_bilinear_reads_what_map_coordinates_reads() -> None:
    """``_bilinear`` (the fast reader of the pattern search and fit) against SciPy's
    ``map_coordinates(order=1, mode="constant", cval=nan)``: the same values to rounding,
    and NaN at the same points: outside the image, next to a NaN pixel even at zero weight
    (integer coordinates), and, on a stack of maps, next to a NaN of the following map."""
    from scipy.ndimage import map_coordinates

    rng = np.random.default_rng(3)
    img = rng.normal(size=(40, 50))
    img[10, 10] = np.nan
    r, c = rng.uniform(-2, 42, 4000), rng.uniform(-2, 52, 4000)
    r[:100], c[:100] = np.round(r[:100]), np.round(c[:100])
    r[100], c[100] = 10.0, 9.0  # integer place beside the NaN pixel
    want = map_coordinates(img, [r, c], order=1, mode="constant", cval=np.nan)
    got = lc._bilinear(img, r, c)
    assert np.array_equal(np.isnan(got), np.isnan(want)) and np.isnan(got).sum() > 100
    assert np.nanmax(np.abs(got - want)) < 1e-12
    stack = rng.normal(size=(4, 40, 50))
    stack[2, 20, 20] = np.nan
    k = rng.integers(0, 4, 4000).astype(float)
    k[101], r[101], c[101] = 1.0, 20.0, 20.0  # reads map 2's NaN at weight 0
    want = map_coordinates(stack, [k, r, c], order=1, mode="constant", cval=np.nan)
    got = lc._bilinear(stack, r, c, k)
    assert np.isnan(got[101]) and np.array_equal(np.isnan(got), np.isnan(want))
    assert np.nanmax(np.abs(got - want)) < 1e-12


def test_pattern_scorer_equals_the_pattern_score() -> None:
    """The pattern fit's scorer gives :func:`_pattern_score` (one ``map_coordinates`` per
    trial place, the reference) at trial places around the pattern, to rounding."""
    rng = np.random.default_rng(5)
    acr = _acr(1000.0 + _discs(14.0, 10) + 10.0 * rng.standard_normal((N, N)))
    sheet = (0.0, 0.0, 44.0)
    centres = lc.model_positions(0.0, 1.0)
    maps = np.stack(lc.pattern_maps(acr, 8, acr.image(8), sheet))
    scorer = lc._PatternScorer(acr, 8, maps)
    for _ in range(50):
        trial = lc.pattern_centres(complex(*rng.normal(0, 1.0, 2)), rng.normal(0, 3.0), 1.0,
                                   np.asarray(lc.RING_RADII_MM) * rng.uniform(0.97, 1.03),
                                   complex(*rng.normal(0, 0.02, 2)))
        assert scorer(trial) == pytest.approx(lc._pattern_score(acr, 8, maps, trial),
                                              rel=1e-12, abs=1e-9)
    far = centres * 2.0  # outer ring beyond the maps' finite region: the NaN path
    assert scorer(far) == pytest.approx(lc._pattern_score(acr, 8, maps, far), rel=1e-12)


def test_disc_free_z_is_the_statistics_null_white_or_correlated() -> None:
    """``disc_free_z`` reads the matched statistic at disc-free places: standard normal on
    white noise of the stated σ (so it checks the white-noise model), wider on the same
    noise smoothed (correlated between pixels: σ from neighbour differences is then too
    small and z spreads more), and never at a place that overlaps a disc (discs of a
    100σ contrast would show)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(11)
    sheet = (0.0, 0.0, 44.0)
    centres = lc.model_positions(0.0, 1.0)
    white = 1000.0 + _discs(1000.0, 10) + 10.0 * rng.standard_normal((N, N))
    acr = _acr(white)
    z = lc.disc_free_z(acr, 8, centres, 10.0, sheet, acr.image(8), lc.DIAMETERS_MM[3],
                       step_mm=2.5)
    assert z.size > 150 and abs(z.mean()) < 0.35 and 0.8 < z.std() < 1.25, (z.mean(), z.std())
    smooth = 1000.0 + gaussian_filter(10.0 * rng.standard_normal((N, N)), 1.5)
    acr = _acr(smooth)
    sigma = lc.difference_sigma(acr.image(8))
    z = lc.disc_free_z(acr, 8, centres, sigma, sheet, acr.image(8), lc.DIAMETERS_MM[3],
                       step_mm=2.5)
    assert z.std() > 2.0, z.std()


@pytest.mark.parametrize("simplex", [False, True])
def test_nelder_mead_takes_scipys_steps(simplex: bool) -> None:
    """``nelder_mead`` against ``scipy.optimize.minimize(method="Nelder-Mead")`` on a
    Rosenbrock valley and on a noisy bowl (many ties broken by the sort): the same result
    bit for bit and the same number of evaluations, with the default and with an initial
    simplex, and with the evaluation budget ending the search mid-iteration."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(2)
    bumps = rng.normal(0, 0.05, 64)

    def rosen(x: np.ndarray) -> float:
        return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))

    def bowl(x: np.ndarray) -> float:
        return float(np.sum((x - 0.3) ** 2) + bumps[int(abs(x[0] * 40)) % 64])

    for func, x0, maxfev in ((rosen, np.array([-1.2, 1.0, 0.5]), 400),
                             (rosen, np.array([-1.2, 1.0, 0.5]), 37),
                             (bowl, np.array([2.0, -1.0]), 300)):
        init = x0 + np.vstack([np.zeros(x0.size), 0.5 * np.eye(x0.size)]) if simplex else None
        calls: list[int] = [0, 0]

        def counted(x: np.ndarray, i: int, f: Any = func, calls: list[int] = calls) -> float:
            calls[i] += 1
            return float(f(x))

        opts: dict[str, Any] = {"xatol": 0.02, "fatol": 1e-3, "maxfev": maxfev}
        if init is not None:
            opts["initial_simplex"] = init
        want = minimize(counted, x0, args=(0,), method="Nelder-Mead", options=opts).x
        got = lc.nelder_mead(lambda x: counted(x, 1), x0, initial_simplex=init, xatol=0.02,
                             fatol=1e-3, maxfev=maxfev)
        assert np.array_equal(got, want) and calls[0] == calls[1], (got, want, calls)

"""scanbench.analysis.least_squares gives scipy.optimize.least_squares's answers to the bit.

The PET fill-ratio fit (and every contrast computed with its ratio) moved from SciPy's
trust-region reflective solver to this one (issue 15); equal answers are what keeps every
reported number unchanged, so the problems below cover bounds inactive and active (lower
and upper, hit by the first step or reflected off), the reflection and gradient steps,
and the fill ratio's own model on a simulated IQ scan.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import least_squares as scipy_least_squares
from scipy.special import erf as scipy_erf

from scanbench.analysis import ndi
from scanbench.analysis.least_squares import least_squares

Problem = tuple[Callable[[np.ndarray], np.ndarray], list[float], tuple[list[float], list[float]]]


def _decay() -> Problem:
    rng = np.random.default_rng(11)
    t = np.linspace(0.0, 10.0, 400)
    y = 3.7 * np.exp(-t / 2.3) + rng.normal(0.0, 0.02, t.size)
    return (lambda p: p[0] * np.exp(-t / p[1]) - y), [1.0, 1.0], ([0.0, 0.1], [np.inf, 50.0])


def _decay_upper_active() -> Problem:
    fun, x0, _ = _decay()
    return fun, x0, ([0.0, 0.1], [2.5, 50.0])  # the amplitude wants 3.7: held at 2.5


def _decay_lower_active() -> Problem:
    fun, _, _ = _decay()
    return fun, [6.0, 5.0], ([4.0, 0.1], [np.inf, 50.0])  # wants 3.7: held at 4


def _rosenbrock_box() -> Problem:
    return (lambda x: np.array([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]]), [-1.2, 1.0],
            ([-2.0, -0.5], [0.8, 2.0]))


def _three_parameters() -> Problem:
    rng = np.random.default_rng(12)
    x = np.linspace(-5.0, 5.0, 300)
    y = 2.0 / (1.0 + np.exp(-(x - 0.7) / 0.9)) + rng.normal(0.0, 0.05, x.size)
    return ((lambda p: p[0] / (1.0 + np.exp(-(x - p[1]) / p[2])) - y), [1.0, 0.0, 2.0],
            ([0.5, -1.0, 0.2], [1.5, 3.0, 5.0]))


def _blurred_sphere() -> Problem:
    """The fill-ratio model (image_quality.blurred_ball) on a noisy 28 mm sphere."""
    rng = np.random.default_rng(13)
    r = rng.uniform(0.0, 29.0, 3000)

    def ball(r: np.ndarray, radius: float, sigma: float) -> np.ndarray:
        r = np.maximum(r, 1e-6 * sigma)
        a = (radius - r) / (np.sqrt(2.0) * sigma)
        b = (radius + r) / (np.sqrt(2.0) * sigma)
        return 0.5 * (ndi.erf(a) + ndi.erf(b)) - sigma / (r * np.sqrt(2.0 * np.pi)) * (
            np.exp(-a * a) - np.exp(-b * b))

    v = 8.0 * ball(r, 14.0, 2.6) + 1.0 * (1.0 - ball(r, 15.0, 2.6)) \
        + rng.normal(0.0, 0.3, r.size)
    return ((lambda p: p[0] * ball(r, 14.0, p[1]) + (1.0 - ball(r, 15.0, p[1])) - v),
            [float(v.max()), 3.0], ([0.0, 0.3], [np.inf, 30.0]))


PROBLEMS = {"decay": _decay, "decay upper bound active": _decay_upper_active,
            "decay lower bound active": _decay_lower_active,
            "Rosenbrock in a box": _rosenbrock_box, "three parameters": _three_parameters,
            "blurred sphere": _blurred_sphere}


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_least_squares_equals_scipy_bit_for_bit(name: str) -> None:
    fun, x0, bounds = PROBLEMS[name]()
    want = scipy_least_squares(fun, x0, bounds=bounds)
    got = least_squares(fun, x0, bounds=bounds)
    assert np.array_equal(got.x, want.x), (got.x, want.x)
    assert got.cost == want.cost
    assert (got.nfev, got.njev, got.status) == (want.nfev, want.njev, want.status)
    assert np.array_equal(got.active_mask, want.active_mask)


def test_active_bounds_are_reported() -> None:
    fun, x0, bounds = _decay_upper_active()
    fit = least_squares(fun, x0, bounds=bounds)
    assert list(fit.active_mask) == [1, 0] and fit.x[0] == pytest.approx(2.5, abs=1e-6)
    fun, x0, bounds = _decay_lower_active()
    assert list(least_squares(fun, x0, bounds=bounds).active_mask) == [-1, 0]
    fun, x0, bounds = _decay()
    assert list(least_squares(fun, x0, bounds=bounds).active_mask) == [0, 0]


def test_bad_bounds_and_start_are_refused() -> None:
    fun, _, _ = _decay()
    with pytest.raises(ValueError, match="outside the bounds"):
        least_squares(fun, [1.0, 60.0], bounds=([0.0, 0.1], [np.inf, 50.0]))
    with pytest.raises(ValueError, match="lower bound"):
        least_squares(fun, [1.0, 1.0], bounds=([0.0, 5.0], [np.inf, 5.0]))


def test_pet_fill_ratio_equals_scipy_on_a_simulated_iq_scan(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            ) -> None:
    """The IQ analysis's fill-ratio estimate, as run, equals the one with SciPy's solver and
    SciPy's erf (what the code used before issue 15), to the bit."""
    from scanbench.analysis.pet import image_quality as iq
    from scanbench.dicom.read import read_one
    from scanbench.simulate import simulate_iq

    simulate_iq(tmp_path, voxel_mm=4.0, activity_ratio=8.0, seed=3)
    series = read_one(tmp_path)
    captured: dict[str, tuple] = {}
    real = iq.estimate_activity_ratio

    def capture(*args: object, **kwargs: object) -> iq.RatioEstimate:
        captured["args"] = (args, kwargs)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(iq, "estimate_activity_ratio", capture)
    iq.ImageQuality().run(series)
    args, kwargs = captured["args"]
    got = real(*args, **kwargs)
    monkeypatch.setattr(iq, "least_squares", scipy_least_squares)
    monkeypatch.setattr(iq.ndi, "erf", scipy_erf)
    want = real(*args, **kwargs)
    assert 6.0 < got.ratio < 10.0
    assert (got.ratio, got.fwhm_mm, got.uncertainty) == (want.ratio, want.fwhm_mm,
                                                         want.uncertainty)
    assert got.per_sphere == want.per_sphere

"""The white-noise σ of the ACR low-contrast statistic on integer pixels.

Scanners store integer pixels, so differences of neighbouring pixels are integers and
their median absolute deviation moves in whole steps: the estimator used before (median
absolute deviation × 1.4826 / √2) read 9.44 for a true σ of 10 and 11.53 for 12, moving
every disc's z by up to 5 %.
"""

from __future__ import annotations

import numpy as np
import pytest

from scanbench.analysis.mr.acr_low_contrast import difference_sigma


@pytest.mark.parametrize("sigma", [4.0, 6.5, 10.0, 12.0, 20.0])
def test_noise_sigma_is_not_quantised_by_integer_pixels(sigma: float) -> None:
    rng = np.random.default_rng(int(sigma * 10))
    img = np.round(1000.0 + rng.normal(0.0, sigma, (121, 121)))
    assert difference_sigma(img) == pytest.approx(sigma, rel=0.02)


def test_noise_sigma_ignores_a_few_edges() -> None:
    """Disc and rim edges are outliers among the differences: clipped at ±4σ."""
    rng = np.random.default_rng(1)
    img = np.round(1000.0 + rng.normal(0.0, 8.0, (121, 121)))
    img[:, 60:] += 200.0  # one vertical edge: one outlier difference per row
    assert difference_sigma(img) == pytest.approx(8.0, rel=0.03)

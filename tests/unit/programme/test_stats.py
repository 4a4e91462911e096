"""The programme's statistics against published worked examples (issue 14 "must show")."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scanbench.errors import InputError
from scanbench.programme import stats

# Shrout & Fleiss (1979), Psychological Bulletin 86(2):420-428, Table 2: six targets
# rated by four judges.
SHROUT_FLEISS = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8],
                 [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]


@pytest.mark.parametrize(("form", "published"), [
    ("ICC(1,1)", 0.17), ("ICC(2,1)", 0.29), ("ICC(3,1)", 0.71),
    ("ICC(1,k)", 0.44), ("ICC(2,k)", 0.62), ("ICC(3,k)", 0.91)])
def test_icc_shrout_fleiss_table_2(form: str, published: float) -> None:
    """Shrout & Fleiss 1979, Table 4 (ICC values computed from the Table 2 data):
    ICC(1,1) .17, ICC(2,1) .29, ICC(3,1) .71, ICC(1,4) .44, ICC(2,4) .62, ICC(3,4) .91."""
    got = stats.icc(SHROUT_FLEISS, form)
    assert round(got["icc"], 2) == published
    assert got["form"] == form and got["description"]
    assert got["ci_low"] < got["icc"] < got["ci_high"]


# Altman (1991) Practical Statistics for Medical Research, Table 14.3 (Boyd et al. 1982:
# two radiologists grading 85 xeromammograms normal / benign / suspected / cancer); the
# same data are the worked example of Stata's `kap` (Base Reference Manual, "kappa"),
# which reports kappa 0.4728, linear-weighted 0.5684 and quadratic-weighted 0.6714.
ALTMAN = [[21, 12, 0, 0], [4, 17, 1, 0], [3, 9, 15, 2], [0, 0, 0, 1]]


def _pairs(table: list[list[int]]) -> tuple[list[int], list[int]]:
    a: list[int] = []
    b: list[int] = []
    for i, row in enumerate(table):
        for j, count in enumerate(row):
            a += [i + 1] * count
            b += [j + 1] * count
    return a, b


@pytest.mark.parametrize(("weights", "published"), [
    (None, 0.4728), ("linear", 0.5684), ("quadratic", 0.6714)])
def test_weighted_kappa_altman_table_14_3(weights: str | None, published: float) -> None:
    """Cohen's kappa and Cohen's (1968) weighted kappa of the Altman 1991 Table 14.3
    data: 0.4728, 0.5684 (linear), 0.6714 (quadratic) as published in Stata's manual."""
    a, b = _pairs(ALTMAN)
    assert len(a) == 85
    assert round(stats.weighted_kappa(a, b, weights, labels=[1, 2, 3, 4]), 4) == published


def test_kappa_cohen_1960_example() -> None:
    """Cohen 1960, Table 1 (200 cases, three categories, proportions .44 .07 .09 /
    .05 .20 .05 / .01 .03 .06): p_o = .70, p_c = .41, kappa = .492."""
    a, b = _pairs([[88, 14, 18], [10, 40, 10], [2, 6, 12]])
    assert round(stats.weighted_kappa(a, b, None), 3) == 0.492


def test_wilcoxon_hollander_wolfe_depression() -> None:
    """Hollander & Wolfe (1973) p. 29, Hamilton depression scale before (x) and after
    (y) tranquilliser, the example of R's wilcox.test: V = 40, one-sided p = 0.01953, so
    two-sided p = 0.0390625 (exact)."""
    x = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
    y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]
    got = stats.paired_comparison(x, y)
    assert got["w_plus"] == 40 and got["w_minus"] == 5
    assert got["p"] == pytest.approx(0.0390625, abs=1e-9)
    assert got["rank_biserial"] == pytest.approx((40 - 5) / 45)
    d = np.subtract(x, y)
    walsh = sorted((d[i] + d[j]) / 2 for i in range(9) for j in range(i, 9))
    # n = 9, 95 %: C = 6 (P(T+ <= 5) = 10/512 <= 0.025 < P(T+ <= 6) = 14/512), so the
    # interval is the 6th smallest and 6th largest Walsh average (Hollander & Wolfe 3.3)
    assert got["shift"]["estimate"] == pytest.approx(float(np.median(walsh)))
    assert got["shift"]["low"] == pytest.approx(walsh[5])
    assert got["shift"]["high"] == pytest.approx(walsh[-6])


def test_signed_rank_null_distribution() -> None:
    """The exact null of T+ for n = 9 against the counts a table gives:
    P(T+ <= 5) = 10/512, P(T+ <= 6) = 14/512; it sums to 1."""
    pmf = stats._signed_rank_pmf(9)
    assert pmf.sum() == pytest.approx(1.0)
    assert np.cumsum(pmf)[5] * 512 == pytest.approx(10)
    assert np.cumsum(pmf)[6] * 512 == pytest.approx(14)


def test_mean_ci_of_a_bounded_scale_stays_on_the_scale() -> None:
    """Four case means on a 1..5 scale (the programme demo's reader study): the plain t
    interval is 0.34 .. 5.99, scores no case can have; with the scale's bounds it is cut
    at 1 and 5 and says so; an interval inside the bounds is left as it is."""
    values = [1.0, 2.5, 5.0, 4.17]
    plain = stats.mean_ci(values)
    assert plain.low < 1 and plain.high > 5
    cut = stats.mean_ci(values, bounds=(1, 5))
    assert (cut.low, cut.high, cut.estimate) == (1, 5, plain.estimate)
    assert "cut at the scale's ends 1 and 5" in cut.method
    inside = stats.mean_ci([3, 3.5, 4, 3.2, 3.8], bounds=(1, 5))
    assert inside == stats.mean_ci([3, 3.5, 4, 3.2, 3.8])
    assert inside.method == "Student t"


def test_mean_ci_and_detectable_difference() -> None:
    """t interval of 1..5: mean 3, s = 1.5811, t(0.975, 4) = 2.7764 -> 3 ± 1.9632;
    detectable difference with SD 1, n 16: (1.95996 + 0.84162)/4 = 0.7004."""
    ci = stats.mean_ci([1, 2, 3, 4, 5])
    assert ci.estimate == 3
    assert ci.low == pytest.approx(3 - 1.9632, abs=1e-4)
    assert ci.high == pytest.approx(3 + 1.9632, abs=1e-4)
    assert math.isnan(stats.mean_ci([4]).low)
    assert stats.smallest_detectable_difference(1.0, 16)["value"] == pytest.approx(
        0.7004, abs=1e-4)


def test_bad_input_is_named() -> None:
    with pytest.raises(InputError, match="ICC needs"):
        stats.icc([[1, 2]])
    with pytest.raises(InputError, match="unknown ICC form"):
        stats.icc(SHROUT_FLEISS, "ICC(9,9)")
    with pytest.raises(InputError, match="same cases"):
        stats.weighted_kappa([1, 2], [1])
    with pytest.raises(InputError, match="every reader"):
        stats.icc([[1, 2], [3, float("nan")], [4, 5]])


def test_preload_imports_the_statistics_libraries_once() -> None:
    """In a fresh interpreter (this one may have them already): the preload thread
    imports pingouin, scikit-learn's metrics and pandas, and a second call returns the
    same thread instead of starting another."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from scanbench.programme import stats\n"
            "assert 'pingouin' not in sys.modules and 'sklearn.metrics' not in sys.modules\n"
            "t = stats.preload_in_background()\n"
            "assert stats.preload_in_background() is t\n"
            "t.join()\n"
            "assert {'pingouin', 'sklearn.metrics', 'pandas'} <= set(sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]

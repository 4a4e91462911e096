"""Group comparisons (programme/compare.py): every number checked against scipy,
statsmodels or a hand computation from its textbook definition."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.power import FTestAnovaPower, TTestIndPower

from scanbench.programme import compare as cmp

A = [1.1, 1.3, 1.2, 1.5, 1.4, 1.0]
B = [1.6, 1.8, 1.7, 1.9, 1.5]


def test_two_normal_groups_welch_hedges_and_detectable_difference() -> None:
    c = cmp.compare_groups({"A": A, "B": B}, "mm", "slice thickness")
    assert c.test == "Welch's t-test (two-sided)"
    ref = sps.ttest_ind(A, B, equal_var=False)
    assert c.statistic == pytest.approx(ref.statistic) and c.p == pytest.approx(ref.pvalue)
    assert c.df == pytest.approx(ref.df)
    # Welch difference interval by hand: Satterthwaite df, t quantile
    v1, v2 = np.var(A, ddof=1) / 6, np.var(B, ddof=1) / 5
    df = (v1 + v2) ** 2 / (v1**2 / 5 + v2**2 / 4)
    half = sps.t.ppf(0.975, df) * math.sqrt(v1 + v2)
    diff = np.mean(A) - np.mean(B)
    assert c.difference == pytest.approx(diff)
    assert c.difference_ci == pytest.approx((diff - half, diff + half))
    # Hedges' g by hand (Hedges & Olkin 1985)
    sp = math.sqrt((5 * np.var(A, ddof=1) + 4 * np.var(B, ddof=1)) / 9)
    g = (1 - 3 / (4 * 11 - 9)) * diff / sp
    se = math.sqrt(11 / 30 + g * g / 22)
    assert c.effect == pytest.approx(g)
    assert c.effect_ci == pytest.approx((g - 1.959964 * se, g + 1.959964 * se), rel=1e-5)
    d = TTestIndPower().solve_power(nobs1=6, ratio=5 / 6, alpha=0.05, power=0.8)
    assert c.mdd == pytest.approx(d * sp)
    assert [g.n for g in c.groups] == [6, 5] and c.groups[0].unit == "mm"
    lo, hi = sps.t.interval(0.95, 5, loc=np.mean(A), scale=np.std(A, ddof=1) / math.sqrt(6))
    assert (c.groups[0].ci_low, c.groups[0].ci_high) == pytest.approx((lo, hi))


def test_skewed_groups_mann_whitney_rank_biserial_hodges_lehmann() -> None:
    x, y = [1.0, 2, 3, 4, 50], [5.0, 6, 7, 8, 9, 100]
    c = cmp.compare_groups({"x": x, "y": y}, "%")
    assert c.test == "Mann-Whitney U (two-sided)"  # Shapiro-Wilk rejects both
    ref = sps.mannwhitneyu(x, y, alternative="two-sided")
    assert c.statistic == ref.statistic and c.p == pytest.approx(ref.pvalue)
    # rank-biserial by Kerby's simple difference formula: (favourable - unfavourable)/pairs
    fav = sum(a > b for a in x for b in y)
    unf = sum(a < b for a in x for b in y)
    assert c.effect == pytest.approx((fav - unf) / 30)
    assert c.effect_ci[0] <= c.effect <= c.effect_ci[1]
    diffs = sorted(a - b for a in x for b in y)
    assert c.difference == pytest.approx(float(np.median(diffs)))
    # C = floor(30/2 - 1.96 sqrt(30 * 12 / 12)) = floor(4.265) = 4
    assert c.difference_ci == (diffs[3], diffs[30 - 4])


def test_more_groups_anova_and_kruskal_eta_squared() -> None:
    groups = {"a": [1, 2, 3, 4.5], "b": [5, 6, 7, 8.2], "c": [2, 3, 4, 5.1]}
    c = cmp.compare_groups(groups, "HU")
    assert c.test == "one-way ANOVA"
    ref = sps.f_oneway(*groups.values())
    assert c.statistic == pytest.approx(ref.statistic) and c.p == pytest.approx(ref.pvalue)
    allv = np.concatenate([np.asarray(v) for v in groups.values()])
    ssb = sum(len(v) * (np.mean(v) - allv.mean()) ** 2 for v in groups.values())
    assert c.effect == pytest.approx(ssb / ((allv - allv.mean()) ** 2).sum())
    f = c.mdd / math.sqrt(sum(((np.asarray(v) - np.mean(v)) ** 2).sum()
                              for v in groups.values()) / 9)
    assert FTestAnovaPower().power(f, 12, 0.05, 3) == pytest.approx(0.8, abs=1e-6)
    skew = {"a": [1, 1, 1, 9.0], "b": [2, 2, 2.5, 30], "c": [0.5, 0.6, 0.7, 0.8]}
    k = cmp.compare_groups(skew, "HU")
    assert k.test == "Kruskal-Wallis H"
    h = sps.kruskal(*skew.values())
    assert k.statistic == pytest.approx(h.statistic)
    assert k.effect == pytest.approx((h.statistic - 3 + 1) / (12 - 3))


def test_small_groups_are_listed_not_tested() -> None:
    c = cmp.compare_groups({"one": [1.0], "two": [5.0, 6.0], "nan": [math.nan]}, "mm")
    assert not c.tested and c.excluded == ["one"]
    assert [g.name for g in c.groups] == ["one", "two"]
    assert "fewer than two groups" in c.notes[-1]
    d = c.as_dict()
    assert d["p"] is None and d["unit_of_analysis"] == cmp.UNIT_RULE
    # two devices a group: tested, by Mann-Whitney (normality needs 3), no 95 % interval
    t = cmp.compare_groups({"a": [1.0, 2.0], "b": [3.0, 4.0]}, "mm")
    assert t.test.startswith("Mann-Whitney") and math.isnan(t.difference_ci[0])
    # no overlap: r = -1 and no (zero-width) Hanley-McNeil interval
    assert t.effect == -1 and math.isnan(t.effect_ci[0])
    assert "do not overlap" in " ".join(t.notes)

"""Comparisons between groups of devices (issue 14 §7): one measurement (or indicator)
summarised per device, compared between groups of devices formed by a device attribute
(make, model, country of manufacture, field strength, axial field of view, site).

Unit of analysis
----------------
The **device**: each device contributes one value (its mean over the period), so that a
device with daily QC does not count 365 times (pseudo-replication, Hurlbert 1984,
Ecological Monographs 54:187). Group sizes are numbers of devices.

Choice of test (stated in every result)
---------------------------------------
* Two groups: Welch's unequal-variance t-test (Welch 1947) when every group has at least
  3 devices and no group's Shapiro-Wilk test (Shapiro & Wilk 1965) rejects normality at
  α = 0.05; otherwise the Mann-Whitney U test (two-sided, exact for small samples without
  ties, scipy's ``method="auto"``). Welch: effect size Hedges' g (pooled SD, small-sample
  correction J = 1 - 3/(4(n1+n2) - 9)) with the normal-approximation interval of Hedges
  & Olkin 1985 (SE² = (n1+n2)/(n1 n2) + g²/(2(n1+n2))), and the difference in means with
  the Welch-Satterthwaite t interval. Mann-Whitney: rank-biserial correlation
  r = 2U/(n1 n2) - 1 (Wendt 1972) with the interval of the common-language effect size
  (U/(n1 n2)) by the Hanley & McNeil 1982 standard error, mapped to r; and the
  Hodges-Lehmann shift (median of all differences x_i - y_j) with its distribution-free
  interval (Moses; Hollander & Wolfe 1999, section 4.3: order statistics of the
  differences at ranks C and n1 n2 + 1 - C, C from the normal approximation of U).
* More groups: one-way ANOVA with η² = SS_between / SS_total when every group passes the
  same normality rule, else Kruskal-Wallis H with η²_H = (H - k + 1)/(n - k)
  (Tomczak & Tomczak 2014, Trends in Sport Sciences 21:19).

Smallest detectable difference
------------------------------
At 80 % power and two-sided α = 0.05 (statsmodels ``TTestIndPower`` for two groups: the
smallest Cohen's d for the group sizes, times the pooled SD, in the measurement's unit;
``FTestAnovaPower`` for k groups with the mean group size: the smallest Cohen's f, times
the pooled within-group SD, i.e. the smallest SD of the group means, in the unit).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

from scanbench.errors import InputError

ALPHA = 0.05
POWER = 0.8
LEVEL = 0.95
#: Smallest group (devices) a comparison includes; smaller groups are listed, not tested.
MIN_GROUP = 2
#: Smallest group for which normality is judged (Shapiro-Wilk needs 3).
MIN_NORMALITY = 3

CHOICE_RULE = (
    "two groups: Welch's t-test when every group has at least 3 devices and no group's "
    "Shapiro-Wilk test rejects normality at alpha 0.05, else Mann-Whitney U; more groups: "
    "one-way ANOVA under the same rule, else Kruskal-Wallis H")
UNIT_RULE = ("one value per device (its mean over the period): the device is the unit of "
             "analysis, not each QC result")


@dataclass(frozen=True)
class GroupSummary:
    """One group's per-device values: n devices, mean with 95 % Student t interval, SD,
    median (all in ``unit``)."""

    name: str
    n: int
    mean: float
    ci_low: float
    ci_high: float
    sd: float
    median: float
    unit: str


@dataclass
class Comparison:
    """A comparison of one quantity between groups (see the module docstring)."""

    quantity: str
    unit: str
    groups: list[GroupSummary]
    test: str = ""
    statistic_name: str = ""
    statistic: float = math.nan
    df: float | None = None
    p: float = math.nan
    effect_name: str = ""
    effect: float = math.nan
    effect_ci: tuple[float, float] = (math.nan, math.nan)
    difference_name: str = ""
    difference: float = math.nan
    difference_ci: tuple[float, float] = (math.nan, math.nan)
    mdd_name: str = ""
    mdd: float = math.nan
    normality: dict[str, float] = field(default_factory=dict)  # group -> Shapiro-Wilk p
    excluded: list[str] = field(default_factory=list)  # groups with < MIN_GROUP devices
    notes: list[str] = field(default_factory=list)

    @property
    def tested(self) -> bool:
        return bool(self.test)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tested"] = self.tested
        d["choice_rule"] = CHOICE_RULE
        d["unit_of_analysis"] = UNIT_RULE
        d["alpha"], d["power"], d["level"] = ALPHA, POWER, LEVEL
        return _finite(d)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def summarise(name: str, values: Sequence[float], unit: str) -> GroupSummary:
    """n, mean with its Student t 95 % interval, SD (n - 1) and median."""
    x = np.asarray(values, dtype=float)
    n = int(x.size)
    if n == 0:
        raise InputError(f"group {name!r} has no value")
    mean = float(x.mean())
    if n < 2:
        return GroupSummary(name, n, mean, math.nan, math.nan, math.nan, float(np.median(x)),
                            unit)
    sd = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + LEVEL / 2, n - 1)) * sd / math.sqrt(n)
    return GroupSummary(name, n, mean, mean - half, mean + half, sd, float(np.median(x)), unit)


def _pooled_sd(groups: Sequence[np.ndarray]) -> float:
    dof = sum(g.size - 1 for g in groups)
    if dof <= 0:
        return math.nan
    return math.sqrt(sum(float(((g - g.mean()) ** 2).sum()) for g in groups) / dof)


def hedges_g(x: ArrayLike, y: ArrayLike) -> tuple[float, float, float]:
    """Hedges' g of x - y (pooled SD, correction J = 1 - 3/(4(n1+n2) - 9)) with the
    95 % normal-approximation interval of Hedges & Olkin 1985 (the same SE as NIST
    Dataplot's HEDGES G CONFIDENCE LIMITS)."""
    a, b = np.asarray(x, float), np.asarray(y, float)
    n1, n2 = a.size, b.size
    sp = _pooled_sd([a, b])
    if not sp > 0:
        return math.nan, math.nan, math.nan
    g = (1 - 3 / (4 * (n1 + n2) - 9)) * float(a.mean() - b.mean()) / sp
    se = math.sqrt((n1 + n2) / (n1 * n2) + g * g / (2 * (n1 + n2)))
    z = float(sps.norm.ppf(0.5 + LEVEL / 2))
    return g, g - z * se, g + z * se


def rank_biserial(x: ArrayLike, y: ArrayLike) -> tuple[float, float, float, float]:
    """U of x, and the rank-biserial r = 2U/(n1 n2) - 1 (positive: x tends to be higher)
    with a 95 % interval from the Hanley & McNeil 1982 SE of A = U/(n1 n2), r = 2A - 1
    (none when the groups do not overlap at all: that SE is then 0)."""
    n1, n2 = np.size(x), np.size(y)
    u = float(sps.mannwhitneyu(x, y, alternative="two-sided").statistic)
    a = u / (n1 * n2)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n2 - 1) * (q2 - a * a)) / (n1 * n2)
    z = float(sps.norm.ppf(0.5 + LEVEL / 2))
    if a in (0.0, 1.0):  # complete separation: the Hanley-McNeil SE is 0, no interval
        return u, 2 * a - 1, math.nan, math.nan
    se = math.sqrt(max(var, 0.0))
    lo, hi = max(0.0, a - z * se), min(1.0, a + z * se)
    return u, 2 * a - 1, 2 * lo - 1, 2 * hi - 1


def hodges_lehmann_shift(x: ArrayLike, y: ArrayLike) -> tuple[float, float, float]:
    """The two-sample Hodges-Lehmann shift (median of x_i - y_j) with its 95 %
    distribution-free interval (Hollander & Wolfe 1999, section 4.3; C from the normal
    approximation: C = n1 n2/2 - z sqrt(n1 n2 (n1 + n2 + 1)/12), rounded down)."""
    d = np.sort(np.subtract.outer(np.asarray(x, float), np.asarray(y, float)).ravel())
    n1, n2 = d.size // np.size(y), np.size(y)
    z = float(sps.norm.ppf(0.5 + LEVEL / 2))
    c = math.floor(n1 * n2 / 2 - z * math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12))
    est = float(np.median(d))
    if c < 1:  # too few devices for a 95 % interval
        return est, math.nan, math.nan
    return est, float(d[c - 1]), float(d[d.size - c])


def _normality(groups: Mapping[str, np.ndarray]) -> tuple[bool, dict[str, float]]:
    ps: dict[str, float] = {}
    ok = True
    for name, g in groups.items():
        if g.size < MIN_NORMALITY:
            ok = False
            continue
        if float(np.ptp(g)) == 0.0:  # all equal: Shapiro-Wilk undefined; not normal data
            ok = False
            continue
        p = float(sps.shapiro(g).pvalue)
        ps[name] = p
        ok = ok and p >= ALPHA
    return ok, ps


def compare_groups(groups: Mapping[str, Sequence[float]], unit: str,
                   quantity: str = "") -> Comparison:
    """Compare ``groups`` (group name -> one value per device, in ``unit``) by the rule of
    the module docstring. Groups with fewer than :data:`MIN_GROUP` devices are listed but
    left out of the test; with fewer than two groups left, no test is made (a note says
    why)."""
    clean: dict[str, np.ndarray] = {}
    for name, vals in groups.items():
        arr = np.asarray([v for v in vals if v is not None and math.isfinite(v)], float)
        if arr.size:
            clean[name] = arr
    summaries = [summarise(k, v.tolist(), unit) for k, v in clean.items()]
    out = Comparison(quantity, unit, summaries)
    used = {k: v for k, v in clean.items() if v.size >= MIN_GROUP}
    out.excluded = [k for k in clean if k not in used]
    if out.excluded:
        out.notes.append(f"not tested (fewer than {MIN_GROUP} devices): "
                         + ", ".join(out.excluded))
    if len(used) < 2:
        out.notes.append("no comparison: fewer than two groups with at least "
                         f"{MIN_GROUP} devices")
        return out
    normal, out.normality = _normality(used)
    arrays = list(used.values())
    sd = _pooled_sd(arrays)
    if len(used) == 2:
        _two(out, *arrays, normal=normal, names=list(used))
        from statsmodels.stats.power import TTestIndPower

        n1, n2 = arrays[0].size, arrays[1].size
        d = float(TTestIndPower().solve_power(effect_size=None, nobs1=n1, ratio=n2 / n1,
                                              alpha=ALPHA, power=POWER,
                                              alternative="two-sided"))
        out.mdd_name = (f"smallest difference in means detectable (power {POWER:.0%}, "
                        f"two-sided alpha {ALPHA}): Cohen's d {d:.3g} x pooled SD")
        out.mdd = d * sd
    else:
        _many(out, arrays, normal=normal)
        from statsmodels.stats.power import FTestAnovaPower

        k = len(arrays)
        n_total = sum(a.size for a in arrays)
        from scipy.optimize import brentq

        power = FTestAnovaPower().power
        # statsmodels' own solver brackets f in (0, 1); a few devices per group need more
        f = float(brentq(lambda e: power(e, n_total, ALPHA, k) - POWER, 1e-6, 100.0))
        out.mdd_name = (f"smallest SD of the group means detectable (power {POWER:.0%}, "
                        f"alpha {ALPHA}, equal groups of {n_total / k:.3g}): "
                        f"Cohen's f {f:.3g} x pooled SD")
        out.mdd = f * sd
    return out


def _two(out: Comparison, x: np.ndarray, y: np.ndarray, *, normal: bool,
         names: list[str]) -> None:
    label = f"{names[0]} - {names[1]}"
    if normal:
        t = sps.ttest_ind(x, y, equal_var=False)
        ci = t.confidence_interval(LEVEL)
        out.test = "Welch's t-test (two-sided)"
        out.statistic_name, out.statistic = "t", float(t.statistic)
        out.df, out.p = float(t.df), float(t.pvalue)
        g, lo, hi = hedges_g(x, y)
        out.effect_name, out.effect, out.effect_ci = f"Hedges' g ({label})", g, (lo, hi)
        out.difference_name = f"difference in means ({label}), Welch t interval"
        out.difference = float(x.mean() - y.mean())
        out.difference_ci = (float(ci.low), float(ci.high))
    else:
        mw = sps.mannwhitneyu(x, y, alternative="two-sided")
        out.test = "Mann-Whitney U (two-sided)"
        out.statistic_name, out.statistic = f"U ({names[0]})", float(mw.statistic)
        out.p = float(mw.pvalue)
        _, r, lo, hi = rank_biserial(x, y)
        if not math.isfinite(lo):
            out.notes.append("the groups do not overlap (|r| = 1): no interval for r")
        out.effect_name, out.effect, out.effect_ci = (f"rank-biserial r ({label})", r,
                                                      (lo, hi))
        est, dlo, dhi = hodges_lehmann_shift(x, y)
        out.difference_name = (f"Hodges-Lehmann shift ({label}), distribution-free "
                               "interval")
        out.difference, out.difference_ci = est, (dlo, dhi)
        if not math.isfinite(dlo):
            out.notes.append("too few devices for a distribution-free 95 % interval of the "
                             "shift")


def _many(out: Comparison, arrays: list[np.ndarray], *, normal: bool) -> None:
    allv = np.concatenate(arrays)
    n, k = allv.size, len(arrays)
    if normal:
        f = sps.f_oneway(*arrays)
        out.test = "one-way ANOVA"
        out.statistic_name, out.statistic = "F", float(f.statistic)
        out.df, out.p = float(k - 1), float(f.pvalue)
        ss_total = float(((allv - allv.mean()) ** 2).sum())
        ss_between = sum(a.size * float(a.mean() - allv.mean()) ** 2 for a in arrays)
        out.effect_name = "eta squared (SS between / SS total)"
        out.effect = ss_between / ss_total if ss_total > 0 else math.nan
        out.notes.append(f"F with {k - 1} and {n - k} degrees of freedom")
    else:
        h = sps.kruskal(*arrays)
        out.test = "Kruskal-Wallis H"
        out.statistic_name, out.statistic = "H", float(h.statistic)
        out.df, out.p = float(k - 1), float(h.pvalue)
        out.effect_name = "eta squared H ((H - k + 1)/(n - k), Tomczak & Tomczak 2014)"
        out.effect = (float(h.statistic) - k + 1) / (n - k) if n > k else math.nan


__all__ = ["CHOICE_RULE", "UNIT_RULE", "Comparison", "GroupSummary", "compare_groups",
           "hedges_g", "hodges_lehmann_shift", "rank_biserial", "summarise"]

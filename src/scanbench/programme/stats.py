"""Statistics of the programme's clinical evaluation (issue 14 §4): agreement between
readers, means with confidence intervals, and the paired comparison of two models.

Every function is pure (no store) and uses a maintained library for the estimator:

* weighted Cohen's kappa: scikit-learn ``cohen_kappa_score`` (Cohen 1968, linear or
  quadratic disagreement weights);
* intraclass correlation: pingouin ``intraclass_corr``, all six forms of Shrout &
  Fleiss (1979) named also as McGraw & Wong (1996): ICC(1,1) one-way random; ICC(2,1)
  = ICC(A,1) two-way random, absolute agreement, single rater; ICC(3,1) = ICC(C,1)
  two-way mixed, consistency, single rater; and the ``k``-rater means of each;
* the mean of a criterion with a Student-t confidence interval (scipy);
* the paired comparison: Wilcoxon signed-rank test (scipy ``wilcoxon``, exact for small
  samples without ties), the matched-pairs rank-biserial correlation as effect size
  (Kerby 2014), and the Hodges-Lehmann estimate of the shift with its distribution-free
  confidence interval from the Walsh averages (Hollander & Wolfe 1999, section 3.3);
* the smallest difference a paired design could detect (two-sided alpha, power), by the
  normal approximation of the paired t-test: (z(1-alpha/2) + z(power)) * SD(diff) /
  sqrt(n) (e.g. Chow, Shao & Wang 2008, section 3.1).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from scanbench.errors import InputError

#: Shrout & Fleiss (1979) name -> (McGraw & Wong 1996 name as pingouin reports it, form).
ICC_FORMS: dict[str, tuple[str, str]] = {
    "ICC(1,1)": ("ICC(1,1)", "one-way random effects, single rater"),
    "ICC(2,1)": ("ICC(A,1)", "two-way random effects, absolute agreement, single rater"),
    "ICC(3,1)": ("ICC(C,1)", "two-way mixed effects, consistency, single rater"),
    "ICC(1,k)": ("ICC(1,k)", "one-way random effects, mean of k raters"),
    "ICC(2,k)": ("ICC(A,k)", "two-way random effects, absolute agreement, mean of k raters"),
    "ICC(3,k)": ("ICC(C,k)", "two-way mixed effects, consistency, mean of k raters"),
}
#: The form reported by default for readers of a reader study: readers are a sample of
#: the readers who could read, and a score must agree in value, not only in rank.
DEFAULT_ICC = "ICC(2,1)"


@dataclass(frozen=True)
class Interval:
    """An estimate with its two-sided confidence interval and how it was computed."""

    estimate: float
    low: float
    high: float
    level: float
    method: str
    n: int

    def as_dict(self) -> dict[str, Any]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high,
                "level": self.level, "method": self.method, "n": self.n}


_preload_lock = threading.Lock()
_preloaded: threading.Thread | None = None


def preload_in_background() -> threading.Thread:
    """Import the libraries behind :func:`weighted_kappa` and :func:`icc` (scikit-learn's
    metrics, pandas, pingouin) in a daemon thread, once per process; returns that thread.
    They are imported at first use so that a node that never shows a reader study's
    results never pays for them; the first results page paid the imports (1.2 s at load
    4, about 12 s measured on a loaded 2-core machine, then 0.07 s). The reader-study
    list page, the way to the results, starts this so the imports are done (or under
    way) when the results are asked for."""
    global _preloaded
    with _preload_lock:
        if _preloaded is None:
            def load() -> None:
                import pandas  # noqa: F401
                import pingouin  # noqa: F401
                import sklearn.metrics  # noqa: F401

            _preloaded = threading.Thread(target=load, name="stats-preload", daemon=True)
            _preloaded.start()
        return _preloaded


def weighted_kappa(a: Sequence[int], b: Sequence[int], weights: str | None = "linear",
                   labels: Sequence[int] | None = None) -> float:
    """Cohen's kappa between two readers' scores of the same cases; ``weights`` linear
    or quadratic (Cohen 1968) or ``None`` (Cohen 1960). ``labels``: the whole scale
    (e.g. 1..5), so that the weights use the scale's distances even if some score was
    never given."""
    from sklearn.metrics import cohen_kappa_score

    if weights not in (None, "linear", "quadratic"):
        raise InputError(f"kappa weights must be linear, quadratic or none, not {weights!r}")
    if len(a) != len(b) or len(a) < 2:
        raise InputError(f"kappa needs the same cases scored by both readers (got {len(a)} "
                         f"and {len(b)} scores; at least 2)")
    value = float(cohen_kappa_score(list(a), list(b), weights=weights,
                                    labels=list(labels) if labels is not None else None))
    return value


def icc(table: Sequence[Sequence[float]], form: str = DEFAULT_ICC) -> dict[str, Any]:
    """The intraclass correlation of ``table`` (one row per case, one column per reader,
    every reader scoring every case) in the Shrout & Fleiss form ``form``, with its F
    test and 95 % confidence interval as pingouin computes them (McGraw & Wong 1996)."""
    import pandas as pd
    import pingouin as pg

    if form not in ICC_FORMS:
        raise InputError(f"unknown ICC form {form!r}; one of {', '.join(ICC_FORMS)}")
    arr = np.asarray(table, dtype=float)
    if arr.ndim != 2 or arr.shape[0] < 3 or arr.shape[1] < 2:
        raise InputError(f"ICC needs at least 3 cases each scored by at least 2 readers "
                         f"(got a {arr.shape} table)")
    if not np.all(np.isfinite(arr)):
        raise InputError("ICC needs every reader to score every case (a score is missing)")
    long = pd.DataFrame([(i, j, arr[i, j]) for i in range(arr.shape[0])
                         for j in range(arr.shape[1])], columns=["case", "reader", "score"])
    with np.errstate(divide="ignore", invalid="ignore"):  # perfect agreement: F infinite
        out = pg.intraclass_corr(data=long, targets="case", raters="reader",
                                 ratings="score")
    mw_name, description = ICC_FORMS[form]
    row = out.set_index("Type").loc[mw_name]
    ci = list(row["CI95"])
    return {"form": form, "mcgraw_wong": mw_name, "description": description,
            "icc": float(row["ICC"]), "f": float(row["F"]), "df1": int(row["df1"]),
            "df2": int(row["df2"]), "p": float(row["pval"]),
            "ci_low": float(ci[0]), "ci_high": float(ci[1]), "level": 0.95,
            "cases": int(arr.shape[0]), "readers": int(arr.shape[1]),
            "source": "Shrout & Fleiss 1979; McGraw & Wong 1996 (pingouin intraclass_corr)"}


def mean_ci(values: Sequence[float], level: float = 0.95,
            bounds: tuple[float, float] | None = None) -> Interval:
    """The mean with its Student-t confidence interval (mean ± t(1-α/2, n-1)·s/√n).

    ``bounds``: the range the values can take (a rating scale, SUS 0-100). The mean of
    such values cannot leave it, but with few, spread values the t interval does (four
    cases on a 1..5 scale gave 0.34 .. 5.99): the interval is then cut at the bounds and
    its method says so, rather than stating means the scale cannot hold (such bound
    violations of small-sample SUS intervals: Clark et al., "Empirical decision rules for
    improving the uncertainty reporting of small sample System Usability Scale scores",
    arXiv:2101.00455, who propose bootstrap or Bayesian intervals instead)."""
    x = np.asarray(values, dtype=float)
    n = int(x.size)
    if n == 0:
        raise InputError("a mean needs at least one value")
    mean = float(x.mean())
    if n == 1:
        return Interval(mean, math.nan, math.nan, level, "Student t (n=1: no interval)", 1)
    se = float(x.std(ddof=1)) / math.sqrt(n)
    t = float(sps.t.ppf(0.5 + level / 2, n - 1))
    low, high, method = mean - t * se, mean + t * se, "Student t"
    if bounds is not None and (low < bounds[0] or high > bounds[1]):
        low, high = max(low, bounds[0]), min(high, bounds[1])
        method = f"Student t, cut at the scale's ends {bounds[0]:g} and {bounds[1]:g}"
    return Interval(mean, low, high, level, method, n)


def hodges_lehmann(d: Sequence[float], level: float = 0.95) -> Interval:
    """The Hodges-Lehmann estimate of a paired shift (the median of the Walsh averages
    (d_i + d_j)/2, i <= j) and its distribution-free interval: the Walsh averages of
    rank C_α and M + 1 - C_α, C_α from the signed-rank distribution (exact for n <= 50
    without ties, scipy; else normal approximation) — Hollander & Wolfe 1999, 3.3."""
    x = np.asarray(d, dtype=float)
    n = int(x.size)
    if n < 2:
        raise InputError("a paired shift needs at least 2 pairs")
    walsh = np.sort(np.array([(x[i] + x[j]) / 2 for i in range(n) for j in range(i, n)]))
    m_total = walsh.size  # n(n+1)/2
    alpha = 1 - level
    if n <= 50:
        # the largest c with P(T+ <= c - 1) <= alpha/2 under H0 (exact null of T+)
        dist = _signed_rank_pmf(n)
        cdf = np.cumsum(dist)
        c = int(np.searchsorted(cdf, alpha / 2, side="right"))  # P(T+ <= c-1) <= alpha/2
    else:
        mean = n * (n + 1) / 4
        sd = math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
        c = math.floor(mean - sps.norm.ppf(1 - alpha / 2) * sd)
    method = "Hodges-Lehmann, signed-rank interval"
    if c < 1:  # too few pairs for this level: no finite interval
        return Interval(float(np.median(walsh)), math.nan, math.nan, level,
                        method + f" (n={n} too small for {level:.0%})", n)
    return Interval(float(np.median(walsh)), float(walsh[c - 1]),
                    float(walsh[m_total - c]), level, method, n)


def _signed_rank_pmf(n: int) -> np.ndarray:
    """The exact null distribution of the Wilcoxon signed-rank statistic T+ for n pairs
    (no ties): counts of subsets of {1..n} by their sum, over 2^n."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1
    for k in range(1, n + 1):
        counts[k:] = counts[k:] + counts[:-k].copy()
    return np.asarray(counts / 2.0 ** n)


def paired_comparison(a: Sequence[float], b: Sequence[float], level: float = 0.95,
                      alpha: float = 0.05, power: float = 0.8) -> dict[str, Any]:
    """Compare paired scores ``a`` and ``b`` (the same cases, e.g. the same patient on
    two models): Wilcoxon signed-rank test (two-sided; zero differences dropped as
    Wilcoxon did), matched-pairs rank-biserial correlation r = (W+ - W-)/(W+ + W-)
    (Kerby 2014), Hodges-Lehmann shift a-b with its interval, and the smallest
    difference this design could detect (normal approximation of a paired t-test)."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.shape != y.shape or x.size < 2:
        raise InputError(f"a paired comparison needs the same cases in both groups "
                         f"(got {x.size} and {y.size}; at least 2 pairs)")
    d = x - y
    nz = d[d != 0]
    out: dict[str, Any] = {"test": "Wilcoxon signed-rank (two-sided)", "pairs": int(d.size),
                           "nonzero_pairs": int(nz.size), "mean_difference": float(d.mean())}
    if nz.size == 0:
        out.update(statistic=None, p=1.0, rank_biserial=0.0)
    else:
        res = sps.wilcoxon(nz)
        ranks = sps.rankdata(np.abs(nz))
        w_plus = float(ranks[nz > 0].sum())
        w_minus = float(ranks[nz < 0].sum())
        out.update(statistic=float(res.statistic), w_plus=w_plus, w_minus=w_minus,
                   p=float(res.pvalue), rank_biserial=(w_plus - w_minus) / (w_plus + w_minus))
    out["effect_size"] = "matched-pairs rank-biserial correlation (Kerby 2014)"
    out["shift"] = hodges_lehmann(d, level).as_dict()
    out["smallest_detectable_difference"] = smallest_detectable_difference(
        float(d.std(ddof=1)), int(d.size), alpha, power)
    return out


def finite(value: Any) -> Any:
    """``value`` with every non-finite float (an interval of one value, the F of perfect
    agreement) replaced by None, recursively: JSON has no NaN or infinity."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def smallest_detectable_difference(sd_diff: float, n: int, alpha: float = 0.05,
                                   power: float = 0.8) -> dict[str, Any]:
    """The smallest mean paired difference a two-sided test at ``alpha`` detects with
    ``power`` given ``n`` pairs whose differences have standard deviation ``sd_diff``:
    (z(1-α/2) + z(power))·SD/√n (normal approximation of the paired t-test)."""
    if n < 2 or not math.isfinite(sd_diff):
        raise InputError("the smallest detectable difference needs at least 2 pairs")
    z = float(sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power))
    return {"value": z * sd_diff / math.sqrt(n), "alpha": alpha, "power": power, "n": n,
            "sd_difference": sd_diff,
            "method": "(z(1-alpha/2) + z(power)) * SD(differences) / sqrt(n)"}

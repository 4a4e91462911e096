"""Trend rules (evaluation/trend.py) against hand-computed constructed series and
against the rules' in-control and out-of-control run lengths (exact Markov chains for the
Westgard rules, Montgomery's and Lucas & Saccucci's ARL tables for CUSUM and EWMA), with
seeded Monte Carlo whose tolerances are binomial / normal at p < 1e-6 (cannot flake)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import binom, norm
from scipy.stats import t as student_t

from scanbench.errors import InputError
from scanbench.evaluation.trend import (
    RULES,
    WESTGARD_RULES,
    Alert,
    BaselineStart,
    Rule,
    TrendPoint,
    TrendReport,
    TrendSettings,
    check_trend,
    ewma_limit,
    first_signal,
    prediction_factor,
)

T0 = dt.datetime(2026, 1, 1, 8, 0, tzinfo=dt.UTC)
Z_TOL = norm.isf(0.5e-6)  # two-sided p < 1e-6


def _series(values: list[float], start: dt.datetime = T0) -> list[TrendPoint]:
    return [TrendPoint(start + dt.timedelta(days=i), v) for i, v in enumerate(values)]


def _first(report: TrendReport, rule: str) -> list[Alert]:
    return [a for a in report.alerts if a.rule == rule]


# --- constructed series, hand-computed points ---------------------------------------------

def test_slow_drift_fires_each_rule_once_at_the_hand_computed_value() -> None:
    # baseline given (10 mm, σ 0.5 mm); z of value m (m = 1, 2, ...) is 0.1 m + 0.02
    z = [0.1 * m + 0.02 for m in range(1, 41)]
    pts = _series([10.0 + 0.5 * v for v in z])
    rep = check_trend("dev1/fwhm", "mm", pts, [BaselineStart(None, mean=10.0, sigma=0.5)])
    # 1-3s: first z > 3 is m = 30; 2-2s: z > 2 from m = 20, two in a row at m = 21;
    # 4-1s: z > 1 from m = 10, four in a row at m = 13; 10x: ten above the mean at m = 10;
    # CUSUM: C = sum_{m=5}^{n} (0.1 m - 0.48) is 4.70 at n = 14 and 5.72 at n = 15 > h = 5,
    # its excursion started at m = 5 (z = 0.52 > k).
    expected = {"1-3s": (29, 29), "2-2s": (20, 19), "4-1s": (12, 9), "10x": (9, 0),
                "cusum": (14, 4)}
    # EWMA by the plain recursion against L sqrt(λ/(2-λ)) = 0.98733
    e, lim, i_ewma = 0.0, 2.962 * math.sqrt(0.2 / 1.8), None
    for i, v in enumerate(z):
        e = 0.2 * v + 0.8 * e
        if e > lim:
            i_ewma = i
            break
    assert i_ewma is not None
    expected["ewma"] = (i_ewma, i_ewma)
    for rule, (idx, first) in expected.items():
        alerts = _first(rep, rule)
        assert len(alerts) == 1, rule  # the drift keeps the rule holding: told once
        a = alerts[0]
        assert (a.index, a.first_index, a.direction) == (idx, first, "high"), rule
        assert a.key == f"dev1/fwhm|{rule}|high|{pts[first].time.isoformat()}"
        assert "mm" in a.message
    assert not _first(rep, "R-4s")
    assert abs(rep.alerts[[a.rule for a in rep.alerts].index("cusum")].statistic - 5.72) < 1e-9


def test_step_after_estimated_baseline_fires_at_hand_computed_values() -> None:
    base = [10.5, 9.5] * 10  # mean 10, sd 0.5·sqrt(20/19) = 0.51299
    rep = check_trend("m", "HU", _series(base + [12.0] * 12))
    seg = rep.segments[0]
    assert seg.mean == pytest.approx(10.0)
    assert seg.sigma == pytest.approx(0.5 * math.sqrt(20 / 19))
    assert (seg.judged_from, seg.baseline_points) == (20, 20)
    assert seg.band(3) == pytest.approx((10 - 3 * seg.sigma, 10 + 3 * seg.sigma))
    # z = 2 / 0.51299 = 3.899: 1-3s at the 1st step value, 2-2s at the 2nd, 4-1s at the
    # 4th, 10x at the 10th; CUSUM 3.399 then 6.798 > 5 at the 2nd; EWMA 0.780 then 1.404 >
    # 0.987 at the 2nd.
    got = {a.rule: a.index for a in rep.alerts}
    assert got == {"1-3s": 20, "2-2s": 21, "4-1s": 23, "10x": 29, "cusum": 21, "ewma": 21}
    assert rep.alerts[0].statistic == pytest.approx(2 / seg.sigma)
    two = next(a for a in rep.alerts if a.rule == "2-2s")
    assert two.message.startswith("2-2s (Westgard): 2 consecutive values beyond the upper 2σ "
                                  "limit, the last 12 HU (+3.90σ); baseline 10 HU, σ 0.513 HU "
                                  "estimated from 20 values from 2026-01-01T08:00:00+00:00")


def test_r4s_and_low_side() -> None:
    rep = check_trend("m", "%", _series([0.0, 2.5, -2.5, 0.0, -3.5]),
                      [BaselineStart(None, mean=0.0, sigma=1.0)],
                      TrendSettings(rules=("R-4s", "1-3s")))
    assert [(a.rule, a.index, a.direction, a.first_index) for a in rep.alerts] == [
        ("R-4s", 2, "low", 1), ("1-3s", 4, "low", 4)]


def test_new_baseline_after_service_restarts_the_rules() -> None:
    before = [10.5, 9.5] * 10 + [12.0] * 5
    after = [12.5, 11.5] * 10 + [12.0] * 20  # the repaired device settles around 12
    pts = _series(before + after)
    service = pts[len(before)].time - dt.timedelta(hours=2)
    plain = check_trend("m", "HU", pts)
    marked = check_trend("m", "HU", pts, [BaselineStart(service, reason="tube replaced")])
    assert [s.start for s in marked.segments] == [0, 25]
    assert marked.segments[1].judged_from == 45 and marked.segments[1].mean == pytest.approx(12)
    assert marked.segments[1].reason == "tube replaced"
    # before the service the same alerts (same keys); after it, nothing: 12 is the new normal
    assert [a.key for a in marked.alerts] == [a.key for a in plain.alerts if a.index < 25]
    assert all(a.index < 25 for a in marked.alerts)
    assert any(a.index >= 25 for a in plain.alerts)


def test_rerun_and_appended_values_give_the_same_alerts() -> None:
    rng = np.random.default_rng(11)
    values = list(10 + rng.standard_normal(120))
    values[60:] = [v + 1.5 for v in values[60:]]
    first = check_trend("m", "mm", _series(values[:90]))
    assert first.alerts  # the shift is caught
    again = check_trend("m", "mm", _series(values[:90]))
    assert again == first
    longer = check_trend("m", "mm", _series(values))
    # appended values only end what was still open: every other field stays
    assert [a if a.end_index is not None else replace(b, end_index=None)
            for a, b in zip(first.alerts, longer.alerts, strict=False)] == list(first.alerts)
    keys = [a.key for a in longer.alerts]
    assert len(keys) == len(set(keys))


def test_short_baseline_zero_sigma_and_refused_values_are_said() -> None:
    rep = check_trend("m", "mm", _series([1.0] * 5))
    assert not rep.alerts and not rep.segments
    assert "5 of the 20 values" in rep.notes[0]
    flat = check_trend("m", "mm", _series([1.0] * 30))
    assert not flat.alerts and "σ = 0" in flat.notes[0]
    vals = [10.5, 9.5] * 10 + [float("nan"), 12.0, 12.0]
    rep = check_trend("m", "mm", _series(vals))
    assert "1 value(s) not finite" in rep.notes[0]
    assert {a.rule: a.index for a in rep.alerts}["2-2s"] == 22  # NaN skipped, not a break


def test_bad_series_named() -> None:
    pts = _series([1.0, 2.0, 3.0])
    with pytest.raises(InputError, match=r"dev7/snr.*value 2 .* comes before value 1"):
        check_trend("dev7/snr", "1", [pts[0], pts[2], pts[1]])
    naive = TrendPoint(dt.datetime(2026, 1, 5), 1.0)
    with pytest.raises(InputError, match=r"dev7/snr.*mix timezone-aware and naive"):
        check_trend("dev7/snr", "1", [*pts, naive])
    with pytest.raises(InputError, match="unknown trend rule"):
        TrendSettings(rules=("2-3s",))  # type: ignore[arg-type]


# --- in-control false alarms ---------------------------------------------------------------

def _westgard_chain(rule: str) -> tuple[np.ndarray, np.ndarray]:
    """(Q, start) of the exact Markov chain of a Westgard rule on iid N(0, 1) values
    (transient states only; Brook & Evans 1972). P(no signal in n) = start Qⁿ 1."""
    if rule == "R-4s":
        p = norm.sf(2.0)  # states: last value high, low, neither
        q = np.array([[0, 0, 0], [0, 0, 0], [0, 0, 0]], dtype=float)
        q[0] = [p, 0.0, 1 - 2 * p]  # after high: low signals
        q[1] = [0.0, p, 1 - 2 * p]
        q[2] = [p, p, 1 - 2 * p]
        return q, np.array([0.0, 0.0, 1.0])
    c, w = {"1-3s": (3.0, 1), "2-2s": (2.0, 2), "4-1s": (1.0, 4), "10x": (0.0, 10)}[rule]
    p = norm.sf(c)
    # states: 0 = no run; 1..w-1 = high run of that length; w..2w-2 = low run
    ns = 1 + 2 * (w - 1)
    q = np.zeros((ns, ns))
    for s in range(ns):
        high_run = s if 1 <= s <= w - 1 else 0
        low_run = s - (w - 1) if s >= w else 0
        q[s, 0] = 1 - 2 * p
        if high_run + 1 < w:
            q[s, high_run + 1] = p
        if low_run + 1 < w:
            q[s, (w - 1) + low_run + 1] = p
    start = np.zeros(ns)
    start[0] = 1.0
    return q, start


def _p_signal_within(rule: str, n: int) -> float:
    q, start = _westgard_chain(rule)
    return float(1.0 - start @ np.linalg.matrix_power(q, n) @ np.ones(len(start)))


def test_markov_chain_reproduces_the_known_arl0_of_1_3s_and_10x() -> None:
    q, start = _westgard_chain("1-3s")
    arl0 = float(start @ np.linalg.solve(np.eye(len(q)) - q, np.ones(len(q))))
    assert arl0 == pytest.approx(1 / (2 * norm.sf(3)), rel=1e-12)  # 370.4
    q, start = _westgard_chain("10x")  # a run of 10 of a fair coin: 2^10 - 1 tosses
    assert float(start @ np.linalg.solve(np.eye(len(q)) - q, np.ones(len(q)))) == \
        pytest.approx(1023.0, rel=1e-9)


@pytest.mark.parametrize("rule", WESTGARD_RULES)
def test_noise_only_westgard_false_alarms_match_the_exact_rate(rule: Rule) -> None:
    n_series, n = 2000, 100
    z = np.random.default_rng(1000 + WESTGARD_RULES.index(rule)).standard_normal((n_series, n))
    fired = int((first_signal(z, rule) >= 0).sum())
    p = _p_signal_within(rule, n)
    lo, hi = binom.ppf(0.5e-6, n_series, p), binom.isf(0.5e-6, n_series, p)
    assert lo <= fired <= hi, (rule, fired, p * n_series)


@pytest.mark.parametrize(("rule", "arl0"), [("cusum", 465.0), ("ewma", 500.0)])
def test_noise_only_cusum_ewma_arl0_matches_the_literature(rule: Rule, arl0: float) -> None:
    # Montgomery's tabular-CUSUM ARL table (k = 0.5, h = 5: ARL0 465); Lucas & Saccucci
    # 1990 (λ = 0.2, L = 2.962: ARL0 500). Run lengths are nearly geometric (sd ≈ mean).
    n_series, cap = 2000, 5000
    z = np.random.default_rng(7 + RULES.index(rule)).standard_normal((n_series, cap))
    f = first_signal(z, rule)
    rl = np.where(f >= 0, f + 1, cap).astype(float)
    assert abs(rl.mean() - arl0) < Z_TOL * arl0 / math.sqrt(n_series) + 0.01 * arl0


@pytest.mark.parametrize(("rule", "shift", "arl1"),
                         [("cusum", 1.0, 10.4), ("cusum", 0.5, 38.0), ("cusum", 2.0, 4.01),
                          ("1-3s", 1.0, 1 / (norm.sf(2) + norm.cdf(-4))),
                          ("1-3s", 2.0, 1 / (norm.sf(1) + norm.cdf(-5)))])
def test_step_is_caught_after_the_expected_run_length(rule: Rule, shift: float,
                                                      arl1: float) -> None:
    # out-of-control ARL: Montgomery's tabular-CUSUM ARL table, 1 / P(|z + δ| > 3) for 1-3s
    n_series = 2000
    z = np.random.default_rng(99).standard_normal((n_series, 1500)) + shift
    f = first_signal(z, rule)
    assert (f >= 0).all()
    rl = f + 1.0
    assert abs(rl.mean() - arl1) < Z_TOL * rl.std() / math.sqrt(n_series) + 0.01 * arl1


def test_check_trend_agrees_with_the_array_rules_on_noise() -> None:
    rng = np.random.default_rng(3)
    for seed in range(40):
        z = rng.standard_normal(60)
        rep = check_trend(f"s{seed}", "1", _series(list(5.0 + 2.0 * z)),
                          [BaselineStart(None, mean=5.0, sigma=2.0)])
        for rule in RULES:
            f = int(first_signal(z[None, :], rule)[0])
            got = [a.index for a in rep.alerts if a.rule == rule]
            assert (min(got) if got else -1) == f, (seed, rule)
    assert ewma_limit(0.2, 2.962) == pytest.approx(0.98733, abs=1e-5)


def test_slow_drift_is_caught_earlier_by_cusum_and_ewma_than_by_1_3s() -> None:
    # a drift of 0.05σ per value in unit noise: CUSUM and EWMA (the drift rules) fire
    # after about 20 values, 1-3s after about 30 (2000 seeded series: the gap of ~10
    # values is 40 standard errors, so the 5-value margin cannot flake)
    z = np.random.default_rng(42).standard_normal((2000, 400)) + 0.05 * np.arange(1, 401)
    mean_rl = {r: float((first_signal(z, r) + 1).mean()) for r in ("1-3s", "cusum", "ewma")}
    assert mean_rl["cusum"] < mean_rl["1-3s"] - 5
    assert mean_rl["ewma"] < mean_rl["1-3s"] - 5
    assert 15 < mean_rl["cusum"] < 26  # noiseless, CUSUM would cross h at value 24


@pytest.mark.parametrize(("rule", "p100"), [("cusum", 0.187), ("ewma", 0.179)])
def test_noise_only_cusum_ewma_false_alarms_in_100_values(rule: Rule, p100: float) -> None:
    # the per-series rates documented in docs/evaluation.md (100,000 simulated series,
    # standard error 0.0012), binomial interval at p < 1e-6 on each side
    n_series = 2000
    z = np.random.default_rng(500 + RULES.index(rule)).standard_normal((n_series, 100))
    fired = int((first_signal(z, rule) >= 0).sum())
    assert binom.ppf(0.5e-6, n_series, p100) <= fired <= binom.isf(0.5e-6, n_series, p100)


def test_moving_range_sigma_by_hand() -> None:
    base = [10.5, 9.5] * 10  # every moving range is 1.0: σ = 1 / 1.128
    rep = check_trend("m", "mm", _series([*base, 13.0]),
                      settings=TrendSettings(sigma_method="moving_range"))
    assert rep.segments[0].sigma == pytest.approx(1 / 1.128)
    # z = 3 · 1.128 = 3.384 > 3: 1-3s fires (with the sample sd 0.513 it would be 5.8)
    assert rep.alerts[0].rule == "1-3s"
    assert rep.alerts[0].statistic == pytest.approx(3 * 1.128)


def test_alerts_of_one_episode_and_their_ends() -> None:
    # a given baseline (0, σ 1): a 4σ step on values 3-5, then 0 again. 1-3s fires at 3
    # and ends at 6 (|z| <= 2, not holding); CUSUM C = 3.5, 7, 10.5 fires at 4 (> 5)
    # and falls by 0.5 a value: 5.0 <= h at value 16; its alert joins 1-3s's episode (it
    # fired while 1-3s was open). A lone 3.5σ value at 30 opens a second episode.
    values = [0.0] * 3 + [4.0] * 3 + [0.0] * 24 + [3.5] + [0.0] * 5
    rep = check_trend("m", "1", _series(values), [BaselineStart(None, mean=0.0, sigma=1.0)],
                      TrendSettings(rules=("1-3s", "cusum")))
    got = [(a.rule, a.index, a.end_index, a.episode_index) for a in rep.alerts]
    assert got == [("1-3s", 3, 6, 3), ("cusum", 4, 16, 3), ("1-3s", 30, 31, 30)]
    assert rep.alerts[1].episode_time == _series(values)[3].time


def test_prediction_factor_and_widened_sigma() -> None:
    # Student prediction interval: sqrt(1 + 1/30) t_29(0.99865) / z(0.99865)
    assert prediction_factor(30) == pytest.approx(
        math.sqrt(1 + 1 / 30) * student_t.isf(0.00135, 29) / norm.isf(0.00135), rel=1e-9)
    base = [10.5, 9.5] * 15
    rep = check_trend("m", "mm", _series([*base, 10.0]),
                      settings=TrendSettings(baseline_points=30, prediction_limits=True))
    seg = rep.segments[0]
    assert seg.sample_sigma == pytest.approx(0.5 * math.sqrt(30 / 29))
    assert seg.sigma == pytest.approx(seg.sample_sigma * prediction_factor(30))
    assert (seg.judged_from, seg.sigma_factor) == (30, pytest.approx(1.11155, abs=1e-5))


def test_cusum_of_one_series_equals_the_array_recursion() -> None:
    """The Python-float CUSUM of one series (trend._cusum_1d) gives exactly what the
    numpy recursion gives for the same series as a row: NaN kept, exact zeros at the
    floor (value = k), infinities, every sign bit."""
    from scanbench.evaluation import trend

    rng = np.random.default_rng(11)
    for trial in range(60):
        n = int(rng.integers(0, 300))
        z = rng.normal(0.0, 2.0, n)
        if n:
            z[rng.random(n) < 0.05] = np.nan
            z[rng.random(n) < 0.03] = 0.5
            z[rng.random(n) < 0.01] = np.inf
        k = float(rng.choice([0.0, 0.5, 1.0]))
        one = trend.cusum(z, k, 4.0)
        rows = trend.cusum(z[None, :], k, 4.0)
        for a, b in zip(one, rows, strict=True):
            assert np.array_equal(a, b[0], equal_nan=True), trial
            assert np.array_equal(np.signbit(a), np.signbit(b[0])), trial

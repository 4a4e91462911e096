"""Trend rules for one measurement of one device over time: Shewhart / Westgard rules,
tabular CUSUM and EWMA, each against a baseline that restarts at marked events.

Method
------
Each *segment* of the series (from its start, or from a marked new baseline such as a
service event or a software upgrade, to the next one) has a baseline mean μ0 and
standard deviation σ: either given (a target stated by the user) or estimated from the
segment's first ``points`` values (phase I), which are then not judged. Every later
value x of the segment (phase II) is standardised, z = (x − μ0) / σ, and the rules run on
z, so their constants are in units of σ:

* ``1-3s``  one value beyond μ0 ± 3σ (Westgard et al. 1981, Clin Chem 27:493);
* ``2-2s``  two consecutive values beyond the same 2σ limit;
* ``R-4s``  two consecutive values, one beyond +2σ and the other beyond −2σ (Westgard's
  "range" rule, applied across consecutive runs because a device's QC gives one value
  per run);
* ``4-1s``  four consecutive values beyond the same 1σ limit;
* ``10x``   ten consecutive values on the same side of μ0;
* ``cusum`` the two one-sided tabular CUSUMs C⁺ᵢ = max(0, C⁺ᵢ₋₁ + zᵢ − k) and
  C⁻ᵢ = max(0, C⁻ᵢ₋₁ − zᵢ − k), starting at 0, signalling when one exceeds h
  (Montgomery, *Introduction to Statistical Quality Control*, chapter 9; default
  k = 0.5σ, h = 5σ);
* ``ewma``  Eᵢ = λ zᵢ + (1 − λ) Eᵢ₋₁, E₀ = 0, signalling beyond ± L √(λ / (2 − λ))
  (the asymptotic limits for which Lucas & Saccucci 1990, Technometrics 32:1, tabulate
  the ARLs; default λ = 0.2, L = 2.962, in-control ARL about 500).

The in-control false-alarm behaviour of each rule (per-series probability and ARL0) is
stated in docs/evaluation.md with how it was obtained.

Alerts
------
A rule *holds* at a value when the condition above is true for the window ending there.
An alert is raised where a rule starts to hold; while it keeps holding at the following
values it is the same episode, and no new alert is raised, so a persisting step is told
once (a CUSUM excursion is one episode until the statistic is back at 0). Each alert
carries a stable ``key``: measurement, rule, direction and the time of the first
offending value (the first value of the window for the run rules, the start of
the excursion for CUSUM). Every statistic uses only the values up to the one judged and a
baseline fixed once its points are in, so re-running on the same data, or on the same
data with later values appended, gives the same alerts with the same keys.

Why written by hand: statsmodels offers CUSUM tests of regression residuals (Brown,
Durbin & Evans), not the tabular CUSUM, EWMA or Westgard rules of a control chart, and
scipy has no control charts; only the EWMA recursion uses a library
(``scipy.signal.lfilter``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from scanbench.errors import InputError

Rule = Literal["1-3s", "2-2s", "R-4s", "4-1s", "10x", "cusum", "ewma"]
RULES: tuple[Rule, ...] = ("1-3s", "2-2s", "R-4s", "4-1s", "10x", "cusum", "ewma")
WESTGARD_RULES: tuple[Rule, ...] = ("1-3s", "2-2s", "R-4s", "4-1s", "10x")

# (limit in σ, number of consecutive values) of the Westgard rules that look at one side
_RUNS: dict[str, tuple[float, int]] = {"1-3s": (3.0, 1), "2-2s": (2.0, 2),
                                       "4-1s": (1.0, 4), "10x": (0.0, 10)}
_D2_N2 = 1.128  # d2 for subgroups of 2: σ ≈ mean moving range / d2 (Montgomery, appendix)


@dataclass(frozen=True)
class TrendPoint:
    """One value of the measurement: when it was measured, the value and its standard
    uncertainty (both in the series' unit; the uncertainty is reported, not used: σ of
    the baseline already holds the measurement noise)."""

    time: dt.datetime
    value: float
    uncertainty: float | None = None


@dataclass(frozen=True)
class BaselineStart:
    """A new baseline from ``time`` on (None: the start of the series).

    ``mean`` and ``sigma`` (in the series' unit) fix the baseline; whichever is not
    given is estimated from the segment's first ``points`` values (None: the settings'
    ``baseline_points``), which are then only used for the baseline, not judged.
    ``reason`` says why (e.g. "detector replaced").
    """

    time: dt.datetime | None = None
    points: int | None = None
    mean: float | None = None
    sigma: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class TrendSettings:
    """Which rules run and their constants (k, h and L in units of σ; λ no unit).

    ``sigma_method``: "sd" is the sample standard deviation of the baseline values
    (n − 1); "moving_range" is the mean moving range / 1.128, which a slow drift inside
    the baseline inflates less (Montgomery, chapter 6, individuals charts).

    ``baseline_points``: values a baseline is estimated from when its
    :class:`BaselineStart` does not say. ``prediction_limits``: scale an *estimated* σ
    by the prediction-interval factor √(1 + 1/n) · t₍ₙ₋₁₎(1 − α/2) / z(1 − α/2), α =
    0.0027 (the 3σ two-sided rate), so that a new value falls outside μ̂0 ± 3σ̂ with the
    nominal probability although μ̂0 and σ̂ come from n values (the Student prediction
    interval for one future observation; Hahn & Meeker, *Statistical Intervals*, Wiley
    1991, section 4.6). 1.111 for n = 30, 1.177 for n = 20.
    """

    rules: tuple[Rule, ...] = RULES
    cusum_k: float = 0.5
    cusum_h: float = 5.0
    ewma_lambda: float = 0.2
    ewma_l: float = 2.962
    sigma_method: Literal["sd", "moving_range"] = "sd"
    baseline_points: int = 20
    prediction_limits: bool = False

    def __post_init__(self) -> None:
        unknown = [r for r in self.rules if r not in RULES]
        if unknown:
            raise InputError(f"unknown trend rule(s) {unknown}; known: {list(RULES)}")
        if not (0.0 < self.ewma_lambda <= 1.0):
            raise InputError(f"EWMA λ must be in (0, 1], got {self.ewma_lambda}")
        if self.cusum_h <= 0 or self.cusum_k < 0 or self.ewma_l <= 0:
            raise InputError("CUSUM h and EWMA L must be positive and CUSUM k not negative")
        if self.baseline_points < 2:
            raise InputError(f"a baseline needs at least 2 values, got {self.baseline_points}")


@dataclass(frozen=True)
class Segment:
    """One baseline period and the values judged against it (indices into the input;
    ``end`` exclusive). ``judged_from`` is the first judged index (== ``end`` when the
    baseline could not be formed)."""

    start: int
    end: int
    judged_from: int
    start_time: dt.datetime
    mean: float
    sigma: float
    baseline_points: int  # values used to estimate the baseline (0: both given)
    reason: str = ""
    #: the σ estimated from the baseline values before the prediction-interval factor
    #: (``sigma`` = ``sample_sigma`` × ``sigma_factor``); None when σ was given
    sample_sigma: float | None = None
    sigma_factor: float = 1.0

    def band(self, k: float) -> tuple[float, float]:
        """μ0 − kσ, μ0 + kσ in the series' unit (the ±2σ / ±3σ bands of a chart)."""
        return self.mean - k * self.sigma, self.mean + k * self.sigma


@dataclass(frozen=True)
class Alert:
    """One rule breaking. ``statistic`` is z of the value for the Westgard rules, C⁺ or
    C⁻ for CUSUM and E for EWMA, all in units of σ; ``limit`` is what it crossed (σ)."""

    key: str
    measurement: str
    rule: Rule
    direction: Literal["high", "low"]
    index: int
    time: dt.datetime
    value: float
    unit: str
    uncertainty: float | None
    statistic: float
    limit: float
    first_index: int
    first_time: dt.datetime
    baseline_mean: float
    baseline_sigma: float
    message: str
    #: first index after ``index`` where the series is back in control for this alert
    #: (inside μ0 ± 2σ and its rule no longer holding on its side), or the first value
    #: of the next baseline segment; None: still open at the end of the series
    end_index: int | None = None
    #: the index and time of the value that opened this alert's episode (module doc)
    episode_index: int = -1
    episode_time: dt.datetime | None = None


@dataclass(frozen=True)
class TrendReport:
    """The alerts of one measurement series, its segments (for the chart) and notes on
    what could not be judged."""

    measurement: str
    unit: str
    segments: tuple[Segment, ...]
    alerts: tuple[Alert, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)


# --- rules on standardised values (arrays with time on the last axis) -------------------

def run_rule(z: NDArray[np.float64], rule: str) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Where a Westgard rule holds, high side and low side, for z of shape (..., n).

    A window that would reach before the first value does not hold. For ``R-4s`` "high"
    means the second value of the pair is the high one.
    """
    z = np.asarray(z, dtype=float)
    n = z.shape[-1]
    if rule == "R-4s":
        hi = np.zeros(z.shape, dtype=bool)
        lo = np.zeros(z.shape, dtype=bool)
        hi[..., 1:] = (z[..., 1:] > 2.0) & (z[..., :-1] < -2.0)
        lo[..., 1:] = (z[..., 1:] < -2.0) & (z[..., :-1] > 2.0)
        return hi, lo
    limit, w = _RUNS[rule]
    out = []
    for beyond in (z > limit, z < -limit):
        holds = np.zeros(z.shape, dtype=bool)
        if n >= w:
            win = np.lib.stride_tricks.sliding_window_view(beyond, w, axis=-1)
            holds[..., w - 1:] = win.all(axis=-1)
        out.append(holds)
    return out[0], out[1]


def cusum(z: NDArray[np.float64], k: float, h: float
          ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Tabular CUSUM statistics (C⁺, C⁻) of z (..., n), both starting at 0, k and h in σ.

    ``h`` is unused here (the caller compares); it is taken so the signature states the
    scheme."""
    z = np.asarray(z, dtype=float)
    if z.ndim == 1:
        return _cusum_1d(z.tolist(), k)
    cp = np.zeros(z.shape)
    cm = np.zeros(z.shape)
    up = np.zeros(z.shape[:-1])
    dn = np.zeros(z.shape[:-1])
    for i in range(z.shape[-1]):  # a recursion with a floor at 0: no closed form
        up = np.maximum(0.0, up + z[..., i] - k)
        dn = np.maximum(0.0, dn - z[..., i] - k)
        cp[..., i] = up
        cm[..., i] = dn
    return cp, cm


def _cusum_1d(z: list[float], k: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """:func:`cusum` of one series with Python floats: the same IEEE operations and the
    same result as ``np.maximum(0.0, x)`` (NaN kept, ±0 -> 0.0), about 4x faster than
    four numpy calls per value (the device page's control chart of ten years of daily
    values, bench/web.py)."""
    cp = [0.0] * len(z)
    cm = [0.0] * len(z)
    up = dn = 0.0
    for i, zi in enumerate(z):
        u = up + zi - k
        up = u if (u > 0.0 or u != u) else 0.0
        d = dn - zi - k
        dn = d if (d > 0.0 or d != d) else 0.0
        cp[i] = up
        cm[i] = dn
    return np.array(cp, dtype=float), np.array(cm, dtype=float)


def ewma(z: NDArray[np.float64], lam: float) -> NDArray[np.float64]:
    """E of z (..., n): Eᵢ = λ zᵢ + (1 − λ) Eᵢ₋₁ with E₀ = 0."""
    from scipy.signal import lfilter  # here: scipy.signal costs ~1 s to import (issue 15)

    return np.asarray(lfilter([lam], [1.0, -(1.0 - lam)], np.asarray(z, dtype=float),
                              axis=-1), dtype=float)


def ewma_limit(lam: float, big_l: float) -> float:
    """Asymptotic EWMA limit in σ: L √(λ / (2 − λ))."""
    return big_l * math.sqrt(lam / (2.0 - lam))


def rule_holds(z: NDArray[np.float64], rule: Rule, settings: TrendSettings | None = None
               ) -> tuple[NDArray[np.bool_], NDArray[np.bool_],
                          NDArray[np.float64], NDArray[np.float64], float]:
    """(holds high, holds low, statistic high, statistic low, limit) of one rule on z."""
    s = settings or TrendSettings()
    z = np.asarray(z, dtype=float)
    if rule == "cusum":
        cp, cm = cusum(z, s.cusum_k, s.cusum_h)
        return cp > s.cusum_h, cm > s.cusum_h, cp, cm, s.cusum_h
    if rule == "ewma":
        e = ewma(z, s.ewma_lambda)
        lim = ewma_limit(s.ewma_lambda, s.ewma_l)
        return e > lim, e < -lim, e, e, lim
    hi, lo = run_rule(z, rule)
    limit = 2.0 if rule == "R-4s" else _RUNS[rule][0]
    return hi, lo, z, z, limit


def first_signal(z: NDArray[np.float64], rule: Rule, settings: TrendSettings | None = None
                 ) -> NDArray[np.int64]:
    """Index of the first value at which ``rule`` holds on either side, per row of z
    (..., n); −1 where it never does. Its distribution under z ~ N(0, 1) is the rule's
    in-control run length."""
    hi, lo, *_ = rule_holds(z, rule, settings)
    holds = hi | lo
    return np.where(holds.any(axis=-1), holds.argmax(axis=-1), -1).astype(np.int64)


# --- the series ---------------------------------------------------------------------------

def check_trend(measurement: str, unit: str, points: Sequence[TrendPoint],
                restarts: Sequence[BaselineStart] = (),
                settings: TrendSettings | None = None) -> TrendReport:
    """Run the trend rules on a time-ordered series of one measurement of one device.

    ``measurement`` identifies the series in alert keys (e.g. device, analysis, name
    and labels); ``restarts`` are the new baselines (a restart with ``time`` None sets
    the first segment's baseline, otherwise the first segment estimates it from 20
    values). Non-finite values (refused measurements) are skipped with a note. Raises
    :class:`InputError` naming the measurement and the value when times go backwards
    or mix timezone-aware and naive times.
    """
    s = settings or TrendSettings()
    _check_order(measurement, points)
    notes: list[str] = []
    finite = [i for i, p in enumerate(points) if math.isfinite(p.value)]
    if len(finite) < len(points):
        notes.append(f"{len(points) - len(finite)} value(s) not finite (refused or "
                     "missing) were skipped")
    starts = _segment_starts(measurement, points, finite, restarts)
    segments: list[Segment] = []
    alerts: list[Alert] = []
    for j, (pos, start) in enumerate(starts):
        stop = starts[j + 1][0] if j + 1 < len(starts) else len(finite)
        idx = finite[pos:stop]
        if not idx:
            continue
        seg = _baseline(measurement, points, idx, start, s, notes)
        if seg is None:
            continue
        segments.append(seg)
        judged = [i for i in idx if i >= seg.judged_from]
        if not judged:
            continue
        z = (np.array([points[i].value for i in judged]) - seg.mean) / seg.sigma
        # a new baseline after this segment ends what is still open in it
        after = finite[stop] if stop < len(finite) else None
        for rule in s.rules:
            alerts.extend(_alerts(measurement, unit, points, judged, z, rule, seg, s, after))
    alerts.sort(key=lambda a: (a.index, RULES.index(a.rule), a.direction))
    roots = group_episodes([(a.index, a.end_index) for a in alerts])
    alerts = [replace(a, episode_index=r, episode_time=points[r].time)
              for a, r in zip(alerts, roots, strict=True)]
    return TrendReport(measurement, unit, tuple(segments), tuple(alerts), tuple(notes))


def group_episodes(spans: Sequence[tuple[int, int | None]]) -> list[int]:
    """The episode of each alert: ``spans`` are (index where it fired, index where it
    ended or None while open), sorted by the index where it fired. An alert that fires
    while an earlier one is still open (its index before the largest end so far of the
    current episode) joins that episode; otherwise it opens a new one. Returns, per
    alert, the index where its episode opened. Only values up to an alert decide its
    episode, so appending values never moves an alert to another episode."""
    roots: list[int] = []
    root, end = -1, -1  # end -1: no episode open; a large number stands for "still open"
    big = 1 << 62
    for index, stop in spans:
        if roots and index < end:
            roots.append(root)
            end = max(end, big if stop is None else stop)
            continue
        root, end = index, big if stop is None else stop
        roots.append(root)
    return roots


def _check_order(measurement: str, points: Sequence[TrendPoint]) -> None:
    for i in range(1, len(points)):
        a, b = points[i - 1].time, points[i].time
        try:
            backwards = b < a
        except TypeError as exc:
            raise InputError(f"value {i} at {b.isoformat()} and value {i - 1} at "
                             f"{a.isoformat()} mix timezone-aware and naive times",
                             where=measurement) from exc
        if backwards:
            raise InputError(f"values are not in time order: value {i} at {b.isoformat()} "
                             f"comes before value {i - 1} at {a.isoformat()}",
                             where=measurement)


def _segment_starts(measurement: str, points: Sequence[TrendPoint], finite: list[int],
                    restarts: Sequence[BaselineStart]) -> list[tuple[int, BaselineStart]]:
    """(position in ``finite``, baseline) of each segment; a later restart landing on the
    same value as an earlier one replaces it."""
    by_pos: dict[int, BaselineStart] = {0: BaselineStart()}
    for r in restarts:
        if r.time is None:
            by_pos[0] = r
            continue
        try:
            pos = next((k for k, i in enumerate(finite) if points[i].time >= r.time), None)
        except TypeError as exc:
            raise InputError(f"baseline restart at {r.time.isoformat()} and the values mix "
                             "timezone-aware and naive times", where=measurement) from exc
        if pos is not None:
            by_pos[pos] = r
    return sorted(by_pos.items(), key=lambda kv: kv[0])


def _baseline(measurement: str, points: Sequence[TrendPoint], idx: list[int],
              start: BaselineStart, s: TrendSettings, notes: list[str]) -> Segment | None:
    t0 = points[idx[0]].time
    where = f"baseline from {t0.isoformat()}" + (f" ({start.reason})" if start.reason else "")
    if start.mean is not None and start.sigma is not None:
        mean, sigma, used = float(start.mean), float(start.sigma), 0
    else:
        need = max(start.points if start.points is not None else s.baseline_points, 2)
        if len(idx) < need:
            notes.append(f"{where}: {len(idx)} of the {need} values its baseline needs; "
                         "not judged")
            return None
        base = np.array([points[i].value for i in idx[:need]])
        if start.sigma is not None:
            sigma = float(start.sigma)
        elif s.sigma_method == "moving_range":
            sigma = float(np.mean(np.abs(np.diff(base)))) / _D2_N2
        else:
            sigma = float(np.std(base, ddof=1))
        mean = float(start.mean) if start.mean is not None else float(np.mean(base))
        used = need
    if not (math.isfinite(sigma) and sigma > 0 and math.isfinite(mean)):
        notes.append(f"{where}: σ = {sigma:g} cannot scale the rules; not judged")
        return None
    judged_from = idx[used] if used < len(idx) else idx[-1] + 1
    sample, factor = None, 1.0
    if start.sigma is None:
        sample = sigma
        factor = prediction_factor(used) if s.prediction_limits else 1.0
    return Segment(idx[0], idx[-1] + 1, judged_from, t0, mean, sigma * factor, used,
                   start.reason, sample, factor)


def prediction_factor(n: int, alpha: float = 0.0027) -> float:
    """√(1 + 1/n) · t₍ₙ₋₁₎(1 − α/2) / z(1 − α/2): how much wider than μ̂ ± 3σ̂ the
    interval must be to hold a new value with probability 1 − α when μ̂ and σ̂ are the
    mean and sample SD of n normal values (Student prediction interval; Hahn & Meeker,
    *Statistical Intervals*, section 4.6)."""
    from scipy.special import ndtri, stdtrit  # special, not stats: a fast import

    return float(math.sqrt(1.0 + 1.0 / n) * stdtrit(n - 1, 1.0 - alpha / 2)
                 / ndtri(1.0 - alpha / 2))


def _alerts(measurement: str, unit: str, points: Sequence[TrendPoint], judged: list[int],
            z: NDArray[np.float64], rule: Rule, seg: Segment, s: TrendSettings,
            after: int | None) -> list[Alert]:
    hi, lo, stat_hi, stat_lo, limit = rule_holds(z, rule, s)
    out: list[Alert] = []
    inside = np.abs(z) <= 2.0
    for direction, holds, stat in (("high", hi, stat_hi), ("low", lo, stat_lo)):
        starts = np.flatnonzero(holds & ~np.concatenate(([False], holds[:-1])))
        # back in control for this alert: inside the 2σ warning limits (Westgard) and
        # its rule no longer holding on its side
        calm = np.flatnonzero(inside & ~holds)
        seen: set[int] = set()
        for j in starts:
            first = _first_offending(rule, int(j), stat)
            if first in seen:
                # a CUSUM that dips under h and crosses it again without returning to 0
                # is the same excursion: told once
                continue
            seen.add(first)
            i, fi = judged[int(j)], judged[first]
            p = points[i]
            key = f"{measurement}|{rule}|{direction}|{points[fi].time.isoformat()}"
            k = int(np.searchsorted(calm, j, side="right"))
            end = judged[int(calm[k])] if k < len(calm) else after
            out.append(Alert(key, measurement, rule, direction,  # type: ignore[arg-type]
                             i, p.time, p.value, unit, p.uncertainty, float(stat[j]), limit,
                             fi, points[fi].time, seg.mean, seg.sigma,
                             _message(rule, direction, p, unit, float(stat[j]), limit, seg,
                                      i - fi + 1, s), end))
    return out


def _first_offending(rule: Rule, j: int, stat: NDArray[np.float64]) -> int:
    if rule == "cusum":  # the excursion starts after the statistic last stood at 0
        k = j
        while k > 0 and stat[k - 1] > 0:
            k -= 1
        return k
    if rule == "ewma":
        return j
    w = 2 if rule == "R-4s" else _RUNS[rule][1]
    return j - w + 1


def _message(rule: Rule, direction: str, p: TrendPoint, unit: str, stat: float,
             limit: float, seg: Segment, n: int, s: TrendSettings) -> str:
    u = f" ± {p.uncertainty:.4g}" if p.uncertainty is not None else ""
    unit = "" if unit in ("", "1") else f" {unit}"  # a ratio has no unit to print
    base = (f"baseline {seg.mean:.4g}{unit}, σ {seg.sigma:.4g}{unit} "
            + (f"estimated from {seg.baseline_points} values from "
               f"{seg.start_time.isoformat()}" if seg.baseline_points
               else f"given from {seg.start_time.isoformat()}"))
    if seg.sample_sigma is not None and seg.sigma_factor != 1.0:
        base += (f" (sample SD {seg.sample_sigma:.4g}{unit} × {seg.sigma_factor:.3f}, the "
                 f"prediction-interval factor for {seg.baseline_points} baseline values)")
    side = "above" if direction == "high" else "below"
    limit_side = "upper" if direction == "high" else "lower"
    what = {
        "1-3s": f"1-3s (Westgard): {p.value:.4g}{u}{unit} is {abs(stat):.2f}σ {side} "
                "the baseline mean (limit 3σ)",
        "2-2s": f"2-2s (Westgard): 2 consecutive values beyond the {limit_side} 2σ limit, "
                f"the last {p.value:.4g}{u}{unit} ({stat:+.2f}σ)",
        "R-4s": f"R-4s (Westgard): consecutive values on opposite sides beyond 2σ, the "
                f"last {p.value:.4g}{u}{unit} ({stat:+.2f}σ)",
        "4-1s": f"4-1s (Westgard): 4 consecutive values {side} the mean by more than 1σ, "
                f"the last {p.value:.4g}{u}{unit} ({stat:+.2f}σ)",
        "10x": f"10x (Westgard): 10 consecutive values {side} the baseline mean, the last "
               f"{p.value:.4g}{u}{unit}",
        "cusum": f"CUSUM ({'C⁺' if direction == 'high' else 'C⁻'} = {stat:.2f}σ > h = "
                 f"{limit:g}σ, k = {s.cusum_k:g}σ): a shift {side} the mean building over "
                 f"{n} value{'s' if n > 1 else ''}, the last {p.value:.4g}{u}{unit}",
        "ewma": f"EWMA (λ = {s.ewma_lambda:g}, L = {s.ewma_l:g}): E = {stat:+.2f}σ beyond "
                f"±{limit:.3f}σ, the last value {p.value:.4g}{u}{unit}",
    }[rule]
    return f"{what}; {base}"


__all__ = ["RULES", "WESTGARD_RULES", "Alert", "BaselineStart", "Segment", "TrendPoint",
           "TrendReport", "TrendSettings", "check_trend", "cusum", "ewma", "ewma_limit",
           "first_signal", "group_episodes", "prediction_factor", "rule_holds", "run_rule"]

"""False alarms per year of daily QC and detection delays of the trend alerts
(evaluation/trend.py), before and after the defaults of evaluation/alerts.py changed.

Each simulated year: a baseline estimated from the setting's baseline values, then 365
daily values of N(0, 1) noise judged against it (a fresh baseline per year, so the mean
over years is the expected rate over baselines too). Counted: alerts (one message each
before episodes) and episodes (one message each now). Delays: a 3σ step or a drift of
1σ per 30 days starting 50 judged days after the baseline; days from the onset to the
first alert of any rule (false alarms before the onset are ignored).

Run: .venv/bin/python bench/alert_rates.py [years]
"""

from __future__ import annotations

import datetime as dt
import sys
import time

import numpy as np

from scanbench.evaluation.alerts import SETTINGS
from scanbench.evaluation.trend import TrendPoint, TrendSettings, check_trend

T0 = dt.datetime(2026, 1, 1, 8)
BEFORE = TrendSettings()  # all seven rules, 20 baseline values, σ not widened


def _points(values: np.ndarray) -> list[TrendPoint]:
    return [TrendPoint(T0 + dt.timedelta(days=i), float(v)) for i, v in enumerate(values)]


def rates(settings: TrendSettings, years: int, seed0: int = 20261206) -> dict[str, float]:
    n0 = settings.baseline_points
    alerts, episodes = [], []
    for y in range(years):
        v = np.random.default_rng(seed0 + y).standard_normal(n0 + 365)
        rep = check_trend("m", "1", _points(v), settings=settings)
        alerts.append(len(rep.alerts))
        episodes.append(len({a.episode_index for a in rep.alerts}))
    a, e = np.array(alerts, float), np.array(episodes, float)
    return {"alerts_per_year": a.mean(), "alerts_se": a.std(ddof=1) / np.sqrt(years),
            "episodes_per_year": e.mean(), "episodes_se": e.std(ddof=1) / np.sqrt(years),
            "years_with_none": float((e == 0).mean())}


def delay(settings: TrendSettings, kind: str, runs: int, seed0: int = 7) -> dict[str, float]:
    onset = settings.baseline_points + 50
    out = []
    for r in range(runs):
        v = np.random.default_rng(seed0 + r).standard_normal(onset + 200)
        days = np.arange(200, dtype=float)
        v[onset:] += 3.0 if kind == "step" else (days + 1) / 30.0
        rep = check_trend("m", "1", _points(v), settings=settings)
        first = [a.index for a in rep.alerts if a.index >= onset]
        out.append(min(first) - onset + 1 if first else np.nan)
    d = np.array(out)
    return {"mean_days": float(np.nanmean(d)), "median_days": float(np.nanmedian(d)),
            "p90_days": float(np.nanpercentile(d, 90)), "missed": float(np.isnan(d).mean())}


if __name__ == "__main__":
    years = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    for name, s in (("before", BEFORE), ("after", SETTINGS)):
        t = time.perf_counter()
        print(name, s)
        print("  noise", {k: round(v, 3) for k, v in rates(s, years).items()})
        for kind in ("step", "drift"):
            print(f"  {kind}", {k: round(v, 2) for k, v in delay(s, kind, 500).items()})
        print(f"  {time.perf_counter() - t:.1f} s")

"""Due list, fleet-page row and scorecard of a device with ten years of daily QC (issue 13:
scorecards and due lists from the store must stay fast on a long history): time of
``scorecard.required_tests`` (what the fleet page calls per device),
``scorecard.due_list_for_device`` and ``scorecard.compute_scorecards`` over the last year,
on SQLite.

The device: 3,650 daily calibration QC results (two measurements each), a daily test
in its spec with a confirmed limit. Each call is made once untimed, then ``--rounds``
times; the figures are the median and the maximum.

    python bench/evalstore.py [--rounds 5] [--years 10]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scanbench.evaluation import assign as A
from scanbench.evaluation import scorecard as S
from scanbench.store import Database, devices, repo
from scanbench.types import DeviceIdentity, Result
from scanbench.web import audit, sites

SPEC = """name: daily-cal
title: Daily calibration QC
version: "1"
description: daily calibration QC
verified: true
tests:
  - {test: pet.calibration_uniformity, analysis: pet.calibration_uniformity,
     frequency: daily, dimension: image_quality, source: "site QC manual"}
rules:
  - {analysis: pet.calibration_uniformity, measurement: activity_concentration_bias_percent,
     low: -10, high: 10, source: "site QC manual", confidence: C}
"""


def _timed(fn: Callable[[], Any], rounds: int) -> tuple[float, float]:
    fn()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), max(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--years", type=int, default=10)
    args = ap.parse_args()
    actor = audit.Actor(None, "bench")
    start = dt.datetime(2016, 1, 1, tzinfo=dt.UTC)
    days = 365 * args.years
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(url=f"sqlite:///{Path(tmp) / 'bench.db'}")
        with db.sessions() as s:
            site = sites.add_site(s, actor, "Site")
            ident = DeviceIdentity("Siemens", "Biograph Vision", "1")
            dev = devices.register(s, ident, modality="PT")
            dev.site_id = site.id
            A.store_spec_text(s, SPEC, origin="bench", created_at=start)
            A.assign(s, actor, "daily-cal", A.DeviceClassCriteria(modality="PT"),
                     valid_from=start)
            for i in range(days):
                r = Result("pet.calibration_uniformity", "calibration QC", f"1.{i}", ident,
                           dt.datetime(2016, 1, 1, 9) + dt.timedelta(days=i))
                r.add("activity_concentration_bias_percent", 2.0 + (i % 7) * 0.5, "%")
                r.add("suv_mean", 1.0, "SUV")
                repo.save_result(s, r, series_id=None, device_id=dev.id)
            s.commit()
            now = start + dt.timedelta(days=days)
            year = now - dt.timedelta(days=365)
            print(f"{days} daily results, SQLite, {args.rounds} rounds (median / max):")
            for name, fn in (
                    ("required_tests (fleet row)", lambda: S.required_tests(s, dev, now)),
                    ("due_list_for_device", lambda: S.due_list_for_device(s, dev.id, now)),
                    ("compute_scorecards, last year",
                     lambda: S.compute_scorecards(s, dev.id, year, now, now))):
                med, worst = _timed(fn, args.rounds)
                print(f"  {name:32s} {med * 1000:7.0f} ms / {worst * 1000:7.0f} ms")
        db.close()


if __name__ == "__main__":
    main()

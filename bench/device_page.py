"""The device page with ten years of daily QC (issue 12: "a device with ten years of daily
QC still opens fast"): first-response time of ``/devices/{id}`` and time of each control
chart fragment, on SQLite.

The device: 3,650 daily QC results (one a day for ten years) of 10 measurements each
(36,500 stored values), stored through ``store.repo.save_result`` like the node's jobs;
a slow drift in one measurement, a part replacement marked as a new baseline, a service
every quarter (40 lifecycle events), and the alerts recorded by
``evaluation.alerts.recheck_device``. The page and the fragments are requested through
the application in-process (FastAPI's test client: the time is the application's, no
network), signed in as a physicist; one untimed request first, then ``--rounds`` timed
requests; the figures are the median and the maximum.

    python bench/device_page.py [--rounds 15] [--years 10]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from scanbench.evaluation import alerts, records
from scanbench.store import Database, devices, repo
from scanbench.store import models as m
from scanbench.types import DeviceIdentity, Limits, Result
from scanbench.web import audit, auth, sites
from scanbench.web.api import create_app

CLI = audit.Actor(None, "cli:bench")
PW = "correct horse battery"
ANALYSIS = "pet.daily_qc"
#: (name, labels, unit, mean, σ, limits) of the 10 daily measurements.
MEASUREMENTS = [
    ("system_sensitivity", {}, "cps/kBq", 10.0, 0.05, (9.5, 10.5)),
    ("energy_resolution_percent", {}, "%", 11.0, 0.1, (None, 12.0)),
    ("timing_resolution_ps", {}, "ps", 214.0, 1.5, (None, 230.0)),
    ("coincidence_rate", {}, "kcps", 480.0, 3.0, None),
    ("uniformity_percent", {"axis": "axial"}, "%", 2.0, 0.1, (None, 5.0)),
    ("uniformity_percent", {"axis": "transaxial"}, "%", 2.5, 0.1, (None, 5.0)),
    ("dead_time_percent", {}, "%", 3.0, 0.05, None),
    ("randoms_fraction_percent", {}, "%", 35.0, 0.3, None),
    ("scatter_fraction_percent", {}, "%", 32.0, 0.3, None),
    ("bucket_singles_spread_percent", {}, "%", 1.2, 0.05, (None, 3.0)),
]


def build(db: Database, years: int) -> int:
    rng = np.random.default_rng(2026)
    days = 365 * years
    start = dt.datetime(2016, 1, 1, 7, 30)
    with db.sessions() as s:
        site = sites.add_site(s, CLI, "Bench site")
        auth.grant(s, CLI, auth.add_user(s, CLI, "bench_ph", PW), site, "physicist")
        ident = DeviceIdentity("Siemens", "Biograph Vision", "BENCH-1", "PETCT1", "VG80")
        dev = devices.register(s, ident)
        dev.site_id = site.id
        study = m.Study(study_uid="1.2.999", site_id=site.id)
        s.add(study)
        s.flush()
        noise = rng.standard_normal((days, len(MEASUREMENTS)))
        for day in range(days):
            when = start + dt.timedelta(days=day)
            ser = m.Series(series_uid=f"1.2.999.{day}", study_id=study.id, device_id=dev.id,
                           modality="PT", acquired_at=when, state="done",
                           software_versions="VG80" if day < days // 2 else "VG85")
            s.add(ser)
            s.flush()
            r = Result(ANALYSIS, "manufacturer daily QC", ser.series_uid, ident, when)
            for k, (name, labels, unit, mean, sd, lim) in enumerate(MEASUREMENTS):
                value = mean + sd * noise[day, k]
                if k == 0 and day > days - 200:  # a slow drift in the last 200 days
                    value += 0.004 * (day - (days - 200))
                if lim is None:
                    r.add(name, value, unit, labels=labels, status="info")
                    continue
                lo, hi = lim
                ok = (lo is None or value >= lo) and (hi is None or value <= hi)
                r.add(name, value, unit, labels=labels, uncertainty=sd / 5,
                      limits=Limits(low=lo, high=hi, source="manufacturer's daily QC "
                                    "tolerance (bench)", verified=True),
                      status="pass" if ok else "fail")
            repo.save_result(s, r, series_id=ser.id, device_id=dev.id)
            if day % 365 == 0:
                s.commit()
        s.commit()
        for q in range(4 * years):
            when = start + dt.timedelta(days=91 * q + 45, hours=3)
            records.add_event(s, CLI, dev.id, "planned_service", when,
                              summary=f"quarterly service {q + 1}",
                              new_baseline=(q == 2 * years))
        s.commit()
        alerts.recheck_device(s, dev.id)
        s.commit()
        return dev.id


def timed(client: TestClient, url: str, rounds: int, **params: str) -> tuple[float, float]:
    client.get(url, params=params)  # untimed: first-use costs (templates, imports)
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        r = client.get(url, params=params)
        out.append(time.perf_counter() - t)
        assert r.status_code == 200, r.text[:300]
    return statistics.median(out), max(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--db", type=Path, help="keep the database in this file (built once, "
                                            "then reused)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "bench.db"
        reuse = path.exists()
        db = Database(url=f"sqlite:///{path}")
        t = time.perf_counter()
        device_id = 1 if reuse else build(db, args.years)
        with db.sessions() as s:
            n_values = s.query(m.Measurement).count()
            n_alerts = s.query(m.Alert).count()
        print(f"built {n_values} values, {n_alerts} alerts in "
              f"{time.perf_counter() - t:.0f} s")
        client = TestClient(create_app(db))
        r = client.post("/api/v1/auth/login", json={"username": "bench_ph", "password": PW})
        assert r.status_code == 200
        med, worst = timed(client, f"/devices/{device_id}", args.rounds)
        size = len(client.get(f"/devices/{device_id}").content)
        print(f"GET /devices/{device_id} (first response, no chart drawn): "
              f"median {1000 * med:.0f} ms, max {1000 * worst:.0f} ms, {size / 1024:.0f} KiB")
        charts = []
        for name, labels, *_ in MEASUREMENTS:
            key = repo.labels_key(labels)
            med, worst = timed(client, f"/devices/{device_id}/chart", args.rounds,
                               analysis=ANALYSIS, name=name, labels=key)
            charts.append(med)
            frag = client.get(f"/devices/{device_id}/chart",
                              params={"analysis": ANALYSIS, "name": name, "labels": key})
            print(f"  chart {name} {key}: median {1000 * med:.0f} ms, max "
                  f"{1000 * worst:.0f} ms, {len(frag.content) / 1024:.0f} KiB")
        print(f"chart fragment: median of medians {1000 * statistics.median(charts):.0f} ms")
        db.close()


if __name__ == "__main__":
    main()

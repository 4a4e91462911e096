"""The fleet page with many devices: latency and the number of SQL statements.

Usage: python bench/web_fleet.py [--devices 1000] [--days 365] [--analyses 2]
       [--database-url URL] [--runs 20] [--create-index]

Generates ``devices`` devices on one site, each with ``days`` days of daily QC for each
of ``analyses`` analyses (one result, one measurement each; one in 50 devices failing,
one in 50 with an open trend alert), inserted in bulk; then signs in through the page
and times ``GET /`` ``runs`` times (one client, after one warm-up), printing a JSON line:
rows, SQL statements per page, page size, p50/p95 in ms. SQLite (a temporary file) by
default. Not a timed test: run it by hand (bench/README.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def build(db: Any, n_devices: int, days: int, analyses: int) -> None:
    from pages_world import PW
    from scanbench.store import models as m
    from scanbench.web import audit, auth, sites

    cli = audit.Actor(None, "cli:bench")
    with db.sessions() as s:
        site = sites.add_site(s, cli, "Bench site")
        auth.grant(s, cli, auth.add_user(s, cli, "bench", PW), site, "viewer")
        s.commit()
        site_id = site.id
    start = dt.datetime(2025, 1, 1, 8, 0)
    names = [f"pet.bench_analysis_{a}" for a in range(analyses)]
    with db.engine.begin() as c:
        c.execute(insert(m.Device), [
            {"identity_key": f"bench|{i}", "site_id": site_id, "manufacturer": "Vendor",
             "model": f"Model {i % 7}", "serial": str(i), "modality": "PT",
             "display_name": f"PET {i:04d}", "staffed_hours": {}} for i in range(n_devices)])
        ids = [r[0] for r in c.execute(select(m.Device.id).order_by(m.Device.id))]
        now = dt.datetime.now(dt.UTC)
        for i, dev in enumerate(ids):
            rows = []
            for a in names:
                for d in range(days):
                    rows.append({"device_id": dev, "analysis": a, "standard": "bench",
                                 "acquired_at": start + dt.timedelta(days=d),
                                 "parameters": {}, "warnings": [], "scanbench_version": "b",
                                 "created_at": now})
            c.execute(insert(m.Result), rows)
            rids = [r[0] for r in c.execute(select(m.Result.id, m.Result.analysis,
                                                   m.Result.acquired_at)
                                            .where(m.Result.device_id == dev))]
            failing = i % 50 == 0
            c.execute(insert(m.Measurement), [
                {"result_id": rid, "device_id": dev, "analysis": "x", "name": "value",
                 "labels": {}, "labels_key": "{}", "value": 1.0, "unit": "%",
                 "status": "fail" if failing and k == len(rids) - 1 else "pass"}
                for k, rid in enumerate(rids)])
            if i % 50 == 1:
                c.execute(insert(m.Alert), [{
                    "key": f"bench-{dev}", "device_id": dev, "analysis": names[0],
                    "name": "value", "labels": {}, "labels_key": "{}", "rule": "cusum",
                    "level": "trend", "unit": "%", "message": "drift", "state": "open",
                    "opened_at": now}])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--analyses", type=int, default=2)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--create-index", action="store_true",
                    help="create the index on result (device_id, analysis, acquired_at) the "
                    "fleet's loose index scan uses (until a migration adds it)")
    args = ap.parse_args(argv)

    from pages_world import signed_in
    from scanbench.store import Database
    from scanbench.web.api import create_app

    with tempfile.TemporaryDirectory(prefix="scanbench-bench-") as tmp:
        db = Database(url=args.database_url or f"sqlite:///{tmp}/bench.db")
        t0 = time.perf_counter()
        build(db, args.devices, args.days, args.analyses)
        if args.create_index:
            from sqlalchemy import text

            with db.engine.begin() as c:
                c.execute(text("CREATE INDEX IF NOT EXISTS ix_bench_result_latest ON result "
                               "(device_id, analysis, acquired_at)"))
        built_s = time.perf_counter() - t0
        client = signed_in(create_app(db), "bench")
        statements: list[int] = []
        event.listen(db.engine, "before_cursor_execute", lambda *a: statements.append(1))
        r = client.get("/")  # warm-up
        assert r.status_code == 200, r.text[:500]
        per_page = len(statements)
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            r = client.get("/")
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        print(json.dumps({
            "backend": db.dialect, "devices": args.devices, "days": args.days,
            "analyses": args.analyses, "index": args.create_index,
            "results": args.devices * args.days * args.analyses,
            "build_s": round(built_s, 1), "rows": r.text.count("data-device-id="),
            "sql_statements_per_page": per_page, "page_bytes": len(r.content),
            "p50_ms": round(statistics.median(times)),
            "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)])}))
        db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

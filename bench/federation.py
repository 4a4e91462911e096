"""Federation throughput: a site with many stored results catching up with the centre.

Usage: python bench/federation.py [--results 5000] [--measurements 5] [--batch 200]
       [--central-url URL]

Makes a site database (SQLite, temporary) with ``results`` results of one device, each
with ``measurements`` measurements, inserted in bulk; serves a central node (SQLite by
default, or ``--central-url`` e.g. PostgreSQL) on a free loopback port in a thread; then
times one send pass of the real sender: queuing (the scan, de-identification of the UIDs),
sending and materialising every batch, and a second pass that finds nothing new. Prints
one JSON line. Not a timed test: run it by hand (bench/README.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from scanbench.programme import federation as fed
from scanbench.programme.outbox import Sender, queue_new
from scanbench.store import models as m
from scanbench.store.db import Database
from scanbench.web.api import create_app
from scanbench.web.audit import Actor, commit_with_retry


def _serve(app: Any) -> tuple[Any, str]:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                           log_level="warning", access_log=False))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server, f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


def _site(home: Path, n: int, per: int) -> Database:
    db = Database(home)
    with db.session() as s:
        dev = m.Device(identity_key="acme|ct-9|sn-1", manufacturer="ACME", model="CT-9",
                       serial="SN-1", modality="CT")
        s.add(dev)
        s.flush()
        t0 = dt.datetime(2020, 1, 1, 8)
        s.execute(insert(m.Result), [
            {"device_id": dev.id, "analysis": "ct.uniformity",
             "standard": "IEC 61223-3-5:2019 section 5.2", "series_uid": f"1.2.3.{i}",
             "acquired_at": t0 + dt.timedelta(hours=i), "scanbench_version": "bench",
             "parameters": {}, "warnings": []} for i in range(n)])
        ids = list(s.scalars(select(m.Result.id).order_by(m.Result.id)))
        s.execute(insert(m.Measurement), [
            {"result_id": rid, "device_id": dev.id, "analysis": "ct.uniformity",
             "acquired_at": t0 + dt.timedelta(hours=i), "name": f"q{j}",
             "labels": {}, "labels_key": "{}", "value": 1.0 + j, "unit": "HU",
             "status": "pass"} for i, rid in enumerate(ids) for j in range(per)])
    return db


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=int, default=5000)
    ap.add_argument("--measurements", type=int, default=5)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--central-url")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        central = Database(root / "central", a.central_url)
        with central.sessions() as s:
            token = commit_with_retry(s, lambda s: fed.add_credential(s, Actor(None, "bench"),
                                                                       "bench-site"))
        server, url = _serve(create_app(central))
        site = _site(root / "site", a.results, a.measurements)
        t = time.perf_counter()
        with site.sessions() as s:
            queued = queue_new(s, b"k" * 32, limit=a.results + 10)
            s.commit()
        t_queue = time.perf_counter() - t
        sender = Sender(site, root / "site", url, token, batch_size=a.batch)
        t = time.perf_counter()
        rep = sender.send_pass()
        t_send = time.perf_counter() - t
        t = time.perf_counter()
        again = sender.send_pass()
        t_again = time.perf_counter() - t
        sender.close()
        with central.sessions() as s:
            stored = s.scalar(select(func.count()).select_from(m.Measurement))
        server.should_exit = True
        print(json.dumps({
            "results": a.results, "measurements_per_result": a.measurements,
            "batch": a.batch, "central": central.dialect, "queued": queued,
            "queue_s": round(t_queue, 2), "send_s": round(t_send, 2),
            "batches": rep.sent_batches, "error": rep.error,
            "results_per_s": round(a.results / t_send, 1),
            "central_measurements": stored, "idle_pass_s": round(t_again, 3),
            "idle_pass_batches": again.sent_batches}))
        site.close()
        central.close()


if __name__ == "__main__":
    main()

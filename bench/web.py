"""The web application at national scale (issue 12, "Must show"): a generated fleet of
1,000 devices with ten years of daily QC and a million clinical exams in PostgreSQL;
p50/p95/max latency of the fleet page, a device page (first response), a control-chart
fragment, the measurement-history API call and the dose statistics endpoint (the
whole visible fleet, served as stored after its first request, and one device a
request, computed each time) under 20 concurrent clients.

Method:

1. A throw-away PostgreSQL cluster (``initdb`` + ``pg_ctl`` of the Debian package, as
   ``tests/pg.py`` does; ``--pgdir`` keeps it for a later ``--reuse``), the schema by
   ``scanbench db upgrade``. Sites and users through the application's own functions
   (Argon2id hashes, audited); everything else generated with numpy (seeded) and
   loaded with PostgreSQL ``COPY`` (psycopg ``cursor.copy``) straight into the
   application's tables, secondary indexes of the big tables dropped during the load
   and rebuilt after it (their definitions read from ``pg_indexes`` first, so the schema
   stays the migrations'), then ``VACUUM ANALYZE``. The generated data is bench data:
   its limits are stated as generated tolerances, not published ones.
2. ``scanbench serve --port 0 --database-url ...`` in a subprocess (the real app,
   uvicorn, one process); 20 httpx async clients, each signed in with its own session
   cookie (``POST /api/v1/auth/login``); per endpoint, a warm-up round, then every client
   sends ``--requests`` requests one after the other (20 in flight); latency is from
   sending to the last byte of the body. Device ids are drawn at random from the devices
   the user may see, so caches do not make one device look fast.

    python bench/web.py [--quick] [--devices 1000 --years 10 --exams 1000000]
                        [--clients 20 --requests 10] [--pgdir DIR [--reuse]]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import glob
import json
import os
import platform
import pwd
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCANBENCH = str(Path(sys.executable).parent / "scanbench")
PW = "bench horse battery staple"
TARGET_MS = 300.0
LIMIT_SOURCE = "generated tolerance of the benchmark data (not a published limit)"
T0 = dt.datetime(2016, 12, 6)  # first QC day; ten years end on 2026-12-05

# (name, labels, unit, mean, sd, (low, high) or None) of each modality's daily QC.
QC: dict[str, tuple[str, str, list[tuple[str, dict[str, Any], str, float, float,
                                         tuple[float | None, float | None] | None]]]] = {
    "CT": ("ct.daily_qc", "manufacturer daily QC (water phantom)", [
        ("ct_number_hu", {"roi": "center"}, "HU", 0.5, 1.2, (-4.0, 4.0)),
        ("noise_hu", {"roi": "center"}, "HU", 4.5, 0.12, (None, 5.5)),
        ("uniformity_difference_hu", {"roi": "12"}, "HU", 0.0, 0.8, (-4.0, 4.0)),
        ("uniformity_difference_hu", {"roi": "3"}, "HU", 0.0, 0.8, (-4.0, 4.0)),
        ("uniformity_difference_hu", {"roi": "6"}, "HU", 0.0, 0.8, (-4.0, 4.0)),
        ("uniformity_difference_hu", {"roi": "9"}, "HU", 0.0, 0.8, (-4.0, 4.0)),
    ]),
    "PT": ("pet.daily_qc", "manufacturer daily QC", [
        ("system_sensitivity", {}, "cps/kBq", 10.0, 0.05, (9.5, 10.5)),
        ("energy_resolution_percent", {}, "%", 11.0, 0.1, (None, 12.0)),
        ("timing_resolution_ps", {}, "ps", 214.0, 1.5, (None, 230.0)),
        ("coincidence_rate", {}, "kcps", 480.0, 3.0, None),
        ("uniformity_percent", {"axis": "axial"}, "%", 2.0, 0.1, (None, 5.0)),
        ("uniformity_percent", {"axis": "transaxial"}, "%", 2.5, 0.1, (None, 5.0)),
        ("randoms_fraction_percent", {}, "%", 35.0, 0.3, None),
    ]),
    "MR": ("mr.daily_qc", "manufacturer daily QC (head phantom)", [
        ("snr", {}, "1", 180.0, 4.0, (150.0, None)),
        ("uniformity_percent", {}, "%", 92.0, 0.6, (87.5, None)),
        ("ghosting_percent", {}, "%", 0.8, 0.1, (None, 2.5)),
        ("center_frequency_hz", {}, "Hz", 63_870_000.0, 40.0, None),
        ("transmitter_gain_db", {}, "dB", 32.0, 0.2, None),
        ("geometric_distortion_mm", {}, "mm", 0.6, 0.1, (None, 2.0)),
    ]),
}
MAKES = {"CT": [("Siemens", "SOMATOM Force"), ("GE HealthCare", "Revolution Apex"),
                ("Philips", "Spectral CT 7500"), ("United Imaging", "uCT 960+"),
                ("Canon", "Aquilion ONE PRISM")],
         "PT": [("Siemens", "Biograph Vision 600"), ("GE HealthCare", "Omni Legend"),
                ("United Imaging", "uEXPLORER"), ("Philips", "Vereos")],
         "MR": [("Siemens", "MAGNETOM Vida"), ("GE HealthCare", "SIGNA Premier"),
                ("Philips", "Ingenia Ambition"), ("United Imaging", "uMR Jupiter")]}
# CT exam protocols: (protocol, SNOMED CT target region, CTDIvol mGy median, scan cm,
# k mSv/(mGy cm): AAPM Report 96 adult k-factors).
CT_PROTOCOLS = [("CT HEAD ROUTINE", "69536005", 55.0, 16.0, 0.0021),
                ("CT CHEST", "43799004", 8.0, 35.0, 0.014),
                ("CT ABDOMEN PELVIS", "818982008", 11.0, 45.0, 0.015),
                ("CT CHEST ABDOMEN PELVIS", "416775004", 10.0, 65.0, 0.015)]


def log(msg: str) -> None:
    print(f"[{dt.datetime.now(dt.UTC):%H:%M:%S}] {msg}", flush=True)


def machine() -> str:
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in
                   Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    return (f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC, {cpu}, {os.cpu_count()} "
            f"logical cores, Linux {platform.release()}, Python {platform.python_version()}, "
            f"load average {load}")


# --------------------------------------------------------------------------- PostgreSQL

class Cluster:
    """A private PostgreSQL cluster in ``folder`` on a free port (tests/pg.py's way: run as
    the ``postgres`` user when we are root, listening on 127.0.0.1 only)."""

    def __init__(self, folder: Path) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            sys.exit("PostgreSQL server binaries not found (apt-get install postgresql)")
        self.bindir = Path(found[-1]).parent
        self.folder = folder
        self.user: int | None = None
        self.group: int | None = None
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            self.user, self.group = pw.pw_uid, pw.pw_gid
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])

    def _run(self, args: list[str]) -> None:
        r = subprocess.run(args, capture_output=True, text=True, user=self.user,
                           group=self.group, cwd=self.folder, check=False, timeout=300)
        if r.returncode != 0:
            log_file = self.folder / "log"
            tail = log_file.read_text(errors="replace")[-800:] if log_file.exists() else ""
            sys.exit(f"{args[0]} failed: {r.stderr.strip()[-800:]} {tail}")

    def start(self) -> None:
        data, sock = self.folder / "data", self.folder / "sock"
        sock.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            os.chown(self.folder, self.user, self.group or -1)
            os.chown(sock, self.user, self.group or -1)
        if not (data / "PG_VERSION").exists():
            self._run([str(self.bindir / "initdb"), "-D", str(data), "-U", "postgres",
                       "--auth=trust", "-E", "UTF8", "--no-sync"])
        # A server of this machine's size (23 GB RAM): shared_buffers 1 GB, work_mem 32 MB
        # (sorts of the dose percentiles stay in memory), fsync off (throw-away data).
        opts = (f"-p {self.port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100 "
                "-c shared_buffers=1GB -c work_mem=32MB -c maintenance_work_mem=1GB "
                "-c effective_cache_size=12GB -c max_wal_size=8GB -c checkpoint_timeout=30min "
                "-c random_page_cost=1.1")
        self._run([str(self.bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l",
                   str(self.folder / "log"), "-w", "-t", "120", "start"])

    def stop(self) -> None:
        subprocess.run([str(self.bindir / "pg_ctl"), "-D", str(self.folder / "data"), "-m",
                        "fast", "-w", "stop"], capture_output=True, user=self.user,
                       group=self.group, cwd=self.folder, check=False, timeout=120)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/scanbench"

    @property
    def plain(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/scanbench"

    def create_db(self) -> None:
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres",
                             autocommit=True) as c:
            if not c.execute("SELECT 1 FROM pg_database WHERE datname='scanbench'").fetchone():
                c.execute("CREATE DATABASE scanbench")


# --------------------------------------------------------------------------- generation

@dataclass
class Size:
    sites: int
    devices: int
    years: int
    exams: int


def _ts(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


def _copy(cur: Any, table: str, columns: str, lines: Iterator[str]) -> int:
    """COPY text-format lines (tab separated, ``\\N`` for NULL) into ``table``; returns
    the rows written. Lines are sent in blocks of about 8 MB."""
    n = 0
    with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as cp:
        buf: list[str] = []
        size = 0
        for line in lines:
            buf.append(line)
            size += len(line)
            n += 1
            if size > 8_000_000:
                cp.write("".join(buf))
                buf, size = [], 0
        if buf:
            cp.write("".join(buf))
    return n


def generate(url: str, plain: str, size: Size) -> dict[str, int]:
    """Fill the database; returns the row count of each table (module docstring)."""
    import psycopg

    from scanbench.store import Database
    from scanbench.store import models as m
    from scanbench.web import audit, auth, sites

    rng = np.random.default_rng(2026)
    days = 365 * size.years
    start = T0 + dt.timedelta(days=3650 - days)
    now = dt.datetime(2026, 12, 6, 6, 0)
    created = _ts(now)
    cli = audit.Actor(None, "cli:bench")
    db = Database(url=url)
    with db.sessions() as s:
        site_rows = [sites.add_site(s, cli, f"Hospital {i + 1:02d}", timezone="Asia/Shanghai")
                     for i in range(size.sites)]
        admin = auth.add_user(s, cli, "bench_admin", PW)
        phys = auth.add_user(s, cli, "bench_physicist", PW)
        for row in site_rows:
            auth.grant(s, cli, admin, row, "admin")
        auth.grant(s, cli, phys, site_rows[0], "physicist")
        spec = m.Spec(name="bench-daily", version="1", title="Daily QC (bench)",
                      verified=False, yaml="name: bench-daily\n", origin="bench")
        s.add(spec)
        s.commit()
        site_ids = [x.id for x in site_rows]
        spec_id = spec.id
    db.close()

    counts: dict[str, int] = {}
    with psycopg.connect(plain, autocommit=False) as conn, conn.cursor() as cur:
        cur.execute("SET session_replication_role = replica")  # no FK triggers while loading
        big = ("result", "measurement", "study", "dose_event", "exam_timing")
        constraint_ix = {r[0] for r in cur.execute(
            "SELECT conname FROM pg_constraint WHERE contype IN ('p','u')").fetchall()}
        cur.execute("SELECT tablename, indexname, indexdef FROM pg_indexes WHERE "
                    "schemaname='public' AND tablename = ANY(%s)", (list(big),))
        index_defs = [(t, n, d) for t, n, d in cur.fetchall() if n not in constraint_ix]
        for _, name, _ in index_defs:
            cur.execute(f'DROP INDEX "{name}"')
        conn.commit()

        # devices: modality mix 45 % CT, 25 % PET/CT, 30 % MR
        mods = rng.choice(["CT", "PT", "MR"], size=size.devices, p=[0.45, 0.25, 0.30])
        dev_rows = []
        devices: list[tuple[int, str, int]] = []
        for i in range(size.devices):
            mod = str(mods[i])
            make, model = MAKES[mod][int(rng.integers(len(MAKES[mod])))]
            site = site_ids[i % len(site_ids)]
            did = i + 1
            devices.append((did, mod, site))
            fs = "3" if mod == "MR" and i % 3 else ("1.5" if mod == "MR" else "\\N")
            fov = "194" if model == "uEXPLORER" else ("26" if mod == "PT" else "\\N")
            dev_rows.append(
                f"{did}\tbench|{make}|{model}|SN{did:05d}\t{site}\t{make}\t{model}\t"
                f"SN{did:05d}\t{mod}\t{mod} {did:04d} {model}\tVA{i % 4 + 20}\t"
                f"{_ts(now)}\tactive\t{_ts(start)}\t{created}\t{fs}\t{fov}\t{{}}\n")
        counts["device"] = _copy(cur, "device", "id, identity_key, site_id, manufacturer, "
                                 "model, serial, modality, display_name, software_versions, "
                                 "software_seen_at, status, first_seen_at, last_seen_at, "
                                 "field_strength_t, axial_fov_cm, staffed_hours", iter(dev_rows))
        conn.commit()
        log(f"devices: {counts['device']}")

        # daily QC: one result a day per device, each with its modality's measurements
        day_str = [(start + dt.timedelta(days=d)).strftime("%Y-%m-%d") for d in range(days)]
        drift = {did for did, _, _ in devices if did % 20 == 3}  # 5 %: slow drift
        broken = {did for did, _, _ in devices if did % 50 == 7}  # 2 %: failure + repair
        state = {"rid": 0, "mid": 0}
        meas_buf: list[str] = []

        def result_lines() -> Iterator[str]:
            for did, mod, _site in devices:
                analysis, standard, defs = QC[mod]
                hh = 7 + did % 2
                mm = did % 60
                when = [f"{d} {hh:02d}:{mm:02d}:00" for d in day_str]
                noise = rng.standard_normal((days, len(defs)))
                values = np.array([mean for _, _, _, mean, _, _ in defs]) + noise * \
                    np.array([sd for _, _, _, _, sd, _ in defs])
                if did in drift:  # the first measurement drifts over the last 150 days
                    ramp = np.clip(np.arange(days) - (days - 150), 0, None)
                    lim = defs[0][5]
                    span = (lim[1] - defs[0][3]) if lim and lim[1] is not None else \
                        4 * defs[0][4]
                    values[:, 0] += 1.3 * span * ramp / 150
                if did in broken:  # a sudden failure for five days, then repaired
                    at = days - 400 + did % 200
                    values[at:at + 5, 0] += 12 * defs[0][4] * (1 if did % 2 else -1)
                status = np.full(values.shape, "info", dtype=object)
                for k, (_, _, _, _, _, lim) in enumerate(defs):
                    if lim is None:
                        continue
                    lo, hi = lim
                    ok = np.ones(days, dtype=bool)
                    if lo is not None:
                        ok &= values[:, k] >= lo
                    if hi is not None:
                        ok &= values[:, k] <= hi
                    status[:, k] = np.where(ok, "pass", "fail")
                consts = []
                for name, labels, unit, _mean, sd, lim in defs:
                    lab = json.dumps(labels, sort_keys=True, separators=(",", ":"))
                    lo_s = "\\N" if not lim or lim[0] is None else repr(lim[0])
                    hi_s = "\\N" if not lim or lim[1] is None else repr(lim[1])
                    src, ver = (LIMIT_SOURCE, "f") if lim else ("\\N", "\\N")
                    consts.append((f"\t{did}\t{analysis}\t", f"\t{name}\t{lab}\t{lab}\t",
                                   f"\t{unit}\t{sd / 5:.4g}\t{lo_s}\t{hi_s}\t{src}\t{ver}\t"))
                rid0 = state["rid"]
                mid = state["mid"]
                for d in range(days):
                    rid = rid0 + d + 1
                    w = when[d]
                    yield (f"{rid}\t{did}\t{analysis}\t{standard}\tbench.{did}.{d}\t{w}\t{{}}\t"
                           f"[]\tbench\t{created}\n")
                    vals = values[d]
                    sts = status[d]
                    for k, (a, b, c) in enumerate(consts):
                        mid += 1
                        meas_buf.append(f"{mid}\t{rid}{a}{w}{b}{vals[k]:.6g}{c}{sts[k]}\n")
                state["rid"] = rid0 + days
                state["mid"] = mid

        t = time.perf_counter()
        # results and measurements in two COPYs per block of devices, interleaved, so the
        # measurement lines of a block are held in memory only for that block
        res_cols = ("id, device_id, analysis, standard, series_uid, acquired_at, parameters, "
                    "warnings, scanbench_version, created_at")
        meas_cols = ("id, result_id, device_id, analysis, acquired_at, name, labels, "
                     "labels_key, value, unit, uncertainty, limit_low, limit_high, "
                     "limit_source, limit_verified, status")
        counts["result"] = counts["measurement"] = 0
        gen = result_lines()
        block = max(1, 20 // max(1, size.years))
        done = False
        while not done:
            chunk: list[str] = []
            target = state["rid"] + block * days
            for line in gen:
                chunk.append(line)
                if int(line.split("\t", 1)[0]) >= target:
                    break
            else:
                done = True
            if chunk:
                counts["result"] += _copy(cur, "result", res_cols, iter(chunk))
                counts["measurement"] += _copy(cur, "measurement", meas_cols, iter(meas_buf))
                meas_buf.clear()
                conn.commit()
            if done or counts["result"] % (100 * days) < block * days:
                log(f"QC: {counts['result']:,} results, {counts['measurement']:,} measurements, "
                    f"{time.perf_counter() - t:.0f} s")

        # clinical exams on CT and PET/CT (dose + timing) and MR (timing only)
        exam_devs = [(did, mod, site) for did, mod, site in devices]
        weights = np.array([1.0 if mod == "CT" else 0.5 if mod == "PT" else 0.6
                            for _, mod, _ in exam_devs])
        which = rng.choice(len(exam_devs), size=size.exams, p=weights / weights.sum())
        day_of = rng.integers(0, days, size=size.exams)
        minute = rng.integers(8 * 60, 18 * 60, size=size.exams)
        proto = rng.integers(0, len(CT_PROTOCOLS), size=size.exams)
        spread = rng.lognormal(0.0, 0.25, size=size.exams)
        weight_kg = np.clip(rng.normal(70, 12, size=size.exams), 35, 150)
        dur = np.clip(rng.normal(1, 0.25, size=size.exams), 0.4, 3)
        study_lines: list[str] = []
        dose_lines: list[str] = []
        timing_lines: list[str] = []
        eid = 0
        t = time.perf_counter()
        for n in range(size.exams):
            did, mod, site = exam_devs[int(which[n])]
            sid = n + 1
            when = start + dt.timedelta(days=int(day_of[n]), minutes=int(minute[n]))
            w = _ts(when)
            p_name, region, ctdi, length, k = CT_PROTOCOLS[int(proto[n])]
            if mod == "PT":
                p_name, region, ctdi, length, k = ("PET-CT WHOLE BODY FDG", "38266002", 3.0,
                                                   100.0, 0.015)
            if mod == "MR":
                p_name = ("MR BRAIN", "MR KNEE", "MR LUMBAR SPINE", "MR PROSTATE")[int(proto[n])]
            study_lines.append(f"{sid}\t1.2.826.0.1.3680043.10.1234.{sid}\t{site}\t{p_name}\t"
                               f"{w}\t{w}\tdone\n")
            minutes = (12 if mod == "CT" else 25 if mod == "PT" else 30) * float(dur[n])
            end = _ts(when + dt.timedelta(minutes=minutes))
            timing_lines.append(f"{sid}\t{sid}\t{did}\t{w}\t{end}\t{minutes * 60:.0f}\t"
                                f"{{\"modality\":\"{mod}\"}}\n")
            if mod == "MR":
                continue
            c = ctdi * float(spread[n])
            dlp = c * length
            scout_dlp = 0.05 * length / 10
            total = dlp + scout_dlp
            eff = k * total
            eid += 1
            dose_lines.append(
                f"{eid}\t{sid}\t{did}\tstudy\t\\N\t{w}\t{p_name}\t\\N\t{total:.2f}\t\\N\t\\N\t"
                f"{eff:.3f}\t{{\"study_description\":\"{p_name}\"}}\n")
            eid += 1
            dose_lines.append(
                f"{eid}\t{sid}\t{did}\tct\t\\N\t{w}\t{p_name}\t0.05\t{scout_dlp:.3f}\t\\N\t\\N\t"
                f"\\N\t{{\"acquisition_type\":\"constant_angle\"}}\n")
            eid += 1
            dose_lines.append(
                f"{eid}\t{sid}\t{did}\tct\t\\N\t{w}\t{p_name}\t{c:.3f}\t{dlp:.2f}\t"
                f"{1.3 * c:.3f}\t\\N\t\\N\t{{\"acquisition_type\":\"spiral\","
                f"\"target_region_code\":{{\"value\":\"{region}\",\"scheme\":\"SCT\"}}}}\n")
            if mod == "PT":
                act = 3.7 * float(weight_kg[n]) * float(spread[n]) ** 0.3
                eid += 1
                dose_lines.append(
                    f"{eid}\t{sid}\t{did}\tradiopharmaceutical\t\\N\t{w}\tFluorodeoxyglucose"
                    f"\t\\N\t\\N\t\\N\t{act:.1f}\t{act * 0.019:.3f}\t{{\"agent\":"
                    f"\"Fluorodeoxyglucose\",\"administered_activity_mbq\":{act:.1f},"
                    f"\"activity_per_kg_mbq_per_kg\":{act / float(weight_kg[n]):.3f}}}\n")
            if len(study_lines) >= 100_000 or n == size.exams - 1:
                counts["study"] = counts.get("study", 0) + _copy(
                    cur, "study", "id, study_uid, site_id, description, study_datetime, "
                    "first_received_at, clinical_state", iter(study_lines))
                counts["dose_event"] = counts.get("dose_event", 0) + _copy(
                    cur, "dose_event", "id, study_id, device_id, kind, event_uid, occurred_at, "
                    "protocol, ctdivol_mgy, dlp_mgycm, ssde_mgy, administered_activity_mbq, "
                    "effective_dose_msv, data", iter(dose_lines))
                counts["exam_timing"] = counts.get("exam_timing", 0) + _copy(
                    cur, "exam_timing", "id, study_id, device_id, started_at, ended_at, "
                    "duration_s, data", iter(timing_lines))
                study_lines, dose_lines, timing_lines = [], [], []
                conn.commit()
        if study_lines:
            counts["study"] = counts.get("study", 0) + _copy(
                cur, "study", "id, study_uid, site_id, description, study_datetime, "
                "first_received_at, clinical_state", iter(study_lines))
            counts["exam_timing"] = counts.get("exam_timing", 0) + _copy(
                cur, "exam_timing", "id, study_id, device_id, started_at, ended_at, "
                "duration_s, data", iter(timing_lines))
            if dose_lines:
                counts["dose_event"] = counts.get("dose_event", 0) + _copy(
                    cur, "dose_event", "id, study_id, device_id, kind, event_uid, "
                    "occurred_at, protocol, ctdivol_mgy, dlp_mgycm, ssde_mgy, "
                    "administered_activity_mbq, effective_dose_msv, data", iter(dose_lines))
            conn.commit()
        log(f"exams: {counts.get('study', 0):,} studies, {counts.get('dose_event', 0):,} dose "
            f"events, {time.perf_counter() - t:.0f} s")

        # lifecycle: installation, quarterly service, software changes, a repair per broken
        life: list[str] = []
        alerts: list[str] = []
        cards: list[str] = []
        lid = 0
        for did, mod, _site in devices:
            analysis, _std, defs = QC[mod]
            events = [(start, "installation", "installed", "f", "f")]
            events += [(start + dt.timedelta(days=91 * q + 40, hours=3), "planned_service",
                        f"quarterly service {q + 1}", "t", "f")
                       for q in range(1, 4 * size.years)]
            events += [(start + dt.timedelta(days=days // 2 + did % 30), "software_change",
                        "software VA20 -> VA21", "t", "t")]
            if did in broken:
                at = start + dt.timedelta(days=days - 400 + did % 200 + 4, hours=2)
                events += [(at, "unplanned_service", "detector module replaced", "f", "f")]
            for when, kind, summary, planned, base in events:
                lid += 1
                life.append(f"{lid}\t{did}\t{kind}\t{_ts(when)}\t{summary}\t{{}}\tuser\t"
                            f"{created}\t{planned}\t{base}\n")
            name, labels, unit = defs[0][0], defs[0][1], defs[0][2]
            lab = json.dumps(labels, sort_keys=True, separators=(",", ":"))
            if did in drift:
                alerts.append(f"bench:{did}:{analysis}:{name}:cusum\t{did}\t{analysis}\t{name}"
                              f"\t{lab}\t{lab}\tcusum\ttrend\thigh\t{unit}\t"
                              f"CUSUM above its decision interval\topen\t{created}\n")
            if did in broken:
                alerts.append(f"bench:{did}:{analysis}:{name}:limit\t{did}\t{analysis}\t{name}"
                              f"\t{lab}\t{lab}\tlimit\taction\thigh\t{unit}\t"
                              f"outside the action limit\tclosed\t{created}\n")
            overdue = did % 40 == 11
            tests = [{"test": analysis, "title": "Daily QC", "frequency": "daily",
                      "status": "overdue" if overdue else "passed"}]
            data = json.dumps({"tests": tests, "compliance": {"required": 1,
                                                              "on_time": 0 if overdue else 1}})
            cards.append(f"{did}\t{spec_id}\t2026-01-01 00:00:00\t{_ts(now)}\t"
                         f"{0.0 if overdue else 1.0}\t{'fail' if overdue else 'pass'}\t{data}\t"
                         f"{created}\t{0.0 if overdue else 1.0}\tbench-{did}\n")
        counts["lifecycle_event"] = _copy(cur, "lifecycle_event", "id, device_id, kind, "
                                          "occurred_at, summary, details, source, created_at, "
                                          "planned, new_baseline", iter(life))
        counts["alert"] = _copy(cur, "alert", "key, device_id, analysis, name, labels, "
                                "labels_key, rule, level, direction, unit, message, state, "
                                "opened_at", iter(alerts))
        counts["scorecard"] = _copy(cur, "scorecard", "device_id, spec_id, period_start, "
                                    "period_end, score, status, data, created_at, compliance, "
                                    "inputs_hash", iter(cards))
        conn.commit()
        for table in ("device", "result", "measurement", "study", "dose_event", "exam_timing",
                      "lifecycle_event"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT coalesce(max(id), 1) FROM {table}))")
        conn.commit()
        t = time.perf_counter()
        for _table, name, definition in index_defs:
            cur.execute(definition)
            conn.commit()
            log(f"index {name}: {time.perf_counter() - t:.0f} s")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    rebuild_state(url)
    return counts


def rebuild_state(url: str) -> None:
    """The stored fleet state of every device (``scanbench db rebuild-state``): the node
    keeps it when it stores results, alerts and scorecards, but ``COPY`` goes around it."""
    t = time.perf_counter()
    subprocess.run([SCANBENCH, "db", "rebuild-state", "--database-url", url], check=True,
                   capture_output=True)
    log(f"fleet state of every device stored: {time.perf_counter() - t:.1f} s")


# --------------------------------------------------------------------------- load

@dataclass
class Endpoint:
    label: str
    paths: list[str]
    warmup: list[str] | None = None  # other paths for the warm-up round (default: paths)


def endpoints(url: str, user: str, n: int) -> list[Endpoint]:
    """The requests of each endpoint: random devices among those ``user`` may see."""
    import psycopg

    rnd = random.Random(7)
    with psycopg.connect(url) as c:
        rows = c.execute(
            "SELECT d.id, d.modality FROM device d JOIN site_grant g ON g.site_id = d.site_id "
            "JOIN user_account u ON u.id = g.user_id WHERE u.username = %s", (user,)).fetchall()
    picks = [rows[rnd.randrange(len(rows))] for _ in range(n)]

    def series(mod: str) -> tuple[str, str, str]:
        analysis, _, defs = QC[mod]
        name, labels = defs[0][0], defs[0][1]
        return analysis, name, json.dumps(labels, sort_keys=True, separators=(",", ":"))

    from urllib.parse import urlencode

    hist, charts = [], []
    for did, mod in picks:
        a, name, lab = series(mod)
        hist.append(f"/api/v1/devices/{did}/history?"
                    + urlencode({"analysis": a, "name": name, "labels": lab}))
        charts.append(f"/devices/{did}/chart?"
                      + urlencode({"analysis": a, "name": name, "labels": lab}))
    return [Endpoint("fleet page GET /", ["/"] * n),
            Endpoint("device page GET /devices/{id}", [f"/devices/{d}" for d, _ in picks]),
            Endpoint("control chart GET /devices/{id}/chart", charts),
            Endpoint("history API GET /api/v1/devices/{id}/history", hist),
            Endpoint("dose statistics GET /api/v1/dose/statistics",
                     ["/api/v1/dose/statistics"] * n),
            # Computed, not served as stored: every request asks something not asked before
            # (one device; a different number of outliers listed makes each key unique).
            Endpoint("dose statistics of one device (computed)",
                     [f"/api/v1/dose/statistics?device_id={d}&max_outliers={1 + i % 500}"
                      for i, (d, _) in enumerate(picks)],
                     [f"/api/v1/dose/statistics?device_id={d}&max_outliers=0"
                      for d, _ in picks])]


async def _one(c: Any, path: str) -> tuple[float, int]:
    """One request: seconds from sending to the last byte of the body, body bytes."""
    t = time.perf_counter()
    r = await c.get(path)
    body = r.content
    if r.status_code != 200:
        log(f"{path}: HTTP {r.status_code} {body[:200]!r}")
        return -(time.perf_counter() - t), len(body)  # counted as an error
    return time.perf_counter() - t, len(body)


async def _measure(cs: list[Any], ep: Endpoint, per_client: int) -> dict[str, Any]:
    # warm-up: every client once (first-use costs, the server's caches)
    warm = ep.warmup or ep.paths
    await asyncio.gather(*(_one(c, warm[i % len(warm)]) for i, c in enumerate(cs)))
    times: list[float] = []
    sizes: list[int] = []

    async def client_loop(k: int, c: Any) -> None:
        for j in range(per_client):
            dt_s, size = await _one(c, ep.paths[(k * per_client + j) % len(ep.paths)])
            times.append(dt_s)
            sizes.append(size)

    t0 = time.perf_counter()
    await asyncio.gather(*(client_loop(k, c) for k, c in enumerate(cs)))
    wall = time.perf_counter() - t0
    errors = sum(x < 0 for x in times)
    ms = np.abs(np.array(times)) * 1000
    row: dict[str, Any] = {
        "endpoint": ep.label, "n": len(times), "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)), "max_ms": float(ms.max()),
        "req_per_s": len(times) / wall, "kib": statistics.median(sizes) / 1024,
        "errors": errors}
    row["meets"] = row["p95_ms"] < TARGET_MS and not errors
    log(f"{row['endpoint']:48s} p50 {row['p50_ms']:7.0f} ms  p95 {row['p95_ms']:7.0f} "
        f"ms  max {row['max_ms']:7.0f} ms  {row['req_per_s']:5.1f} req/s  "
        f"{row['kib']:6.0f} KiB  {'meets' if row['meets'] else 'MISSES'} p95 < 300 ms"
        + (f", {errors} NOT 200" if errors else ""))
    return row


async def drive(base: str, user: str, eps: list[Endpoint], clients: int, per_client: int
                ) -> list[dict[str, Any]]:
    """``clients`` clients, each signed in with its own session; endpoint after endpoint,
    every client sends ``per_client`` requests one after the other (percentiles:
    numpy's linear interpolation)."""
    import httpx

    limits = httpx.Limits(max_connections=1)
    cs = [httpx.AsyncClient(base_url=base, timeout=600, limits=limits) for _ in range(clients)]
    try:
        for c in cs:
            r = await c.post("/api/v1/auth/login", json={"username": user, "password": PW})
            r.raise_for_status()
        return [await _measure(cs, ep, per_client) for ep in eps]
    finally:
        for c in cs:
            await c.aclose()


def serve(url: str, home: Path, workers: int = 1) -> tuple[subprocess.Popen[bytes], str]:
    """``scanbench serve --workers N`` on a free port; its log in ``home/serve.log``."""
    (home / "serve.log").unlink(missing_ok=True)
    logfile = (home / "serve.log").open("wb")
    proc = subprocess.Popen([SCANBENCH, "serve", "--port", "0", "--database-url", url,
                             "--home", str(home), "--workers", str(workers)],
                            stdout=logfile, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        found = re.search(r"ready on (http://[\d.]+:\d+)",
                          (home / "serve.log").read_text(errors="replace"))
        if found:
            return proc, found.group(1)
        time.sleep(0.2)
    proc.kill()
    sys.exit(f"scanbench serve did not start: {(home / 'serve.log').read_text()[-2000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="a small size: 50 devices, 1 year, 20,000 exams")
    ap.add_argument("--sites", type=int, default=20)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--exams", type=int, default=1_000_000)
    ap.add_argument("--clients", default="20", help="concurrent clients; a list (1,20) "
                    "measures each in turn (1: the time a request costs alone)")
    ap.add_argument("--requests", type=int, default=10, help="timed requests per client and "
                    "endpoint")
    ap.add_argument("--users", default="bench_admin,bench_physicist",
                    help="who signs in: bench_admin (admin on every site) and/or "
                    "bench_physicist (one site)")
    ap.add_argument("--endpoints", default="fleet,device,chart,history,dose,dose_device",
                    help="which endpoints to measure")
    ap.add_argument("--workers", default="1", help="web processes of scanbench serve "
                    "(--workers); a list (1,2) serves and measures each in turn")
    ap.add_argument("--pgdir", type=Path, help="keep the PostgreSQL cluster here")
    ap.add_argument("--generate-only", action="store_true", help="generate, do not measure")
    ap.add_argument("--reuse", action="store_true", help="the cluster in --pgdir is already "
                    "generated: measure only")
    args = ap.parse_args()
    size = Size(args.sites, args.devices, args.years, args.exams)
    if args.quick:
        size = Size(5, 50, 1, 20_000)
    log(f"start: {machine()}")
    folder = args.pgdir or Path(tempfile.mkdtemp(prefix="scanbench-benchweb-"))
    folder.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(folder)
    cluster.start()
    home = Path(tempfile.mkdtemp(prefix="scanbench-benchweb-home-"))
    try:
        cluster.create_db()
        if args.reuse:  # a cluster of an older schema: upgraded (0007 stores the states)
            t = time.perf_counter()
            subprocess.run([SCANBENCH, "db", "upgrade", "--database-url", cluster.url],
                           check=True, capture_output=True)
            log(f"schema upgraded in {time.perf_counter() - t:.1f} s")
        else:
            t = time.perf_counter()
            subprocess.run([SCANBENCH, "db", "upgrade", "--database-url", cluster.url],
                           check=True, capture_output=True)
            counts = generate(cluster.url, cluster.plain, size)
            took = time.perf_counter() - t
            log(f"generated in {took:.0f} s ({took / 60:.1f} min): "
                + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
        import psycopg

        with psycopg.connect(cluster.plain) as c:
            got = c.execute("SELECT pg_database_size('scanbench')").fetchone()
            mb = (got[0] if got else 0) / 2**20
        log(f"database size {mb / 1024:.1f} GiB")
        if args.generate_only:
            return
        for workers in (int(x) for x in args.workers.split(",")):
            log(f"=== scanbench serve --workers {workers}")
            measure(args, cluster, home, workers)
        log(f"end: {machine()}")
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)
        if args.pgdir is None:
            shutil.rmtree(folder, ignore_errors=True)


def measure(args: argparse.Namespace, cluster: Cluster, home: Path, workers: int) -> None:
    """Serve with ``workers`` processes and drive every chosen endpoint."""
    proc, base = serve(cluster.url, home, workers)
    try:
        for user in args.users.split(","):
            for clients in (int(x) for x in args.clients.split(",")):
                log(f"--- {clients} clients signed in as {user}, {args.requests} timed "
                    "requests each per endpoint")
                wanted = args.endpoints.split(",")
                eps = [e for e, key in zip(endpoints(cluster.plain, user,
                                                      clients * args.requests),
                                           ("fleet", "device", "chart", "history", "dose",
                                            "dose_device"),
                                           strict=True) if key in wanted]
                asyncio.run(drive(base, user, eps, clients, args.requests))
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        errors = [line for line in (home / "serve.log").read_text(errors="replace")
                  .splitlines() if "Error" in line or "error" in line]
        if errors:
            log("server log errors (last 5):\n  " + "\n  ".join(errors[-5:]))


if __name__ == "__main__":
    main()

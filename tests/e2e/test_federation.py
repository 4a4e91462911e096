"""Federation end to end (issue 14 §1), real processes on loopback: a central node
(`scanbench serve`, PostgreSQL) and two site nodes, north (SQLite, `scanbench node
--central`) and south (PostgreSQL, `scanbench federation send`), each with its own
database. South is offline for part of the run (its first pass finds no centre); north's
node is killed with SIGKILL while its batch is in flight — the centre stored it, the
answer never came back — and restarted. Then: every result of both sites is in the
central database exactly once, no Basic Profile attribute value of the source DICOM
survives there (the whole database dumped and searched). A reviewer granted north at the
centre finds north's result in the review queue and rejects it through the review API
with an API token, as a reviewer's program would; the decision reaches north's database
and the test, done before, is due again on north's due list. North, which enabled image
upload for review, sends its series de-identified (no patient value in the central
files), south sends none."""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from nodekit import Node, wait_for
from sqlalchemy import MetaData, create_engine, func, select
from sqlalchemy.orm import Session

from node_dicom import uniform_phantom
from pg import PgServer, pg_server  # noqa: F401  (fixture)
from scanbench.dicom.deid import profile_table
from scanbench.evaluation.scorecard import due_list_for_device
from scanbench.store import models as m

SCANBENCH = [sys.executable, "-m", "scanbench"]
#: Patient and study identity written into the source DICOM (beside what the simulator
#: writes), so that a leak would be found by value.
PATIENT = {"PatientName": "FEDERATION^ALICE^Q", "PatientID": "PID-FED-4711",
           "PatientBirthDate": "19610203", "AccessionNumber": "ACC-FED-0815",
           "ReferringPhysicianName": "REFERRER^BOB", "OtherPatientIDs": "OPID-FED-2323",
           "PatientAddress": "12 Fedstreet, Sampletown", "StudyID": "STUDY-FED-77",
           "OperatorsName": "OPERATOR^CAROL", "RequestingPhysician": "REQUESTER^DAN"}


def _env(home: Path, url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("SCANBENCH_DATABASE_URL", "SCANBENCH_DASK_SCHEDULER")}
    env["SCANBENCH_HOME"] = str(home)
    if url:
        env["SCANBENCH_DATABASE_URL"] = url
    return env


def _run(args: list[str], env: dict[str, str], timeout: float = 180
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SCANBENCH, *args], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)


def _phantom(folder: Path, day: int, seed: int) -> list[Path]:
    """A simulated PET uniform-cylinder scan with a patient's identity written in."""
    uniform_phantom(folder, scan_start=dt.datetime(2026, 1, day, 8, 0), seed=seed)
    files = sorted(folder.glob("*.dcm"))
    for path in files:
        ds = pydicom.dcmread(path)
        for keyword, value in PATIENT.items():
            setattr(ds, keyword, value)
        ds.save_as(path)
    return files


class HoldingProxy:
    """A loopback HTTP/1.1 relay in front of the centre. Armed, it delivers the next
    POST to the centre, reads the centre's answer and keeps it (``held`` is set): the
    sender waits for an answer that never comes. Disarmed, it relays both ways."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.armed = False
        self.held = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    @staticmethod
    def _message(conn: socket.socket, buf: bytearray) -> bytes | None:
        while b"\r\n\r\n" not in buf:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            buf += chunk
        head, _, rest = bytes(buf).partition(b"\r\n\r\n")
        found = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        length = int(found.group(1)) if found else 0
        body = bytearray(rest)
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            body += chunk
        buf[:] = body[length:]
        return head + b"\r\n\r\n" + bytes(body[:length])

    def _serve(self, client: socket.socket) -> None:
        up = socket.create_connection(self.upstream)
        cbuf, ubuf = bytearray(), bytearray()
        try:
            while True:
                request = self._message(client, cbuf)
                if request is None:
                    return
                up.sendall(request)
                answer = self._message(up, ubuf)
                if answer is None:
                    return
                if self.armed and request.startswith(b"POST"):
                    self.armed = False
                    self.held.set()
                    client.recv(1)  # until the sender is gone
                    return
                client.sendall(answer)
        except OSError:
            return
        finally:
            client.close()
            up.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def central(tmp_path: Path, pg_server: PgServer) -> Iterator[dict[str, Any]]:  # noqa: F811
    """The central node's database (PostgreSQL) and home; started by the test."""
    yield {"url": pg_server.create(), "home": tmp_path / "central"}


def _start_central(c: dict[str, Any]) -> subprocess.Popen[bytes]:
    log = c["home"].parent / "central.log"
    c["log"] = log
    with open(log, "wb") as fh:
        proc = subprocess.Popen([*SCANBENCH, "serve", "--port", "0"],
                                env=_env(c["home"], c["url"]), stdout=fh,
                                stderr=subprocess.STDOUT)

    def ready() -> str | None:
        if proc.poll() is not None:
            raise AssertionError(f"central exited: {log.read_text(errors='replace')}")
        found = re.search(r"ready on (http://127\.0\.0\.1:\d+)", log.read_text(errors="replace"))
        return found.group(1) if found else None

    c["http"] = wait_for("the central node to start", ready, 60)
    return proc


def _credential(c: dict[str, Any], site: str, folder: Path) -> Path:
    r = _run(["federation", "credential", "add", site], _env(c["home"], c["url"]))
    assert r.returncode == 0, r.stderr
    path = folder / f"{site}.token"
    path.write_text(r.stdout.strip().splitlines()[0] + "\n")
    path.chmod(0o600)
    return path


#: North's QC spec: the PET calibration and uniformity test weekly (a week is a slot, so
#: the due list can be read at a fixed time in the week of the scan).
SPEC = """name: fed-e2e-cal
title: calibration QC
version: "1"
description: weekly calibration QC of the federation test
verified: true
sources: ["site QC manual"]
applies_to: {modality: PT}
tests:
  - {test: pet.calibration_uniformity, analysis: pet.calibration_uniformity,
     frequency: weekly, source: "site QC manual 4.1"}
"""


def _reviewer_token(c: dict[str, Any], site: str) -> str:
    """A reviewer granted ``site`` at the centre and an API token of theirs (role
    reviewer), made with the commands a programme's operator uses."""
    env = _env(c["home"], c["url"])
    r = subprocess.run([*SCANBENCH, "user", "add", "rev_north", "--password-stdin"],
                       input="a long reviewer passphrase\n", capture_output=True, text=True,
                       env=env, timeout=180, check=False)
    assert r.returncode == 0, r.stderr
    r = _run(["user", "grant", "rev_north", site, "reviewer"], env)
    assert r.returncode == 0, r.stderr
    r = _run(["user", "token", "create", "rev_north", "--role", "reviewer"], env)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[0]


def _north_due(url: str, at: dt.datetime) -> list[tuple[str, str]]:
    """(test, status) of north's device's due list at ``at`` (read from its database)."""
    engine = create_engine(url)
    try:
        with Session(engine) as s:
            dev_id = s.scalars(select(m.Device.id)).one()
            return [(i.test, i.status) for i in due_list_for_device(s, dev_id, at).items]
    finally:
        engine.dispose()


def _count(url: str, model: Any, *where: Any) -> int:
    engine = create_engine(url)
    try:
        with Session(engine) as s:
            return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)
    finally:
        engine.dispose()


def _dump(url: str) -> str:
    """Every row of every table of the database, as text."""
    engine = create_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    parts: list[str] = []
    try:
        with engine.connect() as conn:
            for table in meta.sorted_tables:
                parts.extend(repr(tuple(r)) for r in conn.execute(table.select()))
    finally:
        engine.dispose()
    return "\n".join(parts)


def _basic_profile_values(files: list[Path]) -> dict[str, str]:
    """Each Basic Profile attribute's value in ``files`` that is not kept by it ("K")
    and not kept by the two options the programme applies (PS3.15 Table E.1-1: Retain
    Device Identity, Retain Longitudinal Temporal Information with Full Dates); values
    of 4 characters or more (shorter ones, "1" or "O", would be found anywhere)."""
    table = profile_table()
    out: dict[str, str] = {}
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for elem in ds.iterall():
            rule = table.get(int(elem.tag))
            if rule is None or rule.basic == "K" or set(rule.options) & {"v", "V", "l"}:
                continue
            if elem.VR == "SQ":
                continue
            values = elem.value if isinstance(elem.value, list | pydicom.multival.MultiValue) \
                else [elem.value]
            for v in values:
                text = str(v).strip()
                if len(text) >= 4:
                    out[text] = elem.keyword
    return out


def test_two_sites_reach_the_centre_once_de_identified(tmp_path: Path, central: dict[str, Any],
                                                        pg_server: PgServer  # noqa: F811
                                                        ) -> None:
    north_home, south_home = tmp_path / "north", tmp_path / "south"
    north_url = f"sqlite:///{north_home / 'scanbench.db'}"
    south_url = pg_server.create()
    files = _phantom(tmp_path / "in-north" / "a", 5, 1) + \
        _phantom(tmp_path / "in-south" / "a", 6, 2)
    ingests = [subprocess.Popen([*SCANBENCH, "ingest", str(tmp_path / f"in-{name}"),
                                 "--workers", "0"], env=_env(home, url),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
               for name, home, url in (("north", north_home, None),
                                       ("south", south_home, south_url))]
    for p in ingests:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    assert _count(north_url, m.Result) == 1 and _count(south_url, m.Result) == 1
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    north_env = _env(north_home)
    for args in (["specs", "load", str(spec)],
                 ["specs", "assign", "fed-e2e-cal", "--modality", "PT", "--from", "2026-01-01"]):
        r = _run(args, north_env)
        assert r.returncode == 0, r.stderr
    # North scanned on Monday 2026-01-05: the week's test is done on Thursday.
    thursday = dt.datetime(2026, 1, 8, 12, tzinfo=dt.UTC)
    assert _north_due(north_url, thursday) == [("pet.calibration_uniformity", "done")]

    central["home"].mkdir()
    north_token = _credential(central, "north", tmp_path)
    south_token = _credential(central, "south", tmp_path)
    # North has an expert reviewer at the centre before its results arrive (south none).
    review_token = _reviewer_token(central, "north")
    # South first: the centre is not up (offline): nothing is lost, the reason is kept.
    dead = f"http://127.0.0.1:{socket.create_server(('127.0.0.1', 0)).getsockname()[1]}"
    south_env = _env(south_home, south_url)
    r = _run(["federation", "send", "--central", dead, "--token-file", str(south_token)],
             south_env)
    assert r.returncode == 1 and "not reachable" in r.stderr
    proc = _start_central(central)
    proxy = HoldingProxy(central["http"])
    north: Node | None = None
    try:
        # North's node sends through the proxy, which keeps the centre's answer: the
        # node is killed while it waits for it (the centre has stored the batch).
        proxy.armed = True
        north = Node(north_home, args=("--central", proxy.url, "--central-token-file",
                                       str(north_token), "--central-every", "0.5",
                                       "--central-images"))
        north.start()
        assert proxy.held.wait(60), north.text()
        north.kill9()
        assert _count(central["url"], m.FedBatch, m.FedBatch.state == "accepted") == 1
        assert _count(north_url, m.FedPeer, m.FedPeer.last_acked_seq > 0) == 0
        north.start()  # restarted: the same batch again, acknowledged as a duplicate
        wait_for("north's outbox to be confirmed", lambda: _count(
            north_url, m.FedPeer, m.FedPeer.last_acked_seq > 0) == 1, 60)
        # South is back online and catches up in one pass.
        r = _run(["federation", "send", "--central", central["http"], "--token-file",
                  str(south_token)], south_env)
        assert r.returncode == 0, r.stderr
        r = _run(["federation", "status"], south_env)
        assert r.returncode == 0 and "last error" in r.stdout, r.stdout
        engine = create_engine(south_url)
        try:
            with Session(engine) as s:
                peers = {p.url: p for p in s.scalars(select(m.FedPeer))}
                newest = s.scalar(select(func.max(m.FedOutbox.id)))
        finally:
            engine.dispose()
        assert newest and peers[central["http"]].last_acked_seq == newest
        assert peers[central["http"]].last_error is None
        assert "not reachable" in (peers[dead].last_error or "")

        # Exactly once each: one central result per site result, one FedRecord per key.
        engine = create_engine(central["url"])
        try:
            with Session(engine) as s:
                per_site = dict(s.execute(
                    select(m.Site.name, func.count(m.Result.id))
                    .join(m.Device, m.Device.site_id == m.Site.id)
                    .join(m.Result, m.Result.device_id == m.Device.id)
                    .group_by(m.Site.name)).all())
                keys = s.execute(select(m.FedRecord.site_id, m.FedRecord.record_key)).all()
                batches = dict(s.execute(select(m.FedBatch.state, func.count())
                                         .group_by(m.FedBatch.state)).all())
                north_result = s.scalars(
                    select(m.Result).join(m.Device, m.Device.id == m.Result.device_id)
                    .join(m.Site, m.Site.id == m.Device.site_id)
                    .where(m.Site.name == "north")).one()
                assert len(north_result.measurements) == 5
                north_result_id = north_result.id
        finally:
            engine.dispose()
        # The reviewer rejects north's result through the review API (their token).
        api = httpx.Client(base_url=central["http"], timeout=30,
                           headers={"Authorization": f"Bearer {review_token}"})
        try:
            queue = wait_for("north's result in the review queue", lambda: (
                api.get("/api/v1/reviews").json()["items"] or None), 30)
            assert [q["result_id"] for q in queue] == [north_result_id]  # south: none
            answer = api.post(f"/api/v1/reviews/{queue[0]['id']}/decision", json={
                "decision": "rejected", "reason": "uniformity out of tolerance",
                "comment": "repeat with a fresh fill"})
            assert answer.status_code == 200, answer.text
            assert answer.json()["state"] == "rejected"
        finally:
            api.close()
        assert per_site == {"north": 1, "south": 1}
        # (north's node also sends the scorecard of its assigned spec, in a later batch)
        assert len(keys) == len(set(keys)) and set(batches) == {"accepted"}

        dumped = _dump(central["url"])
        searched = _basic_profile_values(files)
        assert {"PatientName", "PatientID", "AccessionNumber", "StudyInstanceUID",
                "SeriesInstanceUID", "SOPInstanceUID"} <= set(searched.values())
        leaks = {value: kw for value, kw in searched.items() if value in dumped}
        assert not leaks, f"source DICOM values in the central database: {leaks}"
        for value in PATIENT.values():
            assert value not in dumped

        # The decision flows back to north within a few passes of its node.
        wait_for("the review decision at north", lambda: _count(
            north_url, m.ReviewDecision, m.ReviewDecision.decision == "rejected",
            m.ReviewDecision.result_id.is_not(None)) == 1, 30)
        assert _north_due(north_url, thursday) == [("pet.calibration_uniformity", "due")]
        # North enabled image upload for review: its series arrives de-identified, once;
        # south did not: none of its images leave.
        n_north = _count(north_url, m.Instance)
        wait_for("north's images at the centre", lambda: _count(
            central["url"], m.Instance, m.Instance.source == "federation:north") == n_north,
            60)
        assert _count(central["url"], m.Instance) == n_north
        stored = list((central["home"] / "files").rglob("*.dcm"))
        assert len(stored) == n_north
        for path in stored:
            ds = pydicom.dcmread(path)
            assert ds.PatientIdentityRemoved == "YES"
            raw = path.read_bytes()
            for value in PATIENT.values():
                assert value.encode() not in raw, (value, path.name)

        # The programme report (issue 14 §7) is generated from the central store and
        # holds both sites' devices and results, grouped by site.
        report = tmp_path / "programme.html"
        r = _run(["report", "programme", "-o", str(report), "--group-by", "site",
                  "--from", "2026-01-01", "--to", "2026-01-31"],
                 _env(central["home"], central["url"]))
        assert r.returncode == 0, r.stderr
        page = report.read_text(encoding="utf-8")
        assert "<td>Groups</td><td>north, south</td>" in page
        assert "<td>Devices</td><td>2</td>" in page
        assert "No measurement was stored" not in page  # each site's result is in it
    finally:
        if north is not None:
            north.stop()
        proxy.close()
        proc.terminate()
        proc.wait(30)

"""Federation under faults (issue 14 §1): a real central web application on a free
loopback port (uvicorn in a thread) and site nodes' SQLite databases, sent to by the real
sender over HTTP. Each fault — a batch cut off mid-transfer, a replayed batch, a batch
claiming another site, a revoked credential, an oversized batch, a schema-invalid batch,
a sequence gap, an answer lost in flight — is refused or deduplicated and nothing is
lost: what was not acknowledged is still in the site's outbox and arrives once later."""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import socket
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from pages_world import serving
from pg import database_url, pg_server  # noqa: F401  (fixtures: SQLite and PostgreSQL)
from scanbench.programme import federation as fed
from scanbench.programme.outbox import Sender, queue_new, status
from scanbench.store import models as m
from scanbench.store.db import Database
from scanbench.web.api import create_app
from scanbench.web.audit import Actor, commit_with_retry

ACTOR = Actor(None, "test")
PATIENT = {"patient_id": "PID-7731-SECRET", "accession": "ACC-99812-SECRET",
           "study_uid": "1.2.826.0.1.3680043.2.1125.77.1", "series_prefix":
           "1.2.826.0.1.3680043.2.1125.77.2."}
_sites = count(1)


@pytest.fixture(scope="module")
def central(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Database, str]]:
    """The central node's database and the URL of its web application."""
    home = tmp_path_factory.mktemp("central")
    db = Database(home)
    app = create_app(db)
    app.state.home = home  # as `scanbench serve` sets it: uploaded images go there
    with serving(app) as url:
        yield db, url
    db.close()


def _count(db: Database, model: Any, *where: Any) -> int:
    with db.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


@pytest.fixture(scope="module")
def empty_site_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated empty node database, copied for each site (migrating costs ~1.5 s)."""
    home = tmp_path_factory.mktemp("template")
    Database(home).close()
    return home / "scanbench.db"


class SiteNode:
    """A site node's database with results of one CT scanner, and its credential."""

    def __init__(self, home: Path, central: tuple[Database, str], n_results: int = 5,
                 template: Path | None = None) -> None:
        self.home = home
        if template is not None:
            home.mkdir(parents=True)
            shutil.copyfile(template, home / "scanbench.db")
        self.db = Database(home)
        self.central_db, self.url = central
        self.name = f"site-{next(_sites)}"
        with self.central_db.sessions() as s:
            self.token = commit_with_retry(
                s, lambda s: fed.add_credential(s, ACTOR, self.name))
        self.results = 0
        self.add_results(n_results)

    def add_results(self, n: int) -> None:
        with self.db.session() as s:
            dev = s.scalars(select(m.Device)).first()
            if dev is None:
                dev = m.Device(identity_key=f"acme|ct-9|{self.name}-sn1", manufacturer="ACME",
                               model="CT-9", serial=f"{self.name}-SN1", modality="CT")
                s.add(dev)
                study = m.Study(study_uid=PATIENT["study_uid"] + self.name[-1],
                                patient_id=PATIENT["patient_id"],
                                accession_number=PATIENT["accession"])
                s.add(study)
                s.flush()
            for _ in range(n):
                self.results += 1
                uid = f"{PATIENT['series_prefix']}{self.name[-1]}.{self.results}"
                res = m.Result(device_id=dev.id, analysis="ct.uniformity",
                               standard="IEC 61223-3-5:2019 section 5.2", series_uid=uid,
                               acquired_at=dt.datetime(2026, 3, 1, 8) +
                               dt.timedelta(days=self.results),
                               scanbench_version="test", source="/data/PID-7731-SECRET/ct")
                res.measurements.append(m.Measurement(
                    device_id=dev.id, analysis="ct.uniformity", name="noise",
                    labels={"roi": "centre"}, labels_key='{"roi":"centre"}',
                    value=4.0 + self.results / 100, unit="HU", status="pass",
                    acquired_at=res.acquired_at))
                s.add(res)

    def sender(self, **kw: Any) -> Sender:
        return Sender(self.db, self.home, self.url, self.token, backoff_s=0.01, **kw)

    def send(self, **kw: Any) -> Any:
        snd = self.sender(**kw)
        try:
            return snd.send_pass()
        finally:
            snd.close()

    def central_results(self) -> int:
        with self.central_db.sessions() as s:
            site = s.scalars(select(m.Site).where(m.Site.name == self.name)).one()
            return int(s.scalar(select(func.count()).select_from(m.Result)
                                .join(m.Device, m.Device.id == m.Result.device_id)
                                .where(m.Device.site_id == site.id)) or 0)

    def pending(self) -> int:
        with self.db.sessions() as s:
            rows = status(s)
            return int(rows[0]["pending"]) if rows else -1

    def batch(self, records: list[dict[str, Any]] | None = None, *, prev_seq: int = 0,
              uid: str = "manual-batch-0001", site: str | None = None) -> bytes:
        """A batch as the sender builds it, of this site's queued records."""
        if records is None:
            with self.db.sessions() as s:
                queue_new(s, b"k" * 32)
                s.commit()
                records = [{"seq": r.id, "kind": r.kind, "record_key": r.record_key,
                            "device": r.payload["device"], "data": r.payload["data"]}
                           for r in s.scalars(select(m.FedOutbox).order_by(m.FedOutbox.id))]
        return json.dumps({"protocol": fed.PROTOCOL, "site": site or self.name,
                           "batch_uid": uid, "prev_seq": prev_seq,
                           "records": records}).encode()

    def post(self, body: bytes, token: str | None = None) -> httpx.Response:
        return httpx.post(f"{self.url}/api/v1/fed/batches", content=body, timeout=30,
                          headers={"Authorization": f"Bearer {token or self.token}",
                                   "Content-Type": "application/json"})


@pytest.fixture
def site(tmp_path: Path, central: tuple[Database, str], empty_site_db: Path
         ) -> Iterator[SiteNode]:
    node = SiteNode(tmp_path / "site", central, template=empty_site_db)
    yield node
    node.db.close()


def test_results_arrive_once_de_identified_and_resume(site: SiteNode) -> None:
    rep = site.send(batch_size=2)
    assert rep.error is None and rep.queued == 5 and rep.sent_batches == 3
    assert site.central_results() == 5 and site.pending() == 0
    again = site.send()  # nothing new: nothing sent, nothing stored twice
    assert again.queued == 0 and again.sent_batches == 0 and site.central_results() == 5
    site.add_results(3)  # later results: only they are sent, after the confirmed seq
    rep = site.send()
    assert rep.queued == 3 and rep.sent_batches == 1 and site.central_results() == 8
    with site.central_db.sessions() as s:
        dumped = json.dumps([r.payload for r in s.scalars(select(m.FedRecord))])
        uids = list(s.scalars(select(m.Result.series_uid).where(
            m.Result.source == f"federation:{site.name}")))
        dev = s.scalars(select(m.Device).where(m.Device.serial == f"{site.name}-SN1")).one()
    for secret in (PATIENT["patient_id"], PATIENT["accession"], PATIENT["series_prefix"],
                   "/data/"):
        assert secret not in dumped
    assert all(u and u.startswith("2.25.") for u in uids) and len(set(uids)) == 8
    assert dev.manufacturer == "ACME" and dev.model == "CT-9"  # device identity kept


def test_cut_off_batch_stores_nothing_and_is_sent_again(site: SiteNode) -> None:
    body = site.batch()
    host, port = site.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /api/v1/fed/batches HTTP/1.1\r\nHost: x\r\n"
                     b"Authorization: Bearer " + site.token.encode() + b"\r\n"
                     b"Content-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:len(body) // 2])
        sock.shutdown(socket.SHUT_WR)  # the connection drops mid-body
        sock.recv(1000)
    # a body cut off by a proxy that still announced the short length: not JSON
    cut = site.post(body[:len(body) // 2])
    assert cut.status_code == 400 and "cut off" in cut.json()["error"]
    assert site.central_results() == 0
    rep = site.send()
    assert rep.error is None and site.central_results() == 5 and site.pending() == 0


def test_replayed_batch_and_records_are_stored_once(site: SiteNode) -> None:
    body = site.batch(uid="replayed-batch-01")
    first = site.post(body)
    assert first.status_code == 200 and first.json()["state"] == "accepted"
    replay = site.post(body)
    assert replay.status_code == 200 and replay.json()["state"] == "duplicate"
    # the same records under a new batch uid (the site lost its acknowledgement)
    again = site.post(site.batch(uid="replayed-batch-02"))
    assert again.status_code == 200 and again.json()["stored"] == 0
    assert again.json()["duplicates"] == 5
    assert site.central_results() == 5
    rep = site.send()  # the sender, unaware of the manual posts, is deduplicated too
    assert rep.error is None and site.central_results() == 5 and site.pending() == 0


def test_batch_claiming_another_site_is_refused(site: SiteNode,
                                                central: tuple[Database, str]) -> None:
    other = SiteNode(site.home.parent / "other", central, n_results=1,
                     template=site.home / "scanbench.db")
    try:
        resp = site.post(site.batch(site=other.name))
        assert resp.status_code == 403
        assert f"belongs to site {site.name!r}" in resp.json()["error"]
        assert site.central_results() == 0 and other.central_results() == 0
        with site.db.session() as s:  # the sender believes it is the other site
            s.add(m.FedPeer(url=site.url, site_uid=other.name))
        rep = site.send()
        assert rep.error and "claims site" in rep.error and site.pending() == 5
        with site.db.sessions() as s:
            assert "claims site" in (status(s)[0]["last_error"] or "")
    finally:
        other.db.close()


def test_revoked_credential_is_refused_and_nothing_lost(site: SiteNode) -> None:
    assert site.send().error is None
    site.add_results(2)
    with site.central_db.sessions() as s:
        commit_with_retry(s, lambda s: fed.revoke_credential(s, ACTOR, site.token[:12]))
    rep = site.send()
    assert rep.error and "revoked" in rep.error
    assert site.central_results() == 5 and site.pending() == 2
    with site.central_db.sessions() as s:  # a new credential: the rest arrives, once
        site.token = commit_with_retry(s, lambda s: fed.add_credential(s, ACTOR, site.name))
    assert site.send().error is None
    assert site.central_results() == 7 and site.pending() == 0


def test_oversized_batch_is_refused(site: SiteNode) -> None:
    big = b" " * (fed.MAX_BATCH_BYTES + 1)
    resp = site.post(big)
    assert resp.status_code == 413 and "bytes" in resp.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
        for _ in range(fed.MAX_BATCH_BYTES // 65536 + 2):
            yield b" " * 65536

    resp = httpx.post(f"{site.url}/api/v1/fed/batches", content=chunks(), timeout=30,
                      headers={"Authorization": f"Bearer {site.token}"})
    assert resp.status_code == 413
    assert site.central_results() == 0
    assert site.send().error is None and site.central_results() == 5


def test_schema_invalid_batch_is_refused_with_the_field(site: SiteNode) -> None:
    body = json.loads(site.batch())
    del body["records"][1]["data"]["analysis"]
    resp = site.post(json.dumps(body).encode())
    assert resp.status_code == 422
    assert "analysis" in resp.json()["error"] and "record seq 2" in resp.json()["error"]
    body = json.loads(site.batch())
    body["records"][0]["data"]["measurements"][0]["value"] = "high"
    resp = site.post(json.dumps(body).encode())
    assert resp.status_code == 422 and "value" in resp.json()["error"]
    body = json.loads(site.batch(uid="labels-too-long"))
    body["records"][0]["data"]["measurements"][0]["labels"] = {"roi": "x" * 400}
    resp = site.post(json.dumps(body).encode())
    assert resp.status_code == 422 and "400 characters" in resp.json()["error"]
    assert site.central_results() == 0
    with site.central_db.sessions() as s:
        refused = s.scalars(select(m.FedBatch).where(m.FedBatch.state == "refused")
                            .order_by(m.FedBatch.id.desc())).first()
        assert refused is not None and "400 characters" in (refused.reason or "")
    assert site.send().error is None and site.central_results() == 5


def test_sequence_gap_is_refused_with_the_expected_seq(site: SiteNode) -> None:
    body = json.loads(site.batch())
    gap = site.post(site.batch(body["records"][2:], prev_seq=2))
    assert gap.status_code == 409 and gap.json()["expected_seq"] == 0
    assert site.central_results() == 0
    with site.db.session() as s:  # the site believes seq 2 was confirmed: it rewinds
        s.add(m.FedPeer(url=site.url, site_uid=site.name, last_acked_seq=2))
    rep = site.send()
    assert rep.error is None and any("resending" in n for n in rep.notes)
    assert site.central_results() == 5 and site.pending() == 0


class _LoseAnswers(httpx.HTTPTransport):
    """Delivers POSTs to the real server, then loses the answer (the connection drops
    after the centre committed): the sender never learns its batch was stored."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        resp = super().handle_request(request)
        if request.method == "POST":
            resp.read()
            raise httpx.ReadError("connection reset", request=request)
        return resp


def test_lost_acknowledgement_resends_the_same_batch_once(site: SiteNode) -> None:
    rep = site.send(transport=_LoseAnswers(), tries=1)
    assert rep.error and "not reachable" in rep.error
    assert site.central_results() == 5 and site.pending() == 5  # stored, not confirmed
    rep = site.send()
    assert rep.error is None and site.central_results() == 5 and site.pending() == 0
    with site.central_db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(m.FedBatch).join(
            m.Site, m.Site.id == m.FedBatch.site_id).where(m.Site.name == site.name)) == 1


def test_credential_cli_prints_once_and_revokes(tmp_path: Path) -> None:
    from scanbench.cli import _mount_subapps, app

    _mount_subapps(["federation"])
    runner = CliRunner()
    home = str(tmp_path / "c")
    r = runner.invoke(app, ["federation", "credential", "add", "north", "--home", home])
    assert r.exit_code == 0, r.output
    token = r.stdout.strip().splitlines()[0]
    assert token.startswith("sbf_")
    db = Database(tmp_path / "c")
    try:
        with db.sessions() as s:
            cred = s.scalars(select(m.FedCredential)).one()
            assert cred.token_hash != token and token not in json.dumps(
                [e.after for e in s.scalars(select(m.AuditEntry))])
        r = runner.invoke(app, ["federation", "credential", "revoke", cred.prefix,
                                "--home", home])
        assert r.exit_code == 0, r.output
        with db.sessions() as s, pytest.raises(fed.Refused, match="revoked"):
            fed.credential_site(s, token)
        r = runner.invoke(app, ["federation", "credential", "revoke", "nope", "--home", home])
        assert r.exit_code == 2 and "no federation credential" in r.output
    finally:
        db.close()


def test_lifecycle_alert_states_and_day_statistics_arrive(site: SiteNode) -> None:
    """Lifecycle events become central lifecycle rows; an alert's later state updates
    the one central alert; dose and workflow go as per-day aggregates (format 2: each
    day's values sorted, no exam), only for days that are over, without any exam's
    identity."""
    with site.db.session() as s:
        dev = s.scalars(select(m.Device)).one()
        study = s.scalars(select(m.Study)).one()
        result_id = s.scalars(select(m.Result.id)).first()
        s.add(m.LifecycleEvent(device_id=dev.id, kind="unplanned_service", source="user",
                               occurred_at=dt.datetime(2026, 3, 3, 9), summary="tube arc",
                               cost=1200.0, currency="EUR"))
        spec = m.Spec(name="fed-test-spec", version="1", yaml="name: fed-test-spec\n",
                      sha256="0" * 64)
        s.add(spec)
        s.flush()
        s.add(m.Scorecard(device_id=dev.id, spec_id=spec.id, score=50.0, status="fail",
                          inputs_hash="h-1", data={
                              "tests": [{"test": "noise", "evidence": [result_id, 999]}],
                              "last_result_id": result_id}))
        s.add(m.Alert(key="k-1", device_id=dev.id, analysis="ct.uniformity", name="noise",
                      rule="limit", level="action", result_id=result_id, value=9.0,
                      unit="HU", message="noise above the action limit"))
        for i, ctdi in enumerate((10.0, 12.0, 14.0, 20.0)):
            s.add(m.DoseEvent(study_id=study.id, device_id=dev.id, kind="ct",
                              event_uid=f"{PATIENT['series_prefix']}99.{i}",
                              occurred_at=dt.datetime(2026, 3, 2, 9 + i),
                              protocol="Head routine", ctdivol_mgy=ctdi))
            s.add(m.ExamTiming(study_id=study.id, device_id=dev.id,
                               started_at=dt.datetime(2026, 3, 2, 9 + i),
                               duration_s=600.0 + 60 * i))
        s.add(m.DoseEvent(study_id=study.id, device_id=dev.id, kind="ct",  # not over yet
                          occurred_at=dt.datetime(2026, 3, 4, 9), protocol="Head routine",
                          ctdivol_mgy=50.0))
    with site.db.sessions() as s:
        assert queue_new(s, b"k" * 32, today=dt.date(2026, 3, 4)) == 5 + 1 + 1 + 1 + 1 + 1
        s.commit()
        day = s.scalars(select(m.FedOutbox).where(m.FedOutbox.kind == "dose_day")).one()
        assert day.record_key.endswith(":2026-03-02")
        group = day.payload["data"]["groups"][0]  # format 2: the day's values, sorted
        assert day.payload["data"]["version"] == fed.DAY_FORMAT == 2
        assert group["values"] == {"ctdivol_mgy": [10.0, 12.0, 14.0, 20.0]}
        assert group["events"] == 4 and group["kind"] == "ct"
        for row in s.scalars(select(m.FedOutbox)):
            text = json.dumps(row.payload)
            assert PATIENT["patient_id"] not in text and PATIENT["series_prefix"] not in text
    assert site.send().error is None
    with site.db.session() as s:
        s.scalars(select(m.Alert)).one().state = "acknowledged"
    assert site.send().error is None
    with site.central_db.sessions() as s:
        site_id = s.scalar(select(m.Site.id).where(m.Site.name == site.name))
        alerts = list(s.scalars(select(m.Alert).where(m.Alert.key.startswith(f"fed:{site_id}:"))))
        assert [a.state for a in alerts] == ["acknowledged"]
        assert alerts[0].result_id is not None
        assert s.get_one(m.Result, alerts[0].result_id).source == f"federation:{site.name}"
        event = s.scalars(select(m.LifecycleEvent).join(
            m.Device, m.Device.id == m.LifecycleEvent.device_id)
            .where(m.Device.site_id == site_id)).one()
        assert (event.kind, event.cost, event.source) == ("unplanned_service", 1200.0,
                                                           "federation")
        kinds = dict(s.execute(select(m.FedRecord.kind, func.count()).where(
            m.FedRecord.site_id == site_id).group_by(m.FedRecord.kind)).all())
        # 2 dose days: the sender's own pass runs today, long after 2026-03-04 is over
        assert kinds == {"result": 5, "lifecycle": 1, "alert": 2, "dose_day": 2,
                         "workflow_day": 1, "scorecard": 1}
        # the scorecard's evidence names the central rows of the site's results
        card = s.scalars(select(m.Scorecard).join(
            m.Device, m.Device.id == m.Scorecard.device_id)
            .where(m.Device.site_id == site_id)).one()
        central_id = s.scalar(select(m.FedRecord.local_id).where(
            m.FedRecord.site_id == site_id, m.FedRecord.record_key == f"result:{result_id}"))
        assert card.data["tests"][0]["evidence"] == [central_id]
        assert card.data["last_result_id"] == central_id
        assert s.get_one(m.Spec, card.spec_id).name == "fed-test-spec"
        wf = s.scalars(select(m.FedRecord).where(m.FedRecord.site_id == site_id,
                                                 m.FedRecord.kind == "workflow_day")).one()
        assert wf.payload["data"]["groups"][0]["busy_s"] == 600 + 660 + 720 + 780


def test_unreachable_centre_is_shown_and_sites_overview(site: SiteNode) -> None:
    from scanbench.cli import _mount_subapps, app

    with socket.create_server(("127.0.0.1", 0)) as closed:
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    snd = Sender(site.db, site.home, dead, site.token, tries=2, backoff_s=0.01)
    try:
        rep = snd.send_pass()
    finally:
        snd.close()
    assert rep.error and "not reachable" in rep.error
    _mount_subapps(["federation"])
    runner = CliRunner()
    r = runner.invoke(app, ["federation", "status", "--home", str(site.home)])
    assert r.exit_code == 0 and "last error" in r.stdout
    with site.db.sessions() as s:
        shown = {row["url"]: row for row in status(s)}
    assert "not reachable" in (shown[dead]["last_error"] or "")
    assert shown[dead]["pending"] == 5 and shown[dead]["site"] == ""
    site.post(site.batch(site="somewhere-else"))  # refused: claims another site
    assert site.send().error is None
    with site.central_db.sessions() as s:
        row = next(r for r in fed.site_overview(s) if r["site"] == site.name)
    assert (row["last_seq"], row["records"], row["accepted"], row["refused"]) == (5, 5, 1, 1)
    assert "claims site 'somewhere-else'" in row["last_refusal"]


def test_images_for_review_only_when_enabled_and_de_identified(site: SiteNode) -> None:
    """Images leave the site only with ``images=True``, each through the PS3.15
    de-identifier; the centre links them to the result (same keyed-hash series UID) and
    refuses an instance that does not say it was de-identified."""
    from node_dicom import ct_series
    from scanbench.evaluation.alerts import CLINICAL
    from scanbench.service.filestore import FileStore

    study_uid, series_uid, raws = ct_series(3)
    files = FileStore(site.home / "files")
    with site.db.session() as s:
        dev = s.scalars(select(m.Device)).one()
        study = m.Study(study_uid=study_uid, patient_id="P1")
        s.add(study)
        s.flush()
        series = m.Series(series_uid=series_uid, study_id=study.id, device_id=dev.id)
        s.add(series)
        s.flush()
        for i, raw in enumerate(raws):
            sop = pydicom.dcmread(io.BytesIO(raw)).SOPInstanceUID
            files.write(sop, raw)
            s.add(m.Instance(sop_uid=sop, series_id=series.id, instance_number=i + 1,
                             path=files.relative(sop), size_bytes=len(raw), source="test"))
        res = s.scalars(select(m.Result).order_by(m.Result.id)).first()
        assert res is not None
        res.series_id, res.series_uid = series.id, series_uid
    rep = site.send()  # not enabled: no image leaves
    assert rep.error is None and rep.images == 0
    with site.central_db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(m.Instance)
                        .where(m.Instance.source == f"federation:{site.name}")) == 0
    # an instance as stored at the site (not de-identified) is refused
    resp = httpx.post(f"{site.url}/api/v1/fed/images", params={"record_key": "result:1"},
                      content=raws[0], headers={"Authorization": f"Bearer {site.token}"})
    assert resp.status_code == 422 and "not de-identified" in resp.json()["error"]
    rep = site.send(images=True)
    assert rep.error is None and rep.images == 3
    assert site.send(images=True).images == 0  # sent once
    with site.central_db.sessions() as s:
        inst = list(s.scalars(select(m.Instance).where(
            m.Instance.source == f"federation:{site.name}")))
        assert len(inst) == 3
        series_row = s.get_one(m.Series, inst[0].series_id)
        result = s.scalars(select(m.Result).where(m.Result.series_id == series_row.id)).one()
        assert result.series_uid == series_row.series_uid != series_uid
        # a phantom result's series stays a phantom's (a patient's: clinical, checked by
        # tests/e2e/test_programme_demo.py on the reader study's PET series)
        assert result.analysis not in CLINICAL and series_row.kind == "phantom"
        central_home = Path(str(site.central_db.url).removeprefix("sqlite:///")).parent
        for row in inst:
            ds = pydicom.dcmread(central_home / "files" / row.path)
            assert ds.PatientIdentityRemoved == "YES" and ds.PatientName != "Test^Patient"
            assert ds.PatientID != "P1" and ds.StudyInstanceUID != study_uid
            assert ds.Manufacturer == "ACME"  # device identity kept


def _central_user(central_db: Database, site_name: str, username: str) -> None:
    from pages_world import PW
    from scanbench.web import auth

    with central_db.session() as s:
        site = s.scalars(select(m.Site).where(m.Site.name == site_name)).one()
        auth.grant(s, ACTOR, auth.add_user(s, ACTOR, username, PW), site, "viewer")


def test_federated_dose_and_workflow_are_combined_exactly_at_the_centre(site: SiteNode
                                                                         ) -> None:
    """A site's dose and workflow days appear in the centre's dose and workflow
    statistics (function, API, pages, programme report), combined over days exactly:
    CTDIvol 10, 12, 14, 20 mGy on one day and 30, 11 on the next give the median of the
    six values, 13 mGy (the median of the daily medians, 13 and 20.5, would be 16.75), Q3
    h = 3.75: 14 + 0.75 x 6 = 18.5, P95 h = 4.75: 20 + 0.75 x 10 = 27.5 (Hyndman and Fan
    definition 7); the localizer is left out; the head region sent matches the head
    reference level (58.2 mGy). Durations 10, 11, 12, 13 and 15 min: median 12, bins of
    5 min hold 4 and 1; utilisation over the site's staffed hours (10 h)."""
    from pages_world import signed_in
    from scanbench.clinical import dose_stats as ds
    from scanbench.clinical import federated
    from scanbench.report import programme_report as pr

    head = {"target_region_code": {"value": "69536005", "scheme": "SCT"}}
    with site.db.session() as s:
        dev = s.scalars(select(m.Device)).one()
        dev.staffed_hours = {"weekdays": list(range(7)), "start": "08:00", "end": "18:00"}
        study = s.scalars(select(m.Study)).one()
        for day, ctdis in ((2, (10.0, 12.0, 14.0, 20.0)), (3, (30.0, 11.0))):
            for i, ctdi in enumerate(ctdis):
                s.add(m.DoseEvent(study_id=study.id, device_id=dev.id, kind="ct",
                                  occurred_at=dt.datetime(2026, 3, day, 9 + i),
                                  protocol="Head routine", ctdivol_mgy=ctdi, data=head))
        s.add(m.DoseEvent(study_id=study.id, device_id=dev.id, kind="ct", ctdivol_mgy=0.4,
                          occurred_at=dt.datetime(2026, 3, 2, 8), protocol="Head routine",
                          data={"acquisition_type": "constant_angle"}))
        for day, secs in ((2, (600.0, 660.0, 720.0, 780.0)), (3, (900.0,))):
            for i, sec in enumerate(secs):
                s.add(m.ExamTiming(study_id=study.id, device_id=dev.id, duration_s=sec,
                                   started_at=dt.datetime(2026, 3, day, 9 + i)))
    assert site.send().error is None
    _central_user(site.central_db, site.name, f"viewer-{site.name}")
    with site.central_db.sessions() as s:
        dev_id = s.scalars(select(m.Device.id).join(m.Site, m.Site.id == m.Device.site_id)
                           .where(m.Site.name == site.name)).one()
        f = ds.Filters(devices=federated.device_filter([dev_id]))
        stats = federated.dose_statistics(s, "ctdivol_mgy", f)
        [g] = stats.groups
        d = g.distribution
        assert (d.n, d.minimum, d.median, d.q3, d.p95, d.maximum) == (6, 10, 13, 18.5, 27.5, 30)
        assert isinstance(g, federated.FederatedDoseGroup) and g.days == 2
        assert g.source == federated.FEDERATED and g.device_id == dev_id
        assert g.region == "head" and g.reference is not None
        assert g.reference.exam == "head" and g.reference.ratio_median == 13 / 58.2
        wf = federated.workflow_statistics(s, f)
        [(wdev, dur)] = wf.durations
        assert wdev == dev_id and (dur.n, dur.median, dur.maximum) == (5, 12, 15)
        assert wf.duration_histogram == [(10.0, 4), (15.0, 1)]
        use = [(u.day.day, u.exams, u.exam_hours, u.available_hours, u.basis)
               for u in wf.days]
        assert use == [(2, 4, 2760 / 3600, 10.0, "staffed hours"),
                       (3, 1, 900 / 3600, 10.0, "staffed hours")]
        # the default period ends at the newest federated day (no exam at the centre)
        period = federated.default_period(s, "ctdivol_mgy", f)
        assert (period.date_from, period.date_to) == (dt.date(2025, 3, 4), dt.date(2026, 3, 4))
        report = pr.programme_report(s, dt.date(2026, 3, 1), dt.date(2026, 3, 31),
                                     device_ids=[dev_id])
        html = pr.render_html(report)
        assert "device-day(s) of federated sites are included" in html
        dose_table = next(t for sec in report.sections for t in sec.tables
                          if t.title == "Dose per group")
        ctdi_row = next(r for r in dose_table.rows if r[0].text == "CTDIvol")
        assert float(ctdi_row[4].text) == 13.0 and ctdi_row[3].text == "6"
        from scanbench.report import store_reports  # the site dose report at the centre
        site_row = s.scalars(select(m.Site).where(m.Site.name == site.name)).one()
        dose_report = store_reports.site_dose_report(s, site_row, dt.date(2026, 3, 1),
                                                     dt.date(2026, 3, 31))
        ctdi_table = next(t for sec in dose_report.sections
                          if sec.title.startswith("CTDIvol") for t in sec.tables)
        assert [(r[0].text, r[2].text, float(r[3].text)) for r in ctdi_table.rows] == [
            ("Head routine", "6", 13.0)]
    client = signed_in(create_app(site.central_db), f"viewer-{site.name}")
    got = client.get("/api/v1/dose/statistics", params={"device_id": dev_id}).json()
    [api_group] = got["groups"]
    assert (api_group["median"], api_group["source"], api_group["federated_days"]) == \
        (13.0, "federated sites", 2)
    assert got["period"]["date_to"] == "2026-03-04"
    got = client.get("/api/v1/workflow/statistics", params={"device_id": dev_id}).json()
    assert got["durations"][0]["median"] == 12.0 and got["federated_devices"] == [dev_id]
    assert client.get("/api/v1/workflow/statistics", params={
        "device_id": dev_id, "protocol": "Head routine"}).json()["durations"] == []
    page = client.get("/dose", params={"device_id": dev_id}).text
    assert "federated sites: 2 day(s) sent" in page
    page = client.get("/workflow", params={"device_id": dev_id}).text
    assert "(days sent by its site)" in page


def test_day_statistics_format_is_checked_and_format_1_is_named(site: SiteNode) -> None:
    """Format 2 day values must be sorted, finite and no more than the events counted
    (refused with the field named); an unknown format is refused; a format-1 day (per-day
    summaries of an older site) is stored but not combined, and the statistics say so."""
    device = {"identity_key": f"acme|ct-9|{site.name}-sn1", "modality": "CT",
              "manufacturer": "ACME", "model": "CT-9"}

    def day(data: dict[str, Any], seq: int = 1) -> bytes:
        return site.batch([{"seq": seq, "kind": "dose_day", "device": device,
                            "record_key": f"dose_day:1:2026-03-0{seq}", "data": data}],
                          prev_seq=seq - 1, uid=f"format-check-{seq:04d}-{len(str(data))}")

    group = {"kind": "ct", "protocol": "Head", "events": 2,
             "values": {"ctdivol_mgy": [12.0, 10.0]}}
    r = site.post(day({"day": "2026-03-01", "version": 2, "groups": [group]}))
    assert r.status_code == 422 and "values must be sorted" in r.json()["error"]
    group["values"] = {"ctdivol_mgy": [10.0, 11.0, 12.0]}
    r = site.post(day({"day": "2026-03-01", "version": 2, "groups": [group]}))
    assert r.status_code == 422 and "more than the 2 counted" in r.json()["error"]
    r = site.post(day({"day": "2026-03-01", "version": 3, "groups": []}))
    assert r.status_code == 422 and "format 3 is not supported" in r.json()["error"]
    old = {"day": "2026-03-01", "groups": [{"kind": "ct", "protocol": "Head", "events": 2,
                                            "ctdivol_mgy": {"n": 2, "median": 11.0}}]}
    assert site.post(day(old)).status_code == 200
    from scanbench.clinical import dose_stats as ds
    from scanbench.clinical import federated

    with site.central_db.sessions() as s:
        site_id = s.scalar(select(m.Site.id).where(m.Site.name == site.name))
        f = ds.Filters(devices=select(m.Device.id).where(m.Device.site_id == site_id))
        stats = federated.dose_statistics(s, "ctdivol_mgy", f)
        assert stats.groups == []
        assert any(f"{site.name} (1 day(s))" in n and "format 1" in n for n in stats.notes)


def test_records_larger_than_one_batch_go_in_several(site: SiteNode) -> None:
    """Five days of 120,000 dose values each (about 1 MB of JSON a day) do not fit in one
    4 MiB batch: the sender cuts the batches by size, so none is refused for its size
    (which would be retried, refused, for ever) and every day arrives once."""
    with site.db.session() as s:
        dev = s.scalars(select(m.Device)).one()
        device = {"identity_key": dev.identity_key, "modality": "CT"}
        values = [round(5 + i / 1000, 3) for i in range(120_000)]
        for d in range(1, 6):
            s.add(m.FedOutbox(kind="dose_day", record_key=f"dose_day:{dev.id}:2026-01-0{d}",
                              payload={"device": device, "data": {
                                  "day": f"2026-01-0{d}", "version": 2, "groups": [{
                                      "kind": "ct", "protocol": "Body", "events": len(values),
                                      "regions": {}, "values": {"ctdivol_mgy": values}}]}}))
    rep = site.send()
    assert rep.error is None and rep.sent_batches >= 2, rep
    with site.central_db.sessions() as s:
        site_id = s.scalar(select(m.Site.id).where(m.Site.name == site.name))
        assert s.scalar(select(func.count()).select_from(m.FedRecord).where(
            m.FedRecord.site_id == site_id, m.FedRecord.kind == "dose_day")) == 5
        sizes = list(s.scalars(select(m.FedBatch.size_bytes).where(
            m.FedBatch.site_id == site_id, m.FedBatch.state == "accepted")))
        assert max(sizes) <= fed.MAX_BATCH_BYTES


def test_federated_days_are_read_by_period_on_both_backends(
        database_url: str) -> None:  # noqa: F811
    """The day of a federated record is read from its JSON payload by the database
    (SQLite and PostgreSQL): a period's days are combined, a day outside it is not."""
    from scanbench.clinical import dose_stats as ds
    from scanbench.clinical import federated

    db = Database(url=database_url)
    try:
        with db.sessions() as s:
            token = commit_with_retry(s, lambda s: fed.add_credential(s, ACTOR, "both"))
        device = {"identity_key": "acme|ct-9|both", "modality": "CT"}

        def dose(seq: int, day: str, values: list[float]) -> dict[str, Any]:
            return {"seq": seq, "kind": "dose_day", "record_key": f"dose_day:1:{day}",
                    "device": device, "data": {"day": day, "version": 2, "groups": [{
                        "kind": "ct", "protocol": "Head", "events": len(values),
                        "values": {"ctdivol_mgy": values}}]}}

        body = json.dumps({"protocol": fed.PROTOCOL, "site": "both", "batch_uid": "both-0001",
                           "prev_seq": 0, "records": [
                               dose(1, "2026-03-01", [10.0, 12.0, 14.0, 20.0]),
                               dose(2, "2026-03-02", [11.0, 30.0]),
                               dose(3, "2026-03-05", [99.0]),
                               {"seq": 4, "kind": "workflow_day",
                                "record_key": "workflow_day:1:2026-03-01", "device": device,
                                "data": {"day": "2026-03-01", "version": 2, "groups": [{
                                    "exams": 2, "durations_s": [600.0, 900.0],
                                    "busy_s": 1500.0, "available_hours": 10.0,
                                    "basis": "staffed hours"}]}}]}).encode()
        with db.sessions() as s:
            assert fed.receive_committed(s, token, body)["stored"] == 4
        with db.sessions() as s:
            f = ds.Filters(date_from=dt.date(2026, 3, 1), date_to=dt.date(2026, 3, 3))
            [g] = federated.dose_statistics(s, "ctdivol_mgy", f).groups
            assert (g.distribution.n, g.distribution.median, g.distribution.maximum) == \
                (6, 13.0, 30.0)
            assert federated.newest_fed_day(s, "dose_day", ds.Filters()) == dt.date(2026, 3, 5)
            # The centre's own scanner has exams of the same protocol: grouped by
            # protocol, its 9, 15, 100 mGy and the site's six values are one group of
            # nine (median 14, Q1 11, Q3 20: fence 20 + 1.5 x 9 = 33.5), and its 100 mGy
            # exam is an outlier of the combined group (3 values alone have no fence).
            study = m.Study(study_uid="1.2.3.4.5.6")
            own = m.Device(identity_key="centre|ct", modality="CT")
            s.add_all([study, own])
            s.flush()
            for hour, ctdi in enumerate((9.0, 15.0, 100.0)):
                s.add(m.DoseEvent(study_id=study.id, device_id=own.id, kind="ct",
                                  protocol="Head", ctdivol_mgy=ctdi,
                                  occurred_at=dt.datetime(2026, 3, 2, 9 + hour)))
            s.flush()
            stats = federated.dose_statistics(s, "ctdivol_mgy", f, group_by="protocol")
            [g] = stats.groups
            d = g.distribution
            assert (d.n, d.median, d.q1, d.q3, d.upper_fence) == (9, 14.0, 11.0, 20.0, 33.5)
            assert getattr(g, "source", None) == federated.BOTH
            assert [(o.value, o.upper_fence) for o in stats.outliers] == [(100.0, 33.5)]
            assert stats.outliers_total == 1
            # An exam of the site's scanner stored at the centre too (20 min) joins the
            # site's day: 10, 15, 20 min; 3 exams, 0.75 h over the site's 10 staffed hours.
            fed_dev = s.scalar(select(m.FedRecord.local_id).where(
                m.FedRecord.kind == "workflow_day"))
            s.add(m.ExamTiming(study_id=study.id, device_id=fed_dev, duration_s=1200.0,
                               started_at=dt.datetime(2026, 3, 1, 15)))
            s.flush()
            wf = federated.workflow_statistics(s, f)
            [(dev, dur)] = wf.durations
            assert dev == fed_dev and (dur.n, dur.median) == (3, 15.0)
            assert [(u.exams, u.exam_hours, u.available_hours, u.basis) for u in wf.days] == [
                (3, 0.75, 10.0, "staffed hours")]
            assert wf.duration_histogram == [(10.0, 1), (15.0, 1), (20.0, 1)]
            s.rollback()
    finally:
        db.close()

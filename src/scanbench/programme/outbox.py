"""Federation, site side (issue 14 §1): queue de-identified records in the outbox and send
them to the central node in ordered, resumable batches; pull review decisions back.

Queuing is a periodic scan (:func:`queue_new`, run at the start of every send pass),
not a hook in each writer: results, lifecycle events, alerts and scorecards are written
by the node's jobs, the web application, several commands and CSV imports, and a scan
catches every one of them — including rows written while the sender was not running —
with one piece of code. The outbox row's ``id`` is the sequence number; ``record_key``
(unique) makes queuing idempotent.

What is sent (see docs/programme.md): device identity (PS3.15 Annex E "Retain Device
Identity Option"), results with their measurements, lifecycle events, alert states,
scorecards. Phantom QC acquisition times are kept (they are the QC schedule, not a
patient's; PS3.15 "Retain Longitudinal Temporal Information with Full Dates Option").
The Series Instance UID is replaced by a keyed hash (the site's de-identification key,
:func:`scanbench.dicom.deid.site_secret`); no patient name, id, birth date, accession
number, study/SOP UID, file path or image is ever queued.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from scanbench.dicom.deid import Deidentifier, site_secret
from scanbench.errors import ScanbenchError
from scanbench.programme.federation import (
    DAY_FORMAT,
    MAX_BATCH_BYTES,
    PROTOCOL,
    DecisionWire,
    DeviceWire,
)
from scanbench.store import models as m
from scanbench.store.db import Database

log = logging.getLogger("scanbench.federation")

#: Rows below the newest queued id that are looked at again (a transaction that
#: committed a lower id after a higher one was queued is still caught).
RESCAN_WINDOW = 500
BATCH_SIZE = 200


# --------------------------------------------------------------------------- queuing

def _device_wire(dev: m.Device | None) -> dict[str, Any] | None:
    if dev is None:
        return None
    return DeviceWire(
        identity_key=dev.identity_key, manufacturer=dev.manufacturer, model=dev.model,
        serial=dev.serial, modality=dev.modality, display_name=dev.display_name,
        software_versions=dev.software_versions, field_strength_t=dev.field_strength_t,
        axial_fov_cm=dev.axial_fov_cm, country_of_manufacture=dev.country_of_manufacture,
        status=dev.status).model_dump(mode="json")


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def result_payload(res: m.Result, deid: Deidentifier) -> dict[str, Any]:
    """A result as sent: its UID replaced by the site's keyed hash, no source path."""
    return {
        "analysis": res.analysis, "standard": res.standard,
        "series_uid": deid.uid(res.series_uid) if res.series_uid else None,
        "spec": res.spec, "acquired_at": _iso(res.acquired_at),
        "utc_offset_min": res.utc_offset_min, "parameters": res.parameters or {},
        "warnings": res.warnings or [], "scanbench_version": res.scanbench_version,
        "supersedes_key": f"result:{res.supersedes_id}" if res.supersedes_id else None,
        "measurements": [{
            "name": x.name, "labels": x.labels or {}, "value": x.value, "unit": x.unit,
            "uncertainty": x.uncertainty, "limit_low": x.limit_low,
            "limit_high": x.limit_high, "limit_source": x.limit_source,
            "limit_verified": x.limit_verified, "status": x.status, "note": x.note}
            for x in res.measurements]}


def _lifecycle_payload(ev: m.LifecycleEvent) -> dict[str, Any]:
    return {"kind": ev.kind, "occurred_at": _iso(ev.occurred_at), "summary": ev.summary,
            "details": ev.details or {}, "source": ev.source, "planned": ev.planned,
            "new_baseline": ev.new_baseline, "cost": ev.cost, "currency": ev.currency}


def _alert_payload(a: m.Alert) -> dict[str, Any]:
    return {"key": a.key[:300], "analysis": a.analysis, "name": a.name,
            "labels": a.labels or {}, "rule": a.rule, "level": a.level,
            "direction": a.direction,
            "result_key": f"result:{a.result_id}" if a.result_id else None,
            "occurred_at": _iso(a.occurred_at), "first_at": _iso(a.first_at),
            "value": a.value, "unit": a.unit, "statistic": a.statistic,
            "threshold": a.threshold, "limit_source": a.limit_source, "message": a.message,
            "state": a.state, "ack_at": _iso(a.ack_at), "ack_comment": a.ack_comment,
            "closed_at": _iso(a.closed_at), "closed_reason": a.closed_reason}


def _scorecard_payload(session: Session, c: m.Scorecard) -> dict[str, Any]:
    spec = session.get_one(m.Spec, c.spec_id)
    return {"spec_name": spec.name, "spec_version": spec.version, "spec_sha256": spec.sha256,
            "spec_yaml": spec.yaml, "spec_title": spec.title,
            "period_start": _iso(c.period_start), "period_end": _iso(c.period_end),
            "score": c.score, "status": c.status, "compliance": c.compliance,
            "inputs_hash": c.inputs_hash, "data": c.data or {}}


def _newest_local(session: Session, kind: str) -> int:
    key = session.scalar(select(m.FedOutbox.record_key).where(m.FedOutbox.kind == kind)
                         .order_by(m.FedOutbox.id.desc()).limit(1))
    return int(key.split(":")[1]) if key else 0


def _queued(session: Session, keys: list[str]) -> set[str]:
    out: set[str] = set()
    for i in range(0, len(keys), 500):
        out.update(session.scalars(select(m.FedOutbox.record_key)
                                   .where(m.FedOutbox.record_key.in_(keys[i:i + 500]))))
    return out


def queue_new(session: Session, secret: bytes, limit: int = 5000,
              today: dt.date | None = None) -> int:
    """Queue every result, lifecycle event, alert state and scorecard not queued yet,
    oldest first, and each device's dose and workflow statistics of the days that are
    over (the caller commits). Returns how many were queued."""
    deid = Deidentifier(secret)
    n = 0
    devices: dict[int, dict[str, Any] | None] = {}

    def device(did: int | None) -> dict[str, Any] | None:
        if did is None:
            return None
        if did not in devices:
            devices[did] = _device_wire(session.get(m.Device, did))
        return devices[did]

    def add(kind: str, key: str, dev_id: int | None, data: dict[str, Any]) -> None:
        nonlocal n
        session.add(m.FedOutbox(kind=kind, record_key=key,
                                payload={"device": device(dev_id), "data": data}))
        n += 1

    id_kinds: list[tuple[str, Any]] = [("result", m.Result), ("lifecycle", m.LifecycleEvent),
                                       ("scorecard", m.Scorecard)]
    for kind, model in id_kinds:
        start = max(0, _newest_local(session, kind) - RESCAN_WINDOW)
        q = select(model).where(model.id > start).order_by(model.id).limit(limit)
        if model is m.Result:  # their measurements in one more query, not one per result
            q = q.options(selectinload(m.Result.measurements))
        rows = list(session.scalars(q))
        done = _queued(session, [f"{kind}:{r.id}" for r in rows])
        for r in rows:
            key = f"{kind}:{r.id}"
            if key in done or r.device_id is None:
                continue  # a result of an unknown device has no one to compare with
            if kind == "result":
                add(kind, key, r.device_id, result_payload(r, deid))
            elif kind == "lifecycle":
                add(kind, key, r.device_id, _lifecycle_payload(r))
            else:
                add(kind, key, r.device_id, _scorecard_payload(session, r))
        session.flush()
    # Alerts change state: each state is its own record (the centre updates its row).
    alerts = list(session.scalars(select(m.Alert).order_by(m.Alert.id)))
    done = _queued(session, [f"alert:{a.id}:{a.state}" for a in alerts])
    for a in alerts:
        key = f"alert:{a.id}:{a.state}"
        if key not in done:
            add("alert", key, a.device_id, _alert_payload(a))
    session.flush()
    for kind, days in _day_statistics(session, today or dt.date.today()).items():
        keys = [f"{kind}:{dev}:{day.isoformat()}" for dev, day in days]
        done = _queued(session, keys)
        for key, ((dev, day), groups) in zip(keys, days.items(), strict=True):
            if key not in done:
                add(kind, key, dev, {"day": day.isoformat(), "version": DAY_FORMAT,
                                     "groups": groups})
    session.flush()
    return n


#: Days a device's dose and workflow statistics wait after their end before they are
#: sent (studies of the day still arriving, their jobs still running).
SETTLE_DAYS = 2
#: The dose quantities of a day's groups (keys of :data:`scanbench.clinical.dose_stats.
#: QUANTITIES`).
DOSE_QUANTITIES = ("ctdivol_mgy", "dlp_mgycm", "ssde_mgy", "administered_activity_mbq",
                   "activity_per_kg_mbq_per_kg", "effective_dose_msv")


def _sorted_values(values: Any) -> list[float]:
    """The finite values, ascending: what the centre needs to compute any quantile of any
    period exactly (a median of daily medians is not the median); their order of
    acquisition is not sent."""
    return sorted(float(v) for v in values
                  if v is not None and isinstance(v, int | float) and math.isfinite(v))


def _region(ev: m.DoseEvent) -> str | None:
    """The k-factor region of a CT event's coded target region (TID 10013), as
    :mod:`scanbench.clinical.dose_stats` matches reference-level categories by it."""
    from scanbench.clinical.effective_dose import region_of
    from scanbench.clinical.sr import Code

    code = (ev.data or {}).get("target_region_code")
    if not isinstance(code, dict) or not code.get("value"):
        return None
    return region_of(Code(str(code["value"]), str(code.get("scheme") or "")))


def _newest_day(session: Session, kind: str) -> dt.date | None:
    key = session.scalar(select(m.FedOutbox.record_key).where(m.FedOutbox.kind == kind)
                         .order_by(m.FedOutbox.id.desc()).limit(1))
    return dt.date.fromisoformat(key.rsplit(":", 1)[1]) if key else None


def _day_statistics(session: Session, today: dt.date
                    ) -> dict[str, dict[tuple[int, dt.date], list[dict[str, Any]]]]:
    """Per device and local day that is over (``SETTLE_DAYS`` ago), not sent yet (a
    week before the newest sent day is looked at again), in day-statistics format 2
    (:data:`scanbench.programme.federation.DAY_FORMAT`): dose per (kind, protocol) —
    the number of events, the sorted values of each quantity and the count of CT target
    regions; workflow — the number of exams, sorted exam durations (s) and PET uptake
    times (min), the busy time and the device's staffed hours that day. No study,
    patient, accession, exam time or link between two values of one exam is sent."""
    from scanbench.clinical.dose_stats import staffed_hours_of

    cutoff = dt.datetime.combine(today - dt.timedelta(days=SETTLE_DAYS - 1), dt.time())
    out: dict[str, dict[tuple[int, dt.date], list[dict[str, Any]]]] = {}
    de = m.DoseEvent
    since = _newest_day(session, "dose_day")
    q = select(de).where(de.device_id.is_not(None), de.occurred_at.is_not(None),
                         de.occurred_at < cutoff)
    if since is not None:
        q = q.where(de.occurred_at >= dt.datetime.combine(since - dt.timedelta(days=7),
                                                          dt.time()))
    dose: dict[tuple[int, dt.date], dict[tuple[str, str], list[m.DoseEvent]]] = {}
    study_regions: dict[int, Counter[str]] = {}
    for ev in session.scalars(q.order_by(de.occurred_at)):
        assert ev.device_id is not None and ev.occurred_at is not None
        day = dose.setdefault((ev.device_id, ev.occurred_at.date()), {})
        localizer = (ev.data or {}).get("acquisition_type") == "constant_angle"
        kind = "ct_localizer" if ev.kind == "ct" and localizer else ev.kind
        day.setdefault((kind, ev.protocol or ""), []).append(ev)
        if kind == "ct" and (region := _region(ev)) is not None:
            study_regions.setdefault(ev.study_id, Counter())[region] += 1

    def regions(kind: str, evs: list[m.DoseEvent]) -> dict[str, int]:
        """CT events: their own regions; an exam total: the regions of its CT events."""
        counts: Counter[str] = Counter()
        for e in evs:
            if kind == "ct":
                if (r := _region(e)) is not None:
                    counts[r] += 1
            elif kind == "study":
                counts.update(study_regions.get(e.study_id, Counter()))
        return dict(sorted(counts.items()))

    def value(e: m.DoseEvent, name: str) -> Any:
        if name == "activity_per_kg_mbq_per_kg":
            return (e.data or {}).get(name)
        return getattr(e, name)

    out["dose_day"] = {
        key: [{"kind": kind, "protocol": protocol, "events": len(evs),
               "regions": regions(kind, evs),
               "values": {name: vals for name in DOSE_QUANTITIES
                          if (vals := _sorted_values(value(e, name) for e in evs))}}
              for (kind, protocol), evs in sorted(groups.items())]
        for key, groups in dose.items()}
    et = m.ExamTiming
    since = _newest_day(session, "workflow_day")
    q2 = select(et).where(et.device_id.is_not(None), et.started_at.is_not(None),
                          et.started_at < cutoff)
    if since is not None:
        q2 = q2.where(et.started_at >= dt.datetime.combine(since - dt.timedelta(days=7),
                                                           dt.time()))
    timing: dict[tuple[int, dt.date], list[m.ExamTiming]] = {}
    for ex in session.scalars(q2.order_by(et.started_at)):
        assert ex.device_id is not None and ex.started_at is not None
        timing.setdefault((ex.device_id, ex.started_at.date()), []).append(ex)
    schedules = {d: staffed_hours_of(h) for d, h in session.execute(
        select(m.Device.id, m.Device.staffed_hours).where(
            m.Device.id.in_({k[0] for k in timing})))} if timing else {}
    workflow: dict[tuple[int, dt.date], list[dict[str, Any]]] = {}
    for (dev, day_), exams in timing.items():
        durations = _sorted_values(e.duration_s for e in exams)
        sched = schedules.get(dev)
        start = dt.datetime.combine(day_, dt.time())
        workflow[(dev, day_)] = [{
            "exams": len(exams), "durations_s": durations, "busy_s": math.fsum(durations),
            "uptake_min": _sorted_values((e.data or {}).get("uptake_time_min")
                                         for e in exams),
            "uptake_in_window": sum(1 for e in exams
                                    if (e.data or {}).get("uptake_in_window") is True),
            "available_hours": (sched.hours(start, start + dt.timedelta(days=1))
                                if sched is not None else 24.0),
            "basis": "staffed hours" if sched is not None else "24 h"}]
    out["workflow_day"] = workflow
    return out


# --------------------------------------------------------------------------- sending

#: Room left in a batch for its envelope (site, uid, protocol) below the centre's limit.
_ENVELOPE_BYTES = 64 * 1024


def _within_size(rows: list[m.FedOutbox]) -> list[m.FedOutbox]:
    """The first rows whose records fit in one batch under the centre's
    :data:`~scanbench.programme.federation.MAX_BATCH_BYTES` (at least one row: a record
    too large alone is refused with its reason and shown, never split). A busy
    scanner's day of dose values is tens of kilobytes: 200 of them can exceed the limit,
    and a batch refused for its size would be sent again, refused, for ever."""
    out: list[m.FedOutbox] = []
    size = 0
    for r in rows:
        size += len(json.dumps({"seq": r.id, "kind": r.kind, "record_key": r.record_key,
                                "device": r.payload.get("device"), "data": r.payload["data"]},
                               separators=(",", ":")).encode()) + 1
        if out and size > MAX_BATCH_BYTES - _ENVELOPE_BYTES:
            break
        out.append(r)
    return out


@dataclass
class PassReport:
    """What one send pass did."""

    queued: int = 0
    sent_batches: int = 0
    acked_seq: int = 0
    pending: int = 0
    decisions: int = 0
    images: int = 0
    error: str | None = None
    notes: list[str] = field(default_factory=list)


class Sender:
    """Sends this node's outbox to one central node (``url``) with the site's
    credential ``token``. Each pass: queue what is new, pull review decisions, then
    send batches after ``FedPeer.last_acked_seq`` until none is left. A batch is given
    its ``batch_uid`` (committed) before it is posted, so one interrupted in flight is
    sent again under the same uid and the centre acknowledges it without storing it
    twice. Network errors and 5xx answers are retried ``tries`` times with exponential
    backoff; a refusal (4xx) is stored as ``FedPeer.last_error`` and ends the pass."""

    def __init__(self, db: Database, home: Path, url: str, token: str, *,
                 batch_size: int = BATCH_SIZE, timeout_s: float = 30.0, tries: int = 3,
                 backoff_s: float = 0.5, transport: httpx.BaseTransport | None = None,
                 images: bool = False) -> None:
        self.db = db
        self.images = images
        self.home = home
        self.url = url.rstrip("/")
        self.batch_size = batch_size
        self.tries = tries
        self.backoff_s = backoff_s
        self.client = httpx.Client(base_url=self.url, timeout=timeout_s, transport=transport,
                                   headers={"Authorization": f"Bearer {token}"})

    def close(self) -> None:
        self.client.close()

    # -- HTTP with retries --------------------------------------------------------------
    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        delay = self.backoff_s
        for attempt in range(self.tries):
            try:
                resp = self.client.request(method, path, **kwargs)
                if resp.status_code < 500 or attempt == self.tries - 1:
                    return resp
            except httpx.TransportError as exc:
                if attempt == self.tries - 1:
                    raise ScanbenchError(f"central node {self.url} not reachable: "
                                         f"{type(exc).__name__}: {exc}") from None
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    @staticmethod
    def _reason(resp: httpx.Response) -> str:
        try:
            body = resp.json()
            return f"HTTP {resp.status_code}: {body.get('error') or body}"
        except ValueError:
            return f"HTTP {resp.status_code}: {resp.text[:300]}"

    def _peer(self, s: Session) -> m.FedPeer:
        """This central node's row (made at the first attempt, so an error of a node
        that never reached it is kept too); the site's name asked once (whoami)."""
        peer = s.scalars(select(m.FedPeer).where(m.FedPeer.url == self.url)).first()
        if peer is None:
            peer = m.FedPeer(url=self.url, site_uid="", last_acked_seq=0)
            s.add(peer)
        peer.last_attempt_at = m.utcnow()
        s.commit()
        if not peer.site_uid:
            resp = self._call("GET", "/api/v1/fed/whoami")
            if resp.status_code != 200:
                raise ScanbenchError(f"central node {self.url} refused the credential: "
                                     f"{self._reason(resp)}")
            peer.site_uid = str(resp.json()["site"])
            s.commit()
        return peer

    # -- one pass -----------------------------------------------------------------------
    def send_pass(self) -> PassReport:
        """Queue, pull decisions, send everything pending (see the class docstring)."""
        rep = PassReport()
        secret = site_secret(self.home)
        with self.db.sessions() as s:
            rep.queued = queue_new(s, secret)
            s.commit()
            try:
                peer = self._peer(s)
            except ScanbenchError as exc:
                rep.error = str(exc)
                self._fail(s, None, rep.error)
                return rep
            try:
                rep.decisions = self._pull_decisions(s)
                while True:
                    more = self._send_one(s, peer, rep)
                    if not more:
                        break
                if self.images:
                    rep.images = self._upload_images(s, peer, secret)
            except ScanbenchError as exc:
                rep.error = str(exc)
            self._fail(s, peer, rep.error)
            rep.acked_seq = peer.last_acked_seq
            rep.pending = s.scalar(select(func.count()).select_from(m.FedOutbox)
                                   .where(m.FedOutbox.id > peer.last_acked_seq)) or 0
        return rep

    def _fail(self, s: Session, peer: m.FedPeer | None, error: str | None) -> None:
        if peer is None:
            peer = s.scalars(select(m.FedPeer).where(m.FedPeer.url == self.url)).first()
        if peer is not None:
            peer.last_error = error
            s.commit()
        if error:
            log.warning("federation to %s: %s", self.url, error)

    def _send_one(self, s: Session, peer: m.FedPeer, rep: PassReport) -> bool:
        rows = list(s.scalars(select(m.FedOutbox).where(m.FedOutbox.id > peer.last_acked_seq)
                              .order_by(m.FedOutbox.id).limit(self.batch_size)))
        if not rows:
            return False
        uid = rows[0].batch_uid
        if uid is not None:  # sent before without an answer: the same batch again
            rows = [r for r in rows if r.batch_uid == uid]
        else:
            uid = uuid.uuid4().hex
            rows = _within_size([r for r in rows if r.batch_uid is None])
            for r in rows:
                r.batch_uid = uid
            s.commit()  # the uid is kept before the batch leaves
        batch = {"protocol": PROTOCOL, "site": peer.site_uid, "batch_uid": uid,
                 "prev_seq": peer.last_acked_seq,
                 "records": [{"seq": r.id, "kind": r.kind, "record_key": r.record_key,
                              "device": r.payload.get("device"), "data": r.payload["data"]}
                             for r in rows]}
        body = json.dumps(batch, separators=(",", ":")).encode()
        resp = self._call("POST", "/api/v1/fed/batches", content=body,
                          headers={"Content-Type": "application/json"})
        if resp.status_code == 200:
            acked = int(resp.json()["acked_seq"])
            now = m.utcnow()
            for r in rows:
                if r.id <= acked:
                    r.sent_at = now
            peer.last_acked_seq = max(peer.last_acked_seq, acked)
            peer.last_error = None
            s.commit()
            rep.sent_batches += 1
            return True
        if resp.status_code == 409:
            expected = resp.json().get("expected_seq")
            if isinstance(expected, int) and expected < peer.last_acked_seq:
                rep.notes.append(f"the centre has up to seq {expected}; resending from there")
                peer.last_acked_seq = expected
                s.commit()
                return True
        raise ScanbenchError(f"batch {uid} refused: {self._reason(resp)}")

    def _upload_images(self, s: Session, peer: m.FedPeer, secret: bytes) -> int:
        """Opt-in (``images``): the instances of each confirmed result, each through
        the site's DICOM PS3.15 de-identification (:class:`Deidentifier`, the same key
        and options as ``scanbench export --deidentified``), posted one by one; a
        result's outbox row records that its images went (``images_sent``). An instance
        that cannot be de-identified (Burned In Annotation YES) is not sent."""
        import io

        import pydicom
        from pydicom.errors import InvalidDicomError

        from scanbench.errors import InputError

        deid = Deidentifier(secret)
        root = self.home / "files"
        sent = 0
        rows = s.scalars(select(m.FedOutbox).where(m.FedOutbox.kind == "result",
                                                   m.FedOutbox.id <= peer.last_acked_seq)
                         .order_by(m.FedOutbox.id))
        for row in list(rows):
            if "images_sent" in row.payload:
                continue
            res = s.get(m.Result, int(row.record_key.split(":")[1]))
            instances = [] if res is None or res.series_id is None else list(s.scalars(
                select(m.Instance).where(m.Instance.series_id == res.series_id)
                .order_by(m.Instance.instance_number, m.Instance.id)))
            skipped = 0
            for inst in instances:
                try:
                    ds = pydicom.dcmread(root / inst.path)
                    deid.apply(ds)
                except InputError as exc:  # burned-in annotation: never sent
                    log.warning("instance %s not sent: %s", inst.sop_uid, exc)
                    skipped += 1
                    continue
                except (OSError, InvalidDicomError) as exc:
                    raise ScanbenchError(f"image {inst.path} of {row.record_key} cannot be "
                                         f"read: {exc}") from None
                buf = io.BytesIO()
                ds.save_as(buf, enforce_file_format=True)
                resp = self._call("POST", "/api/v1/fed/images", content=buf.getvalue(),
                                  params={"record_key": row.record_key},
                                  headers={"Content-Type": "application/dicom"})
                if resp.status_code != 200:
                    raise ScanbenchError(f"an image of {row.record_key} was refused: "
                                         f"{self._reason(resp)}")
                sent += 1
            row.payload = {**row.payload, "images_sent": len(instances) - skipped}
            s.commit()
        return sent

    def _pull_decisions(self, s: Session) -> int:
        since = s.scalar(select(func.max(m.ReviewDecision.decided_at)))
        params = {"since": since.isoformat()} if since else {}
        resp = self._call("GET", "/api/v1/fed/decisions", params=params)
        if resp.status_code != 200:
            raise ScanbenchError(f"review decisions not fetched: {self._reason(resp)}")
        n = 0
        for item in resp.json()["decisions"]:
            d = DecisionWire.model_validate(item)
            if s.scalars(select(m.ReviewDecision.id)
                         .where(m.ReviewDecision.remote_key == d.key)).first():
                continue
            kind, _, local = d.result_key.partition(":")
            result_id = int(local) if kind == "result" and local.isdigit() else None
            if result_id is not None and s.get(m.Result, result_id) is None:
                result_id = None
            s.add(m.ReviewDecision(remote_key=d.key, result_id=result_id,
                                   decision=d.decision, reason=d.reason, comment=d.comment,
                                   reviewer=d.reviewer, decided_at=d.decided_at))
            n += 1
        s.commit()
        return n


def status(session: Session) -> list[dict[str, Any]]:
    """Each central node this site sends to: what it confirmed, what is pending, the
    last error (a refused batch's reason)."""
    out = []
    total = session.scalar(select(func.count()).select_from(m.FedOutbox)) or 0
    for peer in session.scalars(select(m.FedPeer).order_by(m.FedPeer.id)):
        pending = session.scalar(select(func.count()).select_from(m.FedOutbox)
                                 .where(m.FedOutbox.id > peer.last_acked_seq)) or 0
        out.append({"url": peer.url, "site": peer.site_uid, "acked_seq": peer.last_acked_seq,
                    "pending": pending, "queued_total": total,
                    "last_attempt_at": peer.last_attempt_at, "last_error": peer.last_error})
    return out


class SenderLoop(threading.Thread):
    """The node's federation thread: a pass every ``every_s``; after a failed pass the
    wait doubles (up to ``max_backoff_s``), so a centre that is down is not hammered
    and a site offline for days catches up on its own once it is back."""

    def __init__(self, sender: Sender, stop: threading.Event, every_s: float = 30.0,
                 max_backoff_s: float = 300.0) -> None:
        super().__init__(name="federation", daemon=True)
        self.sender, self.stop, self.every_s = sender, stop, every_s
        self.max_backoff_s = max_backoff_s

    def run(self) -> None:
        wait = self.every_s
        while not self.stop.is_set():
            try:
                rep = self.sender.send_pass()
                wait = self.every_s if rep.error is None else min(wait * 2,
                                                                   self.max_backoff_s)
                if rep.sent_batches:
                    log.info("federation: %d batches sent, confirmed up to seq %d",
                             rep.sent_batches, rep.acked_seq)
            except Exception:  # the node survives any single failure
                log.exception("federation pass failed")
                wait = min(wait * 2, self.max_backoff_s)
            self.stop.wait(wait)
        self.sender.close()

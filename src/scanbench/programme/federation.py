"""Federation, central side (issue 14 §1): the wire format site nodes send, the checks a
received batch passes, and how its records become rows of the central tables.

A site node (:mod:`scanbench.programme.outbox`) sends its queued, de-identified records
in ordered batches (``POST /api/v1/fed/batches``, ``Authorization: Bearer <site
credential>``). Each batch names the last sequence number the site believes the centre
confirmed (``prev_seq``); the centre accepts it only when that is the last one it stored
for the site (a gap is refused with ``expected_seq``, so the site resends from there).
A batch seen before (same ``batch_uid``) or records seen before (same ``record_key``)
are acknowledged and stored once. Every record becomes the same kind of row the site
has (Device, Result + Measurement, LifecycleEvent, Alert, Scorecard) under the site's
central :class:`~scanbench.store.models.Site`, with a
:class:`~scanbench.store.models.FedRecord` naming it, so the central pages, scorecards
and reports work on them unchanged.

Review decisions flow back (``GET /api/v1/fed/decisions``): NOTE for engineer "review"
— the centre serves :class:`DecisionWire` built from ``Review`` rows (state accepted or
rejected, ``decided_at`` set) of results that came from the asking site; the site stores
each as a ``ReviewDecision`` (``remote_key`` = :attr:`DecisionWire.key`, ``result_id``
= the site's own result the ``result_key`` names). A decision changed later is a new
key (it contains ``decided_at``), so the site keeps the history.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import json
import math
import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from scanbench.errors import InputError
from scanbench.store import models as m
from scanbench.store.repo import labels_key
from scanbench.web.audit import Actor, record

#: Version of the wire format; a batch of another version is refused with a reason.
PROTOCOL = 1
#: The largest batch body the centre reads (bytes); a larger one is refused (HTTP 413).
MAX_BATCH_BYTES = 4 * 1024 * 1024
#: The most records in one batch.
MAX_RECORDS = 500
KINDS = ("result", "lifecycle", "alert", "scorecard", "dose_day", "workflow_day")
#: ``source`` of a lifecycle event received from a site.
FED_SOURCE = "federation"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeviceWire(_Strict):
    """A device's identity (kept: PS3.15 Annex E "Retain Device Identity Option")."""

    identity_key: str = Field(min_length=1, max_length=300)
    manufacturer: str | None = Field(default=None, max_length=200)
    model: str | None = Field(default=None, max_length=200)
    serial: str | None = Field(default=None, max_length=200)
    modality: str | None = Field(default=None, max_length=16)
    display_name: str | None = Field(default=None, max_length=200)
    software_versions: str | None = Field(default=None, max_length=400)
    field_strength_t: float | None = None
    axial_fov_cm: float | None = None
    country_of_manufacture: str | None = Field(default=None, max_length=64)
    status: str = Field(default="active", max_length=32)


class MeasurementWire(_Strict):
    name: str = Field(max_length=120)
    labels: dict[str, Any] = Field(default_factory=dict)
    value: float | None = None
    unit: str = Field(max_length=32)
    uncertainty: float | None = None
    limit_low: float | None = None
    limit_high: float | None = None
    limit_source: str | None = None
    limit_verified: bool | None = None
    status: str = Field(default="info", max_length=24)
    note: str | None = None


class ResultWire(_Strict):
    """A result: ``series_uid`` is the site's keyed hash of the Series Instance UID."""

    analysis: str = Field(max_length=120)
    standard: str = Field(max_length=300)
    series_uid: str | None = Field(default=None, max_length=64)
    spec: str | None = Field(default=None, max_length=120)
    acquired_at: dt.datetime | None = None
    utc_offset_min: int | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    warnings: list[Any] = Field(default_factory=list)
    scanbench_version: str = Field(max_length=32)
    supersedes_key: str | None = Field(default=None, max_length=200)
    measurements: list[MeasurementWire] = Field(default_factory=list, max_length=5000)


class LifecycleWire(_Strict):
    kind: Literal[m.LIFECYCLE_KINDS] = Field()  # type: ignore[valid-type]
    occurred_at: dt.datetime | None = None
    summary: str = ""
    details: dict[str, Any] = Field(default_factory=dict)
    source: str = Field(default="user", max_length=16)
    planned: bool = False
    new_baseline: bool = False
    cost: float | None = None
    currency: str | None = Field(default=None, max_length=3)


class AlertWire(_Strict):
    """One state of an alert (a later state of the same alert updates the central row)."""

    key: str = Field(max_length=300)
    analysis: str = Field(max_length=120)
    name: str = Field(max_length=120)
    labels: dict[str, Any] = Field(default_factory=dict)
    rule: str = Field(max_length=16)
    level: str = Field(max_length=16)
    direction: str | None = Field(default=None, max_length=8)
    result_key: str | None = Field(default=None, max_length=200)
    occurred_at: dt.datetime | None = None
    first_at: dt.datetime | None = None
    value: float | None = None
    unit: str = Field(default="", max_length=32)
    statistic: float | None = None
    threshold: float | None = None
    limit_source: str | None = None
    message: str = ""
    state: Literal["open", "acknowledged", "closed"]
    ack_at: dt.datetime | None = None
    ack_comment: str | None = None
    closed_at: dt.datetime | None = None
    closed_reason: str | None = None


class ScorecardWire(_Strict):
    spec_name: str = Field(max_length=120)
    spec_version: str = Field(max_length=300)
    spec_sha256: str | None = Field(default=None, max_length=64)
    spec_yaml: str
    spec_title: str = Field(default="", max_length=300)
    period_start: dt.datetime | None = None
    period_end: dt.datetime | None = None
    score: float | None = None
    status: str = Field(default="info", max_length=24)
    compliance: float | None = None
    inputs_hash: str | None = Field(default=None, max_length=64)
    data: dict[str, Any] = Field(default_factory=dict)


class DayStatsWire(_Strict):
    """Day statistics in format 1 (sites before format 2): per (kind, protocol) count,
    minimum, median, 75th percentile and maximum only. Kept as received; the central
    statistics cannot combine them exactly (a median of daily medians is not the
    median) and say so (:mod:`scanbench.clinical.federated`)."""

    day: dt.date
    groups: list[dict[str, Any]] = Field(max_length=1000)


#: The format of the day statistics a site sends (``version`` of their data): 2 sends
#: each day's sorted values, so the centre combines days exactly (any quantile of any
#: period); 1 (no ``version``) sent per-day summaries only.
DAY_FORMAT = 2
#: The most values of one quantity in one day's group.
MAX_DAY_VALUES = 100_000

Values = list[float]


def _check_sorted(values: Values, what: str, at_most: int | None = None) -> Values:
    if any(not math.isfinite(v) for v in values):
        raise ValueError(f"{what}: a value is not finite")
    if any(b < a for a, b in itertools.pairwise(values)):
        raise ValueError(f"{what}: values must be sorted ascending")
    if at_most is not None and len(values) > at_most:
        raise ValueError(f"{what}: {len(values)} values, more than the {at_most} counted")
    return values


class DoseDayGroupWire(_Strict):
    """One (kind, protocol) of a device's day in format 2: the number of events, each
    quantity's values sorted ascending (no order of acquisition, no exam), and the CT
    target regions (k-factor regions) counted."""

    kind: Literal["ct", "ct_localizer", "study", "radiopharmaceutical"]
    protocol: str = Field(max_length=200)
    events: int = Field(ge=1)
    regions: dict[str, int] = Field(default_factory=dict, max_length=50)
    values: dict[Literal["ctdivol_mgy", "dlp_mgycm", "ssde_mgy", "administered_activity_mbq",
                         "activity_per_kg_mbq_per_kg", "effective_dose_msv"],
                 list[float]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _values_sorted(self) -> DoseDayGroupWire:
        for name, vals in self.values.items():
            _check_sorted(vals, f"values.{name}", self.events)
        return self


class WorkflowDayGroupWire(_Strict):
    """A device's day in format 2: exams, their durations (s) and PET uptake times (min)
    sorted ascending, the busy time (s, the sum of the durations), how many uptake times
    were in the window, and the hours the device was staffed that day at the site
    (``basis`` "staffed hours", else "24 h")."""

    exams: int = Field(ge=1)
    durations_s: Values = Field(max_length=MAX_DAY_VALUES)
    busy_s: float = Field(ge=0)
    uptake_min: Values = Field(default_factory=list, max_length=MAX_DAY_VALUES)
    uptake_in_window: int = Field(default=0, ge=0)
    available_hours: float = Field(ge=0, le=24)
    basis: Literal["staffed hours", "24 h"]

    @model_validator(mode="after")
    def _consistent(self) -> WorkflowDayGroupWire:
        _check_sorted(self.durations_s, "durations_s", self.exams)
        _check_sorted(self.uptake_min, "uptake_min", self.exams)
        total = math.fsum(self.durations_s)
        if abs(self.busy_s - total) > 1e-6 * max(1.0, total):
            raise ValueError(f"busy_s {self.busy_s} is not the sum of durations_s ({total})")
        if self.uptake_in_window > len(self.uptake_min):
            raise ValueError("uptake_in_window is more than the uptake times sent")
        return self


class DoseDayWire(_Strict):
    day: dt.date
    version: Literal[2]
    groups: list[DoseDayGroupWire] = Field(max_length=1000)


class WorkflowDayWire(_Strict):
    day: dt.date
    version: Literal[2]
    groups: list[WorkflowDayGroupWire] = Field(min_length=1, max_length=1)


_DATA_MODELS: dict[str, type[BaseModel]] = {
    "result": ResultWire, "lifecycle": LifecycleWire, "alert": AlertWire,
    "scorecard": ScorecardWire, "dose_day": DoseDayWire, "workflow_day": WorkflowDayWire}


def data_model(kind: str, data: dict[str, Any]) -> type[BaseModel]:
    """The model a record's data is checked against: day statistics by their format
    (``version``; none: format 1, :class:`DayStatsWire`); :class:`Refused` (422) for a
    format this centre does not know."""
    if kind in ("dose_day", "workflow_day"):
        version = data.get("version", 1)
        if version == 1:
            return DayStatsWire
        if version != DAY_FORMAT:
            raise Refused(422, f"{kind} format {version!r} is not supported (this centre "
                          f"reads 1 and {DAY_FORMAT}); update scanbench at the centre")
    return _DATA_MODELS[kind]


class RecordWire(_Strict):
    """One queued record: ``seq`` is the site's outbox sequence number."""

    seq: int = Field(ge=1)
    kind: Literal["result", "lifecycle", "alert", "scorecard", "dose_day", "workflow_day"]
    record_key: str = Field(min_length=1, max_length=200)
    device: DeviceWire | None = None
    data: dict[str, Any]


class BatchWire(_Strict):
    """What a site posts."""

    protocol: int
    site: str = Field(min_length=1, max_length=200)
    batch_uid: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    prev_seq: int = Field(ge=0)
    records: list[RecordWire] = Field(min_length=1, max_length=MAX_RECORDS)


class DecisionWire(_Strict):
    """A central reviewer's decision on one of the site's results (flows back)."""

    key: str = Field(max_length=200)
    result_key: str = Field(max_length=200)
    decision: Literal["accepted", "rejected"]
    reason: str | None = None
    comment: str | None = None
    reviewer: str = ""
    decided_at: dt.datetime | None = None


class Refused(Exception):
    """A batch refused: ``status`` is the HTTP status, the message the reason the site
    stores and shows; ``expected_seq`` when the batch does not follow the last one."""

    def __init__(self, status: int, reason: str, expected_seq: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.expected_seq = expected_seq


# --------------------------------------------------------------------------- credentials

def add_credential(session: Session, actor: Actor, site: str, name: str = "") -> str:
    """A new credential for ``site`` (created if new); returns the token, shown once —
    only its SHA-256 is stored."""
    row = session.scalars(select(m.Site).where(m.Site.name == site)).first()
    if row is None:
        row = m.Site(name=site)
        session.add(row)
        session.flush()
        record(session, actor, "create", "site", row.id, site_id=row.id,
               after={"name": site})
    raw = "sbf_" + secrets.token_urlsafe(32)
    cred = m.FedCredential(site_id=row.id, name=name, prefix=raw[:12],
                           token_hash=hashlib.sha256(raw.encode()).hexdigest())
    session.add(cred)
    session.flush()
    record(session, actor, "create", "fed_credential", cred.id, site_id=row.id,
           after={"site": site, "name": name, "prefix": cred.prefix})
    return raw


def revoke_credential(session: Session, actor: Actor, ref: str) -> m.FedCredential:
    """Revoke a credential by its id or token prefix; batches it signs are refused."""
    q = select(m.FedCredential)
    q = q.where(m.FedCredential.id == int(ref)) if ref.isdigit() else \
        q.where(m.FedCredential.prefix == ref)
    cred = session.scalars(q).first()
    if cred is None:
        raise InputError(f"no federation credential {ref!r} (give its id or prefix)")
    if cred.revoked_at is None:
        cred.revoked_at = m.utcnow()
        record(session, actor, "revoke", "fed_credential", cred.id, site_id=cred.site_id,
               before={"revoked_at": None}, after={"revoked_at": cred.revoked_at.isoformat()})
    return cred


def credential_site(session: Session, token: str | None) -> tuple[m.FedCredential, m.Site]:
    """The credential ``token`` is and its site; :class:`Refused` (401/403) otherwise."""
    if not token:
        raise Refused(401, "no site credential: send 'Authorization: Bearer <token>'")
    digest = hashlib.sha256(token.encode()).hexdigest()
    cred = session.scalars(select(m.FedCredential)
                           .where(m.FedCredential.token_hash == digest)).first()
    if cred is None:
        raise Refused(401, "unknown site credential")
    site = session.get_one(m.Site, cred.site_id)
    if cred.revoked_at is not None:
        raise Refused(403, f"the credential {cred.prefix}... of site {site.name!r} was "
                      f"revoked on {cred.revoked_at:%Y-%m-%d %H:%M} UTC; ask the programme "
                      "for a new one")
    cred.last_used_at = m.utcnow()
    return cred, site


# --------------------------------------------------------------------------- receiving

def last_seq(session: Session, site_id: int) -> int:
    """The last sequence number the centre stored for the site (0: none)."""
    got = session.scalar(select(func.max(m.FedBatch.last_seq))
                         .where(m.FedBatch.site_id == site_id,
                                m.FedBatch.state == "accepted"))
    return int(got or 0)


def _refuse_logged(session: Session, site: m.Site, cred: m.FedCredential | None,
                   batch_uid: str, body: bytes, reason: str) -> None:
    """Keep a refused batch (its latest reason) for the centre's operators; an accepted
    batch's row is never changed by a later refusal of the same uid."""
    uid = batch_uid[:64] if batch_uid else "unknown-" + hashlib.sha256(body).hexdigest()[:16]
    row = session.scalars(select(m.FedBatch).where(m.FedBatch.site_id == site.id,
                                                   m.FedBatch.batch_uid == uid)).first()
    if row is None:
        row = m.FedBatch(site_id=site.id, batch_uid=uid, state="refused")
        session.add(row)
    if row.state == "refused":
        row.credential_id = cred.id if cred else None
        row.size_bytes, row.sha256 = len(body), hashlib.sha256(body).hexdigest()
        row.reason, row.received_at = reason[:2000], m.utcnow()


def parse_batch(body: bytes) -> BatchWire:
    """The batch in ``body``, each record's data checked against its kind's model;
    :class:`Refused` (400/422) naming the first problem."""
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Refused(400, f"the batch is not complete JSON ({exc}); it may have been cut "
                      "off in transfer — it is sent again") from None
    try:
        batch = BatchWire.model_validate(raw)
    except ValidationError as exc:
        raise Refused(422, "the batch does not match the federation schema: "
                      + _first_error(exc)) from None
    if batch.protocol != PROTOCOL:
        raise Refused(422, f"federation protocol {batch.protocol} is not supported "
                      f"(this centre speaks {PROTOCOL}); update the site's scanbench")
    previous = batch.prev_seq
    for rec in batch.records:
        if rec.seq <= previous:
            raise Refused(422, f"record {rec.record_key}: seq {rec.seq} does not follow "
                          f"{previous} (records must be in increasing order)")
        previous = rec.seq
        if rec.kind in ("result", "lifecycle", "scorecard", "dose_day",
                        "workflow_day", "alert") and rec.device is None:
            raise Refused(422, f"record {rec.record_key}: no device")
        try:
            data = data_model(rec.kind, rec.data).model_validate(rec.data)
        except ValidationError as exc:
            raise Refused(422, f"record seq {rec.seq} ({rec.record_key}): "
                          + _first_error(exc)) from None
        labelled = (data.measurements if isinstance(data, ResultWire) else
                    [data] if isinstance(data, AlertWire) else [])
        for item in labelled:  # the stored key has 400 characters
            if len(labels_key(item.labels)) > 400:
                raise Refused(422, f"record seq {rec.seq} ({rec.record_key}): labels of "
                              f"{item.name!r} longer than 400 characters as JSON")
    return batch


def _first_error(exc: ValidationError) -> str:
    e = exc.errors()[0]
    where = ".".join(str(p) for p in e["loc"]) or "(top level)"
    return f"{where}: {e['msg']}" + (f" (and {exc.error_count() - 1} more)"
                                     if exc.error_count() > 1 else "")


def receive(session: Session, token: str | None, body: bytes) -> dict[str, Any]:
    """Check and store one batch (the caller commits). Returns the acknowledgement
    (``state`` accepted or duplicate, ``acked_seq``); raises :class:`Refused`."""
    cred, site = credential_site(session, token)
    try:
        batch = parse_batch(body)
    except Refused as exc:
        uid = ""
        with contextlib.suppress(Exception):  # an unreadable body has no uid to keep
            uid = str(json.loads(body).get("batch_uid", ""))
        _refuse_logged(session, site, cred, uid, body, exc.reason)
        raise
    if batch.site != site.name:
        reason = (f"this credential belongs to site {site.name!r}, but the batch claims "
                  f"site {batch.site!r}")
        _refuse_logged(session, site, cred, batch.batch_uid, body, reason)
        raise Refused(403, reason)
    last = last_seq(session, site.id)
    seen = session.scalars(select(m.FedBatch).where(
        m.FedBatch.site_id == site.id, m.FedBatch.batch_uid == batch.batch_uid,
        m.FedBatch.state == "accepted")).first()
    if seen is not None:  # a replay: acknowledged, nothing stored again
        return {"state": "duplicate", "acked_seq": max(last, seen.last_seq or 0),
                "stored": 0, "duplicates": len(batch.records)}
    if batch.prev_seq > last:
        raise Refused(409, f"sequence gap: this centre has records of site {site.name!r} "
                      f"up to seq {last}, the batch follows seq {batch.prev_seq}; resend "
                      f"from seq {last + 1}", expected_seq=last)
    stale = session.scalars(select(m.FedBatch).where(
        m.FedBatch.site_id == site.id, m.FedBatch.batch_uid == batch.batch_uid)).first()
    if stale is not None:  # refused before, now acceptable: reuse its row
        stale.state, stale.reason = "accepted", None
        row = stale
    else:
        row = m.FedBatch(site_id=site.id, batch_uid=batch.batch_uid, state="accepted")
        session.add(row)
    row.credential_id = cred.id
    row.first_seq, row.last_seq = batch.records[0].seq, batch.records[-1].seq
    row.n_records, row.size_bytes = len(batch.records), len(body)
    row.sha256 = hashlib.sha256(body).hexdigest()
    session.flush()
    stored = duplicates = 0
    known = set(session.scalars(select(m.FedRecord.record_key).where(
        m.FedRecord.site_id == site.id,
        m.FedRecord.record_key.in_([r.record_key for r in batch.records]))))
    devices: dict[str, m.Device] = {}
    for rec in batch.records:
        if rec.record_key in known:
            duplicates += 1
            continue
        known.add(rec.record_key)
        table, local_id = materialise(session, site, rec, devices)
        session.add(m.FedRecord(site_id=site.id, batch_id=row.id, seq=rec.seq, kind=rec.kind,
                                record_key=rec.record_key, payload=rec.model_dump(mode="json"),
                                local_table=table, local_id=local_id))
        stored += 1
    row.last_seq = max(row.last_seq or 0, last)
    return {"state": "accepted", "acked_seq": row.last_seq, "stored": stored,
            "duplicates": duplicates}


def receive_committed(session: Session, token: str | None, body: bytes) -> dict[str, Any]:
    """:func:`receive` and commit; a refusal commits its log row, then is raised. Two
    copies of one batch arriving at once: the second fails the unique batch uid and is
    answered as the duplicate it is."""
    try:
        out = receive(session, token, body)
        session.commit()
        return out
    except Refused:
        session.commit()
        raise
    except IntegrityError:
        session.rollback()
        out = receive(session, token, body)
        session.commit()
        return out
    except DBAPIError as exc:  # a value the central database will not take: say which
        session.rollback()
        reason = f"the centre could not store the batch: {type(exc.orig).__name__}: " \
                 f"{str(exc.orig).splitlines()[0][:300]}"
        cred, site = credential_site(session, token)
        with contextlib.suppress(Exception):
            uid = str(json.loads(body).get("batch_uid", ""))
            _refuse_logged(session, site, cred, uid, body, reason)
            session.commit()
        raise Refused(422, reason) from None


# --------------------------------------------------------------------------- materialising

def _device(session: Session, site: m.Site, wire: DeviceWire,
            cache: dict[str, m.Device] | None = None) -> m.Device:
    """The central device row of a site's device (the identity key gets the site's name
    in front when another site already has a device under the same key). ``cache``:
    the devices of this batch already looked up and updated (by their wire form)."""
    memo = wire.model_dump_json()
    if cache is not None and memo in cache:
        return cache[memo]
    dev = session.scalars(select(m.Device).where(
        m.Device.identity_key == wire.identity_key)).first()
    if dev is not None and dev.site_id != site.id:
        key = f"{site.name}/{wire.identity_key}"[:400]
        dev = session.scalars(select(m.Device).where(m.Device.identity_key == key)).first()
    else:
        key = wire.identity_key
    if dev is None:
        dev = m.Device(identity_key=key, site_id=site.id)
        session.add(dev)
    for field in ("manufacturer", "model", "serial", "modality", "display_name",
                  "software_versions", "field_strength_t", "axial_fov_cm",
                  "country_of_manufacture", "status"):
        value = getattr(wire, field)
        if value is not None:
            setattr(dev, field, value)
    dev.last_seen_at = m.utcnow()
    session.flush()
    if cache is not None:
        cache[memo] = dev
    return dev


def _local_id(session: Session, site_id: int, record_key: str | None) -> int | None:
    if not record_key:
        return None
    return session.scalar(select(m.FedRecord.local_id).where(
        m.FedRecord.site_id == site_id, m.FedRecord.record_key == record_key))


def _central_ids(session: Session, site_id: int, data: Any) -> Any:
    """``data`` with the site's result ids (``evidence`` lists, ``*result_id`` values)
    replaced by the central ids of those results (results are sent before the
    scorecards that cite them); an id the centre does not have is dropped (None)."""
    def one(value: Any) -> int | None:
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        return _local_id(session, site_id, f"result:{value}")

    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key == "evidence" and isinstance(value, list):
                out[key] = [i for i in (one(v) for v in value) if i is not None]
            elif key.endswith("result_id") and isinstance(value, int):
                out[key] = one(value)
            else:
                out[key] = _central_ids(session, site_id, value)
        return out
    if isinstance(data, list):
        return [_central_ids(session, site_id, v) for v in data]
    return data


def materialise(session: Session, site: m.Site, rec: RecordWire,
                devices: dict[str, m.Device] | None = None
                ) -> tuple[str | None, int | None]:
    """Write ``rec`` into the central tables; returns (table, id) of the row it became
    (the day statistics have no central table: ("device", its central device id))."""
    assert rec.device is not None  # checked by parse_batch
    dev = _device(session, site, rec.device, devices)
    if rec.kind == "result":
        r = ResultWire.model_validate(rec.data)
        res = m.Result(device_id=dev.id, analysis=r.analysis, standard=r.standard,
                       series_uid=r.series_uid, spec=r.spec, acquired_at=r.acquired_at,
                       utc_offset_min=r.utc_offset_min, parameters=r.parameters,
                       warnings=r.warnings, source=f"federation:{site.name}",
                       scanbench_version=r.scanbench_version,
                       supersedes_id=_local_id(session, site.id, r.supersedes_key))
        for mw in r.measurements:
            res.measurements.append(m.Measurement(
                device_id=dev.id, analysis=r.analysis, acquired_at=r.acquired_at,
                labels_key=labels_key(mw.labels),
                **mw.model_dump()))
        session.add(res)
        session.flush()
        return "result", res.id
    if rec.kind == "lifecycle":
        lw = LifecycleWire.model_validate(rec.data)
        ev = m.LifecycleEvent(device_id=dev.id, kind=lw.kind, occurred_at=lw.occurred_at,
                              summary=lw.summary, details={**lw.details,
                                                           "site_source": lw.source},
                              source=FED_SOURCE, planned=lw.planned,
                              new_baseline=lw.new_baseline, cost=lw.cost,
                              currency=lw.currency, external_id=rec.record_key[:120])
        session.add(ev)
        session.flush()
        return "lifecycle_event", ev.id
    if rec.kind == "alert":
        aw = AlertWire.model_validate(rec.data)
        key = f"fed:{site.id}:{aw.key}"[:400]
        alert = session.scalars(select(m.Alert).where(m.Alert.key == key)).first()
        if alert is None:
            alert = m.Alert(key=key, device_id=dev.id)
            session.add(alert)
        for field in ("analysis", "name", "labels", "rule", "level", "direction",
                      "occurred_at", "first_at", "value", "unit", "statistic", "threshold",
                      "limit_source", "message", "state", "ack_at", "ack_comment",
                      "closed_at", "closed_reason"):
            setattr(alert, field, getattr(aw, field))
        alert.labels_key = labels_key(aw.labels)
        alert.result_id = _local_id(session, site.id, aw.result_key)
        session.flush()
        return "alert", alert.id
    if rec.kind == "scorecard":
        sw = ScorecardWire.model_validate(rec.data)
        spec = session.scalars(select(m.Spec).where(m.Spec.name == sw.spec_name,
                                                    m.Spec.version == sw.spec_version)).first()
        if spec is None:
            spec = m.Spec(name=sw.spec_name, version=sw.spec_version, title=sw.spec_title,
                          yaml=sw.spec_yaml, sha256=sw.spec_sha256,
                          origin=f"federation:{site.name}")
            session.add(spec)
            session.flush()
        card = session.scalars(select(m.Scorecard).where(
            m.Scorecard.device_id == dev.id, m.Scorecard.spec_id == spec.id,
            m.Scorecard.inputs_hash == sw.inputs_hash)).first()
        if card is None:
            card = m.Scorecard(device_id=dev.id, spec_id=spec.id,
                               period_start=sw.period_start, period_end=sw.period_end,
                               score=sw.score, status=sw.status, compliance=sw.compliance,
                               inputs_hash=sw.inputs_hash,
                               data={**_central_ids(session, site.id, sw.data),
                                     "federated_from": site.name})
            session.add(card)
            session.flush()
        return "scorecard", card.id
    # dose_day / workflow_day: kept as FedRecord payloads, naming the central device
    # they belong to (read by scanbench.clinical.federated)
    return "device", dev.id


def site_overview(session: Session) -> list[dict[str, Any]]:
    """Central node: per site with a credential, the last sequence stored, records and
    batches received, the last batch's time, refused batches and the newest reason."""
    out = []
    for site in session.scalars(select(m.Site).where(
            m.Site.id.in_(select(m.FedCredential.site_id))).order_by(m.Site.name)):
        batches = m.FedBatch.site_id == site.id
        last_refused = session.scalars(select(m.FedBatch).where(
            batches, m.FedBatch.state == "refused").order_by(m.FedBatch.received_at.desc())
            .limit(1)).first()
        out.append({
            "site": site.name, "last_seq": last_seq(session, site.id),
            "records": session.scalar(select(func.count()).select_from(m.FedRecord)
                                      .where(m.FedRecord.site_id == site.id)) or 0,
            "accepted": session.scalar(select(func.count()).select_from(m.FedBatch)
                                       .where(batches, m.FedBatch.state == "accepted")) or 0,
            "refused": session.scalar(select(func.count()).select_from(m.FedBatch)
                                      .where(batches, m.FedBatch.state == "refused")) or 0,
            "last_received_at": session.scalar(select(func.max(m.FedBatch.received_at))
                                               .where(batches)),
            "last_refusal": last_refused.reason if last_refused else None})
    return out


# --------------------------------------------------------------------------- images for review

#: The largest de-identified instance the centre takes (bytes).
MAX_IMAGE_BYTES = 64 * 1024 * 1024


def receive_image(session: Session, token: str | None, body: bytes, record_key: str,
                  files: Any) -> dict[str, Any]:
    """Store one de-identified instance of a result already received (opt-in image
    upload for expert review; the caller commits). Refused unless the instance says it
    went through PS3.15 de-identification (Patient Identity Removed (0012,0062) YES and
    a De-identification Method (0012,0063)) and belongs to the result's series (the
    site's keyed-hash UID). The instance becomes a central Study/Series/Instance (state
    done: never analysed again) and the result's ``series_id`` points to it, so the
    central result page can show the evidence. ``files``: the central FileStore."""
    import io

    import pydicom
    from pydicom.errors import InvalidDicomError

    from scanbench.service.filestore import valid_uid

    _cred, site = credential_site(session, token)
    rec = session.scalars(select(m.FedRecord).where(
        m.FedRecord.site_id == site.id, m.FedRecord.record_key == record_key,
        m.FedRecord.kind == "result")).first()
    if rec is None or rec.local_id is None:
        raise Refused(404, f"no result {record_key!r} of site {site.name!r} here: its batch "
                      "is sent first")
    try:
        ds = pydicom.dcmread(io.BytesIO(body))
    except (InvalidDicomError, ValueError, EOFError, KeyError, TypeError) as exc:
        raise Refused(422, f"not a DICOM instance ({type(exc).__name__}: {exc})") from None
    if (str(ds.get("PatientIdentityRemoved", "")).upper() != "YES"
            or not ds.get("DeidentificationMethod")):
        raise Refused(422, "the instance is not de-identified (Patient Identity Removed "
                      "(0012,0062) is not YES): images are taken only through the site's "
                      "DICOM PS3.15 de-identification")
    result = session.get_one(m.Result, rec.local_id)
    series_uid = str(ds.get("SeriesInstanceUID", ""))
    sop_uid, study_uid = str(ds.get("SOPInstanceUID", "")), str(ds.get("StudyInstanceUID", ""))
    if series_uid != result.series_uid:
        raise Refused(422, f"the instance's Series Instance UID is not that of result "
                      f"{record_key} (the site's keyed hash)")
    if not (valid_uid(sop_uid) and valid_uid(study_uid)):
        raise Refused(422, "the instance has no valid SOP or Study Instance UID")
    if session.scalars(select(m.Instance.id).where(m.Instance.sop_uid == sop_uid)).first():
        return {"state": "duplicate", "sop_uid": sop_uid}
    files.write(sop_uid, body)
    study = session.scalars(select(m.Study).where(m.Study.study_uid == study_uid)).first()
    if study is None:
        study = m.Study(study_uid=study_uid, site_id=site.id)
        session.add(study)
        session.flush()
    series = session.scalars(select(m.Series).where(m.Series.series_uid == series_uid)).first()
    if series is None:
        from scanbench.evaluation.alerts import CLINICAL

        # The series' kind as the site's classification made it: a patient's series is
        # one measured by a clinical image-quality analysis (PET liver noise, CT global
        # noise), any other result's series is a phantom's.
        kind = "clinical" if result.analysis in CLINICAL else "phantom"
        series = m.Series(series_uid=series_uid, study_id=study.id, device_id=result.device_id,
                          modality=str(ds.get("Modality", "")) or None,
                          sop_class_uid=str(ds.get("SOPClassUID", "")) or None,
                          acquired_at=result.acquired_at, state="done", kind=kind,
                          analysis=result.analysis)
        session.add(series)
        session.flush()
    number = ds.get("InstanceNumber")
    meta = getattr(ds, "file_meta", None)
    session.add(m.Instance(
        sop_uid=sop_uid, series_id=series.id, sop_class_uid=series.sop_class_uid,
        instance_number=int(number) if number not in (None, "") else None,
        transfer_syntax=str(meta.TransferSyntaxUID) if meta is not None
        and "TransferSyntaxUID" in meta else None,
        path=files.relative(sop_uid), size_bytes=len(body), source=f"federation:{site.name}"))
    result.series_id = series.id
    return {"state": "stored", "sop_uid": sop_uid}


# --------------------------------------------------------------------------- decisions back

def decisions_for(session: Session, site: m.Site, since: dt.datetime | None = None,
                  limit: int = 1000) -> list[DecisionWire]:
    """The decided reviews of ``site``'s results (decided at or after ``since``), as
    the site's own record keys; each served one is marked ``sent_back_at``."""
    q = (select(m.Review, m.FedRecord.record_key)
         .join(m.FedRecord, (m.FedRecord.local_table == "result")
               & (m.FedRecord.local_id == m.Review.result_id)
               & (m.FedRecord.site_id == site.id))
         .where(m.Review.state.in_(("accepted", "rejected")),
                m.Review.decided_at.is_not(None))
         .order_by(m.Review.decided_at, m.Review.id).limit(limit))
    if since is not None:
        q = q.where(m.Review.decided_at >= since)
    out = []
    for review, key in session.execute(q).all():
        who = session.get(m.User, review.reviewer_id) if review.reviewer_id else None
        assert review.decided_at is not None
        out.append(DecisionWire(
            key=f"review:{review.id}:{review.decided_at.isoformat()}", result_key=key,
            decision="rejected" if review.state == "rejected" else "accepted",
            reason=review.reason, comment=review.comment,
            reviewer=who.username if who is not None else "", decided_at=review.decided_at))
        if review.sent_back_at is None:
            review.sent_back_at = m.utcnow()
    return out

"""The node's database: SQLAlchemy 2 typed models of DESIGN.md's entities.

One table per entity (Site, Device + DeviceAlias, Study, Series, Instance,
Result, Measurement, Protocol, DoseEvent, ExamTiming, LifecycleEvent, Spec, Scorecard,
User, Grant, ApiToken, WebSession, LoginFailure, AuditEntry) plus Job, the record of
each analysis or dose job.
Schema changes go through the Alembic migrations in ``store/migrations``;
``scanbench db upgrade`` (and every start of the node) applies them.

Conventions:
- internal instants (received, created, started) are UTC, stored naive-UTC by
  :class:`UTCDateTime` so SQLite and PostgreSQL give the same aware values back;
- times read from DICOM headers (``acquired_at``) are the scanner's local clock
  time, stored naive, with the UTC offset in minutes beside them when the
  header gave one (Timezone Offset From UTC (0008,0201));
- a device's history of any measurement is one indexed query on
  ``measurement (device_id, analysis, name, acquired_at)``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

#: Constraint names fixed by convention, so migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """An aware UTC instant; stored naive-UTC (SQLite has no time zones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect
                           ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"UTCDateTime needs an aware datetime, got naive {value}")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect
                             ) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


# --------------------------------------------------------------------------- places, devices

class Site(Base):
    """A hospital or department running a node; devices belong to one."""

    __tablename__ = "site"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    institution: Mapped[str | None] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str | None] = mapped_column(String(64))  # IANA name, e.g. Asia/Shanghai
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Device(Base):
    """A scanner, identified by manufacturer + model + serial, normalised
    (:func:`scanbench.store.devices.identity_key`); station names and AE titles
    are its aliases. ``software_versions`` is the latest version seen in headers."""

    __tablename__ = "device"
    id: Mapped[int] = mapped_column(primary_key=True)
    identity_key: Mapped[str] = mapped_column(String(400), unique=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id"))
    manufacturer: Mapped[str | None] = mapped_column(String(200))
    model: Mapped[str | None] = mapped_column(String(200))
    serial: Mapped[str | None] = mapped_column(String(200))
    modality: Mapped[str | None] = mapped_column(String(16))
    display_name: Mapped[str | None] = mapped_column(String(200))
    software_versions: Mapped[str | None] = mapped_column(String(400))
    software_seen_at: Mapped[dt.datetime | None] = mapped_column(DateTime)  # header local time
    status: Mapped[str] = mapped_column(String(32), default="active")  # active / retired
    first_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    aliases: Mapped[list[DeviceAlias]] = relationship(back_populates="device",
                                                      cascade="all, delete-orphan")


class DeviceAlias(Base):
    """Another name a device is known by: its Station Name (0008,1010) or the AE title
    it sends from."""

    __tablename__ = "device_alias"
    __table_args__ = (UniqueConstraint("device_id", "kind", "value",
                                       name="uq_device_alias_device_kind_value"),
                      Index("ix_device_alias_kind_value", "kind", "value"))
    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("device.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))  # station_name / ae_title
    value: Mapped[str] = mapped_column(String(200))  # as written in the header
    first_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    device: Mapped[Device] = relationship(back_populates="aliases")


# --------------------------------------------------------------------------- DICOM hierarchy

class Study(Base):
    """A DICOM study as received. ``clinical_state`` drives the dose and workflow job:
    none (no clinical series) / pending (waiting to be quiet) / queued / done / failed."""

    __tablename__ = "study"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64), unique=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id"))
    patient_id: Mapped[str | None] = mapped_column(String(64))  # kept on site only
    accession_number: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(String(200))
    study_datetime: Mapped[dt.datetime | None] = mapped_column(DateTime)  # header local time
    first_received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    clinical_state: Mapped[str] = mapped_column(String(16), default="none", index=True)


class Series(Base):
    """A DICOM series as received. ``state``: receiving (instances still arriving) /
    queued (its job submitted) / done / failed; ``kind`` after classification:
    phantom (``analysis`` chosen) / clinical / dose_report / other."""

    __tablename__ = "series"
    __table_args__ = (Index("ix_series_state_last_received", "state", "last_received"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    series_uid: Mapped[str] = mapped_column(String(64), unique=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("device.id"), index=True)
    modality: Mapped[str | None] = mapped_column(String(16))
    sop_class_uid: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(String(200))
    series_number: Mapped[int | None] = mapped_column(Integer)
    acquired_at: Mapped[dt.datetime | None] = mapped_column(DateTime)  # header local time
    utc_offset_min: Mapped[int | None] = mapped_column(Integer)
    software_versions: Mapped[str | None] = mapped_column(String(400))
    first_received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_received: Mapped[float] = mapped_column(Float, default=0.0)  # epoch s, quiet time
    state: Mapped[str] = mapped_column(String(16), default="receiving")
    kind: Mapped[str | None] = mapped_column(String(16))
    analysis: Mapped[str | None] = mapped_column(String(120))

    study: Mapped[Study] = relationship()
    device: Mapped[Device | None] = relationship()


class Instance(Base):
    """One stored SOP instance: its file in the file store, keyed by SOP Instance UID."""

    __tablename__ = "instance"
    id: Mapped[int] = mapped_column(primary_key=True)
    sop_uid: Mapped[str] = mapped_column(String(64), unique=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    sop_class_uid: Mapped[str | None] = mapped_column(String(64))
    instance_number: Mapped[int | None] = mapped_column(Integer)
    transfer_syntax: Mapped[str | None] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(300))  # relative to the file store root
    size_bytes: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(200))  # c-store / dicomweb URL / file path
    calling_ae: Mapped[str | None] = mapped_column(String(16))
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# --------------------------------------------------------------------------- results

class Result(Base):
    """What one analysis found in one series (scanbench.types.Result, without figures)."""

    __tablename__ = "result"
    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int | None] = mapped_column(ForeignKey("series.id"), index=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("device.id"), index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id"))
    analysis: Mapped[str] = mapped_column(String(120))
    standard: Mapped[str] = mapped_column(String(300))
    series_uid: Mapped[str | None] = mapped_column(String(64))
    spec: Mapped[str | None] = mapped_column(String(120))
    acquired_at: Mapped[dt.datetime | None] = mapped_column(DateTime)  # header local time
    utc_offset_min: Mapped[int | None] = mapped_column(Integer)
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    warnings: Mapped[list[Any]] = mapped_column(default=list)
    source: Mapped[str | None] = mapped_column(Text)
    scanbench_version: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # The protocol version whose parameters the analysis was given (None: none applied).
    protocol_id: Mapped[int | None] = mapped_column(ForeignKey("protocol.id"))
    # A result is never rewritten: a re-analysis adds a row naming the one it replaces.
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("result.id"), index=True)

    measurements: Mapped[list[Measurement]] = relationship(
        back_populates="result", cascade="all, delete-orphan", order_by="Measurement.id")


class Measurement(Base):
    """One measured quantity of a result. ``device_id``, ``analysis`` and ``acquired_at``
    repeat the result's, so that a device's history of one measurement is one indexed
    query; ``labels_key`` is ``labels`` as canonical JSON, to select one repeat."""

    __tablename__ = "measurement"
    __table_args__ = (Index("ix_measurement_history", "device_id", "analysis", "name",
                            "acquired_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("result.id", ondelete="CASCADE"),
                                           index=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("device.id"))
    analysis: Mapped[str] = mapped_column(String(120))
    acquired_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    name: Mapped[str] = mapped_column(String(120))
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    labels_key: Mapped[str] = mapped_column(String(400), default="{}")
    value: Mapped[float | None] = mapped_column(Float)  # None: not finite
    unit: Mapped[str] = mapped_column(String(32))
    uncertainty: Mapped[float | None] = mapped_column(Float)
    limit_low: Mapped[float | None] = mapped_column(Float)
    limit_high: Mapped[float | None] = mapped_column(Float)
    limit_source: Mapped[str | None] = mapped_column(Text)
    limit_verified: Mapped[bool | None] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(24), default="info")  # types.STATUSES
    note: Mapped[str | None] = mapped_column(Text)  # why refused / not judged

    result: Mapped[Result] = relationship(back_populates="measurements")


class Protocol(Base):
    """The phantom fill and acquisition facts an automatic analysis needs (activity ratio,
    sphere concentration, calibration time, ...), for one device or a class of devices.

    Scope: ``device_id`` (one scanner), else ``manufacturer`` + ``model``, else
    ``manufacturer``, else ``site_id``, else ``modality``; none of them: every device.
    ``analysis`` (an analysis id or a dotted prefix such as ``pet``) limits it to those
    analyses. Rows are never rewritten: a change adds the next ``version`` of the same
    ``name``; removing adds a version with ``active`` false. The newest version of a
    name is the one in force; results keep the id of the version they used."""

    __tablename__ = "protocol"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_protocol_name_version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    version: Mapped[int] = mapped_column(Integer, default=1)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("device.id"))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id"))
    modality: Mapped[str | None] = mapped_column(String(16))
    manufacturer: Mapped[str | None] = mapped_column(String(200))
    model: Mapped[str | None] = mapped_column(String(200))
    analysis: Mapped[str | None] = mapped_column(String(120))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DoseEvent(Base):
    """One dose event of a clinical study (issue 4's dose output): a CT irradiation
    event (``kind`` ct) or an administered radiopharmaceutical (``kind``
    radiopharmaceutical); ``data`` is the extractor's JSON object as given."""

    __tablename__ = "dose_event"
    __table_args__ = (Index("ix_dose_event_device_time", "device_id", "occurred_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("device.id"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id"))
    kind: Mapped[str] = mapped_column(String(32))
    event_uid: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[dt.datetime | None] = mapped_column(DateTime)  # header local time
    protocol: Mapped[str | None] = mapped_column(String(200))
    ctdivol_mgy: Mapped[float | None] = mapped_column(Float)
    dlp_mgycm: Mapped[float | None] = mapped_column(Float)
    ssde_mgy: Mapped[float | None] = mapped_column(Float)
    administered_activity_mbq: Mapped[float | None] = mapped_column(Float)
    effective_dose_msv: Mapped[float | None] = mapped_column(Float)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ExamTiming(Base):
    """Workflow timings of one exam (issue 4's workflow output, ``data`` as given)."""

    __tablename__ = "exam_timing"
    __table_args__ = (Index("ix_exam_timing_device_start", "device_id", "started_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("device.id"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id"))
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime)  # header local time
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    duration_s: Mapped[float | None] = mapped_column(Float)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


LIFECYCLE_KINDS = ("installation", "acceptance", "service", "downtime", "software_change",
                   "decommission")


class LifecycleEvent(Base):
    """One event in a device's life (kinds in LIFECYCLE_KINDS). ``source`` headers: seen
    automatically in DICOM headers; user: entered by a person (``user_id``)."""

    __tablename__ = "lifecycle_event"
    __table_args__ = (Index("ix_lifecycle_event_device_time", "device_id", "occurred_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("device.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[dt.datetime | None] = mapped_column(DateTime)  # local clock time
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime)  # downtime end
    summary: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source: Mapped[str] = mapped_column(String(16), default="user")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# --------------------------------------------------------------------------- evaluation

class Spec(Base):
    """An evaluation specification as loaded (YAML text kept, so a scorecard can always be
    traced to the exact limits it used)."""

    __tablename__ = "spec"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_spec_name_version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    version: Mapped[str] = mapped_column(String(32), default="1")
    title: Mapped[str] = mapped_column(String(300), default="")
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    yaml: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Scorecard(Base):
    """A device scored against a spec over a period."""

    __tablename__ = "scorecard"
    __table_args__ = (Index("ix_scorecard_device_created", "device_id", "created_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("device.id"))
    spec_id: Mapped[int] = mapped_column(ForeignKey("spec.id"))
    period_start: Mapped[dt.datetime | None] = mapped_column(DateTime)
    period_end: Mapped[dt.datetime | None] = mapped_column(DateTime)
    score: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="info")  # pass / fail / info
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# --------------------------------------------------------------------------- people, audit

#: The roles a grant gives on one site (issue 12); "reviewer" comes with issue 14.
ROLES = ("admin", "physicist", "technologist", "viewer")


class User(Base):
    """A person who signs in to the web app (table ``user_account``: ``user`` is
    reserved in PostgreSQL). ``password_hash`` is an Argon2id PHC string (RFC 9106,
    argon2-cffi); what a user may see and do comes from their :class:`Grant` rows."""

    __tablename__ = "user_account"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(120), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    grants: Mapped[list[Grant]] = relationship(back_populates="user",
                                               cascade="all, delete-orphan")


class Grant(Base):
    """One user's role on one site (``role`` in :data:`ROLES`); at most one per pair."""

    __tablename__ = "site_grant"
    __table_args__ = (UniqueConstraint("user_id", "site_id", name="uq_site_grant_user_site"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(back_populates="grants")


class ApiToken(Base):
    """A token for programs: ``Authorization: Bearer <token>``. Only the SHA-256 of the
    token is stored (the token is 256 random bits, so a fast hash is enough: there is
    nothing to guess); ``prefix`` is its first characters, shown to tell tokens apart.
    It acts with ``role`` on ``site_ids`` only (never more than its user's grants)."""

    __tablename__ = "api_token"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"),
                                         index=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    site_ids: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column()
    last_used_at: Mapped[dt.datetime | None] = mapped_column()


class WebSession(Base):
    """A server-side login session. The cookie holds a random id; only its SHA-256 is
    stored, so a copy of the database cannot be used to ride a session. ``csrf_token``
    must accompany every state-changing request made with this session's cookie."""

    __tablename__ = "web_session"
    id: Mapped[int] = mapped_column(primary_key=True)
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"),
                                         index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    client: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class LoginFailure(Base):
    """A failed sign-in, kept for throttling per account and per address."""

    __tablename__ = "login_failure"
    __table_args__ = (Index("ix_login_failure_username_at", "username", "at"),
                      Index("ix_login_failure_address_at", "address", "at"))
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(120))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """Who did what to which record, when, with the values before and after
    (append-only). Entries form a hash chain: ``hash`` is the SHA-256 of the entry's
    canonical JSON, which includes ``prev_hash``, the previous entry's ``hash`` (64
    zeros for the first). ``prev_hash`` is unique, so two writers can never both extend
    the same entry: the chain cannot fork. See :mod:`scanbench.web.audit`."""

    __tablename__ = "audit_entry"
    __table_args__ = (Index("ix_audit_entry_entity", "entity", "entity_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    actor: Mapped[str] = mapped_column(String(200), default="")  # username / "cli:<user>"
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    site_id: Mapped[int | None] = mapped_column(Integer)  # no FK: the log outlives sites
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    client: Mapped[str | None] = mapped_column(String(200))  # address or AE title
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)


# --------------------------------------------------------------------------- jobs

class Job(Base):
    """One job of the pipeline: ``kind`` series (classify + analyse one series) or study
    (dose and workflow of a clinical study). ``state``: queued / running / done /
    failed; a failed job keeps its ``error`` and can be retried. ``owner`` names the
    process that submitted it, so that a restart marks only a dead process's jobs as
    interrupted, never those of a node still running beside it."""

    __tablename__ = "job"
    __table_args__ = (Index("ix_job_state", "state"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    target_uid: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    owner: Mapped[str | None] = mapped_column(String(200))  # host:pid:start of the process
    summary: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # A series job's inputs beyond target_uid: ``targets`` (every series it analyses,
    # target_uid first), ``wait`` (whether a series a multi-series analysis could claim
    # waits for its partners), ``protocols`` (analysis scope -> protocol version id).
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column()
    finished_at: Mapped[dt.datetime | None] = mapped_column()

"""The node's database: SQLAlchemy 2 typed models of DESIGN.md's entities.

One table per entity (Site, Device + DeviceAlias, Study, Series, Instance,
Result, Measurement, Protocol, DoseEvent, ExamTiming, LifecycleEvent, TelemetrySample,
DeviceCost, Spec, SpecAssignment, Scorecard, Alert, DeviceState, FactVersion, StatsCache,
NotificationTarget, Notification, User, Grant, ApiToken, WebSession, LoginFailure,
AuditEntry) plus Job, the record of each analysis or dose job.
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
    Date,
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
        dt.datetime: UTCDateTime, dt.date: Date, dict[str, Any]: JSON, list[Any]: JSON}


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
    # Class attributes an evaluation spec is assigned by and a programme groups by
    # (entered, or read from headers: Magnetic Field Strength (0018,0087)).
    field_strength_t: Mapped[float | None] = mapped_column(Float)
    axial_fov_cm: Mapped[float | None] = mapped_column(Float)  # PET axial field of view
    country_of_manufacture: Mapped[str | None] = mapped_column(String(64))
    # Staffed hours for uptime (evaluation.reliability.StaffedHours): {} = around the
    # clock; {"weekdays": [0..6], "start": "08:00", "end": "18:00", "timezone": "..."}.
    staffed_hours: Mapped[dict[str, Any]] = mapped_column(default=dict)

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
    # the newest result per (device, analysis) for the fleet page: one seek per pair
    __table_args__ = (Index("ix_result_device_analysis_acquired", "device_id", "analysis",
                            "acquired_at"),)
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
    # ix_measurement_series: one labelled series of a device in time order (control
    # charts, alerts) and the device page's list of its series, from the index alone.
    __table_args__ = (Index("ix_measurement_history", "device_id", "analysis", "name",
                            "acquired_at"),
                      Index("ix_measurement_series", "device_id", "analysis", "name",
                            "labels_key", "acquired_at"))
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
    # (kind, occurred_at): dose statistics over a period for all visible devices
    __table_args__ = (Index("ix_dose_event_device_time", "device_id", "occurred_at"),
                      Index("ix_dose_event_kind_time", "kind", "occurred_at"))
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
    # (started_at): workflow statistics over a period for all visible devices
    __table_args__ = (Index("ix_exam_timing_device_start", "device_id", "started_at"),
                      Index("ix_exam_timing_time", "started_at"))
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("device.id"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id"))
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime)  # header local time
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    duration_s: Mapped[float | None] = mapped_column(Float)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


#: The kinds of lifecycle event (the same as scanbench.evaluation.reliability.EVENT_KINDS,
#: checked by a test). Downtime is a pair: ``downtime_start`` (``planned`` true for
#: maintenance) and ``downtime_end``.
LIFECYCLE_KINDS = ("installation", "acceptance", "commissioning", "planned_service",
                   "unplanned_service", "downtime_start", "downtime_end", "part_replacement",
                   "software_change", "relocation", "decommissioning")


class LifecycleEvent(Base):
    """One event in a device's life (kinds in LIFECYCLE_KINDS). ``source`` headers: seen
    automatically in DICOM headers; user: entered by a person (``user_id``); csv: imported
    (``external_id`` is the file's id column, so importing the same file twice adds
    nothing); api: sent by a program. ``new_baseline``: the user marked this service or
    upgrade as the start of a new baseline for trend alerts. ``cost`` in ``currency``
    (ISO 4217) is what the event cost, when entered."""

    __tablename__ = "lifecycle_event"
    __table_args__ = (Index("ix_lifecycle_event_device_time", "device_id", "occurred_at"),
                      UniqueConstraint("device_id", "external_id",
                                       name="uq_lifecycle_event_device_external"))
    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("device.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[dt.datetime | None] = mapped_column(DateTime)  # local clock time
    summary: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source: Mapped[str] = mapped_column(String(16), default="user")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    planned: Mapped[bool] = mapped_column(Boolean, default=False)
    new_baseline: Mapped[bool] = mapped_column(Boolean, default=False)
    cost: Mapped[float | None] = mapped_column(Float)
    currency: Mapped[str | None] = mapped_column(String(3))
    external_id: Mapped[str | None] = mapped_column(String(120))


class TelemetrySample(Base):
    """One reading of one channel of a device (MRI magnet telemetry: helium level %,
    pressure kPa, cold-head temperature K, field drift ppm/h; channel names as in
    scanbench.evaluation.telemetry.CHANNELS). ``at`` is the device's local clock time."""

    __tablename__ = "telemetry_sample"
    __table_args__ = (UniqueConstraint("device_id", "channel", "at",
                                       name="uq_telemetry_sample_device_channel_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("device.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(DateTime)
    value: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(200), default="")


class DeviceCost(Base):
    """An entered cost of a device (scanbench.evaluation.economics.Cost): ``kind``
    acquisition (with ``life_years``, ``residual``), service_contract (``amount`` per
    year from ``start_on`` to ``end_on``), consumable, cryogen, part or other (one-off on
    ``start_on``). ``amount`` in ``currency`` (ISO 4217)."""

    __tablename__ = "device_cost"
    __table_args__ = (Index("ix_device_cost_device_start", "device_id", "start_on"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("device.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    amount: Mapped[float] = mapped_column(Float)
    currency: Mapped[str] = mapped_column(String(3))
    start_on: Mapped[dt.date] = mapped_column(Date)
    end_on: Mapped[dt.date | None] = mapped_column(Date)
    life_years: Mapped[float | None] = mapped_column(Float)
    residual: Mapped[float] = mapped_column(Float, default=0.0)
    note: Mapped[str] = mapped_column(Text, default="")
    lifecycle_event_id: Mapped[int | None] = mapped_column(
        ForeignKey("lifecycle_event.id", ondelete="SET NULL"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# --------------------------------------------------------------------------- evaluation

class Spec(Base):
    """An evaluation specification as loaded (YAML text kept, so a scorecard can always be
    traced to the exact limits it used). A (name, version) pair is written once; loading
    a changed text under the same version is refused (``sha256`` tells them apart).
    ``extends``: the name of the spec it inherits from; ``origin``: builtin, a file
    path, or upload."""

    __tablename__ = "spec"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_spec_name_version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    version: Mapped[str] = mapped_column(String(300), default="1")
    title: Mapped[str] = mapped_column(String(300), default="")
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    yaml: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sha256: Mapped[str | None] = mapped_column(String(64))
    extends: Mapped[str | None] = mapped_column(String(120))
    origin: Mapped[str] = mapped_column(String(300), default="")


class SpecAssignment(Base):
    """A spec (by ``spec_name``: the newest stored version is in force) assigned to a
    class of devices. Every criterion given must hold: ``device_id`` (one device),
    ``site_id``, ``modality``, ``manufacturer`` and ``model`` (case-insensitive),
    field strength in [``field_strength_min_t``, ``field_strength_max_t``] and PET
    axial FOV in [``axial_fov_min_cm``, ``axial_fov_max_cm``]. When several match a
    device, the most specific wins (device, then model, then the rest; ties: highest
    ``priority``, then newest). ``active`` false ends an assignment (rows are never
    deleted, so the spec a past period was judged by stays known)."""

    __tablename__ = "spec_assignment"
    id: Mapped[int] = mapped_column(primary_key=True)
    spec_name: Mapped[str] = mapped_column(String(120), index=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("device.id", ondelete="CASCADE"))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"))
    modality: Mapped[str | None] = mapped_column(String(16))
    manufacturer: Mapped[str | None] = mapped_column(String(200))
    model: Mapped[str | None] = mapped_column(String(200))
    field_strength_min_t: Mapped[float | None] = mapped_column(Float)
    field_strength_max_t: Mapped[float | None] = mapped_column(Float)
    axial_fov_min_cm: Mapped[float | None] = mapped_column(Float)
    axial_fov_max_cm: Mapped[float | None] = mapped_column(Float)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    valid_from: Mapped[dt.datetime] = mapped_column(default=utcnow)
    valid_until: Mapped[dt.datetime | None] = mapped_column()
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Scorecard(Base):
    """A device scored against one spec version over a period. Never rewritten: a new
    computation with different inputs adds a row (``inputs_hash`` is the SHA-256 of what
    it was computed from, so recomputing unchanged inputs adds nothing). ``data``:
    each required test (passed / failed / overdue / not_applicable, with the reason and
    the result ids that are its evidence), each dimension's score and evidence, and the
    compliance figures."""

    __tablename__ = "scorecard"
    __table_args__ = (Index("ix_scorecard_device_created", "device_id", "created_at"),
                      UniqueConstraint("device_id", "spec_id", "inputs_hash",
                                       name="uq_scorecard_device_spec_inputs"))
    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("device.id"))
    spec_id: Mapped[int] = mapped_column(ForeignKey("spec.id"))
    period_start: Mapped[dt.datetime | None] = mapped_column(DateTime)
    period_end: Mapped[dt.datetime | None] = mapped_column(DateTime)
    score: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(24), default="info")  # pass / fail / info
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    compliance: Mapped[float | None] = mapped_column(Float)  # share done on time, 0..1
    inputs_hash: Mapped[str | None] = mapped_column(String(64))


class Alert(Base):
    """One alert on one measurement series of a device: a limit broken (``rule``
    ``limit``: level ``action`` or ``tolerance``) or a trend rule of
    scanbench.evaluation.trend (1-3s, 2-2s, R-4s, 4-1s, 10x, cusum, ewma; level
    ``trend``). ``key`` is stable (device, measurement, labels, rule, baseline segment,
    first point), so re-running a job or viewing a page never adds a second row.
    ``state``: open -> acknowledged (by a user, with a comment) -> closed (a later
    passing result or a new baseline closed it: ``closed_reason``)."""

    __tablename__ = "alert"
    __table_args__ = (Index("ix_alert_device_state", "device_id", "state"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(400), unique=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("device.id", ondelete="CASCADE"))
    analysis: Mapped[str] = mapped_column(String(120))
    name: Mapped[str] = mapped_column(String(120))
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    labels_key: Mapped[str] = mapped_column(String(400), default="{}")
    rule: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16))  # action / tolerance / trend
    direction: Mapped[str | None] = mapped_column(String(8))  # high / low
    result_id: Mapped[int | None] = mapped_column(ForeignKey("result.id", ondelete="SET NULL"))
    occurred_at: Mapped[dt.datetime | None] = mapped_column(DateTime)  # header local time
    first_at: Mapped[dt.datetime | None] = mapped_column(DateTime)  # run start (trend)
    value: Mapped[float | None] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(32), default="")
    statistic: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    limit_source: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), default="open")
    opened_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ack_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    ack_at: Mapped[dt.datetime | None] = mapped_column()
    ack_comment: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[dt.datetime | None] = mapped_column()
    closed_reason: Mapped[str | None] = mapped_column(Text)
    closing_result_id: Mapped[int | None] = mapped_column(
        ForeignKey("result.id", ondelete="SET NULL"))


class DeviceState(Base):
    """The fleet page's facts of one device, stored so that the page reads one row per
    device instead of scanning results, alerts and scorecards on every request
    (bench/README.md, web section). Kept by :mod:`scanbench.store.fleet_state` in the
    same transaction that stores a result, measurement, alert, scorecard or device
    (``scanbench db rebuild-state`` recomputes every row). ``state``/``rank``: failing,
    drifting, overdue, ok, no results (the fleet page's order); ``tests``: the newest
    result of each analysis ({analysis, result_id, acquired_at (ISO, scanner's clock),
    status}); ``overdue``/``due``: the required tests so marked in the newest stored
    scorecard, as of ``overdue_as_of`` (that scorecard's creation)."""

    __tablename__ = "device_state"
    device_id: Mapped[int] = mapped_column(ForeignKey("device.id", ondelete="CASCADE"),
                                           primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    rank: Mapped[int] = mapped_column(Integer, index=True)
    failing_tests: Mapped[int] = mapped_column(Integer, default=0)
    alerts_failing: Mapped[int] = mapped_column(Integer, default=0)
    alerts_drifting: Mapped[int] = mapped_column(Integer, default=0)
    overdue_count: Mapped[int] = mapped_column(Integer, default=0)
    latest_at: Mapped[dt.datetime | None] = mapped_column(DateTime)  # header local time
    tests: Mapped[list[Any]] = mapped_column(default=list)
    alert_messages: Mapped[list[Any]] = mapped_column(default=list)
    overdue: Mapped[list[Any]] = mapped_column(default=list)
    due: Mapped[list[Any]] = mapped_column(default=list)
    overdue_as_of: Mapped[dt.datetime | None] = mapped_column()
    search: Mapped[str] = mapped_column(Text, default="")  # the tests' analysis ids
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class FactVersion(Base):
    """A counter per kind of fact (``dose``: dose events), raised in the transaction
    that adds, changes or deletes such a fact (:mod:`scanbench.store.fleet_state`), so a
    stored statistic computed at an older version is known to be stale."""

    __tablename__ = "fact_version"
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)


class StatsCache(Base):
    """A statistic computed over many facts (the dose statistics of one request), kept
    with the version of its facts it was computed at: served again only while that
    version is current, so it always equals a fresh computation. ``key``: SHA-256 of the
    kind, the request's parameters, the scanbench version and the devices the caller may
    see (:func:`scanbench.store.fleet_state.cached`)."""

    __tablename__ = "stats_cache"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)  # the response as sent (JSON text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class NotificationTarget(Base):
    """Where alerts of a site (``site_id`` None: every site) are sent: ``channel`` email
    (``address`` an e-mail address) or webhook (``address`` an https/http URL, signed
    with ``secret`` as HMAC-SHA256; the secret must be kept to sign, so it is stored).
    ``digest``: one message a day instead of one per alert."""

    __tablename__ = "notification_target"
    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(500))
    secret: Mapped[str | None] = mapped_column(String(200))
    digest: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Notification(Base):
    """One delivery (an alert or a day's digest to one target). ``key`` is unique, so an
    alert is sent once per target however often the job runs; a failed delivery keeps
    its ``error`` and is tried again (``attempts``)."""

    __tablename__ = "notification"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(500), unique=True)
    target_id: Mapped[int | None] = mapped_column(
        ForeignKey("notification_target.id", ondelete="SET NULL"))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alert.id", ondelete="SET NULL"))
    digest_day: Mapped[dt.date | None] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending/sent/failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column()


# --------------------------------------------------------------------------- people, audit

#: The roles a grant gives on one site (issue 12); "reviewer" (issue 14): reads the site's
#: records as a viewer does and decides expert reviews of its results (not a rank above
#: technologist: see :func:`scanbench.web.auth.satisfies`).
ROLES = ("admin", "physicist", "technologist", "viewer", "reviewer")


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


# --------------------------------------------------------------------------- programme

class FedCredential(Base):
    """Central node: the credential one site node sends with (``Authorization: Bearer``);
    only its SHA-256 is kept, as for :class:`ApiToken`. A batch is accepted only for
    the site its credential belongs to; a revoked credential sends nothing."""

    __tablename__ = "fed_credential"
    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column()
    last_used_at: Mapped[dt.datetime | None] = mapped_column()


class FedPeer(Base):
    """Site node: the central node it sends to (the credential comes from the node's
    configuration, never stored in clear). ``last_acked_seq``: the highest outbox
    ``id`` the central node confirmed, so sending resumes after it."""

    __tablename__ = "fed_peer"
    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(500), unique=True)
    site_uid: Mapped[str] = mapped_column(String(120))  # this site's name at the centre
    last_acked_seq: Mapped[int] = mapped_column(Integer, default=0)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class FedOutbox(Base):
    """Site node: one de-identified record queued for the central node, in order
    (``id`` is the sequence number). ``record_key`` identifies the record at its source
    (e.g. ``result:<uuid>``), so a record queued twice is queued once and the centre
    stores it once."""

    __tablename__ = "fed_outbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    record_key: Mapped[str] = mapped_column(String(200), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    batch_uid: Mapped[str | None] = mapped_column(String(64))
    sent_at: Mapped[dt.datetime | None] = mapped_column(index=True)


class FedBatch(Base):
    """Central node: one batch a site sent, accepted or refused (``reason`` goes back
    to the site). ``batch_uid`` is the site's id of the batch, so a replay is known."""

    __tablename__ = "fed_batch"
    __table_args__ = (UniqueConstraint("site_id", "batch_uid", name="uq_fed_batch_site_uid"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"))
    credential_id: Mapped[int | None] = mapped_column(
        ForeignKey("fed_credential.id", ondelete="SET NULL"))
    batch_uid: Mapped[str] = mapped_column(String(64))
    first_seq: Mapped[int | None] = mapped_column(Integer)
    last_seq: Mapped[int | None] = mapped_column(Integer)
    n_records: Mapped[int] = mapped_column(Integer, default=0)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # accepted / refused
    reason: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class FedRecord(Base):
    """Central node: one record received from a site (stored once per site and
    ``record_key``), and the id of the row it became in the central tables
    (``local_table``/``local_id``: e.g. the central ``result`` row)."""

    __tablename__ = "fed_record"
    __table_args__ = (UniqueConstraint("site_id", "record_key", name="uq_fed_record_site_key"),
                      Index("ix_fed_record_site_seq", "site_id", "seq"))
    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("fed_batch.id", ondelete="SET NULL"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    record_key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    local_table: Mapped[str | None] = mapped_column(String(64))
    local_id: Mapped[int | None] = mapped_column(Integer)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Review(Base):
    """Central node: an expert's review of one result (from a site): queued with its
    automatic ``triage_score`` (higher = more unusual) and the measurements that drove
    it, then accepted or rejected with a reason and a comment, which flow back to the
    site (``sent_back_at``)."""

    __tablename__ = "review"
    __table_args__ = (Index("ix_review_state_score", "state", "triage_score"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("result.id", ondelete="CASCADE"),
                                           unique=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16), default="queued")  # queued/accepted/rejected
    triage_score: Mapped[float | None] = mapped_column(Float)
    triage_drivers: Mapped[list[Any]] = mapped_column(default=list)
    triage_model: Mapped[str | None] = mapped_column(String(200))
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    decided_at: Mapped[dt.datetime | None] = mapped_column()
    reason: Mapped[str | None] = mapped_column(Text)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_back_at: Mapped[dt.datetime | None] = mapped_column()


class ReviewDecision(Base):
    """Site node: a central reviewer's decision on one of this site's results, as
    received (``remote_key`` unique: a decision received twice is stored once). A
    rejection reopens the test on the site's due list."""

    __tablename__ = "review_decision"
    id: Mapped[int] = mapped_column(primary_key=True)
    remote_key: Mapped[str] = mapped_column(String(200), unique=True)
    result_id: Mapped[int | None] = mapped_column(ForeignKey("result.id", ondelete="CASCADE"),
                                                  index=True)
    decision: Mapped[str] = mapped_column(String(16))  # accepted / rejected
    reason: Mapped[str | None] = mapped_column(Text)
    comment: Mapped[str | None] = mapped_column(Text)
    reviewer: Mapped[str] = mapped_column(String(200), default="")
    decided_at: Mapped[dt.datetime | None] = mapped_column()
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ReaderStudy(Base):
    """A reader study: cases scored by readers on each criterion on a scale
    (``scale_min``..``scale_max``, 5-point by default); ``blinded``: device and site
    hidden from readers; each reader reads in their own random order."""

    __tablename__ = "reader_study"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    title: Mapped[str] = mapped_column(String(300), default="")
    criteria: Mapped[list[Any]] = mapped_column(default=list)
    scale_min: Mapped[int] = mapped_column(Integer, default=1)
    scale_max: Mapped[int] = mapped_column(Integer, default=5)
    blinded: Mapped[bool] = mapped_column(Boolean, default=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(16), default="open")  # open / closed
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ReaderCase(Base):
    """One case of a reader study: a de-identified series, shown by ``label`` only."""

    __tablename__ = "reader_case"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("reader_study.id", ondelete="CASCADE"),
                                          index=True)
    label: Mapped[str] = mapped_column(String(120))
    series_id: Mapped[int | None] = mapped_column(ForeignKey("series.id", ondelete="SET NULL"))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("device.id", ondelete="SET NULL"))
    pair_key: Mapped[str | None] = mapped_column(String(120))  # same patient on two models
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ReaderAssignment(Base):
    """A reader of a study and their randomised reading order (case ids; ``seed`` kept)."""

    __tablename__ = "reader_assignment"
    __table_args__ = (UniqueConstraint("study_id", "user_id",
                                       name="uq_reader_assignment_study_user"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("reader_study.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    case_order: Mapped[list[Any]] = mapped_column(default=list)
    seed: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ReaderScore(Base):
    """One reader's score of one case on one criterion."""

    __tablename__ = "reader_score"
    __table_args__ = (UniqueConstraint("case_id", "user_id", "criterion",
                                       name="uq_reader_score_case_user_criterion"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("reader_study.id", ondelete="CASCADE"),
                                          index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("reader_case.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    criterion: Mapped[str] = mapped_column(String(120))
    score: Mapped[int] = mapped_column(Integer)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SusResponse(Base):
    """One System Usability Scale questionnaire (Brooke 1996) about one device: the ten
    answers (1..5) and the 0..100 score computed by the standard method."""

    __tablename__ = "sus_response"
    __table_args__ = (Index("ix_sus_response_device_at", "device_id", "at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("device.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    role: Mapped[str] = mapped_column(String(32))
    answers: Mapped[list[Any]] = mapped_column(default=list)
    score: Mapped[float] = mapped_column(Float)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TrainingRecord(Base):
    """A person's training: ``topic`` device_operation / qc_procedure /
    radiation_safety, optionally for one device or QC procedure; it expires on
    ``expires_on`` (reminders before)."""

    __tablename__ = "training_record"
    __table_args__ = (Index("ix_training_record_user_topic", "user_id", "topic"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id", ondelete="SET NULL"))
    topic: Mapped[str] = mapped_column(String(32))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("device.id", ondelete="SET NULL"))
    procedure_key: Mapped[str | None] = mapped_column(String(120))
    completed_on: Mapped[dt.date] = mapped_column(Date)
    expires_on: Mapped[dt.date | None] = mapped_column(Date)
    provider: Mapped[str] = mapped_column(String(200), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class QuizAttempt(Base):
    """One attempt at the competency quiz of a QC procedure: the share of correct
    answers, the pass mark it was judged by and the answers given."""

    __tablename__ = "quiz_attempt"
    __table_args__ = (Index("ix_quiz_attempt_user_procedure", "user_id", "procedure_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    procedure_key: Mapped[str] = mapped_column(String(120))
    score: Mapped[float] = mapped_column(Float)  # 0..1
    pass_mark: Mapped[float] = mapped_column(Float)
    passed: Mapped[bool] = mapped_column(Boolean)
    answers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


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

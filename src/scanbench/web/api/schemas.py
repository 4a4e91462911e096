"""The API's wire format (pydantic models). DICOM text (descriptions, station names,
AE titles) is carried as JSON strings, as data: escaping is the page's job."""

from __future__ import annotations

import datetime as dt
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Wire(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    """One page of a list: ``total`` rows match, ``items`` from ``offset``."""

    total: int
    limit: int
    offset: int
    items: list[T]


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=120)
    password: str = Field(min_length=1, max_length=1024)


class Me(BaseModel):
    username: str
    via: str
    grants: dict[int, str]
    csrf_token: str | None = None


class SiteOut(Wire):
    id: int
    name: str
    institution: str | None
    timezone: str | None


class AliasOut(Wire):
    kind: str
    value: str
    first_seen_at: dt.datetime


class SoftwareOut(BaseModel):
    software_versions: str
    first_acquired_at: dt.datetime | None
    last_acquired_at: dt.datetime | None
    series: int


class DeviceOut(Wire):
    id: int
    site_id: int | None
    manufacturer: str | None
    model: str | None
    serial: str | None
    modality: str | None
    display_name: str | None
    software_versions: str | None
    status: str
    first_seen_at: dt.datetime
    last_seen_at: dt.datetime


class DeviceDetail(DeviceOut):
    aliases: list[AliasOut]
    software_history: list[SoftwareOut]


class SeriesOut(Wire):
    id: int
    series_uid: str
    device_id: int | None
    modality: str | None
    description: str | None
    series_number: int | None
    acquired_at: dt.datetime | None
    utc_offset_min: int | None
    state: str
    kind: str | None
    analysis: str | None


class MeasurementOut(Wire):
    id: int
    name: str
    labels: dict[str, Any]
    value: float | None
    unit: str
    uncertainty: float | None
    limit_low: float | None
    limit_high: float | None
    limit_source: str | None
    limit_verified: bool | None
    status: str
    note: str | None


class ResultOut(Wire):
    id: int
    series_id: int | None
    device_id: int | None
    analysis: str
    standard: str
    series_uid: str | None
    spec: str | None
    acquired_at: dt.datetime | None
    created_at: dt.datetime
    supersedes_id: int | None
    scanbench_version: str


class ResultDetail(ResultOut):
    parameters: dict[str, Any]
    warnings: list[Any]
    measurements: list[MeasurementOut]


class PointOut(BaseModel):
    acquired_at: dt.datetime | None
    value: float | None
    uncertainty: float | None
    status: str
    labels: dict[str, Any]
    result_id: int
    series_uid: str | None
    note: str | None


class HistoryOut(BaseModel):
    device_id: int
    analysis: str
    name: str
    unit: str | None
    total: int
    downsampled: bool
    method: str
    points: list[PointOut]


class JobOut(Wire):
    id: int
    kind: str
    target_uid: str
    state: str
    summary: str
    error: str | None
    attempts: int
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class GrantOut(Wire):
    site_id: int
    role: str


class UserOut(Wire):
    id: int
    username: str
    display_name: str
    email: str | None
    active: bool
    grants: list[GrantOut]


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=120)
    password: str = Field(min_length=1, max_length=1024)
    display_name: str = Field(default="", max_length=200)
    email: str | None = Field(default=None, max_length=200)
    site_id: int
    role: str


class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site_id: int
    role: str


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="", max_length=120)
    role: str
    site_ids: list[int] = Field(min_length=1, max_length=1000)
    expires_at: dt.datetime | None = None


class TokenOut(Wire):
    id: int
    name: str
    prefix: str
    role: str
    site_ids: list[int]
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None


class TokenCreated(TokenOut):
    token: str


class AuditOut(Wire):
    id: int
    at: dt.datetime
    user_id: int | None
    actor: str
    action: str
    entity: str
    entity_id: str | None
    site_id: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    details: dict[str, Any]
    client: str | None
    prev_hash: str
    hash: str


class ErrorOut(BaseModel):
    error: str
    detail: Any = None

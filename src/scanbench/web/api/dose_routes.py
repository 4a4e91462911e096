"""``/api/v1`` endpoints of patient dose, workflow and site comparison: studies, dose
events, dose statistics against reference levels, workflow statistics, and one
measurement across devices and sites. Every read goes through the caller's
:class:`~scanbench.web.scope.Scope` (a device or site filter of another site is a 404,
like one that does not exist); the statistics are computed by
:mod:`scanbench.clinical.dose_stats` in the database."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute

from scanbench.clinical import dose_stats as ds
from scanbench.clinical import federated
from scanbench.clinical import reference_levels as rl
from scanbench.errors import InputError
from scanbench.store import fleet_state
from scanbench.store import models as m
from scanbench.store.repo import labels_key
from scanbench.web.api import schemas as w
from scanbench.web.api.app import PREFIX, Ctx, context, route
from scanbench.web.api.routes import (
    DEFAULT_LIMIT,
    Limit,
    Offset,
    Since,
    Sort,
    Until,
    _page,
    _sorted,
)

router = APIRouter(prefix=PREFIX)
C = Annotated[Ctx, Depends(context)]
Modality = Annotated[str | None, Query(max_length=16)]
Protocol = Annotated[str | None, Query(max_length=200, description="exact protocol text")]


# --------------------------------------------------------------------------- wire format

class StudyOut(w.Wire):
    """A study; the patient id stays on the site's node and is never sent."""

    id: int
    study_uid: str
    site_id: int | None
    accession_number: str | None
    description: str | None
    study_datetime: dt.datetime | None
    clinical_state: str


class DoseEventOut(w.Wire):
    id: int
    study_id: int
    device_id: int | None
    kind: str
    event_uid: str | None
    occurred_at: dt.datetime | None
    protocol: str | None
    ctdivol_mgy: float | None
    dlp_mgycm: float | None
    ssde_mgy: float | None
    administered_activity_mbq: float | None
    effective_dose_msv: float | None


class ExamTimingOut(w.Wire):
    id: int
    study_id: int
    device_id: int | None
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    duration_s: float | None
    data: dict[str, Any]


class StudyDetail(StudyOut):
    dose_events: list[DoseEventOut]
    exam_timings: list[ExamTimingOut]


class DistributionOut(BaseModel):
    n: int
    min: float
    q1: float
    median: float
    q3: float
    p75: float
    max: float
    mean: float
    p95: float | None
    iqr: float
    upper_fence: float | None


class ReferenceOut(BaseModel):
    table: str
    title: str
    source: str
    exam: str
    drl: float
    achievable: float | None
    ratio_median: float
    ratio_p75: float
    above: bool
    outcome: str
    note: str | None


class DoseGroupOut(DistributionOut):
    device_id: int | None
    protocol: str | None
    region: str | None
    reference: ReferenceOut | None
    #: whose values: centre, federated sites, or both (scanbench.clinical.federated)
    source: str = "centre"
    federated_days: int = 0


class OutlierOut(BaseModel):
    dose_event_id: int
    study_id: int
    study_uid: str
    device_id: int | None
    protocol: str | None
    occurred_at: str | None
    value: float
    upper_fence: float


class TableOut(BaseModel):
    name: str
    title: str
    source: str


class PeriodOut(BaseModel):
    date_from: dt.date | None
    date_to: dt.date | None  # exclusive
    default: bool
    note: str


class DoseStatsOut(BaseModel):
    quantity: str
    label: str
    unit: str
    per: str
    method: str | None
    group_by: str
    percentile_method: str
    outlier_rule: str
    reference_rule: str | None
    reference_table: TableOut | None
    groups: list[DoseGroupOut]
    outliers: list[OutlierOut]
    outliers_total: int | None
    notes: list[str]
    period: PeriodOut


class DeviceDistributionOut(DistributionOut):
    device_id: int
    unit: str


class UptakeOut(DeviceDistributionOut):
    in_window: int


class DayUseOut(BaseModel):
    device_id: int
    day: dt.date
    exams: int
    exam_hours: float
    available_hours: float
    basis: str
    utilisation_percent: float | None


class BinOut(BaseModel):
    from_min: float
    count: int


class WorkflowStatsOut(BaseModel):
    percentile_method: str
    durations: list[DeviceDistributionOut]
    uptake: list[UptakeOut]
    utilisation: list[DayUseOut]
    utilisation_rule: str
    duration_histogram: list[BinOut]
    uptake_histogram: list[BinOut]
    notes: list[str] = []
    #: devices whose days came from their site (scanbench.clinical.federated)
    federated_devices: list[int] = []


class LatestOut(BaseModel):
    value: float | None
    acquired_at: str | None
    status: str | None
    result_id: int | None


class DeviceValueOut(BaseModel):
    device_id: int
    site_id: int | None
    latest: LatestOut
    distribution: DistributionOut | None


class CompareOut(BaseModel):
    analysis: str
    name: str
    labels: dict[str, Any] | None
    unit: str | None
    percentile_method: str
    devices: list[DeviceValueOut]


class MeasurementKindOut(BaseModel):
    analysis: str
    name: str
    unit: str
    devices: int


# --------------------------------------------------------------------------- helpers

def filters(ctx: Ctx, *, site_id: int | None = None, device_id: int | None = None,
            modality: str | None = None, protocol: str | None = None,
            date_from: dt.date | None = None, date_to: dt.date | None = None) -> ds.Filters:
    """The caller's filters within their visible devices; a site or device they cannot
    see is a 404, never an empty answer that would tell it exists."""
    if site_id is not None:
        ctx.scope.site(site_id)
    if device_id is not None:
        ctx.scope.device(device_id)
    return ds.Filters(devices=ctx.scope.device_ids(), site_id=site_id, device_id=device_id,
                      modality=modality, protocol=protocol, date_from=date_from,
                      date_to=date_to)


def accepts_gzip(header: str) -> bool:
    """Whether an ``Accept-Encoding`` header accepts gzip (RFC 9110 section 12.5.3:
    ``gzip`` or ``*`` with a q-value above 0)."""
    for part in header.split(","):
        name, _, params = part.partition(";")
        if name.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        q = params.strip().lower()
        try:
            return not q.startswith("q=") or float(q[2:]) > 0
        except ValueError:
            return False
    return False


def _labels(text: str | None) -> tuple[dict[str, Any] | None, str | None]:
    if text is None:
        return None, None
    try:
        wanted = json.loads(text)
    except json.JSONDecodeError:
        wanted = None
    if not isinstance(wanted, dict):
        raise InputError("labels must be a JSON object, e.g. {\"sphere_mm\": 37}")
    return wanted, labels_key(wanted)


# --------------------------------------------------------------------------- studies

_STUDY_SORT: dict[str, InstrumentedAttribute[Any]] = {
    "id": m.Study.id, "study_datetime": m.Study.study_datetime,
    "first_received_at": m.Study.first_received_at}


@route(router, "GET", "/studies", "viewer", response_model=w.Page[StudyOut])
def studies(ctx: C, site_id: int | None = None, device_id: int | None = None,
            date_from: Since = None, date_to: Until = None, limit: Limit = DEFAULT_LIMIT,
            offset: Offset = 0, sort: Sort = None) -> dict[str, Any]:
    """Studies of your sites' devices (by study date, scanner's clock)."""
    ds.Filters(date_from=date_from, date_to=date_to)  # checks the range
    f = filters(ctx, site_id=site_id, device_id=device_id)
    q = ctx.scope.studies()
    if device_id is not None or site_id is not None:
        q = q.where(m.Study.id.in_(select(m.Series.study_id).where(
            *f.conditions(m.Series.device_id, m.Series.acquired_at)).union(
            select(m.DoseEvent.study_id).where(
                *f.conditions(m.DoseEvent.device_id, m.DoseEvent.occurred_at)))))
    if date_from is not None:
        q = q.where(m.Study.study_datetime >= dt.datetime.combine(date_from, dt.time()))
    if date_to is not None:
        q = q.where(m.Study.study_datetime < dt.datetime.combine(date_to, dt.time()))
    return _page(ctx, _sorted(q, sort, _STUDY_SORT, "-id"), StudyOut, limit, offset)


@route(router, "GET", "/studies/{study_id}", "viewer", response_model=StudyDetail)
def study(study_id: int, ctx: C) -> StudyDetail:
    """One study with its dose events and exam timings (those of visible devices)."""
    st = ctx.scope.study(study_id)
    events = ctx.session.scalars(ctx.scope.dose_events().where(
        m.DoseEvent.study_id == st.id).order_by(m.DoseEvent.id))
    timings = ctx.session.scalars(ctx.scope.exam_timings().where(
        m.ExamTiming.study_id == st.id).order_by(m.ExamTiming.id))
    return StudyDetail(**StudyOut.model_validate(st).model_dump(),
                       dose_events=[DoseEventOut.model_validate(e) for e in events],
                       exam_timings=[ExamTimingOut.model_validate(t) for t in timings])


# --------------------------------------------------------------------------- dose

_EVENT_SORT: dict[str, InstrumentedAttribute[Any]] = {
    "id": m.DoseEvent.id, "occurred_at": m.DoseEvent.occurred_at,
    "protocol": m.DoseEvent.protocol, "ctdivol_mgy": m.DoseEvent.ctdivol_mgy,
    "dlp_mgycm": m.DoseEvent.dlp_mgycm, "ssde_mgy": m.DoseEvent.ssde_mgy,
    "administered_activity_mbq": m.DoseEvent.administered_activity_mbq,
    "effective_dose_msv": m.DoseEvent.effective_dose_msv}
KINDS = ("study", "ct", "radiopharmaceutical")


@route(router, "GET", "/dose/events", "viewer", response_model=w.Page[DoseEventOut])
def dose_events(ctx: C, site_id: int | None = None, device_id: int | None = None,
                modality: Modality = None, protocol: Protocol = None,
                kind: Annotated[str | None, Query(pattern="^(study|ct|radiopharmaceutical)$",
                                                  description=" | ".join(KINDS))] = None,
                date_from: Since = None, date_to: Until = None,
                limit: Limit = DEFAULT_LIMIT, offset: Offset = 0,
                sort: Sort = None) -> dict[str, Any]:
    """Dose events: per exam totals (kind study), CT irradiation events, administered
    radiopharmaceuticals; filtered and paginated."""
    f = filters(ctx, site_id=site_id, device_id=device_id, modality=modality,
                protocol=protocol, date_from=date_from, date_to=date_to)
    q = select(m.DoseEvent).where(*f.conditions(m.DoseEvent.device_id, m.DoseEvent.occurred_at,
                                                m.DoseEvent.protocol))
    if kind is not None:
        q = q.where(m.DoseEvent.kind == kind)
    return _page(ctx, _sorted(q, sort, _EVENT_SORT, "-occurred_at"), DoseEventOut, limit,
                 offset)


@route(router, "GET", "/dose/statistics", "viewer", response_model=DoseStatsOut)
def dose_statistics(
        ctx: C,
        quantity: Annotated[str, Query(max_length=40, description=" | ".join(ds.QUANTITIES))]
        = "ctdivol_mgy",
        group_by: Annotated[str, Query(max_length=20, description=" | ".join(ds.GROUPINGS))]
        = "device_protocol",
        table: Annotated[str | None, Query(max_length=80, description=(
            "reference level table: " + " | ".join(rl.list_tables())))] = None,
        site_id: int | None = None, device_id: int | None = None,
        modality: Modality = None, protocol: Protocol = None,
        date_from: Since = None, date_to: Until = None,
        max_outliers: Annotated[int, Query(ge=0, le=ds.MAX_OUTLIERS, description=(
            "outliers listed; 0: none looked for (faster on long periods)"))] = 100
        ) -> Response:
    """Distribution of one dose quantity per protocol and device (n, quartiles, P95,
    mean), each group's median against the reference level of its exam category, and
    the outliers (Tukey's upper fence) with their study. The percentile definition and
    the rules are stated in the response. Without ``date_from`` and ``date_to`` the
    period is the last 12 months of stored exams (the year up to the newest exam of the
    selection); ``period`` in the response says which period the numbers cover; give
    dates for any other (longer) period. Computed once per set of parameters and
    visible devices, then served from ``stats_cache`` until a dose event, study,
    federated record, site or device's site or modality changes
    (:func:`scanbench.store.fleet_state.cached`)."""
    f = filters(ctx, site_id=site_id, device_id=device_id, modality=modality,
                protocol=protocol, date_from=date_from, date_to=date_to)
    params = {"quantity": quantity, "group_by": group_by, "table": table,
              "site_id": site_id, "device_id": device_id, "modality": modality,
              "protocol": protocol, "date_from": date_from, "date_to": date_to,
              "max_outliers": max_outliers}

    def compute() -> str:
        # federated sites' per-day values are combined in (scanbench.clinical.federated)
        g = federated.default_period(ctx.session, quantity, f)
        stats = federated.dose_statistics(ctx.session, quantity, g, group_by=group_by,
                                          table=table, max_outliers=max_outliers).to_dict()
        return DoseStatsOut.model_validate(stats).model_dump_json()

    key = fleet_state.cache_key("dose", params, ctx.session.scalars(ctx.scope.device_ids()))
    if accepts_gzip(ctx.request.headers.get("accept-encoding", "")):  # sent as kept
        return Response(fleet_state.cached_gzip(ctx.session, "dose", key, compute),
                        media_type="application/json",
                        headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
    return Response(fleet_state.cached(ctx.session, "dose", key, compute),
                    media_type="application/json")


@route(router, "GET", "/workflow/statistics", "viewer", response_model=WorkflowStatsOut)
def workflow_statistics(
        ctx: C, site_id: int | None = None, device_id: int | None = None,
        modality: Modality = None, protocol: Protocol = None,
        date_from: Since = None, date_to: Until = None,
        bin_min: Annotated[float, Query(ge=0.5, le=240)] = 5.0) -> dict[str, Any]:
    """Exam durations and PET uptake times per device (minutes), their histograms, and
    utilisation per device and day (exam hours over staffed hours, else 24 h)."""
    f = filters(ctx, site_id=site_id, device_id=device_id, modality=modality,
                protocol=protocol, date_from=date_from, date_to=date_to)
    return federated.workflow_statistics(ctx.session, f, bin_min=bin_min).to_dict()


# --------------------------------------------------------------------------- comparison

@route(router, "GET", "/compare/measurements", "viewer",
       response_model=list[MeasurementKindOut])
def comparable(ctx: C, site_id: int | None = None, modality: Modality = None
               ) -> list[MeasurementKindOut]:
    """The measurements your devices have, to choose one to compare."""
    f = filters(ctx, site_id=site_id, modality=modality)
    me = m.Measurement
    rows = ctx.session.execute(
        select(me.analysis, me.name, me.unit, func.count(func.distinct(me.device_id)))
        .where(*f.conditions(me.device_id, me.acquired_at))
        .group_by(me.analysis, me.name, me.unit).order_by(me.analysis, me.name)).all()
    return [MeasurementKindOut(analysis=a, name=n, unit=u, devices=c) for a, n, u, c in rows]


@route(router, "GET", "/compare", "viewer", response_model=CompareOut)
def compare(ctx: C, analysis: Annotated[str, Query(min_length=1, max_length=120)],
            name: Annotated[str, Query(min_length=1, max_length=120)],
            labels: Annotated[str | None, Query(max_length=400, description=(
                "the measurement's labels as a JSON object (one repeat)"))] = None,
            site_id: int | None = None, modality: Modality = None,
            date_from: Since = None, date_to: Until = None) -> CompareOut:
    """One measurement across devices and sites: each device's latest value and its
    distribution over the period."""
    wanted, key = _labels(labels)
    f = filters(ctx, site_id=site_id, modality=modality, date_from=date_from,
                date_to=date_to)
    unit, rows = ds.compare_measurement(ctx.session, analysis, name, f, key)
    return CompareOut.model_validate({
        "analysis": analysis, "name": name, "labels": wanted, "unit": unit,
        "percentile_method": ds.PERCENTILE_METHOD, "devices": [r.to_dict() for r in rows]})

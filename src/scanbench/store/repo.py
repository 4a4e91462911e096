"""Repositories: results in and out of the database, and a device's history.

A device's history of one measurement (``history``) is one query on the
``ix_measurement_history`` index (device_id, analysis, name, acquired_at).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Integer, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, aliased

from scanbench.store import models as m
from scanbench.types import Result


def plain(labels: dict[str, Any]) -> dict[str, Any]:
    """Labels with numpy scalars as Python numbers (JSON columns take only those)."""
    return {str(k): (v.item() if isinstance(v, np.generic) else v) for k, v in labels.items()}


def labels_key(labels: dict[str, Any]) -> str:
    """Labels as canonical JSON (sorted keys, no spaces): equal labels, equal key."""
    return json.dumps(plain(labels), sort_keys=True, separators=(",", ":"), default=str)


def _finite(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(float(v)) else float(v)


def _local(t: dt.datetime | None) -> tuple[dt.datetime | None, int | None]:
    """Header time as naive local clock time, and its UTC offset in minutes if known."""
    if t is None:
        return None, None
    off = t.utcoffset()
    return t.replace(tzinfo=None), (None if off is None else int(off.total_seconds() // 60))


def current(session: Session, series_id: int, analysis: str,
            besides: Collection[int] = ()) -> m.Result | None:
    """The oldest result of ``analysis`` on the series that no later row supersedes,
    leaving out the rows ``besides`` (results stored together, which do not replace
    one another)."""
    later = aliased(m.Result)
    q = select(m.Result).where(m.Result.series_id == series_id,
                               m.Result.analysis == analysis,
                               ~select(later.id).where(later.supersedes_id == m.Result.id)
                               .exists())
    if besides:
        q = q.where(m.Result.id.not_in(list(besides)))
    return session.scalars(q.order_by(m.Result.id).limit(1)).first()


def save_result(session: Session, result: Result, *, series_id: int | None,
                device_id: int | None, job_id: int | None = None,
                replace: bool = True, protocol: m.Protocol | None = None,
                besides: Collection[int] = ()) -> m.Result:
    """Store one analysis result with its measurements (status and note as given).

    Results are immutable: with ``replace``, the new row supersedes (``supersedes_id``)
    the oldest current result of the same analysis on the same series (not one of the
    rows ``besides``: the other results of the same analysis run), which stays stored
    but leaves the device's history (a re-analysis never doubles it). ``protocol``: the
    protocol version whose parameters the analysis was given; the row links it and its
    ``parameters`` show it under ``protocol``."""
    previous = (current(session, series_id, result.analysis, besides)
                if replace and series_id is not None else None)
    acquired, offset = _local(result.acquired_at)
    d = result.to_dict()
    parameters = dict(d["parameters"])
    if protocol is not None:
        parameters["protocol"] = {"id": protocol.id, "name": protocol.name,
                                  "version": protocol.version, "params": dict(protocol.params)}
    row = m.Result(series_id=series_id, device_id=device_id, job_id=job_id,
                   analysis=result.analysis, standard=result.standard,
                   series_uid=result.series_instance_uid, spec=result.spec,
                   acquired_at=acquired, utc_offset_min=offset, parameters=parameters,
                   warnings=list(result.warnings), source=result.source,
                   scanbench_version=result.scanbench_version,
                   protocol_id=protocol.id if protocol is not None else None,
                   supersedes_id=previous.id if previous is not None else None)
    for meas in result.measurements:
        lim = meas.limits
        row.measurements.append(m.Measurement(
            device_id=device_id, analysis=result.analysis, acquired_at=acquired,
            name=meas.name, labels=plain(meas.labels), labels_key=labels_key(meas.labels),
            value=_finite(meas.value), unit=meas.unit, uncertainty=_finite(meas.uncertainty),
            limit_low=lim.low if lim else None, limit_high=lim.high if lim else None,
            limit_source=lim.source if lim else None, limit_verified=lim.verified if lim else None,
            status=meas.status, note=meas.note))
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True)
class Point:
    """One point of a device's history of one measurement."""

    acquired_at: dt.datetime | None
    value: float | None
    unit: str
    uncertainty: float | None
    status: str
    labels: dict[str, Any]
    result_id: int
    series_uid: str | None
    note: str | None = None
    # The limits the value was judged by (from the spec in force when it was stored).
    limit_low: float | None = None
    limit_high: float | None = None
    limit_source: str | None = None
    limit_verified: bool | None = None


def _history_where(q: Any, device_id: int, analysis: str, name: str,
                   labels: dict[str, Any] | None, since: dt.datetime | None,
                   until: dt.datetime | None) -> Any:
    later = aliased(m.Result)
    me = m.Measurement
    q = (q.where(me.device_id == device_id, me.analysis == analysis, me.name == name,
                 ~select(later.id).where(later.supersedes_id == me.result_id).exists())
         .order_by(me.acquired_at, me.id))
    if labels is not None:
        q = q.where(me.labels_key == labels_key(labels))
    if since is not None:
        q = q.where(me.acquired_at >= since.replace(tzinfo=None))
    if until is not None:
        q = q.where(me.acquired_at < until.replace(tzinfo=None))
    return q


def _points(rows: Any) -> list[Point]:
    return [Point(acquired_at, value, unit, uncertainty, status, dict(labels or {}),
                  result_id, uid, note, low, high, source, verified)
            for (acquired_at, value, unit, uncertainty, status, labels, result_id, uid, note,
                 low, high, source, verified) in rows]


def _point_columns() -> Any:
    me = m.Measurement
    return (select(me.acquired_at, me.value, me.unit, me.uncertainty, me.status, me.labels,
                   me.result_id, m.Result.series_uid, me.note, me.limit_low, me.limit_high,
                   me.limit_source, me.limit_verified)
            .join(m.Result, m.Result.id == me.result_id))


def history(session: Session, device_id: int, analysis: str, name: str,
            labels: dict[str, Any] | None = None, *, since: dt.datetime | None = None,
            until: dt.datetime | None = None) -> list[Point]:
    """Every value of measurement ``name`` (with exactly ``labels`` if given) that
    ``analysis`` measured on the device, oldest first; superseded results left out."""
    # Columns, not ORM entities: ten years of daily values load about 5x faster.
    return _points(session.execute(_history_where(_point_columns(), device_id, analysis,
                                                  name, labels, since, until)))


def history_values(session: Session, device_id: int, analysis: str, name: str,
                   labels: dict[str, Any] | None = None, *, since: dt.datetime | None = None,
                   until: dt.datetime | None = None) -> list[tuple[int, float | None]]:
    """(measurement id, value) of the points :func:`history` returns, in its order: two
    columns without a join, for choosing the points to send (a downsampled chart) before
    reading the rest of them by :func:`points_by_id` (3,650 points: ~25 ms instead of
    ~90 ms of reading every column, bench/web.py)."""
    me = m.Measurement
    return [(int(i), v) for i, v in session.execute(_history_where(
        select(me.id, me.value), device_id, analysis, name, labels, since, until))]


def points_by_id(session: Session, ids: Sequence[int]) -> list[Point]:
    """The history points of measurements ``ids`` (as :func:`history` gives them), in
    the order of ``ids``."""
    me = m.Measurement
    found: dict[int, Point] = {}
    # PostgreSQL: one array parameter (``id = ANY(%s)``), so the statement text is the
    # same for any number of ids (psycopg and the server reuse its parse): 1,000 ids of
    # a national-scale history, 11.2 -> 7.3 ms of CPU (median of 48, bench/web.py's
    # data), rendering and splitting 1,000 bound parameters gone. Others: the IN list.
    pg = session.get_bind().dialect.name == "postgresql"
    for at in range(0, len(ids), 5000):
        chunk = [int(i) for i in ids[at:at + 5000]]
        q = _point_columns().add_columns(me.id).where(
            me.id == any_(bindparam("ids", chunk, type_=ARRAY(Integer))) if pg
            else me.id.in_(chunk))
        rows = list(session.execute(q))
        for row, point in zip(rows, _points(r[:-1] for r in rows), strict=True):
            found[int(row[-1])] = point
    return [found[i] for i in ids if i in found]

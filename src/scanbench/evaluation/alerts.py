"""Trend and limit alerts from stored results: recorded once, closed by a repair or a new
baseline, acknowledged by a person, sent to the site's notification targets.

Method
------
A *series* is one measurement of one device: (device, analysis, name, labels). Its
history is every stored value of it, oldest first, superseded results left out
(:func:`series_points`). Two kinds of alert are drawn from it:

* **limit** — a value that fails a *confirmed* limit of its spec (measurement status
  ``fail`` with ``limit_verified``): level ``action``. A value inside the action limits
  but outside the confirmed rule's tolerance band of the result's spec (QATrack+'s two
  levels, :meth:`scanbench.specs.Rule.level`): level ``tolerance``. An unconfirmed limit
  never raises an alert (its status is ``outside_unconfirmed``, never ``fail``).
* **trend** — the rules of :mod:`scanbench.evaluation.trend` (Westgard 1-3s, 2-2s, R-4s,
  4-1s, 10x; tabular CUSUM; EWMA) on the history, against a baseline estimated from the
  first 20 values of each baseline segment: level ``trend``.

Baselines restart (:func:`baseline_starts`) only at lifecycle events the user marked
``new_baseline`` (a service, a part replacement, an upgrade, ...). A software change
seen in the headers, or a service not so marked, does not restart it: most services
and software changes do not move a measurement, and each restart spends 20 values on a
new baseline during which nothing is judged; the person who knows that a repair or an
upgrade changed the device's behaviour marks it.

Each alert has a stable ``key`` (the series, the rule and side, the baseline segment and
the first offending value; for a limit alert the series and the offending series UID),
so computing the same history again — a job run again, :func:`recheck_device` run twice,
a page viewed — never adds a row. Alerts are only written by :func:`check_result` and
:func:`recheck_device`; :func:`series_trend` only reads.

An alert closes (``state`` closed, ``closed_reason``, ``closing_result_id``):

* a limit alert at the first later value of the series that passes (an ``action``
  alert) or is within the tolerance band as well (a ``tolerance`` alert);
* a trend alert at the first later value of the same baseline segment at which no
  trend rule holds on either side and whose status is not ``fail`` (the episode that
  raised it has ended), or at the start of a new baseline segment.

A new baseline does not close a limit alert: a limit is absolute, and only a passing
measurement shows the device meets it again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from scanbench.evaluation.trend import (
    BaselineStart,
    TrendPoint,
    TrendReport,
    TrendSettings,
    check_trend,
    rule_holds,
)
from scanbench.store import models as m

#: The trend rules and constants alerts are raised with (all seven rules of trend.py,
#: with its defaults; their false-alarm rates are in docs/evaluation.md).
SETTINGS = TrendSettings()

#: Measurement statuses whose value is not judged (refused by the analysis, or not
#: judged): left out of the trend as missing values.
_NOT_A_VALUE = ("refused", "not_judged")


@dataclass(frozen=True)
class SeriesPoint:
    """One stored value of a series, in time order. ``time`` is the scanner's local clock
    time (naive) as stored; ``value`` is NaN when the value is missing, not finite,
    refused or not judged (the trend skips it)."""

    result_id: int
    series_uid: str | None
    time: dt.datetime
    value: float
    unit: str
    uncertainty: float | None
    status: str
    limit_low: float | None
    limit_high: float | None
    limit_source: str | None
    limit_verified: bool | None
    labels: dict[str, Any]
    spec: str | None
    parameters: dict[str, Any]


@dataclass(frozen=True)
class SeriesId:
    """One measurement series of one device."""

    device_id: int
    analysis: str
    name: str
    labels_key: str = "{}"

    @property
    def text(self) -> str:
        """The series as trend keys name it: ``d<device>|analysis|name|labels``."""
        return f"d{self.device_id}|{self.analysis}|{self.name}|{self.labels_key}"


def series_points(session: Session, device_id: int, analysis: str, name: str,
                  labels_key: str = "{}") -> list[SeriesPoint]:
    """Every stored value of one series, oldest first (by acquisition time, then
    storage order); superseded results and values without an acquisition time left
    out (they cannot be placed in time)."""
    later = aliased(m.Result)
    q = (select(m.Measurement, m.Result.series_uid, m.Result.spec, m.Result.parameters)
         .join(m.Result, m.Result.id == m.Measurement.result_id)
         .where(m.Measurement.device_id == device_id, m.Measurement.analysis == analysis,
                m.Measurement.name == name, m.Measurement.labels_key == labels_key,
                m.Measurement.acquired_at.is_not(None),
                ~select(later.id).where(later.supersedes_id == m.Result.id).exists())
         .order_by(m.Measurement.acquired_at, m.Measurement.id))
    out = []
    for meas, uid, spec, params in session.execute(q):
        value = meas.value
        if value is None or meas.status in _NOT_A_VALUE or not math.isfinite(value):
            value = math.nan
        out.append(SeriesPoint(meas.result_id, uid, meas.acquired_at, float(value), meas.unit,
                               meas.uncertainty, meas.status, meas.limit_low,
                               meas.limit_high, meas.limit_source, meas.limit_verified,
                               dict(meas.labels or {}), spec, dict(params or {})))
    return out


def baseline_starts(session: Session, device_id: int) -> list[BaselineStart]:
    """The new baselines of a device: one per lifecycle event marked ``new_baseline``
    (with a time), oldest first, its reason "<kind>: <summary>". Each starts a segment
    whose baseline mean and σ are estimated from its first 20 values
    (:class:`scanbench.evaluation.trend.BaselineStart` defaults)."""
    rows = session.scalars(select(m.LifecycleEvent).where(
        m.LifecycleEvent.device_id == device_id, m.LifecycleEvent.new_baseline.is_(True),
        m.LifecycleEvent.occurred_at.is_not(None))
        .order_by(m.LifecycleEvent.occurred_at, m.LifecycleEvent.id))
    return [BaselineStart(time=e.occurred_at,
                          reason=f"{e.kind.replace('_', ' ')}: {e.summary}".rstrip(": "))
            for e in rows]


def _trend(series: SeriesId, points: Sequence[SeriesPoint],
           restarts: Sequence[BaselineStart], settings: TrendSettings) -> TrendReport:
    unit = next((p.unit for p in points if p.unit), "")
    return check_trend(series.text, unit,
                       [TrendPoint(p.time, p.value, p.uncertainty) for p in points],
                       restarts, settings)


def series_trend(session: Session, device_id: int, analysis: str, name: str,
                 labels_key: str = "{}", settings: TrendSettings | None = None
                 ) -> TrendReport:
    """The trend rules on one stored series, for its control chart: the baseline
    segments (mean, σ, ``band(2)``/``band(3)`` for the ±2σ/±3σ bands, in the series'
    unit) and the alerts (``index`` is the position in :func:`series_points` of the
    same series, so a chart can mark the point). Reads only: it records nothing."""
    series = SeriesId(device_id, analysis, name, labels_key)
    points = series_points(session, device_id, analysis, name, labels_key)
    return _trend(series, points, baseline_starts(session, device_id), settings or SETTINGS)


def in_control(points: Sequence[SeriesPoint], report: TrendReport,
               settings: TrendSettings | None = None) -> dict[int, bool]:
    """For each judged value (index into ``points``): True when no trend rule holds
    there on either side (computed as :func:`scanbench.evaluation.trend.check_trend`
    does, segment by segment)."""
    s = settings or SETTINGS
    out: dict[int, bool] = {}
    for seg in report.segments:
        idx = [i for i in range(seg.judged_from, seg.end) if math.isfinite(points[i].value)]
        if not idx:
            continue
        z = (np.array([points[i].value for i in idx]) - seg.mean) / seg.sigma
        holds = np.zeros(len(idx), dtype=bool)
        for rule in s.rules:
            hi, lo, *_ = rule_holds(z, rule, s)
            holds |= hi | lo
        out.update({i: not bool(h) for i, h in zip(idx, holds, strict=True)})
    return out


def _key(*parts: object) -> str:
    """An alert key of at most 400 characters (the column): long keys (long labels)
    keep a readable head and the SHA-256 of the whole."""
    text = "|".join(str(p) for p in parts)
    if len(text) <= 400:
        return text
    return text[:330] + "#" + hashlib.sha256(text.encode()).hexdigest()

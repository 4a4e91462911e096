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
* a trend alert at the first later value of the same baseline segment that is back in
  control: inside μ0 ± 2σ (Westgard's warning limits), not failing its limits, and the
  rule that raised the alert no longer holds there on that side (its episode has
  ended: a CUSUM must have come back under h, which after a large step takes some
  values); or at the first new baseline marked after it.

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
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, aliased

from scanbench.evaluation.trend import (
    BaselineStart,
    Rule,
    TrendPoint,
    TrendReport,
    TrendSettings,
    check_trend,
    group_episodes,
    rule_holds,
)
from scanbench.store import models as m
from scanbench.store.fleet_state import PATIENT_ANALYSES

#: The rules automatic alerts use: 1-3s for a large step (ARL0 370 values) and the
#: tabular CUSUM k = 0.5σ, h = 5σ for a small shift or a slow drift (ARL0 465;
#: Montgomery, *Introduction to Statistical Quality Control*, chapter 9), the usual
#: Shewhart-CUSUM pairing (Lucas, J Qual Technol 1982;14:51-59). EWMA adds little to
#: CUSUM and the Westgard run rules (2-2s, R-4s, 4-1s, 10x) fire far more often on
#: daily values; they stay available through TrendSettings (docs/evaluation.md section 9
#: says what each costs in false alarms per year).
DEFAULT_RULES: tuple[Rule, ...] = ("1-3s", "cusum")

#: The settings automatic alerts are raised with: the rules above; each baseline from
#: 30 values, its σ widened by the prediction-interval factor (1.111 for 30 values),
#: so that an estimated baseline does not multiply the false alarms (measured in
#: bench/alert_rates.py and docs/evaluation.md section 9: 2.0 false episodes per
#: year of daily noise, against 8.1 with all seven rules on a 20-value baseline).
SETTINGS = TrendSettings(rules=DEFAULT_RULES, baseline_points=30, prediction_limits=True)

#: Measurement statuses whose value is not judged (refused by the analysis, or not
#: judged): left out of the trend as missing values.
_NOT_A_VALUE = ("refused", "not_judged")

#: Clinical CT noise (one value per patient series): its drift alerts come from
#: scanbench.evaluation.clinical_iq (size-normalised residuals), not the rules above.
CLINICAL_CT = "ct.clinical_global_noise"
#: Measurements of patients: their values vary with the patient, so the rules above
#: never run on them raw (PET liver noise: stored and shown, not trended yet).
CLINICAL = PATIENT_ANALYSES


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
    whose baseline mean and σ are estimated from its first values (30 with
    :data:`SETTINGS`)."""
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


@dataclass(frozen=True)
class JudgedPoint:
    """A judged value of a segment: z = (x − μ0)/σ and the (rule, side) pairs that hold
    there (side ``high`` or ``low``)."""

    z: float
    holding: frozenset[tuple[str, str]]


def judged_points(points: Sequence[SeriesPoint], report: TrendReport,
                  settings: TrendSettings | None = None) -> dict[int, JudgedPoint]:
    """For each judged value (index into ``points``) its z and the rules holding there,
    computed segment by segment as :func:`scanbench.evaluation.trend.check_trend`
    does."""
    s = settings or SETTINGS
    out: dict[int, JudgedPoint] = {}
    for seg in report.segments:
        idx = [i for i in range(seg.judged_from, seg.end) if math.isfinite(points[i].value)]
        if not idx:
            continue
        z = (np.array([points[i].value for i in idx]) - seg.mean) / seg.sigma
        holding: list[set[tuple[str, str]]] = [set() for _ in idx]
        for rule in s.rules:
            hi, lo, *_ = rule_holds(z, rule, s)
            for k in np.flatnonzero(hi):
                holding[k].add((rule, "high"))
            for k in np.flatnonzero(lo):
                holding[k].add((rule, "low"))
        out.update({i: JudgedPoint(float(zi), frozenset(h))
                    for i, zi, h in zip(idx, z, holding, strict=True)})
    return out


def _key(*parts: object) -> str:
    """An alert key of at most 400 characters (the column): long keys (long labels)
    keep a readable head and the SHA-256 of the whole."""
    text = "|".join(str(p) for p in parts)
    if len(text) <= 400:
        return text
    return text[:330] + "#" + hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- recording

def _labels_text(labels: dict[str, Any]) -> str:
    return "" if not labels else " (" + ", ".join(f"{k} {v}" for k, v in labels.items()) + ")"


def _unit(unit: str) -> str:
    return "" if unit in ("", "1") else f" {unit}"


class _Specs:
    """The specs results name, loaded once per check: the stored version named
    (``name@version``), else the newest stored version of a name, else the shipped spec
    of that name; None when none loads."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.cache: dict[str, Any] = {}

    def get(self, name: str | None) -> Any:
        if not name:
            return None
        if name not in self.cache:
            self.cache[name] = self._load(name)
        return self.cache[name]

    def _load(self, name: str) -> Any:
        from scanbench.errors import ScanbenchError
        from scanbench.evaluation.assign import parse_stored
        from scanbench.evaluation.node_spec import split_label
        from scanbench.specs import list_specs, load_spec

        # a node result names the exact version that judged it (name@version)
        name, version = split_label(name)
        q = select(m.Spec).where(m.Spec.name == name)
        if version is not None:
            q = q.where(m.Spec.version == version)
        row = self.session.scalars(q.order_by(m.Spec.created_at.desc(), m.Spec.id.desc())
                                   .limit(1)).first()
        try:
            if row is not None:
                return parse_stored(self.session, row)  # with the parent it extends
            if name in list_specs():
                return load_spec(name)
        except ScanbenchError:
            return None  # a spec that no longer loads judges no tolerance band
        return None


def _tolerance_rule(spec: Any, device: m.Device, series: SeriesId, p: SeriesPoint) -> Any:
    """The confirmed rule of ``spec`` with a tolerance band whose band ``p`` is outside
    (inside its action limits), else None. Baseline-relative rules are left out (their
    band is relative to a baseline value the store does not hold)."""
    from scanbench.types import DeviceIdentity

    if spec is None or not math.isfinite(p.value):
        return None
    ident = DeviceIdentity(device.manufacturer, device.model, device.serial)
    for r in spec.rules_for(series.analysis):
        if (r.measurement != series.name or r.tolerance is None or r.confidence != "C"
                or r.baseline is not None or not r.matches_labels(p.labels)
                or (r.device is not None and not r.device.matches(ident))
                or any(c.holds(p.parameters) is not True for c in r.when)):
            continue
        if r.level(p.value) == "tolerance":
            return r
    return None


@dataclass
class _Found:
    """An alert as computed from the history (a row is made of it if its key is new)."""

    key: str
    rule: str
    level: str
    direction: str | None
    index: int
    first_index: int
    value: float
    statistic: float | None
    threshold: float | None
    limit_source: str | None
    message: str
    end: int | None = None  # index where it ends (back in control / passing), None: open
    episode: int = -1  # index of the value that opened its episode


def _limit_ok(level: str | None, p: SeriesPoint, specs: _Specs, device: m.Device,
              series: SeriesId) -> bool:
    """Whether a value ends a limit alert of ``level``: it passes, and for a tolerance
    alert it is inside the tolerance band as well."""
    return p.status == "pass" and (
        level != "tolerance" or _tolerance_rule(specs.get(p.spec), device, series, p) is None)


def _episodes(found: list[_Found], points: Sequence[SeriesPoint], specs: _Specs,
              device: m.Device, series: SeriesId) -> None:
    """Set each alert's ``end`` (limit alerts: the first later value that ends it; trend
    alerts: as computed by trend.check_trend) and ``episode``
    (:func:`scanbench.evaluation.trend.group_episodes`: an alert that fires while an
    earlier one of the series is still open joins its episode)."""
    for f in found:
        if f.rule == "limit":
            f.end = next((i for i in range(f.index + 1, len(points))
                          if _limit_ok(f.level, points[i], specs, device, series)), None)
    found.sort(key=lambda f: (f.index, f.rule != "limit", f.key))
    for f, root in zip(found, group_episodes([(f.index, f.end) for f in found]), strict=True):
        f.episode = root


def _limit_alerts(series: SeriesId, points: Sequence[SeriesPoint], device: m.Device,
                  specs: _Specs) -> list[_Found]:
    out = []
    for i, p in enumerate(points):
        where = p.series_uid or p.time.isoformat()
        what = f"{series.name}{_labels_text(p.labels)} = {p.value:.4g}{_unit(p.unit)}"
        if p.status == "fail" and p.limit_verified:
            high = p.limit_high is not None and (not math.isfinite(p.value)
                                                 or p.value > p.limit_high)
            limit = p.limit_high if high else p.limit_low
            side = "above the upper" if high else "below the lower"
            text = (f"{what} is {side} action limit {limit:g}{_unit(p.unit)}"
                    if limit is not None and math.isfinite(p.value)
                    else f"{series.name}{_labels_text(p.labels)} is not a number: it fails "
                         "its limits")
            out.append(_Found(_key("limit", "action", series.text, where), "limit", "action",
                              "high" if high else "low", i, i, p.value, None, limit,
                              p.limit_source, f"{text} ({p.limit_source})"))
            continue
        if p.status != "pass":
            continue
        rule = _tolerance_rule(specs.get(p.spec), device, series, p)
        if rule is None:
            continue
        lo, hi = rule.tolerance
        high = hi is not None and p.value > hi
        limit = hi if high else lo
        side = "above the upper" if high else "below the lower"
        source = f"{p.spec}: {rule.source}"
        out.append(_Found(_key("limit", "tolerance", series.text, where), "limit",
                          "tolerance", "high" if high else "low", i, i, p.value, None, limit,
                          source, f"{what} passes its action limits but is {side} tolerance "
                          f"level {limit:g}{_unit(p.unit)}: act before it fails ({source})"))
    return out


def _trend_alerts(series: SeriesId, report: TrendReport) -> list[_Found]:
    from scanbench.evaluation.notify import RULE_SOURCES

    out = []
    for a in report.alerts:
        seg = next(s for s in report.segments if s.start <= a.index < s.end)
        out.append(_Found(_key("trend", series.text, f"baseline {seg.start_time.isoformat()}",
                               a.rule, a.direction, a.first_time.isoformat()),
                          a.rule, "trend", a.direction, a.index, a.first_index, a.value,
                          a.statistic, a.limit, RULE_SOURCES.get(a.rule), a.message,
                          a.end_index))
    return out


def _insert(session: Session, row: m.Alert) -> bool:
    """Add ``row`` unless its key is stored (by this or a concurrent process): a
    savepoint, so a lost race costs only the row."""
    from sqlalchemy.exc import IntegrityError

    if session.scalar(select(m.Alert.id).where(m.Alert.key == row.key)) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False
    return True


def _close(row: m.Alert, reason: str, result_id: int | None) -> None:
    row.state = "closed"
    row.closed_at = m.utcnow()
    row.closed_reason = reason
    row.closing_result_id = result_id


def sync_series(session: Session, series: SeriesId,
                settings: TrendSettings | None = None) -> list[m.Alert]:
    """Compute the alerts of one series from its whole history, record those not yet
    recorded and close the open ones a later value or a new baseline ends (module doc).
    Idempotent: a second call with the same history changes nothing. Returns the alerts
    recorded by this call. The caller commits."""
    s = settings or SETTINGS
    device = session.get(m.Device, series.device_id)
    if device is None:
        return []
    points = series_points(session, series.device_id, series.analysis, series.name,
                           series.labels_key)
    if not points:
        return []
    restarts = baseline_starts(session, series.device_id)
    report = _trend(series, points, restarts, s)
    specs = _Specs(session)
    found = _limit_alerts(series, points, device, specs) + _trend_alerts(series, report)
    _episodes(found, points, specs, device, series)
    stored = dict(session.execute(select(m.Alert.key, m.Alert.id).where(
        m.Alert.key.in_([f.key for f in found]))).all()) if found else {}
    new: list[m.Alert] = []
    for f in found:
        p, episode = points[f.index], points[f.episode].time
        if f.key in stored:
            row = session.get_one(m.Alert, stored[f.key])
            if row.first_at != episode:  # stored before episodes, or its history changed
                row.first_at = episode
            continue
        row = m.Alert(key=f.key, device_id=series.device_id, analysis=series.analysis,
                      name=series.name, labels=dict(p.labels), labels_key=series.labels_key,
                      rule=f.rule, level=f.level, direction=f.direction,
                      result_id=p.result_id, occurred_at=p.time, first_at=episode,
                      value=f.value if math.isfinite(f.value) else None, unit=p.unit,
                      statistic=f.statistic, threshold=f.threshold,
                      limit_source=f.limit_source, message=f.message, state="open")
        if _insert(session, row):
            new.append(row)
    _close_ended(session, series, points, report, restarts, s, {f.key for f in found})
    session.flush()
    return new


def _close_ended(session: Session, series: SeriesId, points: Sequence[SeriesPoint],
                 report: TrendReport, restarts: Sequence[BaselineStart],
                 settings: TrendSettings, raised: set[str]) -> None:
    still = session.scalars(select(m.Alert).where(
        m.Alert.device_id == series.device_id, m.Alert.analysis == series.analysis,
        m.Alert.name == series.name, m.Alert.labels_key == series.labels_key,
        m.Alert.state.in_(("open", "acknowledged"))).order_by(m.Alert.id)).all()
    if not still:
        return
    judged = judged_points(points, report, settings)
    specs = _Specs(session)
    device = session.get_one(m.Device, series.device_id)
    for row in still:
        at = row.occurred_at
        if at is None:
            continue
        later = [i for i, p in enumerate(points) if p.time > at]
        if row.rule == "limit":
            for i in later:
                p = points[i]
                if _limit_ok(row.level, p, specs, device, series):
                    _close(row, f"a later value passed: {p.value:.4g}{_unit(p.unit)} at "
                                f"{p.time.isoformat()}", p.result_id)
                    break
            continue
        if row.key not in raised:
            # the history no longer raises it: a baseline marked later put its value in
            # a new segment, or its result was superseded by a different value
            before = [r for r in restarts if r.time is not None and r.time <= at]
            why = (f"new baseline from {before[-1].time.isoformat()}"  # type: ignore[union-attr]
                   + (f" ({before[-1].reason})" if before[-1].reason else "")
                   + ": the value is judged against it" if before
                   else "no longer raised by the stored history (its result was replaced)")
            first = next((p for p in points if before and before[-1].time is not None
                          and p.time >= before[-1].time), None)
            _close(row, why, first.result_id if first is not None else None)
            continue
        here = max((i for i, p in enumerate(points) if p.time <= at), default=0)
        seg = next((sg for sg in report.segments if sg.start <= here < sg.end), None)
        for i in later:
            p, j = points[i], judged.get(i)
            if seg is not None and i >= seg.end:
                break
            # back in control: inside μ0 ± 2σ (Westgard's warning limits), not failing,
            # and the rule that raised the alert no longer holds (its episode ended)
            if j is not None and abs(j.z) <= 2.0 and p.status != "fail" \
                    and (row.rule, row.direction or "") not in j.holding:
                _close(row, f"back in control: {p.value:.4g}{_unit(p.unit)} on "
                            f"{p.time.isoformat()} is within 2σ of the baseline mean and "
                            f"rule {row.rule} no longer holds", p.result_id)
                break
        if row.state == "closed":
            continue
        # a new baseline marked after the alert ends it, even before the new segment
        # has the values its baseline needs
        restart = next((r for r in restarts if r.time is not None and r.time > at), None)
        if restart is not None and restart.time is not None:
            first = next((p for p in points if p.time >= restart.time), None)
            _close(row, f"new baseline from {restart.time.isoformat()}"
                        + (f" ({restart.reason})" if restart.reason else ""),
                   first.result_id if first is not None else None)


def _series_of_result(session: Session, result: m.Result) -> list[SeriesId]:
    assert result.device_id is not None
    seen = dict.fromkeys(SeriesId(result.device_id, meas.analysis, meas.name, meas.labels_key)
                         for meas in result.measurements)
    return list(seen)


def check_result(session: Session, result_id: int,
                 settings: TrendSettings | None = None) -> list[m.Alert]:
    """Check a stored result: each of its measurements against its limits and against
    the history of its series on the device (:func:`sync_series`). Returns the alerts
    this call recorded (none when the result was checked before with the same history,
    e.g. when its job ran again). A result without a device raises none. The caller
    commits."""
    result = session.get(m.Result, result_id)
    if result is None or result.device_id is None:
        return []
    if result.analysis in CLINICAL:
        # a patient's noise varies with the patient: trended as residuals of the
        # device's size model (scanbench.evaluation.clinical_iq), never raw
        from scanbench.evaluation.clinical_iq import sync_device

        return sync_device(session, result.device_id)
    new: list[m.Alert] = []
    for series in _series_of_result(session, result):
        new.extend(sync_series(session, series, settings))
    return new


def recheck_device(session: Session, device_id: int,
                   settings: TrendSettings | None = None) -> list[m.Alert]:
    """Compute every series of a device from its history (after an import, a backfill
    or a baseline marked later): records what is missing and closes what has ended;
    running it again changes nothing. Returns the alerts recorded. The caller commits."""
    rows = session.execute(select(m.Measurement.analysis, m.Measurement.name,
                                  m.Measurement.labels_key)
                           .where(m.Measurement.device_id == device_id,
                                  m.Measurement.analysis.not_in(CLINICAL)).distinct()
                           .order_by(m.Measurement.analysis, m.Measurement.name,
                                     m.Measurement.labels_key)).all()
    new: list[m.Alert] = []
    for analysis, name, key in rows:
        new.extend(sync_series(session, SeriesId(device_id, analysis, name, key), settings))
    from scanbench.evaluation.clinical_iq import sync_device

    new.extend(sync_device(session, device_id))
    return new


def refresh_open(session: Session, settings: TrendSettings | None = None) -> int:
    """Recompute the series that have open or acknowledged alerts (:func:`sync_series`),
    so that a baseline marked later (a lifecycle event set to ``new_baseline`` after the
    alert) closes them without waiting for the device's next result. Cheap: only those
    series. Returns how many alerts it closed. The caller commits."""
    keys = session.execute(select(m.Alert.device_id, m.Alert.analysis, m.Alert.name,
                                  m.Alert.labels_key)
                           .where(m.Alert.state.in_(("open", "acknowledged")),
                                  m.Alert.analysis.not_in(CLINICAL)).distinct()
                           ).all()
    before = session.scalar(select(func.count()).select_from(m.Alert).where(
        m.Alert.state == "closed")) or 0
    for device_id, analysis, name, key in keys:
        sync_series(session, SeriesId(device_id, analysis, name, key), settings)
    from scanbench.evaluation.clinical_iq import sync_device

    for device_id in session.scalars(select(m.Alert.device_id).where(
            m.Alert.state.in_(("open", "acknowledged")),
            m.Alert.analysis == CLINICAL_CT).distinct()).all():
        sync_device(session, device_id)
    after = session.scalar(select(func.count()).select_from(m.Alert).where(
        m.Alert.state == "closed")) or 0
    return int(after - before)


def check_job(session: Session, job_id: int) -> list[m.Alert]:
    """Check every current result a job stored (the hook the node calls after storing a
    job's outcome)."""
    later = aliased(m.Result)
    ids = session.scalars(select(m.Result.id).where(
        m.Result.job_id == job_id, m.Result.device_id.is_not(None),
        ~select(later.id).where(later.supersedes_id == m.Result.id).exists())
        .order_by(m.Result.id)).all()
    new: list[m.Alert] = []
    for rid in ids:
        new.extend(check_result(session, rid))
    return new


# --------------------------------------------------------------------------- people

STATES = ("open", "acknowledged", "closed")
ALERT_RULES = ("limit", "1-3s", "2-2s", "R-4s", "4-1s", "10x", "cusum", "ewma")


class AlertConflict(Exception):
    """The alert is not in a state that allows the action (already acknowledged)."""


def _ack_view(row: m.Alert) -> dict[str, Any]:
    return {"state": row.state, "ack_user_id": row.ack_user_id,
            "ack_at": row.ack_at.isoformat() if row.ack_at else None,
            "ack_comment": row.ack_comment}


def acknowledge(session: Session, alert_id: int, actor: Any, comment: str) -> m.Alert:
    """Record that ``actor`` (:class:`scanbench.web.audit.Actor`) saw the alert and what
    was done or decided (``comment``, required), with an audit entry holding the values
    before and after, in the caller's transaction (commit with
    :func:`scanbench.web.audit.commit_with_retry`). An open alert becomes acknowledged;
    a closed one keeps its state and gets the acknowledgement. An alert acknowledged
    before raises :class:`AlertConflict`; an unknown id or an empty comment
    :class:`~scanbench.errors.InputError`."""
    from scanbench.errors import InputError
    from scanbench.web.audit import record

    text = (comment or "").strip()
    if not text:
        raise InputError("an acknowledgement needs a comment saying what was done or "
                         "decided", where="comment")
    if len(text) > 4000:
        raise InputError(f"the comment has {len(text)} characters; at most 4000",
                         where="comment")
    row = session.get(m.Alert, alert_id)
    if row is None:
        raise InputError(f"no alert with id {alert_id}")
    if row.ack_at is not None:
        raise AlertConflict(f"alert {alert_id} was acknowledged on "
                            f"{row.ack_at.isoformat(timespec='seconds')}")
    before = _ack_view(row)
    row.ack_user_id = actor.user_id
    row.ack_at = m.utcnow()
    row.ack_comment = text
    if row.state == "open":
        row.state = "acknowledged"
    device = session.get_one(m.Device, row.device_id)
    record(session, actor, "alert.acknowledge", "alert", row.id, site_id=device.site_id,
           before=before, after=_ack_view(row),
           details={"key": row.key, "device_id": row.device_id})
    return row


def alerts_query(*, device_id: int | None = None, site_id: int | None = None,
                 state: str | None = None, rule: str | None = None,
                 base: Any = None) -> Any:
    """The alerts (a ``select`` to refine, page or run) of one device, of one site's
    devices, in one state and of one rule, newest first; ``base`` is a query to start
    from (the web's :meth:`scanbench.web.scope.Scope.alerts`, already limited to the
    caller's sites). Unknown states or rules raise :class:`~scanbench.errors.InputError`
    naming the accepted ones."""
    from scanbench.errors import InputError

    if state is not None and state not in STATES:
        raise InputError(f"unknown alert state {state!r}: one of {', '.join(STATES)}",
                         where="state")
    if rule is not None and rule not in ALERT_RULES:
        raise InputError(f"unknown alert rule {rule!r}: one of {', '.join(ALERT_RULES)}",
                         where="rule")
    q: Select[tuple[m.Alert]] = select(m.Alert) if base is None else base
    if device_id is not None:
        q = q.where(m.Alert.device_id == device_id)
    if site_id is not None:
        q = q.where(m.Alert.device_id.in_(select(m.Device.id).where(
            m.Device.site_id == site_id)))
    if state is not None:
        q = q.where(m.Alert.state == state)
    if rule is not None:
        q = q.where(m.Alert.rule == rule)
    return q.order_by(m.Alert.occurred_at.desc(), m.Alert.id.desc())


@dataclass(frozen=True)
class Episode:
    """The alerts of one series that fired while an earlier one was still open
    (:func:`scanbench.evaluation.trend.group_episodes`): one problem, told once.
    ``opened_at`` is the scanner's time of the value that opened it; ``state`` is
    ``open`` while one of its alerts is open, ``acknowledged`` when none is open but
    one is acknowledged, else ``closed``; ``rules`` are its alerts' rules in the order
    they fired (a limit alert as ``limit (action)``/``limit (tolerance)``)."""

    key: str
    device_id: int
    analysis: str
    name: str
    labels: dict[str, Any]
    opened_at: dt.datetime | None
    state: str
    rules: tuple[str, ...]
    alert_ids: tuple[int, ...]
    message: str


def episodes(session: Session, query: Any) -> list[Episode]:
    """The episodes of the alerts ``query`` selects (e.g. :func:`alerts_query`), newest
    first; an episode lists every alert of it that the query selects."""
    groups: dict[str, list[m.Alert]] = {}
    for row in session.scalars(query.order_by(None).order_by(m.Alert.occurred_at,
                                                             m.Alert.id)):
        groups.setdefault(episode_key(row), []).append(row)
    out = []
    for key, rows in groups.items():
        states = {r.state for r in rows}
        state = next(s for s in ("open", "acknowledged", "closed") if s in states)
        first = rows[0]
        out.append(Episode(key, first.device_id, first.analysis, first.name,
                           dict(first.labels or {}), first.first_at or first.occurred_at,
                           state, tuple(f"limit ({r.level})" if r.rule == "limit"
                                        else r.rule for r in rows),
                           tuple(r.id for r in rows), first.message))
    out.sort(key=lambda e: (e.opened_at or dt.datetime.min, e.alert_ids[0]), reverse=True)
    return out


# --------------------------------------------------------------------------- targets

CHANNELS = ("email", "webhook")


def _target_view(t: m.NotificationTarget) -> dict[str, Any]:
    """A target as the audit log keeps it (the secret never: only whether one is set)."""
    return {"site_id": t.site_id, "channel": t.channel, "address": t.address,
            "secret": "set" if t.secret else None, "digest": t.digest, "active": t.active}


def add_target(session: Session, actor: Any, *, site_id: int | None, channel: str,
               address: str, secret: str | None = None,
               digest: bool = False) -> m.NotificationTarget:
    """A new notification target (audited): ``channel`` email (``address`` an e-mail
    address) or webhook (an http(s) URL; ``secret`` signs each body, a random 256-bit
    one is made when none is given: read it back from the returned row once, to give to
    the receiver). ``site_id`` None: alerts of every site. Bad input raises
    :class:`~scanbench.errors.InputError` naming the field."""
    import re
    import secrets
    from urllib.parse import urlsplit

    from scanbench.errors import InputError
    from scanbench.web.audit import record

    if channel not in CHANNELS:
        raise InputError(f"unknown channel {channel!r}: email or webhook", where="channel")
    address = (address or "").strip()
    if channel == "email":
        if not re.fullmatch(r"[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[^@\s,;<>\"]+", address):
            raise InputError(f"{address!r} is not an e-mail address", where="address")
        if secret:
            raise InputError("an e-mail target takes no secret", where="secret")
    else:
        parts = urlsplit(address)
        if parts.scheme not in ("http", "https") or not parts.hostname \
                or any(c.isspace() for c in address):
            raise InputError(f"{address!r} is not an http(s) URL", where="address")
        secret = secret or secrets.token_urlsafe(32)
        if len(secret) < 16:
            raise InputError("a webhook secret needs at least 16 characters", where="secret")
    if len(address) > 500:
        raise InputError("at most 500 characters", where="address")
    if site_id is not None and session.get(m.Site, site_id) is None:
        raise InputError(f"no site with id {site_id}", where="site_id")
    row = m.NotificationTarget(site_id=site_id, channel=channel, address=address,
                               secret=secret if channel == "webhook" else None,
                               digest=digest, active=True)
    session.add(row)
    session.flush()
    record(session, actor, "notification_target.add", "notification_target", row.id,
           site_id=site_id, after=_target_view(row))
    return row


def remove_target(session: Session, actor: Any, target_id: int) -> m.NotificationTarget:
    """Stop sending to a target (audited; the row stays, so its deliveries stay
    traceable). An unknown or already removed target raises
    :class:`~scanbench.errors.InputError`."""
    from scanbench.errors import InputError
    from scanbench.web.audit import record

    row = session.get(m.NotificationTarget, target_id)
    if row is None or not row.active:
        raise InputError(f"no active notification target with id {target_id}")
    before = _target_view(row)
    row.active = False
    record(session, actor, "notification_target.remove", "notification_target", row.id,
           site_id=row.site_id, before=before, after=_target_view(row))
    return row


# --------------------------------------------------------------------------- sending

ENV_SMTP = {"host": "SCANBENCH_SMTP_HOST", "port": "SCANBENCH_SMTP_PORT",
            "user": "SCANBENCH_SMTP_USER", "password": "SCANBENCH_SMTP_PASSWORD",
            "sender": "SCANBENCH_SMTP_FROM", "starttls": "SCANBENCH_SMTP_STARTTLS"}
ENV_BASE_URL = "SCANBENCH_BASE_URL"


@dataclass(frozen=True)
class SmtpServer:
    """The SMTP server alerts are sent through (from the environment of the node or of
    ``scanbench serve``: :func:`smtp_from_env`)."""

    host: str
    port: int = 25
    sender: str = "scanbench@localhost"
    username: str | None = None
    password: str | None = None
    starttls: bool = False

    def settings(self, to: str) -> Any:
        from scanbench.evaluation.notify import SmtpSettings

        return SmtpSettings(self.host, self.port, self.sender, (to,), self.username,
                            self.password, self.starttls)


def smtp_from_env(env: Any = None) -> SmtpServer | None:
    """SMTP settings from ``SCANBENCH_SMTP_HOST`` (none: e-mail is not configured),
    ``_PORT`` (default 587 with STARTTLS, else 25), ``_USER``, ``_PASSWORD``, ``_FROM``
    (default scanbench@<host name>) and ``_STARTTLS`` (1/true/yes). A bad port or flag
    raises :class:`~scanbench.errors.InputError` naming the variable."""
    import os
    import socket

    from scanbench.errors import InputError

    e = os.environ if env is None else env
    host = (e.get(ENV_SMTP["host"]) or "").strip()
    if not host:
        return None
    flag = (e.get(ENV_SMTP["starttls"]) or "").strip().lower()
    if flag not in ("", "0", "1", "true", "false", "yes", "no"):
        raise InputError(f"{flag!r} is not 1/0, true/false or yes/no", where=ENV_SMTP["starttls"])
    starttls = flag in ("1", "true", "yes")
    raw = (e.get(ENV_SMTP["port"]) or "").strip()
    try:
        port = int(raw) if raw else (587 if starttls else 25)
    except ValueError:
        raise InputError(f"{raw!r} is not a port number", where=ENV_SMTP["port"]) from None
    if not 0 < port < 65536:
        raise InputError(f"{port} is not a port number (1-65535)", where=ENV_SMTP["port"])
    sender = (e.get(ENV_SMTP["sender"]) or "").strip() or f"scanbench@{socket.getfqdn()}"
    return SmtpServer(host, port, sender, e.get(ENV_SMTP["user"]) or None,
                      e.get(ENV_SMTP["password"]) or None, starttls)


def _device_name(d: m.Device) -> str:
    return d.display_name or " ".join(x for x in (d.manufacturer, d.model, d.serial) if x) \
        or f"device {d.id}"


def _notice(session: Session, row: m.Alert, base_url: str) -> Any:
    """The :class:`scanbench.evaluation.notify.AlertNotice` of a stored alert. A trend
    alert is recomputed from the history to carry its baseline (mean, σ) into the text;
    a limit alert states its limit in the measurement's unit."""
    from scanbench.evaluation import trend
    from scanbench.evaluation.notify import AlertNotice

    device = session.get_one(m.Device, row.device_id)
    label = f"{row.analysis} {row.name}{_labels_text(dict(row.labels or {}))}"
    link = f"{base_url.rstrip('/')}/devices/{row.device_id}#alert-{row.id}"
    at = row.occurred_at or dt.datetime(1970, 1, 1)
    nan = math.nan
    if row.rule != "limit":
        report = series_trend(session, row.device_id, row.analysis, row.name, row.labels_key)
        series = SeriesId(row.device_id, row.analysis, row.name, row.labels_key)
        for f, a in zip(_trend_alerts(series, report), report.alerts, strict=True):
            if f.key == row.key:
                return AlertNotice(trend.Alert(
                    row.key, label, a.rule, a.direction, a.index, a.time, a.value, a.unit,
                    a.uncertainty, a.statistic, a.limit, a.first_index, a.first_time,
                    a.baseline_mean, a.baseline_sigma, a.message),
                    _device_name(device), row.limit_source, link)
    value = nan if row.value is None else row.value
    alert = trend.Alert(row.key, label, row.rule, row.direction or "high",  # type: ignore[arg-type]
                        0, at, value, row.unit, None,
                        nan if row.statistic is None else row.statistic,
                        nan if row.threshold is None else row.threshold, 0,
                        at, nan, nan, row.message)
    if row.rule == "limit":
        limit = (f"{row.level} limit {row.threshold:g}{_unit(row.unit)} "
                 f"({'upper' if row.direction == 'high' else 'lower'})"
                 if row.threshold is not None else f"{row.level} limit")
        return AlertNotice(alert, _device_name(device), row.limit_source, link, limit=limit,
                           kind=f"{row.level.capitalize()} limit alert")
    return AlertNotice(alert, _device_name(device), row.limit_source, link)


@dataclass(frozen=True)
class Sent:
    """What one delivery attempt did: the Notification row's id, its target, the alert
    (or the digest day), and the outcome (sent / failed with the error)."""

    notification_id: int
    target_id: int
    alert_id: int | None
    digest_day: dt.date | None
    state: str
    error: str | None = None


def _targets(session: Session, digest: bool) -> list[m.NotificationTarget]:
    return list(session.scalars(select(m.NotificationTarget).where(
        m.NotificationTarget.active.is_(True), m.NotificationTarget.digest.is_(digest))
        .order_by(m.NotificationTarget.id)))


def _site_alerts(target: m.NotificationTarget) -> Any:
    q = select(m.Alert)
    if target.site_id is not None:
        q = q.where(m.Alert.device_id.in_(select(m.Device.id).where(
            m.Device.site_id == target.site_id)))
    return q


def _ensure(session: Session, key: str, **values: Any) -> None:
    from sqlalchemy.exc import IntegrityError

    if session.scalar(select(m.Notification.id).where(m.Notification.key == key)) is not None:
        return
    try:
        with session.begin_nested():
            session.add(m.Notification(key=key, state="pending", attempts=0, **values))
    except IntegrityError:
        pass  # another process made it: it is owed once, whoever made the row


def episode_key(row: m.Alert) -> str:
    """The episode of a stored alert: its series and the time of the value that opened
    the episode (``first_at``; ``occurred_at`` for a row stored without one). Every
    alert of an episode has the same key; :func:`episodes` groups by it."""
    at = row.first_at or row.occurred_at
    return _key(SeriesId(row.device_id, row.analysis, row.name, row.labels_key).text,
                at.isoformat() if at else f"alert {row.id}")


def _deliver(session: Session, row: m.Notification, target: m.NotificationTarget,
             send: Any, smtp: SmtpServer | None) -> Sent:
    """One delivery of ``row`` to ``target``; recorded and committed at once, so a
    message sent is never sent again (:mod:`scanbench.evaluation.notify` is given an
    empty record: the Notification row is the record)."""
    from scanbench.evaluation.notify import WebhookSettings

    row.attempts += 1
    if target.channel == "email":
        if smtp is None:
            deliveries = []
            error: str | None = (f"e-mail is not configured: set {ENV_SMTP['host']} (and "
                                 "the other SCANBENCH_SMTP_* variables) where the node runs")
        else:
            deliveries = send(smtp=smtp.settings(target.address))
    else:
        # One attempt now: a failed delivery waits for the next run (retry there, not in
        # a sleep that would hold up the node's loop).
        deliveries = send(webhook=WebhookSettings(target.address, target.secret or "",
                                                  retries=0))
    if deliveries:
        d = deliveries[0]
        error = d.error if d.status == "failed" else None
    if error is None:
        row.state, row.error, row.sent_at = "sent", None, m.utcnow()
    else:
        row.state, row.error = "failed", error[:2000]
    session.commit()
    return Sent(row.id, target.id, row.alert_id, row.digest_day, row.state, row.error)


def send_pending(session: Session, *, smtp: SmtpServer | None = None,
                 base_url: str | None = None) -> list[Sent]:
    """Send each episode of open alerts to each active non-digest target of its site,
    once per episode and target: a Notification row (key
    ``<channel>:t<target>:episode:<series>|<episode start>``, :func:`episode_key`) is
    made for the first open alert of an episode seen, and every row not yet sent (new,
    or failed before: its ``attempts`` and ``error`` kept) is delivered now. Later
    alerts of the same episode (another rule firing while it is open) are not sent
    again: the device page and the API list them under the episode. Alerts closed or
    acknowledged before their row was made are not sent (nobody needs them); a row
    once made is sent even if its alert closed meanwhile. Commits after each delivery.
    ``smtp`` None: e-mail targets stay pending with the error saying SMTP is not
    configured."""
    import os

    from scanbench.evaluation.notify import notify

    base = base_url if base_url is not None else os.environ.get(ENV_BASE_URL, "")
    targets = _targets(session, digest=False)
    for t in targets:
        for a in session.scalars(_site_alerts(t).where(m.Alert.state == "open")
                                 .order_by(m.Alert.id)):
            _ensure(session, f"{t.channel}:t{t.id}:episode:{episode_key(a)}", target_id=t.id,
                    alert_id=a.id)
    session.commit()
    by_id = {t.id: t for t in targets}
    rows = session.scalars(select(m.Notification).where(
        m.Notification.state != "sent", m.Notification.alert_id.is_not(None),
        m.Notification.target_id.in_(list(by_id))).order_by(m.Notification.id)).all()
    out = []
    for row in rows:
        target = by_id[row.target_id]  # type: ignore[index]
        alert = session.get_one(m.Alert, row.alert_id)
        notice = _notice(session, alert, base)

        def send(notice: Any = notice, **channel: Any) -> Any:
            return notify(notice, set(), **channel)

        out.append(_deliver(session, row, target, send, smtp))
    return out


def send_digest(session: Session, day: dt.date, *, smtp: SmtpServer | None = None,
                base_url: str | None = None) -> list[Sent]:
    """Send each active digest target one message with every alert of its site that
    occurred on ``day`` (the scanner's local date), whatever its state now; once per
    target and day (key ``<channel>:t<target>:digest:<day>``), retried at the next call
    when it failed. A day without alerts sends nothing. Commits after each delivery."""
    import os

    from scanbench.evaluation.notify import digest

    base = base_url if base_url is not None else os.environ.get(ENV_BASE_URL, "")
    start = dt.datetime.combine(day, dt.time())
    out = []
    for t in _targets(session, digest=True):
        rows = session.scalars(_site_alerts(t).where(
            m.Alert.occurred_at >= start, m.Alert.occurred_at < start + dt.timedelta(days=1))
            .order_by(m.Alert.occurred_at, m.Alert.id)).all()
        if not rows:
            continue
        key = f"{t.channel}:t{t.id}:digest:{day.isoformat()}"
        _ensure(session, key, target_id=t.id, digest_day=day)
        session.commit()
        note = session.scalars(select(m.Notification).where(m.Notification.key == key)).one()
        if note.state == "sent":
            continue
        notices = [_notice(session, a, base) for a in rows]

        def send(notices: Any = notices, **channel: Any) -> Any:
            return digest(day, notices, set(), **channel)

        out.append(_deliver(session, note, t, send, smtp))
    return out


def run_notifications(session: Session, now: dt.datetime | None = None) -> list[Sent]:
    """What the node's loop runs: :func:`refresh_open` (alerts a baseline marked since
    has ended are closed first), :func:`send_pending`, and the digest of yesterday (this
    machine's local date) once it is over. SMTP from the environment."""
    smtp = smtp_from_env()
    today = (now or dt.datetime.now()).date()
    refresh_open(session)  # a baseline marked since closes alerts before they are sent
    session.commit()
    return (send_pending(session, smtp=smtp)
            + send_digest(session, today - dt.timedelta(days=1), smtp=smtp))

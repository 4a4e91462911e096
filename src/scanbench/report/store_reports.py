"""Reports from the store (issue 12 §4): a device's QC over a period, a device's
acceptance tests, and a site's patient dose, as one self-contained HTML page or a PDF.

They read the node's database only (results, measurements, scorecards, alerts,
lifecycle events, dose events) and show the same numbers as the web pages, with the
analysis report's look (:mod:`scanbench.report.html`): its number format
(:mod:`scanbench.report.numbers`), its status words and colours, its legend and its one
embedded plotly.js; the PDF is the same page printed by headless Chromium
(:mod:`scanbench.report.pdf`). A report is plain data first (:class:`StoreReport`:
sections of key/value rows, tables and figures), rendered by one template
(``templates/store_report.html``) with autoescape on, so text from DICOM headers or
forms (device names, protocols, comments) is shown as text, never run as markup.

Access control is the caller's: the web API passes only records its
:class:`~scanbench.web.scope.Scope` found; the command line is the node's own
operator. Periods are in the scanner's local dates (the header times the store keeps),
both ends included.

Rules stated in the reports
---------------------------
* **Results in a period**: the current (not superseded) results whose acquisition time
  lies in the period.
* **Acceptance tests** (:func:`acceptance_window`): the results acquired from the
  device's installation (its first result when no installation was recorded) to the
  end of the day of its acceptance event; without an acceptance event, within 30 days
  of the installation (the acceptance window of
  :mod:`scanbench.evaluation.schedule`), else of the first result.
* **Vendor claims**: the rules of the acceptance spec that name the device's make or
  model (``device:`` in the spec), i.e. limits that hold for that model only.
* **Dose distributions**: percentiles by linear interpolation between order statistics
  (numpy's default, Hyndman and Fan definition 7); the median of a protocol is what a
  diagnostic reference level is compared with (ICRP Publication 135, 2017).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import tempfile
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, aliased, selectinload

from scanbench import __version__
from scanbench.errors import InputError, ScanbenchError
from scanbench.evaluation import apply_spec, overall_status
from scanbench.evaluation.alerts import CLINICAL
from scanbench.report.html import (
    STATUS_MEANINGS,
    STATUS_WORDS,
    _figure_entry,
    _gzip_b64,
    _plotlyjs_b64,
    format_limits,
    provenance,
)
from scanbench.report.numbers import format_number, format_with_unit
from scanbench.store import models as m
from scanbench.types import STATUSES, DeviceIdentity, Limits, Measurement, Result

#: Figure size in px for print (the width of an A4 page with the report's margins).
PDF_FIGURE_SIZE = (680, 400)
#: At most this many control charts in a device report (most eventful first).
MAX_CHARTS = 24
#: Days after the installation within which acceptance tests count when no acceptance
#: event was recorded (scanbench.evaluation.schedule.DEFAULT_WINDOW_DAYS["acceptance"]).
ACCEPTANCE_DAYS = 30

# Words (and colours, by CSS class) for states that are not measurement statuses.
STATE_WORDS: dict[str, str] = {
    "passed": "passed", "failed": "failed", "overdue": "overdue", "due": "due",
    "not_applicable": "not applicable", "open": "open", "acknowledged": "acknowledged",
    "closed": "closed", "above_drl": "above DRL", "within": "within",
    "above_achievable": "above achievable level",
    "below_abnormally_low": "below abnormally-low level", "no_result": "no result",
}


# --------------------------------------------------------------------------- report data

@dataclass(frozen=True)
class RCell:
    """One cell: its text, whether it is a number (right-aligned), and a status code
    (a measurement status or a word of :data:`STATE_WORDS`) that colours it."""

    text: str
    numeric: bool = False
    status: str | None = None


@dataclass
class RTable:
    """A table: title, the clause or source it follows, column heads, rows, notes."""

    title: str
    head: list[str]
    rows: list[list[RCell]]
    clause: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass
class RSection:
    """One section of a report: key/value rows, tables, figures (plotly figures) and
    notes, in that order."""

    title: str
    intro: str = ""
    meta: list[tuple[str, str]] = field(default_factory=list)
    tables: list[RTable] = field(default_factory=list)
    figures: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class StoreReport:
    """A report from the store, as data: ``kind`` device / acceptance / site_dose."""

    kind: str
    title: str
    meta: list[tuple[str, str]]
    sections: list[RSection]
    filename: str  # a safe file name stem (ids and dates only, never outside text)


def _num(value: float | None, digits: int = 4) -> RCell:
    return RCell(format_number(value, digits=digits), numeric=True)


def _status(code: str) -> RCell:
    word = STATUS_WORDS.get(code) or STATE_WORDS.get(code) or code
    return RCell(word, status=code)


def _when(t: dt.datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M") if t is not None else "—"


def _labels(labels: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {format_number(v, digits=6) if isinstance(v, float) else v}"
                     for k, v in labels.items())


def _period_bounds(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start 00:00, end + 1 day 00:00): both dates included, scanner local time."""
    if end < start:
        raise InputError(f"the period ends ({end}) before it starts ({start})")
    return dt.datetime.combine(start, dt.time()), \
        dt.datetime.combine(end + dt.timedelta(days=1), dt.time())


def device_name(d: m.Device) -> str:
    """How a device is named in reports: its display name, else make, model and serial."""
    if d.display_name:
        return d.display_name
    parts = [p for p in (d.manufacturer, d.model) if p]
    if d.serial:
        parts.append(f"serial {d.serial}")
    return " ".join(parts) or f"device {d.id}"


def _current_results(session: Session, device_id: int, lo: dt.datetime | None,
                     hi: dt.datetime | None) -> list[m.Result]:
    """The device's results (not superseded) acquired in [lo, hi), oldest first."""
    later = aliased(m.Result)
    q = (select(m.Result).options(selectinload(m.Result.measurements)).where(
        m.Result.device_id == device_id,
        ~select(later.id).where(later.supersedes_id == m.Result.id).exists())
        .order_by(m.Result.acquired_at, m.Result.id))
    if lo is not None:
        q = q.where(m.Result.acquired_at >= lo)
    if hi is not None:
        q = q.where(m.Result.acquired_at < hi)
    return list(session.scalars(q))


def to_result(row: m.Result, device: m.Device) -> Result:
    """A stored result back as a :class:`scanbench.types.Result` (measurements with the
    limits and statuses stored; no figures' evidence)."""
    ident = DeviceIdentity(device.manufacturer, device.model, device.serial, None,
                           device.software_versions)
    r = Result(row.analysis, row.standard, row.series_uid, ident, row.acquired_at,
               warnings=list(row.warnings or []), parameters=dict(row.parameters or {}),
               scanbench_version=row.scanbench_version, spec=row.spec, source=row.source)
    for meas in row.measurements:
        limits = None
        if meas.limit_low is not None or meas.limit_high is not None:
            limits = Limits(meas.limit_low, meas.limit_high, meas.limit_source or "",
                            bool(meas.limit_verified) if meas.limit_verified is not None
                            else True)
        r.measurements.append(Measurement(
            meas.name, math.nan if meas.value is None else meas.value, meas.unit,
            labels=dict(meas.labels or {}), uncertainty=meas.uncertainty, limits=limits,
            status=meas.status, note=meas.note))  # type: ignore[arg-type]
    return r


def _analysis_title(analysis: str) -> str:
    try:
        from scanbench.analysis import registry

        return str(registry.get(analysis).title)
    except Exception:  # a report must not fail because an analysis module cannot load
        return analysis


def _identity(session: Session, d: m.Device) -> list[tuple[str, str]]:
    site = session.get(m.Site, d.site_id) if d.site_id is not None else None
    aliases = ", ".join(f"{a.value} ({a.kind.replace('_', ' ')})" for a in d.aliases)
    rows = [("Device", device_name(d)), ("Site", site.name if site else "none"),
            ("Modality", d.modality or "—"), ("Manufacturer", d.manufacturer or "—"),
            ("Model", d.model or "—"), ("Serial number", d.serial or "—"),
            ("Software (latest seen)", d.software_versions or "—"),
            ("Known as", aliases or "—"), ("Status", d.status)]
    if d.field_strength_t is not None:
        rows.append(("Field strength", f"{format_number(d.field_strength_t)} T"))
    if d.axial_fov_cm is not None:
        rows.append(("Axial field of view", f"{format_number(d.axial_fov_cm)} cm"))
    if d.country_of_manufacture:
        rows.append(("Country of manufacture", d.country_of_manufacture))
    return rows


# --------------------------------------------------------------------------- device QC

def _measurement_summary(rows: Sequence[m.Result]) -> RTable:
    """Per measurement (name + labels) of one test over the period: how many values,
    the latest with its unit and uncertainty, the lowest and highest, the latest limit
    and its source, and how many passed and failed."""
    series: dict[tuple[str, str], list[m.Measurement]] = defaultdict(list)
    for r in rows:
        for meas in r.measurements:
            series[(meas.name, meas.labels_key)].append(meas)
    out: list[list[RCell]] = []
    for (_name, _key), ms in series.items():
        last = ms[-1]
        values = [x.value for x in ms if x.value is not None]
        counts = Counter(x.status for x in ms)
        limits = format_limits(last.limit_low, last.limit_high)
        if limits and last.limit_verified is False:
            limits += " (unconfirmed)"
        out.append([
            RCell(last.name), RCell(_labels(last.labels)), _num(len(ms), 6),
            RCell(format_with_unit(last.value, last.unit, last.uncertainty), numeric=True),
            RCell(format_with_unit(min(values), last.unit) if values else "—", numeric=True),
            RCell(format_with_unit(max(values), last.unit) if values else "—", numeric=True),
            RCell(limits or "—"), RCell(last.limit_source or "—"),
            _num(counts.get("pass", 0), 6), _num(counts.get("fail", 0), 6),
            _status(last.status)])
    return RTable("Measurements over the period", [
        "measurement", "labels", "values", "latest", "lowest", "highest", "limits",
        "limit source", "pass", "fail", "latest status"], out)


#: A result with at most this many measurements lists their values on its row.
VALUES_ON_ROW = 4


def _result_rows(rows: Sequence[m.Result], device: m.Device) -> RTable:
    """One row per result: when, its id, its values (when it has few; just the value
    when the test measures one quantity), how many passed and failed, which failed, and
    its status. The specs the results were judged by go in the table's clause."""
    keys = {(x.name, x.labels_key) for r in rows for x in r.measurements}
    single = next(iter(keys))[0] if len(keys) == 1 else None
    out = []
    for r in rows:
        res = to_result(r, device)
        counts = Counter(x.status for x in res.measurements)
        failing = sorted({x.name for x in res.measurements if x.status == "fail"})
        if len(res.measurements) <= VALUES_ON_ROW:
            values = "; ".join(
                ("" if single else
                 (f"{x.name} ({_labels(x.labels)})" if x.labels else x.name) + ": ")
                + format_with_unit(None if math.isnan(x.value) else x.value, x.unit,
                                   x.uncertainty) for x in res.measurements)
        else:
            values = f"{len(res.measurements)} measurements"
        out.append([RCell(_when(r.acquired_at)), RCell(str(r.id), numeric=True),
                    RCell(values or "—", numeric=single is not None),
                    _num(counts.get("pass", 0), 6), _num(counts.get("fail", 0), 6),
                    RCell(", ".join(failing) or "—"), _status(overall_status(res))])
    specs = sorted({r.spec for r in rows if r.spec})
    return RTable("Results", ["acquired (scanner time)", "result id",
                              single or "values", "pass", "fail", "failed measurements",
                              "status"], out,
                  clause=f"judged when stored by {', '.join(specs)}" if specs
                  else "stored without a spec")


def _latest_result(row: m.Result) -> RTable:
    """Every measurement of one result: value with uncertainty and unit, limits, the
    limit's source, status and note."""
    out = []
    for x in row.measurements:
        limits = format_limits(x.limit_low, x.limit_high)
        if limits and x.limit_verified is False:
            limits += " (unconfirmed)"
        out.append([RCell(x.name), RCell(_labels(x.labels)),
                    RCell(format_with_unit(x.value, x.unit, x.uncertainty), numeric=True),
                    RCell(limits or "—"), RCell(x.limit_source or "—"), _status(x.status),
                    RCell(x.note or "")])
    return RTable(f"Latest result ({_when(row.acquired_at)}, result {row.id}): every "
                  "measurement", ["measurement", "labels", "value", "limits",
                                  "limit source", "status", "note"], out)


def _spec_tests(session: Session, device: m.Device, at: dt.datetime
                ) -> tuple[list[tuple[str, str]], list[Any]]:
    """The spec in force for the device at ``at`` (its meta rows and its required
    tests), by engineer evalstore's assignment (:mod:`scanbench.evaluation.assign`)
    when it is installed; else nothing (the report says so)."""
    from scanbench.evaluation import assign

    try:
        found = assign.spec_for_device(session, device, at)
    except ScanbenchError as exc:
        return [("Spec in force", f"cannot be resolved: {exc}")], []
    if found is None:
        return [], []
    spec = found.spec
    rows = [("Spec in force", f"{spec.name} version {spec.version}: {spec.title}"),
            ("Spec confirmed", "yes" if spec.verified else
             f"no: {spec.unverified_reason or 'contains unconfirmed limits'}"),
            ("Spec sources", "; ".join(spec.sources) or "—")]
    return rows, list(spec.tests)


def _scorecards(session: Session, device: m.Device, lo: dt.datetime, hi: dt.datetime
                ) -> RSection:
    """The device's stored scorecards whose period overlaps the report's, the newest
    row of each (spec version, period), and the tests and dimensions of the newest one.
    A report only reads: the node keeps the current period's scorecards stored
    (:mod:`scanbench.evaluation.current`), ``scanbench scorecard`` scores any other."""
    from scanbench.evaluation import assign

    section = RSection("Specification and scorecard")
    rows = session.scalars(select(m.Scorecard).where(
        m.Scorecard.device_id == device.id, m.Scorecard.period_start < hi,
        m.Scorecard.period_end > lo).order_by(m.Scorecard.id)).all()
    newest: dict[tuple[Any, ...], m.Scorecard] = {}
    for row in rows:  # a running period has a row per change: the newest counts
        newest[(row.spec_id, row.period_start, row.period_end)] = row
    if not newest and not any(assign.matches(a, device)
                              for a in session.scalars(select(m.SpecAssignment))):
        section.notes.append("no evaluation specification is assigned to this device: "
                             "no scorecard")
    elif not newest:
        section.notes.append(
            "No scorecard is stored for this period: the node scores the current calendar "
            "year after each result and once a day; `scanbench scorecard DEVICE --from "
            "DATE --to DATE` scores another period.")
    outcomes = sorted(newest.values(), key=lambda r: (r.period_start, r.id))
    table = RTable("Scorecards", ["spec", "version", "period (local time)", "score",
                                  "status", "compliance", "computed (UTC)"], [])
    cards: list[tuple[m.Scorecard, m.Spec]] = []
    for card in outcomes:
        spec = session.get_one(m.Spec, card.spec_id)
        cards.append((card, spec))
        table.rows.append([
            RCell(spec.name), RCell(spec.version),
            RCell(f"{_when(card.period_start)} – {_when(card.period_end)}"),
            _num(card.score), _status(card.status),
            RCell("—" if card.compliance is None
                  else f"{format_number(100 * card.compliance)} %", numeric=True),
            RCell(_when(card.created_at))])
    section.tables.append(table)
    if cards:
        card, spec = cards[-1]
        section.tables.extend(_scorecard_details(card, spec))
        method = (card.data or {}).get("score_method")
        if method:
            section.notes.append(f"Score: {method}.")
    return section


def _scorecard_details(card: m.Scorecard, spec: m.Spec) -> list[RTable]:
    """The tests and dimensions a scorecard's ``data`` holds."""
    data = card.data or {}
    out: list[RTable] = []
    tests = data.get("tests") or []
    if isinstance(tests, list) and tests:
        rows = []
        for t in tests:
            if not isinstance(t, dict):
                continue
            evidence = t.get("evidence") or t.get("result_ids") or []
            rows.append([RCell(str(t.get("test", ""))), RCell(str(t.get("frequency") or "—")),
                         _status(str(t.get("status", "—"))), RCell(str(t.get("reason") or "")),
                         RCell(", ".join(str(e) for e in evidence) if isinstance(evidence, list)
                               else str(evidence))])
        out.append(RTable(f"Required tests of {spec.name} version {spec.version}",
                          ["test", "frequency", "status", "reason", "evidence (result ids)"],
                          rows))
    inds = [i for i in data.get("indicators") or [] if isinstance(i, dict)]
    if inds:
        out.append(RTable("Device-level indicators", [
            "indicator", "dimension", "value", "limit (source)", "status", "reason"], [
            [RCell(str(i.get("indicator", "")).replace("_", " ")),
             RCell(str(i.get("dimension", "")).replace("_", " ")),
             RCell("—" if i.get("value") is None
                   else f"{format_number(i['value'])} {i.get('unit', '')}", numeric=True),
             RCell(_indicator_limit(i)), _status(str(i.get("status", "—"))),
             RCell(str(i.get("reason") or ""))] for i in inds]))
    dims = data.get("dimensions") or {}
    items = dims.items() if isinstance(dims, dict) else (
        (d.get("dimension", d.get("name", "")), d) for d in dims if isinstance(d, dict))
    drows = []
    for name, d in items:
        if not isinstance(d, dict):
            continue
        evidence = d.get("evidence") or []
        drows.append([RCell(str(name).replace("_", " ")), _num(d.get("score")),
                      _num(d.get("weight")),
                      RCell(", ".join(str(e) for e in evidence) if isinstance(evidence, list)
                            else str(evidence)), RCell(str(d.get("note") or ""))])
    if drows:
        out.append(RTable("Dimensions", ["dimension", "score", "weight (normalised)",
                                         "evidence (result ids)", "note"], drows))
    return out


def _indicator_limit(i: dict[str, Any]) -> str:
    lo, hi = i.get("low"), i.get("high")
    band = " and ".join(x for x in ("" if lo is None else f"≥ {format_number(lo)}",
                                    "" if hi is None else f"≤ {format_number(hi)}") if x)
    confirmed = "confirmed" if i.get("confidence") == "C" else "not confirmed"
    return f"{band or 'no limit'} ({i.get('source', '')}; {confirmed})"


def _chart_series(session: Session, device_id: int, lo: dt.datetime, hi: dt.datetime
                  ) -> list[tuple[str, str, dict[str, Any], int]]:
    """(analysis, name, labels, events) of the measurement series with at least two
    values in the period, the ones with failed values or alerts first."""
    later = aliased(m.Result)
    rows = session.execute(
        select(m.Measurement.analysis, m.Measurement.name, m.Measurement.labels_key,
               m.Measurement.status, m.Measurement.value)
        .join(m.Result, m.Result.id == m.Measurement.result_id)
        .where(m.Measurement.device_id == device_id, m.Measurement.acquired_at >= lo,
               m.Measurement.acquired_at < hi,
               ~select(later.id).where(later.supersedes_id == m.Result.id).exists())).all()
    n: Counter[tuple[str, str, str]] = Counter()
    bad: Counter[tuple[str, str, str]] = Counter()
    for analysis, name, key, status, value in rows:
        if value is not None:
            n[(analysis, name, key)] += 1
        if status == "fail":
            bad[(analysis, name, key)] += 1
    for a in session.scalars(select(m.Alert).where(m.Alert.device_id == device_id)):
        bad[(a.analysis, a.name, a.labels_key)] += 1
    keys = [k for k, c in n.items() if c >= 2]
    keys.sort(key=lambda k: (-bad[k], k))
    return [(a, nm, json.loads(key), bad[(a, nm, key)]) for a, nm, key in keys]


def _control_chart(session: Session, device: m.Device, analysis: str, name: str,
                   labels: dict[str, Any], lo: dt.datetime, hi: dt.datetime
                   ) -> tuple[Any, tuple[str, ...]]:
    """The control chart of one measurement series over the period, by the one
    control-chart builder the device page uses
    (:func:`scanbench.report.control_chart.chart_for_device`: limits with their source,
    baseline mean and ±2σ/±3σ bands per baseline segment, rule-breaking values marked,
    lifecycle events), and its notes."""
    import plotly.graph_objects as go

    from scanbench.report.control_chart import chart_for_device

    chart = chart_for_device(session, device.id, analysis, name, labels, since=lo, until=hi)
    return go.Figure(chart.figure), chart.notes


def _alerts(session: Session, device_id: int, lo: dt.datetime, hi: dt.datetime,
            lo_utc: dt.datetime, hi_utc: dt.datetime) -> RSection:
    """Alerts raised in the period (by the time of the value that raised them), and
    those acknowledged or closed in it, with who acknowledged and why."""
    q = select(m.Alert).where(m.Alert.device_id == device_id, or_(
        (m.Alert.occurred_at >= lo) & (m.Alert.occurred_at < hi),
        (m.Alert.ack_at >= lo_utc) & (m.Alert.ack_at < hi_utc),
        (m.Alert.closed_at >= lo_utc) & (m.Alert.closed_at < hi_utc),
        m.Alert.state == "open")).order_by(m.Alert.occurred_at, m.Alert.id)
    alerts = list(session.scalars(q))
    users = {u.id: u.username for u in session.scalars(select(m.User).where(
        m.User.id.in_({a.ack_user_id for a in alerts if a.ack_user_id is not None})))}
    rows = []
    for a in alerts:
        ack = ""
        if a.ack_at is not None:
            ack = f"{users.get(a.ack_user_id or -1, 'unknown user')}, {_when(a.ack_at)} UTC"
            if a.ack_comment:
                ack += f": {a.ack_comment}"
        closed = ""
        if a.closed_at is not None:
            closed = f"{_when(a.closed_at)} UTC" + (f": {a.closed_reason}"
                                                    if a.closed_reason else "")
        what = a.name + (f" ({_labels(a.labels)})" if a.labels else "")
        message = a.message + (f" [limit: {a.limit_source}]" if a.limit_source else "")
        rows.append([RCell(_when(a.occurred_at)), RCell(what), RCell(f"{a.rule} ({a.level})"),
                     RCell(format_with_unit(a.value, a.unit), numeric=True), RCell(message),
                     _status(a.state), RCell("; ".join(x for x in (
                         f"acknowledged by {ack}" if ack else "",
                         f"closed {closed}" if closed else "") if x) or "—")])
    counts = Counter(a.state for a in alerts)
    return RSection("Alerts", intro=(
        "Limit alerts (a value outside its action or tolerance level) and trend alerts "
        "(Westgard-style rules 1-3s, 2-2s, R-4s, 4-1s, 10x, CUSUM and EWMA against the "
        "device's own baseline) raised in the period, acknowledged or closed in it, and "
        "every alert still open."),
        meta=[("Raised in the period", str(sum(
            1 for a in alerts if a.occurred_at is not None and lo <= a.occurred_at < hi))),
            ("Open / acknowledged / closed", f"{counts.get('open', 0)} / "
             f"{counts.get('acknowledged', 0)} / {counts.get('closed', 0)}")],
        tables=[RTable("Alerts", ["value at (scanner time)", "measurement", "rule (level)",
                                  "value", "message", "state",
                                  "acknowledgement and closure"], rows)])


def _lifecycle(session: Session, device: m.Device, lo: dt.datetime, hi: dt.datetime
               ) -> RSection:
    from scanbench.evaluation import records

    events = list(session.scalars(select(m.LifecycleEvent).where(
        m.LifecycleEvent.device_id == device.id, m.LifecycleEvent.occurred_at >= lo,
        m.LifecycleEvent.occurred_at < hi).order_by(m.LifecycleEvent.occurred_at,
                                                     m.LifecycleEvent.id)))
    rows = [[RCell(_when(e.occurred_at)), RCell(e.kind.replace("_", " ")
                                                + (" (planned)" if e.planned else "")),
             RCell(e.summary or "—"), RCell(e.source),
             RCell("—" if e.cost is None else f"{format_number(e.cost)} {e.currency or ''}",
                   numeric=True), RCell("yes" if e.new_baseline else "")] for e in events]
    section = RSection("Lifecycle and reliability", tables=[RTable(
        "Lifecycle events in the period", ["when (local time)", "event", "summary",
                                            "entered by", "cost", "new baseline"], rows)])
    try:
        rel = records.device_reliability(session, device.id, lo, hi)
    except (ScanbenchError, KeyError, ValueError) as exc:
        section.notes.append(f"Reliability cannot be computed from the lifecycle log: {exc}")
        return section

    def hours(v: float | None) -> str:
        return "— (undefined)" if v is None else f"{format_number(v)} h"

    def pct(v: float | None) -> str:
        return "— (undefined)" if v is None else f"{format_number(v)} %"

    section.meta = [
        ("Staffed hours", _staffed_text(device)), ("In service", hours(rel.in_service_h)),
        ("Up time", hours(rel.up_h)),
        ("Unplanned downtime", hours(rel.unplanned_downtime_h)),
        ("Planned downtime", hours(rel.planned_downtime_h)),
        ("Failures (unplanned downtimes)", str(rel.failures)),
        ("Uptime (staffed hours)", pct(rel.uptime_pct)), ("MTBF", hours(rel.mtbf_h)),
        ("MTTR", hours(rel.mttr_h)), ("Availability", pct(rel.availability_pct))]
    section.notes.extend(rel.notes)
    section.tables.append(RTable("Definitions", ["term", "definition"], [
        [RCell(k.replace("_", " ")), RCell(v)] for k, v in records.DEFINITIONS.items()]))
    return section


def _staffed_text(device: m.Device) -> str:
    sh = device.staffed_hours or {}
    if not sh:
        return "around the clock (none entered)"
    names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    days = ", ".join(names[int(d)] for d in sh.get("weekdays", []) if 0 <= int(d) < 7)
    return f"{days} {sh.get('start', '?')}–{sh.get('end', '?')}"


def device_report(session: Session, device: m.Device, start: dt.date, end: dt.date, *,
                  max_charts: int = MAX_CHARTS) -> StoreReport:
    """The QC report of ``device`` over ``start``..``end`` (scanner local dates, both
    included): identity, the spec in force and the stored scorecards, every test's
    results with their numbers, limits, sources and statuses, control charts, alerts,
    lifecycle events and reliability."""
    lo, hi = _period_bounds(start, end)
    lo_utc, hi_utc = lo.replace(tzinfo=dt.UTC), hi.replace(tzinfo=dt.UTC)
    results = _current_results(session, device.id, lo, hi)
    by_analysis: dict[str, list[m.Result]] = defaultdict(list)
    for r in results:
        if r.analysis not in CLINICAL:  # patients' series: their own section below
            by_analysis[r.analysis].append(r)
    from scanbench.evaluation import assign

    zone = assign.site_zone(session, device)
    spec_meta, tests = _spec_tests(session, device,
                                   assign.to_utc(hi - dt.timedelta(seconds=1), zone))
    score = _scorecards(session, device, lo, hi)
    score.meta = spec_meta + score.meta
    if not spec_meta:
        score.notes.insert(0, "No evaluation spec is assigned to this device: the results "
                              "keep the limits they were judged by when stored.")
    sections: list[RSection] = [RSection("Device", meta=_identity(session, device)), score]
    required = RTable("Required tests", ["test", "frequency", "source", "results in the "
                                         "period", "latest", "latest status"], [])
    for t in tests:
        analysis = t.analysis or t.test
        got = by_analysis.get(analysis) or by_analysis.get(t.test) or []
        last = got[-1] if got else None
        required.rows.append([
            RCell(t.title or t.test), RCell(t.frequency or "not scheduled"), RCell(t.source),
            _num(len(got), 6), RCell(_when(last.acquired_at) if last else "—"),
            _status(overall_status(to_result(last, device)) if last else "no_result")])
    qc = RSection("QC results in the period", intro=(
        "Each test's current results acquired in the period (re-analysed results replace "
        "the ones they supersede), and each measurement over the period with its unit, "
        "its limit and the limit's source."))
    if tests:
        qc.tables.append(required)
    for analysis, rows in sorted(by_analysis.items()):
        summary = _measurement_summary(rows)
        summary.title = f"{_analysis_title(analysis)}: measurements"
        summary.clause = rows[-1].standard
        listing = _result_rows(rows, device)
        listing.title = f"{_analysis_title(analysis)}: results"
        listing.clause = f"{analysis}, {len(rows)} result(s), {listing.clause}"
        qc.tables.extend([summary, listing])
        if len(rows[-1].measurements) > VALUES_ON_ROW:
            qc.tables.append(_latest_result(rows[-1]))
    if not results:
        qc.notes.append("No result was acquired in the period.")
    sections.append(qc)
    charts = RSection("Control charts", intro=(
        "Each measurement series over the period: its values, its limits with their "
        "source, the baseline mean with ±2σ and ±3σ bands (restarting at each new "
        "baseline), the values that failed or broke a trend rule, and lifecycle events "
        "(series with failures or alerts first)."))
    series = _chart_series(session, device.id, lo, hi)
    series = [x for x in series if x[0] not in CLINICAL]
    for analysis, name, labels, _events in series[:max_charts]:
        fig, notes = _control_chart(session, device, analysis, name, labels, lo, hi)
        charts.figures.append(fig)
        charts.notes.extend(f"{name}: {n}" for n in notes)
    if len(series) > max_charts:
        charts.notes.append(f"{len(series) - max_charts} more measurement series are not "
                            "drawn here; their values are in the tables above and, in full, "
                            f"from GET /api/v1/devices/{device.id}/history?format=csv.")
    if not series:
        charts.notes.append("No measurement has two or more values in the period.")
    from scanbench.report.clinical_iq_section import section as clinical_section

    clinical = clinical_section(session, device, lo, hi)
    sections.extend([charts, *([clinical] if clinical is not None else []),
                     _alerts(session, device.id, lo, hi, lo_utc, hi_utc),
                     _lifecycle(session, device, lo, hi)])
    return StoreReport(
        "device", f"Device QC report: {device_name(device)}",
        [("Period", f"{start.isoformat()} to {end.isoformat()} (scanner local dates, both "
                    "included)"), ("Results", str(len(results)))],
        sections, f"device-{device.id}-qc-{start.isoformat()}-{end.isoformat()}")


# --------------------------------------------------------------------------- acceptance

def acceptance_window(session: Session, device: m.Device
                      ) -> tuple[dt.datetime | None, dt.datetime | None, str]:
    """[from, to) of the device's acceptance tests and the rule that gave it (see the
    module docstring); (None, None, why) when the device has no result at all."""
    events = {e.kind: e for e in session.scalars(
        select(m.LifecycleEvent).where(m.LifecycleEvent.device_id == device.id,
                                       m.LifecycleEvent.kind.in_(("installation",
                                                                  "acceptance")),
                                       m.LifecycleEvent.occurred_at.is_not(None))
        .order_by(m.LifecycleEvent.occurred_at.desc()))}  # the earliest of each kind wins
    first = session.scalar(select(m.Result.acquired_at).where(
        m.Result.device_id == device.id, m.Result.acquired_at.is_not(None))
        .order_by(m.Result.acquired_at).limit(1))
    install, accept = events.get("installation"), events.get("acceptance")
    days = dt.timedelta(days=ACCEPTANCE_DAYS)
    if install is not None and install.occurred_at is not None:
        lo = install.occurred_at
        lo_text = f"the installation ({_when(lo)})"
    elif first is not None:
        lo = first
        lo_text = f"the device's first result ({_when(lo)}; no installation recorded)"
    else:
        return None, None, "the device has no result"
    if accept is not None and accept.occurred_at is not None and accept.occurred_at >= lo:
        hi = dt.datetime.combine(accept.occurred_at.date() + dt.timedelta(days=1), dt.time())
        why = (f"results acquired from {lo_text} to the end of the day of the acceptance "
               f"event ({_when(accept.occurred_at)})")
    else:
        hi = lo + days
        why = (f"results acquired within {ACCEPTANCE_DAYS} days of {lo_text}: no acceptance "
               "event recorded (the acceptance window of the QC schedule)")
    return lo, hi, why


def _acceptance_spec(session: Session, device: m.Device, name: str | None,
                     rows: Sequence[m.Result]) -> Any:
    """The spec to judge against: the one named (stored in the database, else built in
    or a file), else the one assigned to the device, else the one the results were
    stored with."""
    from scanbench.evaluation import assign
    from scanbench.specs import load_spec

    if name:
        stored_id = session.scalar(select(m.Spec.id).where(m.Spec.name == name).limit(1))
        if stored_id is not None:  # the newest stored version: what scorecards judge by
            return assign.parse_stored(session, assign.stored_spec(session, name))
        return load_spec(name)

    at = assign.to_utc(rows[0].acquired_at, assign.site_zone(session, device)) \
        if rows and rows[0].acquired_at else None
    found = assign.spec_for_device(session, device, at)
    if found is not None:
        return found.spec
    stored = [r.spec for r in rows if r.spec]
    if not stored:
        return None
    try:
        # a node result's spec is stored as name@version (evaluation.node_spec)
        return load_spec(Counter(stored).most_common(1)[0][0].partition("@")[0])
    except ScanbenchError:  # a spec the results were judged by that is not installed here
        return None


def acceptance_report(session: Session, device: m.Device, spec_name: str | None = None
                      ) -> StoreReport:
    """The device's acceptance tests (:func:`acceptance_window`) judged against the
    acceptance spec, with the vendor's claims (the spec's model-specific rules) shown
    beside each measurement they apply to."""
    lo, hi, rule = acceptance_window(session, device)
    rows = _current_results(session, device.id, lo, hi) if lo is not None else []
    spec = _acceptance_spec(session, device, spec_name, rows)
    ident = DeviceIdentity(device.manufacturer, device.model, device.serial, None,
                           device.software_versions)
    sections = [RSection("Device", meta=_identity(session, device))]
    meta = [("Rule", rule)]
    if spec is not None:
        meta += [("Acceptance spec", f"{spec.name} version {spec.version}: {spec.title}"),
                 ("Spec confirmed", "yes" if spec.verified else
                  f"no: {spec.unverified_reason or 'contains unconfirmed limits'}")]
    else:
        meta.append(("Acceptance spec", "none assigned or named: measurements are shown "
                                        "with the limits they were stored with"))
    window = RSection("Acceptance tests", meta=meta)
    sections.append(window)
    tests_done: set[str] = set()
    for r in rows:
        res = to_result(r, device)
        if spec is not None:
            apply_spec(res, spec)
        tests_done.add(r.analysis)
        claims = [] if spec is None else [
            rl for rl in spec.rules_for(r.analysis)
            if rl.device is not None and rl.device.matches(ident)]
        table = RTable(f"{_analysis_title(r.analysis)}, {_when(r.acquired_at)} "
                       f"(result {r.id})", ["measurement", "labels", "value", "limits",
                                            "limit source", "vendor claim", "status"], [],
                       clause=r.standard)
        for meas in res.measurements:
            claim = next((rl for rl in claims if rl.measurement == meas.name
                          and rl.matches_labels(meas.labels)), None)
            lim = meas.limits
            limits = format_limits(lim.low, lim.high) if lim else ""
            if lim is not None and not lim.verified:
                limits += " (unconfirmed)"
            table.rows.append([
                RCell(meas.name), RCell(_labels(meas.labels)),
                RCell(format_with_unit(meas.value, meas.unit, meas.uncertainty),
                      numeric=True),
                RCell(limits or "—"), RCell(lim.source if lim else "—"),
                RCell(f"{format_limits(claim.low, claim.high)} ({claim.source})"
                      if claim is not None else "—"), _status(meas.status)])
        table.notes.extend(res.warnings)
        window.tables.append(table)
    if spec is not None and spec.tests:
        required = [t for t in spec.tests if t.frequency == "acceptance"] or list(spec.tests)
        window.tables.insert(0, RTable(
            f"Tests the spec {spec.name} requires", ["test", "frequency", "source", "done"],
            [[RCell(t.title or t.test), RCell(t.frequency or "not scheduled"),
              RCell(t.source), _status("passed" if (t.analysis or t.test) in tests_done
                                       else "no_result")] for t in required]))
    if not rows:
        window.notes.append("No result lies in the acceptance window.")
    counts = Counter(s.status for t in window.tables for row in t.rows for s in row
                     if s.status in STATUSES)
    return StoreReport(
        "acceptance", f"Acceptance test report: {device_name(device)}",
        [("Window", f"{_when(lo)} to {_when(hi)} (scanner local time)" if lo else "none"),
         ("Results", str(len(rows))),
         ("Measurements", ", ".join(f"{v} {STATUS_WORDS[k]}" for k, v in counts.items())
          or "—")],
        sections, f"device-{device.id}-acceptance")


# --------------------------------------------------------------------------- site dose

def site_dose_report(session: Session, site: m.Site, start: dt.date, end: dt.date, *,
                     drl: str | None = None) -> StoreReport:
    """Patient dose at ``site`` over the period, by the dose page's statistics
    (:func:`scanbench.clinical.dose_stats.dose_statistics`, grouped by device and
    protocol): per quantity, each group's n, median, quartiles and range, its median
    against the reference level of its exam category in the table ``drl`` (default
    :data:`~scanbench.clinical.dose_stats.DEFAULT_DRL_TABLE`), the outliers with their
    study, and the dose page's box plots
    (:func:`scanbench.report.dose_charts.dose_box_figure`)."""
    import plotly.graph_objects as go

    from scanbench.clinical import dose_stats as ds
    from scanbench.clinical import federated
    from scanbench.report.dose_charts import dose_box_figure

    _period_bounds(start, end)  # checks the order
    filters = ds.Filters(site_id=site.id, date_from=start,
                         date_to=end + dt.timedelta(days=1))
    devices = {d.id: d for d in session.scalars(select(m.Device).where(
        m.Device.site_id == site.id).order_by(m.Device.id))}
    names = {i: device_name(d) for i, d in devices.items()}
    first = RSection("Site", meta=[("Site", site.name),
                                   ("Institution", site.institution or "—"),
                                   ("Devices", ", ".join(names.values()) or "none")])
    sections = [first]
    table_title = ""
    for key, q in ds.QUANTITIES.items():
        # at a central node: with the site's federated days (scanbench.clinical.federated)
        stats = federated.dose_statistics(session, key, filters, table=drl)
        if not stats.groups:
            continue
        if stats.table is not None:
            table_title = f"{stats.table.title}: {stats.table.source}"
        section = RSection(f"{q.label} ({q.unit})", intro=(
            f"One value per {q.per}." + (f" Method: {q.method}." if q.method else "")),
            notes=list(stats.notes))
        rows = []
        sources: dict[str, None] = {}
        for g in stats.groups:
            d, ref = g.distribution, g.reference
            rows.append([RCell(g.protocol or "(no protocol)"),
                         RCell(names.get(g.device_id or -1, "—")), _num(d.n, 6),
                         _num(d.median), _num(d.q1), _num(d.q3), _num(d.minimum),
                         _num(d.maximum), _num(ref.level if ref else None),
                         _num(ref.ratio_median if ref else None, 3),
                         _status(ref.outcome) if ref else RCell("—"),
                         RCell(ref.exam.replace("_", " ") if ref else "—")])
            if ref is not None:
                sources[f"{ref.title}: {ref.source}"] = None
        section.tables.append(RTable(
            f"{q.label} ({q.unit}) per protocol and device",
            ["protocol", "device", "n", "median", "Q1", "Q3", "lowest", "highest", "DRL",
             "median / DRL", "median vs levels", "exam category"], rows,
            notes=[f"Reference levels: {src}" for src in sources]))
        if stats.outliers:
            section.tables.append(RTable(
                f"Outliers ({stats.outliers_total}, {ds.OUTLIER_RULE})",
                ["study", "device", "protocol", "when (scanner time)", "value",
                 "upper fence"],
                [[RCell(o.study_uid), RCell(names.get(o.device_id or -1, "—")),
                  RCell(o.protocol or "—"), RCell(_when(o.occurred_at)),
                  RCell(format_with_unit(o.value, q.unit), numeric=True),
                  RCell(format_with_unit(o.upper_fence, q.unit), numeric=True)]
                 for o in stats.outliers]))
        section.figures.append(go.Figure(dose_box_figure(stats, names)))
        sections.append(section)
    if len(sections) == 1:
        first.notes.append("No dose event was recorded at this site in the period.")
    first.notes.extend([f"Percentiles: {ds.PERCENTILE_METHOD}.",
                        f"Reference levels: {ds.DRL_RULE}."])
    return StoreReport(
        "site_dose", f"Site dose report: {site.name}",
        [("Period", f"{start.isoformat()} to {end.isoformat()} (scanner local dates, both "
                    "included)"), ("Reference levels", table_title or "—")],
        sections, f"site-{site.id}-dose-{start.isoformat()}-{end.isoformat()}")


# --------------------------------------------------------------------------- rendering

def render_html(report: StoreReport, *, figure_size: tuple[int, int] | None = None,
                template: str = "store_report.html") -> str:
    """The report as one self-contained HTML page (plotly.js embedded once, compressed,
    as in the analysis report); ``figure_size`` fixes every figure's size for print;
    ``template``: the page in ``report/templates`` (autoescape on: names and labels read
    from headers are shown as text)."""
    entries: list[str] = []
    templates: dict[str, int] = {}
    slots: list[list[Any]] = []
    for i, section in enumerate(report.sections):
        mine = []
        for j, fig in enumerate(section.figures):
            entry, slot = _figure_entry(fig, f"fig-{i + 1}-{j + 1}", figure_size, templates)
            entries.append(entry)
            mine.append(slot)
        slots.append(mine)
    template_list = [json.loads(t) for t, _ in sorted(templates.items(), key=lambda kv: kv[1])]
    figure_block = ""
    if entries:
        figure_block = _gzip_b64('{"templates":' + json.dumps(template_list, separators=(",", ":"))
                                 + ',"figures":[' + ",".join(entries) + "]}")
    used = {c.status for s in report.sections for t in s.tables for row in t.rows for c in row
            if c.status}
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("scanbench.report", "templates"),
        autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined)
    return env.get_template(template).render(
        report=report, slots=slots, version=__version__,
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        provenance=provenance(),
        status_legend=[(s, STATUS_WORDS[s], STATUS_MEANINGS[s]) for s in STATUSES
                       if s in used],
        plotlyjs_b64=_plotlyjs_b64() if entries else "", figure_block=figure_block,
        eager=figure_size is not None)


def write(report: StoreReport, path: str | Path, *,
          template: str = "store_report.html") -> Path:
    """Write ``report`` as HTML, or as PDF when ``path`` ends in ``.pdf`` (headless
    Chromium, :func:`scanbench.report.pdf.html_to_pdf`)."""
    from scanbench.report.pdf import save_report

    path = Path(path)
    as_pdf = path.suffix.lower() == ".pdf"
    html = render_html(report, figure_size=PDF_FIGURE_SIZE if as_pdf else None,
                       template=template)
    return save_report(html, path)


def pdf_bytes(report: StoreReport, *, template: str = "store_report.html") -> bytes:
    """The report printed to PDF, as bytes (for a download)."""
    with tempfile.TemporaryDirectory(prefix="scanbench-report-") as tmp:
        return write(report, Path(tmp) / "report.pdf", template=template).read_bytes()


__all__ = ["RCell", "RSection", "RTable", "StoreReport", "acceptance_report",
           "acceptance_window", "device_report", "pdf_bytes", "render_html",
           "site_dose_report", "to_result", "write"]

"""The device page (issue 12 §2 "device page"; issue 13: scorecards, alerts acknowledged,
lifecycle entered by form): one device's whole life on one page.

``GET /devices/{id}`` shows the identity (site, make, model, serial, modality, class
attributes, aliases), the software history (software changes recorded as lifecycle
events and the Software Versions (0018,1020) seen in the series' headers), the lifecycle
events, the latest scorecard of each spec version, the alerts not yet closed (with an
acknowledge form), a lifecycle entry form, the latest result of each test, and one
control chart per measurement series (analysis, name, labels).

Speed (a device with ten years of daily QC must open fast): the first response draws
no chart. Each chart is a placeholder that htmx fills when it scrolls into view
(``hx-trigger="revealed"``) from ``GET /devices/{id}/chart``, which builds the figure
from the store (:func:`scanbench.report.control_chart.chart_for_device`: the history
downsampled on the server, every rule-breaking value kept); zooming fetches the zoomed
window again at full resolution up to the same number of points
(``/static/device.js``); every value is in the API's CSV
(``/api/v1/devices/{id}/history?format=csv``).

Forms post with the session's CSRF token (the page framework checks it), redirect after
a success (POST-redirect-GET), and show a refused entry's message beside its field. Who
may do what is checked on the record's site through the Scope: a viewer sees no form and
a viewer's POST is 403; another site's device is 404.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from sqlalchemy import func, select, true
from sqlalchemy.orm import Session, aliased

from scanbench.errors import InputError
from scanbench.evaluation.alerts import CLINICAL
from scanbench.report.control_chart import DEFAULT_MAX_POINTS, chart_for_device
from scanbench.store import models as m
from scanbench.web.audit import commit_with_retry
from scanbench.web.auth import RANK
from scanbench.web.pages.common import P, PageCtx, page, redirect, render, render_partial
from scanbench.web.scope import NotFound

router = APIRouter()

#: Who may enter a lifecycle event and acknowledge an alert on a device's site.
ENTER_ROLE = "technologist"
ACK_ROLE = "technologist"
#: Lifecycle events listed on the page (newest first); older ones: the API.
MAX_EVENTS = 500
#: Statuses in the order that decides a result's overall status (the order of
#: scanbench.evaluation.overall_status: a fail, else a refusal, else a pass, else info).
_OVERALL = ("fail", "refused", "pass")
#: The lifecycle form's fields, in the order shown (errors are reported against them).
FORM_FIELDS = ("kind", "occurred_at", "end", "summary", "cost", "currency", "planned",
               "new_baseline")


# --------------------------------------------------------------------------- data

@dataclass(frozen=True)
class SeriesRef:
    """One measurement series of the device: what one control chart shows."""

    analysis: str
    name: str
    labels: dict[str, Any]
    labels_key: str
    unit: str

    @property
    def label_text(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(self.labels.items()))

    def query(self) -> str:
        """The query string naming this series (chart fragment and CSV)."""
        return urlencode({"analysis": self.analysis, "name": self.name,
                          "labels": self.labels_key})

    @property
    def anchor(self) -> str:
        """A stable element id (readable head + a digest: labels may hold any text)."""
        text = f"{self.analysis}|{self.name}|{self.labels_key}"
        head = "".join(c if c.isalnum() else "-" for c in f"{self.name}")[:60]
        return f"chart-{head}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def measurement_series(session: Session, device_id: int) -> list[SeriesRef]:
    """Every (analysis, name, labels) measured on the device, in order of analysis, name
    and labels: one scan of the index ``measurement (device_id, analysis, name,
    labels_key, acquired_at)`` that reads no row (no unit, no count, no supersession
    check: with ten years of daily QC those made this the slowest part of the page;
    each chart says its unit and count when it loads)."""
    rows = session.execute(
        select(m.Measurement.analysis, m.Measurement.name, m.Measurement.labels_key)
        # patients' noise varies with the patient: its own section (pages/clinical_iq.py)
        .where(m.Measurement.device_id == device_id,
               m.Measurement.analysis.not_in(CLINICAL))
        .group_by(m.Measurement.analysis, m.Measurement.name, m.Measurement.labels_key)
        .order_by(m.Measurement.analysis, m.Measurement.name, m.Measurement.labels_key))
    out = []
    for analysis, name, key in rows:
        try:
            labels = json.loads(key) if key else {}
        except json.JSONDecodeError:
            labels = {}
        out.append(SeriesRef(analysis, name, labels if isinstance(labels, dict) else {},
                             key or "{}", ""))
    return out


def overall(statuses: set[str]) -> str:
    """A result's status from its measurements' (as scanbench.evaluation.overall_status)."""
    return next((s for s in _OVERALL if s in statuses), "info")


def latest_results(session: Session, device_id: int) -> list[dict[str, Any]]:
    """The latest current (not superseded) result of each analysis on the device, newest
    first, with its overall status and its measurements' status counts."""
    later = aliased(m.Result)
    current = ~select(later.id).where(later.supersedes_id == m.Result.id).exists()
    newest = (select(m.Result.analysis, func.max(m.Result.acquired_at).label("at"))
              .where(m.Result.device_id == device_id, current)
              .group_by(m.Result.analysis).subquery())
    rows = session.scalars(
        select(m.Result).join(newest, (newest.c.analysis == m.Result.analysis)
                              & (newest.c.at == m.Result.acquired_at))
        .where(m.Result.device_id == device_id, current)
        .order_by(m.Result.acquired_at.desc(), m.Result.id.desc())).all()
    seen: set[str] = set()
    picked = []
    for r in rows:  # two results at the same instant: the newest row
        if r.analysis not in seen:
            seen.add(r.analysis)
            picked.append(r)
    # analyses whose results all lack a time (max() is NULL, the join finds none)
    untimed = session.scalars(
        select(m.Result).where(m.Result.device_id == device_id, current,
                               m.Result.analysis.not_in(seen) if seen else true())
        .order_by(m.Result.id.desc())).all()
    for r in untimed:
        if r.analysis not in seen:
            seen.add(r.analysis)
            picked.append(r)
    counts: dict[int, dict[str, int]] = {r.id: {} for r in picked}
    if picked:
        for rid, status, n in session.execute(
                select(m.Measurement.result_id, m.Measurement.status, func.count())
                .where(m.Measurement.result_id.in_(list(counts)))
                .group_by(m.Measurement.result_id, m.Measurement.status)):
            counts[rid][status] = int(n)
    # the newest expert review decision received for each (issue 14 §2)
    review: dict[int, m.ReviewDecision] = {}
    if picked:
        for d in session.scalars(select(m.ReviewDecision).where(
                m.ReviewDecision.result_id.in_(list(counts)))
                .order_by(m.ReviewDecision.decided_at, m.ReviewDecision.id)):
            if d.result_id is not None:
                review[d.result_id] = d
    return [{"result": r, "status": overall(set(counts[r.id])), "counts": counts[r.id],
             "review": review.get(r.id)} for r in picked]


def software_history(session: Session, device_id: int) -> dict[str, Any]:
    """Software changes: the lifecycle events of kind ``software_change`` (entered, or
    recorded from the headers) and each Software Versions (0018,1020) value seen in the
    device's series with the first and last acquisition that carried it."""
    events = session.scalars(select(m.LifecycleEvent).where(
        m.LifecycleEvent.device_id == device_id, m.LifecycleEvent.kind == "software_change")
        .order_by(m.LifecycleEvent.occurred_at.desc(), m.LifecycleEvent.id.desc())).all()
    seen = session.execute(
        select(m.Series.software_versions, func.min(m.Series.acquired_at),
               func.max(m.Series.acquired_at), func.count())
        .where(m.Series.device_id == device_id, m.Series.software_versions.is_not(None))
        .group_by(m.Series.software_versions)
        .order_by(func.min(m.Series.acquired_at))).all()
    return {"events": events,
            "seen": [{"versions": v, "first": a, "last": b, "series": n}
                     for v, a, b, n in seen]}


def lifecycle_events(session: Session, device_id: int) -> tuple[list[m.LifecycleEvent], int]:
    """The newest :data:`MAX_EVENTS` lifecycle events (newest first) and how many there
    are in all."""
    total = session.scalar(select(func.count()).select_from(m.LifecycleEvent).where(
        m.LifecycleEvent.device_id == device_id)) or 0
    rows = session.scalars(select(m.LifecycleEvent).where(
        m.LifecycleEvent.device_id == device_id)
        .order_by(m.LifecycleEvent.occurred_at.desc(), m.LifecycleEvent.id.desc())
        .limit(MAX_EVENTS)).all()
    return list(rows), int(total)


def scorecards(session: Session, device_id: int) -> list[dict[str, Any]]:
    """The newest stored scorecard of each spec version the device was judged by
    (``scorecard`` rows are never rewritten: the newest row of a spec version is its
    current one), newest spec version first."""
    newest = (select(m.Scorecard.spec_id, func.max(m.Scorecard.id).label("id"))
              .where(m.Scorecard.device_id == device_id)
              .group_by(m.Scorecard.spec_id).subquery())
    rows = session.execute(
        select(m.Scorecard, m.Spec).join(newest, newest.c.id == m.Scorecard.id)
        .join(m.Spec, m.Spec.id == m.Scorecard.spec_id)
        .order_by(m.Scorecard.created_at.desc(), m.Scorecard.id.desc())).all()
    return [{"card": card, "spec": spec, "tests": _card_tests(card.data),
             "indicators": _card_indicators(card.data),
             "dimensions": _card_dimensions(card.data)} for card, spec in rows]


def _card_indicators(data: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The device-level indicators of a scorecard's ``data``
    (:mod:`scanbench.evaluation.indicators`): value with its unit, limit with its source
    and whether the source confirms it, status and reason."""
    out = []
    for i in (data or {}).get("indicators") or []:
        if not isinstance(i, Mapping):
            continue
        value, lo, hi = i.get("value"), i.get("low"), i.get("high")
        band = " and ".join(x for x in ("" if lo is None else f"≥ {lo:g}",
                                        "" if hi is None else f"≤ {hi:g}") if x)
        status = str(i.get("status") or "")
        out.append({"name": str(i.get("indicator") or ""),
                    "dimension": str(i.get("dimension") or ""),
                    "value": value if isinstance(value, int | float) else None,
                    "unit": str(i.get("unit") or ""), "limit": band or "no limit",
                    "confirmed": i.get("confidence") == "C",
                    "source": str(i.get("source") or ""), "status": status,
                    "css": _TEST_CSS.get(status, status), "reason": str(i.get("reason") or "")})
    return out


def _card_tests(data: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The required tests of a scorecard's ``data`` as rows (status, reason, evidence
    result ids), whatever of them the row holds."""
    tests = (data or {}).get("tests") or []
    if isinstance(tests, Mapping):
        tests = [{"test": k, **(v if isinstance(v, Mapping) else {"status": v})}
                 for k, v in tests.items()]
    out = []
    for t in tests if isinstance(tests, list) else []:
        if not isinstance(t, Mapping):
            continue
        evidence = t.get("evidence") or t.get("result_ids") or []
        ids = [e for e in (evidence if isinstance(evidence, list) else [evidence])
               if isinstance(e, int) and not isinstance(e, bool)]
        status = str(t.get("status") or "")
        out.append({"test": str(t.get("test") or t.get("analysis") or t.get("name") or ""),
                    "title": str(t.get("title") or ""),
                    "status": status, "css": _TEST_CSS.get(status, status),
                    "reason": str(t.get("reason") or ""),
                    "frequency": str(t.get("frequency") or "not confirmed"),
                    "dimension": str(t.get("dimension") or ""),
                    "source": str(t.get("source") or ""),
                    "evidence": ids})
    return out


#: Scorecard test statuses (scanbench.evaluation.scorecard) -> the status colours.
_TEST_CSS = {"passed": "pass", "failed": "fail", "overdue": "overdue", "due": "info",
             "not_judged": "not_judged", "not_applicable": "info"}


def _card_dimensions(data: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    dims = (data or {}).get("dimensions") or {}
    if isinstance(dims, list):
        dims = {str(d.get("dimension") or d.get("name") or i): d
                for i, d in enumerate(dims) if isinstance(d, Mapping)}
    out = []
    for name, d in dims.items() if isinstance(dims, Mapping) else []:
        score = d.get("score") if isinstance(d, Mapping) else d
        out.append({"name": str(name),
                    "score": score if isinstance(score, int | float) else None,
                    "weight": d.get("weight") if isinstance(d, Mapping) else None})
    return out


def open_alerts(session: Session, device_id: int) -> list[m.Alert]:
    """The device's alerts not yet closed (open first, then acknowledged), newest
    first."""
    return list(session.scalars(select(m.Alert).where(
        m.Alert.device_id == device_id, m.Alert.state != "closed")
        .order_by((m.Alert.state != "open"), m.Alert.occurred_at.desc(), m.Alert.id.desc())))


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def staffed_text(hours: Mapping[str, Any] | None) -> str:
    """The device's staffed hours (evaluation.reliability.StaffedHours, what uptime is
    counted over) as text: "around the clock" when none are set."""
    if not hours:
        return "around the clock"
    days = hours.get("weekdays") or []
    names = ", ".join(_DAYS[d] for d in days if isinstance(d, int) and 0 <= d < 7)
    zone = f" ({hours['timezone']})" if hours.get("timezone") else ""
    return f"{names or 'no day'} {hours.get('start', '?')}–{hours.get('end', '?')}{zone}"


def _role_at_least(ctx: PageCtx, site_id: int | None, role: str) -> bool:
    have = ctx.who.role_on(site_id)
    return have is not None and RANK[have] >= RANK[role]


def _lifecycle_service() -> Any:
    """``scanbench.evaluation.records`` (engineer "life"'s service layer), or None while
    it is not installed: the form is then shown disabled and nothing is written."""
    try:
        from scanbench.evaluation import records
    except ImportError:
        return None
    return records if hasattr(records, "add_event") else None


# --------------------------------------------------------------------------- pages

def _page(ctx: PageCtx, device_id: int, *, status: int = 200,
          form: Mapping[str, str] | None = None, errors: Mapping[str, str] | None = None,
          ack_errors: Mapping[int, str] | None = None,
          ack_values: Mapping[int, str] | None = None) -> Response:
    s = ctx.session
    d = ctx.scope.device(device_id)
    site = s.get(m.Site, d.site_id) if d.site_id is not None else None
    events, n_events = lifecycle_events(s, d.id)
    series = measurement_series(s, d.id)
    alerts = open_alerts(s, d.id)
    service = _lifecycle_service()
    return render(
        ctx, "device.html", status=status, device=d, site=site,
        aliases=sorted(d.aliases, key=lambda a: (a.kind, a.value)),
        staffed=staffed_text(d.staffed_hours),
        software=software_history(s, d.id), events=events, n_events=n_events,
        max_events=MAX_EVENTS, cards=scorecards(s, d.id), alerts=alerts,
        alert_charts={a.id: "clinical-iq" if a.analysis in CLINICAL  # its own section
                      else SeriesRef(a.analysis, a.name, dict(a.labels or {}),
                                     a.labels_key or "{}", a.unit).anchor for a in alerts},
        latest=latest_results(s, d.id), series=series,
        by_analysis=_group(series), kinds=m.LIFECYCLE_KINDS,
        baseline_kinds=getattr(service, "BASELINE_KINDS", ()),
        can_enter=_role_at_least(ctx, d.site_id, ENTER_ROLE),
        can_ack=_role_at_least(ctx, d.site_id, ACK_ROLE),
        baseline_role=getattr(service, "BASELINE_ROLE", "physicist"),
        can_baseline=_role_at_least(ctx, d.site_id,
                                    getattr(service, "BASELINE_ROLE", "physicist")),
        lifecycle_ready=service is not None,
        form=dict(form or {}), errors=dict(errors or {}), ack_errors=dict(ack_errors or {}),
        ack_values=dict(ack_values or {}), saved=ctx.request.query_params.get("saved"),
        enter_role=ENTER_ROLE, ack_role=ACK_ROLE)


def _group(series: list[SeriesRef]) -> list[tuple[str, list[SeriesRef]]]:
    out: dict[str, list[SeriesRef]] = {}
    for ref in series:
        out.setdefault(ref.analysis, []).append(ref)
    return list(out.items())


@page(router, "/devices/{device_id}", "viewer")
def device_page(ctx: P, device_id: int) -> Response:
    """One device's whole life (see the module docstring)."""
    return _page(ctx, device_id)


def _when_param(value: str | None, what: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{what}: {value[:40]!r} is not an ISO 8601 date and time "
                         "(e.g. 2026-03-04T10:30)") from None
    return t.replace(tzinfo=None)  # stored times are the scanner's local clock


@page(router, "/devices/{device_id}/chart", "viewer")
def chart(ctx: P, device_id: int, analysis: str, name: str, labels: str = "{}",
          date_from: str | None = None, date_to: str | None = None,
          max_points: int = DEFAULT_MAX_POINTS, format: str = "html") -> Response:
    """The control chart of one measurement series: an htmx fragment (``format=html``)
    or the plotly figure as JSON (``format=json``, what a zoom fetches). ``date_from`` /
    ``date_to``: the window (ISO date-times, scanner's local clock)."""
    d = ctx.scope.device(device_id)
    if len(analysis) > 120 or len(name) > 120 or len(labels) > 400:
        raise InputError("analysis, name or labels too long")
    try:
        wanted = json.loads(labels)
    except json.JSONDecodeError:
        raise InputError('labels must be a JSON object, e.g. {"sphere_mm": 37}') from None
    if not isinstance(wanted, dict):
        raise InputError('labels must be a JSON object, e.g. {"sphere_mm": 37}')
    if not 2 <= max_points <= 10000:
        raise InputError("max_points must be between 2 and 10000")
    if format not in ("html", "json"):
        raise InputError("format must be html or json")
    since, until = _when_param(date_from, "date_from"), _when_param(date_to, "date_to")
    built = chart_for_device(ctx.session, d.id, analysis, name, wanted, since=since,
                             until=until, max_points=max_points,
                             result_url=lambda rid: f"/results/{rid}")
    if format == "json":
        return JSONResponse({"figure": built.figure, "total": built.total,
                             "drawn": built.drawn, "notes": list(built.notes)})
    ref = SeriesRef(analysis, name, wanted, _key(wanted), "")
    return render_partial(ctx, "device_chart.html", device=d, ref=ref, chart=built,
                          alerts=len(built.trend.alerts) if built.trend else 0)


def _key(labels: dict[str, Any]) -> str:
    from scanbench.store.repo import labels_key

    return labels_key(labels)


# --------------------------------------------------------------------------- forms

def _field_of(message: str) -> str:
    """The form field a service's message is about (its ``field:`` prefix)."""
    head, _, rest = message.partition(":")
    head = head.strip()
    if head == "cost" and "currency" in rest:  # "cost: currency 'X' is not ISO 4217"
        return "currency"
    aliases = {"occurred_at": "occurred_at", "end": "end", "end_at": "end",
               "device": "kind"}
    return aliases.get(head, head if head in FORM_FIELDS else "form")


def _parse_lifecycle(form: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    kind = form.get("kind", "").strip()
    if not kind:
        errors["kind"] = "choose the kind of event"
    values["kind"] = kind
    for fld, key, required in (("occurred_at", "occurred_at", True), ("end", "end_at", False)):
        text = form.get(fld, "").strip()
        if not text:
            if required:
                errors[fld] = "give the date and time of the event"
            values[key] = None
            continue
        try:
            values[key] = dt.datetime.fromisoformat(text)
        except ValueError:
            errors[fld] = f"{text[:40]!r} is not a date and time (YYYY-MM-DDTHH:MM)"
    cost = form.get("cost", "").strip()
    values["cost"] = None
    if cost:
        try:
            values["cost"] = float(cost)
            if not math.isfinite(values["cost"]):
                raise ValueError
        except ValueError:
            errors["cost"] = f"{cost[:40]!r} is not a number"
    values["currency"] = form.get("currency", "").strip().upper() or None
    values["summary"] = form.get("summary", "").strip()
    values["new_baseline"] = form.get("new_baseline") in ("on", "true", "1")
    values["planned"] = form.get("planned") in ("on", "true", "1")
    return values, errors


@page(router, "/devices/{device_id}/lifecycle", ENTER_ROLE, methods=("POST",))
def add_lifecycle(ctx: P, device_id: int) -> Response:
    """Enter a lifecycle event (kind, time, end of a downtime, note, cost, planned, new
    baseline) through ``scanbench.evaluation.records.add_event``, which checks it and
    writes the audit entry in the same transaction."""
    d = ctx.scope.device(device_id)
    ctx.scope.require(ENTER_ROLE, d.site_id)
    service = _lifecycle_service()
    if service is None:
        return _page(ctx, d.id, status=503, form=ctx.form,
                     errors={"form": "lifecycle entry is not available in this version"})
    values, errors = _parse_lifecycle(ctx.form)
    if errors:
        return _page(ctx, d.id, status=400, form=ctx.form, errors=errors)
    baseline_role = getattr(service, "BASELINE_ROLE", "physicist")
    if values["new_baseline"] and not _role_at_least(ctx, d.site_id, baseline_role):
        # It changes how every later value is judged: records.BASELINE_ROLE decides.
        return _page(ctx, d.id, status=403, form=ctx.form, errors={
            "new_baseline": f"marking a new baseline needs the {baseline_role} role on "
                            "this device's site"})
    actor = ctx.actor()

    def work(s: Session) -> None:
        service.add_event(s, actor, d.id, values["kind"], values["occurred_at"],
                          end_at=values["end_at"], planned=values["planned"],
                          new_baseline=values["new_baseline"], summary=values["summary"],
                          cost=values["cost"], currency=values["currency"],
                          source="user", allowed=[d.id])

    try:
        commit_with_retry(ctx.session, work)
    except InputError as exc:
        ctx.session.rollback()
        message = exc.message
        field = _field_of(message)
        text = message.split(":", 1)[1].strip() if field != "form" else message
        return _page(ctx, d.id, status=400, form=ctx.form, errors={field: text})
    return redirect(f"/devices/{d.id}?saved=lifecycle#lifecycle")


@page(router, "/devices/{device_id}/alerts/{alert_id}/acknowledge", ACK_ROLE,
      methods=("POST",))
def acknowledge(ctx: P, device_id: int, alert_id: int) -> Response:
    """Acknowledge an alert of the device with a comment (required), through
    :func:`scanbench.evaluation.alerts.acknowledge` (audited with before/after)."""
    from scanbench.evaluation import alerts

    d = ctx.scope.device(device_id)
    ctx.scope.require(ACK_ROLE, d.site_id)
    row = ctx.session.scalars(select(m.Alert).where(
        m.Alert.id == alert_id, m.Alert.device_id == d.id)).first()
    if row is None:  # another device's alert (of any site) is not found here
        raise NotFound(f"no alert with id {alert_id}")
    comment = ctx.form.get("comment", "").strip()
    if not comment:
        return _page(ctx, d.id, status=400, ack_errors={
            alert_id: "a comment is required: say what was checked, done or decided"})
    actor = ctx.actor()
    try:
        commit_with_retry(ctx.session,
                          lambda s: alerts.acknowledge(s, alert_id, actor, comment))
    except (InputError, alerts.AlertConflict) as exc:
        ctx.session.rollback()
        message = exc.message if isinstance(exc, InputError) else str(exc)
        status = 409 if isinstance(exc, alerts.AlertConflict) else 400
        return _page(ctx, d.id, status=status, ack_values={alert_id: comment},
                     ack_errors={alert_id: message})
    return redirect(f"/devices/{d.id}?saved=alert#alerts")

"""The result page (``/results/{id}``): one stored analysis result as the HTML report
shows it — its figures, every measurement with value, unit, uncertainty, limit and the
limit's source, status (the report's seven status words and colours), note, warnings,
the standard's own summary tables, and provenance (analysis, standard and clause,
scanbench version, spec, protocol, parameters), with links to its device and series;
a superseded result says so and links to the result that replaced it.

The figures are the ones the job drew when it made the result
(:mod:`scanbench.service.figures`); a result without them (made before figures were
kept, on another node, or whose figure code failed) says why instead.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func, or_, select

from scanbench.errors import InputError
from scanbench.report.html import _analysis_title
from scanbench.report.tables import SummaryTable, summary_tables
from scanbench.service import figures as figstore
from scanbench.store import models as m
from scanbench.types import DeviceIdentity, Limits, Measurement, Result
from scanbench.web.pages.common import P, page, redirect, render
from scanbench.web.pages.fleet import result_status

router = APIRouter()


def figures_home(request: Request) -> Path | None:
    """Where the node keeps its files: ``app.state.home`` (``scanbench serve`` sets it),
    else the folder of a SQLite database named ``scanbench.db`` (the node's default
    layout: ``<home>/scanbench.db``)."""
    home = getattr(request.app.state, "home", None)
    if home is not None:
        return Path(home)
    url = str(getattr(request.app.state.db, "url", ""))
    if url.startswith("sqlite:///") and url.endswith("/scanbench.db"):
        return Path(url[len("sqlite:///"):]).parent
    return None


def as_result(row: m.Result, device: m.Device | None) -> Result:
    """The stored row as a :class:`scanbench.types.Result` (for the report's summary
    tables, which are built from one)."""
    ident = DeviceIdentity(device.manufacturer if device else None,
                           device.model if device else None,
                           device.serial if device else None, None,
                           device.software_versions if device else None)
    out = Result(row.analysis, row.standard, row.series_uid, ident, row.acquired_at,
                 warnings=list(row.warnings or []), parameters=dict(row.parameters or {}),
                 scanbench_version=row.scanbench_version, spec=row.spec, source=row.source)
    for meas in row.measurements:
        limits = None
        if meas.limit_low is not None or meas.limit_high is not None or meas.limit_source:
            limits = Limits(low=meas.limit_low, high=meas.limit_high,
                            source=meas.limit_source or "",
                            verified=bool(meas.limit_verified)
                            if meas.limit_verified is not None else True)
        out.measurements.append(Measurement(
            name=meas.name, value=float("nan") if meas.value is None else meas.value,
            unit=meas.unit, uncertainty=meas.uncertainty, labels=dict(meas.labels or {}),
            limits=limits, status=meas.status, note=meas.note))  # type: ignore[arg-type]
    return out


def _labels(labels: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in labels.items())


def _parameter_rows(params: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for k, v in sorted(params.items(), key=lambda kv: str(kv[0])):
        text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
        rows.append((str(k), text))
    return rows


@page(router, "/results/{result_id}", "viewer")
def result_page(ctx: P, result_id: int) -> Response:
    """One result; another site's result, or none with this id, is the 404 page."""
    row = ctx.scope.result(result_id)
    device = ctx.scope.device(row.device_id) if row.device_id is not None else None
    series = ctx.scope.one_series(row.series_id) if row.series_id is not None else None
    site = ctx.session.get(m.Site, device.site_id) if device and device.site_id else None
    newer = ctx.session.scalars(ctx.scope.results().where(m.Result.supersedes_id == row.id)
                                .order_by(m.Result.id)).first()
    older = (ctx.session.scalars(ctx.scope.results().where(m.Result.id == row.supersedes_id))
             .first() if row.supersedes_id is not None else None)
    protocol = ctx.session.get(m.Protocol, row.protocol_id) if row.protocol_id else None
    files = 0
    if series is not None:
        files = int(ctx.session.scalar(select(func.count()).select_from(m.Instance)
                                       .where(m.Instance.series_id == series.id)) or 0)
    home = figures_home(ctx.request)
    figs = figstore.load(home, row.id, row.series_uid, row.analysis)
    files_gone = False
    if series is not None and files and home is not None:
        # The node keeps instances under <home>/files; a few are enough to tell.
        paths = ctx.session.scalars(select(m.Instance.path).where(
            m.Instance.series_id == series.id).order_by(m.Instance.id).limit(3))
        files_gone = not any((home / "files" / p).is_file() for p in paths)
    measurements = list(row.measurements)
    counts: dict[str, int] = {}
    for meas in measurements:
        counts[meas.status] = counts.get(meas.status, 0) + 1
    tables: list[SummaryTable] = []
    try:
        tables = list(summary_tables(as_result(row, device)))
    except (KeyError, ValueError, TypeError):  # a table the stored values cannot fill
        tables = []
    return render(
        ctx, "result.html", result=row, device=device, series=series, site=site,
        newer=newer, older=older, protocol=protocol, files=files, files_gone=files_gone,
        figures=figs, decisions=review_decisions(ctx.session, row.id),
        measurements=measurements, labels=_labels, overall=result_status(set(counts)),
        counts=counts, tables=tables, title=_analysis_title(row.analysis),
        parameters=_parameter_rows(dict(row.parameters or {})))


def review_decisions(session: Any, result_id: int) -> list[dict[str, Any]]:
    """The expert review decisions on the result, newest first: at a site, as received
    from the central node (ReviewDecision); at the central node, its own decided review
    (issue 14 §2)."""
    out = [{"decision": d.decision, "reason": d.reason, "comment": d.comment,
            "reviewer": d.reviewer, "decided_at": d.decided_at}
           for d in session.scalars(select(m.ReviewDecision).where(
               m.ReviewDecision.result_id == result_id).order_by(
               m.ReviewDecision.decided_at.desc(), m.ReviewDecision.id.desc()))]
    rv = session.scalars(select(m.Review).where(m.Review.result_id == result_id,
                                                m.Review.decided_at.is_not(None))).first()
    if rv is not None:
        who = session.get(m.User, rv.reviewer_id) if rv.reviewer_id else None
        out.insert(0, {"decision": rv.state, "reason": rv.reason, "comment": rv.comment,
                       "reviewer": who.username if who else "", "decided_at": rv.decided_at})
    return out


def _same_numbers(fresh: Result, row: m.Result) -> bool:
    """Whether a re-analysis measured what the stored result holds (same names, labels
    and values to 1e-9 relative): figures are shown only beside their own numbers."""
    from scanbench.store.repo import labels_key

    def key(name: str, labels: dict[str, Any]) -> tuple[str, str]:
        return name, labels_key(labels)

    stored = {key(x.name, dict(x.labels or {})): x.value for x in row.measurements}
    again = {key(x.name, x.labels): x.value for x in fresh.measurements}
    if stored.keys() != again.keys():
        return False
    for k, v in stored.items():
        w = again[k]
        if v is None or w is None or not math.isfinite(float(w)):
            if not (v is None and (w is None or not math.isfinite(float(w)))):
                return False
        elif abs(float(w) - v) > 1e-9 * max(1.0, abs(v)):
            return False
    return True


@page(router, "/results/{result_id}/figures", "viewer", methods=("POST",))
def draw_figures(ctx: P, result_id: int) -> Response:
    """Draw the figures of a result made without them (``SCANBENCH_JOB_FIGURES=0``, or
    before figures were kept) from its series' stored files: the same analysis through
    the one analysis path (:func:`scanbench.api.analyze_series_list`, with the study's
    other phantom series as partners and the protocol parameters the result used), kept
    like the job's figures. Shown only when the re-analysis gives the stored numbers
    again; otherwise the reason is kept and shown. Runs in the request: seconds for
    most analyses, minutes for a whole ACR MRI series."""
    from scanbench import dicom
    from scanbench.api import analyze_series_list

    row = ctx.scope.result(result_id)
    home = figures_home(ctx.request)
    if home is None or row.series_id is None:
        raise InputError("this result has no stored series on this server: its figures "
                         "cannot be drawn")
    series = ctx.scope.one_series(row.series_id)
    rel = ctx.session.scalars(
        select(m.Instance.path).join(m.Series, m.Series.id == m.Instance.series_id)
        .where(or_(m.Series.id == series.id,
                   (m.Series.study_id == series.study_id) & (m.Series.kind == "phantom")))
        .order_by(m.Instance.id))
    paths = [home / "files" / p for p in rel]
    if not paths or not all(p.is_file() for p in paths):
        raise InputError("the series' files are no longer in the file store: its figures "
                         "cannot be drawn")
    proto = (row.parameters or {}).get("protocol")
    params = dict(proto.get("params") or {}) if isinstance(proto, dict) else {}
    read = dicom.read([str(p) for p in paths])
    report = analyze_series_list(read.series, analysis_params={row.analysis: params},
                                 only={str(row.series_uid)})
    fresh = next((r for r in report.results if r.analysis == row.analysis
                  and str(r.series_instance_uid) == row.series_uid), None)
    blob, error = None, None
    if fresh is None:
        error = "the analysis run again on the stored files gave no result"
    elif not _same_numbers(fresh, row):
        error = ("the analysis run again today gives other numbers than this stored "
                 f"result (made by scanbench {row.scanbench_version}): figures of other "
                 "numbers are not shown")
    else:
        try:
            blob = figstore.draw(fresh)
        except Exception as exc:  # an analysis's figure code: reported on the page
            error = f"{type(exc).__name__}: {exc}"
    figstore.save(home, row.id, row.series_uid, row.analysis, row.job_id, blob, error)
    return redirect(f"/results/{row.id}")

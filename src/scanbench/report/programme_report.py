"""The multi-site evaluation report (issue 14 §7), from the (central) store: for the
devices of a programme, grouped by a device attribute (make, model, country of
manufacture, field strength, axial field of view or site), every measurement's
distribution, pass rates, reliability, dose and workflow summaries, reader-study and
usability (SUS) scores, costs, and a comparison between the groups of each measurement
(:mod:`scanbench.programme.compare`: its test, effect size, confidence interval and the
smallest difference the data could detect). One self-contained HTML page or a PDF, in
the look of the store reports (:mod:`scanbench.report.store_reports`).

Rules stated in the report
--------------------------
* **Unit of analysis**: the device. A device's value of a measurement is the mean of its
  current (not superseded) results' values in the period; group statistics are over
  devices (n = devices), so daily QC does not inflate the sample.
* **Measurement**: one analysis, measurement name and label set (e.g. one insert of a
  phantom); its unit is the stored unit.
* **Pass rate**: results judged pass / (pass + fail) against their stored limits, over
  the period; results judged against unconfirmed limits, or not judged, are not counted.
* **Reliability** (per device over the period, :mod:`scanbench.evaluation.records`):
  uptime in staffed hours, MTBF and MTTR, then the mean over the group's devices.
* **Dose**: per device the median of each quantity (the dose pages' percentile rule),
  then the mean of the devices' medians per group. **Workflow**: per device the median
  exam duration, then per group.
* **Reader studies and SUS**: as :mod:`scanbench.programme.readers` and
  :mod:`scanbench.programme.sus` compute them (by model), SUS also by group.
* **Costs**: cost per exam per device and pooled per group (Σ cost / Σ exams,
  :mod:`scanbench.evaluation.economics`); no currency conversion.

Access control is the caller's: the web API passes the devices of the sites the caller
may read in full (``web/api/programme_report_routes.py``); the command line is the
operator of the store and sees every device.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session, aliased

from scanbench.errors import InputError
from scanbench.programme import compare as cmp
from scanbench.report import store_reports
from scanbench.report.numbers import format_number
from scanbench.report.store_reports import (
    RCell,
    RSection,
    RTable,
    StoreReport,
    _period_bounds,
    device_name,
)
from scanbench.store import models as m


def _fmt_num(v: float | None, unit: str, missing: str) -> str:
    return f"{v:g} {unit}" if v is not None else missing


#: Grouping attributes: name -> (label, how a device's group is named).
GROUPINGS: dict[str, tuple[str, Callable[[m.Device, str], str]]] = {
    "make": ("make", lambda d, _s: d.manufacturer or "unknown make"),
    "model": ("model", lambda d, _s: " ".join(x for x in (d.manufacturer, d.model) if x)
              or "unknown model"),
    "country": ("country of manufacture",
                lambda d, _s: d.country_of_manufacture or "not recorded"),
    "field_strength": ("field strength",
                       lambda d, _s: _fmt_num(d.field_strength_t, "T", "no field strength")),
    "axial_fov": ("axial field of view",
                  lambda d, _s: _fmt_num(d.axial_fov_cm, "cm", "no axial FOV")),
    "site": ("site", lambda _d, s: s),
}
PASS_RULE = ("pass rate = results judged pass / (pass + fail) against their stored limits "
             "in the period; results against unconfirmed limits, or not judged, not counted")


def group_of(device: m.Device, site: str, attribute: str) -> str:
    """The group ``device`` falls in by ``attribute`` (a key of :data:`GROUPINGS`)."""
    if attribute not in GROUPINGS:
        raise InputError(f"group by: unknown attribute {attribute!r}; one of "
                         f"{', '.join(GROUPINGS)}")
    return GROUPINGS[attribute][1](device, site)


def _n(v: float | None, digits: int = 4) -> RCell:
    return RCell(format_number(v, digits=digits), numeric=True)


def _ci(lo: float | None, hi: float | None, unit: str = "") -> RCell:
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return RCell("—", numeric=True)
    u = f" {unit}" if unit else ""
    return RCell(f"{format_number(lo)} to {format_number(hi)}{u}", numeric=True)


def _pct(v: float | None) -> RCell:
    return RCell("—" if v is None else f"{format_number(100 * v, digits=3)} %", numeric=True)


def _labels_text(key: str) -> str:
    try:
        labels = json.loads(key)
    except ValueError:
        return key
    if not isinstance(labels, dict) or not labels:
        return ""
    return ", ".join(f"{k} {v}" for k, v in labels.items())


def measurement_title(analysis: str, name: str, labels_key: str) -> str:
    lab = _labels_text(labels_key)
    return f"{analysis}: {name}" + (f" ({lab})" if lab else "")


# --------------------------------------------------------------------------- data

def device_measurements(session: Session, device_ids: Collection[int], lo: dt.datetime,
                        hi: dt.datetime) -> dict[tuple[str, str, str, str],
                                                 dict[int, tuple[float, int, int, int]]]:
    """Per measurement (analysis, name, labels key, unit) and device: the mean of the
    device's current results' values acquired in [lo, hi), the number of values, and
    how many were judged pass and fail. One grouped query."""
    me = m.Measurement
    later = aliased(m.Result)
    rows = session.execute(
        select(me.analysis, me.name, me.labels_key, me.unit, me.device_id,
               func.avg(me.value), func.count(me.value),
               func.sum(case((me.status == "pass", 1), else_=0)),
               func.sum(case((me.status == "fail", 1), else_=0)))
        .where(and_(me.device_id.in_(list(device_ids)), me.acquired_at >= lo,
                    me.acquired_at < hi,
                    ~select(later.id).where(later.supersedes_id == me.result_id).exists()))
        .group_by(me.analysis, me.name, me.labels_key, me.unit, me.device_id)).all()
    out: dict[tuple[str, str, str, str], dict[int, tuple[float, int, int, int]]] = \
        defaultdict(dict)
    for a, n_, lk, unit, dev, mean, count, npass, nfail in rows:
        if count:
            out[(a, n_, lk, unit)][int(dev)] = (float(mean), int(count), int(npass or 0),
                                                int(nfail or 0))
    return dict(sorted(out.items()))


def _groups(ids: Sequence[int], group: dict[int, str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for i in ids:
        out[group[i]].append(i)
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------- sections

def _devices_section(devices: list[m.Device], sites: dict[int, str], group: dict[int, str],
                     label: str) -> RSection:
    rows = [[RCell(device_name(d)), RCell(sites[d.id]), RCell(d.manufacturer or "—"),
             RCell(d.model or "—"), RCell(d.country_of_manufacture or "—"),
             _n(d.field_strength_t), _n(d.axial_fov_cm), RCell(group[d.id])]
            for d in devices]
    return RSection("Devices", tables=[RTable(
        "Devices in the report", ["device", "site", "make", "model", "country of manufacture",
                                  "field strength (T)", "axial FOV (cm)", f"group ({label})"],
        rows)])


def _measurement_table(title: str, data: dict[tuple[str, str, str, str],
                                             dict[int, tuple[float, int, int, int]]],
                       group: dict[int, str]) -> RTable:
    rows = []
    for (a, name, lk, unit), per_dev in data.items():
        for g, ids in _groups(list(per_dev), group).items():
            s = cmp.summarise(g, [per_dev[i][0] for i in ids], unit)
            npass = sum(per_dev[i][2] for i in ids)
            judged = npass + sum(per_dev[i][3] for i in ids)
            rows.append([RCell(measurement_title(a, name, lk)), RCell(g), _n(s.n, 6),
                         _n(sum(per_dev[i][1] for i in ids), 8), _n(s.mean),
                         _ci(s.ci_low, s.ci_high), _n(s.sd), RCell(unit),
                         _pct(npass / judged if judged else None), _n(judged, 8)])
    return RTable(title, ["measurement", "group", "devices", "results", "mean of device means",
                          "95 % CI (Student t)", "SD between devices", "unit", "pass rate",
                          "judged"], rows, notes=[PASS_RULE, cmp.UNIT_RULE])


def _comparison_rows(data: dict[tuple[str, str, str, str],
                                dict[int, tuple[float, int, int, int]]],
                     group: dict[int, str]
                     ) -> tuple[list[tuple[cmp.Comparison, dict[str, list[float]]]], int]:
    out: list[tuple[cmp.Comparison, dict[str, list[float]]]] = []
    skipped = 0
    for (a, name, lk, unit), per_dev in data.items():
        groups = {g: [per_dev[i][0] for i in ids]
                  for g, ids in _groups(list(per_dev), group).items()}
        c = cmp.compare_groups(groups, unit, measurement_title(a, name, lk))
        if c.tested:
            out.append((c, groups))
        else:
            skipped += 1
    return out, skipped


def _comparison_table(c: cmp.Comparison) -> RTable:
    """One measurement's comparison as rows of (what, value, 95 % CI)."""
    stat = (f"{c.statistic_name} = {format_number(c.statistic)}"
            + (f", df {format_number(c.df, digits=3)}" if c.df is not None else ""))
    rows = [[RCell("groups (devices)"),
             RCell(", ".join(f"{g.name} (n={g.n})" for g in c.groups)), RCell("")],
            [RCell("test"), RCell(c.test), RCell("")],
            [RCell("statistic, p"), RCell(f"{stat}; p = {format_number(c.p, digits=3)}",
                                          numeric=True), RCell("")],
            [RCell(c.effect_name), _n(c.effect, 3), _ci(*c.effect_ci)]]
    if c.difference_name:
        rows.append([RCell(c.difference_name),
                     RCell(f"{format_number(c.difference)} {c.unit}", numeric=True),
                     _ci(*c.difference_ci, c.unit)])
    rows.append([RCell(c.mdd_name), RCell(f"{format_number(c.mdd)} {c.unit}", numeric=True),
                 RCell("")])
    return RTable(c.quantity, ["", "value", "95 % CI"], rows, notes=list(c.notes))


#: At most this many comparison figures (the first measurements compared).
MAX_FIGURES = 12


def comparison_figure(c: cmp.Comparison, values: dict[str, list[float]]) -> Any:
    """The device means of each group as points over a box (plotly), titled with the
    measurement and its unit; labels HTML-escaped (:func:`report.dose_charts.label`)."""
    import plotly.graph_objects as go

    from scanbench.report.dose_charts import label

    fig = go.Figure()
    for g in c.groups:
        fig.add_trace(go.Box(y=values[g.name], name=label(g.name), boxpoints="all",
                             jitter=0.3, pointpos=0, showlegend=False,
                             hovertemplate="%{y}<extra></extra>"))
    fig.update_layout(title=label(f"{c.quantity}: device means by group"),
                      yaxis_title=label(c.unit), height=360, margin={"t": 50, "b": 60},
                      meta={"kind": "chart"})
    return fig


def _comparison_section(comps: list[tuple[cmp.Comparison, dict[str, list[float]]]],
                        skipped: int, label: str) -> RSection:
    notes = [f"Choice of test: {cmp.CHOICE_RULE}.",
             "Effect sizes: Hedges' g with the Hedges & Olkin 1985 interval (Welch); "
             "rank-biserial r (Wendt 1972) with the Hanley & McNeil 1982 interval "
             "(Mann-Whitney), Hodges-Lehmann shift with its distribution-free interval "
             "(Hollander & Wolfe 1999, section 4.3); eta squared for more groups "
             "(Kruskal-Wallis: Tomczak & Tomczak 2014).",
             "Smallest detectable: at 80 % power and two-sided alpha 0.05 for the group "
             "sizes and the observed pooled SD between devices (statsmodels power); for "
             "more than two groups, the smallest SD of the group means.",
             f"Unit of analysis: {cmp.UNIT_RULE}. p values are not adjusted for the "
             "number of measurements compared."]
    if skipped:
        notes.append(f"{skipped} measurement(s) not compared: fewer than two groups with at "
                     f"least {cmp.MIN_GROUP} devices.")
    if not comps:
        notes.insert(0, "No measurement had two groups with enough devices to compare.")
    if len(comps) > MAX_FIGURES:
        notes.append(f"Figures: the first {MAX_FIGURES} of {len(comps)} comparisons.")
    return RSection(f"Comparison between groups ({label})",
                    tables=[_comparison_table(c) for c, _ in comps], notes=notes,
                    figures=[comparison_figure(c, v) for c, v in comps[:MAX_FIGURES]])


def _scorecard_section(session: Session, devices: list[m.Device], group: dict[int, str],
                       lo: dt.datetime, hi: dt.datetime) -> RSection | None:
    """Per device its latest stored scorecard whose period ends in [lo, hi]: status
    against its spec, score and compliance (share of required tests done on time); per
    group the share of devices whose scorecard passed and the mean compliance."""
    latest: dict[int, tuple[m.Scorecard, str]] = {}
    rows = session.execute(
        select(m.Scorecard, m.Spec.name).join(m.Spec, m.Spec.id == m.Scorecard.spec_id)
        .where(m.Scorecard.device_id.in_([d.id for d in devices]),
               m.Scorecard.period_end > lo, m.Scorecard.period_end <= hi)
        .order_by(m.Scorecard.period_end, m.Scorecard.created_at, m.Scorecard.id)).all()
    for card, spec in rows:
        latest[card.device_id] = (card, spec)
    if not latest:
        return None
    drows = [[RCell(device_name(d)), RCell(group[d.id]), RCell(latest[d.id][1]),
              RCell(latest[d.id][0].status, status=latest[d.id][0].status),
              _n(latest[d.id][0].score, 3), _pct(latest[d.id][0].compliance)]
             for d in devices if d.id in latest]
    grows = []
    for g, ids in _groups(list(latest), group).items():
        judged = [latest[i][0].status for i in ids if latest[i][0].status in ("pass", "fail")]
        comp = [c for i in ids if (c := latest[i][0].compliance) is not None]
        grows.append([RCell(g), _n(len(ids), 6),
                      _pct(judged.count("pass") / len(judged) if judged else None),
                      _pct(sum(comp) / len(comp) if comp else None)])
    return RSection("Scorecards", intro=(
        "Each device's latest stored scorecard in the period (scanbench.evaluation."
        "scorecard): its status against the spec assigned to the device, its score and its "
        "compliance (share of the spec's required tests done on time)."), tables=[
        RTable("Per device", ["device", "group", "spec", "status", "score", "compliance"],
               drows),
        RTable("Per group", ["group", "devices", "devices passing", "mean compliance"],
               grows)])


def _reliability_section(session: Session, devices: list[m.Device], group: dict[int, str],
                         start: dt.date, end: dt.date) -> RSection:
    from scanbench.evaluation import records

    per: dict[int, Any] = {}
    notes: list[str] = []
    rows = []
    for d in devices:
        try:
            r = records.device_reliability(session, d.id, start, end + dt.timedelta(days=1))
        except InputError as exc:
            notes.append(f"{device_name(d)}: {exc.message}")
            continue
        per[d.id] = r
        rows.append([RCell(device_name(d)), RCell(group[d.id]), _n(r.uptime_pct, 4),
                     _n(r.mtbf_h), _n(r.mttr_h), _n(r.failures, 6),
                     _n(r.unplanned_downtime_h)])
    grows = []
    for g, ids in _groups(list(per), group).items():
        cells: list[RCell] = [RCell(g), _n(len(ids), 6)]
        for attr, unit in (("uptime_pct", "%"), ("mtbf_h", "h"), ("mttr_h", "h")):
            vals = [getattr(per[i], attr) for i in ids if getattr(per[i], attr) is not None]
            if vals:
                s = cmp.summarise(g, vals, unit)
                cells += [_n(s.mean), _ci(s.ci_low, s.ci_high)]
            else:
                cells += [RCell("—", numeric=True), RCell("—", numeric=True)]
        grows.append(cells)
    return RSection("Reliability", intro=(
        "Uptime: share of staffed hours in service without unplanned downtime; MTBF: "
        "in-service hours / failures; MTTR: mean repair time (scanbench.evaluation."
        "reliability; definitions in docs/evaluation.md)."), tables=[
        RTable("Per device", ["device", "group", "uptime (%)", "MTBF (h)", "MTTR (h)",
                              "failures", "unplanned downtime (h)"], rows),
        RTable("Per group (mean over devices)",
               ["group", "devices", "uptime (%)", "95 % CI", "MTBF (h)", "95 % CI",
                "MTTR (h)", "95 % CI"], grows)], notes=notes)


def _dose_section(session: Session, ids: list[int], group: dict[int, str],
                  start: dt.date, end: dt.date) -> RSection | None:
    from scanbench.clinical import dose_stats as ds
    from scanbench.clinical import federated

    filters = ds.Filters(devices=select(m.Device.id).where(m.Device.id.in_(ids)),
                         date_from=start, date_to=end + dt.timedelta(days=1))
    rows = []
    notes: list[str] = []
    for key, q in ds.QUANTITIES.items():
        # the exams stored here and the federated sites' per-day values, combined exactly
        stats = federated.dose_statistics(session, key, filters, group_by="device",
                                          max_outliers=0)
        notes += [n for n in stats.notes if "federated" in n and n not in notes]
        med = {g.device_id: g.distribution for g in stats.groups if g.device_id is not None}
        for g, gids in _groups(list(med), group).items():
            s = cmp.summarise(g, [med[i].median for i in gids], q.unit)
            rows.append([RCell(q.label), RCell(g), _n(s.n, 6),
                         _n(sum(med[i].n for i in gids), 8), _n(s.mean),
                         _ci(s.ci_low, s.ci_high), RCell(q.unit)])
    wf = federated.workflow_statistics(session, filters)
    notes += [n for n in wf.notes if n not in notes]
    dur = {d: s for d, s in wf.durations}
    use: dict[int, list[float]] = defaultdict(list)
    for u in wf.days:
        if u.utilisation is not None:
            use[u.device_id].append(u.utilisation)
    wrows = []
    for g, gids in _groups(list(dur), group).items():
        s = cmp.summarise(g, [dur[i].median for i in gids], "min")
        uvals = [sum(use[i]) / len(use[i]) for i in gids if use.get(i)]
        us = cmp.summarise(g, uvals, "%") if uvals else None
        wrows.append([RCell(g), _n(s.n, 6), _n(sum(dur[i].n for i in gids), 8), _n(s.mean),
                      _ci(s.ci_low, s.ci_high), _n(us.mean if us else None),
                      _ci(us.ci_low, us.ci_high) if us else RCell("—")])
    if not rows and not wrows:
        return None
    return RSection("Dose and workflow", intro=(
        "Per device the median of each quantity (percentiles: "
        f"{ds.PERCENTILE_METHOD}), then the mean of the devices' medians per group."),
        tables=[RTable("Dose per group", ["quantity", "group", "devices", "values",
                                           "mean of device medians", "95 % CI", "unit"], rows),
                RTable("Workflow per group", ["group", "devices", "exams",
                                              "median exam duration (min, mean of devices)",
                                              "95 % CI", "utilisation (%, mean of devices)",
                                              "95 % CI"], wrows,
                       notes=["Utilisation: exam hours / staffed hours per day (24 h when "
                              "a device has no staffed hours), mean over the device's days."])],
        notes=notes)


def _people_section(session: Session, ids: list[int], group: dict[int, str]) -> RSection | None:
    from scanbench.programme import readers, stats, sus

    section = RSection("Reader studies and usability")
    idset = set(ids)
    rrows = []
    for study in session.scalars(select(m.ReaderStudy).order_by(m.ReaderStudy.id)):
        devs = set(session.scalars(select(m.ReaderCase.device_id).where(
            m.ReaderCase.study_id == study.id, m.ReaderCase.device_id.is_not(None))))
        if not devs or not devs <= idset:  # a study with another programme's devices
            continue
        res = readers.results(session, study.id)
        for crit in res["criteria"]:
            for row in crit["by_model"]:
                rrows.append([RCell(study.name), RCell(crit["criterion"]), RCell(row["model"]),
                              _n(row["n"], 6), _n(row["estimate"], 3),
                              _ci(row["low"], row["high"]),
                              RCell(f"{study.scale_min}-{study.scale_max}")])
    if rrows:
        section.tables.append(RTable(
            "Reader scores by model", ["study", "criterion", "model", "cases", "mean score",
                                       "95 % CI (Student t)", "scale"], rrows,
            notes=["Case score: mean over the readers who scored it (scanbench.programme."
                   "readers)."]))
    resp = session.execute(select(m.SusResponse.device_id, m.SusResponse.score).where(
        m.SusResponse.device_id.in_(ids))).all()
    if resp:
        by_group: dict[str, list[float]] = defaultdict(list)
        for dev, score in resp:
            by_group[group[int(dev)]].append(float(score))
        srows = []
        for g, vals in sorted(by_group.items()):
            ci = stats.mean_ci(vals)
            srows.append([RCell(g), _n(len(vals), 6), _n(ci.estimate, 3),
                          _ci(ci.low, ci.high)])
        section.tables.append(RTable(
            "System Usability Scale by group", ["group", "responses", "mean SUS score (0-100)",
                                                "95 % CI (Student t)"], srows,
            notes=[f"Scoring: {sus.SOURCE}. Unit: one questionnaire."]))
    return section if section.tables else None


def _cost_section(session: Session, devices: list[m.Device], group: dict[int, str],
                  start: dt.date, end: dt.date) -> RSection | None:
    from scanbench.evaluation import economics, records

    per: dict[int, Any] = {}
    notes: list[str] = []
    hi = end + dt.timedelta(days=1)
    for d in devices:
        if not records.device_costs(session, d.id):
            continue
        try:
            per[d.id] = records.device_cost_per_exam(session, d.id, start, hi)
        except InputError as exc:
            notes.append(f"{device_name(d)}: {exc.message}")
    if not per:
        return None
    rows = [[RCell(device_name(d)), RCell(group[d.id]), RCell(per[d.id].currency or "—"),
             _n(per[d.id].total_cost, 6), _n(per[d.id].exams, 8), _n(per[d.id].cost_per_exam)]
            for d in devices if d.id in per]
    grows = []
    for g, ids in _groups(list(per), group).items():
        try:
            p = economics.model_cost_per_exam(g, [per[i] for i in ids])
        except InputError as exc:
            notes.append(exc.message)
            continue
        grows.append([RCell(g), _n(len(ids), 6), RCell(p.currency or "—"), _n(p.total_cost, 6),
                      _n(p.exams, 8), _n(p.cost_per_exam)])
    return RSection("Costs", intro=(
        "Straight-line depreciation of the acquisition over its stated life (IAS 16 "
        "Property, Plant and Equipment, paragraph 62), service contracts pro rata per day, "
        "one-off costs on their date; cost per exam = total cost / exams in the period; "
        "no currency conversion."), tables=[
        RTable("Per device", ["device", "group", "currency", "total cost", "exams",
                              "cost per exam"], rows),
        RTable("Per group (pooled)", ["group", "devices", "currency", "total cost", "exams",
                                      "cost per exam"], grows)], notes=notes)


# --------------------------------------------------------------------------- the report

def programme_report(session: Session, start: dt.date, end: dt.date, *,
                     group_by: str = "model", device_ids: Collection[int] | None = None,
                     title: str = "Programme evaluation report") -> StoreReport:
    """The programme report over [start, end] (local dates, both included) for the
    devices ``device_ids`` (None: every device in the store), grouped by ``group_by``
    (a key of :data:`GROUPINGS`)."""
    if group_by not in GROUPINGS:
        raise InputError(f"group by: unknown attribute {group_by!r}; one of "
                         f"{', '.join(GROUPINGS)}")
    lo, hi = _period_bounds(start, end)
    q = select(m.Device).order_by(m.Device.id)
    if device_ids is not None:
        q = q.where(m.Device.id.in_(list(device_ids)))
    devices = list(session.scalars(q))
    site_names = dict(session.execute(select(m.Site.id, m.Site.name)).all())
    sites = {d.id: site_names.get(d.site_id, "no site") if d.site_id else "no site"
             for d in devices}
    label = GROUPINGS[group_by][0]
    group = {d.id: group_of(d, sites[d.id], group_by) for d in devices}
    ids = [d.id for d in devices]
    sections = [_devices_section(devices, sites, group, label)]
    data = device_measurements(session, ids, lo, hi) if ids else {}
    meas = RSection("Measurements", intro=(
        "Each measurement's distribution over devices: per device the mean of its results "
        "in the period, then per group the mean of the device means with its 95 % Student "
        "t interval."))
    meas.tables.append(_measurement_table(f"By {label}", data, group))
    for extra in ("model", "site"):
        if extra != group_by:
            other = {d.id: group_of(d, sites[d.id], extra) for d in devices}
            meas.tables.append(_measurement_table(f"By {GROUPINGS[extra][0]}", data, other))
    if not data:
        meas.notes.append("No measurement was stored for these devices in the period.")
    sections.append(meas)
    comps, skipped = _comparison_rows(data, group)
    sections.append(_comparison_section(comps, skipped, label))
    if devices:
        cards = _scorecard_section(session, devices, group, lo, hi)
        if cards is not None:
            sections.append(cards)
        sections.append(_reliability_section(session, devices, group, start, end))
    for extra_section in (_dose_section(session, ids, group, start, end) if ids else None,
                          _people_section(session, ids, group) if ids else None,
                          _cost_section(session, devices, group, start, end)):
        if extra_section is not None:
            sections.append(extra_section)
    n_sites = len(set(sites.values()))
    return StoreReport(
        "programme", title,
        [("Period", f"{start.isoformat()} to {end.isoformat()} (scanner local dates, both "
                    "included)"),
         ("Grouped by", label), ("Devices", str(len(devices))), ("Sites", str(n_sites)),
         ("Groups", ", ".join(sorted(set(group.values()))) or "none"),
         ("Unit of analysis", cmp.UNIT_RULE)],
        sections, f"programme-{group_by}-{start.isoformat()}-{end.isoformat()}")


def report_data(report: StoreReport) -> dict[str, Any]:
    """The report as plain data (JSON): its sections' tables as text cells."""
    return {"title": report.title, "meta": [list(kv) for kv in report.meta],
            "sections": [{"title": s.title, "intro": s.intro, "notes": s.notes,
                          "tables": [{"title": t.title, "head": t.head, "notes": t.notes,
                                      "rows": [[c.text for c in r] for r in t.rows]}
                                     for t in s.tables]} for s in report.sections]}


TEMPLATE = "programme_report.html"


def render_html(report: StoreReport, *, figure_size: tuple[int, int] | None = None) -> str:
    """The report as one self-contained HTML page (templates/programme_report.html),
    rendered as the store reports are (:func:`scanbench.report.store_reports.render_html`);
    ``figure_size`` fixes every figure's size for print."""
    return store_reports.render_html(report, figure_size=figure_size, template=TEMPLATE)


def write(report: StoreReport, path: str | Path) -> Path:
    """Write the report as HTML, or as PDF when ``path`` ends in ``.pdf``."""
    return store_reports.write(report, path, template=TEMPLATE)


def pdf_bytes(report: StoreReport) -> bytes:
    """The report printed to PDF, as bytes (for a download)."""
    return store_reports.pdf_bytes(report, template=TEMPLATE)


__all__ = ["GROUPINGS", "device_measurements", "group_of", "measurement_title", "pdf_bytes",
           "programme_report", "render_html", "report_data", "write"]

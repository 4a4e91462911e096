"""Dose and workflow statistics of a central node that include its federated sites.

A site node sends no exam: per device and local day it sends aggregates
(:mod:`scanbench.programme.outbox`), which the centre keeps as ``fed_record`` rows
(kinds ``dose_day`` and ``workflow_day``, ``local_id`` the central device). This module
reads them for the devices a caller may see and combines them with the exams stored at
the centre itself (:mod:`scanbench.clinical.dose_stats`), so the central dose and
workflow pages, their API and the programme report cover every site.

How they are combined
---------------------
* **Format 2** (``version`` 2, :data:`scanbench.programme.federation.DAY_FORMAT`): a
  day's group carries its values sorted ascending. The values of every day in the period
  (and, for a group that also has exams stored at the centre, those values too) are put
  together and summarised exactly as the centre summarises its own exams: counts,
  minimum, maximum and totals are exact sums and extremes, and every percentile is the
  percentile of the combined values (Hyndman and Fan 1996 definition 7, numpy's
  default, :data:`scanbench.clinical.dose_stats.PERCENTILE_METHOD`), not a median of
  daily medians. Histograms are counts of the same values; utilisation is the day's busy
  time over the hours the device was staffed at its site that day.
* **Format 1** (sites that sent per-day summaries only): not combined — a median or 75th
  percentile of a period cannot be computed from daily ones. Such days are counted and
  named in the result's notes ("update the site's scanbench"), never mixed in.
* **Outliers**: an exam above its group's fence stays at its site (only values leave a
  site, without their exam): the number of federated values above the fence is given in
  the notes; listed outliers are the centre's own exams.
* **Reference levels**: a federated group's exam category is matched by its most
  frequent CT target region (sent as counts), else by the protocol text, as for the
  centre's own groups (ICRP Publication 135, 2017).
* **Workflow filter by protocol**: federated days are per device, not per study
  description: with a protocol filter they are left out, and the result says so.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Select, Text, and_, cast, or_, select
from sqlalchemy.orm import Session

from scanbench.clinical import dose_stats as ds
from scanbench.store import models as m

#: What a group's ``source`` says.
CENTRE, FEDERATED, BOTH = "centre", "federated sites", "centre and federated sites"


@dataclass(frozen=True)
class FedDay:
    """One day of one device received from a site (format 2 data)."""

    device_id: int
    site_id: int
    day: dt.date
    groups: list[dict[str, Any]]


def _day_col() -> Any:
    return m.FedRecord.payload[("data", "day")].as_string()


def _of_kind(kind: str) -> list[Any]:
    """``kind``'s records by their key range (``<kind>:...``; ';' follows ':'), per site:
    the unique (site_id, record_key) index finds them without reading a central node's
    result records (millions), which have no index by kind."""
    fr = m.FedRecord
    return [fr.site_id.in_(select(m.Site.id)), fr.record_key >= f"{kind}:",
            fr.record_key < f"{kind};", fr.kind == kind]


def fed_days(session: Session, kind: str, filters: ds.Filters
             ) -> tuple[list[FedDay], Counter[int]]:
    """The format-2 days of ``kind`` (``dose_day`` or ``workflow_day``) of the filtered
    devices in the filtered period, oldest first, and per site the format-1 days left out.
    Days compare as ISO text (``YYYY-MM-DD``), the same order as the dates."""
    fr = m.FedRecord
    base = dataclasses.replace(filters, protocol=None, date_from=None, date_to=None)
    conds = [*_of_kind(kind), fr.local_table == "device",
             *base.conditions(fr.local_id, fr.received_at)]
    if filters.date_from is not None:
        conds.append(_day_col() >= filters.date_from.isoformat())
    if filters.date_to is not None:
        conds.append(_day_col() < filters.date_to.isoformat())
    days: list[FedDay] = []
    old: Counter[int] = Counter()
    # The payload as text, decoded here: SQLAlchemy's JSON result processing took 2.5x
    # as long (18,250 days: 1.7 s against 0.7 s).
    for site_id, local_id, payload in session.execute(
            select(fr.site_id, fr.local_id, cast(fr.payload, Text)).where(and_(*conds))
            .order_by(_day_col(), fr.id)):
        data = (json.loads(payload) if payload else {}).get("data") or {}
        if data.get("version") != 2:
            old[int(site_id)] += 1
            continue
        days.append(FedDay(int(local_id or 0), int(site_id),
                           dt.date.fromisoformat(data["day"]), list(data.get("groups") or [])))
    return days, old


def newest_fed_day(session: Session, kind: str, filters: ds.Filters) -> dt.date | None:
    """The newest day of ``kind`` received for the filtered devices (any format)."""
    fr = m.FedRecord
    base = dataclasses.replace(filters, protocol=None, date_from=None, date_to=None)
    got = session.scalar(select(_day_col()).where(
        *_of_kind(kind), fr.local_table == "device",
        *base.conditions(fr.local_id, fr.received_at)).order_by(_day_col().desc()).limit(1))
    return dt.date.fromisoformat(got) if got else None


def _old_note(session: Session, old: Counter[int], what: str) -> list[str]:
    if not old:
        return []
    names = dict(session.execute(select(m.Site.id, m.Site.name)
                                 .where(m.Site.id.in_(list(old)))).all())
    sites = ", ".join(f"{names.get(s, s)} ({n} day(s))" for s, n in sorted(old.items()))
    return [f"{what} of {sites} arrived as per-day summaries (federation day format 1) "
            "and are not included: a period's median cannot be computed from daily ones; "
            "update the site's scanbench (format 2 sends each day's values)"]


def distribution(values: Sequence[float]) -> ds.Distribution:
    """The summary the centre gives its own groups, of ``values`` (not empty): n,
    min, Q1, median, Q3, max, mean, P95 (percentiles by Hyndman and Fan definition 7,
    ``numpy.percentile``'s default linear method)."""
    v = np.sort(np.asarray(values, dtype=float))
    q1, q2, q3, p95 = (float(x) for x in np.percentile(v, [25, 50, 75, 95]))
    return ds.Distribution(n=int(v.size), minimum=float(v[0]), q1=q1, median=q2, q3=q3,
                           maximum=float(v[-1]), mean=math.fsum(v.tolist()) / v.size,
                           p95=p95)


# --------------------------------------------------------------------------- dose

@dataclass
class FederatedDoseGroup(ds.DoseGroup):
    """A dose group with values from federated sites: ``source`` says whose values it
    holds, ``days`` how many site-days were combined."""

    source: str = FEDERATED
    days: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "source": self.source, "federated_days": self.days}


def _dose_key(group_by: str, device_id: int, protocol: str) -> tuple[Any, ...]:
    return {"device_protocol": (device_id, protocol), "protocol": (protocol,),
            "device": (device_id,)}[group_by]


def _local_key(group_by: str, g: ds.DoseGroup) -> tuple[Any, ...]:
    return _dose_key(group_by, g.device_id or 0, g.protocol or "")


def _local_values(session: Session, q: ds.Quantity, filters: ds.Filters, group_by: str,
                  key: tuple[Any, ...]) -> list[float]:
    """The values of one group from the exams stored at the centre (the rows
    :func:`scanbench.clinical.dose_stats.dose_statistics` summarised)."""
    de = m.DoseEvent
    conds = [de.kind == q.kind, *filters.conditions(de.device_id, de.occurred_at, de.protocol)]
    if q.kind == "ct":  # localizers left out, as the centre's own statistics do
        acq = de.data["acquisition_type"].as_string()
        conds.append(or_(acq.is_(None), acq != "constant_angle"))
    named = dict(zip(ds._group_keys(group_by), key, strict=True))
    if "device_id" in named:
        conds.append(de.device_id == named["device_id"])
    if "protocol" in named:
        conds.append(de.protocol == named["protocol"] if named["protocol"]
                     else or_(de.protocol.is_(None), de.protocol == ""))
    col = q.column()
    return [float(v) for v in session.scalars(select(col).where(and_(*conds), col.is_not(None)))]


def dose_statistics(session: Session, quantity_key: str, filters: ds.Filters, *,
                    group_by: str = "device_protocol", table: str | None = None,
                    max_outliers: int = 100) -> ds.DoseStatistics:
    """:func:`scanbench.clinical.dose_stats.dose_statistics` of the exams stored at the
    centre, with the federated sites' days of the same devices and period combined in
    (module docstring). Groups with federated values are :class:`FederatedDoseGroup`."""
    stats = ds.dose_statistics(session, quantity_key, filters, group_by=group_by,
                               table=table, max_outliers=max_outliers)
    q = stats.quantity
    days, old = fed_days(session, "dose_day", filters)
    notes = _old_note(session, old, "Dose statistics")
    values: dict[tuple[Any, ...], list[float]] = {}
    regions: dict[tuple[Any, ...], Counter[str]] = {}
    n_days: dict[tuple[Any, ...], set[tuple[int, dt.date]]] = {}
    for day in days:
        for g in day.groups:
            if g.get("kind") != q.kind:  # ct_localizer is never a CT event's kind
                continue
            text = str(g.get("protocol") or "")
            if filters.protocol is not None and text != filters.protocol:
                continue
            vals = (g.get("values") or {}).get(q.key) or []
            if not vals:
                continue
            key = _dose_key(group_by, day.device_id, text)
            values.setdefault(key, []).extend(vals)  # numbers, checked on receipt
            regions.setdefault(key, Counter()).update(g.get("regions") or {})
            n_days.setdefault(key, set()).add((day.device_id, day.day))
    if not values:
        stats.notes.extend(notes)
        return stats
    local = {_local_key(group_by, g): g for g in stats.groups}
    levels = stats.table
    keys = ds._group_keys(group_by)
    merged: list[ds.DoseGroup] = [g for k, g in local.items() if k not in values]
    above = 0
    for key, vals in values.items():
        source = FEDERATED
        mine = local.get(key)
        if mine is not None:
            vals = vals + _local_values(session, q, filters, group_by, key)
            source = BOTH
        d = distribution(vals)
        named = dict(zip(keys, key, strict=True))
        region = (mine.region if mine is not None and mine.region else None) or (
            regions[key].most_common(1)[0][0] if regions[key] else None)
        protocol: str | None = named.get("protocol")
        reference = (ds._reference(levels, q, region, protocol, d)
                     if levels is not None and "protocol" in keys else None)
        merged.append(FederatedDoseGroup(
            device_id=named.get("device_id"), protocol=protocol or None, distribution=d,
            region=region, reference=reference, source=source, days=len(n_days[key])))
        fence = d.upper_fence
        if fence is not None:
            above += sum(1 for v in values[key] if v > fence)
    merged.sort(key=lambda g: _local_key(group_by, g))
    notes.append(f"{sum(len(v) for v in n_days.values())} device-day(s) of federated sites "
                 "are included (their per-day values, combined exactly)")
    if above:
        notes.append(f"{above} value(s) sent by federated sites lie above their group's "
                     "upper fence; they are not listed (only values leave a site, not the "
                     "exams: the site's own dose page lists them)")
    if any(k in local for k in values) and max_outliers:
        # The centre's exams of a combined group are judged against the combined fence:
        # the outlier pass again with those fences (one query, as dose_stats does it).
        fences = {_local_key(group_by, g): fence for g in merged
                  if g.device_id is not None or "device_id" not in keys
                  if getattr(g, "source", CENTRE) != FEDERATED
                  and (fence := g.distribution.upper_fence) is not None}
        found, total = ds._outliers(session, ds._dose_base(q, filters, region=False), keys,
                                    fences, max_outliers)
        notes.append("outliers of groups that combine the centre's exams with federated "
                     "values are judged against the combined group's fence")
        stats = dataclasses.replace(stats, outliers=found, outliers_total=total)
    return dataclasses.replace(stats, groups=merged, notes=[*stats.notes, *notes])


def default_period(session: Session, quantity_key: str, filters: ds.Filters) -> ds.Filters:
    """:func:`scanbench.clinical.dose_stats.default_period` (the 12 months up to the
    newest exam of the selection) with the federated sites' days counted as exams: a
    central node whose newest dose came from a site ends its default period there."""
    if filters.date_from is not None or filters.date_to is not None:
        return filters
    local = ds.newest_event(session, ds.quantity(quantity_key).kind, filters)
    fed = newest_fed_day(session, "dose_day", filters)
    newest = max([d for d in (local.date() if local else None, fed) if d is not None],
                 default=None)
    if newest is None:
        return filters
    end = newest + dt.timedelta(days=1)
    start = ds.last_12_months(end)
    return dataclasses.replace(filters, date_from=start, date_to=end, period_note=(
        f"{ds.DEFAULT_PERIOD}, from {start} to {newest} (the newest exam), the default "
        "when no period is given; give dates (from, to) for another period"))


# --------------------------------------------------------------------------- workflow

@dataclass
class FederatedWorkflowStatistics(ds.WorkflowStatistics):
    """Workflow statistics with the federated sites' days; ``notes`` say what was
    combined and what was left out."""

    notes: list[str] = field(default_factory=list)
    federated_devices: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "notes": list(self.notes),
                "federated_devices": list(self.federated_devices)}


def _add_histogram(bins: Iterable[tuple[float, int]], values: Iterable[float],
                   width: float) -> list[tuple[float, int]]:
    """``bins`` (start, count) with ``values`` counted in (⌊v / width⌋ · width, the
    centre's own binning; negative values left out as there)."""
    counts: Counter[int] = Counter({round(a / width): n for a, n in bins})
    for v in values:
        if v >= 0:
            counts[math.floor(v / width)] += 1
    return [(float(b) * width, counts[b]) for b in sorted(counts)]


def _local_timing(session: Session, filters: ds.Filters, device_id: int, what: str
                  ) -> list[float]:
    et = m.ExamTiming
    col: Any = et.duration_s / 60.0 if what == "duration" else \
        et.data["uptake_time_min"].as_float()
    conds = [*filters.conditions(et.device_id, et.started_at,
                                 et.data["study_description"].as_string()),
             et.device_id == device_id]
    return [float(v) for v in session.scalars(select(col).where(and_(*conds),
                                                               col.is_not(None)))]


def workflow_statistics(session: Session, filters: ds.Filters, *,
                        bin_min: float = 5.0) -> FederatedWorkflowStatistics:
    """:func:`scanbench.clinical.dose_stats.workflow_statistics` of the exams stored at
    the centre with the federated sites' days of the same devices and period combined
    in (module docstring): per device durations and uptake times summarised over all
    their values, histograms counted together, utilisation per device and day."""
    wf = ds.workflow_statistics(session, filters, bin_min=bin_min)
    out = FederatedWorkflowStatistics(**{f.name: getattr(wf, f.name)
                                         for f in dataclasses.fields(wf)})
    if filters.protocol is not None:
        if newest_fed_day(session, "workflow_day", filters) is not None:
            out.notes.append("federated sites send workflow per device and day, not per "
                             "protocol: with a protocol filter they are not included")
        return out
    days, old = fed_days(session, "workflow_day", filters)
    out.notes.extend(_old_note(session, old, "Workflow statistics"))
    if not days:
        return out
    durations: dict[int, list[float]] = {}
    uptake: dict[int, list[float]] = {}
    in_window: Counter[int] = Counter()
    use = {(u.device_id, u.day): u for u in out.days}
    for day in days:
        for g in day.groups:
            durations.setdefault(day.device_id, []).extend(
                float(v) / 60.0 for v in g.get("durations_s") or [])
            uptake.setdefault(day.device_id, []).extend(
                float(v) for v in g.get("uptake_min") or [])
            in_window[day.device_id] += int(g.get("uptake_in_window") or 0)
            mine = use.get((day.device_id, day.day))
            hours = float(g.get("busy_s") or 0.0) / 3600.0
            if mine is not None:  # exams of the same device and day stored at the centre:
                # added; the hours staffed are the site's (the centre does not know them)
                use[(day.device_id, day.day)] = dataclasses.replace(
                    mine, exams=mine.exams + int(g["exams"]),
                    exam_hours=mine.exam_hours + hours,
                    available_hours=float(g["available_hours"]), basis=str(g["basis"]))
            else:
                use[(day.device_id, day.day)] = ds.DeviceDayUse(
                    day.device_id, day.day, int(g["exams"]), hours,
                    float(g["available_hours"]), str(g["basis"]))
    local_dur = dict(out.durations)
    local_up = {d: (s, w) for d, s, w in out.uptake}
    for dev, vals in durations.items():
        if vals:
            if dev in local_dur:
                vals = vals + _local_timing(session, filters, dev, "duration")
            local_dur[dev] = distribution(vals)
    for dev, vals in uptake.items():
        if vals:
            w = in_window[dev]
            if dev in local_up:
                vals = vals + _local_timing(session, filters, dev, "uptake")
                w += local_up[dev][1]
            local_up[dev] = (distribution(vals), w)
    out.durations = sorted(local_dur.items())
    out.uptake = sorted((d, s, w) for d, (s, w) in local_up.items())
    out.days = sorted(use.values(), key=lambda u: (u.device_id, u.day))
    out.duration_histogram = _add_histogram(
        out.duration_histogram, (v for vs in durations.values() for v in vs), bin_min)
    out.uptake_histogram = _add_histogram(
        out.uptake_histogram, (v for vs in uptake.values() for v in vs), bin_min)
    out.federated_devices = sorted({d.device_id for d in days})
    out.notes.append(f"{len(days)} device-day(s) of federated sites are included (their "
                     "per-day exam durations and uptake times, combined exactly; "
                     "utilisation over the hours each device was staffed at its site)")
    return out


def device_filter(ids: Sequence[int]) -> Select[Any]:
    """A ``Filters.devices`` subquery of explicit device ids (reports, tests)."""
    return select(m.Device.id).where(m.Device.id.in_(list(ids)))

"""Dose and workflow statistics from the store: distributions per protocol and device,
against diagnostic reference levels, with outliers; exam durations, PET uptake times
and utilisation per device and day.

Everything is aggregated by the database (SQLite and PostgreSQL alike) so that a
million stored exams never pass through a Python loop:

- **Percentiles** — linear interpolation between the closest ranks (Hyndman and Fan
  1996, definition 7; the default of numpy's ``percentile`` and PostgreSQL's
  ``percentile_cont``): for n sorted values x₁..xₙ, the p-th percentile is
  x_{⌊h⌋+1} + (h − ⌊h⌋)(x_{⌊h⌋+2} − x_{⌊h⌋+1}) with h = (n − 1)·p/100. PostgreSQL
  computes it with ``percentile_cont``; SQLite (which has no percentile aggregate)
  ranks the values of each group (``row_number()`` over the group) and picks the two
  neighbours, ⌊h⌋ in integer arithmetic.
- **Reference levels** — ICRP Publication 135 (2017) compares the *median* of a
  protocol at a facility with the diagnostic reference level (DRL), which is itself
  the 75th percentile of facility medians in a survey. Each group's median and 75th
  percentile are given with their ratio to the DRL of the exam category the group
  falls in (:mod:`scanbench.clinical.reference_levels`: categories by the coded CT
  target region of the group's events, else by the protocol text). A DRL is not a
  dose limit: the outcome is a flag for review, never pass/fail.
- **Outliers** — an exam (or event) above Tukey's upper fence of its own group,
  Q3 + 1.5 × (Q3 − Q1) (Tukey, *Exploratory Data Analysis*, 1977), in groups of at
  least :data:`MIN_FOR_FENCE` values; listed with their study.
- **Utilisation** — Σ exam duration on a device and day ÷ the device's staffed hours
  that day (``Device.staffed_hours``; when none are set, ÷ 24 h, and the result says
  so). Exams are attributed to the day they start (scanner's local clock).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    Select,
    String,
    and_,
    case,
    cast,
    column,
    func,
    literal,
    or_,
    select,
    values,
)
from sqlalchemy.orm import Session

from scanbench.clinical import effective_dose as ed
from scanbench.clinical import reference_levels as rl
from scanbench.clinical.sr import Code
from scanbench.errors import InputError
from scanbench.evaluation.reliability import StaffedHours
from scanbench.store import models as m

#: Percentile definition, stated in every statistics response.
PERCENTILE_METHOD = ("linear interpolation between closest ranks (Hyndman & Fan 1996 "
                     "definition 7, as numpy.percentile and PostgreSQL percentile_cont)")
OUTLIER_RULE = ("above Tukey's upper fence of its group: Q3 + 1.5 x (Q3 - Q1) "
                "(Tukey 1977), in groups of at least 4 values")
DRL_RULE = ("group median against the diagnostic reference level of its exam category "
            "(ICRP Publication 135, 2017: a facility's median per protocol is compared "
            "with the DRL); a flag for review, not a dose limit")
MIN_FOR_FENCE = 4
#: The shipped table with numbers, used when none is named.
DEFAULT_DRL_TABLE = "guangzhou-2022-survey"
GROUPINGS = ("device_protocol", "protocol", "device")
MAX_OUTLIERS = 500


@dataclass(frozen=True)
class Quantity:
    """A dose quantity: which dose events carry it, its column, unit and DRL quantity."""

    key: str
    label: str
    unit: str
    kind: str  # DoseEvent.kind the value is read from
    per: str  # what one value is: "irradiation event", "exam", "administration"
    drl_quantity: str | None = None
    method: str | None = None

    def column(self) -> ColumnElement[Any]:
        if self.key == "activity_per_kg_mbq_per_kg":
            return m.DoseEvent.data["activity_per_kg_mbq_per_kg"].as_float()
        col: ColumnElement[Any] = getattr(m.DoseEvent, self.key)
        return col


QUANTITIES: dict[str, Quantity] = {q.key: q for q in (
    Quantity("ctdivol_mgy", "CTDIvol", "mGy", "ct", "irradiation event (localizers left out)",
             "ctdivol_mgy"),
    Quantity("dlp_mgycm", "DLP (exam total)", "mGy·cm", "study", "exam", "dlp_mgycm"),
    Quantity("ssde_mgy", "SSDE", "mGy", "ct", "irradiation event (localizers left out)",
             method="AAPM Report 204 / 220 size-specific dose estimate"),
    Quantity("administered_activity_mbq", "Administered activity", "MBq",
             "radiopharmaceutical", "administration"),
    Quantity("activity_per_kg_mbq_per_kg", "Administered activity per body weight",
             "MBq/kg", "radiopharmaceutical", "administration (patient weight known)"),
    Quantity("effective_dose_msv", "Effective dose", "mSv", "study", "exam",
             method=(f"CT: k x DLP, {ed.K_SET_AAPM96}; radiopharmaceutical: activity x "
                     "dose coefficient, ICRP Publication 128 (adult); a population "
                     "quantity for comparing practice (ICRP Publication 103)")),
)}


#: The period of the dose statistics of the web page and API when none is asked for: a
#: national fleet's ten years are 10x the work of one (bench/README.md, web section).
DEFAULT_PERIOD = "the last 12 months of stored exams"


def last_12_months(end: dt.date) -> dt.date:
    """The first day of the 12 months before ``end`` (exclusive): the same calendar day
    a year earlier (28 February for 29 February)."""
    try:
        return end.replace(year=end.year - 1)
    except ValueError:  # 29 February
        return end.replace(year=end.year - 1, day=28)


@dataclass(frozen=True)
class Filters:
    """What to include. ``devices`` is the caller's visible device ids (a subquery, from
    :class:`scanbench.web.scope.Scope`); None only for trusted local use (CLI, reports).
    Dates are the scanner's local calendar days, ``date_to`` exclusive."""

    devices: Select[Any] | None = None
    site_id: int | None = None
    device_id: int | None = None
    modality: str | None = None
    protocol: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    #: Said in the result when the period was chosen for the caller (a default).
    period_note: str | None = None

    def __post_init__(self) -> None:
        if self.date_from and self.date_to and self.date_to <= self.date_from:
            raise InputError(f"date_to {self.date_to} must be after date_from {self.date_from}")

    def conditions(self, device_col: Any, time_col: Any,
                   protocol_col: Any = None) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = [device_col.is_not(None)]
        if self.devices is not None:
            conds.append(device_col.in_(self.devices))
        if self.device_id is not None:
            conds.append(device_col == self.device_id)
        if self.site_id is not None:
            conds.append(device_col.in_(select(m.Device.id).where(
                m.Device.site_id == self.site_id)))
        if self.modality:
            conds.append(device_col.in_(select(m.Device.id).where(
                func.upper(m.Device.modality) == self.modality.upper())))
        if self.protocol is not None and protocol_col is not None:
            conds.append(protocol_col == self.protocol)
        if self.date_from is not None:
            conds.append(time_col >= dt.datetime.combine(self.date_from, dt.time()))
        if self.date_to is not None:
            conds.append(time_col < dt.datetime.combine(self.date_to, dt.time()))
        return conds


# --------------------------------------------------------------------------- quantiles

@dataclass
class Distribution:
    """Summary of one group's values (all in ``unit``)."""

    n: int
    minimum: float
    q1: float
    median: float
    q3: float
    maximum: float
    mean: float
    p95: float | None = None

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @property
    def upper_fence(self) -> float | None:
        return self.q3 + 1.5 * self.iqr if self.n >= MIN_FOR_FENCE else None

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "min": self.minimum, "q1": self.q1, "median": self.median,
                "q3": self.q3, "p75": self.q3, "max": self.maximum, "mean": self.mean,
                "p95": self.p95, "iqr": self.iqr, "upper_fence": self.upper_fence}


PERCENTS = (25, 50, 75, 95)


def _quantile_columns(ranked: Any, percent: int) -> list[Any]:
    """The lower neighbour, upper neighbour and fraction (0..99, in hundredths) of the
    ``percent``-th percentile per group, in integer arithmetic (both backends divide
    integers by truncation, which is ⌊⌋ for the non-negative h)."""
    h100 = (ranked.c.n - 1) * percent
    pos = h100.op("/", return_type=Integer)(literal(100, Integer))
    frac = h100.op("%", return_type=Integer)(literal(100, Integer))
    lo = func.max(case((ranked.c.rn == pos + 1, ranked.c.value)))
    hi = func.max(case((ranked.c.rn == pos + 2, ranked.c.value)))
    return [lo.label(f"lo{percent}"), hi.label(f"hi{percent}"),
            func.max(frac).label(f"fr{percent}")]


def _ranked(base: Select[Any], keys: Sequence[str]) -> Any:
    """``base``'s non-NULL values with their rank ``rn`` (by value, then ``row_id``)
    and the count ``n`` of their group."""
    sub = base.subquery()
    part = [sub.c[k] for k in keys]
    extra = [sub.c.tag] if "tag" in sub.c else []
    return select(*part, sub.c.value, *extra,
                  func.row_number().over(partition_by=part or None,
                                         order_by=(sub.c.value, sub.c.row_id)).label("rn"),
                  func.count().over(partition_by=part or None).label("n")
                  ).where(sub.c.value.is_not(None)).subquery()


def _percentile_expr(ranked: Any, percent: int) -> ColumnElement[float]:
    """The interpolated percentile of :func:`_quantile_columns` as one SQL expression
    (floating point)."""
    lo, hi, frac = _quantile_columns(ranked, percent)
    lo_, hi_, fr_ = lo.element, hi.element, frac.element
    return lo_ + (func.coalesce(hi_, lo_) - lo_) * (cast(fr_, Float)
                                                   / literal(100.0, Float))


def _aggregates(session: Session, base: Select[Any], keys: Sequence[str],
                percents: Sequence[int], min_n: int = 1) -> tuple[Select[Any], list[Any]]:
    """Per group of ``keys`` with at least ``min_n`` values: ``cnt``, ``mn``, ``mx``,
    ``av``, ``p<percent>`` for each percent (and ``tag_lo``/``tag_hi``, the least and
    greatest ``tag``, when ``base`` has a ``tag`` column). PostgreSQL: its
    ``percentile_cont`` ordered-set aggregate (one sort per group, in C); elsewhere the
    ranks of :func:`_ranked` (the same definition: the tests compare both backends with
    numpy). Returns the query and its key columns."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY, array

        sub = base.subquery()
        part = [sub.c[k] for k in keys]
        pcs = func.percentile_cont(array([p / 100.0 for p in percents])).within_group(
            sub.c.value)
        pcs.type = ARRAY(Float)
        cols: list[Any] = [*part, func.count(sub.c.value).label("cnt"),
                           func.min(sub.c.value).label("mn"), func.max(sub.c.value).label("mx"),
                           func.avg(sub.c.value).label("av"), pcs.label("pcs")]
        if "tag" in sub.c:
            cols += [func.min(sub.c.tag).label("tag_lo"), func.max(sub.c.tag).label("tag_hi")]
        inner = select(*cols).where(sub.c.value.is_not(None))
        if part:
            inner = inner.group_by(*part)
        inner_sq = inner.having(func.count(sub.c.value) >= min_n).subquery()
        outer_part = [inner_sq.c[k] for k in keys]
        outer = [c for c in inner_sq.c if c.name != "pcs"]
        outer += [inner_sq.c.pcs[i + 1].label(f"p{p}") for i, p in enumerate(percents)]
        return select(*outer), outer_part
    ranked = _ranked(base, keys)
    rpart = [ranked.c[k] for k in keys]
    cols = [*rpart, func.count().label("cnt"), func.min(ranked.c.value).label("mn"),
            func.max(ranked.c.value).label("mx"), func.avg(ranked.c.value).label("av")]
    cols += [_percentile_expr(ranked, p).label(f"p{p}") for p in percents]
    if "tag" in ranked.c:
        cols += [func.min(ranked.c.tag).label("tag_lo"), func.max(ranked.c.tag).label("tag_hi")]
    q = select(*cols)
    if rpart:
        q = q.group_by(*rpart)
    return q.having(func.count() >= min_n), rpart


def _grouped(session: Session, base: Select[Any], keys: Sequence[str]) -> list[Any]:
    q, part = _aggregates(session, base, keys, PERCENTS)
    if part:
        q = q.order_by(*part)
    return [row for row in session.execute(q) if row.cnt]


def _distribution(row: Any) -> Distribution:
    return Distribution(n=int(row.cnt), minimum=float(row.mn), q1=float(row.p25),
                        median=float(row.p50), q3=float(row.p75), maximum=float(row.mx),
                        mean=float(row.av), p95=float(row.p95))


def grouped_distributions(session: Session, base: Select[Any], keys: Sequence[str]
                          ) -> list[tuple[tuple[Any, ...], Distribution]]:
    """Distributions of ``base``'s ``value`` column per group of its ``keys`` columns
    (``base`` must also have a ``row_id`` column, to rank ties stably). NULL values
    are left out. Groups sorted by key."""
    return [(tuple(row[i] for i in range(len(keys))), _distribution(row))
            for row in _grouped(session, base, keys)]


# --------------------------------------------------------------------------- dose

@dataclass
class ReferenceComparison:
    table: str
    title: str
    source: str
    exam: str
    level: float  # the DRL, in the quantity's unit
    achievable: float | None
    ratio_median: float  # median / DRL
    ratio_p75: float
    outcome: str  # reference_levels.outcome of the median
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "title": self.title, "source": self.source,
                "exam": self.exam, "drl": self.level, "achievable": self.achievable,
                "ratio_median": self.ratio_median, "ratio_p75": self.ratio_p75,
                "above": self.ratio_median > 1.0, "outcome": self.outcome, "note": self.note}


@dataclass
class DoseGroup:
    device_id: int | None
    protocol: str | None
    distribution: Distribution
    region: str | None = None
    reference: ReferenceComparison | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"device_id": self.device_id, "protocol": self.protocol,
                "region": self.region, **self.distribution.to_dict(),
                "reference": self.reference.to_dict() if self.reference else None}


@dataclass
class Outlier:
    dose_event_id: int
    study_id: int
    study_uid: str
    device_id: int | None
    protocol: str | None
    occurred_at: dt.datetime | None
    value: float
    upper_fence: float

    def to_dict(self) -> dict[str, Any]:
        return {"dose_event_id": self.dose_event_id, "study_id": self.study_id,
                "study_uid": self.study_uid, "device_id": self.device_id,
                "protocol": self.protocol,
                "occurred_at": self.occurred_at.isoformat() if self.occurred_at else None,
                "value": self.value, "upper_fence": self.upper_fence}


@dataclass
class DoseStatistics:
    quantity: Quantity
    group_by: str
    groups: list[DoseGroup]
    outliers: list[Outlier]
    outliers_total: int | None  # None: not looked for (max_outliers 0)
    table: rl.DrlTable | None
    notes: list[str] = field(default_factory=list)
    period: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        q = self.quantity
        return {
            "quantity": q.key, "label": q.label, "unit": q.unit, "per": q.per,
            "method": q.method, "group_by": self.group_by,
            "percentile_method": PERCENTILE_METHOD, "outlier_rule": OUTLIER_RULE,
            "reference_rule": DRL_RULE if q.drl_quantity else None,
            "reference_table": ({"name": self.table.name, "title": self.table.title,
                                 "source": self.table.source} if self.table else None),
            "groups": [g.to_dict() for g in self.groups],
            "outliers": [o.to_dict() for o in self.outliers],
            "outliers_total": self.outliers_total, "notes": list(self.notes),
            "period": dict(self.period)}


def quantity(key: str) -> Quantity:
    try:
        return QUANTITIES[key]
    except KeyError:
        raise InputError(f"unknown dose quantity {key!r}: one of "
                         f"{', '.join(QUANTITIES)}") from None


def drl_table(name: str | None) -> rl.DrlTable:
    """A shipped DRL table by name (never a path: the name comes from a web request)."""
    name = name or DEFAULT_DRL_TABLE
    shipped = rl.list_tables()
    if name not in shipped:
        raise InputError(f"unknown reference level table {name!r}: one of {', '.join(shipped)}")
    return rl.load_table(name)


def _not_localizer() -> ColumnElement[bool]:
    acq = m.DoseEvent.data["acquisition_type"].as_string()
    return or_(acq.is_(None), acq != "constant_angle")


def _dose_base(q: Quantity, filters: Filters, region: bool = True) -> Select[Any]:
    de = m.DoseEvent
    conds = [de.kind == q.kind,
             *filters.conditions(de.device_id, de.occurred_at, de.protocol)]
    extra = []
    if q.kind == "ct":
        conds.append(_not_localizer())
    if q.kind == "ct" and region:
        # The coded target region, read in the same pass (its group's least and
        # greatest name it when the group has one region).
        extra.append(_region_code().label("tag"))
    return select(de.id.label("row_id"), de.study_id.label("study_id"),
                  de.device_id.label("device_id"),
                  # NULL protocols as '' so groups join back on plain equality
                  func.coalesce(de.protocol, "").label("protocol"),
                  de.occurred_at.label("occurred_at"), q.column().label("value"), *extra
                  ).where(and_(*conds))


def _region_code() -> ColumnElement[str]:
    """``value|scheme`` of a CT event's coded target region (NULL without one)."""
    data = m.DoseEvent.data
    return (data[("target_region_code", "value")].as_string() + literal("|")
            + func.coalesce(data[("target_region_code", "scheme")].as_string(), ""))


def _region_of_tag(tag: str | None) -> str | None:
    if not tag:
        return None
    value, _, scheme = tag.partition("|")
    return ed.region_of(Code(value, scheme))


def _group_keys(group_by: str) -> list[str]:
    if group_by not in GROUPINGS:
        raise InputError(f"group_by: unknown grouping {group_by!r}: one of "
                         f"{', '.join(GROUPINGS)}")
    return {"device_protocol": ["device_id", "protocol"], "protocol": ["protocol"],
            "device": ["device_id"]}[group_by]


def _regions(session: Session, q: Quantity, filters: Filters, keys: list[str]
             ) -> dict[tuple[Any, ...], str]:
    """The most frequent k-factor region of the coded CT target regions (TID 10013
    target region) among the CT events of each group (for exam totals: of the exams'
    events), for matching DRL categories by region."""
    ct = m.DoseEvent
    value = ct.data[("target_region_code", "value")].as_string()
    scheme = ct.data[("target_region_code", "scheme")].as_string()
    if q.kind == "ct":
        group_cols = [func.coalesce(ct.protocol, "") if k == "protocol" else getattr(ct, k)
                      for k in keys]
        conds = [ct.kind == "ct", _not_localizer(),
                 *filters.conditions(ct.device_id, ct.occurred_at, ct.protocol)]
        query = select(*group_cols, value, scheme, func.count()).where(and_(*conds))
    else:
        exam = m.DoseEvent.__table__.alias("exam")
        group_cols = [func.coalesce(exam.c.protocol, "") if k == "protocol" else exam.c[k]
                      for k in keys]
        conds = [exam.c.kind == q.kind,
                 *filters.conditions(exam.c.device_id, exam.c.occurred_at, exam.c.protocol),
                 ct.kind == "ct", _not_localizer()]
        query = (select(*group_cols, value, scheme, func.count())
                 .select_from(exam).join(ct, ct.study_id == exam.c.study_id)
                 .where(and_(*conds)))
    query = query.where(value.is_not(None)).group_by(*group_cols, value, scheme)
    counts: dict[tuple[Any, ...], Counter[str]] = {}
    for row in session.execute(query):
        region = ed.region_of(Code(str(row[-3]), str(row[-2] or "")))
        if region is not None:
            counts.setdefault(tuple(row[:len(keys)]), Counter())[region] += int(row[-1])
    return {k: c.most_common(1)[0][0] for k, c in counts.items()}


def _category(table: rl.DrlTable, region: str | None, protocol: str | None
              ) -> rl.ExamLevels | None:
    """The exam category: by region first, then by the protocol text, the order of
    :meth:`scanbench.clinical.reference_levels.ExamLevels.matches`."""
    for cat in table.exams:
        if cat.regions and region in cat.regions:
            return cat
    for cat in table.exams:
        if cat.description is not None and protocol and cat.description.search(protocol):
            return cat
    return None


def _reference(table: rl.DrlTable, q: Quantity, region: str | None, protocol: str | None,
               d: Distribution) -> ReferenceComparison | None:
    if q.drl_quantity is None:
        return None
    cat = _category(table, region, protocol)
    if cat is None:
        return None
    levels = cat.levels.get(q.drl_quantity) or {}
    drl = levels.get("drl")
    if drl is None:
        return None
    return ReferenceComparison(
        table=table.name, title=table.title, source=table.source, exam=cat.exam,
        level=drl, achievable=levels.get("achievable"), ratio_median=d.median / drl,
        ratio_p75=d.q3 / drl, outcome=rl.outcome(d.median, levels), note=cat.note)


def dose_statistics(session: Session, quantity_key: str, filters: Filters, *,
                    group_by: str = "device_protocol", table: str | None = None,
                    max_outliers: int = 100) -> DoseStatistics:
    """Distribution of one dose quantity per group, each against its reference level,
    with the outliers of each group (module docstring: the rules)."""
    q = quantity(quantity_key)
    keys = _group_keys(group_by)
    if not 0 <= max_outliers <= MAX_OUTLIERS:
        raise InputError(f"max_outliers must be 0 to {MAX_OUTLIERS}")
    levels = drl_table(table) if q.drl_quantity else None
    wants_region = (levels is not None and "protocol" in keys
                    and any(c.regions for c in levels.exams))
    rows = _grouped(session, _dose_base(q, filters, region=wants_region), keys)
    regions: dict[tuple[Any, ...], str] = {}
    if wants_region and q.kind == "ct":
        # One region per group from the same pass; the mode only for mixed groups.
        mixed = False
        for row in rows:
            if row.tag_lo is not None and row.tag_lo == row.tag_hi:  # one region
                region = _region_of_tag(row.tag_lo)
                if region is not None:
                    regions[tuple(row[i] for i in range(len(keys)))] = region
            elif row.tag_lo is not None:
                mixed = True
        if mixed:
            regions = {**_regions(session, q, filters, keys), **regions}
    elif wants_region:
        regions = _regions(session, q, filters, keys)
    groups = []
    for row in rows:
        key = tuple(row[i] for i in range(len(keys)))
        d = _distribution(row)
        named = dict(zip(keys, key, strict=True))
        region = regions.get(key)
        groups.append(DoseGroup(
            device_id=named.get("device_id"), protocol=named.get("protocol") or None,
            distribution=d,
            region=region,
            reference=(_reference(levels, q, region, named.get("protocol"), d)
                       if levels is not None and "protocol" in keys else None)))
    # max_outliers 0: no outlier pass at all. Otherwise one pass over the rows against
    # the fences of the groups just computed (no second percentile pass).
    fences = {tuple(row[i] for i in range(len(keys))): fence for row in rows
              if (fence := _distribution(row).upper_fence) is not None
              and float(row.mx) > fence}
    outliers, total = (_outliers(session, _dose_base(q, filters, region=False), keys,
                                 fences, max_outliers) if max_outliers else ([], None))
    notes = []
    if levels is not None and levels.confidence != "C":
        notes.append(f"the reference levels of {levels.name} are not confirmed in their source")
    if levels is not None and "protocol" not in keys:
        notes.append("reference levels apply per exam category: group by protocol to "
                     "compare with them")
    period = {"date_from": filters.date_from.isoformat() if filters.date_from else None,
              "date_to": filters.date_to.isoformat() if filters.date_to else None,
              "default": filters.period_note is not None,
              "note": filters.period_note or _period_words(filters)}
    return DoseStatistics(q, group_by, groups, outliers, total, levels, notes, period)


def newest_event(session: Session, kind: str, filters: Filters) -> dt.datetime | None:
    """When the newest dose event of ``kind`` of the filtered devices occurred: one
    index seek per device (``ix_dose_event_device_time``), never a scan of the events."""
    de = m.DoseEvent
    devices = select(m.Device.id.label("id")).where(
        *dataclasses.replace(filters, protocol=None, date_from=None, date_to=None)
        .conditions(m.Device.id, m.Device.id)).subquery()
    per_device = (select(func.max(de.occurred_at)).where(de.device_id == devices.c.id,
                                                         de.kind == kind)
                  .scalar_subquery())
    newest = session.execute(select(func.max(per_device)).select_from(devices)).scalar()
    if isinstance(newest, str):  # SQLite returns max() of a scalar subquery untyped
        newest = dt.datetime.fromisoformat(newest)
    return newest


def default_period(session: Session, quantity_key: str, filters: Filters) -> Filters:
    """``filters`` with :data:`DEFAULT_PERIOD` when they name neither ``date_from`` nor
    ``date_to``: the 12 months up to (and including) the day of the newest stored event
    of the quantity in the selection, so a default never depends on today's date and a
    fleet whose last exams are older still shows its last year. The result says so
    (``period``); an explicit period, however long, is kept as given."""
    if filters.date_from is not None or filters.date_to is not None:
        return filters
    newest = newest_event(session, quantity(quantity_key).kind, filters)
    if newest is None:
        return filters
    end = newest.date() + dt.timedelta(days=1)
    start = last_12_months(end)
    return dataclasses.replace(filters, date_from=start, date_to=end, period_note=(
        f"{DEFAULT_PERIOD}, from {start} to {newest.date()} (the newest exam), the default "
        "when no period is given; give dates (from, to) for another period"))


def _period_words(filters: Filters) -> str:
    if filters.date_from and filters.date_to:
        return f"from {filters.date_from} to {filters.date_to} (exclusive)"
    if filters.date_from:
        return f"from {filters.date_from} on"
    if filters.date_to:
        return f"everything before {filters.date_to}"
    return "every stored exam (no period given)"


def _outliers(session: Session, base: Select[Any], keys: list[str],
              fences: dict[tuple[Any, ...], float], limit: int) -> tuple[list[Outlier], int]:
    """Rows above their group's upper fence, found by the database in one query: the
    fences already computed from the groups' Q1 and Q3 (only of the groups whose maximum
    lies above it: the others have no outlier) as a ``VALUES`` list joined to the rows,
    so only the outliers come back, the furthest above their fence first. Group keys
    must not be NULL (the bases coalesce them). Numbers are rendered inline (a national
    fleet has ~20,000 groups, more than SQLite's bound-parameter limit); Python's float
    repr round-trips exactly, so the fence compared is the one reported."""
    if not fences:
        return [], 0
    types: dict[str, Any] = {"device_id": Integer(), "protocol": String()}
    table = values(*[column(k, types[k]) for k in keys], column("fence", Float()),
                   name="fences", literal_binds=True).data(
        [(*key, fence) for key, fence in fences.items()]).cte("fences")  # SQLite: as a CTE
    sub = base.subquery()
    above = (select(sub.c.row_id, sub.c.study_id, sub.c.device_id, sub.c.protocol,
                    sub.c.occurred_at, sub.c.value, table.c.fence)
             .join(table, and_(*[sub.c[k] == table.c[k] for k in keys]))
             .where(sub.c.value > table.c.fence)).subquery()
    # One pass: the rows furthest above their fence, each carrying the total count.
    rows = session.execute(select(above, func.count().over().label("total"))
                           .order_by((above.c.value - above.c.fence).desc(), above.c.row_id)
                           .limit(max(limit, 1))).all()
    total = int(rows[0].total) if rows else 0
    rows = rows[:limit]
    uids = dict(session.execute(select(m.Study.id, m.Study.study_uid).where(
        m.Study.id.in_({r.study_id for r in rows}))).all()) if rows else {}
    return [Outlier(dose_event_id=r.row_id, study_id=r.study_id,
                    study_uid=uids.get(r.study_id, ""), device_id=r.device_id,
                    protocol=r.protocol or None, occurred_at=r.occurred_at,
                    value=float(r.value), upper_fence=float(r.fence)) for r in rows], int(total)


# --------------------------------------------------------------------------- workflow

def staffed_hours_of(spec: dict[str, Any] | None) -> StaffedHours | None:
    """``Device.staffed_hours`` as a schedule: {} or None: none set (the caller uses
    24 h); ``{"weekdays": [0..6], "start": "08:00", "end": "18:00", "timezone": ...}``."""
    if not spec:
        return None
    try:
        start = dt.time.fromisoformat(str(spec.get("start", "00:00")))
        end = dt.time.fromisoformat(str(spec.get("end", "00:00")))
        days = [int(d) for d in spec.get("weekdays", range(7))]
    except (TypeError, ValueError) as exc:
        raise InputError(f"device staffed_hours {spec!r}: {exc}") from None
    return StaffedHours({d: [(start, end)] for d in days if 0 <= d <= 6},
                        spec.get("timezone"))


@dataclass
class DeviceDayUse:
    device_id: int
    day: dt.date
    exams: int
    exam_hours: float
    available_hours: float
    basis: str  # "staffed hours" or "24 h"

    @property
    def utilisation(self) -> float | None:
        """Exam hours ÷ available hours, in % (None on a day with no staffed hours)."""
        return 100.0 * self.exam_hours / self.available_hours if self.available_hours else None

    def to_dict(self) -> dict[str, Any]:
        return {"device_id": self.device_id, "day": self.day.isoformat(), "exams": self.exams,
                "exam_hours": self.exam_hours, "available_hours": self.available_hours,
                "basis": self.basis, "utilisation_percent": self.utilisation}


@dataclass
class WorkflowStatistics:
    durations: list[tuple[int, Distribution]]  # per device, minutes
    uptake: list[tuple[int, Distribution, int]]  # per device, minutes, n in window
    days: list[DeviceDayUse]
    duration_histogram: list[tuple[float, int]]  # bin start (min), count
    uptake_histogram: list[tuple[float, int]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "percentile_method": PERCENTILE_METHOD,
            "durations": [{"device_id": d, "unit": "min", **s.to_dict()}
                          for d, s in self.durations],
            "uptake": [{"device_id": d, "unit": "min", **s.to_dict(), "in_window": w}
                       for d, s, w in self.uptake],
            "utilisation": [u.to_dict() for u in self.days],
            "utilisation_rule": ("exam hours (sum of exam durations, by start day) / staffed "
                                 "hours of the device that day; 24 h when the device has "
                                 "no staffed hours set"),
            "duration_histogram": [{"from_min": a, "count": n}
                                   for a, n in self.duration_histogram],
            "uptake_histogram": [{"from_min": a, "count": n} for a, n in self.uptake_histogram],
        }


def _timing_base(filters: Filters, value: ColumnElement[Any]) -> Select[Any]:
    et = m.ExamTiming
    return select(et.id.label("row_id"), et.device_id.label("device_id"),
                  value.label("value")).where(
        and_(*filters.conditions(et.device_id, et.started_at,
                                 et.data["study_description"].as_string())))


def _histogram(session: Session, base: Select[Any], width: float) -> list[tuple[float, int]]:
    sub = base.subquery()
    # ⌊value / width⌋ as an integer cast of a non-negative value (truncation is floor).
    bucket = cast(sub.c.value / width, Integer)
    if session.get_bind().dialect.name == "postgresql":  # PostgreSQL casts by rounding
        bucket = cast(func.floor(sub.c.value / width), Integer)
    rows = session.execute(select(bucket, func.count()).where(sub.c.value >= 0)
                           .group_by(bucket).order_by(bucket)).all()
    return [(float(b) * width, int(n)) for b, n in rows]


def workflow_statistics(session: Session, filters: Filters, *,
                        bin_min: float = 5.0) -> WorkflowStatistics:
    """Exam durations and PET uptake times per device (minutes), their histograms
    (``bin_min`` wide), and utilisation per device and day (module docstring)."""
    if not 0.5 <= bin_min <= 240:
        raise InputError("bin_min must be between 0.5 and 240 minutes")
    et = m.ExamTiming
    minutes = et.duration_s / 60.0
    uptake = et.data["uptake_time_min"].as_float()
    durations = [(int(k[0]), d) for k, d in grouped_distributions(
        session, _timing_base(filters, minutes), ["device_id"])]
    up = grouped_distributions(session, _timing_base(filters, uptake), ["device_id"])
    in_window = dict(session.execute(
        select(et.device_id, func.count()).where(
            and_(*filters.conditions(et.device_id, et.started_at,
                                     et.data["study_description"].as_string()),
                 et.data["uptake_in_window"].as_boolean().is_(True)))
        .group_by(et.device_id)).all())
    uptake_rows = [(int(k[0]), d, int(in_window.get(k[0], 0))) for k, d in up]
    return WorkflowStatistics(
        durations=durations, uptake=uptake_rows, days=utilisation(session, filters),
        duration_histogram=_histogram(session, _timing_base(filters, minutes), bin_min),
        uptake_histogram=_histogram(session, _timing_base(filters, uptake), bin_min))


def utilisation(session: Session, filters: Filters) -> list[DeviceDayUse]:
    """Exams and exam hours per device and day (one grouped query), over the device's
    staffed hours that day."""
    et = m.ExamTiming
    day = func.date(et.started_at)
    rows = session.execute(
        select(et.device_id, day, func.count(), func.sum(et.duration_s))
        .where(and_(*filters.conditions(et.device_id, et.started_at,
                                        et.data["study_description"].as_string()),
                    et.started_at.is_not(None)))
        .group_by(et.device_id, day).order_by(et.device_id, day)).all()
    schedules: dict[int, StaffedHours | None] = {}
    ids = {int(r[0]) for r in rows}
    for dev_id, hours in session.execute(select(m.Device.id, m.Device.staffed_hours)
                                         .where(m.Device.id.in_(ids))):
        schedules[dev_id] = staffed_hours_of(hours)
    out = []
    for dev_id, d, n, seconds in rows:
        day_ = d if isinstance(d, dt.date) else dt.date.fromisoformat(str(d))
        sched = schedules.get(int(dev_id))
        start = dt.datetime.combine(day_, dt.time())
        available = (sched.hours(start, start + dt.timedelta(days=1))
                     if sched is not None else 24.0)
        out.append(DeviceDayUse(int(dev_id), day_, int(n), float(seconds or 0.0) / 3600.0,
                                available, "staffed hours" if sched is not None else "24 h"))
    return out


# --------------------------------------------------------------------------- comparison

@dataclass
class DeviceValue:
    device_id: int
    site_id: int | None
    latest_value: float | None
    latest_at: dt.datetime | None
    latest_status: str | None
    latest_result_id: int | None
    distribution: Distribution | None

    def to_dict(self) -> dict[str, Any]:
        return {"device_id": self.device_id, "site_id": self.site_id,
                "latest": {"value": self.latest_value,
                           "acquired_at": self.latest_at.isoformat() if self.latest_at else None,
                           "status": self.latest_status, "result_id": self.latest_result_id},
                "distribution": self.distribution.to_dict() if self.distribution else None}


def compare_measurement(session: Session, analysis: str, name: str, filters: Filters,
                        labels_key: str | None = None) -> tuple[str | None, list[DeviceValue]]:
    """One measurement across devices: the latest value of each device (superseded
    results left out) and its distribution over the filtered period. Returns the unit
    and one row per device that has the measurement."""
    from sqlalchemy.orm import aliased

    me, res = m.Measurement, m.Result
    later = aliased(m.Result)
    conds = [me.analysis == analysis, me.name == name,
             *filters.conditions(me.device_id, me.acquired_at),
             ~select(later.id).where(later.supersedes_id == me.result_id).exists()]
    if labels_key is not None:
        conds.append(me.labels_key == labels_key)
    base: Any = select(me.id.label("row_id"), me.device_id.label("device_id"),
                       me.value.label("value")).where(and_(*conds))
    dists = {int(k[0]): d for k, d in grouped_distributions(session, base, ["device_id"])}
    # The latest row per device: rank by time within the device, newest first.
    ranked = select(me.device_id, me.value, me.acquired_at, me.status, me.result_id,
                    me.unit, func.row_number().over(
                        partition_by=me.device_id,
                        order_by=(me.acquired_at.desc(), me.id.desc())).label("rn")
                    ).join(res, res.id == me.result_id).where(and_(*conds)).subquery()
    latest = session.execute(select(ranked).where(ranked.c.rn == 1)).all()
    sites = dict(session.execute(select(m.Device.id, m.Device.site_id).where(
        m.Device.id.in_({r.device_id for r in latest} | set(dists)))).all())
    unit = latest[0].unit if latest else None
    out = [DeviceValue(int(r.device_id), sites.get(r.device_id), r.value, r.acquired_at,
                       r.status, r.result_id, dists.get(int(r.device_id))) for r in latest]
    return unit, sorted(out, key=lambda v: (v.site_id or 0, v.device_id))

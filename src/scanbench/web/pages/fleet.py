"""The fleet overview (``/``): one row per device the caller may see, with the latest
status of each test, open alerts and overdue tests; failing devices first, then
drifting, then overdue, then the rest.

Facts and where they come from (one query per kind of fact, never one per device, so
the page stays fast with a thousand devices):

- latest status per test: for each device and analysis, the newest result (by
  acquisition time, then id; a superseded result never is), with the status of the
  result by the rule of :func:`scanbench.evaluation.overall_status` (fail if any
  measurement fails, else refused, else pass, else reported) — a loose index scan when
  ``result`` has an index on (device_id, analysis, acquired_at), else a window function
  over the results of the visible devices; joined to their measurements' statuses;
- open alerts (table ``alert``, state ``open``): limit alerts at the action level make
  a device *failing*; trend alerts (Westgard, CUSUM, EWMA: level ``trend``) and
  tolerance-level limit alerts make it *drifting*;
- overdue tests: the required tests marked ``overdue`` in the newest stored scorecard
  of the device (:func:`scanbench.evaluation.scorecard.latest_scorecards`; the date
  of that scorecard is shown: overdue is as of when it was computed).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import Response
from sqlalchemy import Select, func, inspect, select
from sqlalchemy.orm import aliased

from scanbench.evaluation.scorecard import latest_scorecards
from scanbench.store import models as m
from scanbench.web.pages.common import P, PageCtx, page, render

router = APIRouter()

#: The order of the fleet: what needs attention first.
RANKS = ("failing", "drifting", "overdue", "ok", "no results")
_RANK = {name: i for i, name in enumerate(RANKS)}


def result_status(statuses: set[str]) -> str:
    """A result's status from its measurements' statuses: the rule of
    :func:`scanbench.evaluation.overall_status`, and, like the HTML report, a result
    with only unconfirmed limits reads as outside (or within) an unconfirmed limit
    rather than a bare "reported"."""
    for s in ("fail", "refused", "pass"):
        if s in statuses:
            return s
    for s in ("outside_unconfirmed", "within_unconfirmed"):
        if s in statuses:
            return s
    return "info"


@dataclass
class TestCell:
    """The latest result of one analysis on one device."""

    analysis: str
    result_id: int
    acquired_at: dt.datetime | None
    status: str

    @property
    def label(self) -> str:
        """The analysis id without its modality prefix (``ct.acr464.uniformity`` ->
        ``acr464.uniformity``): the column is already per device."""
        head, _, rest = self.analysis.partition(".")
        return rest or head


@dataclass
class FleetRow:
    """One device on the fleet page."""

    device: m.Device
    site: str
    tests: list[TestCell] = field(default_factory=list)
    alerts_failing: int = 0
    alerts_drifting: int = 0
    alert_messages: list[str] = field(default_factory=list)
    overdue: list[str] = field(default_factory=list)  # required tests, newest scorecard
    due: list[str] = field(default_factory=list)
    overdue_as_of: dt.datetime | None = None

    @property
    def name(self) -> str:
        d = self.device
        return d.display_name or " ".join(p for p in (d.manufacturer, d.model, d.serial) if p) \
            or f"device {d.id}"

    @property
    def failing(self) -> bool:
        return self.alerts_failing > 0 or any(t.status == "fail" for t in self.tests)

    @property
    def state(self) -> str:
        if self.failing:
            return "failing"
        if self.alerts_drifting:
            return "drifting"
        if self.overdue:
            return "overdue"
        return "ok" if self.tests else "no results"

    @property
    def rank(self) -> int:
        return _RANK[self.state]

    @property
    def latest(self) -> dt.datetime | None:
        times = [t.acquired_at for t in self.tests if t.acquired_at is not None]
        return max(times) if times else None


#: Databases whose ``result`` table has an index led by (device_id, analysis, acquired_at).
_INDEXED: dict[tuple[int, str], bool] = {}
_INDEX_COLUMNS = ["device_id", "analysis", "acquired_at"]


def _has_latest_index(ctx: PageCtx) -> bool:
    engine = ctx.session.get_bind()
    key = (id(engine), repr(getattr(engine, "url", "")))
    if key not in _INDEXED:
        # Through the session's own connection: SQLite transactions here begin
        # IMMEDIATE, so a second connection would wait for this one's lock.
        indexes = inspect(ctx.session.connection()).get_indexes("result")
        _INDEXED[key] = any(list(ix["column_names"][:3]) == _INDEX_COLUMNS for ix in indexes)
    return _INDEXED[key]


def _latest_ids_by_index(ctx: PageCtx) -> Select[Any]:
    """(device, analysis, result id) of the newest result of each pair, by a loose index
    scan: for each visible device, a recursive query steps from one analysis to the next
    with one index seek each (``min(analysis) ... analysis > previous``: SQLite
    documentation, "The WITH Clause", and the same on PostgreSQL), then one seek per
    pair for its newest result. Cost grows with the pairs, not with the results."""
    r = aliased(m.Result)

    def first_after(device: Any, after: Any) -> Any:
        q = select(func.min(r.analysis)).where(r.device_id == device)
        if after is not None:
            q = q.where(r.analysis > after)
        return q.scalar_subquery()

    visible = ctx.scope.devices().with_only_columns(m.Device.id).subquery()
    pairs = select(visible.c.id.label("d"),
                   first_after(visible.c.id, None).label("a")).cte("pairs", recursive=True)
    pairs = pairs.union_all(select(pairs.c.d, first_after(pairs.c.d, pairs.c.a))
                            .where(pairs.c.a.is_not(None)))

    def newest(dated: bool) -> Any:
        q = select(r.id).where(r.device_id == pairs.c.d, r.analysis == pairs.c.a)
        q = (q.where(r.acquired_at.is_not(None)).order_by(r.acquired_at.desc(), r.id.desc())
             if dated else q.where(r.acquired_at.is_(None)).order_by(r.id.desc()))
        return q.limit(1).scalar_subquery()

    return (select(pairs.c.d, pairs.c.a, func.coalesce(newest(True), newest(False)))
            .where(pairs.c.a.is_not(None)))


def _latest_ids_by_window(ctx: PageCtx) -> Select[Any]:
    """The same by a window function over every result of the visible devices (a scan
    of them all: used only when the index the loose scan needs does not exist)."""
    rn = func.row_number().over(
        partition_by=(m.Result.device_id, m.Result.analysis),
        order_by=(m.Result.acquired_at.desc().nulls_last(), m.Result.id.desc())).label("rn")
    ranked = (ctx.scope.results().with_only_columns(m.Result.device_id, m.Result.analysis,
                                                    m.Result.id, rn)).subquery()
    return select(ranked.c.device_id, ranked.c.analysis, ranked.c.id).where(ranked.c.rn == 1)


#: Result ids per query (SQLite allows 32,766 bound parameters since 3.32).
_IDS_PER_QUERY = 5000


def _latest_results(ctx: PageCtx) -> dict[int, list[TestCell]]:
    """Newest result per (device, analysis) of the visible devices and its status, in
    two queries: the newest ids, then those results with their measurements' statuses.
    The newest is the latest acquired (then the highest id): a re-analysis of a series
    supersedes its result with a newer row of the same acquisition time, so a
    superseded result is never the newest.

    Why two queries and not a join: PostgreSQL estimates a recursive CTE's rows badly
    (64,199 for 1,000 pairs), so joined to ``result`` it hashed the whole table (3.65M
    rows: 3.7 s, bench/web.py); by id list each result is one primary-key seek."""
    latest = (_latest_ids_by_index(ctx) if _has_latest_index(ctx)
              else _latest_ids_by_window(ctx))
    ids = [row[2] for row in ctx.session.execute(latest) if row[2] is not None]
    found: dict[int, tuple[int | None, str, dt.datetime | None, set[str]]] = {}
    for at in range(0, len(ids), _IDS_PER_QUERY):
        rows = ctx.session.execute(
            select(m.Result.id, m.Result.device_id, m.Result.analysis, m.Result.acquired_at,
                   m.Measurement.status)
            .where(m.Result.id.in_(ids[at:at + _IDS_PER_QUERY]))
            .outerjoin(m.Measurement, m.Measurement.result_id == m.Result.id)
            .group_by(m.Result.id, m.Result.device_id, m.Result.analysis,
                      m.Result.acquired_at, m.Measurement.status))
        for rid, device_id, analysis, acquired_at, status in rows:
            entry = found.setdefault(rid, (device_id, analysis, acquired_at, set()))
            if status is not None:
                entry[3].add(status)
    out: dict[int, list[TestCell]] = {}
    for rid, (device_id, analysis, acquired_at, statuses) in found.items():
        if device_id is None:
            continue
        out.setdefault(device_id, []).append(
            TestCell(analysis, rid, acquired_at, result_status(statuses)))
    for cells in out.values():
        cells.sort(key=lambda c: c.analysis)
    return out


def fleet_rows(ctx: PageCtx) -> list[FleetRow]:
    """Every visible device with its facts, most urgent first (see the module
    docstring); a constant number of queries whatever the number of devices."""
    sites = dict(ctx.session.execute(ctx.scope.sites().with_only_columns(m.Site.id,
                                                                         m.Site.name)).all())
    devices = list(ctx.session.scalars(ctx.scope.devices()))
    rows = {d.id: FleetRow(d, sites.get(d.site_id or -1, "")) for d in devices}
    for device_id, cells in _latest_results(ctx).items():
        if device_id in rows:
            rows[device_id].tests = cells
    visible = ctx.scope.devices().with_only_columns(m.Device.id)
    alerts = ctx.session.execute(
        select(m.Alert.device_id, m.Alert.level, m.Alert.message)
        .where(m.Alert.state == "open", m.Alert.device_id.in_(visible))
        .order_by(m.Alert.device_id, m.Alert.id))
    for device_id, level, message in alerts:
        row = rows.get(device_id)
        if row is None:
            continue
        if level == "action":
            row.alerts_failing += 1
        else:
            row.alerts_drifting += 1
        row.alert_messages.append(message)
    for device_id, card in latest_scorecards(ctx.session, list(rows)).items():
        row = rows[device_id]
        tests = [t for t in card.data.get("tests", []) if isinstance(t, dict)]
        row.overdue = [str(t.get("title") or t.get("test")) for t in tests
                       if t.get("status") == "overdue"]
        row.due = [str(t.get("title") or t.get("test")) for t in tests
                   if t.get("status") == "due"]
        row.overdue_as_of = card.created_at
    return sorted(rows.values(), key=lambda r: (r.rank, r.site.lower(), r.name.lower(),
                                                r.device.id))


def _options(rows: list[FleetRow], attr: Any) -> list[str]:
    return sorted({v for r in rows if (v := attr(r))}, key=str.lower)


#: Devices per page: a national fleet (1,000 devices) rendered whole was 749 KiB and
#: about 1 s of Python per request (bench/README.md, web section).
PAGE_SIZE = 100

#: Server-side orders of the whole fleet (the column headings sort the rows shown).
SORTS: dict[str, tuple[str, Any]] = {
    "attention": ("most urgent first", lambda r: (r.rank, r.site.lower(), r.name.lower())),
    "site": ("site", lambda r: (r.site.lower(), r.name.lower())),
    "device": ("device", lambda r: (r.name.lower(), r.site.lower())),
    "modality": ("modality", lambda r: ((r.device.modality or "").lower(), r.name.lower())),
    "make": ("make", lambda r: ((r.device.manufacturer or "").lower(), r.name.lower())),
    "model": ("model", lambda r: ((r.device.model or "").lower(), r.name.lower())),
    "alerts": ("open alerts", lambda r: (r.alerts_failing + r.alerts_drifting, -r.rank)),
    "overdue": ("overdue tests", lambda r: (len(r.overdue), -r.rank)),
    "latest": ("latest QC", lambda r: (r.latest is not None,
                                       r.latest or dt.datetime.min)),
}

Text = Annotated[str | None, Query(max_length=200)]


def _matches(row: FleetRow, want: dict[str, str | None], text: str | None) -> bool:
    """The filters of the fleet form: exact (case-insensitive) site, modality, make,
    model and state; ``text`` a substring of the device's name, serial, site, make,
    model, modality or a test's name."""
    have = {"state": row.state, "site": row.site, "modality": row.device.modality,
            "make": row.device.manufacturer, "model": row.device.model}
    for key, value in want.items():
        if value and (have[key] or "").lower() != value.lower():
            return False
    if text:
        hay = " ".join(x or "" for x in (
            row.name, row.device.serial, row.site, row.device.manufacturer,
            row.device.model, row.device.modality, *(t.analysis for t in row.tests)))
        return text.lower() in hay.lower()
    return True


def _blank(value: str | None) -> str | None:
    return (value.strip() or None) if value is not None else None


@page(router, "/", "viewer")
def fleet(ctx: P, state: Text = None, site: Text = None, modality: Text = None,
          make: Text = None, model: Text = None, q: Text = None,
          sort: Text = None, order: Text = None, page: Text = None) -> Response:
    """The fleet overview: every device of the caller's sites, filtered, sorted and
    paged on the server (:data:`PAGE_SIZE` a page; the counts per state are of all
    visible devices, so nothing is hidden by paging)."""
    rows = fleet_rows(ctx)
    counts = {s: sum(r.state == s for r in rows) for s in RANKS}
    want = {"state": _blank(state), "site": _blank(site), "modality": _blank(modality),
            "make": _blank(make), "model": _blank(model)}
    text = _blank(q)
    matching = [r for r in rows if _matches(r, want, text)]
    sort_key = _blank(sort) or "attention"
    if sort_key not in SORTS:
        sort_key = "attention"
    descending = _blank(order) == "desc"
    if sort_key != "attention" or descending:
        matching.sort(key=SORTS[sort_key][1], reverse=descending)
    pages = max(1, -(-len(matching) // PAGE_SIZE))
    number = _blank(page) or "1"
    current = min(max(int(number), 1), pages) if number.isdigit() else 1
    shown = matching[(current - 1) * PAGE_SIZE:current * PAGE_SIZE]
    params = {k: v for k, v in {**want, "q": text, "sort": sort_key if sort_key != "attention"
                                else None, "order": "desc" if descending else None}.items()
              if v}
    return render(
        ctx, "fleet.html", rows=shown, total=len(rows), matching=len(matching),
        counts=counts, chosen={**want, "q": text or ""}, sort=sort_key,
        descending=descending, sorts={k: v[0] for k, v in SORTS.items()},
        page=current, pages=pages, page_size=PAGE_SIZE,
        first=(current - 1) * PAGE_SIZE + 1 if shown else 0,
        query=urlencode(params), page_url=lambda n: "/?" + urlencode({**params, "page": n}),
        states=RANKS,
        sites=_options(rows, lambda r: r.site),
        modalities=_options(rows, lambda r: r.device.modality),
        makes=_options(rows, lambda r: r.device.manufacturer),
        models=_options(rows, lambda r: r.device.model))

"""The fleet overview (``/``): one row per device the caller may see, with the latest
status of each test, open alerts and overdue tests; failing devices first, then
drifting, then overdue, then the rest.

Facts and where they come from: the device's stored state (table ``device_state``,
kept by :mod:`scanbench.store.fleet_state` in the transaction that stores a result,
alert or scorecard; the rules are that module's), read with one query of scalar columns
for every visible device (order, filters, counts) and the lists of the rows shown:

- latest status per test: for each device and analysis, the newest result (by
  acquisition time, then id; a superseded result never is), with the status of the
  result by the rule of :func:`scanbench.evaluation.overall_status` (fail if any
  measurement fails, else refused, else pass, else reported);
- open alerts (table ``alert``, state ``open``): limit alerts at the action level make
  a device *failing*; trend alerts (Westgard, CUSUM, EWMA: level ``trend``) and
  tolerance-level limit alerts make it *drifting*;
- overdue tests: the required tests marked ``overdue`` in the newest stored scorecard
  of the device (the date of that scorecard is shown: overdue is as of when it was
  computed).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import Response
from sqlalchemy import select

from scanbench.store import fleet_state
from scanbench.store import models as m
from scanbench.store.fleet_state import RANKS, result_status
from scanbench.web.pages.common import P, PageCtx, page, render

router = APIRouter()

__all__ = ["RANKS", "FleetRow", "TestCell", "fleet_rows", "result_status", "router"]

_RANK = fleet_state.RANK


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


@dataclass(slots=True)
class DeviceInfo:
    """The device columns the fleet page shows (not an ORM entity: a thousand of those
    were a large part of the page's time)."""

    id: int
    display_name: str | None
    manufacturer: str | None
    model: str | None
    serial: str | None
    modality: str | None


@dataclass
class FleetRow:
    """One device on the fleet page: its stored state (``device_state``); the lists
    (tests, alert messages, overdue and due tests) are read only for the rows shown."""

    device: DeviceInfo
    site: str
    state: str = "no results"
    alerts_failing: int = 0
    alerts_drifting: int = 0
    overdue_count: int = 0
    latest: dt.datetime | None = None
    search: str = ""
    tests: list[TestCell] = field(default_factory=list)
    alert_messages: list[str] = field(default_factory=list)
    overdue: list[str] = field(default_factory=list)  # required tests, newest scorecard
    due: list[str] = field(default_factory=list)
    overdue_as_of: dt.datetime | None = None
    filled: bool = False  # the lists above read

    @property
    def name(self) -> str:
        d = self.device
        return d.display_name or " ".join(p for p in (d.manufacturer, d.model, d.serial) if p) \
            or f"device {d.id}"

    @property
    def failing(self) -> bool:
        return self.state == "failing"

    @property
    def rank(self) -> int:
        return _RANK[self.state]


def _fill(row: FleetRow, facts: dict[str, Any]) -> None:
    """The stored lists of one device's state into its row."""
    row.tests = [TestCell(t["analysis"], t["result_id"],
                          dt.datetime.fromisoformat(t["acquired_at"]) if t["acquired_at"]
                          else None, t["status"]) for t in facts.get("tests") or []]
    row.alert_messages = list(facts.get("alert_messages") or [])
    row.overdue = list(facts.get("overdue") or [])
    row.due = list(facts.get("due") or [])
    row.overdue_as_of = facts.get("overdue_as_of")
    row.filled = True


def fleet_rows(ctx: PageCtx) -> list[FleetRow]:
    """Every visible device with its stored state (:mod:`scanbench.store.fleet_state`,
    kept when results, alerts and scorecards are stored), most urgent first: one query
    of scalar columns, whatever the number of devices. A device without a stored state
    (data written around the ORM, not yet ``scanbench db rebuild-state``) has it
    computed here, so the page is never wrong, only slower. The lists of each row are
    read by :func:`fill_details` for the rows shown."""
    ds = m.DeviceState
    visible = ctx.scope.devices().subquery()
    dev = visible.c
    rows: dict[int, FleetRow] = {}
    missing: list[int] = []
    query = (select(dev.id, dev.display_name, dev.manufacturer, dev.model, dev.serial,
                    dev.modality, m.Site.name, ds.state, ds.alerts_failing,
                    ds.alerts_drifting, ds.overdue_count, ds.latest_at, ds.search)
             .select_from(visible).outerjoin(ds, ds.device_id == dev.id)
             .outerjoin(m.Site, m.Site.id == dev.site_id))
    for (did, display, make, model, serial, modality, site, state, failing, drifting,
         overdue, latest, search) in ctx.session.execute(query):
        row = FleetRow(DeviceInfo(did, display, make, model, serial, modality), site or "")
        if state is None:
            missing.append(did)
        else:
            row.state, row.alerts_failing, row.alerts_drifting = state, failing, drifting
            row.overdue_count, row.latest, row.search = overdue, latest, search or ""
        rows[did] = row
    if missing:
        for did, facts in fleet_state.compute(ctx.session, missing).items():
            row = rows[did]
            row.state, row.alerts_failing = facts["state"], facts["alerts_failing"]
            row.alerts_drifting, row.overdue_count = facts["alerts_drifting"], \
                facts["overdue_count"]
            row.latest, row.search = facts["latest_at"], facts["search"]
            _fill(row, facts)
    return sorted(rows.values(), key=lambda r: (r.rank, r.site.lower(), r.name.lower(),
                                                r.device.id))


def fill_details(ctx: PageCtx, rows: list[FleetRow]) -> None:
    """The stored lists (tests, alert messages, overdue and due tests) of ``rows``: one
    query for the rows shown, not for the whole fleet."""
    ds = m.DeviceState
    wanted = {r.device.id: r for r in rows if not r.filled}
    if not wanted:
        return
    for did, tests, messages, overdue, due, as_of in ctx.session.execute(
            select(ds.device_id, ds.tests, ds.alert_messages, ds.overdue, ds.due,
                   ds.overdue_as_of).where(ds.device_id.in_(list(wanted)))):
        _fill(wanted[did], {"tests": tests, "alert_messages": messages, "overdue": overdue,
                            "due": due, "overdue_as_of": as_of})


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
    "overdue": ("overdue tests", lambda r: (r.overdue_count, -r.rank)),
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
            row.device.model, row.device.modality, row.search))
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
    fill_details(ctx, shown)
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

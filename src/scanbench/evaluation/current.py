"""Keeping stored scorecards current (issue 13 §3): the node scores, viewers only read.

Pages, reports and GET endpoints read the stored ``scorecard`` rows; nothing they do
writes one. The node writes them:

* **after a job's results are stored** (:func:`refresh_job`, called by
  :class:`scanbench.service.pipeline.Pipeline` in its own transaction after the results
  are committed, as the alert check is): each device the job's results belong to is
  scored for the *current period* and, for a result acquired in an earlier year, for
  that year too;
* **once a day** (:func:`refresh_all`, the node's loop): every device with a spec
  assigned is scored for the current period, so a test that became overdue shows
  without any new result.

The current period is the **calendar year to date in the site's local time**:
[1 January 00:00, 1 January of the next year) with the scorecard taken "as of" now
(:func:`scanbench.evaluation.scorecard.compute_scorecards` with ``now``). A calendar
year holds every frequency a spec can ask for (daily to annual: an annual test has one
slot in it) and is the period an annual review of a device's QC covers; an explicit
recompute (``scanbench scorecard``, ``POST /devices/{id}/scorecards``) scores any other
period.

A scorecard row is never rewritten; a recompute whose outcome is unchanged adds no row
(for a running period the stored inputs hash covers the results, the events and the
computed statuses, not the day), so the daily pass adds a row only when something
changed — a test became overdue, a new result was judged.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from scanbench.evaluation import assign as A
from scanbench.evaluation import scorecard as S
from scanbench.store import models as m

log = logging.getLogger("scanbench.scorecards")


def year_period(session: Session, device: m.Device, year: int) -> tuple[dt.datetime,
                                                                         dt.datetime]:
    """[1 January ``year``, 1 January ``year + 1``) at the device's site, aware UTC."""
    zone = A.site_zone(session, device)
    return (A.to_utc(dt.datetime(year, 1, 1), zone),
            A.to_utc(dt.datetime(year + 1, 1, 1), zone))


def current_year(session: Session, device: m.Device, now: dt.datetime) -> int:
    """The calendar year of ``now`` (aware) at the device's site."""
    return A.to_local(now, A.site_zone(session, device)).year


def refresh_device(session: Session, device_id: int, now: dt.datetime | None = None,
                   years: Iterable[int] = ()) -> list[S.ScorecardOutcome]:
    """Score the device for the current period (calendar year to date at its site) and
    for each of ``years`` (earlier calendar years whose results changed). Stores a row
    per spec version in force only when its inputs changed. The caller commits."""
    now = now or dt.datetime.now(dt.UTC)
    device = session.get(m.Device, device_id)
    if device is None:
        return []
    this = current_year(session, device, now)
    out: list[S.ScorecardOutcome] = []
    for year in sorted({this, *years}):
        if year > this:
            continue  # a result stamped in the future: nothing to score yet
        start, end = year_period(session, device, year)
        out.extend(S.compute_scorecards(session, device.id, start, min(end, now)
                                        if year < this else end, now))
    return out


def refresh_job(session: Session, job_id: int, now: dt.datetime | None = None
                ) -> list[S.ScorecardOutcome]:
    """Rescore the devices of the current results a job stored (the node's hook after
    a job): the current period, plus the calendar years of results acquired earlier."""
    now = now or dt.datetime.now(dt.UTC)
    rows = session.execute(select(m.Result.device_id, m.Result.acquired_at).where(
        m.Result.job_id == job_id, m.Result.device_id.is_not(None))).all()
    years: dict[int, set[int]] = {}
    for device_id, acquired in rows:
        if device_id is None:
            continue
        years.setdefault(device_id, set())
        if acquired is not None:
            years[device_id].add(acquired.year)  # acquisition times are site local
    out: list[S.ScorecardOutcome] = []
    for device_id in sorted(years):
        if _has_assignment(session, device_id):
            out.extend(refresh_device(session, device_id, now, years[device_id]))
    return out


def _has_assignment(session: Session, device_id: int) -> bool:
    device = session.get(m.Device, device_id)
    return device is not None and any(
        A.matches(a, device) for a in session.scalars(select(m.SpecAssignment)))


def refresh_all(session: Session, now: dt.datetime | None = None) -> tuple[int, int]:
    """The daily pass: every device an assignment matches, scored for the current
    period. Returns (devices scored, scorecard rows added). The caller commits."""
    now = now or dt.datetime.now(dt.UTC)
    assignments = list(session.scalars(select(m.SpecAssignment)))
    scored = added = 0
    for device in session.scalars(select(m.Device).order_by(m.Device.id)):
        if not any(A.matches(a, device) for a in assignments):
            continue
        parts = refresh_device(session, device.id, now)
        scored += 1
        added += sum(p.added for p in parts)
    return scored, added


__all__ = ["current_year", "refresh_all", "refresh_device", "refresh_job", "year_period"]

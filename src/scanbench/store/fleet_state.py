"""Pre-aggregated facts of the web application (issue 12, bench/web.py): the fleet state
of each device (table ``device_state``) and a version counter per kind of fact (table
``fact_version``), both kept in the same transaction that changes what they summarise.

Why: at national scale (1,000 devices, 3.65 million results) the fleet page recomputed
every device's newest results, open alerts and newest scorecard on every request
(~220 ms of one core per request, bench/README.md); stored, the page reads one row per
device.

**Fleet state of a device** (the rules of the fleet page, unchanged):

- the newest result of each QC analysis (latest acquired, then highest id; a superseded
  result never is; patients' series, :data:`PATIENT_ANALYSES`, are not QC tests), with
  the status of the result by the rule of :func:`scanbench.evaluation.overall_status`
  (:func:`result_status`);
- open alerts: limit alerts at the action level make a device *failing*; trend alerts
  and tolerance-level limit alerts make it *drifting*;
- overdue: the required tests marked ``overdue`` in the device's newest stored
  scorecard (as of that scorecard's creation);
- state: failing (an action alert or a failing newest result), else drifting, else
  overdue, else ok (some result) or "no results".

**How it is kept**: :func:`install` registers session events on a session factory
(:class:`scanbench.store.db.Database` does it for its sessions). After each flush the
devices of every added, changed or deleted result, measurement, alert and scorecard
(and every new device) are noted; just before the commit their rows are recomputed by
:func:`refresh` inside the same transaction, so a reader never sees a result without
its state. A dose event, study, federated record or site, or a device's site or
modality changing raises the ``dose`` version (:func:`version`), which invalidates
stored dose statistics (:func:`cached`). Data written
around the ORM (``COPY`` in bench/web.py) is summarised by :func:`rebuild`
(``scanbench db rebuild-state``).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from typing import Any, cast

from sqlalchemy import Select, Table, delete, func, inspect, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, aliased, sessionmaker

from scanbench.store import models as m

#: The order of the fleet: what needs attention first.
RANKS = ("failing", "drifting", "overdue", "ok", "no results")
#: Analyses of patients' series (clinical image quality, issue 16): not QC tests, so not
#: among a device's "latest status per test" (their values vary with the patient; their
#: drift reaches the fleet state through their size-normalised trend alerts).
PATIENT_ANALYSES = ("ct.clinical_global_noise", "pet.clinical_liver_noise")
RANK = {name: i for i, name in enumerate(RANKS)}

#: session.info keys: devices whose state is stale; fact kinds whose version must rise.
_STALE = "scanbench.fleet_state.stale"
_BUMP = "scanbench.fleet_state.bump"
#: Device columns the dose statistics filter or group by.
_DOSE_DEVICE_COLUMNS = ("site_id", "modality")
#: Devices per statement (SQLite allows 32,766 bound parameters since 3.32).
_CHUNK = 500


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


# --------------------------------------------------------------------------- newest results

#: Databases whose ``result`` table has an index led by (device_id, analysis, acquired_at).
_INDEXED: dict[tuple[int, str], bool] = {}
_INDEX_COLUMNS = ["device_id", "analysis", "acquired_at"]


def has_latest_index(session: Session) -> bool:
    """Whether ``result`` has the index the loose index scan needs (the schema's
    ``ix_result_device_analysis_acquired``; cached per engine)."""
    engine = session.get_bind()
    key = (id(engine), repr(getattr(engine, "url", "")))
    if key not in _INDEXED:
        # Through the session's own connection: SQLite transactions here begin
        # IMMEDIATE, so a second connection would wait for this one's lock.
        indexes = inspect(session.connection()).get_indexes("result")
        _INDEXED[key] = any(list(ix["column_names"][:3]) == _INDEX_COLUMNS for ix in indexes)
    return _INDEXED[key]


def latest_ids_by_index(visible: Select[Any]) -> Select[Any]:
    """(device, analysis, result id) of the newest result of each pair of the devices
    ``visible`` selects (one column of device ids), by a loose index scan: for each
    device, a recursive query steps from one analysis to the next with one index seek
    each (``min(analysis) ... analysis > previous``: SQLite documentation, "The WITH
    Clause", and the same on PostgreSQL), then one seek per pair for its newest result.
    Cost grows with the pairs, not with the results."""
    r = aliased(m.Result)

    def first_after(device: Any, after: Any) -> Any:
        q = select(func.min(r.analysis)).where(r.device_id == device)
        if after is not None:
            q = q.where(r.analysis > after)
        return q.scalar_subquery()

    ids = visible.subquery()
    col = next(iter(ids.c))
    pairs = select(col.label("d"), first_after(col, None).label("a")).cte("pairs",
                                                                           recursive=True)
    pairs = pairs.union_all(select(pairs.c.d, first_after(pairs.c.d, pairs.c.a))
                            .where(pairs.c.a.is_not(None)))

    def newest(dated: bool) -> Any:
        q = select(r.id).where(r.device_id == pairs.c.d, r.analysis == pairs.c.a)
        q = (q.where(r.acquired_at.is_not(None)).order_by(r.acquired_at.desc(), r.id.desc())
             if dated else q.where(r.acquired_at.is_(None)).order_by(r.id.desc()))
        return q.limit(1).scalar_subquery()

    return (select(pairs.c.d, pairs.c.a, func.coalesce(newest(True), newest(False)))
            .where(pairs.c.a.is_not(None)))


def latest_ids_by_window(visible: Select[Any]) -> Select[Any]:
    """The same by a window function over every result of the devices (a scan of them
    all: used only when the index the loose scan needs does not exist)."""
    rn = func.row_number().over(
        partition_by=(m.Result.device_id, m.Result.analysis),
        order_by=(m.Result.acquired_at.desc().nulls_last(), m.Result.id.desc())).label("rn")
    ranked = (select(m.Result.device_id, m.Result.analysis, m.Result.id, rn)
              .where(m.Result.device_id.in_(visible))).subquery()
    return select(ranked.c.device_id, ranked.c.analysis, ranked.c.id).where(ranked.c.rn == 1)


def _latest_results(session: Session, visible: Select[Any]) -> dict[int, list[dict[str, Any]]]:
    """Newest result per (device, analysis) and its status, in two queries: the newest
    ids, then those results with their measurements' statuses (by id list: PostgreSQL
    estimates a recursive CTE's rows badly, and joined to ``result`` it hashed the whole
    table: 3.7 s at national scale, bench/web.py)."""
    latest = (latest_ids_by_index(visible) if has_latest_index(session)
              else latest_ids_by_window(visible))
    ids = [row[2] for row in session.execute(latest) if row[2] is not None]
    found: dict[int, tuple[int | None, str, dt.datetime | None, set[str]]] = {}
    for at in range(0, len(ids), 5000):
        rows = session.execute(
            select(m.Result.id, m.Result.device_id, m.Result.analysis, m.Result.acquired_at,
                   m.Measurement.status)
            .where(m.Result.id.in_(ids[at:at + 5000]))
            .outerjoin(m.Measurement, m.Measurement.result_id == m.Result.id)
            .group_by(m.Result.id, m.Result.device_id, m.Result.analysis,
                      m.Result.acquired_at, m.Measurement.status))
        for rid, device_id, analysis, acquired_at, status in rows:
            entry = found.setdefault(rid, (device_id, analysis, acquired_at, set()))
            if status is not None:
                entry[3].add(status)
    out: dict[int, list[dict[str, Any]]] = {}
    for rid, (device_id, analysis, acquired_at, statuses) in found.items():
        if device_id is None or analysis in PATIENT_ANALYSES:
            continue
        out.setdefault(device_id, []).append(
            {"analysis": analysis, "result_id": rid,
             "acquired_at": acquired_at.isoformat() if acquired_at else None,
             "status": result_status(statuses)})
    for cells in out.values():
        cells.sort(key=lambda c: c["analysis"])
    return out


def _latest_scorecards(session: Session, device_ids: Sequence[int]
                       ) -> dict[int, tuple[dict[str, Any], dt.datetime]]:
    """(data, created_at) of each device's newest scorecard: the order of
    :func:`scanbench.evaluation.scorecard.latest_scorecards` (period end, creation, id;
    the last wins). For one device its reverse with ``LIMIT 1`` (the same row on each
    backend: a descending sort reverses where that backend puts NULLs too)."""
    sc = m.Scorecard
    if len(device_ids) == 1:
        row = session.execute(
            select(sc.device_id, sc.data, sc.created_at).where(sc.device_id == device_ids[0])
            .order_by(sc.period_end.desc(), sc.created_at.desc(), sc.id.desc()).limit(1)
        ).first()
        return {row[0]: (row[1], row[2])} if row else {}
    out: dict[int, tuple[dict[str, Any], dt.datetime]] = {}
    for device_id, data, created in session.execute(
            select(sc.device_id, sc.data, sc.created_at).where(sc.device_id.in_(device_ids))
            .order_by(sc.period_end, sc.created_at, sc.id)):
        out[device_id] = (data, created)
    return out


def compute(session: Session, device_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The ``device_state`` row of each existing device of ``device_ids``, computed from
    its results, alerts and scorecards (module docstring: the rules)."""
    ids = list(session.scalars(select(m.Device.id).where(m.Device.id.in_(device_ids))))
    if not ids:
        return {}
    visible = select(m.Device.id).where(m.Device.id.in_(ids))
    tests = _latest_results(session, visible)
    rows: dict[int, dict[str, Any]] = {
        d: {"device_id": d, "tests": tests.get(d, []), "alerts_failing": 0,
            "alerts_drifting": 0, "alert_messages": [], "overdue": [], "due": [],
            "overdue_as_of": None} for d in ids}
    for device_id, level, message in session.execute(
            select(m.Alert.device_id, m.Alert.level, m.Alert.message)
            .where(m.Alert.state == "open", m.Alert.device_id.in_(ids))
            .order_by(m.Alert.device_id, m.Alert.id)):
        row = rows[device_id]
        row["alerts_failing" if level == "action" else "alerts_drifting"] += 1
        row["alert_messages"].append(message)
    for device_id, (data, created) in _latest_scorecards(session, ids).items():
        listed = [t for t in (data or {}).get("tests", []) if isinstance(t, dict)]
        rows[device_id]["overdue"] = [str(t.get("title") or t.get("test")) for t in listed
                                      if t.get("status") == "overdue"]
        rows[device_id]["due"] = [str(t.get("title") or t.get("test")) for t in listed
                                  if t.get("status") == "due"]
        rows[device_id]["overdue_as_of"] = created
    now = m.utcnow()
    for row in rows.values():
        cells = row["tests"]
        failing_tests = sum(c["status"] == "fail" for c in cells)
        if row["alerts_failing"] or failing_tests:
            state = "failing"
        elif row["alerts_drifting"]:
            state = "drifting"
        elif row["overdue"]:
            state = "overdue"
        else:
            state = "ok" if cells else "no results"
        times = [c["acquired_at"] for c in cells if c["acquired_at"] is not None]
        row.update(state=state, rank=RANK[state], failing_tests=failing_tests,
                   overdue_count=len(row["overdue"]),
                   latest_at=dt.datetime.fromisoformat(max(times)) if times else None,
                   search=" ".join(c["analysis"] for c in cells), updated_at=now)
    return rows


#: Engines whose schema has the tables (only a True answer is kept: a database opened
#: before its upgrade to 0007 gets them later).
_HAS_TABLES: set[tuple[int, str]] = set()


def has_tables(session: Session) -> bool:
    """Whether the database has ``device_state`` (schema 0007 on): a session of a
    database not yet upgraded keeps nothing."""
    engine = session.get_bind()
    key = (id(engine), repr(getattr(engine, "url", "")))
    if key not in _HAS_TABLES:
        if not inspect(session.connection()).has_table("device_state"):
            return False
        _HAS_TABLES.add(key)
    return True


def _insert_for(session: Session) -> Any:
    """The dialect's INSERT with ``ON CONFLICT`` (SQLite 3.24+, PostgreSQL 9.5+)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def refresh(session: Session, device_ids: Iterable[int]) -> int:
    """Recompute and store the state of ``device_ids`` in the session's transaction;
    the number of rows written.

    Concurrent writers: the devices' state rows are locked first (``SELECT ... FOR
    UPDATE``, in id order so two transactions never wait on each other crosswise), so a
    second transaction storing a result of the same device waits for the first to
    commit and then computes from data that includes it (PostgreSQL's READ COMMITTED
    takes a new snapshot per statement); rows are written with ``INSERT ... ON CONFLICT
    DO UPDATE``, so two first states of a new device never fail on the primary key.
    SQLite transactions here are ``BEGIN IMMEDIATE``: writers never overlap."""
    wanted = sorted(set(device_ids))
    if not wanted or not has_tables(session):
        return 0
    table = cast(Table, m.DeviceState.__table__)
    ins = _insert_for(session)
    written = 0
    for at in range(0, len(wanted), _CHUNK):
        chunk = wanted[at:at + _CHUNK]
        session.execute(select(table.c.device_id).where(table.c.device_id.in_(chunk))
                        .order_by(table.c.device_id).with_for_update()).all()
        rows = compute(session, chunk)
        if rows:
            stmt = ins(table).values(list(rows.values()))
            stmt = stmt.on_conflict_do_update(
                index_elements=[table.c.device_id],
                set_={c.name: stmt.excluded[c.name] for c in table.c if c.name != "device_id"})
            session.execute(stmt)
        written += len(rows)
    return written


def rebuild(session: Session) -> int:
    """Recompute the state of every device (after data loaded around the ORM, or to
    check): the number of devices. The caller commits."""
    session.execute(delete(cast(Table, m.DeviceState.__table__)))
    return refresh(session, session.scalars(select(m.Device.id)))


# --------------------------------------------------------------------------- fact versions

def version(session: Session, kind: str) -> int:
    """The current version of ``kind`` (0 when never raised)."""
    got = session.scalar(select(m.FactVersion.version).where(m.FactVersion.kind == kind))
    return int(got or 0)


def bump(session: Session, kind: str) -> None:
    """Raise the version of ``kind`` by one, in the session's transaction."""
    t = cast(Table, m.FactVersion.__table__)
    stmt = _insert_for(session)(t).values(kind=kind, version=1)
    session.execute(stmt.on_conflict_do_update(index_elements=[t.c.kind],
                                               set_={"version": t.c.version + 1}))


#: Stored answers kept per kind of fact (:func:`cached`).
MAX_STORED = 200


def cache_key(kind: str, params: dict[str, Any], device_ids: Iterable[int]) -> str:
    """SHA-256 of what a stored statistic depends on besides its facts: the kind, the
    request's parameters, the scanbench version (the code and the shipped reference
    tables) and the devices the caller may see."""
    from scanbench import __version__

    text = json.dumps({"kind": kind, "params": params, "version": __version__,
                       "devices": sorted(device_ids)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def cached(session: Session, kind: str, key: str, compute: Callable[[], str]) -> str:
    """The stored body of ``key`` if it was computed at the current version of ``kind``,
    else ``compute()`` stored with that version (committed: the caller only reads).
    Exact by construction: a body is served only while no fact of ``kind`` changed since
    it was computed (the version rises in the transaction that changes one). Two
    requests computing the same key at once both answer; one row is kept."""
    if not has_tables(session):
        return compute()
    current = version(session, kind)
    sc = m.StatsCache
    row = session.execute(select(sc.version, sc.body).where(sc.key == key)).first()
    if row is not None and row[0] == current:
        return str(row[1])
    body = compute()
    try:
        with session.begin_nested():
            session.execute(delete(sc).where((sc.key == key) | ((sc.kind == kind)
                                                                & (sc.version < current))))
            # At most MAX_STORED answers of a kind (the oldest go): arbitrary periods
            # asked one after another must not grow the table without bound.
            oldest = (select(sc.key).where(sc.kind == kind)
                      .order_by(sc.created_at.desc(), sc.key).offset(MAX_STORED - 1))
            session.execute(delete(sc).where(sc.key.in_(oldest)))
            session.add(sc(key=key, kind=kind, version=current, body=body))
        session.commit()
    except (IntegrityError, OperationalError):
        session.rollback()  # a concurrent request stored it first: nothing lost
    return body


#: Compressed stored answers of this process, per engine (a version number is one
#: database's), by key: (version, gzip bytes); at most :data:`MAX_GZIPPED` an engine,
#: least recently used dropped. Compressing a national answer (~1 MB of JSON) on every
#: request was most of its cost (bench/web.py).
_GZIPPED: weakref.WeakKeyDictionary[Any, OrderedDict[str, tuple[int, bytes]]] = (
    weakref.WeakKeyDictionary())
_GZIP_LOCK = threading.Lock()
MAX_GZIPPED = 32


def cached_gzip(session: Session, kind: str, key: str, compute: Callable[[], str]) -> bytes:
    """:func:`cached`'s body gzip-compressed (RFC 1952), kept compressed in memory for
    as long as the version of ``kind`` stays the one read before computing (a body is
    never served under a version older than the one it was computed at)."""
    current = version(session, kind) if has_tables(session) else None
    engine = session.get_bind()
    with _GZIP_LOCK:
        kept = _GZIPPED.setdefault(engine, OrderedDict())
        hit = kept.get(key)
        if current is not None and hit is not None and hit[0] == current:
            kept.move_to_end(key)
            return hit[1]
    packed = gzip.compress(cached(session, kind, key, compute).encode(), compresslevel=6,
                           mtime=0)
    if current is not None:
        with _GZIP_LOCK:
            kept[key] = (current, packed)
            kept.move_to_end(key)
            while len(kept) > MAX_GZIPPED:
                kept.popitem(last=False)
    return packed


# --------------------------------------------------------------------------- session hooks

def _noted(session: Session) -> tuple[set[int], set[str]]:
    stale: set[int] = session.info.setdefault(_STALE, set())
    kinds: set[str] = session.info.setdefault(_BUMP, set())
    return stale, kinds


def _after_flush(session: Session, _ctx: Any) -> None:
    stale, kinds = _noted(session)
    watched = (m.Result, m.Measurement, m.Alert, m.Scorecard)
    for obj in chain(session.new, session.dirty, session.deleted):
        if isinstance(obj, watched):
            hist = inspect(cast(Any, obj)).attrs.device_id.history
            for did in chain((obj.device_id,), hist.deleted or ()):
                if did is not None:
                    stale.add(did)
        elif isinstance(obj, m.Device):
            if obj in session.new:
                stale.add(obj.id)
            attrs = inspect(cast(Any, obj)).attrs
            if obj in session.new or obj in session.deleted or any(
                    attrs[c].history.has_changes() for c in _DOSE_DEVICE_COLUMNS):
                kinds.add("dose")
        elif isinstance(obj, m.Study):
            # Only its UID is in the statistics (outliers): a study touched by every
            # stored image must not make the stored statistics stale.
            if (obj in session.new or obj in session.deleted
                    or inspect(cast(Any, obj)).attrs.study_uid.history.has_changes()):
                kinds.add("dose")
        elif isinstance(obj, (m.DoseEvent, m.FedRecord, m.Site)):
            kinds.add("dose")


def _before_commit(session: Session) -> None:
    stale, kinds = _noted(session)
    # The commit flushes after this hook: flush first, so the changes are noted. Then
    # refresh (reads through the session) until nothing new is noted.
    session.flush()
    for _ in range(5):
        if not stale and not kinds:
            return
        devices, raised = sorted(stale), sorted(kinds)
        stale.clear()
        kinds.clear()
        if devices:
            refresh(session, devices)
        if raised and has_tables(session):
            for kind in raised:
                bump(session, kind)


def install(factory: sessionmaker[Session]) -> None:
    """Keep the fleet state and fact versions of every session ``factory`` makes."""
    from sqlalchemy import event

    event.listen(factory, "after_flush", _after_flush)
    event.listen(factory, "before_commit", _before_commit)

"""The append-only, hash-chained audit log.

Each entry's ``hash`` is the SHA-256 (FIPS 180-4) of its canonical JSON: the entry's
fields (time, actor, action, entity, site, before/after values, details, client) and
``prev_hash``, the hash of the entry before it (64 zeros for the first). Changing,
inserting or removing any entry other than the newest breaks every hash after it;
:func:`verify` recomputes the chain and names the first entry that does not match.
(Removing the newest entries leaves a valid, shorter chain: keep a copy of the latest
hash elsewhere — ``scanbench audit verify`` prints it — to detect that too.)

Canonical JSON: keys sorted, no insignificant whitespace, UTF-8, times as ISO 8601 UTC
with microseconds (JSON Canonicalization Scheme, RFC 8785, is the model; our values
are strings, integers and JSON objects of them, for which this is the same).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scanbench.store import models as m

GENESIS = "0" * 64


def canonical(entry: m.AuditEntry) -> bytes:
    """The bytes an entry's hash covers (everything but ``id`` and ``hash``)."""
    at = entry.at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    fields = {
        "at": at, "user_id": entry.user_id, "actor": entry.actor, "action": entry.action,
        "entity": entry.entity, "entity_id": entry.entity_id, "site_id": entry.site_id,
        "before": entry.before, "after": entry.after, "details": entry.details or {},
        "client": entry.client, "prev_hash": entry.prev_hash,
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=str).encode("utf-8")


def entry_hash(entry: m.AuditEntry) -> str:
    return hashlib.sha256(canonical(entry)).hexdigest()


@dataclass(frozen=True)
class Actor:
    """Who makes a change: a signed-in user, a token's user, or the command line."""

    user_id: int | None
    name: str
    client: str | None = None


def record(session: Session, actor: Actor, action: str, entity: str, entity_id: Any, *,
           site_id: int | None = None, before: dict[str, Any] | None = None,
           after: dict[str, Any] | None = None,
           details: dict[str, Any] | None = None) -> m.AuditEntry:
    """Append one entry to the chain in ``session``'s transaction (the caller's change
    and its entry commit together or not at all). A concurrent writer that extended
    the same last entry makes the commit fail on ``prev_hash``'s unique constraint;
    callers use :func:`commit_with_retry`."""
    session.flush()
    last = session.scalars(select(m.AuditEntry).order_by(m.AuditEntry.id.desc())
                           .limit(1)).first()
    # A JSON round trip, so the stored values are exactly what the hash covered.
    entry = m.AuditEntry(
        at=dt.datetime.now(dt.UTC), user_id=actor.user_id, actor=actor.name, action=action,
        entity=entity, entity_id=None if entity_id is None else str(entity_id),
        site_id=site_id, before=_plain(before), after=_plain(after),
        details=_plain(details) or {}, client=actor.client,
        prev_hash=last.hash if last is not None else GENESIS)
    entry.hash = entry_hash(entry)
    session.add(entry)
    session.flush()
    return entry


def _plain(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    out: dict[str, Any] = json.loads(json.dumps(value, default=str, allow_nan=False))
    return out


def commit_with_retry(session: Session, attempt: Any, tries: int = 5) -> Any:
    """Run ``attempt(session)`` (which changes state and calls :func:`record`) and
    commit; on a chain conflict (another writer appended first) roll back and retry."""
    for n in range(tries):
        try:
            out = attempt(session)
            session.commit()
            return out
        except IntegrityError as exc:
            session.rollback()
            if "prev_hash" not in str(exc.orig) or n == tries - 1:
                raise
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Verdict:
    """What :func:`verify` found: ``ok``, the number of entries checked, the newest
    hash, and for a broken chain the id of the first bad entry and why."""

    ok: bool
    entries: int
    head: str
    bad_id: int | None = None
    reason: str = ""


def verify(session: Session) -> Verdict:
    """Recompute the chain from the first entry; stop at the first one whose stored
    hash does not match its contents or whose ``prev_hash`` is not the hash before."""
    prev = GENESIS
    count = 0
    for entry in session.scalars(select(m.AuditEntry).order_by(m.AuditEntry.id)
                                 .execution_options(yield_per=1000)):
        count += 1
        if entry.prev_hash != prev:
            return Verdict(False, count, prev, entry.id,
                           "its previous-entry hash does not match the entry before it "
                           "(an entry was removed or inserted before it)")
        if entry_hash(entry) != entry.hash:
            return Verdict(False, count, prev, entry.id,
                           "its contents do not match its hash (the entry was changed)")
        prev = entry.hash
    return Verdict(True, count, prev)

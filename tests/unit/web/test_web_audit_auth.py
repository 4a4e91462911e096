"""Accounts, grants, tokens, sessions, throttling and the audit chain (issue 12), on a
real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from scanbench.errors import InputError
from scanbench.store import Database
from scanbench.store import models as m
from scanbench.web import audit, auth

CLI = audit.Actor(None, "cli:test")
PASSWORD = "correct horse battery"


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    d = Database(url=database_url)
    try:
        yield d
    finally:
        d.close()


def _site(s: Session, name: str) -> m.Site:
    site = m.Site(name=name)
    s.add(site)
    s.flush()
    return site


def test_changes_write_a_verifiable_chain_and_tampering_is_named(db: Database) -> None:
    with db.sessions() as s:
        a, b = _site(s, "A"), _site(s, "B")
        user = auth.add_user(s, CLI, "ana", PASSWORD)
        auth.grant(s, CLI, user, a, "physicist")
        auth.grant(s, CLI, user, a, "admin")  # a change: before/after recorded
        auth.grant(s, CLI, user, b, "viewer")
        auth.revoke(s, CLI, user, b)
        s.commit()
    with db.sessions() as s:
        entries = s.scalars(select(m.AuditEntry).order_by(m.AuditEntry.id)).all()
        assert [e.action for e in entries] == ["user.add", "grant.set", "grant.set",
                                               "grant.set", "grant.revoke"]
        assert entries[0].prev_hash == audit.GENESIS
        assert entries[2].before == {"role": "physicist"}
        assert entries[2].after == {"username": "ana", "site": "A", "role": "admin"}
        assert "password" not in str(entries[0].after)
        verdict = audit.verify(s)
        assert verdict.ok and verdict.entries == 5 and verdict.head == entries[-1].hash
        third = entries[2].id
        # Tamper: rewrite the role an admin was given, directly in the database.
        s.execute(update(m.AuditEntry).where(m.AuditEntry.id == third)
                  .values(after={"username": "ana", "site": "A", "role": "viewer"}))
        s.commit()
    with db.sessions() as s:
        verdict = audit.verify(s)
        assert not verdict.ok and verdict.bad_id == third and "changed" in verdict.reason


def test_a_removed_entry_breaks_the_chain_at_the_next_one(db: Database) -> None:
    with db.sessions() as s:
        for name in ("u1", "u2", "u3"):
            auth.add_user(s, CLI, name, PASSWORD)
        s.commit()
        ids = s.scalars(select(m.AuditEntry.id).order_by(m.AuditEntry.id)).all()
        s.execute(delete(m.AuditEntry).where(m.AuditEntry.id == ids[1]))
        s.commit()
        verdict = audit.verify(s)
        assert not verdict.ok and verdict.bad_id == ids[2] and "removed" in verdict.reason


def test_the_chain_cannot_fork(db: Database) -> None:
    """Two entries naming the same previous entry violate prev_hash's uniqueness."""
    from sqlalchemy.exc import IntegrityError

    with db.sessions() as s:
        first = audit.record(s, CLI, "x", "y", 1)
        s.commit()
        twin = m.AuditEntry(at=first.at, actor="z", action="x", entity="y",
                            prev_hash=first.prev_hash, hash="f" * 64, details={})
        s.add(twin)
        with pytest.raises(IntegrityError):
            s.commit()


def test_passwords_are_argon2id_and_policy_is_enforced(db: Database) -> None:
    with db.sessions() as s:
        user = auth.add_user(s, CLI, "bo", PASSWORD)
        assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")
        with pytest.raises(InputError, match="12 characters"):
            auth.add_user(s, CLI, "cy", "short")
        with pytest.raises(InputError, match="exists"):
            auth.add_user(s, CLI, "bo", PASSWORD)
        s.commit()
        assert auth.authenticate(s, "bo", PASSWORD, "127.0.0.1").id == user.id
        with pytest.raises(auth.AuthError):
            auth.authenticate(s, "bo", "wrong password!!", "127.0.0.1")


def test_sign_in_is_throttled_per_account_and_per_address(db: Database) -> None:
    with db.sessions() as s:
        auth.add_user(s, CLI, "dee", PASSWORD)
        auth.add_user(s, CLI, "eve", PASSWORD)
        s.commit()
        for _ in range(auth.MAX_FAILS_ACCOUNT):
            with pytest.raises(auth.AuthError):
                auth.authenticate(s, "dee", "not the password", "10.0.0.1")
            s.commit()
        # Now even the right password is refused for this account, from any address.
        with pytest.raises(auth.Throttled):
            auth.authenticate(s, "dee", PASSWORD, "10.0.0.9")
        # Another account from another address is unaffected.
        assert auth.authenticate(s, "eve", PASSWORD, "10.0.0.2").username == "eve"
        # Per address: failures spread over many accounts from one address.
        for n in range(auth.MAX_FAILS_ADDRESS):
            with pytest.raises(auth.AuthError):
                auth.authenticate(s, f"nobody{n}", "x" * 12, "10.0.0.3")
            s.commit()
        with pytest.raises(auth.Throttled):
            auth.authenticate(s, "eve", PASSWORD, "10.0.0.3")
        # Failures older than the window no longer count.
        s.execute(update(m.LoginFailure).values(
            at=dt.datetime.now(dt.UTC) - auth.THROTTLE_WINDOW - dt.timedelta(seconds=1)))
        s.commit()
        assert auth.authenticate(s, "dee", PASSWORD, "10.0.0.3").username == "dee"
        # ... and are dropped at the next failure (the table does not grow for ever).
        with pytest.raises(auth.AuthError):
            auth.authenticate(s, "dee", "not the password", "10.0.0.4")
        s.commit()
        assert s.scalars(select(m.LoginFailure.address)).all() == ["10.0.0.4"]


def test_tokens_are_hashed_scoped_and_revocable(db: Database) -> None:
    with db.sessions() as s:
        a, b = _site(s, "A"), _site(s, "B")
        user = auth.add_user(s, CLI, "fay", PASSWORD)
        auth.grant(s, CLI, user, a, "physicist")
        auth.grant(s, CLI, user, b, "viewer")
        with pytest.raises(InputError, match="more than its user"):
            auth.create_token(s, CLI, user, role="physicist", site_ids=[a.id, b.id])
        raw, row = auth.create_token(s, CLI, user, role="viewer", site_ids=[a.id])
        s.commit()
        assert raw not in row.token_hash and row.token_hash == auth.sha256(raw)
        assert raw.startswith(row.prefix)
        who = auth.principal_from_token(s, raw)
        assert who.grants == {a.id: "viewer"} and who.via == "token"
        # A grant taken from the user is taken from the token at once.
        auth.revoke(s, CLI, user, a)
        s.commit()
        assert auth.principal_from_token(s, raw).grants == {}
        auth.revoke_token(s, CLI, row.id)
        s.commit()
        with pytest.raises(auth.AuthError):
            auth.principal_from_token(s, raw)
        with pytest.raises(auth.AuthError):
            auth.principal_from_token(s, raw + "x")
        assert audit.verify(s).ok


def test_expired_tokens_and_sessions_are_refused(db: Database) -> None:
    with db.sessions() as s:
        a = _site(s, "A")
        user = auth.add_user(s, CLI, "gil", PASSWORD)
        auth.grant(s, CLI, user, a, "viewer")
        raw, row = auth.create_token(s, CLI, user, role="viewer", site_ids=[a.id],
                                     expires_at=dt.datetime.now(dt.UTC)
                                     + dt.timedelta(days=1))
        sid, srow = auth.start_session(s, user, "127.0.0.1")
        s.commit()
        assert auth.principal_from_session(s, sid).grants == {a.id: "viewer"}
        past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        row.expires_at = past
        srow.expires_at = past
        s.commit()
        with pytest.raises(auth.AuthError):
            auth.principal_from_token(s, raw)
        with pytest.raises(auth.AuthError):
            auth.principal_from_session(s, sid)
        auth.start_session(s, user, None)  # removes expired sessions
        s.commit()
        assert s.scalar(select(func.count()).select_from(m.WebSession)) == 1


def test_a_new_session_id_at_every_sign_in_and_deactivation_ends_sessions(
        db: Database) -> None:
    with db.sessions() as s:
        user = auth.add_user(s, CLI, "hal", PASSWORD)
        first, _ = auth.start_session(s, user, None)
        second, _ = auth.start_session(s, user, None, old_raw=first)
        s.commit()
        assert first != second
        with pytest.raises(auth.AuthError):
            auth.principal_from_session(s, first)  # the old id is dead
        assert s.scalar(select(m.WebSession.id_hash)) == auth.sha256(second)
        auth.set_active(s, CLI, user, False)
        s.commit()
        with pytest.raises(auth.AuthError):
            auth.principal_from_session(s, second)

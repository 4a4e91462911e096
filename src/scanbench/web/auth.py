"""Accounts, grants, API tokens, sessions and sign-in (issue 12). Every function that
changes state writes its audit entry in the same transaction
(:func:`scanbench.web.audit.record`); the caller commits.

Passwords: Argon2id (RFC 9106) through argon2-cffi's ``PasswordHasher`` with its
defaults (RFC 9106's second recommended option, 64 MiB, t=3, p=4); hashes are
upgraded on sign-in when the parameters change. Tokens and session ids: 256 bits
from :func:`secrets.token_urlsafe`, stored only as SHA-256 (a value of that entropy
cannot be guessed from its hash, so a slow hash adds nothing). Sign-in is throttled
per account and per client address (OWASP Authentication Cheat Sheet, "Login
Throttling"): after ``MAX_FAILS_ACCOUNT`` failures for one account, or
``MAX_FAILS_ADDRESS`` from one address, within ``THROTTLE_WINDOW``, further attempts
are refused until the window has passed, whether the password is right or not.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from scanbench.errors import InputError
from scanbench.store import models as m
from scanbench.web.audit import Actor, record

ROLES = m.ROLES
#: Higher rank includes everything a lower rank may do. ``reviewer`` (issue 14) reads as
#: a viewer (rank 0) and is the only role that decides expert reviews: it is not ranked
#: against the others, so use :func:`satisfies`, never a comparison of ranks.
RANK = {"viewer": 0, "technologist": 1, "physicist": 2, "admin": 3, "reviewer": 0}
#: Roles outside the ladder: only a grant of that very role satisfies a rule naming it.
OWN_ROLES = frozenset({"reviewer"})
SESSION_LIFETIME = dt.timedelta(hours=12)
THROTTLE_WINDOW = dt.timedelta(minutes=15)
MAX_FAILS_ACCOUNT = 5
MAX_FAILS_ADDRESS = 20
TOKEN_PREFIX = "sbt_"
MIN_PASSWORD = 12  # NIST SP 800-63B section 5.1.1.2 asks at least 8; we ask 12

_hasher = PasswordHasher()
# Verified against when the account does not exist, so both cases take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def satisfies(have: str, role: str) -> bool:
    """Whether a grant of ``have`` allows what a rule of ``role`` allows: a rule of a
    ladder role (viewer < technologist < physicist < admin) is met by that role or a
    higher one, and by ``reviewer`` only for ``viewer`` (a reviewer reads); a rule of
    ``reviewer`` is met by a reviewer grant only (an admin of the site is not an expert
    reviewer of it: review is a named responsibility, granted per site)."""
    if role in OWN_ROLES or have in OWN_ROLES:
        return have == role or (role == "viewer" and have in OWN_ROLES)
    return RANK[have] >= RANK[role]


def lesser(a: str, b: str) -> str:
    """The most a caller holding both ``a`` and ``b`` limits may do: the lower of two
    ladder roles; viewer for a reviewer and a role above viewer (what both allow)."""
    if satisfies(a, b):
        return b
    if satisfies(b, a):
        return a
    return "viewer"


class AuthError(Exception):
    """Sign-in or credential refused (the message is safe to show)."""


class Throttled(AuthError):
    """Too many failed sign-ins for this account or address."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling and what they may see: ``grants`` maps site id to role.
    ``via`` is session or token; ``csrf`` is the session's CSRF token."""

    user_id: int
    username: str
    grants: dict[int, str] = field(default_factory=dict)
    via: str = "session"
    csrf: str | None = None
    token_id: int | None = None

    def actor(self, client: str | None = None) -> Actor:
        return Actor(self.user_id, self.username, client)

    def role_on(self, site_id: int | None) -> str | None:
        return None if site_id is None else self.grants.get(site_id)

    def may(self, role: str, site_id: int | None) -> bool:
        have = self.role_on(site_id)
        return have is not None and satisfies(have, role)

    def sites_with(self, role: str) -> list[int]:
        return sorted(s for s, r in self.grants.items() if satisfies(r, role))


# --------------------------------------------------------------------------- users

def _user_view(user: m.User) -> dict[str, object]:
    return {"username": user.username, "display_name": user.display_name,
            "email": user.email, "active": user.active}


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InputError(f"the password must have at least {MIN_PASSWORD} characters "
                         "(NIST SP 800-63B section 5.1.1.2)")


def get_user(session: Session, username: str) -> m.User:
    user = session.scalars(select(m.User).where(m.User.username == username)).first()
    if user is None:
        raise InputError(f"no user named {username!r}")
    return user


def add_user(session: Session, actor: Actor, username: str, password: str, *,
             display_name: str = "", email: str | None = None,
             site_id: int | None = None) -> m.User:
    """Create an active user with an Argon2id password hash. ``site_id``: the site the
    user is made for (their audit entry is then in that site's log)."""
    username = username.strip()
    if not username or len(username) > 120:
        raise InputError("a username must have 1 to 120 characters")
    if session.scalars(select(m.User).where(m.User.username == username)).first():
        raise InputError(f"a user named {username!r} exists already")
    check_password_policy(password)
    user = m.User(username=username, display_name=display_name, email=email,
                  password_hash=_hasher.hash(password), active=True)
    session.add(user)
    session.flush()
    record(session, actor, "user.add", "user", user.id, site_id=site_id,
           after=_user_view(user))
    return user


def set_active(session: Session, actor: Actor, user: m.User, active: bool) -> None:
    """Enable or disable a user; disabling also ends their sessions."""
    before = _user_view(user)
    user.active = active
    if not active:
        session.execute(delete(m.WebSession).where(m.WebSession.user_id == user.id))
    record(session, actor, "user.activate" if active else "user.deactivate", "user",
           user.id, before=before, after=_user_view(user))


def set_password(session: Session, actor: Actor, user: m.User, password: str) -> None:
    """Replace a password; every session of the user ends (they sign in again)."""
    check_password_policy(password)
    user.password_hash = _hasher.hash(password)
    session.execute(delete(m.WebSession).where(m.WebSession.user_id == user.id))
    # The audit log never holds a password or its hash.
    record(session, actor, "user.password", "user", user.id)


# --------------------------------------------------------------------------- grants

def get_site(session: Session, site: str | int) -> m.Site:
    row = (session.get(m.Site, site) if isinstance(site, int) else
           session.scalars(select(m.Site).where(m.Site.name == site)).first())
    if row is None:
        raise InputError(f"no site {site!r}")
    return row


def grant(session: Session, actor: Actor, user: m.User, site: m.Site, role: str) -> m.Grant:
    """Give ``user`` ``role`` on ``site`` (replacing the role they had there)."""
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    row = session.scalars(select(m.Grant).where(m.Grant.user_id == user.id,
                                                m.Grant.site_id == site.id)).first()
    before = None if row is None else {"role": row.role}
    if row is None:
        row = m.Grant(user_id=user.id, site_id=site.id, role=role)
        session.add(row)
    else:
        row.role = role
    session.flush()
    record(session, actor, "grant.set", "grant", row.id, site_id=site.id, before=before,
           after={"username": user.username, "site": site.name, "role": role})
    return row


def revoke(session: Session, actor: Actor, user: m.User, site: m.Site) -> None:
    """Take away ``user``'s role on ``site``; their tokens lose that site too."""
    row = session.scalars(select(m.Grant).where(m.Grant.user_id == user.id,
                                                m.Grant.site_id == site.id)).first()
    if row is None:
        raise InputError(f"{user.username!r} has no grant on site {site.name!r}")
    before = {"username": user.username, "site": site.name, "role": row.role}
    gid = row.id
    session.delete(row)
    record(session, actor, "grant.revoke", "grant", gid, site_id=site.id, before=before)


def grants_of(session: Session, user_id: int) -> dict[int, str]:
    return {g.site_id: g.role for g in
            session.scalars(select(m.Grant).where(m.Grant.user_id == user_id))}


# --------------------------------------------------------------------------- tokens

def create_token(session: Session, actor: Actor, user: m.User, *, role: str,
                 site_ids: list[int], name: str = "",
                 expires_at: dt.datetime | None = None) -> tuple[str, m.ApiToken]:
    """A new API token for ``user``: returns the token (shown once, never stored) and
    its row. The role and sites cannot exceed the user's grants."""
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    if not site_ids:
        raise InputError("a token needs at least one site")
    held = grants_of(session, user.id)
    for sid in site_ids:
        if sid not in held or not satisfies(held[sid], role):
            raise InputError(f"{user.username!r} does not hold role {role!r} on site "
                             f"{sid}: a token cannot have more than its user")
    if expires_at is not None and expires_at <= _now():
        raise InputError("the expiry must be in the future")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = m.ApiToken(user_id=user.id, name=name, prefix=raw[:12], token_hash=sha256(raw),
                     role=role, site_ids=sorted(set(site_ids)), expires_at=expires_at)
    session.add(row)
    session.flush()
    record(session, actor, "token.create", "api_token", row.id,
           after={"username": user.username, "name": name, "prefix": row.prefix,
                  "role": role, "site_ids": row.site_ids,
                  "expires_at": None if expires_at is None else expires_at.isoformat()})
    return raw, row


def revoke_token(session: Session, actor: Actor, token_id: int) -> m.ApiToken:
    row = session.get(m.ApiToken, token_id)
    if row is None:
        raise InputError(f"no token with id {token_id}")
    if row.revoked_at is None:
        row.revoked_at = _now()
        record(session, actor, "token.revoke", "api_token", row.id,
               before={"revoked_at": None}, after={"revoked_at": row.revoked_at.isoformat()})
    return row


def principal_from_token(session: Session, raw: str) -> Principal:
    """The caller of a ``Bearer`` token: its role on its sites, cut to the grants its
    user still holds (a revoked grant takes effect at once)."""
    row = session.scalars(select(m.ApiToken).where(m.ApiToken.token_hash == sha256(raw))
                          ).first()
    now = _now()
    if row is None or row.revoked_at is not None or (
            row.expires_at is not None and row.expires_at <= now):
        raise AuthError("invalid, expired or revoked token")
    user = session.get(m.User, row.user_id)
    if user is None or not user.active:
        raise AuthError("invalid, expired or revoked token")
    held = grants_of(session, user.id)
    grants = {sid: lesser(row.role, held[sid]) for sid in row.site_ids if sid in held}
    row.last_used_at = now
    return Principal(user.id, user.username, grants, via="token", token_id=row.id)


# --------------------------------------------------------------------------- sign-in

def _failures(session: Session, column: InstrumentedAttribute[str], value: str,
              since: dt.datetime) -> int:
    return int(session.scalar(select(func.count()).select_from(m.LoginFailure)
                              .where(column == value, m.LoginFailure.at >= since)) or 0)


def authenticate(session: Session, username: str, password: str, address: str) -> m.User:
    """Check a password, throttled per account and per address. A failure is recorded
    (and committed by the caller, even though sign-in fails)."""
    now = _now()
    since = now - THROTTLE_WINDOW
    if (_failures(session, m.LoginFailure.username, username, since) >= MAX_FAILS_ACCOUNT
            or _failures(session, m.LoginFailure.address, address, since)
            >= MAX_FAILS_ADDRESS):
        raise Throttled("too many failed sign-ins: try again later")
    user = session.scalars(select(m.User).where(m.User.username == username)).first()
    ok = False
    try:
        ok = _hasher.verify(user.password_hash if user is not None and user.password_hash
                            else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None or not user.active:
        # Failures older than the window count for nothing: drop them, so the table
        # stays as small as the attempts of the last minutes.
        session.execute(delete(m.LoginFailure).where(m.LoginFailure.at < since))
        session.add(m.LoginFailure(username=username[:120], address=address[:64], at=now))
        raise AuthError("wrong username or password")
    if user.password_hash and _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def start_session(session: Session, user: m.User, client: str | None,
                  old_raw: str | None = None) -> tuple[str, m.WebSession]:
    """A new server-side session with a fresh random id (never one the client brought:
    session fixation, OWASP Session Management Cheat Sheet, "Renew the Session ID After
    Any Privilege Level Change"); the session the client had, if any, ends."""
    if old_raw:
        end_session(session, old_raw)
    now = _now()
    session.execute(delete(m.WebSession).where(m.WebSession.expires_at <= now))
    raw = secrets.token_urlsafe(32)
    row = m.WebSession(id_hash=sha256(raw), user_id=user.id,
                       csrf_token=secrets.token_urlsafe(32), client=client,
                       created_at=now, last_seen_at=now, expires_at=now + SESSION_LIFETIME)
    session.add(row)
    session.flush()
    return raw, row


def end_session(session: Session, raw: str) -> None:
    session.execute(delete(m.WebSession).where(m.WebSession.id_hash == sha256(raw)))


def principal_from_session(session: Session, raw: str) -> Principal:
    row = session.scalars(select(m.WebSession).where(m.WebSession.id_hash == sha256(raw))
                          ).first()
    now = _now()
    if row is None or row.expires_at <= now:
        raise AuthError("not signed in (no session or the session expired)")
    user = session.get(m.User, row.user_id)
    if user is None or not user.active:
        raise AuthError("not signed in (no session or the session expired)")
    row.last_seen_at = now
    return Principal(user.id, user.username, grants_of(session, user.id), via="session",
                     csrf=row.csrf_token)

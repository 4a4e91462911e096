"""Engine, sessions and schema upgrades of the node's database.

``SCANBENCH_DATABASE_URL`` selects the database (``postgresql+psycopg://...`` for a
shared or central server); without it, a SQLite file ``scanbench.db`` under
``SCANBENCH_HOME`` (default ``~/.scanbench``). SQLite runs in WAL mode so that
readers never block the writer; every transaction starts with ``BEGIN IMMEDIATE``
so two writers queue on the busy timeout instead of failing with "database is
locked" when a read transaction upgrades to a write. ``synchronous=NORMAL``: a
commit survives the process being killed; after a power loss the last commits
may be lost, and start-up re-indexes from the file store, whose files are
fsync'd before they are acknowledged (service/filestore.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from scanbench.errors import InputError

MIGRATIONS = Path(__file__).with_name("migrations")


def home_dir(home: Path | str | None = None) -> Path:
    """The data directory: ``home``, else ``SCANBENCH_HOME``, else ``~/.scanbench``."""
    if home is not None:
        return Path(home).expanduser()
    env = os.environ.get("SCANBENCH_HOME")
    return Path(env).expanduser() if env else Path.home() / ".scanbench"


def database_url(home: Path | str | None = None, url: str | None = None) -> str:
    """``url``, else ``SCANBENCH_DATABASE_URL``, else the SQLite file under the home."""
    chosen = url or os.environ.get("SCANBENCH_DATABASE_URL")
    if chosen:
        return chosen
    return f"sqlite:///{home_dir(home) / 'scanbench.db'}"


#: PostgreSQL connections kept open, and the most opened at once (POOL_SIZE +
#: POOL_OVERFLOW = 40, anyio's default number of worker threads).
POOL_SIZE = 10
POOL_OVERFLOW = 30


def make_engine(url: str) -> Engine:
    """An engine for ``url``, configured for concurrent writers (see module docstring)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InputError(f"not a database URL: {exc}", "SCANBENCH_DATABASE_URL") from None
    try:
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": 60})
            _sqlite_setup(engine)
            return engine
        # One connection for each worker thread of the web application (anyio runs the
        # sync endpoints on at most 40 threads): with SQLAlchemy's default pool (5 + 10
        # overflow), 20 clients of slow requests made the 16th+ wait 30 s and fail with
        # a 500 (bench/web.py, dose statistics over a million exams).
        return create_engine(url, pool_pre_ping=True, pool_size=POOL_SIZE,
                             max_overflow=POOL_OVERFLOW)
    except (NoSuchModuleError, ImportError) as exc:
        raise InputError(f"unsupported database ({exc}); use sqlite:///PATH or "
                         "postgresql+psycopg://USER:PASSWORD@HOST/DB",
                         parsed.render_as_string(hide_password=True)) from None
    except OSError as exc:
        raise InputError(f"cannot create the database folder: {exc}",
                         parsed.render_as_string(hide_password=True)) from None


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # transactions begun below, not by the driver
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _pragma(conn: Connection, pragma: str) -> None:
    raw: Any = conn.connection.driver_connection
    raw.execute(f"PRAGMA {pragma}")


@contextmanager
def migrating(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction for running migrations. On SQLite, foreign keys are
    switched off for it: a migration that alters a table SQLite cannot ALTER is done by
    copying it to a new table and dropping the old one, and with foreign keys on, that
    drop would cascade into every table that refers to it (deleting their rows). The
    keys are checked after the migration and switched back on (SQLite's documented
    procedure for schema changes, https://www.sqlite.org/lang_altertable.html)."""
    with engine.connect() as conn:
        sqlite = engine.dialect.name == "sqlite"
        if sqlite:  # before any BEGIN: the pragma is a no-op inside a transaction
            _pragma(conn, "foreign_keys=OFF")
        try:
            with conn.begin():
                yield conn
                if sqlite:
                    bad = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if bad:
                        raise InputError(f"the migration left {len(bad)} rows whose foreign "
                                         f"keys point nowhere (first: {bad[0]})",
                                         engine.url.render_as_string(hide_password=True))
        finally:
            if sqlite:
                _pragma(conn, "foreign_keys=ON")


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Apply the Alembic migrations shipped in ``store/migrations`` up to ``revision``;
    return the revision the database is at afterwards. Safe to run from several
    processes at once (SQLite: the write lock; PostgreSQL: an advisory lock)."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.util import CommandError

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    try:
        with migrating(engine) as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise InputError(f"cannot open or upgrade the database: {exc.orig}",
                         engine.url.render_as_string(hide_password=True)) from None
    except CommandError as exc:  # e.g. a revision this version does not know
        raise InputError(f"the database schema is not one this scanbench knows ({exc}); was "
                         "it written by a newer version?",
                         engine.url.render_as_string(hide_password=True)) from None


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return MigrationContext.configure(conn).get_current_revision()


class Database:
    """An engine and its session factory, upgraded to the current schema on open."""

    def __init__(self, home: Path | str | None = None, url: str | None = None, *,
                 auto_upgrade: bool = True) -> None:
        self.url = database_url(home, url)
        self.engine = make_engine(self.url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # The fleet state and fact versions kept in the transaction that changes them.
        from scanbench.store import fleet_state

        fleet_state.install(self.sessions)
        if auto_upgrade:
            upgrade(self.engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed at the end of the block, rolled back on error."""
        with self.sessions() as s, s.begin():
            yield s

    def close(self) -> None:
        self.engine.dispose()

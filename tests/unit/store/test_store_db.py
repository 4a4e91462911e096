"""The database opens, migrates and holds the schema the models describe, on SQLite and
PostgreSQL alike."""

from __future__ import annotations

import datetime as dt

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from scanbench.store import Database
from scanbench.store import models as m
from scanbench.store.db import current_revision, database_url, upgrade


def test_migrations_create_exactly_the_models(database_url: str) -> None:
    db = Database(url=database_url)
    try:
        assert current_revision(db.engine) == "0007"
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), m.Base.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
        names = set(inspect(db.engine).get_table_names())
        for table in ("site", "device", "device_alias", "study", "series", "instance", "result",
                      "measurement", "dose_event", "exam_timing", "lifecycle_event", "spec",
                      "scorecard", "user_account", "site_grant", "api_token", "web_session",
                      "login_failure", "audit_entry", "job",
                      "protocol"):
            assert table in names
        indexes = {ix["name"]: ix["column_names"]
                   for ix in inspect(db.engine).get_indexes("measurement")}
        assert indexes["ix_measurement_history"] == ["device_id", "analysis", "name",
                                                     "acquired_at"]
        assert upgrade(db.engine) == "0007"  # a second upgrade changes nothing
    finally:
        db.close()


def test_utc_instants_round_trip_aware(database_url: str) -> None:
    db = Database(url=database_url)
    try:
        when = dt.datetime(2026, 3, 4, 10, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
        with db.session() as s:
            s.add(m.Site(name="Ward 5", created_at=when))
        with db.session() as s:
            site = s.scalars(select(m.Site)).one()
            assert site.created_at == when and site.created_at.tzinfo == dt.UTC
    finally:
        db.close()


def test_default_url_is_a_sqlite_file_under_the_home(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("SCANBENCH_DATABASE_URL", raising=False)
    monkeypatch.setenv("SCANBENCH_HOME", str(tmp_path / "h"))
    assert database_url() == f"sqlite:///{tmp_path / 'h' / 'scanbench.db'}"
    db = Database()
    try:
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        db.close()
    monkeypatch.setenv("SCANBENCH_DATABASE_URL", "sqlite:///" + str(tmp_path / "other.db"))
    assert database_url().endswith("other.db")


def test_bad_databases_are_named_not_tracebacks(tmp_path) -> None:
    import pytest
    from sqlalchemy import text as sql

    from scanbench.errors import InputError

    with pytest.raises(InputError, match="unsupported database"):
        Database(url="oracle+nosuchdriver://u:secret@host/db")
    with pytest.raises(InputError, match="not a database URL"):
        Database(url="::not a url::")
    with pytest.raises(InputError, match="cannot open or upgrade") as info:
        Database(url="postgresql+psycopg://u:secret@127.0.0.1:1/none")
    assert "secret" not in str(info.value)
    url = f"sqlite:///{tmp_path / 'future.db'}"
    db = Database(url=url)
    with db.engine.begin() as conn:  # a schema from a later scanbench
        conn.execute(sql("UPDATE alembic_version SET version_num = '9999'"))
    db.close()
    with pytest.raises(InputError, match="newer version"):
        Database(url=url)


def test_postgresql_pool_serves_every_web_worker_thread(pg_server) -> None:
    """40 connections at once (anyio's default worker threads of the web application)
    without waiting: the default pool (5 + 10) made the 16th wait 30 s and fail."""
    import anyio.to_thread

    from scanbench.store.db import POOL_OVERFLOW, POOL_SIZE, make_engine

    async def threads() -> float:
        return anyio.to_thread.current_default_thread_limiter().total_tokens

    assert anyio.run(threads) <= POOL_SIZE + POOL_OVERFLOW
    engine = make_engine(pg_server.create())
    try:
        conns = [engine.connect() for _ in range(POOL_SIZE + POOL_OVERFLOW)]
        assert all(c.exec_driver_sql("SELECT 1").scalar() == 1 for c in conns)
        for c in conns:
            c.close()
    finally:
        engine.dispose()

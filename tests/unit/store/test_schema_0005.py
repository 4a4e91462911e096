"""Migration 0005 (the evaluation and web data model): old lifecycle kinds become the
reliability kinds, downtime with an end becomes a start/end pair, and the migration goes
down and up again on SQLite and PostgreSQL leaving exactly the models."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from scanbench.evaluation.reliability import EVENT_KINDS
from scanbench.store import Database
from scanbench.store import models as m
from scanbench.store.db import MIGRATIONS, current_revision, migrating, upgrade


def _cfg(db: Database) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", db.engine.url.render_as_string(hide_password=False))
    return cfg


def test_store_lifecycle_kinds_are_the_reliability_kinds() -> None:
    assert m.LIFECYCLE_KINDS == EVENT_KINDS


def test_migration_0005_converts_old_lifecycle_kinds(database_url: str) -> None:
    db = Database(url=database_url)
    try:
        cfg = _cfg(db)
        with migrating(db.engine) as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0004")
        assert current_revision(db.engine) == "0004"
        t0 = dt.datetime(2026, 3, 1, 8, 0)
        with db.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO device (id, identity_key, status, first_seen_at, last_seen_at) "
                    "VALUES (1, 'acme|ct|1', 'active', :t, :t)"
                ),
                {"t": t0},
            )
            dev = conn.execute(sa.text("SELECT id FROM device")).scalar_one()
            kinds_in = ("service", "downtime", "decommission", "software_change")
            for i, kind in enumerate(kinds_in, 1):
                at = t0 + dt.timedelta(days=i)
                end = at + dt.timedelta(hours=5) if kind == "downtime" else None
                conn.execute(
                    sa.text(
                        "INSERT INTO lifecycle_event (device_id, kind, occurred_at, ended_at, "
                        "summary, details, source, created_at) VALUES "
                        "(:d, :k, :t, :e, 'x', '{}', 'user', :t)"
                    ),
                    {"d": dev, "k": kind, "t": at, "e": end},
                )
        assert upgrade(db.engine) == "0007"  # through 0005, and the later ones
        with db.engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT kind, occurred_at FROM lifecycle_event ORDER BY occurred_at, id")
            ).all()
            kinds = [r[0] for r in rows]
            assert kinds == [
                "unplanned_service",
                "downtime_start",
                "downtime_end",
                "decommissioning",
                "software_change",
            ]
            assert set(kinds) <= set(m.LIFECYCLE_KINDS)
            assert compare_metadata(MigrationContext.configure(conn), m.Base.metadata) == []
        # and down again: the old kinds come back
        with migrating(db.engine) as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0004")
        with db.engine.connect() as conn:
            kinds = sorted(r[0] for r in conn.execute(sa.text("SELECT kind FROM lifecycle_event")))
        assert kinds == ["decommission", "downtime", "service", "software_change"]
        assert upgrade(db.engine) == "0007"
    finally:
        db.close()

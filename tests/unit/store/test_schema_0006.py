"""Migration 0006 (the programme layer's tables) goes down to 0005 and up again on SQLite
and PostgreSQL, keeping the rows of the tables it does not own, and leaves exactly the
models; the uniqueness rules federation relies on hold."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.exc import IntegrityError

from scanbench.store import Database
from scanbench.store import models as m
from scanbench.store.db import MIGRATIONS, current_revision, migrating, upgrade

PROGRAMME_TABLES = {"fed_credential", "fed_peer", "fed_outbox", "fed_batch", "fed_record",
                    "review", "review_decision", "reader_study", "reader_case",
                    "reader_assignment", "reader_score", "sus_response", "training_record",
                    "quiz_attempt"}


def test_migration_0006_down_and_up(database_url: str) -> None:
    db = Database(url=database_url)
    try:
        with db.session() as s:
            s.add(m.Site(name="lead hospital"))
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url", db.engine.url.render_as_string(hide_password=False))
        with migrating(db.engine) as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0005")
        assert current_revision(db.engine) == "0005"
        assert not PROGRAMME_TABLES & set(sa.inspect(db.engine).get_table_names())
        assert upgrade(db.engine) == "0007"
        assert set(sa.inspect(db.engine).get_table_names()) >= PROGRAMME_TABLES
        with db.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT name FROM site")).scalar_one() == "lead hospital"
            assert compare_metadata(MigrationContext.configure(conn), m.Base.metadata) == []
    finally:
        db.close()


def test_a_site_record_is_stored_once(database_url: str) -> None:
    db = Database(url=database_url)
    try:
        with db.session() as s:
            site = m.Site(name="site A")
            s.add(site)
            s.flush()
            s.add(m.FedRecord(site_id=site.id, seq=1, kind="result", record_key="result:1"))
            site_id = site.id
        with pytest.raises(IntegrityError), db.session() as s:
            s.add(m.FedRecord(site_id=site_id, seq=2, kind="result", record_key="result:1"))
    finally:
        db.close()

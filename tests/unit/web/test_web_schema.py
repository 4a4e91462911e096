"""Migration 0004 (web accounts) goes down to 0003 and up again on SQLite and
PostgreSQL, and the query layer cannot be built without a caller's grants."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from scanbench.store import Database
from scanbench.store import models as m
from scanbench.store.db import MIGRATIONS, current_revision, upgrade
from scanbench.web.scope import Scope


def test_migration_0004_downgrades_and_upgrades_again(database_url: str) -> None:
    db = Database(url=database_url)
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url",
                            db.engine.url.render_as_string(hide_password=False))
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0003")
        assert current_revision(db.engine) == "0003"
        names = set(inspect(db.engine).get_table_names())
        assert {"role", "user_role"} <= names and "site_grant" not in names
        assert upgrade(db.engine) == "0007"
        with db.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), m.Base.metadata) == []
    finally:
        db.close()


def test_a_scope_needs_a_principal() -> None:
    with pytest.raises(TypeError):
        Scope(None, None)  # type: ignore[arg-type]

"""Fixtures of the lifecycle/telemetry/costs tests."""

from life_world import fleet  # noqa: F401

from pg import database_url, pg_server  # noqa: F401  (fixtures: SQLite and PostgreSQL)

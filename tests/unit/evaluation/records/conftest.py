"""Fixtures of the lifecycle/telemetry/costs tests."""

from life_world import fleet, fleet_any_db  # noqa: F401

from pg import database_url, pg_server  # noqa: F401  (fixtures: SQLite and PostgreSQL)

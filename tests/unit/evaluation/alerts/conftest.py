from pg import database_url, pg_server  # noqa: F401  (fixtures: SQLite and PostgreSQL)

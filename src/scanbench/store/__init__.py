"""The node's store: SQLAlchemy models, the database and its migrations, repositories.

``Database(home, url)`` opens (and upgrades) the database; ``scanbench.store.devices``
is the device registry; ``scanbench.store.repo`` saves results and answers history
queries.
"""

from scanbench.store.db import Database, database_url, home_dir, upgrade

__all__ = ["Database", "database_url", "home_dir", "upgrade"]

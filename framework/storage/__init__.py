"""PostgreSQL storage: the embedded server, the pool, migrations and market data tables."""

from framework.storage.database import Database, connect_dsn, open_database
from framework.storage.embedded import EmbeddedPostgres
from framework.storage.migrations import MigrationStatus, apply_migrations, migration_status

__all__ = [
    "Database",
    "EmbeddedPostgres",
    "MigrationStatus",
    "apply_migrations",
    "connect_dsn",
    "migration_status",
    "open_database",
]

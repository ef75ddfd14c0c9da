"""One asyncpg pool per process, injected where needed (never a global)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

from framework.errors import TransientError
from framework.settings import Settings
from framework.storage.embedded import EmbeddedPostgres

__all__ = ["Database", "connect_dsn", "open_database", "resolve_dsn"]

log = logging.getLogger(__name__)


@dataclass
class Database:
    """An open database: its pool, its connection string and, when embedded, the server handle."""

    pool: asyncpg.Pool
    dsn: str
    embedded: EmbeddedPostgres | None = None


def resolve_dsn(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    """Return the connection string to use: `DATABASE_URL`, or a started embedded server's."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value(), None
    embedded = EmbeddedPostgres(settings.embedded_db_dir)
    return embedded.start(), embedded


async def connect_dsn(dsn: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 30.0) -> asyncpg.Pool:
    """Return a pool on `dsn`, or raise `TransientError` if the server cannot be reached."""
    try:
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, command_timeout=timeout)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise TransientError(f"cannot connect to PostgreSQL: {exc}") from exc
    assert pool is not None
    return pool


@asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[Database]:
    """Open the configured database (embedded by default) and close it on exit."""
    dsn, embedded = await asyncio.to_thread(resolve_dsn, settings)
    try:
        pool = await connect_dsn(
            dsn, min_size=settings.db_pool_min, max_size=settings.db_pool_max, timeout=settings.db_command_timeout
        )
        try:
            yield Database(pool=pool, dsn=dsn, embedded=embedded)
        finally:
            await pool.close()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)

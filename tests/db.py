"""Fixtures for tests against a real PostgreSQL: the embedded server, one fresh database per test.

Each pytest worker starts its own embedded server in a temporary folder (or uses `DATABASE_URL`
when set, creating and dropping a database per test on it). Every test gets an empty, migrated
database and an asyncpg pool on it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from framework.storage import Database, EmbeddedPostgres, apply_migrations, connect_dsn


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres | None]:
    """Start an embedded PostgreSQL for this worker (None when DATABASE_URL points elsewhere)."""
    if os.environ.get("DATABASE_URL"):
        yield None
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "pgdata")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def admin_dsn(pg_server: EmbeddedPostgres | None) -> str:
    """Return a DSN on the server's maintenance database."""
    return os.environ["DATABASE_URL"] if pg_server is None else pg_server.dsn


@pytest.fixture
async def database(admin_dsn: str) -> AsyncIterator[Database]:
    """Yield a fresh, migrated database with a pool; drop it afterwards."""
    name = f"rata_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = _with_database(admin_dsn, name)
    pool = await connect_dsn(dsn, min_size=1, max_size=8)
    try:
        await apply_migrations(pool)
        yield Database(pool=pool, dsn=dsn)
    finally:
        await pool.close()
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

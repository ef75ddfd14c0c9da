"""Forward-only SQL migrations, numbered files in `migrations/`, recorded with checksums.

Each file `NNN_name.sql` is applied once, in order, inside its own transaction, and recorded in
`schema_migrations` with the SHA-256 of its text. Re-running is a no-op. A file edited after it was
applied is refused (its checksum no longer matches): write a new migration instead. Concurrent
runners are serialised by an advisory lock.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import asyncpg

from framework.errors import IntegrityError, RejectedError

__all__ = ["Migration", "MigrationStatus", "apply_migrations", "default_directory", "discover", "migration_status"]

_NAME = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x7261_7461  # "rata"
_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    path: Path
    sql: str = field(repr=False)

    @property
    def checksum(self) -> str:
        """Return the SHA-256 of the file's text."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    """Where one migration stands: applied, pending, or modified after it was applied."""

    version: int
    name: str
    state: str
    applied_at: datetime | None


def default_directory() -> Path:
    """Return the repository's `migrations/` folder."""
    return Path(__file__).resolve().parents[2] / "migrations"


def discover(directory: Path | None = None) -> list[Migration]:
    """Return the migrations in `directory`, in version order; refuse badly named or duplicate files."""
    folder = directory or default_directory()
    if not folder.is_dir():
        raise RejectedError(f"no migrations folder at {folder}")
    found: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise RejectedError(f"{path.name}: migration files are named NNN_lowercase_name.sql")
        version = int(match.group(1))
        if version in found:
            raise RejectedError(f"two migrations have version {version}: {found[version].path.name}, {path.name}")
        found[version] = Migration(version, match.group(2), path, path.read_text())
    return [found[v] for v in sorted(found)]


async def _applied(conn: asyncpg.Connection) -> dict[int, asyncpg.Record]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version")
    return {row["version"]: row for row in rows}


async def migration_status(pool: asyncpg.Pool, directory: Path | None = None) -> list[MigrationStatus]:
    """Return the state of every migration file (and of applied versions whose file is gone)."""
    migrations = discover(directory)
    async with pool.acquire() as conn:
        applied = await _applied(conn)
    out = []
    for m in migrations:
        row = applied.get(m.version)
        if row is None:
            out.append(MigrationStatus(m.version, m.name, "pending", None))
        else:
            state = "applied" if row["checksum"] == m.checksum else "modified"
            out.append(MigrationStatus(m.version, m.name, state, row["applied_at"]))
    known = {m.version for m in migrations}
    for version, row in applied.items():
        if version not in known:
            out.append(MigrationStatus(version, row["name"], "missing file", row["applied_at"]))
    return sorted(out, key=lambda s: s.version)


async def apply_migrations(pool: asyncpg.Pool, directory: Path | None = None) -> list[Migration]:
    """Apply the pending migrations in order and return them; refuse if an applied one was edited."""
    migrations = discover(directory)
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await conn.execute(_TABLE)
            applied = await _applied(conn)
            for m in migrations:
                row = applied.get(m.version)
                if row is not None and row["checksum"] != m.checksum:
                    raise IntegrityError(
                        f"migration {m.path.name} was edited after it was applied "
                        f"(recorded checksum {row['checksum'][:12]}, file {m.checksum[:12]}); "
                        "never edit an applied migration, add a new one"
                    )
            done = []
            for m in migrations:
                if m.version in applied:
                    continue
                async with conn.transaction():
                    await conn.execute(m.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                        m.version,
                        m.name,
                        m.checksum,
                    )
                done.append(m)
            return done
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)

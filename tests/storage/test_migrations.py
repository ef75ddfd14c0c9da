from __future__ import annotations

import shutil

import pytest

from framework.errors import IntegrityError, RejectedError
from framework.storage import apply_migrations, migration_status
from framework.storage.migrations import default_directory, discover

pytestmark = pytest.mark.db


async def test_migrations_are_applied_once_and_rerunning_is_a_noop(database):
    status = await migration_status(database.pool)
    assert [s.state for s in status] == ["applied"] * len(discover())
    assert await apply_migrations(database.pool) == []
    async with database.pool.acquire() as conn:
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
        indexes = {r["indexname"] for r in await conn.fetch("SELECT indexname FROM pg_indexes")}
    assert {"instruments", "ticks", "bars", "schema_migrations"} <= tables
    # the plain-PostgreSQL path (no TimescaleDB here): BRIN time indexes
    assert {"ticks_time_brin", "bars_open_time_brin"} <= indexes


async def test_an_edited_applied_migration_is_refused(database, tmp_path):
    folder = tmp_path / "migrations"
    shutil.copytree(default_directory(), folder)
    first = sorted(folder.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    status = await migration_status(database.pool, folder)
    assert status[0].state == "modified"
    with pytest.raises(IntegrityError, match=r"001_market_data.sql was edited after it was applied"):
        await apply_migrations(database.pool, folder)


async def test_pending_migrations_apply_in_order_inside_transactions(database, tmp_path):
    folder = tmp_path / "migrations"
    shutil.copytree(default_directory(), folder)
    (folder / "900_good.sql").write_text("CREATE TABLE good_one (id int);")
    (folder / "901_bad.sql").write_text("CREATE TABLE half_done (id int); SELECT * FROM no_such_table;")
    with pytest.raises(Exception, match="no_such_table"):
        await apply_migrations(database.pool, folder)
    states = {s.version: s.state for s in await migration_status(database.pool, folder)}
    assert states[900] == "applied"
    assert states[901] == "pending"
    async with database.pool.acquire() as conn:
        assert await conn.fetchval("SELECT to_regclass('half_done')") is None


def test_badly_named_migration_files_are_refused(tmp_path):
    (tmp_path / "1-init.sql").write_text("")
    with pytest.raises(RejectedError, match=r"NNN_lowercase_name\.sql"):
        discover(tmp_path)

"""The audit log: entries with user, time, action, target, outcome and detail; append-only; secrets redacted."""

from __future__ import annotations

import asyncpg
import pytest

from framework.security import Outcome, redact
from tests.security.conftest import NS, START_NS

pytestmark = pytest.mark.db


async def test_entries_record_who_did_what_when_and_how_it_ended(audit, clock):
    first = await audit.record("alice", "orders.submit", "o-1", detail={"quantity": "2", "symbol": "BTC/USDT"})
    clock.advance_to(START_NS + 5 * NS)
    await audit.record("bob", "risk.limits", "*", Outcome.REFUSED, client="192.0.2.9", detail={"error": "viewer"})
    assert first.time.timestamp() == START_NS / NS
    assert (first.username, first.action, first.target, first.outcome) == ("alice", "orders.submit", "o-1", "ok")
    assert first.detail == {"quantity": "2", "symbol": "BTC/USDT"}
    newest = await audit.entries()
    assert [e.username for e in newest] == ["bob", "alice"]
    assert newest[0].client == "192.0.2.9"
    assert [e.action for e in await audit.entries(username="alice")] == ["orders.submit"]
    assert [e.username for e in await audit.entries(outcome="refused")] == ["bob"]
    assert [e.username for e in await audit.entries(before_id=newest[0].id)] == ["alice"]
    assert [e.username for e in await audit.entries(since=newest[0].time)] == ["bob"]
    assert len(await audit.entries(limit=1)) == 1


async def test_the_audit_log_refuses_updates_deletes_and_truncation(audit, database):
    await audit.record("alice", "users.add", "bob")
    async with database.pool.acquire() as conn:
        for statement in (
            "UPDATE audit_log SET outcome = 'error'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(statement)
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 1


async def test_secret_looking_details_are_redacted_at_any_depth(audit, database):
    entry = await audit.record(
        "alice",
        "credentials.set",
        "binance",
        detail={"password": "hunter2hunter2", "nested": {"api_key": "k-123", "list": [{"secret": "s-456"}]}, "n": 1},
    )
    assert entry.detail == {
        "password": "<redacted>",
        "nested": {"api_key": "<redacted>", "list": [{"secret": "<redacted>"}]},
        "n": 1,
    }
    async with database.pool.acquire() as conn:
        raw = await conn.fetchval("SELECT detail::text FROM audit_log")
    assert not {"hunter2hunter2", "k-123", "s-456"} & set(raw.replace('"', " ").split())
    assert redact({"Refresh_Token": "x", "MASTER-KEY": "y", "keep": "z"}) == {
        "Refresh_Token": "<redacted>",
        "MASTER-KEY": "<redacted>",
        "keep": "z",
    }


async def test_an_entry_written_inside_a_rolled_back_transaction_is_gone(audit, database):
    async with database.pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        await audit.record("alice", "orders.cancel", "o-1", conn=conn)
        await transaction.rollback()
    assert await audit.entries() == []

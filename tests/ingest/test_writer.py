"""BatchWriter against a real PostgreSQL: idempotent batches, spool and replay, backpressure."""

from __future__ import annotations

import asyncio
import time

import pytest

from framework.errors import IntegrityError, TransientError
from framework.events import Bar, Tick, TickBatch
from framework.ingest import BatchWriter, CommittedTicks, Spool
from framework.storage import connect_dsn
from framework.storage.marketdata import upsert_instruments
from tests.ingest.helpers import BASE, INSTRUMENTS, stored_bars, stored_ticks, tick, tick_key, until

pytestmark = pytest.mark.db

BAR = Bar("SIM", "AAA", "1m", BASE, 100.0, 101.0, 99.0, 100.5, 10.0, 100.2, 7)


def ticks(n: int, start: float = 0.0) -> list:
    return [tick(start + i * 0.01, 100.0 + i % 7, 1.0 + i % 3, "AAA" if i % 2 else "BBB") for i in range(n)]


async def test_ticks_and_bars_are_written_in_batches_and_latency_is_measured(database, tmp_path):
    ids = await upsert_instruments(database.pool, INSTRUMENTS)
    writer = BatchWriter(database.pool, ids, Spool(tmp_path), batch_size=100)
    await writer.start()
    events = ticks(1000)
    for t in events:
        await writer.put(t)
    await writer.put(BAR)
    await writer.close()
    assert await stored_ticks(database.pool) == sorted(tick_key(t) for t in events)
    assert list(await stored_bars(database.pool)) == [("AAA", "1m", BASE)]
    stats = writer.stats()
    assert (stats.ticks_written, stats.ticks_duplicate, stats.bars_written) == (1000, 0, 1)
    assert stats.batches >= 10
    assert stats.batch_latency.count == stats.batches
    assert stats.online
    assert stats.spooled_batches == 0
    assert stats.queue_depth == 0


async def test_tick_to_commit_latency_runs_from_the_send_or_receive_time(database, tmp_path):
    ids = await upsert_instruments(database.pool, INSTRUMENTS)
    writer = BatchWriter(database.pool, ids, Spool(tmp_path))
    await writer.start()
    now = time.time_ns()
    await writer.put(Tick("SIM", "AAA", BASE, "1", 100.0, 1.0, 1, recv_ns=now))
    await writer.put(Tick("SIM", "AAA", BASE, "2", 100.0, 1.0, 1, recv_ns=now, sent_ns=now))
    await writer.put(tick(2, 100.0))  # no recv/sent time: not measured
    await writer.close()
    latency = writer.stats().tick_latency
    assert latency.count == 2
    assert latency.p50_ms is not None
    assert latency.p50_ms > 0
    assert latency.p99_ms is not None
    assert latency.max_ms is not None
    assert latency.p99_ms <= latency.max_ms


async def test_on_ticks_sees_every_committed_trade_with_its_latency(database, tmp_path):
    ids = await upsert_instruments(database.pool, INSTRUMENTS)
    seen: list[CommittedTicks] = []
    writer = BatchWriter(database.pool, ids, Spool(tmp_path), on_ticks=seen.append)
    await writer.start()
    now = time.time_ns()
    single = Tick("SIM", "AAA", BASE, "s1", 100.0, 1.0, 1, recv_ns=now)
    batch = TickBatch.from_ticks([Tick("SIM", "AAA", BASE + i, f"b{i}", 100.0, 1.0, 1, recv_ns=now) for i in range(50)])
    unmeasured = tick(3, 100.0)  # no receipt or send time: committed, but without a latency
    for event in (single, batch, unmeasured):
        await writer.put(event)
    await writer.close()
    assert sum(len(c) for c in seen) == 52
    assert sum(c.latency_ns.size for c in seen) == 51
    assert all((c.latency_ns >= 0).all() for c in seen)
    ids_seen = {t.trade_id for c in seen for t in c.ticks} | {i for c in seen for b in c.batches for i in b.trade_ids}
    assert ids_seen == {"s1", unmeasured.trade_id, *batch.trade_ids}
    assert len(await stored_ticks(database.pool)) == 52


async def test_on_ticks_sees_the_writes_in_the_order_they_were_queued(database, tmp_path):
    ids = await upsert_instruments(database.pool, INSTRUMENTS)
    seen: list[str] = []

    def hook(committed: CommittedTicks) -> None:
        seen.extend(t.trade_id for t in committed.ticks)

    # small writes, two commits in flight: a later write may commit first, it is told second
    writer = BatchWriter(database.pool, ids, Spool(tmp_path), batch_size=7, max_in_flight=2, on_ticks=hook)
    await writer.start()
    events = ticks(600)
    for t in events:
        await writer.put(t)
    await writer.close()
    assert seen == [t.trade_id for t in events]


async def test_a_failing_on_ticks_hook_is_logged_and_never_stops_the_writer(database, tmp_path, caplog):
    ids = await upsert_instruments(database.pool, INSTRUMENTS)

    def hook(committed: CommittedTicks) -> None:
        raise RuntimeError("subscriber bug")

    writer = BatchWriter(database.pool, ids, Spool(tmp_path), on_ticks=hook)
    await writer.start()
    events = ticks(100)
    for t in events:
        await writer.put(t)
    await writer.close()
    assert await stored_ticks(database.pool) == sorted(tick_key(t) for t in events)
    assert "the on_ticks hook failed" in caplog.text


async def test_writing_the_same_batch_twice_stores_it_once(database, tmp_path):
    ids = await upsert_instruments(database.pool, INSTRUMENTS)
    batch = ticks(500)
    for _ in range(2):
        writer = BatchWriter(database.pool, ids, Spool(tmp_path), batch_size=10_000)
        await writer.start()
        for t in [*batch, BAR]:
            await writer.put(t)
        await writer.close()
    assert await stored_ticks(database.pool) == sorted(tick_key(t) for t in batch)
    assert len(await stored_bars(database.pool)) == 1
    assert (writer.stats().ticks_written, writer.stats().ticks_duplicate) == (0, 500)


async def test_batches_spooled_while_the_database_was_away_are_replayed_by_the_next_writer(database, tmp_path):
    ids = await upsert_instruments(database.pool, INSTRUMENTS)

    async def unreachable():
        raise TransientError("cannot connect to PostgreSQL: connection refused")

    first = BatchWriter(None, ids, Spool(tmp_path / "spool"), connect=unreachable, batch_size=50)
    await first.start()
    produced = ticks(300)
    for t in [*produced, BAR]:
        await first.put(t)
    await first.close()
    stats = first.stats()
    assert (stats.online, stats.spooled_ticks, stats.spooled_bars) == (False, 300, 1)
    assert stats.spool_pending == stats.spooled_batches >= 6
    assert await stored_ticks(database.pool) == []

    spool = Spool(tmp_path / "spool")  # a new process finds the leftovers
    assert spool.pending() == stats.spooled_batches
    second = BatchWriter(None, ids, spool, connect=lambda: connect_dsn(database.dsn, max_size=2))
    await second.start()
    await second.put(tick(10, 100.0))
    await second.close()
    assert await stored_ticks(database.pool) == sorted(tick_key(t) for t in [*produced, tick(10, 100.0)])
    assert len(await stored_bars(database.pool)) == 1
    assert second.stats().replayed_batches == stats.spooled_batches
    assert spool.pending() == 0


async def test_a_full_spool_blocks_the_producer_until_the_database_is_back(database, tmp_path):
    ids = await upsert_instruments(database.pool, INSTRUMENTS)
    reachable = False

    async def connect():
        if not reachable:
            raise OSError("connection refused")
        return await connect_dsn(database.dsn, max_size=2)

    writer = BatchWriter(
        None,
        ids,
        Spool(tmp_path, max_bytes=2000),
        connect=connect,
        batch_size=10,
        queue_size=20,
        backoff_s=(0.01, 0.05),
    )
    await writer.start()
    produced = ticks(200)

    async def produce():
        for t in produced:
            await writer.put(t)

    producer = asyncio.create_task(produce())
    await until(lambda: writer.stats().spool_full_waits > 0 and writer.stats().queue_depth == 20)
    for _ in range(20):
        await asyncio.sleep(0.01)
    assert not producer.done(), "the producer must wait, not drop"
    assert writer.stats().queue_depth == 20
    reachable = True
    await asyncio.wait_for(producer, 30)
    await writer.close()
    assert await stored_ticks(database.pool) == sorted(tick_key(t) for t in produced)
    assert writer.stats().spool_pending == 0


async def test_a_batch_the_database_refuses_stops_the_writer_and_nothing_queued_is_lost(database, tmp_path):
    ids = await upsert_instruments(database.pool, INSTRUMENTS)
    spool = Spool(tmp_path)
    writer = BatchWriter(database.pool, {**ids, ("SIM", "GONE"): 999_999}, spool, batch_size=10)
    poison = tick(1, 100.0, symbol="GONE")
    good = ticks(200, start=2.0)
    for t in [poison, *good]:
        assert writer.offer(t)
    await writer.start()
    with pytest.raises(IntegrityError, match="refused"):
        await writer.close()
    with pytest.raises(IntegrityError):
        await writer.put(tick(500, 100.0))
    kept = []
    while (batch := spool.oldest()) is not None:
        kept += batch.ticks
        spool.remove(batch)
    assert kept.count(poison) == 1
    stored = await stored_ticks(database.pool)
    assert sorted(stored + [tick_key(t) for t in kept if t != poison]) == sorted(tick_key(t) for t in good)


async def test_the_inbox_is_bounded_in_trades_a_batch_counting_for_its_trades(database, tmp_path):
    ids = await upsert_instruments(database.pool, INSTRUMENTS)
    writer = BatchWriter(database.pool, ids, Spool(tmp_path), queue_size=100)
    first, second = TickBatch.from_ticks(ticks(60)), TickBatch.from_ticks(ticks(40, start=1.0))
    assert writer.offer(first)
    assert writer.offer(second)
    assert not writer.offer(tick(9, 100.0)), "100 trades queued: full"
    assert writer.stats().queue_depth == 100
    big = TickBatch.from_ticks(ticks(500, start=2.0))  # bigger than the inbox: goes in alone once it is empty
    putting = asyncio.create_task(writer.put(big))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not putting.done()
    await writer.start()
    await asyncio.wait_for(putting, 30)
    await writer.close()
    everything = [*first.ticks(), *second.ticks(), *big.ticks()]
    assert await stored_ticks(database.pool) == sorted(tick_key(t) for t in everything)
    assert writer.stats().ticks_written == 600
    window = writer.latency(reset=True)
    assert (window.tick.count, window.batch.count) == (0, writer.stats().batches)  # no send or receive times
    assert writer.latency().batch.count == 0

"""IngestPipeline end to end on a real PostgreSQL: bad input, a database outage, stop."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from framework.clock import SimulatedClock
from framework.events import Tick
from framework.feeds.synthetic import SyntheticFeed
from framework.ingest import IngestPipeline
from framework.storage import EmbeddedPostgres, apply_migrations, connect_dsn
from tests.ingest.helpers import (
    BASE,
    SECOND,
    GatedBatchFeed,
    GatedFeed,
    ScriptFeed,
    assert_same_bars,
    reference_bars,
    stored_bars,
    stored_ticks,
    tick,
    tick_key,
    until,
)

pytestmark = pytest.mark.db

TIMEFRAMES = ("1s", "1m", "5m", "15m", "1h", "1d")


def expected_bars(ticks: list[Tick]) -> dict:
    want: dict = {}
    for tf in TIMEFRAMES:
        want.update(reference_bars(ticks, tf))
    return want


async def test_bad_input_never_crashes_the_pipeline_and_is_never_written(database, tmp_path):
    good = [tick(i * 0.25, 100.0 + i % 5, 1.0 + i % 2, "AAA" if i % 3 else "BBB") for i in range(600)]
    bad_before = {
        10: dataclasses.replace(good[10], price=math.nan, trade_id="bad1"),
        20: dataclasses.replace(good[20], size=math.inf, trade_id="bad2"),
        30: dataclasses.replace(good[30], price=-1.0, trade_id="bad3"),
        40: dataclasses.replace(good[40], size=0.0, trade_id="bad4"),
        50: dataclasses.replace(good[50], symbol="NOPE", trade_id="bad5"),
        # a dict, so that the script feed does not move the simulated clock to it
        60: {**dataclasses.asdict(good[60]), "time_ns": good[60].time_ns + 3600 * SECOND, "trade_id": "bad6"},
        70: good[69],  # duplicate
        80: dataclasses.replace(good[79], time_ns=good[79].time_ns - 30 * SECOND, trade_id="bad7"),
        90: {"venue": "SIM", "symbol": "AAA", "price": "100.0", "size": 1},
        100: {"venue": "SIM", "symbol": "AAA", "time_ns": good[100].time_ns, "trade_id": 1, "price": "x", "size": 1},
        110: dataclasses.replace(good[110], side=5, trade_id="bad8"),
        120: None,
        130: dataclasses.replace(good[130], trade_id=""),
    }
    as_message = {  # a good tick as a venue-style dict: decimal string price, "buy" side
        "venue": "SIM",
        "symbol": good[199].symbol,
        "time_ns": good[199].time_ns,
        "trade_id": good[199].trade_id,
        "price": str(good[199].price),
        "size": good[199].size,
        "side": "buy",
    }
    script: list[object] = []
    for i, t in enumerate(good):
        if i in bad_before:
            script.append(bad_before[i])
        script.append(as_message if i == 199 else t)
    clock = SimulatedClock(BASE)
    pipeline = IngestPipeline(ScriptFeed(script, clock=clock), database.pool, clock=clock, spool=tmp_path, flush_ms=1)
    await pipeline.run()

    stats = pipeline.stats()
    assert stats.rejected == {
        "non_finite": 2,
        "non_positive": 2,
        "unknown_instrument": 1,
        "future_timestamp": 1,
        "duplicate": 1,
        "out_of_order": 1,
        "missing_field": 2,
        "wrong_type": 2,
        "invalid_value": 1,
    }
    assert (stats.received, stats.accepted) == (len(script), len(good))
    assert await stored_ticks(database.pool) == sorted(tick_key(t) for t in good)
    assert_same_bars(await stored_bars(database.pool), expected_bars(good))
    assert stats.ticks_written == len(good)
    assert stats.bars_written == stats.bars_emitted == len(expected_bars(good))
    assert stats.late_ticks == 0


@pytest.fixture
def server_dir() -> Iterator[Path]:
    """Return a folder for a dedicated server, outside pytest's temporary root.

    pytest resets its root (/tmp/pytest-of-<user>) to mode 0700 whenever a session starts, and
    pgserver, run as root, starts PostgreSQL as another user that must traverse that path: with
    other pytest sessions on the machine, initdb or the restart would fail now and then.
    """
    folder = Path(tempfile.mkdtemp(prefix="rata-outage-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("columns", [False, True], ids=["ticks", "batches"])
async def test_database_outage_mid_stream_loses_nothing_and_duplicates_nothing(server_dir, tmp_path, columns):
    server = EmbeddedPostgres(server_dir / "pg")
    dsn = await asyncio.to_thread(server.start)
    try:
        pool = await connect_dsn(dsn, max_size=2)
        await apply_migrations(pool)

        def feed(clock: SimulatedClock, malformed: float) -> SyntheticFeed:
            return SyntheticFeed(20, rate=50, seed=5, clock=clock, limit=6000, malformed=malformed)

        clean = [e async for e in feed(SimulatedClock(BASE), 0.0).events()]
        assert all(isinstance(e, Tick) for e in clean)

        clock = SimulatedClock(BASE)
        gates = {2000: asyncio.Event(), 4000: asyncio.Event()}
        gated = (GatedBatchFeed if columns else GatedFeed)(feed(clock, 0.02), gates)
        pipeline = IngestPipeline(
            gated,
            lambda: connect_dsn(dsn, max_size=2, timeout=5),
            clock=clock,
            spool=tmp_path / "spool",
            batch_size=200,
            flush_ms=2,
            backoff_s=(0.02, 0.2),
        )
        run = asyncio.create_task(pipeline.run())

        await until(lambda: gated.waiting_at == 2000 and pipeline.stats().ticks_written > 0)
        await asyncio.to_thread(server.kill)
        gates[2000].set()

        def spooled_everything() -> bool:
            if run.done():
                run.result()  # surface the error that stopped the pipeline
            s = pipeline.stats()
            return gated.waiting_at == 4000 and s.ticks_written + s.spooled_ticks == s.accepted

        await until(spooled_everything)
        stats = pipeline.stats()
        assert not run.done(), "ingestion keeps running while the database is down"
        assert stats.spooled_ticks > 1000
        assert stats.spool_pending > 0
        assert (stats.db_online, stats.outages) == (False, 1)

        await asyncio.to_thread(server.restart)
        gates[4000].set()
        await asyncio.wait_for(run, 120)

        stats = pipeline.stats()
        assert stats.spool_pending == 0
        assert stats.accepted == len(clean)
        assert sum(stats.rejected.values()) == stats.received - len(clean) > 50
        assert stats.late_ticks == 0
        assert await stored_ticks(pool) == sorted(tick_key(t) for t in clean)
        assert_same_bars(await stored_bars(pool), expected_bars(clean))
        await pool.close()
    finally:
        await asyncio.to_thread(server.stop)


async def test_stop_ends_a_live_feed_and_writes_what_was_accepted(database, tmp_path):
    feed = SyntheticFeed(5, rate=None, seed=1)
    pipeline = IngestPipeline(feed, database.pool, spool=tmp_path)
    run = asyncio.create_task(pipeline.run())
    await until(lambda: pipeline.stats().ticks_written > 5000)
    await pipeline.stop()
    await asyncio.wait_for(run, 30)
    stats = pipeline.stats()
    assert stats.ticks_written == stats.accepted == feed.emitted
    assert len(await stored_ticks(database.pool)) == feed.emitted
    assert stats.queue_depth == 0


async def test_stop_while_waiting_for_an_unreachable_database_returns_quietly(tmp_path):
    async def unreachable():
        raise OSError("connection refused")

    feed = ScriptFeed([tick(1, 100.0)])
    pipeline = IngestPipeline(feed, unreachable, spool=tmp_path, backoff_s=(0.01, 0.02))
    run = asyncio.create_task(pipeline.run())
    await until(lambda: feed.connected)
    await asyncio.sleep(0.05)
    assert not run.done(), "the pipeline waits for the database to register its instruments"
    await pipeline.stop()
    await asyncio.wait_for(run, 10)
    assert feed.closed
    assert pipeline.stats().received == 0


async def test_batches_of_a_synthetic_feed_are_stored_exactly_and_latency_windows_reset(database, tmp_path):
    clock = SimulatedClock(BASE)
    feed = SyntheticFeed(30, rate=2_000, seed=8, clock=clock, limit=20_000, malformed=0.01)
    clean = [e async for e in SyntheticFeed(30, rate=2_000, seed=8, clock=SimulatedClock(BASE), limit=20_000).events()]
    pipeline = IngestPipeline(feed, database.pool, clock=clock, spool=tmp_path)
    assert pipeline.latency().tick.count == 0  # before the writer exists
    await pipeline.run()
    stats = pipeline.stats()
    assert stats.accepted == stats.ticks_written == len(clean)
    assert sum(stats.rejected.values()) == sum(feed.malformed_counts.values()) > 100
    assert await stored_ticks(database.pool) == sorted(tick_key(t) for t in clean)
    assert_same_bars(await stored_bars(database.pool), expected_bars([t for t in clean if isinstance(t, Tick)]))
    window = pipeline.latency(reset=True)
    assert window.tick.count == len(clean)
    assert window.batch.count == stats.batch_latency.count > 0
    assert pipeline.latency().tick.count == pipeline.stats().tick_latency.count == 0
    pipeline.reset_latency()

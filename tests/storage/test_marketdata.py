"""Market data writes on a real PostgreSQL: exact times from integer microseconds, idempotent, one statement."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from framework.events import Bar, Tick, TickBatch, datetime_to_ns, ns_to_datetime
from framework.instruments import Instrument
from framework.storage.marketdata import (
    bar_columns,
    bar_rows,
    ids_by_venue,
    tick_columns,
    tick_rows,
    upsert_instruments,
    write_bars,
    write_market_data,
    write_ticks,
)

pytestmark = pytest.mark.db

INSTRUMENTS = [Instrument("AAA", venue="SIM"), Instrument("BBB", venue="SIM"), Instrument("CCC", venue="X")]
NOW = datetime(2025, 1, 1, tzinfo=UTC)


async def stored(pool) -> list[tuple[str, int, str, float, float, int]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT i.symbol, t.time, t.trade_id, t.price, t.size, t.side FROM ticks t "
            "JOIN instruments i ON i.id = t.instrument_id ORDER BY 1, 2, 3"
        )
    return [(r[0], datetime_to_ns(r[1]), r[2], r[3], r[4], r[5]) for r in rows]


async def stored_bars_of(conn) -> list[tuple[object, ...]]:
    rows = await conn.fetch(
        "SELECT i.symbol, b.timeframe, b.open_time, b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trades "
        "FROM bars b JOIN instruments i ON i.id = b.instrument_id ORDER BY 1, 2, 3"
    )
    return [tuple(r) for r in rows]


async def stored_bars(pool) -> list[tuple[object, ...]]:
    async with pool.acquire() as conn:
        return await stored_bars_of(conn)


async def test_tick_times_go_in_as_integer_microseconds_and_come_back_exact(database):
    ids = ids_by_venue(await upsert_instruments(database.pool, INSTRUMENTS))
    rng = random.Random(3)
    edges = [1, 999, 1000, 1_700_000_000_123_456_789, 4_102_444_800_000_000_000 - 1, 86_400 * 10**9 * 365 * 200]
    times = edges + [rng.randrange(1, 9 * 10**18) for _ in range(2000)]
    batch = TickBatch("SIM", ["AAA"] * len(times), [str(i) for i in range(len(times))], times, [1.5] * len(times),
                      [2.0] * len(times), [1] * len(times), [0] * len(times), [0] * len(times))  # fmt: skip
    single = Tick("X", "CCC", 1_234_567_891_234_567, "s", 3.25, 0.125, -1)
    async with database.pool.acquire() as conn:
        new = await write_market_data(conn, tick_columns([batch], [single], ids), bar_columns([], ids), NOW)
    assert new == len(times) + 1
    got = await stored(database.pool)
    want = sorted([("AAA", t // 1000 * 1000, str(i), 1.5, 2.0, 1) for i, t in enumerate(times)])
    assert got == sorted([*want, ("CCC", single.time_ns // 1000 * 1000, "s", 3.25, 0.125, -1)])
    assert all(ns_to_datetime(t) == ns_to_datetime(t // 1000 * 1000) for t in times)


async def test_writes_are_idempotent_and_the_last_bar_of_a_key_wins(database):
    ids = ids_by_venue(await upsert_instruments(database.pool, INSTRUMENTS))
    ticks = [Tick("SIM", "AAA", 1_700_000_000_000_000_000 + i * 1000, f"t{i}", 100.0 + i, 1.0, 1) for i in range(50)]
    first = Bar("SIM", "AAA", "1m", 1_700_000_040_000_000_000, 1.0, 2.0, 0.5, 1.5, 10.0, 1.2, 3)
    second = Bar("SIM", "AAA", "1m", 1_700_000_040_000_000_000, 1.0, 3.0, 0.5, 2.5, 20.0, 1.7, 6)
    other = Bar("SIM", "BBB", "1s", 1_700_000_041_000_000_000, 5.0, 5.0, 5.0, 5.0, 1.0, 5.0, 1)
    async with database.pool.acquire() as conn:
        cols = tick_columns([TickBatch.from_ticks(ticks)], ticks[:10], ids)  # the first ten twice in one batch
        assert await write_market_data(conn, cols, bar_columns([first, other, second], ids), NOW) == 50
        assert [(b[4], b[9]) for b in await stored_bars_of(conn)] == [(3.0, 6), (5.0, 1)]  # the last of a key
        assert await write_market_data(conn, cols, bar_columns([first], ids), NOW) == 0  # written again: replaced
        assert await write_market_data(conn, tick_columns([], [], ids), bar_columns([], ids), NOW) == 0
    assert len(await stored(database.pool)) == 50
    bars = await stored_bars(database.pool)
    assert [(b[0], b[1], b[4], b[9]) for b in bars] == [("AAA", "1m", 2.0, 3), ("BBB", "1s", 5.0, 1)]


async def test_the_row_based_writers_are_idempotent_too(database):
    keyed = await upsert_instruments(database.pool, INSTRUMENTS)
    ticks = [Tick("SIM", "BBB", 1_700_000_000_000_000_000 + i * 1000, f"r{i}", 10.0, 1.0, -1) for i in range(20)]
    bars = [Bar("X", "CCC", "1h", 1_700_002_800_000_000_000, 1.0, 2.0, 0.5, 1.5, 10.0, 1.2, 3)]
    async with database.pool.acquire() as conn:
        assert await write_ticks(conn, tick_rows(ticks, keyed, NOW)) == 20
        assert await write_ticks(conn, tick_rows(ticks + ticks[:1], keyed, NOW)) == 0
        assert await write_bars(conn, bar_rows(bars * 2, keyed)) == 1
        assert await write_bars(conn, []) == 0
    assert [(s, t) for s, t, *_ in await stored(database.pool)] == [("BBB", t.time_ns) for t in ticks]
    assert len(await stored_bars(database.pool)) == 1

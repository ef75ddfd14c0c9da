"""ReplayFeed: history from PostgreSQL or files, merged in time order, paced or as fast as possible."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from framework.clock import SimulatedClock, WallClock
from framework.errors import DataError, UnknownNameError
from framework.events import Bar, MarketEvent, Tick, ns_to_datetime
from framework.feeds import Feed, ReplayFeed
from framework.instruments import Instrument
from framework.storage.marketdata import bar_rows, tick_rows, upsert_instruments, write_bars, write_ticks

T0 = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z
MINUTE = 60_000_000_000
TickKey = tuple[str, int, str, float, float, int]


async def collect(feed: ReplayFeed) -> list[MarketEvent]:
    return [event async for event in feed.events()]


def key(t: MarketEvent) -> TickKey:
    assert isinstance(t, Tick)
    return (t.symbol, t.time_ns, t.trade_id, t.price, t.size, t.side)


def make_ticks(venue: str, symbols: list[str], per_symbol: int, seed: int = 0) -> list[Tick]:
    """Ticks on a microsecond grid, with equal times across symbols and within one symbol."""
    rng = np.random.default_rng(seed)
    ticks = []
    for symbol in symbols:
        offsets = np.sort(rng.integers(0, 2_000, per_symbol)) * 1_000_000  # ms steps: many ties
        for n, offset in enumerate(offsets.tolist(), start=1):
            price = round(float(rng.uniform(10, 20)), 2)
            side = int(rng.choice([-1, 0, 1]))
            ticks.append(Tick(venue, symbol, T0 + offset, f"{n:08d}", price, float(rng.integers(1, 9)), side))
    return ticks


def time_order(ticks: list[Tick]) -> list[TickKey]:
    return sorted((key(t) for t in ticks), key=lambda k: (k[1], k[0], k[2]))


async def store_ticks(pool, venue: str, ticks: list[Tick], symbols: list[str]) -> None:
    ids = await upsert_instruments(pool, [Instrument(s, venue=venue, qty_step=0.001) for s in symbols])
    async with pool.acquire() as conn:
        await write_ticks(conn, tick_rows(ticks, ids, datetime.now(UTC)))


@pytest.mark.db
async def test_ticks_replay_from_the_database_in_time_order_across_pages(database):
    symbols = ["CCC", "AAA", "BBB"]
    ticks = make_ticks("TEST", symbols, 400)
    await store_ticks(database.pool, "TEST", ticks, symbols)
    await upsert_instruments(database.pool, [Instrument("AAA", venue="OTHER")])  # same symbol elsewhere
    clock = SimulatedClock()
    feed = ReplayFeed.from_database(database.pool, "TEST", symbols, page_size=7, speed=None, clock=clock)
    assert isinstance(feed, Feed)
    events = await collect(feed)
    assert [key(e) for e in events] == time_order(ticks)
    assert {i.symbol for i in feed.instruments} == set(symbols)
    assert all(isinstance(e, Tick) and e.venue == "TEST" and e.recv_ns == e.time_ns for e in events)
    assert clock.now_ns() == max(t.time_ns for t in ticks)
    health = feed.health()
    assert (health.messages, health.last_message_ns, health.connected) == (1_200, clock.now_ns(), False)


@pytest.mark.db
async def test_closing_a_database_replay_midway_stops_it_and_frees_the_pool(database):
    ticks = make_ticks("TEST", ["AAA", "BBB"], 300, seed=3)
    await store_ticks(database.pool, "TEST", ticks, ["AAA", "BBB"])
    feed = ReplayFeed.from_database(database.pool, "TEST", ["AAA", "BBB"], page_size=7, speed=None)
    seen = 0
    async for _ in feed.events():
        seen += 1
        if seen == 50:
            await feed.close()
    assert (seen, feed.health().messages, feed.health().connected) == (50, 50, False)
    again = ReplayFeed.from_database(database.pool, "TEST", ["AAA"], page_size=7, speed=None)
    async for _ in again.events():
        break  # leaving the loop early also releases the pages being fetched
    for _ in range(20):
        await asyncio.sleep(0)
    async with database.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM ticks") == 600


@pytest.mark.db
async def test_database_replay_honours_start_and_end(database):
    ticks = make_ticks("TEST", ["AAA", "BBB"], 300, seed=1)
    await store_ticks(database.pool, "TEST", ticks, ["AAA", "BBB"])
    start, end = T0 + 500_000_000, T0 + 1_500_000_000
    feed = ReplayFeed.from_database(
        database.pool,
        "TEST",
        ["BBB"],
        start=ns_to_datetime(start),
        end=ns_to_datetime(end),
        page_size=10,
        speed=None,
    )
    expected = time_order([t for t in ticks if t.symbol == "BBB" and start <= t.time_ns < end])
    assert 0 < len(expected) < 300
    assert [key(e) for e in await collect(feed)] == expected


@pytest.mark.db
async def test_bars_replay_from_the_database_at_their_close_times(database):
    instruments = [Instrument(s, venue="TEST") for s in ("AAA", "BBB")]
    ids = await upsert_instruments(database.pool, instruments)
    bars = [
        Bar("TEST", s, "1m", T0 + i * MINUTE, 10.0 + i, 11.0 + i, 9.0 + i, 10.5 + i, 100.0 * i, 10.2 + i, i)
        for s in ("AAA", "BBB")
        for i in range(23)
        if not (s == "BBB" and i % 5 == 0)
    ]
    other = Bar("TEST", "AAA", "1h", T0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1)  # another timeframe: not replayed
    async with database.pool.acquire() as conn:
        await write_bars(conn, bar_rows([*bars, other], ids))
    clock = SimulatedClock()
    seen: list[tuple[Bar, int]] = []
    feed = ReplayFeed.from_database(
        database.pool, "TEST", ["BBB", "AAA"], kind="bars", timeframe="1m", page_size=5, speed=None, clock=clock
    )
    async for event in feed.events():
        assert isinstance(event, Bar)
        seen.append((event, clock.now_ns()))
    assert [b for b, _ in seen] == sorted(bars, key=lambda b: (b.open_ns, b.symbol))
    assert all(now == bar.open_ns + MINUTE for bar, now in seen)


@pytest.mark.db
async def test_unknown_symbols_are_refused_when_connecting(database):
    await upsert_instruments(database.pool, [Instrument("AAA", venue="TEST")])
    feed = ReplayFeed.from_database(database.pool, "TEST", ["AAA", "ZZZ"], speed=None)
    with pytest.raises(UnknownNameError, match="ZZZ"):
        await feed.connect()


def test_bars_need_a_timeframe():
    with pytest.raises(ValueError, match="timeframe"):
        ReplayFeed.from_files("x.csv", kind="bars")


async def test_ticks_replay_from_a_csv_with_several_symbols(tmp_path):
    frame = pd.DataFrame(
        {
            "time": ["2024-01-01T00:00:02Z", "2024-01-01T00:00:01Z", "2024-01-01T00:00:01Z", "2024-01-01T00:00:03Z"],
            "symbol": ["BBB", "BBB", "AAA", "AAA"],
            "price": [2.5, 2.0, 1.0, 1.5],
            "size": [1.0, 2.0, 3.0, 4.0],
            "side": ["sell", "buy", "buy", ""],
        }
    )
    path = tmp_path / "ticks.csv"
    frame.to_csv(path, index=False)
    clock = SimulatedClock()
    feed = ReplayFeed.from_files(path, venue="CSV", speed=None, clock=clock)
    events = await collect(feed)
    second = 1_000_000_000
    assert [key(e) for e in events] == [
        ("AAA", T0 + second, "000000000001", 1.0, 3.0, 1),
        ("BBB", T0 + second, "000000000001", 2.0, 2.0, 1),
        ("BBB", T0 + 2 * second, "000000000002", 2.5, 1.0, -1),
        ("AAA", T0 + 3 * second, "000000000002", 1.5, 4.0, 0),
    ]
    assert {(i.symbol, i.venue) for i in feed.instruments} == {("AAA", "CSV"), ("BBB", "CSV")}
    assert clock.now_ns() == T0 + 3 * second


async def test_ticks_from_parquet_files_merge_in_time_order(tmp_path):
    ticks = make_ticks("SIM", ["AAA", "BBB"], 200, seed=2)
    for symbol in ("AAA", "BBB"):
        mine = [t for t in ticks if t.symbol == symbol]
        pd.DataFrame(
            {
                "timestamp": [t.time_ns // 1_000_000 for t in mine],  # milliseconds, the exchange convention
                "price": [t.price for t in mine],
                "amount": [t.size for t in mine],
                "side": [t.side for t in mine],
                "trade_id": [t.trade_id for t in mine],
            }
        ).to_parquet(tmp_path / f"{symbol.lower()}.parquet")
    feed = ReplayFeed.from_files(
        [tmp_path / "bbb.parquet", tmp_path / "aaa.parquet"],
        instruments=[Instrument("AAA", tick_size=0.01, venue="SIM")],
        speed=None,
    )
    assert [key(e) for e in await collect(feed)] == time_order(ticks)
    assert feed.instruments[0].tick_size == 0.01


async def test_bars_replay_from_a_csv_file(tmp_path):
    index = pd.date_range("2024-01-01", periods=5, freq="1min", tz="UTC")
    frame = pd.DataFrame(
        {"open": [1.0, 2, 3, 4, 5], "high": [2.0, 3, 4, 5, 6], "low": [0.5, 1, 2, 3, 4], "close": [1.5, 2, 3, 4, 5]},
        index=pd.Index(index, name="open_time"),
    )
    frame["volume"] = 10.0
    path = tmp_path / "eth.csv"
    frame.to_csv(path)
    clock = SimulatedClock()
    feed = ReplayFeed.from_files(path, kind="bars", timeframe="1m", speed=None, clock=clock)
    bars = await collect(feed)
    assert all(isinstance(b, Bar) for b in bars)
    first = bars[0]
    assert isinstance(first, Bar)
    assert (first.symbol, first.timeframe, first.open_ns, first.open, first.close, first.volume, first.trades) == (
        "ETH",
        "1m",
        T0,
        1.0,
        1.5,
        10.0,
        0,
    )
    assert math.isnan(first.vwap)
    assert clock.now_ns() == T0 + 5 * MINUTE


async def test_bad_tick_files_are_refused(tmp_path):
    path = tmp_path / "bad.csv"
    pd.DataFrame({"time": ["2024-01-01"], "price": [1.0]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="price and size"):
        await ReplayFeed.from_files(path, speed=None).connect()
    pd.DataFrame({"time": ["2024-01-01"], "price": [1.0], "size": [1.0], "side": ["up"]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="side"):
        await ReplayFeed.from_files(path, speed=None).connect()


def ten_seconds_of_ticks(tmp_path) -> str:
    path = tmp_path / "ten.csv"
    times = [T0 // 1_000_000 + 1_000 * i for i in range(11)]  # 0..10 s, in milliseconds
    pd.DataFrame({"time": times, "price": 1.0, "size": 1.0}).to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize(("speed", "paced_ns"), [(1.0, 10_000_000_000), (10.0, 1_000_000_000), (None, 0)])
async def test_speed_scales_the_pacing_while_the_simulated_clock_follows_the_history(tmp_path, speed, paced_ns):
    clock, pacer = SimulatedClock(), SimulatedClock(5)
    feed = ReplayFeed.from_files(ten_seconds_of_ticks(tmp_path), symbol="X", speed=speed, clock=clock, pacer=pacer)
    seen = []
    async for event in feed.events():
        assert isinstance(event, Tick)
        seen.append((event.time_ns, clock.now_ns(), pacer.now_ns() - 5))
    assert [(t, now) for t, now, _ in seen] == [(T0 + i * 1_000_000_000, T0 + i * 1_000_000_000) for i in range(11)]
    assert [p for *_, p in seen] == [i * paced_ns // 10 for i in range(11)]


async def test_speed_on_a_plain_clock_paces_on_that_clock(tmp_path):
    clock = SimulatedClock(T0)
    feed = ReplayFeed.from_files(ten_seconds_of_ticks(tmp_path), speed=4.0, clock=WallClock(), pacer=clock)
    events = await collect(feed)
    assert len(events) == 11
    assert clock.now_ns() == T0 + 2_500_000_000


async def test_close_wakes_a_replay_waiting_for_its_next_event(tmp_path):
    path = tmp_path / "gap.csv"
    pd.DataFrame({"time": ["2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z"], "price": 1.0, "size": 1.0}).to_csv(
        path, index=False
    )
    feed = ReplayFeed.from_files(path, speed=1.0, clock=WallClock())  # the second tick is an hour away
    received: list[MarketEvent] = []

    async def consume() -> None:
        async for event in feed.events():
            received.append(event)

    consumer = asyncio.ensure_future(consume())
    while not received:
        await asyncio.sleep(0.01)
    await feed.close()
    await asyncio.wait_for(consumer, timeout=10)
    assert len(received) == 1
    assert not feed.health().connected

"""SyntheticFeed: reproducible, realistic on the tick grid, paced on its clock, stoppable."""

from __future__ import annotations

import asyncio
import math
import time

import numpy as np
import pytest

from framework.clock import SimulatedClock, WallClock
from framework.events import Tick
from framework.feeds import Feed, SyntheticFeed
from framework.feeds.synthetic import MALFORMED_KINDS

START = 1_700_000_000_000_000_000


async def take(feed: SyntheticFeed, n: int | None = None) -> list[Tick]:
    out: list[Tick] = []
    async for event in feed.events():
        assert isinstance(event, Tick)
        out.append(event)
        if n is not None and len(out) >= n:
            break
    return out


def content(ticks: list[Tick]) -> list[tuple[str, float, float, int, str]]:
    return [(t.symbol, t.price, t.size, t.side, t.trade_id) for t in ticks]


async def test_same_seed_gives_the_same_trades_whatever_the_rate_and_clock():
    fast = await take(SyntheticFeed(seed=42, rate=None), 10_000)
    paced = await take(SyntheticFeed(seed=42, rate=500, clock=SimulatedClock(START), limit=10_000))
    other = await take(SyntheticFeed(seed=43, rate=None), 10_000)
    assert len(fast) == len(paced) == 10_000
    assert content(fast) == content(paced)
    assert content(fast) != content(other)
    assert len({t.symbol for t in fast}) > 400  # most of the 500 instruments trade


async def test_instruments_have_their_own_tick_size_qty_step_and_volatility():
    feed = SyntheticFeed(n_instruments=500, seed=1)
    instruments = feed.instruments
    assert [i.symbol for i in instruments[:3]] == ["SYN000", "SYN001", "SYN002"]
    assert instruments[-1].symbol == "SYN499"
    assert {i.venue for i in instruments} == {"SIM"}
    assert len({i.tick_size for i in instruments}) > 1
    assert len({i.qty_step for i in instruments}) > 1
    assert len(set(feed.volatilities.round(12))) == 500
    for inst, price in zip(instruments, feed.start_prices, strict=True):
        assert price / inst.tick_size >= 10_000 - 1e-6


async def test_prices_and_sizes_are_positive_and_on_the_grid():
    feed = SyntheticFeed(n_instruments=50, seed=3, rate=None, limit=50_000, volatility=(1e-3, 5e-3))
    by_symbol = {i.symbol: i for i in feed.instruments}
    ticks = await take(feed)
    assert len(ticks) == 50_000
    for t in ticks:
        inst = by_symbol[t.symbol]
        assert t.price > 0
        assert t.size > 0
        assert t.side in (1, -1)
        assert inst.round_price(t.price) == t.price
        steps = t.size / inst.qty_step
        assert abs(steps - round(steps)) < 1e-6
        assert round(steps) >= 1


async def test_cheap_instruments_never_trade_at_or_below_zero():
    feed = SyntheticFeed(n_instruments=3, seed=5, rate=None, limit=30_000, volatility=0.05, price_range=(0.5, 1.0))
    ticks = await take(feed)
    ticks_by_symbol = {i.symbol: i.tick_size for i in feed.instruments}
    assert min(t.price / ticks_by_symbol[t.symbol] for t in ticks) >= 1 - 1e-9


async def test_trade_ids_increase_per_instrument_and_sort_as_text():
    ticks = await take(SyntheticFeed(n_instruments=20, seed=9, rate=None, limit=20_000))
    last: dict[str, str] = {}
    for t in ticks:
        if t.symbol in last:
            assert t.trade_id > last[t.symbol]
            assert int(t.trade_id) == int(last[t.symbol]) + 1
        else:
            assert int(t.trade_id) == 1
        last[t.symbol] = t.trade_id


async def test_per_trade_volatility_matches_the_configuration_without_jumps():
    feed = SyntheticFeed(n_instruments=5, seed=11, rate=None, limit=100_000, volatility=(1e-3, 4e-3), jump_rate=0.0)
    ticks = await take(feed)
    for index, inst in enumerate(feed.instruments):
        prices = np.array([t.price for t in ticks if t.symbol == inst.symbol])
        returns = np.diff(np.log(prices))
        assert len(returns) > 2_000
        assert np.std(returns) == pytest.approx(feed.volatilities[index], rel=0.1)
        assert abs(np.mean(returns)) < 4 * feed.volatilities[index] / math.sqrt(len(returns))


async def test_jumps_fatten_the_tails_of_returns():
    def kurtosis(ticks: list[Tick]) -> float:
        prices = np.array([t.price for t in ticks if t.symbol == "SYN000"])
        r = np.diff(np.log(prices))
        r = r - r.mean()
        return float(np.mean(r**4) / np.mean(r**2) ** 2)

    def feed(jump_rate: float) -> SyntheticFeed:
        return SyntheticFeed(1, None, 2, limit=50_000, volatility=1e-3, jump_rate=jump_rate, jump_scale=0.01)

    calm = kurtosis(await take(feed(0.0)))
    jumpy = kurtosis(await take(feed(0.01)))
    assert calm == pytest.approx(3.0, abs=0.3)
    assert jumpy > 10


async def test_rate_is_paced_on_a_simulated_clock():
    clock = SimulatedClock(START)
    feed = SyntheticFeed(rate=500, seed=1, clock=clock, limit=1_000)
    ticks = await take(feed)
    assert len(ticks) == 1_000
    assert clock.now_ns() - START == 2_000_000_000
    assert [t.time_ns - START for t in ticks] == [2_000_000 * (i + 1) for i in range(1_000)]
    assert all(t.recv_ns == t.time_ns for t in ticks)


async def test_high_rates_emit_in_batches_but_stamp_exact_due_times():
    clock = SimulatedClock(START)
    ticks = await take(SyntheticFeed(rate=50_000, seed=1, clock=clock, duration=0.2))
    assert len(ticks) == 10_000
    assert [t.time_ns - START for t in ticks] == [20_000 * (i + 1) for i in range(10_000)]
    assert all(0 <= t.recv_ns - t.time_ns < 2_000_000 for t in ticks)
    assert clock.now_ns() - START == 200_000_000


async def test_duration_without_rate_stops_on_the_clock():
    clock = SimulatedClock(START)
    feed = SyntheticFeed(rate=None, clock=clock, duration=1.0)
    consumer = asyncio.ensure_future(take(feed))
    await asyncio.sleep(0)
    clock.advance_to(START + 1_000_000_000)
    ticks = await asyncio.wait_for(consumer, timeout=30)
    assert ticks
    assert all(t.time_ns == START for t in ticks)


async def test_close_wakes_a_feed_waiting_for_its_next_trade():
    feed = SyntheticFeed(rate=0.001, seed=1, clock=WallClock())  # next trade due in 1,000 s
    consumer = asyncio.ensure_future(take(feed))
    await asyncio.sleep(0.05)
    assert feed.health().connected
    await feed.close()
    assert await asyncio.wait_for(consumer, timeout=10) == []
    assert not feed.health().connected


async def test_close_from_the_consumer_ends_the_stream_at_once():
    feed = SyntheticFeed(rate=None, seed=1)
    seen = 0
    async for _ in feed.events():
        seen += 1
        if seen == 100:
            await feed.close()
    assert seen == 100
    assert feed.health().messages == 100


async def test_feed_follows_the_protocol_and_reports_health():
    clock = SimulatedClock(START)
    feed = SyntheticFeed(n_instruments=10, rate=1_000, clock=clock, limit=250, name="dev")
    assert isinstance(feed, Feed)
    assert feed.health().connected is False
    assert feed.health().last_message_ns is None
    await feed.connect()
    assert feed.health().connected
    ticks = await take(feed)
    health = feed.health()
    assert (health.name, health.messages, health.last_message_ns) == ("dev", 250, ticks[-1].recv_ns)
    assert health.stale == frozenset()


async def test_injected_bad_ticks_leave_the_good_sequence_untouched():
    def feed(malformed: float) -> SyntheticFeed:
        return SyntheticFeed(20, 1_000, 4, clock=SimulatedClock(START), limit=20_000, malformed=malformed)

    clean = await take(feed(0.0))
    dirty_feed = feed(0.05)
    dirty = await take(dirty_feed)
    known = {i.symbol for i in dirty_feed.instruments}
    seen: set[tuple[str, str]] = set()
    good, rejected = [], 0
    for t in dirty:
        key = (t.symbol, t.trade_id)
        ok = (
            math.isfinite(t.price)
            and math.isfinite(t.size)
            and t.price > 0
            and t.size > 0
            and t.symbol in known
            and t.trade_id != ""
            and t.time_ns <= t.recv_ns
            and key not in seen
        )
        if ok:
            seen.add(key)
            good.append(t)
        else:
            rejected += 1
    strip = [(t.symbol, t.time_ns, t.trade_id, t.price, t.size, t.side) for t in clean]
    assert [(t.symbol, t.time_ns, t.trade_id, t.price, t.size, t.side) for t in good] == strip
    assert rejected == sum(dirty_feed.malformed_counts.values()) == len(dirty) - len(clean)
    assert set(dirty_feed.malformed_counts) == set(MALFORMED_KINDS)
    assert all(count > 0 for count in dirty_feed.malformed_counts.values())
    assert 0.04 < rejected / len(clean) < 0.06
    assert dirty_feed.emitted == len(clean)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="rate"):
        SyntheticFeed(rate=-1)
    with pytest.raises(ValueError, match="malformed_kinds"):
        SyntheticFeed(malformed=0.1, malformed_kinds=["nan_price", "gremlins"])
    with pytest.raises(ValueError, match="volatility"):
        SyntheticFeed(volatility=(0.01, 0.001))
    with pytest.raises(ValueError, match="n_instruments"):
        SyntheticFeed(n_instruments=0)


async def test_generation_rate_as_fast_as_possible_is_measured(record_property):
    """Measure, never assert, how many trades a second the feed generates flat out."""
    feed = SyntheticFeed(rate=None, seed=0, limit=100_000)
    began = time.perf_counter()
    count = len(await take(feed))
    rate = count / (time.perf_counter() - began)
    record_property("synthetic_ticks_per_second", round(rate))
    print(f"\nSyntheticFeed as fast as possible: {rate:,.0f} ticks/s")

"""Shared helpers of the ingestion tests: hand-made ticks, small feeds, a reference aggregation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime

import asyncpg

from framework.clock import SimulatedClock
from framework.events import Bar, MarketEvent, Tick, TickBatch, datetime_to_ns
from framework.feeds.base import BatchFeed, Feed, FeedHealth
from framework.instruments import Instrument
from framework.timeframes import timeframe_ns

BASE = datetime_to_ns(datetime(2024, 1, 1, tzinfo=UTC))
SECOND = 1_000_000_000
INSTRUMENTS = [Instrument("AAA", venue="SIM"), Instrument("BBB", venue="SIM")]


def tick(seconds: float, price: float, size: float = 1.0, symbol: str = "AAA", trade_id: str | None = None) -> Tick:
    """Return a trade `seconds` after BASE (whole microseconds, as the database stores them)."""
    time_ns = BASE + round(seconds * 1_000_000) * 1000
    return Tick("SIM", symbol, time_ns, trade_id or f"{symbol}-{time_ns}", price, size, 1)


class ScriptFeed:
    """A feed replaying a list (or an async generator) of events, advancing a simulated clock."""

    name = "script"

    def __init__(
        self,
        script: Iterable[object] | Callable[[], AsyncIterator[object]],
        instruments: list[Instrument] = INSTRUMENTS,
        clock: SimulatedClock | None = None,
    ) -> None:
        self._script = script
        self._instruments = instruments
        self._clock = clock
        self.connected = False
        self.closed = False

    @property
    def instruments(self) -> list[Instrument]:
        return self._instruments

    async def connect(self) -> None:
        self.connected = True

    async def events(self) -> AsyncIterator[MarketEvent]:
        source = self._script() if callable(self._script) else _iterate(self._script)
        async for event in source:
            if self.closed:
                return
            if self._clock is not None and isinstance(event, Tick) and isinstance(event.time_ns, int):
                self._clock.advance_to(event.time_ns)
            yield event  # type: ignore[misc]

    async def close(self) -> None:
        self.closed = True

    def health(self) -> FeedHealth:
        return FeedHealth(self.name, self.connected and not self.closed, None)


async def _iterate(events: Iterable[object]) -> AsyncIterator[object]:
    for event in events:
        yield event


class GatedFeed:
    """Wrap a feed and hold its stream before event number k until `gates[k]` is set."""

    def __init__(self, inner: Feed, gates: dict[int, asyncio.Event]) -> None:
        self.inner = inner
        self.name = inner.name
        self.gates = gates
        self.waiting_at: int | None = None

    @property
    def instruments(self) -> list[Instrument]:
        return self.inner.instruments

    async def connect(self) -> None:
        await self.inner.connect()

    async def events(self) -> AsyncIterator[MarketEvent]:
        count = 0
        async for event in self.inner.events():
            gate = self.gates.get(count)
            if gate is not None:
                self.waiting_at = count
                await gate.wait()
                self.waiting_at = None
            count += 1
            yield event

    async def close(self) -> None:
        await self.inner.close()

    def health(self) -> FeedHealth:
        return self.inner.health()


class GatedBatchFeed(GatedFeed):
    """A `GatedFeed` that also hands over its inner feed's batches, held before the batch holding event k."""

    def __init__(self, inner: BatchFeed, gates: dict[int, asyncio.Event]) -> None:
        super().__init__(inner, gates)
        self.batch_inner = inner

    async def batches(self) -> AsyncIterator[TickBatch | MarketEvent]:
        count = 0
        async for batch in self.batch_inner.batches():
            size = len(batch) if isinstance(batch, TickBatch) else 1
            for k in sorted(self.gates):
                if count <= k < count + size:
                    self.waiting_at = k
                    await self.gates[k].wait()
                    self.waiting_at = None
            count += size
            yield batch


async def until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Wait (polling) until `condition()` holds; fail instead of hanging forever."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


BarKey = tuple[str, str, int]


def reference_bars(ticks: Iterable[Tick], timeframe: str) -> dict[BarKey, tuple[float, ...]]:
    """Aggregate `ticks` (in order) the plain way: group by instrument and period."""
    length = timeframe_ns(timeframe)
    groups: dict[BarKey, list[Tick]] = {}
    for t in ticks:
        groups.setdefault((t.symbol, timeframe, t.time_ns - t.time_ns % length), []).append(t)
    out = {}
    for key, group in groups.items():
        prices = [t.price for t in group]
        volume = sum(t.size for t in group)
        vwap = sum(t.price * t.size for t in group) / volume
        out[key] = (prices[0], max(prices), min(prices), prices[-1], volume, vwap, len(group))
    return out


def bar_values(bars: Iterable[Bar]) -> dict[BarKey, tuple[float, ...]]:
    """Key bars like `reference_bars` does (failing on a bar emitted twice)."""
    out: dict[BarKey, tuple[float, ...]] = {}
    for b in bars:
        key = (b.symbol, b.timeframe, b.open_ns)
        assert key not in out, f"bar emitted twice: {key}"
        out[key] = (b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trades)
    return out


def assert_same_bars(got: dict[BarKey, tuple[float, ...]], want: dict[BarKey, tuple[float, ...]]) -> None:
    """Compare bars exactly on OHLC and trade count, to rounding on the summed volume and vwap."""
    assert got.keys() == want.keys()
    for key, (o, h, low, c, v, vwap, n) in want.items():
        g = got[key]
        assert g[:4] == (o, h, low, c), key
        assert g[6] == n, key
        assert abs(g[4] - v) <= 1e-9 * v, key
        assert abs(g[5] - vwap) <= 1e-9 * vwap, key


async def stored_ticks(pool: asyncpg.Pool) -> list[tuple[str, int, str, float, float, int]]:
    """Return every stored tick as (symbol, time_ns, trade_id, price, size, side), sorted."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT i.symbol, t.time, t.trade_id, t.price, t.size, t.side FROM ticks t "
            "JOIN instruments i ON i.id = t.instrument_id"
        )
    return sorted((r[0], datetime_to_ns(r[1]), r[2], r[3], r[4], r[5]) for r in rows)


async def stored_bars(pool: asyncpg.Pool) -> dict[BarKey, tuple[float, ...]]:
    """Return every stored bar keyed like `reference_bars`."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT i.symbol, b.timeframe, b.open_time, b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trades "
            "FROM bars b JOIN instruments i ON i.id = b.instrument_id"
        )
    return {(r[0], r[1], datetime_to_ns(r[2])): tuple(r[3:]) for r in rows}


def tick_key(t: Tick) -> tuple[str, int, str, float, float, int]:
    return (t.symbol, t.time_ns, t.trade_id, t.price, t.size, t.side)

"""Run ingestion: a feed's events, validated, aggregated into bars and written to PostgreSQL.

    feed -> Normaliser -> BarAggregator -> BatchWriter (-> Spool while the database is away)

Everything runs on the event loop of the caller: the feed is consumed by `run`, the writer has
its own task, and a timer closes the bars of instruments that went quiet. A feed that can hand
over its trades as columns (`BatchFeed.batches`, yielding `TickBatch`es) is read that way: each
stage then works on a whole batch at a time instead of one `Tick` object per trade.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import asyncpg

from framework.clock import Clock, WallClock
from framework.events import Bar, Tick, TickBatch
from framework.feeds.base import BatchFeed, Feed
from framework.ingest.aggregate import DEFAULT_TIMEFRAMES, BarAggregator
from framework.ingest.latency import LatencySnapshot, LatencySummary
from framework.ingest.link import DATABASE_DOWN, PoolFactory
from framework.ingest.normalise import Normaliser
from framework.ingest.spool import Spool
from framework.ingest.writer import BatchWriter, CommittedTicks
from framework.instruments import Instrument
from framework.storage.marketdata import upsert_instruments

__all__ = ["IngestPipeline", "IngestStats"]

log = logging.getLogger(__name__)

_SECOND = 1_000_000_000
_YIELD_EVERY = 512
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class IngestStats:
    """Counters of one pipeline: events in, accepted, rejected by reason, rows out, spool, latency."""

    received: int
    accepted: int
    rejected: dict[str, int]
    late_ticks: int
    bars_emitted: int
    ticks_written: int
    ticks_duplicate: int
    bars_written: int
    spooled_batches: int
    spooled_ticks: int
    spool_pending: int
    outages: int
    db_online: bool
    queue_depth: int
    tick_latency: LatencySummary
    batch_latency: LatencySummary


class IngestPipeline:
    """Ingest one feed into PostgreSQL until the feed ends or `stop` is called.

    `database` is an open asyncpg pool, or a factory making one (the pipeline then owns the pool
    and can replace it after an outage). `instruments` default to the feed's; they are upserted
    first to get their ids (retrying while the database is unreachable). Bars of `timeframes` are
    built from the accepted ticks; bars a feed sends itself are validated and stored as they are.

    Quiet instruments: every `bar_timer_ms` (of wall time) the bars whose period ended more than
    `bar_close_delay_ns` before `clock.now_ns()` are closed, so a tick that arrives a little late
    still finds its bar open. When the feed ends on its own (a replay) every open bar is closed;
    after `stop` only the bars whose period is over are, since the others are incomplete.

    `on_bars(bars)` is called with every group of bars as they close (a quick, synchronous hand-off:
    the live runner queues them for its strategy engine, so deciding never slows ingestion).
    `on_ticks(committed)` is called after each commit with its trades and their tick-to-commit
    latencies (`CommittedTicks`; the runner streams them to WebSocket clients and to its metrics).
    `on_opens(symbols)` is called after each batch of trades with the symbols whose (shortest) bar
    opened in it: the runner's paper venue fills the market orders that waited for that open.

    While the database is unreachable, batches go to `spool` (a `Spool` or its directory) and are
    written, oldest first, when it is back: ingestion never stops for the database.

    Warning: bars are built in memory from the ticks this pipeline saw. After a restart in the
    middle of a period, that period's bars hold only the ticks received since the restart (the
    ticks themselves are all stored; rebuild such bars from them if they matter).

    Example::

        feed = SyntheticFeed(n_instruments=50, rate=5_000)
        async with open_database(settings) as db:
            pipeline = IngestPipeline(feed, db.pool, spool=settings.spool_dir)
            running = asyncio.create_task(pipeline.run())
            await asyncio.sleep(10)
            await pipeline.stop()
            await running
        print(pipeline.stats().tick_latency.p99_ms)

    `latency(reset=True)` reads the writer's latencies and starts a new window (e.g. to leave a
    warm-up out of a measurement, or to report the last minute's percentiles).
    """

    def __init__(
        self,
        feed: Feed,
        database: asyncpg.Pool | PoolFactory,
        instruments: Iterable[Instrument] | None = None,
        clock: Clock | None = None,
        timeframes: Iterable[str] = DEFAULT_TIMEFRAMES,
        *,
        spool: Spool | Path | str = Path(".rata/spool"),
        batch_size: int = 5000,
        flush_ms: float = 5.0,
        queue_size: int = 100_000,
        max_in_flight: int = 2,
        max_future_ns: int = 5 * _SECOND,
        reorder_tolerance_ns: int = 2 * _SECOND,
        bar_close_delay_ns: int = 2 * _SECOND,
        bar_timer_ms: float = 100.0,
        backoff_s: tuple[float, float] = (0.05, 2.0),
        on_bars: Callable[[list[Bar]], None] | None = None,
        on_ticks: Callable[[CommittedTicks], None] | None = None,
        on_opens: Callable[[list[str]], object] | None = None,
    ) -> None:
        self._feed = feed
        self._on_bars = on_bars
        self._on_ticks = on_ticks
        self._on_opens = on_opens
        if isinstance(database, asyncpg.Pool):
            self._pool: asyncpg.Pool | None = database
            self._connect: PoolFactory | None = None
        else:
            self._pool, self._connect = None, database
        self._instruments_from_feed = instruments is None
        self._instruments = list(feed.instruments if instruments is None else instruments)
        self._clock = clock or WallClock()
        self._normaliser = Normaliser(
            {(i.venue, i.symbol) for i in self._instruments},
            self._clock,
            max_future_ns=max_future_ns,
            reorder_tolerance_ns=reorder_tolerance_ns,
        )
        self._aggregator = BarAggregator(timeframes)
        self._spool = spool if isinstance(spool, Spool) else Spool(spool)
        self._batch_size = batch_size
        self._flush_ms = flush_ms
        self._queue_size = queue_size
        self._max_in_flight = max_in_flight
        self._backoff_s = backoff_s
        self._close_delay_ns = bar_close_delay_ns
        self._bar_timer_s = bar_timer_ms / 1000.0
        self._writer: BatchWriter | None = None
        self._stopping = False
        self._feed_closed = False

    @property
    def normaliser(self) -> Normaliser:
        """Return the validation stage (its `rejected` counter in particular)."""
        return self._normaliser

    @property
    def aggregator(self) -> BarAggregator:
        """Return the bar aggregation stage."""
        return self._aggregator

    async def run(self) -> None:
        """Connect the feed and ingest until it ends or `stop` is called; write or spool everything."""
        await self._feed.connect()
        if self._instruments_from_feed:
            # Exchange feeds learn their instruments (tick size, quantity step) when they connect.
            self._instruments = list(self._feed.instruments)
            self._normaliser.add_instruments((i.venue, i.symbol) for i in self._instruments)
        writer: BatchWriter | None = None
        try:
            try:
                pool = await self._retry("open the database pool", self._open_pool)
                ids = await self._retry("register the instruments", lambda: upsert_instruments(pool, self._instruments))
            except _Stopped:
                return
            writer = self._writer = BatchWriter(
                pool,
                ids,
                self._spool,
                connect=self._connect,
                clock=self._clock,
                backoff_s=self._backoff_s,
                batch_size=self._batch_size,
                flush_ms=self._flush_ms,
                queue_size=self._queue_size,
                max_in_flight=self._max_in_flight,
                on_ticks=self._on_ticks,
            )
            await writer.start()
            timer = asyncio.create_task(self._bar_timer(writer), name="rata-bar-timer")
            try:
                ended = await self._consume(writer)
            finally:
                await _cancel(timer)
            if ended:
                closing = self._aggregator.flush_all()
            else:
                closing = self._aggregator.flush(self._clock.now_ns() - self._close_delay_ns)
            for bar in closing:
                await writer.put(bar)
            if closing and self._on_bars is not None:
                self._on_bars(closing)
        finally:
            try:
                if writer is not None:
                    await writer.close()
            finally:
                if not self._feed_closed:
                    self._feed_closed = True
                    await self._feed.close()

    async def stop(self) -> None:
        """Close the feed; `run` writes what it has and returns."""
        self._stopping = True
        if not self._feed_closed:
            self._feed_closed = True
            await self._feed.close()

    def latency(self, *, reset: bool = False) -> LatencySnapshot:
        """Return the tick-to-commit and per-commit latencies so far; with `reset`, start a new window."""
        if self._writer is None:
            empty = LatencySummary(0, None, None, None, None, None)
            return LatencySnapshot(tick=empty, batch=empty)
        return self._writer.latency(reset=reset)

    def reset_latency(self) -> None:
        """Forget the latencies recorded so far (start a new measurement window)."""
        self.latency(reset=True)

    def stats(self) -> IngestStats:
        """Return the pipeline's counters (cheap; safe to call while it runs)."""
        normaliser, aggregator = self._normaliser, self._aggregator
        empty = LatencySummary(0, None, None, None, None, None)
        w = self._writer.stats() if self._writer is not None else None
        return IngestStats(
            received=normaliser.received,
            accepted=normaliser.accepted,
            rejected=dict(normaliser.rejected),
            late_ticks=aggregator.late_ticks,
            bars_emitted=aggregator.bars_emitted,
            ticks_written=w.ticks_written if w else 0,
            ticks_duplicate=w.ticks_duplicate if w else 0,
            bars_written=w.bars_written if w else 0,
            spooled_batches=w.spooled_batches if w else 0,
            spooled_ticks=w.spooled_ticks if w else 0,
            spool_pending=w.spool_pending if w else self._spool.pending(),
            outages=w.outages if w else 0,
            db_online=w.online if w else False,
            queue_depth=w.queue_depth if w else 0,
            tick_latency=w.tick_latency if w else empty,
            batch_latency=w.batch_latency if w else empty,
        )

    async def _consume(self, writer: BatchWriter) -> bool:
        check, check_batch = self._normaliser.check, self._normaliser.check_batch
        on_tick, on_batch = self._aggregator.on_tick, self._aggregator.on_batch
        on_opens, opened = self._on_opens, None
        if on_opens is not None:
            opened = self._aggregator.opened = []
        offer = writer.offer
        feed = self._feed
        source = feed.batches() if isinstance(feed, BatchFeed) else feed.events()
        seen = 0
        async for event in source:
            if type(event) is TickBatch:
                batch = check_batch(event)
                if batch is not None:
                    if not offer(batch):
                        await writer.put(batch)
                    closed = on_batch(batch)
                    for bar in closed:
                        if not offer(bar):
                            await writer.put(bar)
                    if closed and self._on_bars is not None:
                        self._on_bars(closed)
                    if opened and on_opens is not None:
                        on_opens(opened[:])
                        opened.clear()
                seen += len(event)
            else:
                accepted = check(event)
                if accepted is not None:
                    if not offer(accepted):
                        await writer.put(accepted)
                    if isinstance(accepted, Tick):
                        closed = on_tick(accepted)
                        for bar in closed:
                            if not offer(bar):
                                await writer.put(bar)
                        if closed and self._on_bars is not None:
                            self._on_bars(closed)
                        if opened and on_opens is not None:
                            on_opens(opened[:])
                            opened.clear()
                seen += 1
            if self._stopping:
                return False
            if seen >= _YIELD_EVERY:
                seen = 0
                await asyncio.sleep(0)
        return not self._stopping

    async def _bar_timer(self, writer: BatchWriter) -> None:
        while True:
            await asyncio.sleep(self._bar_timer_s)
            closed = self._aggregator.flush(self._clock.now_ns() - self._close_delay_ns)
            for bar in closed:
                await writer.put(bar)
            if closed and self._on_bars is not None:
                self._on_bars(closed)

    async def _open_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            assert self._connect is not None
            self._pool = await self._connect()
        return self._pool

    async def _retry(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        delay, longest = self._backoff_s
        while True:
            try:
                return await attempt()
            except DATABASE_DOWN as exc:
                if self._stopping:
                    raise _Stopped from exc
                log.warning("cannot %s yet (%s: %s); retrying in %.2fs", what, type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, longest)


class _Stopped(Exception):
    """`stop` was called before the pipeline could reach the database."""


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait for it, without swallowing a cancellation of the caller."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise

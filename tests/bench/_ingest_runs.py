"""The ingestion benchmark's runs: a feed into `IngestPipeline` and a fresh PostgreSQL, measured.

One run = one fresh database, one feed, one `IngestPipeline` with its defaults (batch 5,000,
flush 5 ms, two commits in flight, every timeframe 1s..1d), on this process's default asyncio
loop (as `rata ingest` runs it). After a warm-up the writer's latency histograms are cleared
and a window of `seconds` is measured: what the source offered and what was committed, the
writer's send-to-commit latency percentiles, the backlog (offered - committed: every queue
between the source and PostgreSQL, the sockets included) sampled twice a second, and the CPU of
this process, the server process, PostgreSQL (postmaster and backends) and everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from framework.events import TickBatch
from framework.feeds.ccxt_feed import CcxtFeed
from framework.feeds.synthetic import SyntheticFeed
from framework.feeds.venues.binance import BinanceVenue
from framework.ingest import IngestPipeline, LatencyHistogram, LatencySummary
from framework.ingest.loop import settle_gc
from framework.storage import apply_migrations, connect_dsn
from tests.bench._binance_pacer import SENT_FIELD, PacerProcess
from tests.bench._ingest_probes import Cpu, WaitSampler, drop_database, fresh_database

__all__ = [
    "DISTURBED_PCT",
    "GROWTH_LIMIT_S",
    "KEEP_UP_RATIO",
    "RunResult",
    "SentNsVenue",
    "run_ccxt_client",
    "run_pipeline",
]

SAMPLE_S = 0.5
DRAIN_IDLE_S = 5.0
DRAIN_MAX_S = 30.0
KEEP_UP_RATIO = 0.98
GROWTH_LIMIT_S = 0.2  # backlog may grow by at most this many seconds of offered ticks over the window
DISTURBED_PCT = 30.0  # other processes' CPU, in % of one core, above which a run counts as disturbed


class SentNsVenue(BinanceVenue):
    """Binance, but the send time is the bench server's nanosecond stamp `sentNs` in each aggTrade event.

    Binance's own `E` (what `BinanceVenue.event_sent_ns` reads) is whole milliseconds; truncating it
    would add 0 to 1 ms to every latency measured from it. Both the direct stream and ccxt's
    `watch_trades` (whose trades carry the raw event in `info`) go through `event_sent_ns`.
    """

    def event_sent_ns(self, event: Mapping[str, Any]) -> int:
        stamp = event.get(SENT_FIELD)
        return stamp if type(stamp) is int else super().event_sent_ns(event)


# ---------------------------------------------------------------- results


@dataclass
class RunResult:
    """What one measured window showed."""

    name: str
    feed: str
    target_rate: float | None
    seconds: float
    offered: int
    committed: int
    latency: LatencySummary
    cpu: dict[str, float]
    backlog_start: float
    backlog_end: float
    backlog_slope: float
    max_writer_queue: int
    total_offered: int = 0
    total_committed: int = 0
    drain_s: float = 0.0
    rejected: int = 0
    bars_written: int = 0
    batches_note: str = ""
    feed_notes: str = ""
    server_buffer: int = 0
    attempts: int = 1
    profile: Any = None
    busiest_others: list[str] = field(default_factory=list)
    pg_waits: Counter[str] = field(default_factory=Counter)

    @property
    def offered_rate(self) -> float:
        return self.offered / self.seconds

    @property
    def committed_rate(self) -> float:
        return self.committed / self.seconds

    @property
    def ratio(self) -> float:
        return self.committed / self.offered if self.offered else 0.0

    @property
    def growth_s(self) -> float:
        """Return how much the backlog grew over the window, in seconds of offered ticks."""
        return self.backlog_slope * self.seconds / self.offered_rate if self.offered else 0.0

    @property
    def lost(self) -> int:
        return self.total_offered - self.total_committed

    @property
    def source_on_target(self) -> bool:
        """Return whether the source offered (about) the rate asked for: else the run did not test it."""
        return self.target_rate is None or self.offered_rate >= KEEP_UP_RATIO * self.target_rate

    @property
    def kept_up(self) -> bool:
        return (
            self.source_on_target and self.ratio >= KEEP_UP_RATIO and self.growth_s <= GROWTH_LIMIT_S and self.lost == 0
        )


@dataclass
class _Window:
    """Samples of (time, offered, done, writer queue) over the measured window."""

    samples: list[tuple[float, int, int, int]] = field(default_factory=list)

    def add(self, offered: int, done: int, queue: int) -> None:
        self.samples.append((time.perf_counter(), offered, done, queue))

    def backlog(self) -> tuple[float, float, float]:
        """Return the backlog at the start and the end of the window and its slope (ticks/s)."""
        t = np.array([s[0] for s in self.samples])
        backlog = np.array([s[1] - s[2] for s in self.samples], dtype=float)
        if len(t) >= 3:
            slope = float(np.polyfit(t - t[0], backlog, 1)[0])
        else:  # the loop was too busy to sample more than the two ends
            slope = float((backlog[-1] - backlog[0]) / (t[-1] - t[0])) if t[-1] > t[0] else 0.0
        return float(backlog[0]), float(backlog[-1]), slope


async def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)
    del what


async def _measure_window(
    seconds: float, offered: Callable[[], int], done: Callable[[], int], queue: Callable[[], int], cpu: Cpu
) -> tuple[_Window, int, int, float, dict[str, float]]:
    window = _Window()
    cpu.start()
    started = time.perf_counter()
    offered0, done0 = offered(), done()
    window.add(offered0, done0, queue())
    deadline = started + seconds
    while (now := time.perf_counter()) < deadline:
        await asyncio.sleep(min(SAMPLE_S, deadline - now))
        window.add(offered(), done(), queue())
    elapsed = time.perf_counter() - started
    usage = cpu.stop()
    return window, offered() - offered0, done() - done0, elapsed, usage


async def run_pipeline(
    kind: str,
    rate: float | None,
    *,
    admin_dsn: str,
    pg_data: Path,
    spool_dir: Path,
    pacer: PacerProcess | None,
    n_instruments: int,
    warmup: float,
    seconds: float,
    profiler: Callable[[float], Any] | None = None,
    pipeline_options: Mapping[str, Any] | None = None,
    database_settings: Mapping[str, str] | None = None,
) -> RunResult:
    """Run `kind` ("ccxt": the paced server through CcxtFeed; "synthetic": SyntheticFeed) into a fresh database.

    `rate` None with the synthetic feed means as fast as the pipeline takes it. `profiler(seconds)`,
    if given, is awaited alongside the window and its result kept in `RunResult.profile`.
    """
    label = f"{int(rate)}" if rate else "max"
    db_name = f"bench_{kind}_{label}"
    dsn = await fresh_database(admin_dsn, db_name, database_settings)
    pool = await connect_dsn(dsn, min_size=2, max_size=4)
    try:
        await apply_migrations(pool)
        if kind == "ccxt":
            assert pacer is not None
            symbols = [f"{m.removesuffix('USDT')}/USDT" for m in _market_ids(pacer.n_symbols)]
            feed: Any = CcxtFeed("binance", symbols, config=pacer.ccxt_config, venue=SentNsVenue(), seed=1)
        else:
            feed = SyntheticFeed(n_instruments=n_instruments, rate=rate, seed=7)
        pipeline = IngestPipeline(feed, pool, spool=spool_dir / db_name, **(pipeline_options or {}))
        task = asyncio.create_task(pipeline.run(), name=f"bench-{db_name}")
        try:
            await _wait(lambda: pipeline.stats().db_online or task.done(), 60, "the writer to start")
            base = 0
            if kind == "ccxt":
                assert pacer is not None
                assert rate is not None
                async with asyncio.timeout(120):
                    while await pacer.subscribed() < pacer.n_symbols:
                        await asyncio.sleep(0.2)
                base = pacer.sent
                pacer.reset_max_write_buffer()
                await pacer.pace(rate)

                def offered() -> int:
                    return pacer.sent - base
            else:

                def offered() -> int:
                    # The feed runs in the process under test, so a saturated process also delays the
                    # feed: offered is its schedule (rate x time since its start), not what it emitted.
                    start = feed._start_ns  # when the schedule began (set at the first read)
                    if start is None:
                        return 0
                    if rate is None:
                        return int(feed.emitted)
                    return int((time.time_ns() - start) * rate // 1_000_000_000)

            def committed() -> int:
                return pipeline.stats().ticks_written

            settle_gc()  # as `rata ingest` does once started; its one-off stall falls in the warm-up
            await asyncio.sleep(warmup)
            if task.done():
                await task
            pipeline.reset_latency()
            profiling = asyncio.ensure_future(profiler(seconds)) if profiler is not None else None
            emitted0 = int(feed.emitted) if kind == "synthetic" else 0
            cpu = Cpu(_pid(pacer, kind), pg_data)
            waits = WaitSampler(dsn, db_name)
            waits.start()
            window, n_offered, n_done, elapsed, usage = await _measure_window(
                seconds, offered, committed, lambda: pipeline.stats().queue_depth, cpu=cpu
            )
            await waits.stop()
            stats = pipeline.stats()
            profile = await profiling if profiling is not None else None
            drain_started = time.perf_counter()
            rest = 0
            if kind == "ccxt":
                assert pacer is not None
                await pacer.halt()
                await _drain(lambda: pacer.sent - base, committed, lambda: feed.health().messages)
                rest = await pacer.served()
            drain_s = time.perf_counter() - drain_started
            await pipeline.stop()
            await task
        finally:
            if not task.done():
                await pipeline.stop()
                with contextlib.suppress(Exception):
                    await task
        final = pipeline.stats()
        start_backlog, end_backlog, slope = window.backlog()
        if kind == "ccxt":
            notes = _feed_notes(feed, rest)
            total_offered = offered()
        else:
            total_offered = int(feed.emitted)
            emitted_rate = (feed.emitted - emitted0) / elapsed
            behind = rate is not None and emitted_rate < KEEP_UP_RATIO * n_offered / elapsed
            notes = f"SyntheticFeed emitted {emitted_rate:,.0f}/s in the window, behind its schedule" if behind else ""
        return RunResult(
            name=f"{kind} {label}",
            feed=kind,
            target_rate=rate,
            seconds=elapsed,
            offered=n_offered,
            committed=n_done,
            latency=stats.tick_latency,
            cpu=usage,
            backlog_start=start_backlog,
            backlog_end=end_backlog,
            backlog_slope=slope,
            max_writer_queue=max(s[3] for s in window.samples),
            total_offered=total_offered,
            total_committed=final.ticks_written,
            drain_s=drain_s,
            rejected=sum(final.rejected.values()),
            bars_written=final.bars_written,
            batches_note=_batch_note(stats.batch_latency),
            feed_notes=notes,
            server_buffer=pacer.max_write_buffer if (pacer is not None and kind == "ccxt") else 0,
            profile=profile,
            busiest_others=cpu.busiest_others,
            pg_waits=waits.counts,
        )
    finally:
        await pool.close()
        await drop_database(admin_dsn, db_name)


async def _drain(offered: Callable[[], int], committed: Callable[[], int], received: Callable[[], int]) -> None:
    """Wait until everything offered is committed; give up after `DRAIN_MAX_S`, or `DRAIN_IDLE_S` without progress."""
    started = last_move = time.perf_counter()
    last = (committed(), received())
    while committed() < offered() and time.perf_counter() - started < DRAIN_MAX_S:
        await asyncio.sleep(0.1)
        now = (committed(), received())
        if now != last:
            last, last_move = now, time.perf_counter()
        elif time.perf_counter() - last_move > DRAIN_IDLE_S:
            break


def _batch_note(batch: LatencySummary) -> str:
    if not batch.count:
        return ""
    return f"{batch.count:,} commits, p50 {batch.p50_ms:.1f} ms, p99 {batch.p99_ms:.1f} ms"


def _feed_notes(feed: CcxtFeed, rest_served: int) -> str:
    """Return the feed's trouble counters, or "" when there was none."""
    fs = feed.stats()
    if not (fs.gaps or fs.backfilled or fs.unfilled or fs.bad or feed.health().reconnects or rest_served):
        return ""
    return (
        f"id gaps seen {fs.gaps:,}, trades backfilled {fs.backfilled:,} (the server served {rest_served:,} "
        f"over REST), unfilled {fs.unfilled}, bad {fs.bad}, reconnects {feed.health().reconnects}"
    )


def _pid(pacer: PacerProcess | None, kind: str) -> int | None:
    return pacer.pid if pacer is not None and kind == "ccxt" else None


def _market_ids(n: int) -> list[str]:
    from tests.bench._binance_pacer import bench_markets

    return [m.symbol for m in bench_markets(n)]


async def run_ccxt_client(
    pacer: PacerProcess, rate: float, *, pg_data: Path, warmup: float, seconds: float, stream: str = "direct"
) -> RunResult:
    """Measure the feed alone: CcxtFeed's trades taken as the pipeline takes them (batches), counted, dropped.

    `stream` "direct": the Binance profile's own aggTrade reader (what `CcxtFeed` uses for Binance spot);
    "ccxt": ccxt's `watch_trades`, one loop per symbol (the previous path, for comparison). Latency
    here runs from the server's send stamp to the moment the feed hands the trade over.
    """
    symbols = [f"{m.removesuffix('USDT')}/USDT" for m in _market_ids(pacer.n_symbols)]
    venue = SentNsVenue(native_stream=stream == "direct")
    feed = CcxtFeed("binance", symbols, config=pacer.ccxt_config, venue=venue, seed=1)
    histogram = LatencyHistogram()
    count = 0

    async def consume() -> None:
        nonlocal count
        async for batch in feed.batches():
            assert isinstance(batch, TickBatch)
            histogram.record_many(time.time_ns() - batch.sent_ns)
            count += len(batch)

    await feed.connect()
    consumer = asyncio.create_task(consume())
    try:
        async with asyncio.timeout(120):
            while await pacer.subscribed() < pacer.n_symbols:
                await asyncio.sleep(0.2)
        base = pacer.sent
        pacer.reset_max_write_buffer()
        await pacer.pace(rate)
        settle_gc()
        await asyncio.sleep(warmup)
        histogram.reset()
        cpu = Cpu(pacer.pid, pg_data)
        window, n_offered, n_done, elapsed, usage = await _measure_window(
            seconds, lambda: pacer.sent - base, lambda: count, lambda: 0, cpu=cpu
        )
        latency = histogram.summary()
        started = time.perf_counter()
        await pacer.halt()
        await _drain(lambda: pacer.sent - base, lambda: count, lambda: feed.health().messages)
        rest = await pacer.served()
        drain_s = time.perf_counter() - started
    finally:
        await feed.close()
        await consumer
    start_backlog, end_backlog, slope = window.backlog()
    return RunResult(
        name=f"{stream} client alone {int(rate)}",
        feed="ccxt-client" if stream == "direct" else "ccxt-watch",
        target_rate=rate,
        seconds=elapsed,
        offered=n_offered,
        committed=n_done,
        latency=latency,
        cpu=usage,
        backlog_start=start_backlog,
        backlog_end=end_backlog,
        backlog_slope=slope,
        max_writer_queue=0,
        total_offered=pacer.sent - base,
        total_committed=count,
        drain_s=drain_s,
        feed_notes=_feed_notes(feed, rest),
        server_buffer=pacer.max_write_buffer,
        busiest_others=cpu.busiest_others,
    )

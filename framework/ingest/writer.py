"""Write ticks and bars to PostgreSQL in batches, and keep ingesting while the database is away.

Events arrive on a bounded queue (a full queue blocks the producer: backpressure, never a drop).
The writer takes whatever is queued, up to `batch_size`, and writes the batch with COPY through
`framework.storage.marketdata`, whose writes are idempotent. Batching adapts to the load: when a
commit slot is free the batch is written at once (lowest latency at low rates); while all
`max_in_flight` commits are busy it keeps collecting for at most `flush_ms`, so batches grow with
the load and PostgreSQL works on one batch while Python prepares the next.

When the database cannot be reached a batch goes to the on-disk `Spool` and the link retries
with backoff; once the database answers again, the spool is replayed, oldest first, before new
batches are written. A full spool stops the writer from taking more events until the database
is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn

import asyncpg
import numpy as np

from framework.clock import Clock, WallClock
from framework.errors import IntegrityError, ParameterError
from framework.events import Bar, MarketEvent, Tick, ns_to_datetime
from framework.ingest.latency import LatencyHistogram, LatencySummary
from framework.ingest.link import DATABASE_DOWN, DatabaseLink, PoolFactory
from framework.ingest.spool import Spool, SpoolFullError
from framework.storage.marketdata import InstrumentKey, bar_rows, tick_rows, write_bars, write_ticks

__all__ = ["BatchWriter", "WriterStats"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WriterStats:
    """What the writer has done: rows written, batches spooled and replayed, latencies."""

    online: bool
    queue_depth: int
    batches: int
    ticks_written: int
    ticks_duplicate: int
    bars_written: int
    spooled_batches: int
    spooled_ticks: int
    spooled_bars: int
    replayed_batches: int
    spool_pending: int
    spool_bytes: int
    spool_full_waits: int
    outages: int
    batch_latency: LatencySummary
    tick_latency: LatencySummary


class BatchWriter:
    """Consume ticks and bars from a bounded queue and commit them to PostgreSQL in batches.

    Give it an open `pool`, or a `connect` factory (or both): with a factory the writer owns its
    pool and replaces it after an outage (see `DatabaseLink`). `ids` maps every instrument's
    (venue, symbol) to its database id (see `upsert_instruments`); the pool needs at least
    `max_in_flight` connections.

    `start` launches the writing task; `put` queues an event (waiting while the queue is full) and
    `offer` queues it only if there is room; `close` writes everything queued, then stops.

    Latencies: `batch_latency` is the time to commit a batch; `tick_latency` runs from each
    tick's `sent_ns` (or `recv_ns` when the venue gives no send time) to its commit, by `clock`.

    A batch the database refuses for another reason than being unreachable (a constraint
    violation) is spooled and `IntegrityError` is raised: stop and reconcile. Whatever was still
    queued when the writer fails is spooled too.
    """

    def __init__(
        self,
        pool: asyncpg.Pool | None,
        ids: Mapping[InstrumentKey, int],
        spool: Spool,
        *,
        connect: PoolFactory | None = None,
        clock: Clock | None = None,
        batch_size: int = 5000,
        flush_ms: float = 5.0,
        queue_size: int = 100_000,
        max_in_flight: int = 2,
        backoff_s: tuple[float, float] = (0.05, 2.0),
        probe_timeout_s: float = 5.0,
    ) -> None:
        if batch_size < 1 or queue_size < 1 or max_in_flight < 1:
            raise ParameterError("batch_size, queue_size and max_in_flight must be positive")
        where = str(spool.directory)
        self._link = DatabaseLink(pool, connect, backoff_s=backoff_s, probe_timeout_s=probe_timeout_s, where=where)
        self._ids = dict(ids)
        self._spool = spool
        self._clock = clock or WallClock()
        self._batch_size = batch_size
        self._flush_s = flush_ms / 1000.0
        self._queue: asyncio.Queue[Tick | Bar | None] = asyncio.Queue(maxsize=queue_size)
        self._max_in_flight = max_in_flight
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None
        self._catching_up = asyncio.Lock()
        self._spooling = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._batch_latency = LatencyHistogram()
        self._tick_latency = LatencyHistogram()
        self._batches = self._ticks_written = self._ticks_duplicate = self._bars_written = 0
        self._spooled_batches = self._spooled_ticks = self._spooled_bars = self._replayed = 0
        self._spool_full_waits = 0

    @property
    def online(self) -> bool:
        """Return whether the last contact with the database succeeded."""
        return self._link.online

    async def start(self) -> None:
        """Start the writing task (it first replays what the spool holds, if the database answers)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="rata-batch-writer")

    def offer(self, event: MarketEvent) -> bool:
        """Queue `event` if there is room right now; return whether it was queued.

        Raise `IntegrityError` if the writer failed, `RuntimeError` if it was closed.
        """
        if self._task is not None and self._task.done():
            _raise_stopped(self._task)
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            return False
        return True

    async def put(self, event: MarketEvent) -> None:
        """Queue `event`, waiting while the queue is full; raise like `offer` if the writer stopped."""
        if not self.offer(event):
            await self._enqueue(event)

    async def close(self) -> None:
        """Write everything queued, stop the task and close a pool the writer owns.

        What the database cannot take stays in the spool for the next start. One last attempt to
        reach the database is made at once, whatever the backoff, so a database that has just
        come back gets the spool before the writer stops.
        """
        await self.start()
        assert self._task is not None
        try:
            if not self._task.done():
                await self._enqueue(None)
            await self._task
        finally:
            await self._link.close()

    def stats(self) -> WriterStats:
        """Return counters and latency summaries."""
        return WriterStats(
            online=self._link.online,
            queue_depth=self._queue.qsize(),
            batches=self._batches,
            ticks_written=self._ticks_written,
            ticks_duplicate=self._ticks_duplicate,
            bars_written=self._bars_written,
            spooled_batches=self._spooled_batches,
            spooled_ticks=self._spooled_ticks,
            spooled_bars=self._spooled_bars,
            replayed_batches=self._replayed,
            spool_pending=self._spool.pending(),
            spool_bytes=self._spool.pending_bytes,
            spool_full_waits=self._spool_full_waits,
            outages=self._link.outages,
            batch_latency=self._batch_latency.summary(),
            tick_latency=self._tick_latency.summary(),
        )

    async def _enqueue(self, item: Tick | Bar | None) -> None:
        while True:
            task = self._task
            if task is None:
                await self._queue.put(item)
                return
            if task.done():
                _raise_stopped(task)
            putter = asyncio.ensure_future(self._queue.put(item))
            try:
                done, _ = await asyncio.wait({putter, task}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not putter.done():
                    putter.cancel()
            if putter in done:
                return

    async def _run(self) -> None:
        ticks: list[Tick] = []
        bars: list[Bar] = []
        try:
            await self._catch_up()
            while True:
                ticks, bars, stop = await self._collect()
                if ticks or bars:
                    await self._slots.acquire()
                    if self._failure is not None:
                        self._slots.release()
                        raise self._failure
                    task = asyncio.create_task(self._commit(ticks, bars))
                    self._in_flight.add(task)
                    task.add_done_callback(self._committed)
                    ticks, bars = [], []
                elif not stop:
                    await self._catch_up()
                self._raise_failure()
                if stop:
                    break
            await self._settle()
            self._raise_failure()
            await self._catch_up(now=True)
        except Exception:
            await self._settle()
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if isinstance(item, Tick):
                    ticks.append(item)
                elif isinstance(item, Bar):
                    bars.append(item)
            await self._keep(ticks, bars)
            raise

    def _committed(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def _settle(self) -> None:
        if self._in_flight:
            await asyncio.wait(set(self._in_flight))

    async def _collect(self) -> tuple[list[Tick], list[Bar], bool]:
        queue = self._queue
        loop = asyncio.get_running_loop()
        ticks: list[Tick] = []
        bars: list[Bar] = []
        idle = None if self._link.online and not self._spool.pending() else max(self._link.retry_in(), 0.01)
        try:
            item = await asyncio.wait_for(queue.get(), idle)
        except TimeoutError:
            return ticks, bars, False
        deadline = loop.time() + self._flush_s
        size = 0
        while True:
            if item is None:
                return ticks, bars, True
            if type(item) is Tick:
                ticks.append(item)
            else:
                bars.append(item)  # type: ignore[arg-type]
            size += 1
            if size >= self._batch_size:
                break
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                if len(self._in_flight) < self._max_in_flight:
                    break
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    break
        return ticks, bars, False

    async def _commit(self, ticks: list[Tick], bars: list[Bar]) -> None:
        try:
            if await self._catch_up():
                try:
                    await self._write(ticks, bars)
                    return
                except DATABASE_DOWN as exc:
                    self._link.went_down(exc)
            await self._spool_batch(ticks, bars)
        except Exception as exc:
            await self._keep(ticks, bars)
            if isinstance(exc, asyncpg.PostgresError):
                raise IntegrityError(f"the database refused market data (kept in the spool): {exc}") from exc
            raise

    async def _catch_up(self, *, now: bool = False) -> bool:
        """Be online with an empty spool if that is possible now; return whether it is so."""
        if self._link.online and not self._spool.pending():
            return True
        async with self._catching_up:
            if not await self._link.probe(now=now):
                return False
            if self._spool.pending():
                async with self._spooling:
                    try:
                        self._replayed += await self._spool.drain(self._write)
                    except DATABASE_DOWN as exc:
                        self._link.went_down(exc)
                        return False
                    except asyncpg.PostgresError as exc:
                        raise IntegrityError(
                            f"the database refused a spooled batch (left in the spool): {exc}"
                        ) from exc
                log.info("spool replayed; writing live market data again")
        return True

    async def _spool_batch(self, ticks: list[Tick], bars: list[Bar]) -> None:
        while True:
            try:
                async with self._spooling:
                    await asyncio.to_thread(self._spool.append, ticks, bars)
            except SpoolFullError as exc:
                if self._spool_full_waits == 0:
                    log.error("%s; holding new market data until the database is back", exc)
                self._spool_full_waits += 1
                await asyncio.sleep(max(self._link.retry_in(), 0.01))
                if await self._catch_up():
                    try:
                        await self._write(ticks, bars)
                        return
                    except DATABASE_DOWN as down:
                        self._link.went_down(down)
            else:
                self._spooled_batches += 1
                self._spooled_ticks += len(ticks)
                self._spooled_bars += len(bars)
                return

    async def _keep(self, ticks: list[Tick], bars: list[Bar]) -> None:
        """Spool events the writer cannot write because it is failing; say so if even that fails."""
        if not (ticks or bars):
            return
        try:
            async with self._spooling:
                await asyncio.to_thread(self._spool.append, ticks, bars)
        except (SpoolFullError, OSError) as exc:
            log.error(
                "lost %d ticks and %d bars: the writer failed and the spool refused them (%s)",
                len(ticks),
                len(bars),
                exc,
            )
        else:
            log.error("the writer failed; %d ticks and %d bars kept in the spool", len(ticks), len(bars))

    async def _write(self, ticks: list[Tick], bars: list[Bar]) -> None:
        started = time.perf_counter_ns()
        received_at = ns_to_datetime(self._clock.now_ns())
        async with self._link.pool.acquire() as conn:
            try:
                new = await write_ticks(conn, tick_rows(ticks, self._ids, received_at)) if ticks else 0
                if bars:
                    await write_bars(conn, bar_rows(bars, self._ids))
            except DATABASE_DOWN:
                conn.terminate()  # never hand a connection in an unknown state back to the pool
                raise
        committed_ns = self._clock.now_ns()
        self._batch_latency.record(time.perf_counter_ns() - started)
        if ticks:
            origins = np.fromiter((t.sent_ns or t.recv_ns for t in ticks), dtype=np.int64, count=len(ticks))
            origins = origins[origins > 0]
            if origins.size:
                self._tick_latency.record_many(committed_ns - origins)
        self._batches += 1
        self._ticks_written += new
        self._ticks_duplicate += len(ticks) - new
        self._bars_written += len(bars)


def _raise_stopped(task: asyncio.Task[None]) -> NoReturn:
    if not task.cancelled() and task.exception() is not None:
        raise IntegrityError("the batch writer failed; see the error it raised") from task.exception()
    raise RuntimeError("the batch writer is closed")

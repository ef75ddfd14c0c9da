"""Write ticks and bars to PostgreSQL in batches, and keep ingesting while the database is away.

Events arrive in a bounded inbox (a full inbox blocks the producer: backpressure, never a drop).
The inbox is bounded in trades and bars, whether they come one by one (`Tick`, `Bar`) or as
columns (`TickBatch`, which counts for its trades). The writer takes whatever is queued, up to
`batch_size` trades and bars, and commits it with one idempotent statement
(`framework.storage.marketdata.write_market_data`: ticks and bars together, one round trip).
Batching adapts to the load: when a commit slot is free the batch is written at once (lowest
latency at low rates); while all `max_in_flight` commits are busy it keeps collecting for at most
`flush_ms`, so batches grow with the load and PostgreSQL works on one batch while Python prepares
the next.

When the database cannot be reached a batch goes to the on-disk `Spool` and the link retries
with backoff; once the database answers again, the spool is replayed, oldest first, before new
batches are written. A full spool stops the writer from taking more events until the database
is back.

`on_ticks` sees every committed write's trades with their latencies (`CommittedTicks`), right
after the commit and in the order the writes were queued (with two commits in flight, a write that
finishes first waits for the one before it; a spooled write is skipped and seen when the spool is
replayed): the live runner publishes them to its WebSocket clients and its metrics. It runs on the
writer's task, so it must be quick; an exception in it is logged, never raised.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

import asyncpg
import numpy as np

from framework.clock import Clock, WallClock
from framework.errors import IntegrityError, ParameterError
from framework.events import Bar, MarketEvent, Tick, TickBatch, ns_to_datetime
from framework.ingest.latency import LatencyHistogram, LatencySnapshot, LatencySummary
from framework.ingest.link import DATABASE_DOWN, DatabaseLink, PoolFactory
from framework.ingest.spool import Spool, SpoolFullError
from framework.storage.marketdata import (
    InstrumentKey,
    bar_columns,
    ids_by_venue,
    tick_columns,
    write_market_data,
)

__all__ = ["BatchWriter", "CommittedTicks", "WriterStats"]

log = logging.getLogger(__name__)

_Item = MarketEvent | TickBatch | None
"""What the inbox holds: an event, a batch of trades, or None (close)."""


@dataclass(frozen=True, slots=True)
class CommittedTicks:
    """The trades of one committed write: `batches` and single `ticks`, as they were queued.

    `latency_ns` holds, for each trade with a known origin, the time from its `sent_ns` (or
    `recv_ns` when the venue gives no send time) to the commit, in nanoseconds; trades already
    stored (duplicates) are included, since they were written idempotently in the same statement.
    """

    batches: Sequence[TickBatch]
    ticks: Sequence[Tick]
    latency_ns: np.ndarray

    def __len__(self) -> int:
        return sum(len(b) for b in self.batches) + len(self.ticks)


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


@dataclass(slots=True)
class _Chunk:
    """One write: batches of trades, single ticks and bars."""

    batches: list[TickBatch] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    n_ticks: int = 0
    seq: int = -1  # order of the live writes (for `on_ticks`); -1 for spool replays

    def add(self, item: MarketEvent | TickBatch) -> int:
        """Add an event; return how much it weighs (trades and bars)."""
        if isinstance(item, TickBatch):
            self.batches.append(item)
            self.n_ticks += len(item)
            return len(item)
        if isinstance(item, Tick):
            self.ticks.append(item)
            self.n_ticks += 1
        else:
            self.bars.append(item)
        return 1

    def __bool__(self) -> bool:
        return bool(self.n_ticks or self.bars)


def _weight(item: _Item) -> int:
    return len(item) if isinstance(item, TickBatch) else 1 if item is not None else 0


class _Inbox:
    """A FIFO bounded by the trades and bars it holds; one consumer (the writer task).

    An item heavier than the whole capacity is still taken when the inbox is empty, so a big
    batch waits for room instead of waiting forever.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.size = 0
        self._items: deque[tuple[_Item, int]] = deque()
        self._getter: asyncio.Future[None] | None = None
        self.room = asyncio.Event()
        self.room.set()

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, item: _Item) -> bool:
        weight = _weight(item)
        if self.size and self.size + weight > self.capacity:
            self.room.clear()
            return False
        self._items.append((item, weight))
        self.size += weight
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)
        return True

    def get_nowait(self) -> _Item:
        """Return the oldest item; raise IndexError when empty."""
        item, weight = self._items.popleft()
        self.size -= weight
        if not self.room.is_set():
            self.room.set()
        return item

    async def get(self, timeout: float | None) -> _Item:
        """Return the oldest item, waiting at most `timeout` seconds (TimeoutError) for one."""
        if not self._items:
            getter = self._getter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await getter
            finally:
                self._getter = None
        return self.get_nowait()


class BatchWriter:
    """Consume ticks, batches of ticks and bars from a bounded inbox and commit them to PostgreSQL in batches.

    Give it an open `pool`, or a `connect` factory (or both): with a factory the writer owns its
    pool and replaces it after an outage (see `DatabaseLink`). `ids` maps every instrument's
    (venue, symbol) to its database id (see `upsert_instruments`); the pool needs at least
    `max_in_flight` connections.

    `start` launches the writing task; `put` queues an event (waiting while the inbox is full) and
    `offer` queues it only if there is room; `close` writes everything queued, then stops. The
    inbox holds at most `queue_size` trades and bars (a `TickBatch` counts for its trades).

    Latencies: `batch_latency` is the time to commit a batch; `tick_latency` runs from each
    tick's `sent_ns` (or `recv_ns` when the venue gives no send time) to its commit, by `clock`.
    `latency(reset=True)` reads both and starts a new window.

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
        on_ticks: Callable[[CommittedTicks], None] | None = None,
    ) -> None:
        if batch_size < 1 or queue_size < 1 or max_in_flight < 1:
            raise ParameterError("batch_size, queue_size and max_in_flight must be positive")
        where = str(spool.directory)
        self._link = DatabaseLink(pool, connect, backoff_s=backoff_s, probe_timeout_s=probe_timeout_s, where=where)
        self._ids = ids_by_venue(ids)
        self._spool = spool
        self._clock = clock or WallClock()
        self._batch_size = batch_size
        self._flush_s = flush_ms / 1000.0
        self._inbox = _Inbox(queue_size)
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
        self._on_ticks = on_ticks
        self._queued_seq = self._told_seq = 0
        self._done: dict[int, CommittedTicks | None] = {}

    @property
    def online(self) -> bool:
        """Return whether the last contact with the database succeeded."""
        return self._link.online

    async def start(self) -> None:
        """Start the writing task (it first replays what the spool holds, if the database answers)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="rata-batch-writer")

    def offer(self, event: MarketEvent | TickBatch) -> bool:
        """Queue `event` (a tick, a bar or a batch of ticks) if there is room right now; return whether it was.

        Raise `IntegrityError` if the writer failed, `RuntimeError` if it was closed.
        """
        if self._task is not None and self._task.done():
            _raise_stopped(self._task)
        return self._inbox.offer(event)

    async def put(self, event: MarketEvent | TickBatch) -> None:
        """Queue `event`, waiting while the inbox is full; raise like `offer` if the writer stopped."""
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
            queue_depth=self._inbox.size,
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

    def latency(self, *, reset: bool = False) -> LatencySnapshot:
        """Return the tick and batch latencies recorded so far; with `reset`, start a new window."""
        snapshot = LatencySnapshot(tick=self._tick_latency.summary(), batch=self._batch_latency.summary())
        if reset:
            self._tick_latency.reset()
            self._batch_latency.reset()
        return snapshot

    async def _enqueue(self, item: _Item) -> None:
        inbox = self._inbox
        while not inbox.offer(item):
            task = self._task
            if task is None:
                await inbox.room.wait()
                continue
            if task.done():
                _raise_stopped(task)
            room = asyncio.ensure_future(inbox.room.wait())
            try:
                await asyncio.wait({room, task}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not room.done():
                    room.cancel()

    async def _run(self) -> None:
        chunk = _Chunk()
        try:
            await self._catch_up()
            while True:
                chunk, stop = await self._collect()
                if chunk:
                    await self._slots.acquire()
                    if self._failure is not None:
                        self._slots.release()
                        raise self._failure
                    chunk.seq, self._queued_seq = self._queued_seq, self._queued_seq + 1
                    task = asyncio.create_task(self._commit(chunk))
                    self._in_flight.add(task)
                    task.add_done_callback(self._committed)
                    chunk = _Chunk()
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
            while len(self._inbox):
                item = self._inbox.get_nowait()
                if item is not None:
                    chunk.add(item)
            await self._keep(chunk)
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

    async def _collect(self) -> tuple[_Chunk, bool]:
        inbox = self._inbox
        loop = asyncio.get_running_loop()
        chunk = _Chunk()
        idle = None if self._link.online and not self._spool.pending() else max(self._link.retry_in(), 0.01)
        try:
            item = await inbox.get(idle)
        except TimeoutError:
            return chunk, False
        deadline = loop.time() + self._flush_s
        size = 0
        while True:
            if item is None:
                return chunk, True
            size += chunk.add(item)
            if size >= self._batch_size:
                break
            try:
                item = inbox.get_nowait()
            except IndexError:
                if len(self._in_flight) < self._max_in_flight:
                    break
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await inbox.get(remaining)
                except TimeoutError:
                    break
        return chunk, False

    async def _commit(self, chunk: _Chunk) -> None:
        try:
            await self._commit_or_spool(chunk)
        finally:
            self._finished(chunk.seq)

    async def _commit_or_spool(self, chunk: _Chunk) -> None:
        try:
            if await self._catch_up():
                try:
                    await self._write(chunk)
                    return
                except DATABASE_DOWN as exc:
                    self._link.went_down(exc)
            await self._spool_chunk(chunk)
        except Exception as exc:
            await self._keep(chunk)
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
                        self._replayed += await self._spool.drain(self._write_spooled)
                    except DATABASE_DOWN as exc:
                        self._link.went_down(exc)
                        return False
                    except asyncpg.PostgresError as exc:
                        raise IntegrityError(
                            f"the database refused a spooled batch (left in the spool): {exc}"
                        ) from exc
                log.info("spool replayed; writing live market data again")
        return True

    async def _spool_chunk(self, chunk: _Chunk) -> None:
        while True:
            try:
                async with self._spooling:
                    await asyncio.to_thread(self._spool.append, chunk.ticks, chunk.bars, chunk.batches)
            except SpoolFullError as exc:
                if self._spool_full_waits == 0:
                    log.error("%s; holding new market data until the database is back", exc)
                self._spool_full_waits += 1
                await asyncio.sleep(max(self._link.retry_in(), 0.01))
                if await self._catch_up():
                    try:
                        await self._write(chunk)
                        return
                    except DATABASE_DOWN as down:
                        self._link.went_down(down)
            else:
                self._spooled_batches += 1
                self._spooled_ticks += chunk.n_ticks
                self._spooled_bars += len(chunk.bars)
                return

    async def _keep(self, chunk: _Chunk) -> None:
        """Spool events the writer cannot write because it is failing; say so if even that fails."""
        if not chunk:
            return
        try:
            async with self._spooling:
                await asyncio.to_thread(self._spool.append, chunk.ticks, chunk.bars, chunk.batches)
        except (SpoolFullError, OSError) as exc:
            log.error(
                "lost %d ticks and %d bars: the writer failed and the spool refused them (%s)",
                chunk.n_ticks,
                len(chunk.bars),
                exc,
            )
        else:
            log.error("the writer failed; %d ticks and %d bars kept in the spool", chunk.n_ticks, len(chunk.bars))

    async def _write_spooled(self, ticks: Sequence[Tick], bars: Sequence[Bar]) -> None:
        await self._write(_Chunk([], list(ticks), list(bars), len(ticks)))

    async def _write(self, chunk: _Chunk) -> None:
        started = time.perf_counter_ns()
        ticks = tick_columns(chunk.batches, chunk.ticks, self._ids)
        bars = bar_columns(chunk.bars, self._ids)
        received_at = ns_to_datetime(self._clock.now_ns())
        async with self._link.pool.acquire() as conn:
            try:
                new = await write_market_data(conn, ticks, bars, received_at)
            except DATABASE_DOWN:
                conn.terminate()  # never hand a connection in an unknown state back to the pool
                raise
        committed_ns = self._clock.now_ns()
        self._batch_latency.record(time.perf_counter_ns() - started)
        if chunk.n_ticks:
            origins = [np.where(b.sent_ns > 0, b.sent_ns, b.recv_ns) for b in chunk.batches]
            if chunk.ticks:
                singles = chunk.ticks
                origins.append(np.fromiter((t.sent_ns or t.recv_ns for t in singles), np.int64, len(singles)))
            merged = np.concatenate(origins) if len(origins) > 1 else origins[0]
            latency_ns = committed_ns - merged[merged > 0]
            if latency_ns.size:
                self._tick_latency.record_many(latency_ns)
            if self._on_ticks is not None:
                self._committed_ticks(chunk.seq, CommittedTicks(chunk.batches, chunk.ticks, latency_ns))
        self._batches += 1
        self._ticks_written += new
        self._ticks_duplicate += chunk.n_ticks - new
        self._bars_written += len(chunk.bars)

    def _committed_ticks(self, seq: int, committed: CommittedTicks) -> None:
        """Keep the trades write `seq` committed until it is their turn (a spool replay's go at once)."""
        if seq < 0:
            self._tell(committed)
        else:
            self._done[seq] = committed

    def _finished(self, seq: int) -> None:
        """Write `seq` ended, committed or not: tell `on_ticks` what is now due, in queue order."""
        if self._on_ticks is None:
            return
        self._done.setdefault(seq, None)
        while self._told_seq in self._done:
            ready = self._done.pop(self._told_seq)
            self._told_seq += 1
            if ready is not None:
                self._tell(ready)

    def _tell(self, committed: CommittedTicks) -> None:
        assert self._on_ticks is not None
        try:
            self._on_ticks(committed)
        except Exception:
            log.exception("the on_ticks hook failed on %d committed trades (ingestion goes on)", len(committed))


def _raise_stopped(task: asyncio.Task[None]) -> NoReturn:
    if not task.cancelled() and task.exception() is not None:
        raise IntegrityError("the batch writer failed; see the error it raised") from task.exception()
    raise RuntimeError("the batch writer is closed")

"""The ceiling for the ingestion benchmark: how fast PostgreSQL takes tick rows, and at what cost per commit.

Rows are built before the clock starts (the pipeline's own row building is not in the ceiling),
in batches of 5,000 (the writer's default batch size), every row a new key, into the same fresh,
migrated database layout the pipeline writes to. The ways:

- raw COPY into `ticks`, one connection, one batch after another (each COPY its own transaction),
  and the same on two connections at once (the writer keeps up to two commits in flight): not
  idempotent, the upper bound;
- `write_market_data`, what the writer runs: one `INSERT ... SELECT FROM unnest($1::int4[], ...)
  ON CONFLICT DO NOTHING` with the columns as arrays and times as integer microseconds (turned into
  `timestamptz` by PostgreSQL), the batch's bars in the same statement; one connection and two;
- the previous writer, for comparison: COPY into a per-connection temporary staging table created
  `ON COMMIT DELETE ROWS`, then `INSERT ... SELECT ... ON CONFLICT DO NOTHING`, in one transaction;
- both idempotent ways again with small batches (25 rows, what a commit carries at 5,000 ticks/s),
  for their per-commit latency: the staging table truncates its file at every commit (the
  `IO:DataFileTruncate` wait).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from framework.instruments import Instrument
from framework.storage import apply_migrations, connect_dsn
from framework.storage.marketdata import BarColumns, TickColumns, upsert_instruments, write_market_data

__all__ = ["BATCH", "SMALL_BATCH", "CeilingResult", "copy_ceiling"]

BATCH = 5_000
SMALL_BATCH = 25  # what one commit carries at 5,000 ticks/s with commits every ~5 ms
_COLUMNS = ["instrument_id", "time", "trade_id", "price", "size", "side", "received_at"]
_NO_BARS = BarColumns([], [], [], [], [], [], [], [], [], [])
WRITER = "write_market_data (INSERT ... unnest(arrays), int64 us times, ON CONFLICT; what the writer runs)"
STAGED = "previous writer: COPY into a temp staging table (ON COMMIT DELETE ROWS) + INSERT ON CONFLICT"


@dataclass(frozen=True)
class CeilingResult:
    """Rows written, and the seconds spent writing them (wall time, row building excluded)."""

    name: str
    batch: int
    rows: int
    seconds: float
    rounds_ms: list[float]

    @property
    def rate(self) -> float:
        return self.rows / self.seconds

    def round_ms(self, q: float) -> float:
        ordered = sorted(self.rounds_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


@dataclass(frozen=True)
class _Batch:
    rows: list[tuple[object, ...]]
    columns: TickColumns


class _Rows:
    """Tick rows with distinct keys: 500 instruments, microsecond-spaced times, serial trade ids."""

    def __init__(self, instrument_ids: list[int]) -> None:
        self._ids = instrument_ids
        self._n = 0
        self._start = datetime.now(UTC)
        self._start_us = (self._start - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)

    def batch(self, size: int = BATCH) -> _Batch:
        rows = []
        start, ids = self._n, self._ids
        received = datetime.now(UTC)
        for k in range(start, start + size):
            rows.append(
                (ids[k % len(ids)], self._start + timedelta(microseconds=k), str(k), 100.0 + k % 97, 0.5, 1, received)
            )
        columns = TickColumns(
            [ids[k % len(ids)] for k in range(start, start + size)],
            [self._start_us + k for k in range(start, start + size)],
            [str(k) for k in range(start, start + size)],
            [100.0 + k % 97 for k in range(start, start + size)],
            [0.5] * size,
            [1] * size,
        )
        self._n += size
        return _Batch(rows, columns)


async def _timed(
    name: str,
    seconds: float,
    rows: _Rows,
    connections: list[asyncpg.Connection],
    write: Callable[[asyncpg.Connection, _Batch], Awaitable[object]],
    batch: int = BATCH,
) -> CeilingResult:
    spent = 0.0
    written = 0
    rounds_ms: list[float] = []
    while spent < seconds:
        batches = [rows.batch(batch) for _ in connections]
        started = time.perf_counter()
        await asyncio.gather(*(write(conn, b) for conn, b in zip(connections, batches, strict=True)))
        took = time.perf_counter() - started
        spent += took
        written += batch * len(connections)
        rounds_ms.append(took * 1e3)
    return CeilingResult(name, batch, written, spent, rounds_ms)


async def _raw_copy(conn: asyncpg.Connection, batch: _Batch) -> None:
    await conn.copy_records_to_table("ticks", records=batch.rows, columns=_COLUMNS)


async def _writer(conn: asyncpg.Connection, batch: _Batch) -> None:
    await write_market_data(conn, batch.columns, _NO_BARS, datetime.now(UTC))


_STAGE = "CREATE TEMP TABLE IF NOT EXISTS ticks_stage (LIKE ticks INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
_MERGE = (
    f"INSERT INTO ticks ({', '.join(_COLUMNS)}) SELECT {', '.join(_COLUMNS)} FROM ticks_stage ON CONFLICT DO NOTHING"
)


async def _staged(conn: asyncpg.Connection, batch: _Batch) -> None:
    """The previous writer: COPY into a temp staging table, merge with INSERT ON CONFLICT, one transaction."""
    await conn.execute(_STAGE)
    async with conn.transaction():
        await conn.copy_records_to_table("ticks_stage", records=batch.rows, columns=_COLUMNS)
        await conn.execute(_MERGE)


async def copy_ceiling(dsn: str, instruments: list[Instrument], seconds: float) -> list[CeilingResult]:
    """Measure each way for about `seconds` of writing on the (fresh) database at `dsn`."""
    pool = await connect_dsn(dsn, min_size=2, max_size=2)
    try:
        await apply_migrations(pool)
        ids = await upsert_instruments(pool, instruments)
        rows = _Rows(sorted(ids.values()))
        async with pool.acquire() as one, pool.acquire() as two:
            await _timed("warm-up", min(1.0, seconds), rows, [one], _raw_copy)
            await _timed("warm-up", min(1.0, seconds), rows, [one, two], _writer)
            return [
                await _timed("raw COPY into ticks, 1 connection", seconds, rows, [one], _raw_copy),
                await _timed("raw COPY into ticks, 2 connections at once", seconds, rows, [one, two], _raw_copy),
                await _timed(f"{WRITER}, 1 connection", seconds, rows, [one], _writer),
                await _timed(f"{WRITER}, 2 connections at once", seconds, rows, [one, two], _writer),
                await _timed(f"{STAGED}, 1 connection", seconds, rows, [one], _staged),
                await _timed(f"{WRITER}, small batches", seconds, rows, [one], _writer, SMALL_BATCH),
                await _timed(f"{STAGED}, small batches", seconds, rows, [one], _staged, SMALL_BATCH),
            ]
    finally:
        await pool.close()

"""The ceiling for the ingestion benchmark: how fast asyncpg's COPY alone puts tick rows into PostgreSQL.

Rows are built before the clock starts (the pipeline's own row building is not in the ceiling),
in batches of 5,000 (the writer's default batch size), every row a new key, into the same fresh,
migrated database layout the pipeline writes to. Three ways:

- raw COPY into `ticks`, one connection, one batch after another (each COPY its own transaction);
- the same on two connections at once (the writer keeps up to two commits in flight);
- `framework.storage.marketdata.write_ticks` on one connection: COPY into a temporary staging
  table, then `INSERT ... SELECT ... ON CONFLICT DO NOTHING` (the idempotent path the writer uses);
- for comparison, an idempotent write without the staging table: one `INSERT ... SELECT FROM
  unnest($1::int[], ...) ON CONFLICT DO NOTHING` with the columns as arrays;
- both idempotent ways again with small batches (25 rows, what a commit carries at 5,000 ticks/s),
  for their per-commit latency: the staging table is created `ON COMMIT DELETE ROWS`, so every
  commit truncates it (an `ftruncate` of its file, seen as the `IO:DataFileTruncate` wait).
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
from framework.storage.marketdata import upsert_instruments, write_ticks

__all__ = ["BATCH", "SMALL_BATCH", "CeilingResult", "copy_ceiling"]

BATCH = 5_000
SMALL_BATCH = 25  # what one commit carries at 5,000 ticks/s with commits every ~5 ms
_COLUMNS = ["instrument_id", "time", "trade_id", "price", "size", "side", "received_at"]


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


class _Rows:
    """Tick rows with distinct keys: 500 instruments, microsecond-spaced times, serial trade ids."""

    def __init__(self, instrument_ids: list[int]) -> None:
        self._ids = instrument_ids
        self._n = 0
        self._start = datetime.now(UTC)

    def batch(self, size: int = BATCH) -> list[tuple[object, ...]]:
        rows = []
        start, ids = self._n, self._ids
        received = datetime.now(UTC)
        for k in range(start, start + size):
            rows.append(
                (ids[k % len(ids)], self._start + timedelta(microseconds=k), str(k), 100.0 + k % 97, 0.5, 1, received)
            )
        self._n += size
        return rows


async def _timed(
    name: str,
    seconds: float,
    rows: _Rows,
    connections: list[asyncpg.Connection],
    write: Callable[[asyncpg.Connection, list[tuple[object, ...]]], Awaitable[object]],
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


async def _raw_copy(conn: asyncpg.Connection, rows: list[tuple[object, ...]]) -> None:
    await conn.copy_records_to_table("ticks", records=rows, columns=_COLUMNS)


_UNNEST = (
    f"INSERT INTO ticks ({', '.join(_COLUMNS)}) SELECT * FROM unnest($1::int[], $2::timestamptz[], $3::text[], "
    "$4::float8[], $5::float8[], $6::int2[], $7::timestamptz[]) ON CONFLICT DO NOTHING"
)


async def _unnest_insert(conn: asyncpg.Connection, rows: list[tuple[object, ...]]) -> None:
    """Write idempotently without a staging table: one INSERT of column arrays (an alternative to `write_ticks`)."""
    await conn.execute(_UNNEST, *(list(column) for column in zip(*rows, strict=True)))


async def copy_ceiling(dsn: str, instruments: list[Instrument], seconds: float) -> list[CeilingResult]:
    """Measure each way for about `seconds` of writing on the (fresh) database at `dsn`."""
    pool = await connect_dsn(dsn, min_size=2, max_size=2)
    try:
        await apply_migrations(pool)
        ids = await upsert_instruments(pool, instruments)
        rows = _Rows(sorted(ids.values()))
        async with pool.acquire() as one, pool.acquire() as two:
            await _timed("warm-up", min(1.0, seconds), rows, [one], _raw_copy)
            return [
                await _timed("raw COPY into ticks, 1 connection", seconds, rows, [one], _raw_copy),
                await _timed("raw COPY into ticks, 2 connections at once", seconds, rows, [one, two], _raw_copy),
                await _timed("write_ticks (COPY to a temp staging table + INSERT ON CONFLICT; what the writer "
                             "uses), 1 connection", seconds, rows, [one], write_ticks),
                await _timed("INSERT ... SELECT FROM unnest(arrays) ON CONFLICT (no staging table), 1 connection",
                             seconds, rows, [one], _unnest_insert),
                await _timed("write_ticks, small batches", seconds, rows, [one], write_ticks, SMALL_BATCH),
                await _timed("INSERT ... unnest ON CONFLICT, small batches", seconds, rows, [one], _unnest_insert,
                             SMALL_BATCH),
            ]  # fmt: skip
    finally:
        await pool.close()

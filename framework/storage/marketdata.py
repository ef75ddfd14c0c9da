"""Market data tables: instruments, ticks and bars, written idempotently by COPY and read back.

Writes go through a per-connection temporary staging table: COPY the batch in (the fastest path
into PostgreSQL), then one `INSERT ... SELECT ... ON CONFLICT` moves it into the real table, so a
batch written twice (a retry, a replay, a backfill overlapping live data) leaves no duplicate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal

import asyncpg
import pandas as pd

from framework.errors import UnknownNameError
from framework.events import Bar, Tick, ns_to_datetime
from framework.instruments import Instrument

__all__ = [
    "InstrumentKey",
    "fetch_bars",
    "fetch_instruments",
    "fetch_ticks",
    "last_tick",
    "tick_rows",
    "upsert_instruments",
    "write_bars",
    "write_ticks",
]

InstrumentKey = tuple[str, str]

_TICK_COLUMNS = ("instrument_id", "time", "trade_id", "price", "size", "side", "received_at")
_BAR_COLUMNS = ("instrument_id", "timeframe", "open_time", "open", "high", "low", "close", "volume", "vwap", "trades")


async def upsert_instruments(pool: asyncpg.Pool, instruments: Iterable[Instrument]) -> dict[InstrumentKey, int]:
    """Insert or update `instruments` and return every known instrument's id by (venue, symbol)."""
    rows = [
        (i.venue, i.symbol, i.asset_class, i.currency, Decimal(str(i.tick_size)), Decimal(str(i.qty_step)))
        for i in instruments
    ]
    async with pool.acquire() as conn:
        await conn.executemany(
            """
            INSERT INTO instruments (venue, symbol, asset_class, currency, tick_size, qty_step)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (venue, symbol) DO UPDATE SET
                asset_class = EXCLUDED.asset_class, currency = EXCLUDED.currency,
                tick_size = EXCLUDED.tick_size, qty_step = EXCLUDED.qty_step, active = true
            """,
            rows,
        )
        found = await conn.fetch("SELECT id, venue, symbol FROM instruments")
    return {(r["venue"], r["symbol"]): r["id"] for r in found}


async def fetch_instruments(
    pool: asyncpg.Pool, venue: str | None = None
) -> dict[InstrumentKey, tuple[int, Instrument]]:
    """Return the stored instruments (with their ids) by (venue, symbol)."""
    query = "SELECT * FROM instruments WHERE active" + (" AND venue = $1" if venue else "")
    async with pool.acquire() as conn:
        rows = await conn.fetch(query, *([venue] if venue else []))
    return {
        (r["venue"], r["symbol"]): (
            r["id"],
            Instrument(
                r["symbol"],
                tick_size=float(r["tick_size"]),
                qty_step=float(r["qty_step"]),
                venue=r["venue"],
                asset_class=r["asset_class"],
                currency=r["currency"],
            ),
        )
        for r in rows
    }


def tick_rows(
    ticks: Iterable[Tick], ids: Mapping[InstrumentKey, int], received_at: datetime
) -> list[tuple[object, ...]]:
    """Return COPY rows for `ticks` (every tick's instrument must be in `ids`)."""
    return [
        (ids[(t.venue, t.symbol)], ns_to_datetime(t.time_ns), t.trade_id, t.price, t.size, t.side, received_at)
        for t in ticks
    ]


async def _stage_and_merge(
    conn: asyncpg.Connection, table: str, columns: Sequence[str], rows: Sequence[tuple[object, ...]], merge: str
) -> int:
    """COPY `rows` into the connection's temp stage table and merge it; create the stage on first use.

    The stage is created once per connection (it lives as long as the session), not per write:
    writes are the ingestion hot path.
    """
    stage = f"{table}_stage"
    try:
        return await _copy_and_merge(conn, stage, columns, rows, merge)
    except asyncpg.UndefinedTableError:
        await conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        return await _copy_and_merge(conn, stage, columns, rows, merge)


async def _copy_and_merge(
    conn: asyncpg.Connection, stage: str, columns: Sequence[str], rows: Sequence[tuple[object, ...]], merge: str
) -> int:
    async with conn.transaction():
        await conn.copy_records_to_table(stage, records=rows, columns=list(columns))
        status = await conn.execute(merge)
    return int(status.split()[-1])


async def write_ticks(conn: asyncpg.Connection, rows: Sequence[tuple[object, ...]]) -> int:
    """Write tick rows (see `tick_rows`) idempotently; return how many were new."""
    if not rows:
        return 0
    cols = ", ".join(_TICK_COLUMNS)
    merge = f"INSERT INTO ticks ({cols}) SELECT {cols} FROM ticks_stage ON CONFLICT DO NOTHING"
    return await _stage_and_merge(conn, "ticks", _TICK_COLUMNS, rows, merge)


def bar_rows(bars: Iterable[Bar], ids: Mapping[InstrumentKey, int]) -> list[tuple[object, ...]]:
    """Return COPY rows for `bars`."""
    return [
        (
            ids[(b.venue, b.symbol)],
            b.timeframe,
            ns_to_datetime(b.open_ns),
            b.open,
            b.high,
            b.low,
            b.close,
            b.volume,
            b.vwap,
            b.trades,
        )
        for b in bars
    ]


async def write_bars(conn: asyncpg.Connection, rows: Sequence[tuple[object, ...]]) -> int:
    """Write bar rows idempotently (a bar written again replaces the stored one); return rows written."""
    if not rows:
        return 0
    cols = ", ".join(_BAR_COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _BAR_COLUMNS[3:])
    merge = (
        f"INSERT INTO bars ({cols}) SELECT DISTINCT ON (instrument_id, timeframe, open_time) {cols} FROM bars_stage "
        f"ORDER BY instrument_id, timeframe, open_time ON CONFLICT (instrument_id, timeframe, open_time) "
        f"DO UPDATE SET {updates}"
    )
    return await _stage_and_merge(conn, "bars", _BAR_COLUMNS, rows, merge)


async def fetch_bars(
    pool: asyncpg.Pool,
    symbols: Sequence[str],
    timeframe: str,
    start: datetime | None = None,
    end: datetime | None = None,
    venue: str | None = None,
) -> pd.DataFrame:
    """Return stored bars as a tidy table (open_time, venue, symbol, OHLCV, vwap, trades), time-ordered."""
    known = await fetch_instruments(pool, venue)
    wanted = {s: key for key in known for s in symbols if key[1] == s}
    missing = [s for s in symbols if s not in wanted]
    if missing:
        raise UnknownNameError("instrument", missing[0], sorted({k[1] for k in known}))
    ids = [known[wanted[s]][0] for s in symbols]
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            """
            SELECT b.open_time, i.venue, i.symbol, b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trades
            FROM bars b JOIN instruments i ON i.id = b.instrument_id
            WHERE b.instrument_id = ANY($1::int[]) AND b.timeframe = $2
              AND ($3::timestamptz IS NULL OR b.open_time >= $3)
              AND ($4::timestamptz IS NULL OR b.open_time < $4)
            ORDER BY b.open_time, i.symbol
            """,
            ids,
            timeframe,
            start,
            end,
        )
    columns = ["open_time", "venue", "symbol", "open", "high", "low", "close", "volume", "vwap", "trades"]
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


async def fetch_ticks(
    pool: asyncpg.Pool, venue: str, symbol: str, start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    """Return stored ticks of one instrument, time-ordered."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            """
            SELECT t.time, t.trade_id, t.price, t.size, t.side
            FROM ticks t JOIN instruments i ON i.id = t.instrument_id
            WHERE i.venue = $1 AND i.symbol = $2
              AND ($3::timestamptz IS NULL OR t.time >= $3) AND ($4::timestamptz IS NULL OR t.time < $4)
            ORDER BY t.time, t.trade_id
            """,
            venue,
            symbol,
            start,
            end,
        )
    return pd.DataFrame([tuple(r) for r in rows], columns=["time", "trade_id", "price", "size", "side"])


async def last_tick(pool: asyncpg.Pool, venue: str, symbol: str) -> tuple[datetime, str] | None:
    """Return the time and trade id of the latest stored tick of an instrument, if any."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            """
            SELECT t.time, t.trade_id FROM ticks t JOIN instruments i ON i.id = t.instrument_id
            WHERE i.venue = $1 AND i.symbol = $2 ORDER BY t.time DESC, t.trade_id DESC LIMIT 1
            """,
            venue,
            symbol,
        )
    return (row["time"], row["trade_id"]) if row else None

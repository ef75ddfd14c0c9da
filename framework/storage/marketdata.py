"""Market data tables: instruments, ticks and bars, written idempotently and read back.

Writes are single `INSERT ... SELECT FROM unnest($1::int4[], ...) ON CONFLICT` statements with the
columns passed as arrays: a batch written twice (a retry, a replay, a backfill overlapping live
data) leaves no duplicate, no staging table is needed (a temp table `ON COMMIT DELETE ROWS`
truncates its file at every commit, which cost more than the write itself at small batches), and
ticks and bars of one ingestion batch go in one statement, one round trip.

The ingestion path (`write_market_data`) passes times as integer microseconds since the epoch and
PostgreSQL turns them into `timestamptz` (`'epoch' + us * interval '1 microsecond'`, exact below
2**53 us, i.e. until the year 2255), so no Python `datetime` is made per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg
import pandas as pd

from framework.errors import UnknownNameError
from framework.events import Bar, Tick, TickBatch, ns_to_datetime
from framework.instruments import Instrument

__all__ = [
    "BarColumns",
    "InstrumentKey",
    "TickColumns",
    "bar_columns",
    "bar_rows",
    "fetch_bars",
    "fetch_instruments",
    "fetch_ticks",
    "ids_by_venue",
    "last_tick",
    "tick_columns",
    "tick_rows",
    "upsert_instruments",
    "write_bars",
    "write_market_data",
    "write_ticks",
]

InstrumentKey = tuple[str, str]

_TICK_COLUMNS = ("instrument_id", "time", "trade_id", "price", "size", "side", "received_at")
_BAR_COLUMNS = ("instrument_id", "timeframe", "open_time", "open", "high", "low", "close", "volume", "vwap", "trades")
_BAR_UPDATES = ", ".join(f"{c} = EXCLUDED.{c}" for c in _BAR_COLUMNS[3:])
_TICK_INSERT = f"INSERT INTO ticks ({', '.join(_TICK_COLUMNS)})"
_BAR_INSERT = f"INSERT INTO bars ({', '.join(_BAR_COLUMNS)})"
_BAR_MERGE = f"ON CONFLICT (instrument_id, timeframe, open_time) DO UPDATE SET {_BAR_UPDATES}"

# Ticks: a key already stored is skipped. Bars: a key already stored is replaced, and of several
# rows of one key in one statement the last wins (ON CONFLICT DO UPDATE cannot touch a row twice).
_WRITE_TICKS = f"""
    {_TICK_INSERT}
    SELECT * FROM unnest($1::int4[], $2::timestamptz[], $3::text[], $4::float8[], $5::float8[], $6::int2[],
                         $7::timestamptz[])
    ON CONFLICT DO NOTHING"""
_WRITE_BARS = f"""
    {_BAR_INSERT}
    SELECT DISTINCT ON (i, tf, o) i, tf, o, op, hi, lo, cl, v, vw, n
    FROM unnest($1::int4[], $2::text[], $3::timestamptz[], $4::float8[], $5::float8[], $6::float8[],
                $7::float8[], $8::float8[], $9::float8[], $10::int4[])
        WITH ORDINALITY AS u(i, tf, o, op, hi, lo, cl, v, vw, n, k)
    ORDER BY i, tf, o, k DESC
    {_BAR_MERGE}"""
_US = "'epoch'::timestamptz + {} * interval '1 microsecond'"  # exact: float8 holds whole us below 2**53
_WRITE_MARKET_DATA = f"""
    WITH new_bars AS (
        {_BAR_INSERT}
        SELECT DISTINCT ON (i, tf, o) i, tf, {_US.format("o")}, op, hi, lo, cl, v, vw, n
        FROM unnest($8::int4[], $9::text[], $10::int8[], $11::float8[], $12::float8[], $13::float8[],
                    $14::float8[], $15::float8[], $16::float8[], $17::int4[])
            WITH ORDINALITY AS u(i, tf, o, op, hi, lo, cl, v, vw, n, k)
        ORDER BY i, tf, o, k DESC
        {_BAR_MERGE}
    )
    {_TICK_INSERT}
    SELECT i, {_US.format("us")}, d, p, s, sd, $7::timestamptz
    FROM unnest($1::int4[], $2::int8[], $3::text[], $4::float8[], $5::float8[], $6::int2[]) AS u(i, us, d, p, s, sd)
    ON CONFLICT DO NOTHING"""
"""One statement, one round trip: a batch's bars (params 8-17) and its ticks (1-6; 7 is received_at)."""


@dataclass(frozen=True, slots=True)
class TickColumns:
    """Tick rows as columns, ready for `write_market_data`: times in microseconds since the epoch."""

    instrument_id: list[int]
    time_us: list[int]
    trade_id: list[str]
    price: list[float]
    size: list[float]
    side: list[int]

    def __len__(self) -> int:
        return len(self.instrument_id)


@dataclass(frozen=True, slots=True)
class BarColumns:
    """Bar rows as columns, ready for `write_market_data`: open times in microseconds since the epoch."""

    instrument_id: list[int]
    timeframe: list[str]
    open_us: list[int]
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]
    vwap: list[float]
    trades: list[int]

    def __len__(self) -> int:
        return len(self.instrument_id)


def ids_by_venue(ids: Mapping[InstrumentKey, int]) -> dict[str, dict[str, int]]:
    """Return instrument ids by venue, then symbol (the shape `tick_columns` looks them up in)."""
    out: dict[str, dict[str, int]] = {}
    for (venue, symbol), instrument_id in ids.items():
        out.setdefault(venue, {})[symbol] = instrument_id
    return out


def tick_columns(
    batches: Iterable[TickBatch], ticks: Sequence[Tick], ids: Mapping[str, Mapping[str, int]]
) -> TickColumns:
    """Return the trades of `batches` and `ticks` as columns; `ids` from `ids_by_venue` must hold them all.

    Times are floored to whole microseconds, as PostgreSQL stores them.
    """
    instrument_id: list[int] = []
    time_us: list[int] = []
    trade_id: list[str] = []
    price: list[float] = []
    size: list[float] = []
    side: list[int] = []
    for batch in batches:
        venue_ids = ids[batch.venue]
        instrument_id += [venue_ids[s] for s in batch.symbols]
        time_us += (batch.time_ns // 1000).tolist()
        trade_id += batch.trade_ids
        price += batch.price.tolist()
        size += batch.size.tolist()
        side += batch.side.tolist()
    if ticks:
        instrument_id += [ids[t.venue][t.symbol] for t in ticks]
        time_us += [t.time_ns // 1000 for t in ticks]
        trade_id += [t.trade_id for t in ticks]
        price += [t.price for t in ticks]
        size += [t.size for t in ticks]
        side += [t.side for t in ticks]
    return TickColumns(instrument_id, time_us, trade_id, price, size, side)


def bar_columns(bars: Sequence[Bar], ids: Mapping[str, Mapping[str, int]]) -> BarColumns:
    """Return `bars` as columns; `ids` from `ids_by_venue` must hold every instrument."""
    return BarColumns(
        [ids[b.venue][b.symbol] for b in bars],
        [b.timeframe for b in bars],
        [b.open_ns // 1000 for b in bars],
        [b.open for b in bars],
        [b.high for b in bars],
        [b.low for b in bars],
        [b.close for b in bars],
        [b.volume for b in bars],
        [b.vwap for b in bars],
        [b.trades for b in bars],
    )


async def write_market_data(
    conn: asyncpg.Connection, ticks: TickColumns, bars: BarColumns, received_at: datetime
) -> int:
    """Write ticks (skipping stored keys) and bars (replacing stored keys) in one statement; return new ticks."""
    if not len(ticks) and not len(bars):
        return 0
    status = await conn.execute(
        _WRITE_MARKET_DATA,
        ticks.instrument_id,
        ticks.time_us,
        ticks.trade_id,
        ticks.price,
        ticks.size,
        ticks.side,
        received_at,
        bars.instrument_id,
        bars.timeframe,
        bars.open_us,
        bars.open,
        bars.high,
        bars.low,
        bars.close,
        bars.volume,
        bars.vwap,
        bars.trades,
    )
    return int(status.split()[-1])


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


async def write_ticks(conn: asyncpg.Connection, rows: Sequence[tuple[object, ...]]) -> int:
    """Write tick rows (see `tick_rows`) idempotently; return how many were new."""
    if not rows:
        return 0
    status = await conn.execute(_WRITE_TICKS, *(list(column) for column in zip(*rows, strict=True)))
    return int(status.split()[-1])


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
    status = await conn.execute(_WRITE_BARS, *(list(column) for column in zip(*rows, strict=True)))
    return int(status.split()[-1])


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

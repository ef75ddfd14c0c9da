"""The API's read side in SQL: paged bars, ticks, orders, fills and equity snapshots.

Rows map straight to API schemas here (these are read models; the domain's own mapping lives in
`framework.storage` and `framework.engine.order_store`). Every list is keyset-paged (see
`runner.api.paging`): time ranges are half-open, `[start, end)`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from framework.events import datetime_to_ns, ns_to_datetime
from framework.instruments import Instrument
from framework.storage.marketdata import fetch_instruments
from framework.timeframes import timeframe_ns
from runner.api.errors import ApiError
from runner.api.paging import decode_cursor, page_cursor, time_of
from runner.api.schemas import (
    BarOut,
    BarsPage,
    EquityPage,
    EquityPoint,
    FillOut,
    FillsPage,
    OrderOut,
    TickOut,
    TicksPage,
)

__all__ = ["bars_page", "equity_page", "fills_page", "find_instrument", "order_row_out", "order_rows", "ticks_page"]


async def find_instrument(pool: asyncpg.Pool, symbol: str, venue: str | None) -> tuple[int, Instrument]:
    """Return the stored instrument's id and value, or raise a 404 `unknown_symbol` (409 if ambiguous)."""
    known = await fetch_instruments(pool, venue)
    matches = [value for (v, s), value in known.items() if s == symbol]
    if not matches:
        where = f" on {venue}" if venue else ""
        raise ApiError(404, "unknown_symbol", f"no instrument {symbol!r}{where} is stored")
    if len(matches) > 1:
        venues = sorted(i.venue for _, i in matches)
        raise ApiError(409, "ambiguous_symbol", f"{symbol!r} is stored for several venues {venues}; give venue")
    return matches[0]


async def bars_page(
    pool: asyncpg.Pool,
    symbol: str,
    timeframe: str,
    *,
    venue: str | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    cursor: str | None,
) -> BarsPage:
    """Return one page of stored bars of one instrument, by open time."""
    step = timeframe_ns(timeframe)
    instrument_id, instrument = await find_instrument(pool, symbol, venue)
    key = decode_cursor(cursor, 1)
    after = time_of(key[0]) if key else None
    rows = await pool.fetch(
        """
        SELECT open_time, open, high, low, close, volume, vwap, trades FROM bars
        WHERE instrument_id = $1 AND timeframe = $2
          AND ($3::timestamptz IS NULL OR open_time >= $3) AND ($4::timestamptz IS NULL OR open_time < $4)
          AND ($5::timestamptz IS NULL OR open_time > $5)
        ORDER BY open_time LIMIT $6
        """,
        instrument_id,
        timeframe,
        start,
        end,
        after,
        limit + 1,
    )
    page, next_cursor = page_cursor(list(rows), limit, "open_time")
    items = [
        BarOut(
            venue=instrument.venue,
            symbol=symbol,
            timeframe=timeframe,
            time=r["open_time"],
            close_time=ns_to_datetime(datetime_to_ns(r["open_time"]) + step),
            open=r["open"],
            high=r["high"],
            low=r["low"],
            close=r["close"],
            volume=r["volume"],
            vwap=_finite(r["vwap"]),
            trades=r["trades"],
        )
        for r in page
    ]
    return BarsPage(items=items, next_cursor=next_cursor)


async def ticks_page(
    pool: asyncpg.Pool,
    symbol: str,
    *,
    venue: str | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    cursor: str | None,
) -> TicksPage:
    """Return one page of stored ticks of one instrument, by time then trade id."""
    instrument_id, instrument = await find_instrument(pool, symbol, venue)
    key = decode_cursor(cursor, 2)
    after, after_id = (time_of(key[0]), str(key[1])) if key else (None, None)
    rows = await pool.fetch(
        """
        SELECT time, trade_id, price, size, side FROM ticks
        WHERE instrument_id = $1
          AND ($2::timestamptz IS NULL OR time >= $2) AND ($3::timestamptz IS NULL OR time < $3)
          AND ($4::timestamptz IS NULL OR (time, trade_id) > ($4, $5::text))
        ORDER BY time, trade_id LIMIT $6
        """,
        instrument_id,
        start,
        end,
        after,
        after_id,
        limit + 1,
    )
    page, next_cursor = page_cursor(list(rows), limit, "time", "trade_id")
    items = [
        TickOut(
            venue=instrument.venue,
            symbol=symbol,
            time=r["time"],
            trade_id=r["trade_id"],
            price=r["price"],
            size=r["size"],
            side=r["side"],
        )
        for r in page
    ]
    return TicksPage(items=items, next_cursor=next_cursor)


async def order_rows(
    pool: asyncpg.Pool,
    *,
    venue: str,
    mode: str,
    status: str | None,
    strategy: str | None,
    symbol: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[asyncpg.Record], str | None]:
    """Return one page of stored orders of a venue and mode, newest first, and the next cursor."""
    key = decode_cursor(cursor, 2)
    before, before_id = (time_of(key[0]), str(key[1])) if key else (None, None)
    rows = await pool.fetch(
        """
        SELECT client_id, strategy, venue, symbol, side, type, quantity, limit_price, mode, status, filled,
               avg_price, fees, venue_order_id, reason, created_at, updated_at
        FROM orders WHERE venue = $1 AND mode = $2 AND ($3::text IS NULL OR status = $3)
          AND ($4::text IS NULL OR strategy = $4) AND ($5::text IS NULL OR symbol = $5)
          AND ($6::timestamptz IS NULL OR created_at >= $6) AND ($7::timestamptz IS NULL OR created_at < $7)
          AND ($8::timestamptz IS NULL OR (created_at, client_id) < ($8, $9::text))
        ORDER BY created_at DESC, client_id DESC LIMIT $10
        """,
        venue,
        mode,
        status,
        strategy,
        symbol,
        since,
        until,
        before,
        before_id,
        limit + 1,
    )
    return page_cursor(list(rows), limit, "created_at", "client_id")


def order_row_out(row: asyncpg.Record) -> OrderOut:
    """Return the API view of a stored order row."""
    return OrderOut(**_plain(row))


async def fills_page(
    pool: asyncpg.Pool,
    *,
    venue: str,
    mode: str,
    strategy: str | None,
    symbol: str | None,
    client_id: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
) -> FillsPage:
    """Return one page of fills of a venue and mode, newest first."""
    key = decode_cursor(cursor, 2)
    before, before_id = (time_of(key[0]), str(key[1])) if key else (None, None)
    rows = await pool.fetch(
        """
        SELECT * FROM fills
        WHERE venue = $1 AND mode = $2 AND ($3::text IS NULL OR strategy = $3) AND ($4::text IS NULL OR symbol = $4)
          AND ($5::text IS NULL OR client_id = $5)
          AND ($6::timestamptz IS NULL OR time >= $6) AND ($7::timestamptz IS NULL OR time < $7)
          AND ($8::timestamptz IS NULL OR (time, fill_id) < ($8, $9::text))
        ORDER BY time DESC, fill_id DESC LIMIT $10
        """,
        venue,
        mode,
        strategy,
        symbol,
        client_id,
        since,
        until,
        before,
        before_id,
        limit + 1,
    )
    page, next_cursor = page_cursor(list(rows), limit, "time", "fill_id")
    items = [
        FillOut(
            fill_id=r["fill_id"],
            client_id=r["client_id"],
            venue=r["venue"],
            strategy=r["strategy"],
            symbol=r["symbol"],
            side=r["side"],
            quantity=r["quantity"],
            price=r["price"],
            fee=r["fee"],
            mode=r["mode"],
            time=r["time"],
        )
        for r in page
    ]
    return FillsPage(items=items, next_cursor=next_cursor)


async def equity_page(
    pool: asyncpg.Pool,
    *,
    strategy: str | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    cursor: str | None,
) -> EquityPage:
    """Return one page of equity snapshots of a strategy instance, or of the account (their sum), by time."""
    key = decode_cursor(cursor, 1)
    after = time_of(key[0]) if key else None
    rows = await pool.fetch(
        """
        SELECT coalesce($1::text, '*') AS strategy, time, sum(equity) AS equity, sum(cash) AS cash,
               sum(realised_pnl) AS realised, sum(unrealised_pnl) AS unrealised
        FROM equity_snapshots
        WHERE ($1::text IS NULL OR strategy = $1)
          AND ($2::timestamptz IS NULL OR time >= $2) AND ($3::timestamptz IS NULL OR time < $3)
          AND ($4::timestamptz IS NULL OR time > $4)
        GROUP BY time ORDER BY time LIMIT $5
        """,
        strategy,
        start,
        end,
        after,
        limit + 1,
    )
    page, next_cursor = page_cursor(list(rows), limit, "time")
    items = [EquityPoint(**_plain(r)) for r in page]
    return EquityPage(items=items, next_cursor=next_cursor)


def _plain(row: asyncpg.Record) -> dict[str, Any]:
    return dict(row.items())


def _finite(value: float | None) -> float | None:
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return None
    return value

"""Historical bars from an exchange's REST API through ccxt, stored idempotently.

Pages of OHLCV are fetched forward from `since` until `until` (default: now), the bar still in
progress is left out, and each page is stored as it arrives, so an interrupted backfill resumes by
simply running again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import asyncpg
import pandas as pd

from framework.errors import RejectedError, TransientError, UnknownNameError
from framework.events import Bar
from framework.instruments import Instrument
from framework.storage.marketdata import bar_rows, upsert_instruments, write_bars
from framework.timeframes import timeframe_ns

__all__ = ["backfill_ohlcv", "instrument_from_market", "make_exchange"]


def make_exchange(
    exchange_id: str,
    *,
    urls: Mapping[str, str] | None = None,
    config: Mapping[str, Any] | None = None,
    pro: bool = False,
) -> Any:
    """Return an async ccxt exchange (ccxt.pro with websockets when `pro`), URLs overridden by `urls`."""
    if pro:
        import ccxt.pro as module
    else:
        import ccxt.async_support as module
    if exchange_id not in module.exchanges:
        raise UnknownNameError("exchange", exchange_id, list(module.exchanges))
    exchange = getattr(module, exchange_id)({"enableRateLimit": True, **(config or {})})
    for key, url in (urls or {}).items():
        api = exchange.urls.setdefault("api", {})
        if isinstance(api, dict):
            api[key] = url
        else:
            exchange.urls["api"] = url
    return exchange


def instrument_from_market(exchange: Any, market: Mapping[str, Any], venue: str) -> Instrument:
    """Return the `Instrument` of a ccxt market, with its tick size and quantity step."""
    from ccxt.base.decimal_to_precision import TICK_SIZE

    precision = market.get("precision") or {}

    def step(value: Any, default: float) -> float:
        if value is None:
            return default
        return float(value) if exchange.precisionMode == TICK_SIZE else 10.0 ** -float(value)

    return Instrument(
        str(market["symbol"]),
        tick_size=step(precision.get("price"), 1e-8),
        qty_step=step(precision.get("amount"), 1e-8),
        venue=venue,
        asset_class=str(market.get("type") or "crypto"),
        currency=str(market.get("quote") or "USD"),
    )


def _ms(value: datetime | str | int | None, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, int):
        return value
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value // 1_000_000)


async def backfill_ohlcv(
    pool: asyncpg.Pool,
    exchange_id: str,
    symbol: str,
    timeframe: str,
    since: datetime | str | int,
    until: datetime | str | int | None = None,
    *,
    urls: Mapping[str, str] | None = None,
    config: Mapping[str, Any] | None = None,
    limit: int = 1000,
    on_page: Callable[[int], None] | None = None,
) -> int:
    """Fetch and store `symbol`'s `timeframe` bars from `since` to `until`; return the bars stored."""
    step_ms = timeframe_ns(timeframe) // 1_000_000
    now_ms = int(time.time() * 1000)
    start_ms, end_ms = _ms(since, 0), min(_ms(until, now_ms), now_ms)
    if start_ms >= end_ms:
        raise RejectedError(f"--since ({since}) must be before --until ({until or 'now'})")
    from framework.feeds.venues import venue_for
    from framework.venues import merged_config

    profile = venue_for(exchange_id).config([symbol])
    exchange = make_exchange(exchange_id, urls=urls, config=merged_config(profile, config or {}))
    try:
        await exchange.load_markets()
        if symbol not in exchange.markets:
            raise UnknownNameError(f"{exchange_id} symbol", symbol, sorted(exchange.markets)[:20])
        instrument = instrument_from_market(exchange, exchange.markets[symbol], exchange_id)
        ids = await upsert_instruments(pool, [instrument])
        stored, cursor = 0, start_ms - start_ms % step_ms
        while cursor < end_ms:
            try:
                page = await exchange.fetch_ohlcv(symbol, timeframe, since=cursor, limit=limit)
            except Exception as exc:
                raise TransientError(f"{exchange_id} fetch_ohlcv failed at {cursor}: {exc}") from exc
            complete = [row for row in page if row[0] >= cursor and row[0] + step_ms <= min(end_ms, now_ms)]
            if not complete:
                break
            bars = [
                Bar(
                    exchange_id,
                    symbol,
                    timeframe,
                    int(r[0]) * 1_000_000,
                    float(r[1]),
                    float(r[2]),
                    float(r[3]),
                    float(r[4]),
                    float(r[5] or 0.0),
                    (float(r[2]) + float(r[3]) + float(r[4])) / 3,
                    0,
                )
                for r in complete
            ]
            async with pool.acquire() as conn:
                stored += await write_bars(conn, bar_rows(bars, ids))
            if on_page is not None:
                on_page(len(bars))
            cursor = int(complete[-1][0]) + step_ms
        return stored
    finally:
        await exchange.close()

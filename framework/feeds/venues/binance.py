"""Binance: watch the `aggTrade` stream and backfill from `GET /api/v3/aggTrades?fromId=`.

ccxt's defaults do not fit together for gap-free recording: `watch_trades` subscribes to the raw
`<symbol>@trade` stream (ids are trade ids), while `fetch_trades` reads `/api/v3/aggTrades` (ids
are *aggregate* trade ids, another numbering). The raw-trade REST endpoint that pages by id,
`historicalTrades`, needs an API key in ccxt. So this profile switches the stream to
`<symbol>@aggTrade`: stream and REST then share one gap-free id sequence per symbol, a jump in ids
is a detected gap, and a backfill pages exactly with `fromId = last id + 1` (never by time: with
`since`, ccxt also sends `endTime = since + 1h` and a quiet hour would end the backfill early).
A stored tick's `trade_id` is therefore Binance's aggregate trade id.

Market loading is limited to the market types the symbols need (spot for `BTC/USDT`, linear or
inverse for `BTC/USDT:USDT` / `BTC/USD:BTC`), instead of ccxt's default spot + both futures APIs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from framework.feeds.venues.base import CcxtVenue, TradeCursor

__all__ = ["VENUE", "BinanceVenue"]


class BinanceVenue(CcxtVenue):
    """Binance spot and futures public trades through ccxt."""

    sequenced = True

    def config(self, symbols: Sequence[str]) -> dict[str, Any]:
        """Return options: the aggTrade stream, and only the market types the symbols need."""
        types: list[str] = []
        for symbol in symbols:
            kind = _market_type(symbol)
            if kind not in types:
                types.append(kind)
        return {
            "options": {
                "watchTrades": {"name": "aggTrade"},
                "watchTradesForSymbols": {"name": "aggTrade"},
                "fetchMarkets": {"types": types or ["spot"]},
            }
        }

    def seq(self, trade_id: str) -> int | None:
        """Return the aggregate trade id as an integer."""
        return int(trade_id) if trade_id.isdigit() else None

    def backfill_query(self, cursor: TradeCursor) -> tuple[int | None, dict[str, Any]]:
        """Page by id after the cursor (by time only when the cursor's id is not a Binance id)."""
        if cursor.seq is None:
            return cursor.time_ms, {}
        return None, {"fromId": cursor.seq + 1}

    def sent_ns(self, trade: Mapping[str, Any]) -> int:
        """Return the event time `E` of a streamed trade."""
        info = trade.get("info")
        event_ms = info.get("E") if isinstance(info, Mapping) else None
        return int(event_ms) * 1_000_000 if isinstance(event_ms, int) else 0


def _market_type(symbol: str) -> str:
    """Return ccxt binance's market type of a unified symbol (spot, linear, inverse or option)."""
    pair, _, settle = symbol.partition(":")
    if not settle:
        return "spot"
    parts = settle.split("-")
    if len(parts) >= 4:
        return "option"
    return "linear" if parts[0] == pair.rpartition("/")[2] else "inverse"


VENUE = BinanceVenue()

"""Binance spot's public wire format: the payloads `FakeBinance` serves, built from its trades.

`FakeMarket` describes a symbol and `FakeTrade` one trade; they render themselves as Binance's REST
rows and websocket events, byte for byte the field names and types Binance sends (prices and
quantities as 8-decimal strings, times in milliseconds). `symbol_info` is an `exchangeInfo` entry
with the real filter set, `kline` a `klines` row.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["DEFAULT_MARKETS", "INTERVAL_MS", "FakeMarket", "FakeTrade", "kline", "symbol_info"]

INTERVAL_MS = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
}


def _fmt(value: Decimal) -> str:
    return f"{value:.8f}"


@dataclass(frozen=True, slots=True)
class FakeMarket:
    """A spot symbol: Binance id, assets, filters and how its price moves."""

    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    start_price: Decimal
    first_id: int = 1_000_000
    volatility_ticks: float = 3.0
    mean_steps: float = 40.0


DEFAULT_MARKETS = (
    FakeMarket("BTCUSDT", "BTC", "USDT", Decimal("0.01"), Decimal("0.00001"), Decimal("64000"), 3_500_000_000),
    FakeMarket("ETHUSDT", "ETH", "USDT", Decimal("0.01"), Decimal("0.0001"), Decimal("3100"), 1_800_000_000),
    FakeMarket("SOLUSDT", "SOL", "USDT", Decimal("0.01"), Decimal("0.001"), Decimal("145"), 900_000_000),
)


@dataclass(frozen=True, slots=True)
class FakeTrade:
    """One trade as the exchange recorded it."""

    id: int
    time_ms: int
    price: Decimal
    qty: Decimal
    buyer_maker: bool

    @property
    def side(self) -> int:
        """Return 1 when the taker bought (the buyer was not the maker), -1 when they sold."""
        return -1 if self.buyer_maker else 1

    def agg_trade(self) -> dict[str, Any]:
        """Return the `GET /api/v3/aggTrades` row."""
        return {
            "a": self.id,
            "p": _fmt(self.price),
            "q": _fmt(self.qty),
            "f": self.id,
            "l": self.id,
            "T": self.time_ms,
            "m": self.buyer_maker,
            "M": True,
        }

    def rest_trade(self) -> dict[str, Any]:
        """Return the `GET /api/v3/trades` (and `historicalTrades`) row."""
        return {
            "id": self.id,
            "price": _fmt(self.price),
            "qty": _fmt(self.qty),
            "quoteQty": _fmt(self.price * self.qty),
            "time": self.time_ms,
            "isBuyerMaker": self.buyer_maker,
            "isBestMatch": True,
        }

    def event(self, stream_kind: str, symbol: str, event_ms: int) -> dict[str, Any]:
        """Return the websocket event of the `trade` or `aggTrade` stream."""
        if stream_kind == "aggTrade":
            return {"e": "aggTrade", "E": event_ms, "s": symbol, **self.agg_trade()}
        return {
            "e": "trade",
            "E": event_ms,
            "s": symbol,
            "t": self.id,
            "p": _fmt(self.price),
            "q": _fmt(self.qty),
            "T": self.time_ms,
            "m": self.buyer_maker,
            "M": True,
        }


def kline(trades: list[FakeTrade], open_ms: int, span: int) -> list[Any]:
    """Return the `klines` row of the bar opening at `open_ms` (`span` ms long) made of `trades`."""
    prices = [t.price for t in trades]
    volume = sum((t.qty for t in trades), Decimal(0))
    quote = sum((t.qty * t.price for t in trades), Decimal(0))
    buy_volume = sum((t.qty for t in trades if not t.buyer_maker), Decimal(0))
    buy_quote = sum((t.qty * t.price for t in trades if not t.buyer_maker), Decimal(0))
    return [
        open_ms,
        _fmt(prices[0]),
        _fmt(max(prices)),
        _fmt(min(prices)),
        _fmt(prices[-1]),
        _fmt(volume),
        open_ms + span - 1,
        _fmt(quote),
        len(trades),
        _fmt(buy_volume),
        _fmt(buy_quote),
        "0",
    ]


def symbol_info(m: FakeMarket) -> dict[str, Any]:
    """Return the `exchangeInfo` entry of a spot symbol, with Binance's filter set."""
    return {
        "symbol": m.symbol,
        "status": "TRADING",
        "baseAsset": m.base,
        "baseAssetPrecision": 8,
        "quoteAsset": m.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": [
            "LIMIT",
            "LIMIT_MAKER",
            "MARKET",
            "STOP_LOSS",
            "STOP_LOSS_LIMIT",
            "TAKE_PROFIT",
            "TAKE_PROFIT_LIMIT",
        ],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "amendAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": True,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": _fmt(m.tick_size),
                "maxPrice": "1000000.00000000",
                "tickSize": _fmt(m.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": _fmt(m.step_size),
                "maxQty": "9000.00000000",
                "stepSize": _fmt(m.step_size),
            },
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": "0.00000000",
                "maxQty": "100.00000000",
                "stepSize": "0.00000000",
            },
            {
                "filterType": "TRAILING_DELTA",
                "minTrailingAboveDelta": 10,
                "maxTrailingAboveDelta": 2000,
                "minTrailingBelowDelta": 10,
                "maxTrailingBelowDelta": 2000,
            },
            {
                "filterType": "PERCENT_PRICE_BY_SIDE",
                "bidMultiplierUp": "5",
                "bidMultiplierDown": "0.2",
                "askMultiplierUp": "5",
                "askMultiplierDown": "0.2",
                "avgPriceMins": 5,
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": "5.00000000",
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        ],
        "permissions": [],
        "permissionSets": [["SPOT", "MARGIN", "TRD_GRP_004", "TRD_GRP_005"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"],
    }

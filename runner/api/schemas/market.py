"""Schemas of instruments, bars and ticks."""

from __future__ import annotations

from datetime import datetime

from runner.api.schemas.common import Money, Schema

__all__ = ["BarOut", "BarsPage", "InstrumentOut", "TickOut", "TicksPage"]


class InstrumentOut(Schema):
    """An instrument: where it trades, its price tick and quantity step."""

    venue: str
    symbol: str
    asset_class: str
    currency: str
    tick_size: Money
    qty_step: Money
    tradable: bool
    stored: bool


class BarOut(Schema):
    """One OHLCV bar; `time` is its open time, `close_time` when it closed."""

    venue: str
    symbol: str
    timeframe: str
    time: datetime
    close_time: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float | None
    trades: int | None


class BarsPage(Schema):
    """Bars in time order; pass `next_cursor` as `cursor` for the next page (None: no more)."""

    items: list[BarOut]
    next_cursor: str | None


class TickOut(Schema):
    """One trade."""

    venue: str
    symbol: str
    time: datetime
    trade_id: str
    price: float
    size: float
    side: int


class TicksPage(Schema):
    """Ticks in time order; pass `next_cursor` as `cursor` for the next page (None: no more)."""

    items: list[TickOut]
    next_cursor: str | None

"""Normalised market data events, as feeds emit them and the ingestion pipeline consumes them.

Times are integers of nanoseconds since the Unix epoch (UTC): exact, cheap to compare and to
aggregate at tens of thousands of events a second. `Tick.time_ns` is the venue's trade time;
`recv_ns` is when rata received it and `sent_ns`, when a venue says, when it was sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["Bar", "MarketEvent", "Tick", "datetime_to_ns", "ns_to_datetime"]


def ns_to_datetime(ns: int) -> datetime:
    """Return an aware UTC datetime (microsecond precision) for `ns` nanoseconds since the epoch."""
    return datetime.fromtimestamp(ns // 1000 / 1_000_000, tz=UTC)


def datetime_to_ns(value: datetime) -> int:
    """Return nanoseconds since the epoch for an aware datetime."""
    if value.tzinfo is None:
        raise ValueError("naive datetimes are not accepted; use timezone-aware UTC")
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


@dataclass(frozen=True, slots=True)
class Tick:
    """One trade. `side` is 1 when the taker bought, -1 when they sold, 0 when unknown."""

    venue: str
    symbol: str
    time_ns: int
    trade_id: str
    price: float
    size: float
    side: int = 0
    recv_ns: int = 0
    sent_ns: int = 0


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar of `timeframe` opening at `open_ns` (closing at `open_ns` + the timeframe)."""

    venue: str
    symbol: str
    timeframe: str
    open_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float
    trades: int


MarketEvent = Tick | Bar

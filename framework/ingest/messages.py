"""Dict messages to events, and the reasons an event is refused.

Feeds may hand the pipeline plain dict messages instead of `Tick`/`Bar` objects; this module
turns them into events, leniently (prices as decimal strings, integer trade ids, "buy"/"sell"),
and names every way an event can be refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from framework.errors import DataError
from framework.events import Bar, MarketEvent, Tick

__all__ = [
    "DUPLICATE",
    "FUTURE_TIMESTAMP",
    "INVALID_VALUE",
    "MISSING_FIELD",
    "NON_FINITE",
    "NON_POSITIVE",
    "OUT_OF_ORDER",
    "REASONS",
    "UNKNOWN_INSTRUMENT",
    "WRONG_TYPE",
    "InvalidEvent",
    "event_from_mapping",
]

MISSING_FIELD: Final = "missing_field"
WRONG_TYPE: Final = "wrong_type"
NON_FINITE: Final = "non_finite"
NON_POSITIVE: Final = "non_positive"
INVALID_VALUE: Final = "invalid_value"
UNKNOWN_INSTRUMENT: Final = "unknown_instrument"
FUTURE_TIMESTAMP: Final = "future_timestamp"
DUPLICATE: Final = "duplicate"
OUT_OF_ORDER: Final = "out_of_order"
REASONS: Final = (
    MISSING_FIELD,
    WRONG_TYPE,
    NON_FINITE,
    NON_POSITIVE,
    INVALID_VALUE,
    UNKNOWN_INSTRUMENT,
    FUTURE_TIMESTAMP,
    DUPLICATE,
    OUT_OF_ORDER,
)
"""Every reason an event can be refused for (keys of `Normaliser.rejected`)."""

_TICK_FIELDS = ("venue", "symbol", "time_ns", "trade_id", "price", "size")
_BAR_FIELDS = ("venue", "symbol", "timeframe", "open_ns", "open", "high", "low", "close", "volume", "vwap", "trades")
_SIDES = {"buy": 1, "sell": -1, "b": 1, "s": -1, "": 0}


class InvalidEvent(DataError):
    """An event refused for `reason` (one of `REASONS`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _number(value: object) -> float:
    if isinstance(value, float):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise InvalidEvent(WRONG_TYPE) from None
    raise InvalidEvent(WRONG_TYPE)


def _integer(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise InvalidEvent(WRONG_TYPE)


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise InvalidEvent(WRONG_TYPE)


def _side(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        side = _SIDES.get(value.lower())
        if side is None:
            raise InvalidEvent(INVALID_VALUE)
        return side
    return _integer(value)


def event_from_mapping(message: Mapping[str, object]) -> MarketEvent:
    """Build a `Tick` (or a `Bar` when the message has a `timeframe`) from a dict message.

    Field names are those of the event classes. Numbers may come as strings (venues send prices
    as decimal strings), trade ids as integers, and a tick's side as 1/-1/0 or "buy"/"sell".
    Raise `InvalidEvent` (a `ValueError`) when a field is missing or cannot be converted; the
    values themselves are checked by `Normaliser.check`.
    """
    is_bar = "timeframe" in message
    for name in _BAR_FIELDS if is_bar else _TICK_FIELDS:
        if message.get(name) is None:
            raise InvalidEvent(MISSING_FIELD)
    if is_bar:
        return Bar(
            venue=_text(message["venue"]),
            symbol=_text(message["symbol"]),
            timeframe=_text(message["timeframe"]),
            open_ns=_integer(message["open_ns"]),
            open=_number(message["open"]),
            high=_number(message["high"]),
            low=_number(message["low"]),
            close=_number(message["close"]),
            volume=_number(message["volume"]),
            vwap=_number(message["vwap"]),
            trades=_integer(message["trades"]),
        )
    return Tick(
        venue=_text(message["venue"]),
        symbol=_text(message["symbol"]),
        time_ns=_integer(message["time_ns"]),
        trade_id=_text(message["trade_id"]),
        price=_number(message["price"]),
        size=_number(message["size"]),
        side=_side(message.get("side")),
        recv_ns=_integer(message.get("recv_ns") or 0),
        sent_ns=_integer(message.get("sent_ns") or 0),
    )

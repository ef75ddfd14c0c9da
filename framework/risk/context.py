"""What the risk checks need to know about the book and the market, filled in by the engine.

`RiskContext` is the seam: the live engine implements it over its incrementally kept positions,
working orders and last trades, so a check costs a few dictionary lookups. `RiskSnapshot` is a
plain implementation over dictionaries, for tests, manual tools and small runners.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol, runtime_checkable

__all__ = ["LastTrade", "RiskContext", "RiskSnapshot"]

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class LastTrade:
    """The last trade seen on an instrument: its price and its time (ns since the epoch, UTC)."""

    price: Decimal
    time_ns: int


@runtime_checkable
class RiskContext(Protocol):
    """The book and the market at the moment of a check. `strategy=None` means the whole account."""

    def position(self, strategy: str | None, symbol: str) -> Decimal:
        """Return the signed net position (0 when flat) of `strategy`, or of the account."""
        ...

    def gross_exposure(self, strategy: str | None) -> Decimal:
        """Return the sum over instruments of |position x last price|, of `strategy` or the account."""
        ...

    def open_orders(self, strategy: str | None) -> int:
        """Return the number of working (not terminal) orders, of `strategy` or the account."""
        ...

    def last_trade(self, symbol: str) -> LastTrade | None:
        """Return the last trade on `symbol`, or None if none was seen."""
        ...


@dataclass(frozen=True, slots=True)
class RiskSnapshot:
    """A `RiskContext` over plain mappings, with the account totals derived once at construction.

    `positions` maps (strategy, symbol) to a signed quantity; `open_orders` maps a strategy to its
    number of working orders; gross exposure is valued at the last trades (an instrument with no
    last trade counts as 0).
    """

    positions: Mapping[tuple[str, str], Decimal] = field(default_factory=dict)
    last_trades: Mapping[str, LastTrade] = field(default_factory=dict)
    working_orders: Mapping[str, int] = field(default_factory=dict)
    _net: dict[str, Decimal] = field(init=False, repr=False, compare=False)
    _gross: dict[str | None, Decimal] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        net: dict[str, Decimal] = {}
        gross: dict[str | None, Decimal] = {}
        for (strategy, symbol), qty in self.positions.items():
            net[symbol] = net.get(symbol, ZERO) + qty
            trade = self.last_trades.get(symbol)
            if trade is not None:
                gross[strategy] = gross.get(strategy, ZERO) + abs(qty * trade.price)
        account = ZERO
        for symbol, qty in net.items():
            trade = self.last_trades.get(symbol)
            if trade is not None:
                account += abs(qty * trade.price)
        gross[None] = account
        object.__setattr__(self, "_net", net)
        object.__setattr__(self, "_gross", gross)

    def position(self, strategy: str | None, symbol: str) -> Decimal:
        """Return the position of `strategy` in `symbol`, or the account's net position."""
        if strategy is None:
            return self._net.get(symbol, ZERO)
        return self.positions.get((strategy, symbol), ZERO)

    def gross_exposure(self, strategy: str | None) -> Decimal:
        """Return the gross exposure of `strategy`, or of the account (netted per instrument)."""
        return self._gross.get(strategy, ZERO)

    def open_orders(self, strategy: str | None) -> int:
        """Return the working orders of `strategy`, or of the account."""
        if strategy is None:
            return sum(self.working_orders.values())
        return self.working_orders.get(strategy, 0)

    def last_trade(self, symbol: str) -> LastTrade | None:
        """Return the last trade on `symbol`."""
        return self.last_trades.get(symbol)

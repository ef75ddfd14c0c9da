"""`LiveRiskContext`: the `RiskContext` of the live engine, kept incrementally as fills, orders and prices move.

`RiskSnapshot` derives its totals once from plain mappings; the live engine cannot afford that on
every check (40 strategies, many symbols, one check per order), so this context keeps every number a
check reads up to date as things change, and a check costs only dictionary lookups:

- positions per (strategy, symbol) and netted per symbol for the account, set from the position
  book after each fill;
- gross exposure per strategy and for the account (netted per symbol first), valued at the last
  trades: a position change adjusts one symbol's contribution, a new last trade adjusts the
  contributions of the strategies holding that symbol (kept in `_holders`);
- working orders per strategy and for the account: an order counts from the moment it passed the
  risk check (status submitted or later) until it is terminal, so a check's "counting the new
  one" never counts the new order twice.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from framework.orders.model import ACTIVE_STATUSES, Order, OrderStatus
from framework.risk.context import LastTrade

__all__ = ["LiveRiskContext", "is_working"]

ZERO: Final = Decimal(0)


_WORKING: Final = ACTIVE_STATUSES - {OrderStatus.NEW}


def is_working(order: Order) -> bool:
    """Return whether `order` counts as working for the risk limits: sent (or being sent) and not terminal."""
    return order.status in _WORKING


class LiveRiskContext:
    """A `RiskContext` over the live book; see the module docstring."""

    def __init__(self) -> None:
        self._positions: dict[tuple[str, str], Decimal] = {}
        self._net: dict[str, Decimal] = {}
        self._holders: dict[str, set[str]] = {}
        self._gross: dict[str, Decimal] = {}
        self._account_gross = ZERO
        self._last: dict[str, LastTrade] = {}
        self._working: dict[str, int] = {}
        self._working_total = 0

    # -- RiskContext -------------------------------------------------------------------------

    def position(self, strategy: str | None, symbol: str) -> Decimal:
        """Return the signed position of `strategy` in `symbol`, or the account's net position."""
        if strategy is None:
            return self._net.get(symbol, ZERO)
        return self._positions.get((strategy, symbol), ZERO)

    def gross_exposure(self, strategy: str | None) -> Decimal:
        """Return the sum of |position x last price| of `strategy`, or of the account (netted per symbol)."""
        if strategy is None:
            return self._account_gross
        return self._gross.get(strategy, ZERO)

    def open_orders(self, strategy: str | None) -> int:
        """Return the number of working orders of `strategy`, or of the account."""
        if strategy is None:
            return self._working_total
        return self._working.get(strategy, 0)

    def last_trade(self, symbol: str) -> LastTrade | None:
        """Return the last trade seen on `symbol`."""
        return self._last.get(symbol)

    # -- updates -----------------------------------------------------------------------------

    def set_position(self, strategy: str, symbol: str, quantity: Decimal) -> None:
        """Record the new position of `strategy` in `symbol` (after a fill)."""
        key = (strategy, symbol)
        old = self._positions.get(key, ZERO)
        if quantity == old:
            return
        if quantity:
            self._positions[key] = quantity
            self._holders.setdefault(symbol, set()).add(strategy)
        else:
            self._positions.pop(key, None)
            self._holders.get(symbol, set()).discard(strategy)
        net_old = self._net.get(symbol, ZERO)
        net_new = net_old + quantity - old
        if net_new:
            self._net[symbol] = net_new
        else:
            self._net.pop(symbol, None)
        trade = self._last.get(symbol)
        if trade is not None:
            price = trade.price
            self._gross[strategy] = self._gross.get(strategy, ZERO) + (abs(quantity) - abs(old)) * price
            self._account_gross += (abs(net_new) - abs(net_old)) * price

    def on_price(self, symbol: str, price: Decimal, time_ns: int) -> None:
        """Record a trade on `symbol` (an older one than the last seen is ignored); revalue its exposure."""
        previous = self._last.get(symbol)
        if previous is not None and time_ns < previous.time_ns:
            return
        self._last[symbol] = LastTrade(price, time_ns)
        delta = price - (previous.price if previous is not None else ZERO)
        if not delta:
            return
        for strategy in self._holders.get(symbol, ()):
            self._gross[strategy] = self._gross.get(strategy, ZERO) + abs(self._positions[strategy, symbol]) * delta
        self._account_gross += abs(self._net.get(symbol, ZERO)) * delta

    def order_changed(self, before: Order | None, after: Order) -> None:
        """Count `after` in or out of the working orders, given what it was before (None: a new order)."""
        was = before is not None and is_working(before)
        now = is_working(after)
        if was == now:
            return
        step = 1 if now else -1
        self._working[after.strategy] = self._working.get(after.strategy, 0) + step
        self._working_total += step

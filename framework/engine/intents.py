"""`OrderIntent`: what the strategy engine (or a person) wants traded, before it becomes an order."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from framework.orders.model import OrderSide, OrderType

__all__ = ["OrderIntent"]


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """An order to be: the order manager gives it a client id, commits it, checks risk, sends it.

    `strategy` is the strategy instance id (or `"manual"`); `quantity` is already rounded to the
    instrument's step; `cash_limit` caps what a buy spends, fees included (see `Order`);
    `decision_ns` is the close time of the bar the decision was taken on (0 for a manual order);
    `expected_price` is where the engine expects a market order to fill (for the risk collar and
    notional checks).
    """

    strategy: str
    venue: str
    symbol: str
    side: OrderSide
    quantity: Decimal
    type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    cash_limit: Decimal | None = None
    reason: str = ""
    decision_ns: int = 0
    expected_price: Decimal | None = None

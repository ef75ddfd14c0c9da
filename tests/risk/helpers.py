"""Small builders for risk tests: orders, a book and a market, in a few words."""

from __future__ import annotations

import itertools
from decimal import Decimal

from framework.orders import Order, OrderSide, OrderType
from framework.risk import LastTrade, RiskSnapshot

T0 = 1_700_000_000 * 1_000_000_000  # 2023-11-14 22:13:20 UTC
SECOND = 1_000_000_000

_ids = itertools.count(1)


def D(value: str | int) -> Decimal:
    return Decimal(value)


def order(
    side: str = "buy",
    qty: str | int = 1,
    symbol: str = "AAA",
    strategy: str = "sma",
    limit: str | None = None,
) -> Order:
    """Return a new market order, or a limit order when `limit` is given."""
    return Order(
        client_id=f"c{next(_ids)}",
        strategy=strategy,
        venue="SIM",
        symbol=symbol,
        side=OrderSide(side),
        quantity=D(qty),
        type=OrderType.LIMIT if limit is not None else OrderType.MARKET,
        limit_price=None if limit is None else D(limit),
    )


def market(
    positions: dict[tuple[str, str], str | int] | None = None,
    prices: dict[str, str | int] | None = None,
    working: dict[str, int] | None = None,
    traded_at: int = T0,
) -> RiskSnapshot:
    """Return a context: positions by (strategy, symbol), last trades at `traded_at`, working orders."""
    prices = {"AAA": 100} if prices is None else prices
    return RiskSnapshot(
        positions={key: D(qty) for key, qty in (positions or {}).items()},
        last_trades={s: LastTrade(D(p), traded_at) for s, p in prices.items()},
        working_orders=working or {},
    )

"""Schemas of orders, fills, positions, the account and its equity curve."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from runner.api.schemas.common import DecimalIn, Money, Schema

__all__ = [
    "AccountOut",
    "CancelAllOut",
    "EquityPage",
    "EquityPoint",
    "FillOut",
    "FillsPage",
    "OrderCreate",
    "OrderOut",
    "OrdersPage",
    "PositionOut",
]


class OrderCreate(Schema):
    """A manual order (recorded with strategy "manual"). Quantities and prices are decimal strings."""

    symbol: str = Field(min_length=1, max_length=64)
    side: Literal["buy", "sell"]
    quantity: DecimalIn = Field(description="rounded down to the instrument's quantity step; must stay positive")
    type: Literal["market", "limit"] = "market"
    limit_price: DecimalIn | None = Field(None, description="required for a limit order; rounded to the tick")


class OrderOut(Schema):
    """An order as the runner knows it."""

    client_id: str
    strategy: str
    venue: str
    symbol: str
    side: Literal["buy", "sell"]
    type: Literal["market", "limit"]
    quantity: Money
    limit_price: Money | None
    status: str
    filled: Money
    avg_price: Money | None
    fees: Money
    venue_order_id: str | None
    reason: str
    mode: str
    created_at: datetime | None
    updated_at: datetime | None


class OrdersPage(Schema):
    """Orders, newest first; pass `next_cursor` as `cursor` for the next page."""

    items: list[OrderOut]
    next_cursor: str | None


class CancelAllOut(Schema):
    """The orders a cancel-all asked the venue to cancel, after its answers."""

    cancelled: int
    orders: list[OrderOut]


class FillOut(Schema):
    """One execution."""

    fill_id: str
    client_id: str
    venue: str
    strategy: str
    symbol: str
    side: Literal["buy", "sell"]
    quantity: Money
    price: Money
    fee: Money
    mode: str
    time: datetime


class FillsPage(Schema):
    """Fills, newest first; pass `next_cursor` as `cursor` for the next page."""

    items: list[FillOut]
    next_cursor: str | None


class PositionOut(Schema):
    """The net position of one strategy in one symbol, marked at the newest close when there is one."""

    strategy: str
    symbol: str
    side: Literal["long", "short", "flat"]
    quantity: Money
    avg_price: Money | None
    mark: Money | None
    realised: Money
    unrealised: Money | None
    fees: Money
    fill_count: int
    updated_at: datetime | None


class AccountOut(Schema):
    """The account of this runner's venue: cash, equity and PnL over every strategy (manual included)."""

    venue: str
    mode: str
    currency: str
    starting_cash: Money
    cash: Money
    equity: Money
    realised: Money
    unrealised: Money
    fees: Money
    net_exposure: Money
    gross_exposure: Money
    trading_state: str
    unmarked: list[str] = Field(description="symbols with an open position and no price yet (valued at cost)")


class EquityPoint(Schema):
    """One equity snapshot (of a strategy instance, or of the account: the sum of the instances)."""

    strategy: str
    time: datetime
    equity: Money
    cash: Money
    realised: Money
    unrealised: Money


class EquityPage(Schema):
    """Equity snapshots in time order; pass `next_cursor` as `cursor` for the next page."""

    items: list[EquityPoint]
    next_cursor: str | None

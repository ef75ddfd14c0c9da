"""The trading service behind the order, position and account routes.

Manual orders are order intents of strategy `"manual"`: they take the very path the engine's take
(intent committed, risk checked, sent to the venue) and land in the same book and positions.
Quantities and prices are validated here with stable codes before anything is written: not a
finite number (`non_finite_quantity`), not positive after rounding to the instrument's step or tick
(`non_positive_quantity`), absurdly large (`quantity_too_large`).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from framework.brokers.errors import UnknownOrder
from framework.engine.intents import OrderIntent
from framework.errors import RejectedError
from framework.instruments import Instrument
from framework.orders.model import Order, OrderSide, OrderStatus, OrderType, price_of, quantity_of
from runner.api.convert import position_out
from runner.api.errors import ApiError
from runner.api.schemas import AccountOut, OrderCreate, PositionOut
from runner.service import Runner

__all__ = ["MANUAL", "account", "cancel", "get_order", "mark_of", "positions", "submit_manual"]

MANUAL = "manual"
_MAX_DIGITS_BEFORE_POINT = 15


def mark_of(runner: Runner, symbol: str) -> Decimal | None:
    """Return the last price seen on `symbol` (a trade or a bar close), if any."""
    return runner.events.mark(symbol)


def _amount(
    value: Decimal, what: str, instrument: Instrument, rounding: Callable[[Any, Instrument], Decimal]
) -> Decimal:
    if not value.is_finite():
        raise ApiError(422, f"non_finite_{what}", f"{what} must be a finite number, got {value}")
    if value <= 0:
        raise ApiError(422, f"non_positive_{what}", f"{what} must be positive, got {value}")
    if value.adjusted() >= _MAX_DIGITS_BEFORE_POINT:
        raise ApiError(422, f"{what}_too_large", f"{what} {value:.3e} is beyond any sensible order")
    try:
        return rounding(value, instrument)
    except (RejectedError, ArithmeticError) as exc:
        raise ApiError(422, f"non_positive_{what}", str(exc)) from None


async def submit_manual(runner: Runner, body: OrderCreate) -> Order:
    """Validate, commit, risk-check and send a manual order; raise a 422 if risk or the venue refuses it."""
    orders = runner.orders
    assert orders is not None
    instrument = orders.instruments.get(body.symbol)
    if instrument is None:
        known = ", ".join(sorted(orders.instruments)[:20])
        raise ApiError(422, "unknown_symbol", f"{body.symbol!r} is not traded on {orders.venue}; e.g. {known}")
    quantity = _amount(body.quantity, "quantity", instrument, quantity_of)
    limit_price: Decimal | None = None
    if body.type == "limit":
        if body.limit_price is None:
            raise ApiError(422, "missing_limit_price", "a limit order needs limit_price")
        limit_price = _amount(body.limit_price, "price", instrument, price_of)
    elif body.limit_price is not None:
        raise ApiError(422, "unexpected_limit_price", "a market order takes no limit_price")
    intent = OrderIntent(
        strategy=MANUAL,
        venue=orders.venue,
        symbol=body.symbol,
        side=OrderSide(body.side),
        quantity=quantity,
        type=OrderType(body.type),
        limit_price=limit_price,
        reason="manual order",
        expected_price=limit_price if limit_price is not None else mark_of(runner, body.symbol),
    )
    order = await orders.submit(intent)
    if order.status is OrderStatus.REJECTED:
        if order.reason.startswith("risk "):
            rule = order.reason[5:].partition(":")[0].strip()
            raise ApiError(422, "risk_refused", order.reason, rule=rule, client_id=order.client_id)
        raise ApiError(422, "venue_rejected", order.reason or "the venue refused the order", client_id=order.client_id)
    return order


async def get_order(runner: Runner, client_id: str) -> Order:
    """Return an order of this runner's venue (from memory, else the database), or raise a 404."""
    assert runner.orders is not None
    order = await runner.orders.book.order(client_id)
    if order is None or order.venue != runner.orders.venue:
        raise ApiError(404, "unknown_order", f"no order {client_id!r} on {runner.orders.venue}")
    return order


async def cancel(runner: Runner, client_id: str) -> Order:
    """Cancel one order; return it after the venue's answer (as it is when it had ended)."""
    assert runner.orders is not None
    try:
        order = await runner.orders.cancel(client_id)
    except UnknownOrder:
        raise ApiError(404, "unknown_order", f"no order {client_id!r} on {runner.orders.venue}") from None
    return order


def positions(runner: Runner, strategy: str | None, open_only: bool) -> list[PositionOut]:
    """Return the positions (of `strategy`), marked at the last prices."""
    assert runner.orders is not None
    book = runner.orders.positions
    return [position_out(p, mark_of(runner, p.symbol)) for p in book.positions(strategy, open_only=open_only)]


def account(runner: Runner) -> AccountOut:
    """Return cash, equity and PnL of the whole book; positions without a price yet are valued at cost."""
    assert runner.orders is not None
    assert runner.risk is not None
    book = runner.orders.positions
    starting = Decimal(repr(runner.config.runner.cash))
    marks: dict[str, Decimal] = {}
    unmarked: list[str] = []
    for position in book.positions(open_only=True):
        mark = mark_of(runner, position.symbol)
        if mark is None:
            unmarked.append(position.symbol)
            mark = position.avg_price if position.avg_price is not None else Decimal(0)
        marks[position.symbol] = mark
    totals = book.totals(marks)
    cash = book.cash(starting)
    return AccountOut(
        venue=runner.orders.venue,
        mode=runner.mode.value,
        currency=runner.config.runner.currency,
        starting_cash=starting,
        cash=cash,
        equity=cash + totals.net_exposure,
        realised=totals.realised,
        unrealised=totals.unrealised,
        fees=totals.fees,
        net_exposure=totals.net_exposure,
        gross_exposure=totals.gross_exposure,
        trading_state=runner.risk.state.value,
        unmarked=sorted(set(unmarked)),
    )

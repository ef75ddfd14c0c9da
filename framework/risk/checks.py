"""The per-order rules of one scope, as pure functions of the order, the context and the limits.

Each rule returns None when the order passes, or the refusal naming it. Position and exposure
rules only refuse orders that make things worse: an order that lowers the absolute position (or
the gross exposure) always passes them, so a book above a freshly lowered limit can be reduced.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal

from framework.orders.model import Order, OrderType
from framework.risk.context import LastTrade, RiskContext
from framework.risk.decision import RiskDecision, Rule
from framework.risk.limits import GLOBAL, RateLimit, RiskLimits

__all__ = ["OrderFacts", "check_rate", "check_scope", "fmt", "reduces"]

_MISSING = object()


def fmt(value: Decimal | float | int) -> str:
    """Return a number for a person: thousands separators, no exponent, no trailing zeros."""
    if isinstance(value, Decimal):
        return format(value.normalize(), ",f")
    return format(value, ",.6g") if isinstance(value, float) else format(value, ",")


def reduces(position: Decimal, signed_qty: Decimal) -> bool:
    """Return whether adding `signed_qty` lowers |position| without flipping its sign."""
    return position != 0 and (position > 0) != (signed_qty > 0) and abs(signed_qty) <= abs(position)


class OrderFacts:
    """What the rules read about one order, looked up in the context at most once each."""

    __slots__ = ("_last", "ctx", "expected_price", "now_ns", "order", "signed")

    def __init__(self, order: Order, ctx: RiskContext, now_ns: int, expected_price: Decimal | None) -> None:
        self.order = order
        self.ctx = ctx
        self.now_ns = now_ns
        self.expected_price = expected_price
        self.signed = order.signed_quantity
        self._last: object = _MISSING

    @property
    def last(self) -> LastTrade | None:
        """Return the instrument's last trade."""
        if self._last is _MISSING:
            self._last = self.ctx.last_trade(self.order.symbol)
        return self._last  # type: ignore[return-value]

    @property
    def price(self) -> Decimal | None:
        """Return the price the order is expected to trade at: its limit, the expected fill or the last trade."""
        if self.order.type is OrderType.LIMIT:
            return self.order.limit_price
        if self.expected_price is not None:
            return self.expected_price
        last = self.last
        return None if last is None else last.price

    @property
    def mark(self) -> Decimal | None:
        """Return the price positions are valued at: the last trade, else the order's price."""
        last = self.last
        return self.price if last is None else last.price

    def position(self, scope: str) -> Decimal:
        """Return the position the scope's limits apply to: the account's net, or the strategy's."""
        return self.ctx.position(None if scope == GLOBAL else scope, self.order.symbol)


def _who(scope: str) -> str:
    return "account" if scope == GLOBAL else f"strategy {scope!r}"


def check_scope(scope: str, limits: RiskLimits, facts: OrderFacts) -> RiskDecision | None:
    """Return the first refusal by `limits` (of `scope`) of the order, or None if all pass."""
    order = facts.order
    symbol = order.symbol
    who = _who(scope)
    if limits.max_order_qty is not None and order.quantity > limits.max_order_qty:
        return RiskDecision.refuse(
            Rule.MAX_ORDER_QTY,
            f"order quantity {fmt(order.quantity)} {symbol} is above the {who} limit of {fmt(limits.max_order_qty)}",
            scope,
        )
    if limits.max_order_notional is not None:
        price = facts.price
        if price is None:
            return _no_price(scope, symbol, "value the order")
        notional = order.quantity * price
        if notional > limits.max_order_notional:
            return RiskDecision.refuse(
                Rule.MAX_ORDER_NOTIONAL,
                f"order notional {fmt(notional)} ({fmt(order.quantity)} {symbol} at {fmt(price)}) is above "
                f"the {who} limit of {fmt(limits.max_order_notional)}",
                scope,
            )
    stale_ns = limits.stale_after_ns
    if stale_ns is not None:
        last = facts.last
        if last is None:
            return RiskDecision.refuse(
                Rule.STALE_DATA, f"no trade seen on {symbol} yet ({who} stale-data block)", scope
            )
        age = facts.now_ns - last.time_ns
        if age > stale_ns:
            return RiskDecision.refuse(
                Rule.STALE_DATA,
                f"the last trade on {symbol} is {fmt(age / 1e9)} s old, older than the {who} limit of "
                f"{fmt(limits.stale_after_s or 0.0)} s",
                scope,
            )
    if limits.price_collar is not None:
        refusal = _collar(scope, limits.price_collar, facts)
        if refusal is not None:
            return refusal
    position_limited = limits.max_position_qty is not None or limits.max_position_notional is not None
    if position_limited or limits.max_gross_exposure is not None:
        before = facts.position(scope)
        after = before + facts.signed
        if abs(after) > abs(before):  # only orders that grow the position can break these limits
            refusal = _position(scope, limits, facts, after) if position_limited else None
            if refusal is None and limits.max_gross_exposure is not None:
                refusal = _gross(scope, limits.max_gross_exposure, facts, before, after)
            if refusal is not None:
                return refusal
    if limits.max_open_orders is not None:
        working = facts.ctx.open_orders(None if scope == GLOBAL else scope)
        if working + 1 > limits.max_open_orders:
            return RiskDecision.refuse(
                Rule.MAX_OPEN_ORDERS,
                f"{who} has {working} working orders; one more is above the limit of {limits.max_open_orders}",
                scope,
            )
    return None


def _no_price(scope: str, symbol: str, purpose: str) -> RiskDecision:
    return RiskDecision.refuse(Rule.NO_PRICE, f"no price for {symbol} to {purpose} ({_who(scope)} limit)", scope)


def _collar(scope: str, collar: Decimal, facts: OrderFacts) -> RiskDecision | None:
    order = facts.order
    if order.type is OrderType.LIMIT:
        price, what = order.limit_price, "limit price"
    else:
        price, what = facts.expected_price, "expected fill price"
    if price is None:
        return None  # a market order with no expected price trades at the market: nothing to collar
    last = facts.last
    if last is None:
        return _no_price(scope, order.symbol, f"collar the {what} against")
    deviation = abs(price - last.price) / last.price
    if deviation > collar:
        return RiskDecision.refuse(
            Rule.PRICE_COLLAR,
            f"{what} {fmt(price)} is {fmt(round(deviation * 100, 2))}% away from the last trade {fmt(last.price)} "
            f"on {order.symbol}, beyond the {_who(scope)} collar of {fmt(collar * 100)}%",
            scope,
        )
    return None


def _position(scope: str, limits: RiskLimits, facts: OrderFacts, after: Decimal) -> RiskDecision | None:
    symbol = facts.order.symbol
    who = _who(scope)
    if limits.max_position_qty is not None and abs(after) > limits.max_position_qty:
        return RiskDecision.refuse(
            Rule.MAX_POSITION_QTY,
            f"the {who} position in {symbol} would be {fmt(after)}, above the limit of {fmt(limits.max_position_qty)}",
            scope,
        )
    if limits.max_position_notional is not None:
        mark = facts.mark
        if mark is None:
            return _no_price(scope, symbol, "value the position")
        value = abs(after) * mark
        if value > limits.max_position_notional:
            return RiskDecision.refuse(
                Rule.MAX_POSITION_NOTIONAL,
                f"the {who} position in {symbol} would be worth {fmt(value)} ({fmt(after)} at {fmt(mark)}), "
                f"above the limit of {fmt(limits.max_position_notional)}",
                scope,
            )
    return None


def _gross(scope: str, cap: Decimal, facts: OrderFacts, before: Decimal, after: Decimal) -> RiskDecision | None:
    symbol = facts.order.symbol
    mark = facts.mark
    if mark is None:
        return _no_price(scope, symbol, "value the gross exposure")
    current = facts.ctx.gross_exposure(None if scope == GLOBAL else scope)
    projected = current - abs(before * mark) + abs(after * mark)
    if projected > cap:
        return RiskDecision.refuse(
            Rule.MAX_GROSS_EXPOSURE,
            f"the {_who(scope)} gross exposure would be {fmt(projected)} (now {fmt(current)}), above the limit "
            f"of {fmt(cap)}",
            scope,
        )
    return None


def check_rate(scope: str, limit: RateLimit, sent: deque[int], now_ns: int) -> RiskDecision | None:
    """Return a refusal if `sent` (accepted order times, oldest first) already fills the window."""
    start = now_ns - limit.window_ns
    while sent and sent[0] <= start:
        sent.popleft()
    if len(sent) >= limit.orders:
        wait = (sent[0] - start) / 1e9
        return RiskDecision.refuse(
            Rule.RATE_LIMIT,
            f"{_who(scope)} sent {len(sent)} orders in the last {fmt(limit.per_seconds)} s, the limit is "
            f"{limit.orders} per {fmt(limit.per_seconds)} s (next order allowed in {fmt(wait)} s)",
            scope,
        )
    return None

"""Random venue event sequences against the order state machine and the position book.

A hypothesis stateful test places several orders for two strategies in two symbols, then throws
status reports (in any order, stale, duplicated, refused), fills (partial, completing, overfilling,
late, duplicated) and mark moves at them. After every step it checks the order invariants against
an independent oracle and the position invariants against exact rational arithmetic
(`fractions.Fraction`), so no Decimal rounding can hide on either side.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from framework.orders import (
    TERMINAL_STATUSES,
    Fill,
    InvalidTransition,
    Order,
    OrderSide,
    OrderStatus,
    OrderUpdate,
    Position,
    PositionBook,
    apply_fill,
    apply_update,
)

S = OrderStatus
F = Fraction
STRATEGIES = ("s1", "s2")
SYMBOLS = ("AAA", "BBB")
LIVE_REPORTS = {S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED}
FILLABLE = {S.SUBMITTED, S.ACCEPTED, S.PARTIALLY_FILLED, S.CANCEL_PENDING, S.FILLED, S.CANCELLED, S.EXPIRED}
FIXED_MARKS = (Decimal("0.01"), Decimal("1234.5678"))

quantities = st.integers(1, 5_000).map(lambda n: Decimal(n).scaleb(-3))  # lot 0.001
prices = st.integers(1, 1_000_000).map(lambda n: Decimal(n).scaleb(-2))  # tick 0.01
fees = st.integers(-1_000, 100_000).map(lambda n: Decimal(n).scaleb(-6))  # rebates too
order_specs = st.tuples(st.sampled_from(STRATEGIES), st.sampled_from(SYMBOLS), st.sampled_from(OrderSide), quantities)
# Reports of any status; the `acknowledge` rule walks orders along the happy path.
reports = st.sampled_from([*OrderStatus, S.ACCEPTED, S.CANCEL_PENDING])


def expected_report(order: Order, reported: OrderStatus) -> OrderStatus | None:
    """Return the status a report should give, or None if it must be refused (the oracle)."""
    status, filled = order.status, order.filled
    from_fills = S.FILLED if filled >= order.quantity else S.PARTIALLY_FILLED if filled > 0 else S.ACCEPTED
    if reported is S.NEW:
        return None
    if status is S.NEW:
        return reported if reported in {S.SUBMITTED, S.REJECTED, S.CANCELLED} else None
    if status is S.REJECTED:
        return status if reported is S.REJECTED else None
    if status in TERMINAL_STATUSES:
        return status if reported in LIVE_REPORTS | {status} else None
    if reported is S.SUBMITTED:
        return status if status is S.SUBMITTED else None
    if reported in LIVE_REPORTS:
        return from_fills
    if reported is S.REJECTED:
        return S.REJECTED if filled == 0 else None
    return reported


def expected_fill_status(order: Order, filled: Decimal) -> OrderStatus:
    """Return the status a new fill bringing the order to `filled` should give (the oracle)."""
    if order.status in TERMINAL_STATUSES:
        return order.status
    if filled >= order.quantity:
        return S.FILLED
    return S.CANCEL_PENDING if order.status is S.CANCEL_PENDING else S.PARTIALLY_FILLED


def average_cost(fills: list[Fill]) -> tuple[Fraction, Fraction | None, Fraction]:
    """Return quantity, average entry price and realised PnL (net of fees), exactly."""
    qty, avg, realised = F(0), None, F(0)
    for fill in fills:
        traded, price = F(fill.signed_quantity), F(fill.price)
        realised -= F(fill.fee)
        if qty == 0 or (qty > 0) == (traded > 0):
            avg = price if qty == 0 or avg is None else (avg * qty + price * traded) / (qty + traded)
        elif abs(traded) <= abs(qty):
            assert avg is not None
            realised += -traded * (price - avg)
            avg = None if qty + traded == 0 else avg
        else:
            assert avg is not None
            realised += qty * (price - avg)
            avg = price
        qty += traded
    return qty, avg, realised


TOLERANCE = F(1, 10**18)  # for values that go through the average price, rounded to 28 digits


def close(actual: Decimal | None, exact: Fraction | None, tolerance: Fraction = TOLERANCE) -> bool:
    if actual is None or exact is None:
        return actual is None and exact is None
    return abs(F(actual) - exact) <= tolerance


class OrderLifecycle(RuleBasedStateMachine):
    """Orders, venue events and a position book, with the invariants checked after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.orders: dict[str, Order] = {}
        self.terminal: dict[str, OrderStatus] = {}
        self.applied: dict[str, dict[str, Fill]] = {}
        self.sent: list[Fill] = []
        self.book = PositionBook()
        self.position_fills: dict[tuple[str, str], list[Fill]] = {}
        self.marks = {symbol: Decimal(100) for symbol in SYMBOLS}
        self.ids = itertools.count()

    @initialize(specs=st.lists(order_specs, min_size=2, max_size=4))
    def place_first(self, specs: list[tuple[str, str, OrderSide, Decimal]]) -> None:
        for spec in specs:
            self.place(*spec)

    @rule(spec=order_specs)
    def place_another(self, spec: tuple[str, str, OrderSide, Decimal]) -> None:
        self.place(*spec)

    @rule(data=st.data(), price=prices)
    def trade_against_a_position(self, data: st.DataObject, price: Decimal) -> None:
        """Reduce, close or reverse an open position with a market order that fills at once."""
        open_positions = self.book.positions(open_only=True)
        if open_positions:
            position = data.draw(st.sampled_from(open_positions))
            size = abs(position.quantity)
            quantity = data.draw(st.sampled_from([size, size * 2]) | quantities.filter(size.__ne__))
            side = OrderSide.SELL if position.quantity > 0 else OrderSide.BUY
            order = self.place(position.strategy, position.symbol, side, quantity)
            self._report(order.client_id, S.SUBMITTED, None)
            fill_id = f"t{next(self.ids)}"
            fill = Fill(fill_id, order.client_id, "SIM", order.symbol, side, quantity, price, strategy=order.strategy)
            self.sent.append(fill)
            self._deliver(fill)

    def place(self, strategy: str, symbol: str, side: OrderSide, quantity: Decimal) -> Order:
        client_id = f"c{len(self.orders)}"
        self.orders[client_id] = order = Order(client_id, strategy, "SIM", symbol, side, quantity)
        self.applied[client_id] = {}
        return order

    @rule(data=st.data(), reported=reports, venue_id=st.none() | st.sampled_from(["v1", "v2"]))
    def report(self, data: st.DataObject, reported: OrderStatus, venue_id: str | None) -> None:
        self._report(data.draw(st.sampled_from(sorted(self.orders))), reported, venue_id)

    @rule(data=st.data())
    def acknowledge(self, data: st.DataObject) -> None:
        """Move an order along its happy path (submit a new one, acknowledge a sent one)."""
        client_id = data.draw(st.sampled_from(sorted(self.orders)))
        reported = S.SUBMITTED if self.orders[client_id].status is S.NEW else S.ACCEPTED
        self._report(client_id, reported, f"v-{client_id}")

    def _report(self, client_id: str, reported: OrderStatus, venue_id: str | None) -> None:
        order = self.orders[client_id]
        expected = expected_report(order, reported)
        update = OrderUpdate(client_id, reported, venue_id, "why", next(self.ids))
        if expected is None:
            with pytest.raises(InvalidTransition) as refused:
                apply_update(order, update)
            assert (refused.value.from_status, refused.value.to_status) == (order.status, reported)
            assert refused.value.client_id == client_id
            event("report refused")
            return
        after = apply_update(order, update)
        assert after.status is expected
        event(f"report: {order.status} -> {after.status}")
        assert (after.filled, after.avg_price, after.fees, after.fill_ids) == (
            order.filled,
            order.avg_price,
            order.fees,
            order.fill_ids,
        )
        assert after.venue_order_id == (order.venue_order_id or venue_id)
        self._store(after)

    @rule(data=st.data(), price=prices, fee=fees)
    def fill(self, data: st.DataObject, price: Decimal, fee: Decimal) -> None:
        client_id = data.draw(st.sampled_from(sorted(self.orders)))
        order = self.orders[client_id]
        remaining = order.remaining
        lots = int(remaining.scaleb(3))
        if lots == 0:
            quantity = data.draw(quantities)  # an overfill
        else:
            part = st.integers(1, lots).map(lambda n: Decimal(n).scaleb(-3))
            quantity = data.draw(st.one_of(part, part, st.just(remaining), quantities.map(remaining.__add__)))
        side, venue, symbol, strategy = order.side, order.venue, order.symbol, order.strategy
        fill = Fill(f"t{next(self.ids)}", client_id, venue, symbol, side, quantity, price, fee, strategy=strategy)
        self.sent.append(fill)
        self._deliver(fill)

    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        """Send a fill again: a duplicate if it was applied, a retry if its order refused it."""
        if self.sent:  # (not a precondition: those make hypothesis discard many runs)
            self._deliver(data.draw(st.sampled_from(self.sent)))

    @rule(data=st.data())
    def replay_into_book(self, data: st.DataObject) -> None:
        """Give the book a fill it has already applied, bypassing the order."""
        applied = [fill for fills in self.position_fills.values() for fill in fills]
        if applied:
            assert self.book.apply(data.draw(st.sampled_from(applied))) is None

    @rule(symbol=st.sampled_from(SYMBOLS), price=prices)
    def move_mark(self, symbol: str, price: Decimal) -> None:
        self.marks[symbol] = price

    def _deliver(self, fill: Fill) -> None:
        order = self.orders[fill.client_id]
        if order.status not in FILLABLE:
            with pytest.raises(InvalidTransition) as refused:
                apply_fill(order, fill)
            assert refused.value.from_status is order.status
            return
        result = apply_fill(order, fill)
        key = (fill.strategy, fill.symbol)
        position_before = self.book.position(*key)
        if fill.fill_id in self.applied[fill.client_id]:
            assert result.is_duplicate
            assert result.order is order
            event("duplicate fill")
            assert self.book.apply(fill) is None
            return
        filled = order.filled + fill.quantity
        assert result.is_new
        assert result.order.status is expected_fill_status(order, filled)
        assert result.late == (order.status in TERMINAL_STATUSES)
        assert result.overfilled == (filled > order.quantity)
        event(f"fill: {order.status} -> {result.order.status}" + (" (overfill)" if result.overfilled else ""))
        position = self.book.apply(fill)
        assert position is not None
        reduces = position_before.quantity * fill.signed_quantity < 0
        if reduces and abs(fill.quantity) < abs(position_before.quantity):
            assert position.avg_price == position_before.avg_price
        if reduces:
            outcome = position.quantity * position_before.quantity
            event("position reduced" if outcome > 0 else "position closed" if outcome == 0 else "position reversed")
        self.applied[fill.client_id][fill.fill_id] = fill
        self.position_fills.setdefault(key, []).append(fill)
        self._store(result.order)

    def _store(self, order: Order) -> None:
        self.orders[order.client_id] = order
        if order.status in TERMINAL_STATUSES:
            self.terminal.setdefault(order.client_id, order.status)

    @invariant()
    def orders_match_their_unique_fills(self) -> None:
        for client_id, order in self.orders.items():
            fills = self.applied[client_id].values()
            assert F(order.filled) == sum((F(f.quantity) for f in fills), F(0))
            assert order.filled >= 0
            assert order.fill_ids == set(self.applied[client_id])
            assert F(order.fees) == sum((F(f.fee) for f in fills), F(0))
            if fills:
                weighted = sum((F(f.quantity) * F(f.price) for f in fills), F(0)) / F(order.filled)
                assert close(order.avg_price, weighted, F(1, 10**20))
            else:
                assert order.avg_price is None

    @invariant()
    def statuses_agree_with_fills(self) -> None:
        for order in self.orders.values():
            if order.status in {S.NEW, S.SUBMITTED, S.ACCEPTED, S.REJECTED}:
                assert order.filled == 0, order
            elif order.status is S.PARTIALLY_FILLED:
                assert 0 < order.filled < order.quantity, order
            elif order.status is S.CANCEL_PENDING:
                assert order.filled < order.quantity, order
            elif order.status is S.FILLED:
                assert order.filled >= order.quantity, order

    @invariant()
    def terminal_states_are_never_left(self) -> None:
        for client_id, status in self.terminal.items():
            assert self.orders[client_id].status is status

    @invariant()
    def positions_are_the_sum_of_their_fills(self) -> None:
        for (strategy, symbol), fills in self.position_fills.items():
            position = self.book.position(strategy, symbol)
            qty, avg, realised = average_cost(fills)
            assert F(position.quantity) == qty == sum((F(f.signed_quantity) for f in fills), F(0))
            assert F(position.fees) == sum((F(f.fee) for f in fills), F(0))
            assert position.fill_count == len(fills)
            assert close(position.avg_price, avg)
            assert close(position.realised, realised)
            cash_flow = sum((-F(f.signed_quantity) * F(f.price) - F(f.fee) for f in fills), F(0))
            assert F(position.cash_flow) == cash_flow
            for mark in (self.marks[symbol], *FIXED_MARKS):
                # exact, not close: the accounting identity holds to the last digit
                assert F(position.realised) + F(position.unrealised(mark)) == cash_flow + qty * F(mark)
                assert F(position.pnl(mark)) == cash_flow + qty * F(mark)
            assert (symbol in self.book.open_symbols(strategy)) == (qty != 0)

    @invariant()
    def the_book_counts_each_fill_once_and_sums_exactly(self) -> None:
        applied = [fill for fills in self.position_fills.values() for fill in fills]
        assert len({(f.venue, f.fill_id) for f in applied}) == len(applied)
        assert all(self.book.seen(f) for f in applied)
        assert len(self.book) == len(self.position_fills)
        totals = self.book.totals(self.marks)
        positions: list[Position] = self.book.positions()
        value = sum((F(p.quantity) * F(self.marks[p.symbol]) for p in positions), F(0))
        cash_flow = sum((-F(f.signed_quantity) * F(f.price) - F(f.fee) for f in applied), F(0))
        assert F(totals.pnl) == cash_flow + value
        assert F(self.book.equity(Decimal(1_000_000), self.marks)) == 1_000_000 + cash_flow + value
        net: dict[str, Fraction] = {}
        for fill in applied:
            net[fill.symbol] = net.get(fill.symbol, F(0)) + F(fill.signed_quantity)
        assert {s: F(q) for s, q in self.book.net_positions().items()} == {s: q for s, q in net.items() if q}


OrderLifecycle.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestOrderLifecycle = OrderLifecycle.TestCase

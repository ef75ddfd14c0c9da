"""The live risk context's incrementally kept aggregates equal `RiskSnapshot`'s, computed from scratch."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from framework.engine.risk_book import LiveRiskContext
from framework.orders.model import Order, OrderSide, OrderStatus
from framework.risk import LastTrade, RiskSnapshot

STRATEGIES = ("a", "b", "c")
SYMBOLS = ("X", "Y")

position_change = st.tuples(
    st.just("position"), st.sampled_from(STRATEGIES), st.sampled_from(SYMBOLS), st.integers(-5, 5)
)
price_change = st.tuples(st.just("price"), st.sampled_from(SYMBOLS), st.integers(1, 200), st.integers(0, 5))


@given(st.lists(st.one_of(position_change, price_change), max_size=40))
def test_incremental_positions_and_exposure_match_a_snapshot(steps: list[tuple]) -> None:
    live = LiveRiskContext()
    positions: dict[tuple[str, str], Decimal] = {}
    trades: dict[str, LastTrade] = {}
    for step in steps:
        if step[0] == "position":
            _, strategy, symbol, qty = step
            live.set_position(strategy, symbol, Decimal(qty))
            positions[strategy, symbol] = Decimal(qty)
        else:
            _, symbol, price, time = step
            live.on_price(symbol, Decimal(price), time)
            if symbol not in trades or time >= trades[symbol].time_ns:
                trades[symbol] = LastTrade(Decimal(price), time)
    snapshot = RiskSnapshot(positions=positions, last_trades=trades)
    for scope in (None, *STRATEGIES):
        assert live.gross_exposure(scope) == snapshot.gross_exposure(scope)
        for symbol in SYMBOLS:
            assert live.position(scope, symbol) == snapshot.position(scope, symbol)
    for symbol in SYMBOLS:
        assert live.last_trade(symbol) == snapshot.last_trade(symbol)


def test_working_orders_count_from_the_risk_check_until_terminal() -> None:
    live = LiveRiskContext()
    new = Order("c1", "a", "paper", "X", OrderSide.BUY, Decimal(1))
    live.order_changed(None, new)
    assert live.open_orders("a") == live.open_orders(None) == 0  # not checked yet: the check counts it itself
    sent = new.evolve(status=OrderStatus.SUBMITTED)
    live.order_changed(new, sent)
    accepted = sent.evolve(status=OrderStatus.ACCEPTED)
    live.order_changed(sent, accepted)
    assert (live.open_orders("a"), live.open_orders(None), live.open_orders("b")) == (1, 1, 0)
    live.order_changed(accepted, accepted.evolve(status=OrderStatus.FILLED))
    assert live.open_orders("a") == live.open_orders(None) == 0

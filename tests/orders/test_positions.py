"""Positions and PnL from fills: long, short, reversals, fees, and the book's dedupe and totals."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from framework.errors import RejectedError
from framework.orders import Fill, MismatchedEvent, OrderSide, Position, PositionBook

D = Decimal
_ids = itertools.count()


def trade(side: str, quantity: str, price: str, fee: str = "0", *, symbol: str = "AAA", strategy: str = "s1") -> Fill:
    return Fill(
        f"t{next(_ids)}",
        "c1",
        "SIM",
        symbol,
        OrderSide(side),
        D(quantity),
        D(price),
        D(fee),
        strategy=strategy,
    )


def run(*fills: Fill) -> Position:
    position = Position(fills[0].strategy, fills[0].symbol)
    for fill in fills:
        position = position.apply(fill)
    return position


def state(position: Position) -> tuple[object, ...]:
    return (position.quantity, position.avg_price, position.cost_basis, position.realised, position.fees)


def test_a_long_position_weights_its_entry_realises_on_reduce_and_clears_on_close() -> None:
    opened = run(trade("buy", "10", "100", "1"))
    assert state(opened) == (D(10), D(100), D(1000), D(-1), D(1))
    added = opened.apply(trade("buy", "10", "110", "1"))
    assert state(added) == (D(20), D(105), D(2100), D(-2), D(2))
    reduced = added.apply(trade("sell", "5", "120", "0.5"))
    # 5 * (120 - 105) = 75 realised, less 2.5 of fees paid so far
    assert state(reduced) == (D(15), D(105), D(1575), D("72.5"), D("2.5"))
    assert reduced.unrealised(D(130)) == D(375)
    assert reduced.pnl(D(130)) == D("447.5")
    assert reduced.cash_flow == D("-1502.5")
    assert reduced.market_value(D(130)) == D(1950)
    closed = reduced.apply(trade("sell", "15", "100", "1.5"))
    # 72.5 + 15 * (100 - 105) - 1.5
    assert state(closed) == (D(0), None, D(0), D(-4), D(4))
    assert closed.is_flat
    assert closed.side == "flat"
    assert closed.unrealised(D(1)) == 0
    assert closed.cash_flow == D(-4)
    assert closed.fill_count == 4


def test_a_short_position_gains_when_the_price_falls() -> None:
    short = run(trade("sell", "10", "50", "0.5"))
    assert state(short) == (D(-10), D(50), D(-500), D("-0.5"), D("0.5"))
    assert short.side == "short"
    covered = short.apply(trade("buy", "4", "45", "0.2"))
    # 4 * (50 - 45) = 20 realised, less 0.7 of fees
    assert state(covered) == (D(-6), D(50), D(-300), D("19.3"), D("0.7"))
    assert covered.unrealised(D(40)) == D(60)
    assert covered.unrealised(D(55)) == D(-30)
    added = covered.apply(trade("sell", "6", "56"))
    assert state(added) == (D(-12), D(53), D(-636), D("19.3"), D("0.7"))


def test_a_reversal_in_one_fill_closes_the_old_side_and_opens_the_new_at_the_fill_price() -> None:
    long = run(trade("buy", "10", "100"))
    short = long.apply(trade("sell", "25", "90", "2.5"))
    # closes 10 at a loss of 10 each, pays 2.5, opens 15 short at 90
    assert state(short) == (D(-15), D(90), D(-1350), D("-102.5"), D("2.5"))
    assert short.unrealised(D(80)) == D(150)
    long_again = short.apply(trade("buy", "20", "85"))
    # covers 15 at a gain of 5 each, opens 5 long at 85
    assert state(long_again) == (D(5), D(85), D(425), D("-27.5"), D("2.5"))


def test_a_rebate_is_a_negative_fee_and_adds_to_realised() -> None:
    position = run(trade("buy", "2", "10", "-0.01"))
    assert (position.realised, position.fees) == (D("0.01"), D("-0.01"))


def test_rounding_in_the_average_price_is_settled_exactly_at_the_close() -> None:
    position = run(trade("buy", "1", "100"), trade("buy", "2", "101"))
    assert position.avg_price == D("100.6666666666666666666666667")
    reduced = position.apply(trade("sell", "1", "102"))
    assert reduced.avg_price == position.avg_price
    assert reduced.realised == D("1.3333333333333333333333333")
    # realised + unrealised equals the cash flow plus market value to the last digit
    assert reduced.pnl(D(102)) == D(-100 - 202 + 102 + 2 * 102)
    closed = reduced.apply(trade("sell", "2", "102"))
    assert closed.realised == D(4)
    assert closed.cost_basis == 0


def test_a_position_refuses_another_symbols_or_strategys_fill() -> None:
    with pytest.raises(MismatchedEvent):
        Position("s1", "AAA").apply(trade("buy", "1", "1", symbol="BBB"))
    with pytest.raises(MismatchedEvent):
        Position("s1", "AAA").apply(trade("buy", "1", "1", strategy="s2"))


def test_the_book_applies_each_venue_trade_once() -> None:
    book = PositionBook()
    buy = trade("buy", "3", "10")
    assert book.apply(buy) == Position("s1", "AAA", D(3), D(10), D(30), fill_count=1)
    assert book.seen(buy)
    assert book.apply(buy) is None
    other_venue = Fill(buy.fill_id, "c9", "OTHER", "AAA", OrderSide.BUY, D(1), D(10), strategy="s1")
    assert book.apply(other_venue) is not None
    assert book.position("s1", "AAA").quantity == D(4)


def test_the_book_refuses_a_fill_without_a_strategy() -> None:
    with pytest.raises(RejectedError, match="no strategy"):
        PositionBook().apply(Fill("t1", "c1", "SIM", "AAA", OrderSide.BUY, D(1), D(1)))


def test_the_book_sums_pnl_exposure_and_equity_per_strategy() -> None:
    fills = [
        trade("buy", "10", "100", "1", symbol="AAA", strategy="s1"),
        trade("sell", "4", "20", "0.4", symbol="BBB", strategy="s1"),
        trade("buy", "5", "20", symbol="BBB", strategy="s2"),
        trade("sell", "5", "22", "0.1", symbol="BBB", strategy="s2"),
    ]
    book = PositionBook(fills + fills)  # replaying the same fills changes nothing
    assert len(book) == 3
    assert book.strategies() == ["s1", "s2"]
    assert [(p.strategy, p.symbol) for p in book.positions()] == [("s1", "AAA"), ("s1", "BBB"), ("s2", "BBB")]
    assert [p.symbol for p in book.positions("s2", open_only=True)] == []
    assert book.net_positions() == {"AAA": D(10), "BBB": D(-4)}
    marks = {"AAA": D(105), "BBB": D(21)}
    s1 = book.totals(marks, "s1")
    assert (s1.realised, s1.unrealised, s1.fees) == (D("-1.4"), D(50 - 4), D("1.4"))
    assert (s1.net_exposure, s1.gross_exposure, s1.pnl) == (D(1050 - 84), D(1050 + 84), D("44.6"))
    s2 = book.totals(marks, "s2")
    assert (s2.realised, s2.unrealised, s2.pnl, s2.gross_exposure) == (D("9.9"), D(0), D("9.9"), D(0))
    assert book.totals(marks).pnl == D("54.5")
    assert book.totals_by_strategy(marks) == {"s1": s1, "s2": s2}
    assert book.cash(D(10_000), "s1") == D(10_000 - 1000 - 1 + 80 - D("0.4"))
    assert book.equity(D(10_000), marks, "s1") == D("10044.6")
    assert book.equity(D(20_000), marks) == D(20_000) + D("54.5")
    assert book.position("s3", "ZZZ") == Position("s3", "ZZZ")


def test_an_open_position_without_a_mark_is_refused_not_valued_at_zero() -> None:
    book = PositionBook([trade("buy", "1", "10", symbol="AAA"), trade("buy", "1", "10", symbol="BBB")])
    with pytest.raises(RejectedError, match="no mark price for BBB"):
        book.totals({"AAA": D(11)})
    flat = PositionBook([trade("buy", "1", "10"), trade("sell", "1", "12")])
    assert flat.equity(D(100), {}) == D(102)

"""Equity snapshots on a real PostgreSQL: the risk manager gets them at once, the rows are written in the background."""

from __future__ import annotations

from decimal import Decimal

import pytest

from framework.clock import SimulatedClock
from framework.engine.instances import InstanceSpec
from framework.orders.model import Fill, OrderSide
from framework.orders.positions import PositionBook
from framework.risk import RiskManager, RiskStore
from runner.snapshots import EquitySnapshots

pytestmark = pytest.mark.db

T0 = 1_700_000_000_000_000_000
D = Decimal


def fill(n: int, strategy: str, symbol: str, side: OrderSide, qty: str, price: str) -> Fill:
    return Fill(f"f{n}", f"c{n}", "paper", symbol, side, D(qty), D(price), fee=D("0.25"), strategy=strategy)


async def test_equity_is_capital_plus_cash_moved_plus_marked_holdings_and_reaches_risk_before_the_write(
    database,
) -> None:
    book = PositionBook()
    book.apply(fill(1, "a", "X", OrderSide.BUY, "2", "10"))  # open 2 X at 10
    book.apply(fill(2, "a", "Y", OrderSide.BUY, "1", "50"))
    book.apply(fill(3, "a", "Y", OrderSide.SELL, "1", "55"))  # Y closed: +5 realised, fees paid
    book.apply(fill(4, "a", "Z", OrderSide.BUY, "1", "7"))  # Z is not in the universe: not counted
    book.apply(fill(5, "b", "X", OrderSide.SELL, "1", "10"))  # b is short 1 X
    risk = await RiskManager.open(RiskStore(database.pool), SimulatedClock(T0))
    seen: list[tuple[str, Decimal]] = []
    on_equity = risk.on_equity

    async def recorded(scope: str, equity: Decimal, time_ns: int | None = None) -> object:
        seen.append((scope, equity))
        return await on_equity(scope, equity, time_ns)

    risk.on_equity = recorded  # type: ignore[method-assign]
    snapshots = EquitySnapshots(database.pool, book, risk, every_ns=5_000_000_000)
    for symbol, price in (("X", 12.5), ("Y", 60.0), ("Z", 9.0)):
        snapshots.mark(symbol, price)
    specs = [
        InstanceSpec("a", "sma_cross", {}, "paper", ("X", "Y"), "1s", D(1000)),
        InstanceSpec("b", "sma_cross", {}, "paper", ("X", "Y"), "1s", D(500)),
    ]
    await snapshots.flush(T0, specs=specs)
    # a: cash 1000 - 20.25 - 50.25 + 54.75 = 984.25, plus 2 X at 12.5; b: 500 + 9.75, minus 1 X at 12.5
    expected = {"a": D("1009.25"), "b": D("497.25")}
    assert seen == [("a", expected["a"]), ("b", expected["b"]), ("*", expected["a"] + expected["b"])]
    assert snapshots.equity_of(specs[0]) == (D("1009.25"), D("984.25"), D("4.25"), D("5"))

    await snapshots.flush(T0 + 1_000_000_000)  # not due: nothing more
    assert len(seen) == 3
    await snapshots.flush(T0 + 2_000_000_000, force=True)  # forced: taken, and every write waited for
    rows = await database.pool.fetch("SELECT strategy, equity, cash FROM equity_snapshots ORDER BY time, strategy")
    assert [(r["strategy"], r["equity"]) for r in rows] == [
        ("a", expected["a"]),
        ("b", expected["b"]),
        ("a", expected["a"]),
        ("b", expected["b"]),
    ]

"""Signal sizing: only entries and the exits of held positions make orders, by vectorbt's conflict rules.

`reference` is the rule written out column by column, as plainly as possible; `signal_intents`
skips the columns with nothing to do with array operations and must give the same intents.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.engine.intents import OrderIntent
from framework.engine.sizing import SizingContext, _all_in_buy, _entry_budget, _floor, signal_intents
from framework.execution import ExecutionModel
from framework.instruments import Instrument
from framework.orders.model import Fill, OrderSide
from framework.orders.positions import PositionBook
from framework.strategy import DecisionArrays

SYMBOLS = [f"S{i}" for i in range(6)]
INSTRUMENTS = {s: Instrument(s, qty_step=0.001) for s in SYMBOLS} | {"OUT": Instrument("OUT", qty_step=0.001)}
MODEL = ExecutionModel(fees=0.001, slippage=0.0005)


def reference(ctx: SizingContext, decision: DecisionArrays) -> list[OrderIntent]:
    arrays, n = decision.arrays, len(ctx.symbols)
    out: list[OrderIntent] = []
    for col in range(n):
        le, lx = bool(arrays["entries"][-1][col]), bool(arrays["exits"][-1][col])
        se, sx = bool(arrays["short_entries"][-1][col]), bool(arrays["short_exits"][-1][col])
        if le and lx:
            le = lx = False
        if se and sx:
            se = sx = False
        if le and se:
            le = se = False
        close = float(ctx.closes[col])
        if not (le or lx or se or sx) or not math.isfinite(close) or close <= 0:
            continue
        position = ctx.position(ctx.symbols[col])
        held, cash, step = position.quantity, ctx.capital / n + position.cash_flow, ctx.step(ctx.symbols[col])
        per_unit = close * (1 - MODEL.slippage) * (1 + MODEL.fees)
        if held > 0 and se:
            out.append(ctx.intent(col, OrderSide.SELL, held + _floor(float(cash) / per_unit, step), "reverse to short"))
        elif held > 0 and lx:
            out.append(ctx.intent(col, OrderSide.SELL, held, "exit long"))
        elif held < 0 and le:
            out.extend(_all_in_buy(ctx, col, cash, close, step, "reverse to long"))
        elif held < 0 and sx:
            out.append(ctx.intent(col, OrderSide.BUY, -held, "exit short"))
        elif held == 0 and le:
            out.extend(_all_in_buy(ctx, col, _entry_budget(ctx, cash), close, step, "enter long"))
        elif held == 0 and se:
            short = _floor(float(_entry_budget(ctx, cash)) / per_unit, step)
            if short > 0:
                out.append(ctx.intent(col, OrderSide.SELL, short, "enter short"))
    return out


signals = st.lists(st.booleans(), min_size=len(SYMBOLS), max_size=len(SYMBOLS))


@settings(max_examples=300, deadline=None)
@given(
    held=st.lists(st.sampled_from(["flat", "long", "short", "closed"]), min_size=len(SYMBOLS), max_size=len(SYMBOLS)),
    outside=st.booleans(),
    entries=signals,
    exits=signals,
    short_entries=signals,
    short_exits=signals,
    closes=st.lists(
        st.sampled_from([25.0, 0.5, 1234.5678, 0.0, float("nan")]), min_size=len(SYMBOLS), max_size=len(SYMBOLS)
    ),
)
def test_the_intents_are_the_column_by_column_rules(
    held: list[str],
    outside: bool,
    entries: list[bool],
    exits: list[bool],
    short_entries: list[bool],
    short_exits: list[bool],
    closes: list[float],
) -> None:
    book, n = PositionBook(), 0

    def trade(symbol: str, side: OrderSide, qty: str) -> None:
        nonlocal n
        n += 1
        book.apply(
            Fill(f"f{n}", f"c{n}", "paper", symbol, side, Decimal(qty), Decimal("20"), Decimal("0.1"), strategy="i")
        )

    for symbol, state in zip(SYMBOLS, held, strict=True):
        if state == "long":
            trade(symbol, OrderSide.BUY, "1.5")
        elif state == "short":
            trade(symbol, OrderSide.SELL, "2.25")
        elif state == "closed":  # flat again, with the cash its trades moved
            trade(symbol, OrderSide.BUY, "1")
            trade(symbol, OrderSide.SELL, "1")
    if outside:  # a position outside the universe changes nothing
        trade("OUT", OrderSide.BUY, "3")
    decision = DecisionArrays(
        "signals",
        {
            name: np.array([values])
            for name, values in (
                ("entries", entries),
                ("exits", exits),
                ("short_entries", short_entries),
                ("short_exits", short_exits),
            )
        },
    )
    ctx = SizingContext("i", "paper", Decimal(6000), SYMBOLS, INSTRUMENTS, np.array(closes), book, MODEL, 7)
    assert signal_intents(ctx, decision) == reference(ctx, decision)


def test_an_exit_while_flat_sends_nothing_and_one_while_held_sells_it_all() -> None:
    book = PositionBook()
    book.apply(Fill("f1", "c1", "paper", "S1", OrderSide.BUY, Decimal("1.5"), Decimal(20), Decimal(0), strategy="i"))
    exits = np.array([[True] * len(SYMBOLS)])
    decision = DecisionArrays("signals", {"entries": np.zeros_like(exits), "exits": exits})
    ctx = SizingContext("i", "paper", Decimal(6000), SYMBOLS, INSTRUMENTS, np.full(len(SYMBOLS), 25.0), book, MODEL, 7)
    assert [(i.symbol, i.side, i.quantity, i.reason) for i in signal_intents(ctx, decision)] == [
        ("S1", OrderSide.SELL, Decimal("1.5"), "exit long")
    ]

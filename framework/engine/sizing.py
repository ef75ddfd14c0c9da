"""Turn the last row of a strategy's decision into order intents, by the backtest's sizing rules.

The rules are `framework.execution`'s, applied at a bar close with what is known then:

- **Signals** (`from_signals` semantics): each instrument has a cash sleeve, `capital / N` plus the
  cash its fills moved. An entry when flat spends the sleeve (or `fraction` of it, or `notional`)
  on the next open: the fill price is unknown when deciding, so the intent carries the sleeve's
  cash as its `cash_limit` and a quantity with `headroom` over the estimate at the close; the
  venue buys what the limit affords at the fill price, which is exactly vectorbt's all-in size
  (the paper venue uses vectorbt's own rule). An exit sells (or covers) the whole position. An
  opposite entry reverses in one order. An entry and an exit of the same side on the same bar
  cancel out, as do long and short entries together (vectorbt's default conflict rules); entries
  while already in the position are ignored (no accumulation).
- **Short entries** are sized from the decision close (`sleeve cash / (close * (1 + fees))`):
  a venue cannot cap a short sale by cash, so short sizing matches the backtest only when the next
  open equals the close. `rata parity` reports such differences; the shipped strategies are long
  only by default.
- **Target weights** (`from_orders`, `targetpercent`, shared cash): target quantities from the
  equity and prices at the decision close (as the backtest now does), the difference with the
  position rounded toward zero to the step; orders in vectorbt's automatic call sequence (sells
  first, then by order value). Buys are cut by the account's cash at the venue, as vectorbt cuts
  them by the strategy's shared cash.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from decimal import Decimal
from typing import Protocol

import numpy as np

from framework.engine.intents import OrderIntent
from framework.execution import ExecutionModel
from framework.instruments import Instrument
from framework.orders.model import OrderSide
from framework.orders.positions import Position
from framework.strategy import DecisionArrays

__all__ = ["PositionSource", "SizingContext", "signal_intents", "weight_intents"]

ZERO = Decimal(0)
_TINY = 1e-9


class PositionSource(Protocol):
    """Where positions come from (the order manager's `PositionBook`)."""

    def position(self, strategy: str, symbol: str) -> Position:
        """Return the position of `strategy` in `symbol`."""
        ...

    def open_symbols(self, strategy: str) -> AbstractSet[str]:
        """Return the symbols where `strategy` holds a quantity (long or short)."""
        ...


class SizingContext:
    """What sizing needs about one instance at one bar close."""

    def __init__(
        self,
        instance: str,
        venue: str,
        capital: Decimal,
        symbols: Sequence[str],
        instruments: Mapping[str, Instrument],
        closes: np.ndarray,
        book: PositionSource,
        model: ExecutionModel,
        decision_ns: int,
        headroom: float = 1.5,
        columns: Mapping[str, int] | None = None,
    ) -> None:
        self.instance = instance
        self.venue = venue
        self.capital = capital
        self.symbols = list(symbols)
        self.instruments = instruments
        self.closes = closes
        self.book = book
        self.model = model
        self.decision_ns = decision_ns
        self.headroom = headroom
        self.columns = columns if columns is not None else {s: i for i, s in enumerate(self.symbols)}
        """Each symbol's column (the engine passes its panel's, built once)."""

    def position(self, symbol: str) -> Position:
        """Return the instance's position in `symbol`."""
        return self.book.position(self.instance, symbol)

    def held_columns(self) -> np.ndarray:
        """Return a mask of the columns where the instance holds a position (long or short)."""
        mask = np.zeros(len(self.symbols), dtype=bool)
        columns = self.columns
        cols = [columns[s] for s in self.book.open_symbols(self.instance) if s in columns]
        mask[cols] = True
        return mask

    def step(self, symbol: str) -> Decimal:
        """Return the quantity step of `symbol`."""
        return Decimal(repr(self.instruments[symbol].qty_step))

    def intent(self, col: int, side: OrderSide, quantity: Decimal, reason: str, **extra: object) -> OrderIntent:
        """Return an intent of this instance in the symbol of column `col`, expected to fill near the close."""
        symbol = self.symbols[col]
        close = self.closes[col]
        return OrderIntent(
            strategy=self.instance,
            venue=self.venue,
            symbol=symbol,
            side=side,
            quantity=quantity,
            reason=reason,
            decision_ns=self.decision_ns,
            expected_price=Decimal(repr(float(close))),
            **extra,  # type: ignore[arg-type]
        )


def _floor(quantity: float, step: Decimal) -> Decimal:
    """Return `quantity` rounded down to `step` as vectorbt-rust does: `floor(q / step) * step`."""
    if not math.isfinite(quantity) or quantity <= 0:
        return ZERO
    units = math.floor(quantity / float(step) + _TINY)
    return (Decimal(units) * step).quantize(step) if units > 0 else ZERO


def _entry_budget(ctx: SizingContext, cash: Decimal) -> Decimal:
    model = ctx.model
    if model.notional is not None:
        budget = Decimal(repr(model.notional * (1 + model.slippage) * (1 + model.fees)))
        return min(budget, cash)
    if model.fraction < 1.0:
        return cash * Decimal(repr(model.fraction))
    return cash


def signal_intents(ctx: SizingContext, decision: DecisionArrays, row: int = -1) -> list[OrderIntent]:
    """Return the intents of a Signals decision at `row` (the newest bar by default)."""
    arrays = decision.arrays
    n = len(ctx.symbols)
    false = np.zeros(n, dtype=bool)
    long_in, long_out = arrays["entries"][row], arrays["exits"][row]
    short_in = arrays["short_entries"][row] if "short_entries" in arrays else false
    short_out = arrays["short_exits"][row] if "short_exits" in arrays else false
    sleeve = ctx.capital / n
    model = ctx.model
    # vectorbt's conflict rules: an entry and an exit of one side cancel out, as do both entries
    long_in, long_out = long_in & ~long_out, long_out & ~long_in
    short_in, short_out = short_in & ~short_out, short_out & ~short_in
    long_in, short_in = long_in & ~short_in, short_in & ~long_in
    out: list[OrderIntent] = []
    # The rest has nothing to do. An exit signal is common (a whole side of the universe may be
    # "above its mean" on every bar) and means something only where a position is held.
    for col in np.flatnonzero(long_in | short_in | ((long_out | short_out) & ctx.held_columns())).tolist():
        symbol = ctx.symbols[col]
        position = ctx.position(symbol)
        held = position.quantity
        le, lx, se, sx = bool(long_in[col]), bool(long_out[col]), bool(short_in[col]), bool(short_out[col])
        close = float(ctx.closes[col])
        if not math.isfinite(close) or close <= 0:
            continue
        cash = sleeve + position.cash_flow
        step = ctx.step(symbol)
        if held > 0 and se:
            short = _floor(float(cash) / (close * (1 - model.slippage) * (1 + model.fees)), step)
            out.append(ctx.intent(col, OrderSide.SELL, held + short, "reverse to short"))
        elif held > 0 and lx:
            out.append(ctx.intent(col, OrderSide.SELL, held, "exit long"))
        elif held < 0 and le:
            out.extend(_all_in_buy(ctx, col, cash, close, step, "reverse to long"))
        elif held < 0 and sx:
            out.append(ctx.intent(col, OrderSide.BUY, -held, "exit short"))
        elif held == 0 and le:
            out.extend(_all_in_buy(ctx, col, _entry_budget(ctx, cash), close, step, "enter long"))
        elif held == 0 and se:
            budget = float(_entry_budget(ctx, cash))
            short = _floor(budget / (close * (1 - model.slippage) * (1 + model.fees)), step)
            if short > 0:
                out.append(ctx.intent(col, OrderSide.SELL, short, "enter short"))
    return out


def _all_in_buy(
    ctx: SizingContext, col: int, budget: Decimal, close: float, step: Decimal, reason: str
) -> list[OrderIntent]:
    if budget <= 0:
        return []
    model = ctx.model
    estimate = float(budget) / (close * (1 + model.slippage) * (1 + model.fees))
    quantity = _floor(estimate * ctx.headroom, step)
    if quantity <= 0:
        return []
    return [ctx.intent(col, OrderSide.BUY, quantity, reason, cash_limit=budget)]


def weight_intents(ctx: SizingContext, decision: DecisionArrays, row: int = -1) -> list[OrderIntent]:
    """Return the intents of a TargetWeights decision at `row`, in vectorbt's automatic call order."""
    weights = decision.arrays["weights"][row]
    if np.isnan(weights).all():
        return []
    held = [ctx.position(s) for s in ctx.symbols]
    cash = float(ctx.capital + sum((p.cash_flow for p in held), ZERO))
    closes = ctx.closes
    value = cash + sum(float(p.quantity) * float(c) for p, c in zip(held, closes, strict=True) if p.quantity != 0)
    orders: list[tuple[float, OrderIntent]] = []
    for col, symbol in enumerate(ctx.symbols):
        weight, close = float(weights[col]), float(closes[col])
        if math.isnan(weight) or not math.isfinite(close) or close <= 0:
            continue
        current = float(held[col].quantity)
        size = weight * value / close - current
        if abs(size) <= _TINY * max(1.0, abs(current)):
            continue
        quantity = _floor(abs(size), ctx.step(symbol))
        if quantity <= 0:
            continue
        side = OrderSide.BUY if size > 0 else OrderSide.SELL
        orders.append((size * close, ctx.intent(col, side, quantity, "rebalance")))
    orders.sort(key=lambda pair: pair[0])
    return [intent for _, intent in orders]

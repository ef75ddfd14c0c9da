"""The execution model shared by the vectorbt backtest and the live paper broker.

One set of rules decides when and at what price a decision fills and how large the order is:

- **Timing.** A decision taken at the close of bar t fills at the *open of bar t+1*
  (`fill="next_open"`, the default), or at bar t's own close (`fill="close"`, optimistic). A
  decision on the last bar has no next bar and is not filled.
- **Price.** The fill price is the open (or close) moved against the trader by `slippage` (a rate:
  buys pay `price * (1 + slippage)`, sells get `price * (1 - slippage)`).
- **Fees.** `fees` is a rate of the filled notional, paid in cash on every fill.
- **Sizing (signals).** The strategy's cash is split equally among its instruments (one sleeve
  each). An entry invests `fraction` of the sleeve's cash (default: all of it): the quantity is
  that cash divided by the fill price with slippage and fees, rounded down to the instrument's
  quantity step (whole shares when the step is 1). With a fixed `notional`, the quantity is the
  notional divided by the fill price *before* slippage, rounded down the same way; slippage and
  fees are then paid on top (vectorbt's `size_type="value"`). An opposite signal when shorting is
  allowed closes and reverses the position in one order.
- **Sizing (target weights).** The strategy's equity is shared; at each rebalance the target
  quantity is `weight * equity / price`, with the price and the equity taken at the decision
  bar's close (the last prices known when deciding: the live engine cannot know the next open),
  and the order is the difference with the current position, rounded down to the quantity step;
  sells run first, and a buy the cash cannot cover at the fill price is cut to what it affords.
- **End.** Open positions at the end are marked to market at the last close, not dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from framework.errors import ParameterError

__all__ = ["ExecutionModel", "FillTiming"]

FillTiming = Literal["next_open", "close"]


@dataclass(frozen=True, slots=True)
class ExecutionModel:
    """When, at what price and how large decisions fill; see the module docstring."""

    fill: FillTiming = "next_open"
    fees: float = 0.0
    slippage: float = 0.0
    cash: float = 100_000.0
    fraction: float = 1.0
    notional: float | None = None

    def __post_init__(self) -> None:
        if self.fill not in ("next_open", "close"):
            raise ParameterError(f"fill must be 'next_open' or 'close', got {self.fill!r}")
        for name, low, high in (("fees", 0.0, 0.5), ("slippage", 0.0, 0.5), ("fraction", 1e-9, 1.0)):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and low <= value <= high):
                raise ParameterError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")
        if not (math.isfinite(self.cash) and self.cash > 0):
            raise ParameterError(f"cash must be finite and positive, got {self.cash!r}")
        if self.notional is not None and not (math.isfinite(self.notional) and self.notional > 0):
            raise ParameterError(f"notional must be finite and positive, got {self.notional!r}")

    def with_(self, **changes: Any) -> ExecutionModel:
        """Return a copy with some fields changed (validated)."""
        return replace(self, **changes)

    def signal_sizing(self, allows_short: bool) -> dict[str, Any]:
        """Return vectorbt `from_signals` sizing arguments for this model."""
        if self.notional is not None:
            return {"size": self.notional, "size_type": "value"}
        if self.fraction >= 1.0:
            return {"size": np.inf, "size_type": "amount"}
        if allows_short:
            raise ParameterError(
                "fraction < 1 cannot reverse long/short positions in one order; "
                "use notional sizing or a long-only strategy"
            )
        return {"size": self.fraction, "size_type": "percent"}

    def buy_quantity(self, cash: float, price: float, qty_step: float) -> float:
        """Return the quantity an all-cash buy gets at `price` (the paper broker's rule).

        Mirrors vectorbt's Rust `buy` for an order larger than the cash: spend `cash` including
        fees at the slipped price, rounded down to the quantity step as `floor(qty / step) * step`
        (not `qty // step`, whose float remainder turns 10.0 // 0.001 into 9999 steps).
        """
        adj_price = price * (1 + self.slippage)
        max_qty = cash / (1 + self.fees) / adj_price
        return float(math.floor(max_qty / qty_step) * qty_step)

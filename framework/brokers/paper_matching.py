"""The paper venue's matching rules: when an order may fill, at what price, for how much.

These are `framework.execution`'s rules restated for one order at a time, in `Decimal`:

- **Market orders** fill at the reference price (the next bar's open, or with `fill="close"` the
  decision bar's close) moved against the trader by the slippage rate: buys pay
  `price * (1 + slippage)`, sells get `price * (1 - slippage)`.
- **Limit orders** (not modelled by the backtest) fill only when the market trades *through* the
  limit, strictly: a buy when the bar's low is below the limit, a sell when its high is above it; a
  bar that merely touches the limit does not fill it (the queue ahead of the order is unknown).
  A bar that *opens* through the limit fills the order at the open, slipped but never worse than
  the limit (an opening gap executes resting orders at the opening price); otherwise the fill is at
  the limit price, without slippage (it is a resting order's own price).
- **Fees** are `fees * quantity * price`, charged in cash on every fill.
- **Cash.** A buy whose cost with fees exceeds the cash is cut to what the cash affords, exactly as
  vectorbt's `buy` does with `allow_partial=True`: the check allows vectorbt's relative tolerance
  (1e-9), and the affordable quantity is `ExecutionModel.buy_quantity` (float arithmetic, rounded
  down to the quantity step), so paper and backtest agree even at the boundary.

Market data prices are float64; they become `Decimal` through their shortest `repr` (200.0 ->
`Decimal("200.0")`), which differs from the float by less than one unit in the last place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from framework.errors import DataError
from framework.events import Bar
from framework.execution import ExecutionModel
from framework.orders.model import OrderSide
from framework.orders.state import exact_arithmetic
from framework.timeframes import TIMEFRAMES

__all__ = [
    "ZERO",
    "Pricing",
    "bar_close_ns",
    "decimal_of",
    "is_close_or_less",
    "step_of",
    "timeframe_length_ns",
]

ZERO = Decimal(0)
_REL_TOL = Decimal("1e-9")  # vectorbt.utils.math_.rel_tol
_ABS_TOL = Decimal("1e-12")  # vectorbt.utils.math_.abs_tol
_UNITS_NS = {"s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000, "d": 86_400_000_000_000}
_UNITS_NS["w"] = 7 * _UNITS_NS["d"]
_TIMEFRAME = re.compile(r"^\s*(\d+)\s*([smhdwSMHDW])\s*$")


def decimal_of(value: float) -> Decimal:
    """Return a float market price as the `Decimal` of its shortest repr."""
    return Decimal(repr(float(value)))


def step_of(quantity: Decimal) -> Decimal:
    """Return the quantity step implied by a quantity's decimal places (1 for whole numbers)."""
    exponent = quantity.normalize().as_tuple().exponent
    return Decimal(1).scaleb(exponent) if isinstance(exponent, int) and exponent < 0 else Decimal(1)


def timeframe_length_ns(timeframe: str) -> int:
    """Return the length of a bar timeframe such as `"1m"`, `"4h"` or `"1D"`, in nanoseconds."""
    if timeframe in TIMEFRAMES:
        return TIMEFRAMES[timeframe]
    match = _TIMEFRAME.match(timeframe)
    if match is None or int(match.group(1)) <= 0:
        raise DataError(f"cannot tell the length of bar timeframe {timeframe!r}")
    return int(match.group(1)) * _UNITS_NS[match.group(2).lower()]


def bar_close_ns(bar: Bar) -> int:
    """Return when `bar` closed: its open time plus its timeframe."""
    return bar.open_ns + timeframe_length_ns(bar.timeframe)


def is_close_or_less(a: Decimal, b: Decimal) -> bool:
    """Return whether `a <= b` within vectorbt's tolerance (relative 1e-9, absolute 1e-12)."""
    return a <= b or abs(a - b) <= max(_REL_TOL * max(abs(a), abs(b)), _ABS_TOL)


@dataclass(frozen=True, slots=True)
class Pricing:
    """Prices, fees and affordable quantities under one `ExecutionModel`."""

    model: ExecutionModel
    fees: Decimal
    slippage: Decimal
    _slipped: dict[OrderSide, Decimal] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        with exact_arithmetic():  # the factor a market price is multiplied by, per side, worked out once
            slipped = {side: 1 + side.sign * self.slippage for side in OrderSide}
        object.__setattr__(self, "_slipped", slipped)

    @classmethod
    def of(cls, model: ExecutionModel) -> Pricing:
        """Return the pricing rules of `model`."""
        return cls(model=model, fees=decimal_of(model.fees), slippage=decimal_of(model.slippage))

    def market(self, side: OrderSide, reference: float) -> Decimal:
        """Return a market fill price: `reference` slipped against the trader."""
        return decimal_of(reference) * self._slipped[side]

    def limit(self, side: OrderSide, limit: Decimal, open_: float, high: float, low: float) -> Decimal | None:
        """Return the fill price of a resting limit order against one bar, or None (module docstring)."""
        opening = decimal_of(open_)
        if side is OrderSide.BUY:
            if opening < limit:
                return min(self.market(side, open_), limit)
            return limit if decimal_of(low) < limit else None
        if opening > limit:
            return max(self.market(side, open_), limit)
        return limit if decimal_of(high) > limit else None

    def fee(self, quantity: Decimal, price: Decimal) -> Decimal:
        """Return the fee of a fill: the fee rate times its notional."""
        return self.fees * quantity * price

    def cost(self, quantity: Decimal, price: Decimal) -> Decimal:
        """Return the cash a buy of `quantity` at `price` takes, fees included."""
        return quantity * price + self.fee(quantity, price)

    def affordable(
        self, cash: Decimal, quantity: Decimal, price: Decimal, slipped_from: float | None, step: Decimal
    ) -> Decimal:
        """Return how much of a buy of `quantity` at `price` `cash` covers, as vectorbt's `buy` decides.

        `slipped_from` is the market reference price the fill price was slipped from (None for a
        limit price): the cut quantity is then computed from it exactly as the backtest computes
        it, in float, by `ExecutionModel.buy_quantity`.
        """
        if is_close_or_less(self.cost(quantity, price), cash):
            return quantity
        if cash <= 0:
            return ZERO
        if slipped_from is None:
            units = self.model.with_(slippage=0.0).buy_quantity(float(cash), float(price), float(step))
        else:
            units = self.model.buy_quantity(float(cash), slipped_from, float(step))
        cut = (Decimal(repr(units)) / step).to_integral_value() * step
        return min(max(cut, ZERO), quantity).quantize(step) if cut > 0 else ZERO

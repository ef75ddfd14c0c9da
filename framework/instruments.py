"""Instruments: what is traded, with the tick size and quantity step that sizing must respect."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

__all__ = ["Instrument"]


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable instrument.

    `qty_step` is the lot size / quantity increment (1 for whole shares, 0.0001 for a crypto pair);
    every order quantity is rounded down to it. `tick_size` is the price increment.
    """

    symbol: str
    tick_size: float = 0.01
    qty_step: float = 1.0
    venue: str = "SIM"
    asset_class: str = "equity"
    currency: str = "USD"

    def __post_init__(self) -> None:
        if not self.symbol:
            raise ValueError("instrument symbol must not be empty")
        for field in ("tick_size", "qty_step"):
            value = getattr(self, field)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{self.symbol}: {field} must be finite and positive, got {value}")

    def round_qty_down(self, qty: float) -> float:
        """Return `qty` rounded toward zero to a whole number of `qty_step`s."""
        steps = math.floor(abs(qty) / self.qty_step + 1e-9)
        return math.copysign(steps * self.qty_step, qty) if steps else 0.0

    def round_price(self, price: float) -> float:
        """Return `price` rounded to the nearest tick."""
        return round(round(price / self.tick_size) * self.tick_size, 12)

    def qty_decimal(self, qty: float) -> Decimal:
        """Return `qty` as a `Decimal` with the step's number of decimal places."""
        return Decimal(str(self.round_qty_down(qty))).quantize(Decimal(str(self.qty_step)).normalize())

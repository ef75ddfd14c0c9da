"""SMA crossover: the textbook trend follower.

Go long when the fast simple moving average of the close crosses above the slow one; exit (or,
with `short`, reverse to short) when it crosses back below. Trends persist more often than chance
would allow, and two moving averages are the simplest causal filter that rides them.
"""

from __future__ import annotations

import pandas as pd

from framework import Bars, Param, ParameterError, Signals, Strategy
from framework.indicators import crossed_above, crossed_below, sma
from framework.strategy import Indicator


class SmaCross(Strategy):
    """Go long when the fast SMA crosses above the slow one; reverse on the way down."""

    name = "sma_cross"
    fast = Param(10, bounds=(2, 200), doc="fast SMA window, in bars")
    slow = Param(20, bounds=(2, 400), doc="slow SMA window, in bars")
    short = Param(False, doc="go short on a downward cross instead of only exiting")
    warmup = "slow"

    def validate(self) -> None:
        if self.fast >= self.slow:
            raise ParameterError(f"fast ({self.fast}) must be smaller than slow ({self.slow})")

    def averages(self, data: Bars) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Return the fast and the slow SMA of the close (memoised: `signals` and the charts share them)."""
        return sma(data.close, self.fast), sma(data.close, self.slow)

    def indicators(self, data: Bars) -> dict[str, Indicator]:
        """Draw both averages over the price."""
        fast, slow = self.averages(data)
        return {"fast_sma": Indicator(fast), "slow_sma": Indicator(slow)}

    def signals(self, data: Bars) -> Signals:
        fast, slow = self.averages(data)
        up = crossed_above(fast, slow)
        down = crossed_below(fast, slow)
        if self.short:
            return Signals(entries=up, exits=down, short_entries=down, short_exits=up)
        return Signals(entries=up, exits=down)

"""SMA crossover: the textbook trend follower.

Go long when the fast simple moving average of the close crosses above the slow one; exit (or,
with `short`, reverse to short) when it crosses back below. Trends persist more often than chance
would allow, and two moving averages are the simplest causal filter that rides them.
"""

from __future__ import annotations

from framework import Bars, Param, ParameterError, Signals, Strategy


class SmaCross(Strategy):
    """Go long when the fast SMA crosses above the slow one; reverse on the way down."""

    name = "sma_cross"
    fast = Param(10, bounds=(2, 200), doc="fast SMA window, in bars")
    slow = Param(20, bounds=(3, 400), doc="slow SMA window, in bars")
    short = Param(False, doc="go short on a downward cross instead of only exiting")
    warmup = "slow"

    def validate(self) -> None:
        if self.fast >= self.slow:
            raise ParameterError(f"fast ({self.fast}) must be smaller than slow ({self.slow})")

    def signals(self, data: Bars) -> Signals:
        fast = data.close.rolling(self.fast).mean()
        slow = data.close.rolling(self.slow).mean()
        above = fast > slow
        below = fast < slow
        cross_up = above & below.shift(1, fill_value=False)
        cross_down = below & above.shift(1, fill_value=False)
        if self.short:
            return Signals(entries=cross_up, exits=cross_down, short_entries=cross_down, short_exits=cross_up)
        return Signals(entries=cross_up, exits=cross_down)

"""RSI mean reversion: buy the exhausted sell-off, sell into the overbought rally.

Short-horizon returns of liquid instruments mean-revert more often than they trend: a run of down
closes (oversold, a low RSI) is frequently followed by a bounce, as liquidity providers are paid
for absorbing forced or impatient selling. Wilder's Relative Strength Index measures the share of
recent movement that was upward, on a 0-100 scale.

Rules, per instrument:

- **Long entry** when the RSI *crosses back above* `lower` (it was at or below `lower` on the
  previous bar and is above it now). Waiting for the turn, rather than buying as soon as the RSI
  drops below `lower`, avoids averaging into a sell-off that has not finished. An entry is skipped
  when the RSI jumped straight above `upper`, where the exit rule would close it at once.
- **Long exit** when the RSI is above `upper`.
- With `short`, the mirror image: **short entry** when the RSI crosses back below `upper`, **short
  exit** when it is below `lower`.

The RSI (`framework.indicators.rsi`) uses Wilder's smoothing, an exponential average with
`alpha = 1 / window` (`ewm(adjust=False)`), which is recursive and therefore causal. The recursion
starts from the first price change of the data it is given, so its value also depends on where the
data starts, with a weight of at most `(1 - 1/window) ** n <= exp(-n / window)` after `n` more
changes. The warm-up is therefore `10 * window + 1` bars (one bar for the first change, then ten
windows of changes) rather than the bare `window + 1`: the start-up weight is then below 0.005%,
so the backtest (the whole history) and the live engine (a rolling window) compute the same
signals. With five windows, about 1% of the bars of GOOG still signalled differently.
"""

from __future__ import annotations

from functools import partial

import pandas as pd

from framework import Bars, Param, ParameterError, Signals, Strategy
from framework.indicators import crossed_above, crossed_below, rsi
from framework.strategy import Indicator

WARMUP_WINDOWS = 10


def _rsi_warmup(strategy: Strategy) -> int:
    return WARMUP_WINDOWS * int(strategy.values["window"]) + 1


class RsiReversion(Strategy):
    """Buy when the RSI turns up out of oversold, exit when overbought; optionally the mirror short."""

    name = "rsi_reversion"
    window = Param(14, bounds=(2, 100), doc="RSI window (Wilder smoothing alpha = 1/window), in bars")
    lower = Param(30.0, bounds=(1, 50), doc="oversold level: a long entry when the RSI crosses back above it")
    upper = Param(70.0, bounds=(50, 99), doc="overbought level: the long exit, and the short entry on the way down")
    short = Param(False, doc="also trade the mirror image: short from overbought, cover when oversold")
    warmup = _rsi_warmup

    def validate(self) -> None:
        if self.lower >= self.upper:
            raise ParameterError(f"lower ({self.lower}) must be smaller than upper ({self.upper})")

    def indicators(self, data: Bars) -> dict[str, Indicator]:
        """Draw the RSI with its oversold and overbought levels in a pane of their own."""
        return {
            "rsi": Indicator(rsi(data.close, self.window), overlay=False),
            "oversold": Indicator.level(data, self.lower),
            "overbought": Indicator.level(data, self.upper),
        }

    def signals(self, data: Bars) -> Signals:
        # Whole-panel numpy rather than pandas operators: the live engine calls this every bar.
        strength = rsi(data.close, self.window)
        frame = partial(pd.DataFrame, index=strength.index, columns=strength.columns, copy=False)
        value = strength.to_numpy()
        entries = frame(crossed_above(strength, self.lower).to_numpy() & (value <= self.upper))
        exits = frame(value > self.upper)
        if not self.short:
            return Signals(entries=entries, exits=exits)
        short_entries = frame(crossed_below(strength, self.upper).to_numpy() & (value >= self.lower))
        short_exits = frame(value < self.lower)
        return Signals(entries=entries, exits=exits, short_entries=short_entries, short_exits=short_exits)

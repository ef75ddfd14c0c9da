"""Bollinger breakout: ride a close that escapes its usual range.

A close above the upper Bollinger band (the `window`-bar mean plus `k` standard deviations) is a
move larger than the recent noise; volatility expansions of that kind tend to continue (news being
absorbed over several sessions, trend followers piling in), so the strategy goes long on the break
and gives the trade room until the close falls back below the middle band (the mean), where the
move has evidently lost its force.

Rules, per instrument:

- **Long entry** on the bar whose close is above the upper band after a close that was at or below
  it (the break itself, not every bar spent above the band).
- **Long exit** when the close is below the middle band.
- With `short`, the mirror image: **short entry** on a break below the lower band, **short exit**
  when the close is above the middle band. An opposite break reverses the position.

The bands use the population standard deviation (`ddof=0`), as Bollinger defined them. Everything
is a trailing rolling window, so the first band is at bar `window - 1` and the warm-up is `window`
bars: a break needs the band of the previous bar too.
"""

from __future__ import annotations

from functools import partial

import pandas as pd

from framework import Bars, Param, Signals, Strategy
from framework.indicators import crossed_above, crossed_below, rolling_std, sma
from framework.strategy import Indicator


class BollingerBreakout(Strategy):
    """Go long when the close breaks above the upper Bollinger band; exit below the middle band."""

    name = "bollinger_breakout"
    window = Param(20, bounds=(5, 200), doc="rolling window of the bands, in bars")
    k = Param(2.0, bounds=(0.5, 4.0), doc="band half-width in standard deviations")
    short = Param(False, doc="also go short on a break below the lower band")
    warmup = "window"

    def middle_and_width(self, data: Bars) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Return the middle band and the bands' half-width as frames (the charts; `signals` uses their arrays)."""
        return sma(data.close, self.window), self.k * rolling_std(data.close, self.window)

    def indicators(self, data: Bars) -> dict[str, Indicator]:
        """Draw the three bands over the price."""
        middle, width = self.middle_and_width(data)
        return {
            "middle_band": Indicator(middle),
            "upper_band": Indicator(middle + width),
            "lower_band": Indicator(middle - width),
        }

    def signals(self, data: Bars) -> Signals:
        # Whole-panel numpy rather than pandas operators: the live engine calls this every bar.
        close = data.close
        frame = partial(pd.DataFrame, index=close.index, columns=close.columns, copy=False)
        price = close.to_numpy(dtype="float64")
        middle = sma(close, self.window).to_numpy()
        width = self.k * rolling_std(close, self.window).to_numpy()
        entries = crossed_above(close, frame(middle + width))
        exits = frame(price < middle)
        if not self.short:
            return Signals(entries=entries, exits=exits)
        short_entries = crossed_below(close, frame(middle - width))
        return Signals(entries=entries, exits=exits, short_entries=short_entries, short_exits=frame(price > middle))

"""Cross-sectional momentum rotation: hold the recent winners of a basket, rotate periodically.

Instruments that outperformed their peers over the past months tend to keep outperforming over
the next weeks (Jegadeesh and Titman's momentum effect, attributed to investors under-reacting to
news and then chasing it). Every `rebalance` bars the strategy ranks the instruments of the panel
by their trailing `lookback`-bar return, holds the `top` best with equal weights `1 / top` and
nothing of the others. This is relative momentum: the winners are held even when they fell.

Rebalance bars come from the calendar, not from row numbers. The live engine calls `signals()` on
a rolling window, so a rule like "every n-th row" would move with the window's first row, and the
backtest and the live runner would rebalance on different bars. Instead the time axis is cut into
fixed blocks of `rebalance` bar slots counted from the Unix epoch, and the strategy rebalances on
the first bar of each block. A bar slot is one bar duration (the panel's `timeframe`, or the
median spacing of its bars when the timeframe is not a fixed duration), except for daily bars,
whose slots are weekdays (numpy's Monday-Friday business-day calendar): on daily stock bars,
which skip weekends, `rebalance=21` is then about a month, and a block starting on a holiday
rebalances on the next bar. The first row of a panel has no previous bar to compare with and is
never a rebalance bar (it is always inside the warm-up).

Weights are NaN ("keep what is held") on all other bars. An instrument without a full `lookback`
of history is not ranked and gets weight 0. When `top` is at least the number of instruments,
all of them are held equally.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from framework import Bars, Param, Strategy, TargetWeights
from framework.indicators import pct_return
from framework.strategy import Indicator

_DAY = pd.Timedelta(days=1)
_EPOCH_DAY = np.datetime64("1970-01-01", "D")


def bar_duration(data: Bars) -> pd.Timedelta:
    """Return the nominal duration of one bar: the panel's timeframe, else its median spacing."""
    if data.timeframe:
        label = data.timeframe[:-1] + "D" if data.timeframe.endswith("d") else data.timeframe
        try:
            step = pd.Timedelta(label)
        except ValueError:  # a calendar frequency such as "1M" has no fixed duration
            step = pd.Timedelta(0)
        if step > pd.Timedelta(0):
            return step
    if len(data) < 2:
        return _DAY
    return pd.Timedelta(int(np.median(np.diff(data.index.as_unit("ns").asi8))), unit="ns")


def rebalance_bars(index: pd.DatetimeIndex, every: int, step: pd.Timedelta) -> np.ndarray:
    """Return a mask of the bars that open a new block of `every` bar slots since the epoch."""
    if step == _DAY:
        days = index.tz_convert("UTC").tz_localize(None).to_numpy().astype("datetime64[D]")
        slots = np.busday_count(_EPOCH_DAY, days)
    else:
        slots = index.as_unit("ns").asi8 // step.as_unit("ns").value
    block = slots // every
    mask = np.zeros(len(index), dtype=bool)
    mask[1:] = block[1:] != block[:-1]
    return mask


class MomentumRotation(Strategy):
    """Every `rebalance` bars, hold the `top` instruments with the best `lookback`-bar return."""

    name = "momentum_rotation"
    lookback = Param(126, bounds=(5, 400), doc="trailing return window used for ranking, in bars")
    top = Param(2, bounds=(1, 20), doc="number of best-ranked instruments held, equally weighted")
    rebalance = Param(21, bounds=(1, 126), doc="bar slots between rebalances (weekdays for daily bars)")
    warmup = "lookback"

    def indicators(self, data: Bars) -> dict[str, Indicator]:
        """Draw the trailing return the instruments are ranked by, in a pane of its own."""
        return {"momentum": Indicator(pct_return(data.close, self.lookback), overlay=False)}

    def signals(self, data: Bars) -> TargetWeights:
        momentum = pct_return(data.close, self.lookback)
        held = min(self.top, len(data.symbols))
        chosen = momentum.rank(axis=1, ascending=False, method="first") <= held
        weights = chosen.astype("float64") / held
        due = rebalance_bars(data.index, self.rebalance, bar_duration(data))
        return TargetWeights(weights.where(np.broadcast_to(due[:, None], weights.shape)))

from __future__ import annotations

import numpy as np
import pandas as pd

from framework.indicators import crossed_above, crossed_below, rsi, sma
from tests.conftest import make_bars


def test_sma_is_memoised_per_frame_and_window():
    bars = make_bars({"A": [1.0, 2.0, 3.0, 4.0]})
    first = sma(bars.close, 2)
    assert sma(bars.close, 2) is first
    assert sma(bars.close, 3) is not first
    assert first["A"].tolist()[1:] == [1.5, 2.5, 3.5]


def test_crosses_need_the_previous_bar_on_the_other_side():
    bars = make_bars({"A": [1.0, 3.0, 3.0, 1.0, np.nan, 3.0]})
    level = pd.DataFrame(2.0, index=bars.index, columns=bars.close.columns)
    assert crossed_above(bars.close, level)["A"].tolist() == [False, True, False, False, False, False]
    assert crossed_below(bars.close, 2.0)["A"].tolist() == [False, False, False, True, False, False]


def test_rsi_is_bounded_and_known_on_a_monotone_series():
    bars = make_bars({"A": list(range(1, 40))})
    values = rsi(bars.close, 14)["A"].dropna()
    assert (values == 100.0).all()
    random = make_bars({"B": list(100 + np.cumsum(np.random.default_rng(1).normal(0, 1, 200)))})
    r = rsi(random.close, 14)["B"].dropna()
    assert ((r >= 0) & (r <= 100)).all()

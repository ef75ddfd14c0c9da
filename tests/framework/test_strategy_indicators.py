"""The indicator part of the strategy contract: what a strategy asks the charts to draw, checked."""

from __future__ import annotations

import pandas as pd
import pytest

from framework import Param, Signals, Strategy, StrategyError
from framework.strategy import Indicator
from tests.conftest import make_bars


class Plain(Strategy):
    def signals(self, data):
        return Signals(entries=data.close > 0, exits=data.close < 0)


class Drawn(Plain):
    window = Param(2, bounds=(1, 10))

    def indicators(self, data):
        mean = data.close.rolling(self.window).mean()
        return {"mean": Indicator(mean), "ratio": Indicator(data.close / mean, overlay=False)}


def test_a_strategy_draws_nothing_by_default():
    assert Plain().checked_indicators(make_bars({"A": [1, 2, 3]})) == {}


def test_indicators_come_back_checked_in_the_order_given_with_their_placement():
    bars = make_bars({"A": [1, 2, 3, 4], "B": [4, 3, 2, 1]})
    drawn = Drawn().checked_indicators(bars)
    assert list(drawn) == ["mean", "ratio"]
    assert drawn["mean"].overlay
    assert not drawn["ratio"].overlay
    assert drawn["mean"].frame["B"].tolist()[1:] == [3.5, 2.5, 1.5]


def test_a_level_is_a_constant_line_in_its_own_pane():
    bars = make_bars({"A": [1, 2, 3], "B": [3, 2, 1]})
    level = Indicator.level(bars, 30)
    assert not level.overlay
    assert level.frame.shape == (3, 2)
    assert (level.frame == 30.0).all().all()


def test_a_series_of_a_single_instrument_and_integers_are_accepted_as_float_frames():
    class Series(Plain):
        def indicators(self, data):
            return {"count": Indicator(pd.Series(range(len(data)), index=data.index))}

    bars = make_bars({"A": [1, 2, 3]})
    frame = Series().checked_indicators(bars)["count"].frame
    assert frame.columns.tolist() == ["A"]
    assert frame.dtypes.tolist() == ["float64"]


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (lambda d: [d.close], "must return a mapping"),
        (lambda d: {"": Indicator(d.close)}, "names must be non-empty strings"),
        (lambda d: {"x": d.close}, "must be an Indicator"),
        (lambda d: {"x": Indicator(d.close.iloc[1:])}, "not aligned"),
        (lambda d: {"x": Indicator(d.close.astype(str) + "!")}, "not numeric"),
        (lambda d: 1 / 0, r"indicators\(\) raised ZeroDivisionError"),
    ],
)
def test_malformed_indicators_are_a_strategy_error_naming_the_strategy(returned, message):
    class Bad(Plain):
        def indicators(self, data):
            return returned(data)

    with pytest.raises(StrategyError, match=message):
        Bad().checked_indicators(make_bars({"A": [1, 2, 3]}))

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from framework import Param, Signals, Strategy, StrategyError, TargetWeights
from tests.conftest import make_bars


class Threshold(Strategy):
    level = Param(100.0, bounds=(0.0, 1e6))
    warmup = 2

    def signals(self, data):
        return Signals(entries=data.close > self.level, exits=data.close < self.level)


def test_decide_masks_signals_during_warmup():
    bars = make_bars({"A": [150, 150, 150, 150]})
    decision = Threshold().decide(bars)
    assert decision.entries["A"].tolist() == [False, False, True, True]


def test_signals_that_raise_become_a_strategy_error_naming_the_strategy():
    class Broken(Strategy):
        def signals(self, data):
            raise ZeroDivisionError("boom")

    with pytest.raises(StrategyError, match=r"broken.signals\(\) raised ZeroDivisionError: boom"):
        Broken().decide(make_bars({"A": [1, 2, 3]}))


def test_misaligned_or_wrongly_typed_output_is_refused():
    class Misaligned(Strategy):
        def signals(self, data):
            return Signals(entries=data.close.iloc[1:] > 0, exits=data.close.iloc[1:] < 0)

    class WrongType(Strategy):
        def signals(self, data):
            return data.close > 0

    bars = make_bars({"A": [1, 2, 3]})
    with pytest.raises(StrategyError, match="not aligned"):
        Misaligned().decide(bars)
    with pytest.raises(StrategyError, match="must return Signals or TargetWeights"):
        WrongType().decide(bars)


def test_nan_signals_count_as_no_signal_and_weights_are_masked_in_warmup():
    class Floats(Strategy):
        warmup = 1

        def signals(self, data):
            entries = pd.DataFrame(np.nan, index=data.index, columns=data.close.columns)
            entries.iloc[2] = 1.0
            return Signals(entries=entries, exits=entries * 0)

    class Weights(Strategy):
        warmup = 2

        def signals(self, data):
            return TargetWeights(data.close * 0 + 0.5)

    bars = make_bars({"A": [1, 2, 3, 4]})
    assert Floats().decide(bars).entries["A"].tolist() == [False, False, True, False]
    weights = Weights().decide(bars).weights["A"]
    assert weights.isna().tolist() == [True, True, False, False]


def test_strategy_name_defaults_to_snake_case_of_the_class():
    class MyFancyStrategy(Strategy):
        pass

    assert MyFancyStrategy.name == "my_fancy_strategy"

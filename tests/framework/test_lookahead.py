from __future__ import annotations

import pytest

from framework import LookaheadError, Param, Signals, Strategy, check_lookahead
from framework.indicators import ema
from strategies.sma_cross import SmaCross


class PeeksTomorrow(Strategy):
    """Buys when tomorrow's close is higher: the classic shift(-1) bug."""

    warmup = 0

    def signals(self, data):
        tomorrow = data.close.shift(-1)
        return Signals(entries=tomorrow > data.close, exits=tomorrow < data.close)


class FullSampleZscore(Strategy):
    """Normalises with the mean of the whole sample: a subtle look-ahead."""

    def signals(self, data):
        z = (data.close - data.close.mean()) / data.close.std()
        return Signals(entries=z > 0, exits=z < 0)


class ShortWarmupEma(Strategy):
    """An EMA strategy that declares too little warm-up for its infinite memory."""

    span = Param(50, bounds=(2, 500))
    warmup = "span"

    def signals(self, data):
        average = ema(data.close, self.span)
        return Signals(entries=data.close > average * 1.0005, exits=data.close < average * 0.9995)


def test_a_causal_strategy_passes(goog, stocks):
    assert check_lookahead(SmaCross(), goog).ok
    assert check_lookahead(SmaCross(short=True), stocks).ok


def test_shift_minus_one_is_caught_naming_instrument_and_first_bar(goog):
    report = check_lookahead(PeeksTomorrow(), goog, history=False)
    assert not report.ok
    problem = report.problems[0]
    assert problem.kind == "lookahead"
    assert problem.instrument == "GOOG"
    with pytest.raises(LookaheadError, match=r"look-ahead: .* of GOOG at \d{4}-\d\d-\d\d"):
        report.raise_if_failed()


def test_full_sample_statistics_are_caught(goog):
    report = check_lookahead(FullSampleZscore(), goog)
    assert any(p.kind == "lookahead" for p in report.problems)


def test_history_dependence_beyond_warmup_is_flagged(goog):
    report = check_lookahead(ShortWarmupEma(span=50), goog, cuts=40)
    assert [p.kind for p in report.problems] == ["history"]
    assert "declare a longer warmup" in report.problems[0].detail

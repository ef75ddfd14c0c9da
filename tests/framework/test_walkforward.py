from __future__ import annotations

import pytest

from framework import ParameterError, sweep, walk_forward
from framework.walkforward import window_bounds
from strategies.sma_cross import SmaCross

GRID = {"fast": [5, 10, 20], "slow": [30, 60]}


def test_rolling_and_anchored_window_bounds():
    assert window_bounds(10, 4, 3) == [(0, 4, 4, 7), (3, 7, 7, 10)]
    assert window_bounds(10, 4, 3, anchored=True) == [(0, 4, 4, 7), (0, 7, 7, 10)]
    with pytest.raises(ParameterError, match="exceed"):
        window_bounds(10, 8, 5)


def test_walk_forward_picks_the_train_winner_and_stitches_out_of_sample_equity(goog):
    result = walk_forward(SmaCross, goog, GRID, train=500, test=250, metric="sharpe", fees=0.001)
    assert len(result.windows) == 7
    first = result.windows.iloc[0]
    train_best = sweep(SmaCross, goog.iloc[:500], GRID, fees=0.001).best("sharpe")
    assert {"fast": first["fast"], "slow": first["slow"]} == train_best
    # out-of-sample: the stitched curve starts at the first test bar and chains the windows' equity
    assert result.equity.index[0] == goog.index[500]
    assert result.equity.index.is_unique
    assert result.windows["test_initial_equity"].iloc[1] == pytest.approx(result.windows["test_final_equity"].iloc[0])
    assert result.stats["final_equity"] == pytest.approx(result.windows["test_final_equity"].iloc[-1])
    assert result.plot() is not None


def test_anchored_walk_forward_always_trains_from_the_first_bar(goog):
    result = walk_forward(SmaCross, goog, GRID, train=500, test=500, anchored=True)
    assert (result.windows["train_start"] == goog.index[0]).all()

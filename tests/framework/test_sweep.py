from __future__ import annotations

import numpy as np
import pytest

from framework import ParameterError, UnknownNameError, backtest, sweep
from strategies.sma_cross import SmaCross

GRID = {"fast": [5, 10, 20], "slow": [10, 30, 60]}


def test_sweep_equals_one_backtest_per_combination(goog):
    result = sweep(SmaCross, goog, GRID, fees=0.001, slippage=0.0005)
    assert len(result.table) == 7  # 9 pairs, but (10, 10) and (20, 10) are refused: fast < slow
    assert {tuple(p.values()) for p, _ in result.skipped} == {(10, 10), (20, 10)}
    for row in result.table.itertuples():
        single = backtest(SmaCross(fast=row.fast, slow=row.slow), goog, fees=0.001, slippage=0.0005)
        assert row.final_equity == pytest.approx(single.final_equity, rel=1e-12)
        assert row.sharpe == pytest.approx(single.stats["sharpe"], rel=1e-9)
        assert row.trades == single.stats["trades"]
        assert row.max_drawdown == pytest.approx(single.stats["max_drawdown"], rel=1e-9)


def test_sweep_on_a_multi_instrument_panel_matches_backtests(stocks):
    result = sweep(SmaCross(short=True), stocks, {"fast": [10, 20], "slow": [50]}, fees=0.001)
    for row in result.table.itertuples():
        single = backtest(SmaCross(fast=row.fast, slow=row.slow, short=True), stocks, fees=0.001)
        assert row.final_equity == pytest.approx(single.final_equity, rel=1e-12)
        assert row.exposure == pytest.approx(single.stats["exposure"])


def test_chunked_sweep_gives_the_same_table(goog):
    whole = sweep(SmaCross, goog, GRID)
    chunked = sweep(SmaCross, goog, GRID, chunk_size=3)
    np.testing.assert_allclose(whole.table["final_equity"], chunked.table["final_equity"], rtol=0, atol=0)


def test_best_top_and_heatmap(goog):
    result = sweep(SmaCross, goog, GRID)
    best = result.best("total_return")
    assert best == result.top(1, "total_return")[["fast", "slow"]].iloc[0].to_dict()
    heatmap = result.heatmap("fast", "slow", "sharpe")
    assert heatmap.vdims[0].name == "sharpe"
    summary = result.to_dict()
    assert summary["combinations"] == 7
    assert len(summary["rows"]) == 7


def test_top_ranks_infinite_and_missing_values_last_like_best():
    import pandas as pd

    from framework.sweep import SweepResult

    table = pd.DataFrame({"fast": [2, 3, 4, 5], "slow": [9, 9, 9, 9], "sharpe": [np.inf, 0.5, np.nan, 1.5]})
    result = SweepResult(SmaCross, ("fast", "slow"), table)
    assert result.top(4, "sharpe")["fast"].tolist() == [5, 3, 2, 4]
    assert result.best("sharpe") == result.top(1, "sharpe")[["fast", "slow"]].iloc[0].to_dict()


def test_bad_grids_are_refused_with_the_reason(goog):
    with pytest.raises(UnknownNameError, match="valid: fast, slow, short"):
        sweep(SmaCross, goog, {"fats": [1]})
    with pytest.raises(ParameterError, match=r"'fast' = 1 is out of bounds \[2, 200\]"):
        sweep(SmaCross, goog, {"fast": [1, 2]})
    with pytest.raises(UnknownNameError, match="unknown metric"):
        sweep(SmaCross, goog, GRID).best("alpha")


@pytest.mark.slow
def test_sweep_on_a_local_dask_cluster_matches_the_in_process_run(goog):
    local = sweep(SmaCross, goog, GRID, fees=0.001)
    distributed = sweep(SmaCross, goog, GRID, fees=0.001, dask="local", chunk_size=2)
    np.testing.assert_array_equal(local.table["final_equity"], distributed.table["final_equity"])
    np.testing.assert_array_equal(local.table[["fast", "slow"]], distributed.table[["fast", "slow"]])

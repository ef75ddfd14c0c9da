"""The research dashboard's work functions: form values in, framework results or one clear refusal out."""

from __future__ import annotations

import asyncio

import pandas as pd
import pytest

from dashboards import research_jobs as jobs
from dashboards.research_views import format_stat, stats_html, top_frame
from dashboards.widgets import GridAxis
from framework import ExecutionModel, Instrument, ParameterError, SweepResult, backtest, load_dataset, sweep
from framework.data.store import import_frame
from framework.settings import Settings
from strategies.rsi_reversion import RsiReversion
from strategies.sma_cross import SmaCross


def test_backtest_equals_the_framework_backtest():
    model = jobs.build_model("close", 0.002, 0.001, 50_000.0)
    strategy = jobs.build_strategy(SmaCross, {"fast": 5, "slow": 30, "short": True})
    result = jobs.run_backtest(strategy, jobs.load_data(jobs.DataChoice(dataset="goog")), model)
    expected = backtest(
        SmaCross(fast=5, slow=30, short=True),
        load_dataset("GOOG"),
        fill="close",
        fees=0.002,
        slippage=0.001,
        cash=50_000.0,
    )
    assert result.stats == expected.stats
    pd.testing.assert_series_equal(result.equity, expected.equity)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"fast": None, "slow": 20, "short": False}, "parameter 'fast' is empty: enter a value"),
        ({"fast": 30, "slow": 20, "short": False}, "fast (30) must be smaller than slow (20)"),
        ({"fast": 1, "slow": 20, "short": False}, "parameter 'fast' = 1 is out of bounds [2, 200]"),
    ],
)
def test_bad_parameters_are_refused_with_the_declarations_message(values, message):
    with pytest.raises(ParameterError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        jobs.build_strategy(SmaCross, values)


@pytest.mark.parametrize(
    ("fill", "fees", "slippage", "cash", "message"),
    [
        ("next_open", None, 0.0, 1e5, "fees is empty"),
        ("next_open", 0.9, 0.0, 1e5, "fees must be a number in"),
        ("later", 0.0, 0.0, 1e5, "fill must be 'next_open' or 'close'"),
        ("next_open", 0.0, 0.0, 0.0, "cash must be finite and positive"),
    ],
)
def test_bad_execution_settings_are_refused(fill, fees, slippage, cash, message):
    with pytest.raises(ParameterError, match=message):
        jobs.build_model(fill, fees, slippage, cash)


def test_grid_expands_ticked_ranges_within_bounds_and_fixes_the_rest():
    grid = jobs.build_grid(
        SmaCross,
        [GridAxis("fast", 5, 15, 5), GridAxis("short", every_value=True)],
        {"fast": 10, "slow": 40, "short": False},
    )
    assert grid == {"fast": [5, 10, 15], "short": [False, True], "slow": [40]}
    result = jobs.run_sweep(SmaCross, load_dataset("GOOG"), grid, ExecutionModel())
    expected = sweep(SmaCross, load_dataset("GOOG"), grid)
    pd.testing.assert_frame_equal(result.table, expected.table)


@pytest.mark.parametrize(
    ("axes", "message"),
    [
        ([], "tick at least one parameter to sweep"),
        ([GridAxis("fast", 30, 10, 5)], r"sweep fast: from \(30\) is above to \(10\)"),
        ([GridAxis("fast", 1, 10, 1)], r"sweep fast: from parameter 'fast' = 1 is out of bounds"),
        ([GridAxis("fast", 5, None, 1)], "sweep fast: to is empty"),
        ([GridAxis("fast", 2, 200, 1), GridAxis("slow", 2, 400, 1)], "the grid has 79,401 combinations"),
    ],
)
def test_bad_grids_are_refused_before_any_work(axes, message):
    with pytest.raises(ParameterError, match=message):
        jobs.build_grid(SmaCross, axes, {"fast": 10, "slow": 20, "short": False})


def test_a_sweep_the_strategy_refuses_entirely_says_why():
    grid = {"lower": [50.0], "upper": [50.0], "window": [14], "short": [False]}
    with pytest.raises(ParameterError, match=r"no valid combination: rsi_reversion refused all 1 \(e\.g\. lower"):
        jobs.run_sweep(RsiReversion, load_dataset("GOOG"), grid, ExecutionModel())


def test_stored_bars_choice_is_checked_before_the_database_is_opened():
    with pytest.raises(ParameterError, match="enter at least one symbol"):
        jobs.check_choice(jobs.DataChoice(source="stored", symbols=" , "))
    with pytest.raises(ParameterError, match="timeframe must be one of"):
        jobs.check_choice(jobs.DataChoice(source="stored", symbols="ACME", timeframe="2h"))
    with pytest.raises(ParameterError, match="is not a date or time"):
        jobs.check_choice(jobs.DataChoice(source="stored", symbols="ACME", timeframe="1d", start="yesterday-ish"))
    with pytest.raises(ParameterError, match="must be before end"):
        jobs.check_choice(
            jobs.DataChoice(source="stored", symbols="ACME", timeframe="1d", start="2024-02", end="2024-01")
        )


@pytest.mark.db
async def test_stored_bars_are_read_back_as_the_panel_a_backtest_takes(database):
    days = pd.date_range("2024-01-01", periods=120, freq="1D", tz="UTC")
    close = pd.Series(100 + (days.day_of_year % 17) - (days.day_of_year % 5) * 0.7, index=days)
    frame = pd.DataFrame(
        {"open": close.shift(fill_value=100.0), "high": close + 1, "low": close - 1, "close": close, "volume": 1e3}
    )
    await import_frame(database.pool, frame, Instrument("ACME", venue="NYSE"), "1d")

    choice = jobs.DataChoice(source="stored", symbols="ACME", timeframe="1d", start="2024-01-01", end="2024-12-31")
    bars = await asyncio.to_thread(jobs.load_data, choice, lambda: Settings(DATABASE_URL=database.dsn))
    assert bars.symbols == ["ACME"]
    assert len(bars) == 120
    assert bars.close["ACME"].tolist() == close.tolist()
    assert choice.label == "stored 1d bars of ACME 2024-01-01 to 2024-12-31"


def test_stats_are_shown_rounded_with_their_exact_value_alongside():
    assert format_stat("total_return", 0.123456) == "12.35%"
    assert format_stat("final_equity", 1234567.891) == "1,234,567.89"
    assert format_stat("sharpe", None) == "n/a"
    assert format_stat("trades", 1200) == "1,200"
    assert format_stat("start", "2004-08-20T00:00:00+00:00") == "2004-08-20 00:00"
    html = stats_html({"sharpe": 0.1 + 0.2, "trades": 3}, run=7)
    assert 'data-run="7"' in html
    assert 'data-value="0.30000000000000004"' in html
    assert ">0.300<" in html


def test_best_combinations_rank_an_undefined_metric_last_like_best_does():
    table = pd.DataFrame(
        {
            "fast": [5, 10, 15],
            "sharpe": [float("inf"), 0.4, 1.2],
            "total_return": [0.0, 0.1, 0.3],
            "max_drawdown": [0.0, -0.1, -0.2],
            "trades": [0, 4, 6],
        }
    )
    result = SweepResult(strategy=SmaCross, params=("fast",), table=table)
    top = top_frame(result, "sharpe")
    assert top["fast"].tolist() == [15, 10, 5]
    assert top["fast"].iloc[0] == result.best("sharpe")["fast"]
    assert top["sharpe"].isna().tolist() == [False, False, True]
    assert top["rank"].tolist() == [1, 2, 3]

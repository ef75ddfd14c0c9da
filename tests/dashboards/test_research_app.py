"""The research page's state and callbacks, driven in-process (no server, no browser)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from dashboards import research, research_jobs
from dashboards.research import ResearchApp
from dashboards.widgets import GridAxis
from framework import backtest, load_dataset, sweep
from strategies.sma_cross import SmaCross


@pytest.fixture
def app() -> ResearchApp:
    page = ResearchApp()
    page.view()
    return page


async def test_run_backtest_shows_the_framework_result_in_stats_charts_and_trades(app):
    app.state.dataset = "STOCKS"
    app.form.set_values({"fast": 5, "slow": 25})
    await app.run_backtest()

    expected = backtest(SmaCross(fast=5, slow=25), load_dataset("STOCKS"), fees=0.001)
    assert app.state.error == ""
    assert app.state.backtest.stats == expected.stats
    assert app.state.symbol == "AAPL"
    assert app.state.param.symbol.objects == ["AAPL", "GOOG", "IBM", "MSFT"]
    assert 'data-run="1"' in app.stats.object
    assert app.charts.curve.data["equity"].tolist() == expected.equity.tolist()
    assert len(app.trades.value) == len(expected.trades)
    assert "SmaCross(fast=5, slow=25, short=False)" in app.state.notice

    app.state.symbol = "IBM"
    assert app.charts.close.data["price"].tolist() == load_dataset("STOCKS").close["IBM"].tolist()
    assert app.charts.price_title.text.startswith("IBM:")


async def test_invalid_input_sets_one_line_and_keeps_the_last_result(app):
    await app.run_backtest()
    shown = app.state.backtest
    app.form.set_values({"fast": 40, "slow": 20})
    await app.run_backtest()
    assert app.state.error == "fast (40) must be smaller than slow (20)"
    assert app.error_box.visible
    assert app.state.backtest is shown
    assert not app.state.busy

    app.form.set_values({"fast": 10})
    app.state.fees = None
    await app.run_backtest()
    assert app.state.error == "fees is empty: enter a value"
    app.state.fees = 0.0
    await app.run_backtest()
    assert app.state.error == ""
    assert not app.error_box.visible


async def test_an_unexpected_failure_is_logged_and_shown_as_one_line(app, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(research_jobs, "run_backtest", broken)
    with caplog.at_level(logging.ERROR, logger="dashboards.research"):
        await app.run_backtest()
    assert app.state.error.startswith("backtest of sma_cross on GOOG failed unexpectedly (ZeroDivisionError: boom)")
    assert "\n" not in app.state.error
    assert "Traceback" in caplog.text
    assert not app.state.busy
    assert not app.backtest_button.disabled


async def test_the_clicked_button_says_what_runs_and_a_spinner_shows_for_longer_work(app, monkeypatch):
    fast = research_jobs.run_backtest

    def slow(*args, **kwargs):
        time.sleep(1.0)
        return fast(*args, **kwargs)

    monkeypatch.setattr(research_jobs, "run_backtest", slow)
    running = asyncio.ensure_future(app.run_backtest())
    await asyncio.sleep(0.1)
    assert app.state.busy
    assert (app.backtest_button.label, app.backtest_button.disabled) == ("Running backtest...", True)
    assert (app.sweep_button.label, app.sweep_button.disabled) == ("Run sweep", True)
    assert not app.busy_box.visible
    await asyncio.sleep(research.SPINNER_DELAY + 0.2)
    assert app.busy_box.visible
    assert app.spinner.label == "running the backtest of sma_cross on GOOG..."

    await app.run_backtest()  # a second click while busy is ignored
    await running
    assert app.state.runs == 1
    assert not app.busy_box.visible
    assert (app.backtest_button.label, app.backtest_button.disabled) == ("Run backtest", False)


async def test_sweep_shows_heatmap_and_top_and_backtests_the_best(app):
    app.grid.set_axes([GridAxis("fast", 5, 15, 5), GridAxis("slow", 20, 40, 10)])
    await app.run_sweep()

    expected = sweep(SmaCross, load_dataset("GOOG"), {"fast": [5, 10, 15], "slow": [20, 30, 40]}, fees=0.001)
    best = expected.best("sharpe")
    assert app.state.error == ""
    assert app.heatmap.object is not None
    assert app.top.value[["fast", "slow"]].iloc[0].tolist() == [best["fast"], best["slow"]]
    assert app.tabs.active == 1

    app.state.metric = "total_return"
    assert app.top.value.columns[4] == "total_return"
    best_return = expected.best("total_return")
    await app.backtest_best()
    assert {k: app.form.values()[k] for k in ("fast", "slow")} == best_return
    assert app.state.backtest.strategy == SmaCross(**best_return)
    assert app.tabs.active == 0


async def test_sweep_over_one_parameter_draws_a_curve(app):
    app.grid.set_axes([GridAxis("slow", 20, 60, 10)])
    await app.run_sweep()
    assert app.state.error == ""
    assert "Curve" in repr(app.heatmap.object)


def test_choosing_another_strategy_rebuilds_the_parameter_and_sweep_forms(app):
    app.state.strategy = "rsi_reversion"
    assert set(app.form.values()) == {"window", "lower", "upper", "short"}
    assert [a.name for a in app.grid.axes()] == ["window", "lower"]
    assert "RSI" in app.summary.object


def test_stored_bars_fields_replace_the_dataset_select(app):
    assert app.dataset_select.visible
    assert not app.stored_fields.visible
    app.state.source = "stored bars"
    assert not app.dataset_select.visible
    assert app.stored_fields.visible

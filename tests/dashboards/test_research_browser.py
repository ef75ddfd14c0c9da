"""The research dashboard in a real browser: what it shows is what `framework` computes.

Each test opens a fresh page (a fresh session) on one served dashboard, in Debian's chromium, with
every request outside 127.0.0.1 refused. Timing is measured by `tests/bench/bench_dashboard.py`,
never asserted here.
"""

from __future__ import annotations

from typing import Any

import pytest

from framework import backtest, get_strategy, load_dataset, sweep
from framework.data import load_bars
from framework.settings import Settings
from tests.dashboards.browser import (
    button_idle,
    button_running,
    click_and_time,
    page_text,
    source_column,
    stats,
    stats_run,
    type_into,
)
from tests.dashboards.conftest import STORED_SYMBOL, in_thread, stored_frame

pytestmark = [pytest.mark.slow, pytest.mark.db]


def _shown(value: Any) -> str:
    """Return a statistic as the page's `data-value` holds it (floats exactly, via repr)."""
    return repr(value) if isinstance(value, float) else str(value)


def _run_backtest(page: Any) -> None:
    before = stats_run(page)
    page.locator(".rata-run-backtest button").click()
    page.wait_for_selector(f'table.rata-stats[data-run="{before + 1}"]')


def test_page_loads_everything_from_the_dashboard_server(research, shoot):
    page = research.page
    page.locator(".rata-price canvas").first.wait_for(state="visible")
    shoot(page, "loaded")
    assert research.refused == []
    assert not [e for e in research.errors if "Failed to load resource" in e]
    assert stats(page)["trades"].isdigit()


def test_backtest_of_a_chosen_strategy_and_parameters_equals_the_framework_backtest(research, shoot):
    page = research.page
    page.locator(".rata-strategy select").select_option("bollinger_breakout")
    page.locator(".rata-param-k input").wait_for()
    type_into(page, "rata-param-window", 30)
    type_into(page, "rata-param-k", 1.5)
    type_into(page, "rata-fees", 0.002)
    _run_backtest(page)

    cls = get_strategy("bollinger_breakout")
    bars = load_dataset("GOOG")
    expected = backtest(cls(window=30, k=1.5), bars, fees=0.002)
    assert stats(page) == {name: _shown(value) for name, value in expected.stats.items()}

    # The charts hold exactly the backtest's series: the close, every entry, the equity curve.
    page.locator(".rata-price canvas").first.wait_for(state="visible")
    page.locator(".rata-equity canvas").first.wait_for(state="visible")
    assert source_column(page, "rata-close", "price") == bars.close["GOOG"].tolist()
    assert source_column(page, "rata-equity", "equity") == expected.equity.tolist()
    assert source_column(page, "rata-equity", "drawdown") == expected.drawdown.tolist()
    longs = expected.trades[expected.trades["direction"] == "long"]
    assert source_column(page, "rata-long-entries", "price") == longs["entry_price"].tolist()
    closed = expected.trades[expected.trades["status"] == "closed"]
    assert source_column(page, "rata-exits", "price") == closed["exit_price"].tolist()
    assert "BollingerBreakout(window=30, k=1.5, short=False)" in page_text(page)
    shoot(page, "backtest")
    assert research.refused == []


def test_sweep_shows_the_heatmap_and_the_best_combinations(research, shoot):
    page = research.page
    for name, (start, stop, step) in {"fast": (5, 15, 5), "slow": (20, 40, 10)}.items():
        type_into(page, f"rata-sweep-{name}-from", start)
        type_into(page, f"rata-sweep-{name}-to", stop)
        type_into(page, f"rata-sweep-{name}-step", step)
    page.locator(".rata-run-sweep button").click()
    page.locator(".rata-heatmap canvas").first.wait_for(state="visible")
    page.locator(".rata-top .tabulator-row").first.wait_for(state="visible")

    expected = sweep(
        get_strategy("sma_cross"), load_dataset("GOOG"), {"fast": [5, 10, 15], "slow": [20, 30, 40]}, fees=0.001
    )
    best = expected.best("sharpe")
    assert f"best by sharpe: fast={best['fast']}, slow={best['slow']}, short=False" in page_text(page)
    assert page.locator(".rata-top .tabulator-row").count() == len(expected.table)
    top = page.locator(".rata-top .tabulator-row").first
    assert top.locator('[tabulator-field="fast"]').inner_text() == str(best["fast"])
    assert top.locator('[tabulator-field="slow"]').inner_text() == str(best["slow"])
    shoot(page, "sweep")
    assert research.refused == []


def test_a_click_says_running_at_once_and_the_button_comes_back_after_a_result_or_a_refusal(research):
    page = research.page
    run = stats_run(page)
    idle = button_idle("rata-run-backtest", "Run backtest")
    seen = click_and_time(
        page,
        ".rata-run-backtest >>> button",
        {
            "running": button_running("rata-run-backtest"),
            "done": f"if (deep('table.rata-stats[data-run=\"{run + 1}\"]').length === 0) return false; {idle}",
        },
    )
    assert set(seen) == {"running", "done"}
    assert seen["running"] < seen["done"]

    type_into(page, "rata-param-fast", 30)
    type_into(page, "rata-param-slow", 20)
    seen = click_and_time(
        page,
        ".rata-run-backtest >>> button",
        {
            "running": button_running("rata-run-backtest"),
            "refused": f"if (!shown('.rata-error')) return false; {idle}",
        },
    )
    assert set(seen) == {"running", "refused"}
    assert stats_run(page) == run + 1


def test_invalid_parameters_show_one_clear_message_and_no_traceback(research, shoot):
    page = research.page
    before = stats_run(page)
    type_into(page, "rata-param-fast", 50)
    type_into(page, "rata-param-slow", 20)
    page.locator(".rata-run-backtest button").click()
    page.locator(".rata-error", has_text="fast (50) must be smaller than slow (20)").wait_for(state="visible")
    shoot(page, "invalid-parameters")

    type_into(page, "rata-sweep-fast-from", 30)
    type_into(page, "rata-sweep-fast-to", 10)
    page.locator(".rata-run-sweep button").click()
    page.locator(".rata-error", has_text="sweep fast: from (30) is above to (10)").wait_for(state="visible")

    text = page_text(page)
    assert "Traceback" not in text
    assert stats_run(page) == before


def test_backtest_on_bars_stored_in_postgresql_equals_the_framework_backtest(research, stored_bars_dsn, shoot):
    page = research.page
    page.locator(".rata-source button", has_text="stored bars").click()
    type_into(page, "rata-symbols", STORED_SYMBOL)
    page.locator(".rata-timeframe select").select_option("1d")
    _run_backtest(page)

    settings = Settings(DATABASE_URL=stored_bars_dsn)
    bars = in_thread(lambda: load_bars(STORED_SYMBOL, "1d", settings=settings))
    expected = backtest(get_strategy("sma_cross")(), bars, fees=0.001)
    assert len(bars) == len(stored_frame())
    assert stats(page) == {name: _shown(value) for name, value in expected.stats.items()}
    assert source_column(page, "rata-close", "price") == bars.close[STORED_SYMBOL].tolist()
    assert "on stored 1d bars of ACME" in page_text(page)
    shoot(page, "stored-bars")

    type_into(page, "rata-symbols", "NOPE")
    page.locator(".rata-run-backtest button").click()
    page.locator(".rata-error", has_text="unknown instrument 'NOPE'; valid: ACME").wait_for(state="visible")

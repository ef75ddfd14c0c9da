"""BollingerBreakout on hand-made bars: exact trades, parameter validation and the look-ahead check."""

from __future__ import annotations

import numpy as np
import pytest

from framework import Bars, ParameterError, Signals, backtest, check_lookahead, load_dataset
from strategies.bollinger_breakout import BollingerBreakout
from tests.conftest import make_bars

# window=5, k=1, population standard deviation:
#   bar    5      6      7       8       9       10      11      12
#   close  100    110    108     104     100     90      95      102
#   middle 100    102    103.6   104.4   104.4   102.4   99.4    98.2
#   std    0      4      4.454   4.079   4.079   7.088   6.375   5.075
#   upper  100    106    108.05  108.48  108.48  109.49  105.78  103.28
#   lower  100    98     99.15   100.32  100.32  95.31   93.03   93.13
# Bar 6 breaks above the upper band, bar 8 closes below the middle, bar 9 breaks below the lower
# band, bar 12 closes back above the middle.
CLOSES = [100.0] * 6 + [110.0, 108.0, 104.0, 100.0, 90.0, 95.0, 102.0, 101.0]
OPENS = [100.0] * 7 + [110.0, 108.0, 103.0, 99.0, 90.0, 95.0, 101.0]
FEES, SLIPPAGE = 0.001, 0.01


def bars() -> Bars:
    return make_bars({"X": CLOSES}, opens={"X": OPENS})


def test_signals_are_band_breaks_and_returns_to_the_middle() -> None:
    decision = BollingerBreakout(window=5, k=1.0, short=True).decide(bars())

    assert isinstance(decision, Signals)
    assert decision.short_entries is not None
    assert decision.short_exits is not None
    assert list(np.flatnonzero(decision.entries["X"])) == [6]
    assert list(np.flatnonzero(decision.exits["X"])) == [8, 9, 10, 11]
    # Bar 10 is still below the lower band: only the break at bar 9 is an entry.
    assert list(np.flatnonzero(decision.short_entries["X"])) == [9]
    assert list(np.flatnonzero(decision.short_exits["X"])) == [6, 7, 12, 13]


def test_long_only_buys_the_break_at_the_next_open_and_exits_below_the_middle() -> None:
    data = bars()
    result = backtest(BollingerBreakout(window=5, k=1.0), data, cash=10_000.0, fees=FEES, slippage=SLIPPAGE)

    buy_price = 110.0 * (1 + SLIPPAGE)  # bar 7's open: 111.1
    sell_price = 103.0 * (1 - SLIPPAGE)  # bar 9's open: 101.97
    quantity = 89  # 10,000 / 1.001 / 111.1 = 89.92
    trades = result.trades
    assert len(trades) == 1
    trade = trades.iloc[0]
    assert (trade["direction"], trade["status"], trade["size"]) == ("long", "closed", quantity)
    assert (trade["entry_time"], trade["exit_time"]) == (data.index[7], data.index[9])
    assert trade["entry_price"] == pytest.approx(buy_price)
    assert trade["exit_price"] == pytest.approx(sell_price)
    assert trade["entry_fees"] == pytest.approx(quantity * buy_price * FEES)  # 9.8879
    assert trade["exit_fees"] == pytest.approx(quantity * sell_price * FEES)  # 9.07533
    leftover = 10_000.0 - quantity * buy_price * (1 + FEES)  # 102.2121
    assert result.final_equity == pytest.approx(leftover + quantity * sell_price * (1 - FEES))  # 9,168.46677


def test_short_sells_the_downside_break_and_covers_above_the_middle() -> None:
    data = bars()
    strategy = BollingerBreakout(window=5, k=1.0, short=True)
    result = backtest(strategy, data, cash=10_000.0, fees=FEES, slippage=SLIPPAGE)

    short_price = 99.0 * (1 - SLIPPAGE)  # bar 10's open: 98.01
    cover_price = 101.0 * (1 + SLIPPAGE)  # bar 13's open: 102.01
    cash_before = 9_168.46677  # after the long round trip above
    quantity = 93  # 9,168.46677 / (98.01 * 1.001) = 93.45
    trades = result.trades
    assert list(trades["direction"]) == ["long", "short"]
    assert list(trades["status"]) == ["closed", "closed"]
    short = trades.iloc[1]
    assert short["size"] == quantity
    assert (short["entry_time"], short["exit_time"]) == (data.index[10], data.index[13])
    assert short["entry_price"] == pytest.approx(short_price)
    assert short["exit_price"] == pytest.approx(cover_price)
    assert short["entry_fees"] == pytest.approx(quantity * short_price * FEES)  # 9.11493
    assert short["exit_fees"] == pytest.approx(quantity * cover_price * FEES)  # 9.48693
    expected = cash_before + quantity * short_price * (1 - FEES) - quantity * cover_price * (1 + FEES)
    assert result.final_equity == pytest.approx(expected)  # 8,777.86491


def test_warmup_is_the_window() -> None:
    assert BollingerBreakout(window=5).warmup_bars() == 5
    assert BollingerBreakout().warmup_bars() == 20


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"window": 4}, r"parameter 'window' = 4 is out of bounds \[5, 200\]"),
        ({"window": 201}, r"parameter 'window' = 201 is out of bounds \[5, 200\]"),
        ({"k": 0.4}, r"parameter 'k' = 0.4 is out of bounds \[0.5, 4\]"),
        ({"k": 4.5}, r"parameter 'k' = 4.5 is out of bounds \[0.5, 4\]"),
    ],
)
def test_out_of_bounds_parameter_is_refused_naming_it_and_its_bounds(values: dict[str, float], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        BollingerBreakout(**values)


@pytest.mark.parametrize("short", [False, True])
def test_passes_the_lookahead_check_on_goog(short: bool) -> None:
    report = check_lookahead(BollingerBreakout(short=short), load_dataset("GOOG"))
    assert report.ok, report.problems
    report.raise_if_failed()

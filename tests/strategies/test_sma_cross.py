"""SmaCross on hand-made bars: exact trades, parameter validation and the look-ahead check."""

from __future__ import annotations

import numpy as np
import pytest

from framework import Bars, ParameterError, Signals, backtest, check_lookahead, load_dataset
from strategies.sma_cross import SmaCross
from tests.conftest import make_bars

# With fast=2, slow=3 (warm-up 3 bars):
# fast SMA  -    11.5  10.5  9.5   10.5   13     13     10     7      6
# slow SMA  -    -     11    10    10.33  11.67  12.67  11.33  8.67   6.67
# The fast SMA crosses above the slow one at bar 4 and back below at bar 7, nowhere else.
CLOSES = [12.0, 11.0, 10.0, 9.0, 12.0, 14.0, 12.0, 8.0, 6.0, 6.0]
OPENS = [12.0, 12.0, 11.0, 10.0, 9.0, 12.5, 13.0, 12.0, 7.5, 6.0]
FEES, SLIPPAGE = 0.001, 0.01


def bars() -> Bars:
    return make_bars({"X": CLOSES}, opens={"X": OPENS})


def test_signals_are_the_crossings_of_the_two_averages() -> None:
    decision = SmaCross(fast=2, slow=3, short=True).decide(bars())

    assert isinstance(decision, Signals)
    assert list(np.flatnonzero(decision.entries["X"])) == [4]
    assert list(np.flatnonzero(decision.exits["X"])) == [7]
    assert decision.short_entries is not None
    assert decision.short_exits is not None
    assert list(np.flatnonzero(decision.short_entries["X"])) == [7]
    assert list(np.flatnonzero(decision.short_exits["X"])) == [4]


def test_long_only_buys_the_cross_up_at_the_next_open_and_sells_the_cross_down() -> None:
    data = bars()
    result = backtest(SmaCross(fast=2, slow=3), data, cash=10_000.0, fees=FEES, slippage=SLIPPAGE)

    buy_price = 12.5 * (1 + SLIPPAGE)  # bar 5's open: 12.625
    sell_price = 7.5 * (1 - SLIPPAGE)  # bar 8's open: 7.425
    quantity = 791  # 10,000 / 1.001 / 12.625 = 791.29
    trades = result.trades
    assert len(trades) == 1
    trade = trades.iloc[0]
    assert (trade["direction"], trade["status"], trade["size"]) == ("long", "closed", quantity)
    assert (trade["entry_time"], trade["exit_time"]) == (data.index[5], data.index[8])
    assert trade["entry_price"] == pytest.approx(buy_price)
    assert trade["exit_price"] == pytest.approx(sell_price)
    assert trade["entry_fees"] == pytest.approx(quantity * buy_price * FEES)  # 9.986375
    assert trade["exit_fees"] == pytest.approx(quantity * sell_price * FEES)  # 5.873175
    cash_in_trade = 10_000.0 - quantity * buy_price * (1 + FEES)  # 3.638625 left over
    assert result.final_equity == pytest.approx(cash_in_trade + quantity * sell_price * (1 - FEES))  # 5,870.94045


def test_short_reverses_on_the_cross_down_and_is_marked_at_the_last_close() -> None:
    data = bars()
    result = backtest(SmaCross(fast=2, slow=3, short=True), data, cash=10_000.0, fees=FEES, slippage=SLIPPAGE)

    sell_price = 7.425
    # After closing the long, 5,870.94045 of cash sells 5,870.94045 / (7.425 * 1.001) = 789.9 -> 789 short,
    # all in one sell order of 791 + 789 shares.
    fills = result.fills
    assert list(fills["time"]) == [data.index[5], data.index[8]]
    assert list(fills["side"]) == ["buy", "sell"]
    assert list(fills["quantity"]) == [791, 1_580]
    assert fills["fees"].iloc[1] == pytest.approx(1_580 * sell_price * FEES)  # 11.7315
    trades = result.trades
    assert list(trades["direction"]) == ["long", "short"]
    assert list(trades["status"]) == ["closed", "open"]
    assert list(trades["size"]) == [791, 789]
    assert trades.loc[1, "entry_time"] == data.index[8]
    assert trades.loc[1, "entry_price"] == pytest.approx(sell_price)
    cash = 3.638625 + 1_580 * sell_price * (1 - FEES)  # 11,723.407125
    assert result.final_equity == pytest.approx(cash - 789 * 6.0)  # 6,989.407125


def test_warmup_is_the_slow_window() -> None:
    assert SmaCross(fast=2, slow=3).warmup_bars() == 3
    assert SmaCross().warmup_bars() == 20


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"fast": 1}, r"parameter 'fast' = 1 is out of bounds \[2, 200\]"),
        ({"fast": 201, "slow": 300}, r"parameter 'fast' = 201 is out of bounds \[2, 200\]"),
        ({"slow": 401}, r"parameter 'slow' = 401 is out of bounds \[\d+, 400\]"),
    ],
)
def test_out_of_bounds_parameter_is_refused_naming_it_and_its_bounds(values: dict[str, int], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        SmaCross(**values)


@pytest.mark.parametrize(("fast", "slow"), [(20, 20), (30, 20)])
def test_fast_not_below_slow_is_refused(fast: int, slow: int) -> None:
    with pytest.raises(ParameterError, match=rf"fast \({fast}\) must be smaller than slow \({slow}\)"):
        SmaCross(fast=fast, slow=slow)


def test_with_params_validates_the_relation_too() -> None:
    with pytest.raises(ParameterError, match="must be smaller than slow"):
        SmaCross().with_params(fast=25)


@pytest.mark.parametrize("short", [False, True])
def test_passes_the_lookahead_check_on_goog(short: bool) -> None:
    report = check_lookahead(SmaCross(fast=10, slow=30, short=short), load_dataset("GOOG"))
    assert report.ok, report.problems
    report.raise_if_failed()

"""RsiReversion on hand-made bars: exact trades, parameter validation and the look-ahead check."""

from __future__ import annotations

import numpy as np
import pytest

from framework import Bars, ParameterError, Signals, backtest, check_lookahead, load_dataset
from framework.indicators import rsi
from strategies.rsi_reversion import RsiReversion
from tests.conftest import make_bars

# window=2: Wilder's smoothing with alpha 1/2, warm-up 10 * 2 + 1 = 21 bars. The close rises by 1
# for 20 bars (average gain 1, average loss 0, RSI 100), then:
#   bar  21    22    23    24    25    26    27    28
#   close 114  113   115   116   118   117   117   117
#   gain  0.5  0.25  1.125 1.0625 1.53125 0.765625 0.3828125 0.19140625
#   loss  3    2     1     0.5   0.25  0.625 0.3125 0.15625
#   RSI   14.3 11.1  52.9  68.0  86.0  55.1  55.1  55.1
# so the RSI crosses back above 30 at bar 23, is above 70 at bar 25, crosses back below 70 at bar 26.
CLOSES = [100.0 + i for i in range(21)] + [114.0, 113.0, 115.0, 116.0, 118.0, 117.0, 117.0, 117.0]
OPENS = [100.0, *CLOSES[:-1]]
FEES, SLIPPAGE = 0.001, 0.01


def bars() -> Bars:
    return make_bars({"X": CLOSES}, opens={"X": OPENS})


def test_rsi_follows_wilders_smoothing_by_hand() -> None:
    values = rsi(bars().close, 2)["X"]

    assert values.iloc[20] == pytest.approx(100.0)
    expected = [100 * 0.5 / 3.5, 100 * 0.25 / 2.25, 100 * 1.125 / 2.125, 100 * 1.0625 / 1.5625, 100 * 1.53125 / 1.78125]
    assert values.iloc[21:26].tolist() == pytest.approx(expected)
    assert values.iloc[26:].tolist() == pytest.approx([100 * 0.765625 / 1.390625] * 3)


def test_signals_fire_on_the_turns_out_of_oversold_and_overbought() -> None:
    decision = RsiReversion(window=2, short=True).decide(bars())

    assert isinstance(decision, Signals)
    assert decision.short_entries is not None
    assert decision.short_exits is not None
    assert list(np.flatnonzero(decision.entries["X"])) == [23]
    assert list(np.flatnonzero(decision.exits["X"])) == [25]
    # At bar 21 the RSI also falls through 70, but straight to 14: that is no short entry.
    assert list(np.flatnonzero(decision.short_entries["X"])) == [26]
    assert list(np.flatnonzero(decision.short_exits["X"])) == [21, 22]


def test_long_only_buys_the_turn_at_the_next_open_and_sells_when_overbought() -> None:
    data = bars()
    result = backtest(RsiReversion(window=2), data, cash=10_000.0, fees=FEES, slippage=SLIPPAGE)

    buy_price = 115.0 * (1 + SLIPPAGE)  # bar 24's open: 116.15
    sell_price = 118.0 * (1 - SLIPPAGE)  # bar 26's open: 116.82
    quantity = 86  # 10,000 / 1.001 / 116.15 = 86.01
    trades = result.trades
    assert len(trades) == 1
    trade = trades.iloc[0]
    assert (trade["direction"], trade["status"], trade["size"]) == ("long", "closed", quantity)
    assert (trade["entry_time"], trade["exit_time"]) == (data.index[24], data.index[26])
    assert trade["entry_price"] == pytest.approx(buy_price)
    assert trade["exit_price"] == pytest.approx(sell_price)
    assert trade["entry_fees"] == pytest.approx(quantity * buy_price * FEES)  # 9.9889
    assert trade["exit_fees"] == pytest.approx(quantity * sell_price * FEES)  # 10.04652
    leftover = 10_000.0 - quantity * buy_price * (1 + FEES)  # 1.1111
    assert result.final_equity == pytest.approx(leftover + quantity * sell_price * (1 - FEES))  # 10,037.58458


def test_short_enters_when_the_rsi_turns_down_from_overbought() -> None:
    data = bars()
    result = backtest(RsiReversion(window=2, short=True), data, cash=10_000.0, fees=FEES, slippage=SLIPPAGE)

    short_price = 117.0 * (1 - SLIPPAGE)  # bar 27's open: 115.83
    cash_before = 10_037.58458  # after the long round trip above
    quantity = 86  # 10,037.58458 / (115.83 * 1.001) = 86.57
    trades = result.trades
    assert list(trades["direction"]) == ["long", "short"]
    assert list(trades["status"]) == ["closed", "open"]
    short = trades.iloc[1]
    assert short["size"] == quantity
    assert short["entry_time"] == data.index[27]
    assert short["entry_price"] == pytest.approx(short_price)
    assert short["entry_fees"] == pytest.approx(quantity * short_price * FEES)  # 9.96138
    cash = cash_before + quantity * short_price * (1 - FEES)  # 19,989.0032
    assert result.final_equity == pytest.approx(cash - quantity * 117.0)  # 9,927.0032


def test_warmup_covers_ten_rsi_windows_and_the_first_change() -> None:
    assert RsiReversion(window=2).warmup_bars() == 21
    assert RsiReversion().warmup_bars() == 141


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"window": 1}, r"parameter 'window' = 1 is out of bounds \[2, 100\]"),
        ({"window": 101}, r"parameter 'window' = 101 is out of bounds \[2, 100\]"),
        ({"lower": 0.5}, r"parameter 'lower' = 0.5 is out of bounds \[1, 50\]"),
        ({"lower": 51}, r"parameter 'lower' = 51.0 is out of bounds \[1, 50\]"),
        ({"upper": 49.9}, r"parameter 'upper' = 49.9 is out of bounds \[50, 99\]"),
        ({"upper": 100}, r"parameter 'upper' = 100.0 is out of bounds \[50, 99\]"),
    ],
)
def test_out_of_bounds_parameter_is_refused_naming_it_and_its_bounds(values: dict[str, float], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        RsiReversion(**values)


def test_lower_not_below_upper_is_refused() -> None:
    with pytest.raises(ParameterError, match=r"lower \(50.0\) must be smaller than upper \(50.0\)"):
        RsiReversion(lower=50, upper=50)


def test_window_must_be_a_whole_number() -> None:
    with pytest.raises(ParameterError, match="'window' must be an int"):
        RsiReversion(window=2.5)


@pytest.mark.parametrize("short", [False, True])
def test_passes_the_lookahead_check_on_goog(short: bool) -> None:
    report = check_lookahead(RsiReversion(short=short), load_dataset("GOOG"))
    assert report.ok, report.problems
    report.raise_if_failed()

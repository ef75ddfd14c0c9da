"""MomentumRotation on hand-made bars: rebalance calendar, exact trades, parameters, look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from framework import Bars, Instrument, ParameterError, TargetWeights, backtest, check_lookahead, load_dataset
from strategies.momentum_rotation import MomentumRotation, bar_duration, rebalance_bars

# 16 weekdays from Monday 2024-01-01. Counting weekdays from 1970-01-01 (a Thursday), blocks of 5
# start on Thursdays: bars 3, 8 and 13 (Jan 4, 11 and 18) are the rebalance bars for rebalance=5.
INDEX = pd.bdate_range("2024-01-01", periods=16, tz="UTC")
CLOSES = {
    # up 20% over bars 3..8, then down
    "A": [10, 10, 10, 10, 10.5, 11, 11.5, 11.8, 12, 12, 12, 11.9, 11.8, 11.5, 11.4, 11.3],
    # flat over bars 3..8, then up 20% over bars 8..13
    "B": [20] * 9 + [20.5, 21, 22, 23, 24, 24.5, 25],
    # falls all along
    "C": [50 - 0.5 * i for i in range(16)],
}
FEES = 0.001


def make_bars(closes: dict[str, list[float]], index: pd.DatetimeIndex = INDEX) -> Bars:
    frames = {}
    for symbol, values in closes.items():
        c = np.asarray(values, dtype=float)
        o = np.concatenate([c[:1], c[:-1]])  # each bar opens at the previous close
        frames[symbol] = pd.DataFrame(
            {"open": o, "high": np.maximum(o, c), "low": np.minimum(o, c), "close": c, "volume": 1_000.0}, index=index
        )
    instruments = [Instrument(s, qty_step=1.0) for s in closes]
    return Bars.from_frames(frames, instruments=instruments, timeframe="1D")


def test_daily_bars_rebalance_on_the_first_bar_of_each_block_of_weekdays() -> None:
    due = rebalance_bars(INDEX, 5, pd.Timedelta(days=1))
    assert list(np.flatnonzero(due)) == [3, 8, 13]
    assert {INDEX[i].day_name() for i in np.flatnonzero(due)} == {"Thursday"}


def test_a_block_starting_on_a_missing_bar_rebalances_on_the_next_bar() -> None:
    without_thursday = INDEX.delete(8)  # Jan 11 is a holiday: its block starts on Friday Jan 12
    due = rebalance_bars(without_thursday, 5, pd.Timedelta(days=1))
    assert [without_thursday[i].day for i in np.flatnonzero(due)] == [4, 12, 18]


def test_intraday_bars_rebalance_every_n_bar_durations_since_the_epoch() -> None:
    index = pd.date_range("2024-01-01 01:00", periods=10, freq="h", tz="UTC")
    due = rebalance_bars(index, 4, pd.Timedelta(hours=1))
    assert [index[i].hour for i in np.flatnonzero(due)] == [4, 8]


def test_bar_duration_is_the_timeframe_or_else_the_typical_spacing() -> None:
    hourly = pd.date_range("2024-01-01 01:00", periods=10, freq="h", tz="UTC").delete([3, 4])
    frame = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0}, index=hourly)
    assert bar_duration(Bars.from_frames({"X": frame})) == pd.Timedelta(hours=1)
    assert bar_duration(Bars.from_frames({"X": frame}, timeframe="4h")) == pd.Timedelta(hours=4)
    assert bar_duration(Bars.from_frames({"X": frame}, timeframe="1M")) == pd.Timedelta(hours=1)  # not fixed


def test_rebalance_bars_do_not_depend_on_where_the_data_starts() -> None:
    data = make_bars(CLOSES)
    strategy = MomentumRotation(lookback=5, top=1, rebalance=5)
    full = strategy.decide(data)
    assert isinstance(full, TargetWeights)
    for start in (1, 2, 3):
        part = strategy.decide(data.iloc[start:])
        assert isinstance(part, TargetWeights)
        pd.testing.assert_frame_equal(part.weights.iloc[-5:], full.weights.iloc[-5:])


def test_holds_the_best_trailing_return_on_rebalance_bars_and_keeps_it_between() -> None:
    decision = MomentumRotation(lookback=5, top=1, rebalance=5).decide(make_bars(CLOSES))

    assert isinstance(decision, TargetWeights)
    weights = decision.weights
    assert list(np.flatnonzero(weights.notna().all(axis=1))) == [8, 13]  # bar 3 is inside the warm-up
    assert weights.iloc[8].tolist() == [1.0, 0.0, 0.0]  # A +20%, B 0%, C -5.2%
    assert weights.iloc[13].tolist() == [0.0, 1.0, 0.0]  # A -4.2%, B +20%, C -5.4%


def test_top_at_least_the_number_of_instruments_holds_all_equally() -> None:
    decision = MomentumRotation(lookback=5, top=5, rebalance=5).decide(make_bars(CLOSES))

    assert isinstance(decision, TargetWeights)
    assert decision.weights.iloc[8].tolist() == pytest.approx([1 / 3] * 3)
    assert decision.weights.iloc[13].tolist() == pytest.approx([1 / 3] * 3)


def test_top_two_of_three_weights_each_a_half() -> None:
    decision = MomentumRotation(lookback=5, top=2, rebalance=5).decide(make_bars(CLOSES))

    assert isinstance(decision, TargetWeights)
    assert decision.weights.iloc[8].tolist() == [0.5, 0.5, 0.0]
    assert decision.weights.iloc[13].tolist() == [0.5, 0.5, 0.0]


def test_an_instrument_without_a_full_lookback_is_not_ranked() -> None:
    closes = {**CLOSES, "D": [np.nan] * 6 + [100.0 * 2**i for i in range(10)]}  # doubles every bar
    decision = MomentumRotation(lookback=5, top=1, rebalance=5).decide(make_bars(closes))

    assert isinstance(decision, TargetWeights)
    assert decision.weights.iloc[8].tolist() == [1.0, 0.0, 0.0, 0.0]  # D has 3 bars of history at bar 8
    assert decision.weights.iloc[13].tolist() == [0.0, 0.0, 0.0, 1.0]


def test_rotation_trades_at_the_next_open_with_fees() -> None:
    data = make_bars(CLOSES)
    result = backtest(MomentumRotation(lookback=5, top=1, rebalance=5), data, cash=10_000.0, fees=FEES)

    # Bar 9: buy A at 12. The target 10,000 / 12 = 833 shares would cost 10,005.996 with fees, so
    # the cash buys 10,000 / 1.001 / 12 = 832.5 -> 832 for 9,984 + 9.984 fees, leaving 6.016.
    # Bar 14: sell the 832 A at 11.5 (9,568 - 9.568 fees: cash 9,564.448), then buy B at 24:
    # 9,574.016 of equity / 24 = 398.9 -> 398 for 9,552 + 9.552 fees, leaving 2.896.
    fills = result.fills
    assert list(fills["time"]) == [data.index[9], data.index[14], data.index[14]]
    assert list(fills["symbol"]) == ["A", "A", "B"]
    assert list(fills["side"]) == ["buy", "sell", "buy"]
    assert list(fills["quantity"]) == [832, 832, 398]
    assert fills["price"].tolist() == pytest.approx([12.0, 11.5, 24.0])
    assert fills["fees"].tolist() == pytest.approx([9.984, 9.568, 9.552])
    trades = result.trades
    assert list(trades["symbol"]) == ["A", "B"]
    assert list(trades["status"]) == ["closed", "open"]
    assert trades.loc[0, "pnl"] == pytest.approx(832 * (11.5 - 12.0) - 9.984 - 9.568)
    assert result.final_equity == pytest.approx(2.896 + 398 * 25.0)  # 9,952.896


def test_warmup_is_the_lookback() -> None:
    assert MomentumRotation(lookback=5).warmup_bars() == 5
    assert MomentumRotation().warmup_bars() == 126


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"lookback": 4}, r"parameter 'lookback' = 4 is out of bounds \[5, 400\]"),
        ({"lookback": 401}, r"parameter 'lookback' = 401 is out of bounds \[5, 400\]"),
        ({"top": 0}, r"parameter 'top' = 0 is out of bounds \[1, 20\]"),
        ({"top": 21}, r"parameter 'top' = 21 is out of bounds \[1, 20\]"),
        ({"rebalance": 0}, r"parameter 'rebalance' = 0 is out of bounds \[1, 126\]"),
        ({"rebalance": 127}, r"parameter 'rebalance' = 127 is out of bounds \[1, 126\]"),
    ],
)
def test_out_of_bounds_parameter_is_refused_naming_it_and_its_bounds(values: dict[str, int], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        MomentumRotation(**values)


@pytest.mark.parametrize(("lookback", "top", "rebalance"), [(126, 2, 21), (20, 1, 5)])
def test_passes_the_lookahead_check_on_stocks(lookback: int, top: int, rebalance: int) -> None:
    strategy = MomentumRotation(lookback=lookback, top=top, rebalance=rebalance)
    report = check_lookahead(strategy, load_dataset("STOCKS"))
    assert report.ok, report.problems
    report.raise_if_failed()

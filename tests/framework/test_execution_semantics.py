"""Scenarios of the execution model (framework/execution.py), run end to end through `backtest()`.

Every expected number is computed by hand from the rules in the module docstring of
`framework.execution`: fill at the next bar's open (or the decision bar's close), slippage moves the
price against the trader, fees are a rate of the filled notional, quantities are the sleeve's cash
over the slipped price and the fees, rounded down to the instrument's quantity step.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import pytest

from framework import (
    Bars,
    ExecutionModel,
    ParameterError,
    Signals,
    Strategy,
    StrategyError,
    TargetWeights,
    backtest,
)
from tests.conftest import make_bars

CASH = 10_000.0


def bars(opens: Sequence[float], closes: Sequence[float], *, qty_step: float = 1.0) -> Bars:
    """Return daily bars of one instrument, X, with the given opens and closes."""
    return make_bars({"X": list(closes)}, opens={"X": list(opens)}, qty_step=qty_step)


def scripted(
    entries: Sequence[int] = (),
    exits: Sequence[int] = (),
    short_entries: Sequence[int] | None = None,
    short_exits: Sequence[int] | None = None,
    *,
    symbols: Sequence[str] | None = None,
    warmup: int = 0,
) -> Strategy:
    """Return a strategy that decides at the given bar positions (for `symbols`, default all)."""

    def frame(data: Bars, rows: Sequence[int]) -> pd.DataFrame:
        out = pd.DataFrame(False, index=data.index, columns=data.close.columns)
        chosen = list(symbols) if symbols is not None else data.symbols
        for row in rows:
            out.iloc[row, [data.symbols.index(s) for s in chosen]] = True
        return out

    class Scripted(Strategy):
        def signals(self, data: Bars) -> Signals:
            return Signals(
                entries=frame(data, entries),
                exits=frame(data, exits),
                short_entries=None if short_entries is None else frame(data, short_entries),
                short_exits=None if short_exits is None else frame(data, short_exits),
            )

    Scripted.warmup = warmup
    return Scripted()


# Bars used by most scenarios: the entry decided at bar 1 fills at bar 2's open (200), the exit
# decided at bar 3 fills at bar 4's open (220).
OPENS = [100.0, 100.0, 200.0, 210.0, 220.0, 230.0]
CLOSES = [100.0, 150.0, 205.0, 215.0, 225.0, 240.0]


def test_decision_at_close_fills_at_next_open_with_slippage() -> None:
    data = bars(OPENS, CLOSES)
    result = backtest(scripted(entries=[1], exits=[3]), data, cash=CASH, slippage=0.01)

    buy_price = 200 * 1.01  # 202.0: buys pay the open plus slippage
    sell_price = 220 * 0.99  # 217.8: sells get the open minus slippage
    quantity = 49  # 10,000 / 202 = 49.50 -> 49 whole shares
    fills = result.fills
    assert list(fills["time"]) == [data.index[2], data.index[4]]
    assert list(fills["side"]) == ["buy", "sell"]
    assert list(fills["quantity"]) == [quantity, quantity]
    assert fills["price"].tolist() == pytest.approx([buy_price, sell_price])
    assert fills["fees"].tolist() == [0.0, 0.0]
    assert result.final_equity == pytest.approx(CASH - quantity * buy_price + quantity * sell_price)  # 10,774.2


def test_fill_close_fills_at_the_decision_bars_own_close() -> None:
    data = bars(OPENS, CLOSES)
    result = backtest(scripted(entries=[1], exits=[3]), data, cash=CASH, fill="close")

    quantity = 66  # 10,000 / 150 = 66.67 -> 66
    fills = result.fills
    assert list(fills["time"]) == [data.index[1], data.index[3]]
    assert fills["price"].tolist() == [150.0, 215.0]
    assert list(fills["quantity"]) == [quantity, quantity]
    assert result.final_equity == pytest.approx(CASH + quantity * (215.0 - 150.0))  # 14,290


def test_fees_are_a_rate_of_the_filled_notional_paid_on_both_fills() -> None:
    data = bars(OPENS, CLOSES)
    result = backtest(scripted(entries=[1], exits=[3]), data, cash=CASH, fees=0.001, slippage=0.01)

    buy_price, sell_price = 202.0, 217.8
    quantity = 49  # 10,000 / 1.001 / 202 = 49.46 -> 49: the fees are paid out of the same cash
    entry_fees = quantity * buy_price * 0.001  # 9.898
    exit_fees = quantity * sell_price * 0.001  # 10.6722
    trade = result.trades.iloc[0]
    assert trade["size"] == quantity
    assert trade["entry_price"] == pytest.approx(buy_price)
    assert trade["exit_price"] == pytest.approx(sell_price)
    assert trade["entry_fees"] == pytest.approx(entry_fees)
    assert trade["exit_fees"] == pytest.approx(exit_fees)
    expected = CASH - quantity * buy_price - entry_fees + quantity * sell_price - exit_fees  # 10,753.6298
    assert trade["pnl"] == pytest.approx(expected - CASH)
    assert result.final_equity == pytest.approx(expected)
    assert result.stats["fees_paid"] == pytest.approx(entry_fees + exit_fees)


def test_quantity_is_rounded_down_to_whole_shares_and_the_rest_stays_cash() -> None:
    data = bars([30.0, 30.0, 31.0], [30.0, 30.0, 33.0])
    result = backtest(scripted(entries=[0]), data, cash=1_000.0)

    # 1,000 / 30 = 33.33 -> 33 shares for 990; 10 stays in cash.
    assert list(result.fills["quantity"]) == [33]
    assert result.final_equity == pytest.approx(10.0 + 33 * 33.0)


def test_fractional_quantity_step_rounds_down_to_the_step() -> None:
    data = bars([30.0, 30.0, 31.0], [30.0, 30.0, 33.0], qty_step=0.001)
    result = backtest(scripted(entries=[0]), data, cash=1_000.0)

    # 1,000 / 30 = 33.3333... -> 33.333 units for 999.99; 0.01 stays in cash.
    assert result.fills["quantity"].tolist() == pytest.approx([33.333])
    assert result.final_equity == pytest.approx(1_000.0 - 33.333 * 30.0 + 33.333 * 33.0)


def test_cash_that_exactly_fits_buys_the_full_quantity_on_a_fractional_step() -> None:
    data = bars([100.0, 100.0, 100.0], [100.0, 100.0, 100.0], qty_step=0.001)
    result = backtest(scripted(entries=[0]), data, cash=1_000.0)

    assert result.fills["quantity"].tolist() == pytest.approx([10.0])


def test_paper_broker_quantity_rule_matches_the_backtest_when_cash_exactly_fits() -> None:
    assert ExecutionModel().buy_quantity(1_000.0, 100.0, 0.001) == pytest.approx(10.0)


def test_opposite_signal_reverses_long_to_short_in_one_order() -> None:
    data = bars([100.0, 100.0, 100.0, 110.0, 125.0, 122.0], [100.0, 100.0, 105.0, 120.0, 124.0, 120.0])
    strategy = scripted(entries=[1], exits=[3], short_entries=[3], short_exits=[])
    result = backtest(strategy, data, cash=CASH)

    # Long 100 at 100 (bar 2); at bar 4's open (125) sell 100 to close plus 12,500 / 125 = 100 short.
    fills = result.fills
    assert list(fills["time"]) == [data.index[2], data.index[4]]
    assert list(fills["side"]) == ["buy", "sell"]
    assert list(fills["quantity"]) == [100, 200]
    assert fills["price"].tolist() == [100.0, 125.0]
    trades = result.trades
    assert list(trades["direction"]) == ["long", "short"]
    assert list(trades["status"]) == ["closed", "open"]
    assert list(trades["size"]) == [100, 100]
    assert trades.loc[0, "pnl"] == pytest.approx(100 * (125.0 - 100.0))
    # Cash 25,000 after the short sale, minus 100 shares owed at the last close (120).
    assert result.final_equity == pytest.approx(25_000.0 - 100 * 120.0)  # 13,000


def test_short_entry_sells_at_the_open_less_slippage_and_covers_at_the_open_plus_slippage() -> None:
    data = bars([100.0, 100.0, 95.0, 90.0], [100.0, 100.0, 92.0, 91.0])
    strategy = scripted(short_entries=[0], short_exits=[2])
    result = backtest(strategy, data, cash=CASH, slippage=0.01)

    short_price, cover_price = 100 * 0.99, 90 * 1.01  # 99.0 and 90.9
    quantity = 101  # 10,000 / 99 = 101.01 -> 101
    trade = result.trades.iloc[0]
    assert (trade["direction"], trade["status"], trade["size"]) == ("short", "closed", quantity)
    assert trade["entry_time"] == data.index[1]
    assert trade["exit_time"] == data.index[3]
    assert trade["entry_price"] == pytest.approx(short_price)
    assert trade["exit_price"] == pytest.approx(cover_price)
    assert result.final_equity == pytest.approx(CASH + quantity * (short_price - cover_price))  # 10,818.1


def test_open_position_at_the_end_is_marked_to_market_and_listed_as_an_open_trade() -> None:
    data = bars(OPENS, CLOSES)
    result = backtest(scripted(entries=[1]), data, cash=CASH)

    quantity = 50  # 10,000 / 200
    trades = result.trades
    assert len(trades) == 1
    trade = trades.iloc[0]
    assert (trade["status"], trade["direction"], trade["size"]) == ("open", "long", quantity)
    assert trade["entry_time"] == data.index[2]
    assert pd.isna(trade["exit_time"])
    assert trade["pnl"] == pytest.approx(quantity * (240.0 - 200.0))
    assert result.final_equity == pytest.approx(0.0 + quantity * 240.0)  # cash + qty * last close
    assert result.stats["open_trades"] == 1
    assert [t["size"] for t in result.to_dict()["open_trades"]] == [quantity]


def test_cash_is_split_equally_among_the_instruments() -> None:
    data = make_bars({"A": [50.0, 50.0, 60.0], "B": [200.0, 200.0, 100.0]})
    result = backtest(scripted(entries=[0], symbols=["A"]), data, cash=CASH)

    # A's sleeve is 5,000: 5,000 / 50 = 100 shares, not 200; B's sleeve stays in cash.
    fills = result.fills
    assert list(fills["symbol"]) == ["A"]
    assert list(fills["quantity"]) == [100]
    assert result.final_equity == pytest.approx(100 * 60.0 + 5_000.0)


def test_fixed_notional_buys_the_notional_over_the_open_rounded_down() -> None:
    data = bars([30.0, 30.0, 31.0], [30.0, 30.0, 33.0])
    result = backtest(scripted(entries=[0]), data, cash=CASH, notional=1_000.0)

    # 1,000 / 30 = 33.33 -> 33 shares; the other 9,010 stay in cash.
    assert list(result.fills["quantity"]) == [33]
    assert result.final_equity == pytest.approx(CASH - 33 * 30.0 + 33 * 33.0)


def test_fixed_notional_buys_notional_over_the_open_and_pays_costs_on_top() -> None:
    data = bars([100.0, 102.0, 104.0], [100.0, 103.0, 104.0])
    result = backtest(scripted(entries=[0]), data, cash=CASH, notional=1_030.0, slippage=0.01, fees=0.001)

    # Documented rule: 1,030 / 102 (the open, before slippage) = 10.098 -> 10 shares, bought at
    # 102 * 1.01 = 103.02 with 0.1% fees: 1,030.20 + 1.0302 paid.
    assert list(result.fills["quantity"]) == [10]
    assert result.fills["price"].iloc[0] == pytest.approx(103.02)
    assert result.fills["fees"].iloc[0] == pytest.approx(1.0302)


def test_fraction_below_one_invests_that_share_of_the_sleeve_when_long_only() -> None:
    data = bars([30.0, 30.0, 31.0], [30.0, 30.0, 33.0])
    result = backtest(scripted(entries=[0]), data, cash=CASH, fraction=0.5, fees=0.001)

    quantity = 166  # 5,000 / 1.001 / 30 = 166.50 -> 166
    assert list(result.fills["quantity"]) == [quantity]
    assert result.fills["fees"].tolist() == pytest.approx([quantity * 30.0 * 0.001])
    assert result.final_equity == pytest.approx(CASH - quantity * 30.0 * 1.001 + quantity * 33.0)


def test_fraction_below_one_with_short_signals_is_refused() -> None:
    data = bars([30.0, 30.0, 31.0], [30.0, 30.0, 33.0])
    strategy = scripted(entries=[0], short_entries=[1])
    with pytest.raises(ParameterError, match="fraction < 1"):
        backtest(strategy, data, cash=CASH, fraction=0.5)


def test_a_decision_on_the_last_bar_is_not_filled() -> None:
    data = bars(OPENS, CLOSES)
    result = backtest(scripted(entries=[len(OPENS) - 1]), data, cash=CASH)

    assert result.fills.empty
    assert result.trades.empty
    assert result.final_equity == CASH


def test_warmup_bars_never_produce_signals() -> None:
    data = bars(OPENS, CLOSES)
    strategy = scripted(entries=range(len(OPENS)), warmup=3)

    decision = strategy.decide(data)
    assert isinstance(decision, Signals)
    assert decision.entries["X"].tolist() == [False, False, False, True, True, True]
    result = backtest(strategy, data, cash=CASH)
    # The first entry allowed is decided at bar 3 and fills at bar 4's open (220): 45 shares.
    assert list(result.fills["time"]) == [data.index[4]]
    assert list(result.fills["quantity"]) == [45]


def test_warmup_bars_never_produce_target_weights() -> None:
    data = bars(OPENS, CLOSES)

    class AlwaysAllIn(Strategy):
        warmup = 2

        def signals(self, data: Bars) -> TargetWeights:
            return TargetWeights(pd.DataFrame(1.0, index=data.index, columns=data.close.columns))

    decision = AlwaysAllIn().decide(data)
    assert isinstance(decision, TargetWeights)
    assert decision.weights["X"].isna().tolist() == [True, True, False, False, False, False]
    result = backtest(AlwaysAllIn(), data, cash=CASH)
    # Decided at bar 2, filled at bar 3's open: 10,000 / 210 = 47.6 -> 47 shares.
    assert result.fills["time"].iloc[0] == data.index[3]
    assert result.fills["quantity"].iloc[0] == 47


def test_a_strategy_that_raises_inside_signals_becomes_a_strategy_error() -> None:
    class Broken(Strategy):
        def signals(self, data: Bars) -> Signals:
            raise ZeroDivisionError("oops")

    with pytest.raises(StrategyError, match=r"broken\.signals\(\) raised ZeroDivisionError: oops"):
        backtest(Broken(), bars(OPENS, CLOSES))

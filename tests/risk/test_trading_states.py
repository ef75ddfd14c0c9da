"""Trading states: reducing-only lets reductions through, halted refuses everything new,
and daily loss and drawdown limits move the account or one strategy there."""

from __future__ import annotations

from framework.risk import GLOBAL, RiskCore, RiskLimits, Rule, TradingState
from framework.risk.state import DAY_NS
from tests.risk.helpers import SECOND, T0, D, market, order

ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED


def test_reducing_only_allows_orders_that_reduce_the_position_and_nothing_else():
    risk = RiskCore(state=REDUCING, reason="wind down")
    ctx = market(positions={("sma", "AAA"): 10})
    assert risk.check(order("sell", 4), ctx, T0).accepted
    assert risk.check(order("sell", 10), ctx, T0).accepted  # to flat
    flip = risk.check(order("sell", 11), ctx, T0)
    assert flip.rule == Rule.REDUCING_ONLY == "reducing_only"
    assert flip.reason.startswith("trading is reducing-only (wind down); a sell of 11 does not reduce")
    assert risk.check(order("buy", 1), ctx, T0).rule == Rule.REDUCING_ONLY
    assert risk.check(order("buy", 1, symbol="BBB"), ctx, T0).rule == Rule.REDUCING_ONLY  # flat: nothing to reduce


def test_reducing_only_lets_a_person_reduce_the_account_position_from_a_manual_book():
    risk = RiskCore(state=REDUCING, reason="wind down")
    ctx = market(positions={("sma", "AAA"): 10, ("rsi", "AAA"): 5})
    assert risk.check(order("sell", 15, strategy="manual"), ctx, T0).accepted
    assert risk.check(order("sell", 16, strategy="manual"), ctx, T0).rule == Rule.REDUCING_ONLY


def test_halted_refuses_every_new_order_even_a_reduction():
    risk = RiskCore(state=HALTED, reason="kill switch: test")
    refused = risk.check(order("sell", 1), market(positions={("sma", "AAA"): 10}), T0)
    assert (refused.rule, refused.scope) == (Rule.HALTED, GLOBAL)
    assert refused.reason == "trading is halted: kill switch: test"


def test_halted_and_reducing_are_checked_before_any_limit():
    risk = RiskCore({GLOBAL: RiskLimits(max_order_qty=D(1))}, state=HALTED, reason="x")
    assert risk.check(order(qty=5), market(), T0).rule == Rule.HALTED


def test_daily_loss_moves_the_account_to_reducing_then_halted():
    risk = RiskCore({GLOBAL: RiskLimits(daily_loss_reduce=D(1_000), daily_loss_halt=D(2_000))})
    assert risk.on_equity(GLOBAL, D(100_000), T0) is None
    assert risk.on_equity(GLOBAL, D(99_001), T0 + SECOND) is None  # a loss of 999: just below
    change = risk.on_equity(GLOBAL, D(99_000), T0 + 2 * SECOND)
    assert change is not None
    assert (change.scope, change.previous, change.state) == (GLOBAL, ACTIVE, REDUCING)
    assert change.reason == "account daily loss 1,000 reached the reducing-only limit of 1,000"
    assert not change.cancel_open_orders
    assert risk.on_equity(GLOBAL, D(98_500), T0 + 3 * SECOND) is None  # still reducing
    halted = risk.on_equity(GLOBAL, D(98_000), T0 + 4 * SECOND)
    assert halted is not None
    assert (halted.previous, halted.state) == (REDUCING, HALTED)
    assert halted.cancel_open_orders
    assert risk.state() is HALTED
    assert risk.reason() == "account daily loss 2,000 reached the halt limit of 2,000"


def test_a_recovery_does_not_lift_a_loss_state_only_a_release_does():
    risk = RiskCore({GLOBAL: RiskLimits(daily_loss_reduce=D(1_000))})
    risk.on_equity(GLOBAL, D(100_000), T0)
    risk.on_equity(GLOBAL, D(98_000), T0 + SECOND)
    assert risk.on_equity(GLOBAL, D(101_000), T0 + 2 * SECOND) is None
    next_day = T0 + DAY_NS
    assert risk.on_equity(GLOBAL, D(101_000), next_day) is None
    assert risk.state() is REDUCING
    [change] = risk.release("reviewed by the desk", next_day)
    assert (change.previous, change.state) == (REDUCING, ACTIVE)
    assert risk.state() is ACTIVE


def test_the_daily_loss_is_measured_from_the_last_equity_before_utc_midnight():
    risk = RiskCore({GLOBAL: RiskLimits(daily_loss_reduce=D(1_000))})
    midnight = (T0 // DAY_NS + 1) * DAY_NS
    risk.on_equity(GLOBAL, D(100_000), midnight - 10 * SECOND)
    risk.on_equity(GLOBAL, D(99_500), midnight - SECOND)  # yesterday's 500 does not count today...
    assert risk.on_equity(GLOBAL, D(98_600), midnight + SECOND) is None  # ...the 900 over midnight does
    mark = risk.mark(GLOBAL)
    assert mark is not None
    assert (mark.day_start, mark.daily_loss) == (D(99_500), D(900))
    assert risk.on_equity(GLOBAL, D(98_500), midnight + 2 * SECOND) is not None
    assert risk.state() is REDUCING


def test_drawdown_from_the_equity_peak_halts():
    risk = RiskCore({GLOBAL: RiskLimits(max_drawdown=D("0.1"))})
    risk.on_equity(GLOBAL, D(100_000), T0)
    risk.on_equity(GLOBAL, D(120_000), T0 + DAY_NS)  # a new peak, on another day
    assert risk.on_equity(GLOBAL, D(108_001), T0 + 2 * DAY_NS) is None  # 9.999% below the peak
    change = risk.on_equity(GLOBAL, D(108_000), T0 + 3 * DAY_NS)
    assert change is not None
    assert change.state is HALTED
    assert change.reason == "account drawdown 10% from the peak 120,000 (equity 108,000) reached the limit of 10%"


def test_a_release_restarts_the_loss_measures_so_the_same_loss_does_not_halt_again():
    risk = RiskCore({GLOBAL: RiskLimits(max_drawdown=D("0.1"))})
    risk.on_equity(GLOBAL, D(100_000), T0)
    risk.on_equity(GLOBAL, D(85_000), T0 + SECOND)
    assert risk.state() is HALTED
    risk.release("accepted the loss", T0 + 2 * SECOND)
    assert risk.on_equity(GLOBAL, D(84_000), T0 + 3 * SECOND) is None
    assert risk.on_equity(GLOBAL, D(76_500), T0 + 4 * SECOND) is not None  # 10% below 85,000


def test_a_strategy_loss_limit_restricts_only_that_strategy():
    risk = RiskCore({"sma": RiskLimits(daily_loss_reduce=D(100), daily_loss_halt=D(500))})
    ctx = market(positions={("sma", "AAA"): 10, ("rsi", "AAA"): 10})
    risk.on_equity("sma", D(10_000), T0)
    change = risk.on_equity("sma", D(9_850), T0 + SECOND)
    assert change is not None
    assert (change.scope, change.state) == ("sma", REDUCING)
    assert risk.state() is ACTIVE
    refused = risk.check(order("buy", 1, strategy="sma"), ctx, T0)
    assert (refused.rule, refused.scope) == (Rule.REDUCING_ONLY, "sma")
    assert refused.reason.startswith("strategy 'sma' is reducing-only (strategy 'sma' daily loss 150 reached")
    assert risk.check(order("sell", 5, strategy="sma"), ctx, T0).accepted
    assert risk.check(order("buy", 1, strategy="rsi"), ctx, T0).accepted
    risk.on_equity("sma", D(9_400), T0 + 2 * SECOND)
    halted = risk.check(order("sell", 5, strategy="sma"), ctx, T0)
    assert (halted.rule, halted.scope) == (Rule.HALTED, "sma")
    [change] = risk.release("ok", T0, strategy="sma")
    assert (change.scope, change.state) == ("sma", ACTIVE)
    assert risk.check(order("buy", 1, strategy="sma"), ctx, T0).accepted


def test_a_strategy_in_reducing_only_cannot_open_a_position_even_if_it_reduces_the_account():
    risk = RiskCore(state=ACTIVE)
    risk.set_state("sma", REDUCING, "by hand", T0)
    ctx = market(positions={("rsi", "AAA"): 10})
    assert risk.check(order("sell", 5, strategy="sma"), ctx, T0).rule == Rule.REDUCING_ONLY


def test_lowering_a_loss_limit_below_the_current_loss_applies_at_once():
    risk = RiskCore({GLOBAL: RiskLimits(daily_loss_reduce=D(1_000))})
    risk.on_equity(GLOBAL, D(10_000), T0)
    risk.on_equity(GLOBAL, D(9_500), T0 + SECOND)
    change = risk.set_limits(GLOBAL, RiskLimits(daily_loss_reduce=D(400)), T0 + 2 * SECOND)
    assert change is not None
    assert change.state is REDUCING


def test_loss_limits_of_the_account_read_only_the_account_equity():
    risk = RiskCore({GLOBAL: RiskLimits(daily_loss_reduce=D(100))})
    risk.on_equity("sma", D(10_000), T0)
    assert risk.on_equity("sma", D(1_000), T0 + SECOND) is None
    assert risk.state() is ACTIVE

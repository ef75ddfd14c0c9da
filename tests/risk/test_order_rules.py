"""Every per-order rule refuses with its code and a clear reason, and accepts just below its limit."""

from __future__ import annotations

from decimal import Decimal

import pytest

from framework.risk import GLOBAL, RiskCore, RiskLimits, RiskRefusedError, Rule
from framework.risk.checks import fmt
from tests.risk.helpers import SECOND, T0, D, market, order


def core(**limits: object) -> RiskCore:
    """Return a core with account-wide `limits`."""
    return RiskCore({GLOBAL: RiskLimits(**limits)})  # type: ignore[arg-type]


def test_an_order_with_no_limits_set_is_accepted():
    decision = RiskCore().check(order(qty=1_000_000), market(), T0)
    assert decision.accepted
    assert decision.rule is None


def test_max_order_qty_refuses_above_and_accepts_at_the_limit():
    risk = core(max_order_qty=D(10))
    assert risk.check(order(qty=10), market(), T0).accepted
    refused = risk.check(order(qty=11), market(), T0)
    assert not refused.accepted
    assert refused.rule == Rule.MAX_ORDER_QTY == "max_order_qty"
    assert refused.scope == GLOBAL
    assert refused.reason == "order quantity 11 AAA is above the account limit of 10"


def test_max_order_notional_values_a_market_order_at_the_last_trade_and_a_limit_order_at_its_limit():
    risk = core(max_order_notional=D(1_000))
    assert risk.check(order(qty=10), market(prices={"AAA": 100}), T0).accepted
    refused = risk.check(order(qty=10), market(prices={"AAA": "100.01"}), T0)
    assert refused.rule == Rule.MAX_ORDER_NOTIONAL
    assert "order notional 1,000.1 (10 AAA at 100.01) is above the account limit of 1,000" in refused.reason
    assert risk.check(order(qty=10, limit="100"), market(prices={"AAA": 90}), T0).accepted
    assert risk.check(order(qty=10, limit="101"), market(prices={"AAA": 90}), T0).rule == Rule.MAX_ORDER_NOTIONAL


def test_expected_fill_price_values_a_market_order_when_given():
    risk = core(max_order_notional=D(1_000))
    ctx = market(prices={"AAA": 100})
    assert risk.check(order(qty=10), ctx, T0, expected_price=D(100)).accepted
    assert risk.check(order(qty=10), ctx, T0, expected_price=D(101)).rule == Rule.MAX_ORDER_NOTIONAL


def test_a_market_order_with_no_price_at_all_is_refused_when_a_notional_limit_needs_one():
    refused = core(max_order_notional=D(1_000)).check(order(qty=1), market(prices={}), T0)
    assert refused.rule == Rule.NO_PRICE
    assert refused.reason == "no price for AAA to value the order (account limit)"


def test_max_position_qty_counts_the_position_after_the_fill():
    risk = RiskCore({"sma": RiskLimits(max_position_qty=D(100))})
    ctx = market(positions={("sma", "AAA"): 90})
    assert risk.check(order(qty=10), ctx, T0).accepted
    refused = risk.check(order(qty=11), ctx, T0)
    assert refused.rule == Rule.MAX_POSITION_QTY
    assert refused.scope == "sma"
    assert refused.reason == "the strategy 'sma' position in AAA would be 101, above the limit of 100"
    flip = risk.check(order("sell", 191), ctx, T0)
    assert flip.rule == Rule.MAX_POSITION_QTY
    assert "would be -101" in flip.reason


def test_an_order_that_reduces_a_position_above_a_lowered_limit_is_accepted():
    risk = core(max_position_qty=D(10), max_position_notional=D(1), max_gross_exposure=D(1))
    ctx = market(positions={("sma", "AAA"): 50})
    assert risk.check(order("sell", 30), ctx, T0).accepted
    assert risk.check(order("buy", 1), ctx, T0).rule == Rule.MAX_POSITION_QTY


def test_max_position_notional_values_the_position_at_the_last_trade():
    risk = core(max_position_notional=D(5_000))
    ctx = market(positions={("sma", "AAA"): -40}, prices={"AAA": 100})
    assert risk.check(order("sell", 10), ctx, T0).accepted
    refused = risk.check(order("sell", 11), ctx, T0)
    assert refused.rule == Rule.MAX_POSITION_NOTIONAL
    assert "would be worth 5,100 (-51 at 100), above the limit of 5,000" in refused.reason


def test_max_gross_exposure_adds_the_change_in_this_instrument_to_the_current_gross():
    risk = core(max_gross_exposure=D(10_000))
    ctx = market(positions={("sma", "AAA"): 50, ("sma", "BBB"): -20}, prices={"AAA": 100, "BBB": 200})
    assert ctx.gross_exposure(None) == D(9_000)
    assert risk.check(order("buy", 10), ctx, T0).accepted
    refused = risk.check(order("buy", 11), ctx, T0)
    assert refused.rule == Rule.MAX_GROSS_EXPOSURE
    assert refused.reason == "the account gross exposure would be 10,100 (now 9,000), above the limit of 10,000"
    assert risk.check(order("buy", 20, symbol="BBB"), ctx, T0).accepted  # closing the short lowers the gross


def test_max_open_orders_counts_the_new_order():
    risk = core(max_open_orders=3)
    assert risk.check(order(), market(working={"sma": 1, "rsi": 1}), T0).accepted
    refused = risk.check(order(), market(working={"sma": 2, "rsi": 1}), T0)
    assert refused.rule == Rule.MAX_OPEN_ORDERS
    assert refused.reason == "account has 3 working orders; one more is above the limit of 3"


def test_price_collar_refuses_a_fat_finger_limit_price_either_side_of_the_last_trade():
    risk = core(price_collar=D("0.05"))
    ctx = market(prices={"AAA": 100})
    assert risk.check(order(limit="105"), ctx, T0).accepted
    assert risk.check(order("sell", limit="95"), ctx, T0).accepted
    refused = risk.check(order(limit="150"), ctx, T0)
    assert refused.rule == Rule.PRICE_COLLAR
    assert refused.reason == (
        "limit price 150 is 50% away from the last trade 100 on AAA, beyond the account collar of 5%"
    )
    assert risk.check(order("sell", limit="10"), ctx, T0).rule == Rule.PRICE_COLLAR


def test_price_collar_checks_the_expected_fill_price_of_a_market_order():
    risk = core(price_collar=D("0.02"))
    ctx = market(prices={"AAA": 100})
    assert risk.check(order(), ctx, T0).accepted  # no expected price: fills at the market
    assert risk.check(order(), ctx, T0, expected_price=D(102)).accepted
    refused = risk.check(order(), ctx, T0, expected_price=D("102.5"))
    assert refused.rule == Rule.PRICE_COLLAR
    assert refused.reason.startswith("expected fill price 102.5 is 2.5% away")


def test_price_collar_without_a_last_trade_refuses_a_limit_order():
    refused = core(price_collar=D("0.05")).check(order(limit="100"), market(prices={}), T0)
    assert refused.rule == Rule.NO_PRICE


def test_stale_data_blocks_orders_on_an_instrument_whose_last_trade_is_too_old():
    risk = core(stale_after_s=5.0)
    ctx = market(prices={"AAA": 100}, traded_at=T0)
    assert risk.check(order(), ctx, T0 + 5 * SECOND).accepted
    refused = risk.check(order(), ctx, T0 + 5 * SECOND + 1_000_000)
    assert refused.rule == Rule.STALE_DATA
    assert refused.reason == "the last trade on AAA is 5.001 s old, older than the account limit of 5 s"
    never = risk.check(order(symbol="BBB"), ctx, T0)
    assert never.rule == Rule.STALE_DATA
    assert never.reason == "no trade seen on BBB yet (account stale-data block)"


def test_global_and_strategy_limits_both_apply_and_the_stricter_refuses():
    risk = RiskCore({GLOBAL: RiskLimits(max_order_qty=D(100)), "sma": RiskLimits(max_order_qty=D(10))})
    ctx = market()
    assert risk.check(order(qty=10, strategy="sma"), ctx, T0).accepted
    by_strategy = risk.check(order(qty=11, strategy="sma"), ctx, T0)
    assert (by_strategy.rule, by_strategy.scope) == (Rule.MAX_ORDER_QTY, "sma")
    assert "strategy 'sma' limit of 10" in by_strategy.reason
    assert risk.check(order(qty=50, strategy="rsi"), ctx, T0).accepted  # only the account limit applies to rsi
    by_account = risk.check(order(qty=101, strategy="rsi"), ctx, T0)
    assert (by_account.rule, by_account.scope) == (Rule.MAX_ORDER_QTY, GLOBAL)


def test_the_account_position_limit_applies_to_the_net_of_all_strategies():
    risk = RiskCore({GLOBAL: RiskLimits(max_position_qty=D(100)), "sma": RiskLimits(max_position_qty=D(80))})
    ctx = market(positions={("sma", "AAA"): 70, ("rsi", "AAA"): 25})
    assert risk.check(order(qty=5, strategy="sma"), ctx, T0).accepted
    net = risk.check(order(qty=6, strategy="sma"), ctx, T0)
    assert (net.rule, net.scope) == (Rule.MAX_POSITION_QTY, GLOBAL)
    assert "the account position in AAA would be 101" in net.reason
    own = risk.check(order(qty=11, strategy="sma"), market(positions={("sma", "AAA"): 70}), T0)
    assert (own.rule, own.scope) == (Rule.MAX_POSITION_QTY, "sma")


def test_limits_changed_at_run_time_apply_to_the_next_order():
    risk = core(max_order_qty=D(10))
    assert risk.check(order(qty=8), market(), T0).rule is None
    risk.set_limits(GLOBAL, risk.limits().evolve(max_order_qty=D(5)), T0)
    assert risk.check(order(qty=8), market(), T0).rule == Rule.MAX_ORDER_QTY
    risk.set_limits(GLOBAL, None, T0)
    assert risk.check(order(qty=8), market(), T0).accepted


def test_a_refusal_raises_a_rejected_error_naming_the_rule():
    refused = core(max_order_qty=D(1)).check(order(qty=2), market(), T0)
    with pytest.raises(RiskRefusedError, match="max_order_qty: order quantity 2 AAA") as info:
        refused.raise_if_refused()
    assert info.value.rule == Rule.MAX_ORDER_QTY


@pytest.mark.parametrize(("value", "text"), [(Decimal("1234567.50"), "1,234,567.5"), (Decimal("1E+3"), "1,000")])
def test_numbers_in_reasons_read_plainly(value, text):
    assert fmt(value) == text

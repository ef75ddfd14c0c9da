"""The order rate limit is a sliding window on the injected clock, per account and per strategy."""

from __future__ import annotations

from framework.clock import SimulatedClock
from framework.risk import GLOBAL, RateLimit, RiskCore, RiskLimits, Rule
from tests.risk.helpers import SECOND, T0, D, market, order

MS = 1_000_000


def test_rate_limit_refuses_the_n_plus_first_order_in_the_window_and_allows_it_once_the_window_slides():
    clock = SimulatedClock(T0)
    risk = RiskCore({GLOBAL: RiskLimits(rate_limit=RateLimit(3, 1.0))})
    ctx = market()
    for step in range(3):
        clock.advance_to(T0 + step * 100 * MS)
        assert risk.check(order(), ctx, clock.now_ns()).accepted
    refused = risk.check(order(), ctx, clock.now_ns())
    assert refused.rule == Rule.RATE_LIMIT == "rate_limit"
    assert refused.reason == (
        "account sent 3 orders in the last 1 s, the limit is 3 per 1 s (next order allowed in 0.8 s)"
    )
    clock.advance_to(T0 + SECOND - 1)
    assert risk.check(order(), ctx, clock.now_ns()).rule == Rule.RATE_LIMIT
    clock.advance_to(T0 + SECOND)  # the first order leaves the window
    assert risk.check(order(), ctx, clock.now_ns()).accepted
    assert risk.check(order(), ctx, clock.now_ns()).rule == Rule.RATE_LIMIT


def test_refused_orders_do_not_use_up_the_rate_budget():
    risk = RiskCore({GLOBAL: RiskLimits(rate_limit=RateLimit(2, 1.0), max_order_qty=D(10))})
    ctx = market()
    for _ in range(5):
        assert risk.check(order(qty=50), ctx, T0).rule == Rule.MAX_ORDER_QTY
    assert risk.check(order(), ctx, T0).accepted
    assert risk.check(order(), ctx, T0).accepted
    assert risk.check(order(), ctx, T0).rule == Rule.RATE_LIMIT


def test_a_strategy_rate_limit_counts_only_its_own_orders():
    risk = RiskCore({"sma": RiskLimits(rate_limit=RateLimit(1, 10.0))})
    ctx = market()
    assert risk.check(order(strategy="sma"), ctx, T0).accepted
    refused = risk.check(order(strategy="sma"), ctx, T0 + SECOND)
    assert (refused.rule, refused.scope) == (Rule.RATE_LIMIT, "sma")
    assert risk.check(order(strategy="rsi"), ctx, T0 + SECOND).accepted
    assert risk.check(order(strategy="sma"), ctx, T0 + 10 * SECOND).accepted


def test_an_order_refused_by_the_strategy_rate_does_not_count_against_the_account_rate():
    risk = RiskCore({GLOBAL: RiskLimits(rate_limit=RateLimit(2, 1.0)), "sma": RiskLimits(rate_limit=RateLimit(1, 1.0))})
    ctx = market()
    assert risk.check(order(strategy="sma"), ctx, T0).accepted
    assert risk.check(order(strategy="sma"), ctx, T0).rule == Rule.RATE_LIMIT
    assert risk.check(order(strategy="rsi"), ctx, T0).accepted
    assert risk.check(order(strategy="rsi"), ctx, T0).scope == GLOBAL

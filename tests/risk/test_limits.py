"""Risk limits are validated values that round-trip through the JSON stored in `risk_limits`."""

from __future__ import annotations

from decimal import Decimal

import pytest

from framework.errors import ParameterError
from framework.risk import RateLimit, RiskLimits


def test_all_limits_round_trip_through_json():
    limits = RiskLimits(
        max_order_qty=Decimal("10.5"),
        max_order_notional=Decimal(10_000),
        max_position_qty=Decimal(100),
        max_position_notional=Decimal(50_000),
        max_gross_exposure=Decimal(1_000_000),
        max_open_orders=20,
        rate_limit=RateLimit(5, 1.0),
        price_collar=Decimal("0.05"),
        stale_after_s=10.0,
        daily_loss_reduce=Decimal(1_000),
        daily_loss_halt=Decimal(2_000),
        max_drawdown=Decimal("0.2"),
    )
    data = limits.to_json()
    assert data["max_order_qty"] == "10.5"
    assert data["rate_limit"] == {"orders": 5, "per_seconds": 1.0}
    assert RiskLimits.from_json(data) == limits


def test_unset_limits_are_omitted_and_none_means_no_limit():
    assert RiskLimits().to_json() == {}
    assert RiskLimits.from_json({"max_order_qty": None}) == RiskLimits()


def test_limits_from_a_request_body_accept_plain_numbers():
    limits = RiskLimits.from_json({"max_order_notional": 5000, "price_collar": 0.1, "max_open_orders": "3"})
    assert limits.max_order_notional == Decimal(5000)
    assert limits.price_collar == Decimal("0.1")
    assert limits.max_open_orders == 3


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"max_order_qty": -1}, "max_order_qty"),
        ({"max_order_qty": "NaN"}, "finite"),
        ({"max_order_qty": "abc"}, "number"),
        ({"price_collar": 0}, "price_collar"),
        ({"max_drawdown": 1.5}, "fraction"),
        ({"max_open_orders": 2.5}, "whole"),
        ({"stale_after_s": -3}, "stale_after_s"),
        ({"rate_limit": {"orders": 0, "per_seconds": 1}}, "rate_limit.orders"),
        ({"rate_limit": {"orders": 5}}, "rate_limit"),
        ({"daily_loss_reduce": 2000, "daily_loss_halt": 1000}, "daily_loss_halt"),
        ({"max_leverage": 3}, "unknown risk limit"),
    ],
)
def test_invalid_limits_are_refused_with_the_name_of_the_limit(body, message):
    with pytest.raises(ParameterError, match=message):
        RiskLimits.from_json(body)


def test_evolve_changes_one_limit_and_lifts_another():
    limits = RiskLimits(max_order_qty=Decimal(5), max_open_orders=3)
    changed = limits.evolve(max_order_qty=Decimal(7), max_open_orders=None)
    assert changed == RiskLimits(max_order_qty=Decimal(7))
    with pytest.raises(ParameterError):
        limits.evolve(max_order_qty=Decimal(-7))
    with pytest.raises(ParameterError, match="unknown"):
        limits.evolve(max_leverage=Decimal(2))

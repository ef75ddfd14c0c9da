"""`Order.evolve` and `exact_arithmetic`, the order path's fast paths, behave as the plain code they replace."""

from __future__ import annotations

import dataclasses
from decimal import Decimal, getcontext
from typing import Any

import pytest

from framework.errors import IntegrityError, RejectedError
from framework.orders import Order, OrderSide, OrderStatus, OrderType
from framework.orders.state import exact_arithmetic

D = Decimal


def _order(**changes: Any) -> Order:
    base = Order("c-1", "s", "paper", "AAA", OrderSide.BUY, D("0.125"), cash_limit=D("250.5"))
    return dataclasses.replace(base, **changes)


def test_evolve_gives_what_dataclasses_replace_gives() -> None:
    order = _order(fill_ids=frozenset({"t1"}))
    changes: dict[str, Any] = {
        "status": OrderStatus.FILLED,
        "filled": D("0.125"),
        "avg_price": D("10.5"),
        "updated_ns": 7,
    }
    evolved = order.evolve(**changes)
    assert evolved == dataclasses.replace(order, **changes)
    assert type(evolved) is Order
    assert order.evolve() == order
    assert order.evolve() is not order


@pytest.mark.parametrize(
    "changes",
    [
        {"filled": D(-1)},
        {"quantity": D(0)},
        {"client_id": ""},
        {"cash_limit": D(0)},
        {"type": OrderType.LIMIT},
        {"limit_price": D(-1), "type": OrderType.LIMIT},
    ],
)
def test_evolve_validates_the_fields_it_changes(changes: dict[str, Any]) -> None:
    with pytest.raises(RejectedError):
        _order().evolve(**changes)


def test_evolve_refuses_an_unknown_field() -> None:
    with pytest.raises(TypeError):
        _order().evolve(colour="red")


def test_evolved_orders_stay_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        _order().evolve(status=OrderStatus.FILLED).status = OrderStatus.NEW  # type: ignore[misc]


def test_exact_arithmetic_nests_and_restores_the_callers_context() -> None:
    before = getcontext()
    with exact_arithmetic():
        outer = getcontext()
        with exact_arithmetic():
            assert getcontext() is outer
            assert D("0.1") + D("0.2") == D("0.3")
        with pytest.raises(IntegrityError), exact_arithmetic():
            _ = D(1) / D(3)
        assert getcontext() is outer
    assert getcontext() is before
    with pytest.raises(IntegrityError), exact_arithmetic():
        _ = D(1) / D(3)
    assert getcontext() is before
    assert D(1) / D(3) == D("0.3333333333333333333333333333")  # the caller's context rounds again

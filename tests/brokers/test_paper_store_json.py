"""The paper venue stores orders and fills as `json.dumps` would write them (its hand-written encoders)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from framework.brokers.paper_store import VenueOrder, _fill_from_json, _fill_to_json
from framework.orders import Fill, Mode, Order, OrderSide, OrderStatus, OrderType

D = Decimal
ODD_TEXT = ["", 'quote " and \\ backslash', "ünïcødé €", "line\nbreak\ttab", "emoji 😀"]


@pytest.mark.parametrize("text", ODD_TEXT)
@pytest.mark.parametrize("ghost", [False, True])
def test_a_venue_order_is_stored_as_json_dumps_writes_it(text: str, ghost: bool) -> None:
    order = Order(
        "c-" + text,
        text,
        "paper",
        text,
        OrderSide.SELL,
        D("1E+3"),
        type=OrderType.LIMIT,
        limit_price=D("1.2300"),
        mode=Mode.DEV,
        status=OrderStatus.PARTIALLY_FILLED,
        filled=D("0.5"),
        avg_price=D("100.0123456789012345678901234567"),
        fees=D("-1E-9"),
        venue_order_id=text or None,
        created_ns=1,
        updated_ns=2**62,
        reason=text,
        fill_ids=frozenset(ODD_TEXT),
    )
    record = VenueOrder(order, 3, 4, None if ghost else 5, 1, 2, ghost, ghost, not ghost)
    o = order
    body = {
        "client_id": o.client_id,
        "strategy": o.strategy,
        "venue": o.venue,
        "symbol": o.symbol,
        "side": o.side.value,
        "quantity": str(o.quantity),
        "type": o.type.value,
        "limit_price": str(o.limit_price),
        "mode": o.mode.value,
        "status": o.status.value,
        "filled": str(o.filled),
        "avg_price": str(o.avg_price),
        "fees": str(o.fees),
        "venue_order_id": o.venue_order_id,
        "created_ns": o.created_ns,
        "updated_ns": o.updated_ns,
        "reason": o.reason,
        "fill_ids": sorted(o.fill_ids),
        "cash_limit": None,
        "seq": 3,
        "accepted_ns": 4,
        "not_before_ns": record.not_before_ns,
        "hidden_queries": 1,
        "hidden_until_ns": 2,
        "duplicate_fills": ghost,
        "ghost": ghost,
        "seen_print": not ghost,
    }
    assert record.to_json() == json.dumps(body, separators=(",", ":"))
    assert VenueOrder.from_json(record.to_json()) == record


@pytest.mark.parametrize("text", ODD_TEXT)
def test_a_venue_fill_is_stored_as_json_dumps_writes_it(text: str) -> None:
    fill = Fill(text, text, "paper", text, OrderSide.BUY, D("0.125"), D("1E-7"), D("-0.5"), 2**62, text, Mode.LIVE)
    body = {
        "fill_id": text,
        "client_id": text,
        "venue": "paper",
        "symbol": text,
        "side": "buy",
        "quantity": "0.125",
        "price": "1E-7",
        "fee": "-0.5",
        "time_ns": 2**62,
        "strategy": text,
        "mode": "live",
    }
    assert _fill_to_json(fill) == json.dumps(body, separators=(",", ":"))
    assert _fill_from_json(_fill_to_json(fill)) == fill

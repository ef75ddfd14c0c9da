"""Manual orders through the API: the round trip to a paper fill, every bad input a 4xx, cancels, the kill switch."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.api.helpers import ApiServer, wait_for

ORDERS = "/api/v1/orders"


async def _order(api: ApiServer, token: str, client_id: str) -> dict:
    async with api.client(token) as http:
        response = await http.get(f"{ORDERS}/{client_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def _filled(api: ApiServer, token: str, client_id: str) -> dict | None:
    order = await _order(api, token, client_id)
    return order if order["status"] == "filled" else None


async def _resting_buy(api: ApiServer, token: str) -> dict:
    """Place a limit buy far below the market (it rests, unfilled)."""
    body = {"symbol": "GOOG", "side": "buy", "quantity": "2", "type": "limit", "limit_price": "1.00"}
    async with api.client(token) as http:
        response = await http.post(ORDERS, json=body)
    assert response.status_code == 201, response.text
    return await wait_for(lambda: _accepted(api, token, response.json()["client_id"]))


async def _accepted(api: ApiServer, token: str, client_id: str) -> dict | None:
    order = await _order(api, token, client_id)
    return order if order["status"] == "accepted" else None


async def test_manual_order_round_trip_to_a_paper_fill(api: ApiServer, trader_token: str) -> None:
    async with api.client(trader_token) as http:
        response = await http.post(ORDERS, json={"symbol": "GOOG", "side": "buy", "quantity": "10.7"})
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["strategy"] == "manual"
    assert order["quantity"] == "10"  # rounded down to the lot size of 1 share
    assert order["status"] in ("submitted", "accepted")
    filled = await wait_for(lambda: _filled(api, trader_token, order["client_id"]))
    assert Decimal(filled["filled"]) == 10
    assert Decimal(filled["avg_price"]) > 0
    async with api.client(trader_token) as http:
        fills = (await http.get("/api/v1/fills", params={"client_id": order["client_id"]})).json()["items"]
        positions = (await http.get("/api/v1/positions", params={"strategy": "manual"})).json()
        account = (await http.get("/api/v1/account")).json()
        listed = (await http.get(ORDERS, params={"strategy": "manual", "status": "filled"})).json()["items"]
    assert [Decimal(f["quantity"]) for f in fills] == [Decimal(10)]
    assert fills[0]["price"] == filled["avg_price"]
    assert [(p["symbol"], Decimal(p["quantity"]), p["side"]) for p in positions] == [("GOOG", Decimal(10), "long")]
    assert Decimal(account["cash"]) < Decimal(account["starting_cash"])
    assert order["client_id"] in [o["client_id"] for o in listed]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"symbol": "NOPE", "side": "buy", "quantity": "1"}, 422, "unknown_symbol"),
        ({"symbol": "GOOG", "side": "buy", "quantity": "NaN"}, 422, "non_finite_quantity"),
        ({"symbol": "GOOG", "side": "buy", "quantity": "Infinity"}, 422, "non_finite_quantity"),
        ({"symbol": "GOOG", "side": "buy", "quantity": "-Infinity"}, 422, "non_finite_quantity"),
        ({"symbol": "GOOG", "side": "buy", "quantity": "0"}, 422, "non_positive_quantity"),
        ({"symbol": "GOOG", "side": "sell", "quantity": "-3"}, 422, "non_positive_quantity"),
        ({"symbol": "GOOG", "side": "buy", "quantity": "0.4"}, 422, "non_positive_quantity"),
        ({"symbol": "GOOG", "side": "buy", "quantity": "1e40"}, 422, "quantity_too_large"),
        ({"symbol": "GOOG", "side": "buy", "quantity": "ten"}, 422, "invalid_quantity"),
        ({"symbol": "GOOG", "side": "buy", "quantity": "1", "type": "limit"}, 422, "missing_limit_price"),
        (
            {"symbol": "GOOG", "side": "buy", "quantity": "1", "type": "limit", "limit_price": "NaN"},
            422,
            "non_finite_price",
        ),
        (
            {"symbol": "GOOG", "side": "buy", "quantity": "1", "type": "limit", "limit_price": "-5"},
            422,
            "non_positive_price",
        ),
        (
            {"symbol": "GOOG", "side": "buy", "quantity": "1", "type": "limit", "limit_price": "0.001"},
            422,
            "non_positive_price",
        ),
        ({"symbol": "GOOG", "side": "buy", "quantity": "1", "limit_price": "5"}, 422, "unexpected_limit_price"),
        ({"symbol": "GOOG", "side": "hold", "quantity": "1"}, 422, "invalid_side"),
        ({"symbol": "GOOG", "side": "buy", "quantity": "1", "leverage": 100}, 422, "unknown_field"),
        ({"side": "buy", "quantity": "1"}, 422, "missing_symbol"),
    ],
)
async def test_every_bad_order_is_a_4xx_with_a_code_and_a_reason(
    api: ApiServer, trader_token, body, status, code
) -> None:
    async with api.client(trader_token) as http:
        response = await http.post(ORDERS, json=body)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["code"] == code
    assert error["reason"]


async def test_a_body_that_is_not_json_is_a_422(api: ApiServer, trader_token: str) -> None:
    async with api.client(trader_token) as http:
        response = await http.post(ORDERS, content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["code"].startswith("invalid_")


async def test_a_risk_refusal_names_its_rule_and_is_recorded(
    api: ApiServer, trader_token: str, admin_token: str
) -> None:
    async with api.client(admin_token) as http:
        limits = await http.put("/api/v1/risk/limits", json={"max_order_qty": "5"})
    assert limits.status_code == 200, limits.text
    assert limits.json()["limits"]["max_order_qty"] == "5"
    async with api.client(trader_token) as http:
        refused = await http.post(ORDERS, json={"symbol": "GOOG", "side": "buy", "quantity": "6"})
        accepted = await http.post(ORDERS, json={"symbol": "GOOG", "side": "buy", "quantity": "5"})
        refusals = (await http.get("/api/v1/risk/refusals")).json()
    assert refused.status_code == 422
    error = refused.json()
    assert (error["code"], error["rule"]) == ("risk_refused", "max_order_qty")
    assert error["client_id"]
    assert accepted.status_code == 201
    assert [(r["client_id"], r["rule"]) for r in refusals] == [(error["client_id"], "max_order_qty")]
    stored = await _order(api, trader_token, error["client_id"])
    assert stored["status"] == "rejected"


async def test_invalid_risk_limits_are_refused(api: ApiServer, admin_token: str) -> None:
    async with api.client(admin_token) as http:
        negative = await http.put("/api/v1/risk/limits", json={"max_order_qty": "-1"})
        nan = await http.put("/api/v1/risk/limits", json={"max_order_notional": "NaN"})
        unknown = await http.put("/api/v1/risk/limits", json={"max_leverage": "3"})
        scope = await http.put("/api/v1/risk/limits", params={"scope": "no spaces"}, json={})
    assert [r.status_code for r in (negative, nan, unknown, scope)] == [422] * 4
    assert negative.json()["code"] == nan.json()["code"] == "invalid_parameter"
    assert unknown.json()["code"] == "unknown_field"


async def test_cancel_one_order_and_unknown_orders(api: ApiServer, trader_token: str) -> None:
    resting = await _resting_buy(api, trader_token)
    async with api.client(trader_token) as http:
        cancelled = await http.post(f"{ORDERS}/{resting['client_id']}/cancel")
        again = await http.post(f"{ORDERS}/{resting['client_id']}/cancel")
        unknown = await http.post(f"{ORDERS}/no-such-order/cancel")
        missing = await http.get(f"{ORDERS}/no-such-order")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert again.json()["status"] == "cancelled"
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_order")
    assert (missing.status_code, missing.json()["code"]) == (404, "unknown_order")


async def test_cancel_all_cancels_every_open_order(api: ApiServer, trader_token: str) -> None:
    orders = [await _resting_buy(api, trader_token) for _ in range(3)]
    async with api.client(trader_token) as http:
        response = await http.post(f"{ORDERS}/cancel-all")
        still_open = (await http.get(ORDERS, params={"status": "accepted"})).json()["items"]
    assert response.status_code == 200
    assert response.json()["cancelled"] == 3
    assert {o["client_id"] for o in response.json()["orders"]} == {o["client_id"] for o in orders}
    assert still_open == []


async def test_kill_switch_halts_trading_and_cancels_open_orders(
    api: ApiServer, trader_token: str, viewer_token: str, admin_token: str
) -> None:
    resting = [await _resting_buy(api, trader_token) for _ in range(2)]
    async with api.client(viewer_token) as http:
        assert (await http.post("/api/v1/risk/kill", json={"reason": "viewer"})).status_code == 403
    async with api.client(trader_token) as http:
        killed = await http.post("/api/v1/risk/kill", json={"reason": "fat finger upstream"})
        state = (await http.get("/api/v1/risk")).json()
        after = await http.post(ORDERS, json={"symbol": "GOOG", "side": "buy", "quantity": "1"})
        release = await http.post("/api/v1/risk/release", json={"reason": "trader may not"})
    assert killed.status_code == 200
    assert killed.json()["state"] == state["state"] == "halted"
    assert "fat finger upstream" in state["reason"]
    for order in resting:
        assert (await _order(api, trader_token, order["client_id"]))["status"] == "cancelled"
    assert (after.status_code, after.json()["code"], after.json()["rule"]) == (422, "risk_refused", "halted")
    assert release.status_code == 403
    async with api.client(admin_token) as http:
        released = await http.post("/api/v1/risk/release", json={"reason": "checked"})
        ready = (await http.get("/api/v1/ready")).json()
    assert released.json()["state"] == "active"
    assert ready["trading_state"] == "active"

"""The WebSocket through a real uvicorn server: auth before accept, subscriptions, slow clients cut off."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from framework.clock import SimulatedClock
from framework.security import SigningKey, TokenService, UserStore
from runner.api.app import ApiOptions
from runner.api.hub import bar_keys
from runner.api.ws import CLOSE_POLICY, CLOSE_TOO_SLOW
from tests.api.helpers import JWT_SECRET, ApiServer, serve_api, wait_for


def _connect(api: ApiServer, token: str | None = None, *, via: str = "protocol", **kwargs: Any) -> connect:
    url, protocols = api.ws_url, None
    if token is not None and via == "query":
        url += f"?token={token}"
    elif token is not None:
        protocols = ["bearer", token]
    return connect(url, subprotocols=protocols, proxy=None, compression=None, **kwargs)  # type: ignore[arg-type]


async def _subscribe(ws: ClientConnection, **request: str) -> str:
    await ws.send(json.dumps({"op": "subscribe", **request}))
    while True:
        message = json.loads(await ws.recv())
        if message["type"] == "subscribed":
            return message["channel"]
        assert message["type"] == "event", message


async def _next_event(ws: ClientConnection, channel: str, where: Any = None, timeout_s: float = 30.0) -> dict:
    async with asyncio.timeout(timeout_s):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == "event" and message["channel"] == channel and (where is None or where(message)):
                return message["data"]


async def _collect(ws: ClientConnection, wanted: dict[str, Any], timeout_s: float = 30.0) -> dict[str, dict]:
    """Read events until each channel of `wanted` delivered one matching its predicate (in any order)."""
    found: dict[str, dict] = {}
    async with asyncio.timeout(timeout_s):
        while len(found) < len(wanted):
            message = json.loads(await ws.recv())
            channel = message.get("channel")
            if (
                message["type"] == "event"
                and channel in wanted
                and channel not in found
                and wanted[channel](message["data"])
            ):
                found[channel] = message["data"]
    return found


async def _drain(ws: ClientConnection) -> int:
    """Read until the server closes the connection; return how many messages came."""
    count = 0
    try:
        while True:
            await ws.recv()
            count += 1
    except ConnectionClosed:
        return count


@pytest.mark.parametrize("token", [None, "not-a-token", "eyJhbGciOiJIUzI1NiJ9.e30.c2ln"])
async def test_a_connection_without_a_valid_token_is_refused_before_accept(api: ApiServer, token) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with _connect(api, token, via="query"):
            pass
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        async with _connect(api, token or "x", via="protocol"):
            pass


async def test_the_token_goes_in_the_subprotocol_or_the_query(api: ApiServer, viewer_token: str) -> None:
    async with _connect(api, viewer_token) as ws:
        assert ws.subprotocol == "bearer"
        await ws.send(json.dumps({"op": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}
    async with _connect(api, viewer_token, via="query") as ws:
        await ws.send(json.dumps({"op": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}


async def test_subscribe_to_bars_and_to_the_orders_of_a_manual_round_trip(
    api: ApiServer, viewer_token: str, trader_token: str
) -> None:
    async with _connect(api, viewer_token) as ws:
        assert await _subscribe(ws, channel="bars", symbol="GOOG", timeframe="1d") == "bars:GOOG:1d"
        bar = await _next_event(ws, "bars:GOOG:1d")
        assert (bar["symbol"], bar["timeframe"]) == ("GOOG", "1d")
        assert bar["high"] >= bar["low"]
        for channel in ("orders", "fills", "positions"):
            assert await _subscribe(ws, channel=channel) == channel
        async with api.client(trader_token) as http:
            order = (await http.post("/api/v1/orders", json={"symbol": "GOOG", "side": "buy", "quantity": "4"})).json()
        mine = order["client_id"]
        found = await _collect(
            ws,
            {
                "orders": lambda d: d["client_id"] == mine and d["status"] == "filled",
                "fills": lambda d: d["client_id"] == mine,
                "positions": lambda d: d["strategy"] == "manual",
            },
        )
    filled, fill, position = found["orders"], found["fills"], found["positions"]
    assert filled["filled"] == "4"
    assert fill["quantity"] == "4"
    assert position["quantity"] == "4"


async def test_strategy_and_risk_events_reach_their_subscribers(
    api: ApiServer, viewer_token: str, trader_token: str
) -> None:
    async with _connect(api, viewer_token) as ws:
        await _subscribe(ws, channel="strategies")
        await _subscribe(ws, channel="risk")
        async with api.client(trader_token) as http:
            body = {"id": "s1", "strategy": "sma_cross", "symbols": ["GOOG"], "timeframe": "1d"}
            assert (await http.post("/api/v1/instances", json=body)).status_code == 201
            assert (await http.post("/api/v1/instances/s1/start")).status_code == 200
            assert (await http.post("/api/v1/risk/kill", json={"reason": "drill"})).status_code == 200
        running = await _next_event(ws, "strategies", lambda m: m["data"]["state"] == "running")
        halted = await _next_event(ws, "risk")
    assert running["id"] == "s1"
    assert (halted["kind"], halted["scope"], halted["state"]) == ("state", "*", "halted")


async def test_bad_messages_get_an_error_and_the_connection_stays(api: ApiServer, viewer_token: str) -> None:
    async with _connect(api, viewer_token) as ws:
        for message in (
            "not json",
            {"op": "subscribe"},
            {"op": "subscribe", "channel": "bars", "symbol": "NOPE"},
            {"op": "subscribe", "channel": "orders", "symbol": "GOOG"},
            {"op": "dance"},
        ):
            await ws.send(message if isinstance(message, str) else json.dumps(message))
            reply = json.loads(await ws.recv())
            assert reply["type"] == "error"
            assert reply["code"] in ("invalid_message", "invalid_subscription")
        await ws.send(json.dumps({"op": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}


async def test_a_slow_client_is_disconnected_while_another_keeps_receiving(database, tmp_path) -> None:
    options = ApiOptions(ws_queue_size=16, ws_close_timeout_s=30.0, stop_timeout_s=30.0)
    async with serve_api(database, tmp_path, options=options) as api:
        token = await api.token("carol")
        hub = api.ctx.events.hub
        blobs = 400
        async with _connect(api, token) as fast, _connect(api, token, max_queue=1) as slow:
            await _subscribe(fast, channel="bars", symbol="GOOG", timeframe="*")
            await _subscribe(slow, channel="bars", symbol="GOOG", timeframe="*")
            received: list[int] = []

            async def read_fast() -> None:
                while len(received) < blobs:
                    message = json.loads(await fast.recv())
                    if "blob" in message.get("data", {}):
                        received.append(message["data"]["n"])

            async def publish() -> None:
                for n in range(blobs):  # incompressible 96 KiB payloads fill the slow client's socket buffers
                    payload = {"n": n, "blob": base64.b64encode(os.urandom(72 * 1024)).decode()}
                    hub.publish(bar_keys("GOOG", "test"), payload)
                    await asyncio.sleep(0.002)

            reader = asyncio.create_task(read_fast())
            await publish()
            await wait_for(lambda: hub.overflows >= 1)
            drained = await _drain(slow)
            await asyncio.wait_for(reader, 60)
        assert received == list(range(blobs))
        assert slow.close_code == CLOSE_TOO_SLOW
        assert "too slow" in (slow.close_reason or "")
        assert drained < blobs
        exported = api.ctx.metrics.exposition().decode()
        assert 'rata_websocket_disconnects_total{reason="slow"} 1.0' in exported


async def test_the_connection_closes_when_its_access_token_expires(api: ApiServer, database) -> None:
    user = await UserStore(database.pool).get("carol")
    ttl = 600
    almost_expired = SimulatedClock((int(time.time()) - ttl + 3) * 1_000_000_000)  # 3 s left
    service = TokenService(database.pool, SigningKey(JWT_SECRET.encode()), access_ttl_s=ttl, clock=almost_expired)
    token, _ = service.issue_access(user)
    async with _connect(api, token) as ws:
        await ws.send(json.dumps({"op": "subscribe", "channel": "orders"}))
        await _drain(ws)
    assert ws.close_code == CLOSE_POLICY
    assert "expired" in (ws.close_reason or "")


async def test_equity_is_published_for_the_account(api: ApiServer, viewer_token: str) -> None:
    async with _connect(api, viewer_token) as ws:
        await _subscribe(ws, channel="equity")
        found = await _collect(ws, {"equity": lambda d: d["strategy"] == "*"})
    assert found["equity"]["equity"] == found["equity"]["cash"]  # nothing held yet

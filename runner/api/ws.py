"""The WebSocket at `/api/v1/ws`: authenticated before accept, channel subscriptions, slow clients cut off.

Authentication happens before the connection is accepted: the access token comes in the `token`
query parameter or, better (query strings end up in access logs; rata redacts them), as the
subprotocols `["bearer", "<token>"]`, and the server answers with subprotocol `bearer`. A missing
or invalid token gets the handshake refused (HTTP 403) and nothing else. Any role may subscribe.

Client messages (JSON)::

    {"op": "subscribe", "channel": "bars", "symbol": "BTC/USDT", "timeframe": "1m"}
    {"op": "subscribe", "channel": "ticks", "symbol": "*"}
    {"op": "subscribe", "channel": "orders"}          # also fills, positions, strategies, risk, equity
    {"op": "unsubscribe", "channel": "bars", "symbol": "BTC/USDT", "timeframe": "1m"}
    {"op": "ping"}

Server messages: `{"type": "subscribed" | "unsubscribed", "channel": key}`, `{"type": "pong"}`,
`{"type": "error", "code": ..., "reason": ...}` and `{"type": "event", "channel": key, "data": {...}}`.

Each client has a bounded queue (`ApiOptions.ws_queue_size`). A client that lets it fill up is
disconnected with close code 1013 ("try again later") and a reason saying it was too slow; the
engine and the other clients never wait for it. The connection also closes (1008) when its access
token expires: reconnect with a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Literal

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import Field, ValidationError

from framework.security import AccessClaims, InvalidTokenError
from framework.timeframes import TIMEFRAMES
from runner.api.context import ApiContext
from runner.api.hub import CHANNELS, WILDCARD, EventHub, Subscriber
from runner.api.schemas import Schema

__all__ = ["CLOSE_POLICY", "CLOSE_TOO_SLOW", "router"]

log = logging.getLogger(__name__)

router = APIRouter()

CLOSE_TOO_SLOW = 1013
CLOSE_POLICY = 1008
MAX_SUBSCRIPTIONS = 1000


class WsRequest(Schema):
    """One client message."""

    op: Literal["subscribe", "unsubscribe", "ping"]
    channel: Literal["ticks", "bars", "orders", "fills", "positions", "strategies", "risk", "equity"] | None = None
    symbol: str | None = Field(None, min_length=1, max_length=64)
    timeframe: str | None = Field(None, min_length=1, max_length=8)


def _token(websocket: WebSocket) -> tuple[str | None, str | None]:
    """Return the access token and the subprotocol to answer with (`bearer`, when sent that way)."""
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    if len(offered) >= 2 and offered[0].lower() == "bearer":
        return offered[1], offered[0]
    return websocket.query_params.get("token"), None


def _key(request: WsRequest, ctx: ApiContext) -> str:
    """Return the subscription key of a request, or raise `ValueError` with the reason."""
    channel = request.channel
    if channel is None:
        raise ValueError("subscribe needs a channel: " + ", ".join(CHANNELS))
    if channel not in ("ticks", "bars"):
        if request.symbol or request.timeframe:
            raise ValueError(f"channel {channel} takes no symbol or timeframe")
        return channel
    symbol = request.symbol or WILDCARD
    runner = ctx.runner
    known = runner.orders.instruments if runner is not None and runner.orders is not None else None
    if symbol != WILDCARD and known is not None and symbol not in known:
        raise ValueError(f"unknown symbol {symbol!r}")
    if channel == "ticks":
        if request.timeframe:
            raise ValueError("channel ticks takes no timeframe")
        return f"ticks:{symbol}"
    timeframe = request.timeframe or WILDCARD
    if timeframe != WILDCARD and timeframe not in TIMEFRAMES:
        raise ValueError(f"unknown timeframe {timeframe!r}; valid: {', '.join(TIMEFRAMES)}")
    return f"bars:{symbol}:{timeframe}"


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    ctx: ApiContext = websocket.app.state.api
    metrics = ctx.metrics
    token, subprotocol = _token(websocket)
    claims: AccessClaims | None = None
    if token and ctx.tokens is not None:
        try:
            claims = ctx.tokens.verify_access(token)
        except InvalidTokenError as exc:
            log.info("WebSocket refused: %s", exc.reason)
    if claims is None or ctx.runner is None:
        metrics.websocket_disconnects.labels("unauthorized" if claims is None else "unavailable").inc()
        await websocket.close(code=CLOSE_POLICY, reason="authentication required")
        return
    hub = ctx.runner.events.hub
    if len(hub.clients) >= ctx.options.max_ws_clients:
        metrics.websocket_disconnects.labels("too_many_clients").inc()
        await websocket.close(code=CLOSE_TOO_SLOW, reason="too many clients")
        return
    await websocket.accept(subprotocol=subprotocol)
    subscriber = hub.connect()
    metrics.websocket_clients.inc()
    try:
        await _serve(websocket, ctx, hub, subscriber, claims)
    finally:
        hub.disconnect(subscriber)
        metrics.websocket_clients.dec()


async def _serve(
    websocket: WebSocket, ctx: ApiContext, hub: EventHub, subscriber: Subscriber, claims: AccessClaims
) -> None:
    receiver = asyncio.create_task(_receive(websocket, ctx, hub, subscriber), name="ws-receive")
    sender = asyncio.create_task(_send(websocket, subscriber), name="ws-send")
    overflow = asyncio.create_task(subscriber.overflowed.wait(), name="ws-overflow")
    ttl = max(0.0, claims.expires_at.timestamp() - time.time())
    expiry = asyncio.create_task(asyncio.sleep(ttl), name="ws-expiry")
    tasks = {receiver, sender, overflow, expiry}
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await asyncio.gather(*tasks, return_exceptions=True)
    if overflow in done:
        size = hub.queue_size
        log.warning("WebSocket client of %s too slow (%d messages queued): disconnected", claims.username, size)
        ctx.metrics.websocket_disconnects.labels("slow").inc()
        await _close(websocket, ctx, CLOSE_TOO_SLOW, f"too slow: more than {size} messages waiting")
    elif expiry in done:
        ctx.metrics.websocket_disconnects.labels("token_expired").inc()
        await _close(websocket, ctx, CLOSE_POLICY, "access token expired; reconnect with a fresh one")
    elif sender in done and not sender.cancelled() and sender.exception() is not None:
        await _close(websocket, ctx, 1011, "send failed")


async def _close(websocket: WebSocket, ctx: ApiContext, code: int, reason: str) -> None:
    """Close with `code`; a socket that does not drain in time is left to the server to drop."""
    with contextlib.suppress(TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
        async with asyncio.timeout(ctx.options.ws_close_timeout_s):
            await websocket.close(code=code, reason=reason)


async def _send(websocket: WebSocket, subscriber: Subscriber) -> None:
    queue = subscriber.queue
    while True:
        message = await queue.get()
        await websocket.send_text(message)


async def _receive(websocket: WebSocket, ctx: ApiContext, hub: EventHub, subscriber: Subscriber) -> None:
    while True:
        text = await websocket.receive_text()
        try:
            request = WsRequest.model_validate(json.loads(text))
        except (ValueError, ValidationError) as exc:
            hub.send(subscriber, {"type": "error", "code": "invalid_message", "reason": _why(exc)})
            continue
        if request.op == "ping":
            hub.send(subscriber, {"type": "pong"})
            continue
        try:
            key = _key(request, ctx)
        except ValueError as exc:
            hub.send(subscriber, {"type": "error", "code": "invalid_subscription", "reason": str(exc)})
            continue
        if request.op == "subscribe":
            if key not in subscriber.keys and len(subscriber.keys) >= MAX_SUBSCRIPTIONS:
                reason = f"at most {MAX_SUBSCRIPTIONS} subscriptions"
                hub.send(subscriber, {"type": "error", "code": "too_many_subscriptions", "reason": reason})
                continue
            hub.subscribe(subscriber, key)
            hub.send(subscriber, {"type": "subscribed", "channel": key})
        else:
            hub.unsubscribe(subscriber, key)
            hub.send(subscriber, {"type": "unsubscribed", "channel": key})


def _why(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "message"
        return f"{where}: {first.get('msg', 'invalid')}"
    return "not a JSON object"

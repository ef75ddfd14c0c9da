"""The live dashboard's WebSocket: one connection per browser session, subscriptions kept across reconnects.

The access token goes in the subprotocols (`["bearer", token]`), never in the URL. Events are
handed to `on_event(channel, data)` as they arrive, in the reader task; the dashboard queues them
and applies them to the page in batches (see `dashboards.live`).

The server closes the connection when the token it was opened with expires (1008), when the
client falls behind (1013), or when it stops. The stream then reconnects, with a fresh token when
the old one is due or was refused, re-sends every subscription and calls `on_status("live")` again,
so the page can fetch whatever it missed over REST. Backoff between attempts: 0.5 s doubling to 5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from dashboards.live_client import ApiClient, ApiRefusal

__all__ = ["LiveStream", "Subscription"]

log = logging.getLogger(__name__)

CLOSE_POLICY = 1008


@dataclass(frozen=True, slots=True)
class Subscription:
    """One channel subscription (`symbol` and `timeframe` for `bars`, `symbol` for `ticks`)."""

    channel: str
    symbol: str | None = None
    timeframe: str | None = None

    def message(self, op: str) -> str:
        """Return the JSON request that subscribes (or unsubscribes, `op`) this channel."""
        body: dict[str, Any] = {"op": op, "channel": self.channel}
        if self.symbol is not None:
            body["symbol"] = self.symbol
        if self.timeframe is not None:
            body["timeframe"] = self.timeframe
        return json.dumps(body)


class LiveStream:
    """Keep one authenticated WebSocket open and its subscriptions live; see the module docstring."""

    def __init__(
        self,
        client: ApiClient,
        on_event: Callable[[str, dict[str, Any]], None],
        on_status: Callable[[str], None],
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.on_event = on_event
        self.on_status = on_status
        self.on_error = on_error
        self.subscriptions: set[Subscription] = set()
        self.received = 0
        self.connections = 0
        self._ws: ClientConnection | None = None
        self._stopping = False
        self._closing: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        """Return whether the connection is open."""
        return self._ws is not None

    async def subscribe(self, subscription: Subscription) -> None:
        """Add a subscription (sent now when connected, and after every reconnect)."""
        self.subscriptions.add(subscription)
        await self._send(subscription.message("subscribe"))

    async def unsubscribe(self, subscription: Subscription) -> None:
        """Drop a subscription."""
        if subscription in self.subscriptions:
            self.subscriptions.discard(subscription)
            await self._send(subscription.message("unsubscribe"))

    def stop(self) -> None:
        """Ask `run` to end (it closes the connection)."""
        self._stopping = True
        ws = self._ws
        if ws is not None:
            self._closing = asyncio.ensure_future(ws.close())

    async def run(self) -> None:
        """Connect, subscribe and read events until `stop()`, reconnecting after any drop."""
        delay = 0.5
        while not self._stopping:
            refresh = self.client.refresh_due() == 0.0
            reason = ""
            try:
                if refresh:
                    await self.client.refresh()
                await self._connect_and_read()
                delay = 0.5
                reason = "the server closed the stream"
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                reason = exc.rcvd.reason if exc.rcvd is not None and exc.rcvd.reason else str(exc)
                if code == CLOSE_POLICY:
                    await self._refresh_quietly()
                delay = 0.5
            except InvalidStatus as exc:
                reason = f"the server refused the stream (HTTP {exc.response.status_code})"
                await self._refresh_quietly()
            except ApiRefusal as exc:
                if exc.status in (401, 403):
                    self.on_status("logged out")
                    if self.on_error is not None:
                        self.on_error(f"the session ended: {exc}; log in again")
                    return
                reason = str(exc)
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            finally:
                self._ws = None
            if self._stopping:
                break
            self.on_status(f"reconnecting ({reason})")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        self.on_status("closed")

    async def _refresh_quietly(self) -> None:
        with contextlib.suppress(ApiRefusal):
            await self.client.refresh()

    async def _connect_and_read(self) -> None:
        protocols = [Subprotocol("bearer"), Subprotocol(self.client.token)]
        async with connect(
            self.client.ws_url, subprotocols=protocols, proxy=None, compression=None, open_timeout=30, max_queue=256
        ) as ws:
            self._ws = ws
            self.connections += 1
            for subscription in list(self.subscriptions):
                await ws.send(subscription.message("subscribe"))
            self.on_status("live")
            async for text in ws:
                self._dispatch(text)

    def _dispatch(self, text: str | bytes) -> None:
        message = json.loads(text)
        kind = message.get("type")
        if kind == "event":
            self.received += 1
            self.on_event(str(message["channel"]), message["data"])
        elif kind == "error":
            log.warning("WebSocket request refused: %s", message.get("reason"))
            if self.on_error is not None:
                self.on_error(f"stream: {message.get('reason', 'refused')} ({message.get('code', 'error')})")

    async def _send(self, text: str) -> None:
        ws = self._ws
        if ws is None:
            return
        with contextlib.suppress(ConnectionClosed):
            await ws.send(text)

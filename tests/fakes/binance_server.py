"""A local Binance spot exchange on 127.0.0.1 that speaks Binance's public wire format.

The real ccxt client talks to it through its URL configuration (`FakeBinance.ccxt_config()`), so a
test exercises ccxt's own parsing, subscription and pagination code, not a mock of it. What it
serves is what ccxt's `binance` calls for public market data:

- REST under `/api/v3`: `ping`, `time`, `exchangeInfo` (spot symbols with real-looking filters),
  `aggTrades` (`fromId` | `startTime`/`endTime` | most recent, `limit` <= 1000), `trades` (most
  recent), `historicalTrades` (`fromId`), `klines` (built from the trades);
- websocket at `/ws/<anything>` (raw events, as ccxt uses it: it dials `/ws/<stream index>` and
  sends `{"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": N}`, answered with
  `{"result": null, "id": N}`) and at `/stream?streams=a/b` (combined `{"stream", "data"}`
  events). Streams: `<symbol>@aggTrade`, `<symbol>@trade`, `<symbol>@kline_<interval>`.

The market: every symbol gets a seeded, reproducible sequence of trades (ids, prices, sizes, sides;
only the millisecond timestamps depend on when they are generated), produced every `interval_s`
while the server runs. `trades` keeps the full list, the ground truth a test compares against.
Every trade is its own aggregate (`a == f == l == t`), so the trade and aggTrade id spaces agree.

Controls for disconnect tests: `cut(refuse_s)` aborts every websocket connection at the TCP level
(no close frame, like a dropped network) and answers websocket handshakes with 503 for `refuse_s`
seconds while trades keep being generated, so the gap can only be recovered over REST;
`halt(symbol)` / `resume(symbol)` stop and restart a symbol's trading; `max_trades` ends each
symbol's sequence; `send_raw` pushes arbitrary text to the connections (malformed messages).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import math
import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.binance_wire import DEFAULT_MARKETS, INTERVAL_MS, FakeMarket, FakeTrade, kline, symbol_info

__all__ = ["DEFAULT_MARKETS", "FakeBinance", "FakeMarket", "FakeTrade"]

_HOUR_MS = 3_600_000


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class _Book:
    market: FakeMarket
    rng: random.Random
    ticks: int
    trades: list[FakeTrade] = field(default_factory=list)
    times: list[int] = field(default_factory=list)
    halted: bool = False

    def next_trades(self, now_ms: int) -> list[FakeTrade]:
        m = self.market
        count = 1 + (self.rng.randrange(3) if self.rng.random() < 0.2 else 0)
        out = []
        for _ in range(count):
            self.ticks = max(1, self.ticks + round(self.rng.gauss(0.0, m.volatility_ticks)))
            steps = max(1, round(self.rng.lognormvariate(math.log(m.mean_steps), 1.0)))
            buyer_maker = self.rng.random() < 0.5
            last_ms = self.times[-1] if self.times else 0
            trade = FakeTrade(
                id=m.first_id + len(self.trades),
                time_ms=max(now_ms, last_ms),
                price=m.tick_size * self.ticks,
                qty=m.step_size * steps,
                buyer_maker=buyer_maker,
            )
            self.trades.append(trade)
            self.times.append(trade.time_ms)
            out.append(trade)
        return out


@dataclass(eq=False, slots=True)
class _Conn:
    ws: web.WebSocketResponse
    request: web.Request
    combined: bool
    streams: set[str] = field(default_factory=set)


class _BinanceError(Exception):
    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


class FakeBinance:
    """Run with `async with FakeBinance() as server:`; see the module docstring for what it serves."""

    def __init__(
        self,
        markets: Iterable[FakeMarket] = DEFAULT_MARKETS,
        *,
        seed: int = 7,
        interval_s: float = 0.002,
        max_trades: int | None = None,
        autostart: bool = True,
    ) -> None:
        self.markets = {m.symbol: m for m in markets}
        self._books = {
            m.symbol: _Book(m, random.Random(f"{seed}:{m.symbol}"), int(m.start_price / m.tick_size))
            for m in self.markets.values()
        }
        self.interval_s = interval_s
        self.max_trades = max_trades
        self._autostart = autostart
        self._conns: set[_Conn] = set()
        self._refuse_until = 0.0
        self._runner: web.AppRunner | None = None
        self._generator: asyncio.Task[None] | None = None
        self._running = asyncio.Event()
        self.port = 0
        self.ws_paths: list[str] = []
        self.ws_refused = 0
        self.subscribe_requests: list[dict[str, Any]] = []
        self.rest_requests: list[tuple[str, dict[str, str]]] = []

    # ---------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> FakeBinance:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1 and start generating trades (unless `autostart=False`)."""
        app = web.Application()
        self._add_routes(app)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = server.sockets[0].getsockname()[1]
        self._generator = asyncio.create_task(self._generate(), name="fake-binance-generator")
        if self._autostart:
            self._running.set()

    def _add_routes(self, app: web.Application) -> None:
        """Register the endpoints; a subclass serving more of Binance's API extends this."""
        app.router.add_get("/api/v3/ping", self._ping)
        app.router.add_get("/api/v3/time", self._time)
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        app.router.add_get("/api/v3/aggTrades", self._agg_trades)
        app.router.add_get("/api/v3/trades", self._recent_trades)
        app.router.add_get("/api/v3/historicalTrades", self._historical_trades)
        app.router.add_get("/api/v3/klines", self._klines)
        app.router.add_get("/ws", self._websocket)
        app.router.add_get("/ws/{name:.*}", self._websocket)
        app.router.add_get("/stream", self._websocket)

    async def stop(self) -> None:
        """Stop generating, drop every connection and close the server."""
        if self._generator is not None:
            self._generator.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._generator
        for conn in list(self._conns):
            with contextlib.suppress(Exception):
                await conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def ccxt_config(self) -> dict[str, Any]:
        """Return the ccxt constructor config that points `ccxt.pro.binance` at this server."""
        ws = f"{self.ws_url}/ws"
        return {
            "urls": {
                "api": {
                    "public": f"{self.http_url}/api/v3",
                    "private": f"{self.http_url}/api/v3",
                    "v1": f"{self.http_url}/api/v1",
                    "ws": {"spot": ws, "margin": ws},
                }
            }
        }

    # ---------------------------------------------------------------- controls

    def symbol_trades(self, symbol: str) -> list[FakeTrade]:
        """Return the ground truth: every trade of `symbol` (Binance id, e.g. BTCUSDT) so far."""
        return list(self._books[symbol].trades)

    @property
    def connections(self) -> int:
        """Return how many websocket connections are open."""
        return len(self._conns)

    def start_trading(self) -> None:
        """Start (or restart) generating trades."""
        self._running.set()

    def pause_trading(self) -> None:
        """Stop generating trades for every symbol until `start_trading`."""
        self._running.clear()

    def halt(self, symbol: str) -> None:
        """Stop trading `symbol` (no trade is generated, so none is sent or served)."""
        self._books[symbol].halted = True

    def resume(self, symbol: str) -> None:
        """Resume trading `symbol`."""
        self._books[symbol].halted = False

    def done(self) -> bool:
        """Return whether every symbol reached `max_trades`."""
        return self.max_trades is not None and all(len(b.trades) >= self.max_trades for b in self._books.values())

    async def cut(self, refuse_s: float = 0.0) -> int:
        """Abort every websocket connection; refuse new ones for `refuse_s` seconds. Return how many were cut."""
        self._refuse_until = asyncio.get_running_loop().time() + refuse_s
        conns = list(self._conns)
        for conn in conns:
            transport = conn.request.transport
            if transport is not None:
                transport.abort()
            self._conns.discard(conn)
        return len(conns)

    async def send_raw(self, text: str, stream: str | None = None) -> None:
        """Send `text` as is to every open websocket connection (subscribed to `stream`, if given)."""
        for conn in list(self._conns):
            if stream is None or stream in conn.streams:
                await self._send(conn, text)

    # ---------------------------------------------------------------- generation

    async def _generate(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self._running.wait()
            for symbol, book in self._books.items():
                if book.halted or (self.max_trades is not None and len(book.trades) >= self.max_trades):
                    continue
                trades = book.next_trades(_now_ms())
                if self.max_trades is not None:
                    excess = len(book.trades) - self.max_trades
                    if excess > 0:
                        del book.trades[-excess:], book.times[-excess:], trades[-excess:]
                await self._broadcast(symbol, trades)

    async def _broadcast(self, symbol: str, trades: list[FakeTrade]) -> None:
        if not trades or not self._conns:
            return
        lower = symbol.lower()
        for conn in list(self._conns):
            for kind in ("aggTrade", "trade"):
                stream = f"{lower}@{kind}"
                if stream in conn.streams:
                    for trade in trades:
                        await self._send(conn, self._frame(conn, stream, trade.event(kind, symbol, _now_ms())))
            for stream in conn.streams:
                if stream.startswith(f"{lower}@kline_"):
                    interval = stream.split("_", 1)[1]
                    await self._send(conn, self._frame(conn, stream, self._kline_event(symbol, interval)))

    @staticmethod
    def _frame(conn: _Conn, stream: str, event: dict[str, Any]) -> str:
        return json.dumps({"stream": stream, "data": event} if conn.combined else event, separators=(",", ":"))

    async def _send(self, conn: _Conn, text: str) -> None:
        if conn not in self._conns:
            return
        try:
            await conn.ws.send_str(text)
        except (ConnectionError, RuntimeError):
            self._conns.discard(conn)

    # ---------------------------------------------------------------- websocket

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        self.ws_paths.append(request.path_qs)
        if asyncio.get_running_loop().time() < self._refuse_until:
            self.ws_refused += 1
            return web.Response(status=503, text="Service unavailable")
        ws = web.WebSocketResponse(autoping=True, heartbeat=None)
        await ws.prepare(request)
        combined = request.path == "/stream"
        conn = _Conn(ws, request, combined)
        if combined:
            conn.streams.update(s for s in request.query.get("streams", "").split("/") if s)
        elif "@" in request.match_info.get("name", ""):
            conn.streams.add(request.match_info["name"])
        self._conns.add(conn)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._control(conn, msg.data)
        finally:
            self._conns.discard(conn)
        return ws

    async def _control(self, conn: _Conn, text: str) -> None:
        try:
            request = json.loads(text)
            method, request_id = request["method"], request.get("id")
        except (ValueError, KeyError, TypeError):
            await self._send(conn, json.dumps({"error": {"code": 3, "msg": "Invalid JSON"}, "id": None}))
            return
        self.subscribe_requests.append(request)
        params = request.get("params") or []
        if method == "SUBSCRIBE":
            conn.streams.update(params)
            reply: dict[str, Any] = {"result": None, "id": request_id}
        elif method == "UNSUBSCRIBE":
            conn.streams.difference_update(params)
            reply = {"result": None, "id": request_id}
        elif method == "LIST_SUBSCRIPTIONS":
            reply = {"result": sorted(conn.streams), "id": request_id}
        else:
            reply = {"error": {"code": 2, "msg": f"Invalid request: unknown method {method}"}, "id": request_id}
        await self._send(conn, json.dumps(reply))

    def _kline_event(self, symbol: str, interval: str) -> dict[str, Any]:
        book = self._books[symbol]
        span = INTERVAL_MS[interval]
        open_ms = book.trades[-1].time_ms // span * span
        start = bisect.bisect_left(book.times, open_ms)
        row = kline(book.trades[start:], open_ms, span)
        return {
            "e": "kline",
            "E": _now_ms(),
            "s": symbol,
            "k": {
                "t": open_ms,
                "T": open_ms + span - 1,
                "s": symbol,
                "i": interval,
                "f": book.trades[start].id,
                "L": book.trades[-1].id,
                "o": row[1],
                "c": row[4],
                "h": row[2],
                "l": row[3],
                "v": row[5],
                "n": row[8],
                "x": False,
                "q": row[7],
                "V": row[9],
                "Q": row[10],
                "B": "0",
            },
        }

    # ---------------------------------------------------------------- REST

    @staticmethod
    def _json(payload: object, status: int = 200) -> web.Response:
        return web.json_response(payload, status=status, dumps=lambda o: json.dumps(o, separators=(",", ":")))

    def _record(self, request: web.Request) -> None:
        self.rest_requests.append((request.path, dict(request.query)))

    async def _ping(self, request: web.Request) -> web.Response:
        self._record(request)
        return self._json({})

    async def _time(self, request: web.Request) -> web.Response:
        self._record(request)
        return self._json({"serverTime": _now_ms()})

    async def _exchange_info(self, request: web.Request) -> web.Response:
        self._record(request)
        wanted = request.query.get("symbol")
        symbols = [symbol_info(m) for m in self.markets.values() if wanted in (None, m.symbol)]
        if wanted is not None and not symbols:
            return self._json({"code": -1121, "msg": "Invalid symbol."}, 400)
        return self._json(
            {
                "timezone": "UTC",
                "serverTime": _now_ms(),
                "rateLimits": [
                    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
                    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
                ],
                "exchangeFilters": [],
                "symbols": symbols,
            }
        )

    def _book(self, query: Mapping[str, str]) -> _Book:
        symbol = query.get("symbol")
        if not symbol:
            raise _BinanceError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        if symbol not in self._books:
            raise _BinanceError(-1121, "Invalid symbol.")
        return self._books[symbol]

    @staticmethod
    def _int(query: Mapping[str, str], name: str, default: int | None = None) -> int | None:
        raw = query.get(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise _BinanceError(-1100, f"Illegal characters found in parameter '{name}'.") from None

    def _limit(self, query: Mapping[str, str], maximum: int = 1000) -> int:
        limit = self._int(query, "limit", 500)
        assert limit is not None
        if not 1 <= limit <= maximum:
            raise _BinanceError(-1130, "Data sent for parameter 'limit' is not valid.")
        return limit

    async def _rest(self, request: web.Request, handler: Any) -> web.Response:
        self._record(request)
        try:
            return self._json(handler(request.query))
        except _BinanceError as exc:
            return self._json({"code": exc.code, "msg": exc.msg}, exc.status)

    async def _agg_trades(self, request: web.Request) -> web.Response:
        def handle(query: Mapping[str, str]) -> list[dict[str, Any]]:
            book = self._book(query)
            limit = self._limit(query)
            from_id = self._int(query, "fromId")
            start, end = self._int(query, "startTime"), self._int(query, "endTime")
            if from_id is not None and (start is not None or end is not None):
                raise _BinanceError(-1128, "Combination of optional parameters invalid.")
            if start is not None and end is not None and end - start > _HOUR_MS:
                raise _BinanceError(-1127, "More than 1 hours between startTime and endTime.")
            trades = book.trades
            if from_id is not None:
                first = max(0, from_id - book.market.first_id)
                rows = trades[first : first + limit]
            elif start is not None or end is not None:
                lo = bisect.bisect_left(book.times, start) if start is not None else 0
                hi = bisect.bisect_right(book.times, end) if end is not None else len(trades)
                rows = trades[lo:hi][:limit]
            else:
                rows = trades[-limit:]
            return [t.agg_trade() for t in rows]

        return await self._rest(request, handle)

    async def _recent_trades(self, request: web.Request) -> web.Response:
        def handle(query: Mapping[str, str]) -> list[dict[str, Any]]:
            book = self._book(query)
            return [t.rest_trade() for t in book.trades[-self._limit(query) :]]

        return await self._rest(request, handle)

    async def _historical_trades(self, request: web.Request) -> web.Response:
        def handle(query: Mapping[str, str]) -> list[dict[str, Any]]:
            book = self._book(query)
            limit = self._limit(query)
            from_id = self._int(query, "fromId")
            if from_id is None:
                return [t.rest_trade() for t in book.trades[-limit:]]
            first = max(0, from_id - book.market.first_id)
            return [t.rest_trade() for t in book.trades[first : first + limit]]

        return await self._rest(request, handle)

    async def _klines(self, request: web.Request) -> web.Response:
        def handle(query: Mapping[str, str]) -> list[list[Any]]:
            book = self._book(query)
            interval = query.get("interval")
            if interval not in INTERVAL_MS:
                raise _BinanceError(-1120, "Invalid interval.")
            span = INTERVAL_MS[interval]
            limit = self._limit(query)
            start, end = self._int(query, "startTime"), self._int(query, "endTime")
            by_open: dict[int, list[FakeTrade]] = {}
            for trade in book.trades:
                open_ms = trade.time_ms // span * span
                if (start is None or open_ms >= start // span * span) and (end is None or open_ms <= end):
                    by_open.setdefault(open_ms, []).append(trade)
            opens = sorted(by_open)
            opens = opens[:limit] if start is not None else opens[-limit:]
            return [kline(by_open[o], o, span) for o in opens]

        return await self._rest(request, handle)

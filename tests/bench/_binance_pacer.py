"""A local Binance spot server, in its own process, sending aggTrade events at a paced total rate.

The ingestion benchmark's exchange. It is `tests.fakes.binance_server.FakeBinance` (the same REST
endpoints, websocket handshake and SUBSCRIBE handling the ccxt tests use), with its generator
replaced by a pacer built for tens of thousands of trades a second:

- trades go round-robin over every symbol (500 symbols at 50,000 ticks/s: 100 a second each), one
  aggTrade event per websocket frame, as Binance sends them, with gap-free ids per symbol;
- every `STEP_S` the pacer sends the trades due since the start (`rate` x elapsed time), so a
  stalled step is caught up, never dropped; frames are encoded by hand (an unmasked text frame
  is two to ten header bytes) and each connection gets one `transport.write` per step;
- the send time: one `time.time_ns()` per step, taken before that step's frames are built and
  written, goes into every frame as `"sentNs"` (nanoseconds), a field Binance does not send and
  ccxt passes through untouched in `trade["info"]`; `"E"` and `"T"` (ms) carry the same instant, so
  ccxt's own timestamps stay consistent. The stamp precedes the write by the step's build time
  (about 0.1 ms at 50,000 ticks/s), so a latency measured from it is overstated by at most that;
- the trades of the current pacing are kept (compactly) and `GET /api/v3/aggTrades?fromId=` serves
  them, so `CcxtFeed` can backfill the gaps it sees when ccxt's trade cache overflows, as it
  would against Binance; other `aggTrades` queries answer an empty page.

Run it with `PacerProcess`: the parent reads the frames actually written from shared memory
(`sent`), so the offered rate is what went on the wire, not what was asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import random
import struct
import time
from array import array
from collections.abc import Mapping
from decimal import Decimal
from multiprocessing.connection import Connection
from typing import Any

from aiohttp import web

from tests.fakes.binance_server import FakeBinance
from tests.fakes.binance_wire import FakeMarket, FakeTrade

__all__ = ["SENT_FIELD", "PacerProcess", "bench_markets", "frame_text"]

SENT_FIELD = "sentNs"
STEP_S = 0.001
_E8 = 100_000_000
_MOVES = (-2, -1, -1, 0, 0, 0, 1, 1, 2)


def bench_markets(n: int) -> list[FakeMarket]:
    """Return `n` spot markets `B000USDT`, `B001USDT`, ... (tick 0.01, step 0.001)."""
    width = max(3, len(str(n - 1)))
    return [
        FakeMarket(
            f"B{i:0{width}d}USDT",
            f"B{i:0{width}d}",
            "USDT",
            Decimal("0.01"),
            Decimal("0.001"),
            Decimal(10 + (i * 37) % 990),
            first_id=1_000_000,
        )
        for i in range(n)
    ]


def _e8(value: int) -> str:
    """Format an amount held in units of 1e-8 as Binance's 8-decimal string."""
    return f"{value // _E8}.{value % _E8:08d}"


def frame_text(symbol: str, trade_id: int, price_e8: int, qty_e8: int, buyer_maker: bool, sent_ns: int) -> str:
    """Return the aggTrade event of one trade, as `FakeTrade.event("aggTrade", ...)` plus `sentNs`."""
    ms = sent_ns // 1_000_000
    maker = "true" if buyer_maker else "false"
    price, qty = _e8(price_e8), _e8(qty_e8)
    return (
        f'{{"e":"aggTrade","E":{ms},"s":"{symbol}","a":{trade_id},"p":"{price}","q":"{qty}",'
        f'"f":{trade_id},"l":{trade_id},"T":{ms},"m":{maker},"M":true,"{SENT_FIELD}":{sent_ns}}}'
    )


def _ws_frame(payload: bytes) -> bytes:
    """Return an unmasked, final websocket text frame (server to client) holding `payload`."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65_536:
        return b"\x81\x7e" + struct.pack("!H", n) + payload
    return b"\x81\x7f" + struct.pack("!Q", n) + payload


class _PacedBinance(FakeBinance):
    """FakeBinance with a paced, round-robin aggTrade sender instead of its per-interval generator."""

    def __init__(self, markets: list[FakeMarket], sent: Any, backlog: Any) -> None:
        super().__init__(markets, autostart=False)
        self._sent = sent
        self._backlog = backlog
        rng = random.Random(11)
        self._symbols = [m.symbol for m in markets]
        self._index = {symbol: i for i, symbol in enumerate(self._symbols)}
        self._next_id = [m.first_id for m in markets]
        self._price_ticks = [int(m.start_price / m.tick_size) for m in markets]
        self._tick_e8 = [int(m.tick_size * _E8) for m in markets]
        self._step_e8 = [int(m.step_size * _E8) for m in markets]
        self._rng = rng
        self._pacer: asyncio.Task[None] | None = None
        self._history: list[_History] = []
        self.rest_served = 0
        self._routes: dict[str, list[Any]] = {}
        self._routes_key: tuple[int, int] = (-1, -1)

    def subscribed(self) -> int:
        """Return how many aggTrade streams are subscribed over all open connections."""
        return sum(1 for c in self._conns for s in c.streams if s.endswith("@aggTrade"))

    def pace(self, rate: float) -> None:
        """Start sending `rate` trades a second in total (stopping a previous pacing first)."""
        self.halt_pacing()
        self._history = [_History(first) for first in self._next_id]
        self.rest_served = 0
        self._pacer = asyncio.create_task(self._pace(rate), name="bench-pacer")

    def halt_pacing(self) -> None:
        """Stop sending trades."""
        if self._pacer is not None:
            self._pacer.cancel()
            self._pacer = None

    async def _agg_trades(self, request: web.Request) -> web.Response:
        def handle(query: Mapping[str, str]) -> list[dict[str, Any]]:
            book = self._book(query)
            limit = self._limit(query)
            from_id = self._int(query, "fromId")
            if from_id is None or not self._history:
                return []
            rows = self._history[self._index[book.market.symbol]].rows(from_id, limit)
            self.rest_served += len(rows)
            return rows

        return await self._rest(request, handle)

    def _route(self) -> dict[str, list[Any]]:
        key = (len(self.subscribe_requests), len(self._conns))
        if key != self._routes_key:
            routes: dict[str, list[Any]] = {}
            for conn in self._conns:
                for stream in conn.streams:
                    if stream.endswith("@aggTrade"):
                        routes.setdefault(stream.split("@", 1)[0].upper(), []).append(conn.request.transport)
            self._routes, self._routes_key = routes, key
        return self._routes

    async def _pace(self, rate: float) -> None:
        symbols, ids, ticks, tick_e8, step_e8 = (
            self._symbols,
            self._next_id,
            self._price_ticks,
            self._tick_e8,
            self._step_e8,
        )
        n = len(symbols)
        rng = self._rng
        history = self._history
        start = time.perf_counter()
        due_sent = 0
        cursor = 0
        while True:
            await asyncio.sleep(STEP_S)
            due = int((time.perf_counter() - start) * rate)
            if due <= due_sent:
                continue
            routes = self._route()
            sent_ns = time.time_ns()
            out: dict[Any, list[bytes]] = {}
            written = 0
            for _ in range(due - due_sent):
                i = cursor
                cursor = cursor + 1 if cursor + 1 < n else 0
                r = rng.random()
                ticks[i] = max(1, ticks[i] + rng.choice(_MOVES))
                trade_id = ids[i]
                ids[i] = trade_id + 1
                symbol = symbols[i]
                targets = routes.get(symbol)
                if not targets:
                    continue  # not subscribed (yet): the trade happens, nobody hears of it
                price_e8, qty_e8, maker = ticks[i] * tick_e8[i], step_e8[i] * (1 + int(r * 1000)), r < 0.5
                history[i].add(price_e8, qty_e8, sent_ns // 1_000_000, maker)
                text = frame_text(symbol, trade_id, price_e8, qty_e8, maker, sent_ns)
                frame = _ws_frame(text.encode())
                for transport in targets:
                    out.setdefault(transport, []).append(frame)
                written += 1
            due_sent = due
            deepest = 0
            for transport, frames in out.items():
                if transport is not None and not transport.is_closing():
                    transport.write(b"".join(frames))
                    deepest = max(deepest, transport.get_write_buffer_size())
            self._sent.value += written
            if deepest > self._backlog.value:
                self._backlog.value = deepest


class _History:
    """One symbol's trades of the current pacing, from id `first` on, in flat arrays."""

    __slots__ = ("first", "maker", "price", "qty", "time")

    def __init__(self, first: int) -> None:
        self.first = first
        self.price = array("q")
        self.qty = array("q")
        self.time = array("q")
        self.maker = array("b")

    def add(self, price_e8: int, qty_e8: int, time_ms: int, maker: bool) -> None:
        self.price.append(price_e8)
        self.qty.append(qty_e8)
        self.time.append(time_ms)
        self.maker.append(maker)

    def rows(self, from_id: int, limit: int) -> list[dict[str, Any]]:
        """Return the `aggTrades` rows from `from_id` (at most `limit`)."""
        lo = max(0, from_id - self.first)
        out = []
        for k in range(lo, min(lo + limit, len(self.price))):
            trade_id = self.first + k
            out.append(
                {
                    "a": trade_id,
                    "p": _e8(self.price[k]),
                    "q": _e8(self.qty[k]),
                    "f": trade_id,
                    "l": trade_id,
                    "T": self.time[k],
                    "m": bool(self.maker[k]),
                    "M": True,
                }
            )
        return out


def _serve(pipe: Connection, n_symbols: int, sent: Any, backlog: Any) -> None:
    """Process entry point: run the server and obey the parent's commands until told to exit."""
    asyncio.run(_serve_async(pipe, n_symbols, sent, backlog))


async def _serve_async(pipe: Connection, n_symbols: int, sent: Any, backlog: Any) -> None:
    server = _PacedBinance(bench_markets(n_symbols), sent, backlog)
    await server.start()
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def on_command() -> None:
        command, *args = pipe.recv()
        if command == "pace":
            server.pace(float(args[0]))
            pipe.send(("ok",))
        elif command == "halt":
            server.halt_pacing()
            pipe.send(("ok", server.rest_served))
        elif command == "served":
            pipe.send(("ok", server.rest_served))
        elif command == "subscribed":
            pipe.send(("ok", server.subscribed()))
        elif command == "exit" and not done.done():
            done.set_result(None)
        else:
            pipe.send(("error", f"unknown command {command!r}"))

    loop.add_reader(pipe.fileno(), on_command)
    pipe.send(("ready", server.port, server.ccxt_config()))
    try:
        await done
    finally:
        loop.remove_reader(pipe.fileno())
        server.halt_pacing()
        await server.stop()


class PacerProcess:
    """Start the paced server in a separate process; command it from the parent's event loop.

    Use as `with PacerProcess(500) as pacer:`; `await pacer.pace(rate)`, `await pacer.halt()`,
    `pacer.sent` (frames written so far), `pacer.pid`, `pacer.ccxt_config`.
    """

    def __init__(self, n_symbols: int) -> None:
        self.n_symbols = n_symbols
        context = mp.get_context("spawn")
        self._sent = context.Value("q", 0, lock=False)
        self._backlog = context.Value("q", 0, lock=False)
        self._pipe, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child, n_symbols, self._sent, self._backlog), name="bench-binance", daemon=True
        )
        self._lock = asyncio.Lock()
        self.port = 0
        self.ccxt_config: dict[str, Any] = {}

    def __enter__(self) -> PacerProcess:
        self._process.start()
        if not self._pipe.poll(60):
            raise RuntimeError("the paced Binance server did not start within 60 s")
        _, self.port, self.ccxt_config = self._pipe.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self._pipe.send(("exit",))
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    @property
    def sent(self) -> int:
        """Return how many trade frames the server has written so far (all pacings together)."""
        return int(self._sent.value)

    @property
    def max_write_buffer(self) -> int:
        """Return the deepest write buffer (bytes) one connection had, over the process's life."""
        return int(self._backlog.value)

    def reset_max_write_buffer(self) -> None:
        self._backlog.value = 0

    async def _ask(self, *command: object) -> tuple[Any, ...]:
        async with self._lock:
            self._pipe.send(command)
            reply: tuple[Any, ...] = await asyncio.to_thread(self._pipe.recv)
        if reply[0] != "ok":
            raise RuntimeError(f"paced Binance server: {reply}")
        return reply

    async def pace(self, rate: float) -> None:
        await self._ask("pace", rate)

    async def halt(self) -> int:
        """Stop sending; return how many trades `aggTrades` served (backfills) since the pacing started."""
        return int((await self._ask("halt"))[1])

    async def served(self) -> int:
        """Return how many trades `aggTrades` served (backfills) since the pacing started."""
        return int((await self._ask("served"))[1])

    async def subscribed(self) -> int:
        return int((await self._ask("subscribed"))[1])


def check_wire_format() -> None:
    """Raise if `frame_text` drifts from the fake's aggTrade event (same fields, same values)."""
    import json

    trade = FakeTrade(1_000_007, 1_700_000_000_123, Decimal("64000.01"), Decimal("0.00120"), True)
    expected = {**trade.event("aggTrade", "B000USDT", 1_700_000_000_123), SENT_FIELD: 1_700_000_000_123_456_789}
    got = json.loads(frame_text("B000USDT", 1_000_007, 6_400_001_000_000, 120_000, True, 1_700_000_000_123_456_789))
    if got != expected:
        raise AssertionError(f"paced frames differ from the fake's wire format: {got} != {expected}")


if __name__ == "__main__":  # a smoke check: python -m tests.bench._binance_pacer
    check_wire_format()
    print("wire format ok", os.getpid())

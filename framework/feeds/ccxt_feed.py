"""Live public trades from any exchange ccxt supports: reconnect, gap backfill, staleness watchdog.

`CcxtFeed` streams trades with ccxt.pro's `watch_trades` (or the venue profile's own reader of the
exchange's stream, see below) and hands them downstream, every trade of a symbol exactly once and
in order, across disconnects:

- one `watch_trades` loop per symbol. Not `watch_trades_for_symbols`: ccxt's Python client races
  the symbols' futures, and a symbol whose message lands in the same event-loop turn as the winner's
  loses its wake-up, so its trades wait (unboundedly, for a quiet symbol) in ccxt's cache;
- or, when the venue profile offers one (`CcxtVenue.trade_stream`: Binance spot), a direct reader
  of the exchange's trade stream, many symbols per connection, that parses each message straight
  into the feed's columns: a few microseconds of Python per trade instead of ccxt's tens. Markets
  and REST backfill still go through ccxt;
- on any error the whole session stops, the ccxt client is replaced (fresh websocket state, same
  markets) and the feed reconnects after an exponential, jittered, capped delay (`Backoff`);
- after each (re)connection, as soon as a symbol's stream delivers, the feed backfills the gap
  since the last trade it emitted (or, at start, since `last_seen`: the last stored trade) with
  `fetch_trades`, page by page until caught up; then the stream takes over. A per-symbol cursor
  (last time and id; the sequence number on venues whose ids are gap-free) drops anything already
  emitted, so overlaps between REST and the stream never reach downstream twice;
- on venues with gap-free ids, a jump in the stream's ids is backfilled at once (ccxt's cache
  overflowed, or the venue skipped a message). REST may lag the stream: a gap whose trades REST
  does not have yet is asked again (`backfill_retries` times, with backoff) before it is given up,
  logged and counted in `stats().unfilled`;
- the watchdog marks a symbol stale when its stream has been silent for `stale_after_s` on the
  injected clock (see `health().stale`) and probes it over REST, at most once per `stale_after_s`.
  What a probe finds is emitted; two probes in a row finding trades while the stream stays silent
  mean the stream is broken (ccxt stops reading a connection for good after a frame it cannot
  parse, without closing it), and the feed reconnects. One finding alone is not enough: the first
  probe after a reconnect may just be filling the outage's gap of a symbol that went quiet since.

Backpressure: emitted trades wait in a bounded outbox (`queue_size` trades) until the consumer
takes them, as `Tick`s from `events()` or as `TickBatch`es from `batches()` (what the ingestion
pipeline reads). While it is full nothing more is read from the exchange: neither ccxt's
websocket reader (its `receive` waits for room) nor the direct reader, so the socket's buffers
fill and TCP holds the exchange back. Nothing is dropped, and ccxt's trade cache cannot overflow
because of a slow consumer.

How each venue's trade ids, stream and REST pagination fit together lives in its profile
(`framework.feeds.venues`); the feed itself only uses ccxt's unified API. A trade that is missing
a field or has a non-finite or non-positive price or size is skipped and counted (`stats().bad`),
never raised.

Example (in the runner, with the database's last stored trade as the starting point):

    feed = CcxtFeed("binance", ["BTC/USDT", "ETH/USDT"],
                    last_seen=lambda s: last_tick(pool, "binance", s))
    await feed.connect()
    async for tick in feed.events():
        ...
"""

from __future__ import annotations

import asyncio
import copy
import difflib
import logging
import math
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import ccxt
import ccxt.pro
import numpy as np

from framework.clock import Clock, WallClock
from framework.errors import FatalError, RejectedError, TransientError, UnknownNameError
from framework.events import MarketEvent, TickBatch, datetime_to_ns
from framework.feeds.base import FeedHealth
from framework.feeds.venues import CcxtVenue, TradeCursor, venue_for
from framework.instruments import Instrument
from framework.venues import merged_config

__all__ = ["Backoff", "CcxtFeed", "CcxtFeedStats", "LastSeen"]

log = logging.getLogger(__name__)

LastSeen = Callable[[str], Awaitable[tuple[datetime, str] | None]]
"""An async callable returning the last stored (time, trade id) of a symbol, or None."""

_MS: Final = 1_000_000
_SIDES: Final = {"buy": 1, "sell": -1}
_RECOVERABLE: Final = (ccxt.BaseError, OSError, TransientError)

_Trade = tuple[int, str, int | None, float, float, int, int, int]
"""A trade as the feed handles it: time (ms), id, sequence number or None, price, size, side, recv_ns, sent_ns."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect delays: `initial_s * factor ** attempt`, capped at `max_s`, less up to `jitter` of it at random."""

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not (0 < self.initial_s <= self.max_s and math.isfinite(self.max_s)):
            raise ValueError(f"backoff needs 0 < initial_s <= max_s < inf, got {self.initial_s}, {self.max_s}")
        if self.factor < 1 or not 0 <= self.jitter <= 1:
            raise ValueError(f"backoff needs factor >= 1 and jitter in [0, 1], got {self.factor}, {self.jitter}")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Return the delay in seconds before reconnect `attempt` (0 for the first after a working session)."""
        ceiling = min(self.max_s, self.initial_s * self.factor ** min(attempt, 64))
        return ceiling * (1.0 - self.jitter * rng.random())


@dataclass(frozen=True, slots=True)
class CcxtFeedStats:
    """What a `CcxtFeed` did: trades received, emitted (of which backfilled), dropped, gaps."""

    received: int
    emitted: int
    backfilled: int
    duplicates: int
    bad: int
    gaps: int
    unfilled: int
    broken_streams: int


@dataclass(slots=True)
class _Symbol:
    symbol: str
    lock: asyncio.Lock
    cursor: TradeCursor | None = None
    heard_ns: int = 0
    probed_ns: int | None = None
    suspect: int | None = None
    synced: bool = False  # backfilled up to the stream in this session
    pending: deque[_Trade] | None = None  # streamed trades waiting for a backfill (direct streams)


class _Outbox:
    """Trades emitted and not yet taken by the consumer, one row each; `room` clears when full.

    A row is (symbol, time_ms, trade_id, price, size, side, recv_ns, sent_ns): one tuple appended
    per trade (cheaper than a list per column), turned into a `TickBatch`'s columns by `take`.
    """

    def __init__(self, venue: str, capacity: int) -> None:
        self.venue = venue
        self.capacity = capacity
        self.ready = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()
        self.rows: list[tuple[str, int, str, float, float, int, int, int]] = []

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, symbol: str, trade: _Trade) -> None:
        time_ms, trade_id, _, price, size, side, recv_ns, sent_ns = trade
        rows = self.rows
        rows.append((symbol, time_ms, trade_id, price, size, side, recv_ns, sent_ns))
        self.added(len(rows))

    def added(self, n: int) -> None:
        """Signal the consumer after a row was appended (`n` rows now)."""
        if n == 1:
            self.ready.set()
        if n >= self.capacity:
            self.room.clear()

    def take(self) -> TickBatch | None:
        """Return everything emitted so far as one batch (None when there is nothing), and make room."""
        rows = self.rows
        if not rows:
            return None
        self.rows = []
        self.ready.clear()
        self.room.set()
        symbols, times, trade_ids, prices, sizes, sides, recv, sent = zip(*rows, strict=True)
        return TickBatch(
            self.venue,
            list(symbols),
            list(trade_ids),
            np.array(times, dtype=np.int64) * _MS,
            np.array(prices, dtype=np.float64),
            np.array(sizes, dtype=np.float64),
            np.array(sides, dtype=np.int8),
            np.array(recv, dtype=np.int64),
            np.array(sent, dtype=np.int64),
        )


class _StreamBroken(TransientError):
    """A symbol's stream is silent while REST shows trades it never delivered."""


class CcxtFeed:
    """Public trades of `symbols` (ccxt unified, e.g. `BTC/USDT`) on ccxt exchange `exchange_id`.

    `config` is merged over the venue profile's ccxt settings (`urls`, `options`, ...: this is how
    tests point the real client at a local server). `last_seen(symbol)` gives where the stored
    series ends so the first connection backfills from there. `backfill_limit` is the page size of
    `fetch_trades`; a backfill stops after `max_backfill_pages` pages, and gives up on a gap (logged,
    counted in `stats().unfilled`) after `backfill_retries` failed requests in a row, or as many
    pages in a row without the trades the stream showed were there, so a REST outage cannot stall
    the live stream forever. `queue_size` bounds the trades not yet consumed (backpressure reaches
    the websocket readers). Use the wall clock, or a test clock whose `sleep_until` waits to be
    advanced: the watchdog and the backoff sleep on `clock`.
    """

    def __init__(
        self,
        exchange_id: str,
        symbols: Sequence[str],
        *,
        config: Mapping[str, Any] | None = None,
        clock: Clock | None = None,
        stale_after_s: float = 30.0,
        backoff: Backoff | None = None,
        last_seen: LastSeen | None = None,
        venue: CcxtVenue | None = None,
        backfill_limit: int = 1000,
        max_backfill_pages: int = 10_000,
        backfill_retries: int = 3,
        queue_size: int = 10_000,
        seed: int | None = None,
        name: str | None = None,
    ) -> None:
        if exchange_id not in ccxt.pro.exchanges:
            raise UnknownNameError("exchange", exchange_id, difflib.get_close_matches(exchange_id, ccxt.pro.exchanges))
        if not symbols or len(set(symbols)) != len(symbols):
            raise ValueError(f"CcxtFeed needs distinct symbols, got {list(symbols)}")
        if not (stale_after_s > 0 and math.isfinite(stale_after_s)):
            raise ValueError(f"stale_after_s must be positive, got {stale_after_s}")
        if backfill_limit < 1 or max_backfill_pages < 1 or backfill_retries < 0 or queue_size < 1:
            raise ValueError("backfill_limit, max_backfill_pages and queue_size must be >= 1, retries >= 0")
        self.name = name or f"ccxt:{exchange_id}"
        self.exchange_id = exchange_id
        self.symbols = list(symbols)
        self._config = dict(config or {})
        self._clock: Clock = clock if clock is not None else WallClock()
        self._now = self._clock.now_ns
        self._stale_ns = round(stale_after_s * 1e9)
        self._check_ns = max(self._stale_ns // 4, _MS)
        self._backoff = backoff or Backoff()
        self._last_seen = last_seen
        self._venue = venue or venue_for(exchange_id)
        self._backfill_limit = backfill_limit
        self._max_pages = max_backfill_pages
        self._backfill_retries = backfill_retries
        self._rng = random.Random(seed)
        self._outbox = _Outbox(exchange_id, queue_size)
        self.room = self._outbox.room  # the `TradeSink` side of a venue's direct stream
        self._states = {s: _Symbol(s, asyncio.Lock()) for s in self.symbols}
        self._instruments: list[Instrument] = []
        self._exchange: Any = None
        self._task: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._spawn: Callable[[Coroutine[Any, Any, None]], object] | None = None
        self._stream_exchange: Any = None
        self._gated: tuple[Any, int] = (None, 0)  # (exchange, how many of its clients were gated)
        self._error: BaseException | None = None
        self._closed = self._finished = False
        self._connected = self._session_live = False
        self._last_message_ns: int | None = None
        self._reported_stale: frozenset[str] = frozenset()
        self._reconnects = self._received = self._emitted = self._backfilled = 0
        self._duplicates = self._bad = self._gaps = self._unfilled = self._broken = 0

    # ------------------------------------------------------------------ the Feed protocol

    @property
    def instruments(self) -> list[Instrument]:
        """Return the instruments, with the venue's tick size and quantity step (known after `connect`)."""
        return list(self._instruments)

    async def connect(self) -> None:
        """Load the markets, check the symbols, read where each stored series ends, start streaming.

        Raises `TransientError` when the exchange cannot be reached and `UnknownNameError` for a
        symbol the exchange does not list.
        """
        if self._closed:
            raise RejectedError(f"{self.name} is closed")
        if self._exchange is not None:
            return
        exchange = self._new_exchange()
        try:
            await exchange.load_markets()
            missing = [s for s in self.symbols if s not in exchange.markets]
            if missing:
                raise UnknownNameError("symbol", missing[0], difflib.get_close_matches(missing[0], exchange.symbols))
            self._instruments = [self._instrument(exchange, s) for s in self.symbols]
            now = self._clock.now_ns()
            for state in self._states.values():
                state.heard_ns = now
                stored = await self._last_seen(state.symbol) if self._last_seen is not None else None
                if stored is not None:
                    when, trade_id = stored
                    state.cursor = TradeCursor(datetime_to_ns(when) // _MS, trade_id, self._venue.seq(trade_id))
                    state.cursor.ids.add(trade_id)
        except ccxt.NetworkError as exc:
            await exchange.close()
            raise TransientError(f"{self.name}: cannot load markets: {exc}") from exc
        except ccxt.BaseError as exc:
            await exchange.close()
            raise RejectedError(f"{self.name}: cannot load markets: {exc}") from exc
        except BaseException:
            await exchange.close()
            raise
        self._exchange = exchange
        self._task = asyncio.create_task(self._run(exchange), name=f"{self.name}:run")
        self._task.add_done_callback(self._on_run_done)

    async def batches(self) -> AsyncIterator[TickBatch | MarketEvent]:
        """Yield everything emitted since the last read as one `TickBatch`, until `close()` (see `events`)."""
        if self._exchange is None and not self._finished:
            raise RejectedError(f"{self.name}: call connect() before events()")
        outbox = self._outbox
        while True:
            batch = outbox.take()
            if batch is not None:
                yield batch
            elif self._finished:
                break
            else:
                await outbox.ready.wait()
        if self._error is not None:
            raise FatalError(f"{self.name} stopped: {self._error!r}") from self._error

    async def events(self) -> AsyncIterator[MarketEvent]:
        """Yield ticks as they arrive until `close()`; raise `FatalError` if the feed failed on a bug."""
        async for batch in self.batches():
            if isinstance(batch, TickBatch):
                for tick in batch.ticks():
                    yield tick
            else:
                yield batch

    async def close(self) -> None:
        """Stop streaming and close ccxt's connections; `events()` ends once drained."""
        if self._closed:
            return
        self._closed = True
        self._connected = False
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
        if self._exchange is not None:
            await self._exchange.close()
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
        self._finish()

    def health(self) -> FeedHealth:
        """Return connection state, last message time, stale symbols, reconnect attempts, trades received."""
        stale = self._stale(self._clock.now_ns()) if self._exchange is not None and not self._closed else frozenset()
        return FeedHealth(
            name=self.name,
            connected=self._connected,
            last_message_ns=self._last_message_ns,
            stale=stale,
            reconnects=self._reconnects,
            messages=self._received,
        )

    def stats(self) -> CcxtFeedStats:
        """Return the feed's counters."""
        return CcxtFeedStats(
            received=self._received,
            emitted=self._emitted,
            backfilled=self._backfilled,
            duplicates=self._duplicates,
            bad=self._bad,
            gaps=self._gaps,
            unfilled=self._unfilled,
            broken_streams=self._broken,
        )

    # ------------------------------------------------------------------ sessions

    def _new_exchange(self) -> Any:
        settings = merged_config({"enableRateLimit": True}, self._venue.config(self.symbols), self._config)
        return getattr(ccxt.pro, self.exchange_id)(copy.deepcopy(settings))

    async def _run(self, exchange: Any) -> None:
        attempt = 0
        while True:
            self._session_live = False
            reason = await self._session(exchange)
            self._connected = False
            self._reconnects += 1
            attempt = 0 if self._session_live else attempt + 1
            delay = self._backoff.delay(attempt, self._rng)
            log.warning("%s: %s: %s; reconnecting in %.2f s", self.name, type(reason).__name__, reason, delay)
            fresh = self._new_exchange()
            fresh.set_markets_from_exchange(exchange)
            self._exchange = fresh
            retiring = asyncio.create_task(exchange.close())
            self._retiring.add(retiring)
            retiring.add_done_callback(self._retiring.discard)
            await self._sleep(round(delay * 1e9))
            exchange = fresh

    async def _session(self, exchange: Any) -> BaseException:
        """Run the stream(s) and the watchdog until one fails; return why."""
        reason: BaseException = _StreamBroken("session ended")
        for state in self._states.values():
            state.synced = False
            state.pending = None
        stream = self._venue.trade_stream(exchange, self.symbols)
        try:
            async with asyncio.TaskGroup() as group:
                if stream is None:
                    for state in self._states.values():
                        group.create_task(self._watch(exchange, state), name=f"{self.name}:{state.symbol}")
                else:
                    self._spawn = lambda work: group.create_task(work)
                    self._stream_exchange = exchange
                    group.create_task(stream.run(self), name=f"{self.name}:stream")
                group.create_task(self._watchdog(exchange), name=f"{self.name}:watchdog")
        except* _RECOVERABLE as errors:
            reason = errors.exceptions[0]
        finally:
            self._spawn = None
        return reason

    async def _watch(self, exchange: Any, state: _Symbol) -> None:
        """One symbol through ccxt's `watch_trades`."""
        while True:
            trades = await exchange.watch_trades(state.symbol, None, None, {})
            self._gate(exchange)
            now = self._clock.now_ns()
            self._connected = self._session_live = True
            self._last_message_ns = state.heard_ns = now
            self._received += len(trades)
            parsed = [p for p in (self._parse(t, state.symbol, now, streamed=True) for t in trades) if p]
            async with state.lock:
                if not state.synced:
                    await self._backfill(exchange, state, parsed[0] if parsed else None)
                    state.synced = True
                for trade in parsed:
                    await self._follow(exchange, state, trade)

    def _gate(self, exchange: Any) -> None:
        """Make ccxt's websocket readers wait for room in the outbox before reading the next message.

        ccxt reads each connection in a loop of `client.receive()` calls, whatever its callers do;
        without this, a slow consumer would only pile trades up in ccxt's caches (which drop the
        oldest when full: a gap on sequenced venues, a silent loss elsewhere).
        """
        clients = getattr(exchange, "clients", None)
        if not clients or (exchange is self._gated[0] and len(clients) == self._gated[1]):
            return
        self._gated = (exchange, len(clients))
        room = self._outbox.room
        for client in list(clients.values()):
            if getattr(client, "_rata_gated", False):
                continue
            client._rata_gated = True
            receive = client.receive

            async def gated(receive: Callable[[], Awaitable[Any]] = receive) -> Any:
                if not room.is_set():
                    await room.wait()
                return await receive()

            client.receive = gated

    # ------------------------------------------------------------------ direct streams (TradeSink)

    def trade(
        self,
        symbol: str,
        trade_id: str,
        seq: int | None,
        time_ms: int,
        price: float,
        size: float,
        side: int,
        sent_ns: int,
    ) -> None:
        """Take one trade from a venue's direct stream (see `CcxtVenue.trade_stream`)."""
        state = self._states[symbol]
        now = self._now()
        self._received += 1
        self._last_message_ns = state.heard_ns = now
        if not self._session_live:
            self._connected = self._session_live = True
        cursor = state.cursor
        if state.pending is None and state.synced and cursor is not None and not state.lock.locked():
            last = cursor.seq
            if last is not None and seq is not None:
                if seq == last + 1:  # the next trade: straight to the outbox (the common case, inlined)
                    rows = self._outbox.rows
                    rows.append((symbol, time_ms, trade_id, price, size, side, now, sent_ns))
                    self._outbox.added(len(rows))
                    if time_ms != cursor.time_ms:
                        cursor.ids.clear()
                        cursor.time_ms = time_ms
                    cursor.ids.add(trade_id)
                    cursor.trade_id = trade_id
                    cursor.seq = seq
                    self._emitted += 1
                    return
            elif cursor.admits(time_ms, trade_id, seq):
                self._put(state, cursor, (time_ms, trade_id, seq, price, size, side, now, sent_ns))
                return
        trade = (time_ms, trade_id, seq, price, size, side, now, sent_ns)
        if state.pending is None:
            # not synced yet, a gap, a duplicate, or the watchdog holds the symbol: sort it out in order
            state.pending = deque([trade])
            assert self._spawn is not None
            self._spawn(self._catch_up(state))
        else:
            state.pending.append(trade)

    def bad(self, reason: str, raw: object) -> None:
        """Count and log a message of a direct stream that is not a usable trade."""
        self._bad += 1
        log.warning("%s: skipped a bad message (%s): %.300r", self.name, reason, raw)

    async def _catch_up(self, state: _Symbol) -> None:
        """Emit a symbol's pending streamed trades in order, backfilling first where needed."""
        async with state.lock:
            pending = state.pending
            while pending:
                trade = pending.popleft()
                if not state.synced:
                    await self._backfill(self._stream_exchange, state, trade)
                    state.synced = True
                await self._follow(self._stream_exchange, state, trade)
            state.pending = None

    async def _follow(self, exchange: Any, state: _Symbol, trade: _Trade) -> None:
        """Emit a streamed trade after its symbol's last one, backfilling a gap in the ids first."""
        last = state.cursor.seq if state.cursor is not None else None
        seq = trade[2]
        if self._venue.sequenced and last is not None and seq is not None and seq > last + 1:
            self._gaps += 1
            await self._backfill(exchange, state, trade)
        await self._emit(state, trade)

    async def _watchdog(self, exchange: Any) -> None:
        while True:
            await self._sleep(self._check_ns)
            now = self._clock.now_ns()
            for state in self._states.values():
                if state.suspect != state.heard_ns:
                    state.suspect = None
            stale = self._stale(now)
            for symbol in sorted(stale - self._reported_stale):
                log.warning("%s: %s stale: no trade for %.1f s", self.name, symbol, self._stale_ns / 1e9)
            for symbol in sorted(self._reported_stale - stale):
                log.info("%s: %s trading again", self.name, symbol)
            self._reported_stale = stale
            for symbol in sorted(stale):
                state = self._states[symbol]
                if state.cursor is None or (state.probed_ns is not None and now - state.probed_ns < self._stale_ns):
                    continue
                state.probed_ns = now
                async with state.lock:
                    found = await self._backfill(exchange, state)
                if not found:
                    state.suspect = None
                elif state.suspect is None:
                    log.warning("%s: %s: REST had %d trades the stream did not deliver", self.name, symbol, found)
                    state.suspect = state.heard_ns
                else:
                    self._broken += 1
                    raise _StreamBroken(f"the {symbol} stream stays silent while REST keeps showing new trades")

    # ------------------------------------------------------------------ trades

    async def _backfill(self, exchange: Any, state: _Symbol, until: _Trade | None = None) -> int:
        """Emit the trades after the symbol's cursor from REST; return how many.

        Page until the cursor reaches `until` (the streamed trade that prompted the backfill: the
        stream goes on from there) or, without one, until a page comes back short (caught up). A
        page without anything new while `until` is not reached yet means REST lags the stream: it
        is asked again after a backoff, and after `backfill_retries` such pages the gap is given up
        (logged, counted in `unfilled`), like after as many failed requests.
        """
        found = pages = failures = empty = 0
        while state.cursor is not None and pages < self._max_pages:
            if until is not None and not self._missing_before(state.cursor, until):
                return found
            since, params = self._venue.backfill_query(state.cursor)
            try:
                page = await exchange.fetch_trades(state.symbol, since, self._backfill_limit, params)
            except _RECOVERABLE as exc:
                failures += 1
                if failures > self._backfill_retries:
                    self._give_up(state, f"{type(exc).__name__}: {exc}")
                    return found
                await self._sleep(round(self._backoff.delay(failures - 1, self._rng) * 1e9))
                continue
            pages, failures = pages + 1, 0
            now = self._clock.now_ns()
            fresh = 0
            for raw in page:
                parsed = self._parse(raw, state.symbol, now, streamed=False)
                if parsed is not None and await self._emit(state, parsed):
                    fresh += 1
            found += fresh
            self._backfilled += fresh
            if until is None:
                if not fresh or len(page) < self._backfill_limit:
                    return found
            elif fresh:
                empty = 0
            else:
                empty += 1
                if empty > self._backfill_retries:
                    self._give_up(state, f"REST returned nothing new {empty} times in a row")
                    return found
                await self._sleep(round(self._backoff.delay(empty - 1, self._rng) * 1e9))
        if state.cursor is not None and pages >= self._max_pages:
            self._unfilled += 1
            log.error("%s: backfill of %s stopped after %d pages", self.name, state.symbol, pages)
        return found

    def _missing_before(self, cursor: TradeCursor, until: _Trade) -> bool:
        """Return whether trades are missing between the cursor and the streamed trade `until`."""
        time_ms, trade_id, seq = until[0], until[1], until[2]
        if cursor.seq is not None and seq is not None:
            return seq > cursor.seq + 1
        return cursor.admits(time_ms, trade_id, seq)

    def _give_up(self, state: _Symbol, why: str) -> None:
        self._unfilled += 1
        cursor = state.cursor
        after = cursor.trade_id if cursor is not None else "?"
        log.error("%s: cannot backfill %s after trade %s (%s): leaving a gap", self.name, state.symbol, after, why)

    async def _emit(self, state: _Symbol, trade: _Trade) -> bool:
        """Emit a trade unless it is not after the cursor (a duplicate); wait for room first."""
        cursor = state.cursor
        if cursor is not None and not cursor.admits(trade[0], trade[1], trade[2]):
            self._duplicates += 1
            return False
        room = self._outbox.room
        if not room.is_set():
            await room.wait()
        self._put(state, cursor, trade)
        return True

    def _put(self, state: _Symbol, cursor: TradeCursor | None, trade: _Trade) -> None:
        self._outbox.add(state.symbol, trade)
        if cursor is None:
            state.cursor = TradeCursor(trade[0], trade[1], trade[2], {trade[1]})
        else:
            cursor.advance(trade[0], trade[1], trade[2])
        self._emitted += 1

    def _parse(self, trade: Any, symbol: str, recv_ns: int, *, streamed: bool) -> _Trade | None:
        """Return a ccxt trade as the feed's tuple, or None (counted) when it is unusable."""
        try:
            trade_id, timestamp = trade["id"], trade["timestamp"]
            price, size = float(trade["price"]), float(trade["amount"])
            if trade_id is None or isinstance(timestamp, bool) or not isinstance(timestamp, int):
                raise ValueError("missing id or timestamp")
            if not (math.isfinite(price) and math.isfinite(size) and price > 0 and size > 0):
                raise ValueError("price and size must be finite and positive")
            trade_id = str(trade_id)
            side = _SIDES.get(trade.get("side"), 0)
            sent_ns = self._venue.sent_ns(trade) if streamed else 0
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self._bad += 1
            raw = trade.get("info", trade) if isinstance(trade, Mapping) else trade
            log.warning("%s: skipped a bad %s trade (%s): %.300r", self.name, symbol, exc, raw)
            return None
        return (timestamp, trade_id, self._venue.seq(trade_id), price, size, side, recv_ns, sent_ns)

    # ------------------------------------------------------------------ helpers

    def _instrument(self, exchange: Any, symbol: str) -> Instrument:
        market = exchange.markets[symbol]
        precision = market.get("precision") or {}
        mode = exchange.precisionMode
        return Instrument(
            symbol,
            tick_size=_increment(mode, precision.get("price"), 0.01),
            qty_step=_increment(mode, precision.get("amount"), 1e-8),
            venue=self.exchange_id,
            asset_class="crypto",
            currency=market.get("quote") or "USD",
        )

    def _stale(self, now_ns: int) -> frozenset[str]:
        return frozenset(s for s, state in self._states.items() if now_ns - state.heard_ns > self._stale_ns)

    async def _sleep(self, delay_ns: int) -> None:
        await self._clock.sleep_until(self._clock.now_ns() + delay_ns)

    def _on_run_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._error = task.exception()
            log.error("%s stopped on an unexpected error", self.name, exc_info=self._error)
        self._connected = False
        self._finish()

    def _finish(self) -> None:
        self._finished = True
        self._outbox.ready.set()
        self._outbox.room.set()


def _increment(mode: int, value: object, default: float) -> float:
    """Return a ccxt market precision as a price or amount increment."""
    if not isinstance(value, int | float) or not value > 0:
        return default
    if mode == ccxt.DECIMAL_PLACES:
        return float(10.0**-value)
    return float(value) if mode == ccxt.TICK_SIZE else default

"""CcxtFeed: the real ccxt client against a local Binance, through cuts, bad frames and silence.

Every scenario runs ccxt.pro's `binance` unchanged, pointed at `tests.fakes.binance_server` by its
URL configuration, and compares what the feed delivered (or what was stored) with the server's
ground truth: every trade, once, in order, with its exact price, size, side and time.

Binance spot trades reach the feed two ways, both tested: the venue profile's direct reader of the
aggTrade stream (`stream="direct"`, the default) and ccxt's own `watch_trades` (`stream="ccxt"`).
Markets and REST backfill go through ccxt either way.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt.pro
import pandas as pd
import pytest

from framework.clock import Clock
from framework.events import MarketEvent, Tick, TickBatch
from framework.feeds.base import Feed
from framework.feeds.ccxt_feed import Backoff, CcxtFeed
from framework.feeds.venues import CcxtVenue, TradeCursor, venue_for
from framework.feeds.venues.binance import BinanceVenue
from framework.ingest.pipeline import IngestPipeline
from framework.instruments import Instrument
from framework.storage.marketdata import fetch_ticks, last_tick, tick_rows, upsert_instruments, write_ticks
from tests.fakes.binance_server import FakeBinance, FakeTrade

SYMBOLS = ["BTC/USDT", "ETH/USDT"]
TIMEOUT_S = 30
STREAMS = ["direct", "ccxt"]


def venue_id(symbol: str) -> str:
    return symbol.replace("/", "")


def make_feed(server: FakeBinance, symbols: list[str] = SYMBOLS, stream: str = "direct", **kwargs: Any) -> CcxtFeed:
    kwargs.setdefault("config", server.ccxt_config())
    kwargs.setdefault("venue", BinanceVenue(native_stream=stream == "direct"))
    kwargs.setdefault("backoff", Backoff(initial_s=0.02, max_s=0.2))
    kwargs.setdefault("seed", 1)
    return CcxtFeed("binance", symbols, **kwargs)


async def take(events: AsyncIterator[MarketEvent], got: dict[str, list[Tick]], done: Callable[[], bool]) -> None:
    """Read events into `got` (by symbol) until `done()`."""
    async with asyncio.timeout(TIMEOUT_S):
        while not done():
            event = await anext(events)
            assert isinstance(event, Tick)
            got[event.symbol].append(event)


async def wait_until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        while not condition():
            await asyncio.sleep(0.01)


def as_truth(ticks: list[Tick]) -> list[tuple[int, int, float, float, int]]:
    return [(int(t.trade_id), t.time_ns // 1_000_000, t.price, t.size, t.side) for t in ticks]


def truth(trades: list[FakeTrade]) -> list[tuple[int, int, float, float, int]]:
    return [(t.id, t.time_ms, float(t.price), float(t.qty), t.side) for t in trades]


def truth_from(server: FakeBinance, symbol: str, first_id: int, count: int) -> list[tuple[int, int, float, float, int]]:
    """Return the server's `count` trades of `symbol` starting at trade `first_id`."""
    return truth([t for t in server.symbol_trades(venue_id(symbol)) if t.id >= first_id][:count])


def tick_of(symbol: str, trade: FakeTrade) -> Tick:
    return Tick(
        "binance", symbol, trade.time_ms * 1_000_000, str(trade.id), float(trade.price), float(trade.qty), trade.side
    )


@pytest.mark.parametrize("stream", STREAMS)
async def test_cuts_mid_stream_are_reconnected_and_backfilled_so_every_trade_arrives_once_in_order(stream):
    async with FakeBinance(interval_s=0.002) as server:
        feed = make_feed(server, stream=stream, backfill_limit=40)
        assert isinstance(feed, Feed)
        await feed.connect()
        got: dict[str, list[Tick]] = {s: [] for s in SYMBOLS}
        events = feed.events()

        await take(events, got, lambda: all(len(v) >= 100 for v in got.values()))
        await server.cut(refuse_s=0.3)  # dropped, then refused: trades go on, only REST can fill the gap
        await take(events, got, lambda: feed.health().reconnects >= 1 and all(len(v) >= 600 for v in got.values()))
        await server.cut()  # dropped again, reconnect at once
        await take(events, got, lambda: feed.health().reconnects >= 2 and all(len(v) >= 900 for v in got.values()))
        await feed.close()

    for symbol, ticks in got.items():
        assert as_truth(ticks) == truth_from(server, symbol, int(ticks[0].trade_id), len(ticks))
        assert all(t.venue == "binance" and t.recv_ns > 0 for t in ticks)
    stats = feed.stats()
    assert server.ws_refused >= 1
    assert stats.backfilled > 0
    assert stats.emitted >= sum(len(v) for v in got.values())
    assert stats.bad == stats.unfilled == 0
    backfills = [q for path, q in server.rest_requests if path == "/api/v3/aggTrades"]
    assert backfills
    assert all(set(q) == {"symbol", "fromId", "limit"} and q["limit"] == "40" for q in backfills)
    assert {p for r in server.subscribe_requests for p in r["params"]} == {"btcusdt@aggTrade", "ethusdt@aggTrade"}
    health = feed.health()
    assert not health.connected
    assert health.reconnects >= 2
    assert health.messages >= stats.emitted - stats.backfilled


async def _store_scenario(
    server: FakeBinance, pool: Any, run_consumer: Callable[[CcxtFeed], Any], stream: str = "direct"
) -> CcxtFeed:
    """Pre-store each symbol's first 50 trades, start the feed from there, cut mid-stream, run to the end."""
    await wait_until(lambda: all(len(server.symbol_trades(venue_id(s))) >= 50 for s in SYMBOLS))
    instruments = [Instrument(s, 0.01, 0.0001, venue="binance", asset_class="crypto", currency="USDT") for s in SYMBOLS]
    ids = await upsert_instruments(pool, instruments)
    first = [tick_of(s, t) for s in SYMBOLS for t in server.symbol_trades(venue_id(s))[:50]]
    async with pool.acquire() as conn:
        await write_ticks(conn, tick_rows(first, ids, datetime.now(UTC)))

    feed = make_feed(server, stream=stream, backfill_limit=100, last_seen=lambda s: last_tick(pool, "binance", s))
    await feed.connect()
    consumer = await run_consumer(feed)
    await wait_until(lambda: feed.stats().emitted >= 600)
    await server.cut(refuse_s=0.25)
    expected = 2 * (server.max_trades or 0) - 100  # every trade after the stored ones, once
    await wait_until(lambda: server.done() and feed.stats().emitted >= expected)
    await consumer()
    assert feed.stats().emitted == expected
    return feed


async def _assert_stored_equals_truth(server: FakeBinance, pool: Any) -> None:
    for symbol in SYMBOLS:
        stored = await fetch_ticks(pool, "binance", symbol)
        times = [pd.Timestamp(t).value // 1_000_000 for t in stored["time"]]
        rows = list(
            zip(stored["trade_id"].astype(int), times, stored["price"], stored["size"], stored["side"], strict=True)
        )
        assert rows == truth(server.symbol_trades(venue_id(symbol)))


@pytest.mark.db
async def test_stored_ticks_equal_the_exchange_s_across_a_cut_written_with_marketdata(database):
    pool = database.pool
    async with FakeBinance(interval_s=0.002, max_trades=1200) as server:

        async def start(feed: CcxtFeed) -> Callable[[], Any]:
            ids = await upsert_instruments(pool, feed.instruments)
            pending: list[Tick] = []

            async def consume() -> None:
                async for event in feed.events():
                    assert isinstance(event, Tick)
                    pending.append(event)

            async def flush() -> None:
                batch, pending[:] = pending[:], []
                async with pool.acquire() as conn:
                    await write_ticks(conn, tick_rows(batch, ids, datetime.now(UTC)))

            async def flusher() -> None:
                while True:
                    await asyncio.sleep(0.02)
                    await flush()

            tasks = [asyncio.create_task(consume()), asyncio.create_task(flusher())]

            async def stop() -> None:
                await feed.close()
                await tasks[0]
                tasks[1].cancel()
                await asyncio.gather(tasks[1], return_exceptions=True)
                await flush()

            return stop

        feed = await _store_scenario(server, pool, start)

    assert feed.stats().backfilled > 0
    assert feed.health().reconnects >= 1
    await _assert_stored_equals_truth(server, pool)


@pytest.mark.db
@pytest.mark.parametrize("stream", STREAMS)
async def test_stored_ticks_equal_the_exchange_s_across_a_cut_through_the_ingest_pipeline(
    database, tmp_path: Path, stream: str
):
    pool = database.pool
    async with FakeBinance(interval_s=0.002, max_trades=1200) as server:

        async def start(feed: CcxtFeed) -> Callable[[], Any]:
            pipeline = IngestPipeline(feed, pool, spool=tmp_path / "spool", timeframes=("1s",))
            run = asyncio.create_task(pipeline.run())

            async def stop() -> None:
                await wait_until(lambda: pipeline.stats().ticks_written == 2 * 1200 - 100)
                await pipeline.stop()
                await run
                assert pipeline.stats().rejected == {}

            return stop

        await _store_scenario(server, pool, start, stream)

    await _assert_stored_equals_truth(server, pool)


class ManualClock:
    """A clock that only moves when the test advances it; `sleep_until` waits for that."""

    def __init__(self, start_ns: int) -> None:
        self._now = start_ns
        self._moved = asyncio.Condition()

    def now_ns(self) -> int:
        return self._now

    async def sleep_until(self, when_ns: int) -> None:
        async with self._moved:
            await self._moved.wait_for(lambda: self._now >= when_ns)

    async def advance(self, seconds: float) -> None:
        async with self._moved:
            self._now += round(seconds * 1e9)
            self._moved.notify_all()


@pytest.mark.parametrize("stream", STREAMS)
async def test_a_symbol_that_stops_trading_becomes_stale_on_the_injected_clock_and_recovers(stream):
    clock = ManualClock(time.time_ns())
    assert isinstance(clock, Clock)
    async with FakeBinance(interval_s=0.002) as server:
        feed = make_feed(server, stream=stream, clock=clock, stale_after_s=10.0)
        await feed.connect()
        got: dict[str, list[Tick]] = {s: [] for s in SYMBOLS}
        events = feed.events()
        await take(events, got, lambda: all(len(v) >= 5 for v in got.values()))
        health = feed.health()
        assert health.connected
        assert health.stale == frozenset()
        assert health.last_message_ns == clock.now_ns()

        server.halt("ETHUSDT")
        last_eth = server.symbol_trades("ETHUSDT")[-1].id
        await take(events, got, lambda: int(got["ETH/USDT"][-1].trade_id) == last_eth)
        await clock.advance(9.0)
        assert feed.health().stale == frozenset()
        await clock.advance(2.0)
        moved = clock.now_ns()
        await take(events, got, lambda: got["BTC/USDT"][-1].recv_ns >= moved)
        assert feed.health().stale == {"ETH/USDT"}

        server.resume("ETHUSDT")
        await take(events, got, lambda: int(got["ETH/USDT"][-1].trade_id) > last_eth)
        assert feed.health().stale == frozenset()
        assert feed.health().reconnects == 0
        await feed.close()

    for symbol, ticks in got.items():
        assert as_truth(ticks) == truth_from(server, symbol, int(ticks[0].trade_id), len(ticks))


async def test_bad_trades_are_skipped_and_a_frame_that_kills_ccxt_s_reader_is_healed_by_the_watchdog():
    async with FakeBinance(interval_s=0.002) as server:
        feed = make_feed(server, stream="ccxt", stale_after_s=0.15)
        await feed.connect()
        got: dict[str, list[Tick]] = {s: [] for s in SYMBOLS}
        events = feed.events()
        await take(events, got, lambda: all(len(v) >= 50 for v in got.values()))

        # parsed by ccxt, refused by the feed: a negative price, and a trade with nothing in it
        await server.send_raw(
            '{"e":"aggTrade","E":1,"s":"BTCUSDT","a":7,"p":"-1.0","q":"1.0","f":7,"l":7,"T":1,"m":true}',
            stream="btcusdt@aggTrade",
        )
        await server.send_raw('{"e":"aggTrade","s":"ETHUSDT"}', stream="ethusdt@aggTrade")
        await take(events, got, lambda: feed.stats().bad >= 2 and all(len(v) >= 100 for v in got.values()))
        assert feed.health().reconnects == 0

        # ccxt raises inside its reader on this frame and never reads that connection again
        await server.send_raw("garbage{")
        await take(events, got, lambda: feed.stats().broken_streams >= 1 and all(len(v) >= 500 for v in got.values()))
        await feed.close()

    for symbol, ticks in got.items():
        assert as_truth(ticks) == truth_from(server, symbol, int(ticks[0].trade_id), len(ticks))
    assert feed.stats().bad == 2
    assert feed.health().reconnects >= 1


class MutableBinance(FakeBinance):
    """FakeBinance that can stop sending trades on its websockets while still trading (REST has them)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.muted = False

    async def _broadcast(self, symbol: str, trades: list[FakeTrade]) -> None:
        if not self.muted:
            await super()._broadcast(symbol, trades)


async def test_the_direct_stream_skips_bad_messages_and_a_silent_stream_is_healed_by_the_watchdog():
    async with MutableBinance(interval_s=0.002) as server:
        feed = make_feed(server, stream="direct", stale_after_s=0.5)
        await feed.connect()
        got: dict[str, list[Tick]] = {s: [] for s in SYMBOLS}
        events = feed.events()
        await take(events, got, lambda: all(len(v) >= 50 for v in got.values()))

        for raw in (
            '{"e":"aggTrade","E":1,"s":"BTCUSDT","a":7,"p":"-1.0","q":"1.0","f":7,"l":7,"T":1,"m":true}',
            '{"e":"aggTrade","E":1,"s":"BTCUSDT","a":7,"p":"NaN","q":"1.0","f":7,"l":7,"T":1,"m":true}',
            '{"e":"aggTrade","E":1,"s":"BTCUSDT","a":"7","p":"1.0","q":"1.0","f":7,"l":7,"T":1,"m":true}',
            '{"e":"aggTrade","s":"ETHUSDT"}',
            '{"e":"aggTrade","E":1,"s":"DOGEUSDT","a":7,"p":"1.0","q":"1.0","f":7,"l":7,"T":1,"m":true}',
            "[1, 2, 3]",
            "garbage{",  # kills ccxt's reader; the direct reader counts it and reads on
        ):
            await server.send_raw(raw)
        await take(events, got, lambda: feed.stats().bad >= 7 and all(len(v) >= 150 for v in got.values()))
        assert feed.health().reconnects == 0

        server.muted = True  # the connection stays open and silent while trading goes on
        await take(events, got, lambda: feed.stats().broken_streams >= 1 and all(len(v) >= 400 for v in got.values()))
        server.muted = False
        await take(events, got, lambda: feed.health().connected and all(len(v) >= 600 for v in got.values()))
        await feed.close()

    for symbol, ticks in got.items():
        assert as_truth(ticks) == truth_from(server, symbol, int(ticks[0].trade_id), len(ticks))
    assert feed.stats().bad == 7
    assert feed.health().reconnects >= 1


async def test_the_direct_stream_subscribes_each_connection_s_symbols_in_one_message():
    symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    async with FakeBinance(interval_s=0.002) as server:
        feed = make_feed(server, symbols, venue=BinanceVenue(symbols_per_connection=2))
        await feed.connect()
        got: dict[str, list[Tick]] = {s: [] for s in symbols}
        await take(feed.events(), got, lambda: all(len(v) >= 20 for v in got.values()))
        assert server.connections == 2
        await feed.close()
    assert sorted(server.ws_paths) == ["/ws", "/ws"]
    assert sorted(sorted(r["params"]) for r in server.subscribe_requests) == [
        ["btcusdt@aggTrade", "ethusdt@aggTrade"],
        ["solusdt@aggTrade"],
    ]
    assert all(r["method"] == "SUBSCRIBE" for r in server.subscribe_requests)
    for symbol, ticks in got.items():
        assert as_truth(ticks) == truth_from(server, symbol, int(ticks[0].trade_id), len(ticks))
    venue = BinanceVenue()
    assert venue.trade_stream(None, ["BTC/USDT:USDT"]) is None, "futures go through ccxt's watch_trades"
    assert BinanceVenue(native_stream=False).trade_stream(None, ["BTC/USDT"]) is None


class GappyBinance(FakeBinance):
    """FakeBinance whose stream skips one trade (`skip`: symbol, id), and whose REST lags the stream.

    The first `empty_pages` `aggTrades?fromId=` requests get an empty page, as when the REST
    service has not caught up with the stream yet.
    """

    def __init__(self, *args: Any, empty_pages: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.skip: tuple[str, int] | None = None
        self.empty_pages = empty_pages

    async def _broadcast(self, symbol: str, trades: list[FakeTrade]) -> None:
        if self.skip is not None and symbol == self.skip[0]:
            trades = [t for t in trades if t.id != self.skip[1]]
        await super()._broadcast(symbol, trades)

    async def _agg_trades(self, request: Any) -> Any:
        if "fromId" in request.query and self.empty_pages > 0:
            self.empty_pages -= 1
            self._record(request)
            return self._json([])
        return await super()._agg_trades(request)


async def _stream_across_a_skipped_trade(server: GappyBinance, feed: CcxtFeed) -> tuple[list[Tick], int]:
    """Read BTC/USDT until well past a trade the stream skips; return its ticks and the skipped id."""
    await feed.connect()
    got: dict[str, list[Tick]] = {s: [] for s in SYMBOLS}
    events = feed.events()
    await take(events, got, lambda: len(got["BTC/USDT"]) >= 10)
    skipped = int(got["BTC/USDT"][-1].trade_id) + 40
    server.skip = ("BTCUSDT", skipped)
    await take(events, got, lambda: int(got["BTC/USDT"][-1].trade_id) > skipped + 20)
    await feed.close()
    return got["BTC/USDT"], skipped


@pytest.mark.parametrize("stream", STREAMS)
async def test_a_gap_rest_has_not_caught_up_with_yet_is_asked_again_and_filled(stream):
    async with GappyBinance(interval_s=0.002, empty_pages=2) as server:
        feed = make_feed(server, stream=stream, backfill_retries=3)
        ticks, skipped = await _stream_across_a_skipped_trade(server, feed)
    assert as_truth(ticks) == truth_from(server, "BTC/USDT", int(ticks[0].trade_id), len(ticks))
    stats = feed.stats()
    assert (stats.gaps, stats.unfilled) == (1, 0)
    assert stats.backfilled >= 1
    assert [q["fromId"] for path, q in server.rest_requests if path == "/api/v3/aggTrades"] == [str(skipped)] * 3


@pytest.mark.parametrize("stream", STREAMS)
async def test_a_gap_rest_never_fills_is_given_up_counted_and_logged(stream, caplog):
    async with GappyBinance(interval_s=0.002, empty_pages=1_000_000) as server:
        feed = make_feed(server, stream=stream, backfill_retries=2)
        with caplog.at_level(logging.ERROR, logger="framework.feeds.ccxt_feed"):
            ticks, skipped = await _stream_across_a_skipped_trade(server, feed)
    first = int(ticks[0].trade_id)
    without = [t for t in truth_from(server, "BTC/USDT", first, len(ticks) + 1) if t[0] != skipped]
    assert as_truth(ticks) == without[: len(ticks)]
    stats = feed.stats()
    assert (stats.gaps, stats.unfilled, stats.backfilled) == (1, 1, 0)
    assert [q["fromId"] for path, q in server.rest_requests if path == "/api/v3/aggTrades"] == [str(skipped)] * 3
    assert any("leaving a gap" in r.getMessage() and "BTC/USDT" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("stream", STREAMS)
async def test_a_slow_consumer_holds_the_exchange_back_and_nothing_is_dropped(stream):
    async with FakeBinance(interval_s=0.001) as server:
        feed = make_feed(server, stream=stream, queue_size=50)
        await feed.connect()
        got: dict[str, list[Tick]] = {s: [] for s in SYMBOLS}
        events = feed.events()
        await take(events, got, lambda: all(len(v) >= 20 for v in got.values()))
        await server.cut()  # the backpressure must hold on the connections of a new session too
        await take(events, got, lambda: feed.health().reconnects >= 1 and all(len(v) >= 300 for v in got.values()))
        before_stall = feed.stats()

        def generated() -> int:
            return sum(len(server.symbol_trades(venue_id(s))) for s in SYMBOLS)

        # stop reading while the exchange trades several times what ccxt's trade cache holds per symbol
        consumed, before = sum(len(v) for v in got.values()), generated()
        await wait_until(lambda: generated() - before > 6_000)
        held = feed.stats().received - consumed
        if stream == "direct":
            assert held <= 2 * 50 + 1, f"the reader went on reading while nobody consumed ({held} trades held)"
        else:
            # ccxt's reader stopped too: the messages wait, unparsed, in aiohttp's bounded buffer
            # (ccxt's `Client.buffer`), which then pauses reading the socket
            clients = list(feed._exchange.clients.values())
            assert all(len(client.buffer) > 200 for client in clients)
            assert held < 2_500

        last = {s: server.symbol_trades(venue_id(s))[-1].id for s in SYMBOLS}
        await take(events, got, lambda: all(int(got[s][-1].trade_id) >= last[s] for s in SYMBOLS))
        await feed.close()

    for symbol, ticks in got.items():
        assert as_truth(ticks) == truth_from(server, symbol, int(ticks[0].trade_id), len(ticks))
    stats = feed.stats()
    assert stats.unfilled == 0
    if stream == "direct":
        assert (stats.gaps, stats.backfilled) == (before_stall.gaps, before_stall.backfilled), "nothing overflowed"
    # through ccxt, the unparsed messages held back are parsed at once on resuming, and more of them than
    # ccxt's trade cache (1,000 per symbol) overflow it: a gap, filled over REST, so still every trade once


async def test_batches_hand_over_the_same_trades_as_columns():
    async with FakeBinance(interval_s=0.002, max_trades=300, autostart=False) as server:
        feed = make_feed(server)
        await feed.connect()
        await wait_until(lambda: len(server.subscribe_requests) == 1)
        server.start_trading()
        ticks: list[Tick] = []
        async with asyncio.timeout(TIMEOUT_S):
            async for batch in feed.batches():
                assert isinstance(batch, TickBatch)
                assert batch.venue == "binance"
                ticks += batch.ticks()
                if len(ticks) >= 600:
                    break
        await feed.close()
    for symbol in SYMBOLS:
        mine = [t for t in ticks if t.symbol == symbol]
        assert as_truth(mine) == truth(server.symbol_trades(venue_id(symbol)))


async def test_the_generic_venue_backfills_by_time_and_drops_the_overlaps():
    # ids are not treated as a sequence: pages overlap at their boundary millisecond, and bursts
    # put several trades in one millisecond, so this exercises the time-and-ids cursor
    async with FakeBinance(interval_s=0.002) as server:
        config = {**server.ccxt_config(), "options": {"fetchMarkets": {"types": ["spot"]}}}
        feed = make_feed(server, config=config, venue=CcxtVenue(), backfill_limit=25)
        await feed.connect()
        got: dict[str, list[Tick]] = {s: [] for s in SYMBOLS}
        events = feed.events()
        await take(events, got, lambda: all(len(v) >= 100 for v in got.values()))
        await server.cut(refuse_s=0.2)
        await take(events, got, lambda: feed.health().reconnects >= 1 and all(len(v) >= 500 for v in got.values()))
        await feed.close()

    for symbol, ticks in got.items():
        assert as_truth(ticks) == truth_from(server, symbol, int(ticks[0].trade_id), len(ticks))
    assert {p for r in server.subscribe_requests for p in r["params"]} == {"btcusdt@trade", "ethusdt@trade"}
    by_time = [q for path, q in server.rest_requests if path == "/api/v3/aggTrades"]
    assert by_time
    assert all("startTime" in q and "fromId" not in q for q in by_time)
    assert feed.stats().backfilled > 0
    assert feed.stats().duplicates > 0


async def test_connect_reports_instruments_from_the_exchange_and_refuses_unknown_symbols():
    async with FakeBinance(autostart=False) as server:
        feed = make_feed(server, ["BTC/USDT", "SOL/USDT"])
        await feed.connect()
        assert [(i.symbol, i.tick_size, i.qty_step, i.venue, i.currency) for i in feed.instruments] == [
            ("BTC/USDT", 0.01, 0.00001, "binance", "USDT"),
            ("SOL/USDT", 0.01, 0.001, "binance", "USDT"),
        ]
        await feed.close()
        events = [e async for e in feed.events()]
        assert events == []

        wrong = make_feed(server, ["BTC/USDT", "DOGE/USDT"])
        with pytest.raises(LookupError, match="DOGE/USDT"):
            await wrong.connect()
        assert [path for path, _ in server.rest_requests] == ["/api/v3/exchangeInfo"] * 2


async def test_the_fake_serves_klines_and_recent_trades_in_binance_s_format_to_ccxt():
    async with FakeBinance(interval_s=0.001, max_trades=300) as server:
        await wait_until(server.done)
        exchange = ccxt.pro.binance({**server.ccxt_config(), "options": {"fetchMarkets": {"types": ["spot"]}}})
        try:
            candles = await exchange.fetch_ohlcv("ETH/USDT", "1s", None, 1000)
            recent = await exchange.fetch_trades("ETH/USDT", None, 10, {"fetchTradesMethod": "publicGetTrades"})
        finally:
            await exchange.close()
    trades = server.symbol_trades("ETHUSDT")
    assert sum(c[5] for c in candles) == pytest.approx(float(sum((t.qty for t in trades), Decimal(0))))
    assert candles[0][1] == float(trades[0].price)
    assert candles[-1][4] == float(trades[-1].price)
    assert [int(t["id"]) for t in recent] == [t.id for t in trades[-10:]]


def test_venue_profiles_are_found_by_ccxt_id():
    binance = venue_for("binance")
    assert isinstance(binance, BinanceVenue)
    assert binance.sequenced
    assert type(venue_for("kraken")) is CcxtVenue
    assert type(venue_for("not an id")) is CcxtVenue
    options = binance.config(["BTC/USDT", "BTC/USDT:USDT", "BTC/USD:BTC"])["options"]
    assert options["fetchMarkets"] == {"types": ["spot", "linear", "inverse"]}
    assert options["watchTrades"] == {"name": "aggTrade"}
    cursor = TradeCursor(1_000, "41", 41)
    assert binance.backfill_query(cursor) == (None, {"fromId": 42})
    assert CcxtVenue().backfill_query(cursor) == (1_000, {})


def test_cursor_orders_by_sequence_or_by_time_and_the_ids_of_one_millisecond():
    by_seq = TradeCursor(1_000, "10", 10)
    assert by_seq.admits(999, "11", 11)
    assert not by_seq.admits(2_000, "10", 10)
    by_time = TradeCursor(1_000, "b", None, {"a", "b"})
    assert not by_time.admits(999, "z", None)
    assert not by_time.admits(1_000, "a", None)
    assert by_time.admits(1_000, "c", None)
    assert by_time.admits(1_001, "a", None)
    by_time.advance(1_001, "d", None)
    assert by_time.ids == {"d"}
    assert by_time.admits(1_001, "a", None)


def test_backoff_grows_exponentially_with_bounded_jitter():
    backoff = Backoff(initial_s=0.1, max_s=2.0, factor=2.0, jitter=0.5)
    rng = random.Random(3)
    for attempt in range(12):
        ceiling = min(2.0, 0.1 * 2**attempt)
        delays = [backoff.delay(attempt, rng) for _ in range(50)]
        assert all(ceiling * 0.5 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1
    with pytest.raises(ValueError, match="initial_s"):
        Backoff(initial_s=3.0, max_s=2.0)

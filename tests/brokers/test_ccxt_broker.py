"""CcxtBroker: the real ccxt `binance` client against a local server speaking Binance spot's signed order API.

Every scenario runs ccxt unchanged, pointed at `tests.fakes.binance_orders` by its URL
configuration: ccxt builds, signs (HMAC-SHA256 of the query string or body, `X-MBX-APIKEY`,
`timestamp`, `recvWindow`) and parses the requests; the fake verifies the signature, applies
Binance's filters and balances, and misbehaves on demand.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import ccxt
import pytest

from framework.brokers.base import Broker, BrokerEvent
from framework.brokers.ccxt_broker import CcxtBroker
from framework.brokers.ccxt_mapping import order_status, translate_error
from framework.brokers.credentials import credentials_from_env, env_names
from framework.brokers.errors import DuplicateOrder, RateLimited, UnknownOrder
from framework.clock import SimulatedClock
from framework.errors import RejectedError, TransientError
from framework.orders.model import Fill, Mode, Order, OrderSide, OrderStatus, OrderType, OrderUpdate
from tests.fakes.binance_orders import FakeBinanceExchange, Fault

KEY, SECRET = "rata-test-key-0001", "rata-test-secret-0001"
BALANCES = {"USDT": "100000", "BTC": "2", "ETH": "10"}
ORDER = "/api/v3/order"
TIMEOUT_S = 10


@pytest.fixture
async def binance() -> AsyncIterator[FakeBinanceExchange]:
    async with FakeBinanceExchange(autostart=False, accounts={KEY: (SECRET, BALANCES)}) as server:
        yield server


def make_broker(server: FakeBinanceExchange, **kwargs: Any) -> CcxtBroker:
    """Return a broker on the fake (its rate limiter on, paced for tests), polling only when asked."""
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("secret", SECRET)
    kwargs.setdefault("symbols", ["BTC/USDT", "ETH/USDT"])
    kwargs.setdefault("poll_interval_s", None)
    return CcxtBroker("binance", config={**server.ccxt_config(), "rateLimit": 1}, **kwargs)


@pytest.fixture
async def broker(binance: FakeBinanceExchange) -> AsyncIterator[CcxtBroker]:
    b = make_broker(binance)
    await b.connect()
    yield b
    await b.close()


def market(cid: str, side: str = "buy", qty: str = "0.01", symbol: str = "BTC/USDT") -> Order:
    return Order(cid, "sma", "binance", symbol, OrderSide(side), Decimal(qty), mode=Mode.LIVE)


def limit(cid: str, price: str, side: str = "buy", qty: str = "0.01", symbol: str = "BTC/USDT") -> Order:
    return Order(
        cid, "sma", "binance", symbol, OrderSide(side), Decimal(qty), OrderType.LIMIT, Decimal(price), Mode.LIVE
    )


async def take(broker: CcxtBroker, n: int) -> list[BrokerEvent]:
    """Read `n` events from the broker's stream."""
    events = broker.events()
    async with asyncio.timeout(TIMEOUT_S):
        return [await anext(events) for _ in range(n)]


def as_fill(event: BrokerEvent) -> Fill:
    assert isinstance(event, Fill), event
    return event


def as_update(event: BrokerEvent) -> OrderUpdate:
    assert isinstance(event, OrderUpdate), event
    return event


def found(order: Order | None) -> Order:
    assert order is not None
    return order


# ---------------------------------------------------------------- orders


async def test_market_order_is_sent_signed_with_its_client_id_and_reports_its_fill_then_filled(
    binance: FakeBinanceExchange, broker: CcxtBroker
) -> None:
    assert isinstance(broker, Broker)
    update = await broker.submit(market("sma-btc-1"))

    assert update.status is OrderStatus.ACCEPTED
    [sent] = binance.requests_to("POST", ORDER)
    assert sent.params["newClientOrderId"] == "sma-btc-1"
    assert (sent.params["symbol"], sent.params["side"], sent.params["type"]) == ("BTCUSDT", "BUY", "MARKET")
    assert sent.params["quantity"] == "0.01"
    assert not {"price", "quoteOrderQty"} & sent.params.keys()
    assert {"timestamp", "recvWindow", "signature"} <= sent.params.keys()
    venue_order = binance.order_by_client_id("sma-btc-1")
    assert venue_order is not None
    assert update.venue_order_id == str(venue_order.order_id)

    first, second = await take(broker, 2)
    fill, filled = as_fill(first), as_update(second)
    [venue_fill] = binance.fills
    assert fill.fill_id == str(venue_fill.trade_id)
    assert (fill.client_id, fill.side, fill.quantity, fill.price) == (
        "sma-btc-1",
        OrderSide.BUY,
        Decimal("0.01"),
        Decimal(64000),
    )
    assert fill.fee == venue_fill.commission * fill.price  # charged in BTC, booked in USDT
    assert (fill.strategy, fill.mode) == ("sma", Mode.LIVE)
    assert filled.status is OrderStatus.FILLED

    order = found(await broker.query("sma-btc-1"))
    assert order.fill_ids == {fill.fill_id}
    assert (order.status, order.filled, order.avg_price, order.strategy) == (
        OrderStatus.FILLED,
        Decimal("0.01"),
        Decimal(64000),
        "sma",
    )
    assert await broker.poll() == 0  # nothing is reported twice


async def test_limit_order_rests_then_fills_in_two_parts_as_the_price_crosses_it(
    binance: FakeBinanceExchange, broker: CcxtBroker
) -> None:
    assert (await broker.submit(limit("sma-btc-2", "63000.00", qty="0.01000"))).status is OrderStatus.ACCEPTED
    [sent] = binance.requests_to("POST", ORDER)
    assert (sent.params["type"], sent.params["price"], sent.params["timeInForce"]) == ("LIMIT", "63000", "GTC")

    [listed] = await broker.open_orders()
    assert (listed.client_id, listed.status, listed.limit_price, listed.filled) == (
        "sma-btc-2",
        OrderStatus.ACCEPTED,
        Decimal(63000),
        Decimal(0),
    )
    assert (await broker.balances())["USDT"] == Decimal(100000)  # free + locked
    assert binance.accounts[KEY].locked("USDT") == Decimal(630)
    assert await broker.poll() == 0

    binance.set_price("BTCUSDT", "62990", quantity="0.004")
    assert await broker.poll() == 2
    events = await take(broker, 2)
    fill, partial = as_fill(events[0]), as_update(events[1])
    assert (fill.quantity, fill.price) == (Decimal("0.004"), Decimal(63000))
    assert partial.status is OrderStatus.PARTIALLY_FILLED
    queried = found(await broker.query("sma-btc-2"))
    assert (queried.status, queried.filled) == (OrderStatus.PARTIALLY_FILLED, Decimal("0.004"))

    binance.set_price("BTCUSDT", "62980")
    assert await broker.poll() == 2
    events = await take(broker, 2)
    second, filled = as_fill(events[0]), as_update(events[1])
    assert (second.quantity, second.price) == (Decimal("0.006"), Decimal(63000))
    assert second.fill_id != fill.fill_id
    assert filled.status is OrderStatus.FILLED
    assert await broker.open_orders() == []
    assert await broker.poll() == 0


async def test_cancel_returns_cancelled_releases_the_funds_and_is_not_repeated_on_the_stream(
    binance: FakeBinanceExchange, broker: CcxtBroker
) -> None:
    await broker.submit(limit("sma-eth-1", "3200.00", side="sell", qty="1.5", symbol="ETH/USDT"))
    assert binance.accounts[KEY].locked("ETH") == Decimal("1.5")

    update = await broker.cancel("sma-eth-1")

    assert update.status is OrderStatus.CANCELLED
    [sent] = binance.requests_to("DELETE", ORDER)
    assert (sent.params["origClientOrderId"], sent.params["symbol"]) == ("sma-eth-1", "ETHUSDT")
    assert binance.accounts[KEY].locked("ETH") == 0
    assert await broker.poll() == 0
    assert found(await broker.query("sma-eth-1")).status is OrderStatus.CANCELLED
    with pytest.raises(UnknownOrder):  # Binance: -2011 "Unknown order sent."
        await broker.cancel("sma-eth-1")


async def test_fills_before_a_cancel_are_still_reported_once(binance: FakeBinanceExchange, broker: CcxtBroker) -> None:
    await broker.submit(limit("sma-btc-3", "63500.00", qty="0.02"))
    binance.set_price("BTCUSDT", "63400", quantity="0.005")

    assert (await broker.cancel("sma-btc-3")).status is OrderStatus.CANCELLED

    [fill] = await take(broker, 1)
    assert as_fill(fill).quantity == Decimal("0.005")
    assert await broker.poll() == 0


async def test_a_cancel_that_succeeded_is_reported_even_when_its_fills_cannot_be_fetched_yet(
    binance: FakeBinanceExchange, broker: CcxtBroker
) -> None:
    await broker.submit(limit("sma-btc-13", "63500.00", qty="0.02"))
    binance.set_price("BTCUSDT", "63400", quantity="0.005")
    binance.inject(Fault("GET", "/api/v3/myTrades", "reply", status=503, body="Service Unavailable"))

    assert (await broker.cancel("sma-btc-13")).status is OrderStatus.CANCELLED

    assert await broker.poll() == 1  # the poller catches the fill up
    [fill] = await take(broker, 1)
    assert as_fill(fill).quantity == Decimal("0.005")
    assert await broker.poll() == 0


async def test_query_of_an_order_the_venue_never_saw_returns_none(broker: CcxtBroker) -> None:
    assert await broker.query("never-sent") is None
    assert await broker.query("never-sent", symbol="ETH/USDT") is None


async def test_balances_and_positions_are_the_accounts_totals(binance: FakeBinanceExchange, broker: CcxtBroker) -> None:
    assert await broker.balances() == {"BTC": Decimal(2), "ETH": Decimal(10), "USDT": Decimal(100000)}
    assert await broker.positions() == {"BTC/USDT": Decimal(2), "ETH/USDT": Decimal(10)}

    await broker.submit(market("sma-eth-2", side="sell", qty="10", symbol="ETH/USDT"))

    balances = await broker.balances()
    assert "ETH" not in balances
    assert balances["USDT"] == Decimal(100000) + Decimal(31000) * Decimal("0.999")
    assert await broker.positions() == {"BTC/USDT": Decimal(2)}


# ---------------------------------------------------------------- refusals


async def test_a_wrong_secret_fails_binances_signature_check(binance: FakeBinanceExchange) -> None:
    broker = make_broker(binance, secret="not-the-secret")
    with pytest.raises(RejectedError, match="Signature for this request is not valid"):
        await broker.connect()
    await broker.close()
    assert binance.requests_to("GET", "/api/v3/account")  # it was sent, and refused (-1022)


async def test_an_unknown_api_key_is_refused(binance: FakeBinanceExchange) -> None:
    broker = make_broker(binance, api_key="someone-else")
    with pytest.raises(RejectedError, match="-2015"):
        await broker.connect()
    await broker.close()


async def test_insufficient_balance_is_rejected_with_the_venues_message(broker: CcxtBroker) -> None:
    with pytest.raises(RejectedError, match="insufficient balance") as refused:
        await broker.submit(market("sma-btc-4", qty="5"))
    assert isinstance(refused.value.__cause__, ccxt.InsufficientFunds)
    assert not isinstance(refused.value, TransientError)
    assert await broker.query("sma-btc-4") is None


@pytest.mark.parametrize(
    ("order", "filter_name"),
    [
        (market("tiny", qty="0.00005"), "NOTIONAL"),
        (limit("far", "10000.00"), "PERCENT_PRICE_BY_SIDE"),
        (market("huge", qty="150"), "MARKET_LOT_SIZE"),
    ],
)
async def test_orders_breaking_the_symbols_filters_are_rejected(
    broker: CcxtBroker, order: Order, filter_name: str
) -> None:
    with pytest.raises(RejectedError, match=f"Filter failure: {filter_name}"):
        await broker.submit(order)


async def test_quantities_and_prices_are_rounded_to_the_markets_precision(
    binance: FakeBinanceExchange, broker: CcxtBroker
) -> None:
    instrument = broker.instrument("BTC/USDT")
    assert (instrument.tick_size, instrument.qty_step) == (0.01, 0.00001)

    await broker.submit(limit("sma-btc-5", "63000.004", qty="0.0123456"))

    [sent] = binance.requests_to("POST", ORDER)
    assert (sent.params["quantity"], sent.params["price"]) == ("0.01234", "63000")


async def test_a_client_id_the_venue_would_refuse_is_not_sent(binance: FakeBinanceExchange, broker: CcxtBroker) -> None:
    for bad in ("has space", "x" * 37, "semi;colon"):
        with pytest.raises(RejectedError, match="client order id"):
            await broker.submit(market(bad))
    assert binance.requests_to("POST", ORDER) == []


async def test_a_client_id_already_open_at_the_venue_is_refused_as_a_duplicate(binance: FakeBinanceExchange) -> None:
    first, restarted = make_broker(binance), make_broker(binance)
    await first.connect()
    await restarted.connect()
    try:
        await first.submit(limit("sma-btc-6", "63000.00"))
        with pytest.raises(DuplicateOrder):  # known locally: not even sent
            await first.submit(limit("sma-btc-6", "63000.00"))
        assert len(binance.requests_to("POST", ORDER)) == 1

        with pytest.raises(DuplicateOrder) as refused:  # a broker without that memory: Binance refuses (-2010)
            await restarted.submit(limit("sma-btc-6", "63000.00"))
        assert "Duplicate order sent." in str(refused.value.__cause__)
        assert len(binance.requests_to("POST", ORDER)) == 2
        assert len([o for o in binance.orders.values() if o.client_id == "sma-btc-6"]) == 1
    finally:
        await first.close()
        await restarted.close()


# ---------------------------------------------------------------- unknown outcomes


@pytest.mark.parametrize(
    "fault",
    [
        Fault("POST", ORDER, "accept_then_reply", status=500),  # Binance's -1001 JSON
        Fault("POST", ORDER, "accept_then_reply", status=503, body="<html>503 Service Unavailable</html>"),
        Fault("POST", ORDER, "accept_then_drop"),
        Fault("POST", ORDER, "accept_then_truncate"),
    ],
    ids=["500-json", "503-html", "dropped", "truncated"],
)
async def test_an_accepted_order_whose_answer_is_lost_is_found_by_client_id_and_never_resent(
    binance: FakeBinanceExchange, broker: CcxtBroker, fault: Fault
) -> None:
    binance.inject(fault)

    with pytest.raises(TransientError) as lost:
        await broker.submit(market("sma-btc-7"))
    assert not isinstance(lost.value, RejectedError)
    assert binance.order_by_client_id("sma-btc-7") is not None  # the venue did act
    with pytest.raises(RejectedError, match="query"):  # no resend before the outcome is known
        await broker.submit(market("sma-btc-7"))
    assert len(binance.requests_to("POST", ORDER)) == 1

    order = found(await broker.query("sma-btc-7"))

    assert (order.status, order.filled) == (OrderStatus.FILLED, Decimal("0.01"))
    assert (order.strategy, order.mode) == ("sma", Mode.LIVE)  # remembered from the attempt
    assert await broker.poll() == 1  # its fill, found by the poller
    [event] = await take(broker, 1)
    fill = as_fill(event)
    assert (fill.fill_id, fill.strategy) == (str(binance.fills[0].trade_id), "sma")
    with pytest.raises(DuplicateOrder):
        await broker.submit(market("sma-btc-7"))
    assert len(binance.requests_to("POST", ORDER)) == 1


async def test_a_request_that_never_reached_the_venue_resolves_to_none_and_may_then_be_sent(
    binance: FakeBinanceExchange, broker: CcxtBroker
) -> None:
    binance.inject(Fault("POST", ORDER, "reply", status=503, body="Service Unavailable"))
    with pytest.raises(TransientError):
        await broker.submit(market("sma-btc-8"))

    assert await broker.query("sma-btc-8") is None
    assert (await broker.submit(market("sma-btc-8"))).status is OrderStatus.ACCEPTED
    assert len(binance.requests_to("POST", ORDER)) == 2
    assert len([o for o in binance.orders.values() if o.client_id == "sma-btc-8"]) == 1


async def test_429_with_retry_after_pauses_every_request_until_the_clock_passes_it(
    binance: FakeBinanceExchange,
) -> None:
    clock = SimulatedClock(1_800_000_000_000_000_000)
    broker = make_broker(binance, clock=clock)
    await broker.connect()
    try:
        binance.inject(Fault.rate_limited("POST", ORDER, retry_after_s=30))
        with pytest.raises(RateLimited) as limited:
            await broker.submit(market("sma-btc-9"))
        assert limited.value.retry_after_s == 30
        sent = len(binance.signed_requests)

        with pytest.raises(RateLimited):
            await broker.query("sma-btc-9")
        clock.advance_to(clock.now_ns() + 29_000_000_000)
        with pytest.raises(RateLimited) as still:
            await broker.balances()
        assert 0 < still.value.retry_after_s <= 1
        assert len(binance.signed_requests) == sent  # nothing was sent while paused

        clock.advance_to(clock.now_ns() + 1_000_000_000)
        assert await broker.query("sma-btc-9") is None  # a 429 means the venue did nothing
        assert (await broker.submit(market("sma-btc-9"))).status is OrderStatus.ACCEPTED
    finally:
        await broker.close()


# ---------------------------------------------------------------- stream, restart, sandbox


async def test_background_polling_streams_a_resting_orders_fill_and_final_state(binance: FakeBinanceExchange) -> None:
    broker = make_broker(binance, poll_interval_s=0.01)
    await broker.connect()
    try:
        await broker.submit(limit("sma-btc-10", "63900.00"))
        binance.set_price("BTCUSDT", "63850")
        first, second = await take(broker, 2)
        fill, filled = as_fill(first), as_update(second)
        assert (fill.client_id, fill.price) == ("sma-btc-10", Decimal(63900))
        assert filled.status is OrderStatus.FILLED
    finally:
        await broker.close()


async def test_after_a_restart_orders_are_listed_found_by_client_id_and_cancellable(
    binance: FakeBinanceExchange,
) -> None:
    before = make_broker(binance)
    await before.connect()
    await before.submit(limit("sma-eth-3", "3050.00", qty="0.5", symbol="ETH/USDT"))
    await before.submit(market("sma-btc-11"))
    await before.close()

    after = make_broker(binance)
    await after.connect()
    try:
        [listed] = await after.open_orders()
        assert (listed.client_id, listed.symbol, listed.quantity) == ("sma-eth-3", "ETH/USDT", Decimal("0.5"))
        assert "symbol" not in binance.requests_to("GET", "/api/v3/openOrders")[-1].params  # every symbol's
        done = found(await after.query("sma-btc-11"))  # found by trying the broker's symbols
        assert done.status is OrderStatus.FILLED
        assert (await after.cancel("sma-eth-3")).status is OrderStatus.CANCELLED
    finally:
        await after.close()


async def test_sandbox_switches_ccxt_to_binances_testnet_and_url_overrides_still_apply(
    binance: FakeBinanceExchange,
) -> None:
    live = CcxtBroker("binance", api_key=KEY, secret=SECRET)
    testnet = CcxtBroker("binance", api_key=KEY, secret=SECRET, sandbox=True)
    assert live.api_urls["private"] == "https://api.binance.com/api/v3"
    assert not live.sandbox
    assert testnet.sandbox
    assert testnet.api_urls["public"] == testnet.api_urls["private"] == "https://testnet.binance.vision/api/v3"
    assert testnet._exchange.enableRateLimit is True

    local = make_broker(binance, sandbox=True)
    assert local.sandbox
    assert local.api_urls["private"] == f"{binance.http_url}/api/v3"
    await local.connect()
    try:
        assert (await local.submit(market("sma-btc-12"))).status is OrderStatus.ACCEPTED
    finally:
        await local.close()
        await live.close()
        await testnet.close()


# ---------------------------------------------------------------- pieces


def test_credentials_come_from_the_environment_and_never_show() -> None:
    assert env_names("binance") == ("RATA_BINANCE_API_KEY", "RATA_BINANCE_SECRET")
    creds = credentials_from_env("binance", {"RATA_BINANCE_API_KEY": "k-123", "RATA_BINANCE_SECRET": "s-456"})
    assert (creds.api_key, creds.secret) == ("k-123", "s-456")
    assert repr(creds) == "ApiCredentials(api_key=<hidden>, secret=<hidden>)"
    with pytest.raises(RejectedError, match="RATA_BINANCE_SECRET") as missing:
        credentials_from_env("binance", {"RATA_BINANCE_API_KEY": "k-123"})
    assert "k-123" not in str(missing.value)
    broker = CcxtBroker.from_env("binance", {"RATA_BINANCE_API_KEY": "k-123", "RATA_BINANCE_SECRET": "s-456"})
    assert not {"k-123", "s-456"} & set(repr(broker).split("'"))


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ({"status": "open", "filled": 0.0}, OrderStatus.ACCEPTED),
        ({"status": "open", "filled": 0.5}, OrderStatus.PARTIALLY_FILLED),
        ({"status": "closed", "filled": 1.0}, OrderStatus.FILLED),
        ({"status": "canceled", "filled": 0.5}, OrderStatus.CANCELLED),
        ({"status": "rejected"}, OrderStatus.REJECTED),
        ({"status": "expired"}, OrderStatus.EXPIRED),
    ],
)
def test_ccxt_statuses_map_to_rata_statuses(raw: dict[str, Any], status: OrderStatus) -> None:
    assert order_status(raw) is status


@pytest.mark.parametrize(
    ("error", "family"),
    [
        (ccxt.RequestTimeout("t"), TransientError),
        (ccxt.ExchangeNotAvailable("503"), TransientError),
        (ccxt.InvalidNonce("-1021"), TransientError),
        (ccxt.DDoSProtection("429"), RateLimited),
        (ccxt.RateLimitExceeded("-1003"), RateLimited),
        (ccxt.InsufficientFunds("-2010"), RejectedError),
        (ccxt.InvalidOrder("-1013"), RejectedError),
        (ccxt.BadSymbol("-1121"), RejectedError),
        (ccxt.OrderNotFound("-2013"), RejectedError),
        (ccxt.AuthenticationError("-1022"), RejectedError),
    ],
)
def test_ccxt_errors_map_to_rata_families(error: Exception, family: type[Exception]) -> None:
    assert isinstance(translate_error(error, "call"), family)


def test_an_exchange_error_caused_by_a_broken_http_exchange_is_transient() -> None:
    try:
        try:
            raise aiohttp.ClientPayloadError("cut short")
        except aiohttp.ClientError as cause:
            raise ccxt.ExchangeError("binance POST https://api.binance.com/api/v3/order") from cause
    except ccxt.ExchangeError as error:
        translated = translate_error(error, "submit")
    assert isinstance(translated, TransientError)
    assert not isinstance(translated, RejectedError)


async def test_the_fake_signs_total_params_like_binance_query_then_body(binance: FakeBinanceExchange) -> None:
    """A hand-signed request splitting its parameters over query string and body, as Binance's docs allow."""
    query = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC"
    body = f"quantity=0.01&price=63000&timestamp={time.time_ns() // 1_000_000}"
    good = hmac.new(SECRET.encode(), (query + body).encode(), hashlib.sha256).hexdigest()
    url = f"{binance.http_url}{ORDER}"
    headers = {"X-MBX-APIKEY": KEY, "Content-Type": "application/x-www-form-urlencoded"}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}?{query}", data=f"{body}&signature={good.upper()}", headers=headers) as ok:
            assert (ok.status, (await ok.json())["status"]) == (200, "NEW")
        async with session.post(f"{url}?{query}", data=f"{body}0&signature={good}", headers=headers) as tampered:
            assert (tampered.status, json.loads(await tampered.text())["code"]) == (400, -1022)

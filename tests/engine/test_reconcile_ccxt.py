"""Reconciliation on a real ccxt client against the local Binance fake: fills adopted by venue trade id.

An order sent just before a crash filled at once; after the restart the manager finds it by client id,
adopts its fill from the venue's trade history (`CcxtBroker.fills`, Binance's myTrades) under the
venue's own trade id, so the fills the broker's poller reports later are recognised, not doubled.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from framework.brokers.ccxt_broker import CcxtBroker
from framework.clock import SimulatedClock
from framework.engine.intents import OrderIntent
from framework.engine.order_manager import OrderManager
from framework.engine.order_store import OrderStore
from framework.instruments import Instrument
from framework.orders.model import Mode, Order, OrderSide, OrderStatus
from framework.risk import RiskManager, RiskStore
from framework.storage import Database
from tests.engine.helpers import T0
from tests.fakes.binance_orders import FakeBinanceExchange

KEY, SECRET = "rata-test-key-0001", "rata-test-secret-0001"
SYMBOL = "BTC/USDT"


@pytest.fixture
async def binance() -> AsyncIterator[FakeBinanceExchange]:
    accounts = {KEY: (SECRET, {"USDT": "100000"})}
    async with FakeBinanceExchange(autostart=False, accounts=accounts, taker_fee=Decimal(0)) as server:
        yield server


def ccxt_broker(server: FakeBinanceExchange) -> CcxtBroker:
    config = {**server.ccxt_config(), "rateLimit": 1}
    return CcxtBroker("binance", api_key=KEY, secret=SECRET, config=config, symbols=[SYMBOL], poll_interval_s=None)


async def test_an_order_filled_while_down_is_adopted_with_the_venues_trade_id(
    binance: FakeBinanceExchange, database: Database
) -> None:
    store = OrderStore(database.pool)
    wanted = OrderIntent("s1", "binance", SYMBOL, OrderSide.BUY, Decimal("0.01"))
    [cid] = await store.insert_intents(
        await store.client_prefix(), [wanted], venue="binance", mode=Mode.LIVE, time_ns=T0
    )
    before = ccxt_broker(binance)
    await before.connect()
    await before.submit(Order(cid, "s1", "binance", SYMBOL, OrderSide.BUY, Decimal("0.01"), mode=Mode.LIVE))
    await before.close()  # the process died before recording the answer; the market order filled

    broker = ccxt_broker(binance)
    clock = SimulatedClock(T0)
    risk = await RiskManager.open(RiskStore(database.pool), clock)
    manager = OrderManager(
        database.pool,
        broker,
        risk,
        clock,
        mode=Mode.LIVE,
        venue="binance",
        instruments={SYMBOL: Instrument(SYMBOL, qty_step=0.00001)},
        resolve_delays_s=(0.0, 1.0),
    )
    try:
        report = await manager.start()
        assert report.ok, report.reason
        [venue_fill] = binance.fills
        assert [f.fill_id for f in report.adopted_fills] == [str(venue_fill.trade_id)]
        assert report.synthesized_fills == ()
        assert manager.orders[cid].status is OrderStatus.FILLED
        assert manager.positions.net_positions() == await broker.positions() == {SYMBOL: Decimal("0.01")}

        assert await broker.poll() >= 1  # the poller now reports the order's trade too: recognised, not doubled
        await manager.idle()
        assert manager.orders[cid].filled == Decimal("0.01")
        assert await database.pool.fetchval("SELECT count(*) FROM fills") == 1
        assert manager.alerts == []
    finally:
        await manager.close()
        await broker.close()

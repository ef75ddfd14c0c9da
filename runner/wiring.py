"""Build a `Runner` for a mode: the feed, the venue and the clock each mode implies.

| mode   | feed                                   | venue       | clock     |
|--------|----------------------------------------|-------------|-----------|
| replay | history (dataset, files or database)   | paper       | simulated |
| dev    | synthetic                              | paper       | wall      |
| paper  | ccxt (real exchange market data)       | paper       | wall      |
| live   | ccxt                                   | ccxt broker | wall      |

Live needs credentials (the credential store, else `RATA_<EXCHANGE>_API_KEY/_SECRET`); the CLI
also requires an explicit opt-in flag before it gets here.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg

from framework.brokers.base import Broker
from framework.brokers.paper import PaperBroker
from framework.clock import Clock, SimulatedClock, WallClock
from framework.errors import ParameterError
from framework.execution import ExecutionModel
from framework.feeds.base import Feed
from framework.instruments import Instrument
from framework.settings import Settings
from framework.timeframes import TIMEFRAMES
from runner.config import RunConfig
from runner.service import Runner

__all__ = ["build_runner"]


async def build_runner(config: RunConfig, settings: Settings, pool: asyncpg.Pool) -> Runner:
    """Return an unstarted runner for `config.runner.mode`."""
    section = config.runner
    mode = section.mode
    clock: Clock = SimulatedClock() if mode == "replay" else WallClock()
    feed, instruments, venue_timeframe = await _feed(config, pool, clock)
    model = ExecutionModel(fill=section.fill, fees=section.fees, slippage=section.slippage, cash=section.cash)
    broker: Broker
    if config.broker.kind == "paper":
        broker = PaperBroker(
            section.paper_dir or settings.data_dir / "paper",
            model=model,
            instruments=instruments,
            cash=section.cash,
            currency=section.currency,
            account=section.paper_account,
            clock=clock,
        )
    else:
        broker = await _ccxt_broker(config, settings, pool, clock)
    return Runner(
        config,
        pool,
        feed,
        broker,
        clock,
        instruments=instruments,
        spool_dir=settings.spool_dir,
        venue_timeframe=venue_timeframe,
    )


async def _feed(config: RunConfig, pool: asyncpg.Pool, clock: Clock) -> tuple[Feed, list[Instrument], str | None]:
    feed_config = config.feed
    if feed_config.kind == "synthetic":
        from framework.feeds.synthetic import SyntheticFeed

        synthetic = SyntheticFeed(
            feed_config.instruments, feed_config.rate or None, feed_config.seed, clock=clock, venue=feed_config.venue
        )
        return synthetic, list(synthetic.instruments), None
    if feed_config.kind == "replay":
        return await _replay_feed(config, pool, clock)
    from framework.feeds.ccxt_feed import CcxtFeed

    if not feed_config.exchange or not feed_config.symbols:
        raise ParameterError("[feed] kind = 'ccxt' needs an exchange and symbols")
    ccxt_feed = CcxtFeed(feed_config.exchange, feed_config.symbols, config=feed_config.ccxt_config, clock=clock)
    return ccxt_feed, [], None


async def _replay_feed(
    config: RunConfig, pool: asyncpg.Pool, clock: Clock
) -> tuple[Feed, list[Instrument], str | None]:
    from framework.data.datasets import load_dataset
    from framework.feeds.replay import ReplayFeed
    from runner.parity import BarsSource, parity_timeframe

    feed_config = config.feed
    speed = feed_config.speed or None
    if feed_config.dataset:
        data = load_dataset(feed_config.dataset)
        if feed_config.symbols:
            data = data.select(feed_config.symbols)
        source = BarsSource(data, parity_timeframe(data), venue=feed_config.venue)
        feed = ReplayFeed(source, speed=speed, clock=clock, name="replay")
        return feed, list(data.instruments.values()), source.timeframe
    if feed_config.timeframe not in TIMEFRAMES:
        raise ParameterError(f"[feed] timeframe must be one of {', '.join(TIMEFRAMES)}")
    if feed_config.files:
        feed = ReplayFeed.from_files(
            [Path(p) for p in feed_config.files], kind="bars", timeframe=feed_config.timeframe, speed=speed, clock=clock
        )
        return feed, [], feed_config.timeframe
    if not feed_config.symbols:
        raise ParameterError("[feed] kind = 'replay' needs a dataset, files, or symbols stored in the database")
    feed = ReplayFeed.from_database(
        pool,
        feed_config.venue,
        feed_config.symbols,
        kind="bars",
        timeframe=feed_config.timeframe,
        speed=speed,
        clock=clock,
    )
    return feed, [], feed_config.timeframe


async def _ccxt_broker(config: RunConfig, settings: Settings, pool: asyncpg.Pool, clock: Clock) -> Broker:
    from framework.brokers.ccxt_broker import CcxtBroker
    from framework.brokers.credentials import load_credentials
    from framework.orders.model import Mode

    exchange = config.broker.exchange or config.feed.exchange
    if not exchange:
        raise ParameterError("[broker] kind = 'ccxt' needs an exchange")
    credentials = await load_credentials(exchange, pool, settings=settings)
    return CcxtBroker(
        exchange,
        api_key=credentials.api_key,
        secret=credentials.secret,
        sandbox=config.broker.sandbox,
        config=config.broker.ccxt_config,
        clock=clock,
        symbols=config.feed.symbols,
        mode=Mode(config.runner.mode),
    )

"""A runner warms its strategies' panels up from the bars stored in PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from framework.brokers.paper import PaperBroker
from framework.clock import SimulatedClock
from framework.events import Bar
from framework.feeds.synthetic import SyntheticFeed
from framework.storage import Database
from framework.storage.marketdata import bar_rows, upsert_instruments, write_bars
from runner.config import RunConfig, StrategyConfig
from runner.service import Runner

SECOND = 1_000_000_000
START = 1_800_000_000 * SECOND


async def test_panels_start_with_the_newest_stored_bars(database: Database, tmp_path: Path) -> None:
    clock = SimulatedClock(START + 100 * SECOND)
    feed = SyntheticFeed(3, None, seed=1, clock=clock, limit=0)
    ids = await upsert_instruments(database.pool, feed.instruments)
    symbols = [i.symbol for i in feed.instruments]
    bars = [
        Bar("SIM", s, "1s", START + k * SECOND, 10.0 + k, 10.0 + k, 10.0 + k, 10.0 + k, 1.0, 10.0 + k, 1)
        for k in range(60)
        for s in symbols
    ]
    async with database.pool.acquire() as conn:
        await write_bars(conn, bar_rows(bars, ids))
    config = RunConfig.model_validate(
        {
            "runner": {"mode": "dev"},
            "strategies": [
                StrategyConfig(id="w", strategy="sma_cross", params={"fast": 3, "slow": 8}, symbols=3, timeframe="1s")
            ],
        }
    )
    broker = PaperBroker(tmp_path / "paper", clock=clock)
    runner = Runner(config.check(), database.pool, feed, broker, clock)
    report = await runner.start()
    assert report.ok
    assert runner.engine is not None
    panel = runner.engine.panels[("1s", tuple(sorted(symbols)))]
    window = panel.window()
    assert len(window) >= 10  # at least warm-up (8) + 2 rows, from the database
    assert window.close[symbols[0]].iloc[-1] == 69.0  # the newest stored bar: opened at +59 s, closed at +60 s
    assert int(window.index[-1].value) == START + 60 * SECOND
    await runner.close()

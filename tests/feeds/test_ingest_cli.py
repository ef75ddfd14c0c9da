"""`rata ingest --feed ccxt` against a local Binance: stopped and started again, the stored series has no hole."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator

import pandas as pd
import pytest
from typer.testing import CliRunner

from framework.settings import load_settings
from framework.storage import open_database
from framework.storage.marketdata import fetch_ticks
from runner.cli import app
from tests.fakes.binance_server import FakeBinance

pytestmark = [pytest.mark.db, pytest.mark.slow]


@pytest.fixture
def exchange() -> Iterator[FakeBinance]:
    """Run a FakeBinance on its own event loop in a thread (the CLI runs its own loop)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = FakeBinance(interval_s=0.002)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(30)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_ingest_resumes_from_the_last_stored_trade_so_two_runs_store_one_gapless_series(
    exchange, tmp_path, monkeypatch
):
    monkeypatch.setenv("RATA_DATA_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    config = json.dumps(exchange.ccxt_config())
    args = ["ingest", "--feed", "ccxt", "--exchange", "binance", "--symbol", "BTC/USDT", "--symbol", "ETH/USDT",
            "--ccxt-config", config, "--duration", "1.5"]  # fmt: skip
    for _ in range(2):  # the exchange trades on between the runs: the second run backfills that gap over REST
        result = CliRunner().invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert "ingestion finished" in result.stdout

    async def stored(symbol: str) -> pd.DataFrame:
        async with open_database(load_settings(data_dir=tmp_path / "state")) as db:
            return await fetch_ticks(db.pool, "binance", symbol)

    for symbol, venue_symbol in (("BTC/USDT", "BTCUSDT"), ("ETH/USDT", "ETHUSDT")):
        table = asyncio.run(stored(symbol))
        ids = [int(i) for i in table["trade_id"]]
        assert len(ids) > 300
        assert ids == list(range(ids[0], ids[0] + len(ids))), "one contiguous series: no hole, nothing twice"
        truth = {t.id: t for t in exchange.symbol_trades(venue_symbol)}
        for row in table.itertuples():
            trade = truth[int(row.trade_id)]
            assert (row.price, row.size, row.side) == (float(trade.price), float(trade.qty), trade.side)
            assert pd.Timestamp(row.time).value // 1_000_000 == trade.time_ms

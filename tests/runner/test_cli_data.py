"""`rata db` and `rata data` against a real embedded PostgreSQL in a temporary data folder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from framework import backtest
from framework.data import load_bars, load_file
from framework.settings import load_settings
from runner.cli import app
from strategies.sma_cross import SmaCross

pytestmark = [pytest.mark.db, pytest.mark.slow]


@pytest.fixture
def rata(tmp_path, monkeypatch):
    monkeypatch.setenv("RATA_DATA_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


def _daily_csv(path, n=300, seed=3):
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    frame = pd.DataFrame(
        {
            "date": pd.date_range("2023-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
            "open": close * (1 + rng.normal(0, 0.003, n)),
            "close": close,
            "volume": rng.integers(1000, 5000, n).astype(float),
        }
    )
    frame["high"] = frame[["open", "close"]].max(axis=1) * 1.01
    frame["low"] = frame[["open", "close"]].min(axis=1) * 0.99
    frame.to_csv(path, index=False)
    return path


def test_migrate_is_idempotent_and_status_lists_migrations(rata):
    first = rata("db", "migrate")
    assert first.exit_code == 0
    assert "applied 001_market_data" in first.stdout
    again = rata("db", "migrate")
    assert "up to date" in again.stdout
    status = rata("db", "status")
    assert "market_data" in status.stdout
    assert "applied" in status.stdout


def test_imported_bars_read_back_as_the_same_panel_and_backtest(rata, tmp_path):
    source = _daily_csv(tmp_path / "acme.csv")
    imported = rata("data", "import", str(source), "--symbol", "ACME", "--timeframe", "1d", "--venue", "NYSE")
    assert imported.exit_code == 0, imported.output
    assert "imported 300 1d bars" in imported.stdout
    assert "imported 300" in rata("data", "import", str(source), "--symbol", "ACME", "--venue", "NYSE").stdout

    from_file = load_file(source, symbol="ACME", timeframe="1D")
    stored = load_bars("ACME", "1d", settings=load_settings(data_dir=tmp_path / "state"))
    pd.testing.assert_frame_equal(stored.close, from_file.close, check_freq=False)
    pd.testing.assert_frame_equal(stored.volume, from_file.volume, check_freq=False)
    assert backtest(SmaCross(), stored).final_equity == pytest.approx(backtest(SmaCross(), from_file).final_equity)

    out = tmp_path / "export.parquet"
    exported = rata("data", "export", "--symbol", "ACME", "--timeframe", "1d", "--out", str(out))
    assert exported.exit_code == 0, exported.output
    round_trip = load_file(out, symbol="ACME", timeframe="1D")
    pd.testing.assert_frame_equal(round_trip.close, from_file.close, check_freq=False)


def test_data_errors_are_one_line(rata, tmp_path):
    result = CliRunner().invoke(app, ["data", "import", str(tmp_path / "none.csv"), "--symbol", "X"])
    assert result.exit_code == 2
    assert "no such file" in result.stderr
    bad_tf = CliRunner().invoke(app, ["data", "import", str(tmp_path / "none.csv"), "--symbol", "X", "-t", "2m"])
    assert bad_tf.exit_code == 2
    assert "unknown timeframe '2m'" in bad_tf.stderr


def test_ingest_synthetic_feed_stores_every_accepted_tick(rata, tmp_path):
    import asyncio

    from framework.storage import open_database

    result = rata("ingest", "--feed", "synthetic", "--instruments", "20", "--rate", "2000", "--duration", "2")
    assert result.exit_code == 0, result.output
    assert "ingestion finished" in result.stdout

    async def count() -> tuple[int, int]:
        async with open_database(load_settings(data_dir=tmp_path / "state")) as db, db.pool.acquire() as conn:
            return await conn.fetchval("SELECT count(*) FROM ticks"), await conn.fetchval("SELECT count(*) FROM bars")

    ticks, bars = asyncio.run(count())
    assert ticks > 1000
    assert bars > 0
    assert f"{ticks:,}" in result.stdout  # every accepted tick was written, and the summary says how many


def test_ingest_ccxt_needs_exchange_and_symbols(rata):
    result = CliRunner().invoke(app, ["ingest", "--feed", "ccxt"])
    assert result.exit_code == 2
    assert "--exchange and at least one --symbol" in result.stderr

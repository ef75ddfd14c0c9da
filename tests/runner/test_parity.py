"""Parity: every shipped strategy replayed through the live runner trades exactly as its vectorbt backtest.

The replay goes through the real parts: `ReplayFeed` on a simulated clock, the strategy engine,
the order manager committing to PostgreSQL, the risk gateway and the paper venue. Zero
differences are required: same fills (time, side, quantity, price, fees) and the same final
equity to the cent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from framework import ExecutionModel
from framework.data.datasets import load_dataset
from framework.registry import get_strategy, strategy_classes
from framework.storage import Database
from runner.cli import app
from runner.parity import run_parity

MODEL = ExecutionModel(fees=0.001, slippage=0.0005)
DATASET = {"momentum_rotation": "STOCKS"}


@pytest.mark.parametrize("name", sorted(strategy_classes()))
async def test_every_shipped_strategy_has_zero_differences(name: str, database: Database, tmp_path: Path) -> None:
    data = load_dataset(DATASET.get(name, "GOOG"))
    strategy = get_strategy(name)()
    result = await run_parity(strategy, data, MODEL, dsn=database.dsn, workdir=tmp_path, migrate=False)
    assert result.differences == []
    assert len(result.live_fills) == len(result.backtest_fills) >= 4
    assert abs(float(result.live_equity) - result.backtest_equity) < 0.005


async def test_many_instruments_share_cash_sleeves_exactly(database: Database, tmp_path: Path) -> None:
    data = load_dataset("STOCKS")
    strategy = get_strategy("sma_cross")(fast=5, slow=40)
    result = await run_parity(strategy, data, MODEL, dsn=database.dsn, workdir=tmp_path, migrate=False)
    assert result.ok, result.differences
    assert set(result.live_fills["symbol"]) == set(data.symbols)


async def test_a_difference_is_reported_with_the_first_differing_fill(database: Database, tmp_path: Path) -> None:
    # Short entries are sized at the decision close (a venue cannot cap a short sale by cash), the
    # backtest sizes them at the next open: parity must catch and name the difference.
    data = load_dataset("GOOG").iloc[:400]
    strategy = get_strategy("sma_cross")(fast=10, slow=30, short=True)
    result = await run_parity(strategy, data, MODEL, dsn=database.dsn, workdir=tmp_path, migrate=False)
    assert not result.ok
    assert result.differences[0].startswith("fill ")
    assert "quantity" in result.differences[0]


def test_cli_prints_the_summary_and_exits_nonzero_on_a_difference(admin_dsn: str) -> None:
    runner = CliRunner()
    env = {**os.environ, "DATABASE_URL": admin_dsn, "COLUMNS": "200"}
    same = runner.invoke(app, ["parity", "rsi_reversion", "--dataset", "GOOG", "--fees", "0.001"], env=env)
    assert same.exit_code == 0, same.output
    assert "identical trades and final equity to the cent" in same.output
    differs = runner.invoke(
        app, ["parity", "sma_cross", "--dataset", "GOOG", "--set", "short=true", "--fees", "0.001"], env=env
    )
    assert differs.exit_code == 1, differs.output
    assert "parity FAILED" in differs.output
    assert "first: fill" in differs.output

"""`rata run` as an operator starts it: a real subprocess, stopped by SIGTERM, orders recorded with their mode."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

from framework.storage import Database

CONFIG = """
[runner]
mode = "replay"
fees = 0.001
paper_dir = "{paper}"

[feed]
kind = "replay"
dataset = "GOOG"
speed = {speed}

[[strategies]]
id = "sma-goog"
strategy = "sma_cross"
params = {{ fast = 5, slow = 20 }}
symbols = ["GOOG"]
timeframe = "1d"
capital = 100000
"""


def write_config(tmp_path: Path, speed: float) -> Path:
    path = tmp_path / "rata.toml"
    path.write_text(CONFIG.format(paper=tmp_path / "paper", speed=speed))
    return path


def rata(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "runner.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def count_orders(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM orders"))
    finally:
        await conn.close()


async def test_sigterm_stops_the_runner_cleanly_mid_replay(database: Database, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": database.dsn, "RATA_DATA_DIR": str(tmp_path / "data")}
    # 1 day of history per 2 ms: the replay takes several seconds, long enough to interrupt it.
    process = rata("run", "--config", str(write_config(tmp_path, 43_200_000)), env=env)
    deadline = time.monotonic() + 120
    while await count_orders(database.dsn) < 4:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the runner placed no orders"
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "reconciled" in out
    assert "runner stopped (replay)" in out
    rows = await database.pool.fetch("SELECT status, mode FROM orders")
    assert {r["mode"] for r in rows} == {"replay"}
    assert all(r["status"] in ("filled", "expired", "accepted", "cancelled") for r in rows)
    fills = await database.pool.fetchval("SELECT count(*) FROM fills WHERE mode = 'replay'")
    assert fills >= 2
    instance = await database.pool.fetchrow("SELECT state, last_error FROM strategy_instances WHERE id = 'sma-goog'")
    assert instance["state"] == "running"
    assert instance["last_error"] is None


async def test_a_restarted_runner_reconciles_and_carries_on(database: Database, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": database.dsn, "RATA_DATA_DIR": str(tmp_path / "data")}
    config = write_config(tmp_path, 0)
    first = subprocess.run(
        [sys.executable, "-m", "runner.cli", "run", "--config", str(config)], env=env, capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    orders = await count_orders(database.dsn)
    assert orders > 10
    report = await database.pool.fetchrow("SELECT ok FROM reconciliations ORDER BY id DESC LIMIT 1")
    assert report["ok"] is True


def test_live_mode_needs_the_opt_in_flag_and_credentials(tmp_path: Path, admin_dsn: str) -> None:
    config = tmp_path / "live.toml"
    config.write_text(
        '[runner]\nmode = "live"\n[feed]\nkind = "ccxt"\nexchange = "binance"\nsymbols = ["BTC/USDT"]\n'
        '[broker]\nkind = "ccxt"\nexchange = "binance"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RATA_BINANCE")}
    env.update(DATABASE_URL=admin_dsn, RATA_DATA_DIR=str(tmp_path / "data"))
    refused = subprocess.run(
        [sys.executable, "-m", "runner.cli", "run", "--config", str(config)], env=env, capture_output=True, text=True
    )
    assert refused.returncode == 2
    assert "--live-trading-i-accept-the-risk" in refused.stderr
    no_keys = subprocess.run(
        [sys.executable, "-m", "runner.cli", "run", "--config", str(config), "--live-trading-i-accept-the-risk"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert no_keys.returncode == 2
    assert "no API credentials for binance" in no_keys.stderr

"""Fixtures of the monitoring tests: a metrics instance with every metric carrying a sample."""

from __future__ import annotations

import pytest

from framework.clock import SimulatedClock
from runner.metrics import RunnerMetrics

START_NS = 1_900_000_000 * 1_000_000_000


def exercise(metrics: RunnerMetrics) -> None:
    """Give every metric at least one sample, as a running runner would."""
    metrics.ticks_received.labels("binance").inc(10)
    metrics.ticks_written.inc(9)
    metrics.bad_messages.labels("binance", "non_finite_price").inc()
    metrics.tick_to_commit.observe(0.004)
    metrics.bar_close_to_order.labels("sma_cross").observe(0.02)
    metrics.signal_to_broker.labels("paper").observe(0.001)
    metrics.orders.labels("sma_cross", "filled").inc()
    metrics.risk_refusals.labels("max_position").inc()
    metrics.position.labels("sma_cross", "BTC/USDT").set(0.5)
    metrics.equity.labels("sma_cross").set(10_250)
    metrics.realised_pnl.labels("sma_cross").set(200)
    metrics.unrealised_pnl.labels("sma_cross").set(50)
    metrics.daily_loss.labels("*").set(-250)
    metrics.daily_loss_limit.labels("*").set(1000)
    metrics.set_trading_state("*", "active")
    metrics.set_feed_connected("binance", True)
    metrics.feed_message("binance")
    metrics.feed_reconnects.labels("binance").inc()
    metrics.event_loop_lag.observe(0.0004)
    metrics.db_pool_in_use.set(1)
    metrics.db_pool_size.set(2)
    metrics.db_pool_max.set(10)
    metrics.db_errors.labels("write_ticks").inc()
    metrics.websocket_clients.set(3)
    metrics.websocket_disconnects.labels("slow_consumer").inc()


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(START_NS)


@pytest.fixture
def metrics(clock) -> RunnerMetrics:
    return RunnerMetrics(clock=clock)

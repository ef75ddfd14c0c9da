"""The runner's Prometheus metrics: names, own registry, computed gauges and the event-loop lag sampler."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from runner.metrics import EventLoopLagSampler, RunnerMetrics
from tests.monitoring.conftest import START_NS, exercise

NS = 1_000_000_000

EXPECTED = {
    "rata_ticks_received": "counter",
    "rata_ticks_written": "counter",
    "rata_bad_messages": "counter",
    "rata_tick_to_commit_seconds": "histogram",
    "rata_bar_close_to_order_seconds": "histogram",
    "rata_signal_to_broker_seconds": "histogram",
    "rata_orders": "counter",
    "rata_risk_refusals": "counter",
    "rata_position_quantity": "gauge",
    "rata_strategy_equity": "gauge",
    "rata_strategy_realised_pnl": "gauge",
    "rata_strategy_unrealised_pnl": "gauge",
    "rata_risk_daily_loss": "gauge",
    "rata_risk_daily_loss_limit": "gauge",
    "rata_trading_state": "gauge",
    "rata_feed_connected": "gauge",
    "rata_feed_last_message_timestamp_seconds": "gauge",
    "rata_feed_staleness_seconds": "gauge",
    "rata_feed_reconnects": "counter",
    "rata_event_loop_lag_seconds": "histogram",
    "rata_db_pool_connections_in_use": "gauge",
    "rata_db_pool_connections": "gauge",
    "rata_db_pool_max_connections": "gauge",
    "rata_db_errors": "counter",
    "rata_websocket_clients": "gauge",
    "rata_websocket_disconnects": "counter",
}


def _families(metrics: RunnerMetrics) -> dict:
    return {f.name: f for f in text_string_to_metric_families(metrics.exposition().decode())}


def _value(metrics: RunnerMetrics, sample_name: str, **labels: str) -> float:
    for family in _families(metrics).values():
        for sample in family.samples:
            if sample.name == sample_name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise KeyError(sample_name, labels)


def test_every_metric_of_the_issue_is_exported_with_its_type(metrics):
    exercise(metrics)
    families = {name: f for name, f in _families(metrics).items() if not name.endswith("_created")}
    assert {name: f.type for name, f in families.items()} == EXPECTED
    assert all(f.samples for f in families.values())


def test_metrics_live_in_their_own_registry(metrics):
    exercise(metrics)
    assert b"rata_" not in __import__("prometheus_client").generate_latest(REGISTRY)
    other = RunnerMetrics()
    assert _value(other, "rata_ticks_written_total") == 0
    assert _value(metrics, "rata_ticks_written_total") == 9


def test_the_trading_state_is_one_hot_per_scope(metrics):
    metrics.set_trading_state("*", "active")
    metrics.set_trading_state("sma_cross", "halted")
    metrics.set_trading_state("*", "reducing")
    assert _value(metrics, "rata_trading_state", scope="*", state="reducing") == 1
    assert _value(metrics, "rata_trading_state", scope="*", state="active") == 0
    assert _value(metrics, "rata_trading_state", scope="sma_cross", state="halted") == 1
    with pytest.raises(ValueError, match="unknown trading state"):
        metrics.set_trading_state("*", "paused")


def test_feed_staleness_is_measured_on_the_clock_at_scrape_time(metrics, clock):
    metrics.set_feed_connected("binance", True)
    clock.advance_to(START_NS + 5 * NS)
    assert _value(metrics, "rata_feed_staleness_seconds", feed="binance") == 5
    metrics.feed_message("binance")
    clock.advance_to(START_NS + 12 * NS)
    assert _value(metrics, "rata_feed_staleness_seconds", feed="binance") == 7
    assert _value(metrics, "rata_feed_last_message_timestamp_seconds", feed="binance") == START_NS / NS + 5
    metrics.set_feed_connected("binance", False)
    assert _value(metrics, "rata_feed_connected", feed="binance") == 0
    assert _value(metrics, "rata_feed_staleness_seconds", feed="binance") == 7


@pytest.mark.db
async def test_the_database_pool_gauges_read_the_pool_when_scraped(metrics, database):
    metrics.bind_pool(database.pool)
    async with database.pool.acquire():
        assert _value(metrics, "rata_db_pool_connections_in_use") == 1
        assert _value(metrics, "rata_db_pool_max_connections") == 8
        assert _value(metrics, "rata_db_pool_connections") >= 1
    assert _value(metrics, "rata_db_pool_connections_in_use") == 0


async def test_the_lag_sampler_records_how_late_the_loop_woke_it():
    readings = iter([100.0, 100.35, 200.0, 200.25])
    lags: list[float] = []
    sampler = EventLoopLagSampler(lags.append, interval_s=0.25, time_fn=lambda: next(readings))
    await sampler.run(samples=2)
    assert lags == pytest.approx([0.1, 0.0])


async def test_the_lag_sampler_runs_in_the_background_until_stopped(metrics):
    async with EventLoopLagSampler(metrics.event_loop_lag.observe, interval_s=0.001) as sampler:
        while _value(metrics, "rata_event_loop_lag_seconds_count") < 3:
            await asyncio.sleep(0.001)
    count = _value(metrics, "rata_event_loop_lag_seconds_count")
    await asyncio.sleep(0.01)
    assert _value(metrics, "rata_event_loop_lag_seconds_count") == count
    assert sampler._task is None
    with pytest.raises(ValueError, match="positive"):
        EventLoopLagSampler(metrics.event_loop_lag.observe, interval_s=0)


def test_bulk_histogram_exports_what_prometheus_client_s_histogram_would():
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from runner.metrics import LATENCY_BUCKETS, BulkHistogram

    values = [0.0, 0.0004, 0.0005, 0.0007, 0.001, 0.003, 0.02, 0.5, 7.0, 11.0, 42.0]
    theirs_registry, ours_registry = CollectorRegistry(), CollectorRegistry()
    theirs = Histogram("rata_x_seconds", "doc", buckets=LATENCY_BUCKETS, registry=theirs_registry)
    ours = BulkHistogram("rata_x_seconds", "doc", LATENCY_BUCKETS)
    ours_registry.register(ours)
    for v in values:
        theirs.observe(v)
    ours.observe_many(values[:-1])
    ours.observe(values[-1])

    def samples(registry: CollectorRegistry) -> dict[tuple[str, str | None], float]:
        text = generate_latest(registry).decode()
        return {
            (s.name, s.labels.get("le")): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if not s.name.endswith("_created")
        }

    assert samples(ours_registry) == pytest.approx(samples(theirs_registry))

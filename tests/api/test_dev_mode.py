"""The API over a dev-mode runner: synthetic ticks ingested into PostgreSQL, bars built live, paper fills."""

from __future__ import annotations

import json
from decimal import Decimal

from prometheus_client.parser import text_string_to_metric_families

from runner.config import FeedConfig, RunConfig, RunnerSection
from tests.api.helpers import serve_api, wait_for
from tests.api.test_ws import _collect, _connect, _subscribe


async def test_live_bars_stream_and_a_manual_order_fills_in_dev_mode(database, tmp_path) -> None:
    config = RunConfig(
        runner=RunnerSection(mode="dev", paper_dir=tmp_path / "paper", bar_close_delay_s=0.2),
        feed=FeedConfig(kind="synthetic", instruments=3, rate=300, seed=1),
    ).check()
    async with serve_api(database, tmp_path, run_config=config) as api:
        token = await api.token("bob")
        async with _connect(api, token) as ws:
            assert await _subscribe(ws, channel="bars", symbol="SYN001", timeframe="1s") == "bars:SYN001:1s"
            await _subscribe(ws, channel="orders")
            bar = json.loads(await ws.recv())["data"]
            assert (bar["symbol"], bar["timeframe"]) == ("SYN001", "1s")
            async with api.client(token) as http:
                sent = await http.post("/api/v1/orders", json={"symbol": "SYN001", "side": "buy", "quantity": "3"})
            assert sent.status_code == 201, sent.text
            mine = sent.json()["client_id"]
            found = await _collect(ws, {"orders": lambda d: d["client_id"] == mine and d["status"] == "filled"})
        assert Decimal(found["orders"]["filled"]) == 3

        async def stored() -> dict | None:
            async with api.client(token) as http:
                page = (await http.get("/api/v1/bars", params={"symbol": "SYN001", "timeframe": "1s"})).json()
            return page if page["items"] else None

        async def sampled() -> str | None:  # feed counters are sampled every telemetry interval
            async with api.client() as http:
                metrics = (await http.get("/metrics")).text
            return metrics if 'rata_ticks_received_total{feed="synthetic"}' in metrics else None

        page = await wait_for(stored)
        assert await wait_for(sampled)
    assert page["items"][0]["venue"] == "SIM"


def _committed_count(metrics: str) -> float:
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    samples = families["rata_tick_to_commit_seconds"].samples
    return next(s.value for s in samples if s.name == "rata_tick_to_commit_seconds_count")


async def test_committed_trades_stream_on_the_ticks_channel_and_feed_the_commit_latency_in_dev_mode(
    database, tmp_path
) -> None:
    config = RunConfig(
        runner=RunnerSection(mode="dev", paper_dir=tmp_path / "paper", bar_close_delay_s=0.2),
        feed=FeedConfig(kind="synthetic", instruments=3, rate=300, seed=2),
    ).check()
    async with serve_api(database, tmp_path, run_config=config) as api:
        token = await api.token("bob")
        async with _connect(api, token) as ws:
            assert await _subscribe(ws, channel="ticks", symbol="SYN002") == "ticks:SYN002"
            received = [json.loads(await ws.recv()) for _ in range(20)]
        async with api.client(token) as http:
            page = (await http.get("/api/v1/ticks", params={"symbol": "SYN002", "limit": 1000})).json()
            metrics = (await http.get("/metrics")).text
    ticks = [m["data"] for m in received]
    assert {m["channel"] for m in received} == {"ticks:SYN002"}
    assert {t["symbol"] for t in ticks} == {"SYN002"}
    assert all(t["price"] > 0 and t["size"] > 0 for t in ticks)
    times = [t["time"] for t in ticks]
    assert times == sorted(times)
    stored = {(t["trade_id"], t["price"], t["size"]) for t in page["items"]}
    assert {(t["trade_id"], t["price"], t["size"]) for t in ticks} <= stored  # published after their commit
    assert _committed_count(metrics) >= 20

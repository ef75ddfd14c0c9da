"""The service around the runner: lifespan, readiness, Prometheus metrics, CORS, OpenAPI."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from framework.security import Passwords
from runner.api.app import ApiOptions
from runner.config import FeedConfig, StrategyConfig
from tests.api.helpers import FAST_ARGON2, ApiServer, replay_config, serve_api, wait_for

ORIGIN = "https://desk.example"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_export_orders_refusals_states_latencies_and_the_service(database, tmp_path) -> None:
    fast_sma = StrategyConfig(
        id="sma-fast", strategy="sma_cross", params={"fast": 2, "slow": 5}, symbols=["GOOG"], timeframe="1d"
    )
    async with serve_api(database, tmp_path, run_config=replay_config(tmp_path, strategies=[fast_sma])) as api:
        trader, admin = await api.token("bob"), await api.token("alice")
        async with api.client(admin) as http:
            await http.put("/api/v1/risk/limits", params={"scope": "manual"}, json={"max_order_qty": "5"})
        async with api.client(trader) as http:
            order = (await http.post("/api/v1/orders", json={"symbol": "GOOG", "side": "buy", "quantity": "3"})).json()
            refused = await http.post("/api/v1/orders", json={"symbol": "GOOG", "side": "buy", "quantity": "6"})
        assert refused.json()["rule"] == "max_order_qty"

        async def exported() -> dict | None:
            async with api.client() as http:
                samples = _samples((await http.get("/metrics")).text)
            filled = samples.get(("rata_orders_total", (("status", "filled"), ("strategy", "manual"))), 0)
            decided = samples.get(("rata_bar_close_to_order_seconds_count", (("strategy", "sma-fast"),)), 0)
            lag = samples.get(("rata_event_loop_lag_seconds_count", ()), 0)
            held = samples.get(("rata_position_quantity", (("strategy", "manual"), ("symbol", "GOOG"))), 0)
            return samples if filled >= 1 and decided >= 1 and lag >= 1 and held == 3 else None

        samples = await wait_for(exported)
    assert order["client_id"]
    assert samples[("rata_risk_refusals_total", (("rule", "max_order_qty"),))] == 1
    assert samples[("rata_orders_total", (("status", "rejected"), ("strategy", "manual")))] == 1
    assert samples[("rata_trading_state", (("scope", "*"), ("state", "active")))] == 1
    assert samples[("rata_signal_to_broker_seconds_count", (("broker", "paper"),))] >= 1
    assert samples[("rata_feed_connected", (("feed", "replay"),))] == 1
    assert samples[("rata_db_pool_max_connections", ())] >= 1
    assert samples[("rata_position_quantity", (("strategy", "manual"), ("symbol", "GOOG")))] == 3
    assert ("rata_strategy_equity", (("strategy", "sma-fast"),)) in samples
    assert samples[("rata_websocket_clients", ())] == 0


async def test_when_the_replay_ends_the_runner_is_stopped_but_its_book_stays_readable(database, tmp_path) -> None:
    config = replay_config(tmp_path)
    config = config.model_copy(update={"feed": FeedConfig(kind="replay", dataset="GOOG", speed=0)})
    async with serve_api(database, tmp_path, run_config=config) as api:
        token = await api.token("bob")

        async def stopped() -> dict | None:
            async with api.client() as http:
                ready = await http.get("/api/v1/ready")
            return ready.json() if ready.status_code == 503 else None

        ready = await wait_for(stopped, timeout_s=120)
        async with api.client(token) as http:
            order = await http.post("/api/v1/orders", json={"symbol": "GOOG", "side": "buy", "quantity": "1"})
            positions = await http.get("/api/v1/positions")
    assert (ready["runner"], ready["ready"]) == ("stopped", False)
    assert (order.status_code, order.json()["code"]) == (503, "runner_stopped")
    assert positions.status_code == 200


async def test_cors_is_open_only_to_the_origins_given(database, tmp_path) -> None:
    options = ApiOptions(cors_origins=(ORIGIN,), passwords=Passwords(FAST_ARGON2), stop_timeout_s=30.0)
    async with serve_api(database, tmp_path, options=options) as api, api.client() as http:
        allowed = await http.options(
            "/api/v1/health", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}
        )
        other = await http.get("/api/v1/health", headers={"Origin": "https://evil.example"})
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "access-control-allow-origin" not in other.headers


async def test_cors_headers_are_absent_without_configured_origins(api: ApiServer) -> None:
    async with api.client() as http:
        response = await http.get("/api/v1/health", headers={"Origin": "https://desk.example"})
    assert "access-control-allow-origin" not in response.headers


async def test_the_openapi_document_covers_every_resource_and_secures_them(api: ApiServer) -> None:
    async with api.client() as http:
        document = (await http.get("/api/v1/openapi.json")).json()
    paths = document["paths"]
    for path in (
        "/api/v1/health",
        "/api/v1/ready",
        "/api/v1/auth/login",
        "/api/v1/instruments",
        "/api/v1/bars",
        "/api/v1/ticks",
        "/api/v1/strategies",
        "/api/v1/instances/{instance_id}/params",
        "/api/v1/orders",
        "/api/v1/orders/cancel-all",
        "/api/v1/fills",
        "/api/v1/positions",
        "/api/v1/account",
        "/api/v1/account/equity",
        "/api/v1/risk/limits",
        "/api/v1/risk/kill",
        "/api/v1/backtests",
        "/api/v1/audit",
        "/metrics",
    ):
        assert path in paths, path
    secured = list(paths["/api/v1/orders"].values())
    assert all(op.get("security") for op in secured)
    schemas = document["components"]["schemas"]
    assert schemas["OrderCreate"]["additionalProperties"] is False
    assert schemas["ErrorBody"]["required"] == ["code", "reason"]

"""`create_app`: the FastAPI app of one runner, with a lifespan that starts and stops it.

The lifespan opens the database (embedded unless `DATABASE_URL` is set) and migrates it, builds
the runner for `run_config` (`runner_factory`, `runner.wiring.build_runner` by default), starts
it (reconciliation, strategies) and runs it in a task; on shutdown it asks the runner to stop,
waits for it (open orders are cancelled when the config says so) and closes the database.
uvicorn serves the app inside the runner's process (`rata serve`)::

    app = create_app(load_settings("rata.toml"), load_run_config("rata.toml").with_mode("dev"))
    uvicorn.run(app, host="127.0.0.1", port=8000)

Routes: REST under `/api/v1` (OpenAPI at `/api/v1/openapi.json`, docs at `/api/v1/docs`), the
WebSocket at `/api/v1/ws`, Prometheus at `/metrics`. CORS is closed unless
`ApiOptions.cors_origins` names origins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from framework.settings import Settings
from framework.storage import apply_migrations, open_database
from runner.api.backtests import Backtests
from runner.api.context import ApiContext, ApiOptions, RunnerFactory
from runner.api.errors import install_error_handlers
from runner.api.hub import EventHub
from runner.api.logs import install_redaction
from runner.api.routes import (
    audit,
    auth,
    backtests,
    credentials,
    health,
    market,
    orders,
    positions,
    risk,
    strategies,
    users,
)
from runner.api.telemetry import Telemetry
from runner.api.ws import router as ws_router
from runner.config import RunConfig
from runner.metrics import EventLoopLagSampler, RunnerMetrics
from runner.service import Runner
from runner.wiring import build_runner

__all__ = ["API_PREFIX", "ApiOptions", "create_app"]

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"


def create_app(
    settings: Settings,
    run_config: RunConfig,
    *,
    runner_factory: RunnerFactory | None = None,
    options: ApiOptions | None = None,
) -> FastAPI:
    """Return the app serving one runner; the runner starts with the app's lifespan (see the module docstring)."""
    ctx = ApiContext(settings, run_config, options or ApiOptions(), runner_factory)
    app = FastAPI(
        title="rata runner API",
        version="1",
        summary="Trade, watch and steer one rata runner: orders, positions, strategies, risk, market data.",
        lifespan=_lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.api = ctx
    app.state.backtests = Backtests(ctx.options.backtests_kept)
    install_error_handlers(app)
    install_redaction()
    if ctx.options.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(ctx.options.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    for module in (health, auth, users, credentials, audit, market, strategies, orders, positions, risk, backtests):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(ws_router, prefix=API_PREFIX)
    app.include_router(health.metrics_router)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    ctx: ApiContext = app.state.api
    async with open_database(ctx.settings) as db:
        await apply_migrations(db.pool)
        ctx.bind(db.pool)
        users, _, _ = ctx.store()
        if not await users.list():
            log.warning("no API users yet: add one with `rata users add NAME --role admin`")
        await _start_runner(ctx, db.pool)
        telemetry = Telemetry(ctx)
        lag = EventLoopLagSampler(ctx.metrics.event_loop_lag.observe)
        telemetry.start()
        lag.start()
        try:
            yield
        finally:
            await telemetry.stop()
            await lag.stop()
            await _stop_runner(ctx)


async def _start_runner(ctx: ApiContext, pool: asyncpg.Pool) -> None:
    factory = ctx.runner_factory or build_runner
    runner = await factory(ctx.run_config, ctx.settings, pool)
    ctx.metrics = RunnerMetrics(clock=runner.clock)
    ctx.metrics.bind_pool(pool)
    runner.events.hub = EventHub(ctx.options.ws_queue_size)
    runner.events.attach_metrics(ctx.metrics)
    ctx.runner = runner
    try:
        report = await runner.start()
    except BaseException as exc:
        ctx.start_error = f"the runner did not start: {exc}"
        with contextlib.suppress(Exception):
            await runner.close()
        raise
    runner.events.prime()
    if runner.risk is not None:
        ctx.metrics.set_trading_state("*", runner.risk.state.value)
    if not report.ok:
        log.error("runner started HALTED: %s", report.reason)
    ctx.run_task = asyncio.create_task(_run(runner), name="rata-runner")


async def _run(runner: Runner) -> None:
    try:
        await runner.run()
    except Exception:
        log.exception("the runner stopped on an error")
        raise


async def _stop_runner(ctx: ApiContext) -> None:
    runner, task = ctx.runner, ctx.run_task
    if runner is None or task is None:
        return
    runner.stop()
    try:
        async with asyncio.timeout(ctx.options.stop_timeout_s):
            await asyncio.gather(task, return_exceptions=True)
    except TimeoutError:
        log.error("the runner did not stop within %.0f s; cancelling it", ctx.options.stop_timeout_s)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

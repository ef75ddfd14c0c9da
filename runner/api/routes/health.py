"""Liveness, readiness and the Prometheus metrics; no token needed (bind to localhost or firewall them)."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from runner.api.context import ApiContext, Ctx
from runner.api.schemas import HealthOut, ReadyOut

__all__ = ["metrics_router", "router"]

router = APIRouter(tags=["health"])
metrics_router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness: the process answers")
async def health() -> HealthOut:
    return HealthOut()


@router.get(
    "/ready",
    summary="Readiness: the runner trades and the database answers",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "Not ready (the body says why)"}},
)
async def ready(ctx: Ctx) -> Response:
    out = await readiness(ctx)
    return JSONResponse(out.model_dump(mode="json"), status_code=200 if out.ready else 503)


async def readiness(ctx: ApiContext) -> ReadyOut:
    """Return whether the runner is running, reconciled, and its database reachable."""
    database = False
    if ctx.pool is not None:
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
            async with asyncio.timeout(2.0):
                database = await ctx.pool.fetchval("SELECT true") is True
    runner = ctx.runner
    reconciled = bool(runner is not None and runner.reconciliation is not None and runner.reconciliation.ok)
    state = ctx.runner_state
    reason = ""
    if state != "running":
        reason = ctx.start_error or f"the runner is {state}"
    elif not database:
        reason = "the database does not answer"
    elif not reconciled:
        reason = runner.halted_reason if runner is not None else "not reconciled"
    return ReadyOut(
        ready=not reason,
        mode=ctx.run_config.runner.mode,
        runner=state,
        database=database,
        reconciled=reconciled,
        trading_state=runner.risk.state.value if runner is not None and runner.risk is not None else None,
        reason=reason,
    )


@metrics_router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Metrics"}},
)
async def metrics(ctx: Ctx) -> Response:
    return Response(ctx.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

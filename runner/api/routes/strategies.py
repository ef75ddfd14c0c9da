"""Strategy classes with their parameter declarations, and strategy instances driven at run time."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from framework.engine.instances import InstanceState
from runner.api import instances as service
from runner.api.auth import Trader, Viewer, audited
from runner.api.context import Ctx, LiveRunner, RunnerDep
from runner.api.errors import ERROR_RESPONSES
from runner.api.indicators import instance_indicators
from runner.api.schemas import InstanceCreate, InstanceOut, ParamsUpdate, StrategyClassOut
from runner.api.schemas.strategies import IndicatorsOut

__all__ = ["router"]

router = APIRouter(tags=["strategies"], responses=ERROR_RESPONSES)

InstanceId = Annotated[str, Path(min_length=1, max_length=63)]


@router.get("/strategies", summary="Strategy classes with their parameters: type, default, bounds or choices")
async def strategy_classes(who: Viewer) -> list[StrategyClassOut]:
    return service.describe_classes()


@router.get("/instances", summary="Strategy instances with their state and last error")
async def list_instances(who: Viewer, runner: RunnerDep) -> list[InstanceOut]:
    return service.instances(runner)


@router.get("/instances/{instance_id}", summary="One strategy instance")
async def get_instance(instance_id: InstanceId, who: Viewer, runner: RunnerDep) -> InstanceOut:
    return service.instance(runner, instance_id)


@router.get(
    "/instances/{instance_id}/indicators",
    summary="What an instance draws on one instrument: its strategy's indicators over the newest bars",
)
async def get_indicators(
    instance_id: InstanceId,
    who: Viewer,
    runner: RunnerDep,
    symbol: Annotated[str, Query(min_length=1, max_length=64, description="an instrument of the instance's universe")],
    limit: Annotated[int, Query(ge=1, le=5000, description="how many of the newest bars")] = 300,
) -> IndicatorsOut:
    """Return the indicators (`Strategy.indicators`) of the instance on `symbol`, for its timeframe.

    Computed with the instance's current parameters on the live engine's rolling panel, with stored
    bars before its rows when it holds fewer than `limit` (see `runner.api.indicators`); NaN (not
    warmed up yet) is null. Refused with 422 `symbol_not_in_universe` for a symbol the instance
    does not trade.
    """
    return await instance_indicators(runner, instance_id, symbol, limit)


@router.post(
    "/instances", status_code=201, summary="Create a strategy instance (stopped unless `state` says otherwise)"
)
async def create_instance(body: InstanceCreate, who: Trader, runner: LiveRunner, ctx: Ctx) -> InstanceOut:
    detail = {"strategy": body.strategy, "symbols": body.symbols[:20], "params": body.params, "state": body.state}
    async with audited(ctx, who, "instances.create", body.id, detail):
        return await service.create(runner, body)


async def _transition(ctx: Ctx, who: Trader, runner: LiveRunner, instance_id: str, state: InstanceState) -> InstanceOut:
    async with audited(ctx, who, f"instances.{state.value}", instance_id):
        return await service.set_state(runner, instance_id, state)


@router.post("/instances/{instance_id}/start", summary="Start (or re-enable) an instance")
async def start_instance(instance_id: InstanceId, who: Trader, runner: LiveRunner, ctx: Ctx) -> InstanceOut:
    return await _transition(ctx, who, runner, instance_id, InstanceState.RUNNING)


@router.post("/instances/{instance_id}/stop", summary="Stop an instance (its positions stay as they are)")
async def stop_instance(instance_id: InstanceId, who: Trader, runner: LiveRunner, ctx: Ctx) -> InstanceOut:
    return await _transition(ctx, who, runner, instance_id, InstanceState.STOPPED)


@router.post("/instances/{instance_id}/pause", summary="Pause an instance (keeps its data warm, sends nothing)")
async def pause_instance(instance_id: InstanceId, who: Trader, runner: LiveRunner, ctx: Ctx) -> InstanceOut:
    return await _transition(ctx, who, runner, instance_id, InstanceState.PAUSED)


@router.patch("/instances/{instance_id}/params", summary="Change parameters (validated by the class's declarations)")
async def set_params(
    instance_id: InstanceId, body: ParamsUpdate, who: Trader, runner: LiveRunner, ctx: Ctx
) -> InstanceOut:
    async with audited(ctx, who, "instances.params", instance_id, {"params": body.params}):
        return await service.set_params(runner, instance_id, dict(body.params))

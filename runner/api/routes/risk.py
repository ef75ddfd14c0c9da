"""Risk: limits per scope, the trading state, the kill switch and its release, and refusals.

Traders may press the kill switch; only admins change limits, set states by hand or release.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from framework.events import ns_to_datetime
from framework.risk.limits import GLOBAL, RiskLimits
from framework.risk.state import TradingState
from framework.risk.store import RiskStore
from runner.api.auth import Admin, Trader, Viewer, audited
from runner.api.context import Ctx, LiveRunner, RunnerDep
from runner.api.convert import limits_body
from runner.api.errors import ERROR_RESPONSES
from runner.api.schemas import (
    KillRequest,
    RefusalOut,
    ReleaseRequest,
    RiskEventOut,
    RiskLimitsBody,
    RiskLimitsOut,
    RiskStateOut,
    ScopeStateOut,
    StateRequest,
)
from runner.api.schemas.common import Time
from runner.service import Runner

__all__ = ["router"]

router = APIRouter(prefix="/risk", tags=["risk"], responses=ERROR_RESPONSES)

Scope = Annotated[str, Query(min_length=1, max_length=63, pattern=r"^(\*|[A-Za-z0-9][A-Za-z0-9_.-]*)$")]


def _state(runner: Runner) -> RiskStateOut:
    assert runner.risk is not None
    core = runner.risk.core
    scopes = [
        ScopeStateOut(scope=scope, state=state.value, reason=reason)
        for scope, (state, reason) in sorted(core.states().items())
        if state is not TradingState.ACTIVE or scope == GLOBAL
    ]
    return RiskStateOut(state=runner.risk.state.value, reason=core.reason(GLOBAL), scopes=scopes)


@router.get("", summary="The account's trading state and every scope that is not active")
async def risk_state(who: Viewer, runner: RunnerDep) -> RiskStateOut:
    return _state(runner)


@router.get("/limits", summary="The limits of a scope ('*' is the account)")
async def get_limits(who: Viewer, runner: RunnerDep, scope: Scope = GLOBAL) -> RiskLimitsOut:
    assert runner.risk is not None
    return RiskLimitsOut(scope=scope, limits=limits_body(runner.risk.limits(scope)))


@router.put("/limits", summary="Replace the limits of a scope (persisted first, then applied)")
async def put_limits(
    body: RiskLimitsBody, who: Admin, runner: LiveRunner, ctx: Ctx, scope: Scope = GLOBAL
) -> RiskLimitsOut:
    assert runner.risk is not None
    wanted = body.model_dump(mode="json", exclude_none=True)
    async with audited(ctx, who, "risk.limits", scope, {"limits": wanted}):
        limits = RiskLimits.from_json(wanted)
        await runner.risk.set_limits(scope, limits)
    out = RiskLimitsOut(scope=scope, limits=limits_body(runner.risk.limits(scope)))
    runner.events.publish_risk(RiskEventOut(kind="limits", scope=scope, limits=out.limits))
    return out


@router.post("/kill", summary="Kill switch: halt the account and cancel every open order")
async def kill(body: KillRequest, who: Trader, runner: LiveRunner, ctx: Ctx) -> RiskStateOut:
    assert runner.risk is not None
    assert runner.orders is not None
    async with audited(ctx, who, "risk.kill", GLOBAL, {"reason": body.reason}) as note:
        await runner.risk.kill(f"{body.reason} (by {who.username})")
        note.detail["open_orders_after"] = len(runner.orders.open_orders())
    return _state(runner)


@router.post("/release", summary="Return the account (or one strategy) to active trading")
async def release(body: ReleaseRequest, who: Admin, runner: LiveRunner, ctx: Ctx) -> RiskStateOut:
    assert runner.risk is not None
    async with audited(ctx, who, "risk.release", body.strategy or GLOBAL, {"reason": body.reason}):
        await runner.risk.release(f"{body.reason} (by {who.username})", strategy=body.strategy)
    return _state(runner)


@router.put("/state", summary="Put the account in a trading state by hand (halted cancels open orders)")
async def set_state(body: StateRequest, who: Admin, runner: LiveRunner, ctx: Ctx) -> RiskStateOut:
    assert runner.risk is not None
    async with audited(ctx, who, "risk.state", GLOBAL, {"state": body.state, "reason": body.reason}):
        await runner.risk.set_state(TradingState(body.state), f"{body.reason} (by {who.username})")
    return _state(runner)


@router.get("/refusals", summary="The latest orders refused by risk, with their rule (oldest first)")
async def refusals(
    who: Viewer,
    runner: RunnerDep,
    ctx: Ctx,
    strategy: Annotated[str | None, Query(max_length=100)] = None,
    since: Time | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[RefusalOut]:
    assert runner.risk is not None
    await runner.risk.flush()
    rows = await RiskStore(ctx.db()).refusals(strategy=strategy, since=since, limit=limit)
    return [
        RefusalOut(
            time=ns_to_datetime(r.time_ns),
            client_id=r.client_id,
            strategy=r.strategy,
            symbol=r.symbol,
            rule=r.rule,
            reason=r.reason,
        )
        for r in rows
    ]

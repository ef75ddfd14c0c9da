"""Fills, positions, the account and its equity curve."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from runner.api import trading
from runner.api.auth import Viewer
from runner.api.context import Ctx, RunnerDep
from runner.api.errors import ERROR_RESPONSES
from runner.api.queries import equity_page, fills_page
from runner.api.schemas import AccountOut, EquityPage, FillsPage, PositionOut
from runner.api.schemas.common import Time

__all__ = ["router"]

router = APIRouter(tags=["positions"], responses=ERROR_RESPONSES)

Name = Annotated[str | None, Query(max_length=100)]
Cursor = Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")]


@router.get("/fills", summary="Fills of this runner's venue and mode, newest first, filtered and paged")
async def fills(
    who: Viewer,
    runner: RunnerDep,
    ctx: Ctx,
    strategy: Name = None,
    symbol: Name = None,
    client_id: Name = None,
    since: Time | None = None,
    until: Time | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Cursor = None,
) -> FillsPage:
    assert runner.orders is not None
    return await fills_page(
        ctx.db(),
        venue=runner.orders.venue,
        mode=runner.mode.value,
        strategy=strategy,
        symbol=symbol,
        client_id=client_id,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )


@router.get("/positions", summary="Positions per strategy and symbol, marked at the last prices")
async def positions(
    who: Viewer, runner: RunnerDep, strategy: Name = None, open_only: bool = False
) -> list[PositionOut]:
    return trading.positions(runner, strategy, open_only)


@router.get("/account", summary="Cash, equity, PnL and exposure of the whole book")
async def account(who: Viewer, runner: RunnerDep) -> AccountOut:
    return trading.account(runner)


@router.get("/account/equity", summary="Equity snapshots of one strategy instance, or of the account (their sum)")
async def equity(
    who: Viewer,
    ctx: Ctx,
    strategy: Name = None,
    start: Time | None = None,
    end: Time | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    cursor: Cursor = None,
) -> EquityPage:
    return await equity_page(ctx.db(), strategy=strategy, start=start, end=end, limit=limit, cursor=cursor)

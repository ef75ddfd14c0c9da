"""Backtests of a strategy on stored bars: run one, then read its stats, trades and equity curve."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from runner.api.auth import Trader, Viewer, audited
from runner.api.backtests import Backtests
from runner.api.context import Ctx
from runner.api.errors import ERROR_RESPONSES
from runner.api.schemas import BacktestEquityOut, BacktestOut, BacktestRequest, TradesOut

__all__ = ["router"]

router = APIRouter(prefix="/backtests", tags=["backtests"], responses=ERROR_RESPONSES)

BacktestId = Annotated[str, Path(min_length=1, max_length=64)]


def _backtests(request: Request) -> Backtests:
    backtests: Backtests = request.app.state.backtests
    return backtests


@router.post("", status_code=201, summary="Run a backtest on stored bars (one at a time; off the event loop)")
async def run_backtest(body: BacktestRequest, who: Trader, ctx: Ctx, request: Request) -> BacktestOut:
    detail = {"strategy": body.strategy, "symbols": body.symbols[:20], "timeframe": body.timeframe}
    async with audited(ctx, who, "backtests.run", body.strategy, detail) as note:
        out = await _backtests(request).run(ctx.db(), body)
        note.target = out.id
    return out


@router.get("", summary="The kept backtests, newest first")
async def list_backtests(who: Viewer, request: Request) -> list[BacktestOut]:
    return _backtests(request).recent()


@router.get("/{backtest_id}", summary="A backtest's statistics")
async def get_backtest(backtest_id: BacktestId, who: Viewer, request: Request) -> BacktestOut:
    return _backtests(request).get(backtest_id)


@router.get("/{backtest_id}/trades", summary="A backtest's trades in entry order")
async def backtest_trades(backtest_id: BacktestId, who: Viewer, request: Request) -> TradesOut:
    return _backtests(request).trades(backtest_id)


@router.get("/{backtest_id}/equity", summary="A backtest's equity and drawdown after every bar")
async def backtest_equity(backtest_id: BacktestId, who: Viewer, request: Request) -> BacktestEquityOut:
    return _backtests(request).equity(backtest_id)

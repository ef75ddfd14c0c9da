"""Instruments, and stored bars and ticks by time range, paged (limit + cursor)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from framework.storage.marketdata import fetch_instruments
from runner.api.auth import Viewer
from runner.api.context import Ctx
from runner.api.convert import instrument_out
from runner.api.errors import ERROR_RESPONSES
from runner.api.queries import bars_page, ticks_page
from runner.api.schemas import BarsPage, InstrumentOut, TicksPage
from runner.api.schemas.common import Time

__all__ = ["router"]

router = APIRouter(tags=["market data"], responses=ERROR_RESPONSES)

Symbol = Annotated[str, Query(min_length=1, max_length=64)]
Venue = Annotated[str | None, Query(max_length=64)]
Limit = Annotated[int, Query(ge=1, le=10_000)]
Cursor = Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")]


@router.get("/instruments", summary="Instruments traded by the runner and stored in the database")
async def instruments(who: Viewer, ctx: Ctx, venue: Venue = None) -> list[InstrumentOut]:
    stored = {key: inst for key, (_, inst) in (await fetch_instruments(ctx.db(), venue)).items()}
    traded = {}
    if ctx.runner is not None and ctx.runner.orders is not None:
        traded = {(i.venue, s): i for s, i in ctx.runner.orders.instruments.items() if venue in (None, i.venue)}
    keys = sorted(set(stored) | set(traded))
    return [
        instrument_out(traded.get(key) or stored[key], tradable=key in traded, stored=key in stored) for key in keys
    ]


@router.get("/bars", summary="Stored bars of one instrument and timeframe, by open time in [start, end)")
async def bars(
    who: Viewer,
    ctx: Ctx,
    symbol: Symbol,
    timeframe: Annotated[str, Query(min_length=1, max_length=8)],
    venue: Venue = None,
    start: Time | None = None,
    end: Time | None = None,
    limit: Limit = 1000,
    cursor: Cursor = None,
) -> BarsPage:
    return await bars_page(ctx.db(), symbol, timeframe, venue=venue, start=start, end=end, limit=limit, cursor=cursor)


@router.get("/ticks", summary="Stored ticks of one instrument, by time in [start, end)")
async def ticks(
    who: Viewer,
    ctx: Ctx,
    symbol: Symbol,
    venue: Venue = None,
    start: Time | None = None,
    end: Time | None = None,
    limit: Limit = 1000,
    cursor: Cursor = None,
) -> TicksPage:
    return await ticks_page(ctx.db(), symbol, venue=venue, start=start, end=end, limit=limit, cursor=cursor)

"""Orders: list and filter, one order, submit a manual order, cancel one, cancel all."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from runner.api import trading
from runner.api.auth import Trader, Viewer, audited
from runner.api.context import Ctx, LiveRunner, RunnerDep
from runner.api.convert import order_out
from runner.api.errors import ERROR_RESPONSES
from runner.api.queries import order_row_out, order_rows
from runner.api.schemas import CancelAllOut, OrderCreate, OrderOut, OrdersPage
from runner.api.schemas.common import Time

__all__ = ["router"]

router = APIRouter(prefix="/orders", tags=["orders"], responses=ERROR_RESPONSES)

StatusName = Literal[
    "new", "submitted", "accepted", "partially_filled", "filled", "cancel_pending", "cancelled", "rejected", "expired"
]
ClientId = Annotated[str, Path(min_length=1, max_length=100)]


@router.get("", summary="Orders of this runner's venue and mode, newest first, filtered and paged")
async def list_orders(
    who: Viewer,
    runner: RunnerDep,
    ctx: Ctx,
    status: StatusName | None = None,
    strategy: Annotated[str | None, Query(max_length=100)] = None,
    symbol: Annotated[str | None, Query(max_length=64)] = None,
    since: Time | None = None,
    until: Time | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> OrdersPage:
    assert runner.orders is not None
    rows, next_cursor = await order_rows(
        ctx.db(),
        venue=runner.orders.venue,
        mode=runner.mode.value,
        status=status,
        strategy=strategy,
        symbol=symbol,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )
    live = runner.orders.orders
    items = [order_out(live[r["client_id"]]) if r["client_id"] in live else order_row_out(r) for r in rows]
    return OrdersPage(items=items, next_cursor=next_cursor)


@router.get("/{client_id}", summary="One order")
async def get_order(client_id: ClientId, who: Viewer, runner: RunnerDep) -> OrderOut:
    return order_out(await trading.get_order(runner, client_id))


@router.post(
    "",
    status_code=201,
    summary="Submit a manual order (strategy 'manual'): committed, risk-checked, sent to the venue",
)
async def submit_order(body: OrderCreate, who: Trader, runner: LiveRunner, ctx: Ctx) -> OrderOut:
    detail = {
        "side": body.side,
        "quantity": str(body.quantity),
        "type": body.type,
        "limit_price": str(body.limit_price),
    }
    async with audited(ctx, who, "orders.submit", body.symbol, detail) as note:
        order = await trading.submit_manual(runner, body)
        note.target = order.client_id
        note.detail["status"] = order.status.value
    return order_out(order)


@router.post("/cancel-all", summary="Cancel every open order (of one strategy)")
async def cancel_all(
    who: Trader,
    runner: LiveRunner,
    ctx: Ctx,
    strategy: Annotated[str | None, Query(max_length=100)] = None,
) -> CancelAllOut:
    assert runner.orders is not None
    async with audited(ctx, who, "orders.cancel_all", strategy or "*") as note:
        done = await runner.orders.cancel_all(strategy)
        note.detail["orders"] = len(done)
    return CancelAllOut(cancelled=len(done), orders=[order_out(o) for o in done])


@router.post("/{client_id}/cancel", summary="Cancel one order (never blocked by risk)")
async def cancel_order(client_id: ClientId, who: Trader, runner: LiveRunner, ctx: Ctx) -> OrderOut:
    async with audited(ctx, who, "orders.cancel", client_id) as note:
        order = await trading.cancel(runner, client_id)
        note.detail["status"] = order.status.value
    return order_out(order)

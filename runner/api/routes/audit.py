"""The audit log (admin): who did what, when, to what, and how it ended; newest first."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from runner.api.auth import Admin
from runner.api.context import Ctx
from runner.api.errors import ERROR_RESPONSES, ApiError
from runner.api.schemas import AuditEntryOut, AuditPage
from runner.api.schemas.common import Time

__all__ = ["router"]

router = APIRouter(prefix="/audit", tags=["audit"], responses=ERROR_RESPONSES)


@router.get("", summary="Audit entries, newest first, filtered and paged")
async def audit_log(
    who: Admin,
    ctx: Ctx,
    username: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    outcome: Literal["ok", "refused", "error"] | None = None,
    since: Time | None = None,
    until: Time | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=40, description="next_cursor of the previous page")] = None,
) -> AuditPage:
    _, _, audit = ctx.store()
    before: int | None = None
    if cursor is not None:
        if not cursor.isdigit() or len(cursor) > 18:
            raise ApiError(422, "invalid_cursor", "the cursor is not one this API returned")
        before = int(cursor)
    entries = await audit.entries(
        username=username,
        action=action,
        outcome=outcome,
        since=since,
        until=until,
        before_id=before,
        limit=limit + 1,
    )
    page = entries[:limit]
    items = [
        AuditEntryOut(
            id=e.id,
            time=e.time,
            username=e.username,
            action=e.action,
            target=e.target,
            outcome=e.outcome.value,
            client=e.client,
            detail=e.detail,
        )
        for e in page
    ]
    return AuditPage(items=items, next_cursor=str(page[-1].id) if len(entries) > limit else None)

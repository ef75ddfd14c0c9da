"""The audit log: who did what, when, to what, and how it ended; append-only.

Every mutating call of the API and every `rata users` / `rata credentials` command writes one
entry, as do logins (success and failure). The table refuses UPDATE, DELETE and TRUNCATE by
trigger (migration 006), so history cannot be rewritten through the application's role.

`detail` is free-form JSON for the specifics (an order's quantity, a limit's new value). Keys that
look like secrets (password, secret, token, api key, master key, credential) are replaced by
`<redacted>` at any depth before anything is written: an audit log is read by more people than
the credential store.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg

from framework.clock import Clock, WallClock
from framework.events import ns_to_datetime

__all__ = ["AuditEntry", "AuditLog", "Outcome", "redact"]

REDACTED = "<redacted>"
_SECRET_KEY = re.compile(r"pass(word|phrase)?|secret|token|api[_-]?key|master[_-]?key|credential|private", re.I)
_LIMITS = {"username": 200, "action": 100, "target": 500, "client": 200}


class Outcome(StrEnum):
    """How an audited action ended."""

    OK = "ok"
    REFUSED = "refused"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit log row."""

    id: int
    time: datetime
    username: str
    action: str
    target: str
    outcome: Outcome
    client: str | None
    detail: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> AuditEntry:
        """Return the entry of an `audit_log` row."""
        detail = row["detail"]
        return cls(
            id=row["id"],
            time=row["time"],
            username=row["username"],
            action=row["action"],
            target=row["target"],
            outcome=Outcome(row["outcome"]),
            client=row["client"],
            detail=json.loads(detail) if isinstance(detail, str) else dict(detail),
        )


def redact(value: Any) -> Any:
    """Return `value` with the values of secret-looking keys replaced by `<redacted>`, at any depth."""
    if isinstance(value, Mapping):
        return {str(k): REDACTED if _SECRET_KEY.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def _clip(name: str, value: str | None) -> str | None:
    return None if value is None else value[: _LIMITS[name]]


class AuditLog:
    """Append entries to `audit_log` and read them back, newest first."""

    def __init__(self, pool: asyncpg.Pool, clock: Clock | None = None) -> None:
        self._pool = pool
        self._clock: Clock = clock or WallClock()

    async def record(
        self,
        username: str,
        action: str,
        target: str = "",
        outcome: Outcome | str = Outcome.OK,
        *,
        client: str | None = None,
        detail: Mapping[str, Any] | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> AuditEntry:
        """Append one entry and return it; pass `conn` to write it inside the caller's transaction."""
        payload = json.dumps(redact(dict(detail or {})), default=str, allow_nan=False)
        args = (
            ns_to_datetime(self._clock.now_ns()),
            _clip("username", username),
            _clip("action", action),
            _clip("target", target),
            Outcome(outcome).value,
            _clip("client", client),
            payload,
        )
        query = """
            INSERT INTO audit_log (time, username, action, target, outcome, client, detail)
            VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) RETURNING *
        """
        if conn is not None:
            row = await conn.fetchrow(query, *args)
        else:
            async with self._pool.acquire() as own:
                row = await own.fetchrow(query, *args)
        assert row is not None
        return AuditEntry.from_row(row)

    async def entries(
        self,
        *,
        username: str | None = None,
        action: str | None = None,
        outcome: Outcome | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Return matching entries, newest first; page with `before_id` = the last id of the previous page."""
        if not 1 <= limit <= 10_000:
            raise ValueError(f"limit must be within [1, 10000], got {limit}")
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                """
                SELECT * FROM audit_log
                WHERE ($1::text IS NULL OR username = $1) AND ($2::text IS NULL OR action = $2)
                  AND ($3::text IS NULL OR outcome = $3)
                  AND ($4::timestamptz IS NULL OR time >= $4) AND ($5::timestamptz IS NULL OR time < $5)
                  AND ($6::bigint IS NULL OR id < $6)
                ORDER BY id DESC LIMIT $7
                """,
                username,
                action,
                None if outcome is None else Outcome(outcome).value,
                since,
                until,
                before_id,
                limit,
            )
        return [AuditEntry.from_row(r) for r in rows]

"""Keyset paging: opaque cursors holding the sort key of the last row of a page.

A cursor is URL-safe base64 of a small JSON list (times as ISO strings); pages are read with
`WHERE key > cursor ORDER BY key LIMIT n + 1`, so each page is an index range scan however deep,
and rows written meanwhile are neither skipped nor repeated.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from runner.api.errors import ApiError

__all__ = ["decode_cursor", "encode_cursor", "page_cursor", "time_of"]


def encode_cursor(*key: Any) -> str:
    """Return the cursor of a sort key (datetimes, strings, numbers)."""
    values = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, arity: int) -> list[Any] | None:
    """Return the sort key in `cursor` (None for no cursor), or raise a 422 `invalid_cursor`."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ApiError(422, "invalid_cursor", "the cursor is not one this API returned") from None
    if not isinstance(values, list) or len(values) != arity:
        raise ApiError(422, "invalid_cursor", "the cursor is not one this API returned")
    return values


def time_of(value: Any) -> datetime:
    """Return the aware datetime of a cursor's time value, or raise a 422 `invalid_cursor`."""
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ApiError(422, "invalid_cursor", "the cursor is not one this API returned")
    return parsed


def page_cursor(rows: list[Any], limit: int, *key_names: str) -> tuple[list[Any], str | None]:
    """Return the first `limit` rows and the cursor after them (None when `rows` held no more)."""
    if len(rows) <= limit:
        return rows, None
    page = rows[:limit]
    last = page[-1]
    return page, encode_cursor(*(last[name] for name in key_names))

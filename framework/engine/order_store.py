"""Order, fill and reconciliation persistence for the order manager, in PostgreSQL.

Rows map to `Order`s and `Fill`s here and nowhere else; the schema lives in `migrations/003_trading.sql`
(orders, order_events, fills), `004_order_cash_limit.sql` and `005_order_manager.sql` (the client id
prefix, reconciliations).

Every write is one SQL statement, hence one transaction and one round trip: the statements are
hand-written with data-modifying CTEs so that an order row and its `order_events` row (and, for a
fill, the fill row too) commit together or not at all, and so that the signal-to-broker path pays a
single round trip for the intent. `write_changes` does the same for a whole batch of changes (the
order manager's group commit): a close of 40 strategies makes thousands of acknowledgements and
fills, and one statement for all of them costs about what one statement for one of them did.
Times are the injected clock's (replay runs in simulated time), stored with microsecond precision.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from framework.engine.intents import OrderIntent
from framework.errors import IntegrityError
from framework.events import datetime_to_ns, ns_to_datetime
from framework.orders.model import TERMINAL_STATUSES, Fill, Mode, Order, OrderSide, OrderStatus, OrderType

__all__ = ["FillConflict", "OrderChange", "OrderEvent", "OrderStore"]

_TERMINAL = sorted(s.value for s in TERMINAL_STATUSES)

_ORDER_COLUMNS = """
    o.client_id, o.strategy, o.venue, o.symbol, o.side, o.type, o.quantity, o.limit_price, o.mode, o.status,
    o.filled, o.avg_price, o.fees, o.venue_order_id, o.reason, o.created_at, o.updated_at, o.cash_limit,
    ARRAY(SELECT f.fill_id FROM fills f WHERE f.venue = o.venue AND f.client_id = o.client_id) AS fill_ids
"""

_INSERT_INTENTS = """
WITH input AS MATERIALIZED (
    SELECT $1::text || nextval('order_client_seq') AS client_id, t.*
    FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[]::numeric[], $7::text[]::numeric[],
                $8::text[]::numeric[], $9::text[])
        WITH ORDINALITY AS t(strategy, symbol, side, type, quantity, limit_price, cash_limit, detail, ord)
), inserted AS (
    INSERT INTO orders (client_id, strategy, venue, symbol, side, type, quantity, limit_price, cash_limit, mode,
                        status, created_at, updated_at)
    SELECT client_id, strategy, $10, symbol, side, type, quantity, limit_price, cash_limit, $11, 'new', $12, $12
    FROM input
    RETURNING client_id
), events AS (
    INSERT INTO order_events (client_id, status, detail, time)
    SELECT i.client_id, 'new', i.detail, $12 FROM input i JOIN inserted USING (client_id)
)
SELECT client_id FROM input ORDER BY ord
"""

_SAVE_ORDER = """
WITH updated AS (
    UPDATE orders SET status = $2, filled = $3, avg_price = $4, fees = $5, venue_order_id = $6, reason = $7,
                      updated_at = $8
    WHERE client_id = $1
    RETURNING client_id
)
INSERT INTO order_events (client_id, status, detail, time) SELECT client_id, $2, $9, $8 FROM updated
"""

_SAVE_FILL = """
WITH fill AS (
    INSERT INTO fills (venue, fill_id, client_id, strategy, symbol, side, quantity, price, fee, mode, time)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
    ON CONFLICT (venue, fill_id) DO NOTHING
    RETURNING client_id
), updated AS (
    UPDATE orders SET status = $12, filled = $13, avg_price = $14, fees = $15, updated_at = $16
    WHERE client_id = (SELECT client_id FROM fill)
    RETURNING client_id
), events AS (
    INSERT INTO order_events (client_id, status, detail, time) SELECT client_id, $12, $17, $16 FROM updated
)
SELECT EXISTS (SELECT 1 FROM fill)
"""

_WRITE_CHANGES = """
WITH fill AS (
    INSERT INTO fills (venue, fill_id, client_id, strategy, symbol, side, quantity, price, fee, mode, time)
    SELECT r->>0, r->>1, r->>2, r->>3, r->>4, r->>5, (r->>6)::numeric, (r->>7)::numeric, (r->>8)::numeric, r->>9,
           (r->>10)::timestamptz
    FROM json_array_elements($1::json) AS r
    ON CONFLICT (venue, fill_id) DO NOTHING
    RETURNING 1
), updated AS (
    UPDATE orders o SET status = u.status, filled = u.filled, avg_price = u.avg_price, fees = u.fees,
                        venue_order_id = u.venue_order_id, reason = u.reason, updated_at = u.updated_at
    FROM (
        SELECT r->>0 AS client_id, r->>1 AS status, (r->>2)::numeric AS filled, (r->>3)::numeric AS avg_price,
               (r->>4)::numeric AS fees, r->>5 AS venue_order_id, r->>6 AS reason,
               (r->>7)::timestamptz AS updated_at
        FROM json_array_elements($2::json) AS r
    ) AS u
    WHERE o.client_id = u.client_id
    RETURNING 1
), events AS (
    INSERT INTO order_events (client_id, status, detail, time)
    SELECT e.r->>0, e.r->>1, e.r->>2, (e.r->>3)::timestamptz
    FROM json_array_elements($3::json) WITH ORDINALITY AS e(r, ord)
    ORDER BY e.ord
)
SELECT (SELECT count(*) FROM fill) AS fills, (SELECT count(*) FROM updated) AS orders
"""
"""The rows of each table come as one JSON array of arrays (text, numbers as their exact text, times in ISO
8601 with microseconds), written by `write_changes` as text: asyncpg encodes array parameters element by
element, several times slower per value, and a close writes tens of thousands of values."""

_q: Callable[[str], str] = json.encoder.encode_basestring  # a JSON string literal (what `json.dumps` writes)


def _q_or_null(text: str | None) -> str:
    return "null" if text is None else _q(text)


def _decimal_or_null(value: Decimal | None) -> str:
    return "null" if value is None else f'"{value}"'


class FillConflict(IntegrityError):
    """A batch held a fill the database had stored already: nothing of the batch was written."""


@dataclass(frozen=True, slots=True)
class OrderChange:
    """One change to write: an order's new state and its event row (status, `detail`, at `time_ns`).

    `fill` is the execution that made the change, written with it (fills table).
    """

    order: Order
    detail: str
    time_ns: int
    fill: Fill | None = None


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One row of an order's history (`order_events`)."""

    client_id: str
    status: str
    detail: str
    time_ns: int


class OrderStore:
    """Reads and writes orders, their events, fills and reconciliations through an injected asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def client_prefix(self) -> str:
        """Return this database's client order id prefix (drawn once, by migration 005)."""
        prefix = await self._pool.fetchval("SELECT prefix FROM order_client_prefix WHERE id")
        return str(prefix)

    async def insert_intents(
        self, prefix: str, intents: Sequence[OrderIntent], *, venue: str, mode: Mode, time_ns: int
    ) -> list[str]:
        """Commit `intents` as new orders (with a 'new' event each) in one statement; return their client ids.

        The ids are `prefix` followed by the next values of `order_client_seq`, in the intents' order.
        """
        rows = await self._pool.fetch(
            _INSERT_INTENTS,
            prefix,
            [i.strategy for i in intents],
            [i.symbol for i in intents],
            [i.side.value for i in intents],
            [i.type.value for i in intents],
            _numerics(i.quantity for i in intents),
            _numerics(i.limit_price for i in intents),
            _numerics(i.cash_limit for i in intents),
            [i.reason for i in intents],
            venue,
            mode.value,
            ns_to_datetime(time_ns),
        )
        return [str(row["client_id"]) for row in rows]

    async def save(self, order: Order, detail: str, time_ns: int) -> None:
        """Write `order`'s state and an event row for it (status and `detail`), together."""
        await self._pool.execute(
            _SAVE_ORDER,
            order.client_id,
            order.status.value,
            order.filled,
            order.avg_price,
            order.fees,
            order.venue_order_id,
            order.reason,
            ns_to_datetime(time_ns),
            detail,
        )

    async def save_fill(self, fill: Fill, order: Order, detail: str, time_ns: int) -> bool:
        """Write `fill`, the order it leaves (`order`) and an event, together; False if the fill was stored before."""
        inserted = await self._pool.fetchval(
            _SAVE_FILL,
            fill.venue,
            fill.fill_id,
            fill.client_id,
            fill.strategy,
            fill.symbol,
            fill.side.value,
            fill.quantity,
            fill.price,
            fill.fee,
            fill.mode.value,
            ns_to_datetime(fill.time_ns or time_ns),
            order.status.value,
            order.filled,
            order.avg_price,
            order.fees,
            ns_to_datetime(time_ns),
            detail,
        )
        return bool(inserted)

    async def write_changes(self, changes: Sequence[OrderChange]) -> None:
        """Write a batch of changes in one statement: every order's last state, every event row, every fill.

        Events are numbered in the batch's order. A batch with fills runs in a transaction and
        raises `FillConflict`, writing nothing, if one of its fills was stored already (by venue
        and trade id): the caller then applies the events one at a time, where a stored fill is
        simply skipped.
        """
        if not changes:
            return
        last = {c.order.client_id: c for c in changes}  # an order changed twice: its last state
        fills = [(c.fill, c.time_ns) for c in changes if c.fill is not None]
        times = _Iso()
        fill_rows = ",".join(
            f"[{_q(f.venue)},{_q(f.fill_id)},{_q(f.client_id)},{_q(f.strategy)},{_q(f.symbol)},"
            f'"{f.side.value}","{f.quantity}","{f.price}","{f.fee}","{f.mode.value}","{times(f.time_ns or t)}"]'
            for f, t in fills
        )
        order_rows = ",".join(
            f'[{_q(o.client_id)},"{o.status.value}","{o.filled}",{_decimal_or_null(o.avg_price)},"{o.fees}",'
            f'{_q_or_null(o.venue_order_id)},{_q(o.reason)},"{times(c.time_ns)}"]'
            for c in last.values()
            for o in (c.order,)
        )
        event_rows = ",".join(
            f'[{_q(c.order.client_id)},"{c.order.status.value}",{_q(c.detail)},"{times(c.time_ns)}"]' for c in changes
        )
        args = (f"[{fill_rows}]", f"[{order_rows}]", f"[{event_rows}]")
        if not fills:
            await self._pool.execute(_WRITE_CHANGES, *args)
            return
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(_WRITE_CHANGES, *args)
            stored = 0 if row is None else int(row["fills"])
            if stored != len(fills):
                raise FillConflict(f"{len(fills) - stored} fills of the batch were stored already")

    async def load_active(self, venue: str, mode: Mode) -> list[Order]:
        """Return the venue's orders of `mode` that are not terminal, oldest first."""
        rows = await self._pool.fetch(
            f"SELECT {_ORDER_COLUMNS} FROM orders o WHERE o.venue = $1 AND o.mode = $2 "
            "AND o.status <> ALL($3::text[]) ORDER BY o.created_at, o.client_id",
            venue,
            mode.value,
            _TERMINAL,
        )
        return [_order(row) for row in rows]

    async def load_ended_since(self, venue: str, mode: Mode, since_ns: int) -> list[Order]:
        """Return the venue's orders of `mode` cancelled or expired at or after `since_ns` (late fills may follow)."""
        rows = await self._pool.fetch(
            f"SELECT {_ORDER_COLUMNS} FROM orders o WHERE o.venue = $1 AND o.mode = $2 "
            "AND o.status IN ('cancelled', 'expired') AND o.updated_at >= $3 ORDER BY o.created_at, o.client_id",
            venue,
            mode.value,
            ns_to_datetime(since_ns),
        )
        return [_order(row) for row in rows]

    async def load_order(self, client_id: str) -> Order | None:
        """Return the order with `client_id`, or None."""
        row = await self._pool.fetchrow(f"SELECT {_ORDER_COLUMNS} FROM orders o WHERE o.client_id = $1", client_id)
        return None if row is None else _order(row)

    async def known_client_ids(self, client_ids: Iterable[str]) -> set[str]:
        """Return which of `client_ids` the orders table holds."""
        rows = await self._pool.fetch(
            "SELECT client_id FROM orders WHERE client_id = ANY($1::text[])", list(client_ids)
        )
        return {str(row["client_id"]) for row in rows}

    async def load_fills(self, venue: str, mode: Mode, client_id: str | None = None) -> list[Fill]:
        """Return the venue's fills of `mode` (of one order), in time order."""
        rows = await self._pool.fetch(
            "SELECT * FROM fills WHERE venue = $1 AND mode = $2 AND ($3::text IS NULL OR client_id = $3) "
            "ORDER BY time, fill_id",
            venue,
            mode.value,
            client_id,
        )
        return [_fill(row) for row in rows]

    async def events(self, client_id: str) -> list[OrderEvent]:
        """Return the history of one order, oldest first."""
        rows = await self._pool.fetch(
            "SELECT client_id, status, detail, time FROM order_events WHERE client_id = $1 ORDER BY id", client_id
        )
        return [OrderEvent(r["client_id"], r["status"], r["detail"], datetime_to_ns(r["time"])) for r in rows]

    async def record_reconciliation(
        self,
        *,
        time_ns: int,
        venue: str,
        mode: Mode,
        ok: bool,
        reason: str,
        differences: Sequence[Mapping[str, Any]],
    ) -> int:
        """Store one reconciliation and what differed; return its id."""
        return int(
            await self._pool.fetchval(
                "INSERT INTO reconciliations (time, venue, mode, ok, reason, differences) "
                "VALUES ($1, $2, $3, $4, $5, $6::jsonb) RETURNING id",
                ns_to_datetime(time_ns),
                venue,
                mode.value,
                ok,
                reason,
                json.dumps(list(differences), default=str),
            )
        )


def _numerics(values: Iterable[Decimal | None]) -> list[str | None]:
    """Return `Decimal`s as their exact text, for a `text[]::numeric[]` parameter.

    asyncpg's binary numeric encoder costs about four times what text does per element, and a
    batch carries a dozen numbers per order; PostgreSQL parses the text to the same value and scale.
    """
    return [None if v is None else str(v) for v in values]


class _Iso:
    """`ns_to_datetime(ns).isoformat()` of times, each distinct time converted once (a batch shares a few)."""

    def __init__(self) -> None:
        self._seen: dict[int, str] = {}

    def __call__(self, ns: int) -> str:
        text = self._seen.get(ns)
        if text is None:
            text = self._seen[ns] = ns_to_datetime(ns).isoformat()
        return text


def _order(row: asyncpg.Record) -> Order:
    return Order(
        client_id=row["client_id"],
        strategy=row["strategy"],
        venue=row["venue"],
        symbol=row["symbol"],
        side=OrderSide(row["side"]),
        quantity=row["quantity"],
        type=OrderType(row["type"]),
        limit_price=row["limit_price"],
        mode=Mode(row["mode"]),
        status=OrderStatus(row["status"]),
        filled=row["filled"],
        avg_price=row["avg_price"],
        fees=row["fees"],
        venue_order_id=row["venue_order_id"],
        created_ns=datetime_to_ns(row["created_at"]),
        updated_ns=datetime_to_ns(row["updated_at"]),
        reason=row["reason"],
        fill_ids=frozenset(row["fill_ids"] or ()),
        cash_limit=row["cash_limit"],
    )


def _fill(row: asyncpg.Record) -> Fill:
    return Fill(
        fill_id=row["fill_id"],
        client_id=row["client_id"],
        venue=row["venue"],
        symbol=row["symbol"],
        side=OrderSide(row["side"]),
        quantity=row["quantity"],
        price=row["price"],
        fee=row["fee"],
        time_ns=datetime_to_ns(row["time"]),
        strategy=row["strategy"],
        mode=Mode(row["mode"]),
    )

"""The paper venue's own durable store: one SQLite file per account.

The paper broker is a venue, not part of the runner: its orders, fills, positions, cash, pending
orders and last-seen bars live in a file of their own (`<directory>/<account>.sqlite3`), never in
the runner's PostgreSQL tables. That keeps the two sides of a reconciliation independent, as they
are with a real exchange: a runner that crashes, or whose database is restored from a backup,
finds the venue exactly as it left it. SQLite rather than a JSON file rewritten on every change:
each change is one small transaction (atomic, O(change) instead of O(history)), so a venue holding
a day of 1-second trading stays fast, and terminal orders and fills need not be kept in memory.

Durability: WAL journal with `synchronous=NORMAL` by default, which survives a killed process
(SIGKILL) but may lose the last transactions on a power cut; `durable=True` selects `FULL`.
One broker instance may use a store at a time. The schema is the venue's private format, versioned
with `PRAGMA user_version` (it is not the runner's schema, which lives in `migrations/`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Literal

from framework.errors import FatalError, IntegrityError, TransientError
from framework.orders.model import Fill, Mode, Order, OrderSide, OrderStatus, OrderType

__all__ = ["Changeset", "Mark", "PaperStore", "VenueOrder"]

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    client_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    active INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_active ON orders (active, seq);
CREATE TABLE IF NOT EXISTS fills (
    seq INTEGER PRIMARY KEY,
    fill_id TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS fills_client ON fills (client_id, seq);
CREATE TABLE IF NOT EXISTS balances (currency TEXT PRIMARY KEY, amount TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS positions (symbol TEXT PRIMARY KEY, quantity TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS marks (
    symbol TEXT PRIMARY KEY,
    open_ns INTEGER NOT NULL,
    close_ns INTEGER NOT NULL,
    close TEXT NOT NULL
);
"""

_escape: Callable[[str], str] = json.encoder.encode_basestring_ascii  # what `json.dumps` escapes strings with
_ENUM_JSON: dict[StrEnum, str] = {m: _escape(m.value) for e in (OrderSide, OrderType, Mode, OrderStatus) for m in e}


def _text(value: str | None) -> str:
    """Return a string (or None) as `json.dumps` writes it."""
    return "null" if value is None else _escape(value)


def _number(value: Decimal | None) -> str:
    """Return a `Decimal` (or None) as the JSON string of its text (digits, sign, point, exponent: no escapes)."""
    return "null" if value is None else f'"{value}"'


def _integer(value: int | None) -> str:
    """Return an int (or None) as `json.dumps` writes it."""
    return "null" if value is None else int.__repr__(value)


def _flag(value: bool) -> str:
    """Return a bool as `json.dumps` writes it."""
    return "true" if value else "false"


@dataclass(slots=True)
class VenueOrder:
    """An order as the venue holds it: the client's view plus the venue's matching bookkeeping.

    `not_before_ns` is the close of the newest bar the venue had seen for the symbol when it
    accepted the order (the decision bar): only bars opening at or after it may fill the order.
    `hidden_*` delay the order's visibility, `duplicate_fills` and `ghost` (cancel acknowledged but
    still live) are injected faults; `seen_print` records that a tick already reached the order.
    """

    order: Order
    seq: int
    accepted_ns: int
    not_before_ns: int | None = None
    hidden_queries: int = 0
    hidden_until_ns: int = 0
    duplicate_fills: bool = False
    ghost: bool = False
    seen_print: bool = False

    @property
    def live(self) -> bool:
        """Return whether the order can still fill (open, or a cancelled ghost)."""
        return self.order.is_active or self.ghost

    def to_json(self) -> str:
        """Return the record as JSON, Decimals as strings.

        Written by hand, exactly as `json.dumps(body, separators=(",", ":"))` writes the body dict
        `from_json` reads (same keys, same order, same escaping): the venue writes every order
        twice a bar close, and building and walking the dict cost more than the rest of the write.
        """
        o = self.order
        return (
            f'{{"client_id":{_escape(o.client_id)},"strategy":{_escape(o.strategy)},"venue":{_escape(o.venue)},'
            f'"symbol":{_escape(o.symbol)},"side":{_ENUM_JSON[o.side]},"quantity":"{o.quantity}",'
            f'"type":{_ENUM_JSON[o.type]},"limit_price":{_number(o.limit_price)},"mode":{_ENUM_JSON[o.mode]},'
            f'"status":{_ENUM_JSON[o.status]},"filled":"{o.filled}","avg_price":{_number(o.avg_price)},'
            f'"fees":"{o.fees}","venue_order_id":{_text(o.venue_order_id)},'
            f'"created_ns":{int.__repr__(o.created_ns)},"updated_ns":{int.__repr__(o.updated_ns)},'
            f'"reason":{_escape(o.reason)},"fill_ids":[{",".join(map(_escape, sorted(o.fill_ids)))}],'
            f'"cash_limit":{_number(o.cash_limit)},"seq":{int.__repr__(self.seq)},'
            f'"accepted_ns":{int.__repr__(self.accepted_ns)},"not_before_ns":{_integer(self.not_before_ns)},'
            f'"hidden_queries":{int.__repr__(self.hidden_queries)},'
            f'"hidden_until_ns":{int.__repr__(self.hidden_until_ns)},'
            f'"duplicate_fills":{_flag(self.duplicate_fills)},"ghost":{_flag(self.ghost)},'
            f'"seen_print":{_flag(self.seen_print)}}}'
        )

    @classmethod
    def from_json(cls, text: str) -> VenueOrder:
        """Return the record stored by `to_json`."""
        b = json.loads(text)
        order = Order(
            client_id=b["client_id"],
            strategy=b["strategy"],
            venue=b["venue"],
            symbol=b["symbol"],
            side=OrderSide(b["side"]),
            quantity=Decimal(b["quantity"]),
            type=OrderType(b["type"]),
            limit_price=None if b["limit_price"] is None else Decimal(b["limit_price"]),
            mode=Mode(b["mode"]),
            status=OrderStatus(b["status"]),
            filled=Decimal(b["filled"]),
            avg_price=None if b["avg_price"] is None else Decimal(b["avg_price"]),
            fees=Decimal(b["fees"]),
            venue_order_id=b["venue_order_id"],
            created_ns=b["created_ns"],
            updated_ns=b["updated_ns"],
            reason=b["reason"],
            fill_ids=frozenset(b["fill_ids"]),
            cash_limit=None if b.get("cash_limit") is None else Decimal(b["cash_limit"]),
        )
        return cls(
            order=order,
            seq=b["seq"],
            accepted_ns=b["accepted_ns"],
            not_before_ns=b["not_before_ns"],
            hidden_queries=b["hidden_queries"],
            hidden_until_ns=b["hidden_until_ns"],
            duplicate_fills=b["duplicate_fills"],
            ghost=b["ghost"],
            seen_print=b["seen_print"],
        )


@dataclass(frozen=True, slots=True)
class Mark:
    """The newest bar the venue has seen for a symbol: its times and its close."""

    symbol: str
    open_ns: int
    close_ns: int
    close: float


def _fill_to_json(fill: Fill) -> str:
    """Return a fill as `json.dumps(body, separators=(",", ":"))` writes the body `_fill_from_json` reads."""
    return (
        f'{{"fill_id":{_text(fill.fill_id)},"client_id":{_text(fill.client_id)},"venue":{_text(fill.venue)},'
        f'"symbol":{_text(fill.symbol)},"side":{_ENUM_JSON[fill.side]},"quantity":{_number(fill.quantity)},'
        f'"price":{_number(fill.price)},"fee":{_number(fill.fee)},"time_ns":{_integer(fill.time_ns)},'
        f'"strategy":{_text(fill.strategy)},"mode":{_ENUM_JSON[fill.mode]}}}'
    )


def _fill_from_json(text: str) -> Fill:
    b = json.loads(text)
    return Fill(
        fill_id=b["fill_id"],
        client_id=b["client_id"],
        venue=b["venue"],
        symbol=b["symbol"],
        side=OrderSide(b["side"]),
        quantity=Decimal(b["quantity"]),
        price=Decimal(b["price"]),
        fee=Decimal(b["fee"]),
        time_ns=b["time_ns"],
        strategy=b["strategy"],
        mode=Mode(b["mode"]),
    )


@dataclass(slots=True)
class Changeset:
    """The rows one venue operation (or a group of submits) changed, written in one transaction; false if none."""

    orders: dict[str, VenueOrder] = field(default_factory=dict)
    fills: list[tuple[int, Fill]] = field(default_factory=list)
    balances: dict[str, Decimal] = field(default_factory=dict)
    positions: dict[str, Decimal] = field(default_factory=dict)
    marks: dict[str, Mark] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.orders or self.fills or self.balances or self.positions or self.marks)


@contextmanager
def _translated(path: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise TransientError(f"paper venue store {path}: {exc}") from exc
    except sqlite3.Error as exc:
        raise IntegrityError(f"paper venue store {path}: {exc}") from exc


class PaperStore:
    """One account's venue state in a SQLite file; every write happens inside `transaction()`."""

    def __init__(self, path: Path, *, durable: bool = False) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            self._conn.close()
            raise FatalError(f"{path}: paper venue store version {version} is newer than this rata ({SCHEMA_VERSION})")
        with self.transaction():
            for statement in filter(str.strip, _SCHEMA.split(";")):
                self._conn.execute(statement)
            self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block in one write transaction: all of its changes are kept, or none.

        SQLite's failures become rata's: an operational one (locked, disk full, I/O) is a
        `TransientError`, any other (a constraint, a corrupt file) an `IntegrityError`.
        """
        with _translated(self.path):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Close the file."""
        self._conn.close()

    def meta(self, key: str) -> str | None:
        """Return a stored setting or counter."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Store a setting or counter."""
        self._conn.execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value)
        )

    def write(self, changes: Changeset) -> None:
        """Write a changeset (inside `transaction()`), one statement per table."""
        execute = self._conn.executemany
        if changes.orders:
            execute(
                "INSERT INTO orders VALUES (?, ?, ?, ?) ON CONFLICT (client_id) DO UPDATE SET "
                "active = excluded.active, body = excluded.body",
                [(r.order.client_id, r.seq, int(r.live), r.to_json()) for r in changes.orders.values()],
            )
        if changes.fills:
            execute(
                "INSERT INTO fills VALUES (?, ?, ?, ?)",
                [(seq, f.fill_id, f.client_id, _fill_to_json(f)) for seq, f in changes.fills],
            )
        if changes.balances:
            execute(
                "INSERT INTO balances VALUES (?, ?) ON CONFLICT (currency) DO UPDATE SET amount = excluded.amount",
                [(c, str(a)) for c, a in changes.balances.items()],
            )
        if changes.positions:
            execute(
                "INSERT INTO positions VALUES (?, ?) ON CONFLICT (symbol) DO UPDATE SET quantity = excluded.quantity",
                [(s, str(q)) for s, q in changes.positions.items()],
            )
        if changes.marks:
            execute(
                "INSERT INTO marks VALUES (?, ?, ?, ?) ON CONFLICT (symbol) DO UPDATE SET "
                "open_ns = excluded.open_ns, close_ns = excluded.close_ns, close = excluded.close",
                [(m.symbol, m.open_ns, m.close_ns, repr(m.close)) for m in changes.marks.values()],
            )

    def last_seq(self, table: Literal["orders", "fills"]) -> int:
        """Return the highest sequence number used in `table` (0 when empty)."""
        row = self._conn.execute(f"SELECT coalesce(max(seq), 0) FROM {table}").fetchone()
        return int(row[0])

    def order(self, client_id: str) -> VenueOrder | None:
        """Return an order by client id."""
        row = self._conn.execute("SELECT body FROM orders WHERE client_id = ?", (client_id,)).fetchone()
        return None if row is None else VenueOrder.from_json(row[0])

    def known(self, client_ids: Sequence[str]) -> set[str]:
        """Return which of `client_ids` the orders table holds (one query per 500 ids)."""
        found: set[str] = set()
        for start in range(0, len(client_ids), 500):
            chunk = client_ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = self._conn.execute(f"SELECT client_id FROM orders WHERE client_id IN ({marks})", chunk)
            found.update(str(row[0]) for row in rows)
        return found

    def live_orders(self) -> list[VenueOrder]:
        """Return the orders that can still fill, in acceptance order."""
        rows = self._conn.execute("SELECT body FROM orders WHERE active = 1 ORDER BY seq").fetchall()
        return [VenueOrder.from_json(row[0]) for row in rows]

    def fills(self, client_id: str | None = None) -> list[Fill]:
        """Return every fill (of one order), in execution order."""
        if client_id is None:
            rows = self._conn.execute("SELECT body FROM fills ORDER BY seq").fetchall()
        else:
            rows = self._conn.execute(
                "SELECT body FROM fills WHERE client_id = ? ORDER BY seq", (client_id,)
            ).fetchall()
        return [_fill_from_json(row[0]) for row in rows]

    def balances(self) -> dict[str, Decimal]:
        """Return every cash balance."""
        return {str(c): Decimal(a) for c, a in self._conn.execute("SELECT currency, amount FROM balances")}

    def positions(self) -> dict[str, Decimal]:
        """Return every net position."""
        return {str(s): Decimal(q) for s, q in self._conn.execute("SELECT symbol, quantity FROM positions")}

    def marks(self) -> dict[str, Mark]:
        """Return the newest bar seen for every symbol."""
        rows = self._conn.execute("SELECT symbol, open_ns, close_ns, close FROM marks")
        return {str(s): Mark(str(s), int(o), int(c), float(p)) for s, o, c, p in rows}

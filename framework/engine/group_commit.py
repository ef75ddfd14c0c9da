"""`GroupCommit`: many writers, one statement: order changes written together, each writer told when.

At a bar close the order manager sends hundreds of orders at once, and each acknowledgement is a
change to record (an order's state and its event row) before the order may change in memory.
Written one by one, each pays a round trip to PostgreSQL and they queue behind each other on the
pool. Here every writer hands its change over and waits; the changes that arrived meanwhile go out
together in one `OrderStore.write_changes` statement as soon as the event loop is free, and the
next batch collects while that one is in flight (the classic group commit of databases). A writer
returns only once its change is committed, so "persisted first, then memory" still holds; if the
batch fails, every writer of it gets the error, as it would have on its own.
"""

from __future__ import annotations

import asyncio

from framework.engine.order_store import OrderChange, OrderStore

__all__ = ["GroupCommit"]


class GroupCommit:
    """Writes `OrderChange`s through `store` in batches; `write` returns once its change is committed."""

    def __init__(self, store: OrderStore) -> None:
        self._store = store
        self._queue: list[tuple[OrderChange, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def write(self, change: OrderChange) -> None:
        """Queue `change` for the next batch and return once that batch is committed (or raise its error)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.append((change, done))
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush(), name="orders-group-commit")
        await asyncio.shield(done)  # a cancelled writer must not cancel the batch's other writers

    async def _flush(self) -> None:
        batch: list[tuple[OrderChange, asyncio.Future[None]]] = []
        try:
            await asyncio.sleep(0)  # every writer that is ready to run queues its change first
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    await self._store.write_changes([change for change, _ in batch])
                except Exception as exc:  # noqa: BLE001 - handed to every writer of the batch
                    _settle(batch, exc)
                else:
                    _settle(batch, None)
                batch = []
        finally:
            self._flusher = None
            left, self._queue = [*batch, *self._queue], []
            for _, done in left:  # only when cancelled (the loop is going away)
                if not done.done():
                    done.cancel()


def _settle(batch: list[tuple[OrderChange, asyncio.Future[None]]], error: Exception | None) -> None:
    for _, done in batch:
        if done.done():
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

"""The paper venue's grouped submits: orders that arrive together are committed in one transaction.

At a bar close the engine sends hundreds of orders at once. Committing each acceptance on its own
costs a SQLite transaction per order; instead, a submit joins the waiting group (accepted in
memory, its changes collected by the account), the group is committed as soon as the event loop
gets to it (or earlier, by any other venue operation, which must see committed state), and only
then are its events published and its submits answered. So an answered submit is as durable as
before. If the commit fails, the account's memory is reloaded and every submit of the group gets
the error: none of them is placed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from framework.brokers.base import BrokerEvent
from framework.errors import TransientError

__all__ = ["SubmitGroup", "SubmitGroups"]


@dataclass(slots=True)
class SubmitGroup:
    """Submits accepted in memory and waiting for their common commit: their events, and when it is done."""

    committed: asyncio.Future[None]
    events: list[BrokerEvent] = field(default_factory=list)


class SubmitGroups:
    """The waiting group of one venue; `commit` writes the account's collected changes, `publish` sends an event."""

    def __init__(self, commit: Callable[[], None], publish: Callable[[BrokerEvent], None], venue: str) -> None:
        self._commit = commit
        self._publish = publish
        self._venue = venue
        self._waiting: SubmitGroup | None = None

    def current(self) -> SubmitGroup:
        """Return the waiting group, starting one (committed when the event loop next gets to it) if none."""
        if self._waiting is not None:
            return self._waiting
        loop = asyncio.get_running_loop()
        group = self._waiting = SubmitGroup(loop.create_future())
        group.committed.add_done_callback(_retrieve)
        loop.call_soon(self.settle)
        return group

    def settle(self) -> None:
        """Commit the waiting group in one transaction, publish its events, answer its submits."""
        group, self._waiting = self._waiting, None
        if group is None:
            return
        try:
            self._commit()
        except Exception as exc:  # noqa: BLE001 - handed to the group's submits (the memory is reloaded)
            group.committed.set_exception(exc)
            return
        for event in group.events:
            self._publish(event)
        group.committed.set_result(None)

    def fail(self, error: BaseException) -> None:
        """Drop the waiting group (its changes went with a failed member's): its other submits placed nothing."""
        group, self._waiting = self._waiting, None
        if group is not None and not group.committed.done():
            reason = f"paper venue {self._venue}: submit not placed: {error}"
            group.committed.set_exception(TransientError(reason))


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a group's failure as seen even when none of its submits is left waiting for it."""
    if not future.cancelled():
        future.exception()

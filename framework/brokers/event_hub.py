"""Fan a broker's events out to its subscribers, in order, without losing any.

Each `subscribe()` gets its own queue, registered at once (not on the first `__anext__`), so no
event published after the call is missed. Events published while nobody listens are kept and
handed to the next subscriber: a runner that connects, submits, and only then starts reading
still sees everything. `close()` ends every subscription after the events already queued.
Queues are unbounded: a broker produces at most a few events per order, and dropping one would
break the order state machine downstream.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Generic, TypeVar, cast

__all__ = ["EventHub", "Subscription"]

T = TypeVar("T")
_END = object()


class Subscription(AsyncIterator[T], Generic[T]):
    """One subscriber's view of the events: an async iterator that ends when the hub closes."""

    def __init__(self, hub: EventHub[T]) -> None:
        self._hub = hub
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._done = False

    def __aiter__(self) -> Subscription[T]:
        return self

    async def __anext__(self) -> T:
        if self._done:
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is _END:
            self._done = True
            self._hub.unsubscribe(self)
            raise StopAsyncIteration
        return cast(T, item)

    def put(self, item: object) -> None:
        """Queue one item (an event, or the end marker)."""
        self._queue.put_nowait(item)

    def pending(self) -> int:
        """Return how many events are queued and not read yet."""
        return self._queue.qsize()

    async def aclose(self) -> None:
        """Stop listening."""
        self._done = True
        self._hub.unsubscribe(self)


class EventHub(Generic[T]):
    """Ordered, lossless fan-out of events to any number of subscribers."""

    def __init__(self) -> None:
        self._subscribers: list[Subscription[T]] = []
        self._backlog: deque[T] = deque()
        self._closed = False

    def subscribe(self) -> Subscription[T]:
        """Return a new subscription; the first one also receives the backlog."""
        subscription = Subscription(self)
        while self._backlog:
            subscription.put(self._backlog.popleft())
        if self._closed:
            subscription.put(_END)
        else:
            self._subscribers.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription[T]) -> None:
        """Forget a subscription."""
        if subscription in self._subscribers:
            self._subscribers.remove(subscription)

    def publish(self, event: T) -> None:
        """Hand `event` to every subscriber (or keep it for the next one)."""
        if not self._subscribers:
            self._backlog.append(event)
            return
        for subscription in self._subscribers:
            subscription.put(event)

    def close(self) -> None:
        """End every subscription once its queued events are read."""
        self._closed = True
        for subscription in self._subscribers:
            subscription.put(_END)
        self._subscribers.clear()

    def reopen(self) -> None:
        """Accept subscribers again after `close()`."""
        self._closed = False

"""`EventHub`: fan events out to WebSocket clients without ever making the publisher wait.

A publisher (the runner's hooks, on the engine's hot path) calls `publish(channel, data)`, which is
synchronous: the message is encoded once and offered to the bounded queue of every subscriber of
the channel with `put_nowait`. A subscriber whose queue is full is *not* waited for: it is marked
overflowed, dropped from every channel at once, and its connection is closed by its own task
(`runner.api.ws`). So a slow client costs the engine one failed `put_nowait`, and the others
nothing.

Channels are strings: `orders`, `fills`, `positions`, `strategies`, `risk`, `equity`,
`ticks:<symbol>` and `bars:<symbol>:<timeframe>`, where a subscription may use `*` for the symbol
or the timeframe. A message is `{"type": "event", "channel": <concrete channel>, "data": {...}}`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from typing import Any, Final

__all__ = ["CHANNELS", "EventHub", "Subscriber", "bar_keys", "tick_keys"]

CHANNELS: Final = ("ticks", "bars", "orders", "fills", "positions", "strategies", "risk", "equity")
WILDCARD: Final = "*"


def bar_keys(symbol: str, timeframe: str) -> tuple[str, ...]:
    """Return the subscription keys a bar of `symbol` and `timeframe` is delivered to."""
    return (
        f"bars:{symbol}:{timeframe}",
        f"bars:{WILDCARD}:{timeframe}",
        f"bars:{symbol}:{WILDCARD}",
        f"bars:{WILDCARD}:{WILDCARD}",
    )


def tick_keys(symbol: str) -> tuple[str, ...]:
    """Return the subscription keys a tick of `symbol` is delivered to."""
    return (f"ticks:{symbol}", f"ticks:{WILDCARD}")


class Subscriber:
    """One client's bounded queue of encoded messages, and whether it fell behind."""

    def __init__(self, queue_size: int) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue(queue_size)
        self.keys: set[str] = set()
        self.overflowed = asyncio.Event()
        self.delivered = 0

    def offer(self, message: str) -> bool:
        """Queue `message` unless the queue is full; return whether it was queued."""
        if self.overflowed.is_set():
            return False
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed.set()
            return False
        self.delivered += 1
        return True


class EventHub:
    """Subscriptions by channel key, and the non-blocking fan-out; see the module docstring."""

    def __init__(self, queue_size: int = 1024, on_overflow: Callable[[Subscriber], None] | None = None) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        self.queue_size = queue_size
        self.on_overflow = on_overflow
        self.clients: set[Subscriber] = set()
        self.published = 0
        self.overflows = 0
        self._by_key: dict[str, set[Subscriber]] = {}

    def connect(self) -> Subscriber:
        """Return a new subscriber with an empty queue and no subscriptions."""
        subscriber = Subscriber(self.queue_size)
        self.clients.add(subscriber)
        return subscriber

    def disconnect(self, subscriber: Subscriber) -> None:
        """Forget `subscriber` and all its subscriptions."""
        for key in list(subscriber.keys):
            self.unsubscribe(subscriber, key)
        self.clients.discard(subscriber)

    def subscribe(self, subscriber: Subscriber, key: str) -> None:
        """Deliver the events of `key` to `subscriber`."""
        self._by_key.setdefault(key, set()).add(subscriber)
        subscriber.keys.add(key)

    def unsubscribe(self, subscriber: Subscriber, key: str) -> None:
        """Stop delivering the events of `key` to `subscriber`."""
        members = self._by_key.get(key)
        if members is not None:
            members.discard(subscriber)
            if not members:
                del self._by_key[key]
        subscriber.keys.discard(key)

    def subscribed(self, channel: str) -> set[str]:
        """Return what follows `<channel>:` in the keys someone subscribes to (`*` for a wildcard)."""
        prefix = f"{channel}:"
        return {key[len(prefix) :] for key in self._by_key if key.startswith(prefix)}

    def wants(self, keys: str | Iterable[str]) -> bool:
        """Return whether anyone subscribes to any of `keys` (check before building a costly payload)."""
        if isinstance(keys, str):
            return keys in self._by_key
        return any(key in self._by_key for key in keys)

    def publish(self, keys: str | Iterable[str], data: Any, *, encoded: str | None = None) -> int:
        """Offer an event to the subscribers of `keys` (the first is the channel named); return how many took it.

        `data` must be JSON-ready (or pass `encoded`, the JSON text of the data). Never blocks.
        """
        names = (keys,) if isinstance(keys, str) else tuple(keys)
        targets: set[Subscriber] = set()
        for key in names:
            members = self._by_key.get(key)
            if members:
                targets |= members
        if not targets:
            return 0
        body = encoded if encoded is not None else json.dumps(data, separators=(",", ":"), allow_nan=False)
        message = f'{{"type":"event","channel":{json.dumps(names[0])},"data":{body}}}'
        self.published += 1
        taken = 0
        for subscriber in targets:
            if subscriber.offer(message):
                taken += 1
            elif subscriber.overflowed.is_set() and subscriber in self.clients:
                self._overflow(subscriber)
        return taken

    def send(self, subscriber: Subscriber, message: dict[str, Any]) -> bool:
        """Queue a control message (an acknowledgement, an error) for one subscriber."""
        if subscriber.offer(json.dumps(message, separators=(",", ":"))):
            return True
        self._overflow(subscriber)
        return False

    def _overflow(self, subscriber: Subscriber) -> None:
        self.overflows += 1
        self.disconnect(subscriber)
        if self.on_overflow is not None:
            self.on_overflow(subscriber)

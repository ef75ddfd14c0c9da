"""Login attempt rate limiting per username and per client address, kept in memory.

Why in memory: the runner is one process per account (see ARCHITECTURE), so one process sees
every login; keeping the counters in PostgreSQL would turn each failed guess into a write, which
hands an attacker a cheap way to load the database. What a restart forgets is bounded: argon2id
already caps guessing at a few attempts per second per core, and the audit log keeps every
failure durably. The number of tracked keys is capped so a spray of fake names cannot grow memory.

Policy: a username with `per_user.attempts` failures within `per_user.window_s` is refused until
the oldest of them leaves the window (so a locked-out user is also protected from a noisy
attacker's wasted argon2 work); likewise a client address with `per_client` failures, whatever
usernames it tried. IPv6 clients are grouped by /64, the block one subscriber usually holds. A
successful login clears its username's failures, not its address's: one valid account must not
let an address reset its budget for guessing others.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque
from dataclasses import dataclass

from framework.clock import Clock, WallClock
from framework.security.errors import LoginRateLimited

__all__ = ["LoginRateLimiter", "RateLimit", "client_key"]

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `attempts` failures within `window_s` seconds."""

    attempts: int
    window_s: float

    def __post_init__(self) -> None:
        if self.attempts < 1 or not self.window_s > 0:
            raise ValueError(f"a rate limit needs attempts >= 1 and a positive window, got {self}")


def client_key(client: str) -> str:
    """Return the rate-limit key of a client address: IPv4 as is, IPv6 as its /64, anything else verbatim."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class LoginRateLimiter:
    """Count failed logins per username and per client address on an injected clock."""

    def __init__(
        self,
        *,
        per_user: RateLimit = RateLimit(5, 900.0),
        per_client: RateLimit = RateLimit(20, 900.0),
        clock: Clock | None = None,
        max_keys: int = 100_000,
    ) -> None:
        self.per_user = per_user
        self.per_client = per_client
        self._clock: Clock = clock or WallClock()
        self._max_keys = max_keys
        self._failures: OrderedDict[str, deque[int]] = OrderedDict()

    def check(self, username: str, client: str | None = None) -> None:
        """Raise `LoginRateLimited` if `username` or `client` has used up its failures."""
        now = self._clock.now_ns()
        for key, limit in self._keys(username, client):
            wait_ns = self._wait_ns(key, limit, now)
            if wait_ns > 0:
                raise LoginRateLimited(wait_ns / _NS, key.partition(":")[0])

    def failed(self, username: str, client: str | None = None) -> None:
        """Record a failed login of `username` from `client`."""
        now = self._clock.now_ns()
        for key, limit in self._keys(username, client):
            times = self._failures.pop(key, None) or deque(maxlen=limit.attempts)
            times.append(now)
            self._failures[key] = times
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, username: str) -> None:
        """Forget the failures of `username` after it logged in."""
        self._failures.pop(f"user:{username}", None)

    def user_failures(self, username: str) -> int:
        """Return the failures of `username` still inside the per-user window."""
        return len(self._live(f"user:{username}", self.per_user, self._clock.now_ns()))

    def client_failures(self, client: str) -> int:
        """Return the failures from `client` (its /64 for IPv6) still inside the per-client window."""
        return len(self._live(f"client:{client_key(client)}", self.per_client, self._clock.now_ns()))

    def _keys(self, username: str, client: str | None) -> list[tuple[str, RateLimit]]:
        keys = [(f"user:{username}", self.per_user)]
        if client:
            keys.append((f"client:{client_key(client)}", self.per_client))
        return keys

    def _live(self, key: str, limit: RateLimit, now: int) -> deque[int]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        horizon = now - int(limit.window_s * _NS)
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def _wait_ns(self, key: str, limit: RateLimit, now: int) -> int:
        times = self._live(key, limit, now)
        if len(times) < limit.attempts:
            return 0
        return times[0] + int(limit.window_s * _NS) - now

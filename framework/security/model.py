"""Users and roles as the rest of rata sees them: no password hash ever leaves the user store."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg

from framework.errors import ParameterError

__all__ = ["USERNAME_PATTERN", "Role", "User", "normalise_username"]

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.@-]{0,63}$")


class Role(StrEnum):
    """What a user may do. Each role includes the ones below it.

    - viewer: read everything but credentials;
    - trader: also submit and cancel orders, create, start, stop and tune strategies;
    - admin: also manage users, risk limits, the kill switch's release and broker credentials.
    """

    VIEWER = "viewer"
    TRADER = "trader"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Return the role's place in viewer < trader < admin."""
        return _RANK[self]

    def allows(self, needed: Role) -> bool:
        """Return whether this role may do what `needed` may."""
        return self.rank >= needed.rank


_RANK = {Role.VIEWER: 0, Role.TRADER: 1, Role.ADMIN: 2}


def normalise_username(username: str) -> str:
    """Return `username` trimmed and lower-cased, or raise `ParameterError` if it is not a valid name.

    Names are case-insensitive (`Alice` and `alice` are one user) and limited to letters, digits
    and `_ . @ -`, at most 64 characters, so they are safe in logs, URLs and audit entries.
    """
    name = username.strip().lower()
    if not USERNAME_PATTERN.match(name):
        raise ParameterError(
            "a username has 1 to 64 characters: letters, digits and _ . @ -, starting with a letter or digit"
        )
    return name


@dataclass(frozen=True, slots=True)
class User:
    """A user of the runner API (without its password hash)."""

    id: int
    username: str
    role: Role
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> User:
        """Return the user of a `users` row."""
        return cls(row["id"], row["username"], Role(row["role"]), row["created_at"], row["updated_at"])

"""Password hashing with argon2id, the memory-hard function RFC 9106 recommends.

Hashes are PHC strings (`$argon2id$v=19$m=65536,t=3,p=4$salt$hash`) that carry their own salt and
cost, so the cost can be raised later: `needs_rehash` tells when a stored hash is weaker than the
current parameters, and the user store rehashes it at the next successful login.

Hashing takes about a tenth of a second and 64 MiB on purpose; async callers use `hash_async` and
`verify_async`, which run it in a worker thread (argon2-cffi releases the GIL) so the event loop
keeps serving market data meanwhile.
"""

from __future__ import annotations

import asyncio

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from framework.errors import ParameterError

__all__ = ["MAX_PASSWORD_LENGTH", "MIN_PASSWORD_LENGTH", "Passwords", "check_password_policy"]

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024


def check_password_policy(password: str) -> None:
    """Raise `ParameterError` if `password` is too short, too long or blank (the message never quotes it)."""
    if not password.strip():
        raise ParameterError("the password is empty")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ParameterError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ParameterError(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")


class Passwords:
    """Hash and verify passwords with argon2id.

    `parameters` defaults to RFC 9106's low-memory profile (t=3, 64 MiB, p=4); anything but
    argon2id is refused, since argon2i and argon2d each give up one of the two resistances.
    """

    def __init__(self, parameters: argon2.Parameters | None = None) -> None:
        params = parameters or argon2.profiles.RFC_9106_LOW_MEMORY
        if params.type is not argon2.Type.ID:
            raise ValueError(f"passwords are hashed with argon2id, not {params.type.name}")
        self._hasher = argon2.PasswordHasher.from_parameters(params)

    def __repr__(self) -> str:
        h = self._hasher
        return f"Passwords(argon2id, t={h.time_cost}, m={h.memory_cost} KiB, p={h.parallelism})"

    def hash(self, password: str) -> str:
        """Return the PHC string of `password` with a fresh random salt, after checking the policy."""
        check_password_policy(password)
        return self._hasher.hash(password)

    def verify(self, hashed: str, password: str) -> bool:
        """Return whether `password` matches `hashed`; a malformed hash is a mismatch, never an error."""
        if len(password) > MAX_PASSWORD_LENGTH:
            return False
        try:
            return self._hasher.verify(hashed, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, hashed: str) -> bool:
        """Return whether `hashed` was made with other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(hashed)
        except InvalidHashError:
            return True

    async def hash_async(self, password: str) -> str:
        """Return `hash(password)`, computed in a worker thread."""
        check_password_policy(password)
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify_async(self, hashed: str, password: str) -> bool:
        """Return `verify(hashed, password)`, computed in a worker thread."""
        return await asyncio.to_thread(self.verify, hashed, password)

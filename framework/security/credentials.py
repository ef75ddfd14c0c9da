"""Broker API credentials encrypted in PostgreSQL with Fernet (AES-128-CBC + HMAC-SHA256).

Each exchange's key and secret are one Fernet token in `broker_credentials`, encrypted with the
primary master key (`framework.security.keys.MasterKeys`). The plaintext also names the exchange,
checked on decryption, so a ciphertext copied onto another exchange's row is refused rather than
used. `key_fingerprint` records which master key encrypted a row, so an operator can see that a
rotation reached every row before dropping the old key.

Values never leave this module except as `ApiCredentials`, whose repr hides them; listings show the
exchange, the key fingerprint and the times only; log lines and errors name exchanges, never values.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from framework.clock import Clock, WallClock
from framework.errors import ParameterError
from framework.events import ns_to_datetime
from framework.security.errors import CredentialError
from framework.security.keys import MasterKeys

__all__ = ["ApiCredentials", "CredentialStore", "StoredCredential", "normalise_exchange"]

log = logging.getLogger(__name__)

_EXCHANGE = re.compile(r"^[a-z0-9_]{1,64}$")


@dataclass(frozen=True, slots=True, repr=False)
class ApiCredentials:
    """An API key and its secret. The repr shows neither."""

    api_key: str
    secret: str

    def __repr__(self) -> str:
        return "ApiCredentials(api_key=<hidden>, secret=<hidden>)"


@dataclass(frozen=True, slots=True)
class StoredCredential:
    """What may be shown about stored credentials: whose they are, which key encrypts them, and when."""

    exchange: str
    key_fingerprint: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> StoredCredential:
        """Return the listing of a `broker_credentials` row (without its ciphertext)."""
        return cls(row["exchange"], row["key_fingerprint"], row["created_at"], row["updated_at"])


def normalise_exchange(exchange_id: str) -> str:
    """Return a ccxt exchange id lower-cased, or raise `ParameterError` if it cannot be one."""
    name = exchange_id.strip().lower()
    if not _EXCHANGE.match(name):
        raise ParameterError(f"an exchange id is 1 to 64 letters, digits or _ (a ccxt id like binance), not {name!r}")
    return name


class CredentialStore:
    """Encrypted broker credentials; `keys` may be None to list or remove rows without decrypting them."""

    def __init__(self, pool: asyncpg.Pool, keys: MasterKeys | None, clock: Clock | None = None) -> None:
        self._pool = pool
        self._keys = keys
        self._clock: Clock = clock or WallClock()

    def __repr__(self) -> str:
        return f"CredentialStore(keys={self._keys!r})"

    def _require_keys(self, what: str) -> MasterKeys:
        if self._keys is None:
            raise CredentialError(f"{what} needs the master key: set RATA_MASTER_KEY or RATA_MASTER_KEY_FILE")
        return self._keys

    async def set(self, exchange_id: str, credentials: ApiCredentials) -> StoredCredential:
        """Store (or replace) an exchange's credentials, encrypted with the primary master key."""
        exchange = normalise_exchange(exchange_id)
        api_key, secret = credentials.api_key.strip(), credentials.secret.strip()
        if not api_key or not secret:
            raise ParameterError(f"{exchange}: both an API key and a secret are needed")
        keys = self._require_keys(f"storing credentials for {exchange}")
        token = keys.encrypt(self._plaintext(exchange, ApiCredentials(api_key, secret)))
        now = ns_to_datetime(self._clock.now_ns())
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                """
                INSERT INTO broker_credentials (exchange, ciphertext, key_fingerprint, created_at, updated_at)
                VALUES ($1, $2, $3, $4, $4)
                ON CONFLICT (exchange) DO UPDATE SET
                    ciphertext = EXCLUDED.ciphertext, key_fingerprint = EXCLUDED.key_fingerprint,
                    updated_at = EXCLUDED.updated_at
                RETURNING exchange, key_fingerprint, created_at, updated_at
                """,
                exchange,
                token,
                keys.primary,
                now,
            )
        assert row is not None
        log.info("stored API credentials for %s (master key %s)", exchange, keys.primary)
        return StoredCredential.from_row(row)

    async def get(self, exchange_id: str) -> ApiCredentials | None:
        """Return an exchange's credentials, or None if none are stored.

        Raises `CredentialError` when they are stored but no configured key opens them.
        """
        exchange = normalise_exchange(exchange_id)
        async with self._pool.acquire() as conn:
            token = await conn.fetchval("SELECT ciphertext FROM broker_credentials WHERE exchange = $1", exchange)
        if token is None:
            return None
        keys = self._require_keys(f"the stored credentials of {exchange}")
        return self._open(keys, exchange, bytes(token))

    async def list(self) -> list[StoredCredential]:
        """Return what is stored, by exchange, without any key or secret."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT exchange, key_fingerprint, created_at, updated_at FROM broker_credentials ORDER BY exchange"
            )
        return [StoredCredential.from_row(r) for r in rows]

    async def remove(self, exchange_id: str) -> bool:
        """Delete an exchange's credentials; return whether there were any."""
        exchange = normalise_exchange(exchange_id)
        async with self._pool.acquire() as conn:
            status = await conn.execute("DELETE FROM broker_credentials WHERE exchange = $1", exchange)
        return status.split()[-1] != "0"

    async def rotate(self) -> int:
        """Re-encrypt every row with the primary master key, all or nothing; return how many rows.

        Every row is decrypted (with any configured key) and checked first, so a row no key opens
        stops the rotation before anything is written.
        """
        keys = self._require_keys("rotating the master key")
        now = ns_to_datetime(self._clock.now_ns())
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch("SELECT exchange, ciphertext FROM broker_credentials ORDER BY exchange FOR UPDATE")
            updates = []
            for row in rows:
                exchange = row["exchange"]
                credentials = self._open(keys, exchange, bytes(row["ciphertext"]))
                updates.append((exchange, keys.encrypt(self._plaintext(exchange, credentials)), keys.primary, now))
            await conn.executemany(
                """
                UPDATE broker_credentials SET ciphertext = $2, key_fingerprint = $3, updated_at = $4
                WHERE exchange = $1
                """,
                updates,
            )
        log.info("re-encrypted the credentials of %d exchange(s) with master key %s", len(updates), keys.primary)
        return len(updates)

    @staticmethod
    def _plaintext(exchange: str, credentials: ApiCredentials) -> bytes:
        return json.dumps({"exchange": exchange, "api_key": credentials.api_key, "secret": credentials.secret}).encode()

    @staticmethod
    def _open(keys: MasterKeys, exchange: str, token: bytes) -> ApiCredentials:
        data = json.loads(keys.decrypt(token, f"the stored credentials of {exchange}"))
        if data.get("exchange") != exchange:
            raise CredentialError(f"the stored credentials of {exchange} were encrypted for another exchange")
        return ApiCredentials(str(data["api_key"]), str(data["secret"]))

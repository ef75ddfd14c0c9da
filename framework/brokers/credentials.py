"""Exchange API keys: from the encrypted credential store first, else from the environment.

`load_credentials(exchange_id, pool)` looks in the credential store (`rata credentials set`,
`framework.security.credentials`) when given a pool, and falls back to the environment when the
store has nothing for that exchange. `credentials_from_env` reads `RATA_<EXCHANGE>_API_KEY` and
`RATA_<EXCHANGE>_SECRET` (the ccxt exchange id upper-cased, anything not a letter or digit
replaced by `_`: `RATA_BINANCE_API_KEY`, `RATA_BINANCEUSDM_SECRET`). The values never appear in
a repr, a log line or an error message; only the exchange and the variable names do.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping

import asyncpg

from framework.errors import RejectedError
from framework.security.credentials import ApiCredentials, CredentialStore
from framework.security.keys import MasterKeys
from framework.settings import Settings, load_settings

__all__ = ["ApiCredentials", "credentials_from_env", "env_names", "load_credentials"]

log = logging.getLogger(__name__)


def env_names(exchange_id: str) -> tuple[str, str]:
    """Return the names of the variables holding `exchange_id`'s API key and secret."""
    stem = re.sub(r"[^A-Z0-9]", "_", exchange_id.upper())
    return f"RATA_{stem}_API_KEY", f"RATA_{stem}_SECRET"


def credentials_from_env(exchange_id: str, environ: Mapping[str, str] | None = None) -> ApiCredentials:
    """Return `exchange_id`'s credentials from the environment, or raise `RejectedError` naming what is missing."""
    env = os.environ if environ is None else environ
    names = env_names(exchange_id)
    values = [env.get(name, "").strip() for name in names]
    missing = [name for name, value in zip(names, values, strict=True) if not value]
    if missing:
        raise RejectedError(f"no API credentials for {exchange_id}: set {' and '.join(missing)}")
    return ApiCredentials(values[0], values[1])


async def load_credentials(
    exchange_id: str,
    pool: asyncpg.Pool | None = None,
    *,
    keys: MasterKeys | None = None,
    settings: Settings | None = None,
    environ: Mapping[str, str] | None = None,
) -> ApiCredentials:
    """Return `exchange_id`'s credentials: from the store when `pool` is given and has them, else the environment.

    The master keys are `keys`, else those of `settings` (else of the environment's settings).
    Credentials stored but not decryptable raise `CredentialError` rather than falling back: a
    wrong master key should be fixed, not silently bypassed by stale variables.
    """
    if pool is not None:
        if keys is None:
            keys = MasterKeys.from_settings(settings if settings is not None else load_settings())
        stored = await CredentialStore(pool, keys).get(exchange_id)
        if stored is not None:
            log.info("API credentials for %s come from the credential store", exchange_id)
            return stored
    return credentials_from_env(exchange_id, environ)

"""Exchange API keys from the environment, until the encrypted credential store exists.

A live runner reads `RATA_<EXCHANGE>_API_KEY` and `RATA_<EXCHANGE>_SECRET` (the ccxt exchange id
upper-cased, anything not a letter or digit replaced by `_`: `RATA_BINANCE_API_KEY`,
`RATA_BINANCEUSDM_SECRET`). The values never appear in a repr, a log line or an error message;
only the variable names do.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from framework.errors import RejectedError

__all__ = ["ApiCredentials", "credentials_from_env", "env_names"]


@dataclass(frozen=True, slots=True, repr=False)
class ApiCredentials:
    """An API key and its secret. The repr shows neither."""

    api_key: str
    secret: str

    def __repr__(self) -> str:
        return "ApiCredentials(api_key=<hidden>, secret=<hidden>)"


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

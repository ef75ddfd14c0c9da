"""Keep secrets out of the server's logs: access tokens in WebSocket query strings are redacted.

uvicorn logs every WebSocket handshake with its path and query string, so a token passed as
`?token=...` would land in the log. `install_redaction()` adds a filter to uvicorn's loggers that
replaces any `token=`, `access_token=`, `refresh_token=` or `password=` value with `<redacted>`.
"""

from __future__ import annotations

import logging
import re

__all__ = ["RedactSecrets", "install_redaction", "redact_text"]

_SECRET = re.compile(r"((?:access_|refresh_)?token|password|secret|api_key)=([^&\s\"']+)", re.IGNORECASE)
_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def redact_text(text: str) -> str:
    """Return `text` with the values of secret-looking query parameters replaced."""
    return _SECRET.sub(r"\1=<redacted>", text)


class RedactSecrets(logging.Filter):
    """A logging filter applying `redact_text` to the message and its arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_text(a) if isinstance(a, str) else a for a in record.args)
        return True


def install_redaction() -> None:
    """Add the filter to uvicorn's loggers (once)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())

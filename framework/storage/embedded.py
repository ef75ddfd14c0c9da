"""An embedded PostgreSQL server in a data folder, for machines with nothing installed.

pgserver ships PostgreSQL binaries inside its wheel and runs the server on a Unix socket in the
data folder. The server is shared by every rata process using the same folder and kept across
runs (its data stays); it stops when the last process using it calls `stop` or exits.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from pathlib import Path
from typing import Any

from framework.errors import FatalError

__all__ = ["EmbeddedPostgres"]

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """Start (or join) the embedded PostgreSQL in `data_dir`; `dsn` connects to it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).resolve()
        self._server: Any = None

    def start(self) -> str:
        """Start the server if needed and return its connection string."""
        if self._server is None:
            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pgserver: Any = importlib.import_module("pgserver")
                try:
                    self._server = pgserver.get_server(self.data_dir, cleanup_mode="stop")
                except Exception as exc:
                    raise FatalError(f"cannot start the embedded PostgreSQL in {self.data_dir}: {exc}") from exc
            log.info("embedded PostgreSQL running in %s", self.data_dir)
        return self.dsn

    @property
    def dsn(self) -> str:
        """Return the connection string (a Unix socket in the data folder)."""
        if self._server is None:
            raise FatalError("the embedded PostgreSQL is not started")
        uri: str = self._server.get_uri()
        return uri

    @property
    def running(self) -> bool:
        """Return whether this handle holds a running server."""
        return self._server is not None and self._server.get_pid() is not None

    def stop(self) -> None:
        """Release this handle; the server stops when no other process uses it."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def kill(self) -> None:
        """Stop the server now, whoever uses it (for outage tests): `pg_ctl stop -m fast`."""
        commands: Any = importlib.import_module("pgserver._commands")
        if self._server is not None:
            commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=self._server.system_user)

    def restart(self) -> str:
        """Start the server again after `kill`, keeping the same data."""
        if self._server is None:
            return self.start()
        self._server.ensure_postgres_running()
        return self.dsn

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""A bounded on-disk spool for batches the database could not take (it was unreachable).

Each batch is one file, named by a sequence number so a directory listing gives the write order.
A file is written under a temporary name, flushed to disk and renamed into place, so a crash
mid-write leaves either the whole batch or no batch (the stray temporary file is removed at the
next start). Leftover batches from a previous run are found at start and replayed first.

Files hold a pickle of plain tuples: the spool is rata's own private directory, read only by
rata. Never point it at files from elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from framework.errors import TransientError
from framework.events import Bar, Tick, TickBatch

__all__ = ["Spool", "SpoolFullError", "SpooledBatch"]

log = logging.getLogger(__name__)

_SUFFIX = ".batch"
_FORMAT = 1
_UNREADABLE = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    AttributeError,
    ImportError,
)


class SpoolFullError(TransientError):
    """The spool has no room for another batch: stop accepting until the database is back."""


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    """One spooled batch, in the order it was appended."""

    path: Path
    ticks: list[Tick]
    bars: list[Bar]


class Spool:
    """Keep batches on disk, up to `max_bytes`, until they can be written; replay them in order.

    `append` raises `SpoolFullError` rather than drop anything when the spool is full: the caller
    holds the batch and stops taking more (backpressure). `oldest` and `remove` replay one batch
    at a time and delete it only after it was written; `drain` does both in a loop. The methods
    do blocking file I/O; call them through `asyncio.to_thread` from the event loop (`drain`
    already does).
    """

    def __init__(self, directory: Path | str, max_bytes: int = 512 * 1024 * 1024, *, fsync: bool = True) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._fsync = fsync
        self.directory.mkdir(parents=True, exist_ok=True)
        for stray in self.directory.glob(f"*{_SUFFIX}.tmp"):
            log.warning("removing a spool batch left half-written by a crash: %s", stray.name)
            stray.unlink()
        self._files: deque[tuple[Path, int]] = deque(
            (path, path.stat().st_size) for path in sorted(self.directory.glob(f"*{_SUFFIX}"))
        )
        self._bytes = sum(size for _, size in self._files)
        self._next = int(self._files[-1][0].stem) + 1 if self._files else 0
        if self._files:
            log.warning("spool %s holds %d batches from a previous run", self.directory, len(self._files))

    def pending(self) -> int:
        """Return how many batches wait to be written."""
        return len(self._files)

    @property
    def pending_bytes(self) -> int:
        """Return the bytes the waiting batches take on disk."""
        return self._bytes

    def append(self, ticks: Sequence[Tick], bars: Sequence[Bar], batches: Sequence[TickBatch] = ()) -> Path:
        """Store a batch (`ticks`, then the trades of `batches`, and `bars`) durably after the others.

        Raise `SpoolFullError` when there is no room.
        """
        tick_rows = [
            (t.venue, t.symbol, t.time_ns, t.trade_id, t.price, t.size, t.side, t.recv_ns, t.sent_ns) for t in ticks
        ]
        for batch in batches:
            tick_rows.extend(batch.rows())
        bar_rows = [
            (b.venue, b.symbol, b.timeframe, b.open_ns, b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trades)
            for b in bars
        ]
        payload = pickle.dumps((_FORMAT, tick_rows, bar_rows), protocol=pickle.HIGHEST_PROTOCOL)
        if self._bytes + len(payload) > self.max_bytes:
            raise SpoolFullError(
                f"spool {self.directory} is full ({self._bytes} of {self.max_bytes} bytes, batch of {len(payload)})"
            )
        path = self.directory / f"{self._next:016d}{_SUFFIX}"
        temporary = path.with_name(path.name + ".tmp")
        with temporary.open("wb") as file:
            file.write(payload)
            file.flush()
            if self._fsync:
                os.fsync(file.fileno())
        os.replace(temporary, path)
        if self._fsync:
            self._sync_directory()
        self._next += 1
        self._files.append((path, len(payload)))
        self._bytes += len(payload)
        return path

    def oldest(self) -> SpooledBatch | None:
        """Return the oldest waiting batch (it stays in the spool until `remove`), or None.

        A file that cannot be read is renamed to `*.corrupt`, logged as an error and skipped.
        """
        while self._files:
            path, _ = self._files[0]
            try:
                version, ticks, bars = pickle.loads(path.read_bytes())
                if version != _FORMAT:
                    raise ValueError(f"unknown spool format {version}")
                return SpooledBatch(path, [Tick(*row) for row in ticks], [Bar(*row) for row in bars])
            except _UNREADABLE as exc:
                log.error("spool batch %s is unreadable (%s); kept aside as .corrupt", path.name, exc)
                path.replace(path.with_suffix(".corrupt"))
                self._forget(path)
        return None

    def remove(self, batch: SpooledBatch) -> None:
        """Delete a batch once it has been written."""
        batch.path.unlink(missing_ok=True)
        self._forget(batch.path)

    async def drain(self, write: Callable[[list[Tick], list[Bar]], Awaitable[object]]) -> int:
        """Write every waiting batch with `write`, oldest first, deleting each after it succeeds.

        An exception from `write` stops the drain and propagates; that batch and the later ones
        stay in the spool. Return how many batches were written.
        """
        done = 0
        while (batch := await asyncio.to_thread(self.oldest)) is not None:
            await write(batch.ticks, batch.bars)
            await asyncio.to_thread(self.remove, batch)
            done += 1
        return done

    def _forget(self, path: Path) -> None:
        if self._files and self._files[0][0] == path:
            _, size = self._files.popleft()
        else:
            match = [(p, s) for p, s in self._files if p == path]
            if not match:
                return
            self._files.remove(match[0])
            size = match[0][1]
        self._bytes -= size

    def _sync_directory(self) -> None:
        descriptor = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

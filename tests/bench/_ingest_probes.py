"""Probes for the ingestion benchmark: CPU per process, PostgreSQL wait events, fresh databases."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil

__all__ = ["Cpu", "WaitSampler", "drop_database", "fresh_database"]


def _busy(times: Any) -> float:
    return float(times.user + times.system)


@dataclass
class Cpu:
    """CPU seconds of the processes involved, read at the start and the end of a window."""

    server_pid: int | None
    pg_data: Path
    _start: dict[str, Any] = field(default_factory=dict)
    busiest_others: list[str] = field(default_factory=list)

    def _pg(self) -> dict[int, float]:
        try:
            postmaster = psutil.Process(int(self.pg_data.joinpath("postmaster.pid").read_text().split()[0]))
            procs = [postmaster, *postmaster.children(recursive=True)]
        except (OSError, ValueError, psutil.Error):
            return {}
        out = {}
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                out[proc.pid] = _busy(proc.cpu_times())
        return out

    @staticmethod
    def _everyone() -> dict[tuple[int, str], float]:
        out = {}
        for proc in psutil.process_iter(["name", "cpu_times"]):
            times = proc.info["cpu_times"]
            if times is not None:
                out[(proc.pid, proc.info["name"] or "?")] = _busy(times)
        return out

    def _read(self) -> dict[str, Any]:
        machine = psutil.cpu_times()
        server = 0.0
        if self.server_pid is not None:
            with contextlib.suppress(psutil.Error):
                server = _busy(psutil.Process(self.server_pid).cpu_times())
        return {
            "t": time.perf_counter(),
            "self": _busy(psutil.Process().cpu_times()),
            "server": server,
            "pg": self._pg(),
            "everyone": self._everyone(),
            "machine": machine.user + machine.system + machine.nice + getattr(machine, "irq", 0.0)
            + getattr(machine, "softirq", 0.0) + getattr(machine, "steal", 0.0),
        }  # fmt: skip

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> dict[str, float]:
        """Return % of one core over the window: rata, server, postgres, others, machine (all cores)."""
        end, start = self._read(), self._start
        wall = end["t"] - start["t"]
        pg = sum(cpu - start["pg"].get(pid, 0.0) for pid, cpu in end["pg"].items())
        out = {
            "rata": (end["self"] - start["self"]) / wall * 100,
            "server": (end["server"] - start["server"]) / wall * 100,
            "postgres": pg / wall * 100,
            "machine": (end["machine"] - start["machine"]) / wall * 100,
        }
        out["others"] = max(0.0, out["machine"] - out["rata"] - out["server"] - out["postgres"])
        ours = {os.getpid(), self.server_pid, *end["pg"]}
        busiest = sorted(
            (
                (cpu - start["everyone"].get(key, 0.0), key)
                for key, cpu in end["everyone"].items()
                if key[0] not in ours
            ),
            reverse=True,
        )[:3]
        self.busiest_others = [f"{name}[{pid}] {used / wall * 100:.0f}%" for used, (pid, name) in busiest if used > 0]
        return out


class WaitSampler:
    """Sample what the pipeline's PostgreSQL backends are doing, every `every_s`, from pg_stat_activity.

    Counts, per sample and backend of database `name` (this sampler excluded): its wait event
    (`IO:DataFileTruncate`, `IO:WALSync`, ...), `CPU` when active without one, or `idle in
    transaction` while a transaction waits for the client's next statement.
    """

    def __init__(self, dsn: str, name: str, every_s: float = 0.02) -> None:
        self._dsn, self._name, self._every = dsn, name, every_s
        self.counts: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bench-pg-waits")

    async def stop(self) -> Counter[str]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return self.counts

    async def _run(self) -> None:
        conn = await asyncpg.connect(self._dsn)
        try:
            while True:
                rows = await conn.fetch(
                    "SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
                    "WHERE datname = $1 AND pid <> pg_backend_pid() AND state <> 'idle'",
                    self._name,
                )
                for state, kind, event in rows:
                    if state == "active":
                        self.counts[f"{kind}:{event}" if kind else "CPU (active, no wait event)"] += 1
                    else:
                        self.counts[state] += 1
                await asyncio.sleep(self._every)
        finally:
            await conn.close()


async def fresh_database(admin_dsn: str, name: str, settings: Mapping[str, str] | None = None) -> str:
    """(Re)create database `name` on the server of `admin_dsn` (with `settings`) and return its DSN."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
        for key, value in (settings or {}).items():
            await admin.execute(f'ALTER DATABASE "{name}" SET {key} = {value}')
    finally:
        await admin.close()
    parts = urlsplit(admin_dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


async def drop_database(admin_dsn: str, name: str) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()

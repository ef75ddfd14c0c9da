"""`DecideProcess`: strategy instances decide in a worker process, off the runner's event loop and its GIL.

`signals()` is pandas code, and pandas holds the GIL for most of it (rolling windows run column by
column in Python: 500 instruments are 500 calls). In threads, forty instances at every 1-second
close take a few hundred milliseconds of GIL that the event loop, busy with ingestion and the
order path, then waits for. A worker process has its own interpreter: the loop keeps its GIL, and a
second core does the deciding.

One job per close: the window and the instances' strategy objects (pickled: the worker imports
their classes by name, so a class defined in a notebook or a test cannot go; `decide` says which
could not, and the engine decides those in its threads). The worker decides them in order on the
same window, so indicators memoised by `framework.indicators` are shared between instances as
in-process, and sends one answer per instance: the decision's last row (all the engine acts on) or
the error, with how long the call took.

The window is a `Bars` panel (pickled whole: 2.7 MB for 132 bars of 500 instruments, 7 ms to
pickle on the runner's event loop and 4 ms to load, at every close) or, from the live engine, a
`PanelWindow`: the worker keeps a copy of the engine's `RollingPanel` and each job carries only
the rows added since the last one it got (one row of 500 instruments is 20 kB); the worker builds
the window from its copy with the same code, so it is the window the engine would have built. A
panel the worker does not have, or whose rows it missed (a restarted worker), is sent whole.

The worker starts in the background: until it has imported everything and said so, `ready` is
False and the engine keeps deciding in threads. An instance whose call exceeds the timeout is
reported as timed out; a worker that goes silent for longer is killed (a Python call cannot be
interrupted) and started again, and what it had not answered is handed back to the caller.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Final

from framework.bars import Bars
from framework.engine.panel import RollingPanel
from framework.errors import StrategyError
from framework.strategy import DecisionArrays, Strategy

__all__ = ["DecideProcess", "Outcome", "PanelWindow"]

log = logging.getLogger(__name__)

Outcome = DecisionArrays | str
"""A decision (its last row) or why the instance failed (the text it is disabled with)."""

_READY: Final = "ready"


@dataclass(frozen=True, slots=True)
class PanelWindow:
    """The newest `length` rows of `panel`, to be decided on in the worker (see the module docstring)."""

    panel: RollingPanel
    length: int


def serve(inbox: Connection, outbox: Connection) -> None:
    """Worker main: answer jobs `(job_id, window, [(instance_id, pickled strategy), ...])` until `None`.

    `window` is a `Bars` panel or `("panel", key, token, update, length)`: the rows `update` adds
    to the worker's copy of the engine's panel `key` (`_apply_update`), of which the newest
    `length` rows are the window.
    """
    import framework.indicators  # noqa: F401 - imported before saying ready: the first job pays nothing
    from framework.kernels import warm_up

    warm_up()  # and the indicators' compiled kernels loaded

    outbox.send(_READY)
    panels: dict[object, RollingPanel] = {}
    while True:
        try:
            job = inbox.recv()
        except EOFError:
            return
        if job is None:
            return
        job_id, sent_window, strategies = job
        window = sent_window if isinstance(sent_window, Bars) else _apply_update(panels, *sent_window[1:])
        for instance_id, blob in strategies:
            started = time.perf_counter_ns()
            outcome = _decide(blob, window)
            finished = time.perf_counter_ns()  # CLOCK_MONOTONIC: the engine's clock too (one machine)
            outbox.send((job_id, instance_id, outcome, (finished - started) / 1e9, finished))


def _apply_update(panels: dict[object, RollingPanel], key: object, token: int, update: Any, length: int) -> Bars:
    """Bring the worker's copy of panel `key` up to date and return its newest `length` rows.

    `update` is `("rows", times, values)`, the rows added since the last job, or `("whole",
    symbols, capacity, instruments, timeframe, times, values)` for a panel the worker has not got
    (a new or a replacing one, or any after a restart): one copy per key, the newest.
    """
    if update[0] == "whole":
        symbols, capacity, instruments, timeframe = update[1:5]
        panels[key] = RollingPanel(symbols, capacity, instruments=instruments, timeframe=timeframe)
        panels[key].token = token
    panel = panels[key]
    if panel.token != token:
        raise RuntimeError(f"the decide worker has panel {panel.token} of {key!r}, not {token}")
    panel.append_rows(update[-2], update[-1])
    return panel.window(length)


def _decide(blob: bytes, window: Bars) -> Outcome:
    strategy: Strategy | None = None
    try:
        strategy = pickle.loads(blob)
        assert strategy is not None
        decision = strategy.decide_arrays(window)
    except StrategyError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - reported, the instance is disabled; the worker goes on
        name = strategy.name if strategy is not None else "strategy"
        return f"{name}: {type(exc).__name__}: {exc}"
    return DecisionArrays(decision.kind, {k: v[-1:] for k, v in decision.arrays.items()})


class DecideProcess:
    """A worker process deciding strategy instances; see the module docstring."""

    def __init__(self, *, start: bool = True) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._inbox: Connection | None = None  # the worker's answers
        self._outbox: Connection | None = None  # its jobs
        self._ready = False
        self._answers: asyncio.Queue[tuple[object, ...] | None] | None = None  # filled as the loop reads them
        self._reading: tuple[asyncio.AbstractEventLoop, int] | None = None  # the loop watching the answers' pipe
        self._job = 0
        # panel key -> (token, close time of the newest row) of the worker's copy
        self._synced: dict[tuple[str | None, tuple[str, ...]], tuple[int, int | None]] = {}
        if start:
            self.start()

    def start(self) -> None:
        """Start the worker (in the background: it is `ready` once it has imported the framework).

        A fresh interpreter (`python -m framework.engine.decide_process`, with this process's
        import path), not a fork: the runner holds threads, sockets and a database pool.
        """
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        process = subprocess.Popen(
            [sys.executable, "-m", "framework.engine.decide_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert process.stdin is not None
        assert process.stdout is not None
        self._outbox = Connection(os.dup(process.stdin.fileno()), readable=False)
        self._inbox = Connection(os.dup(process.stdout.fileno()), writable=False)
        process.stdin.close()
        process.stdout.close()
        self._process, self._ready, self._answers = process, False, None
        self._synced = {}  # a fresh worker has no panel

    @property
    def ready(self) -> bool:
        """Return whether the worker is up and idle (its start-up message read)."""
        conn = self._inbox
        if self._ready or conn is None:
            return self._ready
        try:
            if conn.poll() and conn.recv() == _READY:
                self._ready = True
        except (EOFError, OSError):
            self._restart("the decide worker died while starting")
        return self._ready

    async def decide(
        self,
        window: Bars | PanelWindow,
        strategies: Sequence[tuple[str, Strategy]],
        timeout_s: float,
        *,
        on_outcome: Callable[[str, Outcome, int], None] | None = None,
    ) -> tuple[dict[str, tuple[Outcome, int]], list[str]]:
        """Decide `strategies` on `window`; return the outcomes (and when each call returned) and the ids left over.

        The times are `time.perf_counter_ns()` values, comparable with this process's (Linux's
        perf counter is the system-wide monotonic clock). `on_outcome(instance_id, outcome,
        finished_ns)` is called for each outcome as soon as it arrives, so that the caller can act
        on the first instances while the worker is still deciding the others.

        Left to the caller: instances whose strategy cannot be pickled, and those a stuck or dead
        worker never answered.
        """
        inbox, outbox = self._inbox, self._outbox
        outcomes: dict[str, tuple[Outcome, int]] = {}
        sent: list[tuple[str, bytes]] = []
        left: list[str] = []
        for instance_id, strategy in strategies:
            try:
                sent.append((instance_id, pickle.dumps(strategy)))
            except (pickle.PicklingError, AttributeError, TypeError):
                left.append(instance_id)
        if not sent:
            return outcomes, left
        if inbox is None or outbox is None or not self.ready:
            return outcomes, left + [i for i, _ in sent]
        names = {i: s.name for i, s in strategies}
        answers = self._answers or self._listen(inbox)
        self._job += 1
        job = self._job
        waiting = [i for i, _ in sent]  # answers come in this order
        try:
            outbox.send((job, self._window_message(window), sent))
            while waiting:
                async with asyncio.timeout(timeout_s):  # not wait_for: 3.11's can lose a cancellation
                    answer = await answers.get()
                if answer is None:
                    raise EOFError("the decide worker exited")
                job_id, answered_id, outcome, elapsed, finished_ns = answer
                if job_id != job:
                    continue  # an answer to a job whose caller gave up (cancelled)
                instance_id = waiting[0]
                if answered_id != instance_id:
                    raise EOFError(f"the decide worker answered {answered_id} for {instance_id}")
                if not isinstance(outcome, DecisionArrays | str) or not isinstance(elapsed, float):
                    raise EOFError(f"the decide worker sent {type(outcome).__name__} for {instance_id}")
                if elapsed > timeout_s:
                    outcome = _too_slow(names[instance_id], timeout_s)
                outcomes[instance_id] = (outcome, int(finished_ns))  # type: ignore[call-overload]
                waiting.pop(0)
                if on_outcome is not None:
                    on_outcome(instance_id, *outcomes[instance_id])
        except TimeoutError:
            stuck = waiting.pop(0)
            outcomes[stuck] = (_too_slow(names[stuck], timeout_s), time.perf_counter_ns())
            if on_outcome is not None:
                on_outcome(stuck, *outcomes[stuck])
            left.extend(waiting)
            self._restart(f"instance {stuck} ran past {timeout_s:g} s")
        except (EOFError, OSError, ValueError) as exc:
            left.extend(waiting)
            self._restart(f"the decide worker failed: {exc}")
        return outcomes, left

    def _window_message(self, window: Bars | PanelWindow) -> object:
        """Return what the job carries of `window`: a `Bars` as it is; of a panel, the rows the worker has not got."""
        if isinstance(window, Bars):
            return window
        panel = window.panel
        key = (panel.timeframe, tuple(panel.symbols))
        synced = self._synced.get(key)
        rows = None
        if synced is not None and synced[0] == panel.token and synced[1] is not None:
            rows = panel.rows_after(synced[1])
        update: tuple[object, ...]
        if rows is not None:
            update = ("rows", *rows)
        else:
            update = ("whole", panel.symbols, panel.capacity, panel.instruments, panel.timeframe, *panel.kept_rows())
        self._synced[key] = (panel.token, panel.last_time_ns)
        return ("panel", key, panel.token, update, window.length)

    def _listen(self, inbox: Connection) -> asyncio.Queue[tuple[object, ...] | None]:
        """Hand every answer of the worker to the event loop as it comes (`None` once the worker exits).

        The loop itself reads the pipe when it is readable (`add_reader`), every answer waiting at
        once. A reader thread would first have to win the GIL from the busy loop (up to the 5 ms
        switch interval for each answer) and then wake the loop. One reader for the worker's life:
        an answer read is never lost when a caller gives up waiting for it (it is then skipped by
        its job id).
        """
        loop = asyncio.get_running_loop()
        answers: asyncio.Queue[tuple[object, ...] | None] = asyncio.Queue()
        fd = inbox.fileno()

        def readable() -> None:
            try:
                while inbox.poll():
                    answers.put_nowait(inbox.recv())
            except (EOFError, OSError, TypeError):
                loop.remove_reader(fd)
                self._reading = None
                answers.put_nowait(None)

        loop.add_reader(fd, readable)
        self._answers, self._reading = answers, (loop, fd)
        return answers

    def _restart(self, why: str) -> None:
        log.error("restarting the decide worker: %s", why)
        self._stop(kill=True)
        self.start()

    def close(self) -> None:
        """Stop the worker."""
        self._stop(kill=False)

    def _stop(self, *, kill: bool) -> None:
        process, inbox, outbox = self._process, self._inbox, self._outbox
        self._process, self._inbox, self._outbox, self._ready, self._answers = None, None, None, False, None
        if self._reading is not None:
            loop, fd = self._reading
            self._reading = None
            if not loop.is_closed():
                loop.remove_reader(fd)
        if outbox is not None:
            if not kill:
                try:
                    outbox.send(None)
                except (OSError, ValueError):
                    kill = True
            outbox.close()
        if process is not None:
            if kill:
                process.kill()
            try:
                process.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=2.0)
        if inbox is not None:
            inbox.close()


def _too_slow(name: str, timeout_s: float) -> str:
    return f"{name}.signals() took longer than {timeout_s:g} s"


def main() -> None:
    """Entry point of the worker: jobs on stdin, answers on the original stdout (stdout itself goes to stderr)."""
    answers = os.dup(1)
    os.dup2(2, 1)  # a stray print in a strategy must not corrupt the answers
    serve(Connection(0, writable=False), Connection(answers, readable=False))


if __name__ == "__main__":
    main()

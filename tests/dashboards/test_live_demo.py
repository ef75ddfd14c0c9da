"""`rata demo` as a user runs it: a fresh data folder, everything started, URLs printed, Ctrl-C exits 0.

The demo runs as a subprocess with free ports and its data folder in the test's tmp dir, on its
own embedded PostgreSQL (no `DATABASE_URL`), with the default feed (500 instruments). The test
reads what it prints, checks that the API and the dashboards answer at the printed URLs and that
the printed admin password logs in, then presses Ctrl-C (SIGINT) and expects a clean exit. A
second run on the same folder finds the admin and the datasets already there.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from runner.cli_demo import demo

pytestmark = pytest.mark.slow

READY = "Ctrl-C stops everything."


def _command() -> list[str]:
    """Return `rata demo` (through `runner.cli` once it registers this demo, else the function itself)."""
    from runner.cli import app

    if any(command.callback is demo for command in app.registered_commands):
        return [sys.executable, "-c", "from runner.cli import main; main()", "demo"]
    return [sys.executable, "-c", "import typer; from runner.cli_demo import demo; typer.run(demo)"]


def _start(data_dir: Path, *args: str) -> tuple[subprocess.Popen[str], queue.Queue[str | None]]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"COLUMNS": "200"}
    command = [*_command(), "--api-port", "0", "--dashboard-port", "0", "--data-dir", str(data_dir), *args]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=data_dir.parent
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return proc, lines


def _read_until(lines: queue.Queue[str | None], needle: str, timeout_s: float) -> str:
    """Return everything printed up to the line containing `needle` (fail if the output ends first)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1.0)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line)
        if needle in line:
            return "".join(seen)
    pytest.fail(f"`rata demo` did not print {needle!r}:\n{''.join(seen)}")


def _rest(lines: queue.Queue[str | None], timeout_s: float) -> str:
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1.0)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line)
    return "".join(seen)


def _url(output: str, label: str) -> str:
    match = re.search(rf"{label}:\s+(http://127\.0\.0\.1:\d+\S*)", output)
    assert match, f"no {label} URL in:\n{output}"
    return match.group(1)


def test_rata_demo_starts_everything_prints_how_to_log_in_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    proc, lines = _start(data_dir, "--duration", "900")
    try:
        output = _read_until(lines, READY, timeout_s=600)
        live, research = _url(output, "live dashboard"), _url(output, "research")
        api = _url(output, "API").removesuffix("/api/v1")
        login = re.search(r"log in as:\s+(\S+) / (\S+)", output)
        assert login, output
        username, password = login.groups()
        assert "datasets stored as bars: GOOG 1d (2,148 bars)" in output

        with httpx.Client(timeout=60) as http:
            assert http.get(f"{api}/api/v1/health").json() == {"status": "ok"}
            assert http.get(f"{api}/api/v1/ready").json()["ready"] is True
            tokens = http.post(f"{api}/api/v1/auth/login", json={"username": username, "password": password})
            assert tokens.status_code == 200, tokens.text
            assert tokens.json()["role"] == "admin"
            bearer = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
            instances = http.get(f"{api}/api/v1/instances", headers=bearer).json()
            assert {i["id"] for i in instances} >= {"sma-1s", "rsi-1s", "bollinger-1m", "momentum-1m"}
            assert len(http.get(f"{api}/api/v1/instruments", headers=bearer).json()) >= 500
            page = http.get(live)
            assert page.status_code == 200
            assert "bokeh" in page.text.lower()
            assert http.get(research).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    tail = _rest(lines, timeout_s=30)
    assert proc.returncode == 0, output + tail
    assert "rata demo stopped" in tail
    assert "Traceback" not in output + tail
    assert password not in tail, "the password is printed once"
    assert "Traceback" not in (data_dir / "demo" / "runner.log").read_text()

    again, lines = _start(data_dir, "--duration", "3")
    second = _rest(lines, timeout_s=600)
    again.wait(timeout=180)
    assert again.returncode == 0, second
    assert "an admin exists already (admin)" in second
    assert "GOOG 1d (2,148 bars)" in second
    assert password not in second

"""Shared helpers for benchmarks: machine description, tables (rich and markdown), RESULTS.md sections."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from rich.table import Table
from rich.text import Text

__all__ = [
    "REPO",
    "RESULTS",
    "Row",
    "machine_rows",
    "markdown_table",
    "rich_table",
    "update_section",
]

REPO = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
_PREAMBLE = (
    "# Benchmark results\n\n"
    "Written by `make bench` (`python -m tests.bench`). Each section is rewritten by the benchmark that\n"
    "produced it; numbers come from a shared, noisy machine, so read ratios rather than absolute times.\n"
)

Row = Sequence[str]


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else "unknown"


def _ram_gib() -> str:
    import psutil

    return f"{psutil.virtual_memory().total / 2**30:.1f} GiB"


def _versions(packages: Sequence[str]) -> str:
    parts = []
    for name in packages:
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name} (absent)")
    return ", ".join(parts)


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def machine_rows(packages: Sequence[str]) -> list[tuple[str, str]]:
    """Return (item, value) rows describing when and where the benchmark ran."""
    import psutil

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        ("date", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("commit", _commit()),
        ("CPU", _cpu_model()),
        ("cores", f"{psutil.cpu_count(logical=False)} physical / {os.cpu_count()} logical"),
        ("RAM", _ram_gib()),
        ("load average (1, 5, 15 min) at start", load),
        ("python", platform.python_version()),
        ("packages", _versions(packages)),
    ]


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Row, rows: Sequence[Row]) -> str:
    """Return a GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(_escape(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_escape(str(c)) for c in row) + " |" for row in rows]
    return "\n".join(lines)


_STYLES = {"PASS": "bold green", "FAIL": "bold red"}


def rich_table(title: str, header: Row, rows: Sequence[Row]) -> Table:
    """Return a rich table; cells reading PASS or FAIL (or starting so) are coloured."""
    table = Table(title=title, title_justify="left", show_lines=False)
    for name in header:
        table.add_column(name, overflow="fold")
    for row in rows:
        styles = (next((s for k, s in _STYLES.items() if str(cell).startswith(k)), "") for cell in row)
        table.add_row(*(Text(str(cell), style=style) for cell, style in zip(row, styles, strict=True)))
    return table


def update_section(heading: str, body: str, path: Path = RESULTS) -> None:
    """Replace the section starting at `heading` (up to the next `## `) in `path`, or append it."""
    text = path.read_text() if path.exists() else _PREAMBLE
    section = f"{heading}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text)

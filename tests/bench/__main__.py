"""Run the benchmarks in tests/bench and print their tables: `python -m tests.bench [name ...] [--quick]`.

Every module named `bench_*.py` here is a benchmark (the prefix keeps pytest from collecting them).
It defines `run(console, *, quick) -> list[rich renderable]`: it measures, writes its section of
tests/bench/RESULTS.md (unless `quick`), and returns the tables to print. A name on the command line
(`sweep` or `bench_sweep`) runs only that benchmark; `--quick` makes fewer, shorter runs for a smoke
check and leaves RESULTS.md alone.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time

from rich.console import Console

import tests.bench as package


def discover() -> list[str]:
    """Return the benchmark module names, sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name.startswith("bench_"))


def main(argv: list[str] | None = None) -> int:
    available = discover()
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(available)})")
    parser.add_argument("--quick", action="store_true", help="fewer, shorter runs; do not write RESULTS.md")
    args = parser.parse_args(argv)
    wanted = [n if n.startswith("bench_") else f"bench_{n}" for n in args.names] or available
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(available)}")
    # Wide enough for the tables when the output goes to a file or a pipe (rich defaults to 80).
    console = Console() if sys.stdout.isatty() else Console(width=180)
    for name in wanted:
        console.rule(f"[bold]{name}")
        started = time.perf_counter()
        module = importlib.import_module(f"{package.__name__}.{name}")
        for renderable in module.run(console, quick=args.quick):
            console.print(renderable)
        console.print(f"[dim]{name} took {time.perf_counter() - started:.0f} s[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())

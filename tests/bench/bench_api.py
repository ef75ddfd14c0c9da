"""API latency benchmark, for `python -m tests.bench api` (the code is in `tests.bench.api`)."""

from tests.bench.api import run

__all__ = ["run"]

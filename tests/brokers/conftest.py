"""Fixtures for the paper venue tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.brokers.paper_helpers import Venue

MakeVenue = Callable[..., Awaitable[Venue]]


@pytest.fixture
async def make_venue(tmp_path: Path) -> AsyncIterator[MakeVenue]:
    """Return a factory of connected paper venues (options as `PaperBroker` keywords), closed after the test."""
    opened: list[Venue] = []

    async def make(**options: Any) -> Venue:
        v = Venue(tmp_path / f"paper-{len(opened)}", options=options)
        await v.broker.connect()
        opened.append(v)
        return v

    yield make
    for v in opened:
        await v.broker.close()


@pytest.fixture
async def venue(make_venue: MakeVenue) -> Venue:
    """Return a connected paper venue: 10,000 USD, no fees, no slippage, simulated clock."""
    return await make_venue()

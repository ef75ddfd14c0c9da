"""Fixtures for the order manager tests: rigs on the test's database and a paper venue in tmp_path."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from framework.storage import Database
from tests.engine.helpers import Rig, make_rig

MakeRig = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def make_oms(database: Database, tmp_path: Path) -> AsyncIterator[MakeRig]:
    """Return a factory of rigs (options as `make_rig` keywords; `directory` defaults to one venue), closed after."""
    opened: list[Rig] = []

    async def build(directory: Path | None = None, **options: Any) -> Rig:
        rig = await make_rig(database.pool, directory or tmp_path / "venue", **options)
        opened.append(rig)
        return rig

    yield build
    for rig in opened:
        await rig.close()


@pytest.fixture
async def oms(make_oms: MakeRig) -> Rig:
    """Return a started manager on a fresh paper venue."""
    return await make_oms()

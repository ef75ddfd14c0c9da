"""Fixtures of the API tests: a real uvicorn server with a replay runner, and tokens per role."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.api.helpers import ApiServer, serve_api


@pytest.fixture
async def api(database, tmp_path) -> AsyncIterator[ApiServer]:
    async with serve_api(database, tmp_path) as server:
        yield server


@pytest.fixture
async def admin_token(api: ApiServer) -> str:
    return await api.token("alice")


@pytest.fixture
async def trader_token(api: ApiServer) -> str:
    return await api.token("bob")


@pytest.fixture
async def viewer_token(api: ApiServer) -> str:
    return await api.token("carol")

"""The ingesting process's loop and garbage collector settings."""

from __future__ import annotations

import asyncio
import gc
import importlib.util

import pytest

from framework.ingest import loop


async def _which() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_run_uses_uvloop_when_installed_and_asyncio_on_request():
    assert loop.loop_factory("asyncio") is None
    assert loop.run(_which(), "asyncio").startswith("asyncio")
    assert loop.loop_name("asyncio").startswith("asyncio")
    if importlib.util.find_spec("uvloop") is None:
        assert loop.loop_factory("auto") is None
        with pytest.raises(ImportError):
            loop.loop_factory("uvloop")
    else:
        assert loop.run(_which(), "auto").startswith("uvloop")
        assert loop.loop_name("uvloop").startswith("uvloop ")


def test_settle_gc_moves_what_lives_after_start_up_out_of_the_collector_s_way():
    try:
        loop.settle_gc()
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()

"""schemathesis against the live OpenAPI document of a running server: no 5xx, every answer as documented.

The CLI runs in a subprocess (its own event loop and HTTP client) against the uvicorn server of
this test, with an admin token so every operation is reachable, a fixed seed and a bounded number
of examples so it finishes in a few minutes on two shared cores. Logout is left out: it would
revoke the token the run uses.
"""

from __future__ import annotations

import asyncio
import sys

import pytest

from tests.api.helpers import serve_api
from tests.api.test_market_data import _store_bars, _store_ticks

CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
    )
)
MAX_EXAMPLES = 25
RUN = "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())"


@pytest.mark.slow
async def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(database, tmp_path) -> None:
    async with serve_api(database, tmp_path) as api:
        await _store_bars(api, 40)
        await _store_ticks(api, 10)
        token = await api.token("alice")
        command = [
            sys.executable,
            "-c",
            RUN,
            "run",
            f"{api.base_url}/api/v1/openapi.json",
            "--checks",
            CHECKS,
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            "20261127",
            "--workers",
            "2",
            "--phases",
            "examples,coverage,fuzzing",
            "--header",
            f"Authorization: Bearer {token}",
            "--exclude-path",
            "/api/v1/auth/logout",
            "--request-timeout",
            "60",
            "--suppress-health-check",
            "all",
            "--no-color",
        ]
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path
        )
        output, _ = await asyncio.wait_for(process.communicate(), timeout=900)
    report = output.decode(errors="replace")
    assert process.returncode == 0, report[-20_000:]

"""Secrets never leave: broker credentials, passwords and tokens are absent from responses, logs and the audit."""

from __future__ import annotations

import json
import logging

from tests.api.helpers import JWT_SECRET, PASSWORDS, ApiServer
from tests.api.test_ws import _connect

API_KEY = "AKIA-broker-key-3141592653"
SECRET = "broker-secret-2718281828-do-not-log"
WRONG = "wrong-password-1618033988"
CLIENT_LOGGERS = ("websockets.client", "httpx", "httpcore")
"""The test's own clients log what they send; the server's logs are what must stay clean."""


async def test_credentials_passwords_and_tokens_appear_in_no_response_log_or_audit(api: ApiServer, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    admin = await api.login("alice")
    bob = await api.login("bob")
    async with api.client(admin["access_token"]) as http:
        responses = [
            await http.put("/api/v1/credentials/binance", json={"api_key": API_KEY, "secret": SECRET}),
            await http.get("/api/v1/credentials"),
            await http.post("/api/v1/auth/login", json={"username": "alice", "password": WRONG}),
            await http.post("/api/v1/auth/login", json={"username": "alice", "password": WRONG, "otp": "1"}),
            await http.post("/api/v1/auth/login", json={"username": ["alice"], "password": WRONG}),
            await http.put("/api/v1/users/bob/password", json={"password": "short"}),
            await http.post("/api/v1/auth/refresh", json={"refresh_token": bob["refresh_token"]}),
            await http.get("/api/v1/audit", params={"limit": 1000}),
            await http.get("/api/v1/ready"),
            await http.get("/metrics"),
            await http.get("/api/v1/openapi.json"),
        ]
    stored = responses[0].json()
    assert set(stored) == {"exchange", "key_fingerprint", "created_at", "updated_at"}
    assert [c["exchange"] for c in responses[1].json()] == ["binance"]
    assert responses[3].status_code == responses[4].status_code == responses[5].status_code == 422
    async with _connect(api, bob["access_token"], via="query") as ws:
        await ws.send(json.dumps({"op": "ping"}))
        await ws.recv()
    for response in responses:
        seen.append(response.text)
        seen.append(json.dumps(dict(response.headers)))
    rows = await api.ctx.db().fetch("SELECT * FROM audit_log")
    seen += [json.dumps({k: str(v) for k, v in row.items()}) for row in rows]
    server_side = [r for r in caplog.records if not r.name.startswith(CLIENT_LOGGERS)]
    seen += [record.getMessage() + str(record.exc_text or "") for record in server_side]
    ciphertext = await api.ctx.db().fetchval("SELECT ciphertext FROM broker_credentials")
    seen.append(bytes(ciphertext).decode("latin-1"))

    secrets = {
        "api key": API_KEY,
        "api secret": SECRET,
        "wrong password": WRONG,
        "signing key": JWT_SECRET,
        **{f"password of {name}": password for name, password in PASSWORDS.items()},
        "admin access token": admin["access_token"],
        "admin refresh token": admin["refresh_token"],
        "bob access token": bob["access_token"],
        "bob refresh token": bob["refresh_token"],
    }
    text = "\n".join(seen)
    leaked = [name for name, value in secrets.items() if value in text]
    assert leaked == []
    assert any("WebSocket" in r.getMessage() and "token=<redacted>" in r.getMessage() for r in server_side)

"""Authentication and authorisation of the API: tokens, roles, refresh rotation, logout, audit."""

from __future__ import annotations

import secrets
import time

import jwt
import pytest

from framework.clock import SimulatedClock
from framework.security import SigningKey, TokenService, UserStore
from tests.api.helpers import JWT_SECRET, PASSWORDS, ApiServer


def _claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": "rata",
        "aud": "rata-api",
        "sub": "alice",
        "uid": 1,
        "role": "admin",
        "typ": "access",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": secrets.token_hex(8),
    }
    claims.update(overrides)
    return claims


async def test_login_returns_tokens_that_open_the_api(api: ApiServer) -> None:
    tokens = await api.login("bob")
    assert tokens["token_type"] == "bearer"
    assert tokens["role"] == "trader"
    assert tokens["expires_in"] > 0
    async with api.client(tokens["access_token"]) as http:
        me = await http.get("/api/v1/auth/me")
    assert me.status_code == 200
    assert me.json()["username"] == "bob"


async def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(api: ApiServer) -> None:
    async with api.client() as http:
        wrong = await http.post("/api/v1/auth/login", json={"username": "bob", "password": "not-the-password"})
        nobody = await http.post("/api/v1/auth/login", json={"username": "nobody", "password": "not-the-password"})
    assert wrong.status_code == nobody.status_code == 401
    assert wrong.json() == nobody.json() == {"code": "invalid_credentials", "reason": "invalid username or password"}


async def test_logins_are_rate_limited_per_user(api: ApiServer) -> None:
    async with api.client() as http:
        codes = [
            (
                await http.post("/api/v1/auth/login", json={"username": "carol", "password": "wrong-password-x"})
            ).status_code
            for _ in range(6)
        ]
        right = await http.post("/api/v1/auth/login", json={"username": "carol", "password": PASSWORDS["carol"]})
    assert codes[:5] == [401] * 5
    assert codes[5] == 429
    assert right.status_code == 429
    assert right.json()["code"] == "rate_limited"
    assert int(right.headers["retry-after"]) > 0


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda: jwt.encode(_claims(), "another-key-of-a-forger-" + "x" * 20, algorithm="HS256"), "forged"),
        (lambda: jwt.encode(_claims(), JWT_SECRET, algorithm="HS512"), "HS512"),
        (lambda: jwt.encode(_claims(), None, algorithm="none"), "alg none"),
        (lambda: jwt.encode(_claims(aud="another-service"), JWT_SECRET, algorithm="HS256"), "audience"),
        (lambda: jwt.encode(_claims(iss="someone-else"), JWT_SECRET, algorithm="HS256"), "issuer"),
        (lambda: jwt.encode(_claims(exp=int(time.time()) - 60), JWT_SECRET, algorithm="HS256"), "expired"),
        (lambda: jwt.encode(_claims(typ="refresh"), JWT_SECRET, algorithm="HS256"), "not an access token"),
        (lambda: "not.a.jwt", "garbage"),
    ],
)
async def test_forged_expired_and_wrong_algorithm_tokens_are_refused(api: ApiServer, make, why) -> None:
    async with api.client(make()) as http:
        response = await http.get("/api/v1/positions")
    assert response.status_code == 401, why
    assert response.json()["code"] == "invalid_token"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_token_issued_an_hour_ago_has_expired(api: ApiServer, database) -> None:
    user = await UserStore(database.pool).get("alice")
    past = SimulatedClock((int(time.time()) - 3600) * 1_000_000_000)
    service = TokenService(database.pool, SigningKey(JWT_SECRET.encode()), access_ttl_s=600, clock=past)
    token, _ = service.issue_access(user)
    async with api.client(token) as http:
        response = await http.get("/api/v1/account")
    assert response.status_code == 401


async def test_calls_without_a_token_are_refused(api: ApiServer) -> None:
    async with api.client() as http:
        response = await http.get("/api/v1/orders")
        scheme = await http.get("/api/v1/orders", headers={"Authorization": "Basic YWxpY2U6cHc="})
    assert response.status_code == scheme.status_code == 401
    assert response.json()["code"] == "missing_token"


@pytest.mark.parametrize(
    ("user", "method", "path", "body"),
    [
        ("carol", "POST", "/api/v1/orders", {"symbol": "GOOG", "side": "buy", "quantity": "1"}),
        ("carol", "POST", "/api/v1/risk/kill", {"reason": "viewer tries"}),
        ("carol", "POST", "/api/v1/instances", {"id": "x", "strategy": "sma_cross", "symbols": ["GOOG"]}),
        ("bob", "PUT", "/api/v1/risk/limits", {"max_order_qty": "1000000"}),
        ("bob", "POST", "/api/v1/risk/release", {"reason": "trader tries"}),
        ("bob", "POST", "/api/v1/users", {"username": "mallory", "password": "mallory-pw-123", "role": "admin"}),
        ("bob", "PUT", "/api/v1/users/bob/role", {"role": "admin"}),
        ("bob", "PUT", "/api/v1/credentials/binance", {"api_key": "k", "secret": "s"}),
        ("bob", "GET", "/api/v1/audit", None),
        ("carol", "GET", "/api/v1/users", None),
    ],
)
async def test_role_escalation_is_refused_and_audited(api: ApiServer, user, method, path, body) -> None:
    token = await api.token(user)
    async with api.client(token) as http:
        response = await http.request(method, path, json=body)
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    if method != "GET":
        _, _, audit = api.ctx.store()
        refused = await audit.entries(username=user, outcome="refused")
        assert [e.target for e in refused] == [path]


async def test_a_demoted_user_keeps_its_role_only_until_its_next_refresh(api: ApiServer, admin_token: str) -> None:
    bob = await api.login("bob")
    async with api.client(admin_token) as http:
        demoted = await http.put("/api/v1/users/bob/role", json={"role": "viewer"})
    assert demoted.status_code == 200
    async with api.client() as http:
        refreshed = await http.post("/api/v1/auth/refresh", json={"refresh_token": bob["refresh_token"]})
    assert refreshed.json()["role"] == "viewer"
    async with api.client(refreshed.json()["access_token"]) as http:
        order = await http.post("/api/v1/orders", json={"symbol": "GOOG", "side": "buy", "quantity": "1"})
    assert order.status_code == 403


async def test_refresh_rotates_and_a_reused_refresh_token_revokes_its_family(api: ApiServer) -> None:
    first = await api.login("bob")
    async with api.client() as http:
        second = await http.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert second.status_code == 200
        reuse = await http.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert reuse.status_code == 401
        after = await http.post("/api/v1/auth/refresh", json={"refresh_token": second.json()["refresh_token"]})
    assert after.status_code == 401


async def test_another_users_refresh_token_is_refused_and_revoked(api: ApiServer) -> None:
    alice = await api.login("alice")
    bob = await api.login("bob")
    async with api.client(bob["access_token"]) as http:
        stolen = await http.post("/api/v1/auth/refresh", json={"refresh_token": alice["refresh_token"]})
    assert stolen.status_code == 401
    assert stolen.json()["code"] == "invalid_token"
    async with api.client() as http:
        owner = await http.post("/api/v1/auth/refresh", json={"refresh_token": alice["refresh_token"]})
    assert owner.status_code == 401  # the leaked token's family is revoked: alice logs in again
    _, _, audit = api.ctx.store()
    entries = await audit.entries(action="auth.refresh", outcome="refused")
    assert any(e.username == "bob" and "another user" in e.detail.get("why", "") for e in entries)


async def test_logout_ends_the_session_and_its_access_token(api: ApiServer) -> None:
    session = await api.login("bob")
    async with api.client(session["access_token"]) as http:
        out = await http.post("/api/v1/auth/logout", json={"refresh_token": session["refresh_token"]})
        assert out.status_code == 204
        after = await http.get("/api/v1/positions")
    assert after.status_code == 401
    async with api.client() as http:
        refresh = await http.post("/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert refresh.status_code == 401


async def test_every_mutating_call_is_audited_with_user_action_target_and_outcome(
    api: ApiServer, trader_token: str, admin_token: str
) -> None:
    async with api.client(trader_token) as http:
        ok = await http.post("/api/v1/orders", json={"symbol": "GOOG", "side": "buy", "quantity": "3"})
        bad = await http.post("/api/v1/orders", json={"symbol": "NOPE", "side": "buy", "quantity": "3"})
    assert ok.status_code == 201
    assert bad.status_code == 422
    async with api.client(admin_token) as http:
        page = (await http.get("/api/v1/audit", params={"username": "bob", "action": "orders.submit"})).json()
    outcomes = {(e["target"], e["outcome"]) for e in page["items"]}
    assert (ok.json()["client_id"], "ok") in outcomes
    assert ("NOPE", "refused") in outcomes
    assert all(e["client"] == "127.0.0.1" for e in page["items"])

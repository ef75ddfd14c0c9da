"""Access tokens (HS256 pinned, issuer/audience/expiry checked) and refresh tokens (hashed, rotated, revocable)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from framework.security import InvalidTokenError, Role, SigningKey, TokenService
from tests.security.conftest import NS

pytestmark = pytest.mark.db

PASSWORD = "correct horse battery"


@pytest.fixture
async def alice(users):
    return await users.add("alice", PASSWORD, Role.TRADER)


@pytest.fixture
async def bob(users):
    return await users.add("bob", PASSWORD, Role.VIEWER)


def _refused(tokens: TokenService, token: str, reason: str) -> None:
    with pytest.raises(InvalidTokenError, match="invalid or expired token") as refused:
        tokens.verify_access(token)
    assert reason in refused.value.reason


def _payload(tokens: TokenService, token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


# ---------------------------------------------------------------- access tokens


async def test_an_access_token_carries_user_role_issuer_audience_expiry_and_jti(tokens, alice, clock):
    token, claims = tokens.issue_access(alice)
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    payload = _payload(tokens, token)
    assert payload["iss"] == "rata"
    assert payload["aud"] == "rata-api"
    assert payload["sub"] == "alice"
    assert payload["exp"] - payload["iat"] == 600
    assert len(payload["jti"]) == 32
    verified = tokens.verify_access(token)
    assert verified == claims
    assert (verified.user_id, verified.username, verified.role) == (alice.id, "alice", Role.TRADER)
    assert tokens.issue_access(alice)[1].jti != claims.jti


async def test_a_token_signed_with_another_key_is_refused(tokens, alice, database, clock):
    forger = TokenService(database.pool, SigningKey(secrets.token_bytes(32)), clock=clock)
    forged, _ = forger.issue_access(alice)
    _refused(tokens, forged, "bad signature")


async def test_a_token_whose_role_was_raised_after_signing_is_refused(tokens, alice):
    token, _ = tokens.issue_access(alice)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["role"] = "admin"
    raised = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    _refused(tokens, f"{header}.{raised}.{signature}", "bad signature")


async def test_an_expired_token_is_refused_after_the_leeway(tokens, alice, clock):
    token, _ = tokens.issue_access(alice)
    clock.advance_to(clock.now_ns() + (600 + tokens.leeway_s - 1) * NS)
    tokens.verify_access(token)
    clock.advance_to(clock.now_ns() + 2 * NS)
    _refused(tokens, token, "expired")


async def test_a_token_from_the_future_is_refused(tokens, alice, database, clock, signing_key):
    from framework.clock import SimulatedClock

    ahead = TokenService(database.pool, signing_key, clock=SimulatedClock(clock.now_ns() + 3600 * NS))
    token, _ = ahead.issue_access(alice)
    _refused(tokens, token, "not valid yet")


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
async def test_other_hmac_algorithms_with_the_right_key_are_refused(tokens, alice, signing_key, algorithm):
    token, _ = tokens.issue_access(alice)
    resigned = jwt.encode(_payload(tokens, token), signing_key.value, algorithm=algorithm)
    _refused(tokens, resigned, f"algorithm '{algorithm}' is not accepted")


async def test_unsigned_alg_none_tokens_are_refused(tokens, alice):
    token, _ = tokens.issue_access(alice)
    payload = _payload(tokens, token)
    _refused(tokens, jwt.encode(payload, None, algorithm="none"), "algorithm 'none'")
    header, body, _ = token.split(".")
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    _refused(tokens, f"{none_header}.{body}.", "algorithm 'none'")
    _refused(tokens, f"{header}.{body}.", "bad signature")


async def test_an_rs256_token_is_refused(tokens, alice):
    token, _ = tokens.issue_access(alice)
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _refused(tokens, jwt.encode(_payload(tokens, token), private, algorithm="RS256"), "algorithm 'RS256'")


async def test_tokens_for_another_audience_or_issuer_are_refused(tokens, alice, database, clock, signing_key):
    other_audience = TokenService(database.pool, signing_key, audience="grafana", clock=clock)
    other_issuer = TokenService(database.pool, signing_key, issuer="someone-else", clock=clock)
    _refused(tokens, other_audience.issue_access(alice)[0], "wrong audience")
    _refused(tokens, other_issuer.issue_access(alice)[0], "wrong issuer")


async def test_tokens_missing_a_required_claim_or_of_another_type_are_refused(tokens, alice, signing_key):
    payload = _payload(tokens, tokens.issue_access(alice)[0])
    for claim in ("jti", "exp", "sub", "aud"):
        partial = {k: v for k, v in payload.items() if k != claim}
        _refused(tokens, jwt.encode(partial, signing_key.value, algorithm="HS256"), f"missing claim {claim}")
    _refused(tokens, jwt.encode({**payload, "typ": "refresh"}, signing_key.value, algorithm="HS256"), "not an access")
    _refused(tokens, jwt.encode({**payload, "role": "root"}, signing_key.value, algorithm="HS256"), "bad role")
    _refused(tokens, jwt.encode({**payload, "exp": "never"}, signing_key.value, algorithm="HS256"), "integer")
    _refused(tokens, "not.a.token", "malformed")
    _refused(tokens, "", "malformed")


async def test_a_revoked_access_token_is_refused(tokens, alice):
    token, claims = tokens.issue_access(alice)
    tokens.revoke_access(claims)
    _refused(tokens, token, "revoked")


async def test_keys_and_tokens_never_show_in_reprs(tokens, alice, signing_key):
    pair = await tokens.issue(alice)
    for shown in (repr(signing_key), repr(tokens), repr(pair), str(pair)):
        assert signing_key.value.hex() not in shown
        assert str(signing_key.value) not in shown
        assert pair.access_token not in shown
        assert pair.refresh_token not in shown


def test_a_short_signing_key_is_refused():
    with pytest.raises(ValueError, match="at least 32 bytes"):
        SigningKey(b"too short")


# ---------------------------------------------------------------- refresh tokens


async def test_refresh_tokens_are_stored_only_as_hashes(tokens, alice, database):
    pair = await tokens.issue(alice)
    async with database.pool.acquire() as conn:
        rows = await conn.fetch("SELECT t::text AS everything, token_hash FROM refresh_tokens t")
    assert len(rows) == 1
    assert pair.refresh_token not in rows[0]["everything"]
    assert bytes(rows[0]["token_hash"]) == hashlib.sha256(pair.refresh_token.encode()).digest()


async def test_a_refresh_rotates_the_token_and_the_old_one_stops_working(tokens, alice):
    first = await tokens.issue(alice)
    second = await tokens.refresh(first.refresh_token, username="alice")
    assert second.refresh_token != first.refresh_token
    assert tokens.verify_access(second.access_token).username == "alice"
    third = await tokens.refresh(second.refresh_token)
    assert third.user == alice


async def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(tokens, alice, database):
    stolen = await tokens.issue(alice)
    legitimate = await tokens.refresh(stolen.refresh_token)
    other_session = await tokens.issue(alice)
    with pytest.raises(InvalidTokenError) as reuse:
        await tokens.refresh(stolen.refresh_token)
    assert "reuse" in reuse.value.reason
    with pytest.raises(InvalidTokenError, match="invalid or expired token"):
        await tokens.refresh(legitimate.refresh_token)
    assert (await tokens.refresh(other_session.refresh_token)).user == alice
    async with database.pool.acquire() as conn:
        reasons = await conn.fetch("SELECT revoked_reason FROM refresh_tokens ORDER BY issued_at, revoked_reason")
    assert sorted(r["revoked_reason"] or "" for r in reasons) == ["", "reuse detected", "rotated", "rotated"]


async def test_two_concurrent_refreshes_of_one_token_are_treated_as_reuse(tokens, alice):
    pair = await tokens.issue(alice)
    results = await asyncio.gather(
        tokens.refresh(pair.refresh_token), tokens.refresh(pair.refresh_token), return_exceptions=True
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert isinstance(next(r for r in results if isinstance(r, BaseException)), InvalidTokenError)
    with pytest.raises(InvalidTokenError):
        await tokens.refresh(winners[0].refresh_token)


async def test_another_users_refresh_token_is_refused_and_revoked(tokens, alice, bob):
    alices = await tokens.issue(alice)
    with pytest.raises(InvalidTokenError) as foreign:
        await tokens.refresh(alices.refresh_token, username="bob")
    assert foreign.value.reason == "another user's refresh token"
    with pytest.raises(InvalidTokenError):
        await tokens.refresh(alices.refresh_token, username="alice")
    bobs = await tokens.issue(bob)
    with pytest.raises(InvalidTokenError):
        await tokens.revoke(bobs.refresh_token, username="alice")
    with pytest.raises(InvalidTokenError):
        await tokens.refresh(bobs.refresh_token, username="bob")


async def test_logout_revokes_the_refresh_token(tokens, alice):
    pair = await tokens.issue(alice)
    await tokens.revoke(pair.refresh_token, username="alice")
    with pytest.raises(InvalidTokenError):
        await tokens.refresh(pair.refresh_token)
    with pytest.raises(InvalidTokenError, match="invalid or expired token"):
        await tokens.revoke("never-issued")


async def test_an_expired_refresh_token_is_refused_and_pruned(tokens, alice, clock):
    pair = await tokens.issue(alice)
    clock.advance_to(clock.now_ns() + 3600 * NS)
    with pytest.raises(InvalidTokenError) as expired:
        await tokens.refresh(pair.refresh_token)
    assert expired.value.reason == "expired refresh token"
    assert await tokens.prune() == 1
    with pytest.raises(InvalidTokenError, match="invalid"):
        await tokens.refresh(pair.refresh_token)


async def test_a_refresh_carries_the_users_current_role(tokens, users, alice):
    pair = await tokens.issue(alice)
    await users.add("root", PASSWORD, Role.ADMIN)
    await users.set_role("alice", Role.VIEWER)
    refreshed = await tokens.refresh(pair.refresh_token)
    assert tokens.verify_access(refreshed.access_token).role is Role.VIEWER


async def test_a_password_change_or_removal_ends_the_users_sessions(tokens, users, alice, bob):
    alices, bobs = await tokens.issue(alice), await tokens.issue(bob)
    await users.passwd("alice", "a brand new passphrase")
    with pytest.raises(InvalidTokenError):
        await tokens.refresh(alices.refresh_token)
    await users.remove("bob")
    with pytest.raises(InvalidTokenError) as removed:
        await tokens.refresh(bobs.refresh_token)
    assert removed.value.reason == "unknown refresh token"
    assert await tokens.revoke_user(alice.id) == 0

"""Users in PostgreSQL: add, list, remove, passwords, roles, authentication and its audit."""

from __future__ import annotations

import pytest

from framework.errors import ParameterError, RejectedError, UnknownNameError
from framework.security import AuthenticationError, LoginRateLimited, Passwords, Role, UserStore

pytestmark = pytest.mark.db

PASSWORD = "correct horse battery"


async def test_users_are_added_listed_and_removed_case_insensitively(users):
    alice = await users.add("Alice", PASSWORD, Role.TRADER)
    await users.add("bob", PASSWORD)
    assert (alice.username, alice.role) == ("alice", Role.TRADER)
    assert [(u.username, u.role) for u in await users.list()] == [("alice", Role.TRADER), ("bob", Role.VIEWER)]
    assert (await users.get("ALICE")).id == alice.id
    with pytest.raises(RejectedError, match="'alice' already exists"):
        await users.add("alice", PASSWORD)
    await users.remove("alice")
    with pytest.raises(UnknownNameError, match="unknown user 'alice'; valid: bob"):
        await users.get("alice")
    with pytest.raises(UnknownNameError):
        await users.remove("alice")


async def test_bad_usernames_and_weak_passwords_are_refused(users):
    for name in ("", "a b", "x" * 65, "-dash", "semi;colon"):
        with pytest.raises(ParameterError, match="username"):
            await users.add(name, PASSWORD)
    with pytest.raises(ParameterError, match="at least 10"):
        await users.add("carol", "short")
    with pytest.raises(ValueError, match="'root' is not a valid Role"):
        await users.add("carol", PASSWORD, "root")
    assert await users.list() == []


async def test_only_an_argon2id_hash_is_stored(users, database):
    await users.add("alice", PASSWORD)
    async with database.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT u::text AS everything, password_hash FROM users u")
    assert PASSWORD not in row["everything"]
    assert row["password_hash"].startswith("$argon2id$")
    assert not hasattr(await users.get("alice"), "password_hash")


async def test_authentication_accepts_the_password_and_refuses_alike_a_wrong_one_or_an_unknown_user(users, audit):
    alice = await users.add("alice", PASSWORD, Role.ADMIN)
    assert await users.authenticate(" Alice ", PASSWORD, client="192.0.2.1") == alice
    with pytest.raises(AuthenticationError) as wrong:
        await users.authenticate("alice", "wrong password!", client="192.0.2.1")
    with pytest.raises(AuthenticationError) as unknown:
        await users.authenticate("mallory", PASSWORD, client="192.0.2.2")
    with pytest.raises(AuthenticationError):
        await users.authenticate("not a valid name!", PASSWORD)
    assert str(wrong.value) == str(unknown.value) == "invalid username or password"
    entries = await audit.entries(action="login")
    assert [(e.username, e.outcome.value, e.client, e.detail) for e in reversed(entries)] == [
        ("alice", "ok", "192.0.2.1", {}),
        ("alice", "refused", "192.0.2.1", {"reason": "wrong password"}),
        ("mallory", "refused", "192.0.2.2", {"reason": "unknown user"}),
        ("not a valid name!", "refused", None, {"reason": "unknown user"}),
    ]
    assert all(PASSWORD not in str(e.detail) for e in entries)


async def test_a_locked_out_user_is_refused_even_with_the_right_password(users, audit):
    await users.add("alice", PASSWORD)
    for _ in range(users.limiter.per_user.attempts):
        with pytest.raises(AuthenticationError):
            await users.authenticate("alice", "guess guess guess", client="198.51.100.1")
    with pytest.raises(LoginRateLimited):
        await users.authenticate("alice", PASSWORD, client="203.0.113.5")
    refused = await audit.entries(action="login", outcome="refused")
    assert len(refused) == users.limiter.per_user.attempts


async def test_a_locked_out_user_logs_in_again_once_the_window_passed(users, clock):
    await users.add("alice", PASSWORD)
    for _ in range(users.limiter.per_user.attempts):
        with pytest.raises(AuthenticationError):
            await users.authenticate("alice", "guess guess guess")
    clock.advance_to(clock.now_ns() + int(users.limiter.per_user.window_s * 1e9) + 1)
    assert (await users.authenticate("alice", PASSWORD)).username == "alice"


async def test_a_password_change_takes_effect_and_the_old_one_stops_working(users):
    await users.add("alice", PASSWORD)
    await users.passwd("alice", "a brand new passphrase")
    assert (await users.authenticate("alice", "a brand new passphrase")).username == "alice"
    with pytest.raises(AuthenticationError):
        await users.authenticate("alice", PASSWORD)


async def test_the_last_admin_can_be_neither_removed_nor_demoted(users):
    await users.add("root", PASSWORD, Role.ADMIN)
    with pytest.raises(RejectedError, match="last admin"):
        await users.remove("root")
    with pytest.raises(RejectedError, match="last admin"):
        await users.set_role("root", Role.TRADER)
    await users.add("backup", PASSWORD, Role.ADMIN)
    assert (await users.set_role("root", "viewer")).role is Role.VIEWER
    with pytest.raises(RejectedError, match="last admin"):
        await users.remove("backup")


async def test_a_hash_made_with_weaker_parameters_is_upgraded_at_the_next_login(database, clock, users):
    await users.add("alice", PASSWORD)
    stronger = UserStore(database.pool, passwords=Passwords(), clock=clock)
    await stronger.authenticate("alice", PASSWORD)
    async with database.pool.acquire() as conn:
        stored = await conn.fetchval("SELECT password_hash FROM users WHERE username = 'alice'")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert (await stronger.authenticate("alice", PASSWORD)).username == "alice"


def test_roles_include_the_ones_below_them():
    assert Role.ADMIN.allows(Role.TRADER)
    assert Role.ADMIN.allows(Role.VIEWER)
    assert Role.TRADER.allows(Role.VIEWER)
    assert not Role.TRADER.allows(Role.ADMIN)
    assert not Role.VIEWER.allows(Role.TRADER)

"""argon2id hashing with RFC 9106's low-memory profile, the password policy, rehash on weaker hashes."""

from __future__ import annotations

import argon2
import pytest

from framework.errors import ParameterError
from framework.security import Passwords, check_password_policy
from tests.security.conftest import FAST_ARGON2

PASSWORD = "correct horse battery"


def test_passwords_are_hashed_with_argon2id_at_the_rfc_9106_cost_and_a_fresh_salt():
    passwords = Passwords()
    first, second = passwords.hash(PASSWORD), passwords.hash(PASSWORD)
    assert first.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert first != second
    assert PASSWORD not in first
    assert passwords.verify(first, PASSWORD)
    assert passwords.verify(second, PASSWORD)
    assert not passwords.verify(first, PASSWORD + "!")
    assert not passwords.needs_rehash(first)


def test_a_malformed_or_foreign_hash_is_a_mismatch_not_an_error():
    passwords = Passwords(FAST_ARGON2)
    assert not passwords.verify("not a hash", PASSWORD)
    assert not passwords.verify("$2b$12$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234", PASSWORD)
    assert passwords.needs_rehash("not a hash")


def test_a_hash_made_with_weaker_parameters_needs_a_rehash():
    weak = Passwords(FAST_ARGON2).hash(PASSWORD)
    assert Passwords().needs_rehash(weak)
    assert Passwords().verify(weak, PASSWORD)


def test_only_argon2id_is_accepted():
    argon2i = argon2.Parameters(
        type=argon2.Type.I, version=19, salt_len=16, hash_len=32, time_cost=3, memory_cost=65536, parallelism=4
    )
    with pytest.raises(ValueError, match="argon2id"):
        Passwords(argon2i)


@pytest.mark.parametrize(
    ("password", "message"),
    [("", "empty"), ("          ", "empty"), ("short-pw", "at least 10"), ("x" * 1025, "at most 1024")],
)
def test_weak_passwords_are_refused_without_quoting_them(password, message):
    with pytest.raises(ParameterError, match=message) as refused:
        check_password_policy(password)
    if password.strip():
        assert password not in str(refused.value)
    with pytest.raises(ParameterError):
        Passwords(FAST_ARGON2).hash(password)


def test_an_overlong_candidate_is_refused_without_hashing():
    passwords = Passwords(FAST_ARGON2)
    assert not passwords.verify(passwords.hash(PASSWORD), "x" * 5000)


async def test_async_hashing_runs_off_the_event_loop_and_agrees():
    passwords = Passwords(FAST_ARGON2)
    hashed = await passwords.hash_async(PASSWORD)
    assert await passwords.verify_async(hashed, PASSWORD)
    assert not await passwords.verify_async(hashed, "wrong password")
    assert repr(passwords) == "Passwords(argon2id, t=1, m=8 KiB, p=1)"

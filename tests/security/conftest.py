"""Fixtures of the security tests: a simulated clock, cheap password hashing, stores on a real database."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import argon2
import pytest

from framework.clock import SimulatedClock
from framework.events import datetime_to_ns
from framework.security import AuditLog, LoginRateLimiter, Passwords, SigningKey, TokenService, UserStore

START_NS = datetime_to_ns(datetime(2030, 1, 2, 9, 0, tzinfo=UTC))
NS = 1_000_000_000

# Cheap argon2id for tests that are about the stores, not the hash (test_passwords checks the real profile).
FAST_ARGON2 = argon2.Parameters(
    type=argon2.Type.ID, version=19, salt_len=16, hash_len=32, time_cost=1, memory_cost=8, parallelism=1
)


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(START_NS)


@pytest.fixture
def fast_passwords() -> Passwords:
    return Passwords(FAST_ARGON2)


@pytest.fixture
def audit(database, clock) -> AuditLog:
    return AuditLog(database.pool, clock)


@pytest.fixture
def users(database, clock, fast_passwords, audit) -> UserStore:
    return UserStore(
        database.pool, passwords=fast_passwords, limiter=LoginRateLimiter(clock=clock), audit=audit, clock=clock
    )


@pytest.fixture
def signing_key() -> SigningKey:
    return SigningKey(secrets.token_bytes(32))


@pytest.fixture
def tokens(database, clock, signing_key) -> TokenService:
    return TokenService(database.pool, signing_key, access_ttl_s=600, refresh_ttl_s=3600, clock=clock)

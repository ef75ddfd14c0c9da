"""Login rate limiting per username and per client address, on a simulated clock."""

from __future__ import annotations

import pytest

from framework.clock import SimulatedClock
from framework.security import LoginRateLimited, LoginRateLimiter, RateLimit
from framework.security.ratelimit import client_key
from tests.security.conftest import NS, START_NS


@pytest.fixture
def limiter(clock) -> LoginRateLimiter:
    return LoginRateLimiter(per_user=RateLimit(3, 60), per_client=RateLimit(5, 60), clock=clock)


def test_a_username_is_locked_after_its_failures_until_the_oldest_leaves_the_window(limiter, clock):
    for i in range(3):
        limiter.check("alice", "10.0.0.1")
        limiter.failed("alice", f"10.0.0.{i + 1}")
        clock.advance_to(clock.now_ns() + 10 * NS)
    with pytest.raises(LoginRateLimited) as limited:
        limiter.check("alice", "10.0.0.9")
    assert limited.value.scope == "user"
    assert limited.value.retry_after_s == pytest.approx(30)
    assert "try again in 30 s" in str(limited.value)
    limiter.check("bob", "10.0.0.9")
    clock.advance_to(START_NS + 60 * NS + 1)
    limiter.check("alice", "10.0.0.9")
    assert limiter.user_failures("alice") == 2


def test_a_client_address_is_locked_whatever_usernames_it_tries(limiter):
    for i in range(5):
        limiter.failed(f"user{i}", "192.0.2.7")
    with pytest.raises(LoginRateLimited) as limited:
        limiter.check("someone-else", "192.0.2.7")
    assert limited.value.scope == "client"
    limiter.check("someone-else", "192.0.2.8")
    limiter.check("someone-else")


def test_a_success_clears_the_username_but_not_the_address(limiter):
    for _ in range(2):
        limiter.failed("alice", "192.0.2.7")
    limiter.succeeded("alice")
    assert limiter.user_failures("alice") == 0
    assert limiter.client_failures("192.0.2.7") == 2


def test_ipv6_clients_are_grouped_by_their_64_and_mapped_ipv4_by_its_address():
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("testclient") == "testclient"


def test_rotating_ipv6_addresses_within_one_64_does_not_escape_the_limit(limiter):
    for i in range(5):
        limiter.failed(f"user{i}", f"2001:db8:0:1::{i + 1}")
    with pytest.raises(LoginRateLimited):
        limiter.check("user9", "2001:db8:0:1::ffff")


def test_tracked_keys_are_capped():
    limiter = LoginRateLimiter(clock=SimulatedClock(START_NS), max_keys=10)
    for i in range(100):
        limiter.failed(f"user{i}")
    assert limiter.user_failures("user99") == 1
    assert limiter.user_failures("user0") == 0


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="attempts"):
        RateLimit(0, 60)
    with pytest.raises(ValueError, match="positive window"):
        RateLimit(3, 0)

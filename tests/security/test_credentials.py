"""Broker credentials encrypted at rest with Fernet, key rotation, and secrets kept out of reprs and logs."""

from __future__ import annotations

import logging

import pytest

from framework.brokers.credentials import credentials_from_env, load_credentials
from framework.errors import ParameterError, RejectedError
from framework.security import ApiCredentials, CredentialError, CredentialStore, MasterKeys
from framework.settings import load_settings

pytestmark = pytest.mark.db

API_KEY = "AKIAexampleAPIkey0123456789"
SECRET = "s3cr3t-value-never-to-be-seen-0123456789"
VALUES = (API_KEY, SECRET)


@pytest.fixture
def key_a() -> str:
    return MasterKeys.generate()


@pytest.fixture
def key_b() -> str:
    return MasterKeys.generate()


@pytest.fixture
def store(database, key_a, clock) -> CredentialStore:
    return CredentialStore(database.pool, MasterKeys([key_a]), clock)


def _absent(text: str, *keys: str) -> None:
    for value in (*VALUES, *keys):
        assert value not in text


async def test_credentials_round_trip_and_are_encrypted_at_rest(store, database, key_a):
    stored = await store.set("Binance", ApiCredentials(f" {API_KEY}\n", SECRET))
    assert stored.exchange == "binance"
    assert stored.key_fingerprint == MasterKeys([key_a]).primary
    assert await store.get("binance") == ApiCredentials(API_KEY, SECRET)
    async with database.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT c::text AS everything, ciphertext FROM broker_credentials c")
    _absent(row["everything"], key_a)
    _absent(bytes(row["ciphertext"]).decode("latin-1"))
    assert bytes(row["ciphertext"]).startswith(b"gAAAAA")  # a Fernet token


async def test_listing_shows_no_secret_and_unknown_exchanges_have_none(store):
    await store.set("binance", ApiCredentials(API_KEY, SECRET))
    listed = await store.list()
    assert [s.exchange for s in listed] == ["binance"]
    _absent(repr(listed))
    assert await store.get("kraken") is None
    assert await store.remove("binance")
    assert not await store.remove("binance")


async def test_setting_again_replaces_the_credentials(store):
    await store.set("binance", ApiCredentials(API_KEY, SECRET))
    await store.set("binance", ApiCredentials("new-key-123", "new-secret-456"))
    assert await store.get("binance") == ApiCredentials("new-key-123", "new-secret-456")
    assert len(await store.list()) == 1


async def test_incomplete_credentials_and_bad_exchange_ids_are_refused(store):
    with pytest.raises(ParameterError, match="both an API key and a secret"):
        await store.set("binance", ApiCredentials(API_KEY, "  "))
    with pytest.raises(ParameterError, match="exchange id"):
        await store.set("bin ance; drop table", ApiCredentials(API_KEY, SECRET))


async def test_the_wrong_master_key_cannot_read_and_says_so_without_the_secret(store, database, key_b):
    await store.set("binance", ApiCredentials(API_KEY, SECRET))
    with pytest.raises(CredentialError, match="cannot decrypt the stored credentials of binance") as wrong:
        await CredentialStore(database.pool, MasterKeys([key_b])).get("binance")
    _absent(str(wrong.value), key_b)
    with pytest.raises(CredentialError, match="RATA_MASTER_KEY"):
        await CredentialStore(database.pool, None).get("binance")
    assert [s.exchange for s in await CredentialStore(database.pool, None).list()] == ["binance"]


async def test_a_ciphertext_moved_to_another_exchange_or_altered_is_refused(store, database):
    await store.set("binance", ApiCredentials(API_KEY, SECRET))
    await store.set("kraken", ApiCredentials("k2-key-000", "k2-secret-000"))
    async with database.pool.acquire() as conn:
        await conn.execute(
            "UPDATE broker_credentials SET ciphertext = (SELECT ciphertext FROM broker_credentials "
            "WHERE exchange = 'binance') WHERE exchange = 'kraken'"
        )
    with pytest.raises(CredentialError, match="encrypted for another exchange"):
        await store.get("kraken")
    async with database.pool.acquire() as conn:
        await conn.execute("UPDATE broker_credentials SET ciphertext = overlay(ciphertext placing 'x' from 40)")
    with pytest.raises(CredentialError, match="altered"):
        await store.get("binance")


async def test_rotation_re_encrypts_every_row_with_the_new_key(store, database, key_a, key_b, clock):
    await store.set("binance", ApiCredentials(API_KEY, SECRET))
    await store.set("kraken", ApiCredentials("k2-key-000", "k2-secret-000"))
    async with database.pool.acquire() as conn:
        before = {r["exchange"]: bytes(r["ciphertext"]) for r in await conn.fetch("SELECT * FROM broker_credentials")}
    both = MasterKeys([key_b, key_a])
    assert await CredentialStore(database.pool, both, clock).rotate() == 2
    assert {s.key_fingerprint for s in await store.list()} == {both.primary}
    new_only = CredentialStore(database.pool, MasterKeys([key_b]))
    assert await new_only.get("binance") == ApiCredentials(API_KEY, SECRET)
    assert await new_only.get("kraken") == ApiCredentials("k2-key-000", "k2-secret-000")
    with pytest.raises(CredentialError):
        await store.get("binance")
    async with database.pool.acquire() as conn:
        after = {r["exchange"]: bytes(r["ciphertext"]) for r in await conn.fetch("SELECT * FROM broker_credentials")}
    assert all(after[e] != before[e] for e in before)


async def test_rotation_is_all_or_nothing_when_a_row_cannot_be_opened(store, database, key_a, key_b):
    await store.set("binance", ApiCredentials(API_KEY, SECRET))
    stranger = MasterKeys.generate()
    await CredentialStore(database.pool, MasterKeys([stranger])).set("kraken", ApiCredentials("k2-key", "k2-sec"))
    with pytest.raises(CredentialError, match="kraken"):
        await CredentialStore(database.pool, MasterKeys([key_b, key_a])).rotate()
    assert await store.get("binance") == ApiCredentials(API_KEY, SECRET)
    assert {s.key_fingerprint for s in await store.list()} == {
        MasterKeys([key_a]).primary,
        MasterKeys([stranger]).primary,
    }


async def test_secrets_never_reach_the_logs(store, database, key_a, key_b, caplog):
    caplog.set_level(logging.DEBUG)
    await store.set("binance", ApiCredentials(API_KEY, SECRET))
    await store.get("binance")
    await CredentialStore(database.pool, MasterKeys([key_b, key_a])).rotate()
    with pytest.raises(CredentialError):
        await store.get("binance")
    await load_credentials("binance", database.pool, keys=MasterKeys([key_b]))
    assert "binance" in caplog.text
    _absent(caplog.text, key_a, key_b)


def test_master_keys_come_from_the_environment_or_a_key_file_never_both(tmp_path, key_a, key_b, monkeypatch, caplog):
    monkeypatch.delenv("RATA_MASTER_KEY", raising=False)
    monkeypatch.delenv("RATA_MASTER_KEY_FILE", raising=False)
    assert MasterKeys.from_settings(load_settings()) is None
    monkeypatch.setenv("RATA_MASTER_KEY", f"{key_b}, {key_a}")
    from_env = MasterKeys.from_settings(load_settings())
    assert from_env is not None
    assert from_env.fingerprints == (MasterKeys([key_b]).primary, MasterKeys([key_a]).primary)
    _absent(repr(from_env), key_a, key_b)
    key_file = tmp_path / "master.key"
    key_file.write_text(f"# newest first\n{key_b}\n\n{key_a}\n")
    key_file.chmod(0o644)
    with pytest.raises(ParameterError, match="not both"):
        MasterKeys.from_settings(load_settings(master_key_file=key_file))
    monkeypatch.delenv("RATA_MASTER_KEY")
    from_file = MasterKeys.from_settings(load_settings(master_key_file=key_file))
    assert from_file is not None
    assert from_file.fingerprints == from_env.fingerprints
    assert "may be read by other users" in caplog.text


def test_a_malformed_master_key_is_refused_without_echoing_it(monkeypatch, key_a):
    monkeypatch.setenv("RATA_MASTER_KEY", f"{key_a},not-a-fernet-key-but-a-secret")
    with pytest.raises(ParameterError, match="RATA_MASTER_KEY: key 2 of 2 is not a Fernet key") as bad:
        MasterKeys.from_settings(load_settings())
    assert "not-a-fernet-key-but-a-secret" not in str(bad.value)
    assert key_a not in str(bad.value)
    assert bad.value.__cause__ is None
    assert bad.value.__suppress_context__


def test_secrets_are_refused_in_the_toml_file(tmp_path, key_a):
    config = tmp_path / "rata.toml"
    config.write_text(f'master_key = "{key_a}"\n')
    with pytest.raises(ParameterError, match="secrets must come from the environment") as refused:
        load_settings(config)
    assert key_a not in str(refused.value)


async def test_the_broker_looks_in_the_store_first_then_the_environment(store, database, key_a):
    env = {"RATA_BINANCE_API_KEY": "env-key", "RATA_BINANCE_SECRET": "env-secret"}
    keys = MasterKeys([key_a])
    assert await load_credentials("binance", database.pool, keys=keys, environ=env) == ApiCredentials(
        "env-key", "env-secret"
    )
    await store.set("binance", ApiCredentials(API_KEY, SECRET))
    assert await load_credentials("binance", database.pool, keys=keys, environ=env) == ApiCredentials(API_KEY, SECRET)
    assert await load_credentials("binance", None, environ=env) == credentials_from_env("binance", env)
    with pytest.raises(CredentialError):
        await load_credentials("binance", database.pool, keys=MasterKeys([MasterKeys.generate()]), environ=env)
    with pytest.raises(RejectedError, match="RATA_KRAKEN_API_KEY"):
        await load_credentials("kraken", database.pool, keys=keys, environ={})


async def test_the_broker_reads_the_master_key_from_the_settings_when_not_given_keys(
    store, database, monkeypatch, key_a
):
    await store.set("binance", ApiCredentials(API_KEY, SECRET))
    monkeypatch.setenv("RATA_MASTER_KEY", key_a)
    assert await load_credentials("binance", database.pool, environ={}) == ApiCredentials(API_KEY, SECRET)
    assert repr(await load_credentials("binance", database.pool)) == "ApiCredentials(api_key=<hidden>, secret=<hidden>)"

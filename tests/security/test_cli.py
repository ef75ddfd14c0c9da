"""`rata users` and `rata credentials` against a real database: secrets in, never out."""

from __future__ import annotations

import asyncio
import json
import stat

import pytest
from typer.testing import CliRunner

from framework.security import AuditLog, CredentialStore, MasterKeys, UserStore
from runner.cli import app

pytestmark = pytest.mark.db

PASSWORD = "correct horse battery"
API_KEY = "AKIAexampleAPIkey0123456789"
SECRET = "s3cr3t-value-never-to-be-seen-0123456789"


@pytest.fixture
def master_key() -> str:
    return MasterKeys.generate()


@pytest.fixture
def rata(database, monkeypatch, master_key, tmp_path):
    """Run `rata ...` on the test database (in a thread: the CLI runs its own event loop)."""
    monkeypatch.setenv("DATABASE_URL", database.dsn)
    monkeypatch.setenv("RATA_DATA_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("RATA_MASTER_KEY", master_key)
    monkeypatch.delenv("RATA_MASTER_KEY_FILE", raising=False)
    runner = CliRunner()

    async def invoke(*args: str, input: str | None = None):
        return await asyncio.to_thread(runner.invoke, app, list(args), input=input)

    return invoke


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    return lines[0]


async def test_users_add_list_passwd_role_remove_and_every_change_is_audited(rata, database):
    added = await rata("users", "add", "Alice", "--role", "admin", "--password-stdin", input=f"{PASSWORD}\n")
    assert added.exit_code == 0, added.output
    assert "added user alice (admin)" in added.stdout
    assert PASSWORD not in added.output
    prompted = await rata("users", "add", "bob", "--role", "trader", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert prompted.exit_code == 0, prompted.output
    assert PASSWORD not in prompted.output
    listed = await rata("users", "list", "--json")
    assert [(u["username"], u["role"]) for u in json.loads(listed.stdout)] == [("alice", "admin"), ("bob", "trader")]
    assert "password" not in listed.stdout
    table = await rata("users", "list")
    assert "alice" in table.stdout
    assert "argon2" not in table.stdout

    changed = await rata("users", "passwd", "bob", "--password-stdin", input="a brand new passphrase\n")
    assert changed.exit_code == 0, changed.output
    assert "a brand new passphrase" not in changed.output
    assert (await UserStore(database.pool).authenticate("bob", "a brand new passphrase")).username == "bob"
    assert (await rata("users", "role", "bob", "viewer")).exit_code == 0
    removed = await rata("users", "remove", "bob", "--yes")
    assert removed.exit_code == 0
    assert "removed user bob" in removed.stdout

    entries = await AuditLog(database.pool).entries()
    assert [(e.action, e.target, e.outcome.value) for e in reversed(entries)] == [
        ("users.add", "alice", "ok"),
        ("users.add", "bob", "ok"),
        ("users.passwd", "bob", "ok"),
        ("users.role", "bob", "ok"),
        ("users.remove", "bob", "ok"),
    ]
    assert all(e.username.startswith("cli:") for e in entries)
    assert all(PASSWORD not in json.dumps(e.detail) for e in entries)


async def test_user_errors_are_one_line_and_exit_2(rata, database):
    await rata("users", "add", "alice", "--role", "admin", "--password-stdin", input=f"{PASSWORD}\n")
    assert "already exists" in _one_error_line(
        await rata("users", "add", "alice", "--password-stdin", input=f"{PASSWORD}\n")
    )
    weak = _one_error_line(await rata("users", "add", "carol", "--password-stdin", input="short\n"))
    assert "at least 10" in weak
    assert "short" not in weak.removeprefix("error: the password must")
    assert "unknown role 'root'" in _one_error_line(
        await rata("users", "add", "carol", "--role", "root", "--password-stdin", input=f"{PASSWORD}\n")
    )
    assert "last admin" in _one_error_line(await rata("users", "remove", "alice", "--yes"))
    assert "unknown user 'nobody'" in _one_error_line(
        await rata("users", "passwd", "nobody", "--password-stdin", input=f"{PASSWORD}\n")
    )
    assert "empty line" in _one_error_line(await rata("users", "add", "dave", "--password-stdin", input="\n"))
    mismatch = await rata("users", "add", "erin", input=f"{PASSWORD}\nsomething else\n")
    assert mismatch.exit_code != 0
    assert PASSWORD not in mismatch.output
    refused = await AuditLog(database.pool).entries(outcome="refused")
    assert [(e.action, e.target) for e in refused] == [
        ("users.passwd", "nobody"),
        ("users.remove", "alice"),
        ("users.add", "alice"),
    ]


async def test_credentials_set_list_rotate_and_remove_never_show_a_secret(rata, database, monkeypatch, master_key):
    stored = await rata("credentials", "set", "binance", "--stdin", input=f"{API_KEY}\n{SECRET}\n")
    assert stored.exit_code == 0, stored.output
    prompted = await rata("credentials", "set", "kraken", input="kraken-key-1\nkraken-secret-1\n")
    assert prompted.exit_code == 0, prompted.output
    listed = await rata("credentials", "list", "--json")
    assert [(c["exchange"], c["current_key"]) for c in json.loads(listed.stdout)] == [
        ("binance", True),
        ("kraken", True),
    ]
    outputs = [stored.output, prompted.output, listed.output, (await rata("credentials", "list")).output]

    new_key = MasterKeys.generate()
    monkeypatch.setenv("RATA_MASTER_KEY", f"{new_key},{master_key}")
    stale = await rata("credentials", "list")
    assert "older key: run rotate-key" in stale.stdout
    rotated = await rata("credentials", "rotate-key")
    assert rotated.exit_code == 0, rotated.output
    assert f"re-encrypted 2 stored credential(s) with master key {MasterKeys([new_key]).primary}" in rotated.stdout
    outputs += [stale.output, rotated.output]
    store = CredentialStore(database.pool, MasterKeys([new_key]))
    assert (await store.get("binance")).secret == SECRET

    removed = await rata("credentials", "remove", "kraken", "--yes")
    assert removed.exit_code == 0, removed.output
    for text in [*outputs, removed.output]:
        for value in (API_KEY, SECRET, "kraken-key-1", "kraken-secret-1", master_key, new_key):
            assert value not in text
    entries = await AuditLog(database.pool).entries()
    assert [e.action for e in reversed(entries)] == [
        "credentials.set",
        "credentials.set",
        "credentials.rotate-key",
        "credentials.remove",
    ]


async def test_credentials_without_a_master_key_are_a_one_line_error(rata, monkeypatch):
    monkeypatch.delenv("RATA_MASTER_KEY")
    line = _one_error_line(await rata("credentials", "set", "binance", "--stdin", input=f"{API_KEY}\n{SECRET}\n"))
    assert "RATA_MASTER_KEY" in line
    assert SECRET not in line
    assert "RATA_MASTER_KEY" in _one_error_line(await rata("credentials", "rotate-key"))
    assert "no stored credentials" in (await rata("credentials", "list")).stdout
    assert "unknown exchange with stored credentials 'kraken'" in _one_error_line(
        await rata("credentials", "remove", "kraken", "--yes")
    )


async def test_generate_key_puts_a_new_key_first_in_a_private_key_file(rata, tmp_path):
    printed = await rata("credentials", "generate-key")
    assert printed.exit_code == 0
    MasterKeys([printed.stdout.strip()])
    key_file = tmp_path / "keys" / "master.key"
    first = await rata("credentials", "generate-key", "--key-file", str(key_file))
    assert first.exit_code == 0, first.output
    keys_before = key_file.read_text().split()
    second = await rata("credentials", "generate-key", "--key-file", str(key_file))
    assert "1 older key(s) kept" in second.stdout
    keys_after = key_file.read_text().split()
    assert len(keys_after) == 2
    assert keys_after[1] == keys_before[0]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert keys_after[0] not in second.output
    assert MasterKeys(keys_after).primary in second.stdout

"""`rata credentials`: broker API keys and secrets, stored encrypted in the database.

rata credentials generate-key --key-file /etc/rata/master.key   (then RATA_MASTER_KEY_FILE=that file)
rata credentials set binance                  (asks the API key and the secret, never echoes them)
printf '%s\\n%s\\n' "$KEY" "$SECRET" | rata credentials set binance --stdin
rata credentials list                         (exchanges and key fingerprints, never a secret)
rata credentials rotate-key                   (re-encrypt every row with the first master key)
rata credentials remove binance --yes

Key rotation: `generate-key --key-file F` puts a new key first in F (the old ones stay, to decrypt);
`rotate-key` re-encrypts every row with it; then delete the old lines. With `RATA_MASTER_KEY`, put
the new key first in the comma-separated list yourself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from runner.cli_output import console
from runner.cli_support import JsonOpt, UserErrorEdge, emit_json, fail
from runner.cli_users import ConfigOpt, YesOpt, audited, read_secret, run_with_pool

if TYPE_CHECKING:
    import asyncpg

    from framework.security import AuditLog, CredentialStore
    from framework.settings import Settings

__all__ = ["credentials_app"]

credentials_app = typer.Typer(
    cls=UserErrorEdge,
    help="Broker API credentials, encrypted in the database with the master key (RATA_MASTER_KEY[_FILE]).",
    no_args_is_help=True,
)
ExchangeArg = Annotated[str, typer.Argument(help="ccxt exchange id, e.g. binance.", show_default=False)]


def _stores(pool: asyncpg.Pool, settings: Settings) -> tuple[CredentialStore, AuditLog]:
    from framework.security import AuditLog, CredentialStore, MasterKeys

    return CredentialStore(pool, MasterKeys.from_settings(settings)), AuditLog(pool)


@credentials_app.command("set")
def set_credentials(
    exchange: ExchangeArg,
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read the API key, then the secret, one a line, from standard input.")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Store (or replace) an exchange's API key and secret, encrypted with the master key."""
    from framework.security import ApiCredentials, normalise_exchange

    name = normalise_exchange(exchange)
    api_key = read_secret("API key", stdin)
    secret = read_secret("secret", stdin)

    async def work(pool: asyncpg.Pool, settings: Settings) -> Any:
        store, audit = _stores(pool, settings)
        return await audited(audit, "credentials.set", name, store.set(name, ApiCredentials(api_key, secret)))

    stored = run_with_pool(config, work)
    console().print(f"stored the credentials of [bold]{stored.exchange}[/bold] (master key {stored.key_fingerprint})")


@credentials_app.command("list")
def list_credentials(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """List the exchanges with stored credentials and the master key of each (never a key or secret)."""
    from framework.security import MasterKeys

    async def work(pool: asyncpg.Pool, settings: Settings) -> tuple[list[Any], str | None]:
        store, _ = _stores(pool, settings)
        keys = MasterKeys.from_settings(settings)
        return list(await store.list()), None if keys is None else keys.primary

    found, primary = run_with_pool(config, work)
    rows = [
        {
            "exchange": s.exchange,
            "key": s.key_fingerprint,
            "current_key": primary is not None and s.key_fingerprint == primary,
            "updated": s.updated_at,
        }
        for s in found
    ]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        console().print("no stored credentials; add some with `rata credentials set EXCHANGE`")
        return
    from rich.table import Table

    table = Table("exchange", "master key", "updated", title="broker credentials", title_justify="left")
    for row in rows:
        mark = "" if primary is None or row["current_key"] else " [yellow](older key: run rotate-key)[/yellow]"
        table.add_row(row["exchange"], f"{row['key']}{mark}", f"{row['updated']:%Y-%m-%d %H:%M}")
    console().print(table)


@credentials_app.command("remove")
def remove_credentials(exchange: ExchangeArg, yes: YesOpt = False, config: ConfigOpt = None) -> None:
    """Delete an exchange's stored credentials."""
    from framework.errors import UnknownNameError
    from framework.security import normalise_exchange

    name = normalise_exchange(exchange)
    if not yes and not typer.confirm(f"remove the credentials of {name}?", default=False):
        fail("not removed")

    async def work(pool: asyncpg.Pool, settings: Settings) -> bool:
        store, audit = _stores(pool, settings)
        known = [s.exchange for s in await store.list()]
        if name not in known:
            raise UnknownNameError("exchange with stored credentials", name, known)
        return await audited(audit, "credentials.remove", name, store.remove(name))

    run_with_pool(config, work)
    console().print(f"removed the credentials of [bold]{name}[/bold]")


@credentials_app.command("rotate-key")
def rotate_key(config: ConfigOpt = None) -> None:
    """Re-encrypt every stored credential with the first master key, all or nothing."""

    async def work(pool: asyncpg.Pool, settings: Settings) -> tuple[int, str]:
        from framework.security import CredentialError, MasterKeys

        keys = MasterKeys.from_settings(settings)
        if keys is None:
            raise CredentialError("rotating the master key needs RATA_MASTER_KEY or RATA_MASTER_KEY_FILE")
        store, audit = _stores(pool, settings)
        count = await audited(audit, "credentials.rotate-key", "*", store.rotate(), {"key": keys.primary})
        return count, keys.primary

    count, primary = run_with_pool(config, work)
    console().print(
        f"re-encrypted {count} stored credential(s) with master key [bold]{primary}[/bold]; "
        "keys after the first one can now be removed"
    )


@credentials_app.command("generate-key")
def generate_key(
    key_file: Annotated[
        Path | None,
        typer.Option("--key-file", help="Put the new key first in this file (created with mode 600); else print it."),
    ] = None,
) -> None:
    """Make a new master key: print it, or put it first in a key file (older keys stay, to decrypt)."""
    from framework.security import MasterKeys
    from framework.security.keys import read_key_file

    key = MasterKeys.generate()
    if key_file is None:
        typer.echo(key)
        return
    old = read_key_file(key_file) if key_file.exists() else []
    key_file.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write("\n".join([key, *old]) + "\n")
    os.chmod(key_file, 0o600)
    console().print(
        f"new master key {MasterKeys([key]).primary} is first in {key_file} "
        f"({len(old)} older key(s) kept); now run `rata credentials rotate-key`"
    )

"""`rata users`: the users of the runner API and their roles.

rata users add alice --role trader          (asks the password twice, never echoes it)
echo "$PASSWORD" | rata users add bot --role viewer --password-stdin
rata users list
rata users passwd alice
rata users role alice admin
rata users remove alice --yes

Every change is written to the audit log as done by `cli:<login name>`. The schema is migrated
first, so these work on a fresh database.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from runner.cli_output import console
from runner.cli_support import JsonOpt, UserErrorEdge, emit_json, fail

if TYPE_CHECKING:
    import asyncpg

    from framework.security import AuditLog, UserStore
    from framework.settings import Settings

__all__ = ["actor", "audited", "read_secret", "run_with_pool", "users_app"]

T = TypeVar("T")

users_app = typer.Typer(
    cls=UserErrorEdge, help="Users of the runner API: add, list, remove, passwords and roles.", no_args_is_help=True
)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="Deployment TOML file (secrets come from the environment).")
]
UsernameArg = Annotated[str, typer.Argument(help="Username: letters, digits and _ . @ -.", show_default=False)]
PasswordStdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first line of standard input.")
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def actor() -> str:
    """Return who the audit log records for a CLI change: `cli:<login name>`."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli:unknown"


def read_secret(label: str, from_stdin: bool, *, confirm: bool = False) -> str:
    """Return a secret read from one line of stdin, or asked for without echo; never print it."""
    if from_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
        if not value:
            fail(f"expected the {label} on standard input, got an empty line")
        return value
    try:
        value = typer.prompt(label, hide_input=True, confirmation_prompt=confirm)
    except typer.Abort:
        fail(f"no {label} given; type it at the prompt or pass it on standard input")
    return str(value)


def run_with_pool(config: Path | None, work: Callable[[asyncpg.Pool, Settings], Awaitable[T]]) -> T:
    """Open the configured database, migrate it, and run `work(pool, settings)`."""
    from framework.settings import load_settings
    from framework.storage import apply_migrations, open_database

    settings = load_settings(config)

    async def main() -> T:
        async with open_database(settings) as db:
            await apply_migrations(db.pool)
            return await work(db.pool, settings)

    return asyncio.run(main())


async def audited(
    audit: AuditLog, action: str, target: str, change: Awaitable[T], detail: dict[str, Any] | None = None
) -> T:
    """Await `change` and audit it as done by `actor()`: `ok`, or `refused` with the error, which is re-raised."""
    from framework.errors import RejectedError

    try:
        result = await change
    except RejectedError as exc:
        await audit.record(actor(), action, target, "refused", detail={**(detail or {}), "error": str(exc)})
        raise
    await audit.record(actor(), action, target, "ok", detail=detail)
    return result


def _stores(pool: asyncpg.Pool) -> tuple[UserStore, AuditLog]:
    from framework.security import AuditLog, UserStore

    return UserStore(pool), AuditLog(pool)


@users_app.command("add")
def add(
    username: UsernameArg,
    role: Annotated[str, typer.Option("--role", "-r", help="viewer (read), trader (orders, strategies) or admin.")] = (
        "viewer"
    ),
    password_stdin: PasswordStdinOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Add a user; the password is asked twice (or read from stdin) and stored as an argon2id hash."""
    from framework.errors import UnknownNameError
    from framework.security import Role, check_password_policy, normalise_username

    name = normalise_username(username)
    if role not in {r.value for r in Role}:
        raise UnknownNameError("role", role, [r.value for r in Role])
    password = read_secret("password", password_stdin, confirm=True)
    check_password_policy(password)

    async def work(pool: asyncpg.Pool, _: Settings) -> Any:
        users, audit = _stores(pool)
        return await audited(audit, "users.add", name, users.add(name, password, role), {"role": role})

    user = run_with_pool(config, work)
    console().print(f"added user [bold]{user.username}[/bold] ({user.role})")


@users_app.command("list")
def list_users(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """List the users and their roles."""

    async def work(pool: asyncpg.Pool, _: Settings) -> list[Any]:
        users, _audit = _stores(pool)
        return list(await users.list())

    found = run_with_pool(config, work)
    rows = [
        {"username": u.username, "role": str(u.role), "created": u.created_at, "updated": u.updated_at} for u in found
    ]
    if as_json:
        emit_json(rows)
        return
    from rich.table import Table

    table = Table("username", "role", "created", "updated", title="users", title_justify="left")
    for row in rows:
        table.add_row(row["username"], row["role"], *(f"{row[k]:%Y-%m-%d %H:%M}" for k in ("created", "updated")))
    console().print(table if rows else "no users; add one with `rata users add NAME --role admin`")


@users_app.command("remove")
def remove(username: UsernameArg, yes: YesOpt = False, config: ConfigOpt = None) -> None:
    """Remove a user and end its sessions (the last admin cannot be removed)."""
    from framework.security import normalise_username

    name = normalise_username(username)
    if not yes and not typer.confirm(f"remove user {name}?", default=False):
        fail("not removed")

    async def work(pool: asyncpg.Pool, _: Settings) -> Any:
        users, audit = _stores(pool)
        return await audited(audit, "users.remove", name, users.remove(name))

    run_with_pool(config, work)
    console().print(f"removed user [bold]{name}[/bold]")


@users_app.command("passwd")
def passwd(username: UsernameArg, password_stdin: PasswordStdinOpt = False, config: ConfigOpt = None) -> None:
    """Set a user's password; its refresh tokens are revoked, so it logs in again."""
    from framework.security import check_password_policy, normalise_username

    name = normalise_username(username)
    password = read_secret("new password", password_stdin, confirm=True)
    check_password_policy(password)

    async def work(pool: asyncpg.Pool, _: Settings) -> Any:
        users, audit = _stores(pool)
        return await audited(audit, "users.passwd", name, users.passwd(name, password))

    run_with_pool(config, work)
    console().print(f"changed the password of [bold]{name}[/bold]; its sessions must log in again")


@users_app.command("role")
def role(
    username: UsernameArg,
    new_role: Annotated[str, typer.Argument(help="viewer, trader or admin.", show_default=False)],
    config: ConfigOpt = None,
) -> None:
    """Change a user's role (it applies at the user's next token refresh)."""
    from framework.errors import UnknownNameError
    from framework.security import Role, normalise_username

    name = normalise_username(username)
    if new_role not in {r.value for r in Role}:
        raise UnknownNameError("role", new_role, [r.value for r in Role])

    async def work(pool: asyncpg.Pool, _: Settings) -> Any:
        users, audit = _stores(pool)
        return await audited(audit, "users.role", name, users.set_role(name, new_role), {"role": new_role})

    user = run_with_pool(config, work)
    console().print(f"[bold]{user.username}[/bold] is now {user.role}")

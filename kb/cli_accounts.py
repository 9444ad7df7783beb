"""`kb users` and `kb keys`: the people who sign in, their roles, and API keys, each change audited."""

from __future__ import annotations

import json
import sys

import click


def _settings(ctx: click.Context) -> dict:
    return ctx.obj["settings"]


def _db(ctx: click.Context):
    """The workflow database of the instance folder, closed when the command ends."""
    from kb.store import connect

    db = connect(_settings(ctx)["DATA_DIR"])
    ctx.call_on_close(db.close)
    return db


def _cli_actor() -> str:
    """The audit actor of a CLI command: cli: and the operating-system user."""
    import getpass

    try:
        return "cli:" + getpass.getuser()
    except (KeyError, OSError):
        return "cli:unknown"


def _Audit(db, action: str, target: str, **details):  # noqa: N802 - used like the class it makes
    """kb.administration.Audited for a CLI command: actor cli:<os user>, client cli."""
    from kb.administration import Audited

    return Audited(db, _actor(), action, target, **details)


def _actor():
    """The audit actor and client of a CLI command."""
    from kb.administration import Actor

    return Actor(_cli_actor(), "cli")


def _read_password(from_stdin: bool) -> str:
    """A password from one line of stdin, or asked twice without echo."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@click.group("users")
def users_group() -> None:
    """Manage the people who sign in and their roles (agent, author, approver, admin)."""


@users_group.command("add")
@click.argument("name")
@click.option("--role", required=True, help="agent, author, approver or admin.")
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of stdin instead of asking.")
@click.pass_context
def users_add_command(ctx: click.Context, name: str, role: str, password_stdin: bool) -> None:
    """Add a user with a role and a password (asked twice, hidden)."""
    from kb.administration import add_user

    db = _db(ctx)
    password = _read_password(password_stdin)
    user = add_user(db, _actor(), name, role, password)
    click.echo(f"added user {user.name} ({user.role})")


@users_group.command("role")
@click.argument("name")
@click.argument("role")
@click.pass_context
def users_role_command(ctx: click.Context, name: str, role: str) -> None:
    """Give a user another role."""
    from kb.administration import change_role

    old, user = change_role(_db(ctx), _actor(), name, role)
    click.echo(f"{user.name}: {old} -> {user.role}")


@users_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {id, name, role, disabled}.")
@click.pass_context
def users_list_command(ctx: click.Context, as_json: bool) -> None:
    """List the users and their roles."""
    from dataclasses import asdict

    from kb.accounts import list_users

    users = list_users(_db(ctx))
    if as_json:
        click.echo(json.dumps([asdict(u) for u in users], indent=2))
        return
    if not users:
        click.echo("no users", err=True)
    width = max((len(u.name) for u in users), default=0)
    for user in users:
        click.echo(f"{user.name:<{width}}  {user.role}" + ("  (disabled)" if user.disabled else ""))


@users_group.command("password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of stdin instead of asking.")
@click.pass_context
def users_password_command(ctx: click.Context, name: str, password_stdin: bool) -> None:
    """Set a user's password (asked twice, hidden)."""
    from kb.administration import set_password

    db = _db(ctx)
    password = _read_password(password_stdin)
    set_password(db, _actor(), name, password)
    click.echo(f"changed the password of {name}")


@users_group.command("disable")
@click.argument("name")
@click.pass_context
def users_disable_command(ctx: click.Context, name: str) -> None:
    """Disable a user: their sessions end and their API keys stop working (never the last enabled admin)."""
    from kb.administration import set_disabled

    user = set_disabled(_db(ctx), _actor(), name, True)
    click.echo(f"disabled {user.name}")


@users_group.command("enable")
@click.argument("name")
@click.pass_context
def users_enable_command(ctx: click.Context, name: str) -> None:
    """Enable a disabled user again (they log in anew; their unrevoked keys work again)."""
    from kb.administration import set_disabled

    user = set_disabled(_db(ctx), _actor(), name, False)
    click.echo(f"enabled {user.name}")


@click.group("keys")
def keys_group() -> None:
    """Manage API keys for chatbots and agent-assist tools (stored hashed, shown once)."""


@keys_group.command("create")
@click.option("--user", "user_name", required=True, help="The user the key acts as (it has that user's role).")
@click.option("--name", "label", required=True, help="A label saying what uses the key (1-64 characters).")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(["search", "read", "write", "review", "admin"]),
    help="What the key may do; repeat for several (default: search and read). Never more than the user's role.",
)
@click.pass_context
def keys_create_command(ctx: click.Context, user_name: str, label: str, scopes: tuple[str, ...]) -> None:
    """Create an API key and print it alone on the last line: it is never shown again."""
    from kb.accounts import get_user
    from kb.administration import create_key

    db = _db(ctx)
    key, row = create_key(db, _actor(), user_name, label, scopes or ("search", "read"))
    role = get_user(db, row["user"]).role
    click.echo(
        f"created key {row['id']} for user {row['user']} ({role}), label {row['label']!r}, "
        f"scopes {' '.join(row['scopes'])}:"
    )
    click.echo("warning: this key is shown only once; store it now", err=True)
    click.echo(key)


@keys_group.command("list")
@click.option("--user", "user_name", default=None, help="Only this user's keys.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {id, user, label, prefix, created, ...}.")
@click.pass_context
def keys_list_command(ctx: click.Context, user_name: str | None, as_json: bool) -> None:
    """List API keys: their first characters, never the keys."""
    from kb.accounts import list_keys

    keys = list_keys(_db(ctx), user_name)
    if as_json:
        click.echo(json.dumps(keys, indent=2))
        return
    if not keys:
        click.echo("no keys", err=True)
    for k in keys:
        state = f"revoked {k['revoked']}" if k["revoked"] else f"last used {k['last_used'] or 'never'}"
        click.echo(
            f"{k['id']:>4}  {k['prefix']}...  {k['user']}  {k['label']!r}  scopes {','.join(k['scopes'])}"
            f"  created {k['created']}  {state}"
        )


@keys_group.command("revoke")
@click.argument("key_id", metavar="ID", type=int)
@click.pass_context
def keys_revoke_command(ctx: click.Context, key_id: int) -> None:
    """Revoke an API key: it stops working at once."""
    from kb.administration import revoke_key

    row, already = revoke_key(_db(ctx), _actor(), key_id)
    if already:
        click.echo(f"key {row['id']} ({row['user']}, {row['label']!r}) was already revoked at {row['revoked']}")
    else:
        click.echo(f"revoked key {row['id']} ({row['user']}, {row['label']!r})")

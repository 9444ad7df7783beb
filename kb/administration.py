"""Administering people and API keys, each change audited: the one implementation behind `kb users`, `kb keys`
and the admin pages (/admin/users, /admin/keys).

Every function takes the acting :class:`Actor` (an admin's user name and address on the web, ``cli:<os user>``
and ``cli`` on the command line) and records exactly one audit row per call, ``ok`` or ``failed`` with the
error's message (the error is then raised again for the caller to show). The rules themselves (names, roles,
passwords, scopes, the last enabled admin) live in kb.accounts; nothing here bypasses them.

    action            target          details
    user_added        user:<name>     role
    role_changed      user:<name>     from, to
    password_changed  user:<name>     (none)
    user_disabled     user:<name>     (none)
    user_enabled      user:<name>     (none)
    key_created       key:<id>        user, label, scopes, prefix (target user:<name> when creation failed)
    key_revoked       key:<id>        user, label, already_revoked
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from kb import accounts, audit
from kb.database import Connection
from kb.errors import KbError

GENERATED_PASSWORD_BYTES = 12  # token_urlsafe(12): 16 characters, 96 random bits


@dataclass(frozen=True)
class Actor:
    """Who makes an administrative change, as the audit log names them: actor and client."""

    name: str
    client: str


class Audited:
    """Record one audit row for a with-block: ok, or failed with the KbError's message (then re-raised).

    Inside the block, .target and .details may change once more is known (a new key's id).
    """

    def __init__(self, db: Connection, actor: Actor, action: str, target: str, **details):
        self.db, self.actor, self.action, self.target, self.details = db, actor, action, target, details

    def __enter__(self) -> Audited:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            outcome, details = "ok", self.details or None
        elif isinstance(error, KbError):
            outcome, details = "failed", {**self.details, "error": error.message}
        else:
            return
        audit.record(
            self.db,
            self.action,
            actor=self.actor.name,
            target=self.target,
            outcome=outcome,
            client=self.actor.client,
            details=details,
        )


def _target(name: object) -> str:
    """The audit target of a user as typed (bounded: a form may send a long name that validation then refuses)."""
    return f"user:{str(name)[: accounts.MAX_TYPED_NAME]}"


def generate_password() -> str:
    """A random password for a new user or a reset, shown once to the admin who passes it on."""
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)


def add_user(db: Connection, actor: Actor, name: str, role: str, password: str) -> accounts.User:
    """Add a user (audited user_added)."""
    with Audited(db, actor, "user_added", _target(name), role=role):
        return accounts.add_user(db, name, role, password)


def change_role(db: Connection, actor: Actor, name: str, role: str) -> tuple[str | None, accounts.User]:
    """Give a user another role (audited role_changed, from and to); return the old role and the user."""
    before = accounts.get_user(db, name) if isinstance(name, str) else None
    old = before.role if before else None
    with Audited(db, actor, "role_changed", _target(name), **{"from": old, "to": role}):
        return old, accounts.set_role(db, name, role)


def set_password(db: Connection, actor: Actor, name: str, password: str) -> None:
    """Replace a user's password, ending their sessions (audited password_changed)."""
    with Audited(db, actor, "password_changed", _target(name)):
        accounts.set_password(db, name, password)


def set_disabled(db: Connection, actor: Actor, name: str, disabled: bool) -> accounts.User:
    """Disable a user (their sessions end, their keys stop) or enable them again (audited user_disabled/enabled)."""
    with Audited(db, actor, "user_disabled" if disabled else "user_enabled", _target(name)):
        return accounts.set_disabled(db, name, disabled)


def create_key(
    db: Connection, actor: Actor, user_name: str, label: str, scopes: tuple[str, ...] | list[str]
) -> tuple[str, dict]:
    """Create an API key (audited key_created); return the key, shown only now, and its stored row."""
    typed = label[: accounts.MAX_TYPED_NAME] if isinstance(label, str) else label  # bounded before it is refused
    details = {"user": user_name, "label": typed, "scopes": list(scopes)}
    with Audited(db, actor, "key_created", _target(user_name), **details) as entry:
        key, row = accounts.create_key(db, user_name, label, scopes)
        entry.target = f"key:{row['id']}"
        entry.details["prefix"] = row["prefix"]
    return key, row


def revoke_key(db: Connection, actor: Actor, key_id: int) -> tuple[dict, bool]:
    """Revoke an API key (audited key_revoked); return its row and whether it was revoked already."""
    with Audited(db, actor, "key_revoked", f"key:{key_id}") as entry:
        before = db.execute("SELECT revoked FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        row = accounts.revoke_key(db, key_id)
        already = before["revoked"] is not None
        entry.details.update(user=row["user"], label=row["label"], already_revoked=already)
    return row, already


def last_logins(db: Connection) -> dict[str, str]:
    """Each user's latest successful log-in on the web, from the audit log (users never logged in are absent)."""
    rows = db.execute("SELECT actor, max(at) AS at FROM audit WHERE action = 'login' AND outcome = 'ok' GROUP BY actor")
    return {row["actor"]: row["at"] for row in rows}


def key_counts(db: Connection) -> dict[str, int]:
    """How many unrevoked API keys each user holds."""
    rows = db.execute(
        "SELECT u.name, count(*) AS n FROM api_keys k JOIN users u ON u.id = k.user_id"
        " WHERE k.revoked IS NULL GROUP BY u.name"
    )
    return {row["name"]: row["n"] for row in rows}

"""People, roles and API keys: users with hashed passwords, keys stored only as their SHA-256.

Roles in increasing order of power: agent (search, read), author (drafts),
approver (review, publish), admin (users, keys). A role includes every role
below it. Functions here validate their input (InputError naming the field)
and write nothing to the audit log: the caller (web or CLI) knows the actor.

Each user has a session generation: :func:`set_password`, :func:`set_role`,
:func:`set_disabled` and :func:`end_sessions` (log-out) bump it, and the web
layer refuses a session cookie made at an older generation, so those events end
every session of that user in every worker. Neither may take away the last
enabled admin. Names typed by strangers pass
through :func:`login_name` (redacted, bounded, no control characters) before
they are looked up, stored or echoed.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache

from werkzeug.security import check_password_hash, generate_password_hash

from kb.database import Connection, IntegrityError, Record
from kb.errors import InputError, NotFoundError
from kb.redaction import redact
from kb.store import TIME_FORMAT, now, transaction

ROLES = ("agent", "author", "approver", "admin")
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}")
MIN_PASSWORD = 10
MAX_LABEL = 64
MAX_NAME = 64  # longest user name
MAX_TYPED_NAME = 256  # longest text a log-in form may send as a name before it is even normalised
# What an API key may do, and the least role each scope needs: a key never exceeds its user's role.
SCOPE_ROLES = {"search": "agent", "read": "agent", "write": "author", "review": "approver", "admin": "admin"}
SCOPES = tuple(SCOPE_ROLES)
KEY_PREFIX = "kb_"
KEY_SHOWN = 10  # characters of a key kept in clear to recognise it
LAST_USED_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class User:
    """A person who signs in: id, unique name, role, whether disabled, and the current session generation."""

    id: int
    name: str
    role: str
    disabled: bool = False
    generation: int = field(default=0, compare=False)  # session generation: not part of who the user is


def has_role(user: User | None, needed: str) -> bool:
    """Return True if user's role is needed or a more powerful one (never for None or a disabled user)."""
    if needed not in ROLES:
        raise ValueError(f"unknown role {needed!r}")
    if user is None or user.disabled or user.role not in ROLES:
        return False
    return ROLES.index(user.role) >= ROLES.index(needed)


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or redact(name) != name:
        raise InputError(
            "name: must be 2-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit,"
            " and not a card number",
            {"field": "name"},
        )
    return name


def login_name(typed: object) -> str:
    """The name typed into a log-in form, trimmed, NFKC-normalised and card-masked; InputError if it cannot be one.

    The result is safe to store in the audit log and to echo: it is at most MAX_NAME printable characters
    and holds no card number.
    """
    if not isinstance(typed, str):
        raise InputError("name: must be text", {"field": "name"})
    if len(typed) > MAX_TYPED_NAME:
        raise InputError(f"name: at most {MAX_NAME} characters", {"field": "name"})
    if not typed.isprintable():  # control characters, line separators, lone surrogates
        raise InputError("name: must not contain control characters", {"field": "name"})
    name = redact(typed.strip())
    if not name:
        raise InputError("name: required", {"field": "name"})
    if len(name) > MAX_NAME or not name.isprintable():
        raise InputError(f"name: at most {MAX_NAME} printable characters", {"field": "name"})
    return name


def _check_role(role: object) -> str:
    if role not in ROLES:
        raise InputError(f"role: must be one of {', '.join(ROLES)}, got {role!r}", {"field": "role"})
    return role  # type: ignore[return-value]


def _check_password(password: object) -> str:
    if not isinstance(password, str):
        raise InputError("password: must be text", {"field": "password"})
    if len(password) < MIN_PASSWORD:
        raise InputError(f"password: must be at least {MIN_PASSWORD} characters", {"field": "password"})
    if len(set(password)) == 1:
        raise InputError("password: must not be one character repeated", {"field": "password"})
    return password


def _check_label(label: object) -> str:
    if not isinstance(label, str) or not 1 <= len(label) <= MAX_LABEL or not label.isprintable() or not label.strip():
        raise InputError(f"label: must be 1-{MAX_LABEL} printable characters, not blank", {"field": "label"})
    return redact(label)  # a card number typed into a label is masked before it is stored


# Two admins demoting or disabling each other at once on two replicas: PostgreSQL runs the checks one after the other.
ADMINS_LOCK = "kb.accounts.admins"


def _user(row: Record) -> User:
    return User(row["id"], row["name"], row["role"], bool(row["disabled"]), row["session_generation"])


def _row(db: Connection, name: str) -> Record:
    row = db.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone() if isinstance(name, str) else None
    if row is None:
        shown = redact(name[:MAX_NAME]) if isinstance(name, str) else name
        raise NotFoundError(f"no user named {shown!r}", {"field": "name"})
    return row


def _bump(db: Connection, user_id: int, assignments: str = "", params: tuple = ()) -> None:
    """Apply assignments to a user and end all of its sessions (a new session generation), in one transaction."""
    # Only fixed column assignments written in this module reach the SQL; values are parameters.
    sql = f"UPDATE users SET {assignments}session_generation = session_generation + 1 WHERE id = ?"  # noqa: S608
    with transaction(db):
        db.execute(sql, (*params, user_id))


def add_user(db: Connection, name: str, role: str, password: str) -> User:
    """Create a user with a scrypt-hashed password and return it."""
    _check_name(name)
    _check_role(role)
    _check_password(password)
    password_hash = generate_password_hash(password)
    try:
        with transaction(db):
            cursor = db.execute(
                "INSERT INTO users (name, role, password_hash, created) VALUES (?, ?, ?, ?)",
                (name, role, password_hash, now()),
            )
    except IntegrityError:
        raise InputError(f"name: a user named {name!r} already exists", {"field": "name"}) from None
    return User(cursor.lastrowid, name, role)


@cache
def _dummy_hash() -> str:
    return generate_password_hash(secrets.token_urlsafe(16))


def authenticate(db: Connection, name: str, password: str) -> User | None:
    """Return the user if name and password match an enabled account, else None (in about the same time)."""
    if not isinstance(name, str) or not isinstance(password, str):
        return None
    row = db.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
    if row is None:
        check_password_hash(_dummy_hash(), password)  # as slow as a real check: names do not leak
        return None
    if not check_password_hash(row["password_hash"], password) or row["disabled"]:
        return None
    return _user(row)


def get_user(db: Connection, name: str) -> User | None:
    """Return the user named name (disabled or not), or None."""
    row = db.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
    return None if row is None else _user(row)


def list_users(db: Connection) -> list[User]:
    """Return every user, by name."""
    return [_user(row) for row in db.execute("SELECT * FROM users ORDER BY name")]


def _keep_an_admin(db: Connection, row: Record, field: str) -> None:
    """Refuse a change that takes away the last enabled admin (nobody could then manage users on the web)."""
    if row["role"] != "admin" or row["disabled"]:
        return
    others = db.execute(
        "SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0 AND id != ?", (row["id"],)
    ).fetchone()[0]
    if not others:
        raise InputError(
            f"{field}: {row['name']} is the last enabled admin; make another user admin first", {"field": field}
        )


def set_role(db: Connection, name: str, role: str) -> User:
    """Give the user named name another role (ending all of their sessions) and return the updated user.

    Raises:
        InputError: an unknown role, or the change would leave no enabled admin.
    """
    _check_role(role)
    with transaction(db, lock=ADMINS_LOCK):  # the last-admin check and the change under one write lock
        row = _row(db, name)
        if role != "admin":
            _keep_an_admin(db, row, "role")
        _bump(db, row["id"], "role = ?, ", (role,))
    return _user(_row(db, name))


def set_password(db: Connection, name: str, password: str) -> None:
    """Replace the password of the user named name, ending all of their sessions."""
    _check_password(password)
    row = _row(db, name)
    _bump(db, row["id"], "password_hash = ?, ", (generate_password_hash(password),))


def set_disabled(db: Connection, name: str, disabled: bool = True) -> User:
    """Disable (or enable again) the user named name and end their sessions; disabled users cannot sign in or use keys.

    Raises:
        InputError: disabling the last enabled admin.
    """
    with transaction(db, lock=ADMINS_LOCK):
        row = _row(db, name)
        if disabled:
            _keep_an_admin(db, row, "disabled")
        _bump(db, row["id"], "disabled = ?, ", (int(disabled),))
    return _user(_row(db, name))


def end_sessions(db: Connection, name: str) -> int:
    """End every session of the user named name (log-out ends them all, in every browser); return the new generation."""
    row = _row(db, name)
    _bump(db, row["id"])
    return _row(db, name)["session_generation"]


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


_KEY_COLUMNS = """
    SELECT k.id, u.name AS user, k.label, k.prefix, k.scopes, k.created, k.last_used, k.revoked
    FROM api_keys k JOIN users u ON u.id = k.user_id
"""


def check_scopes(scopes: object, role: str) -> tuple[str, ...]:
    """The scopes of a new key, in SCOPES order; every problem named.

    Raises:
        InputError: no scope, an unknown scope, or a scope the user's role does not reach.
    """
    if not isinstance(scopes, (list, tuple)) or not scopes or not all(isinstance(s, str) for s in scopes):
        raise InputError(f"scope: give one or more of {', '.join(SCOPES)}", {"field": "scope"})
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise InputError(f"scope: unknown {', '.join(unknown)}; choose from {', '.join(SCOPES)}", {"field": "scope"})
    above = [s for s in SCOPES if s in scopes and s not in role_scopes(role)]
    if above:
        needs = ", ".join(f"{s} needs {SCOPE_ROLES[s]}" for s in above)
        raise InputError(f"scope: a key never exceeds its user's role ({role}): {needs}", {"field": "scope"})
    return tuple(s for s in SCOPES if s in scopes)


def role_scopes(role: str) -> tuple[str, ...]:
    """Every scope a user of this role may give a key."""
    return tuple(s for s in SCOPES if ROLES.index(SCOPE_ROLES[s]) <= ROLES.index(role))


def _scopes(row: Record | dict) -> tuple[str, ...]:
    return tuple(s for s in SCOPES if s in str(row["scopes"]).split())


def _key_record(row: Record) -> dict:
    """A stored key as plain data, its scopes as a list."""
    return {**dict(row), "scopes": list(_scopes(row))}


def create_key(
    db: Connection, user_name: str, label: str, scopes: tuple[str, ...] | list[str] = ("search", "read")
) -> tuple[str, dict]:
    """Create an API key for a user with the given scopes; return the key (shown only now) and its stored row."""
    label = _check_label(label)
    row = _row(db, user_name)
    if row["disabled"]:
        raise InputError(f"user: {user_name!r} is disabled", {"field": "user"})
    granted = check_scopes(scopes, row["role"])
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with transaction(db):
        cursor = db.execute(
            "INSERT INTO api_keys (user_id, label, key_hash, prefix, scopes, created) VALUES (?, ?, ?, ?, ?, ?)",
            (row["id"], label, _hash_key(key), key[:KEY_SHOWN], " ".join(granted), now()),
        )
    return key, _key(db, cursor.lastrowid)


def _key(db: Connection, key_id: int) -> dict:
    row = db.execute(_KEY_COLUMNS + " WHERE k.id = ?", (key_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no API key with id {key_id}", {"field": "id"})
    return _key_record(row)


def user_for_key(db: Connection, key: str) -> User | None:
    """Return the user an API key belongs to, or None if the key is unknown, revoked or its user disabled."""
    grant = key_grant(db, key)
    return grant[0] if grant else None


def key_grant(db: Connection, key: str) -> tuple[User, frozenset[str]] | None:
    """The user of an API key and the scopes it may use now (those its user's current role reaches), or None."""
    if not isinstance(key, str) or not key.startswith(KEY_PREFIX):
        return None
    row = db.execute(
        "SELECT k.id AS key_id, k.last_used, k.revoked, k.scopes, u.* FROM api_keys k JOIN users u ON u.id = k.user_id"
        " WHERE k.key_hash = ?",
        (_hash_key(key),),
    ).fetchone()
    if row is None or row["revoked"] or row["disabled"]:
        return None
    stamp = now()
    stale = (datetime.strptime(stamp, TIME_FORMAT).replace(tzinfo=UTC) - LAST_USED_EVERY).strftime(TIME_FORMAT)
    if row["last_used"] is None or row["last_used"] <= stale:
        with transaction(db):
            db.execute("UPDATE api_keys SET last_used = ? WHERE id = ?", (stamp, row["key_id"]))
    user = _user(row)
    return user, frozenset(s for s in _scopes(row) if has_role(user, SCOPE_ROLES[s]))


def revoke_key(db: Connection, key_id: int) -> dict:
    """Revoke an API key and return its row; revoking a revoked key changes nothing."""
    row = _key(db, key_id)
    if row["revoked"] is None:
        with transaction(db):
            db.execute("UPDATE api_keys SET revoked = ? WHERE id = ? AND revoked IS NULL", (now(), key_id))
        row = _key(db, key_id)
    return row


def list_keys(db: Connection, user_name: str | None = None) -> list[dict]:
    """Return every API key (or one user's) without its hash, oldest first."""
    if user_name is None:
        rows = db.execute(_KEY_COLUMNS + " ORDER BY k.id")
    else:
        user_id = _row(db, user_name)["id"]
        rows = db.execute(_KEY_COLUMNS + " WHERE k.user_id = ? ORDER BY k.id", (user_id,))
    return [_key_record(row) for row in rows]

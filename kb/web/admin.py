"""The admin pages for people and API keys (/admin/users, /admin/keys): list, add, change role, disable and
enable, reset a password; create a key with scopes, revoke one.

Admins only (checked here, on every request); every form carries Flask-WTF's CSRF token; every change goes through
kb.administration, so it is audited with the same actions and details as ``kb users`` and ``kb keys`` (actor: the
admin's name, client: their address). Destructive changes (disable, password reset, revoke, demoting yourself)
first answer a confirmation page; the form there sends ``confirm=yes``. A new key, or a generated password, is shown
once, in the answer to the form that made it, never stored in clear and never shown again; these pages are never
cached (Cache-Control: no-store). Errors name their field (kb.accounts' InputError messages) and keep the form.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from kb import accounts, administration
from kb.errors import InputError, NotFoundError
from kb.web import auth

bp = Blueprint("admin", __name__)
CONFIRMED = "yes"  # the value of the confirmation form's `confirm` field


@bp.after_request
def never_cached(response):
    """A key or password shown once must not be kept by the browser or a proxy."""
    response.headers["Cache-Control"] = "no-store"
    return response


def _actor(user: accounts.User) -> administration.Actor:
    return administration.Actor(user.name, auth.client_address())


def _field(error: InputError) -> str | None:
    return error.details.get("field") if isinstance(error.details, dict) else None


def _confirm(title: str, message: str, action: str, fields: dict | None = None, button: str = "Confirm"):
    """The confirmation step of a destructive change: the same form again, with confirm=yes."""
    back = url_for("admin.keys_page" if "/keys/" in request.path else "admin.users_page")
    return render_template(
        "admin_confirm.html", title=title, message=message, action=action, fields=fields or {}, button=button, back=back
    )


def _confirmed() -> bool:
    return request.form.get("confirm") == CONFIRMED


def _existing(name: str) -> accounts.User:
    """The user a confirmation page is about; NotFoundError (name masked by the error handler) before asking."""
    with auth.connection() as db:
        found = accounts.get_user(db, name)
    if found is None:
        raise NotFoundError(f"no user named {name[: accounts.MAX_NAME]!r}", {"field": "name"})
    return found


def _users_page(status: int = 200, error: InputError | None = None, secret: dict | None = None):
    with auth.connection() as db:
        users = accounts.list_users(db)
        logins = administration.last_logins(db)
        keys = administration.key_counts(db)
    admins = sum(1 for u in users if u.role == "admin" and not u.disabled)
    form = {"name": request.form.get("name", "")[: accounts.MAX_NAME], "role": request.form.get("role", "agent")}
    return render_template(
        "admin_users.html",
        users=users,
        logins=logins,
        keys=keys,
        admins=admins,
        roles=accounts.ROLES,
        error=error.message if error else None,
        field=_field(error) if error else None,
        form=form if error else {"name": "", "role": "agent"},
        secret=secret,
    ), status


@bp.get("/admin/users")
def users_page():
    """Every user with their role, state, last log-in and key count, and the form to add one."""
    auth.require("admin")
    return _users_page()


@bp.post("/admin/users")
def add_user():
    """Add a user with a generated password, shown once in the answer."""
    admin = auth.require("admin")
    password = administration.generate_password()
    try:
        with auth.connection() as db:
            user = administration.add_user(
                db, _actor(admin), request.form.get("name", ""), request.form.get("role", ""), password
            )
    except InputError as error:
        return _users_page(422, error)
    return _users_page(201, secret={"what": "added", "user": user, "password": password})


@bp.post("/admin/users/<name>/role")
def change_role(name: str):
    """Give a user another role (demoting yourself asks first); their sessions end."""
    admin = auth.require("admin")
    role = request.form.get("role", "")
    if name == admin.name and role in accounts.ROLES and role != "admin" and not _confirmed():
        return _confirm(
            "Change your own role?",
            f"You will become {role} and lose the admin pages at once; another admin can give the role back.",
            url_for("admin.change_role", name=name),
            {"role": role},
            "Change my role",
        )
    try:
        with auth.connection() as db:
            old, user = administration.change_role(db, _actor(admin), name, role)
    except InputError as error:
        return _users_page(422, error)
    flash(f"{user.name}: {old} → {user.role}; their sessions have ended.")
    return redirect(url_for("admin.users_page"), code=303)


@bp.post("/admin/users/<name>/disable")
def disable_user(name: str):
    """Disable a user after confirmation: their sessions end and their keys stop. Never yourself."""
    admin = auth.require("admin")
    if name == admin.name:
        return _users_page(
            422, InputError("disabled: you cannot disable yourself; another admin can", {"field": "disabled"})
        )
    if not _confirmed():
        _existing(name)
        return _confirm(
            f"Disable {name}?",
            f"{name} is logged out everywhere, cannot log in, and their API keys stop working until enabled again.",
            url_for("admin.disable_user", name=name),
            button=f"Disable {name}",
        )
    return _set_disabled(admin, name, True)


@bp.post("/admin/users/<name>/enable")
def enable_user(name: str):
    """Enable a disabled user again."""
    return _set_disabled(auth.require("admin"), name, False)


def _set_disabled(admin: accounts.User, name: str, disabled: bool):
    try:
        with auth.connection() as db:
            user = administration.set_disabled(db, _actor(admin), name, disabled)
    except InputError as error:
        return _users_page(422, error)
    flash(f"{user.name} is {'disabled' if user.disabled else 'enabled'}.")
    return redirect(url_for("admin.users_page"), code=303)


@bp.post("/admin/users/<name>/password")
def reset_password(name: str):
    """Give a user a new generated password after confirmation (shown once); their sessions end."""
    admin = auth.require("admin")
    if not _confirmed():
        _existing(name)
        ending = " Your own session ends too: log in again with it." if name == admin.name else ""
        return _confirm(
            f"Reset the password of {name}?",
            f"A new password is generated and shown to you once; {name}'s old password stops working and every "
            f"session of theirs ends.{ending}",
            url_for("admin.reset_password", name=name),
            button="Reset password",
        )
    password = administration.generate_password()
    try:
        with auth.connection() as db:
            administration.set_password(db, _actor(admin), name, password)
            user = accounts.get_user(db, name)
    except InputError as error:
        return _users_page(422, error)
    return _users_page(200, secret={"what": "reset", "user": user, "password": password})


def _keys_page(status: int = 200, error: InputError | None = None, created: dict | None = None, key: str = ""):
    with auth.connection() as db:
        keys = accounts.list_keys(db)
        users = [u for u in accounts.list_users(db) if not u.disabled]
    form = {
        "user": request.form.get("user", "")[: accounts.MAX_NAME],
        "label": request.form.get("label", "")[: accounts.MAX_LABEL],
        "scopes": request.form.getlist("scopes"),
    }
    return render_template(
        "admin_keys.html",
        keys=list(reversed(keys)),  # newest first
        users=users,
        scope_roles=accounts.SCOPE_ROLES,
        error=error.message if error else None,
        field=_field(error) if error else None,
        form=form if error else {"user": "", "label": "", "scopes": ["search", "read"]},
        created=created,
        key=key,
    ), status


@bp.get("/admin/keys")
def keys_page():
    """Every API key (its first characters, never the key) and the form to create one."""
    auth.require("admin")
    return _keys_page()


@bp.post("/admin/keys")
def create_key():
    """Create a key for a user with scopes within their role; the answer shows it once."""
    admin = auth.require("admin")
    try:
        with auth.connection() as db:
            key, row = administration.create_key(
                db,
                _actor(admin),
                request.form.get("user", ""),
                request.form.get("label", ""),
                request.form.getlist("scopes"),
            )
    except InputError as error:
        return _keys_page(422, error)
    except NotFoundError as error:
        return _keys_page(422, InputError(f"user: {error.message}", {"field": "user"}))
    return _keys_page(201, created=row, key=key)


@bp.post("/admin/keys/<int:key_id>/revoke")
def revoke_key(key_id: int):
    """Revoke a key after confirmation: it stops working at once."""
    admin = auth.require("admin")
    with auth.connection() as db:
        found = [k for k in accounts.list_keys(db) if k["id"] == key_id]
    if not found:
        raise NotFoundError(f"no API key with id {key_id}", {"field": "id"})
    if not _confirmed():
        k = found[0]
        return _confirm(
            f"Revoke key {key_id}?",
            f"Key {key_id} ({k['prefix']}…, {k['user']}, “{k['label']}”) stops working at once; this cannot be undone.",
            url_for("admin.revoke_key", key_id=key_id),
            button="Revoke key",
        )
    with auth.connection() as db:
        row, already = administration.revoke_key(db, _actor(admin), key_id)
    flash(f"Key {row['id']} was already revoked." if already else f"Revoked key {row['id']} of {row['user']}.")
    return redirect(url_for("admin.keys_page"), code=303)

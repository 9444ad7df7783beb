"""The admin page for outbound webhooks (/admin/webhooks): the hooks, their delivery log, add and remove.

Admins only (checked here, on every request); the forms carry Flask-WTF's CSRF token like every form. A new hook's
secret is shown once, in the answer to the form that made it, and never again. There are no JSON routes for
webhooks: admins manage them here or with ``kb webhooks``.
"""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, url_for

from kb import webhooks
from kb.errors import InputError, NotFoundError
from kb.web import auth
from kb.webhook_urls import MAX_URL_CHARS

bp = Blueprint("webhooks", __name__)
LOG_ROWS = 50  # deliveries shown on the page


def _page(status: int = 200, error: str | None = None, created: dict | None = None, secret: str | None = None):
    with auth.connection() as db:
        hooks = webhooks.hooks(db)
        log = webhooks.deliveries(db, limit=LOG_ROWS)
    form = {"url": request.form.get("url", "")[:MAX_URL_CHARS], "events": request.form.getlist("events")}
    return render_template(
        "webhooks.html",
        hooks=hooks,
        log=log,
        events=webhooks.EVENTS,
        error=error,
        created=created,
        secret=secret,
        form=form if error else {"url": "", "events": list(webhooks.EVENTS)},
        tolerance=webhooks.TOLERANCE_SECONDS,
    ), status


@bp.get("/admin/webhooks")
def webhooks_page():
    """The hooks with their events, the recent delivery log, and the form to add one."""
    auth.require("admin")
    return _page()


@bp.post("/admin/webhooks")
def add_webhook():
    """Register a hook; the answer shows its secret, once."""
    user = auth.require("admin")
    allow_private = current_app.config["KB"]["WEBHOOK_ALLOW_PRIVATE"] == "on"
    try:
        with auth.connection() as db:
            hook, secret = webhooks.register(
                db,
                request.form.get("url", ""),
                request.form.getlist("events"),
                user.name,
                allow_private,
                auth.client_address(),
            )
    except InputError as error:
        return _page(422, error=error.message)
    return _page(201, created=hook, secret=secret)


@bp.post("/admin/webhooks/<int:hook_id>/remove")
def remove_webhook(hook_id: int):
    """Remove a hook; its pending deliveries are cancelled."""
    user = auth.require("admin")
    try:
        with auth.connection() as db:
            webhooks.remove(db, hook_id, user.name, auth.client_address())
    except NotFoundError as error:
        return _page(404, error=error.message)
    return redirect(url_for("webhooks.webhooks_page"), code=303)

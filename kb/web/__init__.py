"""The Flask application factory."""

from __future__ import annotations

import ipaddress
import logging

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from kb import __version__, store
from kb.assist import Assistant
from kb.config import load_settings
from kb.history import History
from kb.search import Searcher
from kb.watch import Watcher
from kb.webhook_delivery import DeliveryWorker
from kb.workflow import Workflow


def create_app(test_config: dict | None = None) -> Flask:
    """Create the kb web app: settings, the Searcher, blueprints and error handlers.

    Settings come from their defaults, then KB_* environment variables, then
    test_config (which may also carry Flask keys such as TESTING).
    """
    from kb.web import contract

    app = contract.make_app(__name__, __version__, instance_relative_config=True)
    settings = load_settings(test_config)
    app.config.from_mapping(KB=settings, JSON_SORT_KEYS=False)
    app.config.from_prefixed_env("KB", loads=str)
    if test_config:
        app.config.update({k: v for k, v in test_config.items() if k.isupper()})
    logging.getLogger("kb").setLevel(settings["LOG_LEVEL"])
    if settings["PROXY_HOPS"]:  # behind load balancers: the client is the address the last trusted one saw
        hops = settings["PROXY_HOPS"]
        app.wsgi_app = ProxyFix(_forwarded_ip_only(app.wsgi_app), x_for=hops, x_proto=hops)
    store.check(settings["DATA_DIR"])  # a shared database that cannot be reached stops kb here, named
    searcher_ = Searcher(settings)
    workflow_ = Workflow(settings, encoder=lambda: searcher_.encoder)
    app.extensions["kb"] = {
        "searcher": searcher_,
        "assistant": Assistant(searcher_),
        "workflow": workflow_,
        "history": History(settings["CONTENT_DIR"]),
    }

    from kb.web import (
        admin,
        api,
        auth,
        authoring,
        cors,
        dashboard,
        errors,
        limits,
        mcp,
        pages,
        sop_feedback,
        validation,
        webhooks,
    )

    errors.register(app)
    limits.init_app(app)  # first: a flood is counted before anything else reads the request
    validation.init_app(app)  # then size, JSON and characters, before the user is looked up
    auth.init_app(app)
    cors.init_app(app)  # KB_CORS_ORIGINS only
    api.register(app)  # every area of the JSON API; exempt from CSRF (it takes API keys, never the cookie)
    mcp.init_app(app)  # POST /mcp: the MCP tools over streamable HTTP, API keys only
    app.register_blueprint(pages.bp)
    app.register_blueprint(sop_feedback.bp)  # the SOP page's feedback and flag forms
    app.register_blueprint(auth.bp)
    app.register_blueprint(authoring.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(admin.bp)
    if settings["WATCH_INTERVAL"] > 0 and not app.config.get("TESTING"):
        start_watcher(app)
    if settings["WEBHOOK_INTERVAL"] > 0 and not app.config.get("TESTING"):
        start_delivery(app)
    return app


def start_watcher(app: Flask) -> Watcher:
    """Start this process's watcher of the content repository (see kb.watch)."""
    settings = app.config["KB"]
    watcher = Watcher(settings, app.extensions["kb"]["workflow"], settings["WATCH_INTERVAL"])
    watcher.start()
    app.extensions["kb"]["watcher"] = watcher
    return watcher


def start_delivery(app: Flask) -> DeliveryWorker:
    """Start this process's webhook delivery worker (see kb.webhook_delivery)."""
    settings = app.config["KB"]
    worker = DeliveryWorker(settings, settings["WEBHOOK_INTERVAL"])
    worker.start()
    app.extensions["kb"]["delivery"] = worker
    return worker


def _forwarded_ip_only(wsgi_app):
    """Behind ProxyFix: a forwarded client that is no IP address (a malformed or hostile X-Forwarded-For) is
    replaced by the address the connection came from, so it never becomes a rate-limit key or an audit row."""

    def app(environ, start_response):
        try:
            ipaddress.ip_address(environ.get("REMOTE_ADDR", ""))
        except ValueError:
            environ["REMOTE_ADDR"] = environ.get("werkzeug.proxy_fix.orig", {}).get("REMOTE_ADDR", "-")
        return wsgi_app(environ, start_response)

    return app

"""The Flask application factory."""

from __future__ import annotations

import logging

from flask import Flask

from kb.config import load_settings
from kb.search import Searcher


def create_app(test_config: dict | None = None) -> Flask:
    """Create the kb web app: settings, the Searcher, blueprints and error handlers.

    Settings come from their defaults, then KB_* environment variables, then
    test_config (which may also carry Flask keys such as TESTING).
    """
    app = Flask(__name__, instance_relative_config=True)
    settings = load_settings(test_config)
    app.config.from_mapping(KB=settings, JSON_SORT_KEYS=False)
    app.config.from_prefixed_env("KB", loads=str)
    if test_config:
        app.config.update({k: v for k, v in test_config.items() if k.isupper()})
    logging.getLogger("kb").setLevel(settings["LOG_LEVEL"])
    app.extensions["kb"] = {"searcher": Searcher(settings)}

    from kb.web import api, errors, pages

    errors.register(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    return app


def searcher() -> Searcher:
    """The Searcher of the current app."""
    from flask import current_app

    return current_app.extensions["kb"]["searcher"]

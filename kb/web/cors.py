"""Cross-origin calls to the JSON API, only from the origins named in KB_CORS_ORIGINS (none by default).

A support desk's own page (a Zendesk or Intercom app, an in-house agent tool) may call /api/ from the
browser with its API key in the Authorization header. Flask-Cors answers the preflight and adds the
headers for the named origins only; cookies are never allowed cross-origin (the API takes keys, not the
session), and no other path gets CORS headers.
"""

from __future__ import annotations

from flask import Flask
from flask_cors import CORS

ALLOWED_HEADERS = ("Authorization", "Content-Type")
ALLOWED_METHODS = ("GET", "POST", "PUT")
PREFLIGHT_CACHE_SECONDS = 600


def init_app(app: Flask) -> None:
    """Allow the configured origins to call /api/; with none configured, add nothing."""
    origins = app.config["KB"]["CORS_ORIGINS"]
    if not origins:
        return
    CORS(
        app,
        resources={r"/api/*": {"origins": list(origins)}},
        allow_headers=list(ALLOWED_HEADERS),
        methods=list(ALLOWED_METHODS),
        supports_credentials=False,
        max_age=PREFLIGHT_CACHE_SECONDS,
        vary_header=True,
    )

"""`kb serve`: gunicorn with the app factory, one app per worker process."""

from __future__ import annotations

import logging

from gunicorn.app.base import BaseApplication

log = logging.getLogger(__name__)


class KbServer(BaseApplication):
    """gunicorn running create_app() in each worker (no preload: each worker loads its own index)."""

    def __init__(self, options: dict):
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from kb.web import create_app

        app = create_app()
        app.extensions["kb"]["searcher"].warm_up()
        return app


def run(host: str, port: int, workers: int) -> None:
    """Serve on host:port with this many workers; the access log stays off (queries may carry card numbers)."""
    KbServer(
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "sync",
            "timeout": 60,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "info",
            # gunicorn's control socket lives in ~/.gunicorn: one per user, so a second kb serve would fail.
            "control_socket_disable": True,
        }
    ).run()

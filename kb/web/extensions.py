"""The per-app objects blueprints use, from ``current_app.extensions["kb"]`` (set by create_app): the Searcher,
the Assistant, the Workflow and the History.

Blueprints import these accessors from here, never from the package ``__init__``, so the factory can
import every blueprint without a cycle.
"""

from __future__ import annotations

from flask import current_app

from kb.assist import Assistant
from kb.errors import NotFoundError
from kb.history import History
from kb.search import Searcher
from kb.workflow import Workflow


def searcher() -> Searcher:
    """The Searcher of the current app."""
    return current_app.extensions["kb"]["searcher"]


def assistant() -> Assistant:
    """The Assistant (POST /api/v1/assist) of the current app, over its Searcher."""
    return current_app.extensions["kb"]["assistant"]


def workflow() -> Workflow:
    """The Workflow of the current app."""
    return current_app.extensions["kb"]["workflow"]


def history() -> History:
    """The History of the current app."""
    return current_app.extensions["kb"]["history"]


def path_of(sop_id: str) -> str:
    """The file of a published (or retired) SOP, relative to the content folder.

    Raises:
        NotFoundError: no such SOP.
    """
    record = searcher().generation.documents.get(sop_id) if isinstance(sop_id, str) else None
    if record is None:
        raise NotFoundError(f"no SOP with id {sop_id!r}", {"field": "id"})
    return record["path"]

"""The SOP page's two forms: "Was this helpful?" (POST /sops/<id>/feedback) and "Flag as outdated"
(POST /sops/<id>/flag).

Plain HTML forms with a CSRF token (Flask-WTF), for logged-in users only (an anonymous post answers 401; the
page shows "Log in to give feedback" instead of the forms). They store through kb.feedback, the same functions
as POST /api/v1/feedback and /api/v1/sops/<id>/flags, as a ``person``; feedback keeps the query that led to the
page (masked) and the section chosen. Stored: a 303 back to the page with a confirmation. Refused: the page
again (422) with each error next to the field it names. The rate limit is KB_RATE_LIMIT_FEEDBACK per address and
per user (kb/web/limits.py FEEDBACK_ENDPOINTS): a breach answers 429 with an error page.
"""

from __future__ import annotations

from flask import Blueprint, redirect, request

from kb import catalog, feedback, markdown
from kb.errors import AuthRequiredError, InputError
from kb.redaction import redact
from kb.web import auth, sop_page
from kb.web.extensions import searcher

bp = Blueprint("sop_feedback", __name__)
HELPFUL = {"yes": True, "no": False}


def _about(sop_id: str) -> tuple[set[str], list[str]]:
    """The ids of the SOPs served and sop_id's anchors (NotFoundError when it is not served)."""
    gen = searcher().generation
    catalog.document(gen, sop_id)
    return set(gen.documents), [h.anchor for h in markdown.headings(markdown.parse(gen.documents[sop_id]["body"]))]


def _user():
    user = auth.current_user()
    if user is None:
        raise AuthRequiredError("log in to give feedback", {"field": "user"})
    return user


def _field(name: str) -> str:
    return request.form.get(name, "")


def _refused(sop_id: str, query: str, which: str, error: InputError):
    """The page again, the error next to the field it names (the form's values kept, masked)."""
    field = error.details.get("field") if isinstance(error.details, dict) else None
    message = redact(error.message)
    values = {key: redact(value) for key, value in request.form.items() if key != "csrf_token"}
    return sop_page.render(sop_id, query, {field or "form": message}, {"which": which, **values}, status=422)


@bp.post("/sops/<sop_id>/feedback")
def feedback_form(sop_id: str):
    """Store a "was this helpful?" answer from the SOP page, then go back to it."""
    user = _user()
    known, anchors = _about(sop_id)
    query = redact(_field("q"))[: feedback.MAX_QUERY_CHARS]
    try:
        helpful = HELPFUL.get(_field("helpful"))
        if helpful is None:
            raise InputError("helpful: choose Yes or No", {"field": "helpful"})
        with auth.connection() as db:
            feedback.record_feedback(
                db,
                sop_id=sop_id,
                anchor=_field("anchor") or None,
                helpful=helpful,
                reason=_field("reason") or None,
                query=query or None,
                actor=user.name,
                actor_kind="person",
                known_ids=known,
                anchors=anchors,
            )
    except InputError as error:
        return _refused(sop_id, query, "feedback", error)
    return redirect(sop_page.back_to(sop_id, query, "feedback"), code=303)


@bp.post("/sops/<sop_id>/flag")
def flag_form(sop_id: str):
    """Flag the SOP (or a section) as outdated from the SOP page, then go back to it."""
    user = _user()
    known, anchors = _about(sop_id)
    query = redact(_field("q"))[: feedback.MAX_QUERY_CHARS]
    try:
        with auth.connection() as db:
            feedback.record_flag(
                db,
                sop_id=sop_id,
                anchor=_field("anchor") or None,
                comment=_field("comment"),
                actor=user.name,
                actor_kind="person",
                known_ids=known,
                anchors=anchors,
            )
    except InputError as error:
        return _refused(sop_id, query, "flag", error)
    return redirect(sop_page.back_to(sop_id, query, "flag"), code=303)

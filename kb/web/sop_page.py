"""The answer-first SOP page: what GET /sops/<id> shows around the rendered document.

- The query that led there (``q``, masked with kb.redaction.redact; an address holding a card number is
  redirected to its masked form) is handed to kb/web/static/sop.js, which marks its words in the page's text
  nodes. ``from`` (the search log row of that search, kb/web/searches.py) records the click: the first SOP
  opened from that search (kb.search_log.record_click); a failed write is logged, never fails the page.
- Metadata: owner, status, effective date, revision, review date (overdue when it has passed).
- The customer macros (kb.disclosure.macros: the block quotes under a macro heading), each as plain text with
  the shared values already resolved (the served body is resolved), for sop.js's Copy macro buttons.
- Related SOPs: the SOP links of its "Related documents" section first, then SOPs sharing its categories.
- For users with the author role or above, the owner's summary: helpful yes/no counts, recent reasons and open
  flags (kb.feedback). The forms that write feedback and flags are in kb/web/sop_feedback.py.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from urllib.parse import urlencode

from flask import redirect, render_template, request, url_for

from kb import accounts, catalog, feedback, markdown, search_log
from kb.database import DatabaseError
from kb.disclosure import macros
from kb.errors import KbError
from kb.redaction import redact
from kb.web import auth
from kb.web.extensions import searcher

log = logging.getLogger(__name__)
MAX_RELATED = 6
MAX_FROM_DIGITS = 12  # a search log id longer than this is ignored, not parsed
RECENT_REASONS = 5
OPEN_FLAGS = 20
SUMMARY_ROWS = 1000  # feedback rows counted for the summary (kb.feedback.MAX_LIST)
_SOP_LINK = re.compile(r"\]\(/sops/([a-z0-9]+(?:-[a-z0-9]+)*)(?:[#?][^)\s]*)?\)")


def masked_args_redirect():
    """A redirect to this address with card numbers masked in every argument, or None when there are none."""
    pairs = list(request.args.items(multi=True))
    masked = [(redact(key), redact(value)) for key, value in pairs]
    if masked == pairs:
        return None
    return redirect(request.path + "?" + urlencode(masked), code=303)


def record_click(sop_id: str) -> None:
    """Note that the search ``from`` names led to this SOP (only a whole number is read; a failure is logged)."""
    raw = request.args.get("from", "")
    if not raw.isascii() or not raw.isdigit() or len(raw) > MAX_FROM_DIGITS or int(raw) < 1:
        return
    try:
        with auth.connection() as db:
            search_log.record_click(db, int(raw), sop_id)
    except (*DatabaseError, KbError):
        log.warning("search log: could not record a click on %s", sop_id, exc_info=True)


def related(documents: dict, sop_id: str, body: str) -> list[dict]:
    """Up to MAX_RELATED SOPs: those its "Related documents" section links to, then those sharing its categories."""
    lines = body.splitlines()
    heads = markdown.headings(markdown.parse(body))
    linked: list[str] = []
    for index, head in enumerate(heads):
        if head.level == 2 and head.anchor.startswith("related"):
            end = heads[index + 1].line if index + 1 < len(heads) else len(lines)
            linked += _SOP_LINK.findall("\n".join(lines[head.line + 1 : end]))
    mine = set(documents[sop_id]["categories"])
    sharing = sorted(
        (d for d in documents.values() if mine & set(d["categories"])),
        key=lambda d: (-len(mine & set(d["categories"])), d["title"].lower()),
    )
    chosen: dict[str, dict] = {}
    for other in [documents[i] for i in linked if i in documents] + sharing:
        if other["id"] != sop_id and other["id"] not in chosen and other["status"] != "retired":
            source = "linked" if other["id"] in linked else "category"
            chosen[other["id"]] = {"id": other["id"], "title": other["title"], "source": source}
    return list(chosen.values())[:MAX_RELATED]


def review_state(review_by: str | None, today: dt.date | None = None) -> dict | None:
    """{"date", "overdue", "days_left"} for a review date (None when the document has none)."""
    if not review_by:
        return None
    day = dt.date.fromisoformat(review_by)
    left = (day - (today or dt.date.today())).days
    return {"date": review_by, "overdue": left < 0, "days_left": left}


def owner_summary(sop_id: str) -> dict:
    """What the owner reads on the page: helpful yes/no counts, recent reasons and the open flags."""
    with auth.connection() as db:
        answers = feedback.list_feedback(db, [sop_id], limit=SUMMARY_ROWS)
        flags = feedback.list_flags(db, [sop_id], limit=OPEN_FLAGS)
    return {
        "yes": sum(1 for a in answers if a["helpful"]),
        "no": sum(1 for a in answers if not a["helpful"]),
        "counted": len(answers),
        "capped": len(answers) == SUMMARY_ROWS,
        "reasons": [a for a in answers if a["reason"]][:RECENT_REASONS],
        "flags": flags,
    }


def render(sop_id: str, query: str = "", errors: dict | None = None, form: dict | None = None, status: int = 200):
    """The SOP page: the document, its macros, related SOPs, the feedback forms (with errors) and owner summary.

    Args:
        query: the (masked) query that led here.
        errors: form field -> message, shown next to the field (a refused feedback or flag).
        form: which form was sent ("feedback" or "flag") and the values to show again.
    """
    gen = searcher().generation
    doc = catalog.document(gen, sop_id)
    body = gen.documents[sop_id]["body"]
    user = auth.current_user()
    view = {
        "query": query,
        "macros": [{"anchor": m.anchor, "heading": m.heading, "text": m.text} for m in macros(body)],
        "related": related(gen.documents, sop_id, body),
        "review": review_state(doc["review_by"]),
        "summary": owner_summary(sop_id) if accounts.has_role(user, "author") else None,
        "errors": errors or {},
        "form": form or {},
        "sent": request.args.get("sent") if request.method == "GET" else None,
        "limits": {"reason": feedback.MAX_REASON_CHARS, "comment": feedback.MAX_COMMENT_CHARS},
    }
    return render_template("sop.html", doc=doc, view=view), status


def page(sop_id: str):
    """GET /sops/<id>: mask the address, record the click from a search, render."""
    masked = masked_args_redirect()
    if masked is not None:
        return masked
    catalog.document(searcher().generation, sop_id)  # an unknown SOP is a 404 before anything is recorded
    record_click(sop_id)
    return render(sop_id, request.args.get("q", "")[: feedback.MAX_QUERY_CHARS])


def back_to(sop_id: str, query: str, sent: str) -> str:
    """Where a form goes after it is stored: the SOP page with the query, a confirmation, at the forms."""
    args = {"q": query} if query else {}
    return url_for("pages.sop_page", sop_id=sop_id, **args, sent=sent) + "#page-feedback"

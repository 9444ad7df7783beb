"""HTML pages: search, the document list, and the SOP page."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, redirect, render_template, request, url_for

from kb.documents import BUSINESS_LINES, TYPES
from kb.errors import InputError, QueryError
from kb.history import parse_day
from kb.redaction import redact
from kb.search import MODES
from kb.web import sop_page as sop_view
from kb.web.extensions import searcher
from kb.web.searches import log_search

bp = Blueprint("pages", __name__)
BADGE_NAMES = {"recently_updated": "Recently updated", "review_overdue": "Review overdue", "retired": "Retired"}


LINK_QUERY_CHARS = 200  # the query carried to the SOP page in a result link (to mark its words), cut at a word


def result_link(url: str, query: str, search_id: int | None) -> str:
    """A result's link: its section on the SOP page, with the (masked) query and the search log row it came from,
    so the SOP page can mark the query's words and note the click: /sops/<id>?q=...&from=<search id>#<anchor>."""
    path, _, anchor = url.partition("#")
    words = query if len(query) <= LINK_QUERY_CHARS else query[:LINK_QUERY_CHARS].rsplit(None, 1)[0]
    params = {"q": " ".join(words.split()), **({"from": search_id} if search_id is not None else {})}
    return f"{path}?{urlencode(params)}" + (f"#{anchor}" if anchor else "")


@bp.get("/")
def search_page():
    """The search page: a query box, filter chips, and results with deep links; kb/web/static/search.js makes it
    search as the agent types, through GET /api/v1/search."""
    args = request.args
    pairs = list(args.items(multi=True))
    redacted = [(redact(key), redact(value)) for key, value in pairs]
    if redacted != pairs:
        # Keep card numbers (in any argument) out of the address bar, history and any proxy log from now on.
        return redirect(url_for("pages.search_page") + "?" + urlencode(redacted), code=303)
    query = args.get("q", "")
    form = {key: args.get(key, "") for key in ("business_line", "category", "type")}
    mode = args.get("mode") or "hybrid"
    results, error, links = None, None, []
    as_of = args.get("as_of", "")
    if query.strip():
        filters = {key: value for key, value in form.items() if value}
        try:
            day = parse_day(as_of) if as_of else None
            results = searcher().search(query, None, mode, filters or None, as_of=day)
            search_id = log_search(results)
            links = [result_link(hit.url, results.query, search_id) for hit in results.hits]
        except (QueryError, InputError) as exc:
            error = redact(exc.message)
    gen = searcher().generation
    groups = [c for c in gen.categories if c["parent"] is None]
    children = {g["id"]: [c for c in gen.categories if c["parent"] == g["id"]] for g in groups}
    return render_template(
        "search.html",
        query=query,
        mode=mode,
        form=form,
        as_of=as_of,
        results=results,
        hits=list(zip(results.hits, links, strict=True)) if results else [],
        error=error,
        modes=MODES,
        business_lines=BUSINESS_LINES,
        types=TYPES,
        groups=groups,
        children=children,
        active_group=form["category"].split("/")[0],
        badge_names=BADGE_NAMES,
    )


@bp.get("/sops")
def list_page():
    """Every document, grouped by business line."""
    groups: dict[str, list[dict]] = {}
    for doc in sorted(searcher().list_documents(), key=lambda d: d["title"].lower()):
        groups.setdefault(doc["business_line"], []).append(doc)
    ordered = [(line, groups[line]) for line in BUSINESS_LINES if line in groups]
    return render_template("list.html", groups=ordered)


@bp.get("/sops/<sop_id>")
def sop_page(sop_id: str):
    """One SOP, answer first: opened at the search's section with its words marked, macros to copy, feedback."""
    return sop_view.page(sop_id)


@bp.get("/categories")
def categories_page():
    """The issue taxonomy with the documents of each category; uncovered categories stand out."""
    return render_template("categories.html", taxonomy=searcher().taxonomy())


@bp.get("/categories/<path:category_id>")
def category_page(category_id: str):
    """One category: its description, example phrasings and the documents that serve it."""
    return render_template("category.html", category=searcher().category(category_id))

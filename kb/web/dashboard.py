"""The owners' dashboard and inbox (/dashboard): searches, what was not found, content gaps, feedback, flags,
reviews due and redactions, for a period; its parts as CSV (/dashboard.csv); resolving a flag.

Authors, approvers and admins only (an agent gets the 403 page), checked here on every request. The period is
in the address (?since=&until=, kb.analytics.period) and so is the owner filter (?owner=, a team from the front
matter) that narrows the inbox parts. Charts are SVG drawn on the server (kb/web/charts.py, _charts.html), each
with its numbers in a table. Resolving a flag is a form with Flask-WTF's CSRF token, audited (flag_resolved).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for

from kb import analytics, analytics_csv, feedback
from kb.errors import ConflictError, InputError, KbError, NotFoundError
from kb.web import auth
from kb.web.charts import Series, horizontal_bars, stacked_columns
from kb.web.extensions import searcher

bp = Blueprint("dashboard", __name__)

SEARCH_SERIES = (
    Series("person", "People", "#1d4f91"),
    Series("bot", "Bots", "#b34700"),
    Series("anonymous", "Anonymous", "#5c5c5c"),
)
REDACTION_SERIES = (
    Series("card", "Card numbers", "#7a1f5c"),
    Series("cvv", "CVVs", "#1d6b48"),
    Series("expiry", "Expiry dates", "#5c4a00"),
)
TOP_BARS = 10  # top queries drawn (all TOP are in the table below it)


def _args() -> tuple[analytics.Period, str | None]:
    """The period and owner asked for in the address (InputError naming the field)."""
    args = request.args
    days = current_app.config["KB"]["SEARCH_LOG_DAYS"]
    when = analytics.period(args.get("since"), args.get("until"), days)
    return when, analytics.check_owner(args.get("owner"))


def _charts(data: dict) -> dict:
    when = data["period"]
    searches = data["searches_per_day"]
    total = {s.key: sum(r[s.key] for r in searches) for s in SEARCH_SERIES}
    redactions = data["redactions_per_day"]
    masked = sum(r["total"] for r in redactions)
    top = [(r["query"], r["count"]) for r in data["top_queries"][:TOP_BARS]]
    return {
        "searches": stacked_columns(
            "chart-searches",
            "Searches per day",
            f"Searches from {when['since']} to {when['until']}, stacked by who searched: {total['person']} by "
            f"people, {total['bot']} by bots, {total['anonymous']} anonymous.",
            searches,
            SEARCH_SERIES,
        ),
        "redactions": stacked_columns(
            "chart-redactions",
            "Redactions per day",
            f"Card numbers, CVVs and expiry dates masked in stored queries, reasons and comments from "
            f"{when['since']} to {when['until']}: {masked} in all.",
            redactions,
            REDACTION_SERIES,
        ),
        "top": horizontal_bars(
            "chart-top",
            "Top queries",
            f"The {len(top)} most frequent queries of the period, longest bar first.",
            top,
            SEARCH_SERIES[0].colour,
        ),
    }


def _page(status: int = 200, error: str | None = None):
    """The dashboard for the address's period and owner (the error shown, and the last 30 days, when they are bad)."""
    try:
        when, owner = _args()
    except InputError as problem:
        when, owner = analytics.period(max_days=current_app.config["KB"]["SEARCH_LOG_DAYS"]), None
        error, status = problem.message, 400
    with auth.connection() as db:
        data = analytics.analytics(db, searcher(), when, owner)
    return render_template(
        "dashboard.html",
        data=data,
        charts=_charts(data),
        owners=analytics.owners(searcher()),
        owner=owner,
        error=error,
        parts=analytics_csv.PARTS,
        asked={k: request.args.get(k, "")[:20] for k in ("since", "until")},
    ), status


@bp.get("/dashboard")
def dashboard_page():
    """The dashboard and inbox for a period (?since=&until=, YYYY-MM-DD) and owner (?owner=)."""
    auth.require("author")
    return _page()


@bp.get("/dashboard.csv")
def dashboard_csv():
    """One part of the dashboard (?part=, one of kb.analytics.KEYS) as CSV, for the same period and owner."""
    auth.require("author")
    part = request.args.get("part", "")
    if part not in analytics_csv.PARTS:
        raise InputError(f"part: must be one of {', '.join(analytics_csv.PARTS)}", {"field": "part"})
    when, owner = _args()
    with auth.connection() as db:
        data = analytics.analytics(db, searcher(), when, owner)
    text = analytics_csv.csv_text(*analytics_csv.table(data, part))
    name = f"kb-{part}-{when.since}-{when.until}.csv"
    return Response(text, mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.post("/dashboard/flags/<int:flag_id>/resolve")
def resolve_flag(flag_id: int):
    """Resolve an open flag (authors and up); back to the dashboard with the same period and owner."""
    user = auth.require("author")
    try:
        with auth.connection() as db:
            feedback.resolve_flag(db, flag_id, user.name, auth.client_address())
    except NotFoundError as problem:
        return _page(404, problem.message)
    except ConflictError as problem:
        return _page(409, problem.message)
    keep = {k: request.form.get(k) for k in ("since", "until", "owner") if request.form.get(k)}
    try:
        analytics.period(keep.get("since"), keep.get("until"), current_app.config["KB"]["SEARCH_LOG_DAYS"])
        analytics.check_owner(keep.get("owner"))
    except KbError:
        keep = {}
    return redirect(url_for("dashboard.dashboard_page", resolved=flag_id, **keep) + "#flags", code=303)

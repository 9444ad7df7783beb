"""Review due: documents whose owners must re-verify them soon (their ``review_by`` date)."""

from __future__ import annotations

import datetime as dt


def review_due(documents: list[dict], today: dt.date | None = None, days: int = 30) -> dict[str, list[dict]]:
    """Documents whose review_by has passed or falls within days, by owner (soonest first)."""
    today = today or dt.date.today()
    horizon = today + dt.timedelta(days=days)
    due: dict[str, list[dict]] = {}
    for doc in sorted(documents, key=lambda d: (d.get("review_by") or "9999", d["id"])):
        review_by = doc.get("review_by")
        if not review_by or doc.get("status") == "retired":
            continue
        day = dt.date.fromisoformat(review_by)
        if day <= horizon:
            entry = {key: doc[key] for key in ("id", "title", "type", "owner", "review_by")}
            entry["overdue"] = day < today
            entry["days_left"] = (day - today).days
            due.setdefault(doc["owner"], []).append(entry)
    return dict(sorted(due.items()))

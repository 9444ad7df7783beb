"""The dashboard's figures as CSV, one part at a time, safe to open in a spreadsheet.

:func:`table` turns one part of kb.analytics.analytics()'s answer (PARTS: its keys) into a header and rows; :func:`csv_text`
writes them with Python's csv module. Every text cell is masked again (kb.redaction.redact: the stored texts
already are; this is the boundary where they leave) and neutralised against formula injection: a cell starting
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``, so a spreadsheet shows it as
text instead of running it (OWASP's "CSV injection" advice). Numbers are written as numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from kb.analytics import KEYS
from kb.redaction import MASK_KINDS, redact

PARTS = KEYS
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """A cell as written: None as empty, numbers as they are, text masked and prefixed with ' when it starts like
    a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return value
    text = redact(str(value))
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_text(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    """The header and rows as CSV text (every cell through safe_cell; lines end with CRLF, as RFC 4180)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([safe_cell(h) for h in header])
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    return out.getvalue()


def _per_day(rows: list[dict], kinds: Sequence[str]) -> tuple[list[str], list[list]]:
    return ["day", *kinds, "total"], [[r["day"], *(r[k] for k in kinds), r["total"]] for r in rows]


def table(data: dict, part: str) -> tuple[list[str], list[list]]:
    """One part of the dashboard's figures as (header, rows).

    Raises:
        KeyError: part is not one of PARTS (the caller checks it first).
    """
    rows = data[part]
    if part == "searches_per_day":
        return _per_day(rows, ("person", "bot", "anonymous"))
    if part == "redactions_per_day":
        return _per_day(rows, MASK_KINDS)
    if part == "top_queries":
        return ["query", "count", "person", "bot", "anonymous"], [
            [r["query"], r["count"], r["person"], r["bot"], r["anonymous"]] for r in rows
        ]
    if part in ("zero_result_queries", "no_click_queries"):
        return ["query", "count", "last"], [[r["query"], r["count"], r["last"]] for r in rows]
    if part == "content_gaps":
        header = ["group", "group_count", "category_id", "category_name", "similarity", "query", "query_count"]
        out = []
        for n, group in enumerate(rows, 1):
            category = group["category"] or {}
            for example in group["examples"]:
                out.append(
                    [n, group["count"], category.get("id"), category.get("name"), category.get("similarity")]
                    + [example["query"], example["count"]]
                )
        return header, out
    if part == "unhelpful":
        header = ["sop_id", "title", "owner", "unhelpful", "helpful", "anchor", "reason", "query", "created"]
        out = []
        for r in rows:
            head = [r["sop_id"], r["title"], r["owner"], r["unhelpful"], r["helpful"]]
            reasons = r["reasons"] or [{}]
            out.extend([*head, *(x.get(k) for k in ("anchor", "reason", "query", "created"))] for x in reasons)
        return header, out
    if part == "flags":
        header = ["sop_id", "title", "owner", "open", "raised", "flag", "anchor", "comment", "actor", "created"]
        out = []
        for r in rows:
            head = [r["sop_id"], r["title"], r["owner"], r["open"], r["raised"]]
            out.extend([*head, c["id"], c["anchor"], c["comment"], c["actor"], c["created"]] for c in r["comments"])
            if not r["comments"]:
                out.append([*head, None, None, None, None, None])
        return header, out
    if part == "review_due":
        header = ["id", "title", "type", "owner", "review_by", "overdue", "days_left"]
        return header, [[r[k] for k in header] for r in rows]
    raise KeyError(part)

#!/usr/bin/env python
"""Replay real queries through search into an instance's search log, then print the content gaps the dashboard shows.

    PYTHONPATH=. .venv/bin/python scripts/replay_searches.py --data INSTANCE [--banking 200] [--no-clicks] [--json]

The queries: ../shared/eval/dev-queries.jsonl (90 agent queries with their relevant SOPs) and --banking messages of
../shared/benchmarks/banking77/test.csv (real customer wording, 77 intents; every n-th row, so all intents are
sampled; deterministic). Each goes through the Searcher (hybrid, the instance's served index) and into the search
log with kb.search_log.record as a person's search, today. A click is simulated as an agent would make it: the
search's top SOP is "opened" when it is one the query needs (a dev query's relevant SOPs; for a BANKING77 message,
the SOPs ../shared/eval/banking77-dev-map.json maps its intent to); other searches stay unclicked, so they count
as no-click queries (--no-clicks records no click at all). Then kb.analytics computes the period's figures and
the content-gap groups are printed (text, or --json with the whole content_gaps list and counts).

Writes only to INSTANCE's kb.sqlite (use a copy: the rows are real search-log rows). Asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

from kb import analytics, search_log, store
from kb.config import load_settings
from kb.search import Searcher

SHARED = Path(__file__).resolve().parents[2] / "shared"
DEV_QUERIES = SHARED / "eval" / "dev-queries.jsonl"
BANKING = SHARED / "benchmarks" / "banking77" / "test.csv"
BANKING_MAP = SHARED / "eval" / "banking77-dev-map.json"


def queries(banking: int) -> list[tuple[str, set[str], str]]:
    """(query, SOPs that answer it, source) for the dev queries and banking BANKING77 test messages."""
    found = []
    for line in DEV_QUERIES.read_text().splitlines():
        if line.strip():
            item = json.loads(line)
            found.append((item["query"], set(item["relevant"]), "dev"))
    mapping = {k: set(v) for k, v in json.loads(BANKING_MAP.read_text()).items() if not k.startswith("_")}
    with BANKING.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    step = max(1, len(rows) // banking) if banking else 0
    for row in rows[::step][:banking] if banking else []:
        found.append((row["text"], mapping.get(row["category"], set()), "banking77"))
    return found


def replay(searcher: Searcher, db, items, clicks: bool) -> dict:
    """Search each query and record it as a person's search; return counts."""
    counts = {"searches": 0, "zero_results": 0, "clicked": 0, "clicked_dev": 0, "clicked_banking77": 0}
    for query, relevant, source in items:
        results = searcher.search(query)
        top = results.hits[0].sop_id if results.hits else None
        row = search_log.record(db, results.query, "person", len(results.hits), top, results.mode)
        counts["searches"] += 1
        counts["zero_results"] += not results.hits
        if clicks and top in relevant:
            search_log.record_click(db, row, top)
            counts["clicked"] += 1
            counts[f"clicked_{source}"] += 1
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=os.environ.get("KB_DATA_DIR"), help="The instance folder.")
    parser.add_argument("--content", type=Path, default=os.environ.get("KB_CONTENT_DIR"), help="The SOP folder.")
    parser.add_argument("--banking", type=int, default=200, help="BANKING77 test messages to replay.")
    parser.add_argument("--no-clicks", action="store_true", help="Record no clicks (every found search unclicked).")
    parser.add_argument("--json", action="store_true", help="Print the counts and content_gaps as JSON.")
    args = parser.parse_args()
    if args.data is None:
        parser.error("--data (or KB_DATA_DIR) is required")
    overrides = {"DATA_DIR": args.data, **({"CONTENT_DIR": args.content} if args.content else {})}
    settings = load_settings(overrides)
    searcher = Searcher(settings)
    items = queries(args.banking)
    db = store.connect(settings["DATA_DIR"])
    try:
        counts = replay(searcher, db, items, not args.no_clicks)
        when = analytics.period(max_days=settings["SEARCH_LOG_DAYS"])
        data = analytics.analytics(db, searcher, when)
    finally:
        db.close()
    gaps = data["content_gaps"]
    counts["no_click"] = sum(q["count"] for q in data["no_click_queries"])
    counts["gap_groups"] = len(gaps)
    if args.json:
        json.dump({"counts": counts, "content_gaps": gaps}, sys.stdout, indent=2)
        print()
        return 0
    print(
        f"replayed {counts['searches']} searches ({len(items) - args.banking} dev queries, {args.banking} BANKING77): "
        f"{counts['zero_results']} with no result, {counts['clicked']} clicked (top SOP relevant: "
        f"{counts['clicked_dev']} dev, {counts['clicked_banking77']} BANKING77); "
        f"{len(gaps)} content-gap groups (threshold {analytics.content_gaps.THRESHOLD})"
    )
    for n, group in enumerate(gaps, 1):
        category = group["category"] or {}
        print(
            f"{n:2}. {group['count']:3} searches, {group['queries']} queries, nearest {category.get('id')} "
            f"({category.get('name')}, {category.get('similarity')}) sources {group['sources']}"
        )
        for example in group["examples"][:3]:
            print(f"      {example['count']} x {example['query']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

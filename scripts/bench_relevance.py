#!/usr/bin/env python
"""What each relevance mechanism contributes: kb eval with one mechanism off at a time.

    .venv/bin/python scripts/bench_relevance.py [--queries FILE] [--only NAME ...] [--json]

Measures hit@1, hit@3, hit@5 and MRR per mode on three query sets built from the
labelled file (default ../shared/eval/dev-queries.jsonl, over the shipped library):

- dev: the queries as written;
- typos: the same queries with one typing slip in about a third of their long words
  (a dropped, doubled, swapped or neighbouring letter; seeded, so every run is alike);
- tickets: each query pasted as a ticket, with greeting, order and ticket ids,
  signature and a quoted earlier reply around it.

Variants: "all" (what ships), then each mechanism off ("-taxonomy-field" ...), and
"baseline" with all of them off. Index variants are built in a scratch folder that
starts from instance/'s embedding cache and ONNX export; nothing in instance/ changes.
Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_QUERIES = ROOT.parent / "shared" / "eval" / "dev-queries.jsonl"

GREETINGS = ["Hi team,", "Hello,", "Dear Support,", "Hey there"]
SIGN_OFFS = ["Thanks,\nJane Doe", "Kind regards,\nMarco Rossi\n+39 347 555 0199", "Cheers\nSam", "Thank you"]
IDS = [
    "Order #ORD-20261128-88812",
    "Ticket 4471123 / account id 99812734",
    "Transaction ref TX-5521980034, order 301-7724410-2231",
]
QUOTED = "On Mon, 30 Nov 2026 at 10:02, Support <help@example.com> wrote:\n> Hello, thanks for contacting us."
NEIGHBOURS = dict(zip("abcdefghijklmnopqrstuvwxyz", "sqxsrdfgujlkmnpolteyiwczhx", strict=True))


def typo(word: str, rng: random.Random) -> str:
    """One typing slip inside a word."""
    i = rng.randrange(1, len(word) - 1)
    kind = rng.choice(["drop", "double", "swap", "neighbour"])
    if kind == "drop":
        return word[:i] + word[i + 1 :]
    if kind == "double":
        return word[:i] + word[i] + word[i:]
    if kind == "swap":
        return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]
    return word[:i] + NEIGHBOURS.get(word[i], word[i]) + word[i + 1 :]


def with_typos(query: str, rng: random.Random) -> str:
    """The query with a slip in about a third of its words of five letters or more (at least one)."""
    words = query.split()
    long = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
    for i in rng.sample(long, max(1, len(long) // 3)) if long else []:
        words[i] = typo(words[i], rng)
    return " ".join(words)


def as_ticket(query: str, n: int) -> str:
    """The query pasted as a ticket."""
    parts = [GREETINGS[n % 4], "", IDS[n % 3], query[0].upper() + query[1:] + ".", "", SIGN_OFFS[n % 4], "", QUOTED]
    return "\n".join(parts)


def query_sets(path: Path) -> dict[str, list]:
    from kb.evaluation import LabelledQuery, load_queries

    dev = load_queries(path)
    rng = random.Random(20261201)
    return {
        "dev": dev,
        "typos": [LabelledQuery(with_typos(q.query, rng), q.relevant, q.line) for q in dev],
        "tickets": [LabelledQuery(as_ticket(q.query, n), q.relevant, q.line) for n, q in enumerate(dev)],
    }


# -- variants --------------------------------------------------------------------------------------------
# Each names what it changes: settings, patches applied while the index is built and searched, and
# whether the index must be rebuilt for it.


def _no_category_text(library):
    return lambda cid: ""


def _heading_free(self):
    return self.text


VARIANTS = {
    "all": {},
    "-taxonomy-field": {"index": {"kb.indexing.builder._category_text": _no_category_text}},
    "-taxonomy-ranking": {"settings": {"WEIGHT_TAXONOMY": 0.0}},
    "-glossary": {"search": {"glossary": True}},
    "-typo-correction": {"search": {"typos": True}},
    "-ticket-cleaning": {"search": {"cleaning": True}},
    "-field-boosts": {"boosts": True},
    "-title-in-embeddings": {"index": {"kb.indexing.chunking.Section.embedding_text": property(_heading_free)}},
    "rrf-k-60": {"settings": {"RRF_K": 60}},
    # Links-only sections ("Related documents") are ranked and never cited (what ships); this drops them from
    # every ranking instead (docs/relevance.md: it cost a dev query at hit@1).
    "drop-links-only": {"links": True},
}
VARIANTS["baseline"] = {
    "index": {**VARIANTS["-taxonomy-field"]["index"], **VARIANTS["-title-in-embeddings"]["index"]},
    "settings": {"WEIGHT_TAXONOMY": 0.0, "RRF_K": 60},
    "search": {"glossary": True, "typos": True, "cleaning": True},
    "boosts": True,
}


def _without_links_only(rankings):
    """Searcher.rankings with links-only sections taken out of the keyword and semantic rankings."""

    def ranked(self, gen, prepared, mode, filters):
        found = rankings(self, gen, prepared, mode, filters)
        for name in ("keyword", "semantic"):
            if name in found:
                found[name] = [(key, score) for key, score in found[name] if gen.citable(key)]
        return found

    return ranked


@contextmanager
def patched(variant: dict):
    """Apply a variant's patches to kb's code for the duration."""
    from kb.indexing import keyword

    with ExitStack() as stack:
        for target, value in variant.get("index", {}).items():
            stack.enter_context(mock.patch(target, value))
        if variant.get("boosts"):
            stack.enter_context(mock.patch.dict(keyword.FIELD_BOOSTS, dict.fromkeys(keyword.FIELD_BOOSTS, 1.0)))
        if variant.get("links"):
            from kb.search import Searcher

            stack.enter_context(mock.patch.object(Searcher, "rankings", _without_links_only(Searcher.rankings)))
        if variant.get("search", {}).get("cleaning"):
            stack.enter_context(mock.patch("kb.querytext.clean_ticket", lambda text: text))
        yield


def searcher_for(variant: dict, data_dir: Path, encoder):
    from kb.config import load_settings
    from kb.glossary import Glossary
    from kb.querytext import QueryRewriter
    from kb.search import Searcher

    settings = load_settings({"DATA_DIR": data_dir, **variant.get("settings", {})})
    searcher = Searcher(settings, encoder=encoder)
    gen = searcher.generation
    off = variant.get("search", {})
    if off.get("glossary"):
        gen.rewriter = QueryRewriter(Glossary(), gen.rewriter.words, gen.keyword.analyze, gen.rewriter.dictionary)
    if off.get("typos"):
        gen.rewriter.correction = lambda word: None
    return searcher


def index_key(variant: dict) -> tuple:
    return (tuple(sorted(variant.get("index", {}))), bool(variant.get("boosts")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=Path, default=DEFAULT_QUERIES)
    parser.add_argument("--only", nargs="*", choices=list(VARIANTS), help="Run only these variants.")
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = parser.parse_args()

    from kb.config import load_settings
    from kb.evaluation import evaluate
    from kb.indexing.builder import build_index
    from kb.search import Searcher

    started = time.perf_counter()
    settings = load_settings()
    live = settings["DATA_DIR"]
    encoder = Searcher(settings).encoder
    sets = query_sets(args.queries)
    scratch = Path(tempfile.mkdtemp(prefix="kb-relevance-"))
    built: dict[tuple, Path] = {}
    results: dict[str, dict] = {}
    try:
        for name in args.only or list(VARIANTS):
            variant = VARIANTS[name]
            with patched(variant):
                key = index_key(variant)
                if key not in built:
                    folder = scratch / f"data-{len(built)}"
                    folder.mkdir()
                    shutil.copytree(live / "models", folder / "models")
                    shutil.copy(live / "embeddings.sqlite", folder / "embeddings.sqlite")
                    build_index(
                        settings["CONTENT_DIR"],
                        folder,
                        settings["EMBEDDING_MODEL"],
                        full=True,
                        engine=settings["KEYWORD_ENGINE"],
                    )
                    shutil.copy(folder / "embeddings.sqlite", live / "embeddings.sqlite")  # keep what was embedded
                    built[key] = folder
                searcher = searcher_for(variant, built[key], encoder)
                results[name] = {label: evaluate(searcher, queries)[0] for label, queries in sets.items()}
            print(f"{name}: done", file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        print(json.dumps({"n": len(sets["dev"]), "variants": results}))
        return
    print(f"{len(sets['dev'])} labelled queries; hit@1 / hit@3 / hit@5 / MRR\n")
    for label in sets:
        print(f"{label}:")
        print(f"  {'variant':<22}{'hybrid':>26}{'keyword':>26}{'semantic':>26}")
        for name, by_set in results.items():
            cells = []
            for mode in ("hybrid", "keyword", "semantic"):
                m = by_set[label]["modes"][mode]
                cells.append(" ".join(f"{m[x]:.3f}" for x in ("hit@1", "hit@3", "hit@5", "mrr")))
            print(f"  {name:<22}" + "".join(f"{c:>26}" for c in cells))
        print()
    print(f"run time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

"""The Searcher: the one facade the web app and the CLI use to search and read.

A Searcher serves the generation kb.indexing.served.LiveIndex chooses: before
each call it stats the manifest and the index folder, and when a build has
switched generations it loads the new one, so every process serves a new
revision without a restart. A damaged generation is skipped for the newest good
one (health() says degraded, with the reason). When the query encoder fails,
search answers from keywords alone with results.degraded set, never a 500.
Request checks and result shapes are kb.results'; reading is kb.catalog's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from pathlib import Path

import numpy as np

from kb import catalog
from kb.errors import IndexError_
from kb.history import History
from kb.indexing import fusion, query_encoder
from kb.indexing.chunking import chunk_document
from kb.indexing.filters import Filters
from kb.indexing.generation import REBUILD_HINT, Generation
from kb.indexing.served import LiveIndex
from kb.indexing.vector import set_threads
from kb.querytext import PreparedQuery
from kb.redaction import redact, strip_pans
from kb.results import MODES, Hit, SearchResults, badges, validate_request
from kb.snippets import make_snippet

__all__ = ["MODES", "SearchDetail", "Searcher", "collapse", "fuse_sections", "fusion_weights", "validate_request"]

log = logging.getLogger(__name__)

ENCODER_RETRY_SECONDS = 30.0  # after the query encoder failed to load, keyword-only answers until then


@dataclasses.dataclass(frozen=True)
class SearchDetail:
    """A search's results with what produced them, for callers that judge them (kb.assist)."""

    results: SearchResults
    generation: Generation  # the generation that answered (a build may switch the live one meanwhile)
    searched: str  # the query as the retrievers saw it (redacted, cleaned, corrected, expanded)
    rankings: dict  # each retriever's ranking (see Searcher.rankings), before fusion


def fusion_weights(settings: dict) -> dict[str, float]:
    """The weight of each retriever in hybrid fusion, from the WEIGHT_* settings."""
    return {name: settings[f"WEIGHT_{name.upper()}"] for name in ("keyword", "semantic", "taxonomy")}


def fuse_sections(rankings: dict[str, list[tuple[str, float]]], settings: dict) -> list[tuple[str, float]]:
    """Hybrid fusion of the keyword and semantic section rankings, as configured (also used by bench_ir)."""
    return fusion.fuse(rankings, k=settings["RRF_K"], weights=fusion_weights(settings))


def collapse(gen: Generation, scored: list[tuple[str, float]], k: int | None) -> list[fusion.Group]:
    """Sections grouped per SOP (kb/indexing/fusion.py), each SOP ranked by its best section and cited by its best
    citable one: a links-only section ("Related documents") is never cited. An SOP that only a links-only section
    matched keeps its rank and cites its first citable section (see docs/relevance.md for the measurement)."""
    return fusion.collapse(scored, gen.sop_of, k, citable=gen.citable, fallback=gen.first_citable)


class Searcher:
    """Search and read the live index generation."""

    def __init__(self, settings: dict, encoder=None):
        self.settings = settings
        self.data_dir: Path = settings["DATA_DIR"]
        self._encoder = encoder
        self._encoder_failure: str | None = None  # set during a burst of query encoder failures
        self._encoder_retry_at = 0.0  # after a failed load, when to try loading again
        self._lock = threading.RLock()
        self._vectors = query_encoder.QueryVectorCache(settings["QUERY_CACHE_SIZE"])
        self._live = LiveIndex(self.data_dir, settings["KEYWORD_ENGINE"])
        set_threads(1)

    # -- loading -----------------------------------------------------------------
    @property
    def generation(self) -> Generation:
        """The served generation, chosen again when the manifest or the index folder changed.

        Raises:
            IndexError_: no generation can be served (IndexNotBuiltError when none was ever built).
        """
        return self._live.get()

    def health(self) -> dict:
        """{"status": ok | degraded | unavailable, "reason", "generation", "documents", "sections"}."""
        state = self._live.state()
        if state.error is not None:
            return {"status": "unavailable", "reason": state.error.message, "generation": None}
        gen = state.generation
        reason = state.reason or (f"query encoder failing ({self._encoder_failure})" if self._encoder_failure else None)
        return {
            "status": "degraded" if reason else "ok",
            **({"reason": reason} if reason else {}),
            "generation": gen.name,
            "documents": len(gen.documents),
            "sections": len(gen.sections),
        }

    @property
    def encoder(self):
        """The query encoder (ONNX unless set otherwise), loaded on first use."""
        if self._encoder is None:
            with self._lock:
                if self._encoder is None:
                    encoder = query_encoder.query_encoder(
                        self.data_dir, self.settings["EMBEDDING_MODEL"], self.settings["QUERY_ENCODER"]
                    )
                    encoder.encode(["warm up"])  # torch loads lazily: a model that cannot load fails here, once
                    self._encoder = encoder
        return self._encoder

    def query_vector(self, text: str) -> np.ndarray | None:
        """The query's embedding (from the LRU of recent queries when it is there), or None when the encoder
        fails (logged once per burst of failures)."""
        if self._encoder is None and time.monotonic() < self._encoder_retry_at:
            return None  # a load failed moments ago: do not pay for it on every request
        try:
            vector = self._vectors.vector(text, lambda texts: self.encoder.encode(texts))
        except Exception as error:  # noqa: BLE001 - onnxruntime, tokenizers, torch or a missing model folder
            if self._encoder is None:
                self._encoder_retry_at = time.monotonic() + ENCODER_RETRY_SECONDS
            if self._encoder_failure is None:
                log.error("query encoder failed, answering keyword-only (degraded): %s", error)
            self._encoder_failure = f"{type(error).__name__}: {error}"[:200]
            return None
        if self._encoder_failure is not None:
            log.warning("query encoder recovered")
            self._encoder_failure = None
        return vector

    def warm_up(self) -> None:
        """Load the index and the encoder now rather than on the first request; a fault is logged, never raised."""
        try:
            self.generation  # noqa: B018 - loads
        except IndexError_ as error:
            log.error("starting without an index: %s", error.message)
        self.query_vector("warm up")

    # -- searching ---------------------------------------------------------------
    def search(
        self,
        query: str,
        k: int | None = None,
        mode: str = "hybrid",
        filters: dict | None = None,
        as_of: dt.date | None = None,
    ) -> SearchResults:
        """Search the library; one result per SOP, best first.

        Args:
            query: the user's text; card numbers are masked before anything else happens.
            k: how many SOPs to return (default DEFAULT_K).
            mode: hybrid, keyword or semantic.
            filters: optional {"business_line", "category", "type"}.
            as_of: cite, for each SOP found, the revision in force on that day (SOPs not yet in force are
                left out). The ranking is the current index's; the cited text and snippet are the old revision's.

        Returns:
            The results; results.degraded is True when the query encoder failed and only keywords ranked.

        Raises:
            QueryError: the request is malformed.
            IndexError_: no index generation can be served.
        """
        return self.search_detail(query, k, mode, filters, as_of).results

    def search_detail(
        self,
        query: str,
        k: int | None = None,
        mode: str = "hybrid",
        filters: dict | None = None,
        as_of: dt.date | None = None,
    ) -> SearchDetail:
        """search(), with the generation that answered, the text searched and each retriever's ranking."""
        started = time.perf_counter()
        k = self.settings["DEFAULT_K"] if k is None else k
        query, k, mode, parsed = validate_request(
            query, k, mode, filters, self.settings["MAX_QUERY_CHARS"], self.settings["MAX_K"]
        )
        masked = redact(query.strip())
        gen = self.generation
        prepared = gen.rewriter.prepare(strip_pans(masked))  # what is searched: the redacted text, masks removed
        found = self.rankings(gen, prepared, mode, parsed)
        groups = self._fused(gen, found, mode, k)
        terms = {t for text, _ in [(prepared.text, 1.0), *prepared.expansions] for _, _, t in gen.keyword.analyze(text)}
        hits = tuple(self._hit(gen, group, terms) for group in groups)
        if as_of is not None:
            hits = tuple(h for h in (self._in_force(gen, hit, as_of, terms) for hit in hits) if h is not None)
        degraded = mode != "keyword" and "semantic" not in found
        results = SearchResults(masked, mode, (time.perf_counter() - started) * 1000, hits, degraded)
        return SearchDetail(results, gen, prepared.text, found)

    def _in_force(self, gen: Generation, hit: Hit, day: dt.date, terms: set[str]) -> Hit | None:
        """The hit as of a day: unchanged if its current revision was in force, else cited from the older one."""
        record = gen.documents[hit.sop_id]
        if dt.date.fromisoformat(record["effective"]) <= day:
            return hit
        history = History(self.settings["CONTENT_DIR"])
        found = history.as_of(record["path"], day)
        if found is None:
            return None
        _, document, _ = history.parsed(record["path"], found.commit)
        sections = {s.anchor: s for s in chunk_document(document)} if document else {}
        section = sections.get(hit.anchor) or next(iter(sections.values()), None)
        if section is None:
            return None
        snippet = make_snippet(section.text, gen.keyword.analyze, terms)  # an old revision: analysed afresh
        return dataclasses.replace(
            hit,
            heading=section.heading,
            anchor=section.anchor,
            snippet=snippet,
            revision=found.commit,
            others=(),
            in_force=day.isoformat(),
        )

    def rankings(self, gen: Generation, prepared: PreparedQuery, mode: str, filters: Filters | None) -> dict:
        """Each retriever's ranking for one mode: section (key, score) lists, and SOP ids for "taxonomy".

        When the query encoder fails, "semantic" and "taxonomy" are absent and "keyword" is always there.

        Raises:
            IndexError_: the keyword or vector index failed while searching.
        """
        limit = self.settings["CANDIDATES"]
        out: dict[str, list] = {}
        vector = self.query_vector(prepared.text) if mode != "keyword" else None
        try:
            if mode in ("keyword", "hybrid") or vector is None:
                out["keyword"] = gen.keyword.search(prepared.text, limit, filters, prepared.expansions)
            if vector is not None:
                out["semantic"] = gen.vectors.search(vector, limit, filters)
                if mode == "hybrid":
                    out["taxonomy"], out["taxonomy_confidence"] = gen.taxonomy.rank(vector, filters, limit)
        except Exception as error:  # noqa: BLE001 - each engine fails its own way
            raise IndexError_(
                f"generation {gen.name} failed while searching ({type(error).__name__}): {REBUILD_HINT}"
            ) from error
        return out

    def rank(
        self, gen: Generation, prepared: PreparedQuery, mode: str, filters: Filters | None, k: int | None
    ) -> list[fusion.Group]:
        """The SOPs for one mode, best first, each with its best section; hybrid fuses the retrievers."""
        return self._fused(gen, self.rankings(gen, prepared, mode, filters), mode, k)

    def _fused(self, gen: Generation, found: dict, mode: str, k: int | None) -> list[fusion.Group]:
        if mode == "keyword" or "semantic" not in found:
            return collapse(gen, found["keyword"], k)
        if mode == "semantic":
            return collapse(gen, found["semantic"], k)
        sections = {name: found[name] for name in ("keyword", "semantic")}
        groups = collapse(gen, fuse_sections(sections, self.settings), None)
        rrf_k, weights = self.settings["RRF_K"], self.hybrid_weights(found)
        return fusion.boost(groups, {"taxonomy": found["taxonomy"]}, k=rrf_k, weights=weights)[:k]

    def hybrid_weights(self, found: dict) -> dict[str, float]:
        """The fusion weights for one query: the taxonomy ranking's scaled by how close the query is to it."""
        weights = fusion_weights(self.settings)
        weights["taxonomy"] = fusion.confidence_weight(
            weights["taxonomy"], found.get("taxonomy_confidence", 0.0), self.settings["TAXONOMY_FULL_SIMILARITY"]
        )
        return weights

    def explain(self, query: str, k: int = 5, filters: dict | None = None) -> dict:
        """Show how hybrid search ranks a query: the rewritten query, each retriever's SOPs and the fused result.

        Returns:
            {"query", "searched", "expansions", "rankings": {name: [{"sop_id", "section", "score"}]},
             "taxonomy_confidence": the best phrasing cosine, "weights": {name: the weight fusion used},
             "hybrid": [{"sop_id", "section", "score", "ranks": {name: rank or None}}]}; section is an anchor.
        """
        query, k, _, parsed = validate_request(
            query, k, "hybrid", filters, self.settings["MAX_QUERY_CHARS"], self.settings["MAX_K"]
        )
        masked = redact(query.strip())
        gen = self.generation
        prepared = gen.rewriter.prepare(strip_pans(masked))
        found = self.rankings(gen, prepared, "hybrid", parsed)
        rankings: dict[str, list[dict]] = {}
        for name in ("keyword", "semantic"):
            groups = collapse(gen, found.get(name, []), None)
            rankings[name] = [
                {"sop_id": g.sop_id, "section": gen.anchor_of(g.best), "score": round(g.score, 4)} for g in groups
            ]
        rankings["taxonomy"] = [
            {"sop_id": sop_id, "section": None, "score": None} for sop_id in found.get("taxonomy", [])
        ]
        position = {name: {row["sop_id"]: i for i, row in enumerate(rows, 1)} for name, rows in rankings.items()}
        fused = [
            {
                "sop_id": g.sop_id,
                "section": gen.anchor_of(g.best),
                "score": round(g.score, 4),
                "ranks": {name: position[name].get(g.sop_id) for name in rankings},
            }
            for g in self._fused(gen, found, "hybrid", k)
        ]
        return {
            "query": masked,
            "searched": prepared.text,
            "expansions": [list(e) for e in prepared.expansions],
            "rankings": {name: rows[:k] for name, rows in rankings.items()},
            "taxonomy_confidence": round(found.get("taxonomy_confidence", 0.0), 4),
            "weights": {name: round(w, 4) for name, w in self.hybrid_weights(found).items()},
            "hybrid": fused,
        }

    def _hit(self, gen: Generation, group: fusion.Group, terms: set[str]) -> Hit:
        section = gen.section(group.best)
        doc = gen.documents[group.sop_id]
        others = tuple(
            {
                "heading": gen.section(key)["heading"],
                "anchor": gen.section(key)["anchor"],
                "score": round(score, 6),
            }
            for key, score in group.others
        )
        return Hit(
            sop_id=doc["id"],
            title=doc["title"],
            type=doc["type"],
            business_line=doc["business_line"],
            categories=tuple(doc["categories"]),
            heading=section["heading"],
            anchor=section["anchor"],
            snippet=make_snippet(section["text"], lambda text: gen.analyzed(group.best, text), terms),
            score=group.score,
            revision=doc["revision"],
            others=others,
            effective=doc.get("effective"),
            review_by=doc.get("review_by"),
            badges=badges(doc, dt.date.today(), self.settings["RECENT_DAYS"]),
        )

    # -- reading (kb.catalog over the served generation) --------------------------
    def document_ids(self) -> list[str]:
        """Ids of every document in the live generation."""
        return sorted(self.generation.documents)

    def list_documents(self) -> list[dict]:
        """Metadata of every document in the live generation, by id."""
        return catalog.list_documents(self.generation)

    def taxonomy(self) -> dict:
        """The category tree, each category with the documents that serve it, and the uncovered categories."""
        return catalog.taxonomy(self.generation)

    def category(self, category_id: str) -> dict:
        """One category (or group) with its documents (NotFoundError if none)."""
        return catalog.category(self.generation, category_id)

    def document(self, sop_id: str) -> dict:
        """A document's metadata, sections, Markdown and rendered HTML (NotFoundError if none)."""
        return catalog.document(self.generation, sop_id)

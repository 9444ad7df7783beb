"""The Searcher: the one facade the web app and the CLI use to search and read.

A Searcher loads the live index generation and, before each call, checks the
manifest (one stat); when a build has switched generations it loads the new
one, so every process serves a new revision without a restart.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kb import markdown
from kb.documents import BUSINESS_LINES, TYPES
from kb.errors import NotFoundError, QueryError
from kb.glossary import Glossary
from kb.history import History
from kb.indexing import builder, embeddings, fusion
from kb.indexing.chunking import chunk_document
from kb.indexing.keyword import Filters, KeywordIndex, keyword_backend
from kb.indexing.vector import FILE_NAME as VECTORS_FILE
from kb.indexing.vector import VectorIndex, set_threads
from kb.querytext import PreparedQuery, QueryRewriter
from kb.redaction import mask_pans, strip_pans
from kb.snippets import make_snippet

log = logging.getLogger(__name__)

MODES = ("hybrid", "keyword", "semantic")
METADATA_KEYS = (
    "id",
    "title",
    "type",
    "business_line",
    "categories",
    "owner",
    "status",
    "effective",
    "review_by",
    "tags",
    "path",
    "revision",
)
_CATEGORY = re.compile(r"^[a-z0-9-]+(/[a-z0-9-]+)?$")
_SOP_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Hit:
    """One SOP in the results, cited by its best section."""

    sop_id: str
    title: str
    type: str
    business_line: str
    categories: tuple[str, ...]
    heading: str
    anchor: str
    snippet: str
    score: float
    revision: str | None
    others: tuple[dict, ...] = ()
    in_force: str | None = None  # with as_of: the date searched for, when an older revision is cited

    @property
    def url(self) -> str:
        """Deep link to the section on the SOP page (on the cited older revision's page with as_of)."""
        if self.in_force:
            return f"/sops/{self.sop_id}/revisions/{self.revision}#{self.anchor}"
        return f"/sops/{self.sop_id}#{self.anchor}"

    def to_dict(self) -> dict:
        """The API's result shape."""
        return {
            "sop_id": self.sop_id,
            "title": self.title,
            "type": self.type,
            "business_line": self.business_line,
            "categories": list(self.categories),
            "section": {"heading": self.heading, "anchor": self.anchor},
            "url": self.url,
            "snippet": self.snippet,
            "score": round(self.score, 6),
            "revision": self.revision,
            "other_sections": list(self.others),
            **({"in_force_on": self.in_force} if self.in_force else {}),
        }


@dataclass(frozen=True)
class SearchResults:
    """The answer to one search."""

    query: str  # as redacted
    mode: str
    took_ms: float
    hits: tuple[Hit, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        """The API's response shape."""
        return {
            "query": self.query,
            "mode": self.mode,
            "took_ms": round(self.took_ms, 2),
            "results": [h.to_dict() for h in self.hits],
        }


class Generation:
    """One loaded index generation: keyword and vector indexes plus section and document data."""

    def __init__(self, folder: Path, backend: type[KeywordIndex]):
        self.name = folder.name
        self.keyword = backend.open(folder / "keyword")
        self.vectors = VectorIndex.open(folder / VECTORS_FILE)
        self.sections: list[dict] = json.loads((folder / "sections.json").read_text())
        self.documents: dict[str, dict] = json.loads((folder / "documents.json").read_text())
        self.categories: list[dict] = json.loads((folder / "categories.json").read_text())
        self.row_of = {s["key"]: i for i, s in enumerate(self.sections)}
        self._allowed: dict[Filters, np.ndarray] = {}
        # Vectors of every category's phrasings, and the SOPs that serve each category.
        self.taxonomy = np.load(folder / builder.TAXONOMY_FILE)
        self.taxonomy_rows: list[str] = json.loads((folder / builder.TAXONOMY_ROWS_FILE).read_text())
        self.serving: dict[str, list[str]] = {}
        for record in self.documents.values():
            if record["status"] != "retired":
                for category in record["categories"]:
                    self.serving.setdefault(category, []).append(record["id"])
        glossary = Glossary.from_dict(json.loads((folder / builder.GLOSSARY_FILE).read_text()))
        words = json.loads((folder / builder.VOCABULARY_FILE).read_text())
        self.rewriter = QueryRewriter(glossary, words["library"], self.keyword.analyze, frozenset(words["dictionary"]))

    def sop_of(self, key: str) -> str:
        """The SOP id of a section key."""
        return self.sections[self.row_of[key]]["sop_id"]

    def anchor_of(self, key: str) -> str:
        """The anchor of a section key."""
        return self.sections[self.row_of[key]]["anchor"]

    def taxonomy_ranking(self, vector: np.ndarray, filters: Filters | None) -> list[str]:
        """SOPs ranked by how close the query is to a phrasing of one of their categories."""
        if not len(self.taxonomy_rows):
            return []
        similarity = self.taxonomy @ vector
        ranked: dict[str, None] = {}
        for row in np.argsort(-similarity, kind="stable"):
            for sop_id in self.serving.get(self.taxonomy_rows[row], ()):
                if filters is None or filters.matches(self.documents[sop_id]):
                    ranked.setdefault(sop_id)
        return list(ranked)

    def allowed_rows(self, filters: Filters) -> np.ndarray:
        """Rows of sections whose documents pass the filters (cached per filter)."""
        if filters not in self._allowed:
            rows = [i for i, s in enumerate(self.sections) if filters.matches(self.documents[s["sop_id"]])]
            self._allowed[filters] = np.array(rows, dtype=np.int64)
        return self._allowed[filters]


def validate_request(
    query: object, k: object, mode: object, filters: dict | None, max_chars: int, max_k: int
) -> tuple[str, int, str, Filters | None]:
    """Check a search request; raise QueryError naming the field and the problem."""
    if not isinstance(query, str) or not query.strip():
        raise QueryError("query: must be a non-empty string", {"field": "query"})
    if len(query) > max_chars:
        raise QueryError(f"query: longer than {max_chars} characters ({len(query)})", {"field": "query"})
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= max_k:
        raise QueryError(f"k: must be a whole number from 1 to {max_k}", {"field": "k"})
    if mode not in MODES:
        raise QueryError(f"mode: must be one of {', '.join(MODES)}", {"field": "mode"})
    if filters is None:
        return query, k, mode, None
    if not isinstance(filters, dict):
        raise QueryError("filters: must be an object", {"field": "filters"})
    unknown = set(filters) - {"business_line", "category", "type"}
    if unknown:
        raise QueryError(f"filters: unknown field {sorted(unknown)[0]!r}", {"field": "filters"})
    values = {key: (value or None) for key, value in filters.items()}
    checks = {
        "business_line": lambda v: v in BUSINESS_LINES,
        "type": lambda v: v in TYPES,
        "category": lambda v: isinstance(v, str) and bool(_CATEGORY.match(v)),
    }
    for key, value in values.items():
        if value is not None and not checks[key](value):
            raise QueryError(f"filters.{key}: {value!r} is not a valid value", {"field": f"filters.{key}"})
    result = Filters(**values)
    return query, k, mode, (result if result != Filters() else None)


def fusion_weights(settings: dict) -> dict[str, float]:
    """The weight of each retriever in hybrid fusion, from the WEIGHT_* settings."""
    return {name: settings[f"WEIGHT_{name.upper()}"] for name in ("keyword", "semantic", "taxonomy")}


def fuse_sections(rankings: dict[str, list[tuple[str, float]]], settings: dict) -> list[tuple[str, float]]:
    """Hybrid fusion of the keyword and semantic section rankings, as configured (also used by bench_ir)."""
    return fusion.fuse(rankings, k=settings["RRF_K"], weights=fusion_weights(settings))


class Searcher:
    """Search and read the live index generation."""

    def __init__(self, settings: dict, encoder=None):
        self.settings = settings
        self.data_dir: Path = settings["DATA_DIR"]
        self._encoder = encoder
        self._generation: Generation | None = None
        self._stamp: tuple | None = None
        self._lock = threading.RLock()
        self._backend = keyword_backend(builder.KEYWORD_BACKEND)
        set_threads(1)

    # -- loading -----------------------------------------------------------------
    def _manifest_stamp(self) -> tuple | None:
        try:
            st = os.stat(builder.index_root(self.data_dir) / "manifest.json")
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    @property
    def generation(self) -> Generation:
        """The live generation, reloaded when the manifest has changed."""
        stamp = self._manifest_stamp()
        if self._generation is None or stamp != self._stamp:
            with self._lock:
                if self._generation is None or stamp != self._stamp:
                    folder = builder.current_generation(self.data_dir)
                    if self._generation is None or self._generation.name != folder.name:
                        self._generation = Generation(folder, self._backend)
                        log.debug("serving index generation %s", folder.name)
                    self._stamp = stamp
        return self._generation

    @property
    def encoder(self):
        """The query encoder (ONNX unless set otherwise), loaded on first use."""
        if self._encoder is None:
            with self._lock:
                if self._encoder is None:
                    self._encoder = embeddings.query_encoder(
                        self.data_dir, self.settings["EMBEDDING_MODEL"], self.settings["QUERY_ENCODER"]
                    )
        return self._encoder

    def warm_up(self) -> None:
        """Load the index and the encoder now rather than on the first request."""
        self.generation  # noqa: B018 - loads
        self.encoder.encode(["warm up"])

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

        Raises:
            QueryError: the request is malformed.
        """
        started = time.perf_counter()
        k = self.settings["DEFAULT_K"] if k is None else k
        query, k, mode, parsed = validate_request(
            query, k, mode, filters, self.settings["MAX_QUERY_CHARS"], self.settings["MAX_K"]
        )
        masked = mask_pans(query.strip())
        gen = self.generation
        prepared = gen.rewriter.prepare(strip_pans(query.strip()))
        groups = self.rank(gen, prepared, mode, parsed, k)
        terms = {t for text, _ in [(prepared.text, 1.0), *prepared.expansions] for _, _, t in gen.keyword.analyze(text)}
        hits = tuple(self._hit(gen, group, terms) for group in groups)
        if as_of is not None:
            hits = tuple(h for h in (self._in_force(gen, hit, as_of, terms) for hit in hits) if h is not None)
        return SearchResults(masked, mode, (time.perf_counter() - started) * 1000, hits)

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
        snippet = make_snippet(section.text, gen.keyword.analyze, terms)
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
        """Each retriever's ranking for one mode: section (key, score) lists, and SOP ids for "taxonomy"."""
        limit = self.settings["CANDIDATES"]
        out: dict[str, list] = {}
        if mode in ("keyword", "hybrid"):
            with self._lock:
                out["keyword"] = gen.keyword.search(prepared.text, limit, filters, prepared.expansions)
        if mode in ("semantic", "hybrid"):
            vector = self.encoder.encode([prepared.text])[0]
            allowed = gen.allowed_rows(filters) if filters else None
            rows = gen.vectors.search(vector, limit, allowed)
            out["semantic"] = [(gen.sections[row]["key"], score) for row, score in rows]
            if mode == "hybrid":
                out["taxonomy"] = gen.taxonomy_ranking(vector, filters)
        return out

    def rank(
        self, gen: Generation, prepared: PreparedQuery, mode: str, filters: Filters | None, k: int | None
    ) -> list[fusion.Group]:
        """The SOPs for one mode, best first, each with its best section; hybrid fuses the retrievers."""
        return self._fused(gen, self.rankings(gen, prepared, mode, filters), mode, k)

    def _fused(self, gen: Generation, found: dict, mode: str, k: int | None) -> list[fusion.Group]:
        if mode != "hybrid":
            return fusion.collapse(found[mode], gen.sop_of, k)
        sections = {name: found[name] for name in ("keyword", "semantic")}
        groups = fusion.collapse(fuse_sections(sections, self.settings), gen.sop_of, None)
        rrf_k, weights = self.settings["RRF_K"], fusion_weights(self.settings)
        return fusion.boost(groups, {"taxonomy": found["taxonomy"]}, k=rrf_k, weights=weights)[:k]

    def explain(self, query: str, k: int = 5, filters: dict | None = None) -> dict:
        """Show how hybrid search ranks a query: the rewritten query, each retriever's SOPs and the fused result.

        Returns:
            {"query", "searched", "expansions", "rankings": {name: [{"sop_id", "section", "score"}]},
             "hybrid": [{"sop_id", "section", "score", "ranks": {name: rank or None}}]}; section is an anchor.
        """
        query, k, _, parsed = validate_request(
            query, k, "hybrid", filters, self.settings["MAX_QUERY_CHARS"], self.settings["MAX_K"]
        )
        gen = self.generation
        prepared = gen.rewriter.prepare(strip_pans(query.strip()))
        found = self.rankings(gen, prepared, "hybrid", parsed)
        rankings: dict[str, list[dict]] = {}
        for name in ("keyword", "semantic"):
            groups = fusion.collapse(found[name], gen.sop_of, None)
            rankings[name] = [
                {"sop_id": g.sop_id, "section": gen.anchor_of(g.best), "score": round(g.score, 4)} for g in groups
            ]
        rankings["taxonomy"] = [{"sop_id": sop_id, "section": None, "score": None} for sop_id in found["taxonomy"]]
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
            "query": mask_pans(query.strip()),
            "searched": prepared.text,
            "expansions": [list(e) for e in prepared.expansions],
            "rankings": {name: rows[:k] for name, rows in rankings.items()},
            "hybrid": fused,
        }

    def _hit(self, gen: Generation, group: fusion.Group, terms: set[str]) -> Hit:
        section = gen.sections[gen.row_of[group.best]]
        doc = gen.documents[group.sop_id]
        others = tuple(
            {
                "heading": gen.sections[gen.row_of[key]]["heading"],
                "anchor": gen.sections[gen.row_of[key]]["anchor"],
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
            snippet=make_snippet(section["text"], gen.keyword.analyze, terms),
            score=group.score,
            revision=doc["revision"],
            others=others,
        )

    # -- reading -----------------------------------------------------------------
    def document_ids(self) -> list[str]:
        """Ids of every document in the live generation."""
        return sorted(self.generation.documents)

    def list_documents(self) -> list[dict]:
        """Metadata of every document in the live generation, by id."""
        documents = self.generation.documents
        return [{key: documents[i][key] for key in METADATA_KEYS} for i in sorted(documents)]

    def taxonomy(self) -> dict:
        """The category tree, each category with the documents that serve it, and the uncovered categories."""
        gen = self.generation
        serving: dict[str, list[dict]] = {}
        for record in sorted(gen.documents.values(), key=lambda r: r["title"].lower()):
            for category in record["categories"]:
                serving.setdefault(category, []).append(
                    {"id": record["id"], "title": record["title"], "type": record["type"], "status": record["status"]}
                )
        groups = []
        for category in gen.categories:
            entry = {**category, "documents": serving.get(category["id"], [])}
            if category["parent"] is None:
                groups.append({**entry, "children": []})
            else:
                groups[-1]["children"].append(entry)
        uncovered = [c["id"] for c in gen.categories if c["parent"] is not None and c["id"] not in serving]
        return {"categories": groups, "uncovered": uncovered}

    def category(self, category_id: str) -> dict:
        """One category (or group) with its documents; a group lists its children.

        Raises:
            NotFoundError: no such category.
        """
        for group in self.taxonomy()["categories"]:
            if group["id"] == category_id:
                return group
            for child in group["children"]:
                if child["id"] == category_id:
                    return {**child, "group": {"id": group["id"], "name": group["name"]}}
        raise NotFoundError(f"no category with id {category_id!r}", {"field": "id"})

    def document(self, sop_id: str) -> dict:
        """Return a document's metadata, sections, Markdown and rendered HTML.

        Raises:
            NotFoundError: no such document.
        """
        gen = self.generation
        if not isinstance(sop_id, str) or not _SOP_ID.match(sop_id) or sop_id not in gen.documents:
            raise NotFoundError(f"no SOP with id {sop_id!r}", {"field": "id"})
        record = gen.documents[sop_id]
        body = record["body"]
        sections = [
            {"heading": h.text, "anchor": h.anchor, "level": h.level} for h in markdown.headings(markdown.parse(body))
        ]
        meta = {key: record[key] for key in METADATA_KEYS}
        return {**meta, "sections": sections, "html": markdown.render_html(body), "markdown": record["text"]}

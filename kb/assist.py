"""Agent assist: a whole ticket in; its likely categories, the SOP sections to cite, a macro, and whether kb knows.

``Assistant(searcher).assist(subject=..., body=..., business_line=..., category=..., k=...)`` answers::

    {"categories": [{"id", "name", "confidence"}],      # the classifier's three likeliest, calibrated
     "results": [<a search result> + {"text", "citation": {"sop_id", "anchor", "revision", "url"}, "stale"}],
     "macro": {"sop_id", "anchor", "heading", "text"} or None,
     "answerable": bool, "reason": str (only when not answerable), "redactions": int}

How a ticket is read, in order:

1. Card numbers are masked (kb.redaction) in the subject and the body before anything else;
   ``redactions`` counts them.
2. What is searched and classified is the subject and the start of the body, at most MAX_QUERY_CHARS
   characters (cut at a space), so a ticket of any size up to the request limit answers in bounded time;
   search then drops quoted replies, greetings and signatures (kb.querytext), and the embedding model reads
   the first 256 word pieces of what is left. Only redaction reads the whole ticket (linear in its length).
3. Hybrid search (kb.search) finds the SOPs; each result carries its best section's plain text (shared values
   resolved) and the citation. A result whose document is past its ``review_by`` date is ``stale``.
4. The category classifier of the served generation (kb.indexing.category_model) gives calibrated confidences.
5. ``answerable`` is true when the classifier or search is confident and a result is not stale:
   - the classifier: its top category's confidence reaches KB_ASSIST_MIN_CONFIDENCE, lies within the named
     category (when one is named) and a result serves it;
   - search: the closest section or category phrasing to the ticket (the larger of the best section cosine
     and the best phrasing cosine) reaches KB_ASSIST_MIN_SIMILARITY. This signal was chosen by measurement
     (scripts/bench_assist.py): it separated the dev queries and BANKING77 messages from off-topic tickets
     better than either cosine alone.
   Otherwise ``reason`` says which signal fell short and by how much. When the query encoder fails, search
   answers from keywords alone and nothing is answerable (kb cannot judge the match).
6. The macro is the customer macro of the first of the first MACRO_RESULTS results that is not stale and has
   one, only when the ticket is answerable; among a document's macros, the one whose section ranks highest
   for the ticket by meaning, else its first.

A named ``category`` (a category or a group id, as in search filters) filters: results come only from SOPs
serving it; ``categories`` still lists the classifier's own view, so a caller sees when it disagrees.
``business_line`` filters the same way (SOPs of that line and of "all").
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import threading

from kb.disclosure import Macro, macros
from kb.documents import BUSINESS_LINES
from kb.errors import QueryError
from kb.indexing.generation import Generation
from kb.redaction import redact_counted
from kb.results import Hit
from kb.search import SearchDetail, Searcher

DEFAULT_RESULTS = 5  # results when k is not given
CATEGORIES_SHOWN = 3
MACRO_RESULTS = 3  # the macro comes from one of the first results
MACRO_CACHE = 1024  # documents whose macros are remembered (per generation)
_CATEGORY = re.compile(r"^[a-z0-9-]+(/[a-z0-9-]+)?$")


def ticket_text(subject: str, body: str, limit: int) -> str:
    """The subject, a blank line and the body, cut to at most limit characters at a space when there is one."""
    text = "\n\n".join(part for part in (subject.strip(), body.strip()) if part)
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    return cut[:space] if space >= limit // 2 else cut


def is_stale(record: dict, today: dt.date) -> bool:
    """Whether a document is past its review_by date (its owner has not re-verified it in time)."""
    review_by = record.get("review_by")
    return bool(review_by) and dt.date.fromisoformat(review_by) < today


@dataclasses.dataclass(frozen=True)
class Assessment:
    """One ticket's answer (to_dict is the API's shape) and the signals that judged it."""

    categories: list[dict]
    results: list[dict]
    macro: dict | None
    answerable: bool
    reason: str | None
    redactions: int
    similarity: float  # the larger of the two below
    section_similarity: float  # best cosine between the ticket and a section passing the filters
    phrasing_similarity: float  # best cosine between the ticket and a phrasing of the (named) categories
    degraded: bool
    classifier_sure: bool  # the classifier alone would make the ticket answerable
    query: str = ""  # what was searched: the subject and the start of the body, masked (for the search log)

    def to_dict(self) -> dict:
        """The answer of POST /api/v1/assist."""
        answer = {
            "categories": self.categories,
            "results": self.results,
            "macro": self.macro,
            "answerable": self.answerable,
            "redactions": self.redactions,
        }
        if not self.answerable:
            answer["reason"] = self.reason
        return answer


class Assistant:
    """Answer whole tickets from the Searcher's live generation."""

    def __init__(self, searcher: Searcher):
        self.searcher = searcher
        self.settings = searcher.settings
        self._macros: dict[tuple[str, str], list[Macro]] = {}
        self._lock = threading.Lock()

    def assist(
        self,
        subject: str,
        body: str,
        business_line: str | None = None,
        category: str | None = None,
        k: int | None = None,
    ) -> dict:
        """Categories, cited results, a macro and whether kb can answer a ticket (see the module docstring).

        Args:
            subject: the ticket's subject ("" when it has none).
            body: the ticket's text ("" when the subject says it all); together at most MAX_REQUEST_BYTES chars.
            business_line: only SOPs of this business line (and of "all").
            category: only SOPs serving this category or group (it must exist).
            k: how many SOPs (default DEFAULT_RESULTS, at most MAX_K).

        Raises:
            QueryError: a field is malformed; the message lists every problem, details name the fields.
            IndexError_: no index generation can be served.
        """
        return self.assess(subject, body, business_line, category, k).to_dict()

    def assess(
        self,
        subject: str,
        body: str,
        business_line: str | None = None,
        category: str | None = None,
        k: int | None = None,
    ) -> Assessment:
        """assist(), with the signals that decided ``answerable`` (for measuring them)."""
        k = DEFAULT_RESULTS if k is None else k
        problems = self._problems(subject, body, business_line, category, k)
        if problems:
            raise _query_error(problems)
        subject, from_subject = redact_counted(subject)  # before anything else reads the ticket
        body, from_body = redact_counted(body)
        gen = self.searcher.generation
        if category and not any(c["id"] == category for c in gen.categories):
            raise _query_error([("category", f"no category {category!r} (see /api/v1/categories)")])
        text = ticket_text(subject, body, self.settings["MAX_QUERY_CHARS"])
        filters = {"business_line": business_line or None, "category": category or None}
        detail = self.searcher.search_detail(text, k, "hybrid", filters if any(filters.values()) else None)
        gen = detail.generation
        today = dt.date.today()
        hits = detail.results.hits
        vector = None if detail.results.degraded else self.searcher.query_vector(detail.searched)
        predicted = (
            gen.classifier.top(detail.searched, vector, CATEGORIES_SHOWN)
            if gen.classifier and (vector is not None)
            else []
        )
        names = {c["id"]: c["name"] for c in gen.categories}
        section_similarity = max((score for _, score in detail.rankings.get("semantic", [])[:1]), default=0.0)
        phrasing_similarity = gen.taxonomy.similarity(vector, category or None) if vector is not None else 0.0
        similarity = max(section_similarity, phrasing_similarity)
        results = [self._result(gen, hit, today) for hit in hits]
        classifier = self._classifier_view(predicted, hits, category, names)
        answerable, reason = self._judge(detail, results, classifier, similarity, category, business_line)
        macro = self._macro(gen, detail, hits, results) if answerable else None
        return Assessment(
            categories=[{"id": c, "name": names.get(c, c), "confidence": round(p, 4)} for c, p in predicted],
            results=results,
            macro=macro,
            answerable=answerable,
            reason=reason,
            redactions=from_subject + from_body,
            similarity=similarity,
            section_similarity=section_similarity,
            phrasing_similarity=phrasing_similarity,
            degraded=detail.results.degraded,
            classifier_sure=classifier[0],
            query=detail.results.query,
        )

    # -- checks ------------------------------------------------------------------
    def _problems(self, subject, body, business_line, category, k) -> list[tuple[str, str]]:
        """Every problem of a request, (field, message), checked before the ticket is read."""
        problems = []
        for name, value in (("subject", subject), ("body", body)):
            if not isinstance(value, str):
                problems.append((name, "must be a string"))
        if not problems:
            limit = self.settings["MAX_REQUEST_BYTES"]
            if not subject.strip() and not body.strip():
                problems.append(("body", "the ticket has no text: give a subject, a body or both"))
            elif len(subject) + len(body) > limit:
                problems.append(("body", f"the subject and body are longer than {limit:,} characters together"))
        if business_line is not None and business_line not in BUSINESS_LINES:
            problems.append(("business_line", f"must be one of {', '.join(BUSINESS_LINES)}"))
        if category is not None and not (isinstance(category, str) and _CATEGORY.match(category)):
            problems.append(("category", "must be a category id such as payments or payments/duplicate-charge"))
        max_k = self.settings["MAX_K"]
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= max_k:
            problems.append(("k", f"must be a whole number from 1 to {max_k}"))
        return problems

    # -- the answer ----------------------------------------------------------------
    def _result(self, gen: Generation, hit: Hit, today: dt.date) -> dict:
        section = gen.section(f"{hit.sop_id}#{hit.anchor}")
        return {
            **hit.to_dict(),
            "text": section["text"],
            "citation": {"sop_id": hit.sop_id, "anchor": hit.anchor, "revision": hit.revision, "url": hit.url},
            "stale": is_stale(gen.documents[hit.sop_id], today),
        }

    def _classifier_view(self, predicted, hits, category, names) -> tuple[bool, str]:
        """Whether the classifier alone is confident (see the module docstring), and what it says, for a reason."""
        if not predicted:
            return False, "there is no category classifier"
        minimum = self.settings["ASSIST_MIN_CONFIDENCE"]
        top, confidence = predicted[0]
        about = f"the likeliest category, {names.get(top, top)} ({top}), has confidence {confidence:.2f}"
        if confidence < minimum:
            return False, about + f" (needs {minimum:.2f})"
        if category and not (top == category or top.startswith(category + "/")):
            return False, about + f" but lies outside {category}"
        if not any(top in hit.categories for hit in hits):
            return False, about + " but no result serves it"
        return True, about

    def _judge(self, detail: SearchDetail, results, classifier, similarity, category, business_line):
        """(answerable, reason): see the module docstring."""
        if detail.results.degraded:
            return False, (
                "the query encoder is failing, so kb searched keywords alone and cannot judge how well they match"
            )
        if not results:
            where = " and ".join(
                part
                for part in (category and f"category {category}", business_line and f"business line {business_line}")
                if part
            )
            return False, "no SOP matches the ticket" + (f" within {where}" if where else "")
        classifier_sure, about = classifier
        minimum = self.settings["ASSIST_MIN_SIMILARITY"]
        if not (classifier_sure or similarity >= minimum):
            return False, (
                f"neither the category classifier nor search is confident: {about}, and the closest SOP section "
                f"or category phrasing has similarity {similarity:.2f} (needs {minimum:.2f})"
            )
        if all(result["stale"] for result in results):
            return False, "every SOP found is past its review_by date: their owners must re-verify them first"
        return True, None

    def _macro(self, gen: Generation, detail: SearchDetail, hits, results) -> dict | None:
        rank = {key: i for i, (key, _) in enumerate(detail.rankings.get("semantic", []))}
        for hit, result in list(zip(hits, results, strict=True))[:MACRO_RESULTS]:
            if result["stale"]:
                continue
            found = self._document_macros(gen, hit.sop_id)
            if found:
                best = min(found, key=lambda m: rank.get(f"{hit.sop_id}#{m.anchor}", len(rank)))
                return {"sop_id": hit.sop_id, "anchor": best.anchor, "heading": best.heading, "text": best.text}
        return None

    def _document_macros(self, gen: Generation, sop_id: str) -> list[Macro]:
        """A document's macros, parsed once per generation."""
        key = (gen.name, sop_id)
        found = self._macros.get(key)
        if found is None:
            found = macros(gen.documents[sop_id]["body"])
            with self._lock:
                if len(self._macros) >= MACRO_CACHE:
                    self._macros.clear()
                self._macros[key] = found
        return found


def _query_error(problems: list[tuple[str, str]]) -> QueryError:
    """One QueryError listing every problem: the message joins them, details name each field."""
    message = "; ".join(f"{field}: {text}" for field, text in problems)
    details = {"field": problems[0][0], "problems": [{"field": f, "message": m} for f, m in problems]}
    return QueryError(message, details)

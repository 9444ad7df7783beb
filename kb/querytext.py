"""From what an agent typed or pasted to what the retrievers search: pure functions.

    pasted ticket -> NFKC -> clean_ticket -> correct_typos -> expand_abbreviations -> embedding text
                                                   -> + synonym expansions -> keyword query

- clean_ticket drops what carries no meaning for search: quoted earlier replies,
  greeting and sign-off lines and everything after a sign-off (signatures,
  "Sent from my iPhone"), lines that are mostly references, e-mail addresses,
  links, and long numbers and ids (order, ticket and transaction references).
  Short queries pass unchanged.
- correct_typos replaces a word that neither the library nor the embedding
  model's vocabulary knows by the most frequent library word within one edit
  (two for words of eight letters or more), counting a swap of two letters as
  one edit ("recieved" -> "received"). The model's vocabulary stands in for a
  dictionary, so that "suspended" does not become "suspected".
- The glossary (kb.glossary) writes out abbreviations and adds synonyms.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rapidfuzz import process
from rapidfuzz.distance import OSA

from kb.glossary import Glossary

SYNONYM_WEIGHT = 0.5  # weight of a synonym's terms against the words typed
MAX_REMEMBERED = 50_000  # corrections remembered per index generation
MIN_CORRECTED_LENGTH = 5  # shorter words are too often right, or ambiguous
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_TOKEN = re.compile(r"[A-Za-z0-9]+(?:['.&/-][A-Za-z0-9]+)*")
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)
_GREETING = re.compile(
    r"^(hi|hello|hey|dear|good (morning|afternoon|evening)|greetings)\b[\w ,.!-]{0,40}$", re.IGNORECASE
)
_SIGN_OFF = re.compile(
    r"^(thanks?( you)?( so much| in advance)?|thx|many thanks|regards|kind regards|best( regards| wishes)?|cheers|"
    r"sincerely|yours( truly| sincerely)?|br|sent from my \w+( \w+)?|get outlook for \w+)[ ,.!]*$",
    re.IGNORECASE,
)
_REPLY_HEADER = re.compile(r"^(on .{4,80} wrote:|-{2,} ?original message ?-{2,}|from: .+)$", re.IGNORECASE)


def _is_long_id(token: str) -> bool:
    """Five or more digits in one token: an order, ticket, transaction or phone number, a uuid."""
    return sum(c.isdigit() for c in token) >= 5


def _is_reference_line(line: str) -> bool:
    """A line that is mostly ids, such as "Order #ORD-2231-88812" or "Ticket 4471123 / account 9981273"."""
    tokens = line.split()
    ids = sum(1 for t in tokens if _is_long_id(t))
    return ids > 0 and len(tokens) - ids <= 4


def clean_ticket(text: str) -> str:
    """Strip a pasted ticket down to the customer's words (see the module docstring)."""
    kept: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(">") or _REPLY_HEADER.match(line):
            if kept:
                break  # the rest is an earlier message
            continue
        if _SIGN_OFF.match(line):
            if kept:
                break
            continue
        if _GREETING.match(line) and len(line.split()) <= 4:
            continue
        if line and not _is_reference_line(line):
            kept.append(line)
    cleaned = " ".join(kept) if kept else text.strip()
    cleaned = _URL.sub(" ", cleaned)
    cleaned = _EMAIL.sub(" ", cleaned)
    cleaned = re.sub(r"\S+", lambda m: " " if _is_long_id(m.group(0)) else m.group(0), cleaned)
    return re.sub(r"\s+", " ", cleaned).strip()


def vocabulary(texts: Iterable[str]) -> dict[str, int]:
    """Count the lowercase words of the library's text (the words typos are corrected to)."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(w for w in _WORD.findall(unicodedata.normalize("NFKC", text).lower()) if len(w) >= 3)
    return dict(counts)


def _max_edits(word: str) -> int:
    return 1 if len(word) < 8 else 2


@dataclass
class QueryRewriter:
    """Turns a query into the embedding text and the weighted keyword texts, for one index generation."""

    glossary: Glossary
    words: dict[str, int]  # the library's words and how often each is used
    analyze: Callable[[str], list[tuple[int, int, str]]]
    dictionary: frozenset[str] = frozenset()  # further words known to be spelled right

    def __post_init__(self) -> None:
        self._vocab = list(self.words)
        self._corrections: dict[str, str | None] = {}
        self._groups = [(group, [self._stems(term) for term in group]) for group in self.glossary.synonyms]

    def _stems(self, text: str) -> tuple[str, ...]:
        return tuple(term for _, _, term in self.analyze(text))

    def correction(self, word: str) -> str | None:
        """The library word closest to an unknown word, or None if the word is known or nothing is close."""
        lower = word.lower()
        if (
            len(lower) < MIN_CORRECTED_LENGTH
            or not lower.isalpha()
            or lower in self.words
            or lower in self.dictionary
            or lower in self.glossary.abbreviations
        ):
            return None
        if lower not in self._corrections:
            limit = _max_edits(lower)
            found = process.extract(lower, self._vocab, scorer=OSA.distance, score_cutoff=limit, limit=20)
            best = min(found, key=lambda item: (item[1], -self.words[item[0]], item[0]), default=None)
            if len(self._corrections) >= MAX_REMEMBERED:
                self._corrections.clear()  # bounded: queries are open input
            self._corrections[lower] = best[0] if best else None
        return self._corrections[lower]

    def correct_typos(self, text: str) -> str:
        """Replace each unknown word by its correction."""
        return _TOKEN.sub(lambda m: self.correction(m.group(0)) or m.group(0), text)

    def expand_abbreviations(self, text: str) -> str:
        """Write out every glossary abbreviation (whole words, any case)."""
        table = self.glossary.abbreviations
        return _TOKEN.sub(lambda m: table.get(m.group(0).lower(), m.group(0)), text)

    def synonyms(self, text: str) -> list[str]:
        """Glossary terms that mean the same as a term of text and are not already in it."""
        stems = self._stems(text)
        present = set(stems)
        found: list[str] = []
        for group, member_stems in self._groups:
            if any(m and _contains(stems, m) for m in member_stems):
                found.extend(t for t, m in zip(group, member_stems, strict=True) if m and not set(m) <= present)
        return list(dict.fromkeys(found))

    def prepare(self, query: str) -> PreparedQuery:
        """NFKC-normalise, clean, correct and expand a (PAN-free) query.

        NFKC makes full-width and compatibility forms (``ｒｅｆｕｎｄ``, ``ﬁle``, ``ⓡⓔⓕⓤⓝⓓ``) the plain words the
        library uses, for both retrievers. The keyword side also keeps each abbreviation as typed (documents
        use "3DS" and "KYC" too).
        """
        corrected = self.correct_typos(clean_ticket(unicodedata.normalize("NFKC", query)))
        text = self.expand_abbreviations(corrected)
        short = [m.group(0) for m in _TOKEN.finditer(corrected) if m.group(0).lower() in self.glossary.abbreviations]
        expansions = [(term, 1.0) for term in dict.fromkeys(short)]
        expansions += [(term, SYNONYM_WEIGHT) for term in self.synonyms(text)]
        return PreparedQuery(text, tuple(expansions))


def _contains(sequence: tuple[str, ...], part: tuple[str, ...]) -> bool:
    n = len(part)
    return any(sequence[i : i + n] == part for i in range(len(sequence) - n + 1))


@dataclass(frozen=True)
class PreparedQuery:
    """What the retrievers search: the rewritten text and extra weighted keyword texts."""

    text: str
    expansions: tuple[tuple[str, float], ...] = ()

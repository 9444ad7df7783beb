"""The payments glossary: abbreviations and synonyms, in sops/glossary.yaml.

    abbreviations:
      cb: chargeback            # "CB 13.1 evidence" is read as "chargeback 13.1 evidence"
    synonyms:
      - [chargeback, bank dispute]   # any one of them also finds the others

Abbreviations are whole words, matched case-insensitively, and are written out
in the query that both retrievers see (the embedding model does not know "cx").
Synonym groups only widen keyword queries: a query that names one member also
searches for the others, at a lower weight than the words typed. Terms are
plain words or short phrases; there are no patterns and no code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from kb import yamlio
from kb.errors import Problem
from kb.files import read_text

FILE_NAME = "glossary.yaml"
_TERM = re.compile(r"^[a-z0-9][a-z0-9 '&./-]*$")
MAX_TERM_WORDS = 4


@dataclass(frozen=True)
class Glossary:
    """Abbreviations (short form -> long form) and synonym groups, all lowercase."""

    abbreviations: dict[str, str] = field(default_factory=dict)
    synonyms: tuple[tuple[str, ...], ...] = ()

    def to_dict(self) -> dict:
        """Return the glossary as plain data."""
        return {"abbreviations": dict(self.abbreviations), "synonyms": [list(g) for g in self.synonyms]}

    @classmethod
    def from_dict(cls, data: dict) -> Glossary:
        """Rebuild a glossary from :meth:`to_dict` output."""
        return cls(dict(data.get("abbreviations", {})), tuple(tuple(g) for g in data.get("synonyms", [])))


def _term_problem(term: object) -> str | None:
    if not isinstance(term, str) or not term.strip():
        return "must be non-empty text"
    text = term.strip().lower()
    if not _TERM.match(text):
        return f"{term!r} may hold only letters, digits, spaces and ' & . / -"
    if len(text.split()) > MAX_TERM_WORDS:
        return f"{term!r} has more than {MAX_TERM_WORDS} words"
    return None


def parse_glossary(text: str, name: str = FILE_NAME) -> tuple[Glossary, list[Problem]]:
    """Parse glossary.yaml; return the glossary and every problem with its line."""
    try:
        data, root = yamlio.parse(text)
    except yamlio.YAMLProblem as error:
        return Glossary(), [error.to_problem(name)]
    if not isinstance(data, dict):
        return Glossary(), [Problem(name, 1, "must be a mapping with 'abbreviations' and 'synonyms'")]
    problems: list[Problem] = []
    nodes = {k.value: v for k, v in root.value}
    unknown = set(data) - {"abbreviations", "synonyms"}
    for key in sorted(unknown, key=str):
        problems.append(Problem(name, 1, f"unknown field {key!r}", field=str(key)))

    abbreviations: dict[str, str] = {}
    raw_abbr = data.get("abbreviations") or {}
    if not isinstance(raw_abbr, dict):
        problems.append(Problem(name, nodes["abbreviations"].start_mark.line + 1, "must be a mapping", "abbreviations"))
        raw_abbr = {}
    abbr_lines = {}
    if raw_abbr:
        abbr_lines = {str(k.value).lower(): k.start_mark.line + 1 for k, _ in nodes["abbreviations"].value}
    for short, long in raw_abbr.items():
        key = str(short).lower()
        line = abbr_lines.get(key, 1)
        problem = _term_problem(str(short)) or (None if " " not in key else "an abbreviation is one word")
        problem = problem or _term_problem(long)
        if problem:
            problems.append(Problem(name, line, problem, field=f"abbreviations.{short}"))
            continue
        if key in abbreviations:
            problems.append(Problem(name, line, f"{short!r} is listed twice", field=f"abbreviations.{short}"))
            continue
        abbreviations[key] = str(long).strip().lower()

    groups: list[tuple[str, ...]] = []
    raw_groups = data.get("synonyms") or []
    if not isinstance(raw_groups, list):
        problems.append(Problem(name, nodes["synonyms"].start_mark.line + 1, "must be a list of lists", "synonyms"))
        raw_groups = []
    group_nodes = nodes["synonyms"].value if raw_groups else []
    for number, (group, node) in enumerate(zip(raw_groups, group_nodes, strict=True), start=1):
        line = node.start_mark.line + 1
        where = f"synonyms[{number}]"
        if not isinstance(group, list) or len(group) < 2:
            problems.append(Problem(name, line, "a synonym group lists two or more terms", field=where))
            continue
        bad = [p for p in (_term_problem(t) for t in group) if p]
        if bad:
            problems.append(Problem(name, line, bad[0], field=where))
            continue
        groups.append(tuple(dict.fromkeys(str(t).strip().lower() for t in group)))
    return Glossary(abbreviations, tuple(groups)), problems


def load_glossary(content_dir: Path) -> tuple[Glossary, list[Problem]]:
    """Load glossary.yaml from the content folder; an absent file gives an empty glossary."""
    path = content_dir / FILE_NAME
    if not path.exists():
        return Glossary(), []
    text, problems = read_text(path, FILE_NAME, yamlio.MAX_YAML_CHARS)
    if text is None:
        return Glossary(), problems
    return parse_glossary(text, FILE_NAME)

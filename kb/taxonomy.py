"""Issue categories: the two-level ticket taxonomy in sops/categories.yaml.

categories:
  - id: payments
    name: Payments and charges
    description: One line.
    children:
      - id: payments/duplicate-charge
        name: Duplicate charge
        description: One line.
        examples: ["i was charged twice", ...]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from kb import yamlio
from kb.errors import Problem
from kb.files import read_text

FILE_NAME = "categories.yaml"
_TOP_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MIN_EXAMPLES = 8  # phrasings per category in customers' words: the taxonomy ranking compares a query with them
MAX_EXAMPLES = 40


@dataclass(frozen=True)
class Category:
    """One category of the taxonomy; parent is None for a top-level group."""

    id: str
    name: str
    description: str
    parent: str | None = None
    examples: tuple[str, ...] = ()

    @property
    def search_texts(self) -> tuple[str, ...]:
        """What a ticket in this category may say: its name and description, then each example phrasing."""
        return (f"{self.name}. {self.description}", *self.examples)

    def to_dict(self) -> dict:
        """Return the category as plain data."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "parent": self.parent,
            "examples": list(self.examples),
        }


def _line_of(node: yaml.Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 1


def parse_taxonomy(text: str, name: str = FILE_NAME) -> tuple[dict[str, Category], list[Problem]]:
    """Parse the taxonomy file; return categories by id (groups and children) and every problem."""
    try:
        data, root = yamlio.parse(text)
    except yamlio.YAMLProblem as error:
        return {}, [error.to_problem(name)]
    if not isinstance(data, dict) or not isinstance(data.get("categories"), list):
        return {}, [Problem(name, 1, "must be a mapping with a 'categories' list", field="categories")]
    nodes = dict((k.value, v) for k, v in root.value)["categories"].value
    categories: dict[str, Category] = {}
    problems: list[Problem] = []

    def add(item: object, node: yaml.Node, parent: str | None) -> None:
        line = _line_of(node)
        if not isinstance(item, dict):
            problems.append(Problem(name, line, "each category must be a mapping"))
            return
        cid = item.get("id")
        for key in ("id", "name", "description"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                problems.append(Problem(name, line, "required text is missing", field=key))
        if not isinstance(cid, str):
            return
        expected_prefix = f"{parent}/" if parent else ""
        slug = cid[len(expected_prefix) :] if cid.startswith(expected_prefix) else None
        if slug is None or not _TOP_ID.match(slug):
            shape = f"{parent}/<slug>" if parent else "<slug>"
            problems.append(Problem(name, line, f"{cid!r} must look like {shape} with [a-z0-9-]", field="id"))
            return
        if cid in categories:
            problems.append(Problem(name, line, f"duplicate category id {cid!r}", field="id"))
            return
        examples = item.get("examples", [])
        if not isinstance(examples, list) or not all(isinstance(e, str) for e in examples):
            problems.append(Problem(name, line, "must be a list of text", field="examples"))
            examples = []
        if parent is not None and not MIN_EXAMPLES <= len(examples) <= MAX_EXAMPLES:
            problems.append(
                Problem(
                    name,
                    line,
                    f"has {len(examples)} example phrasings; give {MIN_EXAMPLES} to {MAX_EXAMPLES} in customers' words",
                    field="examples",
                    severity="warning",
                )
            )
        categories[cid] = Category(
            cid, str(item.get("name", "")), str(item.get("description", "")), parent, tuple(examples)
        )
        children = item.get("children", [])
        if parent is None and children:
            child_nodes = dict((k.value, v) for k, v in node.value).get("children")
            if not isinstance(children, list):
                problems.append(Problem(name, line, "must be a list", field="children"))
                return
            for child, child_node in zip(children, child_nodes.value, strict=True):
                add(child, child_node, cid)
        elif parent is not None and children:
            problems.append(
                Problem(name, line, "the taxonomy has two levels: a child cannot have children", field="children")
            )

    for item, node in zip(data["categories"], nodes, strict=True):
        add(item, node, None)
    return categories, problems


def load_taxonomy(content_dir: Path) -> tuple[dict[str, Category], list[Problem]]:
    """Load categories.yaml from the content folder; an absent file gives an empty taxonomy."""
    path = content_dir / FILE_NAME
    if not path.exists():
        return {}, []
    text, problems = read_text(path, FILE_NAME, yamlio.MAX_YAML_CHARS)
    if text is None:
        return {}, problems
    return parse_taxonomy(text, FILE_NAME)

"""Reading kb's YAML (front matter, categories.yaml, values.yaml, glossary.yaml) within bounds.

Every YAML text goes through :func:`parse`: libyaml's parser (when PyYAML has
it) feeds a composer that refuses anchors and aliases as soon as it meets one,
before anything is built (so an alias bomb of a few hundred bytes costs
microseconds), refuses merge keys and nesting deeper than :data:`MAX_DEPTH`,
and a constructor that refuses duplicate keys. Every failure, including the
ValueError libyaml's timestamp constructor raises for ``2026-13-45``, is one
:class:`YAMLProblem` (a ``yaml.YAMLError``) with its line and field.
"""

from __future__ import annotations

import re

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode
from yaml.resolver import Resolver

from kb.errors import Problem

MAX_DEPTH = 32  # collections inside collections; kb's files need 5
MAX_YAML_CHARS = 1 << 20  # categories.yaml, values.yaml and glossary.yaml; front matter has its own 16 KB cap
MAX_NUMBER_CHARS = 32  # an integer written with more characters is refused before it is built
MAX_INTEGER = 2**63
MERGE_TAG = "tag:yaml.org,2002:merge"
_KEY_LINE = re.compile(r"^(\s*)(?:-\s+)?([^\s#'\"][^:#]*?|'[^']*'|\"[^\"]*\")\s*:(?:\s|$)")

if yaml.__with_libyaml__:
    from yaml.cyaml import CParser as _Parser  # about ten times faster than the pure-Python parser
else:  # pragma: no cover - PyYAML built without libyaml
    from yaml.loader import Parser, Reader, Scanner

    class _Parser(Reader, Scanner, Parser):  # type: ignore[no-redef]
        def __init__(self, stream: str):
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)


class YAMLProblem(yaml.YAMLError):
    """A YAML text kb refuses: malformed, an anchor, an alias, a duplicate key, a value that cannot be built."""

    def __init__(self, problem: str, line: int | None = None, field: str | None = None):
        super().__init__(problem)
        self.problem = problem
        self.line = line  # 1-based line within the text, None when unknown
        self.field = field  # dotted path of the key the line belongs to (front matter: the field)

    def to_problem(self, name: str, prefix: str = "malformed YAML") -> Problem:
        """The refusal as a Problem of the file name: its line (1 when unknown), field and reason."""
        return Problem(name, self.line or 1, f"{prefix}: {self.problem}", field=self.field)


def _line(node_or_event: object) -> int | None:
    mark = getattr(node_or_event, "start_mark", None)
    return mark.line + 1 if mark is not None else None


class _Loader(Composer, _Parser, SafeConstructor, Resolver):
    """libyaml's event parser, PyYAML's composer and safe constructor, with kb's refusals."""

    def __init__(self, text: str):
        _Parser.__init__(self, text)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self.depth = 0

    def compose_node(self, parent: Node | None, index: object) -> Node:
        """Compose one node, refusing aliases, anchors, merge keys and deep nesting before building anything."""
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            raise YAMLProblem(f"aliases (*{event.anchor}) are not allowed", _line(event))
        if event.anchor is not None:
            raise YAMLProblem(f"anchors (&{event.anchor}) are not allowed", _line(event))
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise YAMLProblem(f"nested deeper than {MAX_DEPTH} levels", _line(event))
        try:
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        if isinstance(node, ScalarNode) and node.tag == MERGE_TAG:
            raise YAMLProblem("merge keys (<<) are not allowed", _line(node))
        return node

    def construct_object(self, node: Node, deep: bool = False) -> object:
        """Build one value; a value that cannot be built is a YAMLProblem on its line."""
        try:
            return super().construct_object(node, deep)
        except YAMLProblem:
            raise
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            line = mark.line + 1 if mark is not None else _line(node)
            raise YAMLProblem(str(getattr(error, "problem", None) or error)[:200], line) from None
        except (ValueError, OverflowError, TypeError, RecursionError) as error:
            kind = {"timestamp": "date"}.get(node.tag.rsplit(":", 1)[-1], node.tag.rsplit(":", 1)[-1])
            raise YAMLProblem(f"not a valid {kind} ({str(error)[:120]})", _line(node)) from None

    def construct_yaml_int(self, node: ScalarNode) -> int:
        """Build an integer, refusing one too long to write or larger than 2**63 (hex or base 60 included)."""
        if len(node.value) > MAX_NUMBER_CHARS:
            raise YAMLProblem(
                f"a number written with more than {MAX_NUMBER_CHARS} characters is not allowed", _line(node)
            )
        value = super().construct_yaml_int(node)
        if abs(value) >= MAX_INTEGER:
            raise YAMLProblem("a number larger than 2**63 is not allowed", _line(node))
        return value

    def construct_mapping(self, node: Node, deep: bool = False) -> dict:
        """Build a mapping, refusing a key that appears twice."""
        if not isinstance(node, MappingNode):
            raise YAMLProblem(f"expected a mapping, found {node.id}", _line(node))
        mapping: dict = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                seen = key in mapping
            except TypeError:
                raise YAMLProblem(
                    "a mapping key must be a plain value, not a list or mapping", _line(key_node)
                ) from None
            if seen:
                shown = key_node.value if isinstance(key_node, ScalarNode) else key
                raise YAMLProblem(f"duplicate key {str(shown)[:80]!r}", _line(key_node))
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def key_path(text: str, line: int | None) -> str | None:
    """The dotted path of mapping keys that a 1-based line of a block-style YAML text belongs to."""
    if not line:
        return None
    lines = text.splitlines()[:line]
    path: list[tuple[int, str]] = []
    for raw in lines:
        match = _KEY_LINE.match(raw)
        if not match:
            continue
        indent = match.start(2)  # a key after "- " sits at the column of its text
        while path and path[-1][0] >= indent:
            path.pop()
        path.append((indent, match.group(2).strip("'\"")))
    return ".".join(key for _, key in path) or None


def parse(text: str, max_chars: int = MAX_YAML_CHARS) -> tuple[object, Node | None]:
    """(data, root node) of one YAML document, every refusal a YAMLProblem with line and field.

    Args:
        text: the YAML text.
        max_chars: the longest text accepted.

    Raises:
        YAMLProblem: malformed YAML, an anchor or alias, a duplicate key, a value that cannot be built.
    """
    if len(text) > max_chars:
        raise YAMLProblem(f"longer than {max_chars:,} characters", 1)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except YAMLProblem as error:
        error.field = error.field or key_path(text, error.line)
        raise
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        character = error.character if isinstance(error.character, int) else ord(error.character)
        raise YAMLProblem(f"{error.reason} (U+{character:04X})", line, key_path(text, line)) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise YAMLProblem(str(getattr(error, "problem", None) or error)[:200], line, key_path(text, line)) from None
    except (ValueError, OverflowError, TypeError, RecursionError) as error:
        raise YAMLProblem(f"cannot be read ({str(error)[:120]})") from None
    finally:
        loader.dispose()
    return data, node


def load(text: str) -> object:
    """The data of a YAML text (kb's safe loader, see :func:`parse`)."""
    return parse(text)[0]

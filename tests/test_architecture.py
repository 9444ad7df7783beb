"""The house rules that code can check: docs/architecture.md names every module, imports point one way,
and each mechanism (running git, atomic writes, file locks, redaction) has one home."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KB = ROOT / "kb"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
MODULES = sorted(p.relative_to(ROOT).as_posix() for p in KB.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports (absolute names; `from kb import x` counts as kb.x)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _module(path: str) -> str:
    return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


@pytest.mark.parametrize("module", [m for m in MODULES if not m.endswith("/__init__.py") or m == "kb/web/__init__.py"])
def test_architecture_names_every_module(module):
    assert module in _named(), f"docs/architecture.md does not name {module}"


def test_architecture_names_no_module_that_is_gone():
    assert _named() - set(MODULES) == set()


def _named() -> set[str]:
    """Module paths named on the page (kb/web/*.py style globs are not names)."""
    return set(re.findall(r"(?<![\w/])(kb/[a-z_/]+\.py)\b", ARCHITECTURE.read_text()))


# Layers, lowest first: a module may import its own layer and the layers below, never above.
LAYERS = [
    (
        "documents",
        {
            "kb.errors",
            "kb.files",
            "kb.redaction",
            "kb.yamlio",
            "kb.markdown",
            "kb.values",
            "kb.figures",
            "kb.disclosure",
            "kb.documents",
        },
    ),
    (
        "indexing and repository",
        {
            "kb.indexing",
            "kb.repository",
            "kb.remote",
            "kb.library",
            "kb.store",
            "kb.database",
            "kb.schema",
            "kb.accounts",
            "kb.audit",
            "kb.webhooks",
            "kb.webhook_urls",
            "kb.tickets",
            "kb.feedback",
            "kb.search_log",
        },
    ),
    (
        "search and workflow",
        {
            "kb.search",
            "kb.assist",
            "kb.workflow",
            "kb.publishing",
            "kb.draft_checks",
            "kb.published_drafts",
            "kb.watch",
            "kb.webhook_delivery",
            "kb.retrieval",
            "kb.conditions",
            "kb.administration",
            "kb.benchmark",
            "kb.bench_builds",
            "kb.bench_http",
            "kb.bench_publish",
            "kb.bench_queries",
            "kb.bench_record",
            "kb.loadtest",
            "kb.synthetic",
        },
    ),
    (
        "web and cli",
        {
            "kb.web",
            "kb.cli",
            "kb.cli_accounts",
            "kb.cli_webhooks",
            "kb.cli_tickets",
            "kb.cli_mcp",
            "kb.mcp_server",
            "kb.mcp_models",
            "kb.cli_bench",
        },
    ),
]


def _layer(name: str) -> int | None:
    for index, (_, members) in enumerate(LAYERS):
        if any(name == m or name.startswith(m + ".") for m in members):
            return index
    return None


@pytest.mark.parametrize("module", MODULES)
def test_imports_point_one_way(module):
    own = _layer(_module(module))
    if own is None:
        return  # a module outside the four layers (evaluation, beir, catalog, ...) is checked by what it imports
    above = [name for name in _imports(ROOT / module) if (_layer(name) or 0) > own]
    assert above == [], f"{module} ({LAYERS[own][0]}) imports from a higher layer: {above}"


@pytest.mark.parametrize("module", [m for m in MODULES if m.startswith("kb/indexing/")])
def test_nothing_in_indexing_imports_flask(module):
    assert not {n for n in _imports(ROOT / module) if n.split(".")[0] in ("flask", "werkzeug", "flask_limiter")}


# One home per mechanism: (what, how it shows in code, the only module allowed to use it).
MECHANISMS = [
    ("running processes", "subprocess", {"kb/repository.py", "kb/loadtest.py"}),
    ("file locks", "fcntl", {"kb/files.py"}),
]


@pytest.mark.parametrize(("what", "name", "homes"), MECHANISMS, ids=[m[0] for m in MECHANISMS])
def test_each_mechanism_has_one_home(what, name, homes):
    users = {m for m in MODULES if name in _imports(ROOT / m)}
    assert users <= homes, f"{what} belongs in {sorted(homes)}, also used in {sorted(users - homes)}"


def test_files_are_replaced_only_by_the_one_atomic_write():
    """os.replace means a hand-written atomic write; the ONNX export's staging folder switch is the one exception."""
    users = {m for m in MODULES if "os.replace(" in (ROOT / m).read_text()}
    assert users <= {"kb/files.py", "kb/indexing/query_encoder.py"}, sorted(users)


def test_card_numbers_are_masked_by_the_one_redaction_module():
    """Only kb/redaction.py knows how a card number looks: nobody else runs the Luhn check."""
    users = {m for m in MODULES if "def luhn" in (ROOT / m).read_text()}
    assert users == {"kb/redaction.py"}

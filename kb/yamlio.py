"""YAML reading for every kb file: safe loading only, through libyaml when PyYAML has it (about ten times faster)."""

from __future__ import annotations

import yaml

SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(text: str) -> object:
    """yaml.safe_load with the fastest safe loader."""
    return yaml.load(text, Loader=SafeLoader)  # noqa: S506 - a safe loader


def compose(text: str) -> yaml.Node | None:
    """The node tree of text (for line numbers), with the fastest safe loader."""
    return yaml.compose(text, Loader=SafeLoader)

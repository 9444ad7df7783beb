"""Filters on search results (business line, category, type), shared by every retrieval engine."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Filters:
    """Restrictions on results: each None means no restriction."""

    business_line: str | None = None
    category: str | None = None
    type: str | None = None

    def matches(self, meta: dict) -> bool:
        """Whether a section's document metadata passes the filters."""
        if self.business_line and meta["business_line"] not in (self.business_line, "all"):
            return False
        if self.type and meta["type"] != self.type:
            return False
        if self.category:
            cats = meta["categories"]
            if not any(c == self.category or c.startswith(self.category + "/") for c in cats):
                return False
        return True

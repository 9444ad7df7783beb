"""What kb's MCP tools answer: pydantic models whose JSON schemas are the tools' output schemas.

Each model is built from what the Searcher and History already return (kb.results.SearchResults, the document
and taxonomy dictionaries of kb.catalog and kb.history); nothing here reads an index or a file.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from kb.results import SearchResults
from kb.snippets import plain_text


class Citation(BaseModel):
    """One SOP found, cited by its best section."""

    sop_id: str = Field(description="The SOP's id; get_sop reads it whole.")
    title: str
    type: str = Field(description="sop or policy.")
    business_line: str
    categories: list[str] = Field(description="The ids of the ticket categories it serves.")
    heading: str = Field(description="The heading of the cited section.")
    anchor: str = Field(description="The cited section's anchor on the SOP's page.")
    revision: str | None = Field(description="The git commit of the cited text.")
    url: str = Field(description="The cited section's page, relative to kb's web address.")
    snippet: str = Field(description="Plain text of the cited section around the words that matched.")
    score: float = Field(description="The ranking score (higher is better; comparable within one answer only).")


class SearchAnswer(BaseModel):
    """The SOPs that answer a query, best first."""

    query: str = Field(description="The query as searched: card numbers masked.")
    mode: str
    degraded: bool = Field(description="True when the meaning half failed and only keywords ranked the results.")
    results: list[Citation]

    @classmethod
    def from_results(cls, results: SearchResults) -> SearchAnswer:
        """The answer to one search."""
        return cls(
            query=results.query,
            mode=results.mode,
            degraded=results.degraded,
            results=[
                Citation(
                    sop_id=hit.sop_id,
                    title=hit.title,
                    type=hit.type,
                    business_line=hit.business_line,
                    categories=list(hit.categories),
                    heading=hit.heading,
                    anchor=hit.anchor,
                    revision=hit.revision,
                    url=hit.url,
                    snippet=plain_text(hit.snippet),
                    score=round(hit.score, 6),
                )
                for hit in results.hits
            ],
        )


class Heading(BaseModel):
    """One section of an SOP."""

    heading: str
    anchor: str = Field(description="The section's anchor: cite it with the SOP's id and revision.")
    level: int = Field(description="2 for a section, 3 for a subsection.")


class Sop(BaseModel):
    """One SOP or policy, at one revision."""

    id: str
    revision: str = Field(description="The git commit of this text.")
    url: str = Field(description="The SOP's page, relative to kb's web address.")
    title: str | None = None
    type: str | None = None
    business_line: str | None = None
    categories: list[str] = Field(default_factory=list)
    owner: str | None = Field(default=None, description="The team that owns it.")
    status: str | None = Field(default=None, description="published or retired.")
    effective: str | None = Field(default=None, description="The date (YYYY-MM-DD) this revision applies from.")
    review_by: str | None = Field(default=None, description="When its owner must verify it again (YYYY-MM-DD).")
    tags: list[str] = Field(default_factory=list)
    sections: list[Heading]
    markdown: str = Field(description="The file as stored: YAML front matter, then the Markdown body.")
    problems: list[str] = Field(
        default_factory=list, description="For an old revision: why its front matter does not pass today's checks."
    )

    @classmethod
    def from_document(cls, document: dict, revision: bool = False) -> Sop:
        """From Searcher.document (the current revision) or History.document (revision=True: a given one)."""
        fields = {name: document.get(name) for name in ("title", "type", "business_line", "owner", "status")}
        dates = {name: document.get(name) for name in ("effective", "review_by")}
        url = f"/sops/{document['id']}" + (f"/revisions/{document['revision']}" if revision else "")
        return cls(
            id=document["id"],
            revision=document["revision"],
            url=url,
            **fields,
            **{name: str(value) if value is not None else None for name, value in dates.items()},
            categories=list(document.get("categories") or []),
            tags=list(document.get("tags") or []),
            sections=[Heading(**section) for section in document["sections"]],
            markdown=document["markdown"],
            problems=[
                f"{p['field']}: {p['message']}" if p.get("field") else p["message"]
                for p in document.get("problems", [])
            ],
        )


class DocumentRef(BaseModel):
    """An SOP serving a category."""

    id: str
    title: str
    type: str
    status: str


class Category(BaseModel):
    """One issue category."""

    id: str = Field(description="Its id: search_sops takes it as category.")
    name: str
    description: str
    documents: list[DocumentRef] = Field(description="The SOPs that serve it.")


class CategoryGroup(Category):
    """A group of categories (a category id without a slash); search_sops takes it too."""

    children: list[Category]


class Taxonomy(BaseModel):
    """The ticket taxonomy."""

    categories: list[CategoryGroup]
    uncovered: list[str] = Field(description="Categories no SOP serves yet.")

    @classmethod
    def from_taxonomy(cls, taxonomy: dict) -> Taxonomy:
        """From Searcher.taxonomy()."""

        def category(entry: dict) -> dict:
            keys = ("id", "name", "description", "documents")
            return {key: entry[key] for key in keys}

        groups = [
            CategoryGroup(**category(group), children=[Category(**category(c)) for c in group["children"]])
            for group in taxonomy["categories"]
        ]
        return cls(categories=groups, uncovered=list(taxonomy["uncovered"]))

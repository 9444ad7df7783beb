"""Reading the served generation: the document list, the taxonomy with its documents, one document."""

from __future__ import annotations

import re

from kb import markdown
from kb.errors import NotFoundError
from kb.indexing.generation import Generation

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
_SOP_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def list_documents(gen: Generation) -> list[dict]:
    """Metadata of every document in the generation, by id."""
    documents = gen.documents
    return [{key: documents[i][key] for key in METADATA_KEYS} for i in sorted(documents)]


def taxonomy(gen: Generation) -> dict:
    """The category tree, each category with the documents that serve it, and the uncovered categories."""
    serving: dict[str, list[dict]] = {}
    for record in sorted(gen.documents.values(), key=lambda r: r["title"].lower()):
        for category_id in record["categories"]:
            serving.setdefault(category_id, []).append(
                {"id": record["id"], "title": record["title"], "type": record["type"], "status": record["status"]}
            )
    groups = []
    for entry in gen.categories:
        entry = {**entry, "documents": serving.get(entry["id"], [])}
        if entry["parent"] is None:
            groups.append({**entry, "children": []})
        else:
            groups[-1]["children"].append(entry)
    uncovered = [c["id"] for c in gen.categories if c["parent"] is not None and c["id"] not in serving]
    return {"categories": groups, "uncovered": uncovered}


def category(gen: Generation, category_id: str) -> dict:
    """One category (or group) with its documents; a group lists its children.

    Raises:
        NotFoundError: no such category.
    """
    for group in taxonomy(gen)["categories"]:
        if group["id"] == category_id:
            return group
        for child in group["children"]:
            if child["id"] == category_id:
                return {**child, "group": {"id": group["id"], "name": group["name"]}}
    raise NotFoundError(f"no category with id {category_id!r}", {"field": "id"})


def document(gen: Generation, sop_id: str) -> dict:
    """A document's metadata, sections, Markdown and rendered HTML.

    Raises:
        NotFoundError: no such document.
    """
    if not isinstance(sop_id, str) or not _SOP_ID.match(sop_id) or sop_id not in gen.documents:
        raise NotFoundError(f"no SOP with id {sop_id!r}", {"field": "id"})
    record = gen.documents[sop_id]
    body = record["body"]
    sections = [
        {"heading": h.text, "anchor": h.anchor, "level": h.level} for h in markdown.headings(markdown.parse(body))
    ]
    meta = {key: record[key] for key in METADATA_KEYS}
    return {**meta, "sections": sections, "html": markdown.render_html(body), "markdown": record["text"]}

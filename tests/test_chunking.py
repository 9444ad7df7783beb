from kb.documents import parse_document
from kb.indexing.chunking import chunk_document
from tests.conftest import make_sop

BODY = """\
Intro before any heading.

## Purpose
Why this exists.

## Decision rules

### Refund window
Thirty days.

### Refund window
Again, a second heading with the same text.

## Customer macro
> Hello [first name].
"""


def sections():
    doc, problems = parse_document(make_sop("pay-x", "Refunds", BODY), "x.md")
    assert problems == []
    return chunk_document(doc)


def test_sections_split_at_h2_and_h3_with_unique_anchors():
    assert [s.anchor for s in sections()] == [
        "overview",
        "purpose",
        "refund-window",
        "refund-window-2",
        "customer-macro",
    ]


def test_heading_only_section_is_left_out_but_named_in_its_childrens_path():
    by_anchor = {s.anchor: s for s in sections()}
    assert "decision-rules" not in by_anchor
    assert by_anchor["refund-window"].heading_path == ("Refunds", "Decision rules", "Refund window")


def test_sections_know_their_sop_text_and_line():
    by_anchor = {s.anchor: s for s in sections()}
    purpose = by_anchor["purpose"]
    assert purpose.sop_id == "pay-x" and purpose.key == "pay-x#purpose"
    assert purpose.text == "Why this exists."
    assert purpose.line == 15  # body starts at line 13; "## Purpose" is its third line
    assert by_anchor["customer-macro"].text == "Hello [first name]."
    assert by_anchor["overview"].text == "Intro before any heading."


def test_embedding_text_carries_title_and_heading_path():
    by_anchor = {s.anchor: s for s in sections()}
    assert by_anchor["refund-window"].embedding_text == "Refunds > Decision rules > Refund window\nThirty days."


def test_content_hash_depends_only_on_embedded_text():
    first, again = sections(), sections()
    assert [s.content_hash for s in first] == [s.content_hash for s in again]
    assert len({s.content_hash for s in first}) == len(first)

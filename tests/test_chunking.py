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


RELATED = """\
## Purpose
Refunds for [card payments](/sops/pay-card), see also [the policy](/sops/policy-refunds).

## Related documents

- [Refund policy](/sops/policy-refunds)
- [Chargebacks](/sops/cb-incoming-chargeback)

## See also
- [Refund policy](/sops/policy-refunds): the thirty-day rule
"""


def test_a_section_of_nothing_but_links_is_marked_links_only():
    doc, problems = parse_document(make_sop("pay-x", "Refunds", RELATED), "x.md")
    assert problems == []
    by_anchor = {s.anchor: s for s in chunk_document(doc)}
    assert by_anchor["related-documents"].links_only is True
    assert by_anchor["related-documents"].text == "Refund policy\nChargebacks"  # still indexed, as before
    assert by_anchor["purpose"].links_only is False  # links within prose
    assert by_anchor["see-also"].links_only is False  # a link with words of its own
    assert by_anchor["related-documents"].to_dict()["links_only"] is True


def test_every_shipped_related_documents_section_is_links_only_and_nothing_else_is():
    from pathlib import Path

    from kb.library import load_library

    library = load_library(Path(__file__).resolve().parent.parent / "sops")
    flagged = {(s.sop_id, s.heading) for d in library.documents.values() for s in chunk_document(d) if s.links_only}
    related = {(i, "Related documents") for i, d in library.documents.items() if "## Related documents" in d.body}
    assert related and flagged == related

import pytest

from kb.markdown import is_safe_link, render_html, slugify


@pytest.mark.parametrize(
    "heading, slug",
    [
        ("Decision rules", "decision-rules"),
        ("Macro: Refund issued!", "macro-refund-issued"),
        ("3-D Secure (3DS)", "3-d-secure-3ds"),
        ("¿¿", "section"),
    ],
)
def test_slugify(heading, slug):
    assert slugify(heading) == slug


@pytest.mark.parametrize(
    "url, safe",
    [
        ("https://example.com", True),
        ("http://x", True),
        ("mailto:a@b.c", True),
        ("/sops/pay-x#purpose", True),
        ("other.md", True),
        ("javascript:alert(1)", False),
        ("JaVaScRiPt:alert(1)", False),
        ("java\tscript:alert(1)", False),
        ("data:text/html;base64,xx", False),
        ("vbscript:x", False),
    ],
)
def test_only_safe_link_schemes(url, safe):
    assert is_safe_link(url) is safe


def test_render_escapes_raw_html_and_drops_unsafe_links():
    html = render_html("## Title\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) <img src=x onerror=alert(1)>\n")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html
    assert "<img" not in html


def test_render_gives_headings_the_chunking_anchors_and_marks_external_links():
    html = render_html("## Purpose\n[a](https://example.com) [b](/sops/x)\n\n## Purpose\n")
    assert '<h2 id="purpose">' in html and '<h2 id="purpose-2">' in html
    assert 'href="https://example.com" rel="noopener noreferrer"' in html
    assert '<a href="/sops/x">' in html


def test_render_tables():
    assert "<table>" in render_html("## T\n| a | b |\n|---|---|\n| 1 | 2 |\n")

from collections import OrderedDict

import pytest

from kb import markdown
from kb.markdown import is_safe_link, parse, parse_bounded, render_html, slugify


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


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("a\n" + "[" * 1001, 1, "a run of 1,001 `[` characters is longer than 1,000"),
        ("a\n\n" + "*a " * 5001, 2, "more than 5,000 Markdown markup characters"),
        ("x\n" * 5001, 5000, "5,002 lines are more than 5,000"),
        ("- a\n" * 3001, 3000, "more than 3,000 list items and blockquote markers"),
        ("t\n|" + "a|" * 65 + "\n|" + "-|" * 65 + "\n", 1, "a table of 65 columns is wider than 64"),
        ("|a|b|\n|-|-|\n" + "x\n" * 5000, 5000, "5,003 lines are more than 5,000"),
        ("|" + "a|" * 60 + "\n|" + "-|" * 60 + "\n" + "x\n" * 200, 0, "tables of more than 5,000 cells in all"),
        ("> " * 19 + "a\n", 0, "blockquotes and lists nested deeper than 18 levels"),
        ("## h\n" * 301, 300, "301 headings are more than 300"),
    ],
)
def test_parse_bounded_refuses_text_over_a_limit_naming_the_line(text, line, message):
    tokens, refusals = parse_bounded(text)
    assert refusals and refusals[0].line == line and message in refusals[0].message, refusals


@pytest.mark.parametrize(
    "text",
    [
        "[" * 1000 + "a",
        "*a " * 2500,
        "x\n" * 4999,
        "- a\n" * 3000,
        "|" + "a|" * 64 + "\n|" + "-|" * 64 + "\n" + "x\n" * 70,
        "> " * 16 + "a\n",
        "## h\n" * 300,
    ],
)
def test_parse_bounded_accepts_text_at_each_limit(text):
    tokens, refusals = parse_bounded(text)
    assert refusals == [] and tokens[0].type != "code_block"


def test_a_refused_text_parses_as_one_escaped_code_block():
    text = "## Title\n<b>x</b>\n" + "[" * 2000
    assert [t.type for t in parse(text)] == ["code_block"]
    html = render_html(text)
    assert html.startswith("<pre><code>## Title\n&lt;b&gt;x&lt;/b&gt;") and "<h2" not in html


def test_render_html_is_remembered_by_the_hash_of_the_text(monkeypatch):
    calls = []
    real = markdown._render
    monkeypatch.setattr(markdown, "_render", lambda text: calls.append(text) or real(text))
    text = "## Cached\nOnce.\n"
    first, second = render_html(text), render_html(text)
    assert first is second and len(calls) <= 1
    assert render_html(text + "x") != first and len(calls) == len(set(calls))


def test_render_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(markdown, "_RENDERED", OrderedDict())
    monkeypatch.setattr(markdown, "_rendered_chars", 0)
    monkeypatch.setattr(markdown, "_RENDERED_MAX_ENTRIES", 2)
    for n in range(5):
        render_html(f"## Title {n}\n")
    assert len(markdown._RENDERED) == 2
    assert markdown._rendered_chars == sum(len(v) for v in markdown._RENDERED.values())


def test_page_views_of_a_published_sop_render_it_once(client, monkeypatch):
    calls = []
    real = markdown._render
    monkeypatch.setattr(markdown, "_render", lambda text: calls.append(text) or real(text))
    pages = [client.get("/api/v1/sops/pay-duplicate-charge") for _ in range(3)]
    assert all(p.status_code == 200 for p in pages)
    assert len({p.get_json()["html"] for p in pages}) == 1 and len(calls) <= 1


@pytest.mark.parametrize(
    "text, expected",
    [
        ("- [Refund policy](/sops/policy-refunds)\n- [Chargebacks](/sops/cb-incoming-chargeback)", True),
        ("* [One](/sops/one)\n\n1. [Two](https://example.com/two).", True),
        ("[Refund policy](/sops/policy-refunds), [Chargebacks](/sops/cb-x)", True),
        ("- [Refund policy](/sops/policy-refunds): when to refund in full", False),
        ("See [Refund policy](/sops/policy-refunds).", False),
        ("- Refund policy", False),
        ("```\n[x](/sops/x)\n```", False),
        ("", False),
    ],
)
def test_links_only_is_true_for_a_body_of_nothing_but_links(text, expected):
    assert markdown.links_only(markdown.parse(text)) is expected

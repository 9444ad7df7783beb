"""The hostile-input suite: one parametrised table per class of attack or fault (issue 9).

Each section below belongs to one class; every case names what it sends and what must come back.
"""

from __future__ import annotations

import pytest

# == front matter and Markdown: parsing within bounds ==================================================

_BODY = "## Purpose\nText.\n"  # this section's imports follow it, inside the section

import subprocess as _subprocess  # noqa: E402
import sys as _sys  # noqa: E402
import time as _time  # noqa: E402
import tracemalloc as _tracemalloc  # noqa: E402

from kb import markdown as _markdown  # noqa: E402
from kb.documents import MAX_DOCUMENT_CHARS as _MAX_DOCUMENT_CHARS  # noqa: E402
from kb.documents import parse_document as _parse_document  # noqa: E402
from tests.conftest import ROOT as _ROOT  # noqa: E402
from tests.conftest import fastest_of as _fastest_of  # noqa: E402
from tests.conftest import make_sop as _make_sop  # noqa: E402


def _billion_laughs() -> dict:
    """The alias bomb: nine levels of nine aliases (9**9 strings if built), a few hundred bytes."""
    fields = {"lol_a": "&a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"}
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        fields[f"lol_{name}"] = f"&{name} [" + ", ".join([f"*{previous}"] * 9) + "]"
    return {**fields, "laughs": "*i"}


def _padded(size: int) -> dict:
    """Front matter of about size bytes: one long list of tags."""
    return {"tags": "[" + ", ".join(f"tag{i:05d}" for i in range(size // 10)) + "]"}


# name, front-matter fields (overriding make_sop's), body, expected (line, field, part of the message)
_FRONT_MATTER_CASES = [
    ("billion laughs", _billion_laughs(), _BODY, (12, "lol_a", "anchors (&a) are not allowed")),
    ("anchor alone", {"title": "&t Refunds"}, _BODY, (3, "title", "anchors (&t) are not allowed")),
    ("alias alone", {"title": "*t"}, _BODY, (3, "title", "aliases (*t) are not allowed")),
    ("merge key", {"owner": "{<<: {a: b}}"}, _BODY, (7, "owner", "merge keys (<<) are not allowed")),
    ("duplicate key", {"status": "published\nstatus: retired"}, _BODY, (9, "status", "duplicate key")),
    ("month 13", {"effective": "2026-13-45"}, _BODY, (9, "effective", "not a valid date (month must be in 1..12)")),
    ("day 31 of June", {"review_by": "2027-06-31"}, _BODY, (10, "review_by", "day is out of range for month")),
    ("datetime", {"effective": "2026-09-01 10:00:00"}, _BODY, (9, "effective", "a date and time is not a date")),
    ("hour 25", {"effective": "2026-09-01 25:00:00"}, _BODY, (9, "effective", "hour must be in 0..23")),
    ("17 KB front matter", _padded(17 * 1024), _BODY, (11, "tags", "the limit is 16,384 (16 KB)")),
    ("title a list", {"title": "[a, b]"}, _BODY, (3, "title", "must be text, got list")),
    ("owner a mapping", {"owner": "{team: x}"}, _BODY, (7, "owner", "must be text, got dict")),
    ("title a number", {"title": "12"}, _BODY, (3, "title", "must be text, got int")),
    ("status a boolean", {"status": "yes"}, _BODY, (8, "status", "True is not one of published, retired")),
    ("type a list", {"type": "[sop]"}, _BODY, (4, "type", "a list is not one of sop, policy")),
    ("categories a mapping", {"categories": "{a: b}"}, _BODY, (6, "categories", "must be a list of non-empty text")),
    ("nested tags", {"tags": "[[a, [b]]]"}, _BODY, (11, "tags", "must be a list of non-empty text")),
    ("huge integer", {"effective": "9" * 5000}, _BODY, (9, "effective", "more than 32 characters")),
    ("huge hex integer", {"effective": "0x" + "f" * 30}, _BODY, (9, "effective", "larger than 2**63")),
    ("deep nesting", {"tags": "[" * 40 + "]" * 40}, _BODY, (11, "tags", "nested deeper than 32 levels")),
    ("python tag", {"owner": "!!python/object/apply:os.system [id]"}, _BODY, (7, "owner", "constructor")),
    ("unhashable key", {"owner": "{[a]: b}"}, _BODY, (7, "owner", "a mapping key must be a plain value")),
    ("bidi override title", {"title": "'Refunds \u202egnp.exe'"}, _BODY, (3, "title", "control character (U+202E)")),
    ("bidi isolate title", {"title": "'Refunds \u2067x'"}, _BODY, (3, "title", "(U+2067)")),
    ("arabic mark title", {"title": "'Refunds \u061c'"}, _BODY, (3, "title", "(U+061C)")),
    ("bidi heading", {}, "## Purpose\nText.\n\n## Refunds \u202dx\n", (16, "heading", "(U+202D)")),
    ("bidi entity heading", {}, "## Purpose\n\n## Refunds &#x202E;x\n", (15, "heading", "(U+202E)")),
    ("NUL in the body", {}, "## Purpose\nText\x00.\n", (14, None, "a NUL character (U+0000)")),
    ("NUL in the front matter", {"owner": "a\x00b"}, _BODY, (7, None, "a NUL character (U+0000)")),
    ("lone surrogate", {}, "## Purpose\nText \ud800.\n", (14, None, "a lone surrogate (U+D800)")),
    ("document too long", {}, "## Purpose\n" + "word " * 41_000, (14, None, "longer than 200,000 characters")),
]


@pytest.mark.parametrize(
    "fields, body, expected", [c[1:] for c in _FRONT_MATTER_CASES], ids=[c[0] for c in _FRONT_MATTER_CASES]
)
def test_hostile_front_matter_is_one_problem_with_line_and_field(fields, body, expected):
    fields = {"title": "Refunds", **fields}
    text = _make_sop("pay-x", fields.pop("title"), body, **fields)
    _tracemalloc.start()
    started = _time.perf_counter()
    document, problems = _parse_document(text, "all/pay-x.md")
    elapsed = _time.perf_counter() - started
    peak = _tracemalloc.get_traced_memory()[1]
    _tracemalloc.stop()
    line, field, message = expected
    assert document is None
    assert [(p.line, p.field) for p in problems if message in p.message] == [(line, field)], [str(p) for p in problems]
    assert all(p.file == "all/pay-x.md" and len(p.message) < 300 for p in problems)
    assert elapsed < 1.0 and peak < 20 * 2**20  # DoS guard: no alias expansion, no huge message


def test_hostile_alias_bomb_in_a_fresh_worker_stays_small():
    """A fresh interpreter parses the bomb: its peak RSS stays at its resting RSS (the bomb grew a worker to 2 GB)."""
    script = (
        "import resource\n"
        "from kb.documents import parse_document\n"
        "from tests.test_hostile import _BODY, _billion_laughs, _make_sop\n"
        "text = _make_sop('pay-x', 'T', _BODY, **_billion_laughs())\n"
        "rest = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "document, problems = parse_document(text, 'x.md')\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(len(text), peak - rest, len(problems), problems[0].message)\n"
    )
    run = _subprocess.run([_sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=_ROOT)
    size, grown_kb, count, message = run.stdout.split(" ", 3)
    assert int(size) < 1000 and count == "1" and "anchors (&a) are not allowed" in message
    assert int(grown_kb) < 10 * 1024  # KB of RSS


def _fill(unit: str, n: int = _MAX_DOCUMENT_CHARS - 400) -> str:
    return (unit * (n // len(unit) + 1))[:n]


# name, Markdown body (of the allowed document size), expected: "rendered" or part of the refusal
_MARKDOWN_CASES = [
    ("run of [", _fill("["), "`[` characters is longer than 1,000"),
    ("run of ![", _fill("!["), "more than 5,000 Markdown markup characters"),
    ("run of *", "## A\n" + _fill("*"), "`*` characters is longer than 1,000"),
    ("run of _", "## A\n" + _fill("_"), "`_` characters is longer than 1,000"),
    ("run of backticks", "## A\n" + _fill("`"), "characters is longer than 1,000"),
    ("run of <", "## A\n" + _fill("<"), "`<` characters is longer than 1,000"),
    ("run of &", "## A\n" + _fill("&"), "`&` characters is longer than 1,000"),
    ("entities &#", "## A\n" + _fill("&#"), "more than 5,000 Markdown markup characters"),
    ("nested blockquotes", "## A\n" + _fill(">"), "`>` characters is longer than 1,000"),
    ("blockquote lines", "## A\n" + _fill("> " * 50 + "a\n"), "list items and blockquote markers"),
    ("deep blockquote", "## A\n" + "> " * 30 + "a\n", "nested deeper than 18 levels"),
    ("nested lists", "## A\n" + "".join("  " * i + "- a\n" for i in range(2000))[:190_000], "nested deeper"),
    ("list items", "## A\n" + _fill("- a\n"), "lines are more than 5,000"),
    ("list items within the line limit", "## A\n" + "- a\n" * 3500, "more than 3,000 list items"),
    ("emphasis *a **a", "## A\n" + _fill("*a **a "), "more than 5,000 Markdown markup characters"),
    ("mixed *_", "## A\n" + _fill("*_"), "more than 5,000 Markdown markup characters"),
    ("reference definitions", "## A\n" + "".join(f"[r{i}]: /u{i}\n" for i in range(4000)), "markup characters"),
    ("table columns", "## A\n|" + "a|" * 40000 + "\n|" + "-|" * 40000 + "\n", "markup characters"),
    ("table rows", "## A\n|a|b|\n|-|-|\n" + _fill("|x|y|\n", 180_000), "lines are more than 5,000"),
    ("table autocompleted cells", "## A\n|" + "a|" * 60 + "\n|" + "-|" * 60 + "\n" + "x\n" * 300, "cells in all"),
    ("table 65 columns", "## A\n|" + "a|" * 65 + "\n|" + "-|" * 65 + "\n", "65 columns is wider than 64"),
    ("many headings", _fill("## h\n"), "lines are more than 5,000"),
    ("400 headings", "## h\n" * 400, "400 headings are more than 300"),
    ("unclosed links", "## A\n" + _fill("[a]("), "markup characters"),
    ("nested brackets", "## A\n" + "[" * 900 + "a" + "]" * 900, "rendered"),
    ("nested parens", "## A\n[a](" + "(" * 999 + ")" * 1000, "rendered"),
    ("prose", "## A\n" + _fill("Refund the duplicate charge within thirty days. "), "rendered"),
    ("at limit: [ runs", "## A\n" + ("[" * 1000 + "a ") * 4, "rendered"),
    ("at limit: ![ pairs", "## A\n" + "![a " * 2400, "rendered"),
    ("at limit: list items", "## A\n" + "- - - - - - - - a\n" * 370, "rendered"),
    ("at limit: wide table", "## A\n|" + "a|" * 64 + "\n|" + "-|" * 64 + "\n" + ("x" * 200 + "\n") * 70, "rendered"),
]


@pytest.mark.parametrize("body, expected", [c[1:] for c in _MARKDOWN_CASES], ids=[c[0] for c in _MARKDOWN_CASES])
def test_hostile_markdown_renders_or_is_refused_within_a_second(body, expected):
    text = _make_sop("pay-x", "Refunds", body)
    assert len(text) <= _MAX_DOCUMENT_CHARS

    def check_and_render():
        # a fresh text each attempt: never served from the render cache
        return _parse_document(text, "all/pay-x.md"), _markdown.render_html(body + f"\n<!-- {_time.time()} -->")

    ((document, problems), html), elapsed = _fastest_of(check_and_render)
    assert elapsed < 1.0  # the bound issue 9 asks for, draft check and render together
    if expected == "rendered":
        assert document is not None and problems == [], [str(p) for p in problems]
        assert html.startswith("<h2")
    else:
        assert document is None
        refused = [p for p in problems if expected in p.message]
        assert refused and refused[0].message.startswith("Markdown too complex: "), [str(p) for p in problems]
        assert 13 <= refused[0].line <= text.count("\n") + 1
        assert html.startswith("<pre><code>") or "<h2" in html  # refused text renders as escaped plain text


def _preview(authoring, body: str):
    from tests.test_authoring_web import login, token

    login(authoring.client, "ann")
    page = authoring.client.get("/sops/pay-duplicate-charge/edit").get_data(as_text=True)
    fields = {"id": "pay-duplicate-charge", "title": "Duplicate charges", "type": "sop", "business_line": "all"}
    fields.update(categories="payments/duplicate-charge", owner="payments-policy", status="published")
    form = {**fields, "csrf_token": token(page), "sop_id": "pay-duplicate-charge", "effective": "2026-09-01"}
    return authoring.client.post("/drafts/preview", data={**form, "body": body})


@pytest.mark.parametrize(
    "body, status, expected",
    [
        ("## Purpose\n" + "[" * 5000 + "\n", 200, "Markdown too complex: a run of 5,000 `[` characters"),
        ("## Purpose\n" + "x" * _MAX_DOCUMENT_CHARS, 413, "body: the document is longer than 200,000 characters"),
    ],
    ids=["adversarial body", "body over the document length"],
)
def test_hostile_live_preview_is_bounded(authoring, body, status, expected):
    response, elapsed = _fastest_of(lambda: _preview(authoring, body))
    assert elapsed < 1.0
    assert response.status_code == status
    if status == 200:
        assert response.get_json()["html"].startswith("<pre><code>")
        assert any(expected in p["message"] for p in response.get_json()["problems"])
    else:  # a browser form gets the error page, an API client the JSON shape
        shown = response.get_json()["error"]["message"] if response.is_json else response.get_data(as_text=True)
        assert expected in shown
    assert authoring.audit(action="draft_created") == []  # a preview stores nothing


# == requests: size, encoding, text validation at the edge =============================================


_MIB = 1024 * 1024
_REQUEST_CASES = [
    # (case, method, path, body or None, content type, expected status, field named in details)
    (
        "json body over the limit",
        "POST",
        "/api/v1/search",
        b'{"query": "' + b"a" * (3 * _MIB) + b'"}',
        "application/json",
        413,
        "body",
    ),
    (
        "form over the limit",
        "POST",
        "/login",
        b"name=" + b"a" * (3 * _MIB),
        "application/x-www-form-urlencoded",
        413,
        None,
    ),
    (
        "json nested 100,000 deep",
        "POST",
        "/api/v1/search",
        b"[" * 100_000 + b"]" * 100_000,
        "application/json",
        400,
        "body",
    ),
    ("json NaN", "POST", "/api/v1/search", b'{"query": "refund", "k": NaN}', "application/json", 400, "body"),
    (
        "json Infinity",
        "POST",
        "/api/v1/search",
        b'{"query": "refund", "k": -Infinity}',
        "application/json",
        400,
        "body",
    ),
    ("json not UTF-8", "POST", "/api/v1/search", b'{"query": "\xff\xfe refund"}', "application/json", 400, "body"),
    ("json truncated", "POST", "/api/v1/search", b'{"query": "refu', "application/json", 400, "body"),
    ("json lone surrogate", "POST", "/api/v1/search", b'{"query": "refund \\ud800"}', "application/json", 400, "query"),
    ("json low surrogate", "POST", "/api/v1/search", b'{"query": "\\udfff refund"}', "application/json", 400, "query"),
    ("json NUL", "POST", "/api/v1/search", b'{"query": "refund\\u0000"}', "application/json", 400, "query"),
    (
        "json escape char",
        "POST",
        "/api/v1/search",
        b'{"query": "refund \\u001b[31m"}',
        "application/json",
        400,
        "query",
    ),
    (
        "json NUL in a filter",
        "POST",
        "/api/v1/search",
        b'{"query": "refund", "filters": {"category": "a\\u0000"}}',
        "application/json",
        400,
        "filters.category",
    ),
    (
        "json surrogate in a key",
        "POST",
        "/api/v1/search",
        b'{"query": "refund", "\\ud83d": 1}',
        "application/json",
        400,
        "body",
    ),
    (
        "json surrogate in a draft",
        "POST",
        "/api/v1/drafts",
        b'{"sop_id": "x", "markdown": "\\udc00", "summary": "s"}',
        "application/json",
        400,
        "markdown",
    ),
    ("query string NUL", "GET", "/api/v1/search?q=refund%00", None, None, 400, "q"),
    ("query string control char", "GET", "/api/v1/search?q=refund%07", None, None, 400, "q"),
    ("query string NUL in a name", "GET", "/api/v1/search?q=refund&a%00b=1", None, None, 400, "query string"),
    ("page query NUL", "GET", "/?q=refund%00", None, None, 400, None),
    (
        "form NUL in the name",
        "POST",
        "/login",
        b"name=ann%00&password=x",
        "application/x-www-form-urlencoded",
        400,
        None,
    ),
]


@pytest.mark.parametrize(
    ("case", "method", "path", "body", "content_type", "status", "field"),
    _REQUEST_CASES,
    ids=[c[0] for c in _REQUEST_CASES],
)
def test_request_refused_at_the_edge(client, case, method, path, body, content_type, status, field):
    """Each hostile request gets a clear 4xx in the one error shape (an HTML page for browser routes)."""
    response = client.open(path, method=method, data=body, content_type=content_type)
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    if path.startswith("/api/"):
        error = response.get_json()["error"]
        assert error["details"]["field"] == field
        assert error["message"].startswith(field)
        assert error["code"] == ("too_large" if status == 413 else "bad_request")
    else:
        assert response.mimetype == "text/html"


class _CountingStream:
    """A request body of declared size that records how much of it the server read."""

    def __init__(self, size: int):
        self.size, self.read_bytes, self.position = size, 0, 0

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.read_bytes if n is None or n < 0 else min(n, self.size - self.read_bytes)
        self.read_bytes += n
        return b"a" * n

    def readline(self, n: int = -1) -> bytes:
        return self.read(n if n and n > 0 else 65536)

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:  # werkzeug's test client measures the stream
        self.position = self.size + offset if whence == 2 else offset
        return self.position


@pytest.mark.parametrize("path", ["/api/v1/search", "/api/v1/drafts", "/drafts/preview", "/login"])
def test_request_of_100_mb_refused_unread(client, path):
    """A 100 MB body is answered 413 from its Content-Length, before any of it is read."""
    stream = _CountingStream(100 * _MIB)
    response = client.post(
        path,
        input_stream=stream,
        content_length=stream.size,
        content_type="application/json" if path.startswith("/api/") else "application/x-www-form-urlencoded",
    )
    assert response.status_code == 413
    assert stream.read_bytes == 0


def test_request_limit_is_a_setting(library):
    """MAX_REQUEST_BYTES moves the limit: a 1.8 KB body passes at the default and is refused at 1,000 bytes."""
    from kb.web import create_app

    body = {"query": "refund " * 250}
    assert create_app({**library, "TESTING": True}).test_client().post("/api/v1/search", json=body).status_code == 200
    small = create_app({**library, "TESTING": True, "MAX_REQUEST_BYTES": 1000}).test_client()
    response = small.post("/api/v1/search", json=body)
    assert response.status_code == 413 and response.get_json()["error"]["details"] == {"field": "body"}


def test_request_plain_text_still_searches(client):
    """Tabs, line breaks and non-Latin text are ordinary input, not refused."""
    response = client.post("/api/v1/search", json={"query": "Hallo,\tich wurde\r\nzweimal belastet — 二重請求"})
    assert response.status_code == 200


def test_request_malformed_floods_are_rate_limited_before_they_are_parsed(library):
    """Refusing a bad request costs work (a 1.8 MB JSON nesting scan): the limiter counts it first."""
    from kb.web import create_app

    client = create_app({**library, "TESTING": True, "RATE_LIMIT_SEARCH": "3/minute"}).test_client()
    deep = b"[" * 900_000 + b"]" * 900_000
    statuses = [client.post("/api/v1/search", data=deep, content_type="application/json").status_code for _ in range(5)]
    assert statuses == [400, 400, 400, 429, 429]


# == card numbers masked at every boundary =============================================================

import json as _pan_json  # noqa: E402
import logging as _logging  # noqa: E402
import re as _pan_re  # noqa: E402
import unicodedata as _unicodedata  # noqa: E402
from urllib.parse import unquote_plus as _unquote_plus  # noqa: E402

_PAN = "4242424242424242"
_PAN_MASK = "[card ending 4242]"


def _pan_in(separator: str, zero: str = "0") -> str:
    """The test card written in the digits of the script whose zero is `zero`, in groups of four."""
    digits = "".join(chr(ord(zero) + int(d)) for d in _PAN)
    return separator.join(digits[i : i + 4] for i in range(0, 16, 4))


_PAN_VARIANTS = [
    ("ungrouped", _PAN),
    ("spaces", _pan_in(" ")),
    ("no-break spaces", _pan_in("\u00a0")),
    ("thin spaces", _pan_in("\u2009")),
    ("ideographic spaces", _pan_in("\u3000")),
    ("tab and newline", "4242\t4242\n4242\t4242"),
    ("dots", _pan_in(".")),
    ("slashes", _pan_in("/")),
    ("en dashes", _pan_in("\u2013")),
    ("minus signs", _pan_in("\u2212")),
    ("full-width hyphens", _pan_in("\uff0d")),
    ("zero-width spaces", _pan_in("\u200b")),
    ("soft hyphens", _pan_in("\u00ad")),
    ("word joiners", _pan_in("\u2060")),
    ("arabic-indic digits", _pan_in(" ", "\u0660")),
    ("devanagari digits", _pan_in("-", "\u0966")),
    ("full-width digits", _pan_in("", "\uff10")),
    ("mathematical digits", _pan_in(" ", "\U0001d7ce")),
    ("with expiry and cvv", _pan_in(" ") + " exp 09/27 cvv 123"),
]
_PAN_IDS = [case for case, _ in _PAN_VARIANTS]


def _card_left(text: str) -> bool:
    """Whether text still holds the test card beyond its last four, or its expiry or CVV, in any form."""
    from kb.redaction import find_pans

    folded = "".join(
        str(_unicodedata.decimal(c)) if _unicodedata.decimal(c, None) is not None else c
        for c in _unicodedata.normalize("NFKC", text)
    )
    folded = _pan_re.sub(r"\\(?:x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8}|[tnr])", " ", folded.replace(_PAN_MASK, "|"))
    digits = _pan_re.sub(r"[^0-9A-Za-z|]", "", folded)  # digits still side by side once separators are gone
    return bool(find_pans(text)) or "424242424242" in digits or "09/27" in folded or "cvv 123" in folded


@pytest.fixture(scope="module")
def pan_client(library):
    """A client of an app over the shipped library whose rate limits leave room for these tables."""
    from kb.web import create_app

    app = create_app(
        {**library, "TESTING": True, "RATE_LIMIT_SEARCH": "100000/minute", "RATE_LIMIT_LOGIN": "100000/minute"}
    )
    return app.test_client()


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("case, written", _PAN_VARIANTS, ids=_PAN_IDS)
def test_card_number_masked_in_the_search_response_and_the_log(pan_client, caplog, case, written, method):
    query = f"customer card {written} charged twice"
    with caplog.at_level(_logging.INFO, logger="kb"):
        if method == "GET":
            response = pan_client.get("/api/v1/search", query_string={"q": query, "k": 3})
        else:
            response = pan_client.post("/api/v1/search", json={"query": query, "k": 3})
    assert response.status_code == 200
    echoed = response.get_json()["query"]
    assert echoed.startswith(f"customer card {_PAN_MASK}") and echoed.endswith("charged twice")
    assert not _card_left(response.get_data(as_text=True))
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("kb")]
    assert any(_PAN_MASK in line for line in lines), lines
    assert not _card_left(caplog.text)


@pytest.mark.parametrize("case, written", _PAN_VARIANTS, ids=_PAN_IDS)
def test_card_number_masked_in_the_audit_log_as_a_login_name(pan_client, library, case, written):
    from kb import audit, store

    address = f"10.9.{_PAN_IDS.index(case)}.1"
    form = pan_client.get("/login", environ_base={"REMOTE_ADDR": address}).get_data(as_text=True)
    csrf = _pan_re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    response = pan_client.post(
        "/login",
        data={"name": f"agent {written}", "password": "wrong-password-1", "csrf_token": csrf},
        environ_base={"REMOTE_ADDR": address},
    )
    # Refused as a name (422: a no-break space is not printable) or failed (401): never echoed, never stored.
    assert response.status_code in (401, 422)
    assert not _card_left(response.get_data(as_text=True))
    db = store.connect(library["DATA_DIR"])
    try:
        rows = [r for r in audit.query(db, limit=1000) if r["client"] == address]
    finally:
        db.close()
    assert not any(_card_left(_pan_json.dumps(row, ensure_ascii=False)) for row in rows)
    if response.status_code == 401:
        actors = [row["actor"] for row in rows if row["action"] == "login_failed"]
        assert len(actors) == 1 and actors[0].startswith(f"agent {_PAN_MASK}")


@pytest.mark.parametrize("case, written", _PAN_VARIANTS, ids=_PAN_IDS)
def test_card_number_masked_in_every_argument_of_the_search_page_redirect(pan_client, case, written):
    args = {"q": f"refund card {written}", "category": written, "mode": "hybrid", "note": f"x{written}"}
    response = pan_client.get("/", query_string=args)
    assert response.status_code == 303
    location = _unquote_plus(response.headers["Location"])
    assert not _card_left(location)
    assert location.count(_PAN_MASK) == 3 and "mode=hybrid" in location
    page = pan_client.get(response.headers["Location"])
    assert page.status_code == 200
    assert not _card_left(page.get_data(as_text=True))


_ECHO_CASES = [
    # (case, method, path or (path, json body), status, field named in details or None)
    ("filters.category", "POST", ("/api/v1/search", {"query": "refund", "filters": {"category": "x/{pan} !"}}), 400),
    ("filters.type", "POST", ("/api/v1/search", {"query": "refund", "filters": {"type": "{pan}"}}), 400),
    ("unknown body field", "POST", ("/api/v1/search", {"query": "refund", "{pan}": 1}), 400),
    ("k as text", "GET", "/api/v1/search?q=refund&k={pan}", 400),
    ("as_of", "GET", "/api/v1/search?q=refund&as_of={pan}", 400),
    ("sop id", "GET", "/api/v1/sops/{pan}", 404),
    ("category id", "GET", "/api/v1/categories/{pan}", 404),
    ("sop page", "GET", "/sops/{pan}", 404),
]


@pytest.mark.parametrize("written", [_pan_in(""), _pan_in("\u00a0", "\u0660"), _pan_in("\u2013")])
@pytest.mark.parametrize("case, method, target, status", _ECHO_CASES, ids=[c[0] for c in _ECHO_CASES])
def test_error_messages_never_echo_a_card_number(pan_client, case, method, target, status, written):
    if isinstance(target, tuple):
        body = _pan_json.loads(_pan_json.dumps(target[1]).replace("{pan}", written))
        response = pan_client.post(target[0], json=body)
    else:
        response = pan_client.get(target.replace("{pan}", written))
    assert response.status_code == status
    text = response.get_data(as_text=True)
    assert not _card_left(text)
    if response.is_json:
        error = response.get_json()["error"]
        assert error["message"] and not _card_left(_pan_json.dumps(error, ensure_ascii=False))


@pytest.mark.parametrize(
    "args",
    [
        ["search", f"card {_pan_in(chr(0x2009))} exp 09/27 declined", "--json"],
        ["search", "refund", "--category", _pan_in("\u00a0")],
        ["search", "refund", "--business-line", _pan_in("-", "\u0966")],
    ],
    ids=["query", "bad category", "bad business line"],
)
def test_card_number_masked_on_the_command_line(runner, args):
    from kb.cli import main

    result = runner.invoke(main, args)
    assert not _card_left(result.output)
    if args[-1] == "--json":
        assert result.exit_code == 0 and _pan_json.loads(result.output)["query"].startswith(f"card {_PAN_MASK} exp")
    else:
        assert result.exit_code != 0 and _PAN_MASK in result.output


@pytest.mark.parametrize("case, written", _PAN_VARIANTS[1::3], ids=_PAN_IDS[1::3])
def test_card_number_masked_in_draft_summary_commit_and_return_comment(authoring, case, written):
    from tests.conftest import full_sop, git

    text = full_sop("pay-duplicate-charge", "Duplicate charges", "Two charges for one purchase are refunded.")
    body = {
        "sop_id": "pay-duplicate-charge",
        "markdown": text,
        "base_revision": authoring.revision("pay-duplicate-charge"),
        "summary": f"Customer {written} asked",
    }
    created = authoring.call("POST", "/api/v1/drafts", "ann", json=body)
    assert created.status_code == 201, created.get_json()
    draft = created.get_json()
    assert draft["summary"] == f"Customer {_PAN_MASK} asked"
    authoring.call("POST", f"/api/v1/drafts/{draft['id']}/submit", "ann")
    returned = authoring.call(
        "POST", f"/api/v1/drafts/{draft['id']}/return", "bob", json={"comment": f"call {written}"}
    )
    assert returned.status_code == 200 and returned.get_json()["comment"] == f"call {_PAN_MASK}"
    authoring.call("POST", f"/api/v1/drafts/{draft['id']}/submit", "ann")
    approved = authoring.call("POST", f"/api/v1/drafts/{draft['id']}/approve", "bob")
    assert approved.status_code == 200, approved.get_json()
    log = git(authoring.repo, "log", "--format=%B", "-1")
    assert log.startswith(f"Customer {_PAN_MASK} asked") and not _card_left(log)
    revisions = authoring.client.get("/api/v1/sops/pay-duplicate-charge/revisions")
    assert not _card_left(revisions.get_data(as_text=True))
    rows = authoring.audit()
    assert rows and not any(_card_left(_pan_json.dumps(row, ensure_ascii=False)) for row in rows)


# == authentication: redirects, sessions, rate limits ==================================================

import re as _auth_re  # noqa: E402

_CSRF = _auth_re.compile(r'name="csrf_token" value="([^"]+)"')
_NEXT = _auth_re.compile(r'name="next" value="([^"]*)"')

# Each target must land on the search page after log-in. Decision on percent-encoding: a target is also
# checked after one percent-decoding and NFKC, so "/%2F%2Fevil" (which some proxies and frameworks decode
# into "//evil") and full-width slashes are refused too; no page of kb needs an encoded slash.
HOSTILE_REDIRECTS = [
    ("protocol-relative", "//evil.example"),
    ("protocol-relative-path", "//evil.example/login"),
    ("triple-slash", "///evil.example"),
    ("four-slashes", "////evil.example"),
    ("tab-between-slashes", "/\t/evil.example"),
    ("vertical-tab", "/\x0b/evil.example"),
    ("newline", "/\n/evil.example"),
    ("carriage-return", "/\r/evil.example"),
    ("nul", "/\x00/evil.example"),
    ("del", "/\x7f/evil.example"),
    ("line-separator", "/\u2028/evil.example"),
    ("paragraph-separator", "/\u2029/evil.example"),
    ("bidi-override", "/\u202e/evil.example"),
    ("zero-width-space", "/\u200b/evil.example"),
    ("backslashes", "\\/\\/evil.example"),
    ("slash-backslash", "/\\evil.example"),
    ("backslash-in-path", "/sops\\..\\..\\evil"),
    ("https", "https://evil.example"),
    ("http-no-slashes", "http:evil.example"),
    ("uppercase-scheme", "HTTPS://evil.example"),
    ("javascript", "javascript:alert(1)"),
    ("javascript-mixed-case", "JaVaScRiPt:alert(1)"),
    ("data-url", "data:text/html,<script>alert(1)</script>"),
    ("leading-space", " //evil.example"),
    ("leading-tab", "\t//evil.example"),
    ("encoded-slashes", "/%2F%2Fevil.example"),
    ("encoded-slash-lowercase", "/%2f/evil.example"),
    ("encoded-backslash", "/%5C/evil.example"),
    ("encoded-tab", "/%09/evil.example"),
    ("encoded-crlf-header-injection", "/%0d%0aSet-Cookie:%20x=1"),
    ("full-width-slashes", "/\uff0f\uff0fevil.example"),
    ("relative-no-slash", "evil.example"),
    ("userinfo", "https://kb.example@evil.example"),
    ("too-long", "/" + "a" * 5000),
]
LOCAL_REDIRECTS = [
    ("drafts", "/drafts", "/drafts"),
    ("editor", "/sops/pay-duplicate-charge/edit", "/sops/pay-duplicate-charge/edit"),
    ("query-with-encoded-slash", "/?q=a%2Fb&mode=keyword", "/?q=a%2Fb&mode=keyword"),
    ("at-sign-in-path", "/@evil.example", "/@evil.example"),
    ("missing", None, "/"),
]


@pytest.mark.parametrize("target", [case[1] for case in HOSTILE_REDIRECTS], ids=[c[0] for c in HOSTILE_REDIRECTS])
def test_hostile_redirect_after_log_in_lands_on_the_search_page(app, client, target):
    from kb.web import auth

    with app.test_request_context("/login", method="POST", data={"next": target}):
        assert auth.safe_next() == "/"
    shown = client.get("/login", query_string={"next": target})
    assert shown.status_code in (200, 400)  # C0 controls are refused at the edge (kb.web.validation)
    if shown.status_code == 200:
        assert _NEXT.search(shown.get_data(as_text=True))[1] == "/"  # the form carries the search page on


@pytest.mark.parametrize(
    ("target", "location"), [case[1:] for case in LOCAL_REDIRECTS], ids=[c[0] for c in LOCAL_REDIRECTS]
)
def test_hostile_redirect_table_keeps_local_pages(authoring, target, location):
    form = authoring.client.get("/login").get_data(as_text=True)
    data = {"name": "ann", "password": "ann-password-123", "csrf_token": _CSRF.search(form)[1]}
    if target is not None:
        data["next"] = target
    assert authoring.client.post("/login", data=data).headers["Location"] == location


# (case, typed name, status, actor stored): 400 is refused at the edge before anything is stored, 422 is
# refused as a name (audited without it), 401 is a failed log-in audited with the name masked.
HOSTILE_LOGIN_NAMES = [
    ("nul", "ann\x00", 400, None),
    ("crlf-log-injection", "ann\r\n2026-12-01 login ok admin", 422, None),
    ("line-separator", "ann\u2028admin", 422, None),
    ("bidi-override", "\u202eadmin", 422, None),
    ("ansi-escape", "\x1b[2Jann", 400, None),
    ("c1-control", "ann\x85admin", 422, None),
    ("huge", "a" * 100_000, 422, None),
    ("65-characters", "x" * 65, 422, None),
    ("blank", "   ", 422, None),
    ("card-number", "4111 1111 1111 1111", 401, "[card ending 1111]"),
    ("card-en-dashes", "4111\u20131111\u20131111\u20131111", 401, "[card ending 1111]"),
    ("card-full-width-digits", "\uff14" + "\uff11" * 15, 401, "[card ending 1111]"),
    ("card-inside-a-name", "ann 4111111111111111", 401, "ann [card ending 1111]"),
]


@pytest.mark.parametrize(
    ("number", "typed", "status", "stored"),
    [(number, *case[1:]) for number, case in enumerate(HOSTILE_LOGIN_NAMES)],
    ids=[case[0] for case in HOSTILE_LOGIN_NAMES],
)
def test_hostile_login_name_is_refused_or_stored_masked(library, client, number, typed, status, stored):
    import json

    from kb import audit, store

    address = f"10.66.0.{number + 1}"  # one address per case: log-in attempts are limited per address
    client.environ_base["REMOTE_ADDR"] = address
    form = client.get("/login").get_data(as_text=True)
    data = {"name": typed, "password": "whatever-123", "csrf_token": _CSRF.search(form)[1]}
    response = client.post("/login", data=data)
    page = response.get_data(as_text=True)
    assert response.status_code == status
    assert "4111" not in page and "\x00" not in page and "\u202e" not in page
    db = store.connect(library["DATA_DIR"])
    try:
        rows = [row for row in audit.query(db, action="login_failed", limit=1000) if row["client"] == address]
    finally:
        db.close()
    assert "4111" not in json.dumps(rows, ensure_ascii=False)
    if status == 400:
        assert rows == []
    else:
        assert len(rows) == 1 and rows[0]["actor"] == stored
    if status == 422:
        assert "User name: " in page and rows[0]["target"] is None


def _flood_bad_keys(authoring, client):
    return [client.get("/api/v1/drafts", headers={"Authorization": f"Bearer kb_guess{i}"}) for i in range(40)]


def _flood_anonymous_writes(authoring, client):
    return [client.post("/api/v1/drafts/1/submit") for _ in range(40)]


def _flood_failed_log_ins(authoring, client):
    answers = []
    for _ in range(40):
        form = client.get("/login").get_data(as_text=True)
        data = {"name": "ann", "password": "guess-guess-guess", "csrf_token": _CSRF.search(form)[1]}
        answers.append(client.post("/login", data=data))
    return answers


def _flood_replayed_session(authoring, client):
    form = client.get("/login").get_data(as_text=True)
    data = {"name": "ann", "password": "ann-password-123", "csrf_token": _CSRF.search(form)[1]}
    client.post("/login", data=data)
    cookie = client.get_cookie("kb_session").value
    page = client.get("/sops/new").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": _CSRF.search(page)[1]})
    answers = []
    for _ in range(40):
        client.set_cookie("kb_session", cookie)
        answers.append(client.get("/drafts"))
    return answers


# (flood, audit action, rows stored at most with the default settings, statuses seen)
HOSTILE_FLOODS = [
    ("bad-api-keys", _flood_bad_keys, "login_failed", 10, {401, 429}),  # RATE_LIMIT_LOGIN 10/minute
    ("anonymous-writes", _flood_anonymous_writes, "unauthenticated_write", 20, {401}),  # RATE_LIMIT_AUDIT 20/minute
    ("failed-log-ins", _flood_failed_log_ins, "login_failed", 10, {401, 429}),  # 5 failures, then locked
    ("replayed-session", _flood_replayed_session, "session_expired", 20, {303}),
]


@pytest.mark.parametrize(
    ("flood", "action", "most", "statuses"),
    [case[1:] for case in HOSTILE_FLOODS],
    ids=[case[0] for case in HOSTILE_FLOODS],
)
def test_hostile_flood_cannot_fill_the_audit_log(authoring, flood, action, most, statuses):
    client = authoring.app.test_client()
    client.environ_base["REMOTE_ADDR"] = "10.77.0.1"
    answers = flood(authoring, client)
    assert {answer.status_code for answer in answers} == statuses
    assert all(answer.status_code < 500 for answer in answers)
    rows = [row for row in authoring.audit(action=action) if row["client"] == "10.77.0.1"]
    assert 1 <= len(rows) <= most
    limited = [answer for answer in answers if answer.status_code == 429]
    assert all(1 <= int(answer.headers["Retry-After"]) <= 15 * 60 for answer in limited)


# == index faults ======================================================================================


def _damage_file(pattern: str, how: str):
    """A damage of one file of the live generation: truncated to half, zeroed or deleted."""

    def damage(data, live: str) -> None:  # data: the data folder (a Path)
        path = sorted((data / "index" / live).glob(pattern))[0]
        if how == "truncated":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        elif how == "zeroed":
            path.write_bytes(b"")
        else:
            path.unlink()

    return damage


def _manifest(text_of):
    """A damage of the manifest: text_of(manifest dict) is written in its place (None deletes it)."""

    def damage(data, live: str) -> None:
        import json

        path = data / "index" / "manifest.json"
        text = text_of(json.loads(path.read_text()))
        path.unlink() if text is None else path.write_text(text)

    return damage


def _json(value) -> str:
    import json

    return json.dumps(value)


def _delete_folder(data, live: str) -> None:
    import shutil

    shutil.rmtree(data / "index" / live)


_GENERATION_FILES = [
    "vectors.faiss",
    "sections.json",
    "documents.json",
    "categories.json",
    "taxonomy.npy",
    "taxonomy_rows.json",
    "glossary.json",
    "vocabulary.json",
    "build.json",
    # the keyword engine's own files: tantivy's (the default) meta, term dictionary, postings and stored docs
    "keyword/meta.json",
    "keyword/*.term",
    "keyword/*.idx",
    "keyword/*.store",
]
# (case, damage, the generation that must serve: "older" or the newest good one, "live")
_INDEX_DAMAGE = [
    (f"{name} {how}", _damage_file(name, how), "older")
    for name in _GENERATION_FILES
    for how in ("truncated", "zeroed", "deleted")
] + [
    ("manifest truncated", _manifest(lambda m: _json(m)[:20]), "live"),
    ("manifest not JSON", _manifest(lambda m: "generation = live\n"), "live"),
    ("manifest a JSON list", _manifest(lambda m: _json([m])), "live"),
    ("manifest generation of the wrong type", _manifest(lambda m: _json({**m, "generation": 7})), "live"),
    (
        "manifest naming a missing folder",
        _manifest(lambda m: _json({**m, "generation": "g20260101T000000-abcdef"})),
        "live",
    ),
    ("manifest of another format version", _manifest(lambda m: _json({**m, "format": 99})), "live"),
    ("manifest deleted", _manifest(lambda m: None), "live"),
    ("live generation folder deleted", _delete_folder, "older"),
]


@pytest.mark.parametrize("damage, serves", [c[1:] for c in _INDEX_DAMAGE], ids=[c[0] for c in _INDEX_DAMAGE])
def test_damaged_index_boots_degraded_and_serves_the_newest_good_generation(two_generations, damage, serves):
    from kb.web import create_app
    from tests.conftest import NEW_PHRASE

    settings, data = two_generations["settings"], two_generations["settings"]["DATA_DIR"]
    damage(data, two_generations["live"])
    on_disk = sorted(p.name for p in (data / "index").iterdir())
    app = create_app({**settings, "TESTING": True})
    app.extensions["kb"]["searcher"].warm_up()  # what a gunicorn worker does at boot: must not raise
    client = app.test_client()
    health = client.get("/healthz")
    body = health.get_json()
    assert health.status_code == 200 and body["status"] == "degraded"
    assert body["generation"] == two_generations[serves] and "run `kb index --full`" in body["reason"]
    found = client.get("/api/v1/search?q=customer+charged+twice&k=3")
    assert found.status_code == 200 and found.get_json()["results"][0]["sop_id"] == "pay-duplicate-charge"
    new = client.get("/api/v1/search", query_string={"q": NEW_PHRASE, "mode": "keyword"}).get_json()["results"]
    assert [r["sop_id"] for r in new] == (["pay-card-declined"] if serves == "live" else [])
    assert sorted(p.name for p in (data / "index").iterdir()) == on_disk  # serving never repairs or deletes


# == Unicode normalisation =============================================================================

import unicodedata as _nfkc_unicodedata  # noqa: E402

_NFKC_CASES = [
    # (case, typed, the plain form it must search like)
    ("full-width", "ｒｅｆｕｎｄ ｎｏｔ ｒｅｃｅｉｖｅｄ", "refund not received"),
    ("mathematical bold", "𝐜𝐡𝐚𝐫𝐠𝐞𝐝 𝐭𝐰𝐢𝐜𝐞", "charged twice"),
    ("circled letters", "ⓒⓗⓐⓡⓖⓔⓑⓐⓒⓚ ⓔⓥⓘⓓⓔⓝⓒⓔ", "chargeback evidence"),
    ("ligature", "customer ﬁled a chargeback", "customer filed a chargeback"),
    ("modifier letters", "ᵖᵃʸᵒᵘᵗ delayed", "payout delayed"),
    ("no-break and ideographic spaces", "creator\u00a0payout\u3000missing", "creator payout missing"),
    ("full-width digits and letters", "３ＤＳ ｆａｉｌｅｄ", "3DS failed"),
    ("mixed", "ｃｏｉｎ pack 𝐫𝐞𝐟𝐮𝐧𝐝", "coin pack refund"),
]


@pytest.mark.parametrize("mode", ["keyword", "semantic", "hybrid"])
@pytest.mark.parametrize("case, typed, plain", _NFKC_CASES, ids=[c[0] for c in _NFKC_CASES])
def test_compatibility_forms_find_what_the_plain_word_finds(searcher, case, typed, plain, mode):
    assert _nfkc_unicodedata.normalize("NFKC", typed).lower() == plain.lower()
    found = [h.sop_id for h in searcher.search(typed, 5, mode).hits]
    expected = [h.sop_id for h in searcher.search(plain, 5, mode).hits]
    assert expected, f"the plain form {plain!r} finds something"
    assert found == expected


@pytest.mark.parametrize("case, typed, plain", _NFKC_CASES[:3], ids=[c[0] for c in _NFKC_CASES[:3]])
def test_compatibility_forms_through_the_api(pan_client, case, typed, plain):
    found = pan_client.post("/api/v1/search", json={"query": typed, "k": 3}).get_json()
    expected = pan_client.post("/api/v1/search", json={"query": plain, "k": 3}).get_json()
    assert [r["sop_id"] for r in found["results"]] == [r["sop_id"] for r in expected["results"]]
    assert found["query"] == _nfkc_unicodedata.normalize("NFKC", typed)


@pytest.mark.parametrize(
    "written, typed",
    [
        ("ｚｅｂｒａｑｕｕｘ", "zebraquux"),  # full-width in the document, plain in the query
        ("ﬂimﬂamtastic", "flimflamtastic"),  # ligatures in the document
        ("zebraquux", "ｚｅｂｒａｑｕｕｘ"),  # plain in the document, full-width in the query
    ],
    ids=["full-width text", "ligature text", "full-width query"],
)
def test_indexed_text_is_normalised_too(sop_repo, data_dir, settings_for, written, typed):
    from kb.indexing.builder import build_index
    from kb.indexing.chunking import chunk_document
    from kb.library import load_library
    from kb.search import Searcher
    from tests.conftest import commit_all, make_sop

    sops = sop_repo / "sops"
    body = f"## Purpose\nSettlements marked {written} are refunded within five days.\n"
    (sops / "all" / "pay-odd-settlement.md").write_text(make_sop("pay-odd-settlement", "Odd settlements", body))
    commit_all(sop_repo, "an SOP with compatibility forms")
    build_index(sops, data_dir)
    results = Searcher(settings_for(sops, data_dir)).search(typed, 3, "keyword")
    assert [h.sop_id for h in results.hits][:1] == ["pay-odd-settlement"]
    assert f"<mark>{written}</mark>" in results.hits[0].snippet  # highlighted as written in the document
    section = chunk_document(load_library(sops).documents["pay-odd-settlement"])[0]
    assert section.text.count(written) == 1  # shown as written ...
    assert _nfkc_unicodedata.is_normalized("NFKC", section.embedding_text)  # ... embedded normalised

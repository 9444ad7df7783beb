import logging
import unicodedata

import pytest

from kb.documents import parse_document
from kb.redaction import (
    LOG_FILTER,
    RedactingFilter,
    find_pans,
    install_log_filter,
    luhn_valid,
    mask_credentials,
    mask_pans,
    redact,
    redact_counted,
    redact_data,
    strip_pans,
)
from tests.conftest import fastest_of, make_sop

VISA = "4242424242424242"
MASKED = "[card ending 4242]"


def written(digits: str, separator: str = "", group: int = 4) -> str:
    """A card number written in groups of `group` digits joined by separator."""
    return separator.join(digits[i : i + group] for i in range(0, len(digits), group))


def in_script(digits: str, zero: str) -> str:
    """The digits written in the Unicode script whose zero is `zero`."""
    return "".join(chr(ord(zero) + int(d)) for d in digits)


SEPARATORS = [
    ("space", " "),
    ("two spaces", "  "),
    ("no-break space", "\u00a0"),
    ("narrow no-break space", "\u202f"),
    ("thin space", "\u2009"),
    ("em space", "\u2003"),
    ("ideographic space", "\u3000"),
    ("tab", "\t"),
    ("newline", "\n"),
    ("crlf", "\r\n"),
    ("hyphen-minus", "-"),
    ("spaced hyphen", " - "),
    ("hyphen", "\u2010"),
    ("non-breaking hyphen", "\u2011"),
    ("figure dash", "\u2012"),
    ("en dash", "\u2013"),
    ("em dash", "\u2014"),
    ("horizontal bar", "\u2015"),
    ("minus sign", "\u2212"),
    ("small em dash", "\ufe58"),
    ("full-width hyphen", "\uff0d"),
    ("dot", "."),
    ("slash", "/"),
    ("full-width slash", "\uff0f"),
    ("zero-width space", "\u200b"),
    ("zero-width non-joiner", "\u200c"),
    ("zero-width joiner", "\u200d"),
    ("word joiner", "\u2060"),
    ("byte order mark", "\ufeff"),
    ("soft hyphen", "\u00ad"),
    ("space and zero-width space", " \u200b"),
]

SCRIPTS = [
    ("ascii", "0"),
    ("arabic-indic", "\u0660"),
    ("extended arabic-indic", "\u06f0"),
    ("devanagari", "\u0966"),
    ("bengali", "\u09e6"),
    ("thai", "\u0e50"),
    ("full-width", "\uff10"),
    ("mathematical bold", "\U0001d7ce"),
    ("mathematical double-struck", "\U0001d7d8"),
    ("mathematical monospace", "\U0001d7f6"),
]

POSITIVE = [
    *[(f"separator: {name}", f"card {written(VISA, sep)} ok", f"card {MASKED} ok") for name, sep in SEPARATORS],
    *[
        (f"digits: {name}", f"card {written(in_script(VISA, zero), ' ')} ok", f"card {MASKED} ok")
        for name, zero in SCRIPTS
    ],
    ("digits: superscript", "card ⁴²⁴²⁴²⁴²⁴²⁴²⁴²⁴²⁴²", f"card {MASKED}"),
    ("digits: circled", "card ④②④②④②④②④②④②④②④②", f"card {MASKED}"),
    ("digits: mixed scripts", "card 4242 ٤٢٤٢ ४२४२ ４２４２", f"card {MASKED}"),
    ("digits: combining underline", "card " + "\u0332".join(VISA) + "\u0332", f"card {MASKED}"),
    ("length 13", "visa 4222222222222.", "visa [card ending 2222]."),
    ("length 14", "diners 3056 930902 5904", "diners [card ending 5904]"),
    ("length 15 amex grouping", "amex 3782 822463 10005", "amex [card ending 0005]"),
    ("length 16", "mc 5555555555554444", "mc [card ending 4444]"),
    ("length 19 ungrouped", "maestro 6526018159083016610", "maestro [card ending 6610]"),
    ("length 19 grouped 4-4-4-4-3", "maestro 6526 0181 5908 3016 610", "maestro [card ending 6610]"),
    ("glued to letters", "ref:CARD4242424242424242X", "ref:CARD[card ending 4242]X"),
    ("two cards", f"{VISA} and 5555-5555-5555-4444", f"{MASKED} and [card ending 4444]"),
    ("two cards back to back", "4242 4242 4242 4242 5555 5555 5555 4444", f"{MASKED} [card ending 4444]"),
    ("cvv right after", f"{written(VISA, ' ')} 123", f"{MASKED} [cvv]"),
    ("cvv of four after", f"{VISA}, 1234.", f"{MASKED}, [cvv]."),
    ("expiry right after", f"{VISA} 09/27", f"{MASKED} [expiry]"),
    ("expiry and cvv", f"{written(VISA, '-')} 09/2027 123", f"{MASKED} [expiry] [cvv]"),
    ("labelled expiry and cvv", f"{written(VISA, ' ')} exp 09/27 cvv 123", f"{MASKED} exp [expiry] cvv [cvv]"),
    ("labelled cvc2 then expiry", f"{VISA} cvc2: 987, expires 12-29", f"{MASKED} cvc2: [cvv], expires [expiry]"),
    ("expiry label with date", f"{VISA} expiry date: 0328", f"{MASKED} expiry date: [expiry]"),
    ("valid thru", f"{VISA} valid thru 1/30", f"{MASKED} valid thru [expiry]"),
    ("security code", f"{VISA} security code is 4321", f"{MASKED} security code is [cvv]"),
    ("amex cid", "3782 822463 10005 cid 1234", "[card ending 0005] cid [cvv]"),
    ("full-width cvv label", f"{VISA} ＣＶＶ １２３", f"{MASKED} CVV [cvv]"),
    ("escaped in a repr", repr("4242\u00a04242\u00a04242\u00a04242"), f"'{MASKED}'"),
    ("escaped in json", '"4242\\u2009 4242\\u2009 4242\\u2009 4242"', f'"{MASKED}"'),
    ("lone cvv", "my cvv is 123", "my cvv is [cvv]"),
    ("lone cvv2", "CVV2=1234 please", "CVV2=[cvv] please"),
    ("lone security code", "the security code 876 on the back", "the security code [cvv] on the back"),
]

NEGATIVE = [
    ("order number failing luhn", "order 4242424242424241"),
    ("grouped number failing luhn", "ref 4242 4242 4242 4241"),
    ("12 digits", "account 424242424242"),
    ("20 digits ungrouped", "trace 42424242424242424242"),
    ("23-digit arn", "ARN 74123456789012345678901"),
    ("glued to more digits", "id 942424242424242429"),
    ("glued to one more digit", "id 14242424242424242"),
    ("leading zero", "0000 0000 0000 0000"),
    ("us phone", "call +1 (415) 555-0100"),
    ("uk phone", "+44 20 7946 0958"),
    ("two phone numbers", "0800 123 4567 or 0800 765 4321"),
    ("iso date", "effective 2026-09-01"),
    ("two dates", "from 2026-09-01 2026-10-01"),
    ("slashed dates", "01/02/2026 03/04/2026"),
    ("amount", "USD 1,234.56 refunded on 2026-09-01"),
    ("ip address", "192.168.100.200"),
    ("ticket", "ticket #12345, order ORD-2231-88812"),
    ("three digits without a card", "refund 123 coins"),
    ("expiry without a card", "exp 09/27"),
    ("a mask already", f"{MASKED} [cvv] [expiry]"),
    ("escapes without a card", "line\\nnext 12\\t34"),
]


@pytest.mark.parametrize(
    "digits, valid",
    [("4111111111111111", True), ("4111111111111112", False), ("5555555555554444", True), ("378282246310005", True)],
)
def test_luhn_valid(digits, valid):
    assert luhn_valid(digits) is valid


@pytest.mark.parametrize("case, text, expected", POSITIVE, ids=[c[0] for c in POSITIVE])
def test_redact_masks_card_numbers_cvv_and_expiry(case, text, expected):
    assert redact(text) == expected
    assert redact(expected) == expected  # idempotent: a masked text stays as it is


@pytest.mark.parametrize("case, text", NEGATIVE, ids=[c[0] for c in NEGATIVE])
def test_redact_leaves_other_numbers(case, text):
    assert find_pans(text) == []
    assert redact(text) == unicodedata.normalize("NFKC", text)


def test_the_variant_table_covers_every_kind():
    assert len(POSITIVE) + len(NEGATIVE) >= 40
    assert len(SEPARATORS) >= 25 and len(SCRIPTS) >= 8


@pytest.mark.parametrize("case, text, expected", POSITIVE, ids=[c[0] for c in POSITIVE])
def test_find_pans_agrees_with_redact_and_spans_the_text_as_given(case, text, expected):
    found = find_pans(text)
    if case.startswith("lone"):
        assert found == []
        return
    assert found, case
    assert all(f"[card ending {pan.last4}]" in expected for pan in found)
    masked = mask_pans(text)  # spans index the text as written: masking them leaves no card digits
    assert find_pans(masked) == []


@pytest.mark.parametrize("name, separator", SEPARATORS[::3], ids=[s[0] for s in SEPARATORS[::3]])
def test_a_document_with_a_card_number_is_refused_with_its_line(name, separator):
    pan = written(VISA, separator)
    text = make_sop("pay-x", "Pay X", f"## Purpose\nFine.\n\n## Procedure\nCharge card {pan} again.\n")
    line = text[: text.index(pan)].count("\n") + 1
    document, problems = parse_document(text, "all/pay-x.md", {})
    assert document is None
    assert [(p.line, "ending 4242" in p.message) for p in problems if "card number" in p.message] == [(line, True)]


def test_mask_pans_keeps_the_text_as_written_and_redact_normalises():
    text = "ｒｅｆｕｎｄ card 4242\u00a04242\u00a04242\u00a04242"
    assert mask_pans(text) == f"ｒｅｆｕｎｄ card {MASKED}"
    assert redact(text) == f"refund card {MASKED}"


def test_strip_pans_removes_card_numbers_cvv_and_expiry_and_normalises():
    assert strip_pans("ｃａｒｄ 4111 1111 1111 1111 exp 09/27 cvv 123 declined") == "card   exp   cvv   declined"


@pytest.mark.parametrize(
    "text",
    [
        ("4 2-4." * 400)[:2000],  # a 2,000-character query of digits and separators
        "4" * 2000,
        ("1 " * 10_000),  # one-digit groups: every position starts 7 candidates (200 KB: scripts/bench_redaction.py)
        ("4242 4242 4242 4242 exp 09/27 cvv 123. " * 5200)[:200_000],
        ("The customer paid 12.50 on 2026-09-01, ticket #4471123; call 0800 123 4567. " * 2600)[:200_000],
    ],
    ids=["2000 digits and separators", "2000 digits", "20 KB one-digit groups", "200 KB of cards", "200 KB prose"],
)
def test_redact_is_linear_on_hostile_text(text):
    redacted, elapsed = fastest_of(lambda: redact(text))
    assert elapsed < 1.0  # a DoS guard, not a benchmark (scripts/bench_redaction.py)
    assert find_pans(redacted) == []


@pytest.mark.parametrize(
    "value, expected",
    [
        (
            {"q": VISA, VISA: [4242424242424242, 7, True, None, 1.5]},
            {"q": MASKED, MASKED: [MASKED, 7, True, None, 1.5]},
        ),
        (("ok", "cvv 123"), ["ok", "cvv [cvv]"]),
        (42, 42),
    ],
)
def test_redact_data_masks_every_string_key_and_number(value, expected):
    assert redact_data(value) == expected


def test_the_log_filter_redacts_messages_args_and_tracebacks(caplog):
    logger = logging.getLogger("kb.test_redaction")
    logger.addFilter(RedactingFilter())
    try:
        with caplog.at_level(logging.INFO, logger="kb.test_redaction"):
            logger.info("search query=%r", f"card {written(VISA, chr(0x2013))}")
            try:
                raise ValueError(f"bad value {VISA}")
            except ValueError:
                logger.exception("failed on %s", "4242 4242 4242 4242 exp 09/27")
    finally:
        logger.filters.clear()
    text = caplog.text
    assert VISA not in text and "4242 4242" not in text and "09/27" not in text
    assert text.count(MASKED) == 3
    assert [r.getMessage() for r in caplog.records] == [
        f"search query='card {MASKED}'",
        f"failed on {MASKED} exp [expiry]",
    ]


def test_install_log_filter_covers_kb_and_gunicorn_loggers_once():
    import kb.web.api_search  # noqa: F401 - its logger exists before the filter is installed, as in create_app

    logging.getLogger("kb.test_install")
    install_log_filter()
    install_log_filter()
    for name in ("kb", "kb.test_install", "kb.web.api_search", "gunicorn.error"):
        assert logging.getLogger(name).filters.count(LOG_FILTER) == 1, name


@pytest.mark.parametrize(
    "identifier",
    [
        "f70986859e8863820994690c99ed5c1866b46b49",  # a git commit whose digit run 8863820994690 passes Luhn
        "6307b82d6f5304c06f6cc66513004105600bcf5c",
        "0066c35e-e36b-4b57-8303-2691906351e0",  # a UUID whose last groups pass Luhn joined by a dash
        "787e119f-9d70-4672-9615-9504607ee7b6",
        "commit:f70986859e8863820994690c99ed5c1866b46b49",  # an audit target
    ],
)
def test_commit_ids_hashes_and_uuids_are_not_card_numbers(identifier):
    assert redact(identifier) == identifier and find_pans(identifier) == []


def test_a_card_number_beside_a_commit_id_is_still_masked():
    text = "revision f70986859e8863820994690c99ed5c1866b46b49, card 4111 1111 1111 1111"
    assert redact(text) == "revision f70986859e8863820994690c99ed5c1866b46b49, card [card ending 1111]"


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1111 exp 09/27 cvv 123 charged twice",
        "card [card ending 1111] exp [expiry] cvv [cvv] charged twice",
    ],
)
def test_strip_pans_searches_a_masked_query_as_the_raw_one(text):
    assert strip_pans(text).split() == ["card", "exp", "cvv", "charged", "twice"]


def test_redact_counted_masks_as_redact_does_and_counts_only_card_numbers():
    text = "card ４１１１ 1111 1111 1111 exp 12/29 cvv 123, then 5500-0000-0000-0004; order 12345678"
    masked, count = redact_counted(text)
    assert masked == redact(text) and count == 2
    assert redact_counted("cvv 123 only") == (redact("cvv 123 only"), 0)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("https://kbuser:tok3n@git.example.com/kb.git", "https://***@git.example.com/kb.git"),
        ("https://tok3n@git.example.com/kb.git", "https://***@git.example.com/kb.git"),
        ("https://user:p@ss@host/r.git", "https://***@host/r.git"),  # an unescaped @ in the password
        (
            "fatal: unable to access 'http://u:t@127.0.0.1:9/x/': refused",
            "fatal: unable to access 'http://***@127.0.0.1:9/x/': refused",
        ),
        ("ssh://git@git.example.com:2222/kb.git", "ssh://***@git.example.com:2222/kb.git"),
        ("git@git.example.com:kb/content.git", "git@git.example.com:kb/content.git"),  # no secret in scp form
        ("write to ann@example.com", "write to ann@example.com"),
        ("https://git.example.com/kb@v2", "https://git.example.com/kb@v2"),  # an @ in the path is no credential
    ],
)
def test_credentials_in_an_address_are_masked_by_redact(text, masked):
    assert mask_credentials(text) == masked and redact(text) == masked

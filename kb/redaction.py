"""Card numbers (PANs), and the CVV and expiry written next to them: found, and masked.

``redact(text)`` is the one redaction function for user text: it NFKC-normalises
the text, then masks every card number as ``[card ending 4242]`` (PCI DSS lets
support staff see the last four digits), a CVV or expiry written next to one as
``[cvv]`` / ``[expiry]``, and a labelled CVV anywhere (``cvv 123``).

A card number is 13 to 19 digits, Luhn-valid, not starting with 0 and not glued
to other digits. Its digits may be any Unicode decimal digits (Arabic-Indic,
Devanagari, full-width, mathematical, superscript ...) and its groups may be
split by up to three separators: any whitespace, any dash, dots, slashes, and
invisible characters (zero-width space and joiners, word joiner, BOM, soft
hyphen) which do not count. Detection runs on a length-preserving "shadow" of
the text (digits folded to ASCII, each separator kind to one character), with
regular expressions whose repetitions are all bounded or possessive-free
character classes, and one pass over digit groups: linear in the text's length.

Digits inside a commit id, a hash (32 or more hex digits with a letter) or a
UUID are not card numbers: one in about 400 random commit ids holds a
Luhn-valid run of 13 digits, which would otherwise be masked in the audit log.

Credentials written into an address (``https://user:token@host/...``, the way a
git remote such as ``KB_CONTENT_REMOTE`` carries them) are masked too, by
:func:`mask_credentials`: the whole user part becomes ``***``. ``redact`` calls
it, so logs, API errors and audit rows never show a token.
"""

from __future__ import annotations

import bisect
import logging
import re
import unicodedata
from dataclasses import dataclass

MASK_TEMPLATE = "[card ending {last4}]"
CVV_MASK = "[cvv]"
EXPIRY_MASK = "[expiry]"
MIN_DIGITS, MAX_DIGITS = 13, 19
MAX_GAP = 3  # visible separator characters allowed between two digit groups
# Among Luhn-valid candidates from one starting group, the lengths real cards use most come first.
_LENGTH_PREFERENCE = {n: i for i, n in enumerate((16, 15, 19, 14, 13, 18, 17))}
_MAX_REMEMBERED_CHARS = 100_000  # distinct characters whose class is remembered (open input)

_DOTS = frozenset("\u00b7\u2024\u2027\u2219\u22c5\u30fb\ufe52\uff0e\uff65")
_SLASHES = frozenset("\u2044\u2215\u29f8\uff0f")
_DASHES = frozenset("\u2212\u02d7\u2043\u2796\ufe63\uff0d")


def _shadow_char(char: str) -> str:
    """The one-character class of char: an ASCII digit, ' ', '-', '.', '/', '_' (invisible), '~' (mark)."""
    if char.isascii():
        if char.isspace():
            return " "
        return "#" if char in "_~" else char
    value = unicodedata.decimal(char, None)
    if value is None:
        folded = unicodedata.normalize("NFKC", char)
        value = unicodedata.decimal(folded, None) if len(folded) == 1 else None
    if value is not None:
        return str(value)
    if char.isspace():
        return " "
    category = unicodedata.category(char)
    if category == "Pd" or char in _DASHES:
        return "-"
    if char in _DOTS:
        return "."
    if char in _SLASHES:
        return "/"
    if category == "Cf":
        return "_"
    if category in ("Mn", "Me"):
        return "~"
    return char


class _ShadowTable(dict):
    """A str.translate table that classifies each character on first sight."""

    def __missing__(self, code: int) -> str:
        shadow = _shadow_char(chr(code))
        if len(self) < _MAX_REMEMBERED_CHARS:
            self[code] = shadow
        return shadow


_TABLE = _ShadowTable({code: _shadow_char(chr(code)) for code in range(128)})

_REGION = re.compile(r"[0-9][0-9 \-./_~]*")
_GROUP = re.compile(r"[0-9][0-9~]*")
_SEPARATOR = r"[ _\-.,;:|()\[\]]{0,4}"
_EXPIRY_LABEL = r"(?:exp(?:iry|ires|iration|\.)?(?:[ _]?date)?|valid[ _]?(?:thru|through|until)|good[ _]?thru)"
_CVV_LABEL = r"(?:cvv2?|cvc2?|cvn2?|cid|csc|security[ _]code|card[ _]verification(?:[ _](?:value|code|number))?)"
_AFTER_LABEL = r"(?:[ _]is)?[ _:=#\-]{0,3}"
_MONTH_YEAR = r"(?:0[1-9]|1[0-2]) ?[/\-.] ?(?:20[0-9]{2}|[0-9]{2})"
# One item of what may follow a card number: an expiry or a CVV, labelled or not.
_TAIL_ITEM = re.compile(
    rf"{_SEPARATOR}(?:"
    rf"{_EXPIRY_LABEL}{_AFTER_LABEL}(?P<labelled_expiry>{_MONTH_YEAR}|0?[1-9] ?/ ?[0-9]{{2,4}}|(?:0[1-9]|1[0-2])[0-9]{{2}})"
    rf"|{_CVV_LABEL}{_AFTER_LABEL}(?P<labelled_cvv>[0-9]{{3,4}})"
    rf"|(?P<expiry>{_MONTH_YEAR})"
    rf"|(?P<cvv>[0-9]{{3,4}})"
    rf")(?![0-9~])",
    re.IGNORECASE,
)
# A labelled CVV anywhere in the text (without a card number next to it).
_LONE_CVV = re.compile(
    rf"(?<![a-z0-9])(?:cvv2?|cvc2?|cvn2?|csc|security[ _]code|card[ _]verification(?:[ _](?:value|code|number))?)"
    rf"{_AFTER_LABEL}(?<![0-9])(?P<cvv>[0-9]{{3,4}})(?![0-9~])",
    re.IGNORECASE,
)
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn_valid(digits: str) -> bool:
    """Return True if a string of ASCII digits passes the Luhn checksum."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        total += _DOUBLED[value] if position % 2 == 1 else value
    return total % 10 == 0


@dataclass(frozen=True)
class PanMatch:
    """A card number found in text: its span and its last four digits."""

    start: int
    end: int
    last4: str


# A separator written as an escape, as repr() and JSON write one ('4242\\xa04242', '4242\\u200b4242').
_ESCAPED_SEPARATOR = re.compile(r"\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[tnrfv])")


def shadow(text: str) -> str:
    """The text with each character replaced by its class (same length; see the module docstring).

    Escaped separators count as invisible ones, so a card number in a repr() of a value is still found.
    """
    shadowed = text.translate(_TABLE)
    if "\\" not in shadowed:
        return shadowed
    return _ESCAPED_SEPARATOR.sub(lambda m: "_" * len(m.group()), shadowed)


def _chain_ends(region: str, groups: list[tuple[int, int, str]]) -> list[int]:
    """For each digit group, the last group a card number starting there may reach.

    Groups chain while the visible separators between two of them are at most MAX_GAP characters and,
    within one chain, all the same (``4111 1111 1111 1111``, not the two dates ``2026-09-01 2026-10-01``);
    invisible separators fit any chain.
    """
    n = len(groups)
    gaps = [region[groups[k][1] : groups[k + 1][0]].replace("_", "").replace("~", "") for k in range(n - 1)]
    reach = [n - 1] * n
    next_styled = n  # the first gap at or after k + 1 with visible separators (n: none)
    for k in range(n - 2, -1, -1):
        gap = gaps[k]
        if len(gap) > MAX_GAP:
            reach[k] = k
        elif not gap or next_styled >= reach[k + 1] or gaps[next_styled] == gap:
            reach[k] = reach[k + 1]
        else:
            reach[k] = next_styled
        if gap:
            next_styled = k
    return reach


def _region_pans(region: str, offset: int) -> list[PanMatch]:
    """Card numbers among the digit groups of one region of the shadow text."""
    groups = [(m.start(), m.end(), m.group().replace("~", "")) for m in _GROUP.finditer(region)]
    reach = _chain_ends(region, groups)
    digits = "".join(g[2] for g in groups)
    first = [0]
    for g in groups:
        first.append(first[-1] + len(g[2]))
    # Luhn sums by prefix: even[p] doubles the digits at even positions before p, odd[p] those at odd ones.
    even, odd = [0], [0]
    for q, char in enumerate(digits):
        value = ord(char) - 48
        even.append(even[-1] + (_DOUBLED[value] if q % 2 == 0 else value))
        odd.append(odd[-1] + (_DOUBLED[value] if q % 2 == 1 else value))
    found: list[PanMatch] = []
    i = 0
    while i < len(groups):
        a, last, best = first[i], reach[i], None
        if digits[a] != "0" and first[last + 1] - a >= MIN_DIGITS:
            j = bisect.bisect_left(first, a + MIN_DIGITS, i + 1) - 1  # the first group ending a long enough number
            while j <= last and first[j + 1] - a <= MAX_DIGITS:
                b = first[j + 1]
                sums = odd if (b - 1) % 2 == 0 else even
                if (sums[b] - sums[a]) % 10 == 0 and (best is None or _LENGTH_PREFERENCE[b - a] < best[0]):
                    best = (_LENGTH_PREFERENCE[b - a], j)
                j += 1
        if best is None:
            i += 1
            continue
        j = best[1]
        found.append(PanMatch(offset + groups[i][0], offset + groups[j][1], digits[first[j + 1] - 4 : first[j + 1]]))
        i = j + 1
    return found


# A hash or a UUID: 32 or more hex digits (a git commit, a sha256) or 8-4-4-4-12, with a letter among them.
_HEX_ID = re.compile(
    r"(?<![0-9A-Za-z])(?:[0-9a-fA-F]{32,}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"(?![0-9A-Za-z])"
)


def _hex_ids(shadowed: str) -> list[tuple[int, int]]:
    """Spans of commit ids, hashes and UUIDs: their digit runs pass Luhn by chance (about 1 in 400 commits)."""
    return [m.span() for m in _HEX_ID.finditer(shadowed) if not m.group().replace("-", "").isdigit()]


def _find(shadowed: str) -> list[PanMatch]:
    found: list[PanMatch] = []
    for region in _REGION.finditer(shadowed):
        if sum(c.isdigit() for c in region.group()) >= MIN_DIGITS:
            found.extend(_region_pans(region.group(), region.start()))
    if found:
        ids = _hex_ids(shadowed)  # in order, not overlapping
        starts = [start for start, _ in ids]

        def inside_an_id(pan: PanMatch) -> bool:
            k = bisect.bisect_right(starts, pan.start) - 1
            return k >= 0 and pan.end <= ids[k][1]

        found = [pan for pan in found if not inside_an_id(pan)]
    return found


def find_pans(text: str) -> list[PanMatch]:
    """Return every card number in text, with spans in text as given (not normalised)."""
    return _find(shadow(text))


def _spans(text: str, template: str, cvv: str, expiry: str) -> list[tuple[int, int, str]]:
    """Every (start, end, replacement) to mask in text: card numbers, the CVV/expiry after them, lone CVVs."""
    shadowed = shadow(text)
    pans = _find(shadowed)
    spans: list[tuple[int, int, str]] = []
    for number, pan in enumerate(pans):
        spans.append((pan.start, pan.end, template.format(last4=pan.last4)))
        limit = pans[number + 1].start if number + 1 < len(pans) else len(text)
        position, unlabelled = pan.end, True
        for _ in range(3):
            item = _TAIL_ITEM.match(shadowed, position, limit)
            if item is None:
                break
            kind = item.lastgroup
            if kind == "cvv" and not unlabelled:
                break
            unlabelled = unlabelled and kind in ("expiry", "cvv")
            spans.append((item.start(kind), item.end(kind), cvv if kind.endswith("cvv") else expiry))
            position = item.end()
    starts, ends = [s for s, _, _ in spans], [e for _, e, _ in spans]  # in order, not overlapping
    for lone in _LONE_CVV.finditer(shadowed):
        start, end = lone.span("cvv")
        before = bisect.bisect_right(starts, start) - 1
        if (before < 0 or ends[before] <= start) and (before + 1 >= len(starts) or starts[before + 1] >= end):
            spans.append((start, end, cvv))
    return sorted(spans)


def _replace(text: str, spans: list[tuple[int, int, str]]) -> str:
    parts, last = [], 0
    for start, end, replacement in spans:
        parts.append(text[last:start])
        parts.append(replacement)
        last = end
    parts.append(text[last:])
    return "".join(parts)


def mask_pans(text: str, template: str = MASK_TEMPLATE) -> str:
    """Mask card numbers (and the CVV/expiry next to them) in text as written, without normalising it."""
    return _replace(text, _spans(text, template, CVV_MASK, EXPIRY_MASK))


# scheme://userinfo@ : the user part runs to the last "@" before the host ends (a "/", "?", "#" or a space).
_CREDENTIALS = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]{0,30}://)[^/?#\s@]*(?:@[^/?#\s@]*)*@")
CREDENTIALS_MASK = "***"


def mask_credentials(text: str) -> str:
    """Mask the user part of every address in text: ``https://user:token@host/x`` -> ``https://***@host/x``."""
    if "@" not in text:
        return text
    return _CREDENTIALS.sub(lambda match: f"{match['scheme']}{CREDENTIALS_MASK}@", text)


def redact(text: str) -> str:
    """The one redaction function: NFKC-normalise text, then mask every card number, CVV and expiry in it, and
    the credentials in any address (:func:`mask_credentials`)."""
    return mask_credentials(mask_pans(unicodedata.normalize("NFKC", text)))


def redact_counted(text: str) -> tuple[str, int]:
    """redact(text), and how many card numbers it masked (CVVs and expiries are masked, not counted)."""
    normal = unicodedata.normalize("NFKC", text)
    spans = _spans(normal, MASK_TEMPLATE, CVV_MASK, EXPIRY_MASK)
    masked = mask_credentials(_replace(normal, spans))
    return masked, sum(1 for _, _, mask in spans if mask not in (CVV_MASK, EXPIRY_MASK))


_MASKS = re.compile(r"\[card ending [0-9]{4}\]|\[cvv\]|\[expiry\]")
MASK_KINDS = ("card", "cvv", "expiry")


def count_masks(text: str) -> dict[str, int]:
    """How many masks text holds, by kind: {"card": n, "cvv": n, "expiry": n} (redactions, counted after the fact)."""
    counts = dict.fromkeys(MASK_KINDS, 0)
    for mask in _MASKS.finditer(text):
        found = mask.group()
        counts["cvv" if found == CVV_MASK else "expiry" if found == EXPIRY_MASK else "card"] += 1
    return counts


def strip_pans(text: str) -> str:
    """NFKC-normalise text and remove card numbers, CVVs and expiries (for searching: they carry no meaning).

    Their masks go too: a query masked once (the search page's address after its redirect) searches the same.
    """
    normal = unicodedata.normalize("NFKC", text)
    return _MASKS.sub(" ", _replace(normal, _spans(normal, " ", " ", " ")))


def redact_data(value: object) -> object:
    """Redact every string (and every number holding a card number) in nested JSON-like data; keys too."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        text = str(value)
        return redact(text) if find_pans(text) else value
    if isinstance(value, dict):
        return {redact(str(k)): redact_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(v) for v in value]
    return redact(str(value))


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's message (formatted with its args), traceback and stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record in place; never drops it."""
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is logging's to report
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


LOG_FILTER = RedactingFilter()
LOGGERS = ("kb", "gunicorn.error", "werkzeug")


def install_log_filter() -> None:
    """Redact every record of kb's loggers and gunicorn's error log, and everything their handlers write."""
    manager = logging.Logger.manager
    names = [*LOGGERS, *(name for name in list(manager.loggerDict) if name.startswith("kb."))]
    loggers = [logging.getLogger(name) for name in names] + [logging.getLogger()]
    for logger in loggers:
        targets = [logger, *logger.handlers] if logger.name != "root" else list(logger.handlers)
        for target in targets:
            if LOG_FILTER not in target.filters:
                target.addFilter(LOG_FILTER)

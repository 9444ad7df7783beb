"""Card-number (PAN) detection with a Luhn check, and masking.

A PAN here is 13 to 19 digits, optionally grouped by single spaces or dashes,
not touching other digits, whose Luhn checksum is valid. Masking keeps the last
four digits, which PCI DSS allows support staff to see.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# 13-19 digits with optional single space/dash separators, not glued to other digits.
_CANDIDATE = re.compile(r"(?<![\d])\d(?:[ -]?\d){12,18}(?![\d])")
MASK_TEMPLATE = "[card ending {last4}]"


def luhn_valid(digits: str) -> bool:
    """Return True if a string of digits passes the Luhn checksum."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


@dataclass(frozen=True)
class PanMatch:
    """A card number found in text: its span and its last four digits."""

    start: int
    end: int
    last4: str


def find_pans(text: str) -> list[PanMatch]:
    """Return every Luhn-valid 13-19 digit card number in text."""
    found = []
    for match in _CANDIDATE.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            found.append(PanMatch(match.start(), match.end(), digits[-4:]))
    return found


def mask_pans(text: str, template: str = MASK_TEMPLATE) -> str:
    """Return text with every card number replaced by ``[card ending NNNN]`` (or another template)."""
    parts, last = [], 0
    for pan in find_pans(text):
        parts.append(text[last : pan.start])
        parts.append(template.format(last4=pan.last4))
        last = pan.end
    parts.append(text[last:])
    return "".join(parts)


def strip_pans(text: str) -> str:
    """Return text with every card number removed (for searching: a PAN carries no meaning)."""
    return mask_pans(text, " ")


def redact(text: str) -> str:
    """The one redaction function: NFKC-normalise text, then mask every card number in it."""
    return mask_pans(unicodedata.normalize("NFKC", text))

import pytest

from kb.redaction import find_pans, luhn_valid, mask_pans, strip_pans


@pytest.mark.parametrize(
    "digits, valid",
    [("4111111111111111", True), ("4111111111111112", False), ("5555555555554444", True), ("378282246310005", True)],
)
def test_luhn_valid(digits, valid):
    assert luhn_valid(digits) is valid


@pytest.mark.parametrize(
    "text, expected",
    [
        ("card 4111111111111111 declined", "card [card ending 1111] declined"),
        ("card 4111 1111 1111 1111 declined", "card [card ending 1111] declined"),
        ("card 4111-1111-1111-1111.", "card [card ending 1111]."),
        ("amex 3782 822463 10005", "amex [card ending 0005]"),
        ("two: 4111111111111111 and 5555555555554444", "two: [card ending 1111] and [card ending 4444]"),
    ],
)
def test_mask_pans_replaces_luhn_valid_card_numbers(text, expected):
    assert mask_pans(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "order 4111111111111112 is not a card",  # fails Luhn
        "short 411111111111",  # 12 digits
        "arn 74123456789012345678901",  # 23 digits: longer than any PAN
        "amount 1,000.00 on 2026-09-01",
        "ticket #12345 and phone 555 0100",
    ],
)
def test_mask_pans_leaves_other_numbers(text):
    assert find_pans(text) == []
    assert mask_pans(text) == text


def test_strip_pans_removes_card_numbers_entirely():
    assert strip_pans("card 4111 1111 1111 1111 declined") == "card   declined"

import pytest

from kb.figures import figure_of, keywords_of, unit_of, written_figures
from kb.values import parse_values

VALUES, _ = parse_values(
    """\
values:
  refund_window_days:
    value: 30
    description: Days after delivery within which a refund may be requested.
  tier2_ack_business_days:
    value: 1
    description: Business days within which Tier 2 acknowledges an escalation.
  card_refund_posting_business_days:
    value: 5 to 10
    description: Business days a card refund takes to appear.
  tier1_refund_limit_usd:
    value: 100
    description: Largest refund Tier 1 approves.
  qa_pass_score:
    value: 85
    description: Pass mark of the quality scorecards.
    unit: percent
    keywords: [pass mark]
  compensation_repeat_limit:
    value: 3
    description: Compensations in 90 days before a team lead approves.
"""
)


def found(text):
    return [(f.line, f.text, f.value.name) for f in written_figures(text, VALUES)]


@pytest.mark.parametrize(
    "name, unit, keywords, figure",
    [
        ("refund_window_days", "days", ("refund", "window"), (30,)),
        ("tier2_ack_business_days", "business days", ("tier2", "ack"), (1,)),
        ("card_refund_posting_business_days", "business days", ("card", "refund", "posting"), (5, 10)),
        ("tier1_refund_limit_usd", "usd", ("tier1", "refund", "limit"), (100,)),
        ("qa_pass_score", "percent", ("pass", "mark"), (85,)),
        ("compensation_repeat_limit", None, ("compensation", "repeat", "limit"), (3,)),
    ],
)
def test_a_value_has_a_unit_key_words_and_a_figure(name, unit, keywords, figure):
    value = VALUES[name]
    assert unit_of(value) == unit and keywords_of(value) == keywords and figure_of(value) == figure


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The refund window is 30 days from delivery.", [(0, "30 days", "refund_window_days")]),
        ("Intro.\n| Refund window | 30-day |", [(1, "30-day", "refund_window_days")]),
        ("Tier 2 acknowledges within one business day.", [(0, "one business day", "tier2_ack_business_days")]),
        (
            "Card refunds are posted in 5-10 business days.",
            [(0, "5-10 business days", "card_refund_posting_business_days")],
        ),
        ("Tier 1 may refund up to $100 without a limit check.", [(0, "$100", "tier1_refund_limit_usd")]),
        ("Tier 1 may refund up to 100 USD within its limit.", [(0, "100 USD", "tier1_refund_limit_usd")]),
        ("The pass mark is 85%.", [(0, "85%", "qa_pass_score")]),
    ],
)
def test_a_written_figure_next_to_the_value_s_key_words_is_found(text, expected):
    assert found(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "The refund window is {{refund_window_days}} days.",  # the placeholder itself
        "Visa allows 30 days for a dispute response.",  # same figure, other key words
        "The refund window is 31 days.",  # other number
        "The refund window is 30 hours.",  # other unit
        "Refunds post in 30 days. The window closes later.",  # key words split over two sentences
        "Tier 2 acknowledges within 1 day.",  # days are not business days
        "A team lead approves the 3rd compensation in a row.",  # a count has no unit: never matched
        "Refund window: 130 days.",  # part of a larger number
    ],
)
def test_other_figures_are_not_reported(text):
    assert found(text) == []

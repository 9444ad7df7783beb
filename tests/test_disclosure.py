from kb.disclosure import disclosures, macro_lines, macros, risk_signals
from kb.values import parse_values

VALUES, _ = parse_values(
    "values:\n  do_not_say_risk_signals:\n    value: usual device, IP address, VPN, risk score\n"
    "    description: Risk signals no macro may name.\n"
)

BODY = """\
## Decision rules

Never tell the customer the purchases came from their usual device.

## Customer macros

### Macro: Not confirmed

> Hi [first name], the purchases were made from your usual devices and IP address.

### If they ask why

> We used a VPN check.

## Escalation

> Quote: the risk score was high.
"""


def test_the_signals_are_the_shared_value_split_on_commas():
    assert risk_signals(VALUES) == ("usual device", "IP address", "VPN", "risk score")
    assert risk_signals({}) == ()


def test_only_block_quotes_in_macro_sections_are_macros():
    assert [(line, heading) for line, _, heading in macro_lines(BODY)] == [
        (8, "Macro: Not confirmed"),
        (12, "If they ask why"),
    ]


def test_a_macro_naming_a_risk_signal_is_found_with_its_line_plural_and_case_included():
    found = [(d.line, d.signal) for d in disclosures(BODY, VALUES)]
    assert found == [(8, "usual device"), (8, "IP address"), (12, "VPN")]


def test_words_that_only_contain_a_signal_are_not_matched():
    body = "## Customer macros\n\n### Macro: A\n\n> Use the VPNs page or an unusual device-free flow: risk scores.\n"
    assert [d.signal for d in disclosures(body, VALUES)] == ["VPN", "risk score"]
    body = "## Customer macros\n\n### Macro: A\n\n> Our zipvpn and usual-devices pages.\n"
    assert disclosures(body, VALUES) == []


def test_each_macro_has_its_heading_anchor_and_plain_text():
    body = "## Customer macros\n\n### Macro: Refund sent\n\n> Hi [first name], **your refund** of 5 USD\n> is on its way.\n>\n> Thanks.\n\n### Notes\n\nNo quote here.\n"
    (macro,) = macros(body)
    assert (macro.heading, macro.anchor) == ("Macro: Refund sent", "macro-refund-sent")
    assert macro.text == "Hi [first name], your refund of 5 USD is on its way.\nThanks."  # a line per paragraph
    assert [m.heading for m in macros(BODY)] == ["Macro: Not confirmed", "If they ask why"]

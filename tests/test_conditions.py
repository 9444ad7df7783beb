"""Metadata conditions (kb.conditions): checking Dify's conditions, matching records, narrowing the index filters."""

from __future__ import annotations

import datetime as dt

import pytest

from kb.conditions import Condition, check_condition, matches, narrowing
from kb.indexing.filters import Filters

META = {
    "sop_id": "pay-duplicate-charge",
    "title": "Duplicate charges",
    "type": "sop",
    "business_line": "all",
    "categories": ["payments/duplicate-charge", "payments/pending-hold"],
    "tags": ["refund", "authorization"],
    "owner": "payments-policy",
    "path": "all/pay-duplicate-charge.md",
    "heading": "Macro: Duplicate refunded",
    "anchor": "macro-duplicate-refunded",
    "revision": "b2eb335626143620c1f607e868c503909523e60a",
    "effective": "2026-09-01",
    "review_by": "2027-03-01",
}


def condition(name, operator, value=None) -> Condition:
    part, problem, checked = check_condition(name, operator, value)
    assert checked is not None, (part, problem)
    return checked


@pytest.mark.parametrize(
    "name, operator, value, holds",
    [
        ("sop_id", "is", "pay-duplicate-charge", True),
        ("sop_id", "is not", "pay-duplicate-charge", False),
        ("sop_id", "in", ["x", "pay-duplicate-charge"], True),
        ("sop_id", "in", "pay-duplicate-charge", True),
        ("sop_id", "not in", ["x", "y"], True),
        ("title", "contains", "DUPLICATE", True),
        ("title", "not contains", "refund", True),
        ("heading", "start with", "macro", True),
        ("path", "end with", ".MD", True),
        ("owner", "empty", None, False),
        ("owner", "not empty", None, True),
        ("categories", "contains", "payments", True),  # a group holds its categories
        ("categories", "contains", "payment", False),  # not a prefix of words
        ("categories", "contains", "payments/pending-hold", True),
        ("categories", "not contains", "payouts", True),
        ("categories", "in", ["payouts/delayed", "payments/duplicate-charge"], True),
        ("categories", "not in", ["payouts"], True),
        ("tags", "contains", "refund", True),
        ("tags", "contains", "ref", False),
        ("tags", "empty", None, False),
        ("effective", "before", "2026-09-02", True),
        ("effective", "before", "2026-09-01", False),
        ("effective", "after", "2026-08-31T23:00:00", True),
        ("review_by", "after", dt.datetime(2027, 4, 1, tzinfo=dt.UTC).timestamp(), False),
        (["categories", "tags"], "contains", "refund", True),  # any of the named fields
        (["title", "heading"], "start with", "zzz", False),
    ],
)
def test_a_condition_holds_as_documented(name, operator, value, holds):
    assert condition(name, operator, value).holds(META) is holds


@pytest.mark.parametrize(
    "name, operator, value, part, words",
    [
        ("nope", "is", "x", "name", "not a metadata field"),
        ([], "is", "x", "name", "field name"),
        (5, "is", "x", "name", "field name"),
        ("categories", ">", 3, "comparison_operator", "not supported for categories"),
        ("sop_id", "before", "2026-01-01", "comparison_operator", "not supported for sop_id"),
        ("effective", "is", "2026-01-01", "comparison_operator", "not supported for effective"),
        ("title", "like", "x", "comparison_operator", "Dify's operators"),
        ("sop_id", "in", [1, 2], "value", "list of strings"),
        ("sop_id", "in", [], "value", "list of strings"),
        ("sop_id", "in", ["x"] * 51, "value", "at most 50"),
        ("sop_id", "is", 5, "value", "needs a string"),
        ("sop_id", "is", None, "value", "needs a string"),
        ("sop_id", "contains", "x" * 201, "value", "at most 200"),
        ("effective", "after", "next week", "value", "needs a date"),
        ("effective", "after", True, "value", "needs a date"),
    ],
)
def test_a_condition_kb_cannot_check_names_the_part_and_why(name, operator, value, part, words):
    found_part, problem, checked = check_condition(name, operator, value)
    assert checked is None and found_part == part and words in problem


def test_and_needs_every_condition_or_needs_one_and_none_passes_everything():
    yes, no = condition("type", "is", "sop"), condition("type", "is", "policy")
    assert matches([yes, yes], "and", META) and not matches([yes, no], "and", META)
    assert matches([no, yes], "or", META) and not matches([no, no], "or", META)
    assert matches([], "and", META) and matches([], "or", META)


def test_conditions_that_are_index_filters_narrow_the_open_slots_only_under_and():
    categories = {"payments", "payments/duplicate-charge"}
    conditions = [
        condition("business_line", "is", "subscriptions"),
        condition("type", "is", "policy"),
        condition("categories", "contains", "payments"),
    ]
    assert narrowing(conditions, "and", None, categories) == Filters("subscriptions", "payments", "policy")
    assert narrowing(conditions, "or", None, categories) is None
    knowledge = Filters(business_line="e-commerce")
    assert narrowing(conditions, "and", knowledge, categories) == Filters("e-commerce", "payments", "policy")
    unknown = [condition("categories", "contains", "nope"), condition("business_line", "is", "mars")]
    assert narrowing(unknown, "and", None, categories) is None  # not index values: checked afterwards only
    assert narrowing([condition(["type", "title"], "is", "sop")], "and", None, categories) is None

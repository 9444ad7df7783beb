import pytest

from kb.indexing import fusion
from kb.indexing.fusion import boost, collapse, fuse, rrf


def test_rrf_sums_reciprocal_ranks():
    fused = dict(rrf({"keyword": ["a", "b"], "semantic": ["b", "c"]}, k=60))
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["a"] == pytest.approx(1 / 61)
    assert fused["c"] == pytest.approx(1 / 62)


def test_rrf_orders_best_first_and_keeps_first_seen_order_on_ties():
    assert [k for k, _ in rrf({"x": ["a", "b"], "y": ["b", "a"]})] == ["a", "b"]
    assert [k for k, _ in rrf({"x": ["a", "b"], "y": ["c", "b"]})][0] == "b"


def test_rrf_weights():
    fused = dict(rrf({"x": ["a"], "y": ["b"]}, k=0, weights={"x": 2.0}))
    assert fused == {"a": 2.0, "b": 1.0}


def test_rrf_empty():
    assert rrf({}) == [] and rrf({"x": []}) == []


def test_collapse_keeps_one_group_per_sop_with_its_best_section_first():
    scored = [("s1#a", 0.9), ("s2#a", 0.8), ("s1#b", 0.7), ("s3#a", 0.6), ("s1#c", 0.5)]
    groups = collapse(scored, lambda key: key.split("#")[0], limit=2, max_others=1)
    assert [(g.sop_id, g.best, g.score) for g in groups] == [("s1", "s1#a", 0.9), ("s2", "s2#a", 0.8)]
    assert groups[0].others == (("s1#b", 0.7),)


def test_boost_adds_sop_level_reciprocal_ranks_and_resorts():
    groups = collapse([("s1#a", 0.5), ("s2#a", 0.4)], lambda key: key.split("#")[0], limit=None)
    boosted = boost(groups, {"taxonomy": ["s2", "s9"]}, k=0, weights={"taxonomy": 0.25})
    assert [(g.sop_id, g.score) for g in boosted] == [("s2", pytest.approx(0.65)), ("s1", 0.5)]
    assert boosted[0].best == "s2#a"  # the cited section does not change


def test_boost_ignores_sops_without_a_matching_section():
    groups = collapse([("s1#a", 0.5)], lambda key: key.split("#")[0], limit=None)
    assert [g.sop_id for g in boost(groups, {"taxonomy": ["s7", "s1"]}, k=10, weights=None)] == ["s1"]


def test_fuse_ranks_section_keys_from_scored_lists():
    fused = fuse({"keyword": [("a", 12.0), ("b", 3.0)], "semantic": [("b", 0.9)]}, k=0)
    assert fused == [("b", 1.5), ("a", 1.0)]


@pytest.mark.parametrize(
    "confidence, full, expected",
    [
        (0.8, 0.5, 1.5),  # confident: the full weight, never more
        (0.5, 0.5, 1.5),
        (0.25, 0.5, 0.75),  # half as close as it takes: half the weight
        (-0.2, 0.5, 0.0),  # a negative cosine gives no weight
        (0.1, 0.0, 1.5),  # 0 turns the scaling off
    ],
)
def test_a_ranking_s_weight_scales_with_its_confidence(confidence, full, expected):
    assert fusion.confidence_weight(1.5, confidence, full) == pytest.approx(expected)


def test_collapse_cites_a_group_by_its_best_citable_section():
    scored = [("a#related", 0.9), ("a#purpose", 0.5), ("b#refunds", 0.4), ("a#macro", 0.3)]
    [a, b] = collapse(scored, lambda key: key.split("#")[0], None, citable=lambda key: not key.endswith("related"))
    assert (a.sop_id, a.best, a.score) == ("a", "a#purpose", 0.9)  # ranked as before, cited elsewhere
    assert a.others == (("a#macro", 0.3),)  # a links-only section is never among the others either
    assert b.best == "b#refunds"


def test_collapse_cites_the_fallback_when_only_a_links_only_section_matched():
    scored = [("a#related", 0.9), ("b#refunds", 0.4)]
    groups = collapse(
        scored,
        lambda key: key.split("#")[0],
        None,
        citable=lambda key: not key.endswith("related"),
        fallback=lambda sop_id: f"{sop_id}#purpose",
    )
    assert [(g.sop_id, g.best, g.score, g.others) for g in groups] == [
        ("a", "a#purpose", 0.9, ()),
        ("b", "b#refunds", 0.4, ()),
    ]
    dropped = collapse(
        scored,
        lambda key: key.split("#")[0],
        None,
        citable=lambda key: not key.endswith("related"),
        fallback=lambda sop_id: None,
    )
    assert [g.sop_id for g in dropped] == ["b"]  # a document with no citable section at all is left out

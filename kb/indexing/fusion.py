"""Reciprocal rank fusion and collapsing per SOP: pure functions over plain data."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

DEFAULT_RRF_K = 10


def rrf(
    rankings: Mapping[str, Sequence[str]], k: int = DEFAULT_RRF_K, weights: Mapping[str, float] | None = None
) -> list[tuple[str, float]]:
    """Fuse ranked lists of keys by reciprocal rank: score = sum of w / (k + rank).

    Args:
        rankings: name of a ranking -> keys, best first.
        k: the RRF constant; larger values flatten the advantage of top ranks.
        weights: optional weight per ranking (default 1.0).

    Returns:
        (key, fused score) pairs, best first; ties keep the order of first appearance.
    """
    scores: dict[str, float] = {}
    for name, keys in rankings.items():
        weight = 1.0 if weights is None else weights.get(name, 1.0)
        for rank, key in enumerate(keys, start=1):
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
    order = {key: i for i, key in enumerate(scores)}
    return sorted(scores.items(), key=lambda item: (-item[1], order[item[0]]))


def fuse(
    rankings: Mapping[str, Sequence[tuple[str, float]]],
    k: int = DEFAULT_RRF_K,
    weights: Mapping[str, float] | None = None,
) -> list[tuple[str, float]]:
    """Hybrid ranking of section keys from each retriever's (key, score) list: the one fusion kb uses.

    Args:
        rankings: retriever name ("keyword", "semantic") -> (key, score), best first.
        k: the RRF constant.
        weights: optional weight per retriever.

    Returns:
        (key, fused score) pairs, best first.
    """
    return rrf({name: [key for key, _ in ranked] for name, ranked in rankings.items()}, k=k, weights=weights)


def confidence_weight(weight: float, confidence: float, full: float) -> float:
    """A ranking's weight scaled by its confidence: full weight from `full` up, in proportion below it.

    A ranking that is sure of nothing (the taxonomy ranking of a query no category phrasing resembles)
    still orders every SOP; at full weight it would push the right SOP out of the head.

    Args:
        weight: the ranking's configured weight.
        confidence: the ranking's confidence for this query (for the taxonomy, the best phrasing cosine).
        full: the confidence at which the full weight applies; 0 or less turns scaling off.
    """
    if full <= 0:
        return weight
    return weight * min(1.0, max(0.0, confidence / full))


@dataclass(frozen=True)
class Group:
    """One SOP in the results: its best section and its other matching sections."""

    sop_id: str
    score: float
    best: str
    others: tuple[tuple[str, float], ...]


def boost(
    groups: Sequence[Group], sop_rankings: Mapping[str, Sequence[str]], k: int, weights: Mapping[str, float] | None
) -> list[Group]:
    """Add reciprocal-rank scores from rankings of whole SOPs to the groups' fused scores, and re-sort.

    Args:
        groups: SOPs with their fused section scores.
        sop_rankings: name of a ranking -> SOP ids, best first (SOPs without a group are ignored).
        k: the RRF constant.
        weights: optional weight per ranking (default 1.0).

    Returns:
        The same groups with the added scores, best first; ties keep their order.
    """
    extra = dict(rrf(sop_rankings, k=k, weights=weights))
    rescored = [Group(g.sop_id, g.score + extra.get(g.sop_id, 0.0), g.best, g.others) for g in groups]
    return sorted(rescored, key=lambda g: -g.score)


def collapse(
    scored: Sequence[tuple[str, float]],
    sop_of: Callable[[str], str],
    limit: int | None,
    max_others: int = 3,
    citable: Callable[[str], bool] | None = None,
    fallback: Callable[[str], str | None] | None = None,
) -> list[Group]:
    """Group scored section keys by SOP, keeping each SOP's best section first.

    Args:
        scored: (section key, score), best first.
        sop_of: maps a section key to its SOP id.
        limit: how many SOPs to return (None: all).
        max_others: how many further sections to keep per SOP.
        citable: whether a section may be cited (default: every one). A group is ranked by its first section
            as before, but cites its first citable one, and lists only citable ones among its others.
        fallback: the section to cite for an SOP none of whose scored sections is citable (None: leave the
            SOP out); without it such an SOP is left out.

    Returns:
        Groups ordered by their first section's score.
    """
    groups: dict[str, list[tuple[str, float]]] = {}
    for key, score in scored:
        groups.setdefault(sop_of(key), []).append((key, score))
    out = []
    for sop_id, members in groups.items():
        cited = members if citable is None else [m for m in members if citable(m[0])]
        best = cited[0][0] if cited else (fallback(sop_id) if fallback else None)
        if best is None:
            continue
        others = tuple(m for m in cited if m[0] != best)[:max_others]
        out.append(Group(sop_id, members[0][1], best, others))
        if len(out) == limit:
            break
    return out

"""Ranking metrics for "each query ranks its own candidate list, ground truth at index 0".

Ties are counted against the ground truth (a candidate scoring exactly as high as the GT ranks above it), so
an encoder that gives every candidate the same score gets rank C, never a free hit."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

VLM2VEC_KS = (1, 5, 10)
VLM2VEC_NAMES = ("hit", "ndcg", "precision", "recall", "map", "mrr")
GT_KIND = "gt"


def ranking(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """Candidate indices best first; among equal scores the ground truth (index 0) comes last."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"scores must be a non-empty vector, got shape {s.shape}")
    is_gt = np.zeros(s.size, dtype=np.int8)
    is_gt[0] = 1
    # lexsort sorts by the last key first: descending score, then GT after its ties, then index.
    return np.lexsort((np.arange(s.size), is_gt, -s))


def gt_rank(scores: Sequence[float] | np.ndarray) -> int:
    """1-based rank of candidate 0."""
    return int(np.nonzero(ranking(scores) == 0)[0][0]) + 1


def summary(ranks: Iterable[int]) -> dict[str, float]:
    """hit@1 (= precision@1), hit@5 and MRR over a set of queries, given each query's GT rank."""
    r = np.asarray(list(ranks), dtype=np.float64)
    if r.size == 0:
        return {"hit@1": math.nan, "hit@5": math.nan, "mrr": math.nan, "n": 0}
    return {
        "hit@1": float(np.mean(r <= 1)),
        "hit@5": float(np.mean(r <= 5)),
        "mrr": float(np.mean(1.0 / r)),
        "n": int(r.size),
    }


def vlm2vec_scores(ranks: Iterable[int]) -> dict[str, float]:
    """The `{name}_score.json` set: hit/ndcg/precision/recall/map/mrr at 1, 5, 10 with one relevant item.

    With a single relevant candidate at rank r: hit@k = recall@k = [r <= k]; precision@k = [r <= k] / k;
    ndcg@k = [r <= k] / log2(r + 1) (the ideal DCG is 1); map@k = mrr@k = [r <= k] / r."""
    r = np.asarray(list(ranks), dtype=np.float64)
    out: dict[str, float] = {"num_queries": int(r.size)}
    for k in VLM2VEC_KS:
        inside = r <= k
        per_query = {
            "hit": inside.astype(np.float64),
            "ndcg": np.where(inside, 1.0 / np.log2(r + 1.0), 0.0),
            "precision": inside / k,
            "recall": inside.astype(np.float64),
            "map": np.where(inside, 1.0 / r, 0.0),
            "mrr": np.where(inside, 1.0 / r, 0.0),
        }
        for name in VLM2VEC_NAMES:
            out[f"{name}@{k}"] = float(per_query[name].mean()) if r.size else math.nan
    return out


def kind_wins(scores: Sequence[float] | np.ndarray, kinds: Sequence[str]) -> dict[str, bool]:
    """For each distractor kind present in this query: does the GT score strictly above all of that kind?"""
    s = np.asarray(scores, dtype=np.float64)
    if len(kinds) != s.size:
        raise ValueError(f"{len(kinds)} candidate kinds for {s.size} candidates")
    best: dict[str, float] = {}
    for score, kind in zip(s[1:], kinds[1:], strict=True):
        if kind != GT_KIND:
            best[kind] = max(best.get(kind, -math.inf), float(score))
    return {kind: bool(s[0] > top) for kind, top in best.items()}


def kind_accuracy(per_query: Iterable[dict[str, bool]]) -> dict[str, dict[str, float]]:
    """Per distractor kind: share of the queries that have that kind whose GT beats all of them."""
    wins: dict[str, list[bool]] = {}
    for q in per_query:
        for kind, won in q.items():
            wins.setdefault(kind, []).append(won)
    return {kind: {"accuracy": float(np.mean(w)), "n": len(w)} for kind, w in sorted(wins.items())}


def macro_mean(values: Iterable[float]) -> float:
    """Unweighted mean (the benchmarks' "overall" averages subsets / tasks, not queries)."""
    v = [x for x in values if not math.isnan(x)]
    return float(np.mean(v)) if v else math.nan

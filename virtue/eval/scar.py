"""The SCaR protocol: each query ranks its own 10 captions; precision@1 (= hit@1), hit@5 and MRR per subset,
overall as the unweighted mean of the subsets (as the paper's table), plus accuracy per distractor kind."""

from __future__ import annotations

from collections.abc import Sequence

from ..data.types import EvalQuery
from .encode import Encoder, QueryResult, score_queries
from .metrics import kind_accuracy, macro_mean, summary

MEANS = ("hit@1", "hit@5", "mrr")


def scar_metrics(results: Sequence[QueryResult]) -> dict:
    by_subset: dict[str, list[QueryResult]] = {}
    for r in results:
        by_subset.setdefault(r.task, []).append(r)
    subsets = {
        name: {**summary(r.rank for r in rs), "kinds": kind_accuracy(r.kind_wins for r in rs)}
        for name, rs in sorted(by_subset.items())
    }
    overall = {m: macro_mean(s[m] for s in subsets.values()) for m in MEANS}
    overall["n"] = len(results)
    overall["micro"] = summary(r.rank for r in results)
    return {"subsets": subsets, "overall": overall, "kinds": kind_accuracy(r.kind_wins for r in results)}


def run_scar(queries: Sequence[EvalQuery], encode: Encoder, *, batch_size: int) -> tuple[dict, list[QueryResult]]:
    results = score_queries(queries, encode, batch_size=batch_size, desc="SCaR")
    return scar_metrics(results), results

"""(c, evaluation) Evaluation throughput in queries/s over the micro SCaR-synth and MMEB-synth eval sets,
each protocol encoded as `virtue eval` does (`virtue.eval.encode.score_queries`: every distinct side once),
against the same scoring with every query's query and candidates encoded as they come (no deduplication),
in batches of the same size. MMEB's classification and VQA tasks share candidate lists; SCaR's captions
are almost all distinct, so deduplication buys little there."""

from __future__ import annotations

import numpy as np
import torch

from ..numerics import score_tolerance, scores_agree
from .common import BenchWorkspace, Side, comparison, log, timed


def score_without_dedup(queries, encode, *, batch_size: int) -> list[np.ndarray]:
    """The baseline: every (query, candidates...) side encoded, duplicates included; scores per query."""
    sides = [side for q in queries for side in (q.query, *q.candidates)]
    rows = []
    with torch.inference_mode():
        for start in range(0, len(sides), batch_size):
            rows.append(encode(sides[start : start + batch_size]).float())
    emb = torch.cat(rows)  # [sum(1 + C), D]
    out, at = [], 0
    for q in queries:
        c = len(q.candidates)
        out.append((emb[at + 1 : at + 1 + c] @ emb[at]).numpy())
        at += 1 + c
    return out


def eval_throughput(ws: BenchWorkspace, *, repeats: int, batch_size: int) -> dict:
    from ..data import read_mmeb_eval
    from ..data.scar import read_scar_eval
    from ..eval.encode import score_queries
    from ..eval.run import model_encoder
    from ..models import build_embedder

    cfg = ws.config()
    sets = {"scar": read_scar_eval(ws.root / "scar", prompt=cfg.data.prompt), "mmeb": read_mmeb_eval(ws.root / "mmeb")}
    embedder, processor = build_embedder(cfg.model)
    embedder.eval()
    encode = model_encoder(embedder, processor, "cpu")
    n = sum(len(q) for q in sets.values())
    counts = {}
    for name, queries in sets.items():
        sides = [s for q in queries for s in (q.query, *q.candidates)]
        counts[name] = {"queries": len(queries), "sides": len(sides), "distinct_sides": len(set(sides))}
    a = Side("deduplicated encoding", "queries/s")
    b = Side("every side encoded", "queries/s")
    agree = True
    for r in range(repeats):
        log(f"eval throughput: repeat {r + 1}/{repeats}")
        for dedup in (True, False) if r % 2 == 0 else (False, True):
            total = 0.0
            for name, queries in sets.items():
                if dedup:
                    seconds, results = timed(lambda q=queries: score_queries(q, encode, batch_size=batch_size))
                    counts[name]["_scores"] = [res.scores for res in results]
                else:
                    seconds, plain = timed(lambda q=queries: score_without_dedup(q, encode, batch_size=batch_size))
                    counts[name]["_plain"] = plain
                total += seconds
            (a if dedup else b).values.append(n / total)
    # The same scores either way, else the comparison would be meaningless. Batches of other shapes round
    # differently (in the backbones' dtype, and differently on each CPU's kernels): equal within that rounding.
    dtype = getattr(torch, cfg.model.dtype)
    for c in counts.values():
        pairs = zip(c.pop("_scores"), c.pop("_plain"), strict=True)
        agree = agree and all(scores_agree(x, y, dtype) for x, y in pairs)
    return comparison(
        "eval_throughput_dedup",
        a,
        b,
        target=None,
        higher_is_better=True,
        method=(__doc__ or "").replace("\n", " "),
        sets=counts,
        batch_size=batch_size,
        scores_agree=agree,
        score_tolerance=score_tolerance(dtype),
    )

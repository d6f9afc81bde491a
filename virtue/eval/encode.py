"""Encode the sides of a set of evaluation queries once each, in batches, and score every query's candidates.

An encoder is any callable `encode(sides: list[Side]) -> Tensor[N, D]` returning L2-normalised rows; the score
of a candidate is the cosine similarity, i.e. the dot product of the two embeddings."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from ..data.types import EvalQuery, Side
from ..train.distributed import gather_rows, rank_world
from .metrics import gt_rank, kind_wins, ranking

Encoder = Callable[[list[Side]], torch.Tensor]


@dataclass(frozen=True)
class QueryResult:
    qid: str
    task: str
    scores: np.ndarray  # [C] cosine similarity of each candidate, index 0 the ground truth
    order: np.ndarray  # [C] candidate indices, best first
    rank: int  # 1-based rank of the ground truth
    kind_wins: dict[str, bool]  # per distractor kind: GT above all of that kind

    @property
    def predicted(self) -> int:
        return int(self.order[0])


def embed_sides(
    sides: Sequence[Side], encode: Encoder, *, batch_size: int, desc: str
) -> tuple[dict[Side, int], torch.Tensor]:
    """Deduplicate `sides` (same text, image and prompt -> one row) and encode the distinct ones in batches.
    Returns (side -> row, Tensor[U, D]). In a process group (torchrun, a multi-task job) every rank calls it
    with the same sides, encodes its own share and gets the whole matrix back."""
    index: dict[Side, int] = {}
    for side in sides:
        index.setdefault(side, len(index))
    unique = list(index)
    # Batches of alike sides (text-only with text-only, short with short) pad far less: a caption batched with
    # image queries would be padded to their image-token length.
    order = sorted(range(len(unique)), key=lambda i: (unique[i].image is not None, len(unique[i].text), i))
    rank, world = rank_world()
    # A strided share of the sorted order: every rank gets alike sides of every kind, so the ranks finish
    # together; a single process's share is the whole order (the same batches as without a group).
    mine = order[rank::world]
    rows: list[torch.Tensor] = []
    quiet = not sys.stderr.isatty() or rank != 0
    bar = tqdm(total=len(mine), desc=desc, unit="side", disable=quiet, leave=False)
    with torch.inference_mode():
        for start in range(0, len(mine), batch_size):
            batch = [unique[i] for i in mine[start : start + batch_size]]
            out = encode(batch)
            if out.ndim != 2 or out.shape[0] != len(batch):
                raise ValueError(f"encoder returned shape {tuple(out.shape)} for {len(batch)} sides")
            rows.append(out.detach().to(torch.float32).cpu())
            bar.update(len(batch))
    bar.close()
    sorted_rows = torch.cat(rows) if rows else torch.zeros(0, 0)
    if world > 1:
        sorted_rows = gather_rows(sorted_rows)  # rank r's rows are order[r::world]
        order = [i for r in range(world) for i in order[r::world]]
    matrix = torch.zeros(0, 0)
    if order:
        matrix = torch.empty_like(sorted_rows)
        matrix[torch.tensor(order)] = sorted_rows  # back to first-seen order: row index[side]
    return index, matrix


def score_queries(
    queries: Sequence[EvalQuery], encode: Encoder, *, batch_size: int, desc: str = ""
) -> list[QueryResult]:
    """Rank each query's own candidates by cosine similarity."""
    # Queries and candidates share one pass: a side embeds the same whichever role it plays.
    index, emb = embed_sides(
        [side for q in queries for side in (q.query, *q.candidates)], encode, batch_size=batch_size, desc=desc
    )
    results = []
    for q in queries:
        if not q.candidates:
            raise ValueError(f"{q.qid or q.task}: query has no candidates")
        rows = torch.tensor([index[c] for c in q.candidates])
        scores = (emb[rows] @ emb[index[q.query]]).numpy().astype(np.float64)  # [C]
        kinds = q.candidate_kinds
        results.append(
            QueryResult(
                qid=q.qid,
                task=q.task,
                scores=scores,
                order=ranking(scores),
                rank=gt_rank(scores),
                kind_wins=kind_wins(scores, kinds) if kinds else {},
            )
        )
    return results

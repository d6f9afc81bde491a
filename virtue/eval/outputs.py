"""Evaluation outputs, each written atomically: per-task `{task}_score.json` / `{task}_pred.jsonl` in the VLM2Vec
convention, one predictions.parquet for all queries, and metrics.json."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..io import atomic_path, write_json, write_text
from .encode import QueryResult
from .metrics import vlm2vec_scores

TOP_K = 10


def safe_name(task: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", task) or "_"


def write_task_files(folder: Path, results: Sequence[QueryResult]) -> list[Path]:
    """`{task}_score.json` (hit/ndcg/precision/recall/map/mrr @1,5,10) and `{task}_pred.jsonl` (one line per query:
    top-10 candidate indices best first, the label and its relevance, the GT rank and all scores)."""
    by_task: dict[str, list[QueryResult]] = {}
    for r in results:
        by_task.setdefault(r.task, []).append(r)
    written = []
    for task, rs in sorted(by_task.items()):
        score_path = folder / f"{safe_name(task)}_score.json"
        write_json(score_path, vlm2vec_scores(r.rank for r in rs))
        lines = [
            json.dumps(
                {
                    "qid": r.qid,
                    "prediction": [int(i) for i in r.order[:TOP_K]],
                    "label": [0],
                    "rel_scores": [1],
                    "rank": r.rank,
                    "scores": [round(float(s), 6) for s in r.scores],
                }
            )
            for r in rs
        ]
        pred_path = folder / f"{safe_name(task)}_pred.jsonl"
        write_text(pred_path, "\n".join(lines) + "\n")
        written += [score_path, pred_path]
    return written


def write_predictions(path: Path, results: Mapping[str, Sequence[QueryResult]]) -> None:
    """One row per query: protocol, qid, task, rank of every candidate, scores, predicted index, GT rank."""
    rows: dict[str, list] = {k: [] for k in ("protocol", "qid", "task", "ranks", "scores", "predicted", "gt_rank")}
    for protocol, rs in results.items():
        for r in rs:
            ranks = [0] * len(r.order)
            for position, cand in enumerate(r.order):
                ranks[int(cand)] = position + 1
            rows["protocol"].append(protocol)
            rows["qid"].append(r.qid)
            rows["task"].append(r.task)
            rows["ranks"].append(ranks)
            rows["scores"].append([float(s) for s in r.scores])
            rows["predicted"].append(r.predicted)
            rows["gt_rank"].append(r.rank)
    schema = pa.schema(
        [
            ("protocol", pa.string()),
            ("qid", pa.string()),
            ("task", pa.string()),
            ("ranks", pa.list_(pa.int32())),
            ("scores", pa.list_(pa.float64())),
            ("predicted", pa.int32()),
            ("gt_rank", pa.int32()),
        ]
    )
    with atomic_path(path) as tmp:
        pq.write_table(pa.table(rows, schema=schema), tmp)


def write_all(out_dir: Path, metrics: dict, results: Mapping[str, Sequence[QueryResult]]) -> None:
    """Per-task files first and metrics.json last, so a metrics.json on disk means the folder is complete."""
    for protocol, rs in results.items():
        write_task_files(out_dir / protocol, rs)
    write_predictions(out_dir / "predictions.parquet", results)
    write_json(out_dir / "metrics.json", metrics)

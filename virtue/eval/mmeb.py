"""The MMEB protocol: precision@1 per task; meta-task, IND, OOD and overall are unweighted means over tasks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..data.types import EvalQuery
from ..errors import UserError
from .encode import Encoder, QueryResult, score_queries
from .metrics import macro_mean, summary

META_TASKS = ("cls", "vqa", "ret", "grd")
SPLITS = ("IND", "OOD")


def mmeb_metrics(results: Sequence[QueryResult], task_info: Mapping[str, Mapping[str, str]]) -> dict:
    by_task: dict[str, list[QueryResult]] = {}
    for r in results:
        by_task.setdefault(r.task, []).append(r)
    missing = sorted(set(by_task) - set(task_info))
    if missing:
        raise UserError(f"MMEB task info: no meta-task/split for task(s) {', '.join(missing)}")
    tasks = {
        name: {
            **summary(r.rank for r in rs),
            "meta_task": task_info[name]["meta_task"],
            "split": task_info[name]["split"],
        }
        for name, rs in sorted(by_task.items())
    }

    def mean_where(key: str, value: str) -> float:
        return macro_mean(t["hit@1"] for t in tasks.values() if t[key] == value)

    return {
        "tasks": tasks,
        "meta_tasks": {
            m: mean_where("meta_task", m) for m in META_TASKS if any(t["meta_task"] == m for t in tasks.values())
        },
        **{s: mean_where("split", s) for s in SPLITS},
        "overall": macro_mean(t["hit@1"] for t in tasks.values()),
        "n": len(results),
    }


def run_mmeb(
    queries: Sequence[EvalQuery], task_info: Mapping[str, Mapping[str, str]], encode: Encoder, *, batch_size: int
) -> tuple[dict, list[QueryResult]]:
    results = score_queries(queries, encode, batch_size=batch_size, desc="MMEB")
    return mmeb_metrics(results, task_info), results

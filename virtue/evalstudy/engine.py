"""What both evaluation-only studies share: the main path's trained variants loaded as they were evaluated,
conditions scored in one pass per variant (a caption shared by many conditions is embedded once), per-query
outcomes, and paired comparisons in the statistics of the ablation studies (virtue/eval/paired.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import ExperimentConfig, load_resolved
from ..data.types import EvalQuery
from ..errors import UserError
from ..eval.encode import Encoder, score_queries
from ..eval.paired import compare
from ..eval.run import load_weights, model_encoder


@dataclass
class LoadedVariant:
    name: str
    run_dir: Path
    cfg: ExperimentConfig
    embedder: object
    processor: object
    encode: Encoder


def load_variant(runs: Path, experiment: str, variant: str, root: Path) -> LoadedVariant:
    """runs/<experiment>-<variant>: its resolved config.yaml (the dtype and settings it trained with) and its
    trained weights, evaluated on the CPU without the feature cache (the prompts here are new)."""
    from ..models import build_embedder

    run_dir = runs / f"{experiment}-{variant}"
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"{run_dir}: no trained run of variant {variant} (run the main path first: dvc repro train)")
    cfg = load_resolved(run_dir / "config.yaml")
    embedder, processor = build_embedder(cfg.model, root=root, device="cpu", for_eval=True)
    load_weights(embedder, run_dir, variant=variant)
    embedder.eval()
    return LoadedVariant(variant, run_dir, cfg, embedder, processor,
                         model_encoder(embedder, processor, "cpu", None, cfg.train.autocast))  # fmt: skip


@dataclass(frozen=True)
class Outcomes:
    """Per-query results of one variant under one condition, in the condition's query order."""

    qids: tuple[str, ...]  # the base query each row was made from (shared across conditions: the pairing)
    tasks: tuple[str, ...]
    hit: np.ndarray  # [Q] 1.0 where the ground truth ranks first
    top: np.ndarray  # [Q] index of the best-scored candidate

    def p_at_1(self) -> float:
        return macro_hit(self.hit, self.tasks)


def macro_hit(hit: np.ndarray, tasks: Sequence[str]) -> float:
    """Unweighted mean over subsets / tasks of the mean hit (the benchmarks' overall metric)."""
    tasks = np.asarray(tasks)
    return float(np.mean([hit[tasks == t].mean() for t in np.unique(tasks)])) if len(hit) else float("nan")


def score_conditions(
    encode: Encoder, conditions: dict[str, list[EvalQuery]], *, batch_size: int, desc: str
) -> dict[str, Outcomes]:
    """Score every condition's queries in one pass (queries' qids are '<base qid>|<condition>')."""
    flat = [q for qs in conditions.values() for q in qs]
    results = score_queries(flat, encode, batch_size=batch_size, desc=desc)
    out: dict[str, Outcomes] = {}
    i = 0
    for name, qs in conditions.items():
        rs = results[i : i + len(qs)]
        i += len(qs)
        out[name] = Outcomes(
            qids=tuple(q.qid.split("|")[0] for q in qs),
            tasks=tuple(q.task for q in qs),
            hit=np.array([float(r.rank == 1) for r in rs]),
            top=np.array([r.predicted for r in rs]),
        )
    return out


def paired(a: Outcomes, b: Outcomes, *, n_boot: int, seed: int) -> dict:
    """a - b on the queries both answered (paired bootstrap over queries, stratified by subset / task). The
    models are the main path's single trained runs: the interval covers query sampling, not seeds."""
    common = sorted(set(a.qids) & set(b.qids))
    if not common:
        raise ValueError("the two conditions share no query")
    ia = {q: i for i, q in enumerate(a.qids)}
    ib = {q: i for i, q in enumerate(b.qids)}
    xa = a.hit[[ia[q] for q in common]]
    xb = b.hit[[ib[q] for q in common]]
    tasks = [a.tasks[ia[q]] for q in common]
    strata = np.unique(tasks, return_inverse=True)[1]
    c = compare(xa[None], xb[None], strata, n_boot=n_boot, rng_seed=seed)
    return {"delta": c.delta, "low": c.low, "high": c.high, "verdict": c.verdict, "n": len(common)}

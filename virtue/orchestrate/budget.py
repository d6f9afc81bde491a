"""The per-trial budget of the default studies, read from params.yaml in one place: the `sweeps:` block (steps,
seeds, trials, workers, executor, the study list) and the main path's training recipe that every trial shares
(source, batch size, hard negatives, evaluation batch, the backbones' pre-training). The DVC sweep stages pass
`--budget-from params.yaml`; `virtue bench` prices a cell with the same numbers."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.yamlfile import read_yaml
from ..errors import UserError


@dataclass(frozen=True)
class Budget:
    sets: list[str]  # --set overrides of every trial
    seeds: int
    trials: int
    workers: int
    executor: str
    studies: list[str]
    cells: dict[str, list[str]]  # study -> the cells its default run trains (absent: all)
    eval_queries: int  # SCaR + MMEB eval queries of the synthetic sets
    steps: int
    batch_size: int
    hard_negatives: int
    experiment: str
    main_path: list[str]  # the overrides dvc.yaml's train stage gives every variant (from params.yaml)
    variants: list[str]
    slurm: dict[str, Any] = field(default_factory=dict)  # sweeps.slurm: every trial's Slurm resources


def _get(params: dict, path: str, where: Path) -> Any:
    """params[a][b]... for 'a.b'; a missing key names the file and the key."""
    node: Any = params
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise UserError(f"{where}: {path}: missing (the sweep budget reads it)")
        node = node[part]
    return node


def read_budget(path: str | os.PathLike) -> Budget:
    where = Path(path)
    params = read_yaml(where)
    if not isinstance(params, dict):
        raise UserError(f"{where}: the top level must be a mapping")

    def g(key: str) -> Any:
        return _get(params, key, where)

    # steps: null = the main path's own budget, so that its trained variants are cells of the studies too
    same = (params.get("sweeps") or {}).get("steps") is None
    steps = g("train.steps") if same else g("sweeps.steps")
    warmup = g("train.warmup_steps") if same else g("sweeps.warmup_steps")
    sets = [
        f"train.steps={steps}",
        f"train.warmup_steps={warmup}",
        f"train.source={g('train.source')}",
        f"train.batch_size={g('train.batch_size')}",
        f"train.hard_negatives={g('train.hard_negatives')}",
        f"eval.batch_size={g('eval.batch_size')}",
        f"pretrain.seed={g('pretrain.seed')}",
        f"pretrain.sam.steps={g('pretrain.sam.steps')}",
    ]
    t = g("train")
    if "compile" in t:  # (absent: the schema's default, eager)
        sets.append(f"train.compile={t['compile']}")
    from ..data.synth.mmeb import TASKS
    from ..data.synth.scar import SUBSETS

    queries = len(SUBSETS) * int(g("synth.scar_eval_per_subset")) + len(TASKS) * int(g("synth.mmeb_eval_per_task"))
    keys = ("seed", "source", "steps", "batch_size", "warmup_steps", "hard_negatives", "compile")
    main = [f"train.{k}={t[k]}" for k in keys if k in t]
    return Budget(
        sets=sets,
        seeds=int(g("sweeps.seeds")),
        trials=int(g("sweeps.trials")),
        workers=int(g("sweeps.workers")),
        executor=str(g("sweeps.executor")),
        studies=list(g("sweeps.studies")),
        cells={k: [str(x) for x in v] for k, v in ((params.get("sweeps") or {}).get("cells") or {}).items()},
        eval_queries=queries,
        steps=int(steps),
        batch_size=int(g("train.batch_size")),
        hard_negatives=int(g("train.hard_negatives")),
        experiment=str(g("experiment")),
        main_path=[f"name={g('experiment')}", "train.output_dir=runs/train/{name}", *main],
        variants=list(g("variants")),
        slurm=_slurm(params, where),
    )


def _slurm(params: dict, where: Path) -> dict[str, Any]:
    """sweeps.slurm (optional): a mapping of launcher fields, checked here so that a typo names the file."""
    from pydantic import ValidationError

    from ..config.launcher import LauncherConfig

    block = (params.get("sweeps") or {}).get("slurm") or {}
    if not isinstance(block, dict):
        raise UserError(f"{where}: sweeps.slurm: must be a mapping of launcher fields")
    try:
        LauncherConfig(kind="slurm", **block)
    except (ValidationError, TypeError) as e:
        first = e.errors()[0] if isinstance(e, ValidationError) else {"loc": (), "msg": str(e)}
        key = ".".join(str(x) for x in first["loc"])
        raise UserError(f"{where}: sweeps.slurm.{key}: {first['msg']}") from None
    return block


def with_resources(spec, base: dict[str, Any]):
    """The study with its Slurm resources: the launcher defaults, then `base` (params.yaml's sweeps.slurm),
    then the keys the study file sets in its own `slurm:` block (a per-study override)."""
    from .study import sweep_launcher

    own = spec.slurm.model_dump(exclude_unset=True)
    return spec.model_copy(update={"slurm": sweep_launcher(**{**base, **own, "kind": "slurm"})})

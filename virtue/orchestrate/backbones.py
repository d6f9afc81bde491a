"""Backbones a study's cells need that the main pipeline does not make (sweeps/studies/sam_backbone.yaml:
tiny SAM-2s of other capacities), pre-trained by the sweep driver before the trials.

Only SAM-2 is trained: `virtue pretrain`'s own code with the VLM steps set to 0 and its (untrained) VLM
written to a scratch folder beside the SAM-2, so the extra backbones get exactly the main SAM-2's recipe and
budget (the study's overrides and --set, e.g. pretrain.sam.steps). metrics.json next to each holds its
held-out mIoU."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..config import ExperimentConfig, load_experiment
from ..paths import in_workspace, workspace_root
from .study import BackboneJob, StudySpec

# The VLM half of `virtue pretrain` is skipped: no steps, and the smallest held-out set its evaluation accepts.
SAM_ONLY = ["pretrain.vlm.steps=0", "pretrain.vlm.eval_images=2"]


def backbone_config(spec: StudySpec, job: BackboneJob) -> ExperimentConfig:
    side = f"{job.path.rstrip('/')}-pretrain"
    overrides = [*spec.overrides, *job.overrides, *SAM_ONLY]
    vlm = load_experiment(spec.experiment, overrides).model.vlm
    # `virtue pretrain` builds a VLM too: the experiment's own architecture, saved in the scratch folder
    arch = vlm.arch or vlm.preset or "qwen2vl-tiny"
    return load_experiment(
        spec.experiment,
        [
            *overrides,
            f"model.sam.path={job.path}",
            "model.sam.preset=null",
            f"model.vlm.path={side}/qwen2vl-untrained",
            "model.vlm.preset=null",
            f"model.vlm.arch={arch}",
            f"pretrain.output_dir={side}",
        ],
    )


def missing_backbones(spec: StudySpec) -> list[BackboneJob]:
    """The study's backbones that a cell of this run reads (--cells may leave some out) and that do not exist."""
    root = workspace_root()
    used = {o for c in spec.cells for o in c.overrides}
    return [
        b
        for b in spec.backbones
        if f"model.sam.path={b.path}" in used
        and not in_workspace(b.path, root).is_dir()
    ]


@dataclass(frozen=True)
class BackboneTask:
    """The unit the executor runs (picklable): pre-train one SAM-2 with `threads` torch threads."""

    cfg: ExperimentConfig
    threads: int | None = None

    def __call__(self) -> dict:
        import torch

        from ..train.pretrain import pretrain

        if self.threads:
            torch.set_num_threads(self.threads)
        out = pretrain(self.cfg)
        return json.loads((out / "metrics.json").read_text(encoding="utf-8"))


def pretrain_backbones(spec: StudySpec, *, executor: str, workers: int, threads: int | None, folder: Path) -> None:
    """Pre-train the study's missing backbones, `workers` at a time, where the trials would run."""
    from .launcher import make_executor, wait

    tasks = [BackboneTask(backbone_config(spec, b), threads) for b in missing_backbones(spec)]
    if executor == "debug":
        for task in tasks:
            task()
        return
    launcher = spec.slurm if executor == "slurm" else spec.slurm.model_copy(update={"kind": "local"})
    ex = make_executor(launcher, f"backbones-{spec.name}", folder=folder)
    for i in range(0, len(tasks), workers):
        jobs = [ex.submit(task) for task in tasks[i : i + workers]]
        for task, job in zip(tasks[i : i + workers], jobs, strict=True):
            wait(job, f"{spec.name}: pre-training {task.cfg.model.sam.path}")

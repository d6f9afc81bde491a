"""What a training run folder holds, and whether a config may continue it.

A run folder (train.output_dir) keeps config.yaml, checkpoints/, metrics.jsonl and the final weights. A rerun
into it resumes (train.resume: auto) only when it would compute the same run: every config field that
changes the weights must equal the stored config.yaml's. Otherwise the rerun would resume one run's
checkpoints under another config (a finished 1700-step run rerun with train.steps=30 would save the
1700-step weights labelled step 30), so it is refused before anything in the folder is written."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..config import ExperimentConfig, flatten, load_resolved
from ..errors import UserError
from ..io import write_text
from .checkpoint import checkpoints

# Fields that do not change the weights a run ends with: where it is tracked and launched, how often it
# checkpoints, whether frozen features come from the cache (bit-identical either way), evaluation, the name
# and the folder itself (a copied or moved run folder continues), and how the backbones and the synthetic data
# were made (training reads them from their folders: what is in those folders is what counts).
FREE = (
    "name",
    "tracking.",
    "launcher.",
    "eval.",
    "pretrain.",
    "data.synth.",
    "train.resume",
    "train.checkpoint_every",
    "train.feature_cache",
    "train.output_dir",
    "train.num_workers",  # where the inputs are prepared: the same bits (tests/train/test_step_loader.py)
    "train.prefetch_factor",
)


def result_fields(cfg: ExperimentConfig) -> dict:
    return {k: v for k, v in flatten(cfg).items() if not k.startswith(FREE)}


def holds_run(run_dir: Path) -> bool:
    """Whether the folder holds a run a rerun would resume: a complete checkpoint (a finished run keeps its
    last one, written before its final weights)."""
    return bool(checkpoints(run_dir / "checkpoints"))


def check_run_folder(cfg: ExperimentConfig, run_dir: str | os.PathLike) -> None:
    """Raise UserError, touching nothing, when `cfg` must not train into `run_dir`: the folder holds a run of
    another config, or of an unknown one, or train.resume=never would overwrite it."""
    run_dir = Path(run_dir)
    if not holds_run(run_dir):
        return
    if cfg.train.resume == "never":
        raise UserError(
            f"{run_dir}: already holds a run and train.resume=never would overwrite it; "
            "remove the folder or choose another train.output_dir"
        )
    stored = run_dir / "config.yaml"
    if not stored.is_file():
        raise UserError(f"{run_dir}: holds checkpoints but no config.yaml, so nothing says what they were trained with")
    try:
        old = result_fields(load_resolved(stored))
    except UserError as e:
        raise UserError(f"{run_dir}: its config.yaml does not read as a config of this version ({e})") from None
    new = result_fields(cfg)
    diffs = [k for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
    if diffs:
        k = diffs[0]
        more = f", and {len(diffs) - 1} more" if len(diffs) > 1 else ""
        raise UserError(
            f"{run_dir}: holds a run of another config ({k}: {old.get(k)!r} there, {new.get(k)!r} now{more}); "
            "rerun it with its own config to resume, or choose another train.output_dir"
        )


def trim_metrics(path: Path, last_step: int) -> None:
    """A resumed run replays the steps after its checkpoint: drop their earlier lines from metrics.jsonl so
    that every step is recorded once (a torn last line goes too)."""
    if not path.is_file():
        return
    kept, dropped = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            step = json.loads(line).get("step")
        except ValueError:
            dropped = True
            continue
        if isinstance(step, int) and step > last_step:
            dropped = True
            continue
        kept.append(line)
    if dropped:
        write_text(path, "".join(f"{x}\n" for x in kept))

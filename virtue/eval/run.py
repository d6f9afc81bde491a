"""`evaluate(cfg, checkpoint, out_dir=...)`: build the embedder, load the trained weights, run the SCaR and MMEB
protocols that cfg.eval enables on the folders cfg.data names (synthetic or real: the same readers), write the
outputs. `run_protocols` is the model-free core (any encoder), used by evaluate and by the tests."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from ..config import ExperimentConfig, write_resolved
from ..data.types import EvalQuery, Side
from ..errors import UserError
from ..paths import workspace_root
from .encode import Encoder, QueryResult
from .mmeb import run_mmeb
from .outputs import write_all
from .scar import run_scar

WEIGHT_NAMES = ("trainable.safetensors", "final.safetensors", "model.safetensors")


def run_protocols(
    encode: Encoder,
    *,
    batch_size: int,
    out_dir: str | os.PathLike,
    scar: Sequence[EvalQuery] | None = None,
    mmeb: Sequence[EvalQuery] | None = None,
    mmeb_tasks: Mapping[str, Mapping[str, str]] | None = None,
    meta: Mapping | None = None,
) -> dict:
    """Run the protocols whose queries are given, write every output under out_dir, return the metrics."""
    metrics: dict = dict(meta or {})
    results: dict[str, list[QueryResult]] = {}
    if scar is not None:
        metrics["scar"], results["scar"] = run_scar(scar, encode, batch_size=batch_size)
    if mmeb is not None:
        if mmeb_tasks is None:
            raise ValueError("the MMEB protocol needs the task info (meta-task and split of each task)")
        metrics["mmeb"], results["mmeb"] = run_mmeb(mmeb, mmeb_tasks, encode, batch_size=batch_size)
    write_all(Path(out_dir), metrics, results)
    return metrics


def find_weights(checkpoint: str | os.PathLike) -> Path:
    """A safetensors file, or a training run folder holding the final trainable weights."""
    p = Path(checkpoint)
    if p.is_file():
        return p
    if not p.is_dir():
        raise UserError(f"{p}: no such checkpoint file or run folder")
    for name in WEIGHT_NAMES:
        if (p / name).is_file():
            return p / name
    found = sorted(p.glob("*.safetensors"))
    if len(found) == 1:
        return found[0]
    raise UserError(f"{p}: no final weights ({' or '.join(WEIGHT_NAMES)}) in this run folder")


def load_weights(embedder, path: Path) -> None:
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except Exception as e:  # a corrupt or foreign file: one line for the user, not a traceback
        raise UserError(f"{path}: cannot read safetensors weights: {e}") from e
    embedder.load_trainable_state_dict(state)


def model_encoder(embedder, processor, device: str) -> Encoder:
    def encode(sides: list[Side]) -> torch.Tensor:
        return embedder(processor(sides).to(device))

    return encode


def resolve(root: Path, path: str | None) -> str | None:
    return None if path is None else str(root / path)


def evaluate(cfg: ExperimentConfig, checkpoint: str | os.PathLike | None, *, out_dir: str | os.PathLike) -> dict:
    """Evaluate the embedder of `cfg` with the trainable weights from `checkpoint` (None: as built)."""
    from ..data import mmeb_task_info, read_mmeb_eval, read_scar_eval
    from ..models import build_embedder

    root = workspace_root()
    out_dir = Path(out_dir)
    weights = find_weights(checkpoint) if checkpoint is not None else None  # before the slow model build
    device = "cuda" if torch.cuda.is_available() else "cpu"
    embedder, processor = build_embedder(cfg.model, root=root, device=device)
    if weights is not None:
        load_weights(embedder, weights)
    embedder.eval()
    d = cfg.data
    image_root = resolve(root, d.image_root)
    scar = mmeb = tasks = None
    if cfg.eval.scar:
        scar = read_scar_eval(root / d.scar_dir, prompt=d.prompt, image_root=image_root, skip_invalid=d.skip_invalid)
    if cfg.eval.mmeb:
        mmeb = read_mmeb_eval(root / d.mmeb_dir, image_root=image_root, skip_invalid=d.skip_invalid)
        tasks = mmeb_task_info(root / d.mmeb_dir)
    meta = {
        "experiment": cfg.name,
        "variant": cfg.model.variant,
        "checkpoint": None if weights is None else os.path.relpath(weights, root),
        "scar_dir": d.scar_dir,
        "mmeb_dir": d.mmeb_dir,
        "prompt": d.prompt,
    }
    write_resolved(cfg, out_dir)
    return run_protocols(
        model_encoder(embedder, processor, device),
        batch_size=cfg.eval.batch_size,
        out_dir=out_dir,
        scar=scar,
        mmeb=mmeb,
        mmeb_tasks=tasks,
        meta=meta,
    )


def output_dir(cfg: ExperimentConfig) -> Path:
    return workspace_root() / cfg.eval.output_dir.format(name=cfg.name)


def evaluate_job(cfg: ExperimentConfig, checkpoint: str | None, out_dir: str | os.PathLike) -> dict:
    """Positional form of `evaluate` for the launcher (submitit pickles the callable and its arguments)."""
    return evaluate(cfg, checkpoint, out_dir=out_dir)

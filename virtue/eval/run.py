"""`evaluate(cfg, checkpoint, out_dir=...)`: build the embedder, load the trained weights, run the SCaR and MMEB
protocols that cfg.eval enables on the folders cfg.data names (synthetic or real: the same readers), write the
outputs. `run_protocols` is the model-free core (any encoder), used by evaluate and by the tests."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.distributed as dist

from ..config import ExperimentConfig, write_resolved
from ..data.types import EvalQuery, Side
from ..errors import UserError
from ..paths import workspace_root
from ..train.checkpoint import find_weights, read_weights
from ..train.distributed import init_distributed, rank_world, shutdown_distributed
from .encode import Encoder, QueryResult
from .mmeb import run_mmeb
from .outputs import write_all
from .scar import run_scar


def run_protocols(
    encode: Encoder,
    *,
    batch_size: int,
    out_dir: str | os.PathLike,
    scar: Sequence[EvalQuery] | None = None,
    mmeb: Sequence[EvalQuery] | None = None,
    mmeb_tasks: Mapping[str, Mapping[str, str]] | None = None,
    meta: Mapping | None = None,
    cfg: ExperimentConfig | None = None,
) -> dict:
    """Run the protocols whose queries are given, write every output under out_dir (with cfg's resolved
    config.yaml), return the metrics. Nothing is written before every protocol has run, so a failed
    evaluation leaves an earlier one in out_dir as it was. In a process group every rank calls it: the ranks
    share the encoding, each gets the same metrics back, and rank 0 alone writes."""
    metrics: dict = dict(meta or {})
    results: dict[str, list[QueryResult]] = {}
    if scar is not None:
        metrics["scar"], results["scar"] = run_scar(scar, encode, batch_size=batch_size)
    if mmeb is not None:
        if mmeb_tasks is None:
            raise ValueError("the MMEB protocol needs the task info (meta-task and split of each task)")
        metrics["mmeb"], results["mmeb"] = run_mmeb(mmeb, mmeb_tasks, encode, batch_size=batch_size)
    for name, rs in results.items():
        if not rs:
            raise UserError(f"{name}: no evaluation queries were read (every row skipped?): nothing to measure")
    rank, world = rank_world()
    if rank == 0:
        if cfg is not None:
            write_resolved(cfg, out_dir)
        write_all(Path(out_dir), metrics, results)
    if world > 1:
        dist.barrier()  # every rank returns once the outputs exist: its caller may read them next
    return metrics


def load_weights(embedder, path: str | os.PathLike, variant: str | None = None) -> None:
    """Trained weights (a file, or a run folder) into `embedder`. With `variant`, weights recorded as trained
    for another variant are refused: global's and crop's adapters have the same shapes, so nothing else
    would tell that a global run is being evaluated as crop."""
    path = find_weights(path)
    state, meta = read_weights(path)
    trained_as = meta.get("variant")
    if variant is not None:
        trained_as = trained_as or _run_variant(path.parent)
        if trained_as is not None and trained_as != variant:
            raise UserError(
                f"{path}: weights trained as model.variant={trained_as}, but this model is {variant} "
                f"(set model.variant={trained_as}, or give a {variant} run)"
            )
    try:
        embedder.load_trainable_state_dict(state)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None


def _run_variant(folder: Path) -> str | None:
    """The variant in the config.yaml of the run folder holding a weights file, if any."""
    from ..config import load_resolved

    try:
        return load_resolved(folder / "config.yaml").model.variant if (folder / "config.yaml").is_file() else None
    except UserError:
        return None


def model_encoder(embedder, processor, device: str, cache=None, autocast: str = "off") -> Encoder:
    """sides -> embeddings; with a FeatureCache the frozen backbones' outputs come from (and go to) it, as in
    training: evaluating many trials of one study then runs SAM-2 and the vision tower once per image.
    `autocast`: train.autocast, so that evaluation runs the trained forward in the precision it trained in."""
    from ..train.loop import Encoder as CachedEncoder

    enc = CachedEncoder(embedder, processor, device, cache, autocast=autocast)

    def encode(sides: list[Side]) -> torch.Tensor:
        return enc.forward(enc.prepare(sides))

    return encode


def feature_cache(cfg: ExperimentConfig, embedder):
    """The training run's frozen-feature cache (train.feature_cache), or None."""
    if not cfg.train.feature_cache:
        return None
    from ..train.cache import FeatureCache

    root = workspace_root() / cfg.train.feature_cache_dir
    return FeatureCache(root, embedder.frozen_fingerprint())


def resolve(root: Path, path: str | None) -> str | None:
    return None if path is None else str(root / path)


def evaluate(cfg: ExperimentConfig, checkpoint: str | os.PathLike | None, *, out_dir: str | os.PathLike) -> dict:
    """Evaluate the embedder of `cfg` with the trainable weights from `checkpoint` (None: as built). Under
    torchrun or in a multi-task job the ranks join one group, as in training, and share the encoding; a group
    joined here is left here (one a training run in this process joined stays for it)."""
    own_group = not (dist.is_available() and dist.is_initialized())
    try:
        return _evaluate(cfg, checkpoint, out_dir=out_dir)
    finally:
        if own_group:
            shutdown_distributed()


def _evaluate(cfg: ExperimentConfig, checkpoint: str | os.PathLike | None, *, out_dir: str | os.PathLike) -> dict:
    from ..models import build_embedder

    root = workspace_root()
    weights = find_weights(checkpoint) if checkpoint is not None else None  # before the slow model build
    device = init_distributed().device  # this rank's GPU under torchrun, as in training
    embedder, processor = build_embedder(cfg.model, root=root, device=device, for_eval=True)
    if weights is not None:
        load_weights(embedder, weights, variant=cfg.model.variant)
    checkpoint_name = None if weights is None else os.path.relpath(weights, root)
    return evaluate_embedder(cfg, embedder, processor, out_dir=out_dir, checkpoint=checkpoint_name, device=device)


def evaluate_embedder(
    cfg: ExperimentConfig,
    embedder,
    processor,
    *,
    out_dir: str | os.PathLike,
    checkpoint: str | None = None,
    device: str = "cpu",
) -> dict:
    """Run cfg's protocols on an embedder as it is (e.g. in the middle of training: an intermediate
    evaluation); it is put in eval mode for the duration and back after."""
    from ..data import mmeb_task_info, read_mmeb_eval, read_scar_eval

    root = workspace_root()
    was_training = embedder.training
    embedder.eval()
    d = cfg.data
    image_root = resolve(root, d.image_root)
    scar = mmeb = tasks = None
    if cfg.eval.scar:
        scar = read_scar_eval(
            root / d.scar_dir, d.prompt, image_root, skip_invalid=d.skip_invalid, split=cfg.eval.split
        )
    if cfg.eval.mmeb:
        mmeb = read_mmeb_eval(root / d.mmeb_dir, image_root=image_root, skip_invalid=d.skip_invalid)
        tasks = mmeb_task_info(root / d.mmeb_dir)
    meta = {
        "experiment": cfg.name,
        "variant": cfg.model.variant,
        "checkpoint": checkpoint,
        "scar_dir": d.scar_dir,
        "mmeb_dir": d.mmeb_dir,
        "prompt": d.prompt,
    }
    try:
        return run_protocols(
            model_encoder(embedder, processor, device, feature_cache(cfg, embedder), cfg.train.autocast),
            batch_size=cfg.eval.batch_size,
            out_dir=Path(out_dir),
            scar=scar,
            mmeb=mmeb,
            mmeb_tasks=tasks,
            meta=meta,
            cfg=cfg,
        )
    finally:
        embedder.train(was_training)


def output_dir(cfg: ExperimentConfig) -> Path:
    return workspace_root() / cfg.eval.output_dir.format(name=cfg.name)


def evaluate_job(cfg: ExperimentConfig, checkpoint: str | None, out_dir: str | os.PathLike) -> dict:
    """Positional form of `evaluate` for the launcher (submitit pickles the callable and its arguments)."""
    return evaluate(cfg, checkpoint, out_dir=out_dir)

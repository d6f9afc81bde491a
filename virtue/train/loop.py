"""Contrastive training of the embedder: `train(cfg)` builds the model and data, `fit` runs the loop.

Every step is a function of (config, seed, step): the batch comes from the sampler, randomness from
generators that are saved in checkpoints, so an interrupted and resumed run ends with the same weights as
an uninterrupted one, and two runs of one config give identical weights on CPU.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..config import ExperimentConfig, write_resolved
from ..config.train import TrainConfig
from ..data.types import Side, TrainPair
from ..errors import TrainingInterrupted, UserError
from ..models.precision import mixed_precision
from ..paths import in_workspace, workspace_root
from ..tracker import LocalTracker, Tracker
from .batches import Chunk, StepBatches, StepInputs, chunked, step_inputs
from .cache import FeatureCache
from .checkpoint import (
    WEIGHTS,
    Checkpoint,
    StopRequest,
    find_weights,
    load_checkpoint,
    load_latest_checkpoint,
    read_weights,
    restore_rng,
    save_checkpoint,
    save_weights,
)
from .compile import CompiledLayers
from .distributed import DistEnv, average_gradients, broadcast_parameters, init_distributed, seed_everything
from .gradcache import gradcache_backward
from .loss import backward_scale, info_nce
from .rundir import check_run_folder, trim_metrics
from .sampler import Batch, SourceBatchSampler

StepHook = Callable[[int, Any, Any], None]  # (step, embedder, processor), after each optimizer step


def run_dir_of(cfg: ExperimentConfig) -> Path:
    return workspace_root() / cfg.train.output_dir.format(name=cfg.name)


def lr_factor(step: int, tc: TrainConfig) -> float:
    """Multiplier of the base learning rate for optimizer step `step` (0-based)."""
    if step < tc.warmup_steps:
        return (step + 1) / tc.warmup_steps
    progress = (step - tc.warmup_steps) / max(1, tc.steps - tc.warmup_steps)
    if tc.schedule == "linear":
        return max(0.0, 1.0 - progress)
    if tc.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return 1.0


def _optimizer(embedder: torch.nn.Module, tc: TrainConfig) -> torch.optim.AdamW:
    named = [(n, p) for n, p in embedder.named_parameters() if p.requires_grad]
    if not named:
        raise UserError("model: nothing to train (every parameter is frozen)")
    # The fusion side (connector, and a trained SAM-2 decoder: newly trained, not adapted) has its own rate.
    fusion = ("connector.", "segmentation.")
    connector = [p for n, p in named if n.startswith(fusion)]
    rest = [p for n, p in named if not n.startswith(fusion)]
    groups = [{"params": rest, "lr": tc.lr, "name": "adapters"}]
    if connector:
        groups.append({"params": connector, "lr": tc.connector_lr or tc.lr, "name": "fusion"})
    return torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=tc.weight_decay)


def _schedule(optimizer: torch.optim.Optimizer, tc: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """The shared warm-up/decay for every group; with train.connector_warmup_steps the adapters (and any
    other non-fusion weights) hold still (rate 0) for the first steps while the connector learns to speak
    to the frozen LLM."""

    def factor(name: str):
        hold = tc.connector_warmup_steps if name == "adapters" else 0
        return lambda s: 0.0 if s < hold else lr_factor(s, tc)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, [factor(g["name"]) for g in optimizer.param_groups])


def _has_pixels(inputs: Any) -> bool:
    """Whether a processor output holds what the frozen backbones read (inputs other than ModelInputs, such
    as the tests' toy processor's, count as holding it)."""
    return getattr(inputs, "has_pixels", True)


def _without_pixels(inputs: Any) -> Any:
    return inputs.without_pixels() if hasattr(inputs, "without_pixels") else inputs


class Encoder:
    """Sides -> embeddings: the processor, the frozen-feature cache (if any), the trained forward (under
    train.autocast's mixed precision)."""

    def __init__(
        self, embedder: Any, processor: Any, device: str, cache: FeatureCache | None, *, autocast: str = "off"
    ):
        self.embedder, self.processor, self.device, self.cache = embedder, processor, device, cache
        self.autocast = autocast

    def prepare(
        self, sides: Sequence[Side], processed: Any = None, *, features: bool = False
    ) -> tuple[Any, dict[str, torch.Tensor] | None]:
        """Everything that needs no graph: processed inputs and frozen features. When the cache holds every
        image row, the pixels (only the frozen backbones read them) are neither decoded nor resized.
        processed: the processor's output for `sides`, made ahead by a DataLoader worker; the cache is still
        looked up here, in step order, so hits and misses are those of a run without workers.
        features: run the frozen backbones here even without a cache (GradCache: once per chunk rather than in
        both passes), for chunks with pixels. Whenever the frozen features are returned, the pixels are not: a
        GradCache step then holds its image chunks' features (about a tenth of their pixels' size in `tiny`)
        but one chunk's pixels at a time."""
        frozen = self.cache.lookup(sides) if self.cache is not None else None
        if frozen is not None:
            inputs = self.processor(sides, pixels=False)
        else:
            inputs = processed if processed is not None else self.processor(sides)
        if self.device != "cpu":
            inputs = inputs.to(self.device)
        if self.cache is None and not (features and _has_pixels(inputs)):
            return inputs, None  # (text-only rows' features are zeros: cheaper made in the forward than held)
        if frozen is None:
            with torch.no_grad():  # frozen backbones: no graph either way
                frozen = self.embedder.frozen_features(inputs)
            if self.cache is not None:
                self.cache.store(sides, frozen)
        return _without_pixels(inputs), {k: v.to(self.device) for k, v in frozen.items()}

    def forward(self, prepared: tuple[Any, dict[str, torch.Tensor] | None]) -> torch.Tensor:
        inputs, frozen = prepared
        if frozen is None:
            # Outside autocast: the frozen backbones run in model.dtype whether cached or not, so cached features
            # do not depend on train.autocast.
            frozen = self.embedder.frozen_features(inputs)
        with mixed_precision(self.autocast, self.device):
            return self.embedder(inputs, frozen=frozen)  # [n, D]


def _step_loss(encoder: Encoder, step: StepInputs | Batch, tc: TrainConfig) -> torch.Tensor:
    """Forward and backward of one step on this rank's shard; returns the global mean loss (detached). A bare
    Batch is processed here, chunked as tc says (the benchmarks time steps that way)."""
    step = chunked(step, tc.gradcache_chunk) if isinstance(step, Batch) else step
    batch = step.batch
    b = len(batch.queries)
    k = len(batch.negatives) // b  # this batch's source may have no hard negatives (sampler.k_of)
    scale = backward_scale()

    def loss_fn(q: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        negatives = t[b:].view(b, k, -1) if k else None
        loss = info_nce(q, t[:b], negatives, temperature=tc.temperature, bidirectional=tc.bidirectional)
        return loss * scale

    def prepare(c: Chunk, features: bool = False) -> tuple[Any, dict[str, torch.Tensor] | None]:
        return encoder.prepare(c.sides, c.processed, features=features)

    # targets: [b positives, then b*k negatives grouped per query]
    if tc.gradcache_chunk:
        # Both passes read each chunk's frozen features, computed once; its pixels are dropped at once.
        groups = [(encoder.forward, [prepare(c, True) for c in chunks]) for chunks in (step.queries, step.targets)]
        return gradcache_backward(groups, loss_fn) / scale
    (q,), (t,) = step.queries, step.targets  # one chunk each without GradCache
    loss = loss_fn(encoder.forward(prepare(q)), encoder.forward(prepare(t)))
    loss.backward()
    return loss.detach() / scale


def _resume_from(tc: TrainConfig, run_dir: Path, embedder: Any, device: str) -> Checkpoint | None:
    """The checkpoint to continue from: none, the newest loadable one of the run folder (auto), or a path."""
    if tc.resume == "never":
        return None
    shapes = {k: tuple(v.shape) for k, v in embedder.trainable_state_dict().items()}
    if tc.resume == "auto":
        return load_latest_checkpoint(run_dir / "checkpoints", shapes, device=device)
    path = Path(tc.resume)
    path = in_workspace(path)
    if not path.is_dir():
        raise UserError(f"train.resume: no such checkpoint folder {path}")
    return load_checkpoint(path, shapes, device=device)


def clip_gradients(params: list[torch.nn.Parameter], max_norm: float | None) -> float | None:
    """train.grad_clip: scale the (rank-averaged) gradients to a global norm of at most max_norm; returns the
    norm before clipping, None when off. A non-finite norm is returned as it is (and poisons the step, as
    it would unclipped): the metric shows it."""
    if max_norm is None:
        return None
    return float(torch.nn.utils.clip_grad_norm_(params, max_norm))


def init_from(embedder: Any, source: str) -> list[str]:
    """Load train.init_from's weights into `embedder`; returns the trainable tensors it did not hold."""
    path = Path(source)
    path = find_weights(in_workspace(path))
    state, _ = read_weights(path)
    own = {n: p for n, p in embedder.named_parameters() if p.requires_grad}
    foreign = sorted(state.keys() - own.keys())
    if foreign:
        raise UserError(f"train.init_from: {path}: holds {foreign[0]}, which this model does not train")
    for n, t in state.items():
        if tuple(t.shape) != tuple(own[n].shape):
            raise UserError(f"train.init_from: {path}: {n} is {list(t.shape)}, the model's {list(own[n].shape)}")
    with torch.no_grad():
        for n, t in state.items():
            own[n].copy_(t)
    return sorted(own.keys() - state.keys())


def fit(
    embedder: Any,
    processor: Any,
    pairs: Sequence[TrainPair],
    cfg: ExperimentConfig,
    run_dir: Path,
    *,
    env: DistEnv | None = None,
    tracker: Tracker | None = None,
    source_weights: dict[str, float] | None = None,
    on_step: StepHook | None = None,
) -> Path:
    """Train `embedder` (its trainable parameters) on `pairs`; returns the run folder holding config.yaml,
    checkpoints/, metrics and the final trainable weights (trainable.safetensors). `on_step(step, embedder,
    processor)` runs after every optimizer step (an intermediate evaluation; it may raise to stop the run).
    Without a tracker the main rank keeps the metrics in the run folder (a given one was opened, its params
    logged, by the caller, who also closes it)."""
    tc, env = cfg.train, env or DistEnv()
    run_dir = Path(run_dir)
    compiled = CompiledLayers(embedder, tc.compile)  # refuses inductor without a C++ compiler, before any write
    if env.is_main:
        check_run_folder(cfg, run_dir)  # before anything in the folder is written
        run_dir.mkdir(parents=True, exist_ok=True)
        write_resolved(cfg, run_dir)
    if tc.init_from:  # a resumed run's checkpoint below replaces these values
        init_from(embedder, tc.init_from)
    state = _TrainState(embedder, tc, run_dir / "checkpoints")
    encoder, dataset = _step_source(embedder, processor, pairs, tc, env, source_weights)
    seed_everything(tc.seed + env.rank)
    start = state.resume(run_dir, env)
    if env.is_main:
        trim_metrics(run_dir / "metrics.jsonl", start)
        tracker = tracker or LocalTracker(run_dir)
    embedder.train()
    with compiled.active():  # train.compile; eager again after
        _run_steps(state, encoder, dataset, start, tc, env, tracker, on_step, compiled)
    state.checkpoint(tc.steps)
    if env.is_main:
        _save_result(cfg, run_dir, embedder, tracker)
    return run_dir


def _step_source(
    embedder: Any,
    processor: Any,
    pairs: Sequence[TrainPair],
    tc: TrainConfig,
    env: DistEnv,
    source_weights: dict[str, float] | None,
) -> tuple[Encoder, StepBatches]:
    """The encoder (with the frozen-feature cache when train.feature_cache is on) and this rank's step batches."""
    sampler = SourceBatchSampler(
        pairs, tc.batch_size, tc.seed, tc.hard_negatives, source_weights, tc.hard_negative_kinds, tc.source_mixing
    )
    cache = FeatureCache(workspace_root() / tc.feature_cache_dir, embedder.frozen_fingerprint()) if (
        tc.feature_cache
    ) else None  # fmt: skip
    encoder = Encoder(embedder, processor, env.device, cache, autocast=tc.autocast)
    dataset = StepBatches(
        sampler, processor, chunk=tc.gradcache_chunk, rank=env.rank, world_size=env.world_size,
        process=tc.num_workers > 0,
    )  # fmt: skip
    return encoder, dataset


def _run_steps(
    state: _TrainState,
    encoder: Encoder,
    dataset: StepBatches,
    start: int,
    tc: TrainConfig,
    env: DistEnv,
    tracker: Tracker | None,
    on_step: StepHook | None,
    compiled: CompiledLayers,
) -> None:
    """Optimizer steps start..train.steps with a progress bar; a stop signal checkpoints and raises
    TrainingInterrupted; a checkpoint every train.checkpoint_every steps; then fit's on_step hook, with the
    decoder layers eager (the evaluation a run reports is of the eager model)."""
    loader = step_inputs(
        dataset, start, tc.steps, num_workers=tc.num_workers, prefetch_factor=tc.prefetch_factor,
        pin_memory=env.device.startswith("cuda"),
    )  # fmt: skip
    quiet = not sys.stderr.isatty() or not env.is_main
    with (
        loader as steps,  # workers start here, before the stop handlers: they must not rely on inheriting them
        StopRequest() as stop,
        tqdm(total=tc.steps, initial=start, disable=quiet, desc="train") as bar,
    ):
        t0 = time.perf_counter()
        for inputs in steps:
            waited = time.perf_counter() - t0  # for the next step's inputs: 0 when the workers keep up
            loss, lr, grad_norm = state.step(encoder, inputs)
            done = inputs.step + 1
            metrics = _step_metrics(loss, lr, grad_norm, tc.batch_size / (time.perf_counter() - t0), waited, tc, env)
            if env.is_main:
                tracker.log_metrics(metrics, step=done)
            bar.set_postfix(loss=f"{metrics['loss']:.4f}", samples_s=f"{metrics['samples_per_s']:.1f}")
            bar.update(1)
            if stop.requested():
                raise TrainingInterrupted(state.checkpoint(done), stop.signum or 0)
            if tc.checkpoint_every and done % tc.checkpoint_every == 0 and done < tc.steps:
                state.checkpoint(done)
            if on_step is not None:
                with compiled.paused():
                    on_step(done, encoder.embedder, encoder.processor)
            t0 = time.perf_counter()


class _TrainState:
    """The trained parameters with their optimizer and schedule: one optimizer step, checkpoints, resume."""

    def __init__(self, embedder: Any, tc: TrainConfig, ckpt_dir: Path):
        self.embedder, self.tc, self.ckpt_dir = embedder, tc, ckpt_dir
        self.params = [p for p in embedder.parameters() if p.requires_grad]
        broadcast_parameters(self.params)
        self.optimizer = _optimizer(embedder, tc)
        self.scheduler = _schedule(self.optimizer, tc)

    def resume(self, run_dir: Path, env: DistEnv) -> int:
        """Load the latest checkpoint (train.resume) into the model, optimizer, schedule and RNG streams;
        returns the step to go on from (0: none)."""
        tc = self.tc
        ckpt = _resume_from(tc, run_dir, self.embedder, env.device)
        if ckpt is None:
            return 0
        self.embedder.load_trainable_state_dict(ckpt.trainable)
        self.optimizer.load_state_dict(ckpt.state["optimizer"])
        self.scheduler.load_state_dict(ckpt.state["scheduler"])
        start = int(ckpt.state["data_position"])
        if ckpt.rng is not None:
            restore_rng(ckpt.rng)
        else:  # resumed with more ranks than it was saved with: fresh, but still deterministic, streams
            seed_everything(tc.seed + env.rank + 1_000_003 * start)
        return start

    def step(self, encoder: Encoder, inputs: StepInputs) -> tuple[float, float, float | None]:
        """Loss, gradients (averaged over ranks, clipped), one optimizer and schedule step; returns the loss,
        the learning rate the step used and the gradient norm before clipping (None without train.grad_clip)."""
        loss = _step_loss(encoder, inputs, self.tc)
        lr = self.optimizer.param_groups[0]["lr"]  # the rate this step uses
        average_gradients(self.params)
        grad_norm = clip_gradients(self.params, self.tc.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.item(), lr, grad_norm

    def checkpoint(self, step: int) -> Path:
        return save_checkpoint(
            self.ckpt_dir,
            step,
            trainable=self.embedder.trainable_state_dict(),
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            data_position=step,
        )


def _step_metrics(
    loss: float, lr: float, grad_norm: float | None, samples_per_s: float, waited: float, tc: TrainConfig, env: DistEnv
) -> dict[str, float]:
    """What one step logs; data_wait_s with loader workers, gpu_peak_gib on CUDA."""
    metrics = {"loss": loss, "lr": lr, "samples_per_s": samples_per_s}
    if grad_norm is not None:
        metrics["grad_norm"] = grad_norm
    if tc.num_workers:
        metrics["data_wait_s"] = waited
    if env.device.startswith("cuda"):  # the peak since the run started, this rank's GPU
        metrics["gpu_peak_gib"] = torch.cuda.max_memory_allocated(env.device) / 2**30
    return metrics


def _save_result(cfg: ExperimentConfig, run_dir: Path, embedder: Any, tracker: Tracker) -> None:
    """The final trainable weights, and the run's config and metrics as the tracker's artifacts."""
    meta = {"step": str(cfg.train.steps), "variant": cfg.model.variant}
    save_weights(run_dir / WEIGHTS, embedder.trainable_state_dict(), meta)
    tracker.log_artifact(run_dir / "config.yaml")
    if (run_dir / "metrics.jsonl").is_file():
        tracker.log_artifact(run_dir / "metrics.jsonl")


def load_train_data(cfg: ExperimentConfig) -> tuple[list[TrainPair], dict[str, float]]:
    """The training pairs of train.source (the first train.max_rows_per_source of each source), and the
    sampler's weight of each MMEB-train source (its datasets)."""
    root, d = workspace_root(), cfg.data
    image_root = str(root / d.image_root) if d.image_root else None
    pairs: list[TrainPair] = []
    weights: dict[str, float] = {}
    if cfg.train.source in ("scar", "both"):
        from ..data.scar import read_scar_train

        pairs += read_scar_train(root / d.scar_dir, prompt=d.prompt, image_root=image_root, skip_invalid=d.skip_invalid)
    if cfg.train.source in ("mmeb", "both"):
        from ..data.mmeb import read_mmeb_train

        mmeb = read_mmeb_train(root / d.mmeb_dir, image_root=image_root, skip_invalid=d.skip_invalid)
        weights = {p.source: cfg.train.mmeb_weight for p in mmeb} if cfg.train.mmeb_weight != 1 else {}
        pairs += mmeb
    if not pairs:
        raise UserError(f"train.source: {cfg.train.source}: no training pairs found")
    from .sampler import first_rows_per_source

    return first_rows_per_source(pairs, cfg.train.max_rows_per_source), weights


def load_train_pairs(cfg: ExperimentConfig) -> list[TrainPair]:
    return load_train_data(cfg)[0]


def train(cfg: ExperimentConfig, *, tracker: Tracker | None = None, on_step: StepHook | None = None) -> Path:
    """Train the experiment's embedder; returns the run folder (see `fit`)."""
    from ..models import build_embedder

    env = init_distributed()
    seed_everything(cfg.train.seed)  # identical initial weights on every rank
    embedder, processor = build_embedder(cfg.model, root=workspace_root(), device=env.device)
    pairs, weights = load_train_data(cfg)
    run_dir = run_dir_of(cfg)
    return fit(
        embedder,
        processor,
        pairs,
        cfg,
        run_dir,
        env=env,
        tracker=tracker,
        source_weights=weights,
        on_step=on_step,
    )

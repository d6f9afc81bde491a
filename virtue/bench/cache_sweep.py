"""(b) Frozen-feature cache: wall time of a 4-trial connector_depth mini sweep (4 short trainings of the same
data, each building its model and training from scratch) with the shared on-disk cache, against the same
sweep without it; and (c, training) the steady-state training throughput of both, from the per-step
samples/s the training loop records. Each repeat starts from an empty cache, and the two sweeps take
turns going first."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .common import BenchWorkspace, Side, comparison, log, timed

# The schema allows depths 1-3; the fourth trial varies the learning rate, as a seed-0 sweep cell would.
TRIALS = (
    ("d1", ["model.connector_depth=1"]),
    ("d2", ["model.connector_depth=2"]),
    ("d3", ["model.connector_depth=3"]),
    ("d2-lr", ["model.connector_depth=2", "train.lr=3e-4"]),
)


def _sweep(ws: BenchWorkspace, *, cached: bool, steps: int, batch: int, tag: str) -> tuple[float, list[float]]:
    """Run the 4 trials; returns (wall seconds, samples/s of each step of the trials after the first)."""
    from ..train.loop import train

    cache_dir = ws.root / f"cache-{tag}"
    shutil.rmtree(cache_dir, ignore_errors=True)
    speeds: list[float] = []

    def trials() -> None:
        for i, (label, overrides) in enumerate(TRIALS):
            cfg = ws.config(
                f"name=bench-{tag}-{label}",
                *overrides,
                f"train.steps={steps}",
                f"train.batch_size={batch}",
                f"train.feature_cache={str(cached).lower()}",
                f"train.feature_cache_dir={cache_dir}",
            )
            run = train(cfg)
            rows = [json.loads(x) for x in (Path(run) / "metrics.jsonl").read_text().splitlines()]
            if i:  # the first trial fills the cache; later trials show the warm speed
                speeds.extend(r["samples_per_s"] for r in rows)
            shutil.rmtree(run)

    seconds, _ = timed(trials)
    shutil.rmtree(cache_dir, ignore_errors=True)
    return seconds, speeds


def cache_sweep(ws: BenchWorkspace, *, steps: int, batch: int, repeats: int) -> tuple[dict, dict]:
    wall_a = Side(f"{len(TRIALS)} trials x {steps} steps, shared feature cache", "s")
    wall_b = Side(f"{len(TRIALS)} trials x {steps} steps, no cache", "s")
    tput_a = Side("training, warm feature cache", "samples/s")
    tput_b = Side("training, no cache", "samples/s")
    for r in range(repeats):
        order = (True, False) if r % 2 == 0 else (False, True)
        for cached in order:
            log(f"feature-cache sweep: repeat {r + 1}/{repeats}, {'with' if cached else 'without'} cache")
            seconds, speeds = _sweep(ws, cached=cached, steps=steps, batch=batch, tag=f"{'c' if cached else 'n'}{r}")
            (wall_a if cached else wall_b).values.append(seconds)
            (tput_a if cached else tput_b).values.extend(speeds)
    method = (__doc__ or "").replace("\n", " ")
    share = frozen_share(ws, batch=batch, repeats=max(1, repeats))
    sweep = comparison(
        "feature_cache_sweep",
        wall_a,
        wall_b,
        target=0.4,
        higher_is_better=False,
        method=method,
        batch_size=batch,
        trials=[label for label, _ in TRIALS],
        frozen_share_of_step=share,
        # With a warm cache a trial still pays everything but the frozen forward, and the first trial pays it
        # all: the best possible ratio is about (1 + (n-1) * (1 - share)) / n for n trials.
        best_possible_ratio=(1 + (len(TRIALS) - 1) * (1 - min(1.0, share["share"]))) / len(TRIALS),
    )
    tput = comparison(
        "train_throughput_cache",
        tput_a,
        tput_b,
        target=None,
        higher_is_better=True,
        method="per-step samples/s recorded by the training loop (values: every step of trials 2-4 of every "
        "repeat; the first trial of a cached sweep fills the cache and is left out on both sides)",
        batch_size=batch,
    )
    return sweep, tput


def frozen_share(ws: BenchWorkspace, *, batch: int, repeats: int) -> dict:
    """Seconds of the frozen forward (what the cache saves) and of a whole uncached training step (forward,
    backward) on the same batch: the cache cannot save more than the first's share of the second."""
    import torch

    from ..models import build_embedder
    from ..train.distributed import seed_everything
    from ..train.loop import Encoder, _step_loss, load_train_pairs
    from ..train.sampler import SourceBatchSampler
    from .common import median

    cfg = ws.config(f"train.batch_size={batch}", "train.feature_cache=false")
    seed_everything(0)
    embedder, processor = build_embedder(cfg.model)
    embedder.train()
    b = SourceBatchSampler(load_train_pairs(cfg), batch, 0, cfg.train.hard_negatives).batch(0)
    encoder = Encoder(embedder, processor, "cpu", None)
    frozen, step = [], []
    for _ in range(repeats + 1):  # the first round warms up
        inputs = [processor(b.queries), processor(b.positives + b.negatives)]
        with torch.no_grad():
            frozen.append(sum(timed(lambda x=x: embedder.frozen_features(x))[0] for x in inputs))
        step.append(timed(lambda: _step_loss(encoder, b, cfg.train))[0])
        embedder.zero_grad(set_to_none=True)
    f, s = median(frozen[1:]), median(step[1:])
    return {"frozen_forward_s": f, "training_step_s": s, "share": f / s, "batch_size": batch}

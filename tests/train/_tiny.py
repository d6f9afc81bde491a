"""The real tiny VIRTUE model (random-weight presets, no pre-trained folders) and micro TrainPairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from virtue.config import ExperimentConfig, load_experiment
from virtue.data.prompts import box_prompt
from virtue.data.types import Side, TrainPair

PRESETS = ["model.vlm={preset: qwen2vl-tiny}", "model.sam={preset: sam2-tiny}"]


def tiny_experiment(work: Path, *overrides: str) -> ExperimentConfig:
    """experiments/tiny.yaml with preset backbones and a micro training schedule under `work`."""
    micro = [
        "train.steps=4",
        "train.batch_size=4",
        "train.warmup_steps=1",
        "train.hard_negatives=1",
        "train.checkpoint_every=2",
        f"train.feature_cache_dir={work / 'cache'}",
        f"train.output_dir={work / 'runs' / '{name}'}",
        "tracking.enabled=false",
    ]
    return load_experiment("tiny", [*PRESETS, *micro, *overrides])


def micro_pairs(folder: Path, n: int = 8, size: int = 96) -> list[TrainPair]:
    """n pairs over 4 random-texture images, box prompts, one distractor each, one source."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for i in range(4):
        path = folder / f"scene{i}.png"
        if not path.exists():
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        images.append(str(path))
    colours, shapes = ["red", "blue", "green", "yellow"], ["circle", "square", "star"]
    pairs = []
    for i in range(n):
        x = 8 + 10 * (i % 5)
        caption = f"a {colours[i % 4]} {shapes[i % 3]} left of a {colours[(i + 1) % 4]} square"
        pairs.append(
            TrainPair(
                query=Side(
                    "Find the caption of the object in the box.", images[i % 4], box_prompt(x, x, x + 30, x + 40)
                ),
                positive=Side(caption),
                negatives=(Side(caption.replace("left", "right")),),
                source="micro",
            )
        )
    return pairs


def encode_twice_through_cache(cfg: ExperimentConfig, work: Path):
    """Build cfg's embedder and encode 5 image queries and a text-only side without a cache, then through a
    fresh feature cache twice (the first pass fills it, the second reads it). Returns (uncached, cached,
    the second pass's prepared batch, the cache, number of sides)."""
    import torch

    from virtue.models import build_embedder
    from virtue.train.cache import FeatureCache
    from virtue.train.distributed import seed_everything
    from virtue.train.loop import Encoder

    seed_everything(cfg.train.seed)
    embedder, processor = build_embedder(cfg.model, seed=cfg.train.seed)
    embedder.eval()
    sides = [p.query for p in micro_pairs(work / "img", n=5)] + [Side("a caption without image")]
    cache = FeatureCache(work / "cache", embedder.frozen_fingerprint())
    with torch.no_grad():
        plain = Encoder(embedder, processor, "cpu", None)
        cached = Encoder(embedder, processor, "cpu", cache)
        ref = plain.forward(plain.prepare(sides))
        cached.forward(cached.prepare(sides))  # fills the cache
        prepared = cached.prepare(sides)  # reads it
        out = cached.forward(prepared)
    return ref, out, prepared, cache, len(sides)

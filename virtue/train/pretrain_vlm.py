"""Pre-training of the tiny Qwen2-VL: image-caption alignment on the synthetic scenes (contrastive, both
directions, last-token embeddings), so that the LLM learns to read colours, shapes, positions and scenes
from its image tokens before VIRTUE freezes the vision tower and trains only adapters and the connector.

Inputs are built by the embedder's own processor (variant `global`, no visual prompt), so the sequences
seen here are the ones the VIRTUE stage feeds the same weights."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm
from transformers import Qwen2VLModel

from ..data.types import Side
from ..models.embedder import Embedder
from ..models.processor import Processor
from .pretrain_optim import PretrainOptimizer

Encode = Callable[[Sequence[Side]], Tensor]  # sides -> [B, D] L2-normalised embeddings (with gradients)


def clip_loss(img: Tensor, txt: Tensor, texts: Sequence[str], temperature: float) -> Tensor:
    """Symmetric InfoNCE over the batch. Two images may share a caption ("a beach scene"): such pairs are
    not negatives of each other, so they are masked out of the logits."""
    logits = img @ txt.T / temperature  # [B, B]
    ids = {t: i for i, t in enumerate(texts)}
    code = torch.tensor([ids[t] for t in texts])
    same = (code[:, None] == code[None, :]) & ~torch.eye(len(texts), dtype=torch.bool)
    logits = logits.masked_fill(same, float("-inf"))
    target = torch.arange(len(texts))
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


@torch.no_grad()
def retrieval_at_1(encode: Encode, images: Sequence[Side], captions: Sequence[Side], batch_size: int = 64) -> dict:
    """Held-out image->caption and caption->image R@1 over all pairs (caption i belongs to image i; an
    identical caption text of another image also counts as a hit)."""
    img = torch.cat([encode(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])
    txt = torch.cat([encode(captions[i : i + batch_size]) for i in range(0, len(captions), batch_size)])
    sim = img @ txt.T
    texts = np.array([c.text for c in captions])
    i2t = float(np.mean(texts[sim.argmax(1).numpy()] == texts))
    t2i = float(np.mean(texts[sim.argmax(0).numpy()] == texts))
    return {"r1_i2t": i2t, "r1_t2i": t2i, "pairs": len(images)}


def train_aligner(
    params: Sequence[torch.nn.Parameter],
    encode: Encode,
    train_pairs: Sequence[tuple[Side, Side]],
    eval_by_kind: dict[str, tuple[Sequence[Side], Sequence[Side]]],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    temperature: float,
    seed: int,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, float]:
    """Train the parameters behind `encode` on (image side, caption side) pairs; returns held-out R@1 per
    caption kind and timings."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    optim = PretrainOptimizer(params, lr=lr, steps=steps)
    start = time.perf_counter()
    bar = tqdm(range(steps), desc="pretrain qwen2vl", disable=None)
    for step in bar:
        idx = rng.choice(len(train_pairs), size=min(batch_size, len(train_pairs)), replace=False)
        batch = [train_pairs[i] for i in idx]
        img = encode([b[0] for b in batch])
        txt = encode([b[1] for b in batch])
        loss = clip_loss(img, txt, [b[1].text for b in batch], temperature)
        value = optim.step(loss)
        bar.set_postfix(loss=f"{value:.3f}")
        if on_step is not None:
            on_step(step, {"vlm/loss": value})
    metrics: dict[str, float] = {"train_seconds": time.perf_counter() - start, "steps": steps}
    metrics.update(optim.loss_summary())
    for kind, (images, captions) in eval_by_kind.items():
        for name, v in retrieval_at_1(encode, images, captions).items():
            metrics[f"eval_{kind}_{name}"] = v
    return metrics


IMAGE_INSTRUCTION = "Represent the given image."


def vlm_encoder(
    vlm: Qwen2VLModel,
    tokenizer,
    *,
    vlm_image_size: int,
    sam_image_size: int,
    seg_tokens: int,
    num_points: int,
) -> tuple[list[torch.nn.Parameter], Encode]:
    """All of the VLM trainable, wrapped in the embedder of variant `global` (the same processor, sequence
    layout, positions and last-token pooling as the VIRTUE stage), with gradients through the vision tower."""
    processor = Processor(
        tokenizer,
        vlm.config.vision_config,
        variant="global",
        vlm_image_size=vlm_image_size,
        sam_image_size=sam_image_size,
        sam_mask_side=4 * (sam_image_size // 16),
        seg_tokens=seg_tokens,
        num_points=num_points,
    )
    vc = vlm.config.vision_config
    side = vlm_image_size // (vc.patch_size * vc.spatial_merge_size)
    embedder = Embedder(vlm, image_tokens=side * side)
    embedder.train()
    vlm.visual.train()  # the embedder keeps its frozen parts in eval mode; here they are trained
    params = list(vlm.parameters())
    for p in params:
        p.requires_grad_(True)

    def encode(sides: Sequence[Side]) -> Tensor:
        inputs = processor(sides)
        vision = torch.zeros((len(inputs), side * side, embedder.dim))
        if bool(inputs.has_image.any()):
            feats = vlm.get_image_features(inputs.pixel_values, inputs.image_grid_thw).pooler_output
            rows = torch.nonzero(inputs.has_image).flatten()
            vision = vision.index_put((rows,), torch.stack(list(feats)))  # [B, T_img, D], with gradients
        return embedder(inputs, frozen={"vision": vision})

    return params, encode

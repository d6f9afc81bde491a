"""Pre-training of the tiny Qwen2-VL: image-caption alignment on the synthetic scenes (contrastive, both
directions, last-token embeddings), so that the LLM learns to read colours, shapes, positions and scenes
from its image tokens before VIRTUE freezes the vision tower and trains only adapters and the connector.

Inputs are built by the embedder's own processor (variant `global`, no visual prompt), so the sequences
seen here are the ones the VIRTUE stage feeds the same weights.

Per-location heads (`pretrain.vlm.dense_weight`, probes.DenseHeads) classify the colour / shape / size of the
object under each merged image token, as SAM-2's do on its map: contrastive alignment alone leaves the objects
out of the image tokens that VIRTUE freezes (docs/research/pretraining.md, finding 7)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm
from transformers import Qwen2VLModel

from ..config.train import VlmPretrainConfig
from ..data.types import Side
from ..models.embedder import Embedder
from ..models.processor import Processor
from .pretrain_optim import PretrainOptimizer
from .pretrain_text import FIELD_CLASSES, labelled
from .probes import CaptionHeads, DenseHeads, aux_features, cell_accuracies

Encode = Callable[[Sequence[Side]], Tensor]  # sides -> [B, D] L2-normalised embeddings (with gradients)
# image sides -> (embeddings [B, D], image tokens as a map [B, D, side, side]), both with gradients
EncodeImages = Callable[[Sequence[Side]], tuple[Tensor, Tensor]]


def clip_loss(
    img: Tensor,
    txt: Tensor,
    texts: Sequence[str],
    temperature: float,
    neg: Tensor | None = None,
    neg_texts: Sequence[str] = (),
) -> Tensor:
    """Symmetric InfoNCE over the batch. Two images may share a caption ("a beach scene"): such pairs are
    not negatives of each other, so they are masked out of the logits. `neg` [N, D] are false captions
    (one element changed), extra candidates of every image in the image->caption direction."""
    all_texts = [*texts, *neg_texts]
    cand = txt if neg is None else torch.cat([txt, neg])
    logits = img @ cand.T / temperature  # [B, B + N]
    ids = {t: i for i, t in enumerate(all_texts)}
    code = torch.tensor([ids[t] for t in all_texts])
    b = len(texts)
    same = code[:b, None] == code[None, :]  # [B, B + N]: the row's own caption text elsewhere
    same[torch.arange(b), torch.arange(b)] = False
    logits = logits.masked_fill(same, float("-inf"))
    target = torch.arange(b)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits[:, :b].T, target))


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


@torch.no_grad()
def cell_accuracy(
    encode_images: EncodeImages, dense: DenseHeads, images: Sequence[Side], cells: Tensor, batch_size: int = 64
) -> dict[str, float]:
    """Held-out per-location accuracy of the heads, over the image tokens that lie on an object."""
    hits, total = np.zeros(len(dense.names)), np.zeros(len(dense.names))
    for i in range(0, len(images), batch_size):
        _, maps = encode_images(images[i : i + batch_size])
        batch_hits, batch_total = dense.cell_hits(maps, cells[i : i + batch_size])  # cells: [b, A, side, side]
        hits += batch_hits
        total += batch_total
    return cell_accuracies(dense.names, hits, total, prefix="eval_")


Triple = tuple[Side, Side, Side | None]  # image side, caption side, false caption side or None


def _alignment_step(
    encode: Encode,
    encode_images: EncodeImages,
    batch: Sequence[Triple],
    settings: VlmPretrainConfig,
    dense: DenseHeads | None,
    readers: CaptionHeads | None,
    cells: dict[str, np.ndarray] | None,
) -> tuple[Tensor, dict[str, float]]:
    """One batch's loss: InfoNCE of images against captions (and false captions), plus the per-location and
    caption heads (probes.aux_features: at weight 0 they are probes)."""
    images = [b[0] for b in batch]
    img, maps = encode_images(images)
    negs = [p[2] for p in batch if p[2] is not None]
    txt = encode([p[1] for p in batch] + negs)  # [B + N, D]: captions, then false captions
    n = len(batch)
    texts, neg_texts = [p[1].text for p in batch], [x.text for x in negs]
    loss = clip_loss(img, txt[:n], texts, settings.temperature, txt[n:] if negs else None, neg_texts)
    parts = {"vlm/loss": float(loss.detach())}
    if dense is not None:
        target = torch.from_numpy(np.stack([cells[s.image] for s in images]))
        feats, weight = aux_features(maps, settings.dense_weight)
        dense_loss = dense.loss(feats, target)
        loss = loss + weight * dense_loss
        parts["vlm/dense_loss"] = float(dense_loss.detach())
    rows, labels = labelled(texts) if readers is not None else ([], None)
    if labels is not None:
        feats, weight = aux_features(txt[rows], settings.caption_weight)
        caption_loss = readers.loss(feats, labels)
        loss = loss + weight * caption_loss
        parts["vlm/caption_loss"] = float(caption_loss.detach())
    return loss, parts


def _evaluate_alignment(
    encode: Encode,
    encode_images: EncodeImages,
    eval_by_kind: dict[str, tuple[Sequence[Side], Sequence[Side]]],
    dense: DenseHeads | None,
    readers: CaptionHeads | None,
    cells: dict[str, np.ndarray] | None,
) -> dict[str, float]:
    """Held-out R@1 per caption kind, the caption heads on the relation captions, the per-location heads."""
    metrics: dict[str, float] = {}
    for kind, (images, captions) in eval_by_kind.items():
        for name, v in retrieval_at_1(encode, images, captions).items():
            metrics[f"eval_{kind}_{name}"] = v
    if readers is not None and "relation" in eval_by_kind:
        caps = [c.text for c in eval_by_kind["relation"][1]]
        rows, labels = labelled(caps)
        if labels is not None:
            with torch.no_grad():
                emb = torch.cat([encode([Side(caps[i]) for i in rows[j : j + 64]]) for j in range(0, len(rows), 64)])
            metrics.update(readers.accuracy(emb, labels))
    if dense is not None:
        held_out = sorted({s.image for images, _ in eval_by_kind.values() for s in images if s.image in cells})
        sides = [Side(IMAGE_INSTRUCTION, path) for path in held_out]
        target = torch.from_numpy(np.stack([cells[path] for path in held_out]))
        metrics.update(cell_accuracy(encode_images, dense, sides, target))
    return metrics


def train_aligner(
    params: Sequence[torch.nn.Parameter],
    encode: Encode,
    encode_images: EncodeImages,
    train_pairs: Sequence[Triple],
    eval_by_kind: dict[str, tuple[Sequence[Side], Sequence[Side]]],
    settings: VlmPretrainConfig,
    *,
    seed: int,
    dim: int = 0,
    cells: dict[str, np.ndarray] | None = None,
    num_classes: dict[str, int] | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, float]:
    """Train the parameters behind `encode` with `settings` (pretrain.vlm) on (image side, caption side, false
    caption side or None) triples; returns held-out R@1 per caption kind and timings. With `cells` (image
    path -> [A, side, side] class ids of the object under each image token, -100 where none) per-location
    heads of width `dim` are trained on the image tokens, at settings.dense_weight (0: a probe); their
    held-out accuracy is reported. Caption heads read the elements of every caption in SCaR-synth's grammar
    back from its embedding, likewise at settings.caption_weight."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    dense = DenseHeads(dim, num_classes) if cells is not None and num_classes else None
    readers = CaptionHeads(dim, FIELD_CLASSES) if dim else None
    heads = [*([] if dense is None else dense.parameters()), *([] if readers is None else readers.parameters())]
    optim = PretrainOptimizer([*params, *heads], lr=settings.lr, steps=settings.steps)
    start = time.perf_counter()
    bar = tqdm(range(settings.steps), desc="pretrain qwen2vl", disable=None)
    for step in bar:
        idx = rng.choice(len(train_pairs), size=min(settings.batch_size, len(train_pairs)), replace=False)
        batch = [train_pairs[i] for i in idx]
        loss, parts = _alignment_step(encode, encode_images, batch, settings, dense, readers, cells)
        optim.step(loss)
        bar.set_postfix(loss=f"{parts['vlm/loss']:.3f}")
        if on_step is not None:
            on_step(step, parts)
    metrics: dict[str, float] = {"train_seconds": time.perf_counter() - start, "steps": settings.steps}
    metrics.update(optim.loss_summary())
    metrics.update(_evaluate_alignment(encode, encode_images, eval_by_kind, dense, readers, cells))
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
) -> tuple[list[torch.nn.Parameter], Encode, EncodeImages]:
    """All of the VLM trainable, wrapped in the embedder of variant `global` (the same processor, sequence
    layout, positions and last-token pooling as the VIRTUE stage), with gradients through the vision tower.
    Returns the parameters, `encode` (any sides) and `encode_images` (image sides: also their image tokens)."""
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

    def encode_with_tokens(sides: Sequence[Side]) -> tuple[Tensor, Tensor]:
        inputs = processor(sides)
        vision = torch.zeros((len(inputs), side * side, embedder.dim))
        if bool(inputs.has_image.any()):
            feats = vlm.get_image_features(inputs.pixel_values, inputs.image_grid_thw).pooler_output
            rows = torch.nonzero(inputs.has_image).flatten()
            vision = vision.index_put((rows,), torch.stack(list(feats)))  # [B, T_img, D], with gradients
        # merged tokens come in raster order of the side x side grid: [B, T_img, D] -> [B, D, side, side]
        maps = vision.transpose(1, 2).reshape(len(inputs), embedder.dim, side, side)
        return embedder(inputs, frozen={"vision": vision}), maps

    def encode(sides: Sequence[Side]) -> Tensor:
        return encode_with_tokens(sides)[0]

    return params, encode, encode_with_tokens

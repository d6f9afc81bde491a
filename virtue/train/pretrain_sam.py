"""Pre-training of the tiny SAM-2 on the synthetic scenes: promptable segmentation (box and point prompts,
BCE + dice on the low-resolution mask) plus heads that predict the prompted object's attributes from the
mask decoder's image-side stream.

Why the heads: VIRTUE reads that stream (the two-way transformer's "keys"), not the masks. A mask-only
objective only needs "inside / outside the prompted object" there, so colour and shape can vanish from it
and the frozen features then tell the LLM nothing it cannot read elsewhere (prototype-findings.md, item 6).
The heads (probes.py) are thrown away after pre-training; only the SAM-2 weights are saved."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..config.train import SamPretrainConfig
from ..data.prompts import BOX_LABELS, POSITIVE, sample_points, to_frame
from ..models.backbones import box_mask_logits
from .pretrain_optim import PretrainOptimizer
from .probes import AppearanceHeads, DenseHeads, aux_features, cell_accuracies


@dataclass(frozen=True)
class SegSample:
    """One prompted object: the SAM input image, the object's mask and box, its attribute ids."""

    pixels: Tensor  # [3, S, S] float, already in SAM's input frame and normalisation
    mask: np.ndarray  # [H, W] bool, original image pixels
    box: tuple[float, float, float, float]  # x1, y1, x2, y2, original image pixels
    size: tuple[int, int]  # original (width, height)
    attributes: tuple[int, ...]  # one class id per attribute head
    image: int = 0  # samples with the same index share the image (and its encoder pass)
    cells: np.ndarray | None = None  # [A, h, w] attribute ids of the image on SAM-2's stride-16 grid, -100 = none


class KeysTap:
    """Forward hook on the mask decoder's two-way transformer: keeps its image-side output [B, T, C]."""

    def __init__(self, sam: nn.Module):
        self.keys: Tensor | None = None
        self._handle = sam.mask_decoder.transformer.register_forward_hook(self._hook)

    def _hook(self, module, args, output) -> None:
        keys = output[1]  # [B*P, 1, T, C]
        self.keys = keys.flatten(0, 1)

    def close(self) -> None:
        self._handle.remove()


def reset_to_pytorch_init(sam: nn.Module) -> None:
    """Re-initialise every Linear / Conv / norm layer with PyTorch's default (Kaiming-uniform) init, as
    Meta's SAM-2 code does. transformers draws them from N(0, 0.02), which for this tiny width shrinks the
    mask logits (hypernetwork MLP x upscaling convs) to ~1e-4 at init and stalls the prompt-to-mask path:
    over-fitting 8 objects reaches BCE+dice 0.36 in 70 steps with this init against 0.63 without."""
    for module in sam.modules():
        if isinstance(module, nn.Embedding):
            continue  # token / point embeddings: keep
        reset = getattr(module, "reset_parameters", None)
        if callable(reset) and module is not sam:
            reset()


def image_maps(sam: nn.Module, pixels: Tensor) -> list[Tensor]:
    """SAM-2's image encoder with gradients (transformers' get_image_embeddings runs without): the FPN levels
    as [B, C, h, w], the no-memory embedding added to the last, as Sam2Model.forward prepares them."""
    fpn = list(sam.get_image_features(pixels, return_dict=True).fpn_hidden_states)
    fpn[-1] = fpn[-1] + sam.no_memory_embedding
    b = pixels.shape[0]
    return [f.permute(1, 2, 0).view(b, -1, *size) for f, size in zip(fpn, sam.backbone_feature_sizes, strict=True)]


def dice_loss(logits: Tensor, target: Tensor) -> Tensor:
    # logits, target: [B, h, w]
    p = logits.sigmoid().flatten(1)
    t = target.flatten(1)
    return (1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)).mean()


def _prompt_tensors(
    batch: Sequence[SegSample],
    kind: str,
    side: int,
    rng: np.random.Generator | None,
    n_points: int,
    mask_side: int = 0,
) -> dict[str, Tensor]:
    """SAM prompt arguments in its input frame. Boxes are jittered by up to 10% of their size, like a user
    (rng None: the exact boxes). With mask_side m > 0 (under box_mask: the side of SAM's dense prompt input)
    a box also comes as its rectangle, a dense prompt [B, 1, m, m], exactly as the embedder's processor gives
    it under model.sam_box_mask."""
    if kind == "box":
        boxes, rects = [], []
        for s in batch:
            x1, y1, x2, y2 = s.box
            w, h = x2 - x1, y2 - y1
            j = np.zeros(4) if rng is None else rng.uniform(-0.1, 0.1, size=4) * np.array([w, h, w, h])
            xy = np.array([[x1 + j[0], y1 + j[1]], [x2 + j[2], y2 + j[3]]])
            xy = np.clip(xy, 0, np.array(s.size, dtype=np.float64))
            boxes.append(to_frame(xy, s.size, (side, side)).reshape(4))
            if mask_side:
                rects.append(box_mask_logits(xy.reshape(4), s.size[0], s.size[1], mask_side))
        # A box is its two corners labelled (2, 3), as the embedder's processor feeds it.
        pts = torch.tensor(np.stack(boxes), dtype=torch.float32).view(-1, 1, 2, 2)  # [B, 1, 2, 2]
        out = {"input_points": pts, "input_labels": torch.tensor(BOX_LABELS).expand(len(batch), 1, 2)}
        if rects:
            out["input_masks"] = torch.stack(rects)  # [B, 1, m, m]
        return out
    points = [to_frame(np.array(sample_points(s.mask, n_points, rng)), s.size, (side, side)) for s in batch]
    pts = torch.tensor(np.stack(points), dtype=torch.float32)[:, None]  # [B, 1, n, 2]
    labels = torch.full(pts.shape[:3], POSITIVE, dtype=torch.int64)
    return {"input_points": pts, "input_labels": labels}


def _box_mask_side(sam: nn.Module, box_mask: bool) -> int:
    """The side of the rectangle a box also comes as with box_mask (SAM's dense prompt input), else 0."""
    return int(sam.prompt_encoder.mask_input_size[0]) if box_mask else 0


def _mask_targets(batch: Sequence[SegSample], side: int) -> Tensor:
    masks = torch.stack([torch.from_numpy(s.mask.astype(np.float32)) for s in batch])[:, None]  # [B, 1, H, W]
    return F.interpolate(masks, size=(side, side), mode="area")[:, 0]  # [B, side, side], soft at edges


def segmentation_step(
    sam: nn.Module,
    tap: KeysTap,
    heads: AppearanceHeads,
    dense: DenseHeads | None,
    batch: Sequence[SegSample],
    kind: str,
    rng: np.random.Generator,
    settings: SamPretrainConfig,
    box_mask: bool = False,
) -> tuple[Tensor, dict[str, float]]:
    """`batch` holds settings.prompts_per_image (P) consecutive objects of each of B images: the image encoder
    runs once per image and the decoder once per object (SAM's point batch). Heads at weight 0 are probes
    (probes.aux_features)."""
    per_image = settings.prompts_per_image
    side = batch[0].pixels.shape[-1]
    pixels = torch.stack([s.pixels for s in batch[::per_image]])  # [B, 3, S, S]
    n_points = int(rng.integers(1, 4))
    prompts = _prompt_tensors(batch, kind, side, rng, n_points, _box_mask_side(sam, box_mask))
    # The image encoder runs once per image; its maps are repeated for each of the image's P objects, so a
    # dense prompt (one per object) fits SAM's batch: [B*P, 1, ...] prompts, [B*P, C, h, w] maps.
    per_image_maps = image_maps(sam, pixels)
    maps = [m.repeat_interleave(per_image, dim=0) for m in per_image_maps]
    out = sam(image_embeddings=maps, multimask_output=False, **prompts)
    logits = out.pred_masks[:, 0, 0]  # [B*P, side/4, side/4], object order of `batch`
    target = _mask_targets(batch, logits.shape[-1])
    mask_loss = F.binary_cross_entropy_with_logits(logits, target) + dice_loss(logits, target)
    attr = torch.tensor([s.attributes for s in batch], dtype=torch.int64)  # [B, A]
    keys, app_weight = aux_features(tap.keys, settings.appearance_weight)
    head_logits = heads(keys)
    app_loss = sum(F.cross_entropy(lg, attr[:, i]) for i, lg in enumerate(head_logits)) / max(len(head_logits), 1)
    loss = mask_loss + app_weight * app_loss
    parts = {"mask_loss": mask_loss.item(), "appearance_loss": float(app_loss.detach())}
    if dense is not None:
        cells = torch.from_numpy(np.stack([s.cells for s in batch[::per_image]]))  # [B, A, h, w]
        emb, dense_weight = aux_features(per_image_maps[-1], settings.dense_weight)
        dense_loss = dense.loss(emb, cells)
        loss = loss + dense_weight * dense_loss
        parts["dense_loss"] = float(dense_loss.detach())
    return loss, parts


@torch.no_grad()
def evaluate_segmentation(
    sam: nn.Module,
    tap: KeysTap,
    heads: AppearanceHeads,
    samples: Sequence[SegSample],
    kind: str,
    seed: int,
    batch_size: int = 64,
    box_mask: bool = False,
    dense: DenseHeads | None = None,
) -> dict[str, float]:
    """mIoU of the single-mask output at the original resolution, and the heads' accuracy (a probe of how
    much of the object's appearance the image-side stream still carries)."""
    was_training = sam.training
    sam.eval()
    # Score the mask that was trained (token 0); the stability switch would pick untrained multimask outputs.
    dynamic = sam.mask_decoder.dynamic_multimask_via_stability
    sam.mask_decoder.dynamic_multimask_via_stability = False
    rng = np.random.default_rng(seed)
    ious: list[float] = []
    correct = np.zeros(len(samples[0].attributes)) if samples else np.zeros(0)
    dense_hits, dense_total = np.zeros_like(correct), np.zeros_like(correct)
    mask_side = _box_mask_side(sam, box_mask)
    try:
        for i in range(0, len(samples), batch_size):
            batch = samples[i : i + batch_size]
            side = batch[0].pixels.shape[-1]
            # Held-out boxes are the exact boxes.
            prompts = _prompt_tensors(batch, kind, side, None if kind == "box" else rng, 1, mask_side)
            out = sam(pixel_values=torch.stack([s.pixels for s in batch]), multimask_output=False, **prompts)
            for s, lg in zip(batch, out.pred_masks[:, 0, 0], strict=True):
                w, h = s.size
                full = F.interpolate(lg[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0] > 0
                gt = torch.from_numpy(s.mask)
                union = (full | gt).sum().item()
                ious.append((full & gt).sum().item() / union if union else 1.0)
            attr = torch.tensor([s.attributes for s in batch])
            for k, lg in enumerate(heads(tap.keys)):
                correct[k] += (lg.argmax(-1) == attr[:, k]).sum().item()
            if dense is not None:
                cells = torch.from_numpy(np.stack([s.cells for s in batch]))  # [b, A, h, w]
                hits, total = dense.cell_hits(out.image_embeddings[-1], cells)
                dense_hits += hits
                dense_total += total
    finally:
        sam.mask_decoder.dynamic_multimask_via_stability = dynamic
        sam.train(was_training)
    n = max(len(samples), 1)
    out = {
        "miou": float(np.mean(ious)) if ious else 0.0,
        **{f"{a}_acc": c / n for a, c in zip(heads.names, correct, strict=True)},
    }
    if dense is not None:  # per-location accuracy on the image embedding, over cells that hold an object
        out.update(cell_accuracies(dense.names, dense_hits, dense_total))
    return out


def _images_with(samples: Sequence[SegSample], per_image: int) -> list[list[int]]:
    """Per training image with at least `per_image` objects: the indices of its samples."""
    by_image: dict[int, list[int]] = {}
    for i, smp in enumerate(samples):
        by_image.setdefault(smp.image, []).append(i)
    usable = [v for v in by_image.values() if len(v) >= per_image]
    if not usable:
        raise ValueError(f"no training image has {per_image} objects")
    return usable


def train_segmenter(
    sam: nn.Module,
    train_samples: Sequence[SegSample],
    eval_samples: Sequence[SegSample],
    num_classes: dict[str, int],
    settings: SamPretrainConfig,
    *,
    seed: int,
    box_mask: bool = False,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, float]:
    """Train `sam` in place with `settings` (pretrain.sam); returns held-out metrics (mIoU per prompt kind,
    head accuracies) and timings. box_mask: boxes also come as dense rectangle prompts (model.sam_box_mask).
    The per-location heads on the image embedding exist when the samples carry their cells."""
    steps, per_image = settings.steps, settings.prompts_per_image
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tap = KeysTap(sam)
    dim = sam.config.mask_decoder_config.hidden_size
    heads = AppearanceHeads(dim, num_classes)
    dense = DenseHeads(dim, num_classes) if train_samples and train_samples[0].cells is not None else None
    params = [*sam.parameters(), *heads.parameters(), *([] if dense is None else dense.parameters())]
    optim = PretrainOptimizer(params, lr=settings.lr, steps=steps)
    usable = _images_with(train_samples, per_image)
    sam.train()
    start = time.perf_counter()
    bar = tqdm(range(steps), desc="pretrain sam2", disable=None)
    for step in bar:
        images = rng.choice(len(usable), size=min(max(1, settings.batch_size // per_image), len(usable)), replace=False)
        idx = [j for i in images for j in rng.choice(usable[i], size=per_image, replace=False)]
        kind = settings.prompts[step % len(settings.prompts)]
        batch = [train_samples[i] for i in idx]
        loss, parts = segmentation_step(sam, tap, heads, dense, batch, kind, rng, settings, box_mask)
        value = optim.step(loss)
        bar.set_postfix(loss=f"{value:.3f}")
        if on_step is not None:
            on_step(step, {"sam/loss": value, **{f"sam/{k}": v for k, v in parts.items()}})
    metrics: dict[str, float] = {"train_seconds": time.perf_counter() - start, "steps": steps}
    metrics.update(optim.loss_summary())
    for kind in ("box", "points"):
        scores = evaluate_segmentation(sam, tap, heads, eval_samples, kind, seed + 1, box_mask=box_mask, dense=dense)
        metrics.update({f"eval_{kind}_{name}": v for name, v in scores.items()})
    tap.close()
    return metrics

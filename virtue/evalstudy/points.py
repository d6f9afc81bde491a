"""Where an unprompted query's N points come from (the `point_sampling` study). The paper feeds SAM-2 one
prompt of N points on a uniform grid; the alternatives place the same N positive points elsewhere, so only
the placement differs:
- random: uniform over the image, seeded by the image;
- objectness: SAM-2 is prompted with each point of a fine candidate grid alone; the N points whose masks are
  the most stable (SAM's stability score: area above logit +1 over area above -1) win. The tiny SAM-2's IoU
  and object-score heads are not pre-trained (only its masks are), so their outputs are not used;
- saliency: the vision tower's merged image tokens; the N cells whose features lie farthest from the image's
  mean feature (what stands out from the background) give their centres;
- proposals: SAM-2's automatic masks from the candidate grid, filtered by stability, de-duplicated by mask IoU
  (non-maximum suppression, SAM's automatic generator in miniature); one point per proposal, at its most
  interior pixel, best first, topped up from the objectness ranking when there are fewer than N.
Every strategy returns exactly N points inside the image, in original pixels."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from ..data.images import load_rgb
from ..data.prompts import grid_points, to_frame
from ..data.types import Side
from ..models.backbones import sam_pixels
from ..paths import workspace_relative
from .perturb import centre_click, mask_iou

STRATEGIES = ("grid", "random", "objectness", "saliency", "proposals")
CANDIDATES = 64  # objectness / proposals: an 8 x 8 grid of single-point prompts
STABLE = 0.8  # proposals: the least stability score kept
NMS_IOU = 0.5  # proposals: a mask overlapping a better one by more is a duplicate
MAX_AREA = 0.5  # masks over half the image are background, not objects


def random_points(n: int, width: int, height: int, key: str) -> tuple[tuple[float, float], ...]:
    """n points uniform over the image, from a generator seeded by `key` (the image's workspace-relative path)."""
    rng = np.random.default_rng(int(hashlib.sha1(key.encode()).hexdigest()[:12], 16))
    return tuple((float(rng.uniform(0, width)), float(rng.uniform(0, height))) for _ in range(n))


def stability(logits: torch.Tensor, offset: float = 1.0) -> torch.Tensor:
    """[K, h, w] mask logits -> [K] SAM's stability score (area above +offset / area above -offset)."""
    hi = (logits > offset).flatten(1).sum(1).float()
    lo = (logits > -offset).flatten(1).sum(1).float()
    return torch.where(lo > 0, hi / lo.clamp(min=1), torch.zeros_like(hi))


class PointPicker:
    """The model-based strategies for one trained virtue model (its SAM-2 and vision tower, frozen)."""

    def __init__(self, embedder, processor, n: int):
        self.sam = embedder.segmentation.sam
        self.embedder = embedder
        self.processor = processor
        self.n = n
        self.side = processor.sam_image_size
        self._masks: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # image -> objectness and proposals' input

    def points(self, strategy: str, image: str) -> tuple[tuple[float, float], ...] | None:
        """N points for `image` (None for grid: the model's own fallback, no prompt)."""
        if strategy == "grid":
            return None
        w, h = load_rgb(image).size
        if strategy == "random":
            return random_points(self.n, w, h, workspace_relative(image))  # not where the clone lies
        if strategy == "saliency":
            return self.salient(image, w, h)
        if image not in self._masks:  # objectness and proposals read the same SAM-2 pass
            self._masks[image] = self.candidate_masks(image)
        masks, scores = self._masks[image]  # [K, m, m], [K]
        order = torch.argsort(scores, descending=True, stable=True).tolist()
        cand = np.asarray(grid_points(CANDIDATES, w, h))  # the candidates in original pixels
        ranked = [tuple(cand[k]) for k in order]
        if strategy == "objectness":
            return tuple(ranked[: self.n])
        return self.proposal_points(masks, scores, order, ranked, w, h)

    @torch.no_grad()
    def candidate_masks(self, image: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Each candidate point alone through SAM-2 -> its mask logits [K, m, m] and score [K] (stability,
        0 for masks over MAX_AREA of the image)."""
        s = self.side
        dtype = next(self.sam.parameters()).dtype
        pixels = sam_pixels(load_rgb(image), s)[None].to(dtype)  # [1, 3, S, S]
        pts = torch.tensor(grid_points(CANDIDATES, s, s), dtype=dtype)[None, :, None, :]  # [1, K, 1, 2]
        labels = torch.ones(1, CANDIDATES, 1, dtype=torch.int64)
        dec = self.sam.mask_decoder
        dynamic, dec.dynamic_multimask_via_stability = dec.dynamic_multimask_via_stability, False
        try:  # the single-mask output (token 0) is the one pre-training trained
            out = self.sam(pixel_values=pixels, input_points=pts, input_labels=labels, multimask_output=False)
        finally:
            dec.dynamic_multimask_via_stability = dynamic
        logits = out.pred_masks[0, :, 0].float()  # [K, m, m]
        area = (logits > 0).flatten(1).float().mean(1)
        score = torch.where((area > 0) & (area <= MAX_AREA), stability(logits), torch.zeros_like(area))
        return logits, score

    def proposal_points(self, masks, scores, order, ranked, w: int, h: int) -> tuple[tuple[float, float], ...]:
        kept: list[np.ndarray] = []
        for k in order:
            if float(scores[k]) < STABLE:
                break
            m = (masks[k] > 0).numpy()
            if all(mask_iou(m, o) <= NMS_IOU for o in kept):
                kept.append(m)
            if len(kept) == self.n:
                break
        side = masks.shape[-1]
        pts = [tuple(to_frame(np.asarray(centre_click(m)), (side, side), (w, h))) for m in kept]
        for p in ranked:  # fewer proposals than N: the best remaining single points
            if len(pts) == self.n:
                break
            if p not in pts:
                pts.append(p)
        return tuple((float(x), float(y)) for x, y in pts)

    @torch.no_grad()
    def salient(self, image: str, w: int, h: int) -> tuple[tuple[float, float], ...]:
        inputs = self.processor([Side(text=" ", image=image)])
        vlm = self.embedder.vlm
        f = vlm.get_image_features(inputs.pixel_values, inputs.image_grid_thw).pooler_output[0].float()  # [T, D]
        _, rows, cols = (int(v) for v in inputs.image_grid_thw[0])
        merge = self.processor.vision_config.spatial_merge_size
        rows, cols = rows // merge, cols // merge  # f: the merged tokens, row by row
        score = torch.linalg.vector_norm(f - f.mean(0, keepdim=True), dim=1)  # [rows * cols]
        top = torch.argsort(score, descending=True, stable=True)[: self.n].tolist()
        return tuple(((k % cols + 0.5) * w / cols, (k // cols + 0.5) * h / rows) for k in top)

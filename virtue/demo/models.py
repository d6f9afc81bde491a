"""One checkpoint loaded for inference, as `virtue embed` and `virtue eval` load one: the resolved config of
its run folder (or the experiment's, for a bare weights file), the embedder built for evaluation, the trained
weights (refused if trained as another variant). Plus SAM-2's own mask for a prompt, from the prompt the
processor hands the segmentation stream: the mask shows what the stream was asked to look at."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..config import ExperimentConfig, load_resolved, with_overrides
from ..data.images import image_size
from ..data.types import Side
from ..errors import UserError
from ..paths import workspace_root
from ..train.checkpoint import find_weights


def run_config(
    checkpoint: str | os.PathLike, experiment: ExperimentConfig | None, variant: str | None
) -> tuple[ExperimentConfig, Path]:
    """(config, weights file) of a checkpoint: the config.yaml its training wrote beside the weights, else the
    experiment's; `variant` (--variant) sets model.variant, which the weights are then checked against."""
    weights = find_weights(checkpoint)
    resolved = weights.parent / "config.yaml"
    if resolved.is_file():
        cfg = load_resolved(resolved)
    elif experiment is not None:
        cfg = experiment
    else:
        raise UserError(
            f"--checkpoint {checkpoint}: no config.yaml beside {weights.name}: name the EXPERIMENT it was trained with"
        )
    if variant is not None and variant != cfg.model.variant:
        cfg = with_overrides(cfg, [f"model.variant={variant}"])
    return cfg, weights


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class DemoModel:
    label: str  # shown in the page: the run folder's name (or the weights file's) and the variant
    cfg: ExperimentConfig
    weights: Path
    embedder: torch.nn.Module
    processor: object
    device: str
    _digest: str = field(default="", repr=False)

    @property
    def variant(self) -> str:
        return self.cfg.model.variant

    @property
    def dtype(self) -> torch.dtype:
        """The frozen backbones' dtype: what the rounding of an embedding is bounded by (virtue.numerics)."""
        return self.embedder.vlm.visual.get_dtype()

    def weights_digest(self) -> str:
        if not self._digest:
            self._digest = file_digest(self.weights)
        return self._digest

    def encoder(self):
        """sides -> [N, D] embeddings, exactly as evaluation encodes (train.autocast's precision)."""
        from ..eval.run import model_encoder

        return model_encoder(self.embedder, self.processor, self.device, None, self.cfg.train.autocast)

    @torch.no_grad()
    def sam_mask(self, side: Side) -> np.ndarray | None:
        """[H, W] bool: SAM-2's single-mask output for the side's prompt (the unprompted point grid without
        one), at the image's resolution; None for variants without a segmentation stream."""
        seg = getattr(self.embedder, "segmentation", None)
        if seg is None or side.image is None:
            return None
        inputs = self.processor([side]).to(self.device)
        prompt, sam = inputs.sam_prompts[0], seg.sam
        dtype = sam.mask_decoder.iou_token.weight.dtype
        kwargs: dict[str, torch.Tensor] = {}
        if prompt.points is not None:
            kwargs["input_points"] = prompt.points[None, None].to(dtype)  # [1, 1, k, 2]
            kwargs["input_labels"] = prompt.labels[None, None]
        if prompt.mask is not None:
            kwargs["input_masks"] = prompt.mask[None].to(dtype)  # [1, 1, m, m]
        decoder = sam.mask_decoder
        # The mask that SAM-2 pre-training trains and scores is token 0; the stability switch would pick another.
        dynamic, decoder.dynamic_multimask_via_stability = decoder.dynamic_multimask_via_stability, False
        try:
            out = sam(pixel_values=inputs.sam_pixels.to(dtype), multimask_output=False, **kwargs)
        finally:
            decoder.dynamic_multimask_via_stability = dynamic
        logits = out.pred_masks[0, 0, 0].float()  # [S/4, S/4]: SAM's square frame, the image stretched into it
        w, h = image_size(side.image)
        full = F.interpolate(logits[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        return (full > 0).cpu().numpy()


def load_model(
    checkpoint: str | os.PathLike,
    *,
    experiment: ExperimentConfig | None = None,
    variant: str | None = None,
    device: str = "cpu",
) -> DemoModel:
    from ..eval.run import load_weights
    from ..models import build_embedder

    cfg, weights = run_config(checkpoint, experiment, variant)
    embedder, processor = build_embedder(cfg.model, root=workspace_root(), device=device, for_eval=True)
    load_weights(embedder, weights, variant=cfg.model.variant)
    embedder.eval()
    name = weights.parent.name if weights.name == "trainable.safetensors" else weights.stem
    return DemoModel(f"{name} ({cfg.model.variant})", cfg, weights, embedder, processor, device)

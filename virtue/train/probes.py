"""The auxiliary heads of backbone pre-training, thrown away afterwards: small linear classifiers that make
(or, at weight 0, probe whether) the features VIRTUE freezes carry what the objects look like and what a
caption says. AppearanceHeads and DenseHeads read SAM-2 (pretrain_sam), DenseHeads and CaptionHeads the
Qwen2-VL (pretrain_vlm). Every one follows the rule of `aux_features`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


def aux_features(features: Tensor, weight: float) -> tuple[Tensor, float]:
    """(the features auxiliary heads read, the weight of their loss). Weight > 0: the loss trains the backbone
    through the heads at that weight. Weight 0: the heads still learn, at weight 1, on detached features - a
    probe of what the backbone carries that leaves the backbone alone."""
    return (features, weight) if weight > 0 else (features.detach(), 1.0)


class AppearanceHeads(nn.Module):
    """Linear heads on the mean of the mask decoder's image-side stream: one classifier per attribute."""

    def __init__(self, dim: int, num_classes: dict[str, int]):
        super().__init__()
        self.names = list(num_classes)
        self.norm = nn.LayerNorm(dim)
        self.heads = nn.ModuleList(nn.Linear(dim, n) for n in num_classes.values())

    def forward(self, keys: Tensor) -> list[Tensor]:
        # keys: [B, T, C] -> one [B, n_k] logit tensor per attribute
        pooled = self.norm(keys.mean(dim=1))
        return [head(pooled) for head in self.heads]


class DenseHeads(nn.Module):
    """Per-location attribute classifiers (a 1x1 convolution per attribute) on a feature map: SAM-2's stride-16
    image embedding, or the VLM's merged image tokens laid out on their grid. They make the frozen map carry
    what is at each place (which F_s keeps where the prompt is)."""

    def __init__(self, dim: int, num_classes: dict[str, int]):
        super().__init__()
        self.names = list(num_classes)
        self.heads = nn.ModuleList(nn.Conv2d(dim, n, kernel_size=1) for n in num_classes.values())

    def forward(self, maps: Tensor) -> list[Tensor]:
        # maps: [B, C, h, w] -> one [B, n_k, h, w] logit map per attribute
        return [head(maps) for head in self.heads]

    def loss(self, maps: Tensor, cells: Tensor) -> Tensor:
        # cells: [B, A, h, w] class ids, -100 where no object
        losses = [F.cross_entropy(lg, cells[:, k], ignore_index=-100) for k, lg in enumerate(self(maps))]
        return torch.stack(losses).nan_to_num(0.0).mean()  # an image without objects gives NaN: no signal

    @torch.no_grad()
    def cell_hits(self, maps: Tensor, cells: Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Per attribute [A]: cells classified right, and cells that lie on an object (cells: [B, A, h, w])."""
        hits, total = np.zeros(len(self.names)), np.zeros(len(self.names))
        for k, lg in enumerate(self(maps)):
            valid = cells[:, k] >= 0
            hits[k] += (lg.argmax(1) == cells[:, k])[valid].sum().item()
            total[k] += valid.sum().item()
        return hits, total


def cell_accuracies(names: Sequence[str], hits: np.ndarray, total: np.ndarray, prefix: str = "") -> dict[str, float]:
    """`{prefix}{attribute}_cell_acc`: the per-location accuracy over the cells that hold an object."""
    return {f"{prefix}{a}_cell_acc": h / max(t, 1) for a, h, t in zip(names, hits, total, strict=True)}


class CaptionHeads(nn.Module):
    """One linear classifier per element of a caption (pretrain_text.FIELDS) on the caption's embedding."""

    def __init__(self, dim: int, num_classes: dict[str, int]):
        super().__init__()
        self.names = list(num_classes)
        self.heads = nn.ModuleList(nn.Linear(dim, n) for n in num_classes.values())

    def forward(self, emb: Tensor) -> list[Tensor]:
        # emb: [N, D] caption embeddings -> one [N, n_k] logit tensor per field
        return [head(emb) for head in self.heads]

    def loss(self, emb: Tensor, labels: Tensor) -> Tensor:
        # labels: [N, F] class ids
        return torch.stack([F.cross_entropy(lg, labels[:, k]) for k, lg in enumerate(self(emb))]).mean()

    @torch.no_grad()
    def accuracy(self, emb: Tensor, labels: Tensor) -> dict[str, float]:
        return {
            f"eval_caption_{name}_acc": float((lg.argmax(1) == labels[:, k]).float().mean())
            for k, (name, lg) in enumerate(zip(self.names, self(emb), strict=True))
        }

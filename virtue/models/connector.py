"""The connector: the segmentation map -> |S| tokens at the LLM's width."""

from __future__ import annotations

import torch
from torch import nn

from virtue.config.model import seg_token_side


class Connector(nn.Module):
    """Conv2d with kernel = stride (map side / sqrt(|S|)) pools the map to sqrt(|S|) x sqrt(|S|) cells, then an
    MLP of `depth` Linear layers (GELU between, hidden width = channels) lifts each cell to the LLM width."""

    def __init__(self, channels: int, map_side: int, seg_tokens: int, out_dim: int, depth: int = 2):
        super().__init__()
        side = seg_token_side(seg_tokens, map_side)  # ValueError unless sqrt(|S|) divides the map side
        if not 1 <= depth <= 3:
            raise ValueError(f"connector depth must be 1-3, got {depth}")
        kernel = map_side // side
        self.seg_tokens = seg_tokens
        self.reduce = nn.Conv2d(channels, channels, kernel_size=kernel, stride=kernel)
        layers: list[nn.Module] = []
        for _ in range(depth - 1):
            layers += [nn.Linear(channels, channels), nn.GELU()]
        layers.append(nn.Linear(channels, out_dim))
        self.mlp = nn.Sequential(*layers)

    def forward(self, seg_map: torch.Tensor) -> torch.Tensor:
        # seg_map: [N, C, H, W] -> [N, C, s, s] -> [N, s*s, C] -> [N, |S|, D]
        x = self.reduce(seg_map).flatten(2).transpose(1, 2)
        return self.mlp(x)

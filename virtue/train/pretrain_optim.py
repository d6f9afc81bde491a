"""The update rule shared by both backbone pre-training loops: AdamW, linear warm-up then cosine decay,
gradient clipping, and the loss history summarised for metrics.json."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch
from torch import Tensor


class PretrainOptimizer:
    def __init__(self, params: Iterable[torch.nn.Parameter], *, lr: float, steps: int):
        self.params = list(params)
        self.opt = torch.optim.AdamW(self.params, lr=lr, weight_decay=0.01)
        warmup = max(1, steps // 20)
        cosine = lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / max(steps, 1)))
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: min(1.0, (s + 1) / warmup) * cosine(s))
        self.losses: list[float] = []

    def step(self, loss: Tensor) -> float:
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        self.sched.step()
        self.losses.append(loss.item())
        return self.losses[-1]

    def loss_summary(self) -> dict[str, float]:
        """Mean loss over the first and the last tenth of the steps."""
        if not self.losses:
            return {}
        k = max(1, len(self.losses) // 10)
        return {"loss_first": float(np.mean(self.losses[:k])), "loss_last": float(np.mean(self.losses[-k:]))}

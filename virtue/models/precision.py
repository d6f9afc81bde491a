"""Mixed precision of the trained forward (train.autocast): one context manager for training and evaluation.

Under bfloat16 autocast the LLM's matmuls (its frozen weights and the adapters on them) and the connector's
run in bfloat16, while the trained weights stay float32 masters: autocast casts a copy per op, gradients
arrive in float32 and the optimizer updates float32. Without it, the adapters' float32 weights pull every
adapted layer into float32: peft casts the input to the adapter's dtype, and DoRA with dropout then runs
the base layer's matmul in float32 on a float32 copy of its weight, kept for backward.
"""

from __future__ import annotations

import contextlib

import torch


def autocast_dtype(mode: str, device: str | torch.device) -> torch.dtype | None:
    """The dtype that `mode` (train.autocast: auto, bfloat16, off) autocasts to on `device`; None for none.
    auto is bfloat16 on CUDA only: on CPU the embedded default stays float32, bit for bit."""
    kind = torch.device(device).type
    if mode == "off" or (mode == "auto" and kind != "cuda"):
        return None
    if mode in ("auto", "bfloat16"):
        return torch.bfloat16
    raise ValueError(f"autocast mode {mode!r}: expected auto, bfloat16 or off")


def mixed_precision(mode: str, device: str | torch.device) -> contextlib.AbstractContextManager:
    """`with mixed_precision(cfg.train.autocast, device):` around a trained forward (not the loss, whose
    similarities stay float32; not the frozen backbones, which run in model.dtype on their own)."""
    dtype = autocast_dtype(mode, device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)

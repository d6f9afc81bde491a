"""GradCache (Gao et al., 2021): a contrastive loss over a batch larger than what fits with its graph.

1. Encode every chunk without a graph and keep only the representations (recording each chunk's RNG state).
2. Compute the loss on the cached representations and backpropagate to them: d loss / d rep for each row.
3. Encode each chunk again WITH its graph, replaying the recorded RNG state so dropout draws the same masks,
   and backpropagate the cached row gradients through it. Parameter gradients accumulate chunk by chunk.

The result equals one backward through the whole batch; only one chunk's graph is alive at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor


class RngState:
    """The CPU and (if used) CUDA generator states at one moment, restorable later."""

    def __init__(self) -> None:
        self.cpu = torch.get_rng_state()
        cuda_used = torch.cuda.is_available() and torch.cuda.is_initialized()
        self.cuda = torch.cuda.get_rng_state_all() if cuda_used else None

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)


def gradcache_backward(
    groups: Sequence[tuple[Callable[[Any], Tensor], Sequence[Any]]], loss_fn: Callable[..., Tensor]
) -> Tensor:
    """groups: one (encode, chunks) per input group (e.g. queries, targets); encode(chunk) -> [c, D].
    loss_fn(*reps) takes one [sum of c, D] tensor per group. Accumulates parameter gradients (call
    zero_grad before) and returns the loss, detached. The RNG ends where a plain forward would leave it."""
    reps: list[Tensor] = []
    states: list[list[RngState]] = []
    sizes: list[list[int]] = []
    for encode, chunks in groups:
        group_states, parts = [], []
        with torch.no_grad():
            for chunk in chunks:
                group_states.append(RngState())
                parts.append(encode(chunk))
        states.append(group_states)
        sizes.append([len(p) for p in parts])
        reps.append(torch.cat(parts).requires_grad_())
    end_state = RngState()

    loss = loss_fn(*reps)
    loss.backward()

    for (encode, chunks), group_states, group_sizes, rep in zip(groups, states, sizes, reps, strict=True):
        grads = rep.grad.split(group_sizes)  # per chunk [c, D]
        for chunk, state, grad in zip(chunks, group_states, grads, strict=True):
            state.restore()
            out = encode(chunk)
            # A surrogate whose gradient with respect to `out` is exactly the cached row gradient.
            torch.sum(out * grad).backward()
    end_state.restore()
    return loss.detach()

"""InfoNCE over in-batch negatives gathered from every rank, with optional hard negatives.

Every rank computes the loss of the WHOLE global batch from gathered embeddings in which only its own shard
carries a gradient. The value is then the same on every rank, and the gradient that reaches each rank's
shard is the full gradient of the global loss with respect to that shard. Gradients of parameters are
averaged across ranks (DDP's convention, see distributed.average_gradients), so the loss used for
backward is multiplied by the world size: the average of the per-rank sums then equals the gradient that
one process would compute on the whole batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor


def gather_keep_local_grad(x: Tensor) -> Tensor:
    """[b, ...] per rank -> [world * b, ...] in rank order; the local slice is `x` itself (keeps its graph),
    the other slices are constants. Every rank must pass the same shape."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    parts[dist.get_rank()] = x
    return torch.cat(parts)


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def info_nce(
    query: Tensor, positive: Tensor, negatives: Tensor | None = None, *, temperature: float, bidirectional: bool = False
) -> Tensor:
    """Mean InfoNCE over the global batch (same value on every rank).

    query, positive: [b, D] local shards of L2-normalised embeddings (row i of each is a pair);
    negatives: [b, K, D] extra hard negatives of each local query, or None.
    Each query is scored against every positive of the global batch and every hard negative of the global
    batch (the others' distractors are extra in-batch negatives). With `bidirectional`, each positive is also
    scored against every query, and the two directions are averaged.
    """
    q = gather_keep_local_grad(query)  # [B, D]
    p = gather_keep_local_grad(positive)  # [B, D]
    candidates = p
    if negatives is not None and negatives.shape[1] > 0:
        n = gather_keep_local_grad(negatives)  # [B, K, D]
        candidates = torch.cat([p, n.reshape(-1, n.shape[-1])])  # [B + B*K, D]
    target = torch.arange(q.shape[0], device=q.device)
    loss = F.cross_entropy(q @ candidates.T / temperature, target)
    if bidirectional:
        loss = (loss + F.cross_entropy(p @ q.T / temperature, target)) / 2
    return loss


def backward_scale() -> float:
    """Multiply the loss by this before backward when gradients are averaged across ranks."""
    return float(world_size())

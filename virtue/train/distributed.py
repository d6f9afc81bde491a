"""One process, many (torchrun), or many nodes (a Slurm job via submitit): the same code path.

Processes find each other through the usual environment variables (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT). torchrun sets them; in a multi-task submitit job (Slurm, one task per GPU,
any number of nodes) submitit's TorchDistributedEnvironment derives them from the job.
Backend: NCCL on GPU, gloo on CPU.

Gradients are averaged with one all-reduce per step after backward instead of wrapping the model in
DistributedDataParallel: GradCache runs several backward passes per step, and only the adapters and the
connector are trained, so one flat all-reduce is simple and cheap.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _export_submitit_env() -> None:
    """In a submitit job (Slurm or local) with several tasks and no torchrun variables, let submitit
    derive and export them (MASTER_ADDR = first node, a port from the job id, ranks from the task ids)."""
    if "RANK" in os.environ or "SUBMITIT_EXECUTOR" not in os.environ:
        return
    from submitit import JobEnvironment
    from submitit.helpers import TorchDistributedEnvironment

    if JobEnvironment().num_tasks > 1:
        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def init_distributed(device: str = "auto") -> DistEnv:
    """Join the process group if the environment describes one; otherwise a single process.
    device: "auto" (CUDA if available), "cpu" or "cuda"."""
    _export_submitit_env()
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return DistEnv(device="cuda" if use_cuda else "cpu")
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", init_method="env://")
    return DistEnv(rank, world, local_rank, f"cuda:{local_rank}" if use_cuda else "cpu")


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    """Python, NumPy and torch (CPU and CUDA) generators. Callers pass base seed + rank for per-rank
    randomness (dropout), and the base seed where every rank must agree (initial weights, data order)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """All-reduce the gradients of `params` (one flat buffer) and divide by the world size."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def broadcast_parameters(params: list[torch.nn.Parameter]) -> None:
    """Make every rank start from rank 0's weights."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    with torch.no_grad():
        for p in params:
            dist.broadcast(p.data, src=0)

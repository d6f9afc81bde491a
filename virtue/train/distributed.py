"""One process, many (torchrun), or many nodes (a Slurm job via submitit): the same code path.

Processes find each other through the usual environment variables (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT). torchrun sets them; in a multi-task submitit job (Slurm, one task per GPU,
any number of nodes) submitit's TorchDistributedEnvironment derives them from the job.
Backend: NCCL for CUDA tensors on GPU (with gloo beside it for CPU tensors and objects), gloo on CPU; a
tensor made only for a collective lives on `collective_device()`.

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
        # NCCL reduces only CUDA tensors; gloo beside it serves CPU tensors and the object collectives
        # (all_gather_object, barrier), which would otherwise have to copy through the GPU.
        _join_group("cpu:gloo,cuda:nccl" if use_cuda else "gloo", rank, world)
    return DistEnv(rank, world, local_rank, f"cuda:{local_rank}" if use_cuda else "cpu")


_rendezvous: dict = {"store": None, "joins": 0}  # this process's rendezvous store, and the groups it joined


def _join_group(backend: str, rank: int, world: int) -> None:
    """init_process_group through the env:// rendezvous, each join under its own key prefix: a group joined
    again after shutdown_distributed (one evaluation after another) would otherwise read the previous
    group's addresses from the store and fail to connect (pytorch/pytorch#55967)."""
    if _rendezvous["store"] is None:
        _rendezvous["store"], _, _ = next(dist.rendezvous("env://", rank, world))
    store = dist.PrefixStore(f"virtue-join-{_rendezvous['joins']}", _rendezvous["store"])
    _rendezvous["joins"] += 1
    dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world)


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_world() -> tuple[int, int]:
    """(rank, world size) of the current process group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def collective_device(backend: str | None = None, local_rank: int | None = None) -> torch.device:
    """The device a tensor made only for a collective must live on: NCCL reduces CUDA tensors only, each rank's
    on its own GPU (cuda:LOCAL_RANK, the device init_distributed selected), gloo CPU tensors. Defaults: the
    current group's backend (gloo without one) and $LOCAL_RANK."""
    if backend is None:
        backend = str(dist.get_backend()) if dist.is_available() and dist.is_initialized() else "gloo"
    if "nccl" not in backend:
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) if local_rank is None else local_rank)


def gather_rows(rows: torch.Tensor) -> torch.Tensor:
    """Every rank's rows [n_r, D] -> [sum n_r, D] on CPU, in rank order, on every rank. Counts may differ
    between ranks (a rank may have none: its D is taken from the others)."""
    rank, world = rank_world()
    if world == 1:
        return rows
    device = collective_device()
    shape = torch.tensor([rows.shape[0], rows.shape[1] if rows.shape[0] else 0], device=device)
    shapes = [torch.empty_like(shape) for _ in range(world)]
    dist.all_gather(shapes, shape)
    counts = [int(s[0]) for s in shapes]
    dim = max(int(s[1]) for s in shapes)
    padded = torch.zeros(max(counts), dim, dtype=rows.dtype, device=device)  # all_gather needs equal shapes
    if counts[rank]:
        padded[: counts[rank]] = rows
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([part[:n].cpu() for part, n in zip(parts, counts, strict=True)])


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

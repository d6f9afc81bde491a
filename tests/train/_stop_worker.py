"""Run by test_ddp under torchrun: python _stop_worker.py OUT_DIR cpu|cuda. Rank 1 alone gets SIGUSR2 at step
STOP_AT; every rank writes rank{r}.json with the step at which its StopRequest said stop and the device of
every tensor it handed to dist.all_reduce (recorded by a pass-through wrapper)."""

import json
import signal
import sys

import torch
import torch.distributed as dist

from virtue.train.checkpoint import StopRequest
from virtue.train.distributed import collective_device, init_distributed, shutdown_distributed

STOP_AT, STEPS = 3, 8


def stopped_at(rank: int) -> int | None:
    with StopRequest() as stop:
        for step in range(STEPS):
            if rank == 1 and step == STOP_AT:
                signal.raise_signal(signal.SIGUSR2)
            if stop.requested():
                return step
    return None


def nccl_attempt() -> str | None:
    """What StopRequest does when the group says NCCL, on a CPU-only torch (NCCL cannot run there): the
    group's backend name is the only thing replaced. None if it reduced without error (a CPU tensor)."""
    real = dist.get_backend
    dist.get_backend = lambda group=None: "nccl"
    try:
        StopRequest().requested()
    except (AssertionError, RuntimeError) as e:  # torch's "not compiled with CUDA" is an AssertionError
        return str(e)
    finally:
        dist.get_backend = real
    return None


if __name__ == "__main__":
    out, device = sys.argv[1], sys.argv[2]
    env = init_distributed(device)
    devices: list[str] = []
    real_all_reduce = dist.all_reduce

    def recording_all_reduce(tensor, *args, **kwargs):
        devices.append(str(tensor.device))
        return real_all_reduce(tensor, *args, **kwargs)

    dist.all_reduce = recording_all_reduce
    result = {"stopped_at": stopped_at(env.rank), "devices": devices, "chosen": str(collective_device())}
    result["env_device"] = str(torch.device(env.device))
    if not torch.cuda.is_available():
        result["nccl_error"] = nccl_attempt()
    with open(f"{out}/rank{env.rank}.json", "w") as f:
        json.dump(result, f)
    shutdown_distributed()

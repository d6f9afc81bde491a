"""Run by test_ddp under torchrun: one step of InfoNCE on this rank's shard, gradients averaged."""

import sys

import torch
import torch.nn.functional as F

from virtue.train.distributed import average_gradients, init_distributed, shutdown_distributed
from virtue.train.loss import backward_scale, info_nce

B, K, IN, D = 8, 2, 6, 4


def model_and_batch():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(IN, 16), torch.nn.GELU(), torch.nn.Linear(16, D))
    g = torch.Generator().manual_seed(1)
    return model, torch.randn(B, IN, generator=g), torch.randn(B, IN, generator=g), torch.randn(B, K, IN, generator=g)


def step(model, xq, xp, xn):
    enc = lambda x: F.normalize(model(x), dim=-1)
    loss = info_nce(enc(xq), enc(xp), enc(xn), temperature=0.05, bidirectional=True)
    (loss * backward_scale()).backward()
    average_gradients(list(model.parameters()))
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


if __name__ == "__main__":
    torch.set_num_threads(1)
    env = init_distributed("cpu")
    model, xq, xp, xn = model_and_batch()
    b = B // env.world_size
    shard = slice(env.rank * b, (env.rank + 1) * b)
    loss, grads = step(model, xq[shard], xp[shard], xn[shard])
    torch.save({"loss": loss, "grads": grads}, f"{sys.argv[1]}/rank{env.rank}.pt")
    shutdown_distributed()

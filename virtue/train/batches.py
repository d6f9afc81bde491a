"""Each training step's inputs, optionally prepared ahead in DataLoader worker processes (train.num_workers).

A step's inputs are the sampler's shard of its batch, cut into the chunks the loss encodes (GradCache chunks,
or one chunk per side group), each with its processor output: decoded, resized and patchified images, SAM
input and prompts, token ids. That is a pure function of (config, seed, step) and needs no model, so workers
can compute it while the model trains on an earlier step. Workers draw no random numbers and run the same
numpy/PIL code as the training process, so their outputs are the bits it would have computed.

With num_workers 0 nothing is processed here: the training process processes each chunk when it encodes it,
as it always has (and skips the pixels of rows the frozen-feature cache holds). With workers and the cache on,
the training process still looks the cache up, in step order (a worker's lookup would race the stores of
earlier steps); on a hit it drops the worker's output and tokenizes without pixels, as without workers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from ..data.types import Side
from .checkpoint import StopRequest
from .sampler import Batch, SourceBatchSampler


@dataclass
class Chunk:
    sides: list[Side]
    processed: Any = None  # the processor's output for `sides` (with pixels), or None: not processed yet

    def pin_memory(self) -> Chunk:
        """Called by the DataLoader's pin-memory thread (CUDA): page-locked tensors copy to the GPU faster."""
        return Chunk(self.sides, _pinned(self.processed))


@dataclass
class StepInputs:
    step: int
    batch: Batch  # this rank's shard
    queries: list[Chunk]
    targets: list[Chunk]  # over batch.positives + batch.negatives, in that order

    def pin_memory(self) -> StepInputs:
        return StepInputs(
            self.step, self.batch, [c.pin_memory() for c in self.queries], [c.pin_memory() for c in self.targets]
        )


def _pinned(x: Any) -> Any:
    """Tensors of a processor output (ModelInputs, or a dict of tensors) page-locked; other fields as they are."""
    if isinstance(x, torch.Tensor):
        return x.pin_memory()
    if isinstance(x, dict):
        return {k: _pinned(v) for k, v in x.items()}
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        tensors = {f.name: getattr(x, f.name) for f in dataclasses.fields(x)}
        return dataclasses.replace(x, **{k: v.pin_memory() for k, v in tensors.items() if isinstance(v, torch.Tensor)})
    return x


def chunked(batch: Batch, chunk: int, step: int = 0, processor: Any = None) -> StepInputs:
    """`batch` cut into the chunks the loss encodes (chunk 0: each side group whole, no GradCache), each
    processed by `processor`, or left for the training process to process (None)."""

    def cut(sides: list[Side]) -> list[Chunk]:
        size = chunk or len(sides)
        parts = [sides[i : i + size] for i in range(0, len(sides), size)]
        return [Chunk(p, None if processor is None else processor(p)) for p in parts]

    return StepInputs(step, batch, cut(batch.queries), cut(batch.positives + batch.negatives))


class StepBatches(Dataset):
    """step -> StepInputs of this rank. process: run the processor here (in the workers) or leave it to the
    training process (processed None)."""

    def __init__(
        self,
        sampler: SourceBatchSampler,
        processor: Any,
        *,
        chunk: int,
        rank: int = 0,
        world_size: int = 1,
        process: bool = False,
    ):
        self.sampler, self.processor, self.chunk = sampler, processor, chunk
        self.rank, self.world_size, self.process = rank, world_size, process

    def __getitem__(self, step: int) -> StepInputs:
        batch = self.sampler.batch(step, self.rank, self.world_size)
        return chunked(batch, self.chunk, step, self.processor if self.process else None)


def _as_is(item: StepInputs) -> StepInputs:
    return item


def _leave_stopping_to_the_trainer(worker_id: int) -> None:
    """Slurm signals every process of a job (preemption, time limit). The training process finishes its
    step, saves and stops; a worker killed by the same signal would instead make the DataLoader raise in the
    middle of that step. Workers end when the training process shuts the loader down (or dies)."""
    for s in StopRequest.SIGNALS:
        signal.signal(s, signal.SIG_IGN)


@contextlib.contextmanager
def step_inputs(
    dataset: StepBatches, start: int, stop: int, *, num_workers: int, prefetch_factor: int, pin_memory: bool
) -> Iterator[Iterator[StepInputs]]:
    """The inputs of steps start..stop-1 in order. With workers: one DataLoader iterator over the whole run
    (so its workers persist across epochs), shut down when the block is left, however it is left."""
    if num_workers == 0:
        yield (dataset[s] for s in range(start, stop))
        return
    loader = DataLoader(
        dataset,
        batch_size=None,  # an item is already one step's inputs
        sampler=range(start, stop),
        num_workers=num_workers,
        prefetch_factor=prefetch_factor,
        collate_fn=_as_is,
        pin_memory=pin_memory,
        worker_init_fn=_leave_stopping_to_the_trainer,
        # the workers' base seed is drawn from this generator, not from the global one that dropout draws from
        generator=torch.Generator().manual_seed(0),
    )
    batches = iter(loader)
    try:
        yield batches
    finally:
        batches._shutdown_workers()  # noqa: SLF001 - a traceback kept alive would otherwise keep the workers

"""Which pairs make up training step t: a pure function of (seed, t), so a resumed run sees exactly the
batches an uninterrupted one would, and every rank agrees on the global batch without communication.

Each global batch comes from one source (as in the release: in-batch negatives from the same dataset
are meaningful negatives). A source's epoch shuffles it and cuts it into full batches (the remainder waits
for the next epoch's shuffle). Two ways to mix the sources:
- size (default): an epoch is every source's batches in one shuffled order, so a source's share of the steps
  is its share of the rows.
- uniform (the release: VLM2Vec-V2's interleaving with weight 1 for every dataset): each step draws its
  source at random, each source equally likely whatever its size; a source runs through its own epochs.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..data.types import Side, TrainPair
from ..errors import UserError

Mixing = Literal["size", "uniform"]
_DRAW_BLOCK = 1024  # uniform mixing draws the sources of this many steps at a time


def first_rows_per_source(pairs: Sequence[TrainPair], max_rows: int | None) -> list[TrainPair]:
    """The first max_rows pairs of each source, in reading order (file order); None keeps all. The release
    caps every training dataset the same way (num_sample_per_subset: 100000, `select(range(N))`)."""
    if max_rows is None:
        return list(pairs)
    seen: dict[str, int] = {}
    out = []
    for pair in pairs:
        seen[pair.source] = seen.get(pair.source, 0) + 1
        if seen[pair.source] <= max_rows:
            out.append(pair)
    return out


@dataclass(frozen=True)
class Batch:
    """Side lists of this rank's shard; negatives are grouped per query: [q0's K, q1's K, ...]."""

    queries: list[Side]
    positives: list[Side]
    negatives: list[Side]
    source: str


class SourceBatchSampler:
    """weights, size mixing: per source, the share of its full batches used in each epoch (default 1: all of
    them). A source at 0.25 gives a quarter of its batches per epoch, a different quarter each epoch.
    weights, uniform mixing: per source, its relative chance of being drawn for a step (default 1: equal).
    kinds: hard negatives are drawn only from a pair's negatives of these kinds (default: from all); pairs
    whose data names no kinds draw from all their negatives, with a warning."""

    def __init__(
        self,
        pairs: Sequence[TrainPair],
        batch_size: int,
        seed: int,
        hard_negatives: int = 0,
        weights: Mapping[str, float] | None = None,
        kinds: Sequence[str] = (),
        mixing: Mixing = "size",
    ):
        if mixing not in ("size", "uniform"):
            raise UserError(f"train.source_mixing: unknown mixing {mixing!r} (size, uniform)")
        self.pairs, self.batch_size, self.seed, self.mixing = pairs, batch_size, seed, mixing
        by_source: dict[str, list[int]] = {}
        for i, pair in enumerate(pairs):
            by_source.setdefault(pair.source, []).append(i)
        self.sources = {s: np.array(ix) for s, ix in sorted(by_source.items())}
        small = [s for s, ix in self.sources.items() if len(ix) < batch_size]
        if len(small) == len(self.sources):
            raise UserError(f"train.batch_size: {batch_size} is larger than every source ({self._sizes()})")
        if small:
            warnings.warn(f"sources smaller than one batch are not used: {', '.join(small)}", stacklevel=2)
        self._plan_hard_negatives(hard_negatives, kinds)
        self._plan_batches(dict(weights or {}))
        self._epoch: tuple[int, list[np.ndarray]] | None = None
        self._blocks: list[tuple[np.ndarray, np.ndarray]] = []
        self._counts = np.zeros(len(self._drawn), dtype=np.int64)
        self._source_epoch: dict[str, tuple[int, np.ndarray]] = {}

    def _plan_hard_negatives(self, hard_negatives: int, kinds: Sequence[str]) -> None:
        """k_of: hard negatives per query of each source; eligible: each pair's distractors to draw them from."""
        # Hard negatives per query, per source: a source without any (MMEB's training sets) gets none, so
        # `train.source: both` mixes sources with and without distractors; a source with too few is an error.
        pairs = self.pairs
        self.k_of = {
            src: hard_negatives if any(len(pairs[i].negatives) for i in ix) else 0 for src, ix in self.sources.items()
        }
        if self.batch_size == 1 and (alone := sorted(src for src, k in self.k_of.items() if not k)):
            # One query and its positive only: InfoNCE over a single candidate is log(1) = 0, nothing learns.
            raise UserError(
                f"train.batch_size: 1 leaves the queries of {', '.join(alone)} without any negative (loss 0 at "
                "every step); use a batch of at least 2, or train.hard_negatives with data that has distractors"
            )
        self.eligible = [self._eligible(p, kinds) if self.k_of[p.source] else () for p in self.pairs]
        if kinds and (unkinded := sorted({p.source for p in self.pairs if p.negatives and not p.negative_kinds})):
            warnings.warn(
                f"train.hard_negative_kinds: no negative kinds in the data of {', '.join(unkinded)} (no neg_kind "
                "column): their hard negatives come from all their distractors",
                stacklevel=3,
            )
        short = next((i for i, p in enumerate(self.pairs) if len(self.eligible[i]) < self.k_of[p.source]), None)
        if short is not None:
            which = f"negatives of kind {', '.join(kinds)}" if kinds else "negatives"
            raise UserError(
                f"train.hard_negatives: {hard_negatives} per query, but pair {short} of source "
                f"'{self.pairs[short].source}' has only {len(self.eligible[short])} {which}"
            )

    def _plan_batches(self, weights: dict[str, float]) -> None:
        """kept: full batches of each source used per epoch (size mixing) or drawable (uniform mixing)."""
        if unknown := sorted(set(weights) - set(self.sources)):
            raise UserError(f"source weights for unknown sources: {', '.join(unknown)} (have: {self._sizes()})")
        full = {s: len(ix) // self.batch_size for s, ix in self.sources.items()}
        if self.mixing == "size":
            self.kept = {s: round(weights.get(s, 1.0) * n) for s, n in full.items()}
        else:  # every full batch of a drawn source is used, in turn; the weights set how often it is drawn
            self.kept = {s: n if weights.get(s, 1.0) > 0 else 0 for s, n in full.items()}
        self.batches_per_epoch = sum(self.kept.values())  # size mixing: the steps of one epoch
        if not self.batches_per_epoch:
            raise UserError(f"source weights leave no batch to train on ({weights})")
        # uniform mixing: the sources that can be drawn and the chance of each; per block of steps, the source
        # each step draws and that source's batch number (earlier draws of it), and the draws of each so far
        self._drawn = [s for s, n in self.kept.items() if n]
        w = np.array([weights.get(s, 1.0) for s in self._drawn], dtype=np.float64)
        self._chance = w / w.sum()

    @staticmethod
    def _eligible(pair: TrainPair, kinds: Sequence[str]) -> tuple[int, ...]:
        """Indices of the pair's negatives that hard negatives may be drawn from (all, if its data has no kinds)."""
        if not kinds or not pair.negative_kinds:
            return tuple(range(len(pair.negatives)))
        return tuple(j for j, kind in enumerate(pair.negative_kinds) if kind in kinds)

    def _sizes(self) -> str:
        return ", ".join(f"{s}: {len(ix)}" for s, ix in self.sources.items())

    def _plan(self, epoch: int) -> list[np.ndarray]:
        if self._epoch is None or self._epoch[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            batches = []
            for src, ix in self.sources.items():
                order, n = rng.permutation(ix), self.batch_size
                batches += [order[i : i + n] for i in range(0, len(order) - n + 1, n)][: self.kept[src]]
            self._epoch = (epoch, [batches[i] for i in rng.permutation(len(batches))])
        return self._epoch[1]

    def _draw(self, step: int) -> tuple[str, int]:
        """Uniform mixing: the source of `step`, and how many earlier steps drew it (its batch number)."""
        block, i = divmod(step, _DRAW_BLOCK)
        while len(self._blocks) <= block:  # in order: a block's batch numbers continue the previous counts
            rng = np.random.default_rng([self.seed, len(self._blocks), 2])
            src = rng.choice(len(self._drawn), size=_DRAW_BLOCK, p=self._chance)
            onehot = src[:, None] == np.arange(len(self._drawn))  # [block, sources]
            number = self._counts[src] + np.cumsum(onehot, axis=0)[np.arange(_DRAW_BLOCK), src] - 1
            self._counts += onehot.sum(axis=0)
            self._blocks.append((src, number))
        src, number = self._blocks[block]
        return self._drawn[src[i]], int(number[i])

    def _source_batch(self, src: str, k: int) -> np.ndarray:
        """The k-th batch of source `src` over its own epochs (each a fresh shuffle of the source)."""
        epoch, j = divmod(k, self.kept[src])
        if src not in self._source_epoch or self._source_epoch[src][0] != epoch:
            rng = np.random.default_rng([self.seed, epoch, 3, list(self.sources).index(src)])
            self._source_epoch[src] = (epoch, rng.permutation(self.sources[src]))
        n = self.batch_size
        return self._source_epoch[src][1][j * n : (j + 1) * n]

    def indices(self, step: int) -> np.ndarray:
        """Pair indices of the global batch of `step`."""
        if self.mixing == "uniform":
            return self._source_batch(*self._draw(step))
        epoch, i = divmod(step, self.batches_per_epoch)
        return self._plan(epoch)[i]

    def batch(self, step: int, rank: int = 0, world_size: int = 1) -> Batch:
        """This rank's contiguous shard of step `step`'s global batch (the loss gathers in rank order)."""
        if self.batch_size % world_size:
            raise UserError(f"train.batch_size: {self.batch_size} is not divisible by the {world_size} processes")
        idx = self.indices(step)
        k = self.k_of[self.pairs[idx[0]].source]  # one source per batch
        rng = np.random.default_rng([self.seed, step, 1])  # hard-negative choice, also a function of the step
        chosen = [rng.choice(self.eligible[i], k, replace=False) for i in idx] if k else []
        b = self.batch_size // world_size
        shard = slice(rank * b, (rank + 1) * b)
        pairs = [self.pairs[i] for i in idx[shard]]
        negs = [pair.negatives[j] for pair, js in zip(pairs, chosen[shard], strict=True) for j in js] if k else []
        return Batch([p.query for p in pairs], [p.positive for p in pairs], negs, pairs[0].source)

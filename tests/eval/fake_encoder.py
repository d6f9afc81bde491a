"""A deterministic encoder for protocol tests: a side's embedding is its normalised bag of words (each distinct
word one axis), so the cosine score of a candidate grows with the words it shares with the query."""

from __future__ import annotations

import torch

from virtue.data.types import Side


class WordEncoder:
    def __init__(self, vocabulary: list[str]):
        self.axis = {w: i for i, w in enumerate(sorted(set(vocabulary)))}
        self.calls: list[list[Side]] = []

    def __call__(self, sides: list[Side]) -> torch.Tensor:
        self.calls.append(list(sides))
        out = torch.zeros(len(sides), len(self.axis) + 1)
        for row, side in enumerate(sides):
            out[row, -1] = 1e-3  # keeps an empty text away from a zero vector
            for word in side.text.split():
                if word in self.axis:
                    out[row, self.axis[word]] += 1.0
        return torch.nn.functional.normalize(out, dim=-1)

    @property
    def encoded(self) -> list[Side]:
        return [s for batch in self.calls for s in batch]

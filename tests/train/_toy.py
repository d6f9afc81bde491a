"""A toy embedder with the contract of virtue.models' Embedder/Processor, for testing the training
machinery without the real backbones: a frozen "vision" part (cacheable), a trained connector and head
with dropout, L2-normalised output."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from virtue.data.types import Side, TrainPair

FEAT = 16


def _text_features(text: str) -> Tensor:
    """Deterministic bag of hashed character trigrams, [FEAT]."""
    v = torch.zeros(FEAT)
    for i in range(max(1, len(text) - 2)):
        h = int.from_bytes(hashlib.blake2s(text[i : i + 3].encode(), digest_size=4).digest(), "little")
        v[h % FEAT] += 1.0
    return v / v.norm().clamp_min(1e-6)


class ToyProcessor:
    def __call__(self, sides: Sequence[Side], *, pixels: bool = True) -> dict[str, Tensor]:
        text = torch.stack([_text_features(s.text) for s in sides])  # [B, FEAT]
        image = torch.zeros(len(sides), FEAT)  # only the frozen part reads it: left empty without pixels
        for i, s in enumerate(sides):
            if s.image is not None and pixels:
                data = np.frombuffer(Path(s.image).read_bytes(), dtype=np.uint8)[:FEAT].astype(np.float32)
                image[i, : len(data)] = torch.from_numpy(data) / 255.0
        has_image = torch.tensor([s.image is not None for s in sides])
        return {"text": text, "image": image, "has_image": has_image}


class ToyEmbedder(nn.Module):
    def __init__(self, dim: int = 8, dropout: float = 0.1):
        super().__init__()
        self.vision = nn.Linear(FEAT, FEAT)  # frozen
        self.connector = nn.Linear(FEAT, FEAT)
        self.head = nn.Sequential(nn.Linear(2 * FEAT, 32), nn.GELU(), nn.Dropout(dropout), nn.Linear(32, dim))
        self.vision.requires_grad_(False)

    def frozen_features(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        with torch.no_grad():
            # rows without an image are zeros, as in the real embedder
            return {"vision": torch.tanh(self.vision(inputs["image"])) * inputs["has_image"][:, None]}  # [B, FEAT]

    def forward(self, inputs: dict[str, Tensor], frozen: dict[str, Tensor] | None = None) -> Tensor:
        vis = (frozen or self.frozen_features(inputs))["vision"]
        h = torch.cat([inputs["text"], self.connector(vis)], dim=-1)  # [B, 2*FEAT]
        return F.normalize(self.head(h), dim=-1)  # [B, dim]

    def trainable_state_dict(self) -> dict[str, Tensor]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("vision.")}

    def load_trainable_state_dict(self, sd: dict[str, Tensor]) -> None:
        missing = set(self.trainable_state_dict()) - set(sd)
        if missing:
            raise KeyError(f"missing {sorted(missing)}")
        self.load_state_dict(sd, strict=False)

    def frozen_fingerprint(self) -> str:
        h = hashlib.sha1()
        for k, v in sorted(self.vision.state_dict().items()):
            h.update(k.encode())
            h.update(v.numpy().tobytes())
        return h.hexdigest()


def toy_pairs(folder: Path, n: int = 32, sources: Sequence[str] = ("a",), negatives: int = 3) -> list[TrainPair]:
    """Micro TrainPairs with small image files (random bytes) in `folder`."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i in range(n):
        img = folder / f"img{i % 8}.bin"
        if not img.exists():
            img.write_bytes(rng.integers(0, 256, 64, dtype=np.uint8).tobytes())
        negs = tuple(Side(f"caption {i} wrong {j}") for j in range(negatives))
        pairs.append(
            TrainPair(
                query=Side(f"find object {i % 5} in image", image=str(img)),
                positive=Side(f"caption number {i} of the object"),
                negatives=negs,
                source=sources[i % len(sources)],
            )
        )
    return pairs

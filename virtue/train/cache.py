"""On-disk cache of the frozen parts' outputs (SAM-2, vision tower) per input row.

With those parts frozen, their output for a row depends only on the image content, the visual prompt,
the frozen weights and the input sizes. The key hashes exactly these, so entries are shared by epochs,
runs and sweep trials, and a changed image file or backbone simply misses. One safetensors file per row,
written atomically (concurrent trials may write the same entry; the last rename wins, both are equal).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..data.types import Side
from .checkpoint import save_weights

Features = dict[str, torch.Tensor]
_content_hashes: dict[tuple[str, int, int], str] = {}


def file_hash(path: str) -> str:
    """sha256 of a file's bytes, remembered per (path, mtime, size) within the process."""
    st = os.stat(path)
    memo = (path, st.st_mtime_ns, st.st_size)
    if memo not in _content_hashes:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _content_hashes[memo] = h.hexdigest()
    return _content_hashes[memo]


class FeatureCache:
    """fingerprint: embedder.frozen_fingerprint(), the digest of the frozen weights and of every setting
    their output depends on (virtue.models.frozen)."""

    def __init__(self, root: Path, fingerprint: str):
        self.root = Path(root)
        self.salt = fingerprint
        self.hits = self.misses = 0

    def key(self, side: Side) -> str:
        image = file_hash(side.image) if side.image else "-"
        prompt = side.prompt.key() if side.prompt is not None else "-"
        return hashlib.sha256(f"{image}|{prompt}|{self.salt}".encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.safetensors"

    def lookup(self, sides: Sequence[Side]) -> Features | None:
        """The frozen features of `sides` as [B, ...] tensors if every image row is cached, else None (also
        for a batch without images: rows without one are zeros, whose shape depends on the rest)."""
        rows = [i for i, s in enumerate(sides) if s.image is not None]
        if not rows:
            return None
        paths = {i: self._path(self.key(sides[i])) for i in rows}
        if not all(p.is_file() for p in paths.values()):
            return None
        loaded = {i: load_file(str(p)) for i, p in paths.items()}
        self.hits += len(rows)
        first = loaded[rows[0]]
        out = {name: t.new_zeros((len(sides), *t.shape)) for name, t in first.items()}
        for i, feats in loaded.items():
            for name, t in feats.items():
                out[name][i] = t
        return out

    def store(self, sides: Sequence[Side], feats: Features) -> None:
        """Write the image rows of freshly computed features (the whole batch is computed on any miss: one
        forward beats many partial ones)."""
        for name, t in feats.items():
            if t.shape[0] != len(sides):
                raise ValueError(f"frozen feature '{name}' has {t.shape[0]} rows for {len(sides)} inputs")
        rows = [i for i, s in enumerate(sides) if s.image is not None]
        for i in rows:
            p = self._path(self.key(sides[i]))
            if not p.is_file():
                save_weights(p, {name: t[i] for name, t in feats.items()})
        self.misses += len(rows)

"""What a prompt is ranked against: captions (SCaR's eval captions, or a text file of one caption per line) and
images (the distinct query images of SCaR's eval files), and their embeddings per checkpoint. The embeddings
are computed once and cached on disk (atomic write), keyed by a digest of the checkpoint's weights file, of
what its frozen features depend on (Embedder.frozen_fingerprint), of its model config and of the gallery's
contents (caption texts, image bytes)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import ExperimentConfig
from ..data import read_scar_eval
from ..data.images import image_size
from ..data.synth.mmeb import INST
from ..data.types import EvalQuery, Side
from ..errors import UserError
from ..eval.encode import embed_sides
from ..io import atomic_path
from ..paths import workspace_root
from .models import DemoModel, file_digest

IMAGE_INSTRUCTION = INST["img"]  # how MMEB-synth's image targets read: an image alone is "the given image"
CACHE_VERSION = "demo-gallery-1"


@dataclass(frozen=True)
class EvalImage:
    path: str  # absolute
    name: str  # relative to the SCaR folder, as its parquet files name it
    width: int
    height: int
    queries: tuple[EvalQuery, ...]  # the eval queries on this image: true box, ground-truth caption first


@dataclass(frozen=True)
class Gallery:
    captions: tuple[str, ...]
    images: tuple[EvalImage, ...]
    source: str  # where the captions came from, in a few words

    def sides(self) -> list[Side]:
        """Captions as evaluation embeds candidates (text alone), then images with the image instruction."""
        return [Side(c) for c in self.captions] + [Side(IMAGE_INSTRUCTION, image=i.path) for i in self.images]

    def digest(self) -> str:
        content = {
            "captions": list(self.captions),
            "images": [[i.name, file_digest(Path(i.path))] for i in self.images],
            "image_instruction": IMAGE_INSTRUCTION,
        }
        return hashlib.sha256(json.dumps(content).encode()).hexdigest()


def read_captions(path: str | os.PathLike) -> tuple[str, ...]:
    """One caption per line; blank lines are skipped, repeated captions kept once."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(f"--gallery {path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"--gallery {path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    captions = tuple(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))
    if not captions:
        raise UserError(f"--gallery {path}: no captions (one per line)")
    return captions


def read_gallery(cfg: ExperimentConfig, captions_file: str | os.PathLike | None = None) -> Gallery:
    """The eval images of cfg.data.scar_dir (with their queries) and the captions to rank."""
    root = workspace_root()
    d = cfg.data
    folder = root / d.scar_dir
    image_root = None if d.image_root is None else root / d.image_root
    queries = read_scar_eval(folder, "box", image_root, skip_invalid=d.skip_invalid)
    if not queries:
        raise UserError(f"{folder}: no SCaR eval queries to show")
    by_image: dict[str, list[EvalQuery]] = {}
    for q in queries:
        by_image.setdefault(q.query.image, []).append(q)
    base = image_root or folder
    images = tuple(
        EvalImage(path, os.path.relpath(path, base), *image_size(path), tuple(qs)) for path, qs in by_image.items()
    )
    if captions_file is not None:
        return Gallery(read_captions(captions_file), images, Path(captions_file).name)
    captions = tuple(dict.fromkeys(c.text for q in queries for c in q.candidates))
    return Gallery(captions, images, f"eval captions of {Path(d.scar_dir).name}")


@dataclass(frozen=True)
class GalleryEmbeddings:
    captions: torch.Tensor  # [N, D] float32, unit rows, in gallery.captions order
    images: torch.Tensor  # [M, D], in gallery.images order
    path: Path  # the cache file
    encoded: int  # sides this call encoded: 0 when the cache held them


def cache_key(model: DemoModel, gallery: Gallery) -> str:
    parts = [
        CACHE_VERSION,
        model.weights_digest(),
        model.embedder.frozen_fingerprint(),
        model.cfg.model.model_dump_json(),
        model.cfg.train.autocast,
        gallery.digest(),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _read_cache(path: Path, key: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            if str(z["key"]) != key:
                return None
            return torch.from_numpy(z["captions"]), torch.from_numpy(z["images"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:  # damaged: encode again, replace it
        warnings.warn(f"{path}: unreadable gallery cache ({e}); encoding the gallery again", stacklevel=2)
        return None


def gallery_embeddings(model: DemoModel, gallery: Gallery, cache_dir: str | os.PathLike) -> GalleryEmbeddings:
    """The gallery's embeddings under this model: from the cache file if it holds them, else encoded in
    batches (a progress bar on a terminal) and written to it."""
    key = cache_key(model, gallery)
    path = Path(cache_dir) / f"gallery-{key[:24]}.npz"
    found = _read_cache(path, key)
    if found is not None:
        return GalleryEmbeddings(*found, path, 0)
    sides = gallery.sides()
    encode = model.encoder()
    count = 0

    def counted(batch: list[Side]) -> torch.Tensor:
        nonlocal count
        count += len(batch)
        return encode(batch)

    index, matrix = embed_sides(sides, counted, batch_size=model.cfg.eval.batch_size, desc=f"gallery {model.label}")
    rows = matrix[torch.tensor([index[s] for s in sides])].numpy().astype(np.float32)
    n = len(gallery.captions)
    buf = io.BytesIO()
    np.savez(buf, key=np.array(key), captions=rows[:n], images=rows[n:])
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    return GalleryEmbeddings(torch.from_numpy(rows[:n]), torch.from_numpy(rows[n:]), path, count)

"""The demo without a browser: load the checkpoints, embed the gallery once (cached), answer a prompt on an
image with each variant's top captions and images, and SAM-2's mask. Answers are plain JSON-ready dicts.

A prompt on an image becomes the query SCaR's eval files hold for a box: the image, the prompt, and the
instruction with the prompt's region as text (crop_region: the box itself, a mask's or points' bounding box),
which is all the global variant sees of it."""

from __future__ import annotations

import base64
import io
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..config import ExperimentConfig
from ..data.synth.scar import query_text
from ..data.types import Side
from ..errors import UserError
from ..models.processor import crop_region
from .gallery import Gallery, GalleryEmbeddings, gallery_embeddings, read_gallery
from .inputs import UploadLimits, Uploads, parse_prompt
from .models import DemoModel, load_model

TOP_K = 10
MASK_RGBA = (255, 40, 150, 120)  # the overlay colour of SAM-2's mask in the page


def top(scores: torch.Tensor, k: int) -> list[int]:
    """Indices of the k best scores, best first; equal scores in gallery order."""
    s = scores.double().numpy()
    return [int(i) for i in np.lexsort((np.arange(s.size), -s))[:k]]


def mask_png(mask: np.ndarray) -> str:
    """[H, W] bool -> a data URL of an RGBA PNG: the overlay colour where the mask is, transparent elsewhere."""
    rgba = np.zeros((*mask.shape, 4), dtype=np.uint8)
    rgba[mask] = MASK_RGBA
    buf = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@dataclass
class Engine:
    models: list[DemoModel]
    gallery: Gallery
    embeddings: list[GalleryEmbeddings]
    limits: UploadLimits = field(default_factory=UploadLimits)
    timings: dict = field(default_factory=dict)  # start-up: model load and gallery seconds

    def __post_init__(self) -> None:
        self._uploads_dir = Path(tempfile.mkdtemp(prefix="virtue-demo-uploads-"))
        self.uploads = Uploads(self._uploads_dir, self.limits)
        self._encoders = [m.encoder() for m in self.models]
        self._lock = threading.Lock()  # one request at a time: the page's requests come from a thread pool

    def close(self) -> None:
        shutil.rmtree(self._uploads_dir, ignore_errors=True)

    # ------------------------------------------------------------ images

    def images(self) -> list[dict]:
        """The eval images for the page's picker, with their queries' true boxes and ground-truth captions."""
        return [
            {
                "id": f"e{i}",
                "name": im.name,
                "width": im.width,
                "height": im.height,
                "queries": [{"box": list(q.query.prompt.box), "caption": q.candidates[0].text} for q in im.queries],
            }
            for i, im in enumerate(self.gallery.images)
        ]

    def image_file(self, image_id: str) -> tuple[Path, int, int]:
        """(path, width, height) of an eval image ("e<index>") or an upload ("u<digest>")."""
        if image_id.startswith("e") and image_id[1:].isdigit() and int(image_id[1:]) < len(self.gallery.images):
            im = self.gallery.images[int(image_id[1:])]
            return Path(im.path), im.width, im.height
        found = self.uploads.get(image_id) if image_id.startswith("u") else None
        if found is None:
            raise UserError(f"image {image_id[:40]!r}: no such image (pick one, or upload it again)")
        return found

    def upload(self, data: bytes) -> dict:
        with self._lock:
            uid, w, h = self.uploads.add(data)
        return {"id": uid, "name": "upload", "width": w, "height": h, "queries": []}

    # ------------------------------------------------------------ answers

    def query_side(self, image_id: str, prompt_spec) -> tuple[Side, tuple[int, int, int, int]]:
        """The query for a prompt on an image, and the prompt's region (the box its text names)."""
        path, w, h = self.image_file(image_id)
        prompt = parse_prompt(prompt_spec, w, h)
        region = crop_region(prompt, w, h)
        return Side(query_text(region), str(path), prompt), region

    def answer(self, image_id: str, prompt_spec, k: int = TOP_K) -> dict:
        """Each variant's top-k captions and images for the prompt (and SAM-2's mask, where it has a stream)."""
        side, region = self.query_side(image_id, prompt_spec)
        with self._lock, torch.inference_mode():
            columns = [
                self._column(model, emb, encode, side, k)
                for model, emb, encode in zip(self.models, self.embeddings, self._encoders, strict=True)
            ]
        prompt = side.prompt
        shown = {"kind": prompt.kind, "region": list(region)}
        if prompt.kind == "box":
            shown["box"] = list(prompt.box)
        elif prompt.kind == "points":
            shown["points"], shown["labels"] = [list(p) for p in prompt.points], list(prompt.labels)
        return {"image": image_id, "text": side.text, "prompt": shown, "variants": columns}

    def _column(self, model: DemoModel, emb: GalleryEmbeddings, encode, side: Side, k: int) -> dict:
        g = self.gallery
        gt = {q.candidates[0].text for im in g.images if im.path == side.image for q in im.queries}
        query = encode([side])[0].float().cpu()  # [D]
        cap, img = emb.captions @ query, emb.images @ query  # [N], [M]
        mask = model.sam_mask(side)
        captions = [
            {"index": i, "text": g.captions[i], "score": float(cap[i]), "gt": g.captions[i] in gt} for i in top(cap, k)
        ]
        images = [
            {"id": f"e{i}", "name": g.images[i].name, "score": float(img[i]), "same": g.images[i].path == side.image}
            for i in top(img, k)
        ]
        return {
            "label": model.label,
            "variant": model.variant,
            "captions": captions,
            "images": images,
            "mask": None if mask is None else mask_png(mask),
            "mask_pixels": None if mask is None else int(mask.sum()),
        }


def build_engine(
    checkpoints: list[str | os.PathLike],
    *,
    variants: list[str] | None = None,
    experiment: ExperimentConfig | None = None,
    gallery_file: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike,
    device: str = "cpu",
    limits: UploadLimits | None = None,
) -> Engine:
    """Load every checkpoint (variants[i], if given, is the i-th one's), read the gallery from the experiment's
    data (else the first checkpoint's run config) and embed it under each model, from the cache if it can."""
    if variants and len(variants) != len(checkpoints):
        raise UserError(f"--variant: given {len(variants)} times for {len(checkpoints)} --checkpoint (one each)")
    t = time.perf_counter()
    models = [
        load_model(c, experiment=experiment, variant=variants[i] if variants else None, device=device)
        for i, c in enumerate(checkpoints)
    ]
    labels = [m.label for m in models]
    for i, m in enumerate(models):
        if labels.count(m.label) > 1:
            m.label = f"{m.label} #{i + 1}"
    timings: dict = {"model_load_s": time.perf_counter() - t, "gallery": []}
    gallery = read_gallery(experiment or models[0].cfg, gallery_file)
    embeddings = []
    for m in models:
        t = time.perf_counter()
        emb = gallery_embeddings(m, gallery, cache_dir)
        embeddings.append(emb)
        timings["gallery"].append(
            {"label": m.label, "seconds": time.perf_counter() - t, "encoded": emb.encoded, "cache": str(emb.path)}
        )
    return Engine(models, gallery, embeddings, limits or UploadLimits(), timings)

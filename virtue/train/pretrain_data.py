"""What the backbone pre-training reads: the synthetic scenes (virtue.data.read_scenes) turned into prompted
objects for SAM-2 and (image, caption) pairs for Qwen2-VL, and the texts the tokenizer is trained on.

Captions come in kinds so that the LLM must read each element of a SCaR caption from the image tokens:
which objects (colour, shape, size, left to right), where (sky or ground), how two objects relate, and the
scene; the `relation` kind is a full caption in SCaR's own grammar."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import ExperimentConfig
from ..data.corpus import corpus_texts
from ..data.images import load_rgb
from ..data.prompts import coco_to_xyxy
from ..data.scenes import read_scenes
from ..data.synth.captions import CLEAR, one_change
from ..data.synth.vocab import COLOURS, PREDICATES, SHAPES, SIZES, Caption, Desc
from ..data.types import Side
from ..errors import UserError
from ..models.backbones import sam_pixels
from .pretrain_sam import SegSample
from .pretrain_vlm import IMAGE_INSTRUCTION

ATTRIBUTES = ("colour", "shape", "size")


@dataclass(frozen=True)
class SceneObject:
    desc: Desc
    region: str  # "sky" | "ground"
    box: tuple[float, float, float, float]  # x1, y1, x2, y2, pixels
    mask: np.ndarray  # [H, W] bool

    @property
    def centre(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return (x1 + x2) / 2, (y1 + y2) / 2


@dataclass(frozen=True)
class SceneImage:
    image: str  # absolute path
    size: tuple[int, int]  # width, height
    scene: str
    objects: tuple[SceneObject, ...]


def load_scenes(folder: Path, split: str) -> list[SceneImage]:
    out = []
    for rec in read_scenes(folder, split):
        objects = tuple(
            SceneObject(Desc(o.size, o.colour, o.shape), o.region, coco_to_xyxy(o.bbox), np.asarray(o.mask, bool))
            for o in rec.objects
        )
        if objects:
            h, w = objects[0].mask.shape
            out.append(SceneImage(str(rec.image), (w, h), rec.scene, objects))
    return out


def attribute_classes() -> dict[str, tuple[str, ...]]:
    return {"colour": tuple(COLOURS), "shape": SHAPES, "size": SIZES}


def segmentation_samples(
    scenes: Sequence[SceneImage], sam_size: int, classes: dict[str, tuple[str, ...]]
) -> list[SegSample]:
    """One sample per object; each image is decoded and resized once. Every sample also carries its image's
    attribute map on SAM-2's stride-16 grid (`attribute_cells`)."""
    out = []
    for i, sc in enumerate(scenes):
        pixels = sam_pixels(load_rgb(sc.image), sam_size)
        attrs = [tuple(classes[a].index(getattr(o.desc, a)) for a in ATTRIBUTES) for o in sc.objects]
        cells = attribute_cells([o.mask for o in sc.objects], attrs, sam_size // 16)
        for o, a in zip(sc.objects, attrs, strict=True):
            out.append(SegSample(pixels, o.mask, o.box, sc.size, a, image=i, cells=cells))
    return out


def image_cells(scenes: Sequence[SceneImage], side: int, classes: dict[str, tuple[str, ...]]) -> dict[str, np.ndarray]:
    """Image path -> [A, side, side] class ids of the object under each cell of the VLM's merged-token grid
    (the whole image, resized to a square, is split into side x side tokens)."""
    out = {}
    for sc in scenes:
        attrs = [tuple(classes[a].index(getattr(o.desc, a)) for a in ATTRIBUTES) for o in sc.objects]
        out[sc.image] = attribute_cells([o.mask for o in sc.objects], attrs, side)
    return out


def attribute_cells(
    masks: Sequence[np.ndarray], attrs: Sequence[tuple[int, ...]], side: int, min_cover: float = 0.25
) -> np.ndarray:
    """[A, side, side] class ids of the object that covers most of each grid cell (masks resized to the grid
    by area); -100 (ignored by the loss) where no object covers `min_cover` of the cell."""
    n_attr = len(attrs[0]) if attrs else 0
    out = np.full((n_attr, side, side), -100, dtype=np.int64)
    if not masks:
        return out
    h, w = masks[0].shape
    cover = np.stack([_area_resize(m.astype(np.float32), side) for m in masks])  # [O, side, side]
    best = cover.argmax(0)
    keep = cover.max(0) >= min_cover
    table = np.asarray(attrs, dtype=np.int64)  # [O, A]
    for k in range(n_attr):
        out[k][keep] = table[best[keep], k]
    return out


def _area_resize(mask: np.ndarray, side: int) -> np.ndarray:
    """Mean of `mask` over each cell of a side x side grid (edges by fractional overlap)."""
    h, w = mask.shape
    ys, xs = np.linspace(0, h, side + 1), np.linspace(0, w, side + 1)

    def weights(edges: np.ndarray, n: int) -> np.ndarray:  # [side, n] overlap of cell i with pixel j
        pix = np.arange(n)
        lo, hi = edges[:-1, None], edges[1:, None]
        return np.clip(np.minimum(hi, pix + 1) - np.maximum(lo, pix), 0, None)

    wy, wx = weights(ys, h), weights(xs, w)
    return (wy @ mask @ wx.T) / (wy.sum(1)[:, None] * wx.sum(1)[None, :])


# ---------------------------------------------------------------- captions


def _relation(a: SceneObject, b: SceneObject, side: float) -> list[str]:
    """Predicates that clearly hold for `a pred b` (the margin SCaR-synth's ground truths use)."""
    (ax, ay), (bx, by) = a.centre, b.centre
    d = {"left of": bx - ax, "right of": ax - bx, "above": by - ay, "below": ay - by}
    return [p for p in PREDICATES if d[p] / side > CLEAR]


OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def caption(sc: SceneImage, kind: str, rng: np.random.Generator) -> str | None:
    return caption_and_negative(sc, kind, rng)[0]


def caption_and_negative(sc: SceneImage, kind: str, rng: np.random.Generator) -> tuple[str | None, str | None]:
    """A true caption of the image and a false one that differs from it in one element (another colour,
    shape or size of one object, the opposite predicate, the other region); no negative for `scene`.
    Without such negatives the batch is told apart by the scene alone (16 kinds) and the LLM's caption
    embedding learns nothing else (docs/research/pretraining.md, finding 7)."""
    objs = sc.objects
    if kind == "scene":
        return f"a {sc.scene} scene", None
    if kind == "objects":
        ordered = sorted(objs, key=lambda o: o.centre[0])
        descs = [o.desc for o in ordered]
        i = int(rng.integers(len(descs)))
        wrong = [*descs[:i], _other_desc(descs[i], rng), *descs[i + 1 :]]
        return _objects_text(descs), _objects_text(wrong)
    if kind == "region":
        o = objs[rng.integers(len(objs))]
        where = {"sky": "in the sky", "ground": "on the ground"}
        true = f"a {o.desc.text()} {where[o.region]}"
        present = {(x.desc, x.region) for x in objs}
        if rng.random() < 0.5 and (o.desc, _other_region(o.region)) not in present:
            return true, f"a {o.desc.text()} {where[_other_region(o.region)]}"
        d = _other_desc(o.desc, rng)
        return true, None if (d, o.region) in present else f"a {d.text()} {where[o.region]}"
    pairs = [(a, b, p) for a in objs for b in objs if a is not b for p in _relation(a, b, max(sc.size))]
    if not pairs:
        return None, None
    a, b, p = pairs[rng.integers(len(pairs))]
    true = Caption(a.desc, p, b.desc, sc.scene)
    change = rng.integers(3)
    if change == 0:  # the opposite clearly holds: the pair's offset exceeds the margin the other way round
        wrong = Caption(a.desc, OPPOSITE[p], b.desc, sc.scene)
    else:
        d = _other_desc(a.desc if change == 1 else b.desc, rng)
        wrong = Caption(d, p, b.desc, sc.scene) if change == 1 else Caption(a.desc, p, d, sc.scene)
        holds = {(x.desc, q, y.desc) for x, y, q in pairs}
        if (wrong.obj, wrong.pred, wrong.ref) in holds:
            return true.text(), None
    return true.text(), wrong.text()


def _objects_text(descs: Sequence[Desc]) -> str:
    return "from left to right: " + ", ".join(f"a {d.text()}" for d in descs)


def _other_region(region: str) -> str:
    return "ground" if region == "sky" else "sky"


def _other_desc(d: Desc, rng: np.random.Generator) -> Desc:
    """The same description with one attribute (size, colour or shape, drawn first) changed: SCaR-synth's own
    one-attribute changes, which never form a held-out colour and shape combination."""
    changes = one_change(d)
    options = [[x for x in changes if getattr(x, a) != getattr(d, a)] for a in ("size", "colour", "shape")]
    chosen = options[int(rng.integers(3))] or options[0]
    return chosen[int(rng.integers(len(chosen)))]


def caption_pairs(
    scenes: Sequence[SceneImage], kinds: Sequence[str], seed: int
) -> list[tuple[Side, Side, Side | None]]:
    """Every (image, caption, false caption or None) triple the training draws from: per image, a few
    captions of each kind, each with a false caption one element away (caption_and_negative)."""
    rng = np.random.default_rng(seed)
    out = []
    for sc in scenes:
        image = Side(IMAGE_INSTRUCTION, sc.image)
        for kind in kinds:
            for _ in range(1 if kind == "scene" else 2):
                text, wrong = caption_and_negative(sc, kind, rng)
                if text is not None:
                    out.append((image, Side(text), None if wrong is None else Side(wrong)))
    return out


def eval_caption_sets(
    scenes: Sequence[SceneImage], kinds: Sequence[str], seed: int
) -> dict[str, tuple[list[Side], list[Side]]]:
    """Per kind: held-out images and one caption each (retrieval among all of them)."""
    rng = np.random.default_rng(seed)
    out: dict[str, tuple[list[Side], list[Side]]] = {}
    for kind in kinds:
        images, caps = [], []
        for sc in scenes:
            text = caption(sc, kind, rng)
            if text is not None:
                images.append(Side(IMAGE_INSTRUCTION, sc.image))
                caps.append(Side(text))
        out[kind] = (images, caps)
    return out


def tokenizer_corpus(root: Path, cfg: ExperimentConfig, scenes: Sequence[SceneImage]) -> list[str]:
    """Every text the embedder will read: the benchmarks' texts (corpus_texts) and the captions used here."""
    texts: list[str] = [IMAGE_INSTRUCTION]
    for folder in (cfg.data.scar_dir, cfg.data.mmeb_dir):
        if (root / folder).is_dir():
            texts += list(corpus_texts(root / folder))
    rng = np.random.default_rng(0)
    for sc in scenes:
        texts += [t for k in ("objects", "region", "relation", "scene") if (t := caption(sc, k, rng))]
    if len(texts) < 2:
        raise UserError(f"data.scar_dir: {cfg.data.scar_dir}: no texts to train the tokenizer on")
    return texts

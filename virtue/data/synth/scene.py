"""Seeded procedural scenes: a sky over a ground (the scene type), 2 to 6 coloured shapes with some
occlusion, exact visible instance masks and boxes. Objects stay entirely in the sky or on the ground, so the
background inside any object's box shows one material only and the scene needs the whole image."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from .vocab import COLOURS, GROUNDS, HELD_OUT, SCENES, SHAPES, SIZE_RANGE, SIZES, SKIES, Desc, scene_parts

MIN_VISIBLE = 0.6  # every object keeps at least this share of its own pixels after occlusion


@dataclass(frozen=True)
class Profile:
    """How a subset draws its scenes and distractors."""

    min_objects: int
    max_objects: int
    size_weights: tuple[float, float, float]  # small, medium, large
    distractors: tuple[int, int, int]  # object, relation, scene swaps (sum 9)
    overlap: float  # chance that an object is placed to overlap an earlier one


@dataclass
class Obj:
    desc: Desc
    region: str  # "sky" | "ground"
    mask: np.ndarray  # [S, S] bool, visible pixels
    full_area: int  # pixels before occlusion
    bbox: tuple[int, int, int, int] = field(init=False)  # COCO [x, y, w, h] of the visible mask, pixels

    def __post_init__(self) -> None:
        ys, xs = np.nonzero(self.mask)
        self.bbox = int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)

    @property
    def centre(self) -> tuple[float, float]:
        x, y, w, h = self.bbox
        return x + w / 2, y + h / 2


@dataclass
class Scene:
    size: int
    scene: str
    horizon: int  # first ground row
    objects: list[Obj]


def _shape_mask(shape: str, cx: float, cy: float, d: float, size: int) -> np.ndarray:
    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    r = d / 2
    box = (cx - r, cy - r, cx + r, cy + r)

    def ring(n: int, rad: float, phase: float) -> list[tuple[float, float]]:
        a = phase + np.arange(n) * 2 * np.pi / n
        return [(cx + rad * np.cos(t), cy + rad * np.sin(t)) for t in a]

    if shape == "circle":
        draw.ellipse(box, fill=255)
    elif shape == "square":
        draw.rectangle((cx - 0.85 * r, cy - 0.85 * r, cx + 0.85 * r, cy + 0.85 * r), fill=255)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + 0.8 * r), (cx - r, cy + 0.8 * r)], fill=255)
    elif shape == "diamond":
        draw.polygon(ring(4, r, -np.pi / 2), fill=255)
    elif shape == "hexagon":
        draw.polygon(ring(6, r, 0.0), fill=255)
    elif shape == "star":
        outer, inner = ring(5, r, -np.pi / 2), ring(5, 0.45 * r, -np.pi / 2 + np.pi / 5)
        draw.polygon([p for pair in zip(outer, inner, strict=True) for p in pair], fill=255)
    elif shape == "ring":
        draw.ellipse(box, fill=255)
        q = 0.5 * r
        draw.ellipse((cx - q, cy - q, cx + q, cy + q), fill=0)
    elif shape == "cross":
        w = 0.33 * r
        draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=255)
        draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=255)
    else:
        raise ValueError(f"unknown shape {shape}")
    return np.asarray(img) > 0


COMBOS = [(c, s) for c in COLOURS for s in SHAPES]
SEEN = np.array([i for i, c in enumerate(COMBOS) if c not in HELD_OUT])
UNSEEN = np.array([i for i, c in enumerate(COMBOS) if c in HELD_OUT])


def generate_scene(
    rng: np.random.Generator, profile: Profile, size: int, held_out: bool = False, tries: int = 200
) -> Scene:
    """One scene with distinct (colour, shape) objects, each fully in the sky or on the ground. Held-out
    combinations appear only with held_out=True, and then the FIRST object is one, the only one of its colour."""
    scene = SCENES[rng.integers(len(SCENES))]
    horizon = int(round(size * rng.uniform(0.42, 0.58)))
    n = int(rng.integers(profile.min_objects, profile.max_objects + 1))
    weights = np.array(profile.size_weights) / sum(profile.size_weights)
    for _ in range(tries):
        if held_out:
            first = UNSEEN[rng.integers(len(UNSEEN))]
            rest = [c for c in rng.permutation(SEEN) if COMBOS[c][0] != COMBOS[first][0]]
            combos = [first, *rest[: n - 1]]
        else:
            combos = rng.permutation(SEEN)[:n]
        full: list[Placed] = []
        for c in combos:
            colour, shape = COMBOS[c]
            item = place(rng, Desc(SIZES[rng.choice(3, p=weights)], colour, shape), size, horizon, profile, full)
            if item is None:
                break
            full.append(item)
        if len(full) < n:
            continue
        objects = occlude(full)
        if objects is not None:
            return Scene(size, scene, horizon, objects)
    raise RuntimeError(f"could not place {n} objects in a {size}px image after {tries} tries")


Placed = tuple[Desc, str, np.ndarray]  # description, region, full mask before occlusion


def place(
    rng: np.random.Generator, desc: Desc, size: int, horizon: int, profile: Profile, full: list[Placed]
) -> Placed | None:
    """Draw one object of this description in the sky or on the ground (None if it fits in neither); with
    probability profile.overlap it leans on an earlier object of the same region (`full`)."""
    d = size * rng.uniform(*SIZE_RANGE[desc.size])
    region = "sky" if rng.random() < horizon / size else "ground"
    lo, hi = (1, horizon - 2) if region == "sky" else (horizon + 1, size - 2)
    if hi - lo < d:
        region, (lo, hi) = ("ground", (horizon + 1, size - 2)) if region == "sky" else ("sky", (1, horizon - 2))
    if hi - lo < d:
        return None
    cy = rng.uniform(lo + d / 2, hi - d / 2)
    if full and rng.random() < profile.overlap:  # lean on an earlier object of the same region
        mates = [m for _, reg, m in full if reg == region]
        if mates:
            ys, xs = np.nonzero(mates[rng.integers(len(mates))])
            cx = float(np.clip(xs.mean() + rng.uniform(-1, 1) * d, d / 2 + 1, size - d / 2 - 1))
            cy = float(np.clip(ys.mean() + rng.uniform(-0.6, 0.6) * d, lo + d / 2, hi - d / 2))
        else:
            cx = rng.uniform(d / 2 + 1, size - d / 2 - 1)
    else:
        cx = rng.uniform(d / 2 + 1, size - d / 2 - 1)
    return desc, region, _shape_mask(desc.shape, cx, cy, d, size)


def occlude(full: list[Placed]) -> list[Obj] | None:
    """Later objects cover earlier ones; None if any object would lose too much of itself."""
    covered = np.zeros_like(full[0][2])
    visible = []
    for _, _, m in reversed(full):
        visible.append(m & ~covered)
        covered |= m
    visible.reverse()
    objs = []
    for (desc, region, m), v in zip(full, visible, strict=True):
        if v.sum() < MIN_VISIBLE * m.sum() or v.sum() < 20:
            return None
        objs.append(Obj(desc, region, v, int(m.sum())))
    return objs


def render(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """[S, S, 3] uint8. The same texture recipe for every material, so colour is the only local cue."""
    s = scene.size
    sky, ground = scene_parts(scene.scene)
    img = np.empty((s, s, 3), np.float32)
    rows = np.arange(s, dtype=np.float32)[:, None, None]
    img[: scene.horizon] = np.array(SKIES[sky], np.float32)
    img[scene.horizon :] = np.array(GROUNDS[ground], np.float32)
    img += 12.0 * (rows / s - 0.5)  # one gradient for all materials
    blotch = rng.normal(0, 8, (8, 8, 1)).astype(np.float32)
    img += np.kron(blotch, np.ones((s // 8 + 1, s // 8 + 1, 1), np.float32))[:s, :s]
    img += 2.5 * rng.standard_normal((s, s, 1), dtype=np.float32)
    shade = 2.5 * rng.standard_normal((s, s, 1), dtype=np.float32)
    for o in scene.objects:
        img[o.mask] = np.array(COLOURS[o.desc.colour], np.float32) + shade[o.mask]
    return np.clip(img, 0, 255).round().astype(np.uint8)

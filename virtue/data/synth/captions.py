"""Ground-truth captions and distractors, decided from the scene's geometry.

A predicate holds when the offset between box centres along its axis exceeds MARGIN of the image side.
The GT uses only CLEAR relations (offset over 1.5 x MARGIN); a relation distractor is used only when the
opposite clearly holds, so no caption sits in the ambiguous band. Every distractor changes exactly one
element (object, relation, scene) and is checked false for the target."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scene import Obj, Scene
from .vocab import COLOURS, HELD_OUT, PREDICATES, SCENES, SHAPES, SIZES, Caption, Desc, scene_parts

MARGIN = 0.08
CLEAR = 1.5 * MARGIN


def offset(pred: str, a: Obj, b: Obj, size: int) -> float:
    """How far `a pred b` holds, in image sides (negative: the opposite holds)."""
    (ax, ay), (bx, by) = a.centre, b.centre
    d = {"left of": bx - ax, "right of": ax - bx, "above": by - ay, "below": ay - by}[pred]
    return d / size


def holds(pred: str, a: Obj, b: Obj, size: int) -> bool:
    return offset(pred, a, b, size) > MARGIN


def find(scene: Scene, desc: Desc) -> Obj | None:
    return next((o for o in scene.objects if o.desc == desc), None)


def true_for(cap: Caption, scene: Scene, target: Obj) -> bool:
    """Does the caption describe this object of this image?"""
    ref = find(scene, cap.ref)
    return (
        cap.obj == target.desc
        and ref is not None
        and ref is not target
        and cap.scene == scene.scene
        and holds(cap.pred, target, ref, scene.size)
    )


@dataclass(frozen=True)
class Query:
    target: int  # index in scene.objects
    ref: int
    captions: tuple[Caption, ...]  # index 0 is the ground truth
    kinds: tuple[str, ...]  # "gt", "object_in_image", "object_absent", "relation", "scene"


def clear_relations(scene: Scene, t: int) -> list[tuple[str, int]]:
    out = []
    for r, ref in enumerate(scene.objects):
        if r != t:
            out += [(p, r) for p in PREDICATES if offset(p, scene.objects[t], ref, scene.size) > CLEAR]
    return out


def make_query(scene: Scene, t: int, rng: np.random.Generator, counts: tuple[int, int, int]) -> Query | None:
    """GT + 9 distractors (object, relation, scene swaps in the given counts as far as the image allows;
    the shortfall becomes scene swaps). None if the target has no clear relation to another object."""
    rels = clear_relations(scene, t)
    if not rels:
        return None
    pred, r = rels[rng.integers(len(rels))]
    target, ref = scene.objects[t], scene.objects[r]
    gt = Caption(target.desc, pred, ref.desc, scene.scene)
    n_obj, n_rel, n_scene = counts

    # Object swaps: other objects of this image first, those the swapped caption is TRUE for before the rest
    # (only the box can reject them), then one-attribute changes and other descriptions absent from the image.
    others = [o for i, o in enumerate(scene.objects) if i not in (t, r)]
    rng.shuffle(others)
    others.sort(key=lambda o: not holds(pred, o, ref, scene.size))
    obj_swaps = [(Caption(o.desc, pred, ref.desc, scene.scene), "object_in_image") for o in others]
    present = {o.desc for o in scene.objects}
    absent = [d for d in one_change(target.desc) if d not in present]
    rng.shuffle(absent)
    obj_swaps += [(Caption(d, pred, ref.desc, scene.scene), "object_absent") for d in absent]

    # Relation swaps: another predicate or another reference, kept only where the opposite clearly holds.
    rel_swaps = []
    for r2, ref2 in enumerate(scene.objects):
        if r2 == t:
            continue
        for p2 in PREDICATES:
            if (p2, r2) != (pred, r) and offset(p2, target, ref2, scene.size) < -MARGIN:
                rel_swaps.append((Caption(target.desc, p2, ref2.desc, scene.scene), "relation"))
    rng.shuffle(rel_swaps)
    rel_swaps.sort(key=lambda c: c[0].ref != ref.desc)  # same reference, other predicate first

    # Scene swaps: scenes sharing the material around the target first (the box cannot reject them).
    sky, ground = scene_parts(scene.scene)
    keep = sky if target.region == "sky" else ground
    scenes = [s for s in SCENES if s != scene.scene]
    rng.shuffle(scenes)
    scenes.sort(key=lambda s: keep not in scene_parts(s))
    scene_swaps = [(Caption(target.desc, pred, ref.desc, s), "scene") for s in scenes]

    chosen = obj_swaps[:n_obj] + rel_swaps[:n_rel]
    chosen += scene_swaps[: 9 - len(chosen)]
    assert len(chosen) == 9 and all(not true_for(c, scene, target) for c, _ in chosen)
    return Query(t, r, (gt, *(c for c, _ in chosen)), ("gt", *(k for _, k in chosen)))


def one_change(d: Desc) -> list[Desc]:
    """Descriptions one attribute away (never a held-out combination: those stay out of SCaR-synth's text)."""
    out = (
        [Desc(s, d.colour, d.shape) for s in SIZES if s != d.size]
        + [Desc(d.size, c, d.shape) for c in COLOURS if c != d.colour]
        + [Desc(d.size, d.colour, s) for s in SHAPES if s != d.shape]
    )
    return [x for x in out if (x.colour, x.shape) not in HELD_OUT]

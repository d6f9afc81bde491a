"""Two oracles over the ground-truth scene graph, each holding half of the information.

- global-only: knows the whole scene (scene type, every object, every relation) but not which object the
  prompt points at; a candidate survives if it is true for SOME object of the image.
- crop-only: sees what lies inside the box: the target (so its description), the objects mostly inside
  the box, and the one background material there; a candidate survives unless that evidence refutes it
  (a reference outside the box, and the half of the scene outside it, stay unknown).
- together: everything, so only the ground truth survives (every distractor is checked false).
An oracle's score is the expected precision@1 of picking uniformly among the survivors; `solved` counts the
queries where the GT is the only survivor."""

from __future__ import annotations

from .captions import holds, true_for
from .scene import Obj, Scene
from .vocab import Caption, scene_parts

IN_BOX = 0.5  # an object counts as seen by the crop if this share of its visible pixels is inside the box


def global_survivors(caps: tuple[Caption, ...], scene: Scene) -> list[bool]:
    return [any(true_for(c, scene, o) for o in scene.objects) for c in caps]


def crop_survivors(caps: tuple[Caption, ...], scene: Scene, target: Obj) -> list[bool]:
    x, y, w, h = target.bbox
    seen = [o for o in scene.objects if o.mask[y : y + h, x : x + w].sum() >= IN_BOX * o.mask.sum()]
    sky, ground = scene_parts(scene.scene)
    material, part = (sky, 0) if target.region == "sky" else (ground, 1)
    out = []
    for c in caps:
        ok = c.obj == target.desc and scene_parts(c.scene)[part] == material
        ref = next((o for o in seen if o.desc == c.ref and o is not target), None)
        if ok and ref is not None:
            ok = holds(c.pred, target, ref, scene.size)
        out.append(ok)
    return out


def combined_survivors(caps: tuple[Caption, ...], scene: Scene, target: Obj) -> list[bool]:
    return [true_for(c, scene, target) for c in caps]


def score(survivors: list[bool]) -> tuple[float, bool]:
    """(expected P@1 picking among survivors, GT alone survives). The GT must survive."""
    if not survivors[0]:
        raise ValueError("the ground truth was rejected: the oracle or the data is wrong")
    k = sum(survivors)
    return 1.0 / k, k == 1

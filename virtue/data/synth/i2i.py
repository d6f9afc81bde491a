"""I2I-synth: visual-interactive image-to-image retrieval, a task the paper shows only as case studies.

The query is an image with a box on one object (the subject) that stands in one clear relation to another
object (its reference) in a scene. The positive is a NEW image in which an object of the subject's
description stands in the same relation to an object of the reference's description, in the same scene type.
Each distractor is another new image that changes exactly one of these three elements, as SCaR-synth's
distractor captions do:
- object: the subject is replaced by another object of the query image that stands in the same relation to
  the same reference there (`object_in_image`: only the box says which of the two the query is about; every
  query image has at least one), or by a description one attribute away (`object_absent`);
- relation: the subject and the reference are both there, in another relation;
- scene: subject, relation and reference as in the query, another scene type (those sharing the material
  around the subject first: the box cannot tell them apart).

"Relation" means one predicate that clearly holds (centre offset over 1.5 x MARGIN of the image side along
its axis) while the perpendicular axis is balanced (offset within MARGIN): "left of" and nothing else.
Candidate images are drawn with their subject first and its reference second (objects[0] and objects[1] of
the scene graph); other objects (0-2) fill the scene, never one of the subject's (colour, shape) where the
subject is swapped out. Every distractor is checked false for the query (with the box known) before it is
kept. Schema in the style of MMEB's image-to-image tasks: eval/<task>.parquet with qry_inst, qry_text
(with the box as text, as SCaR-synth writes it), qry_img_path, bbox, segmentation, tgt_inst, tgt_text,
tgt_img_path (candidate 0 the answer), tgt_kind, and the image ids of the scene graphs (scenes_eval.parquet)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..masks import encode_rle
from .captions import CLEAR, MARGIN, find, offset, one_change
from .scar import IMAGE_TOKEN, query_text, scene_row
from .scene import COMBOS, SEEN, Obj, Placed, Profile, Scene, generate_scene, occlude, place, render
from .vocab import OPPOSITE, PREDICATES, SCENES, SIZES, Caption, Desc, scene_parts
from .write import staged_folder, write_parquet, write_png

TASK = "prompted-i2i"
PROFILE = Profile(3, 5, (0.3, 0.4, 0.3), (3, 3, 3), overlap=0.2)
CANDIDATE_PROFILE = Profile(2, 4, (0.3, 0.4, 0.3), (3, 3, 3), overlap=0.2)
DISTRACTORS = {"object": 3, "relation": 3, "scene": 3}  # 9 distractors + the positive = 10 candidates
QRY_INST = (
    "Find an image in which the object in the bounding box stands in the same relation to the same "
    "neighbour, in the same scene."
)
TGT_INST = "Represent the given image."
PERPENDICULAR = {"left of": "above", "right of": "above", "above": "left of", "below": "left of"}
TRIES = 400


def relation(scene: Scene, a: Obj, b: Obj) -> str | None:
    """The one predicate that clearly holds for `a pred b` with the other axis balanced, or None."""
    for p in PREDICATES:
        if offset(p, a, b, scene.size) > CLEAR and abs(offset(PERPENDICULAR[p], a, b, scene.size)) <= MARGIN:
            return p
    return None


def depicts(scene: Scene, subject: Desc, pred: str, ref: Desc, scene_type: str) -> bool:
    """Does the image show an object `subject` in relation `pred` to an object `ref`, in this scene type?"""
    a, b = find(scene, subject), find(scene, ref)
    return scene.scene == scene_type and a is not None and b is not None and relation(scene, a, b) == pred


def facts(scene: Scene, subject: Obj) -> list[Caption]:
    """Every (subject, relation, reference, scene) the image states about this object."""
    out = []
    for o in scene.objects:
        if o is not subject:
            p = relation(scene, subject, o)
            if p is not None:
                out.append(Caption(subject.desc, p, o.desc, scene.scene))
    return out


def matches(query: Scene, subject: Obj, candidate: Scene) -> bool:
    """Is the candidate a right answer for a query about `subject`: does it depict one of its facts?"""
    return any(depicts(candidate, c.obj, c.pred, c.ref, c.scene) for c in facts(query, subject))


def candidate_caption(scene: Scene) -> Caption:
    """The element triple a candidate image was drawn to show (its first two objects)."""
    a, b = scene.objects[0], scene.objects[1]
    return Caption(a.desc, relation(scene, a, b) or "none", b.desc, scene.scene)


def draw_scene(
    rng: np.random.Generator,
    size: int,
    scene_type: str,
    forced: tuple[Desc, Desc],
    banned: set[tuple[str, str]],
    accept: Callable[[Scene], bool],
) -> Scene | None:
    """A scene of this type whose first two objects are `forced`, plus 0-2 others whose (colour, shape) is
    neither forced nor banned; None if no draw within TRIES passes `accept`."""
    taken = {(d.colour, d.shape) for d in forced} | banned
    pool = [c for c in SEEN if COMBOS[c] not in taken]
    for _ in range(TRIES):
        horizon = int(round(size * rng.uniform(0.42, 0.58)))
        n_extra = int(rng.integers(CANDIDATE_PROFILE.min_objects, CANDIDATE_PROFILE.max_objects + 1)) - 2
        extras = [Desc(SIZES[rng.integers(3)], *COMBOS[c]) for c in rng.permutation(pool)[:n_extra]]
        full: list[Placed] = []
        for d in (*forced, *extras):
            item = place(rng, d, size, horizon, CANDIDATE_PROFILE, full)
            if item is None:
                break
            full.append(item)
        if len(full) < 2 + n_extra:
            continue
        objects = occlude(full)
        if objects is not None:
            scene = Scene(size, scene_type, horizon, objects)
            if accept(scene):
                return scene
    return None


@dataclass(frozen=True)
class I2IQuery:
    scene: Scene
    target: int  # index of the subject in scene.objects
    fact: Caption  # the query's (subject, relation, reference, scene), what the positive shares
    candidates: tuple[Scene, ...]  # index 0 is the positive
    kinds: tuple[str, ...]  # "gt", "object_in_image", "object_absent", "relation", "scene"


def make_i2i_query(rng: np.random.Generator, size: int) -> I2IQuery | None:
    """One query with its 10 candidate images, or None when this draw cannot make all of them."""
    scene = generate_scene(rng, PROFILE, size)
    groups: dict[tuple[int, str], list[int]] = {}  # (reference, relation) -> the objects standing in it
    for r, b in enumerate(scene.objects):
        for t, a in enumerate(scene.objects):
            p = relation(scene, a, b) if t != r else None
            if p is not None:
                groups.setdefault((r, p), []).append(t)
    shared = [(key, ts) for key, ts in groups.items() if len(ts) >= 2]
    if not shared:  # the box must matter: another object of the image stands in the same relation
        return None
    (r, pred), ts = shared[rng.integers(len(shared))]
    t = ts[rng.integers(len(ts))]
    subject, ref = scene.objects[t], scene.objects[r]
    fact = Caption(subject.desc, pred, ref.desc, scene.scene)
    own = {(subject.desc.colour, subject.desc.shape)}

    def wrong(c: Scene) -> bool:  # a distractor must not answer the query (the box known)
        return not matches(scene, subject, c)

    plans: list[tuple[str, str, tuple[Desc, Desc], set, Callable[[Scene], bool]]] = []
    plans.append(("gt", scene.scene, (subject.desc, ref.desc), set(),
                  lambda c: relation(c, c.objects[0], c.objects[1]) == pred))  # fmt: skip
    others = [scene.objects[i] for i in ts if i != t]  # in the query image, in the same relation to the reference
    rng.shuffle(others)
    swaps = [(o.desc, "object_in_image") for o in others]
    present = {o.desc for o in scene.objects}
    absent = [d for d in one_change(subject.desc) if d not in present]
    rng.shuffle(absent)
    swaps += [(d, "object_absent") for d in absent]
    for d, kind in swaps[: DISTRACTORS["object"]]:
        plans.append((kind, scene.scene, (d, ref.desc), own,
                      lambda c: relation(c, c.objects[0], c.objects[1]) == pred and wrong(c)))  # fmt: skip
    other_preds = [OPPOSITE[pred], *(p for p in PREDICATES if p not in (pred, OPPOSITE[pred]))]
    for p2 in other_preds[: DISTRACTORS["relation"]]:
        plans.append(("relation", scene.scene, (subject.desc, ref.desc), set(),
                      lambda c, p2=p2: relation(c, c.objects[0], c.objects[1]) == p2 and wrong(c)))  # fmt: skip
    sky, ground = scene_parts(scene.scene)
    keep = sky if subject.region == "sky" else ground
    scenes = [s for s in SCENES if s != scene.scene]
    rng.shuffle(scenes)
    scenes.sort(key=lambda s: keep not in scene_parts(s))
    for s2 in scenes[: DISTRACTORS["scene"]]:
        plans.append(("scene", s2, (subject.desc, ref.desc), set(),
                      lambda c: relation(c, c.objects[0], c.objects[1]) == pred))  # fmt: skip
    if len(plans) != 1 + sum(DISTRACTORS.values()):
        return None
    cands = []
    for _, scene_type, forced, banned, accept in plans:
        c = draw_scene(rng, size, scene_type, forced, banned, accept)
        if c is None:
            return None
        cands.append(c)
    assert matches(scene, subject, cands[0]) and all(not matches(scene, subject, c) for c in cands[1:])
    return I2IQuery(scene, t, fact, tuple(cands), tuple(k for k, *_ in plans))


def eval_file(folder: Path) -> Path:
    return folder / "eval" / f"{TASK}.parquet"


def write_i2i(out: Path, seed: int, image_size: int, n_eval: int, progress: bool = True) -> dict:
    """Generate the set into `out` (replaced as a whole). Returns row counts {split: {task: n}}."""
    rng = np.random.default_rng([seed, 3])
    rows, scenes = [], []
    bar = tqdm(total=n_eval, desc="i2i-synth", unit="query", disable=not progress)
    with staged_folder(out) as tmp:
        k = 0
        while len(rows) < n_eval:
            q = make_i2i_query(rng, image_size)
            if q is None:
                continue
            base = k * 100
            paths = []
            for j, scene in enumerate((q.scene, *q.candidates)):
                rel = f"images/eval/{base + j}.png"
                write_png(tmp / rel, render(scene, rng))
                scenes.append(scene_row(scene, base + j, rel, "query" if j == 0 else "candidate"))
                paths.append(rel)
            rows.append(_row(q, paths, base))
            k += 1
            bar.update(1)
        write_parquet(eval_file(tmp), rows)
        write_parquet(tmp / "scenes_eval.parquet", scenes)
        (tmp / "tasks.json").write_text(json.dumps({TASK: {"meta_task": "ret", "split": "OOD"}}, indent=1) + "\n")
    bar.close()
    return {"eval": {TASK: len(rows)}}


def _row(q: I2IQuery, paths: list[str], base: int) -> dict:
    target = q.scene.objects[q.target]
    x, y, w, h = target.bbox
    return {
        "qry_inst": QRY_INST,
        "qry_text": f"{IMAGE_TOKEN}\n{query_text((x, y, x + w, y + h)).splitlines()[-1]}",
        "qry_img_path": paths[0],
        "bbox": [float(x), float(y), float(w), float(h)],
        "segmentation": json.dumps(encode_rle(target.mask), separators=(",", ":")),
        "tgt_inst": TGT_INST,
        "tgt_text": [IMAGE_TOKEN] * len(q.candidates),
        "tgt_img_path": paths[1:],
        "tgt_kind": list(q.kinds),
        "qry_image_id": base,
        "tgt_image_id": [base + j for j in range(1, len(paths))],
    }

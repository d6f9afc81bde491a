"""`virtue data stats` on an I2I-synth folder: the three oracles of SCaR-synth, recast for image candidates and
computed from the files (the eval parquet + every image's scene graph), so the numbers describe what is on disk.

- global-only: knows the whole query image but not which object the box is on; a candidate survives if it
  answers the query for SOME object of the image;
- crop-only: sees what lies inside the box: the subject (its description), the objects mostly inside the box
  and the material behind the subject; a candidate survives if it shows an object of the subject's
  description, in a scene with that material, in a relation the crop cannot refute (to an object it cannot
  see, or the relation the query really has to one it sees);
- together: the whole image and the box, so only the positive survives (every distractor was checked false).
Each candidate image is known to the oracle through its own scene graph."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from ...errors import UserError
from ..validate import read_table
from .i2i import eval_file, facts, matches, relation
from .oracles import IN_BOX, score
from .scene import Obj, Scene
from .stats import _scenes
from .vocab import scene_parts

ORACLES = ("global", "crop", "both")


def crop_survives(query: Scene, subject: Obj, candidate: Scene) -> bool:
    x, y, w, h = subject.bbox
    seen = {o.desc: o for o in query.objects
            if o is not subject and o.mask[y : y + h, x : x + w].sum() >= IN_BOX * o.mask.sum()}  # fmt: skip
    part = 0 if subject.region == "sky" else 1
    if scene_parts(candidate.scene)[part] != scene_parts(query.scene)[part]:
        return False
    mine = next((o for o in candidate.objects if o.desc == subject.desc), None)
    if mine is None:
        return False
    for other in candidate.objects:
        p = relation(candidate, mine, other) if other is not mine else None
        if p is None:
            continue
        ref = seen.get(other.desc)
        if ref is None or relation(query, subject, ref) == p:
            return True
    return False


def survivors(query: Scene, subject: Obj, candidates: list[Scene]) -> dict[str, list[bool]]:
    return {
        "global": [any(matches(query, o, c) for o in query.objects) for c in candidates],
        "crop": [crop_survives(query, subject, c) for c in candidates],
        "both": [matches(query, subject, c) for c in candidates],
    }


def i2i_oracle_stats(folder: str | os.PathLike) -> dict[str, dict]:
    """{task: {n, global, crop, both, *_solved, neither_solved, ruled_out: {oracle: {kind: share}}}} in the
    format of SCaR-synth's oracle_stats (expected P@1 x 100 of an oracle picking among its survivors)."""
    folder = Path(folder)
    scenes = _scenes(folder, "eval")
    path = eval_file(folder)
    if not path.is_file():
        raise UserError(f"{path}: no I2I-synth eval file (`virtue data synth --only i2i` makes one)")
    acc: dict[str, float] = defaultdict(float)
    ruled: dict[str, dict[str, list[int]]] = {o: defaultdict(lambda: [0, 0]) for o in ORACLES}
    table = read_table(path, ("qry_image_id", "tgt_image_id", "bbox"))
    for i, row in enumerate(table):
        ids = [row["qry_image_id"], *row["tgt_image_id"]]
        missing = [k for k in ids if k not in scenes]
        if missing:
            raise UserError(f"{path}: row {i}: image {missing[0]} has no scene graph in scenes_eval.parquet")
        query, cands = scenes[ids[0]], [scenes[k] for k in ids[1:]]
        box = tuple(int(round(v)) for v in row["bbox"])
        subject = next((o for o in query.objects if tuple(o.bbox) == box), None)
        if subject is None:
            raise UserError(f"{path}: row {i}: the box {list(box)} is no object of image {ids[0]}")
        if not facts(query, subject):
            raise UserError(f"{path}: row {i}: the boxed object stands in no clear relation: nothing to find")
        kinds = row.get("tgt_kind") or ["?"] * len(cands)
        solved = {}
        for name, surv in survivors(query, subject, cands).items():
            try:
                p1, solved[name] = score(surv)
            except ValueError:
                raise UserError(f"{path}: row {i}: the {name} oracle rejects the positive (candidate 0)") from None
            acc[name] += p1
            acc[f"{name}_solved"] += solved[name]
            for k, s in zip(kinds[1:], surv[1:], strict=True):
                ruled[name][k][0] += not s
                ruled[name][k][1] += 1
        acc["neither_solved"] += not (solved["global"] or solved["crop"])
    n = len(table)
    res = {"n": n, **{k: round(100 * v / n, 1) for k, v in sorted(acc.items())}}
    res["ruled_out"] = {o: {k: round(100 * a / b, 1) for k, (a, b) in sorted(d.items())} for o, d in ruled.items()}
    return {path.stem: res}

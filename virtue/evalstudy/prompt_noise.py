"""The `prompt_noise` conditions: SCaR-synth eval queries whose visual prompt is off by a known amount.

Each condition is a list of EvalQuery made from the clean ones (same candidates, same ground truth, qid
'<row>|<condition>'), in three families, each compared with its own clean baseline:
- box: the annotated box moved to IoU t with itself, shrunk or grown about its centre to IoU t, and the box
  of ANOTHER object of the image whose caption is among the candidates (an `object_in_image` distractor
  true for that object): there the ground truth becomes that caption;
- mask: the object's mask, eroded and dilated to IoU `mask_iou`;
- click: one click at the object's most interior pixel, on its outline, and `GAP` pixels outside it.
The query text states the box (SCaR's "Referring object bbox: [...]", the same user input as the visual
prompt): box conditions write the perturbed box there, mask conditions the perturbed mask's box; a click has
no box, so click conditions change the visual prompt only and keep the annotated box in the text."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..data.images import image_size
from ..data.masks import decode_segmentation
from ..data.prompts import box_prompt, mask_prompt, points_prompt
from ..data.scar import eval_files, read_scar_eval
from ..data.synth.captions import true_for
from ..data.synth.scene import Scene
from ..data.synth.stats import _scenes as scene_graphs
from ..data.synth.vocab import parse_caption
from ..data.types import EvalQuery, Side
from ..data.validate import read_table
from . import perturb

GAP = 2  # pixels between the object's outline and the outside click
_BOX_TEXT = re.compile(r"\[\s*-?\d+(?:\.\d+)?\s*,\s*-?\d+(?:\.\d+)?\s*,\s*-?\d+(?:\.\d+)?\s*,\s*-?\d+(?:\.\d+)?\s*\]")


@dataclass(frozen=True)
class Condition:
    name: str
    family: str  # box | mask | click
    baseline: str  # the condition it is compared with
    iou: float | None  # target IoU with the true region (None: clicks, the wrong object)
    queries: list[EvalQuery]
    achieved: list[float]  # per query, the IoU the perturbed region has with the true one (boxes, masks)
    skipped: int = 0  # queries the perturbation cannot make (no room in the image, mask eroded away)


@dataclass(frozen=True)
class Row:
    """A clean SCaR eval query and what the perturbations need of its row."""

    query: EvalQuery
    box: perturb.Box  # x1, y1, x2, y2
    mask: np.ndarray  # [H, W] bool
    size: tuple[int, int]  # (width, height)
    image_id: int | None


def with_box_text(text: str, box: perturb.Box) -> str:
    """The query text with its stated box (the last [x1, y1, x2, y2] in it) replaced by `box` in whole pixels."""
    found = list(_BOX_TEXT.finditer(text))
    if not found:
        return text
    m = found[-1]
    new = "[" + ", ".join(str(int(round(v))) for v in box) + "]"
    return text[: m.start()] + new + text[m.end() :]


def read_rows(scar_dir: Path, per_subset: int) -> list[Row]:
    """The first `per_subset` eval queries of every SCaR subset with their box prompts, masks and image ids."""
    queries = {q.qid: q for q in read_scar_eval(scar_dir, "box")}
    rows: list[Row] = []
    for _subset, path in eval_files(scar_dir).items():
        for i, rec in enumerate(read_table(path, ("bbox", "segmentation"))):
            if i == per_subset:
                break
            q = queries.get(f"{path.name}:{i}")
            if q is None or rec.get("segmentation") in (None, ""):
                continue
            x1, y1, x2, y2 = q.query.prompt.box
            w, h = image_size(q.query.image)
            mask = decode_segmentation(rec["segmentation"], h, w)
            rows.append(Row(q, (x1, y1, x2, y2), mask, (w, h), rec.get("image_id")))
    return rows


def _query(row: Row, name: str, prompt, text_box: perturb.Box | None) -> EvalQuery:
    text = row.query.query.text if text_box is None else with_box_text(row.query.query.text, text_box)
    side = Side(text=text, image=row.query.query.image, prompt=prompt)
    return replace(row.query, query=side, qid=f"{row.query.qid}|{name}")


def box_conditions(rows: list[Row], ious: list[float], scale_ious: list[float], seed: int) -> list[Condition]:
    out = [Condition("box", "box", "box", 1.0, [_query(r, "box", r.query.query.prompt, r.box) for r in rows],
                     [1.0] * len(rows))]  # fmt: skip
    makers = [(f"moved {t}", t, lambda r, t, rng: perturb.shifted_box(r.box, t, r.size, rng)) for t in ious]
    makers += [(f"shrunk {t}", t, lambda r, t, rng: perturb.scaled_box(r.box, t, r.size, grow=False))
               for t in scale_ious]  # fmt: skip
    makers += [(f"grown {t}", t, lambda r, t, rng: perturb.scaled_box(r.box, t, r.size, grow=True))
               for t in scale_ious]  # fmt: skip
    for k, (name, t, make) in enumerate(makers):
        rng = np.random.default_rng([seed, 1, k])
        qs, achieved, skipped = [], [], 0
        for r in rows:
            b = make(r, t, rng)
            if b is None or not (b[2] > b[0] and b[3] > b[1]):
                skipped += 1
                continue
            qs.append(_query(r, name, box_prompt(*b), b))
            achieved.append(perturb.box_iou(r.box, b))
        out.append(Condition(name, "box", "box", t, qs, achieved, skipped))
    return out


def mask_conditions(rows: list[Row], target: float) -> list[Condition]:
    out = [Condition("mask", "mask", "mask", 1.0,
                     [_query(r, "mask", mask_prompt(r.mask), perturb.mask_box(r.mask)) for r in rows],
                     [1.0] * len(rows))]  # fmt: skip
    for name, dilate in ((f"eroded {target}", False), (f"dilated {target}", True)):
        qs, achieved, skipped = [], [], 0
        for r in rows:
            m = perturb.morphed_mask(r.mask, target, dilate=dilate)
            if m is None:
                skipped += 1
                continue
            qs.append(_query(r, name, mask_prompt(m), perturb.mask_box(m)))
            achieved.append(perturb.mask_iou(r.mask, m))
        out.append(Condition(name, "mask", "mask", target, qs, achieved, skipped))
    return out


def click_conditions(rows: list[Row], seed: int) -> list[Condition]:
    rng = np.random.default_rng([seed, 2])
    makers = (("click", lambda r: perturb.centre_click(r.mask)),
              ("click on the outline", lambda r: perturb.edge_click(r.mask, rng)),
              (f"click {GAP} px outside", lambda r: perturb.outside_click(r.mask, rng, GAP)))  # fmt: skip
    out = []
    for name, make in makers:
        qs, skipped = [], 0
        for r in rows:
            p = make(r)
            if p is None:
                skipped += 1
                continue
            qs.append(_query(r, name, points_prompt([p]), None))
        out.append(Condition(name, "click", "click", None, qs, [], skipped))
    return out


def wrong_object_condition(rows: list[Row], scar_dir: Path) -> Condition | None:
    """The box of another object of the same image whose caption is a candidate (an object_in_image
    distractor that is true for that object): that caption moves to index 0, the ground truth, and the old
    ground truth to index 1. None where the data has no scene graphs (real SCaR)."""
    if not (scar_dir / "scenes_eval.parquet").is_file():
        return None
    scenes = scene_graphs(scar_dir, "eval")
    qs, skipped = [], 0
    for r in rows:
        q = r.query
        other = other_object(q, scenes.get(r.image_id))
        if other is None:
            skipped += 1
            continue
        j, box = other
        order = (j, *(k for k in range(len(q.candidates)) if k != j))
        kinds = tuple(q.candidate_kinds[k] for k in order)
        moved = replace(q, candidates=tuple(q.candidates[k] for k in order), candidate_kinds=kinds)
        qs.append(_query(replace(r, query=moved), "other object", box_prompt(*box), box))
    return Condition("other object", "box", "box", None, qs, [], skipped)


def other_object(q: EvalQuery, scene: Scene | None) -> tuple[int, perturb.Box] | None:
    """(candidate index, box) of the first object_in_image candidate that is true for another object."""
    if scene is None or not q.candidate_kinds:
        return None
    for j, (cand, kind) in enumerate(zip(q.candidates, q.candidate_kinds, strict=True)):
        cap = parse_caption(cand.text) if kind == "object_in_image" else None
        if cap is None:
            continue
        for o in scene.objects:
            if o.desc == cap.obj and true_for(cap, scene, o):
                x, y, w, h = o.bbox
                return j, (float(x), float(y), float(x + w), float(y + h))
    return None

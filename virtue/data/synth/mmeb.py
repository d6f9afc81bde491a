"""MMEB-synth: tasks of every MMEB meta-task drawn from the same generator, in the MMEB schemas.

eval/<task>.parquet: qry_inst, qry_text, qry_img_path, tgt_inst, tgt_text (list), tgt_img_path (list),
candidate 0 the answer. train/<task>.parquet (in-distribution tasks only): qry, qry_image_path, pos_text,
pos_image_path. tasks.json: meta-task and IND/OOD of every task. OOD tasks have no train split and their
targets are held-out (colour, shape) combinations, which no training image and no SCaR-synth image holds.
No row carries a visual prompt: these tasks feed SAM-2 the N-point grid."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ...io import write_json
from .scar import IMAGE_TOKEN
from .scene import Obj, Profile, Scene, generate_scene, render
from .vocab import COLOURS, HELD_OUT, SCENES, SHAPES
from .write import staged_folder, write_parquet, write_png

PROFILE = Profile(2, 5, (0.3, 0.4, 0.3), (3, 3, 3), overlap=0.2)
N_RET = 10  # candidates per retrieval / grounding query
COUNTS = ("two", "three", "four", "five")

# task: (meta-task, split, description)
TASKS: dict[str, tuple[str, str, str]] = {
    "scene-cls": ("cls", "IND", "image -> its scene type (16 labels)"),
    "colour-vqa": ("vqa", "IND", "image + 'what colour is the <shape>?' -> colour (8)"),
    "caption-t2i": ("ret", "IND", "whole-image caption -> image (10 candidates)"),
    "caption-i2t": ("ret", "IND", "image -> whole-image caption (10 candidates)"),
    "refexp-grd": ("grd", "IND", "image + referring expression -> crop of that object (10 crops)"),
    "count-cls": ("cls", "OOD", "image -> number of objects; images hold a held-out combination"),
    "shape-vqa": ("vqa", "OOD", "image + 'what shape is the <colour> object?' -> shape; target held out"),
    "heldout-t2i": ("ret", "OOD", "caption -> image; images hold a held-out combination"),
    "heldout-grd": ("grd", "OOD", "referring expression -> crop; the target is a held-out combination"),
}
INST = {
    "cls": "Represent the given image for classification",
    "colour-vqa": "Represent the given image with the following question:",
    "t2i": "Find me an everyday image that matches the given caption:",
    "i2t": "Find an image caption describing the given everyday image.",
    "grd": "Select the portion of the image that isolates the object described as:",
    "img": "Represent the given image.",
    "crop": "Represent the given cropped image of the object.",
}
INST["shape-vqa"] = INST["colour-vqa"]


def image_caption(scene: Scene) -> str:
    objs = sorted(o.desc.text() for o in scene.objects)
    listed = ", ".join(f"a {t}" for t in objs[:-1]) + f" and a {objs[-1]}"
    return f"a {scene.scene} scene with {listed}"


def _crop(rgb: np.ndarray, o: Obj) -> np.ndarray:
    x, y, w, h = o.bbox
    m = 2  # a little context, as referring-expression crops have
    s = rgb.shape[0]
    return rgb[max(0, y - m) : min(s, y + h + m), max(0, x - m) : min(s, x + w + m)]


class _Pool:
    """Images of one task and split: generated, rendered, written once, then queried by the row builders."""

    def __init__(self, tmp: Path, split: str, task: str, rng: np.random.Generator, size: int, n: int):
        held = TASKS[task][1] == "OOD"
        self.scenes: list[Scene] = []
        self.paths: list[str] = []
        self.crops: list[list[str]] = []
        for k in range(n):
            scene = generate_scene(rng, PROFILE, size, held_out=held)
            rgb = render(scene, rng)
            rel = f"images/{split}/{task}/{k}.png"
            write_png(tmp / rel, rgb)
            crops = []
            if TASKS[task][0] == "grd":
                for j, o in enumerate(scene.objects):
                    crops.append(f"crops/{split}/{task}/{k}_{j}.png")
                    write_png(tmp / crops[-1], _crop(rgb, o))
            self.scenes.append(scene)
            self.paths.append(rel)
            self.crops.append(crops)


def _others(rng: np.random.Generator, n: int, k: int, count: int) -> list[int]:
    idx = [i for i in rng.permutation(n) if i != k]
    return idx[:count]


def _eval_row(inst: str, text: str, img: str, tgt_inst: str, tgts: list[str], tgt_imgs: list[str]) -> dict:
    qry_text = f"{IMAGE_TOKEN} {inst} {text}".strip() if img else f"{inst} {text}".strip()
    return {
        "qry_inst": inst,
        "qry_text": qry_text,
        "qry_img_path": img,
        "tgt_inst": tgt_inst,
        "tgt_text": tgts,
        "tgt_img_path": tgt_imgs,
    }


def _label_row(pool: _Pool, k: int, rng, inst: str, question: str, answer: str, labels) -> dict:
    rest = [x for x in labels if x != answer]
    rest = [rest[i] for i in rng.permutation(len(rest))]
    return _eval_row(inst, question, pool.paths[k], "", [answer, *rest], [""] * len(labels))


def _unique(objs: list[Obj], key: Callable[[Obj], str]) -> list[Obj]:
    return [o for o in objs if sum(key(p) == key(o) for p in objs) == 1]


def _build_eval(task: str, pool: _Pool, k: int, rng: np.random.Generator) -> dict | None:
    scene = pool.scenes[k]
    objs = scene.objects
    held = [o for o in objs if (o.desc.colour, o.desc.shape) in HELD_OUT]
    if task == "scene-cls":
        return _label_row(pool, k, rng, INST["cls"], "", scene.scene, SCENES)
    if task == "count-cls":
        if len(objs) - 2 >= len(COUNTS):
            return None
        return _label_row(pool, k, rng, INST["cls"], "How many objects are there?", COUNTS[len(objs) - 2], COUNTS)
    if task == "colour-vqa":
        cands = _unique(objs, lambda o: o.desc.shape)
        o = cands[rng.integers(len(cands))] if cands else None
        return o and _label_row(pool, k, rng, INST[task], f"What colour is the {o.desc.shape}?", o.desc.colour, COLOURS)
    if task == "shape-vqa":
        cands = [o for o in _unique(objs, lambda o: o.desc.colour) if o in held]
        o = cands[0] if cands else None
        return o and _label_row(
            pool, k, rng, INST[task], f"What shape is the {o.desc.colour} object?", o.desc.shape, SHAPES
        )
    if task in ("caption-t2i", "heldout-t2i"):
        idx = [k, *_others(rng, len(pool.scenes), k, N_RET - 1)]
        return _eval_row(
            INST["t2i"],
            image_caption(scene),
            "",
            f"{IMAGE_TOKEN} {INST['img']}",
            [f"{IMAGE_TOKEN} {INST['img']}"] * len(idx),
            [pool.paths[i] for i in idx],
        )
    if task == "caption-i2t":
        idx = [k, *_others(rng, len(pool.scenes), k, N_RET - 1)]
        caps = [image_caption(pool.scenes[i]) for i in idx]
        return None if caps[0] in caps[1:] else _eval_row(INST["i2t"], "", pool.paths[k], "", caps, [""] * len(idx))
    # grounding: the target's crop, then the other objects of this image, then objects of other images
    j = objs.index(held[0]) if task == "heldout-grd" else int(rng.integers(len(objs)))
    crops = [pool.crops[k][j]] + [c for i, c in enumerate(pool.crops[k]) if i != j]
    for i in _others(rng, len(pool.scenes), k, len(pool.scenes) - 1):
        if len(crops) >= N_RET:
            break
        crops.append(pool.crops[i][int(rng.integers(len(pool.crops[i])))])
    tgt = f"{IMAGE_TOKEN} {INST['crop']}"
    return _eval_row(INST["grd"], f"the {objs[j].desc.text()}", pool.paths[k], "", [tgt] * N_RET, crops[:N_RET])


def _train_row(ev: dict) -> dict:
    """MMEB-train schema from an eval row of an IND task: the answer is the positive."""
    return {
        "qry": ev["qry_text"],
        "qry_image_path": ev["qry_img_path"],
        "pos_text": f"{ev['tgt_inst']} {ev['tgt_text'][0]}".strip(),
        "pos_image_path": ev["tgt_img_path"][0],
    }


def write_mmeb(out: Path, seed: int, image_size: int, per_task: dict[str, int], progress: bool = True) -> dict:
    """Generate MMEB-synth into `out` (replaced as a whole). Returns row counts {split: {task: n}}."""
    counts: dict[str, dict[str, int]] = {"train": {}, "eval": {}}
    jobs = [(s, t) for s in ("train", "eval") for t in TASKS if s == "eval" or TASKS[t][1] == "IND"]
    bar = tqdm(jobs, desc="mmeb-synth", unit="task", disable=not progress)
    with staged_folder(out) as tmp:
        for split, task in bar:
            n = per_task[split]
            rng = np.random.default_rng([seed, 2, ("train", "eval").index(split), list(TASKS).index(task)])
            pool = _Pool(tmp, split, task, rng, image_size, n + n // 10 + N_RET)  # spares for skipped rows
            rows = []
            for k in range(len(pool.scenes)):
                row = _build_eval(task, pool, k, rng)
                if row is not None:
                    rows.append(row if split == "eval" else _train_row(row))
                if len(rows) == n:
                    break
            if len(rows) < n:
                raise RuntimeError(f"{task}: only {len(rows)} of {n} {split} rows could be built")
            write_parquet(tmp / split / f"{task}.parquet", rows)
            counts[split][task] = len(rows)
        write_json(
            tmp / "tasks.json", {t: {"meta_task": m, "split": s, "description": d} for t, (m, s, d) in TASKS.items()}
        )
    return counts

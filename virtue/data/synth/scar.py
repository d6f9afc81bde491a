"""SCaR-synth: five subsets with SCaR's roles, train and eval splits in the official SCaR parquet schemas,
plus the scene graphs (scenes_<split>.parquet) that the oracles and SAM pre-training read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..masks import encode_rle
from .captions import make_query
from .scene import Profile, Scene, generate_scene, render
from .write import staged_folder, write_parquet, write_png

INSTRUCTION = (
    "Find the caption that best describes the object in the bounding box, "
    "considering both local details and global context in the given image."
)
IMAGE_TOKEN = "<|image_1|>"  # the placeholder the release's parquet files carry; readers strip it

SUBSETS: dict[str, Profile] = {
    "crowded": Profile(5, 6, (0.3, 0.4, 0.3), (5, 2, 2), overlap=0.5),
    "small": Profile(3, 5, (0.7, 0.2, 0.1), (3, 3, 3), overlap=0.3),
    "relation": Profile(3, 5, (0.3, 0.4, 0.3), (2, 5, 2), overlap=0.3),
    "scene": Profile(2, 4, (0.3, 0.4, 0.3), (2, 2, 5), overlap=0.3),
    "mixed": Profile(2, 6, (0.34, 0.33, 0.33), (3, 3, 3), overlap=0.3),
}
# val: a validation split in the eval schema, for model selection (a search's intermediate evaluations), so
# that the eval split is never used to choose what it then measures. Last in the list: the first two keep the
# random streams they had before it existed.
SPLITS = ("train", "eval", "val")
QUERIES_PER_IMAGE = {"train": 3, "eval": 2, "val": 2}


def query_text(box_xyxy: tuple[int, int, int, int]) -> str:
    """Instruction + the box in original pixels, as the release writes it (every model sees the box as text)."""
    x1, y1, x2, y2 = box_xyxy
    return f"{INSTRUCTION}\nReferring object bbox: [{x1}, {y1}, {x2}, {y2}]"


def eval_file_name(subset: str) -> str:
    return f"SCaR_eval_{subset}.parquet"


def train_file_name(subset: str) -> str:
    return f"SCaR_train_{subset}.parquet"


def scene_row(scene: Scene, image_id: int, image_path: str, subset: str) -> dict:
    objects = [
        {
            "size": o.desc.size,
            "colour": o.desc.colour,
            "shape": o.desc.shape,
            "region": o.region,
            "bbox": list(o.bbox),
            "segmentation": encode_rle(o.mask),
        }
        for o in scene.objects
    ]
    return {
        "image_id": image_id,
        "image_path": image_path,
        "subset": subset,
        "scene": scene.scene,
        "horizon": scene.horizon,
        "objects": json.dumps(objects, separators=(",", ":")),
    }


def write_scar(out: Path, seed: int, image_size: int, per_subset: dict[str, int], progress: bool = True) -> dict:
    """Generate the set into `out` (replaced as a whole). Returns row counts {split: {subset: n}}."""
    counts: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
    total = sum(per_subset.get(s, 0) for s in SPLITS) * len(SUBSETS)
    bar = tqdm(total=total, desc="scar-synth", unit="query", disable=not progress)
    with staged_folder(out) as tmp:
        for si, split in enumerate(SPLITS):
            if not per_subset.get(split):
                continue
            scenes = []
            for ki, (subset, profile) in enumerate(SUBSETS.items()):
                rng = np.random.default_rng([seed, 1, si, ki])
                rows: list[dict] = []
                k = 0
                while len(rows) < per_subset[split]:
                    scene = generate_scene(rng, profile, image_size)
                    image_id = (si * 10 + ki) * 1_000_000 + k
                    rel = f"images/{split}/{subset}/{image_id}.png"
                    made = 0
                    for t in rng.permutation(len(scene.objects)):
                        if made == QUERIES_PER_IMAGE[split] or len(rows) == per_subset[split]:
                            break
                        q = make_query(scene, int(t), rng, profile.distractors)
                        if q is None:
                            continue
                        rows.append(_row(split, scene, q, rel, image_id))
                        made += 1
                    if made:
                        write_png(tmp / rel, render(scene, rng))
                        scenes.append(scene_row(scene, image_id, rel, subset))
                        k += 1
                        bar.update(made)
                name = train_file_name(subset) if split == "train" else eval_file_name(subset)
                write_parquet(tmp / split / name, rows)
                counts[split][subset] = len(rows)
            write_parquet(tmp / f"scenes_{split}.parquet", scenes)
    bar.close()
    return counts


def _row(split: str, scene: Scene, q, rel: str, image_id: int) -> dict:
    target = scene.objects[q.target]
    x, y, w, h = target.bbox
    text = f"{IMAGE_TOKEN}\n{query_text((x, y, x + w, y + h))}"
    seg = json.dumps(encode_rle(target.mask), separators=(",", ":"))
    caps = [c.text() for c in q.captions]
    if split == "train":
        return {
            "qry": text,
            "qry_image_path": rel,
            "pos_text": caps[0],
            "pos_image_path": "",
            "bbox": [float(x), float(y), float(w), float(h)],
            "segmentation": seg,
            "category": target.desc.shape,
            "image_id": image_id,
            "neg_text": caps[1:],
            "neg_kind": list(q.kinds[1:]),
        }
    return {
        "qry_text": text,
        "qry_image_path": rel,
        "tgt_text": caps,
        "bbox": [float(x), float(y), float(w), float(h)],
        "tgt_kind": list(q.kinds),
        "segmentation": seg,
        "category": target.desc.shape,
        "image_id": image_id,
    }

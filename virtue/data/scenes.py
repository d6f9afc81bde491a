"""Scene graphs of a synthetic set (scenes_<split>.parquet): the image, its scene type and every object with
its exact visible mask and box, for SAM-2 pre-training (box -> mask) and the oracles."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from .masks import decode_segmentation
from .validate import read_table


@dataclass(frozen=True)
class SceneObject:
    size: str
    colour: str
    shape: str
    region: str  # "sky" | "ground"
    bbox: tuple[int, int, int, int]  # COCO x, y, w, h, original pixels
    mask: np.ndarray  # [H, W] bool, visible pixels


@dataclass(frozen=True)
class SceneRecord:
    image_id: int
    image: str  # absolute path
    subset: str
    scene: str  # "<sky> <ground>"
    horizon: int
    objects: tuple[SceneObject, ...]
    size: int  # image side


COLUMNS = ("image_id", "image_path", "subset", "scene", "horizon", "objects")


def read_scenes(folder: str | os.PathLike, split: str) -> list[SceneRecord]:
    """All scenes of a split ("train" | "eval") of a SCaR-synth or MMEB-synth folder."""
    path = Path(folder) / f"scenes_{split}.parquet"
    if not path.is_file():
        raise UserError(f"{path}: no scene graphs (only synthetic sets have them; run `virtue data synth`)")
    out = []
    for i, row in enumerate(read_table(path, COLUMNS)):
        try:
            objs = []
            for o in json.loads(row["objects"]):
                h, w = o["segmentation"]["size"]
                mask = decode_segmentation(o["segmentation"], h, w)
                objs.append(SceneObject(o["size"], o["colour"], o["shape"], o["region"], tuple(o["bbox"]), mask))
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(f"{path}: row {i}: objects: {e}") from e
        size = objs[0].mask.shape[0] if objs else 0
        image = str(Path(folder) / row["image_path"])
        out.append(SceneRecord(row["image_id"], image, row["subset"], row["scene"], row["horizon"], tuple(objs), size))
    return out

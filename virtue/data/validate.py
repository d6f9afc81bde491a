"""Row checks shared by every reader. A file-level problem (unreadable parquet, missing columns) always
raises; a row-level problem raises UserError("<file>: row <i>: <what>"), or with skip_invalid the row is
skipped, counted, and its message kept in `report` for `virtue data check`."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError

from ..errors import UserError
from .masks import decode_segmentation

log = logging.getLogger("virtue.data")
# Image placeholders of the releases: VLM2Vec's <|image_1|>, Qwen2-VL's vision block, LLaVA's <image>.
_PLACEHOLDER = re.compile(r"<\|image_\d+\|>\s*|<\|vision_start\|>(?:<\|image_pad\|>)*<\|vision_end\|>\s*|<image>\s*")


class RowError(Exception):
    """A problem with one row; the reader turns it into a UserError naming file and row, or skips it."""


def strip_placeholder(text: str | None) -> str:
    """Side.text carries no image placeholder: the processor places the image itself."""
    return _PLACEHOLDER.sub("", text or "").strip()


def read_table(path: Path, required: Sequence[str]) -> list[dict]:
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a damaged or foreign file
        raise UserError(f"{path}: not a readable parquet file ({type(e).__name__})") from e
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}")
    return table.to_pylist()


class Images:
    """Resolves image paths against a root and checks each file once (exists, decodable header)."""

    def __init__(self, root: Path):
        self.root = root
        self._sizes: dict[Path, tuple[int, int]] = {}

    def resolve(self, rel: str | None) -> tuple[Path, tuple[int, int]]:
        if not rel:
            raise RowError("empty image path")
        path = Path(rel) if Path(rel).is_absolute() else self.root / rel
        if path not in self._sizes:
            if not path.is_file():
                raise RowError(f"image {path} does not exist")
            try:
                with Image.open(path) as im:
                    self._sizes[path] = im.size
            except (UnidentifiedImageError, OSError) as e:
                raise RowError(f"image {path} is unreadable ({type(e).__name__})") from e
        return path, self._sizes[path]


def check_bbox(bbox, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """COCO [x, y, w, h] -> (x1, y1, x2, y2), inside the image and not degenerate."""
    if bbox is None or len(bbox) != 4:
        raise RowError(f"bbox must be [x, y, w, h], got {bbox!r}")
    x, y, w, h = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        raise RowError(f"degenerate bbox {list(bbox)}")
    W, H = size
    if x < 0 or y < 0 or x + w > W + 1e-6 or y + h > H + 1e-6:
        raise RowError(f"bbox {list(bbox)} lies outside the {W}x{H} image")
    return x, y, x + w, y + h


def check_mask(seg, size: tuple[int, int]) -> np.ndarray:
    try:
        mask = decode_segmentation(seg, height=size[1], width=size[0])
    except (ValueError, KeyError, TypeError) as e:
        raise RowError(f"segmentation: {e}") from e
    if not mask.any():
        raise RowError("segmentation: empty mask")
    return mask


def check_candidates(texts, images=None) -> list:
    texts = list(texts) if texts is not None else []
    if not texts:
        raise RowError("empty candidate list")
    first_img = images[0] if images is not None and len(images) else None
    if not texts[0] and not first_img:
        raise RowError("candidate 0 (the ground truth) is empty")
    return texts


def rows(
    path: Path, table: list[dict], build: Callable[[int, dict], object], skip_invalid: bool, report: list | None
) -> Iterator:
    """Build each row's record; errors name the file and row."""
    skipped = 0
    for i, row in enumerate(table):
        try:
            yield build(i, row)
        except RowError as e:
            msg = f"{path}: row {i}: {e}"
            if not skip_invalid:
                raise UserError(msg) from e
            skipped += 1
            if report is not None:
                report.append(msg)
    if skipped:
        log.warning("%s: skipped %d invalid row(s) of %d", path, skipped, len(table))

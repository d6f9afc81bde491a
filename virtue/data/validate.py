"""Row checks shared by every reader. A file-level problem (unreadable parquet, missing columns, no rows)
raises, unless a ReadLog is given (`virtue data check`: the file is reported and the others still read); a
row-level problem raises UserError("<file>: row <i>: <what>"), or with skip_invalid the row is skipped,
counted, and its message kept in the ReadLog."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ..errors import UserError
from ..paths import in_workspace
from .images import image_size, load_rgb
from .masks import decode_segmentation

log = logging.getLogger("virtue.data")
# Image placeholders of the releases: VLM2Vec's <|image_1|>, Qwen2-VL's vision block, LLaVA's <image>.
_PLACEHOLDER = re.compile(r"<\|image_\d+\|>\s*|<\|vision_start\|>(?:<\|image_pad\|>)*<\|vision_end\|>\s*|<image>\s*")


class RowError(Exception):
    """A problem with one row; the reader turns it into a UserError naming file and row, or skips it."""


@dataclass
class ReadLog:
    """What the readers saw, for `virtue data check`: the rows of every file they read (and only those),
    and one line per invalid row or unreadable file."""

    rows: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


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
    if table.num_rows == 0:
        raise UserError(f"{path}: the file has no rows")
    return table.to_pylist()


class Images:
    """Resolves image paths against a root and checks each file once: it exists and has a readable header,
    or with decode=True (`virtue data check`) its pixels decode in full (a truncated file has a good header)."""

    def __init__(self, root: Path, decode: bool = False):
        self.root = root
        self.decode = decode
        self._sizes: dict[Path, tuple[int, int]] = {}

    def resolve(self, rel: str | None) -> tuple[Path, tuple[int, int]]:
        if not rel:
            raise RowError("empty image path")
        path = in_workspace(rel, self.root)
        if path not in self._sizes:
            if not path.is_file():
                raise RowError(f"image {path} does not exist")
            try:
                self._sizes[path] = image_size(path)
            except UserError as e:
                what = "is too large to decode" if ": too large" in str(e) else "is unreadable"
                raise RowError(f"image {path} {what} ({str(e).rsplit(': ', 1)[-1]})") from e
            if self.decode:
                try:
                    load_rgb(path)
                except UserError as e:
                    del self._sizes[path]
                    raise RowError(f"image {path} is unreadable ({str(e).removeprefix(f'{path}: ')})") from e
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


def string_list(value, column: str) -> list[str]:
    """A list-of-strings column: a list (or array) of strings, or null. A string in its place (a list saved
    as its text, e.g. "['a', 'b']") is an error: iterated, it would become one candidate per character."""
    if value is None:
        return []
    if isinstance(value, str | bytes):
        raise RowError(f"{column}: expected a list of strings, got the string {value[:40]!r}")
    try:
        items = list(value)
    except TypeError:
        raise RowError(f"{column}: expected a list of strings, got {type(value).__name__}") from None
    bad = next((x for x in items if x is not None and not isinstance(x, str)), None)
    if bad is not None:
        raise RowError(f"{column}: expected a list of strings, found {type(bad).__name__} {bad!r}")
    return ["" if x is None else x for x in items]


def check_candidates(texts, images=None, column: str = "tgt_text") -> list[str]:
    """The candidate texts; index 0 is the ground truth, and no distractor may be a copy of it (a copy ties
    with it, and ties count against the ground truth: the query could never be answered)."""
    texts = string_list(texts, column)
    if not texts:
        raise RowError("empty candidate list")
    images = list(images) if images is not None else []
    first_img = images[0] if images else None
    if not texts[0] and not first_img:
        raise RowError("candidate 0 (the ground truth) is empty")
    gt = (texts[0].strip(), first_img)
    for j in range(1, len(texts)):
        if (texts[j].strip(), images[j] if j < len(images) else None) == gt:
            raise RowError(f"{column}: candidate {j} is the ground truth again (candidate 0)")
    return texts


def read_rows(
    path: Path,
    required: Sequence[str],
    build: Callable[[int, dict], object],
    skip_invalid: bool,
    report: ReadLog | None,
) -> list:
    """Read one file and build each row's record; errors name the file and row. With a ReadLog, a file that
    cannot be read is logged (no rows) instead of raised, and the file's row count is kept."""
    try:
        table = read_table(path, required)
    except UserError as e:
        if report is None:
            raise
        report.errors.append(str(e))
        return []
    if report is not None:
        report.rows[str(path)] = len(table)
    out, skipped = [], 0
    for i, row in enumerate(table):
        try:
            out.append(build(i, row))
        except RowError as e:
            msg = f"{path}: row {i}: {e}"
            if not skip_invalid:
                raise UserError(msg) from e
            skipped += 1
            if report is not None:
                report.errors.append(msg)
    if skipped:
        log.warning("%s: skipped %d invalid row(s) of %d", path, skipped, len(table))
    return out

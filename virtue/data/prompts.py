"""Visual prompts: box, point(s), mask, and the N-point grid used when the user gives none.

All coordinates are pixels of the ORIGINAL image (x to the right, y down). `to_frame` is the one place
where they are converted to a model's input frame."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

PromptKind = Literal["box", "points", "mask"]
BOX_LABELS = (2, 3)  # SAM's labels for the top-left and bottom-right box corners
POSITIVE = 1


@dataclass(frozen=True, eq=False)
class VisualPrompt:
    kind: PromptKind
    box: tuple[float, float, float, float] | None = None  # x1, y1, x2, y2
    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()  # one per point: 1 positive, 0 negative
    mask: np.ndarray | None = field(default=None, repr=False)  # [H, W] bool, original image size

    def key(self) -> str:
        """Stable digest of the prompt's content (for caches)."""
        h = hashlib.sha1(self.kind.encode())
        h.update(repr((self.box, self.points, self.labels)).encode())
        if self.mask is not None:
            h.update(np.packbits(self.mask.astype(bool)).tobytes())
            h.update(repr(self.mask.shape).encode())
        return h.hexdigest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VisualPrompt) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())


def box_prompt(x1: float, y1: float, x2: float, y2: float) -> VisualPrompt:
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f"degenerate box {(x1, y1, x2, y2)}")
    return VisualPrompt("box", box=(float(x1), float(y1), float(x2), float(y2)))


def coco_to_xyxy(bbox: list[float] | tuple[float, ...]) -> tuple[float, float, float, float]:
    x, y, w, h = (float(v) for v in bbox)
    return x, y, x + w, y + h


def points_prompt(points, labels=None) -> VisualPrompt:
    pts = tuple((float(x), float(y)) for x, y in points)
    if not pts:
        raise ValueError("a points prompt needs at least one point")
    labs = tuple(int(v) for v in labels) if labels is not None else (POSITIVE,) * len(pts)
    if len(labs) != len(pts):
        raise ValueError(f"{len(pts)} points but {len(labs)} labels")
    return VisualPrompt("points", points=pts, labels=labs)


def mask_prompt(mask: np.ndarray) -> VisualPrompt:
    mask = np.asarray(mask).astype(bool)
    if mask.ndim != 2 or not mask.any():
        raise ValueError("a mask prompt needs a non-empty 2-D mask")
    return VisualPrompt("mask", mask=mask)


def grid_points(n: int, width: float, height: float) -> tuple[tuple[float, float], ...]:
    """sqrt(n) x sqrt(n) points at the cell centres, (i + 0.5) / sqrt(n) of each axis, row by row."""
    side = math.isqrt(n)
    if side * side != n or n < 1:
        raise ValueError(f"the point grid needs a square count, got {n}")
    ticks = [(i + 0.5) / side for i in range(side)]
    return tuple((fx * width, fy * height) for fy in ticks for fx in ticks)


def grid_prompt(n: int, width: float, height: float) -> VisualPrompt:
    """The non-interactive prompt: ONE prompt of n positive points on a uniform grid."""
    return points_prompt(grid_points(n, width, height))


def sample_points(region: tuple[float, float, float, float] | np.ndarray, k: int, rng: np.random.Generator):
    """k points drawn uniformly inside a box (x1, y1, x2, y2) or on the pixels of a [H, W] mask."""
    if isinstance(region, np.ndarray):
        ys, xs = np.nonzero(region)
        if len(xs) == 0:
            raise ValueError("cannot sample points in an empty mask")
        idx = rng.choice(len(xs), size=k, replace=len(xs) < k)
        return tuple((float(xs[i]) + 0.5, float(ys[i]) + 0.5) for i in idx)
    x1, y1, x2, y2 = region
    return tuple((float(rng.uniform(x1, x2)), float(rng.uniform(y1, y2))) for _ in range(k))


def to_frame(xy: np.ndarray, src_size: tuple[int, int], dst_size: tuple[int, int]) -> np.ndarray:
    """Convert [..., 2] (x, y) pixel coordinates from an image of size src_size = (width, height) to the
    frame of the same image resized to dst_size = (width, height). The ONLY frame conversion in the code."""
    xy = np.asarray(xy, dtype=np.float64)
    sx = dst_size[0] / src_size[0]
    sy = dst_size[1] / src_size[1]
    return xy * np.array([sx, sy])

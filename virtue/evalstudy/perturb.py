"""Prompt perturbations with a known overlap: boxes moved, shrunk or grown to a target IoU with the true box,
masks eroded or dilated to a target IoU with the true mask, and clicks placed centrally, off-centre and just
outside the object. Pure functions of numbers and arrays (original-image pixels, x right, y down): the
`prompt_noise` study builds its queries from them, the property tests check them over random boxes.

IoU is exact for boxes (float corners, found by bisection on a one-parameter family whose IoU is monotone);
masks move in whole pixels, so erosion and dilation take the radius whose IoU is nearest the target."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

Box = tuple[float, float, float, float]  # x1, y1, x2, y2
TOL = 1e-6  # bisection stops when the IoU is this close to the target


def box_iou(a: Box, b: Box) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _inside(box: Box, size: tuple[int, int]) -> bool:
    return box[0] >= 0 and box[1] >= 0 and box[2] <= size[0] and box[3] <= size[1]


def _bisect(f, target: float, lo: float, hi: float) -> float:
    """t in [lo, hi] with f(t) = target for f decreasing on [lo, hi], f(lo) >= target >= f(hi)."""
    for _ in range(200):
        mid = (lo + hi) / 2
        v = f(mid)
        if abs(v - target) <= TOL:
            return mid
        lo, hi = (mid, hi) if v > target else (lo, mid)
    return (lo + hi) / 2


def shifted_box(box: Box, target_iou: float, size: tuple[int, int], rng: np.random.Generator,
                tries: int = 64) -> Box | None:  # fmt: skip
    """The box moved (same width and height) in a random direction until its IoU with `box` is target_iou,
    staying inside the image (width, height); None where no direction of `tries` allows it."""
    if not 0 < target_iou < 1:
        raise ValueError(f"target IoU {target_iou}: must be in (0, 1)")
    w, h = box[2] - box[0], box[3] - box[1]
    for _ in range(tries):
        theta = rng.uniform(0, 2 * math.pi)
        dx, dy = math.cos(theta), math.sin(theta)

        def moved(t: float, dx=dx, dy=dy) -> Box:
            return box[0] + t * dx, box[1] + t * dy, box[2] + t * dx, box[3] + t * dy

        far = abs(w / dx) if abs(dx) > 1e-9 else math.inf
        far = min(far, abs(h / dy) if abs(dy) > 1e-9 else math.inf)  # by then the boxes no longer overlap
        t = _bisect(lambda t, m=moved: box_iou(box, m(t)), target_iou, 0.0, far)
        out = moved(t)
        if _inside(out, size):
            return out
    return None


def scaled_box(box: Box, target_iou: float, size: tuple[int, int], *, grow: bool) -> Box | None:
    """The box shrunk (grow=False) or grown about its centre to IoU target_iou with `box`. A shrunk box lies
    inside the original (IoU = s^2); a grown one is clipped to the image, and None where even the whole image
    overlaps more than the target."""
    if not 0 < target_iou < 1:
        raise ValueError(f"target IoU {target_iou}: must be in (0, 1)")
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    w, h = box[2] - box[0], box[3] - box[1]

    def scaled(s: float) -> Box:
        x1, y1, x2, y2 = cx - s * w / 2, cy - s * h / 2, cx + s * w / 2, cy + s * h / 2
        return max(0.0, x1), max(0.0, y1), min(float(size[0]), x2), min(float(size[1]), y2)

    if not grow:
        s = math.sqrt(target_iou)
        return scaled(s)
    limit = 2 * max(size[0] / w, size[1] / h) + 1  # beyond this the clipped box is the whole image
    if box_iou(box, scaled(limit)) > target_iou + TOL:
        return None
    s = _bisect(lambda s: box_iou(box, scaled(s)), target_iou, 1.0, limit)
    return scaled(s)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def morphed_mask(mask: np.ndarray, target_iou: float, *, dilate: bool, max_radius: int = 32) -> np.ndarray | None:
    """The mask eroded (or dilated) by the whole-pixel radius whose IoU with `mask` is nearest target_iou
    (a disc of that radius; IoU falls with the radius). None where erosion empties the mask first."""
    mask = np.asarray(mask, bool)
    # distance of each pixel to the other side: eroding by r keeps inside pixels farther than r from outside
    dist = ndimage.distance_transform_edt(~mask if dilate else mask)
    best, best_gap = None, math.inf
    for r in range(1, max_radius + 1):
        out = (mask | (dist <= r)) if dilate else (dist > r)
        if not out.any():
            break
        iou = mask_iou(mask, out)
        if abs(iou - target_iou) < best_gap:
            best, best_gap = out, abs(iou - target_iou)
        if iou < target_iou:
            break
    return best


def centre_click(mask: np.ndarray) -> tuple[float, float]:
    """The object's most interior pixel (largest distance to its outline): where a user clicks an object."""
    dist = ndimage.distance_transform_edt(np.asarray(mask, bool))
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return float(x) + 0.5, float(y) + 0.5


def edge_click(mask: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """A click inside the object on its outline (a pixel of the mask next to the outside): off-centre."""
    mask = np.asarray(mask, bool)
    edge = mask & ~ndimage.binary_erosion(mask, border_value=0)
    ys, xs = np.nonzero(edge)
    i = int(rng.integers(len(xs)))
    return float(xs[i]) + 0.5, float(ys[i]) + 0.5


def outside_click(mask: np.ndarray, rng: np.random.Generator, gap: int = 2) -> tuple[float, float] | None:
    """A click just outside the object: a pixel `gap` pixels from its outline (None if the image has none)."""
    mask = np.asarray(mask, bool)
    dist = ndimage.distance_transform_edt(~mask)
    ring = (dist > gap - 1) & (dist <= gap)
    ys, xs = np.nonzero(ring)
    if len(xs) == 0:
        return None
    i = int(rng.integers(len(xs)))
    return float(xs[i]) + 0.5, float(ys[i]) + 0.5


def mask_box(mask: np.ndarray) -> Box:
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)

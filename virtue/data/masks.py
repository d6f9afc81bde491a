"""Instance masks in the COCO encodings: uncompressed RLE (what SCaR-synth writes), compressed RLE strings
and polygons (what COCO-derived real data holds). Masks in memory are [H, W] bool arrays; a row's mask prompt
keeps its segmentation encoded (StoredMaskPrompt) and decodes it when it is used."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image, ImageDraw

from .prompts import VisualPrompt


def encode_rle(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE: run lengths over the column-major pixels, starting with a run of zeros."""
    flat = np.asarray(mask, bool).flatten(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(c) for c in counts]}


def _decode_counts_string(s: str | bytes) -> list[int]:
    """COCO's compressed counts (5 bits per char, offset 48, delta-coded from the third run)."""
    if isinstance(s, bytes):
        s = s.decode("ascii", errors="replace")
    counts: list[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def _parse(seg, height: int, width: int) -> tuple[list[int] | None, list[list] | None]:
    """(RLE counts, None) or (None, polygons) of any COCO segmentation (RLE dict, polygon list, or a JSON
    string of either), checked against the image size. Raises ValueError if it cannot be read or its size
    differs from the image (KeyError or TypeError for a structure that is neither)."""
    if isinstance(seg, str | bytes):
        seg = json.loads(seg)
    if isinstance(seg, dict):
        h, w = (int(v) for v in seg["size"])
        if (h, w) != (height, width):
            raise ValueError(f"mask is {w}x{h} but the image is {width}x{height}")
        counts = seg["counts"]
        try:
            counts = _decode_counts_string(counts) if isinstance(counts, str | bytes) else [int(c) for c in counts]
        except IndexError:
            raise ValueError("compressed RLE counts end in the middle of a number") from None
        if any(c < 0 for c in counts):
            raise ValueError("RLE counts must not be negative")
        if sum(counts) != h * w:
            raise ValueError(f"mask run lengths cover {sum(counts)} pixels, the image has {h * w}")
        return counts, None
    polys = [list(p) for p in seg]
    if not polys or any(len(p) < 6 or len(p) % 2 for p in polys):
        raise ValueError("a polygon segmentation needs lists of at least 3 (x, y) pairs")
    return None, polys


def _rasterize(polys: list[list], height: int, width: int) -> np.ndarray:
    img = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(img)
    for p in polys:
        draw.polygon([(float(p[i]), float(p[i + 1])) for i in range(0, len(p), 2)], fill=255)
    return np.asarray(img) > 0


def decode_segmentation(seg, height: int, width: int) -> np.ndarray:
    """Any COCO segmentation (RLE dict, polygon list, or a JSON string of either) -> [H, W] bool.
    Raises ValueError if it cannot be read or its size differs from the image."""
    counts, polys = _parse(seg, height, width)
    if counts is None:
        return _rasterize(polys, height, width)
    values = np.zeros(len(counts), bool)
    values[1::2] = True
    return np.repeat(values, counts).reshape((height, width), order="F")


def check_segmentation(seg, height: int, width: int) -> None:
    """Raise where decode_segmentation would, and ValueError("empty mask") for a mask without a pixel; an RLE
    is checked from its run lengths, without building its [H, W] array."""
    counts, polys = _parse(seg, height, width)
    if not (any(counts[1::2]) if counts is not None else _rasterize(polys, height, width).any()):
        raise ValueError("empty mask")


class StoredMaskPrompt(VisualPrompt):
    """A mask prompt that keeps its segmentation as stored (a polygon or an RLE: bytes to kilobytes) and
    decodes it at each read of `mask`, without keeping the [H, W] array: one decoded mask per row held
    hundreds of GB on the ~958k rows of the real SCaR-train. Reads as mask_prompt(decoded) does: same mask,
    key() and equality. Build it from a checked segmentation (check_segmentation)."""

    def __init__(self, segmentation, height: int, width: int):
        if not isinstance(segmentation, str | bytes):  # a parquet struct/list: its JSON text is far smaller
            segmentation = json.dumps(segmentation, separators=(",", ":"))
        fields = {"kind": "mask", "box": None, "points": (), "labels": (), "segmentation": segmentation}
        for name, value in (fields | {"shape": (int(height), int(width))}).items():
            object.__setattr__(self, name, value)  # the dataclass is frozen

    @property
    def mask(self) -> np.ndarray:  # [H, W] bool, decoded anew at each read
        return decode_segmentation(self.segmentation, *self.shape)

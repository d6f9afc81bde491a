"""What the page sends, checked: a prompt (box, points or a painted mask, in original image pixels) and
uploaded images. Every problem is a one-line UserError, which the app answers with HTTP 400.

Uploads are kept as the bytes that came (named by their digest) in a folder of the server's, so that the
processor decodes them from a path exactly as it decodes the eval images."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import math
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..data.images import load_rgb
from ..data.prompts import VisualPrompt, box_prompt, mask_prompt, points_prompt
from ..errors import UserError


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = 10 * 2**20  # the request body: an upload, or a painted mask inside a prompt
    max_pixels: int = 4096 * 4096
    min_side: int = 8  # the processors resize any image; below this there is nothing to point at
    keep: int = 64  # uploads kept on disk, the oldest removed first


def _numbers(value, n: int, what: str) -> tuple[float, ...]:
    ok = isinstance(value, list | tuple) and len(value) == n
    ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if not ok:
        raise UserError(f"{what}: expected {n} finite numbers, got {str(value)[:60]}")
    return tuple(float(v) for v in value)


def _inside(x: float, y: float, width: int, height: int) -> bool:
    return 0 <= x <= width and 0 <= y <= height


def _box(spec: dict, width: int, height: int) -> VisualPrompt:
    x1, y1, x2, y2 = box = _numbers(spec.get("box"), 4, "box")
    shown = "[" + ", ".join(f"{v:g}" for v in box) + "]"
    if not (_inside(x1, y1, width, height) and _inside(x2, y2, width, height)):
        raise UserError(f"box {shown}: outside the image ({width}x{height} pixels)")
    if not (x2 > x1 and y2 > y1):
        raise UserError(f"box {shown}: empty prompt (drag to draw a box with some width and height)")
    return box_prompt(x1, y1, x2, y2)


def _points(spec: dict, width: int, height: int) -> VisualPrompt:
    raw = spec.get("points")
    if not isinstance(raw, list) or not raw:
        raise UserError("points: empty prompt (click on the image to add a point)")
    points = [_numbers(p, 2, f"point {i + 1}") for i, p in enumerate(raw)]
    for i, (x, y) in enumerate(points):
        if not _inside(x, y, width, height):
            raise UserError(f"point {i + 1} ({x:g}, {y:g}): outside the image ({width}x{height} pixels)")
    labels = spec.get("labels", [1] * len(points))
    if not isinstance(labels, list) or len(labels) != len(points) or any(v not in (0, 1) for v in labels):
        raise UserError(f"labels: expected one 0 (negative) or 1 (positive) per point, got {str(labels)[:60]}")
    return points_prompt(points, labels)


def _mask(spec: dict, width: int, height: int) -> VisualPrompt:
    """A PNG of the image's size (a data URL or base64): a pixel is in the mask where it is opaque (alpha),
    or bright for an image without alpha."""
    raw = spec.get("mask")
    if not isinstance(raw, str) or not raw:
        raise UserError("mask: empty prompt (paint over the object)")
    try:
        data = base64.b64decode(raw.split(",", 1)[1] if raw.startswith("data:") else raw, validate=True)
        with Image.open(io.BytesIO(data)) as im:
            if im.size != (width, height):
                raise UserError(f"mask: {im.size[0]}x{im.size[1]} pixels, the image is {width}x{height}")
            layer = im.getchannel("A") if "A" in im.getbands() else im.convert("L")
            mask = np.asarray(layer) > 127
    except (binascii.Error, ValueError, OSError) as e:
        raise UserError(f"mask: not a PNG image ({str(e)[:80]})") from None
    if not mask.any():
        raise UserError("mask: empty prompt (paint over the object)")
    return mask_prompt(mask)


_KINDS = {"box": _box, "points": _points, "mask": _mask}


def parse_prompt(spec, width: int, height: int) -> VisualPrompt:
    """The page's prompt {"kind": "box"|"points"|"mask", ...} -> a VisualPrompt in original pixels."""
    if not spec:
        raise UserError("empty prompt: drag a box, click points or paint a mask on the image")
    if not isinstance(spec, dict) or spec.get("kind") not in _KINDS:
        kind = spec.get("kind") if isinstance(spec, dict) else spec
        raise UserError(f"prompt kind {str(kind)[:40]!r}: expected box, points or mask")
    return _KINDS[spec["kind"]](spec, width, height)


def check_image_bytes(data: bytes, limits: UploadLimits) -> tuple[str, int, int]:
    """(format, width, height) of an uploaded image, read from its header; refuses what is no image, or too
    large in bytes or pixels, before any pixel is decoded."""
    if not data:
        raise UserError("upload: the file is empty")
    if len(data) > limits.max_bytes:
        raise UserError(f"upload: {len(data)} bytes, more than the {limits.max_bytes} allowed")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as im:
                fmt, (w, h) = im.format or "image", im.size
        except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
            if isinstance(e, UnidentifiedImageError):
                raise UserError("upload: not an image (PNG, JPEG, WebP, ...)") from None
            raise UserError(f"upload: too large in pixels ({e})") from None
        except (OSError, ValueError, SyntaxError) as e:
            raise UserError(f"upload: not a readable image ({str(e)[:80]})") from None
    if w * h > limits.max_pixels:
        raise UserError(f"upload: {w}x{h} pixels, more than the {limits.max_pixels} allowed")
    if min(w, h) < limits.min_side:
        raise UserError(f"upload: {w}x{h} pixels, less than {limits.min_side} on a side")
    return fmt, w, h


class Uploads:
    """Uploaded images on disk, by id ("u" + digest of the bytes): one upload of the same file is one entry."""

    def __init__(self, folder: Path, limits: UploadLimits):
        self.folder, self.limits = Path(folder), limits
        self._files: OrderedDict[str, tuple[Path, int, int]] = OrderedDict()

    def add(self, data: bytes) -> tuple[str, int, int]:
        fmt, w, h = check_image_bytes(data, self.limits)
        uid = "u" + hashlib.sha256(data).hexdigest()[:16]
        if uid not in self._files:
            path = self.folder / f"{uid}.{fmt.lower()}"
            path.write_bytes(data)
            try:
                load_rgb(path)  # the whole file decodes (a truncated one has a good header)
            except UserError as e:
                path.unlink(missing_ok=True)
                raise UserError(f"upload: {str(e).removeprefix(f'{path}: ')}") from None
            self._files[uid] = (path, w, h)
            while len(self._files) > self.limits.keep:
                old, _, _ = self._files.popitem(last=False)[1]
                old.unlink(missing_ok=True)
        self._files.move_to_end(uid)
        return uid, w, h

    def get(self, uid: str) -> tuple[Path, int, int] | None:
        return self._files.get(uid)

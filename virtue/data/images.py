"""Image files -> RGB, in one place: what training, evaluation and `virtue data check` all decode with.

Pillow's own convert("RGB") clips 16-bit greyscale (mode I;16, as PNG stores it) at 255, so such an image
would reach the model all white; here the 16 bits are scaled to 8. Files whose pixel count would exhaust
memory (Pillow's decompression-bomb limit) and truncated files are one-line errors, not tracebacks."""

from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import Image

from ..errors import UserError

_HIGH_DEPTH = {"I;16": 16, "I;16L": 16, "I;16B": 16, "I;16N": 16, "I": 16}  # PNG/TIFF greyscale of 16 bits


def _to_rgb(im: Image.Image) -> Image.Image:
    bits = _HIGH_DEPTH.get(im.mode)
    if bits is None:
        return im.convert("RGB")
    values = np.asarray(im, dtype=np.int64)
    if values.min(initial=0) < 0 or values.max(initial=0) >= 1 << bits:
        raise ValueError(f"mode {im.mode} pixel values outside 0..{(1 << bits) - 1}")
    grey = (values >> (bits - 8)).astype(np.uint8)
    return Image.fromarray(grey, mode="L").convert("RGB")


def _open(path: str | os.PathLike) -> Image.Image:
    """Image.open, with Pillow's decompression-bomb warning (over 89 MP) raised as its error: no dataset of
    this field has such images, a file that claims to is damaged or hostile."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(path)
        except Image.DecompressionBombWarning as e:
            raise Image.DecompressionBombError(str(e)) from None


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """The image's pixels as 8-bit RGB."""
    try:
        with _open(path) as im:
            return _to_rgb(im)
    except Image.DecompressionBombError as e:
        raise UserError(f"{path}: cannot read image: too large ({e})") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise UserError(f"{path}: cannot read image: {e}") from None


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding the pixels."""
    try:
        with _open(path) as im:
            return im.size
    except Image.DecompressionBombError as e:
        raise UserError(f"{path}: cannot read image: too large ({e})") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise UserError(f"{path}: cannot read image: {e}") from None
